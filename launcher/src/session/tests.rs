//! The session driven through the fake backend: swaps, failed builds, chain failures, signals at
//! every step and crashes between steps, without an engine. The end-to-end tests (tests/e2e)
//! prove the same on the real one.

use std::time::Duration;

use claude_bottle_protocol::Outcome as AppliedOutcome;
use claude_bottle_protocol::queue::Folder;
use claude_bottle_protocol::{
    Applied, BottleName, Capability, Decision, Egress, HostName, Proposal, ProposalId,
    ProposalKind, to_json_pretty,
};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::fake::{Fake, Op};
use super::{Captured, Console, Outcome, SessionError, SessionOptions, Signals, run_with};
use crate::home::Home;
use crate::plan::BottlePlan;
use crate::state::{Queue, audit};

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

    fn file(&self, id: &str, kind: ProposalKind) -> Proposal {
        let q = self.queue();
        let created = 1_700_000_000 + q.ids(Folder::Proposals).expect("ids").len() as u64;
        let p = Proposal::new(
            ProposalId::new(id).expect("id"),
            BottleName::new(&self.plan.name).expect("name"),
            kind,
            "needed".into(),
            vec![],
            created,
        );
        std::fs::write(q.path(Folder::Proposals, &p.id), to_json_pretty(&p)).expect("file");
        p
    }

    fn applied(&self, id: &str) -> Option<Applied> {
        self.queue()
            .applied(&ProposalId::new(id).expect("id"))
            .expect("applied")
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
}

struct Running {
    task: JoinHandle<Result<Outcome, SessionError>>,
    signals: UnboundedSender<i32>,
}

impl Running {
    async fn outcome(self) -> Result<Outcome, SessionError> {
        within(self.task).await.expect("session task")
    }
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("the session did not get there in time")
}

fn capability(apt: &str) -> ProposalKind {
    ProposalKind::Capability(Capability {
        apt: vec![apt.into()],
        dockerfile_lines: vec![],
    })
}

fn egress(host: &str) -> ProposalKind {
    ProposalKind::Egress(Egress {
        host: HostName::new(host).expect("host"),
        port: None,
    })
}

/// The bottle runs: launched, its agent started and its chain up.
async fn running(b: &Bottle, opts: SessionOptions) -> Running {
    let (agents, chains) = (b.fake.count(Op::RunAgent), b.fake.count(Op::AwaitSidecars));
    let r = b.start(opts);
    within(b.fake.reached(Op::RunAgent, agents + 1)).await;
    within(b.fake.reached(Op::AwaitSidecars, chains + 1)).await;
    r
}

#[tokio::test]
async fn the_agent_exits_and_the_bottle_is_saved_and_removed() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.fake.agent_writes(b.slug(), "notes");
    b.fake.exit_agent(b.slug(), 3);
    assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(3));
    assert_eq!(b.fake.state().snapshot_files.as_deref(), Some("notes"));
    assert!(b.fake.containers().is_empty(), "{:?}", b.fake.containers());
    let calls = b.fake.state().calls.clone();
    let last_two = &calls[calls.len() - 2..];
    assert_eq!(last_two, [Op::Snapshot, Op::Stop], "{calls:?}");
}

#[tokio::test]
async fn an_approved_capability_rebuilds_and_swaps_the_agent_with_its_files() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.fake.agent_writes(b.slug(), "work in progress");
    b.approve("1-cap", capability("ripgrep"));
    let applied = b.applied_soon("1-cap").await;
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
    assert!(
        b.seen.text().contains(&format!(
            "capability 1-cap applied: agent rebuilt as {image}, session resumed"
        )),
        "{}",
        b.seen.text()
    );
    // The exit of the successor, not of the stopped agent, ends the session.
    b.fake.exit_agent(b.slug(), 0);
    assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(0));
    assert!(b.fake.containers().is_empty());
}

#[tokio::test]
async fn a_failed_rebuild_is_recorded_and_the_agent_runs_on() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.fake.fail(Op::Build, "E: Unable to locate package nosuch");
    b.approve("1-cap", capability("nosuch"));
    let applied = b.applied_soon("1-cap").await;
    assert_eq!(applied.outcome, AppliedOutcome::Failed);
    assert!(
        applied
            .detail
            .contains("the rebuild failed; the agent keeps running unchanged")
    );
    assert!(applied.detail.contains("Unable to locate package"));
    assert_eq!(
        b.per_bottle_dockerfile(),
        None,
        "a failed candidate is not adopted"
    );
    assert_eq!(b.fake.count(Op::StopAgent), 0);
    assert!(b.agent().running);
    // The next capability builds and swaps.
    b.approve("2-cap", capability("jq"));
    assert_eq!(b.applied_soon("2-cap").await.outcome, AppliedOutcome::Ok);
    b.fake.exit_agent(b.slug(), 0);
    assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(0));
}

