//! The compact preflight and `info`: exact text snapshots, and no secret value anywhere.

use claude_bottle::home::Home;
use claude_bottle::manifest;
use claude_bottle::plan::{self, BottlePlan};

const SECRET: &str = "octo-SECRET-value-1234";

fn full_plan() -> BottlePlan {
    let home = Home::new("tests/fixtures/home");
    let bottle = manifest::load(&home, "full").expect("valid");
    plan::build(&home, bottle, &Default::default(), |name| {
        (name == "GITHUB_USER").then(|| SECRET.to_string())
    })
}

#[test]
fn preflight_of_the_full_bottle() {
    let p = full_plan();
    insta::assert_snapshot!(plan::render_preflight(&p));
}

#[test]
fn preflight_of_the_embedded_default() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = Home::new(tmp.path());
    let p = plan::build(
        &home,
        manifest::load(&home, "default").expect("valid"),
        &Default::default(),
        |_| None,
    );
    insta::assert_snapshot!(plan::render_preflight(&p));
}

#[test]
fn info_of_the_full_bottle() {
    insta::assert_snapshot!(plan::render_info(&full_plan()));
}

#[test]
fn no_secret_value_in_preflight_info_or_debug() {
    let p = full_plan();
    for text in [
        plan::render_preflight(&p),
        plan::render_info(&p),
        format!("{p:?}"),
        format!("{p:#?}"),
    ] {
        assert!(!text.contains(SECRET), "secret leaked into:\n{text}");
    }
    assert_eq!(
        p.env_forwarded[0].value.as_ref().map(|s| s.expose()),
        Some(SECRET)
    );
}

#[test]
fn unset_forwarded_env_is_reported() {
    let p = full_plan();
    assert_eq!(p.unset_env(), ["HOST_ONLY_UNSET"]);
    assert!(plan::render_preflight(&p).contains("HOST_ONLY_UNSET (unset)"));
}

#[test]
fn default_hosts_fold_into_routes_unless_routed() {
    let home = Home::new("tests/fixtures/home");
    let p = plan::build(
        &home,
        manifest::load(&home, "routes-default-override").expect("valid"),
        &Default::default(),
        |_| None,
    );
    let api: Vec<_> = p
        .routes
        .iter()
        .filter(|r| r.host == "api.anthropic.com")
        .collect();
    assert_eq!(
        api.len(),
        1,
        "the bottle's own api.anthropic.com route replaces the default"
    );
    assert!(api[0].auth.is_some() && !api[0].default);
    assert_eq!(p.allowlist, ["api.anthropic.com", "example.com"]);
}

#[test]
fn continuation_lines_align_under_the_first_value() {
    let text = plan::render_preflight(&full_plan());
    let col = text
        .lines()
        .next()
        .and_then(|l| l.find("scripted"))
        .expect("agent value");
    for line in text.lines() {
        let value_at = line.len() - line[col..].len();
        assert_eq!(value_at, col, "misaligned: {line:?}");
        assert!(
            !line[col..].starts_with(' '),
            "value does not start at the column: {line:?}"
        );
        assert!(
            line[..col].trim().is_empty() || !line[..col].ends_with(|c: char| !c.is_whitespace())
        );
    }
}

#[test]
fn approvals_show_in_the_preflight_and_info() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = Home::new(tmp.path());
    let state = home.state_dir("default");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::write(state.join("approved-hosts"), "packages.example.org:443\n").expect("hosts");
    std::fs::write(
        state.join("Dockerfile"),
        "FROM x\n# claude-bottle: approved proposal 1-a\nUSER root\nRUN touch /m\n",
    )
    .expect("Dockerfile");
    let config = claude_bottle::config::Config::default();
    let p = plan::load(&home, &config, "default").expect("valid");
    let text = plan::render_preflight(&p);
    assert!(text.contains("packages.example.org (approved)"), "{text}");
    assert!(
        text.contains("Dockerfile (per-bottle, 1 approved)"),
        "{text}"
    );
    assert!(p.allowlist.contains(&"packages.example.org".to_string()));
    assert!(plan::render_info(&p).contains("(per-bottle, 1 approved)"));
}
