//! Keys and refreshes of the dashboard's model, and the commands they give carried out on fixture
//! homes through the verbs' own functions.

use claude_bottle_protocol::queue::Folder;
use claude_bottle_protocol::{
    Capability, Decision, ProposalId, ProposalKind, Verdict, proposal_digest,
};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::super::fixture::{Fixture, NOW, full};
use super::super::gather;
use super::*;

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        assert_eq!(app.key(key(c)), None);
    }
}

fn rg_jq() -> ProposalKind {
    ProposalKind::Capability(Capability {
        apt: vec!["ripgrep".into(), "jq".into()],
        dockerfile_lines: vec![],
    })
}

/// `myapp` with a capability (oldest) and an egress proposal pending.
fn fixture() -> (Fixture, App) {
    let fx = Fixture::new();
    fx.propose("myapp", "100-aaaa", rg_jq(), 300);
    fx.propose(
        "myapp",
        "200-bbbb",
        crate::testing::egress("packages.example.org"),
        200,
    );
    let app = fx.app(&Ok(vec![full("myapp", 60)]));
    (fx, app)
}

fn decision(fx: &Fixture, id: &str) -> Option<Decision> {
    fx.queue("myapp")
        .decision(&ProposalId::new(id).expect("id"))
        .expect("readable")
}

/// The audit log's events of `id`, in order.
fn audited(fx: &Fixture, id: &str) -> Vec<String> {
    crate::state::audit::read(&fx.home.state_dir("myapp"))
        .expect("audit log")
        .into_iter()
        .filter(|e| e.id.as_str() == id)
        .map(|e| e.event)
        .collect()
}

#[test]
fn q_and_ctrl_c_quit_from_anywhere_ctrl_c_even_while_typing() {
    let (_fx, mut app) = fixture();
    assert_eq!(app.key(key('q')), Some(Command::Quit));
    app.key(key('r'));
    assert_eq!(app.key(key('q')), None, "a q in a reason is a letter");
    assert_eq!(
        app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Some(Command::Quit)
    );
}

#[test]
fn arrows_move_in_the_focused_pane_and_tab_switches_it() {
    let (_fx, mut app) = fixture();
    assert_eq!(app.focus, Focus::Proposals);
    assert_eq!(
        app.selected().map(|i| i.proposal.id.as_str()),
        Some("100-aaaa")
    );
    app.key(code(KeyCode::Down));
    assert_eq!(
        app.selected().map(|i| i.proposal.id.as_str()),
        Some("200-bbbb")
    );
    app.key(key('j'));
    assert_eq!(app.proposal, 1, "stays on the last");
    app.key(key('k'));
    app.key(code(KeyCode::Up));
    assert_eq!(app.proposal, 0, "stays on the first");
    app.key(code(KeyCode::Tab));
    assert_eq!(app.focus, Focus::Bottles);
    app.key(key('j'));
    assert_eq!(app.proposal, 0, "the proposals pane keeps its selection");
}

#[test]
fn a_new_pending_proposal_rings_once_and_keeps_the_selection() {
    let (fx, mut app) = fixture();
    app.key(key('j'));
    assert!(!app.update(fx.snapshot(&Ok(vec![]))), "nothing new");
    // An older proposal arrives: the selection stays on the one the operator reads.
    fx.propose("myapp", "050-cccc", rg_jq(), 400);
    assert!(app.update(fx.snapshot(&Ok(vec![]))), "the bell rings");
    assert_eq!(
        app.selected().map(|i| i.proposal.id.as_str()),
        Some("200-bbbb")
    );
    assert!(!app.update(fx.snapshot(&Ok(vec![]))), "only once");
}

#[test]
fn the_first_snapshot_does_not_ring() {
    let (fx, _) = fixture();
    let mut app = App::default();
    assert!(!app.update(fx.snapshot(&Ok(vec![]))));
}

#[test]
fn pending_proposals_come_oldest_first_across_bottles_then_the_decided() {
    let fx = Fixture::new();
    fx.propose("b", "300-cccc", rg_jq(), 10);
    fx.propose("a", "100-aaaa", rg_jq(), 500);
    let p = fx.propose("a", "200-bbbb", rg_jq(), 400);
    fx.decide(
        "a",
        &Decision::reject(p.id.clone(), "no", "alice", NOW - 5),
        None,
    );
    let s = fx.snapshot(&Ok(vec![]));
    let ids: Vec<&str> = s.proposals.iter().map(|i| i.proposal.id.as_str()).collect();
    assert_eq!(ids, ["100-aaaa", "300-cccc", "200-bbbb"]);
    let pending: Vec<(&str, usize)> = s
        .bottles
        .iter()
        .map(|b| (b.slug.as_str(), b.pending))
        .collect();
    assert_eq!(pending, [("a", 1), ("b", 1)]);
}

