//! `claude-bottle-git-gate`: the sidecar that serves a bottle's git remotes and holds their
//! credentials.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = claude_bottle_git_gate::Args::parse();
    claude_bottle_io::runtime::init_tracing("info");
    claude_bottle_git_gate::run(args)
}
