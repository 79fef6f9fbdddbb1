//! `claude-bottle-shim daemon`: a local socket for tools and hooks that holds on to supervise.
//!
//! Clients get an answer even while supervise restarts: requests that could not reach it are
//! retried with backoff for a while (a resent submit is safe: supervise merges identical
//! pending proposals). Repeated identical submissions (a hook reporting the same missing
//! command in a loop) are answered from a short-lived cache without bothering supervise.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable as _};

use claude_bottle_io::fs::FsError;
use claude_bottle_io::socket;
use claude_bottle_protocol::wire::{MAX_WAIT_MS, Request, Response};
use claude_bottle_protocol::{ProposalId, ProposalKind};

use crate::client;

/// Most simultaneous local clients.
const MAX_CLIENTS: usize = 64;
/// Most remembered submissions.
const MAX_CACHED: usize = 256;
/// Timeout of one forwarded quick call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How the daemon is set up.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The local socket tools call.
    pub listen: PathBuf,
    /// Supervise's socket.
    pub supervise: PathBuf,
    /// How long to keep retrying a request while supervise is unreachable.
    pub retry_for: Duration,
    /// How long an identical submission is answered from the cache.
    pub dedupe_for: Duration,
}

#[derive(Debug)]
struct Shared {
    cfg: DaemonConfig,
    recent: Mutex<HashMap<ProposalKind, (ProposalId, Instant)>>,
}

/// Serves the local socket until the task is dropped.
pub async fn run(cfg: DaemonConfig) -> Result<(), FsError> {
    let listener = socket::bind_world(&cfg.listen)?;
    tracing::info!(listen = %cfg.listen.display(), supervise = %cfg.supervise.display(), "shim daemon listening");
    let shared = Arc::new(Shared {
        cfg,
        recent: Mutex::new(HashMap::new()),
    });
    socket::serve(listener, MAX_CLIENTS, move |stream| {
        let shared = shared.clone();
        async move { socket::answer_requests(stream, |request| forward(&shared, request)).await }
    })
    .await;
    Ok(())
}

/// Answers from the cache or sends to supervise, retrying while it is unreachable.
async fn forward(shared: &Shared, request: Request) -> Response {
    let cache_key = match &request {
        Request::Submit { kind, .. } => Some(kind.normalized()),
        _ => None,
    };
    if let Some(key) = &cache_key
        && let Some(id) = shared.cached(key)
    {
        return Response::Submitted {
            id,
            duplicate: true,
        };
    }
    let timeout = match &request {
        Request::Wait { timeout_ms, .. } => {
            Duration::from_millis((*timeout_ms).min(MAX_WAIT_MS)) + CALL_TIMEOUT
        }
        _ => CALL_TIMEOUT,
    };
    let give_up = Instant::now() + shared.cfg.retry_for;
    let backoff = ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(1))
        .without_max_times()
        .with_total_delay(Some(shared.cfg.retry_for));
    // Nothing reached supervise, or the connection broke: resending is safe for every request
    // (submissions are merged by supervise).
    let response = (|| client::call(&shared.cfg.supervise, &request, timeout))
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|_| Instant::now() < give_up)
        .notify(|e, _| tracing::debug!(error = %e, "supervise unreachable; retrying"))
        .await
        .unwrap_or_else(|e| e.to_response());
    if let (Some(key), Response::Submitted { id, .. }) = (cache_key, &response) {
        shared.remember(key, id.clone());
    }
    response
}

impl Shared {
    fn cached(&self, key: &ProposalKind) -> Option<ProposalId> {
        let recent = self.recent.lock().ok()?;
        let (id, at) = recent.get(key)?;
        (at.elapsed() < self.cfg.dedupe_for).then(|| id.clone())
    }

    fn remember(&self, key: ProposalKind, id: ProposalId) {
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        let ttl = self.cfg.dedupe_for;
        recent.retain(|_, (_, at)| at.elapsed() < ttl);
        if recent.len() >= MAX_CACHED {
            // Still full of live entries: forget them all rather than grow.
            recent.clear();
        }
        recent.insert(key, (id, Instant::now()));
    }
}
