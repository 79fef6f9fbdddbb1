//! One bottle session from orphans to teardown: the cleanup guarantee lives here.
//!
//! Whatever ends the session — the agent exiting, an error, SIGINT, SIGTERM or a panic in the
//! session task — every container, network and volume of the bottle is removed before returning.
//! A launcher killed with SIGKILL leaves objects behind; the next session of that bottle finds them
//! by label and removes them first (or refuses when their launcher is still alive).

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};

use crate::backend::{
    Backend, BackendError, LaunchSpec, PrepareOptions, Prepared, Resource, ResourceKind,
};
use crate::plan::BottlePlan;
use crate::stage::{self, Stage};

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
}

/// Options of one session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    pub workspace: Option<PathBuf>,
    /// Attach the operator's terminal (raw TTY) rather than stream output.
    pub tty: bool,
}

/// Remove what an earlier, dead launcher left of `slug`; refuse when its launcher still runs.
/// Returns what was removed.
pub async fn reap_orphans<B: Backend>(
    backend: &B,
    slug: &str,
) -> Result<Vec<Resource>, BackendError> {
    let found = backend.find_orphans(slug).await?;
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
    let removed = backend.stop(slug).await?;
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
    let mut sigint = signal(SignalKind::interrupt()).map_err(SessionError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(SessionError::Signals)?;

    let task_backend = backend.clone();
    let task_plan = plan.clone();
    let mut task = tokio::spawn(async move {
        let prepared = task_backend
            .prepare(
                &task_plan,
                &PrepareOptions {
                    workspace: opts.workspace,
                },
            )
            .await?;
        let stage = stage::prepare(&task_plan).map_err(|e| BackendError::Stage(e.to_string()))?;
        run_prepared(&task_backend, &task_plan, &prepared, &stage, opts.tty).await
    });

    let result = tokio::select! {
        joined = &mut task => match joined {
            Ok(r) => r.map(Outcome::Exited).map_err(SessionError::from),
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
    }
    teardown(backend, &plan.slug).await;
    result
}

/// Launch from already prepared images and run the agent to its exit (no teardown).
pub async fn run_prepared<B: Backend>(
    backend: &B,
    plan: &BottlePlan,
    prepared: &Prepared,
    stage: &Stage,
    tty: bool,
) -> Result<i64, BackendError> {
    let spec = LaunchSpec::new(plan, prepared, stage, tty);
    let launched = backend.launch(&spec).await?;
    backend.run_agent(&launched).await
}

/// Remove the bottle, retrying once; a failure is reported, never hidden.
pub async fn teardown<B: Backend>(backend: &B, slug: &str) {
    for attempt in 1..=2 {
        match backend.stop(slug).await {
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
