//! One bottle session from orphans to teardown: the cleanup guarantee lives here.
//!
//! Whatever ends the session — the agent exiting, an error, SIGINT, SIGTERM or a panic in the
//! session task — every container, network and volume of the bottle is removed before returning.
//! A launcher killed with SIGKILL leaves objects behind; the next session of that bottle finds them
//! by label and removes them first (or refuses when their launcher is still alive).
//!
//! One exception: an agent whose snapshot failed (too large, the disk full, the engine gone) is
//! kept, stopped, because its files exist nowhere else. The next session of that bottle saves it
//! before anything else and removes it only then; `claude-bottle stop` discards it.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::backend::{
    Backend, BackendError, LaunchSpec, Launched, PrepareOptions, Removal, Resource, ResourceKind,
};
use crate::plan::BottlePlan;
use crate::remediate::Remediator;
use crate::stage;
use crate::state::snapshot::Store;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The agent exited with this code.
    Exited(i64),
    /// The launcher got this signal (2 SIGINT, 15 SIGTERM) and tore the bottle down.
    Signalled(i32),
}

impl Outcome {
    /// The launcher's exit code: the agent's, or 128 + signal.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Exited(c) => u8::try_from(c.clamp(0, 255)).unwrap_or(1),
            Outcome::Signalled(s) => u8::try_from(128 + s).unwrap_or(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the session task panicked: {0}")]
    Panicked(String),
    #[error("failed to listen for signals: {0}")]
    Signals(std::io::Error),
    #[error(
        "{cause}\nkept: the agent's container {container}, stopped, with everything it wrote; the rest of bottle {bottle} was removed\n  look inside:    docker diff {container}; docker cp {container}:/workspace/FILE .\n  save and go on: raise snapshot_max_bytes, then `claude-bottle resume {bottle}` (it saves the kept agent first)\n  discard it:     claude-bottle stop {bottle}"
    )]
    Kept {
        bottle: String,
        container: String,
        cause: BackendError,
    },
    #[error(
        "{cause}\nand the agent's container could not be kept either ({keep}): what it wrote since the last snapshot is lost"
    )]
    NotKept {
        cause: BackendError,
        keep: BackendError,
    },
}

/// Options of one session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub workspace: Option<PathBuf>,
    /// Attach the operator's terminal (raw TTY) rather than stream output.
    pub tty: bool,
    /// Restore the last snapshot and start the agent with its resume arguments.
    pub resume: bool,
    /// The egress-proxy's token slots, resolved on the host before anything was created.
    pub tokens: Option<crate::egress::ResolvedTokens>,
    /// Extra roots pipelock trusts upstream (`upstream_ca` in config.toml).
    pub upstream_ca: Option<PathBuf>,
    /// Private ranges pipelock may reach (`allow_private_cidrs` in config.toml).
    pub allow_private_cidrs: Vec<String>,
    /// The largest snapshot (`snapshot_max_bytes` in config.toml).
    pub snapshot_max_bytes: u64,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            workspace: None,
            tty: false,
            resume: false,
            tokens: None,
            upstream_ca: None,
            allow_private_cidrs: Vec::new(),
            snapshot_max_bytes: crate::state::snapshot::DEFAULT_MAX_BYTES,
        }
    }
}

