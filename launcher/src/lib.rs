//! claude-bottle launcher: manifests → plan → preflight → backend (Docker) → a running bottle.
//!
//! The flow is one-directional: `cli` uses everything below it; `backend` uses `plan`, `image` and
//! `config`; `plan` uses `manifest`; `manifest` uses nothing of ours but `secret`.

pub mod backend;
pub mod chain;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod egress;
pub mod error;
pub mod exit;
pub mod export;
pub mod git_gate;
pub mod home;
pub mod image;
pub mod manifest;
pub mod plan;
pub mod prepare;
pub mod prune;
pub mod remediate;
pub mod secret;
pub mod session;
pub mod stage;
pub mod state;
#[cfg(test)]
mod testing;
pub mod tls;

pub use cli::run;
