//! The remediation loop: an approved proposal becomes a real change to the bottle.
//!
//! - **egress**: the host joins `state/<slug>/approved-hosts`, the plan's routes and allowlist, and
//!   the current-config, without touching the agent.
//! - **capability**: the change is appended to the per-bottle Dockerfile *candidate*, the images are
//!   rebuilt with the layer cache, and only a successful build makes the candidate the per-bottle
//!   Dockerfile; the running agent is then snapshotted and replaced by one from the new image that
//!   resumes its session. A failed build leaves the agent untouched and records the failure.
//!
//! Every outcome becomes an applied record (supervise reports it to the shim) and an audit line.
//! An applied record is what makes a decision done: decisions without one are applied at the next
//! start, and the per-bottle Dockerfile's proposal markers make a repeat after a crash harmless.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use claude_bottle_protocol::queue::Folder;
use claude_bottle_protocol::{Applied, Decision, Proposal, ProposalKind, Verdict, escape_line};
use notify::Watcher as _;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{AgentSpec, Backend, Launched, PrepareOptions, SidecarSpec};
use crate::plan::BottlePlan;
use crate::stage::{self, Stage};
use crate::state::{self, Queue, approved, audit, dockerfile};

/// How often the decisions folder is re-read when no file event arrives.
const POLL: Duration = Duration::from_secs(2);

