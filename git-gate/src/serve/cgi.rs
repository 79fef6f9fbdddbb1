//! One HTTP request answered by the real `git http-backend`, run as a CGI program
//! (docs/git-gate.md, "Serving: git http-backend as CGI"). Both bodies are streamed: the
//! request's (de-chunked by hyper) into the program's stdin, closed at its end; the program's
//! stdout, after its CGI header, into the response.

use std::path::Path;
use std::process::Stdio;

use futures_util::TryStreamExt as _;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, BufReader,
};
use tokio_util::io::ReaderStream;

use super::http::{Body, text};

/// Largest CGI header accepted from http-backend (it writes a few short lines).
const MAX_CGI_HEADER: usize = 64 * 1024;

/// Runs `git http-backend` for `request`, whose path names a mirror under `root`.
pub async fn run(root: &Path, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", parts.uri.path())
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        // receive-pack is served to an authenticated user; the agent is the only client.
        .env("REMOTE_USER", "agent")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env_remove("GIT_DIR")
        .env_remove("CONTENT_LENGTH")
        .env_remove("CONTENT_TYPE")
        .env_remove("HTTP_CONTENT_ENCODING")
        .env_remove("HTTP_GIT_PROTOCOL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A client that goes away ends the request, and with it the backend.
        .kill_on_drop(true);
    for (var, name) in [
        ("CONTENT_TYPE", "content-type"),
        // Without it http-backend reads the body to its end: the chunked case.
        ("CONTENT_LENGTH", "content-length"),
        ("HTTP_CONTENT_ENCODING", "content-encoding"),
        // Protocol v2: dropped, git would silently fall back to v0.
        ("HTTP_GIT_PROTOCOL", "git-protocol"),
    ] {
        if let Some(value) = header(name) {
            cmd.env(var, value);
        }
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the gate could not run git http-backend: {e}\n"),
            );
        }
    };
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the gate could not connect to git http-backend\n".to_owned(),
        );
    };
    tokio::spawn(async move {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data()
                && stdin.write_all(&data).await.is_err()
            {
                break;
            }
        }
        // Dropping stdin closes it: the end of a body without a length.
    });
    tokio::spawn(log_stderr(stderr, parts.uri.path().to_owned()));
    let mut stdout = BufReader::new(stdout);
    let response = match read_cgi_header(&mut stdout).await {
        Ok(head) => head,
        Err(e) => {
            let status = child.wait().await;
            tracing::warn!(path = parts.uri.path(), ?status, "git http-backend: {e}");
            return text(
                StatusCode::BAD_GATEWAY,
                format!("git http-backend failed in the gate: {e}\n"),
            );
        }
    };
    let path = parts.uri.path().to_owned();
    let stream = ReaderStream::new(stdout).map_ok(Frame::data);
    let body = StreamBody::new(stream).boxed();
    // Reaped when the body ends; killed if the response is dropped early (kill_on_drop).
    tokio::spawn(async move {
        match child.wait().await {
            Ok(status) if !status.success() => {
                tracing::warn!(path, %status, "git http-backend exited with an error");
            }
            Err(e) => tracing::warn!(path, error = %e, "failed to wait for git http-backend"),
            Ok(_) => {}
        }
    });
    let mut builder = Response::builder().status(response.status);
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    builder.body(body).unwrap_or_else(|e| {
        text(
            StatusCode::BAD_GATEWAY,
            format!("the gate could not build the response: {e}\n"),
        )
    })
}

/// The status and headers of a CGI answer.
#[derive(Debug)]
struct CgiHead {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Reads the CGI header (lines up to a blank one): `Status: 404 Not Found` becomes the status
/// (default 200), every other line a response header.
async fn read_cgi_header(stdout: &mut (impl AsyncBufRead + Unpin)) -> Result<CgiHead, String> {
    let mut head = CgiHead {
        status: StatusCode::OK,
        headers: Vec::new(),
    };
    let mut read = 0;
    loop {
        let mut line = Vec::new();
        let n = (&mut *stdout)
            .take((MAX_CGI_HEADER - read) as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("failed to read its answer: {e}"))?;
        read += n;
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(if read > MAX_CGI_HEADER {
                "its header is too long".to_owned()
            } else {
                "it ended before its header did".to_owned()
            });
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Ok(head);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("not a header line: {}", escape(line)))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or_default();
            head.status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| format!("not a status: {}", escape(value)))?;
        } else {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("not a header name: {}", escape(name)))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("not a header value: {}", escape(value)))?;
            head.headers.push((name, value));
        }
    }
}

async fn log_stderr(stderr: impl AsyncRead + Unpin, path: String) {
    let mut lines = BufReader::new(stderr).lines();
    let mut logged = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        // Bounded: a misbehaving backend cannot fill the gate's log.
        if logged < 50 {
            tracing::warn!(path, "git http-backend: {}", escape(&line));
            logged += 1;
        }
    }
}

fn escape(s: &str) -> String {
    claude_bottle_protocol::text::escape_line(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cgi_header_gives_the_status_and_headers_and_leaves_the_body() {
        let mut out = BufReader::new(
            &b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nExpires: Fri, 01 Jan 1980 00:00:00 GMT\r\n\r\nbody"[..],
        );
        let head = read_cgi_header(&mut out).await.expect("header");
        assert_eq!(head.status, StatusCode::NOT_FOUND);
        assert_eq!(head.headers.len(), 2);
        assert_eq!(head.headers[0].0, "content-type");
        let mut rest = String::new();
        out.read_to_string(&mut rest).await.expect("rest");
        assert_eq!(rest, "body");
    }

    #[tokio::test]
    async fn a_broken_cgi_header_is_an_error() {
        for bad in [
            &b"Content-Type: x\r\n"[..],
            b"no colon\r\n\r\n",
            b"Status: abc\r\n\r\n",
        ] {
            assert!(read_cgi_header(&mut BufReader::new(bad)).await.is_err());
        }
        let long = vec![b'x'; MAX_CGI_HEADER + 10];
        let err = read_cgi_header(&mut BufReader::new(&long[..]))
            .await
            .expect_err("too long");
        assert!(err.contains("too long"), "{err}");
    }
}
