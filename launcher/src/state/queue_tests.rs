//! Unit tests of the queue: listing, reading, deciding, refusals.

use std::os::unix::fs::symlink;

use claude_bottle_protocol::to_json_pretty;

use super::*;
use crate::state::audit;

fn id(s: &str) -> ProposalId {
    ProposalId::new(s).expect("valid id")
}

fn proposal(s: &str, created: u64) -> Proposal {
    crate::testing::proposal(s, "app", crate::testing::capability("ripgrep"), created)
}

fn file(q: &Queue, p: &Proposal) {
    std::fs::write(q.path(Folder::Proposals, &p.id), to_json_pretty(p)).expect("write proposal");
}

fn setup() -> (tempfile::TempDir, Queue) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let q = Queue::open(&tmp.path().join("state").join("app")).expect("open");
    (tmp, q)
}

#[test]
fn open_creates_the_folders_and_lists_pending_oldest_first() {
    let (_tmp, q) = setup();
    for f in Folder::ALL {
        assert!(
            crate::state::Layout::new(q.state_dir())
                .queue_folder(f)
                .is_dir()
        );
    }
    assert_eq!(q.slug(), "app");
    file(&q, &proposal("b", 20));
    file(&q, &proposal("a", 30));
    file(&q, &proposal("c", 10));
    std::fs::write(q.root.join("proposals/.tmp-x-1"), b"half").expect("temp file");
    let pending = q.pending().expect("pending");
    let ids: Vec<&str> = pending.proposals.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["c", "b", "a"]);
    assert!(pending.problems.is_empty());
}

#[test]
fn decide_writes_once_and_logs() {
    let (_tmp, q) = setup();
    file(&q, &proposal("p1", 1));
    let d = Decision::approve_bound(&proposal("p1", 1), "fine", "alice", 5);
    q.decide(&d).expect("first decision");
    assert_eq!(q.decision(&id("p1")).expect("read"), Some(d.clone()));
    assert_eq!(q.state(&id("p1")).expect("state"), ProposalState::Approved);
    assert!(q.pending().expect("pending").proposals.is_empty());
    let err = q
        .decide(&Decision::reject(id("p1"), "no", "bob", 6))
        .expect_err("second decision refused");
    assert!(matches!(err, QueueError::AlreadyDecided { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("already decided (approved by alice)"),
        "{err}"
    );
    let events: Vec<String> = audit::read(q.state_dir())
        .expect("audit")
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["proposal", "decision"]);
}

#[test]
fn unknown_ids_and_wrong_edits_are_refused() {
    let (_tmp, q) = setup();
    let err = q
        .decide(&Decision::approve(id("nope"), "", "op", 1))
        .expect_err("unknown");
    assert!(matches!(err, QueueError::Unknown { .. }), "{err}");
    file(&q, &proposal("p1", 1));
    let mut d = Decision::approve_bound(&proposal("p1", 1), "", "op", 1);
    d.edit = Some(crate::testing::egress("packages.example.org"));
    let err = q.decide(&d).expect_err("edit of another kind");
    assert!(matches!(err, QueueError::InvalidDecision { .. }), "{err}");
    assert!(!q.has(Folder::Decisions, &id("p1")).expect("stat"));
}

#[test]
fn malformed_files_are_reported_with_their_path() {
    let (_tmp, q) = setup();
    file(&q, &proposal("good", 1));
    std::fs::write(q.path(Folder::Proposals, &id("bad")), b"{not json").expect("write");
    let mut other = proposal("x", 1);
    other.id = id("y");
    std::fs::write(q.path(Folder::Proposals, &id("x")), to_json_pretty(&other)).expect("write");
    let pending = q.pending().expect("pending");
    assert_eq!(pending.proposals.len(), 1);
    let msgs: Vec<String> = pending.problems.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].contains("proposals/bad.json") && msgs[0].contains("failed to parse"),
        "{msgs:?}"
    );
    assert!(msgs[1].contains("holds id \"y\""), "{msgs:?}");
}

#[test]
fn a_symlink_planted_as_the_decision_is_refused_and_not_followed() {
    let (tmp, q) = setup();
    file(&q, &proposal("p1", 1));
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"keep").expect("victim");
    symlink(&victim, q.path(Folder::Decisions, &id("p1"))).expect("plant");
    assert!(
        q.decision(&id("p1")).is_err(),
        "reading through the link is refused"
    );
    assert!(q.decide(&Decision::approve(id("p1"), "", "op", 1)).is_err());
    assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
}

