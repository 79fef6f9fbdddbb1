//! The audit log: one JSON line per ref of every push, appended by the hook that decided it.
//!
//! ```json
//! {"version":1,"time":1767225600,"remote":"origin","ref":"refs/heads/claude/x","old":"0000…","new":"4b82…","decision":"allowed","entry":"claude/*","upstream":"accepted"}
//! {"version":1,"time":1767225600,"remote":"origin","ref":"refs/heads/main","old":"4b82…","new":"9c1d…","decision":"refused","reason":"no push pattern matches this ref (push: claude/*)"}
//! {"version":1,"time":1767225600,"remote":"origin","ref":"refs/heads/claude/frozen","old":"0000…","new":"4b82…","decision":"allowed","entry":"claude/*","upstream":"refused","reason":"upstream refused: …"}
//! ```
//!
//! Text that came from the push or the upstream (ref names, reasons) is escaped
//! (`text::escape_line`), so the operator reads it as plain text. Each line is written with one
//! `write` on a file opened for appending, so concurrent pushes do not interleave within a line.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use claude_bottle_protocol::text::escape_line;
use serde::Serialize;

/// The version of an audit line.
pub const AUDIT_VERSION: u32 = 1;

/// What the gate decided for one ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allowed,
    Refused,
}

/// What the upstream answered to a ref the gate forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamAnswer {
    Accepted,
    Refused,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub version: u32,
    pub time: u64,
    pub remote: String,
    #[serde(rename = "ref")]
    pub refname: String,
    pub old: String,
    pub new: String,
    pub decision: Verdict,
    /// The push entry that allowed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// For an allowed ref: whether the upstream took it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamAnswer>,
    /// Why it was refused, by the gate or the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Record {
    /// A record stamped now, its texts escaped.
    pub fn new(remote: &str, refname: &str, old: &str, new: &str, decision: Verdict) -> Self {
        Record {
            version: AUDIT_VERSION,
            time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            remote: escape_line(remote).into_owned(),
            refname: escape_line(refname).into_owned(),
            old: escape_line(old).into_owned(),
            new: escape_line(new).into_owned(),
            decision,
            entry: None,
            upstream: None,
            reason: None,
        }
    }

    pub fn entry(mut self, entry: &str) -> Self {
        self.entry = Some(escape_line(entry).into_owned());
        self
    }

    pub fn upstream(mut self, answer: UpstreamAnswer) -> Self {
        self.upstream = Some(answer);
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(escape_line(reason).into_owned());
        self
    }

    /// The JSON line, newline included.
    pub fn line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("a record of strings always serializes");
        line.push(b'\n');
        line
    }
}

/// The audit log, open for appending.
#[derive(Debug)]
pub struct AuditLog {
    file: std::fs::File,
}

impl AuditLog {
    /// Opens the log at `path`, created mode 0640; a symlink is refused.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)?;
        Ok(AuditLog { file })
    }

    /// Appends `records`, one `write` per line.
    pub fn append(&mut self, records: &[Record]) -> std::io::Result<()> {
        for record in records {
            self.file.write_all(&record.line())?;
        }
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_escaped_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let refused = Record::new("origin", "refs/heads/\u{202e}x", "a", "b", Verdict::Refused)
            .reason("upstream said \u{1b}[31mno");
        let allowed = Record::new("origin", "refs/heads/claude/x", "a", "b", Verdict::Allowed)
            .entry("claude/*")
            .upstream(UpstreamAnswer::Accepted);
        AuditLog::open(&path)
            .expect("open")
            .append(&[refused])
            .expect("append");
        AuditLog::open(&path)
            .expect("open again")
            .append(&[allowed])
            .expect("append again");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["decision"], "refused");
        let refname = lines[0]["ref"].as_str().expect("ref");
        assert!(!refname.contains('\u{202e}'), "{refname:?}");
        assert!(
            !lines[0]["reason"]
                .as_str()
                .expect("reason")
                .contains('\u{1b}')
        );
        assert!(lines[0].get("entry").is_none());
        assert_eq!(lines[1]["entry"], "claude/*");
        assert_eq!(lines[1]["upstream"], "accepted");
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"keep").expect("write");
        let link = dir.path().join("audit.jsonl");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(AuditLog::open(&link).is_err());
        assert_eq!(std::fs::read(&target).expect("read"), b"keep");
    }
}
