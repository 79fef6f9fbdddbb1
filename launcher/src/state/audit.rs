//! The append-only audit log of a bottle, `state/<slug>/audit.jsonl`: every proposal seen,
//! decision written and outcome applied, one JSON object a line.
//!
//! ```json
//! {"version":1,"at":1764270060,"event":"decision","id":"1764270000-3f2a9c01","record":{…}}
//! ```
//!
//! `record` is the queue file's content as the protocol crate writes it. Lines are appended with
//! `O_APPEND` in one `write` and fsynced, so concurrent writers do not interleave and a crash
//! loses at most the line being written; a torn last line is closed before the next append.

use std::io::{self, BufRead as _, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use claude_bottle_protocol::{Applied, Decision, PROTOCOL_VERSION, Proposal, ProposalId, UnixTime};
use serde::{Deserialize, Serialize};

use super::atomic::{self, AtomicError};

/// Mode of the log: it stays on the host, readable by the operator only.
pub const AUDIT_MODE: u32 = 0o600;

/// Why the log could not be appended to or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Fs(#[from] AtomicError),
    #[error("failed to {action} the audit log {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Something that happened to a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Filed by supervise, seen by the launcher.
    Proposal(Proposal),
    /// Written by the operator (through the launcher, or by hand and seen by it).
    Decision(Decision),
    /// Written by the remediation loop.
    Applied(Applied),
}

impl Event {
    /// `"proposal"`, `"decision"` or `"applied"`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Proposal(_) => "proposal",
            Event::Decision(_) => "decision",
            Event::Applied(_) => "applied",
        }
    }

    /// The proposal it concerns.
    pub fn id(&self) -> &ProposalId {
        match self {
            Event::Proposal(p) => &p.id,
            Event::Decision(d) => &d.id,
            Event::Applied(a) => &a.id,
        }
    }

    fn record(&self) -> serde_json::Value {
        let v = match self {
            Event::Proposal(p) => serde_json::to_value(p),
            Event::Decision(d) => serde_json::to_value(d),
            Event::Applied(a) => serde_json::to_value(a),
        };
        // Protocol types have string keys and infallible Serialize impls.
        v.unwrap_or(serde_json::Value::Null)
    }
}

/// One line of the log, as written and as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u32,
    /// When the launcher wrote the line (Unix seconds).
    pub at: UnixTime,
    /// `"proposal"`, `"decision"` or `"applied"` (readers keep names they do not know).
    pub event: String,
    pub id: ProposalId,
    /// The queue record, as in its file.
    pub record: serde_json::Value,
}

/// Seconds since the Unix epoch, now.
pub fn now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Appends `event` to `state_dir/audit.jsonl`, stamped now.
pub fn record(state_dir: &Path, event: &Event) -> Result<(), AuditError> {
    let entry = Entry {
        version: PROTOCOL_VERSION,
        at: now(),
        event: event.name().to_owned(),
        id: event.id().clone(),
        record: event.record(),
    };
    append(state_dir, &entry)
}

/// Appends a `proposal` event for each of `proposals` the log does not have yet (the launcher
/// calls it whenever it looks at a queue, so proposals supervise filed get logged).
pub fn note_proposals(state_dir: &Path, proposals: &[Proposal]) -> Result<usize, AuditError> {
    if proposals.is_empty() {
        return Ok(0);
    }
    let mut logged = std::collections::HashSet::new();
    for_each(state_dir, |e| {
        if e.event == "proposal" {
            logged.insert(e.id);
        }
    })?;
    let mut n = 0;
    for p in proposals.iter().filter(|p| !logged.contains(&p.id)) {
        record(state_dir, &Event::Proposal(p.clone()))?;
        n += 1;
    }
    Ok(n)
}

/// Every readable line of the log, oldest first; lines that do not parse (a torn last line, a
/// newer format) are skipped with a warning.
pub fn read(state_dir: &Path) -> Result<Vec<Entry>, AuditError> {
    let mut out = Vec::new();
    for_each(state_dir, |e| out.push(e))?;
    Ok(out)
}

/// Streams the log line by line (it grows without bound; it is never read whole).
fn for_each(state_dir: &Path, mut f: impl FnMut(Entry)) -> Result<(), AuditError> {
    let path = super::Layout::new(state_dir).audit_log();
    let Some(file) = atomic::open_in(state_dir, &path)? else {
        return Ok(());
    };
    let mut reader = io::BufReader::new(file);
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| AuditError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
        if read == 0 {
            break;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<Entry>(&line) {
            Ok(e) => f(e),
            Err(e) => {
                tracing::warn!(path = %path.display(), line = n, "skipping an audit line: {e}")
            }
        }
    }
    Ok(())
}

