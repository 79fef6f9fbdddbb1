//! The tests' upstream: a bare repository behind `git http-backend`, served over TCP by a small
//! server of the tests' own that requires HTTP Basic auth with a token, as a forge does.
//!
//! Written apart from the gate's CGI code (buffered, not streamed) so that a defect in one is
//! not mirrored in the other.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;

use crate::git::{git, git_in};

pub const USER: &str = "x-access-token";
pub const TOKEN: &str = "tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
pub const FROZEN: &str = "refs/heads/claude/frozen";

/// A served upstream; lives as long as the runtime that serves it.
#[derive(Debug)]
pub struct Upstream {
    pub root: PathBuf,
    pub addr: SocketAddr,
    /// Requests refused for a missing or wrong credential.
    pub unauthorized: Arc<AtomicUsize>,
}

impl Upstream {
    /// Creates `app.git` under `root`, its `pre-receive` refusing [`FROZEN`], and serves `root`
    /// on the runtime of `handle`.
    pub fn start(root: &Path, handle: &tokio::runtime::Handle) -> Self {
        std::fs::create_dir_all(root).expect("upstream root");
        let repo = root.join("app.git");
        git(&["init", "--quiet", "--bare", "--initial-branch=main"])
            .arg(&repo)
            .status()
            .expect("git init");
        let hook = repo.join("hooks/pre-receive");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = {FROZEN} ]; then\n    echo \"upstream policy: $ref is frozen\" >&2\n    exit 1\n  fi\ndone\n"
            ),
        )
        .expect("hook");
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let listener = handle
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let unauthorized = Arc::new(AtomicUsize::new(0));
        let served_root = root.to_owned();
        let counter = unauthorized.clone();
        handle.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let root = served_root.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(
                            TokioIo::new(stream),
                            service_fn(move |r| serve(root.clone(), counter.clone(), r)),
                        )
                        .await;
                });
            }
        });
        Upstream {
            root: root.to_owned(),
            addr,
            unauthorized,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/app.git", self.addr)
    }

    /// The URL with the credential in it, for the tests' direct pushes and clones (never
    /// given to the gate).
    pub fn authed_url(&self) -> String {
        format!("http://{USER}:{TOKEN}@{}/app.git", self.addr)
    }

    pub fn repo(&self) -> PathBuf {
        self.root.join("app.git")
    }

    /// `git for-each-ref` of the upstream: what the tests compare before and after a push.
    pub fn refs(&self) -> String {
        let out = git_in(
            &self.repo(),
            &["for-each-ref", "--format=%(refname) %(objectname)"],
        )
        .output()
        .expect("for-each-ref");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    pub fn rev(&self, r: &str) -> Option<String> {
        let out = git_in(&self.repo(), &["rev-parse", "--verify", "--quiet", r])
            .output()
            .expect("rev-parse");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(text.to_owned()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

async fn serve(
    root: PathBuf,
    unauthorized: Arc<AtomicUsize>,
    request: Request<Incoming>,
) -> Result<Response<Body>, hyper::Error> {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{TOKEN}"))
    );
    let authorized = request
        .headers()
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorized {
        unauthorized.fetch_add(1, Ordering::SeqCst);
        let mut r = plain(StatusCode::UNAUTHORIZED, "credentials required\n");
        r.headers_mut().insert(
            "www-authenticate",
            "Basic realm=\"upstream\"".parse().expect("header"),
        );
        return Ok(r);
    }
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("REMOTE_USER", USER)
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (var, name) in [
        ("CONTENT_TYPE", "content-type"),
        ("HTTP_CONTENT_ENCODING", "content-encoding"),
        ("HTTP_GIT_PROTOCOL", "git-protocol"),
    ] {
        if let Some(v) = header(name) {
            cmd.env(var, v);
        }
    }
    let mut child = cmd.spawn().expect("http-backend");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let out = child.wait_with_output().await.expect("http-backend output");
    let _ = writer.await;
    let Some(split) = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        })
    else {
        return Ok(plain(StatusCode::BAD_GATEWAY, "no CGI header\n"));
    };
    let head = String::from_utf8_lossy(&out.stdout[..split.0]).into_owned();
    let mut response = Response::new(
        Full::new(Bytes::copy_from_slice(&out.stdout[split.0 + split.1..]))
            .map_err(|never| match never {})
            .boxed(),
    );
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value[..3].parse().expect("status");
            *response.status_mut() = StatusCode::from_u16(code).expect("status");
        } else {
            response.headers_mut().insert(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
    }
    Ok(response)
}
