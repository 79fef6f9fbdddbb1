//! The git commands that reach an upstream: its credential, the proxy, and nothing that could
//! leak the credential.
//!
//! The gate never reads a token: for an HTTPS upstream, git asks a credential helper, a shell
//! function that prints the variable named in the configuration from the gate's own
//! environment; git keeps the answer in memory. The token is thus in no URL, file, argument or
//! log line, and the helper answers for the upstream's origin only. For an ssh upstream, git
//! runs `ssh` with the configured key alone, a strict host-key check against the configured
//! `known_hosts`, and `claude-bottle-git-gate connect` as the `ProxyCommand` when the gate has
//! a proxy.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use crate::config::{Proxy, Upstream};

/// Seconds of silence after which git gives a transfer up (`http.lowSpeedTime`, and ssh's
/// keep-alive budget): pipelock closes an idle tunnel after 120 s anyway, and a hung refresh
/// would otherwise hold its mirror's lock for ever.
pub const STALL_SECONDS: u32 = 120;

/// Seconds ssh waits for the upstream's connection and banner.
pub const CONNECT_TIMEOUT_SECONDS: u32 = 30;

/// What a git command needs to talk to one upstream: `-c` settings and environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `key=value` pairs given as `git -c key=value` (before the subcommand).
    pub config: Vec<String>,
    /// Variables set in git's environment.
    pub env: Vec<(String, OsString)>,
}

/// Variables removed from every git command toward an upstream: prompts (the gate has no
/// terminal), and what a server-side git (receive-pack, http-backend) leaves in the hook's
/// environment that a client-side git must not read.
pub const CLEARED_ENV: &[&str] = &[
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_PROTOCOL",
    "GIT_QUARANTINE_PATH",
    "GIT_SSH",
    "GIT_PROXY_COMMAND",
];

impl Access {
    /// How to reach `upstream`, through `proxy` when the gate has one; `exe` is this program,
    /// run by ssh as its `ProxyCommand`.
    pub fn new(upstream: &Upstream, proxy: Option<&Proxy>, exe: &Path) -> Self {
        let mut config = Vec::new();
        let mut env = vec![("GIT_TERMINAL_PROMPT".to_owned(), OsString::from("0"))];
        match upstream {
            Upstream::Http { origin, token, .. } => {
                if let Some(proxy) = proxy {
                    config.push(format!("http.proxy={}", proxy.url()));
                }
                config.push("http.lowSpeedLimit=1".to_owned());
                config.push(format!("http.lowSpeedTime={STALL_SECONDS}"));
                if token.is_none() {
                    // No helper of the system's or the gate's own configuration either.
                    config.push("credential.helper=".to_owned());
                }
                if let Some(token) = token {
                    // git >= 2.46: send the credential with the first request instead of
                    // after a 401, one round trip less per refresh and per push (older git
                    // ignores the key).
                    config.push(format!("http.{origin}.proactiveAuth=basic"));
                    // An empty value clears the helpers of the system and global files.
                    config.push("credential.helper=".to_owned());
                    // Expanded by the shell git runs the helper with, from the gate's
                    // environment: the value never passes through this program. The name and
                    // username were checked to be plain words.
                    config.push(format!(
                        "credential.{origin}.helper=!f() {{ test \"$1\" = get || exit 0; echo username={}; echo \"password=${}\"; }}; f",
                        token.username, token.env
                    ));
                }
            }
            Upstream::Ssh {
                key, known_hosts, ..
            } => {
                let mut ssh = vec![
                    "ssh".to_owned(),
                    "-F".to_owned(),
                    "/dev/null".to_owned(),
                    "-i".to_owned(),
                    sh_quote(&key.to_string_lossy()),
                    "-o".to_owned(),
                    "IdentitiesOnly=yes".to_owned(),
                    "-o".to_owned(),
                    "IdentityAgent=none".to_owned(),
                    "-o".to_owned(),
                    "BatchMode=yes".to_owned(),
                    "-o".to_owned(),
                    // Also bounds the banner exchange: a tunnel that never answers fails the
                    // refresh instead of holding the agent's clone.
                    format!("ConnectTimeout={CONNECT_TIMEOUT_SECONDS}"),
                    "-o".to_owned(),
                    "StrictHostKeyChecking=yes".to_owned(),
                    "-o".to_owned(),
                    sh_quote(&format!(
                        "UserKnownHostsFile={}",
                        known_hosts.to_string_lossy()
                    )),
                    "-o".to_owned(),
                    "GlobalKnownHostsFile=/dev/null".to_owned(),
                    "-o".to_owned(),
                    "ServerAliveInterval=15".to_owned(),
                    "-o".to_owned(),
                    format!("ServerAliveCountMax={}", STALL_SECONDS / 15),
                ];
                if let Some(proxy) = proxy {
                    ssh.push("-o".to_owned());
                    ssh.push(sh_quote(&format!(
                        "ProxyCommand={} connect {} %h %p",
                        sh_quote(&exe.to_string_lossy()),
                        proxy.authority()
                    )));
                }
                env.push(("GIT_SSH_COMMAND".to_owned(), OsString::from(ssh.join(" "))));
                env.push(("GIT_SSH_VARIANT".to_owned(), OsString::from("ssh")));
            }
        }
        Access { config, env }
    }

