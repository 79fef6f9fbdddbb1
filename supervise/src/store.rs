//! The one owner of the queue: a thread that writes proposals, reads decisions and applied
//! records, and answers the server's commands in order.
//!
//! It runs on its own OS thread because its work is blocking file I/O (fsync); its inbox's
//! receive timeout doubles as the slow poll that backs up `notify`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime};

use claude_bottle_protocol::dockerfile;
use claude_bottle_protocol::queue::{self, Folder, current_config};
use claude_bottle_protocol::wire::{ConfigFile, ErrorCode, ProposalStatus, Response};
use claude_bottle_protocol::{
    Applied, BottleName, Decision, Proposal, ProposalId, ProposalKind, to_json_pretty,
};
use tokio::sync::{oneshot, watch};

use claude_bottle_io::fs::{self, FsError, Overwrite};
use claude_bottle_io::watch as folders;

use crate::limits::RateLimit;
use crate::listing;
use crate::records;

/// Most proposals listed by a `status` without id (the newest ones).
const MAX_LISTED: usize = 100;

/// Largest current Dockerfile read to judge a capability by: what the launcher reads of a
/// per-bottle Dockerfile (its state files' limit), so that both judge the same text.
const MAX_DOCKERFILE_BYTES: u64 = 1024 * 1024;

/// How the store is set up.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub queue_dir: PathBuf,
    pub config_dir: PathBuf,
    pub bottle: BottleName,
    pub max_pending: usize,
    pub rate_per_minute: u32,
    pub burst: u32,
    pub poll_interval: Duration,
    /// Use `notify` (inotify); off for file systems whose changes it does not see.
    pub watch: bool,
    pub inbox: usize,
}

/// A request to the store; each carries the channel its answer goes back on.
#[derive(Debug)]
pub enum Command {
    Submit {
        kind: ProposalKind,
        reason: String,
        evidence: Vec<String>,
        reply: oneshot::Sender<Response>,
    },
    Status {
        id: Option<ProposalId>,
        reply: oneshot::Sender<Response>,
    },
    CurrentConfig {
        reply: oneshot::Sender<Response>,
    },
    /// Something changed in `decisions/` or `applied/`.
    Rescan,
}

/// The server's way to reach the store; cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    tx: SyncSender<Command>,
    changes: watch::Receiver<u64>,
}

impl StoreHandle {
    /// Sends a command and awaits its answer; a full inbox is answered at once, not queued.
    pub async fn call(&self, make: impl FnOnce(oneshot::Sender<Response>) -> Command) -> Response {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(make(reply)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return busy("the queue is busy"),
            Err(TrySendError::Disconnected(_)) => return busy("the queue owner has stopped"),
        }
        answer
            .await
            .unwrap_or_else(|_| busy("the queue owner dropped the request"))
    }

    /// A receiver that sees every change of any proposal's state.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

fn busy(message: &str) -> Response {
    Response::Error {
        code: ErrorCode::Internal,
        message: format!("failed to reach the queue: {message}\nhint: retry in a moment"),
    }
}

/// Errors that stop the store from starting.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("failed to start the queue owner thread: {0}")]
    Thread(std::io::Error),
}

#[derive(Debug)]
struct Entry {
    proposal: Proposal,
    decision: Option<Decision>,
    applied: Option<Applied>,
}

impl Entry {
    fn status(&self) -> ProposalStatus {
        ProposalStatus::new(
            self.proposal.clone(),
            self.decision.clone(),
            self.applied.clone(),
        )
    }
    fn pending(&self) -> bool {
        self.decision.is_none() && self.applied.is_none()
    }
}

/// The queue's state, owned by one thread.
#[derive(Debug)]
struct Store {
    cfg: StoreConfig,
    entries: HashMap<ProposalId, Entry>,
    /// Records that failed to parse, with the mtime and size seen, so they are re-read only
    /// when changed (an editor may still be writing them).
    bad: HashMap<(Folder, ProposalId), Option<(SystemTime, u64)>>,
    last_rescan: Instant,
    rate: RateLimit,
    changes: watch::Sender<u64>,
    nonce: u64,
    hasher: std::collections::hash_map::RandomState,
}

