//! The remediation loop's decisions: what an approved proposal changes, decided in pure code.
//!
//! - **egress**: the host joins `state/<slug>/approved-hosts`, the plan's routes and allowlist, and
//!   the current-config, without touching the agent ([`Action::AllowHost`]).
//! - **push**: the entry joins the git remote's push policy (`state/<slug>/approved-pushes`, the
//!   plan, the running gate's configuration), without touching the agent ([`Action::AllowPush`]).
//! - **capability**: the change is appended to the per-bottle Dockerfile *candidate*; the images are
//!   rebuilt with the layer cache, and only a successful build makes the candidate the per-bottle
//!   Dockerfile; the running agent is then snapshotted and replaced by one from the new image that
//!   resumes its session ([`Action::Rebuild`]). A failed build leaves the agent untouched.
//! - anything the launcher must not apply (a replaced proposal, an internal host without the
//!   operator's flag, an edit that does not fit) is refused ([`Action::Refuse`]).
//!
//! [`decide`] is the whole policy: a decision and what the bottle holds now go in, an action comes
//! out. The session ([`crate::session`]) carries actions out, and every outcome becomes an applied
//! record (supervise reports it to the shim) and an audit line. An applied record is what makes a
//! decision done: decisions without one are applied at the next start, and the per-bottle
//! Dockerfile's proposal markers make a repeat after a crash harmless.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use claude_bottle_io::watch;
use claude_bottle_protocol::queue::Folder;
use claude_bottle_protocol::{Applied, Decision, Proposal, ProposalKind, Verdict};
use tokio::sync::mpsc;

use crate::state::{self, Queue, audit, dockerfile};

/// How often the decisions folder is re-read when no file event arrives.
pub const POLL: Duration = Duration::from_secs(2);

/// What an approval asks of the bottle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Add `entry` to the approved hosts and `host` to the plan's allowlist, then rewrite the
    /// current-config and pipelock's config and make pipelock reload.
    AllowHost { host: String, entry: String },
    /// Add `pattern` to the push policy of git remote `remote`: recorded in
    /// `state/<slug>/approved-pushes`, folded into the plan, and, while the gate runs, into its
    /// configuration, which the gate reads for every push.
    AllowPush { remote: String, pattern: String },
    /// Build the agent image from `candidate` (the effective Dockerfile with the capability
    /// appended); if it builds, it becomes the per-bottle Dockerfile and the agent is replaced.
    Rebuild { candidate: String },
    /// Nothing is applied: the approval is recorded as failed with `detail`.
    Refuse { detail: String },
}

/// What `decision` on `proposal` does to a bottle whose effective Dockerfile reads `effective`
/// (or could not be read, and why). The whole policy of the remediation loop; pure.
pub fn decide(proposal: &Proposal, decision: &Decision, effective: Result<&str, String>) -> Action {
    // The proposal is read again before this, and its folder is writable to supervise: apply only
    // what the operator decided on.
    if let Err(why) = decision.check_bound_to(proposal) {
        return Action::Refuse {
            detail: format!("refused, nothing applied: {why}"),
        };
    }
    match decision.effective_kind(&proposal.kind) {
        Err(e) => Action::Refuse {
            detail: format!("the operator's edit cannot apply: {e}"),
        },
        // A hand-written approval is held to the same rule as `approve`'s flag.
        Ok(ProposalKind::Egress(e)) => match e.host.needs_operator_flag() {
            Some(why) if !decision.allow_internal_host => Action::Refuse {
                detail: format!(
                    "refused, nothing applied: egress to {} is {why}; the decision must say \"allow_internal_host\": true (`claude-bottle approve --allow-internal-host`)",
                    e.host
                ),
            },
            _ => {
                let host = e.host.to_string();
                let entry = match e.port {
                    Some(p) => format!("{host}:{p}"),
                    None => host.clone(),
                };
                Action::AllowHost { host, entry }
            }
        },
        Ok(ProposalKind::Push(p)) => Action::AllowPush {
            remote: p.remote,
            pattern: p.pattern,
        },
        Ok(ProposalKind::Capability(cap)) => {
            let current = match effective {
                Ok(text) => text,
                Err(e) => return Action::Refuse { detail: e },
            };
            match dockerfile::with_capability(current, &proposal.id, &cap) {
                Ok(candidate) => Action::Rebuild { candidate },
                Err(e) => Action::Refuse {
                    detail: e.to_string(),
                },
            }
        }
    }
}

