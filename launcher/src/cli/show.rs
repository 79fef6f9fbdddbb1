//! `claude-bottle show ID [--json]`: the whole proposal, its state, and the change it would make (a
//! unified diff of the bottle's Dockerfile, or the allowlist line).

use std::fmt::Write as _;
use std::process::ExitCode;

use claude_bottle_protocol::{Applied, Decision, Proposal, ProposalKind, ProposalState, escape};

use super::json;
use super::queue::{age, host_port, kind_name, locate, summary};
use crate::home::Home;
use crate::image::DEFAULT_AGENT_DOCKERFILE;
use crate::state::dockerfile;
use crate::state::{Queue, audit};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Proposal id, as `claude-bottle queue` lists it.
    id: String,
    /// Print one JSON document instead (see docs/queue.md, "Scripting with --json").
    #[arg(long)]
    json: bool,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    let (q, p) = locate(home, &args.id)?;
    let decision = q.decision(&p.id).map_err(super::queue::error)?;
    let applied = q.applied(&p.id).map_err(super::queue::error)?;
    if let Err(e) = audit::note_proposals(q.state_dir(), std::slice::from_ref(&p)) {
        eprintln!("warning: {e}");
    }
    let preview = preview(home, &q, &p, decision.as_ref());
    let now = audit::now();
    if args.json {
        let doc = json::proposal::show(
            &q.slug(),
            &p,
            decision.as_ref(),
            applied.as_ref(),
            &preview,
            now,
        );
        json::print(&doc)?;
        return Ok(ExitCode::SUCCESS);
    }
    print!(
        "{}",
        text(&q, &p, decision.as_ref(), applied.as_ref(), &preview, now)
    );
    Ok(ExitCode::SUCCESS)
}

/// What `show` prints: the fields, a blank line, the change; every line escaped. The dashboard's
/// detail pane shows the same text.
pub(super) fn text(
    q: &Queue,
    p: &Proposal,
    decision: Option<&Decision>,
    applied: Option<&Applied>,
    preview: &Preview,
    now: u64,
) -> String {
    let mut out = render(q, p, decision, applied, now);
    out.push('\n');
    // The diff quotes approved lines and errors that quote the proposal: escaped line by line,
    // so a plain line (backslashes and all) reads exactly as it will be written.
    out.push_str(&escape(&preview.render()));
    out
}

/// The proposal's fields, one a line, labels aligned.
fn render(
    q: &Queue,
    p: &Proposal,
    decision: Option<&Decision>,
    applied: Option<&Applied>,
    now: u64,
) -> String {
    let mut out = String::new();
    // Every value may hold the agent's text (or a build's): escaped, and each further line of it
    // indented past the labels, so that no line of it can pass for a field of its own.
    let mut field = |label: &str, value: &str| {
        let value = escape(value);
        let mut lines = value.split('\n');
        let _ = writeln!(out, "{label:<10}{}", lines.next().unwrap_or_default());
        for line in lines {
            let _ = writeln!(out, "{:<10}  {line}", "");
        }
    };
    field("proposal", p.id.as_str());
    // What an approval binds to; `approve ID --sha256 <prefix>` approves only this text.
    field("sha256", &claude_bottle_protocol::proposal_digest(p));
    field("bottle", &format!("{} (state/{})", p.bottle, q.slug()));
    field("state", &ProposalState::of(decision, applied).to_string());
    field("kind", kind_name(&p.kind));
    field("request", &summary(&p.kind));
    field(
        "created",
        &format!("{} ({} ago)", p.created, age(now, p.created)),
    );
    field("reason", &p.reason);
    for (i, e) in p.evidence.iter().enumerate() {
        field(if i == 0 { "evidence" } else { "" }, e);
    }
    if let Some(d) = decision {
        let mut v = format!("{:?}", d.decision).to_lowercase();
        if let Some(by) = &d.by {
            let _ = write!(v, " by {by}");
        }
        if let Some(at) = d.at {
            let _ = write!(v, " at {at}");
        }
        if !d.reason.is_empty() {
            let _ = write!(v, ": {}", d.reason);
        }
        field("decision", &v);
        if let Some(edit) = &d.edit {
            field("edit", &summary(edit));
        }
    }
    if let Some(a) = applied {
        // How long carrying the decision out took (the rebuild and the swap, or the reload).
        let took = decision
            .and_then(|d| d.at)
            .and_then(|decided| a.at.checked_sub(decided))
            .map(|s| format!(" ({s} s after the decision)"))
            .unwrap_or_default();
        field(
            "applied",
            // Only the outcome is lowercased: the detail is quoted as it was recorded.
            &format!(
                "{} at {}{took}: {}",
                format!("{:?}", a.outcome).to_lowercase(),
                a.at,
                a.detail
            ),
        );
    }
    out
}

