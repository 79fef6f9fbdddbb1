//! End-to-end tests against the real Docker engine (see `claude_bottle_e2e` for the helpers).

mod addon;
mod claude;
mod cleanup;
mod contract;
mod dashboard;
mod disk;
mod egress;
mod export;
mod framework;
mod git_gate;
mod image_roots;
mod isolation;
mod many;
mod prune;
mod remediate;
mod runtime;
mod snapshot;
mod supervise;
mod test_git;
mod tty;
mod workspace;
