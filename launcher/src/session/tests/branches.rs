//! The session's less travelled branches: its own files failing under it, bottles without an
//! egress chain or with a terminal, the process's signals, and the errors and exit codes it
//! reports.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::*;
use crate::backend::{BackendError, Resource, ResourceKind};
use crate::error::{Diagnose as _, Kind};

/// Put something in the way of `path`: a folder becomes a file and a file (or nothing) becomes
/// a folder, so that every write into or over it fails.
fn obstruct(path: &Path) {
    if path.is_dir() {
        std::fs::remove_dir_all(path).expect("remove folder");
        std::fs::write(path, b"in the way").expect("file in the way");
    } else {
        let _ = std::fs::remove_file(path);
        std::fs::create_dir_all(path).expect("folder in the way");
    }
}

/// Wait until the operator's terminal says `text`.
async fn said_soon(b: &Bottle, text: &str) {
    within(async {
        while !b.seen.text().contains(text) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_signal_whose_snapshot_and_keep_both_fail_says_the_files_are_lost() {
    let (b, r) = Bottle::running().await;
    b.fake.fail(Op::Snapshot, "engine gone");
    b.fake.fail(Op::KeepAgent, "engine gone too");
    r.signals.send(15).expect("signal");
    let err = r.outcome().await.expect_err("not kept");
    assert!(matches!(err, SessionError::NotKept { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("what it wrote since the last snapshot is lost"),
        "{err}"
    );
    b.said("could not be kept either");
    b.nothing_left();
}

#[tokio::test]
async fn a_kept_agent_that_still_cannot_be_saved_stops_the_next_start_and_stays() {
    let (b, r) = Bottle::running().await;
    b.fake.agent_writes(b.slug(), "precious");
    b.fake.fail(Op::Snapshot, "no space left on device");
    r.signals.send(15).expect("signal");
    assert_eq!(r.outcome().await.expect("session"), Outcome::Signalled(15));
    let kept = format!("{}-agent-kept", b.slug());
    b.fake.fail(Op::Snapshot, "no space left on device");
    let err = b.start(b.opts()).outcome().await.expect_err("kept again");
    assert!(
        matches!(&err, SessionError::Kept { container, .. } if *container == kept),
        "{err}"
    );
    assert_eq!(b.fake.count(Op::Launch), 1, "nothing launched beside it");
    assert_eq!(b.fake.containers(), std::slice::from_ref(&kept));
    assert_eq!(b.fake.state().containers[&kept].files, "precious");
    b.said(&format!(
        "saving the agent an earlier session of default kept ({kept})"
    ));
}

#[tokio::test]
async fn a_capability_whose_build_fails_before_launch_is_recorded_and_the_bottle_starts_as_it_was()
{
    let b = Bottle::new();
    b.approve("1-cap", capability("nosuch"));
    b.fake.fail(Op::Build, "E: Unable to locate package nosuch");
    let r = b.run().await;
    let applied = b.applied("1-cap").expect("applied");
    assert_eq!(applied.outcome, AppliedOutcome::Failed);
    assert!(
        applied.detail.contains("the rebuild failed") && applied.detail.contains("nosuch"),
        "{}",
        applied.detail
    );
    assert_eq!(b.per_bottle_dockerfile(), None, "not adopted");
    let images = b.fake.state().images.clone();
    assert!(
        !images
            .values()
            .any(|dockerfile| dockerfile.contains("nosuch")),
        "{images:?}"
    );
    b.exits(r, 0).await;
}

#[tokio::test]
async fn what_preparing_the_images_notes_is_said_before_the_agent_starts() {
    let b = Bottle::new();
    b.engine_stores_with("fuse-overlayfs", None);
    let r = b.run().await;
    b.said("fuse-overlayfs cannot bound");
    b.exits(r, 0).await;
}

#[tokio::test]
async fn tokens_not_resolved_ahead_are_read_from_the_environment_and_a_missing_one_stops_the_launch()
 {
    let mut b = Bottle::new();
    let unset = "CLAUDE_BOTTLE_TEST_TOKEN_NOBODY_SETS";
    let mut credentialed = 0;
    for route in &mut b.plan.routes {
        if let Some(auth) = &mut route.auth {
            auth.token_ref = crate::manifest::TokenRef::Env(unset.into());
            credentialed += 1;
        }
    }
    assert!(
        credentialed > 0,
        "the default bottle has a credentialed route"
    );
    let opts = SessionOptions {
        tokens: None,
        ..b.opts()
    };
    let err = b.start(opts).outcome().await.expect_err("no token");
    assert!(matches!(err, SessionError::Tokens(_)), "{err}");
    assert!(err.to_string().contains(unset), "{err}");
    assert_eq!(err.kind(), Kind::Usage, "the operator's to fix: exit 2");
    assert_eq!(b.fake.count(Op::Launch), 0, "refused before the launch");
    b.nothing_left();
}

#[tokio::test]
async fn with_a_terminal_the_launchers_lines_are_framed_for_raw_mode() {
    let b = Bottle::new();
    let r = b
        .run_with(SessionOptions {
            tty: true,
            ..b.opts()
        })
        .await;
    let applied = b.approved("1-host", egress("files.example.org")).await;
    assert_eq!(applied.outcome, AppliedOutcome::Ok);
    b.said("\r\nclaude-bottle: egress to files.example.org approved and allowed\r\n");
    b.exits(r, 0).await;
}

#[tokio::test]
async fn a_bottle_that_cannot_file_proposals_builds_no_root_step_ahead() {
    let mut b = Bottle::new();
    b.plan.supervise = false;
    let r = b.run().await;
    // The chain's readiness is what would start it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.exits(r, 0).await;
    assert_eq!(b.fake.count(Op::WarmRootStep), 0);
}

#[tokio::test]
async fn a_decision_that_cannot_be_audited_is_still_applied() {
    let (b, r) = Bottle::running().await;
    obstruct(&b.plan.layout().audit_log());
    let applied = b.approved("1-host", egress("files.example.org")).await;
    assert_eq!(applied.outcome, AppliedOutcome::Ok, "{}", applied.detail);
    assert!(audit::read(&b.plan.state_dir).is_err(), "nothing audited");
    b.exits(r, 0).await;
}

#[tokio::test]
async fn a_waiting_capability_is_decided_when_its_turn_comes_and_may_be_refused_then() {
    let (b, r) = Bottle::running().await;
    b.approve_held("1-a", Op::Build).await;
    b.approve_replaced("2-b");
    // The launcher audits a hand-written decision when it reads it: from then on, 2-b waits.
    within(async {
        let audited = |id: &str| {
            audit::read(&b.plan.state_dir)
                .expect("audit")
                .iter()
                .any(|e| e.event == "decision" && e.id.to_string() == id)
        };
        while !audited("2-b") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(b.applied("2-b"), None, "waits for 1-a");
    b.fake.release(Op::Build);
    assert_eq!(b.applied_soon("1-a").await.outcome, AppliedOutcome::Ok);
    let refused = b.applied_soon("2-b").await;
    assert_eq!(refused.outcome, AppliedOutcome::Failed);
    assert!(
        refused.detail.starts_with("refused, nothing applied"),
        "{}",
        refused.detail
    );
    b.said("refused to apply 2-b");
    assert_eq!(b.fake.count(Op::SwapIn), 1, "only 1-a was swapped in");
    b.exits(r, 0).await;
}

/// A file an approved host must be written to cannot be: the approval is recorded as failed and
/// pipelock is not reloaded.
#[tokio::test]
async fn an_approved_host_whose_files_cannot_be_written_is_recorded_as_failed() {
    type Where = fn(&crate::state::Layout) -> std::path::PathBuf;
    let files: [(Where, &str); 3] = [
        (|l| l.approved_hosts(), "failed to record the approved host"),
        (|l| l.current_config(), "current-config"),
        (|l| l.pipelock(), "pipelock"),
    ];
    for (path, says) in files {
        let (b, r) = Bottle::running().await;
        let path = path(&b.plan.layout());
        obstruct(&path);
        let applied = b.approved("1-host", egress("files.example.org")).await;
        assert_eq!(
            applied.outcome,
            AppliedOutcome::Failed,
            "{}",
            path.display()
        );
        assert!(applied.detail.contains(says), "{says}: {}", applied.detail);
        assert_eq!(b.fake.count(Op::Reload), 0, "{says}");
        b.exits(r, 0).await;
    }
}

#[tokio::test]
async fn a_host_approved_for_a_bottle_without_an_egress_chain_applies_at_the_next_start() {
    let mut b = Bottle::new();
    b.plan.allowlist.clear();
    b.plan.routes.clear();
    let r = b.run().await;
    let applied = b.approved("1-host", egress("files.example.org")).await;
    assert_eq!(applied.outcome, AppliedOutcome::Ok, "{}", applied.detail);
    b.said(
        "egress to files.example.org approved; this bottle had no egress chain, it applies at the next start",
    );
    assert_eq!(b.fake.count(Op::Reload), 0);
    let hosts = crate::state::approved::hosts(&b.plan.state_dir).expect("approved hosts");
    assert_eq!(hosts, ["files.example.org"]);
    b.exits(r, 0).await;
}

/// The chain fails while a capability builds, and the agent cannot be stopped for the failure:
/// the finished build finds the session ending and records that.
#[tokio::test]
async fn a_chain_failure_whose_agent_cannot_be_stopped_ends_the_session_during_a_rebuild() {
    let b = Bottle::new();
    let r = b.start_held(Op::AwaitSidecars).await;
    b.approve_held("1-cap", Op::Build).await;
    b.fake.fail(Op::StopAgent, "permission denied");
    b.fake.fail(Op::AwaitSidecars, "pipelock exited (code 1)");
    b.fake.release(Op::AwaitSidecars);
    // No waiting for an exit that may never come: the session ends with the chain's failure,
    // the rebuild dropped and the approval left for the next start.
    let err = r.failure().await;
    assert!(err.contains("pipelock exited"), "{err}");
    assert_eq!(b.applied("1-cap"), None, "applied at the next start");
    b.nothing_left();
}

#[tokio::test]
async fn a_rebuilt_agent_whose_current_config_cannot_be_written_is_not_swapped_in() {
    let (b, r) = Bottle::running().await;
    let current_config = b.plan.layout().current_config();
    obstruct(&current_config);
    let applied = b.approved("1-cap", capability("ripgrep")).await;
    assert_eq!(applied.outcome, AppliedOutcome::Failed);
    assert!(
        applied.detail.contains("current-config"),
        "{}",
        applied.detail
    );
    assert_eq!(b.fake.count(Op::StopAgent), 0, "the agent runs on");
    assert!(b.agent().running);
    b.exits(r, 0).await;
}

#[tokio::test]
async fn an_outcome_that_cannot_be_recorded_is_said() {
    let (b, r) = Bottle::running().await;
    // A planted link where the record goes: the record is refused, never written through it.
    let record = b
        .queue()
        .path(Folder::Applied, &ProposalId::new("1-host").expect("id"));
    std::os::unix::fs::symlink("/nonexistent", &record).expect("symlink");
    b.approve("1-host", egress("files.example.org"));
    said_soon(&b, "failed to record the outcome of 1-host").await;
    assert_eq!(
        b.fake.count(Op::Reload),
        1,
        "applied once, not again at each poll"
    );
    b.exits(r, 0).await;
}

#[tokio::test]
async fn a_teardown_that_fails_is_retried_once_and_leaves_the_outcome_as_it_was() {
    let (b, r) = Bottle::running().await;
    b.fake.fail(Op::Stop, "engine gone");
    b.fake.fail(Op::Stop, "engine gone");
    b.exits(r, 5).await;
    assert_eq!(b.fake.count(Op::Stop), 2, "retried once");
    assert!(
        !b.fake.containers().is_empty(),
        "left for `claude-bottle stop`"
    );
}

/// [`super::super::run`]: the process's own SIGTERM ends the session as a signal does.
#[tokio::test]
async fn run_listens_to_the_process_signals() {
    let b = Bottle::new();
    let (fake, plan, opts) = (b.fake.clone(), b.plan.clone(), b.opts());
    let task = tokio::spawn(async move { super::super::run(&fake, &plan, opts).await });
    // Its handlers are in place once it launched: raising the signal cannot kill the tests.
    within(b.fake.reached(Op::AwaitSidecars, 1)).await;
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM).expect("raise");
    let outcome = within(task).await.expect("session task");
    assert_eq!(outcome.expect("session"), Outcome::Signalled(15));
    b.nothing_left();
}

#[test]
fn the_launchers_exit_code_is_the_agents_or_128_and_the_signal() {
    for (outcome, code) in [
        (Outcome::Exited(0), 0),
        (Outcome::Exited(3), 3),
        (Outcome::Exited(300), 255),
        (Outcome::Exited(-1), 0),
        (Outcome::Signalled(2), 130),
        (Outcome::Signalled(15), 143),
        (Outcome::Signalled(200), 1),
    ] {
        assert_eq!(outcome.exit_code(), code, "{outcome:?}");
    }
}

#[test]
fn leftovers_are_described_with_their_state_when_they_have_one() {
    let mut r = Resource {
        kind: ResourceKind::Container,
        name: "cb-x-agent".into(),
        role: "agent".into(),
        state: "exited".into(),
        created: 0,
        image: String::new(),
        health: None,
        launcher_pid: None,
        kept: false,
    };
    assert_eq!(super::super::describe(&r), "container cb-x-agent (exited)");
    r.state.clear();
    assert_eq!(super::super::describe(&r), "container cb-x-agent");
}

#[test]
fn a_launcher_pid_is_alive_only_when_it_is_another_running_process() {
    use super::super::pid_alive;
    assert!(pid_alive(1), "init runs");
    assert!(
        !pid_alive(std::process::id()),
        "this launcher is not its own leftover"
    );
    assert!(!pid_alive(u32::MAX), "not a pid");
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let pid = child.id();
    child.wait().expect("wait");
    assert!(!pid_alive(pid), "an ended process");
}

#[test]
fn a_session_error_exits_as_its_cause_says_and_keeps_its_hint() {
    let running = BackendError::AlreadyRunning {
        slug: "cb-x".into(),
        pid: 1,
    };
    let (kind, hint) = (running.kind(), running.hint());
    let err = SessionError::Backend(running);
    assert_eq!(err.kind(), Kind::Environment);
    assert_eq!((err.kind(), err.hint()), (kind, hint));
    let kept = SessionError::Kept {
        bottle: "x".into(),
        container: "cb-x-agent-kept".into(),
        cause: BackendError::AlreadyRunning {
            slug: "cb-x".into(),
            pid: 1,
        },
    };
    assert_eq!(kept.kind(), Kind::Internal);
    assert_eq!(kept.hint(), None, "what to do is in the message");
    assert!(kept.to_string().contains("claude-bottle stop x"), "{kept}");
}

/// The agent ends while the chain is still being created and a capability is being rebuilt:
/// the session waits for the chain, passing over the rebuild's end (its approval waits for the
/// next start) and the chain's own failure (the agent's exit code stands).
#[tokio::test]
async fn an_agent_that_ends_while_its_chain_is_created_passes_over_what_finishes_meanwhile() {
    let b = Bottle::new();
    let r = b.start_held(Op::StartSidecars).await;
    within(b.fake.reached(Op::RunAgent, 1)).await;
    b.approve_held("1-cap", Op::Build).await;
    b.fake.exit_agent(b.slug(), 4);
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.fake.release(Op::Build);
    // The rebuild's last engine call; its end reaches the session while it waits.
    within(b.fake.reached(Op::FirstEntries, 2)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.fake.fail(Op::StartSidecars, "network create failed");
    b.fake.release(Op::StartSidecars);
    assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(4));
    assert_eq!(b.applied("1-cap"), None, "applied at the next start");
    assert_eq!(b.fake.count(Op::StopAgent), 0);
    b.nothing_left();
}

/// What the session logs, captured as text.
#[derive(Debug, Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The remediation bench (tests/benches/remediation.rs) splits an approval into phases by these
/// log lines and their `ms` fields.
#[tokio::test]
async fn a_swap_logs_the_phases_the_remediation_bench_reads() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // The test's runtime runs every task of the session on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let b = Bottle::new();
    // A log call another test made for the first time while this subscriber was being set may
    // have cached "nobody listens": ask every call site again, now that it is set.
    tracing::callsite::rebuild_interest_cache();
    let r = b.run().await;
    let applied = b.approved("1-cap", capability("ripgrep")).await;
    assert_eq!(applied.outcome, AppliedOutcome::Ok, "{}", applied.detail);
    b.exits(r, 0).await;
    let text = String::from_utf8_lossy(&log.0.lock().expect("log")).into_owned();
    // tests/benches/remediation.rs's PHASES.
    for phase in [
        "rebuild finished",
        "successor created",
        "agent stopped ",
        "files carried over, successor swapped in",
    ] {
        assert!(
            text.lines().any(|l| l.contains(phase) && l.contains("ms=")),
            "{phase}: {text}"
        );
    }
}

#[test]
fn a_panic_is_reported_with_its_message() {
    use super::super::panic_text;
    assert_eq!(panic_text(Box::new("boom")), "boom");
    assert_eq!(
        panic_text(Box::new(String::from("formatted boom"))),
        "formatted boom"
    );
    assert_eq!(panic_text(Box::new(42)), "unknown panic");
}

/// A second capability whose successor cannot be created is undone back to the Dockerfile the
/// first one made, not to none.
#[tokio::test]
async fn an_undone_approval_restores_the_dockerfile_the_one_before_made() {
    let (b, r) = Bottle::running().await;
    assert_eq!(
        b.approved("1-cap", capability("ripgrep")).await.outcome,
        AppliedOutcome::Ok
    );
    let first = b.per_bottle_dockerfile().expect("adopted");
    b.fake.fail(Op::CreateSuccessor, "no such image");
    let applied = b.approved("2-cap", capability("jq")).await;
    assert_eq!(applied.outcome, AppliedOutcome::Failed);
    assert!(
        applied.detail.contains("the approval was undone"),
        "{}",
        applied.detail
    );
    assert_eq!(b.per_bottle_dockerfile().as_deref(), Some(first.as_str()));
    let config = std::fs::read_to_string(
        b.plan
            .layout()
            .current_config()
            .join(claude_bottle_protocol::queue::current_config::DOCKERFILE),
    )
    .expect("current-config Dockerfile");
    assert!(
        config.contains("ripgrep") && !config.contains("jq"),
        "the agent reads the Dockerfile as it is: {config}"
    );
    b.exits(r, 0).await;
}
