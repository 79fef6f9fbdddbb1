//! Table tests of the language, of decisions and of hook lines (the properties are in
//! `properties.rs`).

use super::*;

pub(super) const OLD: &str = "1111111111111111111111111111111111111111";
pub(super) const NEW: &str = "2222222222222222222222222222222222222222";
pub(super) const ZERO: &str = "0000000000000000000000000000000000000000";

pub(super) fn policy<S: AsRef<str>>(entries: &[S]) -> PushPolicy {
    PushPolicy::parse(entries).expect("valid entries")
}

pub(super) fn update(refname: &str, old: &str, new: &str) -> RefUpdate {
    RefUpdate::new(refname, old, new).expect("valid update")
}

pub(super) fn create(refname: &str) -> RefUpdate {
    update(refname, ZERO, NEW)
}

pub(super) fn modify(refname: &str) -> RefUpdate {
    update(refname, OLD, NEW)
}

pub(super) fn delete(refname: &str) -> RefUpdate {
    update(refname, OLD, ZERO)
}

#[test]
fn entries_parse_into_full_patterns_and_options() {
    for (entry, full, text, tags, force, delete) in [
        (
            "claude/*",
            "refs/heads/claude/*",
            "claude/*",
            false,
            false,
            false,
        ),
        (
            "  claude/*  ",
            "refs/heads/claude/*",
            "claude/*",
            false,
            false,
            false,
        ),
        ("main", "refs/heads/main", "main", false, false, false),
        ("**", "refs/heads/**", "**", false, false, false),
        (
            "claude/** force",
            "refs/heads/claude/**",
            "claude/** force",
            false,
            true,
            false,
        ),
        (
            "wip/* delete force",
            "refs/heads/wip/*",
            "wip/* force delete",
            false,
            true,
            true,
        ),
        (
            "refs/heads/x/*",
            "refs/heads/x/*",
            "refs/heads/x/*",
            false,
            false,
            false,
        ),
        (
            "refs/tags/v*",
            "refs/tags/v*",
            "refs/tags/v*",
            true,
            false,
            false,
        ),
        (
            "refs/tags/** delete",
            "refs/tags/**",
            "refs/tags/** delete",
            true,
            false,
            true,
        ),
        (
            "refs/notes/*",
            "refs/notes/*",
            "refs/notes/*",
            false,
            false,
            false,
        ),
        ("refs/**", "refs/**", "refs/**", false, false, false),
        (
            "feature/*-wip",
            "refs/heads/feature/*-wip",
            "feature/*-wip",
            false,
            false,
            false,
        ),
        ("a/**/b", "refs/heads/a/**/b", "a/**/b", false, false, false),
        ("@", "refs/heads/@", "@", false, false, false),
    ] {
        let rule = PushRule::parse(entry).unwrap_or_else(|e| panic!("{entry:?}: {e}"));
        assert_eq!(rule.ref_pattern(), full, "{entry:?}");
        assert_eq!(rule.to_string(), text, "{entry:?}");
        assert_eq!(
            (rule.names_tags(), rule.allows_force(), rule.allows_delete()),
            (tags, force, delete),
            "{entry:?}"
        );
    }
    assert_eq!(
        PushRule::parse("x delete force"),
        PushRule::parse("x   force delete")
    );
}

