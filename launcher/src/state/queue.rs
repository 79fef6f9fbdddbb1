//! The host's side of one bottle's proposal queue (`state/<slug>/queue/`): list, read, decide.
//!
//! Supervise writes `proposals/`; only the host writes `decisions/` (the operator, through
//! [`Queue::decide`] or by hand) and `applied/` (the remediation loop). Every record is read
//! through [`atomic::read_in`] (no symlinks, bounded size) and parsed with the protocol crate;
//! a malformed file becomes an error naming its path, never a panic.

use std::io;
use std::path::{Path, PathBuf};

use claude_bottle_protocol::queue::{Folder, id_from_file_name};
use claude_bottle_protocol::{
    Applied, Decision, Proposal, ProposalId, ProposalState, ProtocolError, Verdict, Versioned,
    from_json, to_json_pretty,
};

use super::atomic::{self, AtomicError, Overwrite};
use super::audit::{self, Event};

/// Why a queue operation failed; each names the file or id involved.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Fs(#[from] AtomicError),
    #[error("failed to read {path}: {source}")]
    Malformed {
        path: PathBuf,
        #[source]
        source: ProtocolError,
    },
    #[error("failed to read {path}: it holds id {found:?}, not the one its name says")]
    IdMismatch { path: PathBuf, found: String },
    #[error("failed to list {path}: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no proposal {id}")]
    Unknown { id: ProposalId },
    #[error("proposal {id} is in more than one bottle: {}", .slugs.join(", "))]
    Ambiguous { id: ProposalId, slugs: Vec<String> },
    #[error("proposal {id} is already decided ({state}{by})")]
    AlreadyDecided {
        id: ProposalId,
        state: ProposalState,
        by: String,
    },
    #[error("failed to record the outcome of {id}: it is not approved")]
    NotApproved { id: ProposalId },
    #[error("failed to record the outcome of {id}: it already has one")]
    AlreadyApplied { id: ProposalId },
    #[error("failed to approve {id}: {why}")]
    Changed { id: ProposalId, why: String },
    #[error("failed to decide {id}: {source}")]
    InvalidDecision {
        id: ProposalId,
        #[source]
        source: ProtocolError,
    },
}

impl crate::error::Diagnose for QueueError {
    /// Naming another id or deciding differently fixes these; file system trouble and unreadable
    /// files are the launcher's.
    fn kind(&self) -> crate::error::Kind {
        match self {
            QueueError::Unknown { .. }
            | QueueError::Ambiguous { .. }
            | QueueError::AlreadyDecided { .. }
            | QueueError::InvalidDecision { .. }
            | QueueError::Changed { .. }
            | QueueError::Fs(AtomicError::Symlink { .. }) => crate::error::Kind::Usage,
            _ => crate::error::Kind::Internal,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            QueueError::Unknown { .. } => {
                Some("`claude-bottle queue` lists the pending ones".into())
            }
            QueueError::AlreadyDecided { id, .. } => Some(format!("see `claude-bottle show {id}`")),
            QueueError::Changed { id, .. } => Some(format!(
                "read it again with `claude-bottle show {id}` before approving"
            )),
            _ => None,
        }
    }
}

/// One bottle's queue.
#[derive(Debug, Clone)]
pub struct Queue {
    state_dir: PathBuf,
    root: PathBuf,
}

/// Pending proposals, and the files that could not be read (reported, not fatal).
#[derive(Debug, Default)]
pub struct Pending {
    /// Oldest first.
    pub proposals: Vec<Proposal>,
    pub problems: Vec<QueueError>,
}

impl Queue {
    /// The queue of the bottle whose state folder is `state_dir`, creating the three folders
    /// (mode 0755) when missing; a symlink anywhere in it is refused.
    pub fn open(state_dir: &Path) -> Result<Self, QueueError> {
        let q = Self {
            state_dir: state_dir.to_owned(),
            root: super::Layout::new(state_dir).queue(),
        };
        for f in Folder::ALL {
            atomic::ensure_dir_in(state_dir, &q.root.join(f.dir_name()))?;
        }
        Ok(q)
    }

