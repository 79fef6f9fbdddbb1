//! The running bottle: one task owns its state and reacts to typed events.
//!
//! [`drive`] launches the bottle, then waits for the next [`Event`] (the agent exited, the egress
//! chain started, came up or failed, a rebuild finished), a wake of the decisions folder, or a
//! signal, and carries out what each asks. Remediation decides what an approval does
//! ([`remediate::decide`]); this module makes it happen: it owns the one plan, the launch spec and
//! the launched agent, so a change (an approved host, a swapped agent) is seen by every later step.
//!
//! Every await on the engine is cut short by a signal ([`Halt::Signal`]): the agent as it is then
//! is snapshotted (kept when that fails) and the session ends; [`super::run_with`] removes the rest.

use std::collections::VecDeque;
use std::future::Future;

use claude_bottle_protocol::{Applied, ProposalId, ProposalKind};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Console, Outcome, SessionError, SessionOptions, Signals, Terminal, keep};
use crate::backend::{
    AgentSpec, Backend, BackendError, LaunchSpec, Launched, Prepared, SidecarSpec, SwapError,
};
use crate::plan::BottlePlan;
use crate::prepare::{self, PrepareOptions};
use crate::remediate::{self, Action, Approval, Decisions};
use crate::stage::{self, Stage};
use crate::state::snapshot::Store;
use crate::state::{approved, audit};

/// What the session's tasks report.
#[derive(Debug)]
pub(super) enum Event {
    /// The agent's container exited (its code), or waiting on it failed.
    AgentExited(Result<i64, BackendError>),
    /// The sidecars that do not gate the agent were created and started.
    ChainStarted,
    /// ... and are ready.
    ChainReady,
    /// One of them failed to start or to become ready.
    ChainFailed(BackendError),
    /// The rebuild for an approved capability finished.
    Rebuilt(Box<Rebuilt>),
}

/// A finished rebuild.
#[derive(Debug)]
pub(super) struct Rebuilt {
    approval: Approval,
    candidate: String,
    result: Result<Prepared, BackendError>,
}

/// Why the session stops before its agent ends by itself.
#[derive(Debug)]
pub(super) enum Halt {
    Signal(i32),
    Failed(Box<SessionError>),
}

impl From<SessionError> for Halt {
    fn from(e: SessionError) -> Self {
        Halt::Failed(Box::new(e))
    }
}

/// Whether what the operator approved (the edit, else the proposal) is a capability.
fn is_capability(approval: &Approval) -> bool {
    matches!(
        approval.decision.effective_kind(&approval.proposal.kind),
        Ok(ProposalKind::Capability(_))
    )
}

/// Every error the session meets ends it as a [`SessionError`].
macro_rules! halt_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Halt {
            fn from(e: $t) -> Self {
                SessionError::from(e).into()
            }
        }
    )*};
}
halt_from!(
    BackendError,
    crate::stage::StageError,
    crate::chain::ChainError,
    crate::egress::TokenError,
    crate::git_gate::GitGateError,
    crate::state::QueueError
);

/// What the agent is doing.
#[derive(Debug)]
enum Agent {
    Running,
    /// Stopped by the session; its exit carries out what follows.
    Stopping(Then),
}

/// What follows an agent the session stopped.
#[derive(Debug)]
enum Then {
    /// Replace it with one from the rebuilt image.
    Swap(Box<Swap>),
    /// End the session with the egress chain's failure.
    Fail(BackendError),
}

/// A rebuilt agent, created, waiting for the running one to stop.
#[derive(Debug)]
struct Swap {
    id: ProposalId,
    agent: AgentSpec,
    /// The created (not started) successor; the teardown removes it if the swap never comes.
    successor: Launched,
    /// `N steps, M cached`, for the applied record.
    built: String,
}

/// The egress chain (the sidecars that do not gate the agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// Being created: the teardown must wait for it, or it would miss containers in flight.
    Starting,
    Started,
    Ready,
    Failed,
}

/// The snapshot a session owes when its agent ends.
#[derive(Debug)]
enum LastSnapshot {
    /// Take one of the agent as it is now.
    Take,
    /// A swap failed after saving the stopped agent: nothing changed since.
    Taken,
    /// A swap's snapshot failed: keep the agent rather than copy it again.
    Failed(BackendError),
}

/// The per-bottle Dockerfile an adopted rebuild replaced (`None`: there was none).
#[derive(Debug)]
struct Previous(Option<String>);

/// How a session ends after a failed swap: the code, and the snapshot it still owes.
type Ending = (Result<i64, BackendError>, LastSnapshot);

