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

mod console;
#[cfg(test)]
mod fake;
mod live;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

pub use console::{Captured, Console, Terminal};

use crate::backend::{Backend, BackendError, Launched, Removal, Resource, ResourceKind};
use crate::config::Config;
use crate::plan::BottlePlan;
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
    #[error(transparent)]
    Stage(#[from] crate::stage::StageError),
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    #[error(transparent)]
    Tokens(#[from] crate::egress::TokenError),
    #[error(transparent)]
    Git(#[from] crate::git_gate::GitGateError),
    #[error(transparent)]
    Queue(#[from] crate::state::QueueError),
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

impl crate::error::Diagnose for SessionError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            SessionError::Backend(e) => e.kind(),
            SessionError::Stage(e) => e.kind(),
            SessionError::Chain(e) => e.kind(),
            SessionError::Tokens(e) => e.kind(),
            SessionError::Git(e) => e.kind(),
            SessionError::Queue(e) => e.kind(),
            // The run failed whatever the cause; what to do about the kept agent is in the message.
            SessionError::Kept { .. }
            | SessionError::NotKept { .. }
            | SessionError::Panicked(_)
            | SessionError::Signals(_) => crate::error::Kind::Internal,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SessionError::Backend(e) => e.hint(),
            SessionError::Chain(e) => e.hint(),
            SessionError::Git(e) => e.hint(),
            SessionError::Queue(e) => e.hint(),
            _ => None,
        }
    }
}

/// Options of one session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    pub workspace: Option<PathBuf>,
    /// Attach the operator's terminal (raw TTY) rather than stream output.
    pub tty: bool,
    /// Restore the last snapshot and start the agent with its resume arguments.
    pub resume: bool,
    /// The egress-proxy's token slots, resolved on the host before anything was created.
    pub tokens: Option<crate::egress::ResolvedTokens>,
    /// The git remotes' credentials, read on the host before anything was created.
    pub git: Option<crate::git_gate::GitCredentials>,
    /// The operator's config.toml: images, binaries, `upstream_ca`, `allow_private_cidrs`,
    /// `snapshot_max_bytes`.
    pub config: Config,
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

/// Whether the process `pid` (a launcher, from a label) is alive; this process counts as dead.
pub(crate) fn pid_alive(pid: u32) -> bool {
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
/// SIGINT and SIGTERM end it (see [`Outcome::Signalled`]); the operator reads the launcher's notes
/// on standard error.
pub async fn run<B>(
    backend: &B,
    plan: &BottlePlan,
    opts: SessionOptions,
) -> Result<Outcome, SessionError>
where
    B: Backend + Clone + Send + Sync + 'static,
{
    let signals = Signals::os().map_err(SessionError::Signals)?;
    run_with(backend, plan, opts, Console::stderr(), signals).await
}

/// [`run`] with the console and the signals given: what tests drive.
pub async fn run_with<B>(
    backend: &B,
    plan: &BottlePlan,
    opts: SessionOptions,
    console: Console,
    signals: Signals,
) -> Result<Outcome, SessionError>
where
    B: Backend + Clone + Send + Sync + 'static,
{
    let mut signals = signals;
    let store = Store::new(&plan.state_dir, opts.config.snapshot_max_bytes);
    // Nothing of this session exists yet: a signal here needs no teardown (and an error here must
    // not have one: the leftovers may belong to a launcher that still runs).
    let before = async {
        reap_orphans(backend, &plan.slug).await?;
        save_kept_agent(backend, plan, &store, &console).await
    };
    tokio::select! {
        biased;
        s = signals.recv() => return Ok(Outcome::Signalled(s)),
        r = before => r?,
    }
    // Its own task, so that a panic in it still ends in the teardown below.
    let task = tokio::spawn(live::drive(live::Setup {
        backend: backend.clone(),
        plan: plan.clone(),
        opts,
        store,
        console,
        signals,
    }));
    let result = match task.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(SessionError::Panicked(panic_text(e.into_panic()))),
        Err(e) => Err(SessionError::Panicked(e.to_string())),
    };
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
    console: &Console,
) -> Result<(), SessionError> {
    // The folders `LaunchSpec::new` saves.
    let paths = [
        crate::backend::AGENT_HOME.to_owned(),
        crate::image::WORKSPACE_DIR.to_owned(),
    ];
    let Some(kept) = backend.kept_agent(&plan.slug, &paths).await? else {
        return Ok(());
    };
    console.note(&format!(
        "saving the agent an earlier session of {} kept ({}), up to snapshot_max_bytes {}",
        plan.name,
        kept.agent,
        crate::state::snapshot::human(store.max_bytes())
    ));
    if let Err(cause) = backend.snapshot_agent(&kept, store).await {
        return Err(SessionError::Kept {
            bottle: plan.name.clone(),
            container: kept.agent,
            cause,
        });
    }
    backend.stop(&plan.slug, Removal::Everything).await?;
    console.note(&format!(
        "saved it as the latest snapshot and removed {}",
        kept.agent
    ));
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

/// SIGINT and SIGTERM, as numbers, from the OS or from a test.
#[derive(Debug)]
pub struct Signals(mpsc::UnboundedReceiver<i32>);

impl Signals {
    /// The process's SIGINT (2) and SIGTERM (15), from now on.
    pub fn os() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        for (kind, number) in [(SignalKind::interrupt(), 2), (SignalKind::terminate(), 15)] {
            let mut stream = signal(kind)?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if tx.send(number).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(Self(rx))
    }

    /// Signals a test sends.
    pub fn channel() -> (mpsc::UnboundedSender<i32>, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Self(rx))
    }

    /// The next signal; never, once no sender is left.
    pub async fn recv(&mut self) -> i32 {
        match self.0.recv().await {
            Some(s) => s,
            None => std::future::pending().await,
        }
    }
}

/// Remove the bottle, retrying once; a failure is reported, never hidden.
pub async fn teardown<B: Backend>(backend: &B, slug: &str) {
    use backon::{ConstantBuilder, Retryable as _};
    let removed = (|| backend.stop(slug, Removal::KeepKeptAgent))
        .retry(
            ConstantBuilder::new()
                .with_delay(std::time::Duration::from_millis(300))
                .with_max_times(1),
        )
        .sleep(tokio::time::sleep)
        .await;
    match removed {
        Ok(removed) => tracing::info!(slug, removed = removed.len(), "bottle removed"),
        Err(e) => eprintln!(
            "claude-bottle: failed to remove bottle {slug}: {e}\n  hint: run `claude-bottle stop {slug}`"
        ),
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
