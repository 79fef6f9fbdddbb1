//! The gate's HTTP: which requests reach `git http-backend`, and the plain-text answers the
//! gate gives itself (git shows a `text/plain` error body to the user as `remote: …` lines).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::Gate;
use super::cgi;

/// Every response body of the gate.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// What a request asks of a served remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /<name>.git/info/refs?service=git-upload-pack|git-receive-pack`: the ref
    /// advertisement that starts every fetch and push.
    Advertise { remote: &'a str },
    /// `POST /<name>.git/git-upload-pack` or `git-receive-pack`.
    Rpc { remote: &'a str },
    /// A path under a served remote that the gate does not serve (the dumb protocol, say).
    NotSmart { remote: &'a str },
    /// Anything else.
    Unknown,
}

/// Sorts a request by method, path and query. Only names of `names` are served.
pub fn route<'a>(method: &Method, path: &str, query: Option<&str>, names: &[&'a str]) -> Route<'a> {
    let Some(rest) = path.strip_prefix('/') else {
        return Route::Unknown;
    };
    let Some((repo, rest)) = rest.split_once('/') else {
        return Route::Unknown;
    };
    let Some(remote) = repo
        .strip_suffix(".git")
        .and_then(|n| names.iter().find(|m| **m == n).copied())
    else {
        return Route::Unknown;
    };
    let service = query
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("service="));
    let smart_service = matches!(service, Some("git-upload-pack" | "git-receive-pack"));
    match (method, rest) {
        (&Method::GET, "info/refs") if smart_service => Route::Advertise { remote },
        (&Method::POST, "git-upload-pack" | "git-receive-pack") => Route::Rpc { remote },
        _ => Route::NotSmart { remote },
    }
}

/// Answers one request.
pub async fn handle(
    gate: Arc<Gate>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let arrived = Instant::now();
    let names: Vec<&str> = gate
        .mirrors
        .iter()
        .map(|m| m.remote.name.as_str())
        .collect();
    let route = route(
        request.method(),
        request.uri().path(),
        request.uri().query(),
        &names,
    );
    tracing::debug!(method = %request.method(), path = request.uri().path(), ?route, "request");
    let response = match route {
        Route::Unknown => text(StatusCode::NOT_FOUND, gate.served_list()),
        Route::NotSmart { remote } => text(
            StatusCode::NOT_FOUND,
            format!("the gate serves {remote} over git's smart HTTP protocol only\n"),
        ),
        Route::Advertise { remote } => {
            let Some(mirror) = gate.mirror(remote) else {
                return Ok(text(StatusCode::NOT_FOUND, gate.served_list()));
            };
            // Fetches and pushes alike start from the upstream's current refs: a fetch gets
            // what is there now, and a push is decided against what it will update.
            match mirror.refresh(arrived).await {
                Ok(()) => cgi::run(&gate.root, request).await,
                Err(reason) => text(StatusCode::BAD_GATEWAY, format!("{reason}\n")),
            }
        }
        Route::Rpc { .. } => cgi::run(&gate.root, request).await,
    };
    Ok(response)
}

/// A `text/plain` answer of the gate's own.
pub fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_smart_paths_of_served_remotes_are_routed() {
        let names = ["origin", "lib.x"];
        let get = Method::GET;
        let post = Method::POST;
        let up = Some("service=git-upload-pack");
        assert_eq!(
            route(&get, "/origin.git/info/refs", up, &names),
            Route::Advertise { remote: "origin" }
        );
        assert_eq!(
            route(
                &get,
                "/lib.x.git/info/refs",
                Some("x=1&service=git-receive-pack"),
                &names
            ),
            Route::Advertise { remote: "lib.x" }
        );
        assert_eq!(
            route(&post, "/origin.git/git-receive-pack", None, &names),
            Route::Rpc { remote: "origin" }
        );
        for (method, path, query) in [
            (&get, "/origin.git/info/refs", None),
            (
                &get,
                "/origin.git/info/refs",
                Some("service=git-upload-archive"),
            ),
            (&get, "/origin.git/HEAD", None),
            (&get, "/origin.git/objects/info/packs", None),
            (&get, "/origin.git/git-upload-pack", None),
            (&post, "/origin.git/info/refs", up),
        ] {
            assert_eq!(
                route(method, path, query, &names),
                Route::NotSmart { remote: "origin" },
                "{method} {path}"
            );
        }
        for path in [
            "/other.git/info/refs",
            "/origin/info/refs",
            "/origin.git",
            "origin.git/info/refs",
            "/../origin.git/info/refs",
            "/origin.gitle.git/info/refs",
            "/",
        ] {
            assert_eq!(route(&get, path, up, &names), Route::Unknown, "{path}");
        }
    }
}
