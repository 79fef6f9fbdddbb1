//! The session driven through the fake backend: swaps, failed builds, chain failures, signals at
//! every step and crashes between steps, without an engine. The end-to-end tests (tests/e2e)
//! prove the same on the real one.

use std::time::Duration;

use claude_bottle_protocol::Outcome as AppliedOutcome;
use claude_bottle_protocol::queue::Folder;
use claude_bottle_protocol::{
    Applied, Decision, Proposal, ProposalId, ProposalKind, to_json_pretty,
};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::fake::{Fake, Op};
use super::{Captured, Console, Outcome, SessionError, SessionOptions, Signals, run_with};
use crate::home::Home;
use crate::plan::BottlePlan;
use crate::state::{Queue, audit};
use crate::testing::{capability, egress};

mod branches;
mod prepare;

/// Long enough for anything the fake does; a hang fails the test instead of blocking the suite.
const PATIENCE: Duration = Duration::from_secs(20);

/// A bottle planned from the embedded default (supervise and the egress chain) in a temporary home.
struct Bottle {
    _home: tempfile::TempDir,
    plan: BottlePlan,
    fake: Fake,
    seen: Captured,
    console: Console,
}

impl Bottle {
    fn new() -> Self {
        let home = tempfile::tempdir().expect("tempdir");
        let h = Home::new(home.path());
        let manifest = crate::manifest::load(&h, "default").expect("embedded default");
        let plan = crate::plan::build(&h, manifest, &Default::default(), |_| None);
        let (console, seen) = Console::captured();
        Self {
            _home: home,
            plan,
            fake: Fake::default(),
            seen,
            console,
        }
    }

    /// A new bottle whose session runs (see [`Bottle::run`]).
    async fn running() -> (Self, Running) {
        let b = Self::new();
        let r = b.run().await;
        (b, r)
    }

    fn slug(&self) -> &str {
        &self.plan.slug
    }

    fn opts(&self) -> SessionOptions {
        let tokens = crate::egress::EgressRoutes::from_routes(&self.plan.routes)
            .resolve(|_| Some("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789".into()))
            .expect("tokens");
        // The static binaries the sidecar images are made of: an ELF header is all `prepare`
        // reads of them.
        let bin = self._home.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        for name in ["claude-bottle-shim", "claude-bottle-supervise"] {
            let mut elf = b"\x7fELF\x02\x01".to_vec();
            elf.resize(64, 0);
            elf.extend_from_slice(name.as_bytes());
            std::fs::write(bin.join(name), elf).expect("binary");
        }
        SessionOptions {
            tokens: Some(tokens),
            config: crate::config::Config {
                bin_dir: Some(bin),
                ..crate::config::Config::default()
            },
            ..SessionOptions::default()
        }
    }

    /// The image the agent was built as for `id`'s capability, from the fake's images.
    fn image_with(&self, package: &str) -> String {
        let s = self.fake.state();
        let found: Vec<&String> = s
            .images
            .iter()
            .filter(|(tag, dockerfile)| dockerfile.contains(package) && !tag.ends_with("-root"))
            .map(|(tag, _)| tag)
            .collect();
        assert_eq!(found.len(), 1, "one image with {package}: {found:?}");
        found[0].clone()
    }

    /// Start a session in its own task; the sender delivers signals to it.
    fn start(&self, opts: SessionOptions) -> Running {
        let (signals, rx) = Signals::channel();
        let fake = self.fake.clone();
        let plan = self.plan.clone();
        let console = self.console.clone();
        let task = tokio::spawn(async move { run_with(&fake, &plan, opts, console, rx).await });
        Running { task, signals }
    }

    /// Start a session that stops at `op` (until released) and wait until it got there.
    async fn start_held(&self, op: Op) -> Running {
        self.fake.hold(op);
        let r = self.start(self.opts());
        within(self.fake.held(op)).await;
        r
    }