#[tokio::test]
async fn capabilities_approved_together_are_built_in_turn_each_on_the_last() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.approve("1-a", capability("ripgrep"));
    b.approve("2-b", capability("jq"));
    assert_eq!(b.applied_soon("1-a").await.outcome, AppliedOutcome::Ok);
    assert_eq!(b.applied_soon("2-b").await.outcome, AppliedOutcome::Ok);
    let dockerfile = b.per_bottle_dockerfile().expect("per-bottle Dockerfile");
    assert!(
        dockerfile.contains("ripgrep") && dockerfile.contains("jq"),
        "the second build starts from the first's Dockerfile: {dockerfile}"
    );
    within(b.fake.reached(Op::RunAgent, 3)).await;
    assert_eq!(b.fake.count(Op::SwapIn), 2);
    assert_eq!(b.agent().image, b.image_with("jq"));
    b.fake.exit_agent(b.slug(), 0);
    assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(0));
}

#[tokio::test]
async fn an_approved_host_is_allowed_live_and_pipelock_reloads() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.approve("1-host", egress("files.example.org"));
    let applied = b.applied_soon("1-host").await;
    assert_eq!(applied.outcome, AppliedOutcome::Ok, "{}", applied.detail);
    assert_eq!(b.fake.count(Op::Reload), 1);
    assert_eq!(b.fake.count(Op::StopAgent), 0, "the agent is not touched");
    let hosts = crate::state::approved::hosts(&b.plan.state_dir).expect("approved hosts");
    assert_eq!(hosts, ["files.example.org"]);
    assert!(
        b.seen
            .text()
            .contains("egress to files.example.org approved and allowed")
    );
    b.fake.exit_agent(b.slug(), 0);
    r.outcome().await.expect("session");
}

#[tokio::test]
async fn a_pipelock_that_cannot_reload_is_recorded() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.fake.fail(Op::Reload, "container is not running");
    b.approve("1-host", egress("files.example.org"));
    let applied = b.applied_soon("1-host").await;
    assert_eq!(applied.outcome, AppliedOutcome::Failed);
    assert!(
        applied.detail.contains("could not reload"),
        "{}",
        applied.detail
    );
    b.fake.exit_agent(b.slug(), 0);
    r.outcome().await.expect("session");
}

#[tokio::test]
async fn an_approval_of_a_replaced_proposal_is_refused_and_said() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    let p = b.file("1-cap", capability("ripgrep"));
    let decision = Decision::approve_bound(&p, "ok", "op", audit::now());
    // supervise's folder: the agent rewrites the proposal after the operator read it.
    b.file("1-cap", capability("nmap"));
    std::fs::write(
        b.queue().path(Folder::Decisions, &p.id),
        to_json_pretty(&decision),
    )
    .expect("decision");
    let applied = b.applied_soon("1-cap").await;
    assert_eq!(applied.outcome, AppliedOutcome::Failed);
    assert!(applied.detail.starts_with("refused, nothing applied"));
    assert_eq!(b.fake.count(Op::StopAgent), 0);
    assert!(b.seen.text().contains("refused to apply 1-cap"));
    // A hand-written decision is audited by the launcher.
    let audited = audit::read(&b.plan.state_dir).expect("audit");
    assert!(audited.iter().any(|e| e.event == "decision"), "{audited:?}");
    b.fake.exit_agent(b.slug(), 0);
    r.outcome().await.expect("session");
}

#[tokio::test]
async fn approvals_made_while_no_launcher_ran_apply_before_launch() {
    let b = Bottle::new();
    b.approve("1-cap", capability("ripgrep"));
    b.approve("2-host", egress("files.example.org"));
    let r = running(&b, b.opts()).await;
    assert_eq!(
        b.applied("1-cap").expect("applied").outcome,
        AppliedOutcome::Ok
    );
    assert_eq!(
        b.applied("2-host").expect("applied").outcome,
        AppliedOutcome::Ok
    );
    let text = b.seen.text();
    let image = b.image_with("ripgrep");
    assert!(
        text.contains(&format!("applied 1-cap before launch: rebuilt as {image}")),
        "{text}"
    );
    assert!(text.contains("applied 2-host before launch"), "{text}");
    // Nothing to swap: the launch uses the rebuilt image.
    assert_eq!(b.fake.count(Op::SwapIn), 0);
    assert_eq!(b.fake.count(Op::Reload), 0);
    assert_eq!(b.agent().image, image, "launched from the rebuilt image");
    b.fake.exit_agent(b.slug(), 0);
    r.outcome().await.expect("session");
}

