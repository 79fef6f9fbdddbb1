//! `claude-bottle queue [BOTTLE] [--json]`: pending proposals of one bottle or of all; helpers the
//! other queue verbs (`show`, `approve`, `reject`) share.

use std::process::ExitCode;

use claude_bottle_protocol::{
    Egress, Proposal, ProposalId, ProposalKind, UnixTime, escape, escape_line,
};

use crate::home::Home;
use crate::state::audit;
use crate::state::queue::{self, Queue, QueueError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bottle name or slug; all bottles when left out.
    bottle: Option<String>,
    /// Print one JSON document instead (see docs/queue.md, "Scripting with --json").
    #[arg(long)]
    json: bool,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    let queues = match &args.bottle {
        Some(name) => {
            let slug = super::bottle_slug(name)?;
            let dir = home.state_dir(&slug);
            if crate::state::Layout::new(&dir).queue().is_dir() {
                vec![Queue::open(&dir).map_err(error)?]
            } else {
                Vec::new()
            }
        }
        None => {
            let (queues, problems) = queue::all(&home.root().join("state")).map_err(error)?;
            for problem in &problems {
                warn(problem);
            }
            queues
        }
    };
    let now = audit::now();
    let mut pending = Vec::new();
    for q in &queues {
        let found = q.pending().map_err(error)?;
        for problem in &found.problems {
            warn(problem);
        }
        if let Err(e) = audit::note_proposals(q.state_dir(), &found.proposals) {
            eprintln!("warning: {e}");
        }
        pending.extend(found.proposals.into_iter().map(|p| (q.slug(), p)));
    }
    if args.json {
        let doc =
            super::json::proposal::queue(pending.iter().map(|(slug, p)| (slug.as_str(), p)), now);
        super::json::print(&doc)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 5]> = pending
        .into_iter()
        .map(|(slug, p)| {
            [
                p.id.to_string(),
                age(now, p.created),
                slug,
                kind_name(&p.kind).to_owned(),
                summary(&p.kind),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no pending proposals");
        return Ok(ExitCode::SUCCESS);
    }
    print!(
        "{}",
        super::render::table(
            ["ID", "AGE", "BOTTLE", "KIND", "SUMMARY"],
            &rows,
            super::render::stdout_width()
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// A problem with a queue file: its message quotes the file's name and text, which supervise (or
/// whoever wrote the file) chose.
fn warn(problem: &impl std::fmt::Display) {
    eprintln!("warning: {}", escape(&problem.to_string()));
}

/// How long ago `then` was ([`super::render::age`]); a clock behind the writer's gives `0s`.
pub(super) fn age(now: UnixTime, then: UnixTime) -> String {
    super::render::age(i64::try_from(now.saturating_sub(then)).unwrap_or(i64::MAX))
}

/// `capability`, `egress` or `push`.
pub(super) fn kind_name(kind: &ProposalKind) -> &'static str {
    match kind {
        ProposalKind::Capability(_) => "capability",
        ProposalKind::Egress(_) => "egress",
        ProposalKind::Push(_) => "push",
    }
}

/// What is asked for, on one line of at most 80 characters, escaped: validation keeps controls
/// out of these fields, and this keeps them off the terminal should a file slip past it.
pub(super) fn summary(kind: &ProposalKind) -> String {
    let full = escape_line(&request_text(kind)).into_owned();
    if full.chars().count() > 80 {
        let cut: String = full.chars().take(79).collect();
        format!("{cut}…")
    } else {
        full
    }
}

/// What is asked for, whole and as written: `apt install a b; RUN …` or `host`.
pub(super) fn request_text(kind: &ProposalKind) -> String {
    match kind {
        ProposalKind::Capability(c) => {
            let mut parts = Vec::new();
            if !c.apt.is_empty() {
                parts.push(format!("apt install {}", c.apt.join(" ")));
            }
            parts.extend(c.dockerfile_lines.iter().cloned());
            parts.join("; ")
        }
        ProposalKind::Egress(e) => host_port(e),
        ProposalKind::Push(p) => format!("{} {}", p.remote, p.pattern),
    }
}

/// `host` or `host:port`.
pub(super) fn host_port(e: &Egress) -> String {
    match e.port {
        Some(p) => format!("{}:{p}", e.host),
        None => e.host.to_string(),
    }
}

/// The queue that holds the proposal the operator named, and the proposal.
pub(super) fn locate(home: &Home, id: &str) -> Result<(Queue, Proposal), super::Error> {
    let id = ProposalId::new(id).map_err(|e| {
        super::Error::usage(
            format!("{id:?} is not a proposal id: {e}"),
            "`claude-bottle queue` lists the pending ones",
        )
    })?;
    let q = queue::find(&home.root().join("state"), &id).map_err(error)?;
    let p = q
        .proposal(&id)
        .map_err(error)?
        .ok_or(QueueError::Unknown { id })
        .map_err(error)?;
    Ok((q, p))
}

/// Who decides: `$USER`, else `operator`.
pub(super) fn operator() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "operator".to_owned())
}

/// A queue error as the verb's error (its kind and hint: [`QueueError`]'s `Diagnose`).
pub(super) fn error(e: QueueError) -> super::Error {
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_count_from_the_proposals_time() {
        assert_eq!(age(100, 58), "42s");
        assert_eq!(age(3 * 3_600 + 5, 5), "3h");
        assert_eq!(
            age(0, 10),
            "0s",
            "a clock behind the writer's is not negative"
        );
    }

    #[test]
    fn long_summaries_are_cut() {
        let kind = ProposalKind::Capability(claude_bottle_protocol::Capability {
            apt: vec![],
            dockerfile_lines: vec![format!("RUN {}", "x".repeat(200))],
        });
        let s = summary(&kind);
        assert_eq!(s.chars().count(), 80);
        assert!(s.ends_with('…'));
    }
}
