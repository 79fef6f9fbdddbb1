//! Integration tests of the gate binary: real git on both sides, an upstream that requires a
//! token, the gate on a Unix socket behind a TCP relay, no Docker.

mod bench;
mod fetch;
mod git;
mod push;
mod upstream;
mod world;

use std::path::PathBuf;

use git::{git, ok};
use upstream::TOKEN;
use world::{Gate, World, files_holding_token};

/// The agent's clone of `origin` through the gate.
pub fn agent_clone(world: &World, gate: &Gate, name: &str) -> PathBuf {
    let dir = world.path(name);
    ok(git(&["clone", "--quiet", &gate.url("origin")]).arg(&dir));
    dir
}

/// The token is in none of the texts the agent and the operator read, nor in any file of the
/// gate (mirrors, hooks, configuration, audit log, its own log).
pub fn assert_token_nowhere(gate: &Gate, client_output: &str) {
    assert!(!client_output.contains(TOKEN), "the client saw the token");
    assert!(
        !gate.log_text().contains(TOKEN),
        "the gate's log holds the token"
    );
    let holding = files_holding_token(gate.log.parent().expect("gate dir"));
    assert!(holding.is_empty(), "files holding the token: {holding:?}");
}