/// Remove what an earlier, dead launcher left of `slug`; refuse when its launcher still runs.
/// Returns what was removed.
pub async fn reap_orphans<B: Backend>(
    backend: &B,
    slug: &str,
) -> Result<Vec<Resource>, BackendError> {
    // A kept agent is no orphan: the session saves it (see `save_kept_agent`).
    let found: Vec<Resource> = backend
        .find_orphans(slug)
        .await?
        .into_iter()
        .filter(|r| !r.kept)
        .collect();
    if found.is_empty() {
        return Ok(found);
    }
    if let Some(pid) = found
        .iter()
        .filter_map(|r| r.launcher_pid)
        .find(|p| pid_alive(*p))
    {
        return Err(BackendError::AlreadyRunning {
            slug: slug.to_string(),
            pid,
        });
    }
    eprintln!("found leftovers of bottle {slug} from an earlier run (was its launcher killed?):");
    for r in &found {
        eprintln!("  {}", describe(r));
    }
    let mut removed = backend.stop(slug, Removal::KeepKeptAgent).await?;
    // A launcher killed mid-launch can leave engine requests in flight: what they make shows up a
    // moment later, so look once more.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    removed.extend(backend.stop(slug, Removal::KeepKeptAgent).await?);
    eprintln!(
        "removed {} leftover object(s) of bottle {slug}",
        removed.len()
    );
    Ok(removed)
}

/// `container cb-agent (exited)`, for reports.
pub fn describe(r: &Resource) -> String {
    match r.kind {
        ResourceKind::Container if !r.state.is_empty() => {
            format!("{} {} ({})", r.kind, r.name, r.state)
        }
        _ => format!("{} {}", r.kind, r.name),
    }
}

fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw == i32::try_from(std::process::id()).unwrap_or(-1) {
        return false;
    }
    // Signal 0 checks existence; EPERM still means the process exists.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// Prepare, launch and run the agent of `plan`, then tear the bottle down whatever happened.
