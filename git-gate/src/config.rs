//! The gate's configuration file: the remotes it serves, how it reaches each upstream, and whom
//! it asks for the credential. It holds no secret: a token is named by the environment variable
//! that carries it, a key by its file.
//!
//! ```toml
//! version = 1
//! proxy = "http://git-pipelock:8888"          # optional: the gate's only way out
//! known_hosts = "/etc/claude-bottle/git-gate/known_hosts"   # needed by ssh upstreams
//!
//! [[remote]]
//! name = "origin"
//! upstream = "https://github.com/acme/app.git"
//! push = ["claude/*"]
//! token_env = "GIT_GATE_TOKEN_ORIGIN"          # optional for https
//! username = "x-access-token"                  # optional, this is the default
//!
//! [[remote]]
//! name = "lib"
//! upstream = "git@github.com:acme/lib.git"
//! ssh_key = "/run/claude-bottle/keys/lib"      # required for ssh
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use claude_bottle_protocol::git_policy::PushPolicy;
use claude_bottle_protocol::git_policy::upstream::is_ssh_url;
use serde::Deserialize;

/// The only version of the file this gate reads.
pub const CONFIG_VERSION: u32 = 1;
/// The username sent with a token when the remote names none (GitHub's convention; GitLab and
/// Gitea accept any name with a token).
pub const DEFAULT_USERNAME: &str = "x-access-token";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: u32,
    proxy: Option<String>,
    known_hosts: Option<PathBuf>,
    #[serde(default, rename = "remote")]
    remotes: Vec<RawRemote>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    name: String,
    upstream: String,
    #[serde(default)]
    push: Vec<String>,
    token_env: Option<String>,
    username: Option<String>,
    ssh_key: Option<PathBuf>,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub proxy: Option<Proxy>,
    pub remotes: Vec<Remote>,
}

/// One served remote: `/<name>.git` on the gate's socket.
#[derive(Debug, Clone)]
pub struct Remote {
    pub name: String,
    pub upstream: Upstream,
    pub policy: PushPolicy,
}

/// Where a remote's upstream is and how the gate proves who it is there.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// `https://…` (or `http://…`, for servers on a private network such as the tests').
    Http {
        url: String,
        /// `scheme://host[:port]`: the credential helper answers for this origin only.
        origin: String,
        token: Option<Token>,
    },
    /// `ssh://[user@]host[:port]/path` or scp-like `[user@]host:path`.
    Ssh {
        url: String,
        key: PathBuf,
        known_hosts: PathBuf,
    },
}

impl Upstream {
    /// The URL as configured (never with a credential in it).
    pub fn url(&self) -> &str {
        match self {
            Upstream::Http { url, .. } | Upstream::Ssh { url, .. } => url,
        }
    }
}

/// An HTTPS credential: the environment variable of the gate that holds the token, and the
/// username sent with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub env: String,
    pub username: String,
}

/// The HTTP proxy the gate's git goes through (`http://host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
}

impl Proxy {
    /// Parse `http://host:port`, `host:port` or `[v6]:port`; the port is required (no
    /// guessing which one pipelock listens on).
    pub fn parse(s: &str) -> Result<Self, String> {
        let rest = s.strip_prefix("http://").unwrap_or(s);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains("://") {
            return Err("only an http:// proxy is supported".to_owned());
        }
        if rest.contains(['/', '@', '?', '#']) || rest.chars().any(char::is_whitespace) {
            return Err("write the proxy as http://host:port".to_owned());
        }
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| "the proxy needs a port (http://host:port)".to_owned())?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{port:?} is not a port"))?;
        if host.is_empty() {
            return Err("the proxy needs a host".to_owned());
        }
        Ok(Proxy {
            host: host.to_owned(),
            port,
        })
    }

    /// `host:port`, bracketing an IPv6 address: what a CONNECT line and `connect` take.
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }

    /// `http://host:port`: what git's `http.proxy` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.authority())
    }
}

/// `host:port`, with an IPv6 address in brackets.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{}", Problems(.problems, .path))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One problem of a parsed file, at its key (`remote[0].upstream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

struct Problems<'a>(&'a [Problem], &'a Path);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}: {}", self.1.display(), p.key, p.message)?;
        }
        Ok(())
    }
}

