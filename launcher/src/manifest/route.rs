//! Egress routes: which hosts the agent may reach, and which credential the egress-proxy injects.

use std::fmt;
use std::path::PathBuf;

/// One `egress_proxy.routes` entry after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// A bare, lowercase host name.
    pub host: String,
    /// Optional path prefix (starts with `/`, no `..`); the credential is injected only under it.
    pub path: Option<String>,
    /// `Some` for a credentialed route; `None` for a bare pass.
    pub auth: Option<RouteAuth>,
    /// True when the route came from the agent's default allowlist rather than the bottle.
    pub default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAuth {
    pub scheme: AuthScheme,
    pub token_ref: TokenRef,
}

/// How the egress-proxy presents the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>`
    Bearer,
    /// `Authorization: token <token>` (GitHub style)
    Token,
    /// `Authorization: Basic <token>` (the token is `user:password`, base64-encoded by the proxy)
    Basic,
    /// `<Name>: <token>`
    Header(String),
}

impl AuthScheme {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "bearer" => Ok(Self::Bearer),
            "token" => Ok(Self::Token),
            "basic" => Ok(Self::Basic),
            _ => match s.strip_prefix("header:") {
                Some(name) if is_http_token(name) => Ok(Self::Header(name.to_string())),
                Some(name) => Err(format!("{name:?} is not a valid HTTP header name")),
                None => Err(format!("unknown auth scheme {s:?}")),
            },
        }
    }
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer => f.write_str("bearer"),
            Self::Token => f.write_str("token"),
            Self::Basic => f.write_str("basic"),
            Self::Header(n) => write!(f, "header:{n}"),
        }
    }
}

/// Where a credential comes from on the host. The reference is shown; the value never is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TokenRef {
    /// `env:NAME`: the launcher's environment.
    Env(String),
    /// `file:PATH`: read from disk at launch (`~/` expanded).
    File(PathBuf),
}

impl TokenRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(name) = s.strip_prefix("env:") {
            if is_env_name(name) {
                return Ok(Self::Env(name.to_string()));
            }
            return Err(format!("{name:?} is not a valid environment variable name"));
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file: needs a path".to_string());
            }
            let expanded = match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
                (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
                _ => PathBuf::from(path),
            };
            return Ok(Self::File(expanded));
        }
        Err(format!("unsupported token reference {s:?}"))
    }
}

impl fmt::Display for TokenRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(n) => write!(f, "env:{n}"),
            Self::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

pub use claude_bottle_protocol::text::is_env_name;

/// RFC 9110 token characters.
fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Check that `host` is a bare host name: no scheme, port, path, user or wildcard. Returns the
/// lowercase form.
pub fn check_host(host: &str) -> Result<String, String> {
    let h = host.trim();
    if h.is_empty() {
        return Err("host is empty".to_string());
    }
    if h.contains("://") {
        return Err(format!("{h:?} has a scheme; write the bare host name"));
    }
    if h.contains('/') {
        return Err(format!("{h:?} has a path; put the path in `path:`"));
    }
    if h.contains(':') {
        return Err(format!("{h:?} has a port; routes match the host name only"));
    }
    if h.contains('@') {
        return Err(format!("{h:?} has user info; write the bare host name"));
    }
    let lower = h.to_ascii_lowercase();
    let labels_ok = lower.len() <= 253
        && lower.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !labels_ok {
        return Err(format!("{h:?} is not a valid host name"));
    }
    Ok(lower)
}

/// Check a route path prefix: starts with `/`, no `..` segment, no query or fragment.
pub fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} does not start with '/'"));
    }
    if path.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(format!("{path:?} contains a '.' or '..' segment"));
    }
    if path.contains(['?', '#']) {
        return Err(format!("{path:?} contains a query or fragment"));
    }
    if path.contains('%') {
        return Err(format!(
            "{path:?} is percent-encoded; write the decoded path"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            check_host("API.GitHub.com").as_deref(),
            Ok("api.github.com")
        );
        for bad in [
            "https://x.com",
            "x.com:443",
            "x.com/a",
            "u@x.com",
            "*.x.com",
            "-a.com",
            "a..b",
            "",
        ] {
            assert!(check_host(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn paths() {
        assert!(check_path("/repos/acme/").is_ok());
        for bad in ["repos", "/a/../b", "/a/./b", "/a?x=1", "/a%2e%2e/"] {
            assert!(check_path(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn schemes_and_refs() {
        assert_eq!(
            AuthScheme::parse("header:X-Api-Key"),
            Ok(AuthScheme::Header("X-Api-Key".into()))
        );
        assert!(AuthScheme::parse("header:bad name").is_err());
        assert!(AuthScheme::parse("digest").is_err());
        assert_eq!(
            TokenRef::parse("env:GH_TOKEN"),
            Ok(TokenRef::Env("GH_TOKEN".into()))
        );
        assert_eq!(
            TokenRef::parse("file:/run/t"),
            Ok(TokenRef::File("/run/t".into()))
        );
        assert!(TokenRef::parse("env:1BAD").is_err());
        assert!(TokenRef::parse("vault:x").is_err());
        assert_eq!(AuthScheme::Header("X".into()).to_string(), "header:X");
    }
}