#[tokio::test]
async fn an_approval_refused_before_launch_is_said_as_a_refusal() {
    let b = Bottle::new();
    let p = b.file("1-cap", capability("ripgrep"));
    let decision = Decision::approve_bound(&p, "ok", "op", audit::now());
    b.file("1-cap", capability("nmap"));
    std::fs::write(
        b.queue().path(Folder::Decisions, &p.id),
        to_json_pretty(&decision),
    )
    .expect("decision");
    let r = running(&b, b.opts()).await;
    let applied = b.applied("1-cap").expect("applied");
    assert_eq!(applied.outcome, AppliedOutcome::Failed);
    let text = b.seen.text();
    assert!(text.contains("refused to apply 1-cap"), "{text}");
    assert!(!text.contains("applied 1-cap before launch"), "{text}");
    b.fake.exit_agent(b.slug(), 0);
    r.outcome().await.expect("session");
}

#[tokio::test]
async fn a_chain_that_cannot_be_created_ends_the_session_naming_it() {
    let b = Bottle::new();
    b.fake.fail(Op::StartSidecars, "network create failed");
    let err = b.start(b.opts()).outcome().await.expect_err("no chain");
    assert!(err.to_string().contains("network create failed"), "{err}");
    assert_eq!(b.fake.count(Op::AwaitSidecars), 0);
    assert!(b.fake.containers().is_empty(), "{:?}", b.fake.containers());
}

#[tokio::test]
async fn an_agent_that_ends_while_its_chain_is_created_waits_for_it_before_the_teardown() {
    let b = Bottle::new();
    b.fake.hold(Op::StartSidecars);
    let r = b.start(b.opts());
    within(b.fake.held(Op::StartSidecars)).await;
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
    assert!(
        b.fake.containers().is_empty(),
        "the teardown saw the chain: {:?}",
        b.fake.containers()
    );
}

#[tokio::test]
async fn a_root_step_that_cannot_be_built_ahead_costs_nothing_but_the_speed_up() {
    let b = Bottle::new();
    b.fake.fail(Op::WarmRootStep, "no space left");
    let r = running(&b, b.opts()).await;
    within(b.fake.reached(Op::WarmRootStep, 1)).await;
    b.approve("1-cap", capability("ripgrep"));
    assert_eq!(b.applied_soon("1-cap").await.outcome, AppliedOutcome::Ok);
    b.fake.exit_agent(b.slug(), 0);
    assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(0));
}

#[tokio::test]
async fn a_failed_chain_stops_the_agent_and_ends_the_session_naming_it() {
    let b = Bottle::new();
    b.fake.fail(Op::AwaitSidecars, "pipelock exited (code 1)");
    let r = b.start(b.opts());
    let err = r.outcome().await.expect_err("the chain failed");
    assert!(err.to_string().contains("pipelock exited"), "{err}");
    assert_eq!(b.fake.count(Op::StopAgent), 1);
    assert_eq!(b.fake.count(Op::Snapshot), 1, "the agent's files are saved");
    assert!(b.fake.containers().is_empty(), "{:?}", b.fake.containers());
}

/// The chain comes up late and fails while an approval's swap is held at `step`; the session
/// ends with the chain's failure once that step goes on. Returns the bottle, for its record.
async fn chain_fails_during(step: Op) -> Bottle {
    let b = Bottle::new();
    b.fake.hold(Op::AwaitSidecars);
    let r = b.start(b.opts());
    within(b.fake.held(Op::AwaitSidecars)).await;
    b.fake.hold(step);
    b.approve("1-cap", capability("ripgrep"));
    within(b.fake.held(step)).await;
    b.fake.fail(Op::AwaitSidecars, "pipelock exited (code 1)");
    b.fake.release(Op::AwaitSidecars);
    within(b.fake.finished(Op::AwaitSidecars)).await;
    b.fake.release(step);
    let err = r.outcome().await.expect_err("the chain failed");
    assert!(err.to_string().contains("pipelock exited"), "{err}");
    assert!(b.fake.containers().is_empty(), "{:?}", b.fake.containers());
    b
}

