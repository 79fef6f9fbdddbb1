//! The Unix socket a sidecar serves another uid on, the bounded accept loop every server of the
//! sidecars runs, and the request-line framing supervise and the shim daemon both answer.

use std::io;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use claude_bottle_protocol::wire::{
    ErrorCode, MAX_LINE_BYTES, Request, RequestMsg, Response, ResponseMsg,
};
use claude_bottle_protocol::{from_json, to_json};
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, BufReader,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::fs::FsError;

/// How long the loop rests after a failed accept (out of file descriptors, say) before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// How long a connection may sit between requests before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Binds a listening socket at `path` that any uid may connect to (mode 0666: the agent runs as
/// another uid than the sidecar that creates it), creating its folder. A stale socket from a
/// previous run is replaced; anything else in the way is refused.
///
/// The socket appears at `path` only once its mode is 0666: it is bound under a temporary name
/// beside it, given its mode, then renamed into place. `bind` creates it with the umask's mode, and
/// a client of another uid connecting in that moment got `EACCES`, which it rightly takes as final
/// (seen under load: the agent's first request through the relay failed), where "not there yet"
/// (`ENOENT`, `ECONNREFUSED`) is waited out.
pub fn bind_world(path: &Path) -> Result<UnixListener, FsError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(FsError::io("remove the stale socket", path))?;
        }
        Ok(_) => {
            return Err(FsError::NotASocket {
                path: path.to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(FsError::io("stat", path)(e)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(FsError::io("create the socket folder", parent))?;
    }
    let name = path
        .file_name()
        .map_or_else(|| "socket".into(), |n| n.to_string_lossy().into_owned());
    let temporary = path.with_file_name(format!(".{name}.{}.binding", std::process::id()));
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(FsError::io("remove the stale socket", &temporary)(e)),
    }
    let listener = UnixListener::bind(&temporary).map_err(FsError::io("bind", &temporary))?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o666))
        .map_err(FsError::io("set the mode of", &temporary))
        .and_then(|()| std::fs::rename(&temporary, path).map_err(FsError::io("rename", path)));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    Ok(listener)
}

/// A listener [`serve`] takes connections from.
pub trait Accept {
    /// One accepted connection.
    type Conn: Send + 'static;
    /// Waits for the next connection.
    fn accept(&self) -> impl Future<Output = io::Result<Self::Conn>> + Send;
}

impl Accept for UnixListener {
    type Conn = UnixStream;

    async fn accept(&self) -> io::Result<UnixStream> {
        UnixListener::accept(self).await.map(|(stream, _)| stream)
    }
}

/// Accepts forever, each connection handled by `handle` on a task of its own, at most
/// `max_connections` at once. A handler's error only ends its connection (logged at debug).
pub async fn serve<L, F, Fut>(listener: L, max_connections: usize, mut handle: F)
where
    L: Accept,
    F: FnMut(L::Conn) -> Fut,
    Fut: Future<Output = io::Result<()>> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        // Taking the permit before accepting leaves excess clients in the kernel backlog.
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let conn = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "failed to accept a connection");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let connection = handle(conn);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

/// Answers the request lines of one connection in order, one response line each, until the peer
/// closes it, sits idle between requests for 15 minutes, or sends a line longer than
/// [`MAX_LINE_BYTES`] (answered, then closed: the rest of such a line cannot be resynchronised).
/// Blank lines are skipped; a line that does not parse is answered with the parse error.
pub async fn answer_requests<F, Fut>(stream: UnixStream, mut answer: F) -> io::Result<()>
where
    F: FnMut(Request) -> Fut,
    Fut: Future<Output = Response>,
{
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
            Line::Request(bytes) => match from_json::<RequestMsg>(&bytes) {
                Ok(msg) => (ResponseMsg::new(answer(msg.request).await), false),
                Err(e) => (
                    ResponseMsg::error(
                        ErrorCode::for_parse_error(&e),
                        format!("failed to read the request: {e}"),
                    ),
                    false,
                ),
            },
        };
        let mut out = to_json(&response);
        out.push(b'\n');
        write.write_all(&out).await?;
        if close {
            return Ok(());
        }
    }
}

