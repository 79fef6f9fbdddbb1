//! `claude-bottle approve ID [--sha256 HEX] [--edit-apt PKG…] [--edit-dockerfile-line LINE…]
//! [--reason TEXT]`: write the approval into the bottle's queue and the audit log, bound to the
//! proposal's content (its SHA-256) so that a proposal replaced afterwards is never applied.

use std::process::ExitCode;

use claude_bottle_protocol::{Capability, Decision, ProposalKind, escape, proposal_digest};

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
    /// Approve only if the proposal's digest starts with HEX (at least 12 digits), as `show`
    /// printed it: what is approved is then exactly what was read.
    #[arg(long = "sha256", value_name = "HEX")]
    sha256: Option<String>,
    /// Allow an egress host that reaches your own networks rather than the internet: an IP
    /// address, a single-label name (a sidecar such as `egress-proxy`), `localhost`, or a name
    /// under `.internal`, `.local` and the like. Refused without this flag.
    #[arg(long = "allow-internal-host")]
    allow_internal_host: bool,
}

/// Fewest hex digits `--sha256` takes: 48 bits, beyond an agent's reach to collide with.
const MIN_DIGEST_PREFIX: usize = 12;

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    let done = approve(
        home,
        Approval {
            id: args.id,
            edit_apt: args.edit_apt,
            edit_dockerfile_lines: args.edit_dockerfile_lines,
            reason: args.reason,
            sha256: args.sha256,
            allow_internal_host: args.allow_internal_host,
        },
    )?;
    println!("{done}");
    Ok(ExitCode::SUCCESS)
}

/// An approval as the operator asked for it: the verb's arguments, or the dashboard's keys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Approval {
    pub id: String,
    pub edit_apt: Vec<String>,
    pub edit_dockerfile_lines: Vec<String>,
    pub reason: Option<String>,
    pub sha256: Option<String>,
    pub allow_internal_host: bool,
}

/// Checks `args` against the proposal and writes the decision (and its audit line); returns what
/// was approved, in one escaped line. The one way an approval is made: `approve` and the
/// dashboard both call it.
pub(super) fn approve(home: &Home, args: Approval) -> Result<String, super::Error> {
    let (q, p) = locate(home, &args.id)?;
    let digest = proposal_digest(&p);
    if let Some(expected) = &args.sha256 {
        let expected = expected.trim().to_ascii_lowercase();
        if expected.len() < MIN_DIGEST_PREFIX || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(super::Error::usage(
                format!(
                    "failed to approve {}: --sha256 {expected:?} is not a digest",
                    p.id
                ),
                format!(
                    "give at least {MIN_DIGEST_PREFIX} hex digits of the `sha256` line `claude-bottle show {}` prints",
                    p.id
                ),
            ));
        }
        if !digest.starts_with(&expected) {
            return Err(super::Error::usage(
                format!(
                    "failed to approve {}: the proposal's sha256 is {digest}, not {expected}…: it is not the text you read",
                    p.id
                ),
                format!("read it again with `claude-bottle show {}`", p.id),
            ));
        }
    }
    let mut decision = Decision::approve_bound(
        &p,
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
    if let ProposalKind::Egress(e) = decision.edit.as_ref().unwrap_or(&p.kind)
        && let Some(why) = e.host.needs_operator_flag()
    {
        if !args.allow_internal_host {
            return Err(super::Error::usage(
                format!(
                    "failed to approve {}: egress to {:?} is {why}; allowing it could let the agent reach your own network or the bottle's sidecars",
                    p.id,
                    escape(e.host.as_str())
                ),
                format!(
                    "if that is what you mean, approve with `claude-bottle approve {} --allow-internal-host`; pipelock still refuses private addresses unless `allow_private_cidrs` names them",
                    p.id
                ),
            ));
        }
        decision.allow_internal_host = true;
    }
    q.decide(&decision).map_err(error)?;
    let change = decision.edit.as_ref().unwrap_or(&p.kind);
    let edited = if decision.edit.is_some() {
        ", edited"
    } else {
        ""
    };
    Ok(format!(
        "approved {} ({}{edited}): {}",
        p.id,
        q.slug(),
        summary(change)
    ))
}
