//! `claude-bottle resume <bottle>`: start a stopped bottle from its per-bottle image and continue
//! the agent's last session from the snapshot its previous run left.

use std::process::ExitCode;

use crate::home::Home;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bottle name (a file in $CLAUDE_BOTTLE_HOME/bottles/ without .md).
    pub bottle: String,
    /// Launch without asking.
    #[arg(short, long)]
    pub yes: bool,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    let start = super::start::Args {
        bottle: args.bottle,
        yes: args.yes,
        dry_run: false,
        cwd: None,
    };
    super::start::run_session(home, start, true)
}