/// Opens the queue (recovering pending proposals), starts the owner thread and the watcher.
pub fn start(cfg: StoreConfig) -> Result<StoreHandle, StoreError> {
    let (tx, rx) = sync_channel(cfg.inbox.max(1));
    let (changes_tx, changes_rx) = watch::channel(0);
    let mut store = Store {
        rate: RateLimit::new(cfg.rate_per_minute, cfg.burst),
        cfg,
        entries: HashMap::new(),
        bad: HashMap::new(),
        changes: changes_tx,
        nonce: 0,
        last_rescan: Instant::now(),
        hasher: std::collections::hash_map::RandomState::new(),
    };
    store.open()?;
    let flag = Arc::new(AtomicBool::new(false));
    let watcher = if store.cfg.watch {
        watch_records(&store.cfg, tx.clone(), flag.clone())
    } else {
        None
    };
    std::thread::Builder::new()
        .name("queue-owner".into())
        .spawn(move || {
            let _watcher = watcher;
            store.run(&rx, &flag);
        })
        .map_err(StoreError::Thread)?;
    Ok(StoreHandle {
        tx,
        changes: changes_rx,
    })
}

/// Asks `notify` to send a rescan on any change in `decisions/` or `applied/`; `None` when the
/// platform refuses (the slow poll still covers it). A rescan's own reads do not wake it.
fn watch_records(
    cfg: &StoreConfig,
    tx: SyncSender<Command>,
    queued: Arc<AtomicBool>,
) -> Option<folders::Watcher> {
    let wake = move || {
        if !queued.swap(true, Ordering::AcqRel) {
            // A full inbox is fine to miss: the poll rescans soon anyway.
            let _ = tx.try_send(Command::Rescan);
        }
    };
    let mut watcher = match folders::watcher(wake) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "failed to start the file watcher; polling only");
            return None;
        }
    };
    for folder in [Folder::Decisions, Folder::Applied] {
        let dir = cfg.queue_dir.join(folder.dir_name());
        if let Err(e) = folders::watch_folder(&mut watcher, &dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "failed to watch; polling only");
        }
    }
    Some(watcher)
}

impl Store {
    fn dir(&self, folder: Folder) -> PathBuf {
        self.cfg.queue_dir.join(folder.dir_name())
    }

    /// Checks the folders, removes our own leftover temp files, loads every proposal and record.
    fn open(&mut self) -> Result<(), StoreError> {
        let root = &self.cfg.queue_dir;
        fs::ensure_dir_in(root, root)?;
        for folder in Folder::ALL {
            // decisions/ and applied/ are read-only mounts in production; creating them is
            // only for a fresh test folder.
            if let Err(e) = fs::ensure_dir_in(root, &self.dir(folder)) {
                if folder == Folder::Proposals || matches!(e, FsError::Symlink { .. }) {
                    return Err(e.into());
                }
                tracing::warn!(error = %e, "queue folder unavailable");
            }
        }
        let dir = self.dir(Folder::Proposals);
        for name in listing::list_files_warn(&dir)? {
            if name.starts_with(queue::TEMP_PREFIX) {
                // A write interrupted by a crash: the rename never happened, so nobody saw it.
                let _ = std::fs::remove_file(dir.join(&name));
                continue;
            }
            let Some(id) = queue::id_from_file_name(&name) else {
                continue;
            };
            match records::read::<Proposal>(&dir.join(&name), &id) {
                Ok(p) => {
                    self.entries.insert(
                        id,
                        Entry {
                            proposal: p,
                            decision: None,
                            applied: None,
                        },
                    );
                }
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable proposal"),
            }
        }
        self.rescan();
        let pending = self.entries.values().filter(|e| e.pending()).count();
        tracing::info!(proposals = self.entries.len(), pending, "queue recovered");
        Ok(())
    }

