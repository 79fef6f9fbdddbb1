//! The binary end to end without Docker: exit codes, refusals, completions.

use std::process::{Command, Output, Stdio};

fn bottle(args: &[&str], home: &str) -> Output {
    bottle_env(args, home, &[])
}

/// [`bottle`] with variables set (`Some`) or removed (`None`).
fn bottle_env(args: &[&str], home: &str, env: &[(&str, Option<&str>)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_claude-bottle"));
    c.args(args)
        .env("CLAUDE_BOTTLE_HOME", home)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (name, value) in env {
        match value {
            Some(v) => c.env(name, v),
            None => c.env_remove(name),
        };
    }
    c.output().expect("run claude-bottle")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn dry_run_prints_the_preflight_and_exits_zero() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = bottle(&["start", "--dry-run"], tmp.path().to_str().expect("utf-8"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("agent         claude (embedded)\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("Launch?"), "a dry run does not ask");
}

#[test]
fn manifest_error_exits_two() {
    let out = bottle(
        &["start", "--dry-run", "many-errors"],
        "tests/fixtures/home",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("14 problems found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unset_forwarded_env_refuses_to_start() {
    let out = bottle(&["start", "--yes", "full"], "tests/fixtures/home");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("not set on this host: GITHUB_USER, HOST_ONLY_UNSET"),
        "{err}"
    );
}

#[test]
fn no_terminal_and_no_yes_refuses_instead_of_waiting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = bottle_env(
        &["start"],
        tmp.path().to_str().expect("utf-8"),
        &[("ANTHROPIC_API_KEY", Some("test-key-not-used"))],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("stdin is not a terminal") && err.contains("--yes"),
        "{err}"
    );
}

#[test]
fn an_unset_token_refuses_to_start_before_asking_and_names_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = bottle_env(
        &["start", "--yes"],
        tmp.path().to_str().expect("utf-8"),
        &[("ANTHROPIC_API_KEY", None)],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("env:ANTHROPIC_API_KEY") && err.contains("export ANTHROPIC_API_KEY"),
        "{err}"
    );
    assert_eq!(
        err.matches("hint:").count(),
        2,
        "one hint per problem, one overall: {err}"
    );
}

#[test]
fn usage_error_exits_two() {
    let out = bottle(&["start", "--no-such-flag"], "tests/fixtures/home");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn completions_are_generated() {
    let out = bottle(&["completions", "bash"], "tests/fixtures/home");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("claude-bottle"));
}

#[test]
fn info_shows_token_references_not_values() {
    let out = Command::new(env!("CARGO_BIN_EXE_claude-bottle"))
        .args(["info", "full"])
        .env("CLAUDE_BOTTLE_HOME", "tests/fixtures/home")
        .env("GITHUB_TOKEN", "ghp_never_printed")
        .env("GITHUB_USER", "user_never_printed")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("token env:GITHUB_TOKEN"), "{all}");
    assert!(!all.contains("never_printed"), "{all}");
}
