//! One request, one answer over a Unix socket, in the newline-delimited JSON of `protocol::wire`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use claude_bottle_protocol::wire::{
    ErrorCode, MAX_RESPONSE_BYTES, Request, RequestMsg, Response, ResponseMsg,
};
use claude_bottle_protocol::{from_json, to_json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Default socket of supervise, as mounted (read-only volume) into the agent.
pub const DEFAULT_SUPERVISE_SOCKET: &str = "/run/claude-bottle/supervise/supervise.sock";
/// Default socket of the shim daemon inside the agent container.
pub const DEFAULT_SHIM_SOCKET: &str = "/tmp/claude-bottle-shim/shim.sock";

/// Why a call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "failed to connect to {path}: {source}\nhint: is the supervise sidecar running (bottle started with `supervise: true`)?"
    )]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to talk to {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read the answer from {path}: {message}")]
    BadAnswer { path: PathBuf, message: String },
    #[error("failed to get an answer from {path} within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
}

impl ClientError {
    /// Whether the server may not have received the request at all (safe to resend).
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Connect { .. })
    }

    /// The error as a wire answer, for the daemon to hand back to its own client.
    pub fn to_response(&self) -> Response {
        Response::Error {
            code: ErrorCode::Unavailable,
            message: self.to_string(),
        }
    }
}

/// Sends `request` on a fresh connection to `socket` and returns the answer, within `timeout`.
pub async fn call(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    tokio::time::timeout(timeout, call_inner(socket, request))
        .await
        .map_err(|_| ClientError::Timeout {
            path: socket.to_owned(),
            timeout,
        })?
}

async fn call_inner(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    let io_err = |source| ClientError::Io {
        path: socket.to_owned(),
        source,
    };
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ClientError::Connect {
            path: socket.to_owned(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut line = to_json(&RequestMsg::new(request.clone()));
    line.push(b'\n');
    write.write_all(&line).await.map_err(io_err)?;
    let mut answer = Vec::new();
    BufReader::new(read)
        .take(MAX_RESPONSE_BYTES as u64 + 1)
        .read_until(b'\n', &mut answer)
        .await
        .map_err(io_err)?;
    if answer.last() != Some(&b'\n') {
        return Err(ClientError::BadAnswer {
            path: socket.to_owned(),
            message: if answer.is_empty() {
                "the connection closed without an answer".into()
            } else {
                "the answer was cut short or too long".into()
            },
        });
    }
    let msg: ResponseMsg = from_json(&answer).map_err(|e| ClientError::BadAnswer {
        path: socket.to_owned(),
        message: e.to_string(),
    })?;
    Ok(msg.response)
}

/// Calls the first socket of `sockets` that accepts a connection (daemon first, then
/// supervise directly, so the CLI still works when no daemon runs).
pub async fn call_first(
    sockets: &[PathBuf],
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let mut last = None;
    for socket in sockets {
        match call(socket, request, timeout).await {
            Err(e) if e.is_connect() => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Connect {
        path: PathBuf::new(),
        source: io::Error::new(io::ErrorKind::NotFound, "no socket configured"),
    }))
}
