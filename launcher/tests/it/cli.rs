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
fn missing_git_credentials_refuse_to_start_before_anything_is_created() {
    let out = bottle_env(
        &["start", "--yes", "git-creds"],
        "tests/fixtures/home",
        &[
            ("ANTHROPIC_API_KEY", Some("test-key-not-used")),
            // Nothing may reach an engine: a launch that got that far would fail differently.
            ("DOCKER_HOST", Some("unix:///nonexistent/docker.sock")),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "git remote origin: failed to resolve token env:E2E_GIT_TOKEN_NEVER_SET: $E2E_GIT_TOKEN_NEVER_SET is not set"
        ),
        "{err}"
    );
    assert!(
        err.contains("git remote lib: ssh_key") && err.contains("no-such-key"),
        "both problems at once: {err}"
    );
    assert!(!err.contains("docker"), "stopped before the engine: {err}");
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

/// A saved snapshot of bottle `app` in `home` whose workspace holds `files`.
fn save_workspace(home: &std::path::Path, files: &[(&str, &str)]) {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("workspace/{path}"), data.as_bytes())
            .expect("append");
    }
    let tar = b.into_inner().expect("tar");
    let store = claude_bottle::state::snapshot::Store::new(&home.join("state/app"), 1 << 20);
    let mut w = store.writer().expect("writer");
    w.start_part("/workspace").expect("part");
    w.write(&tar).expect("write");
    w.finish_part().expect("finish");
    w.commit().expect("commit");
}

#[test]
fn export_writes_the_last_snapshots_workspace_into_an_empty_folder_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    save_workspace(
        &home,
        &[("src/lib.rs", "pub fn f() {}\n"), ("README", "hi\n")],
    );
    let dest = tmp.path().join("out");
    let dest_s = dest.to_str().expect("utf-8");
    let home_s = home.to_str().expect("utf-8");
    // No engine: the export says so and reads the snapshot.
    let out = bottle_env(
        &["export", "app", dest_s],
        home_s,
        &[("DOCKER_HOST", Some("unix:///nonexistent/docker.sock"))],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the last snapshot"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("src/lib.rs")).expect("read"),
        "pub fn f() {}\n"
    );
    // Never over files: a second export into the same folder is refused.
    let again = bottle(&["export", "app", dest_s, "--snapshot"], home_s);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("not an empty folder"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn export_patch_without_a_recorded_source_explains_and_one_with_a_source_applies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    save_workspace(&home, &[("a.txt", "one\ntwo\n"), ("new.txt", "new\n")]);
    let home_s = home.to_str().expect("utf-8");
    let patch = tmp.path().join("p.diff");
    let patch_s = patch.to_str().expect("utf-8");
    let out = bottle(&["export", "app", patch_s, "--patch", "--snapshot"], home_s);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("no recorded --cwd source"), "{err}");
    assert!(err.contains("hint:"), "{err}");

    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("src");
    std::fs::write(src.join("a.txt"), "one\n").expect("a");
    std::fs::write(
        home.join("state/app/workspace-source"),
        format!("{}\n", src.display()),
    )
    .expect("record");
    let out = bottle(&["export", "app", patch_s, "--patch", "--snapshot"], home_s);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let applied = Command::new("git")
        .args(["apply", patch_s])
        .current_dir(&src)
        .env("GIT_CEILING_DIRECTORIES", tmp.path())
        .output()
        .expect("git");
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    assert_eq!(
        std::fs::read_to_string(src.join("a.txt")).expect("a"),
        "one\ntwo\n"
    );
    assert_eq!(
        std::fs::read_to_string(src.join("new.txt")).expect("new"),
        "new\n"
    );
}

#[test]
fn export_of_a_bottle_that_never_ran_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("out");
    let out = bottle(
        &[
            "export",
            "nope",
            dest.to_str().expect("utf-8"),
            "--snapshot",
        ],
        tmp.path().to_str().expect("utf-8"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("has no snapshot"),
        "{}",
        text(&out.stderr)
    );
}
