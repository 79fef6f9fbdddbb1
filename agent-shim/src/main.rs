//! `claude-bottle-shim`: the in-bottle tool the agent uses to ask the operator for more.

use clap::Parser;

/// Files capability and egress proposals for the agent and waits for the operator's decision.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
}