pub async fn run<B>(
    backend: &B,
    plan: &BottlePlan,
    opts: SessionOptions,
) -> Result<Outcome, SessionError>
where
    B: Backend + Clone + Send + Sync + 'static,
{
    reap_orphans(backend, &plan.slug).await?;
    let store = Store::new(&plan.state_dir, opts.snapshot_max_bytes);
    save_kept_agent(backend, plan, &store).await?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(SessionError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(SessionError::Signals)?;

    let task_backend = backend.clone();
    let task_plan = plan.clone();
    let task_store = store.clone();
    // The running agent, for a snapshot when a signal ends the session.
    let current: Current = Arc::default();
    let task_current = Arc::clone(&current);
    let mut task = tokio::spawn(async move {
        run_session(task_backend, task_plan, opts, task_store, task_current).await
    });

    let mut result = tokio::select! {
        joined = &mut task => match joined {
            Ok(r) => r.map(Outcome::Exited),
            Err(e) if e.is_panic() => Err(SessionError::Panicked(panic_text(e.into_panic()))),
            Err(e) => Err(SessionError::Panicked(e.to_string())),
        },
        _ = sigint.recv() => Ok(Outcome::Signalled(2)),
        _ = sigterm.recv() => Ok(Outcome::Signalled(15)),
    };
    task.abort();
    if let Ok(Outcome::Signalled(s)) = result {
        eprintln!(
            "claude-bottle: got signal {s}, removing bottle {}",
            plan.slug
        );
        // Keep what the agent did for `claude-bottle resume`.
        let running = current.lock().ok().and_then(|c| c.clone());
        if let Some(launched) = running
            && let Err(e) = backend.snapshot_agent(&launched, &store).await
        {
            let kept = keep(backend, plan, &launched, e).await;
            // The signal's exit code stands; what happened to the agent's files is said here.
            eprintln!("claude-bottle: {kept}");
            if !matches!(kept, SessionError::Kept { .. }) {
                result = Err(kept);
            }
        }
    }
    teardown(backend, &plan.slug).await;
    result
}

/// An agent an earlier session kept (its snapshot failed) holds files newer than the latest
/// snapshot: save them before this session starts, and remove the container only once they are
/// saved. Fails, keeping it, when they still cannot be (the limit not raised).
async fn save_kept_agent<B: Backend>(
    backend: &B,
    plan: &BottlePlan,
    store: &Store,
) -> Result<(), SessionError> {
    // The folders `LaunchSpec::new` saves.
    let paths = [
        crate::backend::AGENT_HOME.to_owned(),
        crate::image::WORKSPACE_DIR.to_owned(),
    ];
    let Some(kept) = backend.kept_agent(&plan.slug, &paths).await? else {
        return Ok(());
    };
    eprintln!(
        "claude-bottle: saving the agent an earlier session of {} kept ({}), up to snapshot_max_bytes {}",
        plan.name,
        kept.agent,
        crate::state::snapshot::human(store.max_bytes())
    );
    if let Err(cause) = backend.snapshot_agent(&kept, store).await {
        return Err(SessionError::Kept {
            bottle: plan.name.clone(),
            container: kept.agent,
            cause,
        });
    }
    backend.stop(&plan.slug, Removal::Everything).await?;
    eprintln!(
        "claude-bottle: saved it as the latest snapshot and removed {}",
        kept.agent
    );
    Ok(())
}

/// The agent's snapshot failed: keep its container (its files exist nowhere else) out of the
/// teardown, and say how to get at them.
async fn keep<B: Backend>(
    backend: &B,
    plan: &BottlePlan,
    launched: &Launched,
    cause: BackendError,
) -> SessionError {
    match backend.keep_agent(launched).await {
        Ok(container) => SessionError::Kept {
            bottle: plan.name.clone(),
            container,
            cause,
        },
        Err(keep) => SessionError::NotKept { cause, keep },
    }
}

/// Everything between the orphan probe and the teardown: approvals made while no launcher ran,
/// images, staging, launch, then the agent, replaced in place each time an approved capability
/// rebuilds it.
async fn run_session<B>(
    backend: B,
    plan: BottlePlan,
    opts: SessionOptions,
    store: Store,
    current: Current,
) -> Result<i64, SessionError>
where
    B: Backend + Clone + Send + Sync + 'static,
{
    let stage_err = |e: stage::StageError| BackendError::Stage(e.to_string());
    let mut remediator = Remediator::new(backend.clone(), plan, opts.workspace.clone())
        .map_err(|e| BackendError::Stage(e.to_string()))?;
    for applied in remediator.apply_pending().await {
        // The detail may quote a failed build's output.
        eprintln!(
            "claude-bottle: applied {} before launch: {}",
            applied.id,
            claude_bottle_protocol::escape(&applied.detail)
        );
    }
    let plan = remediator.plan().clone();
    let prepared = backend
        .prepare(
            &plan,
            &PrepareOptions {
                workspace: opts.workspace.clone(),
                dockerfile: None,
                agent_only: false,
            },
        )
        .await?;
    let mut stage = stage::prepare(&plan).map_err(stage_err)?;
    if let Some(images) = &prepared.egress {
        let tokens = match &opts.tokens {
            Some(t) => t.clone(),
            None => crate::egress::EgressRoutes::from_routes(&plan.routes)
                .resolve(|n| std::env::var(n).ok())
                .map_err(|e| BackendError::Stage(e.to_string()))?,
        };
        let staged = crate::chain::stage(
            &plan,
            &tokens,
            opts.upstream_ca.as_deref(),
            &opts.allow_private_cidrs,
            &images.image_roots,
        )
        .map_err(|e| BackendError::Stage(e.to_string()))?;
        for (purpose, fp) in &staged.fingerprints {
            eprintln!("claude-bottle: {purpose} CA of this launch: SHA-256 {fp}");
        }
        stage.egress = Some(staged);
    }
    let mut spec = LaunchSpec::new(&plan, &prepared, &stage, opts.tty);
    let restore = if opts.resume {
        store.load().map_err(BackendError::from)?
    } else {
        None
    };
    if restore.is_some() {
        spec.agent = spec.agent.resuming(&plan);
    }
    let mut launched = backend.launch(&spec).await?;
    if let Some(snap) = &restore {
        backend.restore_agent(&launched, &store, snap).await?;
        eprintln!(
            "claude-bottle: resumed {} from its last snapshot",
            plan.name
        );
    }

    set_current(&current, &launched);
    let (tx, mut replacements) = mpsc::channel(4);
    let pipelock = spec
        .sidecars
        .iter()
        .find(|s| s.name == crate::backend::PIPELOCK_SIDECAR)
        .cloned();
    let watcher = tokio::spawn(remediator.watch(
        stage.clone(),
        spec.agent.clone(),
        pipelock,
        launched.clone(),
        tx,
    ));
    // The agent starts at once. The sidecars that do not gate it (the egress chain) and their
    // networks are created beside it, and their readiness is awaited while it runs (the relay
    // holds its first connections); if one fails, the agent is stopped and the session fails
    // naming it.
    let ready_spec = spec.clone();
    let chain_started = tokio::sync::Notify::new();
    let chain_up = Arc::new(tokio::sync::Notify::new());
    let warm = warm_root_step(&backend, &plan, &prepared, Arc::clone(&chain_up));
    let mut chain_ready = Some(Box::pin(async {
        let started = backend.start_sidecars(&ready_spec).await;
        chain_started.notify_one();
        started?;
        backend.await_sidecars(&ready_spec).await?;
        chain_up.notify_one();
        Ok(())
    }));
    // What the end of the session still owes the agent's files.
    let mut last = LastSnapshot::Take;
    let code = loop {
        let (code, chain_failed) = {
            let run = backend.run_agent(&launched);
            tokio::pin!(run);
            match chain_ready.take() {
                None => (run.await, false),
                Some(mut ready) => tokio::select! {
                    code = &mut run => {
                        // Still coming up: watched on beside the next agent, if one follows.
                        chain_ready = Some(ready);
                        (code, false)
                    }
                    result = &mut ready => match result {
                        Ok(()) => (run.await, false),
                        Err(e) => {
                            let _ = backend.stop_agent(&launched).await;
                            let _ = run.await;
                            (Err(e), true)
                        }
                    },
                },
            }
        };
        // A failed chain ends the session, even with a rebuilt agent waiting to be swapped in.
        let Some(next) = replacements.try_recv().ok().filter(|_| !chain_failed) else {
            break code;
        };
        // The agent was stopped for a rebuilt one: carry its home and workspace over.
        tracing::info!("agent stopped for a rebuilt one");
        let swapped = async {
            let t = std::time::Instant::now();
            // The successor is created while the stopped agent is copied out.
            let (snap, successor) = tokio::join!(
                backend.snapshot_agent(&launched, &store),
                backend.create_successor(&spec, &next.agent)
            );
            let snap = snap.map_err(|e| (e, true))?;
            let successor = successor.map_err(|e| (e, false))?;
            tracing::info!(
                ms = t.elapsed().as_millis(),
                "agent snapshotted, successor created"
            );
            let t = std::time::Instant::now();
            let new = backend
                .swap_in(&launched, successor, Some((&store, &snap)))
                .await
                .map_err(|e| (e, false));
            tracing::info!(
                ms = t.elapsed().as_millis(),
                "successor restored and swapped in"
            );
            new
        }
        .await;
        match swapped {
            Ok(new) => {
                launched = new;
                set_current(&current, &launched);
                spec.agent = next.agent;
                let note = claude_bottle_protocol::escape_line(&next.note);
                eprint!("\r\nclaude-bottle: {note}\r\n");
                let _ = next.done.send(Ok(()));
            }
            Err((e, snapshot_failed)) => {
                // Record the failure here: the watcher is stopped as the session ends.
                let detail = if snapshot_failed {
                    format!("rebuilt, but the agent's snapshot failed, so it was not replaced: {e}")
                } else {
                    format!("rebuilt, but the new agent did not start: {e}")
                };
                let failed = claude_bottle_protocol::Applied::failed(
                    next.id.clone(),
                    &detail,
                    crate::state::audit::now(),
                );
                if let Ok(q) = crate::state::Queue::open(&plan.state_dir)
                    && let Err(err) = q.record_applied(&failed)
                {
                    eprintln!(
                        "claude-bottle: failed to record the outcome of {}: {err}",
                        next.id
                    );
                }
                let _ = next.done.send(Err(e.to_string()));
                if snapshot_failed {
                    last = LastSnapshot::Failed(e);
                    break Ok(0);
                }
                // The stopped agent was saved just before; the swap may have removed it since.
                last = LastSnapshot::Taken;
                break Err(e);
            }
        }
    };
    // Let sidecar creations in flight finish, so the teardown sees every container; a chain
    // failure that arrives now is only logged (the agent has already ended).
    if let Some(ready) = chain_ready.as_mut() {
        tokio::select! {
            result = ready => if let Err(e) = result {
                tracing::warn!(error = %e, "the egress chain failed after the agent ended");
            },
            () = chain_started.notified() => {}
        }
    }
    drop(chain_ready);
    watcher.abort();
    if let Some(warm) = warm {
        warm.abort();
    }
    // Keep the session's state for `claude-bottle resume`; without a snapshot, keep the agent.
    let saved = match last {
        LastSnapshot::Take => backend.snapshot_agent(&launched, &store).await.map(|_| ()),
        LastSnapshot::Taken => Ok(()),
        LastSnapshot::Failed(e) => Err(e),
    };
    if let Err(cause) = saved {
        return Err(keep(&backend, &plan, &launched, cause).await);
    }
    Ok(code?)
}

/// The snapshot a session owes when its agent loop ends.
enum LastSnapshot {
    /// Take one of the agent as it is now.
    Take,
    /// A swap that failed after saving the stopped agent: nothing changed since.
    Taken,
    /// A swap's snapshot failed: keep the agent rather than copy it again.
    Failed(BackendError),
}

/// Once the egress chain is up (the launch's own work done), build the step every first approved
/// capability starts with ([`crate::state::dockerfile::ROOT_STEP`]), so that approval builds one
/// step instead of two. Only for bottles that can file proposals (supervise) and whose image does
/// not already end as root. In the background and silent: a failure costs only the speed-up.
fn warm_root_step<B>(
    backend: &B,
    plan: &BottlePlan,
    prepared: &crate::backend::Prepared,
    chain_up: Arc<tokio::sync::Notify>,
) -> Option<tokio::task::JoinHandle<()>>
where
    B: Backend + Clone + Send + Sync + 'static,
{
    if !plan.supervise {
        return None;
    }
    let image = prepared.root_step_base.clone()?;
    let backend = backend.clone();
    Some(tokio::spawn(async move {
        chain_up.notified().await;
        let t = std::time::Instant::now();
        match backend.warm_root_step(&image).await {
            Ok(Some(_)) => tracing::info!(
                image,
                ms = t.elapsed().as_millis(),
                "built the first approval's root step ahead"
            ),
            Ok(None) => {}
            Err(e) => tracing::debug!(image, error = %e, "could not build the root step ahead"),
        }
    }))
}

/// The agent the session runs now, shared with the signal handling outside the session task.
type Current = Arc<std::sync::Mutex<Option<Launched>>>;

fn set_current(current: &Current, launched: &Launched) {
    if let Ok(mut c) = current.lock() {
        *c = Some(launched.clone());
    }
}

/// Remove the bottle, retrying once; a failure is reported, never hidden.
pub async fn teardown<B: Backend>(backend: &B, slug: &str) {
    for attempt in 1..=2 {
        match backend.stop(slug, Removal::KeepKeptAgent).await {
            Ok(removed) => {
                tracing::info!(slug, removed = removed.len(), "bottle removed");
                return;
            }
            Err(e) if attempt == 2 => {
                eprintln!(
                    "claude-bottle: failed to remove bottle {slug}: {e}\n  hint: run `claude-bottle stop {slug}`"
                );
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(300)).await,
        }
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