/// One approval to carry out.
#[derive(Debug, Clone)]
pub struct Approval {
    pub proposal: Proposal,
    pub decision: Decision,
}

/// What one read of the decisions folder found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Approvals without an applied record, not tried yet in this session, oldest first.
    pub approvals: Vec<Approval>,
    /// Decisions the audit log does not record yet (hand-written ones: `approve` and `reject`
    /// audit their own). The caller audits them ([`Decisions::audit`]).
    pub unaudited: Vec<Decision>,
}

/// The decisions of one bottle, as the launcher reads them.
#[derive(Debug)]
pub struct Decisions {
    queue: Queue,
    /// Decision ids the audit log records (read once, then kept up to date).
    audited: HashSet<String>,
    /// Approvals this session already tried: one attempt each, even if its record could not be
    /// written (else a poll would rebuild and swap the agent every few seconds).
    attempted: HashSet<String>,
}

impl Decisions {
    pub fn open(state_dir: &Path) -> Result<Self, state::QueueError> {
        Ok(Self {
            queue: Queue::open(state_dir)?,
            audited: audited_decisions(state_dir),
            attempted: HashSet::new(),
        })
    }

    /// The folder whose changes mean a new decision.
    pub fn folder(&self) -> PathBuf {
        state::Layout::new(self.queue.state_dir()).queue_folder(Folder::Decisions)
    }

    /// Read the folder: approvals to apply (each returned once per session) and decisions to
    /// audit. Reads only; a folder that cannot be listed reads as empty (and is logged).
    pub fn scan(&mut self) -> Scan {
        let ids = match self.queue.ids(Folder::Decisions) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "failed to list decisions");
                return Scan::default();
            }
        };
        let mut scan = Scan::default();
        let mut reread = false;
        for id in ids {
            let (Ok(Some(decision)), Ok(Some(proposal))) =
                (self.queue.decision(&id), self.queue.proposal(&id))
            else {
                continue;
            };
            if !self.audited.contains(id.as_str()) && !reread {
                // approve/reject audit their own decisions after writing them: read the log once
                // more before taking one for hand-written.
                self.audited
                    .extend(audited_decisions(self.queue.state_dir()));
                reread = true;
            }
            if !self.audited.contains(id.as_str()) {
                scan.unaudited.push(decision.clone());
            }
            if decision.decision != Verdict::Approve
                || matches!(self.queue.applied(&id), Ok(Some(_)))
                || !self.attempted.insert(id.to_string())
            {
                continue;
            }
            scan.approvals.push(Approval { proposal, decision });
        }
        scan.approvals.sort_by_key(|a| a.proposal.created);
        scan
    }

    /// Write `decision` to the audit log, once.
    pub fn audit(&mut self, decision: &Decision) -> Result<(), audit::AuditError> {
        if self.audited.insert(decision.id.to_string()) {
            audit::record(
                self.queue.state_dir(),
                &audit::Event::Decision(decision.clone()),
            )?;
        }
        Ok(())
    }

    /// Record an approval's outcome (and audit it).
    pub fn record(&self, applied: &Applied) -> Result<(), state::QueueError> {
        self.queue.record_applied(applied)
    }
}

