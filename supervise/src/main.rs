//! `claude-bottle-supervise`: the sidecar that carries proposals from the shim to the host queue.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = claude_bottle_supervise::Args::parse();
    claude_bottle_io::runtime::init_tracing("info");
    claude_bottle_supervise::run(args)
}