    /// Start a session and wait until it runs: launched, its agent started and its chain up.
    async fn run_with(&self, opts: SessionOptions) -> Running {
        let (agents, chains) = (
            self.fake.count(Op::RunAgent),
            self.fake.count(Op::AwaitSidecars),
        );
        let r = self.start(opts);
        within(self.fake.reached(Op::RunAgent, agents + 1)).await;
        within(self.fake.reached(Op::AwaitSidecars, chains + 1)).await;
        r
    }

    /// [`Bottle::run_with`] the usual options.
    async fn run(&self) -> Running {
        self.run_with(self.opts()).await
    }

    /// The agent exits with `code`, and so the session does.
    async fn exits(&self, r: Running, code: i64) {
        self.fake.exit_agent(self.slug(), code);
        assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(code));
    }

    fn queue(&self) -> Queue {
        Queue::open(&self.plan.state_dir).expect("queue")
    }

    /// File `kind` as supervise would, and approve it as `approve` would.
    fn approve(&self, id: &str, kind: ProposalKind) -> Proposal {
        let p = self.file(id, kind);
        self.queue()
            .decide(&Decision::approve_bound(&p, "ok", "op", audit::now()))
            .expect("decide");
        p
    }

    /// Approve capability `id` (ripgrep) and wait until carrying it out stops at `op`.
    async fn approve_held(&self, id: &str, op: Op) {
        self.fake.hold(op);
        self.approve(id, capability("ripgrep"));
        within(self.fake.held(op)).await;
    }

    /// [`Bottle::approve`], then wait for the record of what it did.
    async fn approved(&self, id: &str, kind: ProposalKind) -> Applied {
        self.approve(id, kind);
        self.applied_soon(id).await
    }

    fn file(&self, id: &str, kind: ProposalKind) -> Proposal {
        let q = self.queue();
        let created = 1_700_000_000 + q.ids(Folder::Proposals).expect("ids").len() as u64;
        let p = crate::testing::proposal(id, &self.plan.name, kind, created);
        std::fs::write(q.path(Folder::Proposals, &p.id), to_json_pretty(&p)).expect("file");
        p
    }

    /// File a capability, approve it, and have the agent rewrite the proposal before the
    /// launcher reads it: the decision no longer matches what is filed.
    fn approve_replaced(&self, id: &str) {
        let p = self.file(id, capability("ripgrep"));
        let decision = Decision::approve_bound(&p, "ok", "op", audit::now());
        self.file(id, capability("nmap"));
        std::fs::write(
            self.queue().path(Folder::Decisions, &p.id),
            to_json_pretty(&decision),
        )
        .expect("decision");
    }

    fn applied(&self, id: &str) -> Option<Applied> {
        self.queue()
            .applied(&ProposalId::new(id).expect("id"))
            .expect("applied")
    }

    /// The outcome recorded for `id`, which must be recorded.
    fn outcome_of(&self, id: &str) -> AppliedOutcome {
        self.applied(id).expect("applied").outcome
    }

    /// Wait for the applied record of `id`.
    async fn applied_soon(&self, id: &str) -> Applied {
        within(async {
            loop {
                if let Some(a) = self.applied(id) {
                    return a;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    fn per_bottle_dockerfile(&self) -> Option<String> {
        std::fs::read_to_string(self.plan.layout().per_bottle_dockerfile()).ok()
    }

    fn agent(&self) -> super::fake::Container {
        self.fake.state().containers[&format!("{}-agent", self.slug())].clone()
    }

    /// The engine answers that it stores images with `driver` on `backing_fs`.
    fn engine_stores_with(&self, driver: &str, backing_fs: Option<&str>) {
        self.fake.state().engine = crate::backend::EngineFacts {
            storage_driver: driver.into(),
            backing_fs: backing_fs.map(Into::into),
            runtimes: vec!["runc".into()],
        };
    }

    /// `applied` says the session ended before the rebuilt agent could start, and none was.
    fn swap_dropped(&self, applied: &Applied) {
        assert_eq!(applied.outcome, AppliedOutcome::Failed);
        let ended = "the session ended before the rebuilt agent could start";
        assert!(applied.detail.contains(ended), "{}", applied.detail);
        assert_eq!(self.fake.count(Op::SwapIn), 0);
    }

    /// The operator's terminal says `text`.
    fn said(&self, text: &str) {
        let seen = self.seen.text();
        assert!(seen.contains(text), "{text:?} not in: {seen}");
    }

    /// No container of the bottle is left.
    fn nothing_left(&self) {
        let left = self.fake.containers();
        assert!(left.is_empty(), "left: {left:?}");
    }
}

struct Running {
    task: JoinHandle<Result<Outcome, SessionError>>,
    signals: UnboundedSender<i32>,
}

impl Running {
    async fn outcome(self) -> Result<Outcome, SessionError> {
        within(self.task).await.expect("session task")
    }

    /// The session's error, which must end it, as text.
    async fn failure(self) -> String {
        self.outcome()
            .await
            .expect_err("the session fails")
            .to_string()
    }

    /// SIGKILL: the launcher is gone without its teardown.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("the session did not get there in time")
}

#[tokio::test]
async fn the_agent_exits_and_the_bottle_is_saved_and_removed() {
    let (b, r) = Bottle::running().await;
    b.fake.agent_writes(b.slug(), "notes");
    b.exits(r, 3).await;
    assert_eq!(b.fake.state().snapshot_files.as_deref(), Some("notes"));
    b.nothing_left();
    let calls = b.fake.state().calls.clone();
    let last_two = &calls[calls.len() - 2..];
    assert_eq!(last_two, [Op::Snapshot, Op::Stop], "{calls:?}");
}

#[tokio::test]
async fn an_approved_capability_rebuilds_and_swaps_the_agent_with_its_files() {
    let (b, r) = Bottle::running().await;
    b.fake.agent_writes(b.slug(), "work in progress");
    let applied = b.approved("1-cap", capability("ripgrep")).await;
    assert_eq!(applied.outcome, AppliedOutcome::Ok, "{}", applied.detail);
    let image = b.image_with("ripgrep");
    assert!(
        applied.detail.contains(&format!(
            "rebuilt as {image} (3 steps, 2 cached); agent resumed"
        )),
        "{}",
        applied.detail
    );
    within(b.fake.reached(Op::RunAgent, 2)).await;
    let agent = b.agent();
    assert_eq!(agent.image, image);
    assert_eq!(
        agent.files, "work in progress",
        "the successor has the agent's files"
    );
    let dockerfile = b.per_bottle_dockerfile().expect("per-bottle Dockerfile");
    assert!(dockerfile.contains("ripgrep"), "{dockerfile}");
    b.said(&format!(
        "capability 1-cap applied: agent rebuilt as {image}, session resumed"
    ));
    // The exit of the successor, not of the stopped agent, ends the session.
    b.exits(r, 0).await;
    b.nothing_left();
}

/// A rebuild that fails, a successor that cannot be created, or an agent that cannot be stopped
/// for its successor: the approval is recorded as failed, the agent runs on, and the next
/// capability builds and swaps.
#[tokio::test]
async fn a_failed_rebuild_or_stop_is_recorded_and_the_agent_runs_on() {
    for (op, why, detail) in [
        (
            Op::Build,
            "E: Unable to locate package nosuch",
            "the rebuild failed; the agent keeps running unchanged",
        ),
        (
            Op::CreateSuccessor,
            "no such image",
            "rebuilt, but the new agent could not be created",
        ),
        (
            Op::StopAgent,
            "permission denied",
            "failed to stop the running agent",
        ),
    ] {
        let (b, r) = Bottle::running().await;
        b.fake.fail(op, why);
        let applied = b.approved("1-cap", capability("nosuch")).await;
        assert_eq!(applied.outcome, AppliedOutcome::Failed, "{op:?}");
        assert!(
            applied.detail.contains(detail) && applied.detail.contains(why),
            "{op:?}: {}",
            applied.detail
        );
        assert!(
            applied.detail.contains("the agent keeps running unchanged"),
            "{op:?}: {}",
            applied.detail
        );
        // Not adopted, or undone: the failed approval changes nothing, not even the next start.
        assert_eq!(b.per_bottle_dockerfile(), None, "{op:?}");
        if op != Op::StopAgent {
            // Nothing was stopped or saved.
            assert_eq!(b.fake.count(Op::StopAgent), 0, "{op:?}");
            assert_eq!(b.fake.count(Op::Snapshot), 0, "{op:?}");
        }
        assert!(b.agent().running, "{op:?}");
        let next = b.approved("2-cap", capability("jq")).await;
        assert_eq!(next.outcome, AppliedOutcome::Ok, "{op:?}");
        let dockerfile = b.per_bottle_dockerfile().expect("adopted");
        assert!(
            dockerfile.contains("jq") && !dockerfile.contains("nosuch"),
            "{op:?}: {dockerfile}"
        );
        b.exits(r, 7).await;
    }
}

#[tokio::test]
async fn capabilities_approved_together_are_built_in_turn_each_on_the_last() {
    let (b, r) = Bottle::running().await;
    b.approve("1-a", capability("ripgrep"));
    b.approve("2-b", capability("jq"));
    for id in ["1-a", "2-b"] {
        assert_eq!(b.applied_soon(id).await.outcome, AppliedOutcome::Ok, "{id}");
    }
    let dockerfile = b.per_bottle_dockerfile().expect("per-bottle Dockerfile");
    assert!(
        dockerfile.contains("ripgrep") && dockerfile.contains("jq"),
        "the second build starts from the first's Dockerfile: {dockerfile}"
    );
    within(b.fake.reached(Op::RunAgent, 3)).await;
    assert_eq!(b.fake.count(Op::SwapIn), 2);
    assert_eq!(b.agent().image, b.image_with("jq"));
    b.exits(r, 0).await;
}

/// An approved host, with pipelock reloading (`None`) or failing to (why): what is recorded.
#[tokio::test]
async fn an_approved_host_is_allowed_live_and_pipelock_reloads_or_it_is_recorded() {
    for reload_fails in [None, Some("container is not running")] {
        let (b, r) = Bottle::running().await;
        if let Some(why) = reload_fails {
            b.fake.fail(Op::Reload, why);
        }
        let applied = b.approved("1-host", egress("files.example.org")).await;
        assert_eq!(b.fake.count(Op::Reload), 1);
        assert_eq!(b.fake.count(Op::StopAgent), 0, "the agent is not touched");
        let hosts = crate::state::approved::hosts(&b.plan.state_dir).expect("approved hosts");
        assert_eq!(hosts, ["files.example.org"]);
        if reload_fails.is_some() {
            assert_eq!(applied.outcome, AppliedOutcome::Failed);
            assert!(
                applied.detail.contains("could not reload"),
                "{}",
                applied.detail
            );
        } else {
            assert_eq!(applied.outcome, AppliedOutcome::Ok, "{}", applied.detail);
            b.said("egress to files.example.org approved and allowed");
        }
        b.exits(r, 0).await;
    }
}

#[tokio::test]
async fn an_approval_of_a_replaced_proposal_is_refused_and_said() {
    let (b, r) = Bottle::running().await;
    // supervise's folder: the agent rewrites the proposal after the operator read it.
    b.approve_replaced("1-cap");
    let applied = b.applied_soon("1-cap").await;
    assert_eq!(applied.outcome, AppliedOutcome::Failed);
    assert!(applied.detail.starts_with("refused, nothing applied"));
    assert_eq!(b.fake.count(Op::StopAgent), 0);
    b.said("refused to apply 1-cap");
    // A hand-written decision is audited by the launcher.
    let audited = audit::read(&b.plan.state_dir).expect("audit");
    assert!(audited.iter().any(|e| e.event == "decision"), "{audited:?}");
    b.exits(r, 0).await;
}

#[tokio::test]
async fn approvals_made_while_no_launcher_ran_apply_before_launch() {
    let b = Bottle::new();
    b.approve("1-cap", capability("ripgrep"));
    b.approve("2-host", egress("files.example.org"));
    let r = b.run().await;
    assert_eq!(b.outcome_of("1-cap"), AppliedOutcome::Ok);
    assert_eq!(b.outcome_of("2-host"), AppliedOutcome::Ok);
    let image = b.image_with("ripgrep");
    b.said(&format!("applied 1-cap before launch: rebuilt as {image}"));
    b.said("applied 2-host before launch");
    // Nothing to swap: the launch uses the rebuilt image.
    assert_eq!(b.fake.count(Op::SwapIn), 0);
    assert_eq!(b.fake.count(Op::Reload), 0);
    assert_eq!(b.agent().image, image, "launched from the rebuilt image");
    b.exits(r, 0).await;
}

#[tokio::test]
async fn an_approval_refused_before_launch_is_said_as_a_refusal() {
    let b = Bottle::new();
    b.approve_replaced("1-cap");
    let r = b.run().await;
    assert_eq!(b.outcome_of("1-cap"), AppliedOutcome::Failed);
    b.said("refused to apply 1-cap");
    let text = b.seen.text();
    assert!(!text.contains("applied 1-cap before launch"), "{text}");
    b.exits(r, 0).await;
}

#[tokio::test]
async fn an_agent_that_ends_while_its_chain_is_created_waits_for_it_before_the_teardown() {
    let b = Bottle::new();
    let r = b.start_held(Op::StartSidecars).await;
    within(b.fake.reached(Op::RunAgent, 1)).await;
    b.fake.exit_agent(b.slug(), 4);
    // Not ended yet: the chain's containers are still being made.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !r.task.is_finished(),
        "ended before the chain's creation finished"
    );
    b.fake.release(Op::StartSidecars);
    assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(4));
    // The teardown saw the chain.
    b.nothing_left();
}

#[tokio::test]
async fn a_root_step_that_cannot_be_built_ahead_costs_nothing_but_the_speed_up() {
    let b = Bottle::new();
    b.fake.fail(Op::WarmRootStep, "no space left");
    let r = b.run().await;
    within(b.fake.reached(Op::WarmRootStep, 1)).await;
    let applied = b.approved("1-cap", capability("ripgrep")).await;
    assert_eq!(applied.outcome, AppliedOutcome::Ok);
    b.exits(r, 0).await;
}

/// The egress chain cannot be created, or does not come up: the agent is stopped and saved,
/// and the session ends naming the failure.
#[tokio::test]
async fn a_failed_chain_stops_the_agent_and_ends_the_session_naming_it() {
    for (op, why) in [
        (Op::StartSidecars, "network create failed"),
        (Op::AwaitSidecars, "pipelock exited (code 1)"),
    ] {
        let b = Bottle::new();
        b.fake.fail(op, why);
        let err = b.start(b.opts()).failure().await;
        assert!(err.contains(why), "{op:?}: {err}");
        let awaited = usize::from(op == Op::AwaitSidecars);
        assert_eq!(b.fake.count(Op::AwaitSidecars), awaited, "{op:?}");
        assert_eq!(b.fake.count(Op::StopAgent), 1, "{op:?}");
        assert_eq!(
            b.fake.count(Op::Snapshot),
            1,
            "{op:?}: the agent's files are saved"
        );
        b.nothing_left();
    }
}

/// A failed chain whose agent cannot be stopped: the session does not wait for an exit that may
/// never come; it ends with the chain's failure, saves the agent and removes the bottle.
#[tokio::test]
async fn a_failed_chain_whose_agent_cannot_be_stopped_ends_the_session_at_once() {
    let b = Bottle::new();
    b.fake.fail(Op::AwaitSidecars, "pipelock exited (code 1)");
    b.fake.fail(Op::StopAgent, "permission denied");
    let err = b.start(b.opts()).failure().await;
    assert!(err.contains("pipelock exited"), "{err}");
    assert_eq!(b.fake.count(Op::StopAgent), 1);
    assert_eq!(b.fake.count(Op::Snapshot), 1, "the agent's files are saved");
    b.nothing_left();
}

/// The chain comes up late and fails while an approval's swap is held at `step`; the session
/// ends with the chain's failure once that step goes on. Returns the bottle, for its record.
async fn chain_fails_during(step: Op) -> Bottle {
    let b = Bottle::new();
    let r = b.start_held(Op::AwaitSidecars).await;
    b.approve_held("1-cap", step).await;
    b.fake.fail(Op::AwaitSidecars, "pipelock exited (code 1)");
    b.fake.release(Op::AwaitSidecars);
    within(b.fake.finished(Op::AwaitSidecars)).await;
    b.fake.release(step);
    let err = r.failure().await;
    assert!(err.contains("pipelock exited"), "{err}");
    b.nothing_left();
    b
}

#[tokio::test]
async fn a_chain_that_fails_during_a_swap_ends_the_session_after_it() {
    let b = chain_fails_during(Op::SwapIn).await;
    // The swap finished first: its record says so, and its agent was stopped for the failure.
    assert_eq!(b.outcome_of("1-cap"), AppliedOutcome::Ok);
    assert_eq!(b.fake.count(Op::StopAgent), 2);
}

#[tokio::test]
async fn a_chain_that_fails_while_a_rebuilt_agent_waits_drops_the_swap() {
    let b = chain_fails_during(Op::StopAgent).await;
    let applied = b.applied("1-cap").expect("applied");
    b.swap_dropped(&applied);
}

#[tokio::test]
async fn a_swap_whose_snapshot_fails_keeps_the_agent() {
    let (b, r) = Bottle::running().await;
    b.fake.agent_writes(b.slug(), "precious");
    b.fake.fail(Op::Snapshot, "no space left on device");
    b.approve("1-cap", capability("ripgrep"));
    let err = r.outcome().await.expect_err("the snapshot failed");
    assert!(matches!(err, SessionError::Kept { .. }), "{err}");
    let applied = b.applied("1-cap").expect("applied");
    assert!(
        applied
            .detail
            .contains("the agent's snapshot failed, so it was not replaced"),
        "{}",
        applied.detail
    );
    let kept = format!("{}-agent-kept", b.slug());
    assert_eq!(
        b.fake.containers(),
        std::slice::from_ref(&kept),
        "only the kept agent stays"
    );
    assert_eq!(b.fake.state().containers[&kept].files, "precious");
    // The next session saves the kept agent first, then launches.
    let r = b.run().await;
    assert_eq!(b.fake.state().snapshot_files.as_deref(), Some("precious"));
    assert!(!b.fake.containers().contains(&kept));
    b.exits(r, 0).await;
    b.nothing_left();
}

/// A swap's step after the snapshot fails: the failure ends the session, the record says the
/// new agent did not start, and nothing is left.
#[tokio::test]
async fn a_successor_that_cannot_be_swapped_in_ends_the_session_and_is_recorded() {
    let (b, r) = Bottle::running().await;
    b.fake.fail(Op::SwapIn, "failed to rename");
    b.approve("1-cap", capability("ripgrep"));
    let err = r.failure().await;
    assert!(err.contains("failed to rename"), "{err}");
    let applied = b.applied("1-cap").expect("applied");
    assert_eq!(applied.outcome, AppliedOutcome::Failed);
    assert!(
        applied
            .detail
            .contains("rebuilt, but the new agent did not start"),
        "{}",
        applied.detail
    );
    b.nothing_left();
}

/// The successor is started before the old agent stops, held at its gate, and released only by
/// its own run, once the old agent's files are in.
#[tokio::test]
async fn the_successor_starts_held_before_the_agent_stops_and_is_released_when_it_runs() {
    let (b, r) = Bottle::running().await;
    b.approve_held("1-cap", Op::StopAgent).await;
    let gate = b.plan.layout().gate().join("1-cap");
    let next = b.fake.state().containers[&format!("{}-agent-next", b.slug())].clone();
    assert!(next.running, "started while the old agent still runs");
    assert_eq!(next.held.as_deref(), Some(gate.as_path()));
    assert!(b.agent().running);
    assert!(!gate.exists(), "not released before its files are in");
    b.fake.release(Op::StopAgent);
    assert_eq!(b.applied_soon("1-cap").await.outcome, AppliedOutcome::Ok);
    within(async {
        while b.agent().held.is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(gate.exists(), "released by its run");
    b.exits(r, 0).await;
    b.nothing_left();
}

#[tokio::test]
async fn an_agent_that_ends_during_a_rebuild_ends_the_session_and_the_approval_waits() {
    let (b, r) = Bottle::running().await;
    b.approve_held("1-cap", Op::Build).await;
    b.exits(r, 0).await;
    assert_eq!(b.applied("1-cap"), None, "applied at the next start");
    let r = b.run().await;
    assert_eq!(b.outcome_of("1-cap"), AppliedOutcome::Ok);
    b.exits(r, 0).await;
}

#[tokio::test]
async fn resume_restores_the_last_snapshot_into_the_new_agent() {
    let (b, r) = Bottle::running().await;
    b.fake.agent_writes(b.slug(), "yesterday");
    b.exits(r, 0).await;
    let r = b
        .run_with(SessionOptions {
            resume: true,
            ..b.opts()
        })
        .await;
    assert_eq!(b.fake.count(Op::Restore), 1);
    assert_eq!(b.agent().files, "yesterday");
    b.said("resumed default from its last snapshot");
    b.exits(r, 0).await;
}

#[tokio::test]
async fn leftovers_of_a_dead_launcher_are_removed_and_a_live_one_refuses() {
    let (b, r) = Bottle::running().await;
    r.kill().await;
    assert!(!b.fake.containers().is_empty());
    let stray = b.fake.containers()[0].clone();
    // Its pid is alive: refused, nothing removed.
    b.fake.state().orphans.push((stray, Some(1)));
    let err = b.start(b.opts()).outcome().await.expect_err("refused");
    assert!(matches!(
        err,
        SessionError::Backend(crate::backend::BackendError::AlreadyRunning { pid: 1, .. })
    ));
    assert!(!b.fake.containers().is_empty());
    // Dead: removed before the launch.
    b.fake.state().orphans.clear();
    let r = b.run().await;
    b.exits(r, 0).await;
    b.nothing_left();
}

/// The engine calls of a session, each once, in the order first made: those up to the running
/// bottle (its root step built ahead), then those of an approved capability's rebuild and swap.
async fn steps() -> (Vec<Op>, Vec<Op>) {
    let (b, r) = Bottle::running().await;
    within(b.fake.reached(Op::WarmRootStep, 1)).await;
    let launch = b.fake.state().calls.clone();
    b.approved("1-cap", capability("ripgrep")).await;
    within(b.fake.reached(Op::RunAgent, 2)).await;
    let swap = b.fake.state().calls[launch.len()..].to_vec();
    b.exits(r, 0).await;
    let distinct = |calls: Vec<Op>| {
        let mut seen = std::collections::HashSet::new();
        calls
            .into_iter()
            .filter(|op| seen.insert(*op))
            .collect::<Vec<_>>()
    };
    let (launch, swap) = (distinct(launch), distinct(swap));
    assert!(
        launch.contains(&Op::Launch) && swap.contains(&Op::SwapIn),
        "{launch:?} {swap:?}"
    );
    (launch, swap)
}

/// Every step the session awaits on the engine, with what must be true once a signal cut it.
#[tokio::test]
async fn a_signal_at_any_step_removes_the_bottle_and_saves_what_the_agent_did() {
    let (launch, swap) = steps().await;
    // (the step held, whether the test approves a capability to get there)
    let held =
        (launch.into_iter().map(|op| (op, false))).chain(swap.into_iter().map(|op| (op, true)));
    for (op, approve) in held {
        let b = Bottle::new();
        let r = if approve {
            let r = b.run().await;
            within(b.fake.reached(Op::WarmRootStep, 1)).await;
            b.fake.hold(op);
            b.approve("1-cap", capability("ripgrep"));
            r
        } else {
            b.fake.hold(op);
            b.start(b.opts())
        };
        within(b.fake.held(op)).await;
        r.signals.send(2).expect("signal");
        let outcome = r.outcome().await;
        assert!(
            matches!(outcome, Ok(Outcome::Signalled(2))),
            "{op:?}: {outcome:?}"
        );
        assert!(
            b.fake.containers().is_empty(),
            "{op:?}: left {:?}",
            b.fake.containers()
        );
        let launched = b.fake.state().finished.contains(&Op::Launch);
        assert_eq!(
            b.fake.count(Op::Snapshot) > 0,
            launched,
            "{op:?}: a launched agent is saved, nothing else"
        );
        // Nothing of the session exists before its orphans are reaped and its kept agent saved.
        if !matches!(op, Op::FindOrphans | Op::KeptAgent) {
            assert_eq!(b.fake.state().calls.last(), Some(&Op::Stop), "{op:?}");
        }
    }
}

#[tokio::test]
async fn a_signal_during_the_last_snapshot_saves_the_agent_again() {
    let (b, r) = Bottle::running().await;
    b.fake.agent_writes(b.slug(), "last words");
    b.fake.hold(Op::Snapshot);
    b.fake.exit_agent(b.slug(), 0);
    within(b.fake.held(Op::Snapshot)).await;
    r.signals.send(15).expect("signal");
    assert_eq!(r.outcome().await.expect("session"), Outcome::Signalled(15));
    assert_eq!(
        b.fake.count(Op::Snapshot),
        2,
        "saved by the signal's own snapshot"
    );
    assert_eq!(b.fake.state().snapshot_files.as_deref(), Some("last words"));
    b.nothing_left();
}

#[tokio::test]
async fn a_signal_whose_snapshot_fails_keeps_the_agent_and_the_exit_code_stands() {
    let (b, r) = Bottle::running().await;
    b.fake.fail(Op::Snapshot, "engine gone");
    r.signals.send(15).expect("signal");
    assert_eq!(r.outcome().await.expect("session"), Outcome::Signalled(15));
    assert_eq!(b.fake.containers(), [format!("{}-agent-kept", b.slug())]);
    b.said("kept: the agent's container");
}

/// A launcher killed (no teardown at all) after each step of an approval: the next start finds
/// the leftovers, applies the approval once, and the Dockerfile holds the step once.
#[tokio::test]
async fn a_crash_between_any_two_steps_of_an_approval_is_repaired_at_the_next_start() {
    let (_, swap) = steps().await;
    for op in swap {
        let (b, r) = Bottle::running().await;
        within(b.fake.reached(Op::WarmRootStep, 1)).await;
        b.approve_held("1-cap", op).await;
        r.kill().await;
        let r = b.run().await;
        let applied = b.applied("1-cap").expect("applied at the next start");
        assert_eq!(
            applied.outcome,
            AppliedOutcome::Ok,
            "{op:?}: {}",
            applied.detail
        );
        let dockerfile = b.per_bottle_dockerfile().expect("per-bottle Dockerfile");
        assert_eq!(
            dockerfile.matches("ripgrep").count(),
            1,
            "{op:?}: the step once: {dockerfile}"
        );
        b.exits(r, 0).await;
        assert!(b.fake.containers().is_empty(), "{op:?}");
    }
}
