//! `claude-bottle approve ID [--edit-apt PKG…] [--edit-dockerfile-line LINE…] [--reason TEXT]`:
//! write the approval into the bottle's queue and the audit log.

use std::process::ExitCode;

use claude_bottle_protocol::{Capability, Decision, ProposalKind};

use super::queue::{error, locate, operator, summary};
use crate::home::Home;
use crate::state::{audit, dockerfile};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Proposal id, as `claude-bottle queue` lists it.
    id: String,
    /// Approve these apt packages instead of the ones asked for (a capability proposal).
    #[arg(long = "edit-apt", value_name = "PKG", num_args = 1..)]
    edit_apt: Vec<String>,
    /// Approve these Dockerfile lines instead of the ones asked for (a capability proposal).
    #[arg(long = "edit-dockerfile-line", value_name = "LINE", num_args = 1..)]
    edit_dockerfile_lines: Vec<String>,
    /// Why (the agent reads it).
    #[arg(long)]
    reason: Option<String>,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    let (q, p) = locate(home, &args.id)?;
    let mut decision = Decision::approve(
        p.id.clone(),
        args.reason.as_deref().unwrap_or_default(),
        &operator(),
        audit::now(),
    );
    if !args.edit_apt.is_empty() || !args.edit_dockerfile_lines.is_empty() {
        let cap = Capability {
            apt: args.edit_apt,
            dockerfile_lines: args.edit_dockerfile_lines,
        };
        // Refuse here what the Dockerfile step would refuse later, with the same words.
        dockerfile::capability_lines(&cap).map_err(|e| {
            super::Error::usage(
                format!("failed to approve {}: {e}", p.id),
                "give package names like `ripgrep` and one Dockerfile instruction per line",
            )
        })?;
        decision.edit = Some(ProposalKind::Capability(cap));
    }
    q.decide(&decision).map_err(error)?;
    let change = decision.edit.as_ref().unwrap_or(&p.kind);
    let edited = if decision.edit.is_some() {
        ", edited"
    } else {
        ""
    };
    println!(
        "approved {} ({}{edited}): {}",
        p.id,
        q.slug(),
        summary(change)
    );
    Ok(ExitCode::SUCCESS)
}
