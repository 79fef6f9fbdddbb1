//! One remote's bare mirror: created and configured when the gate starts, refreshed from the
//! upstream before each ref advertisement, one refresh at a time.
//!
//! The mirror's config names no upstream and holds no credential: every fetch gives the URL on
//! the command line, with the access of [`crate::upstream`].

use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use claude_bottle_protocol::text::escape_line;
use tokio::sync::Mutex;

use crate::config::Remote;
use crate::upstream::{Access, sh_quote};

/// What `git fetch` brings into a mirror: branches and tags, not every ref the upstream has
/// (GitHub's `refs/pull/*` would make every refresh fetch every pull request).
pub const REFSPECS: [&str; 2] = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];

/// A served remote and its mirror.
#[derive(Debug)]
pub struct Mirror {
    pub remote: Remote,
    pub dir: PathBuf,
    access: Access,
    /// Held while a refresh runs; remembers the last one.
    last: Mutex<Option<Refreshed>>,
}

#[derive(Debug, Clone)]
struct Refreshed {
    started: Instant,
    outcome: Result<(), String>,
}

/// The command line `hooks/proc-receive` runs.
#[derive(Debug, Clone)]
pub struct HookCommand {
    pub exe: PathBuf,
    pub config: PathBuf,
    pub audit: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("failed to {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("failed to set up the mirror {path}: git {args} said: {stderr}")]
    Git {
        path: PathBuf,
        args: String,
        stderr: String,
    },
}

impl Mirror {
    /// Creates the mirror of `remote` under `root` (or takes the one a previous run left) and
    /// configures it: pushes go to the gate's hook, receive-pack is served over HTTP.
    pub fn prepare(
        root: &Path,
        remote: Remote,
        access: Access,
        hook: &HookCommand,
    ) -> Result<Self, MirrorError> {
        let dir = root.join(format!("{}.git", remote.name));
        if dir.join("HEAD").is_file() {
            remove_stale_locks(&dir)?;
        } else {
            git_setup(&dir, &["init", "--quiet", "--bare"])?;
        }
        for (key, value) in [
            // Every pushed ref goes to the proc-receive hook.
            ("receive.procReceiveRefs", "refs/"),
            // git http-backend serves receive-pack only to an authenticated user otherwise.
            ("http.receivepack", "true"),
            // Partial clones (`--filter=blob:none`) of a large upstream work through the gate.
            ("uploadpack.allowFilter", "true"),
        ] {
            git_setup(&dir, &["config", "--replace-all", key, value])?;
        }
        write_hook(&dir, &remote.name, hook)?;
        Ok(Mirror {
            remote,
            dir,
            access,
            last: Mutex::new(None),
        })
    }

    /// Brings the mirror up to date with the upstream, unless a refresh that started after
    /// `asked` already did (its outcome is shared: concurrent fetches wait for one refresh).
    pub async fn refresh(&self, asked: Instant) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some(done) = last.as_ref()
            && done.started >= asked
        {
            return done.outcome.clone();
        }
        let started = Instant::now();
        let outcome = self.fetch().await;
        match &outcome {
            Ok(()) => tracing::debug!(
                remote = %self.remote.name,
                ms = started.elapsed().as_millis() as u64,
                "refreshed"
            ),
            Err(e) => tracing::warn!(remote = %self.remote.name, "{e}"),
        }
        *last = Some(Refreshed {
            started,
            outcome: outcome.clone(),
        });
        outcome
    }

    async fn fetch(&self) -> Result<(), String> {
        let url = self.remote.upstream.url();
        let failed = |detail: String| {
            format!(
                "the gate could not refresh {} from {}: {}",
                self.remote.name,
                escape_line(url),
                detail
            )
        };
        let mut fetch = self.access.git(&self.dir);
        fetch
            .args(["fetch", "--quiet", "--prune", "--no-write-fetch-head", url])
            .args(REFSPECS);
        let out = run(fetch).await.map_err(&failed)?;
        if !out.status.success() {
            return Err(failed(git_error(&out.stderr)));
        }
        self.follow_upstream_head().await.map_err(failed)
    }