    /// `state/<slug>/`.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The bottle's slug: the state folder's name.
    pub fn slug(&self) -> String {
        self.state_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `<queue>/<folder>/<id>.json`.
    pub fn path(&self, folder: Folder, id: &ProposalId) -> PathBuf {
        self.root.join(folder.dir_name()).join(id.file_name())
    }

    /// Ids with a file in `folder`, sorted (temp files, odd names and symlinks left out).
    pub fn ids(&self, folder: Folder) -> Result<Vec<ProposalId>, QueueError> {
        let dir = self.root.join(folder.dir_name());
        let list_err = |source| QueueError::List {
            path: dir.clone(),
            source,
        };
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if let (true, Some(id)) = (
                is_file,
                entry.file_name().to_str().and_then(id_from_file_name),
            ) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Proposals with no decision file yet, oldest first; unreadable ones go to `problems`.
    pub fn pending(&self) -> Result<Pending, QueueError> {
        let mut out = Pending::default();
        for id in self.ids(Folder::Proposals)? {
            if self.has(Folder::Decisions, &id)? {
                continue;
            }
            match self.proposal(&id) {
                Ok(Some(p)) => out.proposals.push(p),
                Ok(None) => {} // answered and cleaned up between listing and reading
                Err(e) => out.problems.push(e),
            }
        }
        out.proposals
            .sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(out)
    }

    /// Whether `folder` holds a file (of any content, or a symlink) for `id`.
    pub fn has(&self, folder: Folder, id: &ProposalId) -> Result<bool, QueueError> {
        let path = self.path(folder, id);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(AtomicError::Io {
                action: "stat",
                path,
                source,
            }
            .into()),
        }
    }

    /// The proposal `id`, if filed.
    pub fn proposal(&self, id: &ProposalId) -> Result<Option<Proposal>, QueueError> {
        self.read(Folder::Proposals, id, |p: &Proposal| &p.id)
    }

    /// The decision on `id`, if any.
    pub fn decision(&self, id: &ProposalId) -> Result<Option<Decision>, QueueError> {
        self.read(Folder::Decisions, id, |d: &Decision| &d.id)
    }

    /// The applied record of `id`, if any.
    pub fn applied(&self, id: &ProposalId) -> Result<Option<Applied>, QueueError> {
        self.read(Folder::Applied, id, |a: &Applied| &a.id)
    }

    /// Where `id` stands, from the decision and applied records present.
    pub fn state(&self, id: &ProposalId) -> Result<ProposalState, QueueError> {
        Ok(ProposalState::of(
            self.decision(id)?.as_ref(),
            self.applied(id)?.as_ref(),
        ))
    }

    /// Writes `decision` as `decisions/<id>.json` (atomically, never over an existing file) and
    /// appends the proposal (if not logged yet) and the decision to the audit log (a failure to
    /// log is a warning: the decision stands). Fails for an unknown or already decided id, for
    /// an edit of another kind than the proposal, and for an approval whose `proposal_sha256`
    /// is missing or is not the proposal's as read now.
    pub fn decide(&self, decision: &Decision) -> Result<Proposal, QueueError> {
        let id = &decision.id;
        let proposal = self
            .proposal(id)?
            .ok_or_else(|| QueueError::Unknown { id: id.clone() })?;
        // Reading (not just stat-ing) refuses a planted symlink with its own clear error.
        if self.decision(id)?.is_some() {
            return Err(self.already_decided(id));
        }
        let invalid = |source| QueueError::InvalidDecision {
            id: id.clone(),
            source,
        };
        decision.validate().map_err(invalid)?;
        decision.effective_kind(&proposal.kind).map_err(invalid)?;
        // An approval names the proposal it was made on; one the file no longer matches (it
        // was replaced between `show` and now) is refused rather than bound to the new text.
        if decision.decision == Verdict::Approve {
            decision
                .check_bound_to(&proposal)
                .map_err(|why| QueueError::Changed {
                    id: id.clone(),
                    why,
                })?;
        }
        let path = self.path(Folder::Decisions, id);
        match atomic::write_atomic_in(
            &self.state_dir,
            &path,
            &to_json_pretty(decision),
            Overwrite::Refuse,
        ) {
            Ok(()) => {}
            Err(AtomicError::Exists { .. }) => return Err(self.already_decided(id)),
            Err(e) => return Err(e.into()),
        }
        // The decision file is the truth and it is written: a log that cannot be appended to
        // is reported, not turned into a failure of the decision.
        let logged = audit::note_proposals(&self.state_dir, std::slice::from_ref(&proposal))
            .and_then(|_| audit::record(&self.state_dir, &Event::Decision(decision.clone())));
        if let Err(e) = logged {
            tracing::warn!("decision {id} written, but not logged: {e}");
        }
        Ok(proposal)
    }

    /// Writes `applied/<id>.json` once (never over an earlier record, so nothing is applied
    /// twice) and appends it to the audit log; for the remediation loop. The proposal must be
    /// approved.
    pub fn record_applied(&self, applied: &Applied) -> Result<(), QueueError> {
        let id = &applied.id;
        match self.decision(id)? {
            Some(d) if d.decision == Verdict::Approve => {}
            _ => return Err(QueueError::NotApproved { id: id.clone() }),
        }
        let path = self.path(Folder::Applied, id);
        match atomic::write_atomic_in(
            &self.state_dir,
            &path,
            &to_json_pretty(applied),
            Overwrite::Refuse,
        ) {
            Ok(()) => {}
            Err(AtomicError::Exists { .. }) => {
                return Err(QueueError::AlreadyApplied { id: id.clone() });
            }
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = audit::record(&self.state_dir, &Event::Applied(applied.clone())) {
            tracing::warn!("applied record {id} written, but not logged: {e}");
        }
        Ok(())
    }

    fn already_decided(&self, id: &ProposalId) -> QueueError {
        let (state, by) = match self.decision(id) {
            Ok(Some(d)) => {
                let state = ProposalState::of(Some(&d), self.applied(id).ok().flatten().as_ref());
                let by = d.by.map(|b| format!(" by {b}")).unwrap_or_default();
                (state, by)
            }
            Ok(None) => (ProposalState::Unknown, String::new()),
            Err(e) => (ProposalState::Unknown, format!("; {e}")),
        };
        QueueError::AlreadyDecided {
            id: id.clone(),
            state,
            by,
        }
    }

    fn read<T: Versioned>(
        &self,
        folder: Folder,
        id: &ProposalId,
        id_of: impl Fn(&T) -> &ProposalId,
    ) -> Result<Option<T>, QueueError> {
        let path = self.path(folder, id);
        let Some(bytes) = atomic::read_in(&self.state_dir, &path)? else {
            return Ok(None);
        };
        let value: T = from_json(&bytes).map_err(|source| QueueError::Malformed {
            path: path.clone(),
            source,
        })?;
        if id_of(&value) != id {
            return Err(QueueError::IdMismatch {
                path,
                found: id_of(&value).to_string(),
            });
        }
        Ok(Some(value))
    }
}

/// The state folders under `state_root` (`$CLAUDE_BOTTLE_HOME/state`) that hold a `queue/`
/// folder, sorted; symlinked state folders are skipped.
fn queue_dirs(state_root: &Path) -> Result<Vec<PathBuf>, QueueError> {
    let entries = match std::fs::read_dir(state_root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(QueueError::List {
                path: state_root.to_owned(),
                source,
            });
        }
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| std::fs::symlink_metadata(super::Layout::new(p).queue()).is_ok())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Every bottle's queue, sorted by slug, and the queues that could not be opened (a symlink
/// planted in one bottle's queue does not hide the others).
pub fn all(state_root: &Path) -> Result<(Vec<Queue>, Vec<QueueError>), QueueError> {
    let mut queues = Vec::new();
    let mut problems = Vec::new();
    for d in queue_dirs(state_root)? {
        match Queue::open(&d) {
            Ok(q) => queues.push(q),
            Err(e) => problems.push(e),
        }
    }
    Ok((queues, problems))
}

/// The queue that holds proposal `id` (the operator types only the id), by looking for
/// `state/*/queue/proposals/<id>.json`.
pub fn find(state_root: &Path, id: &ProposalId) -> Result<Queue, QueueError> {
    let mut found: Vec<PathBuf> = queue_dirs(state_root)?
        .into_iter()
        .filter(|d| {
            let p = super::Layout::new(d)
                .queue_folder(Folder::Proposals)
                .join(id.file_name());
            std::fs::symlink_metadata(p).is_ok()
        })
        .collect();
    match found.len() {
        0 => Err(QueueError::Unknown { id: id.clone() }),
        1 => Queue::open(&found.remove(0)),
        _ => Err(QueueError::Ambiguous {
            id: id.clone(),
            slugs: found
                .iter()
                .filter_map(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect(),
        }),
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