#[test]
fn a_approves_through_the_approve_verb_bound_to_the_digest_shown() {
    let (fx, mut app) = fixture();
    let command = app.key(key('a')).expect("a command");
    let Command::Approve(a) = &command else {
        panic!("{command:?}")
    };
    let shown = app.selected().expect("selected").proposal.sha256.clone();
    assert_eq!(a.sha256.as_deref(), Some(shown.as_str()));
    let outcome = gather::act(&fx.home, &command).expect("acted");
    assert_eq!(
        outcome,
        Ok("approved 100-aaaa (myapp): apt install ripgrep jq".into())
    );
    let d = decision(&fx, "100-aaaa").expect("decided");
    assert_eq!(d.decision, Verdict::Approve);
    assert_eq!(d.proposal_sha256.as_deref(), Some(shown.as_str()));
    assert_eq!(audited(&fx, "100-aaaa"), ["proposal", "decision"]);
    // Read again, it is decided: a second `a` is refused without a command.
    app.update(fx.snapshot(&Ok(vec![])));
    let at = app
        .snapshot
        .proposals
        .iter()
        .position(|i| i.proposal.id == "100-aaaa")
        .expect("listed as decided");
    app.proposal = at;
    assert_eq!(app.key(key('a')), None);
    assert!(
        app.status
            .as_ref()
            .is_some_and(|s| s.error && s.text.contains("already approved"))
    );
}

#[test]
fn a_proposal_replaced_after_it_was_shown_is_not_approved() {
    let (fx, mut app) = fixture();
    let command = app.key(key('a')).expect("a command");
    // The agent's side rewrites the file between the screen and the key.
    let mut p = fx
        .queue("myapp")
        .proposal(&ProposalId::new("100-aaaa").expect("id"))
        .expect("read")
        .expect("there");
    p.kind = crate::testing::capability("netcat-openbsd");
    fx.file("myapp", &p);
    let outcome = gather::act(&fx.home, &command).expect("acted");
    let err = outcome.expect_err("refused");
    assert!(err.contains("not the text you read"), "{err}");
    assert_eq!(decision(&fx, "100-aaaa"), None);
    assert_ne!(
        Some(proposal_digest(&p)),
        app.selected().map(|i| i.proposal.sha256.clone())
    );
}

#[test]
fn e_edits_the_packages_in_place_and_approves_the_edit() {
    let (fx, mut app) = fixture();
    assert_eq!(app.key(key('e')), None);
    let Mode::Edit { input, .. } = &app.mode else {
        panic!("{:?}", app.mode)
    };
    assert_eq!(input.text, "ripgrep jq");
    // Drop `jq`: three backspaces and the space.
    for _ in 0..3 {
        app.key(code(KeyCode::Backspace));
    }
    let command = app.key(code(KeyCode::Enter)).expect("a command");
    assert_eq!(
        gather::act(&fx.home, &command).expect("acted"),
        Ok("approved 100-aaaa (myapp, edited): apt install ripgrep".into())
    );
    let d = decision(&fx, "100-aaaa").expect("decided");
    assert_eq!(
        d.edit,
        Some(ProposalKind::Capability(Capability {
            apt: vec!["ripgrep".into()],
            dockerfile_lines: vec![],
        }))
    );
}

#[test]
fn an_edit_the_approve_verb_refuses_is_refused_the_same_way() {
    let (fx, mut app) = fixture();
    app.key(key('e'));
    app.key(code(KeyCode::Home));
    typed(&mut app, "../evil ");
    let command = app.key(code(KeyCode::Enter)).expect("a command");
    let err = gather::act(&fx.home, &command)
        .expect("acted")
        .expect_err("refused");
    assert!(
        err.starts_with("error: failed to approve 100-aaaa"),
        "{err}"
    );
    assert_eq!(decision(&fx, "100-aaaa"), None);
}

