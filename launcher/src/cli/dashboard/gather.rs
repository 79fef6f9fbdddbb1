//! What the dashboard shows, read the way the verbs read it: the queues as `queue --json` and
//! `show` read them, the engine's bottles as `list --json` does, the audit log; and the actions
//! its keys ask for, carried out by the verbs' own functions.

use std::collections::{BTreeMap, HashSet};

use claude_bottle_protocol::queue::Folder;
use claude_bottle_protocol::{Proposal, escape, escape_line};

use super::super::json;
use super::super::{approve, reject, show};
use super::model::{Bottle, Command, Item, Snapshot};
use crate::backend::BottleStatus;
use crate::home::Home;
use crate::state::queue::{self, Queue};
use crate::state::{Layout, audit};

/// How long a decided proposal stays in the proposals pane.
pub const RECENT_SECS: u64 = 3_600;
/// At most this many decided proposals are listed (newest first).
pub const RECENT_MAX: usize = 20;
/// The audit log view shows this many last lines at most.
pub const LOG_LINES: usize = 2_000;

/// Proposals (slug, id) this run has already logged as seen.
#[derive(Debug, Default)]
pub struct Noted(HashSet<(String, String)>);

/// The state of every bottle: its queue read from `home`, its containers from `engine` (the
/// last answer of the engine, or why there is none), as of `now`; proposals not in `noted` are
/// logged as seen.
pub fn snapshot(
    home: &Home,
    engine: &Result<Vec<BottleStatus>, String>,
    now: u64,
    noted: &mut Noted,
) -> Snapshot {
    let mut problems = Vec::new();
    let state_root = home.root().join("state");
    let queues = if state_root.is_dir() {
        match queue::all(&state_root) {
            Ok((queues, bad)) => {
                problems.extend(bad.iter().map(|e| escape_line(&e.to_string()).into_owned()));
                queues
            }
            Err(e) => {
                problems.push(escape_line(&e.to_string()).into_owned());
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let mut bottles: BTreeMap<String, Bottle> = BTreeMap::new();
    let mut pending = Vec::new();
    let mut decided = Vec::new();
    for q in &queues {
        let slug = q.slug();
        match q.pending() {
            Ok(found) => {
                problems.extend(
                    found
                        .problems
                        .iter()
                        .map(|e| escape_line(&e.to_string()).into_owned()),
                );
                // Looking at a queue logs what supervise filed, as `queue` does; each proposal
                // once a run, so that a re-read does not scan the whole log again.
                let fresh: Vec<Proposal> = found
                    .proposals
                    .iter()
                    .filter(|p| !noted.0.contains(&(slug.clone(), p.id.to_string())))
                    .cloned()
                    .collect();
                match audit::note_proposals(q.state_dir(), &fresh) {
                    Ok(_) => noted
                        .0
                        .extend(fresh.iter().map(|p| (slug.clone(), p.id.to_string()))),
                    Err(e) => problems.push(escape_line(&e.to_string()).into_owned()),
                }
                bottles.insert(slug.clone(), bottle(&slug, found.proposals.len(), None));
                pending.extend(found.proposals.into_iter().map(|p| (q, p)));
            }
            Err(e) => problems.push(escape_line(&e.to_string()).into_owned()),
        }
        decided.extend(recent(q, now));
    }
    match engine {
        Ok(statuses) => {
            for b in statuses {
                let containers = json::list::bottle(b, now).containers;
                bottles
                    .entry(b.slug.clone())
                    .or_insert_with(|| bottle(&b.slug, 0, None))
                    .containers = Some(containers);
            }
            for b in bottles.values_mut() {
                b.containers.get_or_insert_with(Vec::new);
            }
        }
        Err(e) => problems.push(format!("engine: {}", escape_line(e))),
    }
    pending.sort_by(|(_, a), (_, b)| (a.created, &a.id).cmp(&(b.created, &b.id)));
    decided.sort_by(|(_, a, at_a), (_, b, at_b)| at_b.cmp(at_a).then(b.id.cmp(&a.id)));
    decided.truncate(RECENT_MAX);
    let mut proposals: Vec<Item> = pending
        .into_iter()
        .map(|(q, p)| item(home, q, &p, now))
        .collect();
    proposals.extend(decided.into_iter().map(|(q, p, _)| item(home, q, &p, now)));
    Snapshot {
        bottles: bottles.into_values().collect(),
        proposals,
        problems,
        now,
    }
}

fn bottle(
    slug: &str,
    pending: usize,
    containers: Option<Vec<json::list::ContainerJson>>,
) -> Bottle {
    Bottle {
        slug: slug.to_owned(),
        containers,
        pending,
    }
}

/// Proposals of `q` decided within [`RECENT_SECS`] of `now`, with the time of their last record.
fn recent(q: &Queue, now: u64) -> Vec<(&Queue, Proposal, u64)> {
    let Ok(ids) = q.ids(Folder::Decisions) else {
        return Vec::new();
    };
    ids.iter()
        .filter_map(|id| {
            let d = q.decision(id).ok()??;
            let applied = q.applied(id).ok().flatten();
            let at = applied.map(|a| a.at).or(d.at)?;
            if now.saturating_sub(at) > RECENT_SECS {
                return None;
            }
            let p = q.proposal(id).ok()??;
            Some((q, p, at))
        })
        .collect()
}

/// `p` as both panes show it: `queue --json`'s row and `show`'s text.
fn item(home: &Home, q: &Queue, p: &Proposal, now: u64) -> Item {
    let decision = q.decision(&p.id).ok().flatten();
    let applied = q.applied(&p.id).ok().flatten();
    let preview = show::preview(home, q, p, decision.as_ref());
    Item {
        proposal: json::proposal::proposal(&q.slug(), p, decision.as_ref(), applied.as_ref(), now),
        detail: show::text(q, p, decision.as_ref(), applied.as_ref(), &preview, now),
    }
}

/// The last [`LOG_LINES`] lines of bottle `slug`'s audit log, one escaped line each: the time,
/// the event, the proposal and its record as logged.
pub fn audit_lines(home: &Home, slug: &str) -> Result<Vec<String>, String> {
    let dir = home.state_dir(slug);
    if !Layout::new(&dir).audit_log().exists() {
        return Ok(vec![format!("bottle {slug} has no audit log yet")]);
    }
    let entries = audit::read(&dir).map_err(|e| escape_line(&e.to_string()).into_owned())?;
    let skip = entries.len().saturating_sub(LOG_LINES);
    Ok(entries
        .iter()
        .skip(skip)
        .map(|e| {
            escape_line(&format!("{} {:<8} {} {}", e.at, e.event, e.id, e.record)).into_owned()
        })
        .collect())
}

/// Carries out a command that writes to the queue, through the verb's own function, as the verb
/// would (the same checks, decision file and audit line); the outcome as the bottom line shows
/// it, escaped. `Stop` (engine work, in a task of its own), `OpenLog` and `Quit` are the loop's.
pub fn act(home: &Home, command: &Command) -> Option<Result<String, String>> {
    let outcome = match command {
        Command::Approve(a) => approve::approve(home, a.clone()),
        Command::Reject { id, reason } => reject::reject(home, id, reason),
        Command::Stop { .. } | Command::OpenLog { .. } | Command::Quit => return None,
    };
    Some(outcome.map_err(|e| escape(&first_lines(&e.report())).into_owned()))
}

/// An error report on the one bottom line: its lines joined.
fn first_lines(report: &str) -> String {
    report
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" — ")
}
