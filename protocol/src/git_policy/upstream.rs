//! A remote's upstream URL as the launcher and the gate both read it: which transport, which
//! host. The launcher allowlists the host in the gate's pipelock and picks the credential kind;
//! the gate picks how git reaches it. One reading, so the two never disagree.

use std::fmt;

/// How the gate reaches an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `https://` (or `http://`, for private servers such as the tests'): a token.
    Http,
    /// `ssh://…` or git's scp-like `[user@]host:path`: a key.
    Ssh,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Http => "https",
            Transport::Ssh => "ssh",
        })
    }
}

/// A checked upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub transport: Transport,
    /// The host, lowercase, without brackets or port: what pipelock allowlists.
    pub host: String,
    /// The port when the URL names one.
    pub port: Option<u16>,
}

/// Parse an upstream URL; the error says what is wrong in words an operator acts on.
pub fn parse(url: &str) -> Result<UpstreamUrl, String> {
    if url.is_empty() || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{url:?} is not a URL"));
    }
    if let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(
                "a URL with a user or password in it: give the credential with token_ref instead"
                    .to_owned(),
            );
        }
        let (host, port) = host_port(authority)?;
        return Ok(UpstreamUrl {
            transport: Transport::Http,
            host,
            port,
        });
    }
    if let Some(rest) = url.strip_prefix("ssh://") {
        let authority = rest.split('/').next().unwrap_or_default();
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = host_port(authority)?;
        return Ok(UpstreamUrl {
            transport: Transport::Ssh,
            host,
            port,
        });
    }
    if is_scp_like(url) {
        let before = &url[..url.find(':').unwrap_or(url.len())];
        let host = before.rsplit_once('@').map_or(before, |(_, h)| h);
        let (host, _) = host_port(host)?;
        return Ok(UpstreamUrl {
            transport: Transport::Ssh,
            host,
            port: None,
        });
    }
    Err(format!(
        "{url:?}: the gate reaches upstreams over https:// or ssh (ssh://… or user@host:path)"
    ))
}

/// A remote's name, as the launcher accepts it in `git[].name` and the gate serves it
/// (`/<name>.git`): letters, digits, `-_.`, not starting with `.`, at most 64 bytes.
pub fn is_remote_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !s.starts_with('.')
}

/// `ssh://…`, or git's scp-like `[user@]host:path` (a colon before any slash, no `://`).
pub fn is_ssh_url(url: &str) -> bool {
    match url.strip_prefix("ssh://") {
        Some(rest) => !rest.is_empty(),
        None => is_scp_like(url),
    }
}

fn is_scp_like(url: &str) -> bool {
    if url.contains("://") || url.starts_with('-') {
        return false;
    }
    match (url.find(':'), url.find('/')) {
        (Some(colon), slash) => colon > 0 && slash.is_none_or(|s| colon < s),
        (None, _) => false,
    }
}

fn host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{authority:?}: an unclosed [ in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{authority:?} has no host"));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c))
    {
        return Err(format!("{host:?} is not a host name"));
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{p:?} is not a port"))?,
        ),
    };
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_names_its_transport_and_host() {
        let cases = [
            (
                "https://github.com/acme/app.git",
                Transport::Http,
                "github.com",
                None,
            ),
            (
                "http://Git.Test:8080/app.git",
                Transport::Http,
                "git.test",
                Some(8080),
            ),
            (
                "ssh://git@git.test/srv/git/app.git",
                Transport::Ssh,
                "git.test",
                None,
            ),
            (
                "ssh://git@[::1]:2222/app.git",
                Transport::Ssh,
                "::1",
                Some(2222),
            ),
            (
                "git@github.com:acme/lib.git",
                Transport::Ssh,
                "github.com",
                None,
            ),
            (
                "github.com:acme/lib.git",
                Transport::Ssh,
                "github.com",
                None,
            ),
        ];
        for (url, transport, host, port) in cases {
            let got = parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                (got.transport, got.host.as_str(), got.port),
                (transport, host, port),
                "{url}"
            );
        }
    }

    #[test]
    fn what_is_refused_says_why() {
        let cases = [
            ("", "is not a URL"),
            ("https://user:pw@github.com/x.git", "user or password"),
            ("https:///x.git", "has no host"),
            ("https://git.test:99999/x", "is not a port"),
            ("ftp://git.test/x", "https:// or ssh"),
            ("/srv/git/x.git", "https:// or ssh"),
            ("-oProxyCommand=x:y", "https:// or ssh"),
            ("https://gi t.test/x", "is not a URL"),
            ("https://git$test/x", "is not a host name"),
        ];
        for (url, want) in cases {
            let err = parse(url).expect_err(url);
            assert!(err.contains(want), "{url}: {err}");
        }
    }
}