/// What a session task is started with: the bottle and its backend, how to run it, where its
/// snapshots go, and the operator's terminal and signals. [`super::run_with`] sets it up.
pub(super) struct Setup<B> {
    pub(super) backend: B,
    /// The one plan: approved hosts are folded into it as the session runs.
    pub(super) plan: BottlePlan,
    pub(super) opts: SessionOptions,
    pub(super) store: Store,
    pub(super) console: Console,
    pub(super) signals: Signals,
}

/// The state of one running bottle, owned by its session task.
struct Session<B> {
    setup: Setup<B>,
    decisions: Option<Decisions>,
    events_tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    /// Every task the session started; dropped (aborted) with it.
    tasks: JoinSet<()>,
    /// The agent the session runs now; `None` until launched and restored.
    launched: Option<Launched>,
}

/// What a launched bottle holds.
struct Running {
    spec: LaunchSpec,
    stage: Stage,
    agent: Agent,
    chain: Chain,
    /// The image the first approval's root step is built on ahead, if any.
    root_step_base: Option<String>,
    /// The capability being rebuilt.
    building: Option<ProposalId>,
    /// Capabilities approved while another was being built or swapped in: decided in turn, each
    /// on the Dockerfile the one before made.
    waiting: VecDeque<Approval>,
}

/// Launch the bottle and run it until its agent ends, a signal arrives or something fails.
/// The teardown is the caller's.
pub(super) async fn drive<B>(setup: Setup<B>) -> Result<Outcome, SessionError>
where
    B: Backend + Clone + Send + Sync + 'static,
{
    let (events_tx, events) = mpsc::channel(16);
    let mut session = Session {
        setup,
        decisions: None,
        events_tx,
        events,
        tasks: JoinSet::new(),
        launched: None,
    };
    let result = session.launch_and_run().await;
    // The agent's terminal is released before anything else is said.
    session.tasks.shutdown().await;
    match result {
        Ok(code) => Ok(Outcome::Exited(code)),
        Err(Halt::Failed(e)) => Err(*e),
        Err(Halt::Signal(s)) => {
            session.setup.console.note(&format!(
                "got signal {s}, removing bottle {}",
                session.setup.plan.slug
            ));
            // Keep what the agent did for `claude-bottle resume`.
            if let Some(launched) = session.launched.take()
                && let Err(e) = session
                    .setup
                    .backend
                    .snapshot_agent(&launched, &session.setup.store)
                    .await
            {
                let kept = keep(&session.setup.backend, &session.setup.plan, &launched, e).await;
                // The signal's exit code stands; what happened to the agent's files is said here.
                session
                    .setup
                    .console
                    .block(&format!("claude-bottle: {kept}"));
                if !matches!(kept, SessionError::Kept { .. }) {
                    return Err(kept);
                }
            }
            Ok(Outcome::Signalled(s))
        }
    }
}

/// Await `fut` unless a signal comes first.
async fn step<T>(signals: &mut Signals, fut: impl Future<Output = T>) -> Result<T, Halt> {
    tokio::select! {
        biased;
        s = signals.recv() => Err(Halt::Signal(s)),
        v = fut => Ok(v),
    }
}