    /// Points the mirror's HEAD at the upstream's default branch when it names no branch the
    /// mirror has (a new mirror, or an upstream that was empty), so a clone checks it out.
    async fn follow_upstream_head(&self) -> Result<(), String> {
        let mut verify = plain_git(&self.dir);
        verify.args(["rev-parse", "--quiet", "--verify", "HEAD"]);
        if run(verify).await?.status.success() {
            return Ok(());
        }
        let mut ls = self.access.git(&self.dir);
        ls.args(["ls-remote", "--symref", self.remote.upstream.url(), "HEAD"]);
        let out = run(ls).await?;
        if !out.status.success() {
            return Err(git_error(&out.stderr));
        }
        let listing = String::from_utf8_lossy(&out.stdout);
        let Some(target) = listing.lines().find_map(|l| {
            l.strip_prefix("ref: ")?
                .strip_suffix("\tHEAD")
                .filter(|t| t.starts_with("refs/heads/"))
        }) else {
            return Ok(()); // an empty upstream: nothing to point at yet
        };
        let mut set = plain_git(&self.dir);
        set.args(["symbolic-ref", "HEAD", target]);
        let out = run(set).await?;
        if out.status.success() {
            Ok(())
        } else {
            Err(git_error(&out.stderr))
        }
    }
}

/// git in `dir` without the upstream's access (local commands).
fn plain_git(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("--git-dir").arg(dir);
    cmd
}

async fn run(cmd: std::process::Command) -> Result<std::process::Output, String> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null());
    cmd.output()
        .await
        .map_err(|e| format!("failed to run git: {e}"))
}

fn git_error(stderr: &[u8]) -> String {
    crate::upstream::git_error(&String::from_utf8_lossy(stderr))
}

fn git_setup(dir: &Path, args: &[&str]) -> Result<(), MirrorError> {
    let mut cmd = if args[0] == "init" {
        let mut cmd = std::process::Command::new("git");
        cmd.args(args).arg(dir);
        cmd
    } else {
        let mut cmd = plain_git(dir);
        cmd.args(args);
        cmd
    };
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| MirrorError::Io {
            what: "run git for",
            path: dir.to_owned(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(MirrorError::Git {
            path: dir.to_owned(),
            args: args.join(" "),
            stderr: git_error(&out.stderr),
        })
    }
}

/// Removes the lock files a gate stopped in the middle of a refresh or a push left behind:
/// git refuses to update a ref (or the config) whose `.lock` exists. Only run at start, when
/// nothing else works in the mirror.
fn remove_stale_locks(dir: &Path) -> Result<(), MirrorError> {
    let mut stack = vec![dir.join("refs")];
    let mut locks: Vec<PathBuf> = [
        "HEAD.lock",
        "packed-refs.lock",
        "config.lock",
        "shallow.lock",
    ]
    .iter()
    .map(|f| dir.join(f))
    .filter(|p| p.is_file())
    .collect();
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "lock") => {
                    locks.push(path);
                }
                _ => {}
            }
        }
    }
    for lock in locks {
        tracing::warn!(path = %lock.display(), "removing a stale lock left by an earlier run");
        std::fs::remove_file(&lock).map_err(|source| MirrorError::Io {
            what: "remove",
            path: lock.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Writes `hooks/proc-receive` (mode 0755, replaced atomically).
fn write_hook(dir: &Path, name: &str, hook: &HookCommand) -> Result<(), MirrorError> {
    let hooks = dir.join("hooks");
    let io_err = |what, path: &Path| {
        let path = path.to_owned();
        move |source| MirrorError::Io { what, path, source }
    };
    std::fs::create_dir_all(&hooks).map_err(io_err("create", &hooks))?;
    let mut script = format!(
        "#!/bin/sh\n# Written by claude-bottle-git-gate at each start: every push to this mirror\n# is decided and forwarded by the gate.\nexec {} hook --config {}",
        sh_quote(&hook.exe.to_string_lossy()),
        sh_quote(&hook.config.to_string_lossy()),
    );
    if let Some(audit) = &hook.audit {
        script.push_str(&format!(" --audit {}", sh_quote(&audit.to_string_lossy())));
    }
    script.push_str(&format!(" {}\n", sh_quote(name)));
    let path = hooks.join("proc-receive");
    let tmp = hooks.join(".proc-receive.tmp");
    std::fs::write(&tmp, script).map_err(io_err("write", &tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err("set the mode of", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("rename", &path))
}