    fn run(&mut self, rx: &Receiver<Command>, rescan_queued: &AtomicBool) {
        loop {
            match rx.recv_timeout(self.cfg.poll_interval) {
                Ok(Command::Rescan) => {
                    rescan_queued.store(false, Ordering::Release);
                    self.rescan();
                }
                Ok(Command::Submit {
                    kind,
                    reason,
                    evidence,
                    reply,
                }) => {
                    let _ = reply.send(self.submit(kind, reason, evidence));
                }
                Ok(Command::Status { id, reply }) => {
                    let _ = reply.send(self.status(id.as_ref()));
                }
                Ok(Command::CurrentConfig { reply }) => {
                    let _ = reply.send(self.current_config());
                }
                Err(RecvTimeoutError::Timeout) => self.rescan(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // A steady stream of requests never lets the receive time out; poll anyway.
            if self.last_rescan.elapsed() >= self.cfg.poll_interval {
                self.rescan();
            }
        }
    }

    fn submit(&mut self, kind: ProposalKind, reason: String, evidence: Vec<String>) -> Response {
        let kind = kind.normalized();
        // The rules of a capability that depend on the Dockerfile it is appended to (its
        // `# escape=` directive, an open continuation at its end), judged by the function the
        // launcher applies it with: what it would refuse then is refused now.
        if let ProposalKind::Capability(cap) = &kind
            && let Err(refusal) = dockerfile::check_capability(cap, &self.current_dockerfile())
        {
            return Response::Error {
                code: ErrorCode::BadRequest,
                message: format!("failed to file the proposal: {refusal}"),
            };
        }
        if let Some((id, _)) = self
            .entries
            .iter()
            .find(|(_, e)| e.pending() && e.proposal.kind == kind)
        {
            return Response::Submitted {
                id: id.clone(),
                duplicate: true,
            };
        }
        let pending = self.entries.values().filter(|e| e.pending()).count();
        if pending >= self.cfg.max_pending {
            return Response::Error {
                code: ErrorCode::QueueFull,
                message: format!(
                    "failed to file the proposal: {pending} proposals already await a decision\nhint: wait for the operator to decide some"
                ),
            };
        }
        if let Err(wait) = self.rate.try_take(Instant::now()) {
            return Response::Error {
                code: ErrorCode::RateLimited,
                message: format!(
                    "failed to file the proposal: too many proposals too fast\nhint: retry in {} s",
                    wait.as_secs() + 1
                ),
            };
        }
        let created = unix_now();
        let id = self.new_id(created);
        let proposal = Proposal::new(
            id.clone(),
            self.cfg.bottle.clone(),
            kind,
            reason,
            evidence,
            created,
        );
        if let Err(e) = fs::write_atomic_in(
            &self.cfg.queue_dir,
            &self.dir(Folder::Proposals).join(id.file_name()),
            &to_json_pretty(&proposal),
            Overwrite::Replace,
        ) {
            tracing::error!(error = %e, "failed to write a proposal");
            return Response::Error {
                code: ErrorCode::Internal,
                message: format!("failed to file the proposal: {e}"),
            };
        }
        tracing::info!(id = %id, kind = %proposal.kind, "proposal filed");
        self.entries.insert(
            id.clone(),
            Entry {
                proposal,
                decision: None,
                applied: None,
            },
        );
        self.changes.send_modify(|g| *g += 1);
        Response::Submitted {
            id,
            duplicate: false,
        }
    }

    /// `<unix seconds>-<8 random hex>`, unique among known ids and files.
    fn new_id(&mut self, created: u64) -> ProposalId {
        loop {
            self.nonce += 1;
            let mut h = self.hasher.build_hasher();
            h.write_u64(self.nonce);
            h.write_u64(created);
            let candidate = format!("{created}-{:08x}", h.finish() as u32);
            let id = ProposalId::new(candidate).expect("digits, '-' and hex form a valid id");
            let path = self.dir(Folder::Proposals).join(id.file_name());
            if !self.entries.contains_key(&id) && std::fs::symlink_metadata(path).is_err() {
                return id;
            }
        }
    }

    fn status(&self, id: Option<&ProposalId>) -> Response {
        if let Some(id) = id {
            return match self.entries.get(id) {
                Some(e) => Response::Status {
                    proposals: vec![e.status()],
                },
                None => Response::Error {
                    code: ErrorCode::NotFound,
                    message: format!("failed to find proposal {id}\nhint: `status` lists them"),
                },
            };
        }
        let mut all: Vec<&Entry> = self.entries.values().collect();
        all.sort_by(|a, b| {
            (a.proposal.created, &a.proposal.id).cmp(&(b.proposal.created, &b.proposal.id))
        });
        let skip = all.len().saturating_sub(MAX_LISTED);
        Response::Status {
            proposals: all.into_iter().skip(skip).map(Entry::status).collect(),
        }
    }

    /// The bottle's current Dockerfile, as the launcher stages it in the current-config folder
    /// (and again after each approval it applies).
    ///
    /// A file that is missing, unreadable or larger than [`MAX_DOCKERFILE_BYTES`] reads as empty:
    /// a Dockerfile without directives, so a capability is judged by the default escape
    /// character only. Filing then still works (a launcher that has not staged the file yet), and
    /// nothing wrong is applied: the launcher judges the capability again against the real
    /// Dockerfile when the approval is applied, and refuses it then.
    fn current_dockerfile(&self) -> String {
        let dir = &self.cfg.config_dir;
        let path = dir.join(current_config::DOCKERFILE);
        match fs::read_in(dir, &path, MAX_DOCKERFILE_BYTES) {
            Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(None) => String::new(),
            Err(e) => {
                tracing::warn!(error = %e, "failed to read the current Dockerfile; judging by the default escape character");
                String::new()
            }
        }
    }

    fn current_config(&self) -> Response {
        let mut files = Vec::new();
        for name in current_config::FILES {
            let path = self.cfg.config_dir.join(name);
            let limit = current_config::MAX_FILE_BYTES as u64;
            let content = match fs::read_in(&self.cfg.config_dir, &path, limit) {
                Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                Ok(None) => continue,
                Err(e) => format!("[not shown: {e}]"),
            };
            files.push(ConfigFile {
                name: name.to_owned(),
                content,
            });
        }
        Response::CurrentConfig { files }
    }

    /// Loads decision and applied records not yet known; wakes waiters if any arrived.
    fn rescan(&mut self) {
        self.last_rescan = Instant::now();
        let mut changed = false;
        for folder in [Folder::Decisions, Folder::Applied] {
            let dir = self.dir(folder);
            let names = match listing::list_files(&dir) {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot list records");
                    continue;
                }
            };
            for name in names {
                let Some(id) = queue::id_from_file_name(&name) else {
                    continue;
                };
                let Some(entry) = self.entries.get(&id) else {
                    continue;
                };
                let known = match folder {
                    Folder::Decisions => entry.decision.is_some(),
                    _ => entry.applied.is_some(),
                };
                if known {
                    continue;
                }
                let path = dir.join(&name);
                let mtime = std::fs::symlink_metadata(&path)
                    .and_then(|m| Ok((m.modified()?, m.len())))
                    .ok();
                if self.bad.get(&(folder, id.clone())) == Some(&mtime) {
                    continue;
                }
                let loaded = match folder {
                    Folder::Decisions => records::read::<Decision>(&path, &id).map(|d| {
                        tracing::info!(id = %id, decision = ?d.decision, "decision picked up");
                        self.entries.get_mut(&id).map(|e| e.decision = Some(d))
                    }),
                    _ => records::read::<Applied>(&path, &id).map(|a| {
                        tracing::info!(id = %id, outcome = ?a.outcome, "applied record picked up");
                        self.entries.get_mut(&id).map(|e| e.applied = Some(a))
                    }),
                };
                match loaded {
                    Ok(_) => {
                        self.bad.remove(&(folder, id));
                        changed = true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring an unreadable record");
                        self.bad.insert((folder, id), mtime);
                    }
                }
            }
        }
        if changed {
            self.changes.send_modify(|g| *g += 1);
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