impl<B> Session<B>
where
    B: Backend + Clone + Send + Sync + 'static,
{
    async fn launch_and_run(&mut self) -> Result<i64, Halt> {
        let decisions = Decisions::open(&self.setup.plan.state_dir)?;
        self.decisions = Some(decisions);
        self.apply_pending().await?;
        let mut running = self.launch().await?;
        self.run(&mut running).await
    }

    fn decisions(&mut self) -> &mut Decisions {
        self.decisions
            .as_mut()
            .expect("opened before anything is applied")
    }

    /// Approvals made while no launcher ran: applied before launch, no agent to replace. The
    /// launch that follows uses the new per-bottle Dockerfile and allowlist.
    async fn apply_pending(&mut self) -> Result<(), Halt> {
        let scan = self.decisions().scan();
        self.audit(&scan.unaudited);
        for approval in scan.approvals {
            let id = approval.proposal.id.clone();
            let applied = match self.decide(&approval) {
                Action::Refuse { detail } => {
                    // Said as it is while the bottle runs, and recorded there.
                    self.refused(&id, &detail);
                    continue;
                }
                Action::AllowHost { host, entry } => {
                    self.allow_host(None, &id, &host, &entry).await?
                }
                Action::AllowPush { remote, pattern } => {
                    self.allow_push(None, &id, &remote, &pattern)
                }
                Action::Rebuild { candidate } => {
                    let built = self.prepare_images(Some(candidate.clone())).await?;
                    match self.adopt(
                        &id,
                        &candidate,
                        built,
                        "the bottle starts on its image as it was",
                    ) {
                        Ok((prepared, built, _)) => Applied::ok(
                            id,
                            &format!("rebuilt as {} ({built})", prepared.agent_image),
                            audit::now(),
                        ),
                        Err(failed) => failed,
                    }
                }
            };
            if self.record(&applied) {
                self.setup.console.note(&format!(
                    "applied {} before launch: {}",
                    applied.id, applied.detail
                ));
            }
        }
        Ok(())
    }

    /// Every image of the plan as it is now, the agent's from `dockerfile` when given; a signal
    /// cuts it short.
    async fn prepare_images(
        &mut self,
        dockerfile: Option<String>,
    ) -> Result<Result<Prepared, BackendError>, Halt> {
        let opts = PrepareOptions {
            workspace: self.setup.opts.workspace.clone(),
            dockerfile,
            agent_only: false,
        };
        let images = prepare::images(
            &self.setup.backend,
            &self.setup.opts.config,
            &self.setup.plan,
            &opts,
        );
        step(&mut self.setup.signals, images).await
    }

    /// Images, staged files, the agent created (and restored when resuming), the sidecars that
    /// gate it started.
    async fn launch(&mut self) -> Result<Running, Halt> {
        let prepared = self.prepare_images(None).await??;
        self.record_image(&prepared.agent_image);
        for note in &prepared.notes {
            self.setup.console.note(note);
        }
        let mut stage = stage::prepare(&self.setup.plan)?;
        if let Some(images) = &prepared.egress {
            let tokens = match &self.setup.opts.tokens {
                Some(t) => t.clone(),
                None => crate::egress::EgressRoutes::from_routes(&self.setup.plan.routes)
                    .resolve(|n| std::env::var(n).ok())?,
            };
            let staged = crate::chain::stage(
                &self.setup.plan,
                &tokens,
                self.setup.opts.config.upstream_ca.as_deref(),
                &self.setup.opts.config.allow_private_cidrs,
                &images.image_roots,
            )?;
            for (purpose, fp) in &staged.fingerprints {
                self.setup
                    .console
                    .note(&format!("{purpose} CA of this launch: SHA-256 {fp}"));
            }
            stage.egress = Some(staged);
        }
        if prepared.git.is_some() {
            let credentials = match &self.setup.opts.git {
                Some(c) => c.clone(),
                None => crate::git_gate::resolve(&self.setup.plan, |n| std::env::var(n).ok())?,
            };
            stage.git = Some(crate::git_gate::stage(
                &self.setup.plan,
                credentials,
                self.setup.opts.config.upstream_ca.as_deref(),
                &self.setup.opts.config.allow_private_cidrs,
            )?);
        }
        let mut spec = LaunchSpec::new(&self.setup.plan, &prepared, &stage, self.setup.opts.tty);
        let restore = if self.setup.opts.resume {
            self.setup.store.load().map_err(BackendError::from)?
        } else {
            None
        };
        if restore.is_some() {
            spec.agent = spec.agent.resuming(&self.setup.plan);
        }
        let launched = step(&mut self.setup.signals, self.setup.backend.launch(&spec)).await??;
        if let Some(snap) = &restore {
            step(
                &mut self.setup.signals,
                self.setup
                    .backend
                    .restore_agent(&launched, &self.setup.store, snap),
            )
            .await??;
            self.setup.console.note(&format!(
                "resumed {} from its last snapshot",
                self.setup.plan.name
            ));
        }
        self.launched = Some(launched);
        Ok(Running {
            spec,
            stage,
            agent: Agent::Running,
            chain: Chain::Starting,
            root_step_base: prepared.root_step_base,
            building: None,
            waiting: VecDeque::new(),
        })
    }

    /// The agent runs, is replaced for each approved capability, and ends the session when it
    /// exits by itself.
    async fn run(&mut self, running: &mut Running) -> Result<i64, Halt> {
        let terminal = if self.setup.opts.tty {
            Terminal::Raw
        } else {
            Terminal::Lines
        };
        self.setup.console = self.setup.console.with_terminal(terminal);
        self.start_agent();
        self.start_chain(&running.spec);
        let (wake_tx, mut wake) = mpsc::channel(16);
        let folder = self.decisions().folder();
        let _watcher = remediate::watch(&folder, wake_tx);
        // Approvals made between the pre-launch pass and the watch.
        self.apply_decisions(running).await?;
        loop {
            let event = tokio::select! {
                s = self.setup.signals.recv() => return Err(Halt::Signal(s)),
                Some(()) = wake.recv() => {
                    self.apply_decisions(running).await?;
                    continue;
                }
                Some(event) = self.events.recv() => event,
            };
            match event {
                Event::AgentExited(code) => {
                    let then = match std::mem::replace(&mut running.agent, Agent::Running) {
                        Agent::Running => None,
                        Agent::Stopping(then) => Some(then),
                    };
                    match then {
                        None => return self.end(running, code, LastSnapshot::Take).await,
                        Some(Then::Fail(e)) => {
                            return self.end(running, Err(e), LastSnapshot::Take).await;
                        }
                        Some(Then::Swap(swap)) => {
                            if let Some((code, last)) = self.swap(running, *swap).await? {
                                return self.end(running, code, last).await;
                            }
                            self.next_waiting(running);
                        }
                    }
                }
                Event::ChainStarted => running.chain = Chain::Started,
                Event::ChainReady => {
                    running.chain = Chain::Ready;
                    self.warm_root_step(running);
                }
                Event::ChainFailed(e) => {
                    running.chain = Chain::Failed;
                    if let Some(e) = self.chain_failed(running, e).await? {
                        return self.end(running, Err(e), LastSnapshot::Take).await;
                    }
                }
                Event::Rebuilt(rebuilt) => {
                    let Rebuilt {
                        approval,
                        candidate,
                        result,
                    } = *rebuilt;
                    running.building = None;
                    self.rebuilt(running, &approval, &candidate, result).await?;
                    if matches!(running.agent, Agent::Running) {
                        self.next_waiting(running);
                    }
                }
            }
        }
    }

    /// A failed chain ends the session, even with a rebuilt agent waiting to be swapped in: once
    /// the agent it stops has exited, or at once (`Some`) when it cannot be stopped, since its
    /// exit could then be waited for in vain.
    async fn chain_failed(
        &mut self,
        running: &mut Running,
        e: BackendError,
    ) -> Result<Option<BackendError>, Halt> {
        let then = match std::mem::replace(&mut running.agent, Agent::Running) {
            Agent::Running => None,
            Agent::Stopping(then) => Some(then),
        };
        match then {
            None => {
                if let Some(launched) = &self.launched {
                    // Its exit follows.
                    let stopped = step(
                        &mut self.setup.signals,
                        self.setup.backend.stop_agent(launched),
                    )
                    .await?;
                    if let Err(stop) = stopped {
                        tracing::warn!(error = %stop, "failed to stop the agent after its egress chain failed");
                        return Ok(Some(e));
                    }
                }
            }
            Some(Then::Swap(swap)) => {
                self.record(&Applied::failed(
                    swap.id,
                    &format!("the session ended before the rebuilt agent could start: {e}"),
                    audit::now(),
                ));
            }
            Some(Then::Fail(first)) => {
                tracing::warn!(error = %e, "a second egress chain failure");
                running.agent = Agent::Stopping(Then::Fail(first));
                return Ok(None);
            }
        }
        running.agent = Agent::Stopping(Then::Fail(e));
        Ok(None)
    }

    /// The agent has ended: let sidecar creations in flight finish (so the teardown sees every
    /// container), then save the agent's files for `claude-bottle resume`, or keep it.
    async fn end(
        &mut self,
        running: &mut Running,
        code: Result<i64, BackendError>,
        last: LastSnapshot,
    ) -> Result<i64, Halt> {
        while running.chain == Chain::Starting {
            let event = step(&mut self.setup.signals, self.events.recv()).await?;
            match event {
                Some(Event::ChainStarted) | None => running.chain = Chain::Started,
                Some(Event::ChainFailed(e)) => {
                    tracing::warn!(error = %e, "the egress chain failed after the agent ended");
                    running.chain = Chain::Failed;
                }
                Some(_) => {}
            }
        }
        self.tasks.shutdown().await;
        self.setup.console = self.setup.console.with_terminal(Terminal::Lines);
        // Still the session's until saved: a signal during the snapshot saves it again.
        let Some(launched) = self.launched.clone() else {
            return Ok(code?);
        };
        let saved = match last {
            LastSnapshot::Take => step(
                &mut self.setup.signals,
                self.setup
                    .backend
                    .snapshot_agent(&launched, &self.setup.store),
            )
            .await?
            .map(|_| ()),
            LastSnapshot::Taken => Ok(()),
            LastSnapshot::Failed(e) => Err(e),
        };
        self.launched = None;
        if let Err(cause) = saved {
            return Err(
                keep(&self.setup.backend, &self.setup.plan, &launched, cause)
                    .await
                    .into(),
            );
        }
        Ok(code?)
    }

    fn start_agent(&mut self) {
        let Some(launched) = self.launched.clone() else {
            return;
        };
        let backend = self.setup.backend.clone();
        let tx = self.events_tx.clone();
        self.tasks.spawn(async move {
            let code = backend.run_agent(&launched).await;
            let _ = tx.send(Event::AgentExited(code)).await;
        });
    }

    /// The agent starts at once. The sidecars that do not gate it (the egress chain) and their
    /// networks are created beside it, and their readiness is awaited while it runs (the relay
    /// holds its first connections); if one fails, the agent is stopped and the session fails
    /// naming it.
    fn start_chain(&mut self, spec: &LaunchSpec) {
        let backend = self.setup.backend.clone();
        let tx = self.events_tx.clone();
        let spec = spec.clone();
        self.tasks.spawn(async move {
            if let Err(e) = backend.start_sidecars(&spec).await {
                let _ = tx.send(Event::ChainFailed(e)).await;
                return;
            }
            let _ = tx.send(Event::ChainStarted).await;
            let event = match backend.await_sidecars(&spec).await {
                Ok(()) => Event::ChainReady,
                Err(e) => Event::ChainFailed(e),
            };
            let _ = tx.send(event).await;
        });
    }

    /// Once the egress chain is up (the launch's own work done), build the step every first
    /// approved capability starts with ([`crate::state::dockerfile::ROOT_STEP`]), so that approval builds one
    /// step instead of two. Only for bottles that can file proposals (supervise) and whose image
    /// does not already end as root. In the background and silent: a failure costs only the
    /// speed-up.
    fn warm_root_step(&mut self, running: &Running) {
        if !self.setup.plan.supervise {
            return;
        }
        let Some(image) = running.root_step_base.clone() else {
            return;
        };
        let backend = self.setup.backend.clone();
        self.tasks.spawn(async move {
            let t = std::time::Instant::now();
            match prepare::warm_root_step(&backend, &image).await {
                Ok(Some(_)) => tracing::info!(
                    image,
                    ms = t.elapsed().as_millis(),
                    "built the first approval's root step ahead"
                ),
                Ok(None) => {}
                Err(e) => tracing::debug!(image, error = %e, "could not build the root step ahead"),
            }
        });
    }

    fn audit(&mut self, unaudited: &[claude_bottle_protocol::Decision]) {
        for d in unaudited {
            if let Err(e) = self.decisions().audit(d) {
                tracing::warn!(id = %d.id, error = %e, "failed to audit a decision");
            }
        }
    }

    /// What `approval` asks, decided on the bottle as it is now.
    fn decide(&self, approval: &Approval) -> Action {
        // Only a capability is decided on the Dockerfile: an egress approval reads no file.
        let effective = if is_capability(approval) {
            stage::effective_dockerfile(&self.setup.plan)
                .map(|e| e.text().to_owned())
                .map_err(|e| e.to_string())
        } else {
            Ok(String::new())
        };
        remediate::decide(
            &approval.proposal,
            &approval.decision,
            effective.as_deref().map_err(Clone::clone),
        )
    }

    /// Read the decisions folder and carry out each new approval.
    async fn apply_decisions(&mut self, running: &mut Running) -> Result<(), Halt> {
        let scan = self.decisions().scan();
        self.audit(&scan.unaudited);
        for approval in scan.approvals {
            let capability = is_capability(&approval);
            let busy = running.building.is_some() || !matches!(running.agent, Agent::Running);
            if capability && busy {
                running.waiting.push_back(approval);
                continue;
            }
            self.carry_out(running, approval).await?;
        }
        Ok(())
    }

    /// Decide the next capability that waited, if the agent is free for it.
    fn next_waiting(&mut self, running: &mut Running) {
        while running.building.is_none()
            && matches!(running.agent, Agent::Running)
            && let Some(approval) = running.waiting.pop_front()
        {
            let id = approval.proposal.id.clone();
            match self.decide(&approval) {
                Action::Rebuild { candidate } => self.start_rebuild(running, approval, candidate),
                Action::Refuse { detail } => {
                    self.refused(&id, &detail);
                }
                // Only capabilities wait.
                Action::AllowHost { .. } | Action::AllowPush { .. } => {}
            }
        }
    }

    async fn carry_out(&mut self, running: &mut Running, approval: Approval) -> Result<(), Halt> {
        let id = approval.proposal.id.clone();
        match self.decide(&approval) {
            Action::Refuse { detail } => self.refused(&id, &detail),
            Action::AllowHost { host, entry } => {
                let applied = self.allow_host(Some(running), &id, &host, &entry).await?;
                self.record(&applied);
            }
            Action::AllowPush { remote, pattern } => {
                let applied = self.allow_push(Some(running), &id, &remote, &pattern);
                self.record(&applied);
            }
            Action::Rebuild { candidate } => self.start_rebuild(running, approval, candidate),
        }
        Ok(())
    }

    /// Record a refusal and say it on the agent's terminal.
    fn refused(&mut self, id: &ProposalId, detail: &str) {
        tracing::warn!(id = %id, "refusing an approval: {detail}");
        self.setup
            .console
            .note(&format!("refused to apply {id}: {detail}"));
        self.record(&Applied::failed(id.clone(), detail, audit::now()));
    }

    /// The host joins the approved hosts and the plan; while the bottle runs, the agent's
    /// current-config and pipelock's allowlist too, and pipelock reloads.
    async fn allow_host(
        &mut self,
        live: Option<&Running>,
        id: &ProposalId,
        host: &str,
        entry: &str,
    ) -> Result<Applied, Halt> {
        let fail = |detail: String| Ok(Applied::failed(id.clone(), &detail, audit::now()));
        if let Err(e) = approved::add(&self.setup.plan.state_dir, entry) {
            return fail(format!("failed to record the approved host: {e}"));
        }
        self.setup.plan.approve_host(host);
        if let Some(running) = live {
            let stage = &running.stage;
            if let Err(e) = stage::write_current_config(&self.setup.plan, &stage.current_config) {
                return fail(e.to_string());
            }
            // pipelock enforces the allowlist: rewrite its config and make it reload, live.
            if let Some(staged) = &stage.egress {
                if let Err(e) = crate::chain::write_pipelock_config(&self.setup.plan, staged) {
                    return fail(e.to_string());
                }
                // Its readiness is awaited before the reload signal.
                let pipelock: Option<SidecarSpec> = running
                    .spec
                    .sidecars
                    .iter()
                    .find(|s| s.name == crate::backend::PIPELOCK_SIDECAR)
                    .cloned();
                if let Some(pipelock) = pipelock {
                    let reloaded = step(
                        &mut self.setup.signals,
                        self.setup
                            .backend
                            .reload_sidecar(&self.setup.plan.slug, &pipelock),
                    )
                    .await?;
                    if let Err(e) = reloaded {
                        return fail(format!(
                            "pipelock's config was rewritten but it could not reload: {e}"
                        ));
                    }
                }
            }
            let note = if stage.egress.is_some() {
                "approved and allowed"
            } else {
                "approved; this bottle had no egress chain, it applies at the next start"
            };
            self.setup
                .console
                .note(&format!("egress to {entry} {note}"));
        }
        Ok(Applied::ok(
            id.clone(),
            &format!("{entry} added to the allowlist"),
            audit::now(),
        ))
    }

    /// The entry joins the remote's push policy in the plan and `approved-pushes`; while the
    /// bottle runs, the gate's configuration too, which its hook reads for every push.
    fn allow_push(
        &mut self,
        live: Option<&Running>,
        id: &ProposalId,
        remote: &str,
        pattern: &str,
    ) -> Applied {
        let fail = |detail: String| Applied::failed(id.clone(), &detail, audit::now());
        // The plan first: it refuses a remote the bottle does not have, or an entry its list
        // cannot take, before anything is recorded.
        let mut plan = self.setup.plan.clone();
        if let Err(why) = plan.approve_push(remote, pattern) {
            return fail(format!("refused, nothing applied: {why}"));
        }
        if let Err(e) = approved::add_push(&self.setup.plan.state_dir, remote, pattern) {
            return fail(format!("failed to record the approved push entry: {e}"));
        }
        self.setup.plan = plan;
        if let Some(staged) = live.and_then(|r| r.stage.git.as_ref()) {
            if let Err(e) = crate::git_gate::write_config(&self.setup.plan, staged) {
                return fail(format!(
                    "recorded, but the running gate's configuration could not be rewritten ({e}); it applies at the next start"
                ));
            }
            self.setup.console.note(&format!(
                "push {pattern} to {remote} approved: the agent may push it now"
            ));
        }
        Applied::ok(
            id.clone(),
            &format!("{pattern} added to the push policy of git remote {remote}"),
            audit::now(),
        )
    }

    /// Build the candidate in the background; [`Event::Rebuilt`] carries the outcome.
    fn start_rebuild(&mut self, running: &mut Running, approval: Approval, candidate: String) {
        let id = approval.proposal.id.clone();
        tracing::info!(id = %id, "rebuilding for an approved capability");
        running.building = Some(id);
        let backend = self.setup.backend.clone();
        let plan = self.setup.plan.clone();
        let opts = PrepareOptions {
            workspace: self.setup.opts.workspace.clone(),
            dockerfile: Some(candidate.clone()),
            // The running sidecars and the launch's trust bundle stay.
            agent_only: true,
        };
        let tx = self.events_tx.clone();
        let config = self.setup.opts.config.clone();
        self.tasks.spawn(async move {
            let t = std::time::Instant::now();
            let result = prepare::images(&backend, &config, &plan, &opts).await;
            tracing::info!(id = %approval.proposal.id, ms = t.elapsed().as_millis(), "rebuild finished");
            let _ = tx
                .send(Event::Rebuilt(Box::new(Rebuilt {
                    approval,
                    candidate,
                    result,
                })))
                .await;
        });
    }

    /// A rebuild finished: on success the candidate becomes the per-bottle Dockerfile and the
    /// agent is stopped for its successor; a failure is recorded and the agent runs on.
    async fn rebuilt(
        &mut self,
        running: &mut Running,
        approval: &Approval,
        candidate: &str,
        result: Result<Prepared, BackendError>,
    ) -> Result<(), Halt> {
        let id = approval.proposal.id.clone();
        if !matches!(running.agent, Agent::Running) {
            // The chain failed meanwhile: the session is ending.
            self.record(&Applied::failed(
                id,
                "the session ended before the rebuilt agent could start",
                audit::now(),
            ));
            return Ok(());
        }
        if let Ok(prepared) = &result {
            // The agent holds the terminal; the approval's record tells the outcome.
            for note in &prepared.notes {
                tracing::info!(note = %note, "rebuild");
            }
        }
        let (prepared, built, previous) =
            match self.adopt(&id, candidate, result, "the agent keeps running unchanged") {
                Ok(adopted) => adopted,
                Err(failed) => {
                    self.record(&failed);
                    return Ok(());
                }
            };
        if let Err(e) = stage::write_current_config(&self.setup.plan, &running.stage.current_config)
        {
            self.undo(running, id, &format!("rebuilt, but {e}"), previous);
            return Ok(());
        }
        // Started ahead and held at its gate, released when it runs (named after the approval).
        let mut agent = running
            .spec
            .agent
            .resuming(&self.setup.plan)
            .held(running.stage.gate.join(id.to_string()));
        agent.image = prepared.agent_image.clone();
        if let Some(user) = &prepared.agent_user {
            agent.user = user.clone();
        }
        let Some(launched) = self.launched.clone() else {
            return Ok(());
        };
        // The successor is created while the agent still runs: its downtime is the stop, the
        // carry-over of its files and the start, nothing that could happen before.
        let t = std::time::Instant::now();
        let successor = step(
            &mut self.setup.signals,
            self.setup.backend.create_successor(&running.spec, &agent),
        )
        .await?;
        let successor = match successor {
            Ok(s) => s,
            Err(e) => {
                let detail = format!("rebuilt, but the new agent could not be created: {e}");
                self.undo(running, id, &detail, previous);
                return Ok(());
            }
        };
        tracing::info!(id = %id, image = %agent.image, ms = t.elapsed().as_millis(), "successor created; stopping the agent");
        let t = std::time::Instant::now();
        let stopped = step(
            &mut self.setup.signals,
            self.setup.backend.stop_agent(&launched),
        )
        .await?;
        tracing::info!(id = %id, ms = t.elapsed().as_millis(), "agent stopped");
        if let Err(e) = stopped {
            // The held successor waits at its gate until the next swap replaces it or the
            // teardown removes it.
            let detail = format!("rebuilt, but failed to stop the running agent: {e}");
            self.undo(running, id, &detail, previous);
            return Ok(());
        }
        running.agent = Agent::Stopping(Then::Swap(Box::new(Swap {
            id,
            agent,
            successor,
            built,
        })));
        Ok(())
    }

    /// A finished rebuild made the bottle's: the candidate becomes the per-bottle Dockerfile.
    /// Returns the images, the build summary and the Dockerfile it replaced (for [`Self::undo`]),
    /// or the failure to record; `unchanged` says what a failed build leaves as it was.
    fn adopt(
        &self,
        id: &ProposalId,
        candidate: &str,
        result: Result<Prepared, BackendError>,
        unchanged: &str,
    ) -> Result<(Prepared, String, Previous), Applied> {
        let fail = |detail: String| Applied::failed(id.clone(), &detail, audit::now());
        let prepared = result.map_err(|e| fail(format!("the rebuild failed; {unchanged}\n{e}")))?;
        let per_bottle = self.setup.plan.layout().per_bottle_dockerfile();
        let previous = Previous(std::fs::read_to_string(&per_bottle).ok());
        crate::state::write_atomic(&per_bottle, candidate.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        let built = prepared
            .builds
            .iter()
            .filter(|b| b.built)
            .map(|b| format!("{} steps, {} cached", b.steps, b.cached_steps))
            .collect::<Vec<_>>()
            .join("; ");
        let built = if built.is_empty() {
            "image already built".to_string()
        } else {
            built
        };
        Ok((prepared, built, previous))
    }

    /// An adopted rebuild whose agent could not take over is undone: the per-bottle Dockerfile
    /// and the current-config are as before, so the failed approval changes nothing, not even
    /// the next start. Records the failure, saying so (or what could not be undone).
    fn undo(&mut self, running: &Running, id: ProposalId, detail: &str, previous: Previous) {
        let per_bottle = self.setup.plan.layout().per_bottle_dockerfile();
        let restored = match &previous.0 {
            Some(text) => {
                crate::state::write_atomic(&per_bottle, text.as_bytes()).map_err(|e| e.to_string())
            }
            None => std::fs::remove_file(&per_bottle).map_err(|e| e.to_string()),
        };
        let detail = match restored {
            Err(e) => format!(
                "{detail}; the agent keeps running unchanged, but the approval could not be undone ({e}): the next start uses the rebuilt Dockerfile"
            ),
            Ok(()) => {
                match stage::write_current_config(&self.setup.plan, &running.stage.current_config) {
                    Ok(()) => format!(
                        "{detail}; the approval was undone, the agent keeps running unchanged"
                    ),
                    // The agent reads a Dockerfile with the step; the bottle's own is without it.
                    Err(e) => format!(
                        "{detail}; the approval was undone, the agent keeps running unchanged (its current-config still shows the step: {e})"
                    ),
                }
            }
        };
        self.record(&Applied::failed(id, &detail, audit::now()));
    }

    /// The agent stopped for a rebuilt one: carry its home and workspace over to its successor
    /// (saving them on the way) and start it. `Some` ends the session with that code and what it
    /// still owes.
    async fn swap(&mut self, running: &mut Running, swap: Swap) -> Result<Option<Ending>, Halt> {
        let Some(old) = self.launched.clone() else {
            return Ok(None);
        };
        let t = std::time::Instant::now();
        let swapped = step(
            &mut self.setup.signals,
            self.setup
                .backend
                .swap_in(&old, swap.successor, &self.setup.store),
        )
        .await?;
        tracing::info!(
            ms = t.elapsed().as_millis(),
            "agent's files carried over, successor swapped in"
        );
        match swapped {
            Ok(new) => {
                self.launched = Some(new);
                running.spec.agent = swap.agent;
                let image = running.spec.agent.image.clone();
                self.record_image(&image);
                self.setup.console.note(&format!(
                    "capability {} applied: agent rebuilt as {image}, session resumed",
                    swap.id
                ));
                self.record(&Applied::ok(
                    swap.id,
                    &format!("rebuilt as {image} ({}); agent resumed", swap.built),
                    audit::now(),
                ));
                self.start_agent();
                Ok(None)
            }
            Err(SwapError::Snapshot(e)) => {
                self.record(&Applied::failed(
                    swap.id,
                    &format!(
                        "rebuilt, but the agent's snapshot failed, so it was not replaced (the next start uses the rebuilt image): {e}"
                    ),
                    audit::now(),
                ));
                // The agent is kept (its files exist nowhere else): that is the session's end.
                Ok(Some((Ok(0), LastSnapshot::Failed(e))))
            }
            Err(SwapError::Successor(e)) => {
                self.record(&Applied::failed(
                    swap.id,
                    &format!("rebuilt, but the new agent did not start (the next start uses the rebuilt image): {e}"),
                    audit::now(),
                ));
                // Its files were saved on the way.
                Ok(Some((Err(e), LastSnapshot::Taken)))
            }
        }
    }

    /// Record `image` as the one the agent runs, for `prune` (a failure costs prune its knowledge
    /// of the bottle's current image: it then keeps them all).
    fn record_image(&self, image: &str) {
        if let Err(e) = crate::state::in_use::record(&self.setup.plan.layout(), image) {
            tracing::warn!(error = %e, "failed to record the image the agent runs");
        }
    }

    /// Write an approval's outcome; false (and said) when it could not be.
    fn record(&mut self, applied: &Applied) -> bool {
        match self.decisions().record(applied) {
            Ok(()) => {
                // The detail may quote a failed build's output: one escaped line in the log.
                let detail = claude_bottle_protocol::escape_line(&applied.detail);
                tracing::info!(id = %applied.id, outcome = ?applied.outcome, %detail, "applied");
                true
            }
            Err(e) => {
                self.setup.console.note(&format!(
                    "failed to record the outcome of {}: {e}",
                    applied.id
                ));
                false
            }
        }
    }
}