#[tokio::test]
async fn a_chain_that_fails_during_a_swap_ends_the_session_after_it() {
    let b = chain_fails_during(Op::SwapIn).await;
    // The swap finished first: its record says so, and its agent was stopped for the failure.
    assert_eq!(
        b.applied("1-cap").expect("applied").outcome,
        AppliedOutcome::Ok
    );
    assert_eq!(b.fake.count(Op::StopAgent), 2);
}

#[tokio::test]
async fn a_chain_that_fails_while_a_rebuilt_agent_waits_drops_the_swap() {
    let b = chain_fails_during(Op::StopAgent).await;
    let applied = b.applied("1-cap").expect("applied");
    assert_eq!(applied.outcome, AppliedOutcome::Failed);
    assert!(
        applied
            .detail
            .contains("the session ended before the rebuilt agent could start"),
        "{}",
        applied.detail
    );
    assert_eq!(b.fake.count(Op::SwapIn), 0);
}

#[tokio::test]
async fn a_swap_whose_snapshot_fails_keeps_the_agent() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
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
    let r = running(&b, b.opts()).await;
    assert_eq!(b.fake.state().snapshot_files.as_deref(), Some("precious"));
    assert!(!b.fake.containers().contains(&kept));
    b.fake.exit_agent(b.slug(), 0);
    r.outcome().await.expect("session");
    assert!(b.fake.containers().is_empty());
}

#[tokio::test]
async fn the_successor_starts_held_before_the_agent_stops_and_is_released_when_it_runs() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.fake.hold(Op::StopAgent);
    b.approve("1-cap", capability("ripgrep"));
    within(b.fake.held(Op::StopAgent)).await;
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
    b.fake.exit_agent(b.slug(), 0);
    assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(0));
}

#[tokio::test]
async fn a_successor_that_cannot_be_created_is_recorded_and_the_agent_runs_on() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.fake.fail(Op::CreateSuccessor, "no such image");
    b.approve("1-cap", capability("ripgrep"));
    let applied = b.applied_soon("1-cap").await;
    assert_eq!(applied.outcome, AppliedOutcome::Failed);
    assert!(
        applied.detail.contains(
            "rebuilt, but the new agent could not be created; the agent keeps running unchanged"
        ),
        "{}",
        applied.detail
    );
    assert!(applied.detail.contains("no such image"));
    // Created before the agent is stopped: nothing was stopped or saved.
    assert_eq!(b.fake.count(Op::StopAgent), 0);
    assert_eq!(b.fake.count(Op::Snapshot), 0);
    assert!(b.agent().running);
    b.fake.exit_agent(b.slug(), 0);
    assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(0));
    assert!(b.fake.containers().is_empty());
}

#[tokio::test]
async fn a_swap_that_fails_is_recorded_and_ends_the_session() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.fake.fail(Op::SwapIn, "failed to rename");
    b.approve("1-cap", capability("ripgrep"));
    let err = r.outcome().await.expect_err("swap failed");
    assert!(err.to_string().contains("failed to rename"), "{err}");
    assert_eq!(
        b.applied("1-cap").expect("applied").outcome,
        AppliedOutcome::Failed
    );
    assert!(b.fake.containers().is_empty());
}

#[tokio::test]
async fn an_agent_that_cannot_be_stopped_for_its_successor_runs_on() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.fake.fail(Op::StopAgent, "permission denied");
    b.approve("1-cap", capability("ripgrep"));
    let applied = b.applied_soon("1-cap").await;
    assert!(applied.detail.contains("failed to stop the running agent"));
    assert!(b.agent().running);
    b.fake.exit_agent(b.slug(), 7);
    assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(7));
}

#[tokio::test]
async fn an_agent_that_ends_during_a_rebuild_ends_the_session_and_the_approval_waits() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.fake.hold(Op::Build);
    b.approve("1-cap", capability("ripgrep"));
    within(b.fake.held(Op::Build)).await;
    b.fake.exit_agent(b.slug(), 0);
    assert_eq!(r.outcome().await.expect("session"), Outcome::Exited(0));
    assert_eq!(b.applied("1-cap"), None, "applied at the next start");
    let r = running(&b, b.opts()).await;
    assert_eq!(
        b.applied("1-cap").expect("applied").outcome,
        AppliedOutcome::Ok
    );
    b.fake.exit_agent(b.slug(), 0);
    r.outcome().await.expect("session");
}

