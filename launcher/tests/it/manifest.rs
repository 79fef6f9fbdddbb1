//! Fixture bottles: each invalid one asserts its message and line; diagnostics are snapshotted.

use claude_bottle::home::Home;
use claude_bottle::manifest::{self, ManifestError};

fn home() -> Home {
    Home::new("tests/fixtures/home")
}

fn errors(name: &str) -> ManifestError {
    manifest::load(&home(), name).expect_err("fixture is invalid")
}

/// `(line, key)` of every diagnostic, for precise assertions next to the snapshot.
fn lines(e: &ManifestError) -> Vec<(Option<usize>, String)> {
    e.diagnostics
        .iter()
        .map(|d| (d.line, d.key.clone()))
        .collect()
}

#[test]
fn full_bottle_is_valid() {
    let b = manifest::load(&home(), "full").expect("valid");
    assert_eq!(b.agent.name, "scripted");
    assert_eq!(
        b.agent.command,
        ["/bin/sh", "-c", "echo hello from the bottle"]
    );
    assert_eq!(b.routes.len(), 4);
    assert_eq!(
        b.skills.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["review", "lint"]
    );
    assert_eq!(b.limits.pids, Some(256));
    assert_eq!(b.limits.memory_bytes, Some(2 * 1024 * 1024 * 1024));
    assert!(b.supervise);
    assert_eq!(b.git[0].push, ["claude/*", "wip/*"]);
}

#[test]
fn limits_take_the_sizes_and_minimums_of_config_toml() {
    // protocol's `size`: one parser (k, m, g, t) and one minimum each for both files.
    let b = manifest::load(&home(), "limits-edge").expect("valid");
    assert_eq!(b.limits.memory_bytes, Some(1 << 40));
    assert_eq!(b.limits.pids, Some(16));
    let e = errors("limits-too-small");
    assert_eq!(
        lines(&e),
        [
            (Some(4), "limits.memory".to_string()),
            (Some(5), "limits.pids".to_string())
        ]
    );
    let text = e.to_string();
    assert!(
        text.contains("\"63m\" is too small to run the agent (minimum 64m)"),
        "{text}"
    );
    assert!(
        text.contains("15 is too small to start the agent (minimum 16)"),
        "{text}"
    );
}

#[test]
fn unknown_key_names_file_line_and_valid_keys() {
    let e = errors("unknown-key");
    assert_eq!(lines(&e), [(Some(3), "envv".to_string())]);
    insta::assert_snapshot!(e.to_string());
}

#[test]
fn every_semantic_error_is_reported_in_one_run() {
    let e = errors("many-errors");
    let got = lines(&e);
    let want: Vec<(Option<usize>, String)> = [
        (3, "env[1]"),
        (3, "env[2]"),
        (3, "env[3]"),
        (4, "skills[1]"),
        (5, "runtime"),
        (8, "egress_proxy.routes[0].host"),
        (9, "egress_proxy.routes[1].host"),
        (11, "egress_proxy.routes[2].path"),
        (13, "egress_proxy.routes[3].path"),
        (15, "egress_proxy.routes[4].auth_scheme"),
        (17, "egress_proxy.routes[5].token_ref"),
        (19, "egress_proxy.routes[6].auth_scheme"),
        (23, "egress_proxy.routes[7].token_ref"),
        (25, "egress_proxy.routes[9]"),
    ]
    .into_iter()
    .map(|(l, k)| (Some(l), k.to_string()))
    .collect();
    assert_eq!(got, want);
    insta::assert_snapshot!(e.to_string());
}

#[test]
fn missing_agent_points_at_the_agent_line() {
    let e = errors("missing-agent");
    assert_eq!(lines(&e), [(Some(3), "agent".to_string())]);
    assert!(e.to_string().contains("no agent named \"nosuchagent\""));
}

#[test]
fn broken_agent_file_is_reported_in_the_agent_file() {
    let e = errors("broken-agent");
    let d = &e.diagnostics[0];
    assert!(d.path.ends_with("agents/broken.md"), "{}", d.path.display());
    assert_eq!(
        (d.line, d.key.as_str(), d.problem.as_str()),
        (Some(3), "colour", "unknown key")
    );
}

#[test]
fn legacy_keys_die_with_a_migration_recipe() {
    let e = errors("legacy");
    assert_eq!(
        lines(&e),
        [
            (Some(3), "cred_proxy".to_string()),
            (Some(8), "tokens".to_string()),
            (Some(10), "egress".to_string())
        ]
    );
    insta::assert_snapshot!(e.to_string());
}

#[test]
fn yaml_syntax_error_has_the_file_line() {
    let e = errors("bad-yaml");
    assert_eq!(e.diagnostics[0].line, Some(4));
    insta::assert_snapshot!(e.to_string());
}

#[test]
fn unknown_bottle_lists_the_known_ones() {
    let e = errors("nosuchbottle");
    let text = e.to_string();
    assert!(text.contains("no bottle named \"nosuchbottle\""), "{text}");
    assert!(text.contains("default, full"), "{text}");
}

#[test]
fn bottle_names_cannot_escape_the_bottles_folder() {
    let e = errors("../agents/scripted");
    assert!(e.to_string().contains("invalid bottle name"), "{e}");
}

#[test]
fn embedded_default_works_with_an_empty_home() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let b = manifest::load(&Home::new(tmp.path()), "default").expect("embedded default");
    assert_eq!(b.source, manifest::Source::Embedded);
    assert_eq!(b.agent.name, "claude");
    assert_eq!(b.agent.source, manifest::Source::Embedded);
    assert!(!b.agent.prompt.is_empty());
}

#[test]
fn git_credentials_must_fit_the_upstreams_transport() {
    let e = errors("bad-git");
    assert_eq!(
        lines(&e),
        [
            (Some(3), "git[0].ssh_key".to_string()),
            (Some(7), "git[1].ssh_key".to_string()),
            (Some(10), "git[2].token_ref".to_string()),
            (Some(13), "git[3].upstream".to_string()),
            (Some(15), "git[4].upstream".to_string()),
        ]
    );
    insta::assert_snapshot!(e.to_string());
}

#[test]
fn bad_push_patterns_are_reported_each_at_its_line() {
    let e = errors("bad-push");
    assert_eq!(
        lines(&e),
        [
            (Some(7), "git[0].push[1]".to_string()),
            (Some(8), "git[0].push[2]".to_string()),
            (Some(9), "git[0].push[3]".to_string()),
            (Some(10), "git[0].push[4]".to_string()),
            (Some(11), "git[0].push[5]".to_string()),
            (Some(14), "git[1].push[2]".to_string()),
        ]
    );
    insta::assert_snapshot!(e.to_string());
}
