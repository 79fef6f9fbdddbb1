//! Pushes through the gate: what the policy allows reaches the upstream, what it refuses does
//! not, and the upstream's own refusals reach the agent.

use serde_json::Value;

use crate::git::{commit, git_in, ok, rev};
use crate::upstream::{FROZEN, TOKEN};
use crate::world::World;
use crate::{agent_clone, assert_token_nowhere};

fn output(cmd: std::process::Command) -> (bool, String) {
    let mut cmd = cmd;
    let out = cmd.output().expect("git push");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn push(work: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut cmd = git_in(work, &["push", "origin"]);
    cmd.args(args);
    output(cmd)
}

fn audit_for<'a>(lines: &'a [Value], refname: &str) -> &'a Value {
    lines
        .iter()
        .rev()
        .find(|l| l["ref"] == refname)
        .unwrap_or_else(|| panic!("no audit line for {refname}: {lines:#?}"))
}

#[test]
fn allowed_pushes_reach_the_upstream() {
    let (world, seed) = World::new();
    let gate = world.gate(&world.config(&["claude/*"]), Some(TOKEN));
    let work = agent_clone(&world, &gate, "agent");
    let new = commit(&work, "work", "the agent's work");
    let (pushed, out) = push(&work, &["HEAD:claude/new"]);
    assert!(pushed, "{out}");
    assert!(
        out.contains("* [new branch]      HEAD -> claude/new"),
        "{out}"
    );
    assert_eq!(
        world.upstream.rev("refs/heads/claude/new").as_deref(),
        Some(new.as_str())
    );

    // A fast-forward of an existing branch.
    ok(git_in(
        &work,
        &["checkout", "--quiet", "-b", "ff", "origin/claude/existing"],
    ));
    let ff = commit(&work, "more", "more work");
    let (pushed, out2) = push(&work, &["HEAD:claude/existing"]);
    assert!(pushed, "{out2}");
    assert_eq!(
        world.upstream.rev("refs/heads/claude/existing").as_deref(),
        Some(ff.as_str())
    );
    assert_eq!(rev(&work, "origin/claude/existing"), ff);

    // A push over git's 1 MiB http.postBuffer goes chunked: the gate de-chunks it.
    ok(git_in(
        &work,
        &["checkout", "--quiet", "-b", "big", "origin/main"],
    ));
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let blob: Vec<u8> = (0..(3 << 20) / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    std::fs::write(work.join("big.bin"), &blob).expect("blob");
    ok(git_in(&work, &["add", "big.bin"]));
    ok(git_in(&work, &["commit", "--quiet", "-m", "3 MiB"]));
    let big = rev(&work, "HEAD");
    let (pushed, out3) = push(&work, &["HEAD:claude/big"]);
    assert!(pushed, "{out3}");
    assert_eq!(
        world.upstream.rev("refs/heads/claude/big").as_deref(),
        Some(big.as_str())
    );
    let upstream_blob = ok(git_in(
        &world.upstream.repo(),
        &["cat-file", "blob", "claude/big:big.bin"],
    ));
    assert!(upstream_blob.stdout == blob, "the blob arrived whole");

    // The mirror took the refs only once the upstream had them.
    let mirror_rev = |r: &str| {
        let o = ok(crate::git::git(&["--git-dir"])
            .arg(gate.mirror("origin"))
            .args(["rev-parse", r]));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(mirror_rev("refs/heads/claude/new"), new);
    assert_eq!(mirror_rev("refs/heads/claude/existing"), ff);

    let audit = gate.audit_lines();
    assert_eq!(audit.len(), 3, "{audit:#?}");
    let created = audit_for(&audit, "refs/heads/claude/new");
    assert_eq!(created["remote"], "origin");
    assert_eq!(created["decision"], "allowed");
    assert_eq!(created["entry"], "claude/*");
    assert_eq!(created["upstream"], "accepted");
    assert_eq!(created["new"], new.as_str());
    assert_eq!(created["old"], "0".repeat(40));
    let moved = audit_for(&audit, "refs/heads/claude/existing");
    assert_eq!(moved["old"], seed.existing.as_str());
    assert_eq!(moved["new"], ff.as_str());
    assert_token_nowhere(&gate, &format!("{out}{out2}{out3}"));
}

#[test]
fn pushes_the_policy_refuses_leave_the_upstream_unchanged() {
    let (world, _) = World::new();
    let gate = world.gate(&world.config(&["claude/*"]), Some(TOKEN));
    let work = agent_clone(&world, &gate, "agent");
    let before = world.upstream.refs();
    commit(&work, "work", "on main");
    ok(git_in(&work, &["tag", "v9"]));

    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["HEAD:main"],
            "refs/heads/main",
            "! [remote rejected] HEAD -> main (no push pattern matches this ref (push: claude/*))",
        ),
        (
            &["--force", "HEAD:claude/existing"],
            "refs/heads/claude/existing",
            "! [remote rejected] HEAD -> claude/existing (not a fast-forward, and no matching pattern allows force (claude/*))",
        ),
        (
            &[":claude/existing"],
            "refs/heads/claude/existing",
            "! [remote rejected] claude/existing (deleting needs a matching pattern that allows delete (claude/*))",
        ),
        (
            &["v9"],
            "refs/tags/v9",
            "! [remote rejected] v9 -> v9 (tags are pushed only when a pattern names them, refs/tags/... (push: claude/*))",
        ),
    ];
    let mut all = String::new();
    for (args, refname, expected) in cases {
        let (pushed, out) = push(&work, args);
        assert!(!pushed, "{args:?} should be refused:\n{out}");
        assert!(out.contains(expected), "{args:?}:\n{out}");
        assert_eq!(
            world.upstream.refs(),
            before,
            "the upstream moved after {args:?}"
        );
        let audit = gate.audit_lines();
        let line = audit_for(&audit, refname);
        assert_eq!(line["decision"], "refused", "{line}");
        assert!(line.get("upstream").is_none(), "not forwarded: {line}");
        assert!(
            expected.contains(line["reason"].as_str().expect("reason")),
            "{line}"
        );
        all.push_str(&out);
    }
    assert_eq!(gate.audit_lines().len(), 4);
    assert_token_nowhere(&gate, &all);
}

