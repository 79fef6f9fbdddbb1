//! The Unix socket server: reads request lines, turns them into store commands, writes answers.

use std::sync::Arc;
use std::time::Duration;

use claude_bottle_protocol::wire::{
    ErrorCode, MAX_LINE_BYTES, MAX_WAIT_MS, ProposalStatus, Request, RequestMsg, Response,
    ResponseMsg, WaitUntil,
};
use claude_bottle_protocol::{ProposalId, from_json, to_json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::store::{Command, StoreHandle};

/// How long a connection may sit between requests before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Accepts connections forever, at most `max_connections` served at once.
pub async fn serve(listener: UnixListener, store: StoreHandle, max_connections: usize) {
    let limit = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let store = store.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, &store).await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

/// What reading one line produced.
#[derive(Debug)]
pub enum Line {
    /// A complete request (newline stripped).
    Request(Vec<u8>),
    /// The peer closed the connection.
    Eof,
    /// More than the limit without a newline.
    TooLong,
}

/// Reads one newline-terminated line of at most `limit` bytes, never buffering more.
pub async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    limit: usize,
) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let n = reader
        .take(limit as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > limit {
        return Ok(Line::TooLong);
    }
    Ok(Line::Request(buf))
}

async fn connection(stream: UnixStream, store: &StoreHandle) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let line = match tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut reader, MAX_LINE_BYTES))
            .await
        {
            Ok(line) => line?,
            Err(_) => return Ok(()),
        };
        let (response, close) = match line {
            Line::Eof => return Ok(()),
            Line::TooLong => (
                ResponseMsg::error(
                    ErrorCode::TooLarge,
                    format!("failed to read the request: longer than {MAX_LINE_BYTES} bytes"),
                ),
                true,
            ),
            Line::Request(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
            Line::Request(bytes) => (dispatch(&bytes, store).await, false),
        };
        let mut out = to_json(&response);
        out.push(b'\n');
        write.write_all(&out).await?;
        if close {
            // The rest of an oversized line cannot be resynchronised; drop the connection.
            return Ok(());
        }
    }
}

/// Parses one request line and carries it out.
pub async fn dispatch(line: &[u8], store: &StoreHandle) -> ResponseMsg {
    let msg: RequestMsg = match from_json(line) {
        Ok(m) => m,
        Err(e) => {
            return ResponseMsg::error(
                ErrorCode::for_parse_error(&e),
                format!("failed to read the request: {e}"),
            );
        }
    };
    let response = match msg.request {
        Request::Submit {
            kind,
            reason,
            evidence,
        } => {
            store
                .call(|reply| Command::Submit {
                    kind,
                    reason,
                    evidence,
                    reply,
                })
                .await
        }
        Request::Status { id } => store.call(|reply| Command::Status { id, reply }).await,
        Request::CurrentConfig => store.call(|reply| Command::CurrentConfig { reply }).await,
        Request::Wait {
            id,
            timeout_ms,
            until,
        } => {
            wait(
                store,
                id,
                Duration::from_millis(timeout_ms.min(MAX_WAIT_MS)),
                until,
            )
            .await
        }
    };
    ResponseMsg::new(response)
}

async fn status_of(store: &StoreHandle, id: &ProposalId) -> Result<ProposalStatus, Response> {
    let id = id.clone();
    match store
        .call(|reply| Command::Status {
            id: Some(id),
            reply,
        })
        .await
    {
        Response::Status { mut proposals } if proposals.len() == 1 => Ok(proposals.remove(0)),
        other @ Response::Error { .. } => Err(other),
        _ => Err(Response::Error {
            code: ErrorCode::Internal,
            message: "failed to read the proposal's status: unexpected answer".into(),
        }),
    }
}

/// Long poll: re-reads the status after every change the store announces, until `until`
/// holds or `timeout` passes.
async fn wait(
    store: &StoreHandle,
    id: ProposalId,
    timeout: Duration,
    until: WaitUntil,
) -> Response {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changes = store.changes();
    loop {
        // Marking the current generation seen before reading the status closes the race
        // between the read and a change landing right after it.
        changes.borrow_and_update();
        let status = match status_of(store, &id).await {
            Ok(s) => s,
            Err(e) => return e,
        };
        if status.reached(until) {
            return Response::Waited {
                status: Box::new(status),
                timed_out: false,
            };
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                return Response::Waited {
                    status: Box::new(status),
                    timed_out: true,
                };
            }
        }
    }
}
