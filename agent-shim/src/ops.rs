//! The shim's operations, shared by the CLI and the MCP server: submit, wait, status, config.

use std::path::PathBuf;
use std::time::Duration;

use claude_bottle_protocol::wire::{
    ConfigFile, ErrorCode, MAX_WAIT_MS, ProposalStatus, Request, Response, WaitUntil,
};
use claude_bottle_protocol::{ProposalId, ProposalKind};

use crate::client::{self, ClientError};

/// Timeout of a quick call (submit, status, config).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest single long-poll asked for; longer waits are a loop of these.
const WAIT_CHUNK: Duration = Duration::from_millis(MAX_WAIT_MS / 2);

/// Errors of an operation, for people.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("failed to {action}: {message}")]
    Refused {
        action: &'static str,
        code: ErrorCode,
        message: String,
    },
    #[error("failed to {action}: unexpected answer from the server")]
    Unexpected { action: &'static str },
}

fn refused(action: &'static str, r: Response) -> OpError {
    match r {
        Response::Error { code, message } => OpError::Refused {
            action,
            code,
            message,
        },
        _ => OpError::Unexpected { action },
    }
}

/// Where the operations are sent: the shim daemon first, then supervise directly.
#[derive(Debug, Clone)]
pub struct Target {
    pub sockets: Vec<PathBuf>,
}

/// A filed proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    pub id: ProposalId,
    pub duplicate: bool,
}

/// The end of a wait.
#[derive(Debug, Clone)]
pub struct Waited {
    pub status: ProposalStatus,
    pub timed_out: bool,
}

impl Target {
    async fn call(&self, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
        client::call_first(&self.sockets, request, timeout).await
    }

    /// Files a proposal.
    pub async fn submit(
        &self,
        kind: ProposalKind,
        reason: String,
        evidence: Vec<String>,
    ) -> Result<Filed, OpError> {
        let request = Request::Submit {
            kind,
            reason,
            evidence,
        };
        match self.call(&request, CALL_TIMEOUT).await? {
            Response::Submitted { id, duplicate } => Ok(Filed { id, duplicate }),
            other => Err(refused("file the proposal", other)),
        }
    }

    /// One proposal's status, or the newest ones.
    pub async fn status(&self, id: Option<ProposalId>) -> Result<Vec<ProposalStatus>, OpError> {
        match self.call(&Request::Status { id }, CALL_TIMEOUT).await? {
            Response::Status { proposals } => Ok(proposals),
            other => Err(refused("read the status", other)),
        }
    }

    /// The current-config files.
    pub async fn current_config(&self) -> Result<Vec<ConfigFile>, OpError> {
        match self.call(&Request::CurrentConfig, CALL_TIMEOUT).await? {
            Response::CurrentConfig { files } => Ok(files),
            other => Err(refused("read the current config", other)),
        }
    }

    /// Waits up to `timeout` for `id` to reach `until`, in chunks, riding out restarts of the
    /// server (a failed connection is retried until the deadline).
    pub async fn wait(
        &self,
        id: &ProposalId,
        timeout: Duration,
        until: WaitUntil,
    ) -> Result<Waited, OpError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let chunk = left.min(WAIT_CHUNK);
            let request = Request::Wait {
                id: id.clone(),
                timeout_ms: u64::try_from(chunk.as_millis()).unwrap_or(u64::MAX),
                until,
            };
            match self.call(&request, chunk + CALL_TIMEOUT).await {
                Ok(Response::Waited { status, timed_out }) => {
                    if !timed_out || left.is_zero() {
                        return Ok(Waited {
                            status: *status,
                            timed_out,
                        });
                    }
                }
                Ok(other) => return Err(refused("wait for the decision", other)),
                Err(e) if !left.is_zero() => {
                    tracing::debug!(error = %e, "wait interrupted; retrying");
                    tokio::time::sleep(backoff.min(left)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
