//! The Unix socket server: turns request lines into store commands and writes the answers.

use std::time::Duration;

use claude_bottle_io::socket;
use claude_bottle_protocol::ProposalId;
use claude_bottle_protocol::wire::{
    ErrorCode, MAX_WAIT_MS, ProposalStatus, Request, Response, WaitUntil,
};
use tokio::net::UnixListener;

use crate::store::{Command, StoreHandle};

/// Accepts connections forever, at most `max_connections` served at once.
pub async fn serve(listener: UnixListener, store: StoreHandle, max_connections: usize) {
    socket::serve(listener, max_connections, move |stream| {
        let store = store.clone();
        async move { socket::answer_requests(stream, |request| execute(request, &store)).await }
    })
    .await;
}

/// Carries out one request (public for the launcher's test that both sides refuse alike).
pub async fn execute(request: Request, store: &StoreHandle) -> Response {
    match request {
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
    }
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
