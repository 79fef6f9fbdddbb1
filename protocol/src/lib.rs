//! Versioned types that cross a process boundary: the shim↔supervise wire and the host queue files.
//!
//! Pure data and validation: no I/O, no tokio, nothing of ours imported.

/// Version of the wire and queue-file formats written by this build.
pub const PROTOCOL_VERSION: u32 = 1;