#[test]
fn the_upstream_s_own_refusal_reaches_the_agent() {
    let (world, _) = World::new();
    let gate = world.gate(&world.config(&["claude/*"]), Some(TOKEN));
    let work = agent_clone(&world, &gate, "agent");
    let before = world.upstream.refs();
    commit(&work, "work", "frozen work");
    let (pushed, out) = push(&work, &["HEAD:claude/frozen"]);
    assert!(!pushed, "{out}");
    assert!(
        out.contains(
            "! [remote rejected] HEAD -> claude/frozen (upstream refused: upstream policy: refs/heads/claude/frozen is frozen ([remote rejected] (pre-receive hook declined)))"
        ),
        "{out}"
    );
    // The upstream's own lines are relayed too.
    assert!(
        out.contains("remote: gate:   remote: upstream policy: refs/heads/claude/frozen is frozen"),
        "{out}"
    );
    assert_eq!(world.upstream.refs(), before);
    let mirror_has = ok(crate::git::git(&["--git-dir"])
        .arg(gate.mirror("origin"))
        .args(["for-each-ref", FROZEN]));
    assert!(
        mirror_has.stdout.is_empty(),
        "the mirror took a ref the upstream refused"
    );
    let audit = gate.audit_lines();
    let line = audit_for(&audit, FROZEN);
    assert_eq!(line["decision"], "allowed");
    assert_eq!(line["upstream"], "refused");
    assert!(
        line["reason"]
            .as_str()
            .expect("reason")
            .contains("is frozen"),
        "{line}"
    );
    assert_token_nowhere(&gate, &out);
}

#[test]
fn force_and_delete_allowed_by_an_entry_are_forwarded() {
    let (world, seed) = World::new();
    let gate = world.gate(
        &world.config(&["claude/*", "wip/** force delete"]),
        Some(TOKEN),
    );
    let work = agent_clone(&world, &gate, "agent");
    let first = commit(&work, "wip", "first try");
    assert!(push(&work, &["HEAD:wip/a/b"]).0);
    // Rewrite it: a non-fast-forward onto another line of history.
    ok(git_in(
        &work,
        &["checkout", "--quiet", "-b", "again", &seed.existing],
    ));
    let second = commit(&work, "wip", "second try");
    let (pushed, out) = push(&work, &["--force", "HEAD:wip/a/b"]);
    assert!(pushed, "{out}");
    assert!(out.contains("+ "), "a forced update: {out}");
    assert_eq!(
        world.upstream.rev("refs/heads/wip/a/b").as_deref(),
        Some(second.as_str())
    );
    let (pushed, out) = push(&work, &[":wip/a/b"]);
    assert!(pushed, "{out}");
    assert!(out.contains("- [deleted]"), "{out}");
    assert_eq!(world.upstream.rev("refs/heads/wip/a/b"), None);
    let audit = gate.audit_lines();
    let entries: Vec<(&str, &str)> = audit
        .iter()
        .map(|l| {
            (
                l["new"].as_str().unwrap_or(""),
                l["entry"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (first.as_str(), "wip/** force delete"),
            (second.as_str(), "wip/** force delete"),
            (
                "0000000000000000000000000000000000000000",
                "wip/** force delete"
            ),
        ]
    );
    assert!(audit.iter().all(|l| l["upstream"] == "accepted"));
}

#[test]
fn an_atomic_push_with_one_refused_ref_is_refused_whole() {
    let (world, seed) = World::new();
    let gate = world.gate(&world.config(&["claude/*"]), Some(TOKEN));
    let work = agent_clone(&world, &gate, "agent");
    let before = world.upstream.refs();
    commit(&work, "work", "two refs");
    let (pushed, out) = push(&work, &["--atomic", "HEAD:claude/ok", "HEAD:main"]);
    assert!(!pushed, "{out}");
    assert!(
        out.contains("HEAD -> claude/ok (atomic push: refs/heads/main was refused)"),
        "{out}"
    );
    assert!(
        out.contains("HEAD -> main (no push pattern matches this ref"),
        "{out}"
    );
    assert_eq!(world.upstream.refs(), before);
    // Without --atomic the allowed one goes through alone.
    let (pushed, out) = push(&work, &["HEAD:claude/ok", "HEAD:main"]);
    assert!(!pushed, "{out}");
    assert!(
        world.upstream.rev("refs/heads/claude/ok").is_some(),
        "{out}"
    );
    assert_eq!(world.upstream.rev("refs/heads/main"), Some(seed.main));
}