#[test]
fn an_egress_proposal_cannot_be_edited_and_esc_cancels_an_edit() {
    let (_fx, mut app) = fixture();
    app.key(key('j'));
    assert_eq!(app.key(key('e')), None);
    assert_eq!(app.mode, Mode::Normal);
    assert!(app.status.as_ref().is_some_and(|s| s.error));
    app.key(key('k'));
    app.key(key('e'));
    assert_eq!(app.key(code(KeyCode::Esc)), None);
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn r_rejects_with_the_reason_typed_in_place_through_the_reject_verb() {
    let (fx, mut app) = fixture();
    app.key(key('j'));
    app.key(key('r'));
    assert_eq!(
        app.key(code(KeyCode::Enter)),
        None,
        "a blank reason is refused"
    );
    assert!(matches!(app.mode, Mode::Reject { .. }));
    typed(&mut app, "use the mirrorr");
    app.key(code(KeyCode::Backspace));
    let command = app.key(code(KeyCode::Enter)).expect("a command");
    assert_eq!(
        command,
        Command::Reject {
            id: "200-bbbb".into(),
            reason: "use the mirror".into()
        }
    );
    assert_eq!(
        gather::act(&fx.home, &command).expect("acted"),
        Ok("rejected 200-bbbb (myapp): use the mirror".into())
    );
    let d = decision(&fx, "200-bbbb").expect("decided");
    assert_eq!(d.decision, Verdict::Reject);
    assert_eq!(d.reason, "use the mirror");
    assert_eq!(audited(&fx, "200-bbbb"), ["proposal", "decision"]);
    assert!(
        fx.queue("myapp")
            .has(Folder::Decisions, &ProposalId::new("200-bbbb").expect("id"))
            .expect("readable")
    );
}

#[test]
fn s_asks_and_only_y_stops_the_selected_bottle() {
    let (_fx, mut app) = fixture();
    app.key(code(KeyCode::Tab));
    assert_eq!(app.key(key('s')), None);
    assert_eq!(
        app.mode,
        Mode::ConfirmStop {
            slug: "myapp".into()
        }
    );
    assert_eq!(app.key(key('n')), None);
    assert_eq!(app.mode, Mode::Normal);
    app.key(key('s'));
    assert_eq!(
        app.key(key('y')),
        Some(Command::Stop {
            slug: "myapp".into()
        })
    );
}

#[test]
fn l_opens_the_audit_log_of_the_bottle_and_q_closes_it() {
    let (fx, mut app) = fixture();
    let command = app.key(key('l')).expect("a command");
    assert_eq!(
        command,
        Command::OpenLog {
            slug: "myapp".into()
        }
    );
    let lines = gather::audit_lines(&fx.home, "myapp").expect("log");
    assert_eq!(lines.len(), 2, "the two proposals noted: {lines:?}");
    assert!(
        lines[0].contains("proposal") && lines[0].contains("100-aaaa"),
        "{lines:?}"
    );
    app.open_log("myapp".into(), lines);
    app.key(key('k'));
    assert!(matches!(app.mode, Mode::Log { .. }));
    assert_eq!(app.key(key('q')), None);
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn a_bottle_without_a_log_says_so() {
    let fx = Fixture::new();
    assert_eq!(
        gather::audit_lines(&fx.home, "nothing"),
        Ok(vec!["bottle nothing has no audit log yet".into()])
    );
}

#[test]
fn help_closes_on_any_key_and_keys_do_nothing_on_an_empty_screen() {
    let mut app = App::default();
    app.key(key('?'));
    assert_eq!(app.mode, Mode::Help);
    assert_eq!(app.key(key('a')), None);
    assert_eq!(app.mode, Mode::Normal);
    for c in ['a', 'e', 'r', 'l', 's', 'j', 'k'] {
        assert_eq!(app.key(key(c)), None);
        assert_eq!(app.mode, Mode::Normal);
    }
}

#[test]
fn the_input_line_edits_where_the_cursor_is() {
    let mut i = Input::new("ab");
    i.key(code(KeyCode::Left));
    i.key(key('é'));
    assert_eq!((i.text.as_str(), i.cursor), ("aéb", 2));
    i.key(code(KeyCode::Delete));
    i.key(code(KeyCode::Home));
    i.key(code(KeyCode::Delete));
    assert_eq!(i.text, "é");
    i.key(code(KeyCode::End));
    i.key(code(KeyCode::Backspace));
    i.key(code(KeyCode::Backspace));
    assert_eq!((i.text.as_str(), i.cursor), ("", 0));
    i.key(key('x'));
    i.key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    assert_eq!(i.text, "");
}

#[test]
fn a_bottle_is_running_when_one_of_its_agents_runs() {
    let mut b = super::super::fixture::running(
        "myapp",
        &[("agent", "exited", None), ("agent", "running", None)],
        10,
    );
    b.resources[0].name = "myapp-agent-kept".into();
    let s = super::super::gather::snapshot(
        &Fixture::new().home,
        &Ok(vec![b]),
        NOW,
        &mut gather::Noted::default(),
    );
    let bottle = &s.bottles[0];
    assert!(bottle.running());
    assert_eq!(bottle.agent().map(|a| a.name.as_str()), Some("myapp-agent"));
}

#[test]
fn a_proposal_is_logged_as_seen_once_a_run_without_reading_the_log_again() {
    let fx = Fixture::new();
    fx.propose("myapp", "100-aaaa", rg_jq(), 300);
    let mut noted = gather::Noted::default();
    gather::snapshot(&fx.home, &Ok(vec![]), NOW, &mut noted);
    assert_eq!(audited(&fx, "100-aaaa"), ["proposal"]);
    // Had the second read scanned the log, it would log the proposal again into the new one.
    let log = crate::state::Layout::new(&fx.home.state_dir("myapp")).audit_log();
    std::fs::remove_file(&log).expect("remove the log");
    gather::snapshot(&fx.home, &Ok(vec![]), NOW, &mut noted);
    assert!(!log.exists());
    // A new run (another dashboard, `queue`) logs what its log lacks.
    gather::snapshot(&fx.home, &Ok(vec![]), NOW, &mut gather::Noted::default());
    assert_eq!(audited(&fx, "100-aaaa"), ["proposal"]);
}
