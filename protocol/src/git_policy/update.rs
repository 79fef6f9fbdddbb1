//! One ref update of a push, as a receive hook reads it: `<old> <new> <ref>`.

use std::fmt;

use crate::{ProtocolError, text};

/// An object name as git prints it: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits; all zeros
/// stands for "no object" (a ref created or deleted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId(String);

impl ObjectId {
    pub fn parse(hex: &str) -> Result<Self, UpdateError> {
        let ok = matches!(hex.len(), 40 | 64)
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(ObjectId(hex.to_owned()))
        } else {
            Err(UpdateError::ObjectId {
                text: text::escape_line(hex).into_owned(),
            })
        }
    }

    /// The zero id: the ref did not exist before (as old) or is deleted (as new).
    pub fn is_zero(&self) -> bool {
        self.0.bytes().all(|b| b == b'0')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an update does to its ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The ref did not exist.
    Create,
    /// The ref exists and is set to another object (fast-forward or not).
    Update,
    /// The ref is removed.
    Delete,
}

/// A checked ref update: a valid full ref name under `refs/` and two object ids of one kind,
/// not both zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    refname: String,
    old: ObjectId,
    new: ObjectId,
}

impl RefUpdate {
    /// Check an update. The ref name comes from the agent: besides git's own rules
    /// (`git check-ref-format`) it must be plain text, since the operator reads it in the audit
    /// log and in proposals.
    pub fn new(refname: &str, old: &str, new: &str) -> Result<Self, UpdateError> {
        let old = ObjectId::parse(old)?;
        let new = ObjectId::parse(new)?;
        if old.0.len() != new.0.len() {
            return Err(UpdateError::MixedHashes);
        }
        if old.is_zero() && new.is_zero() {
            return Err(UpdateError::Nothing);
        }
        check_refname(refname)?;
        Ok(RefUpdate {
            refname: refname.to_owned(),
            old,
            new,
        })
    }

    /// Parse a line of a `pre-receive` hook's input or a `proc-receive` command:
    /// `<old> SP <new> SP <ref>`, with or without its line feed.
    pub fn parse_line(line: &str) -> Result<Self, UpdateError> {
        let body = line.strip_suffix('\n').unwrap_or(line);
        let mut parts = body.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(old), Some(new), Some(refname)) => RefUpdate::new(refname, old, new),
            _ => Err(UpdateError::Line {
                line: text::escape_line(body).into_owned(),
            }),
        }
    }

    /// The full ref name, `refs/heads/claude/x`.
    pub fn refname(&self) -> &str {
        &self.refname
    }

    pub fn old(&self) -> &ObjectId {
        &self.old
    }

    pub fn new_id(&self) -> &ObjectId {
        &self.new
    }

    pub fn change(&self) -> Change {
        if self.old.is_zero() {
            Change::Create
        } else if self.new.is_zero() {
            Change::Delete
        } else {
            Change::Update
        }
    }

    /// Whether the ref is a tag (`refs/tags/…`).
    pub fn is_tag(&self) -> bool {
        self.refname.starts_with("refs/tags/")
    }

    /// Whether the decision depends on ancestry, so the caller must find out whether `new`
    /// descends from `old` (`git merge-base --is-ancestor OLD NEW`) before deciding. Creations,
    /// deletions and tag moves are decided without it.
    pub fn needs_ancestry(&self) -> bool {
        self.change() == Change::Update && !self.is_tag()
    }
}

fn check_refname(refname: &str) -> Result<(), UpdateError> {
    let refused = |reason: String| UpdateError::RefName {
        refname: text::escape_line(refname).into_owned(),
        reason,
    };
    if let Err(e) = text::check_plain("ref name", refname) {
        return Err(refused(match e {
            ProtocolError::Refused { problem, .. } => problem,
            other => other.to_string(),
        }));
    }
    if !refname.starts_with("refs/") {
        return Err(refused("it is not under refs/".to_owned()));
    }
    gix_validate::reference::name(refname.into())
        .map(|_| ())
        .map_err(|e| refused(super::lowercase_first(&e.to_string())))
}

/// Why a line is not a ref update the gate can decide. Text from the push is escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("not `<old> <new> <ref>`: \"{line}\"")]
    Line { line: String },
    #[error("\"{text}\" is not an object id (40 or 64 lowercase hex digits)")]
    ObjectId { text: String },
    #[error("the old and new object ids are of different hash kinds")]
    MixedHashes,
    #[error("both object ids are zero: nothing to create or delete")]
    Nothing,
    #[error("\"{refname}\" is not a ref name the gate accepts: {reason}")]
    RefName { refname: String, reason: String },
}