#[test]
fn bad_entries_say_why_and_what_to_write() {
    for (entry, message) in [
        ("", "empty push pattern"),
        ("   ", "empty push pattern"),
        (
            "claude/* forse",
            "unknown option \"forse\" in \"claude/* forse\"",
        ),
        ("claude/* --force", "unknown option \"--force\""),
        ("claude/* force force", "option \"force\" is written twice"),
        ("{a,b}/*", "holds '{', which is not a pattern character"),
        (
            "tags/v*",
            "\"tags/v*\" would be the branch refs/heads/tags/v*",
        ),
        ("heads/main", "would be the branch refs/heads/heads/main"),
        ("remotes/origin/*", "would be the branch"),
        ("refs", "would be the branch refs/heads/refs"),
        ("claude**", "has `**` inside a segment"),
        ("a/**b", "has `**` inside a segment"),
        ("a/***", "has `**` inside a segment"),
        (
            "a..b/*",
            "matches no valid ref name: reference name cannot contain repeated dots",
        ),
        ("*.lock", "cannot end with '.lock'"),
        ("a//b", "cannot contain repeated slashes"),
        ("/a", "cannot contain repeated slashes"),
        ("a/", "cannot end with a slash"),
        (".hidden/*", "cannot start with a dot"),
        ("a/.*", "cannot start with a dot"),
        ("x@{1}", "holds '{'"),
        ("what?", "matches no valid ref name"),
        ("a[bc]", "matches no valid ref name"),
        ("back\\slash", "matches no valid ref name"),
        ("a~1", "matches no valid ref name"),
        ("a^", "matches no valid ref name"),
        ("a:b", "matches no valid ref name"),
        ("tab\u{7}", "matches no valid ref name"),
    ] {
        let e = PushRule::parse(entry).expect_err(entry);
        assert!(e.to_string().contains(message), "{entry:?}: {e}");
        assert!(!e.hint().is_empty(), "{entry:?}");
    }
    let hint = |entry: &str| PushRule::parse(entry).expect_err(entry).hint();
    assert_eq!(hint("tags/v*"), "write the ref in full: refs/tags/v*");
    assert_eq!(hint("heads/main"), "write the ref in full: refs/heads/main");
    assert!(hint("refs").contains("without a prefix (claude/*)"));
}

#[test]
fn every_problem_of_a_list_is_reported_with_its_index() {
    let problems = PushPolicy::parse(&[
        "claude/*",
        "claude/* forse",
        "refs/heads/claude/* force",
        "tags/v1",
        "wip/*",
        "wip/* delete",
    ])
    .expect_err("invalid");
    let got: Vec<(usize, String)> = problems
        .iter()
        .map(|p| (p.index, p.error.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            (
                1,
                "unknown option \"forse\" in \"claude/* forse\"".to_owned()
            ),
            (
                2,
                "\"refs/heads/claude/* force\" repeats the pattern of push[0]".to_owned()
            ),
            (
                3,
                "\"tags/v1\" would be the branch refs/heads/tags/v1".to_owned()
            ),
            (
                5,
                "\"wip/* delete\" repeats the pattern of push[4]".to_owned()
            ),
        ]
    );
    assert!(
        problems[1]
            .error
            .hint()
            .contains("merge the two entries into one")
    );
}

#[test]
fn star_stays_in_its_segment_and_double_star_spans_segments() {
    for (entry, refname, matches) in [
        ("claude/*", "refs/heads/claude/x", true),
        ("claude/*", "refs/heads/claude/x/y", false),
        ("claude/*", "refs/heads/claude", false),
        ("claude/*", "refs/heads/claudex", false),
        ("claude/*", "refs/heads/other/claude/x", false),
        ("claude/*", "refs/remotes/claude/x", false),
        ("claude/**", "refs/heads/claude/x/y/z", true),
        ("claude/**", "refs/heads/claude", false),
        ("**/wip", "refs/heads/wip", true),
        ("**/wip", "refs/heads/a/b/wip", true),
        ("**/wip", "refs/heads/a/wip2", false),
        ("a/**/b", "refs/heads/a/b", true),
        ("a/**/b", "refs/heads/a/x/y/b", true),
        ("feature/*-wip", "refs/heads/feature/x-wip", true),
        ("feature/*-wip", "refs/heads/feature/x/y-wip", false),
        ("*", "refs/heads/main", true),
        ("*", "refs/heads/a/b", false),
        ("**", "refs/heads/a/b", true),
        ("main", "refs/heads/main", true),
        ("main", "refs/heads/Main", false),
        ("main", "refs/heads/main2", false),
        ("refs/**", "refs/notes/commits", true),
        ("refs/**", "refs/heads/x", true),
        ("refs/notes/*", "refs/notes/commits", true),
    ] {
        let rule = PushRule::parse(entry).expect(entry);
        assert_eq!(rule.matches(refname), matches, "{entry:?} vs {refname}");
    }
}

