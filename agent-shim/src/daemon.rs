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

use claude_bottle_protocol::wire::{
    ErrorCode, MAX_LINE_BYTES, MAX_WAIT_MS, Request, RequestMsg, Response, ResponseMsg,
};
use claude_bottle_protocol::{ProposalId, ProposalKind, from_json, to_json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;

use crate::client;
use crate::relay::{RelayError, bind_unix_world};

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
pub async fn run(cfg: DaemonConfig) -> Result<(), RelayError> {
    let listener = bind_unix_world(&cfg.listen)?;
    tracing::info!(listen = %cfg.listen.display(), supervise = %cfg.supervise.display(), "shim daemon listening");
    let shared = Arc::new(Shared {
        cfg,
        recent: Mutex::new(HashMap::new()),
    });
    let limit = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return Ok(());
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, &shared).await {
                tracing::debug!(error = %e, "client connection ended");
            }
        });
    }
}

async fn connection(stream: UnixStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let too_long = line.last() != Some(&b'\n') && line.len() > MAX_LINE_BYTES;
        let response = if too_long {
            ResponseMsg::error(ErrorCode::TooLarge, "failed to read the request: too long")
        } else {
            match from_json::<RequestMsg>(&line) {
                Ok(msg) => ResponseMsg::new(forward(shared, msg.request).await),
                Err(e) => ResponseMsg::error(
                    ErrorCode::for_parse_error(&e),
                    format!("failed to read the request: {e}"),
                ),
            }
        };
        let mut out = to_json(&response);
        out.push(b'\n');
        write.write_all(&out).await?;
        if too_long {
            return Ok(());
        }
    }
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
    let mut backoff = Duration::from_millis(50);
    let response = loop {
        match client::call(&shared.cfg.supervise, &request, timeout).await {
            Ok(r) => break r,
            // Nothing reached supervise, or the connection broke: resending is safe for every
            // request (submissions are merged by supervise).
            Err(e) if Instant::now() + backoff < give_up => {
                tracing::debug!(error = %e, "supervise unreachable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => break e.to_response(),
        }
    };
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