/// What reading one line produced.
#[derive(Debug)]
enum Line {
    /// A complete request (newline stripped).
    Request(Vec<u8>),
    /// The peer closed the connection.
    Eof,
    /// More than the limit without a newline.
    TooLong,
}

/// Reads one newline-terminated line of at most `limit` bytes, never buffering more.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    limit: usize,
) -> io::Result<Line> {
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_anything_else_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run").join("s.sock");
        drop(bind_world(&path).expect("first bind"));
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        drop(bind_world(&path).expect("a stale socket is replaced"));
        // Nothing but the socket is left beside it (the temporary name is renamed away).
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["s.sock"]);
        let file = dir.path().join("file");
        std::fs::write(&file, b"keep").expect("write");
        assert!(matches!(bind_world(&file), Err(FsError::NotASocket { .. })));
        assert_eq!(std::fs::read(&file).expect("read"), b"keep");
    }

    #[tokio::test]
    async fn the_socket_never_shows_at_its_path_with_another_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (path, done) = (path.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(m) = std::fs::symlink_metadata(&path) {
                        seen.insert(m.permissions().mode() & 0o777);
                    }
                }
                seen
            })
        };
        for _ in 0..300 {
            drop(bind_world(&path).expect("bind"));
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = watcher.join().expect("watcher");
        assert!(
            seen.iter().all(|m| *m == 0o666),
            "modes seen: {:?}",
            seen.iter().map(|m| format!("{m:o}")).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let listener = bind_world(&path).expect("bind");
        tokio::spawn(serve(listener, 1, |mut stream: UnixStream| async move {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await?;
            stream.write_all(&byte).await
        }));
        let mut first = UnixStream::connect(&path).await.expect("first");
        let mut second = UnixStream::connect(&path)
            .await
            .expect("second, in the backlog");
        second.write_all(b"2").await.expect("write");
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(200), second.read_exact(&mut byte));
        assert!(
            early.await.is_err(),
            "the second waits while the first is served"
        );
        first.write_all(b"1").await.expect("write");
        first.read_exact(&mut byte).await.expect("first answered");
        assert_eq!(&byte, b"1");
        second.read_exact(&mut byte).await.expect("second answered");
        assert_eq!(&byte, b"2");
    }

    #[tokio::test]
    async fn request_lines_are_answered_in_order_and_an_oversized_one_closes() {
        let (client, server) = UnixStream::pair().expect("pair");
        let served = tokio::spawn(answer_requests(server, |_request: Request| async {
            Response::CurrentConfig { files: Vec::new() }
        }));
        let (read, mut write) = client.into_split();
        let mut read = BufReader::new(read);
        let mut request = to_json(&RequestMsg::new(Request::CurrentConfig));
        request.push(b'\n');
        write.write_all(b"\n   \n").await.expect("blank lines");
        write.write_all(&request).await.expect("request");
        write.write_all(b"{not json\n").await.expect("garbage");
        write
            .write_all(&vec![b'x'; MAX_LINE_BYTES + 1])
            .await
            .expect("oversized");
        let mut answers = Vec::new();
        let mut line = String::new();
        while read.read_line(&mut line).await.expect("read") > 0 {
            answers.push(std::mem::take(&mut line));
        }
        served.await.expect("task").expect("served");
        assert_eq!(answers.len(), 3, "{answers:?}");
        assert!(answers[0].contains("current_config"), "{}", answers[0]);
        assert!(
            answers[1].contains("failed to read the request"),
            "{}",
            answers[1]
        );
        assert!(answers[2].contains("longer than"), "{}", answers[2]);
    }
}