#[test]
fn a_symlinked_queue_folder_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("app");
    std::fs::create_dir_all(crate::state::Layout::new(&state).queue()).expect("queue");
    std::fs::create_dir(tmp.path().join("elsewhere")).expect("elsewhere");
    symlink(tmp.path().join("elsewhere"), state.join("queue/decisions")).expect("plant");
    let err = Queue::open(&state).expect_err("refused");
    assert!(err.to_string().contains("symlink"), "{err}");
}

#[test]
fn find_locates_the_bottle_of_an_id() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("state");
    let a = Queue::open(&root.join("a")).expect("a");
    let b = Queue::open(&root.join("b")).expect("b");
    file(&b, &proposal("p1", 1));
    std::fs::create_dir_all(root.join("no-queue")).expect("plain state folder");
    assert_eq!(find(&root, &id("p1")).expect("found").slug(), "b");
    assert!(matches!(
        find(&root, &id("p2")),
        Err(QueueError::Unknown { .. })
    ));
    file(&a, &proposal("p1", 1));
    assert!(matches!(
        find(&root, &id("p1")),
        Err(QueueError::Ambiguous { .. })
    ));
    assert_eq!(all(&root).expect("all").0.len(), 2);
    assert!(all(&tmp.path().join("missing")).expect("none").0.is_empty());
    std::fs::create_dir(tmp.path().join("elsewhere")).expect("elsewhere");
    std::fs::remove_dir(root.join("a/queue/applied")).expect("rmdir");
    symlink(tmp.path().join("elsewhere"), root.join("a/queue/applied")).expect("plant");
    let (queues, problems) = all(&root).expect("all");
    assert_eq!(
        (queues.len(), problems.len()),
        (1, 1),
        "one broken queue hides no other"
    );
}

#[test]
fn outcomes_are_recorded_once_and_only_for_approvals() {
    let (_tmp, q) = setup();
    file(&q, &proposal("p1", 1));
    file(&q, &proposal("p2", 1));
    let ok = Applied::ok(id("p1"), "image built", 9);
    assert!(matches!(
        q.record_applied(&ok),
        Err(QueueError::NotApproved { .. })
    ));
    q.decide(&Decision::approve_bound(&proposal("p1", 1), "", "op", 2))
        .expect("approve");
    q.decide(&Decision::reject(id("p2"), "no", "op", 2))
        .expect("reject");
    q.record_applied(&ok).expect("first outcome");
    assert_eq!(q.state(&id("p1")).expect("state"), ProposalState::Applied);
    let again = Applied::failed(id("p1"), "boom", 10);
    assert!(matches!(
        q.record_applied(&again),
        Err(QueueError::AlreadyApplied { .. })
    ));
    assert_eq!(q.applied(&id("p1")).expect("read"), Some(ok));
    let p2 = Applied::ok(id("p2"), "", 9);
    assert!(matches!(
        q.record_applied(&p2),
        Err(QueueError::NotApproved { .. })
    ));
    let last = audit::read(q.state_dir()).expect("audit");
    assert_eq!(last.last().map(|e| e.event.as_str()), Some("applied"));
}

#[test]
fn an_approval_binds_to_the_proposal_it_was_made_on() {
    let (_tmp, q) = setup();
    let shown = proposal("p1", 1);
    file(&q, &shown);
    // The proposal file is replaced after the operator read it (the folder is writable to
    // supervise): an approval made on what was shown no longer matches and is refused.
    let mut swapped = shown.clone();
    swapped.reason = "something else entirely".into();
    file(&q, &swapped);
    let err = q
        .decide(&Decision::approve_bound(&shown, "", "op", 1))
        .expect_err("approval of a replaced proposal");
    assert!(matches!(err, QueueError::Changed { .. }), "{err}");
    assert!(
        err.to_string().contains("changed after the decision"),
        "{err}"
    );
    assert!(!q.has(Folder::Decisions, &id("p1")).expect("stat"));
    // An approval that names no proposal at all is refused the same way.
    let err = q
        .decide(&Decision::approve(id("p1"), "", "op", 1))
        .expect_err("unbound approval");
    assert!(err.to_string().contains("no proposal_sha256"), "{err}");
    // A rejection needs no binding: it changes nothing.
    q.decide(&Decision::reject(id("p1"), "no", "op", 1))
        .expect("reject");
}
