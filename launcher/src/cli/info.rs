//! `claude-bottle info [BOTTLE] [--json]`: the resolved bottle, without touching Docker.

use std::process::ExitCode;

use crate::home::Home;
use crate::plan;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bottle name (a file in $CLAUDE_BOTTLE_HOME/bottles/ without .md).
    #[arg(default_value = "default")]
    bottle: String,
    /// Print one JSON document instead (see docs/queue.md, "Scripting with --json").
    #[arg(long)]
    json: bool,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    let config = super::load_config(home)?;
    let plan = plan::load(home, &config, &args.bottle)?;
    if args.json {
        super::json::print(&super::json::info::info(&plan))?;
    } else {
        print!("{}", plan::render_info(&plan));
    }
    Ok(ExitCode::SUCCESS)
}
