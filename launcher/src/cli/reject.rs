//! `claude-bottle reject ID --reason TEXT`: write the rejection (the agent reads the reason)
//! into the bottle's queue and the audit log.

use std::process::ExitCode;

use claude_bottle_protocol::{Decision, escape_line};

use super::queue::{error, locate, operator};
use crate::home::Home;
use crate::state::audit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Proposal id, as `claude-bottle queue` lists it.
    id: String,
    /// Why, in words the agent can act on (required).
    #[arg(long, required = true)]
    reason: String,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    if args.reason.trim().is_empty() {
        return Err(super::Error::usage(
            "failed to reject: the reason is blank",
            "say what the agent should do instead, e.g. --reason \"use the vendored copy\"",
        ));
    }
    let (q, p) = locate(home, &args.id)?;
    let decision = Decision::reject(p.id.clone(), &args.reason, &operator(), audit::now());
    q.decide(&decision).map_err(error)?;
    // Echoed as the operator will read it back (pasted text can carry controls too).
    println!(
        "rejected {} ({}): {}",
        p.id,
        q.slug(),
        escape_line(&args.reason)
    );
    Ok(ExitCode::SUCCESS)
}