/// A rebuilt agent for the session to start in place of the running one.
#[derive(Debug)]
pub struct Replacement {
    /// The proposal whose approval made it.
    pub id: claude_bottle_protocol::ProposalId,
    pub agent: AgentSpec,
    /// One line for the operator's terminal.
    pub note: String,
    /// The session answers once the new agent is created (or why it could not be).
    pub done: oneshot::Sender<Result<(), String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RemediateError {
    #[error(transparent)]
    Queue(#[from] state::QueueError),
    #[error(transparent)]
    Stage(#[from] stage::StageError),
}

/// Applies the decisions of one bottle.
#[derive(Debug)]
pub struct Remediator<B> {
    backend: B,
    plan: BottlePlan,
    queue: Queue,
    workspace: Option<PathBuf>,
    /// Decision ids already written to the audit log (hand-written ones are added once).
    audited: HashSet<String>,
    /// Approvals this session already tried: one attempt each, even if its record could not be
    /// written (else a poll would rebuild and swap the agent every few seconds).
    attempted: HashSet<String>,
}

impl<B: Backend + Clone + Send + Sync + 'static> Remediator<B> {
    pub fn new(
        backend: B,
        plan: BottlePlan,
        workspace: Option<PathBuf>,
    ) -> Result<Self, RemediateError> {
        let queue = Queue::open(&plan.state_dir)?;
        let audited = audited_decisions(&plan.state_dir);
        Ok(Self {
            backend,
            plan,
            queue,
            workspace,
            audited,
            attempted: HashSet::new(),
        })
    }

    /// The plan with every approved host folded in.
    pub fn plan(&self) -> &BottlePlan {
        &self.plan
    }

    /// Before launch: apply every approval made while no launcher ran. No agent is replaced; the
    /// launch that follows uses the new per-bottle Dockerfile and allowlist.
    pub async fn apply_pending(&mut self) -> Vec<Applied> {
        let mut out = Vec::new();
        for (proposal, decision) in self.undone() {
            if let Some(applied) = self.apply(&proposal, &decision, None).await {
                out.push(applied);
            }
        }
        out
    }

    /// While the agent runs: apply each new approval as it appears; a capability hands the
    /// session a [`Replacement`] and stops the running agent so the session can swap it.
    pub async fn watch(
        mut self,
        stage: Stage,
        template: AgentSpec,
        pipelock: Option<SidecarSpec>,
        launched: Launched,
        tx: mpsc::Sender<Replacement>,
    ) {
        let (wake_tx, mut wake) = mpsc::channel::<()>(16);
        let decisions = self
            .plan
            .state_dir
            .join(state::queue::QUEUE_DIR)
            .join(Folder::Decisions.dir_name());
        // inotify where it works; the poll below covers mounts where it does not, and a uid whose
        // inotify instances or watches are used up (an agent running as the operator's uid can
        // hold them all: notify then fails with EMFILE or ENOSPC).
        let watched = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.map_or(true, |e| changes_content(&e)) {
                let _ = wake_tx.try_send(());
            }
        })
        .and_then(|mut w| {
            w.watch(&decisions, notify::RecursiveMode::NonRecursive)
                .map(|()| w)
        });
        let _watcher = match watched {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    dir = %decisions.display(),
                    error = %e,
                    "failed to watch the decisions folder; polling it every {} s (fs.inotify.max_user_instances and max_user_watches are per uid, and an agent running as your uid can use them up)",
                    POLL.as_secs()
                );
                None
            }
        };
        let live = Live {
            stage,
            template,
            pipelock,
            launched,
            tx,
        };
        loop {
            for (proposal, decision) in self.undone() {
                self.apply(&proposal, &decision, Some(&live)).await;
            }
            // Without a watcher the channel is closed: `recv` would answer at once, every time.
            if wake.is_closed() && wake.is_empty() {
                tokio::time::sleep(POLL).await;
                continue;
            }
            tokio::select! {
                _ = wake.recv() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Decided proposals without an applied record, oldest first; rejections are audited and
    /// need nothing else (supervise tells the agent).
    fn undone(&mut self) -> Vec<(Proposal, Decision)> {
        let ids = match self.queue.ids(Folder::Decisions) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "failed to list decisions");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for id in ids {
            let (Ok(Some(decision)), Ok(Some(proposal))) =
                (self.queue.decision(&id), self.queue.proposal(&id))
            else {
                continue;
            };
            if !self.audited.contains(id.as_str()) {
                // approve/reject audit their own decisions; only a hand-written one is new here.
                self.audited.extend(audited_decisions(&self.plan.state_dir));
                if self.audited.insert(id.to_string()) {
                    let event = audit::Event::Decision(decision.clone());
                    let _ = audit::record(&self.plan.state_dir, &event);
                }
            }
            if decision.decision != Verdict::Approve
                || matches!(self.queue.applied(&id), Ok(Some(_)))
                || !self.attempted.insert(id.to_string())
            {
                continue;
            }
            out.push((proposal, decision));
        }
        out.sort_by_key(|(p, _)| p.created);
        out
    }

    /// Apply one approval and record its outcome; `None` when the record could not be written.
    async fn apply(
        &mut self,
        proposal: &Proposal,
        decision: &Decision,
        live: Option<&Live>,
    ) -> Option<Applied> {
        let id = proposal.id.clone();
        // The proposal is read again here, and its folder is writable to supervise: apply only
        // what the operator decided on. A mismatch is refused and, as every outcome, audited.
        let applied = match decision.check_bound_to(proposal) {
            Err(why) => {
                tracing::warn!(id = %id, "refusing an approval: {why}");
                eprint!("\r\nclaude-bottle: refused to apply {id}: {why}\r\n");
                Applied::failed(
                    id,
                    &format!("refused, nothing applied: {why}"),
                    audit::now(),
                )
            }
            Ok(()) => self.apply_change(proposal, decision, live).await,
        };
        match self.queue.record_applied(&applied) {
            Ok(()) => {
                // The detail may quote a failed build's output: one escaped line in the log.
                let detail = escape_line(&applied.detail);
                tracing::info!(id = %applied.id, outcome = ?applied.outcome, %detail, "applied");
                Some(applied)
            }
            Err(e) => {
                eprintln!(
                    "claude-bottle: failed to record the outcome of {}: {e}",
                    applied.id
                );
                None
            }
        }
    }

    /// The approved change (the operator's edit, else the proposal's own), made.
    async fn apply_change(
        &mut self,
        proposal: &Proposal,
        decision: &Decision,
        live: Option<&Live>,
    ) -> Applied {
        let id = proposal.id.clone();
        match decision.effective_kind(&proposal.kind) {
            Err(e) => Applied::failed(
                id,
                &format!("the operator's edit cannot apply: {e}"),
                audit::now(),
            ),
            // A hand-written approval is held to the same rule as `approve`'s flag.
            Ok(ProposalKind::Egress(e))
                if e.host.needs_operator_flag().is_some() && !decision.allow_internal_host =>
            {
                let why = e.host.needs_operator_flag().unwrap_or_default();
                Applied::failed(
                    id,
                    &format!(
                        "refused, nothing applied: egress to {} is {why}; the decision must say \"allow_internal_host\": true (`claude-bottle approve --allow-internal-host`)",
                        e.host
                    ),
                    audit::now(),
                )
            }
            Ok(ProposalKind::Egress(e)) => {
                self.apply_egress(&id, &e.host.to_string(), e.port, live)
                    .await
            }
            Ok(ProposalKind::Capability(cap)) => self.apply_capability(proposal, &cap, live).await,
        }
    }

    async fn apply_egress(
        &mut self,
        id: &claude_bottle_protocol::ProposalId,
        host: &str,
        port: Option<u16>,
        live: Option<&Live>,
    ) -> Applied {
        let entry = match port {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        if let Err(e) = approved::add(&self.plan.state_dir, &entry) {
            return Applied::failed(
                id.clone(),
                &format!("failed to record the approved host: {e}"),
                audit::now(),
            );
        }
        self.plan.approve_host(host);
        if let Some(live) = live
            && let Err(e) = stage::write_current_config(&self.plan, &live.stage.current_config)
        {
            return Applied::failed(id.clone(), &e.to_string(), audit::now());
        }
        // pipelock enforces the allowlist: rewrite its config and make it reload, live.
        if let Some(live) = live
            && let Some(staged) = &live.stage.egress
        {
            if let Err(e) = crate::chain::write_pipelock_config(&self.plan, staged) {
                return Applied::failed(id.clone(), &e.to_string(), audit::now());
            }
            let reloaded = match &live.pipelock {
                Some(pipelock) => self.backend.reload_sidecar(&self.plan.slug, pipelock).await,
                None => Ok(()),
            };
            if let Err(e) = reloaded {
                return Applied::failed(
                    id.clone(),
                    &format!("pipelock's config was rewritten but it could not reload: {e}"),
                    audit::now(),
                );
            }
        }
        if let Some(live) = live {
            let note = if live.stage.egress.is_some() {
                "approved and allowed"
            } else {
                "approved; this bottle had no egress chain, it applies at the next start"
            };
            let entry = escape_line(&entry);
            eprint!("\r\nclaude-bottle: egress to {entry} {note}\r\n");
        }
        Applied::ok(
            id.clone(),
            &format!("{entry} added to the allowlist"),
            audit::now(),
        )
    }

    async fn apply_capability(
        &mut self,
        proposal: &Proposal,
        cap: &claude_bottle_protocol::Capability,
        live: Option<&Live>,
    ) -> Applied {
        let id = proposal.id.clone();
        let fail = |detail: String| Applied::failed(id.clone(), &detail, audit::now());
        let current = match stage::effective_dockerfile(&self.plan) {
            Ok(c) => c,
            Err(e) => return fail(e.to_string()),
        };
        let candidate = match dockerfile::with_capability(current.text(), &id, cap) {
            Ok(c) => c,
            Err(e) => return fail(e.to_string()),
        };
        let opts = PrepareOptions {
            workspace: self.workspace.clone(),
            dockerfile: Some(candidate.clone()),
            agent_only: live.is_some(),
        };
        tracing::info!(id = %id, "rebuilding for an approved capability");
        let t = std::time::Instant::now();
        let prepared = self.backend.prepare(&self.plan, &opts).await;
        tracing::info!(id = %id, ms = t.elapsed().as_millis(), "rebuild finished");
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                return fail(format!(
                    "the rebuild failed; the agent keeps running unchanged\n{e}"
                ));
            }
        };
        let per_bottle = self.plan.state_dir.join(dockerfile::PER_BOTTLE_DOCKERFILE);
        if let Err(e) = state::write_atomic(&per_bottle, candidate.as_bytes()) {
            return fail(e.to_string());
        }
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
        let image = prepared.agent_image.clone();
        let Some(live) = live else {
            return Applied::ok(
                id.clone(),
                &format!("rebuilt as {image} ({built})"),
                audit::now(),
            );
        };
        if let Err(e) = stage::write_current_config(&self.plan, &live.stage.current_config) {
            return fail(e.to_string());
        }
        let mut agent = live.template.resuming(&self.plan);
        agent.image = image.clone();
        if let Some(user) = &prepared.agent_user {
            agent.user = user.clone();
        }
        let (done_tx, done_rx) = oneshot::channel();
        let note = format!("capability {id} applied: agent rebuilt as {image}, session resumed");
        if live
            .tx
            .send(Replacement {
                id: id.clone(),
                agent,
                note,
                done: done_tx,
            })
            .await
            .is_err()
        {
            return fail("the session ended before the rebuilt agent could start".into());
        }
        tracing::info!(id = %id, image = %image, "rebuilt; stopping the agent for its successor");
        let t = std::time::Instant::now();
        let stopped = self.backend.stop_agent(&live.launched).await;
        tracing::info!(id = %id, ms = t.elapsed().as_millis(), "agent stopped");
        if let Err(e) = stopped {
            return fail(format!("failed to stop the running agent: {e}"));
        }
        match done_rx.await {
            Ok(Ok(())) => Applied::ok(
                id.clone(),
                &format!("rebuilt as {image} ({built}); agent resumed"),
                audit::now(),
            ),
            Ok(Err(e)) => fail(format!(
                "rebuilt as {image}, but the new agent did not start: {e}"
            )),
            Err(_) => fail("the session ended before the rebuilt agent could start".into()),
        }
    }
}

