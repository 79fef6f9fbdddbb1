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
    println!("{}", reject(home, &args.id, &args.reason)?);
    Ok(ExitCode::SUCCESS)
}

/// Writes the rejection of `id` (and its audit line); returns what was rejected, in one escaped
/// line. The one way a rejection is made: `reject` and the dashboard both call it.
pub(super) fn reject(home: &Home, id: &str, reason: &str) -> Result<String, super::Error> {
    if reason.trim().is_empty() {
        return Err(super::Error::usage(
            "failed to reject: the reason is blank",
            "say what the agent should do instead, e.g. --reason \"use the vendored copy\"",
        ));
    }
    let (q, p) = locate(home, id)?;
    let decision = Decision::reject(p.id.clone(), reason, &operator(), audit::now());
    q.decide(&decision).map_err(error)?;
    // Echoed as the operator will read it back (pasted text can carry controls too).
    Ok(format!(
        "rejected {} ({}): {}",
        p.id,
        q.slug(),
        escape_line(reason)
    ))
}
