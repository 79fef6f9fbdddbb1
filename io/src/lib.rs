//! What the claude-bottle binaries share at the system's edge, written once.
//!
//! `protocol` is the pure half (types, no I/O); this crate is the other half the two sidecar
//! binaries (`claude-bottle-supervise`, `claude-bottle-shim`) would otherwise each carry a copy
//! of: the async runtime and its logs ([`runtime`]), the Unix socket another uid connects to and
//! its bounded accept loop ([`socket`]), file writes that survive a crash and never follow a
//! symlink ([`fs`]), and the folder watch that does not wake on its own reads ([`watch`]). The
//! launcher's state folder and its decisions loop use these last two as well.

pub mod fs;
pub mod runtime;
pub mod socket;
pub mod watch;
