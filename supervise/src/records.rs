//! Reading one queue record from disk: bounded, symlink-refusing, version-checked, and
//! checked to name the id its file name promises.

use std::path::{Path, PathBuf};

use claude_bottle_protocol::{
    Applied, Decision, Proposal, ProposalId, ProtocolError, Versioned, from_json,
};

use claude_bottle_io::fs::{self, FsError};

/// Largest queue record read from disk.
pub const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// Why a record file was not used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("failed to read {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: ProtocolError,
    },
    #[error("failed to read {path}: it is gone")]
    Gone { path: PathBuf },
    #[error(
        "failed to read {path}: it names id {found}, not its file name's\nhint: a record's \"id\" must equal its file name without .json"
    )]
    WrongId { path: PathBuf, found: ProposalId },
}

/// A record that names the proposal it belongs to.
pub trait Record: Versioned {
    /// The proposal id inside the record.
    fn id(&self) -> &ProposalId;
}

impl Record for Proposal {
    fn id(&self) -> &ProposalId {
        &self.id
    }
}

impl Record for Decision {
    fn id(&self) -> &ProposalId {
        &self.id
    }
}

impl Record for Applied {
    fn id(&self) -> &ProposalId {
        &self.id
    }
}

/// Reads and checks the record at `path`, which must be `<id>.json`.
pub fn read<T: Record>(path: &Path, id: &ProposalId) -> Result<T, RecordError> {
    // Its folder was checked when the queue opened; the file itself is opened without following.
    let folder = path.parent().unwrap_or(Path::new("."));
    let bytes = fs::read_in(folder, path, MAX_RECORD_BYTES)?.ok_or_else(|| RecordError::Gone {
        path: path.to_owned(),
    })?;
    let record: T = from_json(&bytes).map_err(|source| RecordError::Parse {
        path: path.to_owned(),
        source,
    })?;
    if record.id() != id {
        return Err(RecordError::WrongId {
            path: path.to_owned(),
            found: record.id().clone(),
        });
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` as `a.json` and reads it as the decision on `id`.
    fn decision_in_a_json(bytes: &[u8], id: &str) -> Result<Decision, RecordError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        std::fs::write(&path, bytes).expect("write");
        read(&path, &ProposalId::new(id).expect("valid id"))
    }

    #[test]
    fn a_record_must_name_its_own_id() {
        let record = br#"{"version":1,"id":"b","decision":"approve"}"#;
        assert!(matches!(
            decision_in_a_json(record, "a"),
            Err(RecordError::WrongId { .. })
        ));
        assert!(decision_in_a_json(record, "b").is_ok());
    }

    #[test]
    fn unparsable_oversized_and_vanished_records_are_errors() {
        assert!(matches!(
            decision_in_a_json(b"{\"version\":1,", "a"),
            Err(RecordError::Parse { .. })
        ));
        assert!(matches!(
            decision_in_a_json(&vec![b' '; 70 * 1024], "a"),
            Err(RecordError::Fs(_))
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = read::<Decision>(
            &dir.path().join("a.json"),
            &ProposalId::new("a").expect("valid id"),
        );
        assert!(matches!(gone, Err(RecordError::Gone { .. })), "{gone:?}");
    }
}