/// The change an approval makes (or made): the operator's edit when there is one.
#[derive(Debug)]
pub(super) struct Preview {
    /// The change is the operator's edit, not the one asked for.
    pub edited: bool,
    pub change: Change,
}

/// What a change does to the bottle, as far as `show` can tell.
#[derive(Debug)]
pub(super) enum Change {
    /// `host` (or `host:port`) added to the allowlist.
    Allowlist { host: String },
    /// `pattern` added to the push policy of git remote `remote`.
    PushPolicy { remote: String, pattern: String },
    /// The unified diff of the bottle's current Dockerfile (`against`); empty once applied.
    Diff { against: String, diff: String },
    /// The current Dockerfile could not be read (`why`): the lines appended, or why they are
    /// invalid.
    NoBase {
        why: String,
        lines: Result<Vec<String>, String>,
    },
    /// The capability cannot be appended to the current Dockerfile.
    Refused { error: String },
}

impl Preview {
    /// As `show` prints it under the fields (not yet escaped).
    fn render(&self) -> String {
        let whose = if self.edited {
            " (as edited by the operator)"
        } else {
            ""
        };
        match &self.change {
            Change::Allowlist { host } => format!("allowlist change{whose}:\n+ {host}\n"),
            Change::PushPolicy { remote, pattern } => {
                format!("push policy change of git remote {remote}{whose}:\n+ {pattern}\n")
            }
            Change::Diff { against, diff } => format!(
                "Dockerfile change{whose} against {against}:\n{}",
                // A `!` line under each added line that reads from outside the context.
                dockerfile::flag_outside_context(diff)
            ),
            Change::NoBase { why, lines } => {
                // Without the base the diff cannot be drawn; still show what is appended.
                let lines = match lines {
                    Ok(ls) => dockerfile::flag_outside_context(
                        &ls.iter().map(|l| format!("+{l}\n")).collect::<String>(),
                    ),
                    Err(e) => format!("error: {e}\n"),
                };
                format!(
                    "Dockerfile change{whose}: appended as the final step\n\
                     note: no diff: {why}\n{lines}"
                )
            }
            Change::Refused { error } => {
                format!("Dockerfile change{whose}: cannot be applied: {error}\n")
            }
        }
    }
}

/// The change `p` makes, as `decision` (if any) approved it.
pub(super) fn preview(
    home: &Home,
    q: &Queue,
    p: &Proposal,
    decision: Option<&Decision>,
) -> Preview {
    let (kind, edited) = match decision.and_then(|d| d.edit.clone()) {
        Some(edit) => (edit, true),
        None => (p.kind.clone(), false),
    };
    let change = match &kind {
        ProposalKind::Egress(e) => Change::Allowlist { host: host_port(e) },
        ProposalKind::Push(push) => Change::PushPolicy {
            remote: push.remote.clone(),
            pattern: push.pattern.clone(),
        },
        ProposalKind::Capability(cap) => match current_dockerfile(home, q, p) {
            Err(why) => Change::NoBase {
                why,
                lines: dockerfile::capability_lines(cap).map_err(|e| e.to_string()),
            },
            Ok(current) => match dockerfile::with_capability(current.text(), &p.id, cap) {
                Ok(new) => Change::Diff {
                    against: current.origin(),
                    diff: dockerfile::unified_diff(
                        current.text(),
                        &new,
                        "a/Dockerfile",
                        "b/Dockerfile",
                    ),
                },
                Err(e) => Change::Refused {
                    error: e.to_string(),
                },
            },
        },
    };
    Preview { edited, change }
}

/// The bottle's current Dockerfile: the per-bottle one, else the bottle's own, else embedded.
fn current_dockerfile(
    home: &Home,
    q: &Queue,
    p: &Proposal,
) -> Result<dockerfile::EffectiveDockerfile, String> {
    let state_dir = q.state_dir();
    let per_bottle = crate::state::Layout::new(state_dir).per_bottle_dockerfile();
    let own = if std::fs::symlink_metadata(&per_bottle).is_ok() {
        None
    } else {
        let bottle = crate::manifest::load(home, p.bottle.as_str())
            .map_err(|e| format!("failed to load bottle {}: {e}", p.bottle))?;
        bottle.dockerfile
    };
    dockerfile::effective(state_dir, own.as_deref(), DEFAULT_AGENT_DOCKERFILE)
        .map_err(|e| e.to_string())
}
