//! Versioned types that cross a process boundary: the shim↔supervise wire and the host queue files.
//!
//! Pure data and validation: no I/O, no tokio, nothing of ours imported. A rule two binaries
//! apply lives here once (what a proposal may ask, which supervise checks when it is filed and
//! the launcher when it is applied; how the builder reads a Dockerfile and what may be appended to
//! the bottle's; byte sizes and the agent's minimums, read from `config.toml` and a bottle's
//! `limits`; a git remote's push policy, which the launcher validates and the git gate will
//! enforce).
//!
//! Compatibility rules, tested in `version.rs`:
//! - every message and file carries `version`; a reader refuses a version newer than
//!   [`PROTOCOL_VERSION`] with an error that names both numbers;
//! - within a version, changes are additive: readers ignore fields they do not know, so an
//!   older reader accepts a newer writer's extra fields.

mod decision;
pub mod dockerfile;
mod error;
pub mod git_policy;
mod id;
mod proposal;
pub mod queue;
pub mod size;
pub mod text;
mod version;
pub mod wire;

pub use decision::{Applied, Decision, Outcome, ProposalState, Verdict, proposal_digest};
pub use error::ProtocolError;
pub use id::{BottleName, ProposalId};
pub use proposal::{
    Capability, Egress, HostName, Proposal, ProposalKind, Push, limits, validate_apt_package,
    validate_dockerfile_line,
};
pub use text::{check_plain, escape, escape_line};
pub use version::{PROTOCOL_VERSION, Versioned, from_json, to_json, to_json_pretty};

/// Seconds since the Unix epoch (UTC). Written by supervise and the launcher; `date +%s` by hand.
pub type UnixTime = u64;