fn append(state_dir: &Path, entry: &Entry) -> Result<(), AuditError> {
    let path = super::Layout::new(state_dir).audit_log();
    atomic::ensure_dir_in(state_dir, state_dir)?;
    let io_err = |action| {
        let path = path.clone();
        move |source| AuditError::Io {
            action,
            path,
            source,
        }
    };
    let mut f = atomic::open_append_in(state_dir, &path, AUDIT_MODE)?;
    let mut line = Vec::with_capacity(512);
    if !ends_with_newline(&mut f).map_err(io_err("read"))? {
        line.push(b'\n');
    }
    // Entries are plain data with string keys: serializing cannot fail.
    serde_json::to_writer(&mut line, entry).map_err(|e| io_err("encode")(e.into()))?;
    line.push(b'\n');
    f.write_all(&line).map_err(io_err("append to"))?;
    f.sync_data().map_err(io_err("fsync"))
}

/// Whether the file is empty or its last byte is a newline (else a crash tore the last line).
fn ends_with_newline(f: &mut std::fs::File) -> io::Result<bool> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use claude_bottle_protocol::{BottleName, Egress, HostName, ProposalKind};

    use super::*;

    fn proposal(id: &str) -> Proposal {
        Proposal::new(
            ProposalId::new(id).expect("id"),
            BottleName::new("app").expect("bottle"),
            ProposalKind::Egress(Egress {
                host: HostName::new("packages.example.org").expect("host"),
                port: None,
            }),
            "pip".into(),
            vec![],
            1,
        )
    }

    #[test]
    fn events_append_one_versioned_line_each() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = proposal("p1");
        record(tmp.path(), &Event::Proposal(p.clone())).expect("proposal");
        let d = Decision::approve(p.id.clone(), "", "alice", 2);
        record(tmp.path(), &Event::Decision(d)).expect("decision");
        record(
            tmp.path(),
            &Event::Applied(Applied::ok(p.id.clone(), "ok", 3)),
        )
        .expect("applied");
        let text = std::fs::read_to_string(crate::state::Layout::new(tmp.path()).audit_log())
            .expect("read");
        assert_eq!(text.lines().count(), 3);
        let first: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("a line")).expect("json");
        assert_eq!(first["version"], 1);
        assert_eq!(first["event"], "proposal");
        assert_eq!(first["id"], "p1");
        assert_eq!(first["record"]["kind"]["host"], "packages.example.org");
        let events: Vec<String> = read(tmp.path())
            .expect("read")
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(events, ["proposal", "decision", "applied"]);
    }

    #[test]
    fn proposals_are_noted_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ps = [proposal("p1"), proposal("p2")];
        assert_eq!(note_proposals(tmp.path(), &ps).expect("note"), 2);
        assert_eq!(note_proposals(tmp.path(), &ps).expect("note again"), 0);
        assert_eq!(read(tmp.path()).expect("read").len(), 2);
    }

    #[test]
    fn a_log_larger_than_any_queue_file_is_still_read() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let line = r#"{"version":1,"at":1,"event":"applied","id":"old","record":{}}"#;
        let n = usize::try_from(atomic::MAX_READ).expect("fits") / line.len() + 10;
        std::fs::write(
            crate::state::Layout::new(tmp.path()).audit_log(),
            format!("{line}\n").repeat(n),
        )
        .expect("big log");
        assert_eq!(
            note_proposals(tmp.path(), &[proposal("p1")]).expect("note"),
            1
        );
        assert_eq!(read(tmp.path()).expect("read").len(), n + 1);
    }

    #[test]
    fn a_torn_last_line_is_closed_and_skipped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            crate::state::Layout::new(tmp.path()).audit_log(),
            b"{\"version\":1,\"at\"",
        )
        .expect("torn");
        record(tmp.path(), &Event::Proposal(proposal("p1"))).expect("append");
        let entries = read(tmp.path()).expect("read");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id.as_str(), "p1");
    }

    #[test]
    fn a_symlinked_log_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"").expect("victim");
        std::os::unix::fs::symlink(&victim, crate::state::Layout::new(tmp.path()).audit_log())
            .expect("link");
        assert!(record(tmp.path(), &Event::Proposal(proposal("p1"))).is_err());
        assert_eq!(std::fs::read(&victim).expect("read"), b"");
    }
}
