//! `claude-bottle-supervise`: the sidecar that carries proposals from the shim to the host queue.

use clap::Parser;

/// Receives the agent's proposals over a Unix socket and writes them into the operator's queue.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
}