    /// A `git` command in `git_dir` set up to reach the upstream; the caller adds the
    /// subcommand and its arguments.
    pub fn git(&self, git_dir: &Path) -> Command {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir").arg(git_dir);
        for c in &self.config {
            cmd.arg("-c").arg(c);
        }
        for name in CLEARED_ENV {
            cmd.env_remove(name);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

/// What a failed git command toward an upstream says, as one escaped line: its last `fatal:` or
/// `error:` line, after the line before it when that is the cause git wraps (`Host key
/// verification failed.`, the upstream's `remote:` text), or else its last line.
pub fn git_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let last_of = |prefix: &str| lines.iter().rposition(|l| l.starts_with(prefix));
    let text = match last_of("fatal:").or_else(|| last_of("error:")) {
        Some(i) => match i.checked_sub(1).map(|p| lines[p]) {
            Some(cause)
                if !["fatal:", "error:", "hint:", "warning:"]
                    .iter()
                    .any(|p| cause.starts_with(p)) =>
            {
                format!("{cause} ({})", lines[i])
            }
            _ => lines[i].to_owned(),
        },
        None => lines.last().map_or_else(
            || "git failed and said nothing".to_owned(),
            |l| (*l).to_owned(),
        ),
    };
    claude_bottle_protocol::text::escape_line(&text).into_owned()
}

/// `s` as one word for `sh`: single-quoted, each `'` written `'\''`.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=@+,".contains(c))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::Token;

    #[test]
    fn a_token_is_named_never_written() {
        let upstream = Upstream::Http {
            url: "https://git.example/a.git".into(),
            origin: "https://git.example".into(),
            token: Some(Token {
                env: "TOKEN_A".into(),
                username: "x-access-token".into(),
            }),
        };
        let proxy = Proxy::parse("http://pipelock:8888").expect("proxy");
        let access = Access::new(&upstream, Some(&proxy), Path::new("/gate"));
        assert!(
            access
                .config
                .contains(&"http.proxy=http://pipelock:8888".to_owned())
        );
        let helper = access
            .config
            .iter()
            .find(|c| c.starts_with("credential.https://git.example.helper="))
            .expect("a helper scoped to the origin");
        assert!(helper.contains("\"password=$TOKEN_A\""), "{helper}");
        assert_eq!(
            access.config.iter().position(|c| c == "credential.helper="),
            access
                .config
                .iter()
                .position(|c| c == helper)
                .map(|i| i - 1),
            "the inherited helpers are cleared just before"
        );
    }

    #[test]
    fn the_credential_helper_answers_from_the_environment() {
        let helper =
            "!f() { test \"$1\" = get || exit 0; echo username=u; echo \"password=$T\"; }; f";
        let script = format!("{} \"$@\"", helper.trim_start_matches('!'));
        let out = std::process::Command::new("sh")
            .args(["-c", &script, "sh", "get"])
            .env("T", "s3cr3t")
            .output()
            .expect("sh");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "username=u\npassword=s3cr3t\n"
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script, "sh", "store"])
            .env("T", "s3cr3t")
            .output()
            .expect("sh");
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn ssh_is_strict_and_goes_through_the_proxy() {
        let upstream = Upstream::Ssh {
            url: "git@github.com:a/b.git".into(),
            key: PathBuf::from("/keys/it's"),
            known_hosts: PathBuf::from("/etc/kh"),
        };
        let proxy = Proxy::parse("pipelock:8888").expect("proxy");
        let access = Access::new(&upstream, Some(&proxy), Path::new("/usr/bin/gate"));
        let (_, ssh) = access
            .env
            .iter()
            .find(|(k, _)| k == "GIT_SSH_COMMAND")
            .expect("ssh command");
        let ssh = ssh.to_string_lossy();
        // Split the way git's shell would.
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("printf '%s\\n' {}", ssh.trim_start_matches("ssh ")),
            ])
            .output()
            .expect("sh");
        let words: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        assert!(words.contains(&"/keys/it's".to_owned()), "{words:?}");
        assert!(words.contains(&"StrictHostKeyChecking=yes".to_owned()));
        assert!(words.contains(&"IdentitiesOnly=yes".to_owned()));
        assert!(words.contains(&"UserKnownHostsFile=/etc/kh".to_owned()));
        assert!(
            words.contains(&"ProxyCommand=/usr/bin/gate connect pipelock:8888 %h %p".to_owned()),
            "{words:?}"
        );
    }

    #[test]
    fn git_errors_keep_their_cause() {
        assert_eq!(
            git_error(
                "Host key verification failed.\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n"
            ),
            "Host key verification failed. (fatal: Could not read from remote repository.)"
        );
        assert_eq!(
            git_error("fatal: Authentication failed for 'https://h/a.git/'\n"),
            "fatal: Authentication failed for 'https://h/a.git/'"
        );
        assert_eq!(
            git_error("hint: x\nerror: failed to push some refs to 'h'\n"),
            "error: failed to push some refs to 'h'"
        );
        assert_eq!(git_error("just this\n"), "just this");
        assert_eq!(git_error(""), "git failed and said nothing");
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/a/b"), "/a/b");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
