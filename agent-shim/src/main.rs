//! `claude-bottle-shim`: the in-bottle tool the agent uses to ask the operator for more.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = claude_bottle_shim::Cli::parse();
    claude_bottle_io::runtime::init_tracing(cli.default_log_level());
    claude_bottle_shim::run(cli)
}