/// Ids of the decisions the audit log already records.
fn audited_decisions(state_dir: &std::path::Path) -> HashSet<String> {
    audit::read(state_dir)
        .map(|entries| {
            entries
                .into_iter()
                .filter(|e| e.event == "decision")
                .map(|e| e.id.to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// What the live loop needs of the running session.
#[derive(Debug)]
struct Live {
    stage: Stage,
    template: AgentSpec,
    /// The running pipelock's spec (its readiness is awaited before a reload signal).
    pipelock: Option<SidecarSpec>,
    launched: Launched,
    tx: mpsc::Sender<Replacement>,
}

/// Whether a watcher's event may mean a new or changed decision. Each pass of the loop opens the
/// folder and its files, which inotify reports as events too (notify watches `IN_OPEN`): waking
/// on those would make every pass the cause of the next, a busy loop for the whole session.
fn changes_content(event: &notify::Event) -> bool {
    !matches!(event.kind, notify::EventKind::Access(_))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use notify::Watcher as _;

    /// A real inotify watcher on a folder, counting the events that pass `changes_content`.
    fn watched(
        dir: &std::path::Path,
    ) -> (notify::RecommendedWatcher, std::sync::mpsc::Receiver<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.map_or(true, |e| super::changes_content(&e)) {
                let _ = tx.send(());
            }
        })
        .expect("watcher");
        w.watch(dir, notify::RecursiveMode::NonRecursive)
            .expect("watch");
        (w, rx)
    }

    #[test]
    fn reading_the_decisions_folder_does_not_wake_its_own_watcher() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.json"), b"{}").expect("write");
        // Let the write's own events (and the first read's atime update) pass.
        std::fs::read(dir.path().join("a.json")).expect("read");
        std::thread::sleep(Duration::from_millis(100));
        let (_w, rx) = watched(dir.path());
        for _ in 0..3 {
            let _ = std::fs::read_dir(dir.path()).expect("list").count();
            std::fs::read(dir.path().join("a.json")).expect("read");
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "listing and reading woke the watcher: a pass would cause the next"
        );
        std::fs::write(dir.path().join("b.json"), b"{}").expect("write");
        assert!(
            rx.recv_timeout(Duration::from_secs(5)).is_ok(),
            "a new decision wakes it"
        );
    }
}