impl Config {
    /// Read and check the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ParseError::Toml(message) => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            ParseError::Invalid(problems) => ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            },
        })
    }

    /// Check a file's text, collecting every problem.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ParseError::Toml(e.to_string().trim().to_owned()))?;
        let mut problems = Vec::new();
        let mut problem = |key: String, message: String| problems.push(Problem { key, message });
        if raw.version != CONFIG_VERSION {
            problem(
                "version".to_owned(),
                format!(
                    "version {} is not supported (this gate reads version {CONFIG_VERSION})",
                    raw.version
                ),
            );
        }
        let proxy = raw.proxy.as_deref().and_then(|p| match Proxy::parse(p) {
            Ok(proxy) => Some(proxy),
            Err(e) => {
                problem("proxy".to_owned(), e);
                None
            }
        });
        let mut remotes: Vec<Remote> = Vec::new();
        for (i, r) in raw.remotes.iter().enumerate() {
            let key = format!("remote[{i}]");
            if !is_remote_name(&r.name) {
                problem(
                    format!("{key}.name"),
                    format!(
                        "{:?} is not a remote name: use letters, digits, '-', '_' or '.', not starting with '.'",
                        r.name
                    ),
                );
            } else if raw.remotes[..i].iter().any(|o| o.name == r.name) {
                problem(
                    format!("{key}.name"),
                    format!("remote {:?} is defined twice", r.name),
                );
            }
            let policy = match PushPolicy::parse(&r.push) {
                Ok(policy) => Some(policy),
                Err(errors) => {
                    for p in errors {
                        problem(format!("{key}.push[{}]", p.index), p.error.to_string());
                    }
                    None
                }
            };
            let upstream = match upstream(r, raw.known_hosts.as_deref()) {
                Ok(u) => Some(u),
                Err(found) => {
                    for (field, message) in found {
                        problem(format!("{key}.{field}"), message);
                    }
                    None
                }
            };
            if let (Some(upstream), Some(policy)) = (upstream, policy) {
                remotes.push(Remote {
                    name: r.name.clone(),
                    upstream,
                    policy,
                });
            }
        }
        if problems.is_empty() {
            Ok(Config { proxy, remotes })
        } else {
            Err(ParseError::Invalid(problems))
        }
    }

    pub fn remote(&self, name: &str) -> Option<&Remote> {
        self.remotes.iter().find(|r| r.name == name)
    }
}

/// Why a file's text is not a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Toml(String),
    Invalid(Vec<Problem>),
}

pub use claude_bottle_protocol::git_policy::upstream::is_remote_name;

fn upstream(
    r: &RawRemote,
    known_hosts: Option<&Path>,
) -> Result<Upstream, Vec<(&'static str, String)>> {
    let mut found = Vec::new();
    let url = r.upstream.as_str();
    // The launcher's reading of the same URL (its host goes into the gate's pipelock).
    if let Err(e) = claude_bottle_protocol::git_policy::upstream::parse(url) {
        return Err(vec![("upstream", e)]);
    }
    if let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    {
        let scheme = &url[..url.len() - rest.len()];
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            found.push((
                "upstream",
                "a URL with a user or password in it: name the token with token_env instead"
                    .to_owned(),
            ));
        }
        if authority.is_empty() {
            found.push(("upstream", format!("{url:?} has no host")));
        }
        if r.ssh_key.is_some() {
            found.push((
                "ssh_key",
                "an https upstream takes a token (token_env), not an ssh key".to_owned(),
            ));
        }
        if r.username.is_some() && r.token_env.is_none() {
            found.push(("username", "a username without token_env".to_owned()));
        }
        let username = r.username.as_deref().unwrap_or(DEFAULT_USERNAME);
        if !is_plain_word(username) {
            found.push((
                "username",
                format!("{username:?}: use letters, digits and . _ - @ +"),
            ));
        }
        if let Some(env) = &r.token_env
            && !claude_bottle_protocol::text::is_env_name(env)
        {
            found.push((
                "token_env",
                format!("{env:?} is not an environment variable name"),
            ));
        }
        if !found.is_empty() {
            return Err(found);
        }
        return Ok(Upstream::Http {
            url: url.to_owned(),
            origin: format!("{scheme}{authority}"),
            token: r.token_env.as_ref().map(|env| Token {
                env: env.clone(),
                username: username.to_owned(),
            }),
        });
    }
    if is_ssh_url(url) {
        if r.token_env.is_some() || r.username.is_some() {
            found.push((
                "token_env",
                "an ssh upstream takes a key (ssh_key), not a token".to_owned(),
            ));
        }
        if r.ssh_key.is_none() {
            found.push(("ssh_key", "an ssh upstream needs ssh_key".to_owned()));
        }
        if known_hosts.is_none() {
            found.push((
                "upstream",
                "an ssh upstream needs the top-level known_hosts file".to_owned(),
            ));
        }
        let (Some(key), Some(known_hosts)) = (&r.ssh_key, known_hosts) else {
            return Err(found);
        };
        if !found.is_empty() {
            return Err(found);
        }
        return Ok(Upstream::Ssh {
            url: url.to_owned(),
            key: key.clone(),
            known_hosts: known_hosts.to_owned(),
        });
    }
    Err(vec![(
        "upstream",
        format!(
            "{url:?}: the gate reaches upstreams over https:// or ssh (ssh://… or user@host:path)"
        ),
    )])
}