#[tokio::test]
async fn resume_restores_the_last_snapshot_into_the_new_agent() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.fake.agent_writes(b.slug(), "yesterday");
    b.fake.exit_agent(b.slug(), 0);
    r.outcome().await.expect("session");
    let opts = SessionOptions {
        resume: true,
        ..b.opts()
    };
    let r = running(&b, opts).await;
    assert_eq!(b.fake.count(Op::Restore), 1);
    assert_eq!(b.agent().files, "yesterday");
    assert!(
        b.seen
            .text()
            .contains("resumed default from its last snapshot")
    );
    b.fake.exit_agent(b.slug(), 0);
    r.outcome().await.expect("session");
}

#[tokio::test]
async fn leftovers_of_a_dead_launcher_are_removed_and_a_live_one_refuses() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    // SIGKILL: the launcher is gone without its teardown.
    r.task.abort();
    let _ = r.task.await;
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
    let r = running(&b, b.opts()).await;
    b.fake.exit_agent(b.slug(), 0);
    r.outcome().await.expect("session");
    assert!(b.fake.containers().is_empty());
}

/// Every step the session awaits on the engine, with what must be true once a signal cut it.
#[tokio::test]
async fn a_signal_at_any_step_removes_the_bottle_and_saves_what_the_agent_did() {
    // (the step held, whether the test approves a capability to get there)
    let steps = [
        (Op::KeptAgent, false),
        (Op::EngineFacts, false),
        (Op::Build, false),
        (Op::FirstEntries, false),
        (Op::Pull, false),
        (Op::Launch, false),
        (Op::RunAgent, false),
        (Op::StartSidecars, false),
        (Op::AwaitSidecars, false),
        (Op::Build, true),
        (Op::CreateSuccessor, true),
        (Op::StopAgent, true),
        (Op::SwapIn, true),
        (Op::Snapshot, true),
    ];
    for (op, approve) in steps {
        let b = Bottle::new();
        let r = if approve {
            let r = running(&b, b.opts()).await;
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
        if op != Op::KeptAgent {
            assert_eq!(b.fake.state().calls.last(), Some(&Op::Stop), "{op:?}");
        }
    }
}

#[tokio::test]
async fn a_signal_during_the_last_snapshot_saves_the_agent_again() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
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
    assert!(b.fake.containers().is_empty());
}

#[tokio::test]
async fn a_signal_whose_snapshot_fails_keeps_the_agent_and_the_exit_code_stands() {
    let b = Bottle::new();
    let r = running(&b, b.opts()).await;
    b.fake.fail(Op::Snapshot, "engine gone");
    r.signals.send(15).expect("signal");
    assert_eq!(r.outcome().await.expect("session"), Outcome::Signalled(15));
    assert_eq!(b.fake.containers(), [format!("{}-agent-kept", b.slug())]);
    assert!(b.seen.text().contains("kept: the agent's container"));
}

/// A launcher killed (no teardown at all) after each step of an approval: the next start finds
/// the leftovers, applies the approval once, and the Dockerfile holds the step once.
#[tokio::test]
async fn a_crash_between_any_two_steps_of_an_approval_is_repaired_at_the_next_start() {
    for op in [
        Op::Build,
        Op::CreateSuccessor,
        Op::StopAgent,
        Op::SwapIn,
        Op::Snapshot,
    ] {
        let b = Bottle::new();
        let r = running(&b, b.opts()).await;
        b.fake.hold(op);
        b.approve("1-cap", capability("ripgrep"));
        within(b.fake.held(op)).await;
        r.task.abort();
        let _ = r.task.await;
        let r = running(&b, b.opts()).await;
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
        b.fake.exit_agent(b.slug(), 0);
        r.outcome().await.expect("session");
        assert!(b.fake.containers().is_empty(), "{op:?}");
    }
}

/// [`crate::prepare::images`] on the fake: what it asks the engine, and what it decides.
mod prepare {
    use super::*;
    use crate::backend::{BackendError, EngineFacts};
    use crate::config::DiskLimit;
    use crate::prepare::{PrepareOptions, images};

