//! What the claude-bottle binaries share at the system's edge, written once.
//!
//! `protocol` is the pure half (types, no I/O); this crate is the other half the two sidecar
//! binaries (`claude-bottle-supervise`, `claude-bottle-shim`) would otherwise each carry a copy
//! of: the async runtime and its logs ([`runtime`]), the Unix socket another uid connects to and
//! its bounded accept loop ([`socket`]), and file writes that survive a crash and never follow a
//! symlink ([`fs`]), which the launcher's state folder uses too.

pub mod fs;
pub mod runtime;
pub mod socket;