#[test]
fn tags_are_reached_only_by_patterns_that_name_them() {
    for entry in ["**", "refs/**", "*", "v*", "refs/*/v1", "refs/**/v1"] {
        let rule = PushRule::parse(entry).expect(entry);
        assert!(!rule.matches("refs/tags/v1"), "{entry:?}");
    }
    for entry in [
        "refs/tags/v1",
        "refs/tags/*",
        "refs/tags/**",
        "refs/tags/v*",
    ] {
        let rule = PushRule::parse(entry).expect(entry);
        assert!(rule.matches("refs/tags/v1"), "{entry:?}");
    }
}

#[test]
fn decisions_follow_the_issue() {
    let p = policy(&[
        "claude/*",
        "wip/** force delete",
        "scratch/* delete",
        "refs/tags/v*",
        "refs/tags/nightly force",
    ]);
    let allowed = |rule: &str| Decision::Allowed {
        rule: rule.to_owned(),
    };
    let pat = |s: &str| Patterns(s.to_owned());
    let all = pat(
        "claude/*, wip/** force delete, scratch/* delete, refs/tags/v*, refs/tags/nightly force",
    );
    for (update, ff, want) in [
        (create("refs/heads/claude/x"), false, allowed("claude/*")),
        (modify("refs/heads/claude/x"), true, allowed("claude/*")),
        (
            modify("refs/heads/claude/x"),
            false,
            Decision::Refused(Refusal::NotFastForward {
                patterns: pat("claude/*"),
            }),
        ),
        (
            delete("refs/heads/claude/x"),
            true,
            Decision::Refused(Refusal::Deletion {
                patterns: pat("claude/*"),
            }),
        ),
        (
            create("refs/heads/main"),
            false,
            Decision::Refused(Refusal::NotAllowed {
                patterns: all.clone(),
            }),
        ),
        (
            modify("refs/heads/claude/x/y"),
            true,
            Decision::Refused(Refusal::NotAllowed {
                patterns: all.clone(),
            }),
        ),
        (
            modify("refs/heads/wip/a/b"),
            false,
            allowed("wip/** force delete"),
        ),
        (
            delete("refs/heads/wip/a"),
            false,
            allowed("wip/** force delete"),
        ),
        (
            delete("refs/heads/scratch/a"),
            false,
            allowed("scratch/* delete"),
        ),
        (
            modify("refs/heads/scratch/a"),
            false,
            Decision::Refused(Refusal::NotFastForward {
                patterns: pat("scratch/* delete"),
            }),
        ),
        (create("refs/tags/v1.2"), false, allowed("refs/tags/v*")),
        (
            modify("refs/tags/v1.2"),
            true,
            Decision::Refused(Refusal::TagExists {
                patterns: pat("refs/tags/v*"),
            }),
        ),
        (
            delete("refs/tags/v1.2"),
            false,
            Decision::Refused(Refusal::Deletion {
                patterns: pat("refs/tags/v*"),
            }),
        ),
        (
            modify("refs/tags/nightly"),
            false,
            allowed("refs/tags/nightly force"),
        ),
        (
            create("refs/tags/release"),
            false,
            Decision::Refused(Refusal::NotAllowed { patterns: all }),
        ),
    ] {
        assert_eq!(
            p.decide(&update, ff),
            want,
            "{} {:?} ff={ff}",
            update.refname(),
            update.change()
        );
    }
}