    #[tokio::test]
    async fn a_warm_start_builds_nothing_and_creates_no_probe() {
        let b = Bottle::new();
        let opts = b.opts();
        let first = images(&b.fake, &opts.config, &b.plan, &PrepareOptions::default())
            .await
            .expect("prepare");
        assert!(first.builds.iter().any(|r| r.built));
        let probes = (
            b.fake.count(Op::FirstEntries),
            b.fake.count(Op::ReadImageFile),
        );
        assert_eq!(
            probes,
            (1, 1),
            "the contract and the trust roots are probed once"
        );
        let again = images(&b.fake, &opts.config, &b.plan, &PrepareOptions::default())
            .await
            .expect("prepare");
        assert!(again.builds.iter().all(|r| !r.built), "{:?}", again.builds);
        assert_eq!(
            (
                b.fake.count(Op::FirstEntries),
                b.fake.count(Op::ReadImageFile)
            ),
            probes,
            "cached in the state folder"
        );
        assert_eq!(again.agent_image, first.agent_image);
        assert!(again.supervise_image.is_some() && again.egress.is_some());
    }

    #[tokio::test]
    async fn a_rebuild_for_an_approval_builds_only_the_agent() {
        let b = Bottle::new();
        let opts = b.opts();
        images(&b.fake, &opts.config, &b.plan, &PrepareOptions::default())
            .await
            .expect("prepare");
        let builds = b.fake.count(Op::Build);
        let rebuilt = images(
            &b.fake,
            &opts.config,
            &b.plan,
            &PrepareOptions {
                dockerfile: Some(format!(
                    "{}RUN true\n",
                    crate::image::DEFAULT_AGENT_DOCKERFILE
                )),
                agent_only: true,
                ..PrepareOptions::default()
            },
        )
        .await
        .expect("rebuild");
        assert_eq!(b.fake.count(Op::Build), builds + 1, "the agent image alone");
        assert!(rebuilt.supervise_image.is_none() && rebuilt.egress.is_none());
        assert_eq!(b.fake.count(Op::Pull), 1, "pipelock is not asked for again");
    }

    #[tokio::test]
    async fn a_runtime_the_engine_lacks_is_refused_naming_what_it_has() {
        let mut b = Bottle::new();
        b.plan.runtime = crate::manifest::Runtime::Runsc;
        b.fake.state().engine.runtimes = vec!["runc".into(), "io.containerd.runc.v2".into()];
        let err = images(
            &b.fake,
            &b.opts().config,
            &b.plan,
            &PrepareOptions::default(),
        )
        .await
        .expect_err("no runsc");
        assert!(
            matches!(&err, BackendError::RuntimeMissing { available, .. } if available == "io.containerd.runc.v2, runc"),
            "{err}"
        );
        assert_eq!(
            b.fake.count(Op::Build),
            0,
            "refused before anything is built"
        );
    }

    #[tokio::test]
    async fn a_driver_that_cannot_bound_the_disk_warns_or_refuses_as_the_operator_asked() {
        let mut b = Bottle::new();
        b.fake.state().engine = EngineFacts {
            storage_driver: "fuse-overlayfs".into(),
            backing_fs: None,
            runtimes: vec!["runc".into()],
        };
        let prepared = images(
            &b.fake,
            &b.opts().config,
            &b.plan,
            &PrepareOptions::default(),
        )
        .await
        .expect("the default bound only warns");
        assert_eq!(prepared.agent_disk, None);
        assert!(
            prepared
                .notes
                .iter()
                .any(|n| n.contains("fuse-overlayfs cannot bound")),
            "{:?}",
            prepared.notes
        );
        b.plan.limits.disk = DiskLimit::Bytes {
            bytes: 2 << 30,
            explicit: true,
        };
        let err = images(
            &b.fake,
            &b.opts().config,
            &b.plan,
            &PrepareOptions::default(),
        )
        .await
        .expect_err("an explicit bound refuses");
        assert!(err.to_string().contains("to 2 GiB"), "{err}");
    }

    #[tokio::test]
    async fn a_driver_that_takes_the_size_bounds_the_agent() {
        let b = Bottle::new();
        b.fake.state().engine = EngineFacts {
            storage_driver: "overlay2".into(),
            backing_fs: Some("xfs".into()),
            runtimes: vec!["runc".into()],
        };
        let prepared = images(
            &b.fake,
            &b.opts().config,
            &b.plan,
            &PrepareOptions::default(),
        )
        .await
        .expect("prepare");
        assert_eq!(b.fake.count(Op::AcceptsDiskSize), 1);
        assert!(prepared.agent_disk.is_some());
        assert!(prepared.notes.is_empty(), "{:?}", prepared.notes);
    }
}
