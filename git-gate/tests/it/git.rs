//! git as the tests run it: isolated from the machine's configuration and proxies.

use std::borrow::BorrowMut;
use std::path::Path;
use std::process::{Command, Output};

/// Variables that would send the client's git elsewhere than the tests mean.
const PROXY_VARS: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// `git ARGS` with no system or global configuration, no prompts and no proxy.
pub fn git(args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env_remove("GIT_DIR")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS");
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd.args(args);
    cmd
}

/// `git -C DIR ARGS`.
pub fn git_in(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = git(&["-C"]);
    cmd.arg(dir).args(args);
    cmd
}

/// Runs `cmd`, returning its output; panics with both streams if it fails.
pub fn ok(mut cmd: impl BorrowMut<Command>) -> Output {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().expect("run git");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd` expecting it to fail; returns its stderr.
pub fn fails(mut cmd: impl BorrowMut<Command>) -> String {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().expect("run git");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{cmd:?} should have failed:\n{stderr}"
    );
    stderr
}

/// A new commit on HEAD in the work tree `dir`, touching `file`; returns its id.
pub fn commit(dir: &Path, file: &str, text: &str) -> String {
    std::fs::write(dir.join(file), text).expect("write");
    ok(git_in(dir, &["add", file]));
    ok(git_in(dir, &["commit", "--quiet", "-m", text]));
    rev(dir, "HEAD")
}

pub fn rev(dir: &Path, r: &str) -> String {
    let out = ok(git_in(dir, &["rev-parse", r]));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