/// Ids of the decisions the audit log already records.
fn audited_decisions(state_dir: &Path) -> HashSet<String> {
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

/// Wake `tx` whenever the decisions folder may have changed: on an inotify event where it works,
/// and every [`POLL`] in any case (mounts where inotify does not work, and a uid whose inotify
/// instances or watches are used up). Returns the watcher to keep alive; `None` when it could not
/// be set up (then only the poll wakes, and the operator is told why).
pub fn watch(folder: &Path, tx: mpsc::Sender<()>) -> Option<watch::Watcher> {
    let wake = tx.clone();
    let watched = watch::watcher(move || {
        let _ = wake.try_send(());
    })
    .and_then(|mut w| watch::watch_folder(&mut w, folder).map(|()| w));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(POLL).await;
            if tx.send(()).await.is_err() {
                return;
            }
        }
    });
    match watched {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                dir = %folder.display(),
                error = %e,
                "failed to watch the decisions folder; polling it every {} s (fs.inotify.max_user_instances and max_user_watches are per uid, and an agent running as your uid can use them up)",
                POLL.as_secs()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use claude_bottle_protocol::queue::Folder;
    use claude_bottle_protocol::{Applied, Decision, Proposal, ProposalKind, to_json_pretty};

    use super::{Action, Decisions, decide};
    use crate::state::{Queue, audit};
    use crate::testing::{capability, egress};

    fn proposal(kind: ProposalKind) -> Proposal {
        crate::testing::proposal("1-p", "app", kind, 1)
    }

    fn refused(action: Action) -> String {
        match action {
            Action::Refuse { detail } => detail,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn an_approved_capability_is_a_rebuild_of_the_effective_dockerfile_with_it() {
        let p = proposal(capability("ripgrep"));
        let d = Decision::approve_bound(&p, "", "op", 2);
        match decide(&p, &d, Ok("FROM base\nUSER agent\n")) {
            Action::Rebuild { candidate } => {
                assert!(
                    candidate.starts_with("FROM base\nUSER agent\n"),
                    "{candidate}"
                );
                assert!(candidate.contains("ripgrep:native"), "{candidate}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_approved_push_adds_its_entry_or_the_operators_edit_of_it() {
        let push = |pattern: &str| {
            ProposalKind::Push(claude_bottle_protocol::Push {
                remote: "origin".into(),
                pattern: pattern.into(),
            })
        };
        let p = proposal(push("feature/x"));
        let mut d = Decision::approve_bound(&p, "", "op", 2);
        assert_eq!(
            decide(&p, &d, Err("unread".into())),
            Action::AllowPush {
                remote: "origin".into(),
                pattern: "feature/x".into()
            },
            "the Dockerfile is not needed"
        );
        // The operator widens it into a pattern.
        d.edit = Some(push("feature/*"));
        assert_eq!(
            decide(&p, &d, Ok("FROM base\n")),
            Action::AllowPush {
                remote: "origin".into(),
                pattern: "feature/*".into()
            }
        );
        d.edit = Some(egress("example.org"));
        assert!(refused(decide(&p, &d, Ok(""))).contains("the operator's edit cannot apply"));
    }

    #[test]
    fn the_operators_edit_is_what_is_decided() {
        let p = proposal(capability("ripgrep"));
        let mut d = Decision::approve_bound(&p, "", "op", 2);
        d.edit = Some(capability("jq"));
        let Action::Rebuild { candidate } = decide(&p, &d, Ok("FROM base\n")) else {
            panic!("a rebuild");
        };
        assert!(candidate.contains("jq:native") && !candidate.contains("ripgrep"));
        // An edit of another kind cannot apply.
        d.edit = Some(egress("example.org"));
        assert!(
            refused(decide(&p, &d, Ok("FROM base\n"))).contains("the operator's edit cannot apply")
        );
    }

    #[test]
    fn an_approval_of_other_text_is_refused() {
        let p = proposal(capability("ripgrep"));
        let d = Decision::approve_bound(&p, "", "op", 2);
        let replaced = proposal(capability("nmap"));
        assert!(
            refused(decide(&replaced, &d, Ok("FROM base\n")))
                .starts_with("refused, nothing applied")
        );
        let unbound = Decision::approve(p.id.clone(), "", "op", 2);
        assert!(
            refused(decide(&p, &unbound, Ok("FROM base\n")))
                .starts_with("refused, nothing applied")
        );
    }

    #[test]
    fn an_internal_host_needs_the_operators_flag() {
        let p = proposal(egress("169.254.169.254"));
        let mut d = Decision::approve_bound(&p, "", "op", 2);
        assert!(refused(decide(&p, &d, Ok(""))).contains("allow_internal_host"));
        d.allow_internal_host = true;
        assert_eq!(
            decide(&p, &d, Ok("")),
            Action::AllowHost {
                host: "169.254.169.254".into(),
                entry: "169.254.169.254".into()
            }
        );
        let p = proposal(egress("files.example.org"));
        let d = Decision::approve_bound(&p, "", "op", 2);
        assert!(matches!(
            decide(&p, &d, Err("unused".into())),
            Action::AllowHost { .. }
        ));
    }

    #[test]
    fn a_capability_on_an_unreadable_or_unfit_dockerfile_is_refused() {
        let p = proposal(capability("ripgrep"));
        let d = Decision::approve_bound(&p, "", "op", 2);
        assert_eq!(
            refused(decide(
                &p,
                &d,
                Err("failed to read Dockerfile: a symlink".into())
            )),
            "failed to read Dockerfile: a symlink"
        );
        // A Dockerfile that ends in a continuation would swallow the appended step.
        assert!(!refused(decide(&p, &d, Ok("FROM base\nRUN true \\\n"))).is_empty());
    }

    /// A state folder (in a temporary one) whose queue holds proposal `1-p` (a capability),
    /// approved by a decision written by hand (`approve` would have audited it).
    fn approved() -> (tempfile::TempDir, std::path::PathBuf, Queue, Proposal) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("app");
        let q = Queue::open(&state).expect("queue");
        let p = proposal(capability("ripgrep"));
        std::fs::write(q.path(Folder::Proposals, &p.id), to_json_pretty(&p)).expect("file");
        let d = Decision::approve_bound(&p, "", "op", 2);
        std::fs::write(q.path(Folder::Decisions, &p.id), to_json_pretty(&d)).expect("decide");
        (tmp, state, q, p)
    }

    #[test]
    fn a_scan_returns_an_approval_once_and_a_decision_until_it_is_audited() {
        let (_tmp, state, _q, p) = approved();
        let mut decisions = Decisions::open(&state).expect("open");
        let scan = decisions.scan();
        let ids: Vec<_> = scan
            .approvals
            .iter()
            .map(|a| a.proposal.id.clone())
            .collect();
        assert_eq!(ids, std::slice::from_ref(&p.id));
        assert_eq!(scan.unaudited.len(), 1, "written by hand: not audited yet");
        decisions.audit(&scan.unaudited[0]).expect("audit");
        decisions.audit(&scan.unaudited[0]).expect("audit");
        let audited = audit::read(&state).expect("audit log");
        assert_eq!(audited.len(), 1, "audited once: {audited:?}");
        let again = decisions.scan();
        assert!(again.approvals.is_empty(), "one attempt per session");
        assert!(again.unaudited.is_empty());
        // A new session tries it again, unless its outcome is recorded.
        assert_eq!(
            Decisions::open(&state)
                .expect("open")
                .scan()
                .approvals
                .len(),
            1
        );
        decisions
            .record(&Applied::ok(p.id.clone(), "done", 3))
            .expect("record");
        assert!(
            Decisions::open(&state)
                .expect("open")
                .scan()
                .approvals
                .is_empty()
        );
    }

    #[test]
    fn a_decision_without_its_proposal_and_an_unlistable_folder_read_as_nothing() {
        let (_tmp, state, q, p) = approved();
        let mut decisions = Decisions::open(&state).expect("open");
        std::fs::remove_file(q.path(Folder::Proposals, &p.id)).expect("rm");
        let scan = decisions.scan();
        assert!(scan.approvals.is_empty() && scan.unaudited.is_empty());
        let folder = decisions.folder();
        std::fs::remove_dir_all(&folder).expect("rm");
        std::fs::write(&folder, b"not a folder").expect("write");
        let scan = decisions.scan();
        assert!(scan.approvals.is_empty() && scan.unaudited.is_empty());
    }

    #[tokio::test]
    async fn a_folder_that_cannot_be_watched_is_still_polled() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let watcher = super::watch(&tmp.path().join("missing"), tx);
        assert!(watcher.is_none());
        tokio::time::timeout(super::POLL * 2, rx.recv())
            .await
            .expect("the poll wakes it")
            .expect("a wake");
    }
}