fn is_plain_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match Config::parse(text) {
            Ok(_) => Vec::new(),
            Err(ParseError::Invalid(p)) => p
                .into_iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
            Err(ParseError::Toml(m)) => vec![m],
        }
    }

    #[test]
    fn a_full_file_is_read() {
        let config = Config::parse(
            r#"
            version = 1
            proxy = "http://git-pipelock:8888"
            known_hosts = "/etc/kh"
            [[remote]]
            name = "origin"
            upstream = "https://github.com/acme/app.git"
            push = ["claude/*"]
            token_env = "TOKEN_ORIGIN"
            [[remote]]
            name = "lib"
            upstream = "git@github.com:acme/lib.git"
            ssh_key = "/keys/lib"
            "#,
        )
        .expect("valid");
        assert_eq!(
            config.proxy,
            Some(Proxy {
                host: "git-pipelock".into(),
                port: 8888
            })
        );
        let origin = config.remote("origin").expect("origin");
        match &origin.upstream {
            Upstream::Http { origin, token, .. } => {
                assert_eq!(origin, "https://github.com");
                assert_eq!(
                    token,
                    &Some(Token {
                        env: "TOKEN_ORIGIN".into(),
                        username: DEFAULT_USERNAME.into()
                    })
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(origin.policy.rules().len(), 1);
        assert!(matches!(
            config.remote("lib").expect("lib").upstream,
            Upstream::Ssh { .. }
        ));
    }

    #[test]
    fn every_problem_is_reported_at_its_key() {
        let found = problems(
            r#"
            version = 2
            proxy = "socks5://x:1"
            [[remote]]
            name = ".hidden"
            upstream = "https://user:pw@github.com/a.git"
            push = ["claude/* forse"]
            [[remote]]
            name = "b"
            upstream = "ftp://x/y"
            [[remote]]
            name = "c"
            upstream = "git@host:c.git"
            token_env = "1BAD"
            [[remote]]
            name = "c"
            upstream = "https://host/c.git"
            ssh_key = "/k"
            "#,
        );
        let expected = [
            "version: version 2 is not supported",
            "proxy: only an http:// proxy",
            "remote[0].name: \".hidden\" is not a remote name",
            "remote[0].push[0]: unknown option \"forse\"",
            "remote[0].upstream: a URL with a user or password",
            "remote[1].upstream: \"ftp://x/y\": the gate reaches upstreams over https://",
            "remote[2].token_env: an ssh upstream takes a key",
            "remote[2].ssh_key: an ssh upstream needs ssh_key",
            "remote[2].upstream: an ssh upstream needs the top-level known_hosts file",
            "remote[3].name: remote \"c\" is defined twice",
            "remote[3].ssh_key: an https upstream takes a token",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (f, e) in found.iter().zip(expected) {
            assert!(f.starts_with(e), "{f:?} should start with {e:?}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let found = problems(
            "version = 1\n[[remote]]\nname = \"a\"\nupstream = \"https://h/a\"\ntoken = \"x\"\n",
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("line 5"), "{}", found[0]);
        assert!(found[0].contains("unknown field `token`"), "{}", found[0]);
    }

    #[test]
    fn proxies_and_ssh_spellings() {
        assert_eq!(
            Proxy::parse("[::1]:3128").expect("v6").authority(),
            "[::1]:3128"
        );
        assert_eq!(
            Proxy::parse("pipelock:8888").expect("bare").url(),
            "http://pipelock:8888"
        );
        assert!(Proxy::parse("http://pipelock").is_err());
        assert!(Proxy::parse("http://u@p:1").is_err());
        assert!(is_ssh_url("git@github.com:acme/app.git"));
        assert!(is_ssh_url("ssh://git@github.com:2222/acme/app.git"));
        assert!(is_ssh_url("host:path"));
        assert!(!is_ssh_url("/srv/git/app.git"));
        assert!(!is_ssh_url("./a:b"));
        assert!(!is_ssh_url("file:///srv/a.git"));
        assert!(!is_ssh_url("-oProxyCommand=x:y"));
    }
}
