//! A bottle's state on the host, `state/<slug>/`: the proposal queue, the audit log, the
//! per-bottle Dockerfile, all written atomically and never through a symlink.
//!
//! ```text
//! state/<slug>/
//!   queue/{proposals,decisions,applied}/<id>.json   see docs/queue.md
//!   audit.jsonl                                      one event a line, append-only
//!   Dockerfile                                       per-bottle, once a capability is approved
//!   approved-hosts                                   approved egress hosts, one a line
//!   snapshots/latest/                                the agent's home and workspace (resume)
//!   run/, current-config/                            per-launch staging (see crate::stage)
//!   run/agent-image                                  the image the agent runs (see in_use)
//! ```

pub mod approved;
pub mod atomic;
pub mod audit;
pub mod dockerfile;
pub mod in_use;
pub mod layout;
pub mod queue;
pub mod snapshot;

pub use atomic::{AtomicError, Overwrite, write_atomic, write_atomic_in};
pub use audit::{AuditError, Event};
pub use dockerfile::{DockerfileError, EffectiveDockerfile, with_capability};
pub use layout::Layout;
pub use queue::{Pending, Queue, QueueError};
