//! The host queue folder's layout and the rules every writer follows.
//!
//! ```text
//! state/<slug>/queue/            (mounted in supervise at /run/supervise/queue)
//!   proposals/<id>.json          written by supervise        (Proposal)
//!   decisions/<id>.json          written on the host only    (Decision)  read-only in supervise
//!   applied/<id>.json            written by the launcher     (Applied)   read-only in supervise
//! ```
//!
//! Every write is atomic: the bytes go to `<folder>/.tmp-<anything>` in the same folder, are
//! fsynced, renamed over `<id>.json`, and the folder is fsynced. Readers skip names that are not
//! `<valid id>.json` (so temp files are never read) and refuse symlinks.

use crate::ProposalId;

/// Folder of proposals, relative to the queue root.
pub const PROPOSALS_DIR: &str = "proposals";
/// Folder of decisions, relative to the queue root.
pub const DECISIONS_DIR: &str = "decisions";
/// Folder of applied records, relative to the queue root.
pub const APPLIED_DIR: &str = "applied";
/// Suffix of every record file.
pub const FILE_SUFFIX: &str = ".json";
/// Prefix of in-flight temp files; never a valid id (ids have no '.').
pub const TEMP_PREFIX: &str = ".tmp-";

/// The files the launcher stages in the current-config folder (mounted read-only).
pub mod current_config {
    /// Routes without token values.
    pub const ROUTES: &str = "routes.json";
    /// Allowed egress hosts, one a line.
    pub const ALLOWLIST: &str = "allowlist";
    /// The effective Dockerfile of the agent image.
    pub const DOCKERFILE: &str = "Dockerfile";
    /// All of them, in display order.
    pub const FILES: [&str; 3] = [ALLOWLIST, ROUTES, DOCKERFILE];
    /// Largest file served; bigger ones are truncated with a note.
    pub const MAX_FILE_BYTES: usize = 48 * 1024;
}

/// The three record folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Folder {
    Proposals,
    Decisions,
    Applied,
}

impl Folder {
    /// All folders, in flow order.
    pub const ALL: [Folder; 3] = [Folder::Proposals, Folder::Decisions, Folder::Applied];

    /// The folder's name under the queue root.
    pub fn dir_name(self) -> &'static str {
        match self {
            Folder::Proposals => PROPOSALS_DIR,
            Folder::Decisions => DECISIONS_DIR,
            Folder::Applied => APPLIED_DIR,
        }
    }

    /// `<folder>/<id>.json`, relative to the queue root.
    pub fn relative_path(self, id: &ProposalId) -> String {
        format!("{}/{}", self.dir_name(), id.file_name())
    }
}

/// The id a record file name stands for, or `None` for temp files and anything else.
pub fn id_from_file_name(name: &str) -> Option<ProposalId> {
    let stem = name.strip_suffix(FILE_SUFFIX)?;
    ProposalId::new(stem).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let id = ProposalId::new("abc").expect("id");
        assert_eq!(id_from_file_name("abc.json"), Some(id.clone()));
        assert_eq!(Folder::Decisions.relative_path(&id), "decisions/abc.json");
        for skip in [
            ".tmp-abc-beef",
            "abc",
            "abc.json.swp",
            "../abc.json",
            ".json",
            "a b.json",
        ] {
            assert_eq!(id_from_file_name(skip), None, "{skip}");
        }
    }
}