#[test]
fn refusals_read_as_one_line_with_a_hint() {
    let none = PushPolicy::default();
    let r = none.decide(&create("refs/heads/claude/x"), false);
    assert_eq!(
        r,
        Decision::Refused(Refusal::NoPatterns),
        "the default refuses every push"
    );
    let branches = policy(&["claude/*"]);
    let cases = [
        (
            none.decide(&create("refs/heads/x"), false),
            "this remote takes no pushes: its push list is empty",
        ),
        (
            branches.decide(&create("refs/heads/main"), false),
            "no push pattern matches this ref (push: claude/*)",
        ),
        (
            branches.decide(&create("refs/tags/v1"), false),
            "tags are pushed only when a pattern names them, refs/tags/... (push: claude/*)",
        ),
        (
            branches.decide(&modify("refs/heads/claude/x"), false),
            "not a fast-forward, and no matching pattern allows force (claude/*)",
        ),
        (
            policy(&["refs/tags/*"]).decide(&modify("refs/tags/v1"), true),
            "the tag exists, and no matching pattern allows force to move it (refs/tags/*)",
        ),
        (
            branches.decide(&delete("refs/heads/claude/x"), false),
            "deleting needs a matching pattern that allows delete (claude/*)",
        ),
    ];
    for (decision, message) in cases {
        let Decision::Refused(refusal) = decision else {
            panic!("allowed: {message}");
        };
        assert_eq!(refusal.to_string(), message);
        assert!(!refusal.to_string().contains('\n'));
        assert!(!refusal.hint().is_empty());
    }
}

#[test]
fn hook_lines_become_checked_updates() {
    let u = RefUpdate::parse_line(&format!("{OLD} {NEW} refs/heads/claude/x\n")).expect("valid");
    assert_eq!(
        (
            u.refname(),
            u.old().as_str(),
            u.new_id().as_str(),
            u.change()
        ),
        ("refs/heads/claude/x", OLD, NEW, Change::Update)
    );
    assert!(u.needs_ancestry());
    assert_eq!(create("refs/heads/x").change(), Change::Create);
    assert!(!create("refs/heads/x").needs_ancestry());
    assert_eq!(delete("refs/heads/x").change(), Change::Delete);
    assert!(
        !modify("refs/tags/v1").needs_ancestry(),
        "tags move only by force"
    );
    let sha256 = "a".repeat(64);
    let zero256 = "0".repeat(64);
    assert_eq!(
        update("refs/heads/x", &zero256, &sha256).change(),
        Change::Create
    );

    for (line, message) in [
        ("", "not `<old> <new> <ref>`"),
        (&format!("{OLD} {NEW}"), "not `<old> <new> <ref>`"),
        (
            &format!("{OLD} {NEW} refs/heads/a b"),
            "is not a ref name the gate accepts",
        ),
        (
            &format!("{OLD} xyz refs/heads/x"),
            "\"xyz\" is not an object id",
        ),
        (
            &format!(
                "{} {NEW} refs/heads/x",
                OLD.to_uppercase().replace('1', "A")
            ),
            "is not an object id",
        ),
        (
            &format!("{ZERO} {ZERO} refs/heads/x"),
            "both object ids are zero",
        ),
        (
            &format!("{OLD} {sha256} refs/heads/x"),
            "of different hash kinds",
        ),
        (&format!("{OLD} {NEW} HEAD"), "it is not under refs/"),
        (
            &format!("{OLD} {NEW} refs/heads/x/../y"),
            "is not a ref name",
        ),
        (&format!("{OLD} {NEW} refs/heads/x..y"), "repeated dots"),
        (&format!("{OLD} {NEW} refs/heads/x.lock"), "'.lock'"),
        (&format!("{OLD} {NEW} refs/heads/*"), "is not a ref name"),
        (
            &format!("{OLD} {NEW} refs/heads/\u{202e}kcab"),
            "holds a bidirectional control, U+202E",
        ),
        (
            &format!("{OLD} {NEW} refs/heads/a\u{1b}[2Jb"),
            "\"refs/heads/a\\x1b[2Jb\" is not a ref name",
        ),
    ] {
        let e = RefUpdate::parse_line(line).expect_err(line);
        let text = e.to_string();
        assert!(text.contains(message), "{line:?}: {text}");
        assert!(
            !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "escaped: {text:?}"
        );
    }
}
