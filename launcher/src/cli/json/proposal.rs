//! `queue --json` and `show --json`: proposals, their decision and applied records, and the
//! change an approval makes.

use claude_bottle_protocol::{
    Applied, Decision, Outcome, Proposal, ProposalKind, ProposalState, UnixTime, Verdict,
    proposal_digest,
};
use serde::Serialize;

use super::VERSION;
use super::change::ChangeJson;
use crate::cli::queue::{kind_name, request_text};
use crate::cli::show::Preview;

/// `queue --json`: the pending proposals, in the order the table lists them.
#[derive(Debug, Serialize)]
pub struct QueueDoc {
    pub version: u32,
    pub proposals: Vec<ProposalJson>,
}

/// `show --json`: one proposal, what was decided and applied, and the change.
#[derive(Debug, Serialize)]
pub struct ShowDoc {
    pub version: u32,
    pub proposal: ProposalJson,
    /// `null` while pending.
    pub decision: Option<DecisionJson>,
    /// `null` until the launcher applied (or failed to apply) an approval.
    pub applied: Option<AppliedJson>,
    pub change: ChangeJson,
}

/// A proposal as both documents give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProposalJson {
    pub id: String,
    /// The bottle's name, as supervise filed it.
    pub bottle: String,
    /// Its state folder, `state/<slug>`.
    pub slug: String,
    pub state: State,
    /// `capability` or `egress`.
    pub kind: &'static str,
    /// The request in one line, whole (the table cuts it at 80 characters).
    pub summary: String,
    pub request: Request,
    pub reason: String,
    pub evidence: Vec<String>,
    /// Unix seconds.
    pub created: UnixTime,
    pub age_seconds: u64,
    /// What `approve --sha256` binds an approval to.
    pub sha256: String,
}

/// Where a proposal stands (`ProposalState`, spelled for scripts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Rejected,
    Applied,
    Failed,
    /// A state this build does not know.
    Unknown,
}

impl From<ProposalState> for State {
    fn from(s: ProposalState) -> Self {
        match s {
            ProposalState::Pending => Self::Pending,
            ProposalState::Approved => Self::Approved,
            ProposalState::Rejected => Self::Rejected,
            ProposalState::Applied => Self::Applied,
            ProposalState::Failed => Self::Failed,
            ProposalState::Unknown => Self::Unknown,
        }
    }
}

/// What is asked for (or, in an edit, approved instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Capability {
        apt: Vec<String>,
        dockerfile_lines: Vec<String>,
    },
    Egress {
        host: String,
    },
    Push {
        remote: String,
        pattern: String,
    },
}

impl From<&ProposalKind> for Request {
    fn from(kind: &ProposalKind) -> Self {
        match kind {
            ProposalKind::Capability(c) => Self::Capability {
                apt: c.apt.clone(),
                dockerfile_lines: c.dockerfile_lines.clone(),
            },
            // A port is refused when a file is read (`Egress::validate`): a proposal that
            // loaded has none.
            ProposalKind::Egress(e) => Self::Egress {
                host: e.host.to_string(),
            },
            ProposalKind::Push(p) => Self::Push {
                remote: p.remote.clone(),
                pattern: p.pattern.clone(),
            },
        }
    }
}

/// The operator's answer.
#[derive(Debug, Serialize)]
pub struct DecisionJson {
    /// `approve` or `reject`.
    pub verdict: &'static str,
    /// Empty when none was given (an approval's is optional).
    pub reason: String,
    pub by: Option<String>,
    /// Unix seconds.
    pub at: Option<UnixTime>,
    /// The change approved instead of the one asked for.
    pub edit: Option<Request>,
    /// The digest the approval is bound to.
    pub proposal_sha256: Option<String>,
    pub allow_internal_host: bool,
}

impl From<&Decision> for DecisionJson {
    fn from(d: &Decision) -> Self {
        Self {
            verdict: match d.decision {
                Verdict::Approve => "approve",
                Verdict::Reject => "reject",
            },
            reason: d.reason.clone(),
            by: d.by.clone(),
            at: d.at,
            edit: d.edit.as_ref().map(Request::from),
            proposal_sha256: d.proposal_sha256.clone(),
            allow_internal_host: d.allow_internal_host,
        }
    }
}

/// What applying an approval did.
#[derive(Debug, Serialize)]
pub struct AppliedJson {
    /// `ok` or `failed`.
    pub outcome: &'static str,
    /// The new image and its build steps, or the failure with the build's last lines.
    pub detail: String,
    /// Unix seconds.
    pub at: UnixTime,
}

impl From<&Applied> for AppliedJson {
    fn from(a: &Applied) -> Self {
        Self {
            outcome: match a.outcome {
                Outcome::Ok => "ok",
                Outcome::Failed => "failed",
            },
            detail: a.detail.clone(),
            at: a.at,
        }
    }
}

/// `p`, in the queue of `slug`, with its records, as of `now`.
pub fn proposal(
    slug: &str,
    p: &Proposal,
    decision: Option<&Decision>,
    applied: Option<&Applied>,
    now: UnixTime,
) -> ProposalJson {
    ProposalJson {
        id: p.id.to_string(),
        bottle: p.bottle.to_string(),
        slug: slug.to_owned(),
        state: ProposalState::of(decision, applied).into(),
        kind: kind_name(&p.kind),
        summary: request_text(&p.kind),
        request: Request::from(&p.kind),
        reason: p.reason.clone(),
        evidence: p.evidence.clone(),
        created: p.created,
        age_seconds: now.saturating_sub(p.created),
        sha256: proposal_digest(p),
    }
}

/// `queue --json` of pending proposals, each with its queue's slug.
pub fn queue<'a>(
    pending: impl IntoIterator<Item = (&'a str, &'a Proposal)>,
    now: UnixTime,
) -> QueueDoc {
    QueueDoc {
        version: VERSION,
        proposals: pending
            .into_iter()
            .map(|(slug, p)| proposal(slug, p, None, None, now))
            .collect(),
    }
}

/// `show --json`.
pub fn show(
    slug: &str,
    p: &Proposal,
    decision: Option<&Decision>,
    applied: Option<&Applied>,
    preview: &Preview,
    now: UnixTime,
) -> ShowDoc {
    ShowDoc {
        version: VERSION,
        proposal: proposal(slug, p, decision, applied, now),
        decision: decision.map(DecisionJson::from),
        applied: applied.map(AppliedJson::from),
        change: ChangeJson::from(preview),
    }
}

#[cfg(test)]
mod tests {
    use claude_bottle_protocol::{Capability, ProposalId};
    use serde_json::{Value, json};

    use super::*;
    use crate::cli::show::Change;
    use crate::state::dockerfile;
    use crate::testing;

    const NOW: UnixTime = 1_764_270_300;

    /// The document as a script reads it: printed, then parsed back.
    fn parsed(doc: &impl Serialize) -> Value {
        let text = super::super::to_text(doc).expect("json");
        serde_json::from_str(&text).expect("the document parses")
    }

    fn rg_proposal() -> Proposal {
        let mut p = testing::proposal(
            "1764270000-3f2a9c01",
            "myapp",
            ProposalKind::Capability(Capability {
                apt: vec!["ripgrep".into(), "jq".into()],
                dockerfile_lines: vec!["RUN pip install ruff==0.6.9".into()],
            }),
            1_764_270_000,
        );
        p.evidence = vec!["bash: rg: command not found".into()];
        p
    }

    fn egress_proposal() -> Proposal {
        testing::proposal(
            "1764270100-0b7e44d2",
            "myapp",
            testing::egress("packages.example.org"),
            1_764_270_100,
        )
    }

    /// What `show` previews for `cap` against a small Dockerfile.
    fn diff_preview(id: &ProposalId, cap: &Capability, edited: bool) -> Preview {
        let base = "FROM debian:bookworm-slim\nUSER agent\n";
        let new = dockerfile::with_capability(base, id, cap).expect("applies");
        Preview {
            edited,
            change: Change::Diff {
                against: "/home/alice/bottles/app.Dockerfile".into(),
                diff: dockerfile::unified_diff(base, &new, "a/Dockerfile", "b/Dockerfile"),
            },
        }
    }

    fn cap(kind: &ProposalKind) -> &Capability {
        match kind {
            ProposalKind::Capability(c) => c,
            ProposalKind::Egress(_) | ProposalKind::Push(_) => panic!("a capability"),
        }
    }

    #[test]
    fn an_empty_queue_is_a_version_and_an_empty_list() {
        assert_eq!(
            parsed(&queue([], NOW)),
            json!({"version": 1, "proposals": []})
        );
    }

    #[test]
    fn a_pending_capability_lists_every_field_as_data() {
        let p = rg_proposal();
        let doc = parsed(&queue([("myapp", &p)], NOW));
        assert_eq!(doc["version"], 1);
        let rows = doc["proposals"].as_array().expect("a list");
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r["id"], "1764270000-3f2a9c01");
        assert_eq!(r["bottle"], "myapp");
        assert_eq!(r["slug"], "myapp");
        assert_eq!(r["state"], "pending");
        assert_eq!(r["kind"], "capability");
        assert_eq!(
            r["summary"],
            "apt install ripgrep jq; RUN pip install ruff==0.6.9"
        );
        assert_eq!(
            r["request"],
            json!({"type": "capability", "apt": ["ripgrep", "jq"],
                   "dockerfile_lines": ["RUN pip install ruff==0.6.9"]})
        );
        assert_eq!(r["reason"], "needed");
        assert_eq!(r["evidence"], json!(["bash: rg: command not found"]));
        assert_eq!(r["created"], 1_764_270_000);
        assert_eq!(r["age_seconds"], 300);
        assert_eq!(r["sha256"], proposal_digest(&p).as_str());
        let mut keys: Vec<&str> = r
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "age_seconds",
                "bottle",
                "created",
                "evidence",
                "id",
                "kind",
                "reason",
                "request",
                "sha256",
                "slug",
                "state",
                "summary"
            ],
            "no field more or less than docs/queue.md gives"
        );
    }

    #[test]
    fn a_pending_capability_shows_its_diff_as_text_and_its_added_lines() {
        let p = rg_proposal();
        let preview = diff_preview(&p.id, cap(&p.kind), false);
        let doc = parsed(&show("myapp", &p, None, None, &preview, NOW));
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["proposal"]["state"], "pending");
        assert_eq!(doc["decision"], Value::Null);
        assert_eq!(doc["applied"], Value::Null);
        let c = &doc["change"];
        assert_eq!(c["type"], "dockerfile");
        assert_eq!(c["edited"], false);
        assert_eq!(c["against"], "/home/alice/bottles/app.Dockerfile");
        let diff = c["diff"].as_str().expect("the diff as text");
        assert!(
            diff.starts_with("--- a/Dockerfile\n+++ b/Dockerfile\n@@"),
            "{diff}"
        );
        assert!(
            !diff.contains("! reads outside"),
            "the diff is a patch: {diff}"
        );
        let added: Vec<&str> = c["added"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| l.as_str().expect("a line"))
            .collect();
        assert_eq!(
            added[0],
            "# claude-bottle: approved proposal 1764270000-3f2a9c01"
        );
        assert_eq!(added[1], "USER root");
        assert!(
            added[2].starts_with("RUN apt-get update && apt-get install"),
            "{added:?}"
        );
        assert!(added[2].contains("ripgrep:native jq:native"), "{added:?}");
        assert_eq!(added[3], "RUN pip install ruff==0.6.9");
        assert_eq!(added.len(), 4, "{added:?}");
        assert_eq!(c["outside_context"], json!([]));
        assert_eq!(c["note"], Value::Null);
        assert_eq!(c["error"], Value::Null);
    }

    #[test]
    fn an_approved_and_applied_edit_gives_the_decision_and_the_record() {
        let p = rg_proposal();
        let edit = testing::capability("ripgrep");
        let decision = Decision {
            edit: Some(edit.clone()),
            ..Decision::approve_bound(&p, "jq is in the base", "alice", 1_764_270_060)
        };
        let applied = Applied::ok(
            p.id.clone(),
            "rebuilt as claude-bottle/myapp:1771be1879fa (8 steps, 5 cached); agent resumed",
            1_764_270_190,
        );
        let preview = diff_preview(&p.id, cap(&edit), true);
        let doc = parsed(&show(
            "myapp",
            &p,
            Some(&decision),
            Some(&applied),
            &preview,
            NOW,
        ));
        assert_eq!(doc["proposal"]["state"], "applied");
        let d = &doc["decision"];
        assert_eq!(d["verdict"], "approve");
        assert_eq!(d["reason"], "jq is in the base");
        assert_eq!(d["by"], "alice");
        assert_eq!(d["at"], 1_764_270_060);
        assert_eq!(
            d["edit"],
            json!({"type": "capability", "apt": ["ripgrep"], "dockerfile_lines": []})
        );
        assert_eq!(d["proposal_sha256"], proposal_digest(&p).as_str());
        assert_eq!(d["allow_internal_host"], false);
        let a = &doc["applied"];
        assert_eq!(a["outcome"], "ok");
        assert_eq!(
            a["detail"],
            "rebuilt as claude-bottle/myapp:1771be1879fa (8 steps, 5 cached); agent resumed"
        );
        assert_eq!(a["at"], 1_764_270_190);
        assert_eq!(doc["change"]["edited"], true);
        let added = doc["change"]["added"].as_array().expect("lines");
        assert!(
            added
                .iter()
                .any(|l| l.as_str().is_some_and(|l| l.contains("ripgrep:native"))
                    && !l.as_str().is_some_and(|l| l.contains("jq"))),
            "the edit, not the request: {added:?}"
        );
    }

    #[test]
    fn a_failed_build_keeps_its_output_as_one_string_with_its_controls() {
        let p = rg_proposal();
        let decision = Decision::approve_bound(&p, "", "alice", 1_764_270_060);
        let detail = "the rebuild failed; the agent keeps running unchanged\n\
                      failed to build image: returned a non-zero code: 100\n\
                      --- last build output ---\n\
                      E: Unable to locate package \u{1b}[31mjq\u{1b}[0m\r\n";
        let applied = Applied::failed(p.id.clone(), detail, 1_764_270_190);
        let preview = diff_preview(&p.id, cap(&p.kind), false);
        let doc = parsed(&show(
            "myapp",
            &p,
            Some(&decision),
            Some(&applied),
            &preview,
            NOW,
        ));
        assert_eq!(doc["proposal"]["state"], "failed");
        assert_eq!(doc["decision"]["verdict"], "approve");
        assert_eq!(doc["decision"]["reason"], "");
        assert_eq!(doc["decision"]["edit"], Value::Null);
        assert_eq!(doc["applied"]["outcome"], "failed");
        assert_eq!(
            doc["applied"]["detail"], detail,
            "as recorded, not escaped for a terminal"
        );
    }

    #[test]
    fn an_egress_proposal_adds_one_host_to_the_allowlist() {
        let p = egress_proposal();
        let preview = Preview {
            edited: false,
            change: Change::Allowlist {
                host: "packages.example.org".into(),
            },
        };
        let doc = parsed(&show("myapp", &p, None, None, &preview, NOW));
        let r = &doc["proposal"];
        assert_eq!(r["kind"], "egress");
        assert_eq!(r["summary"], "packages.example.org");
        assert_eq!(
            r["request"],
            json!({"type": "egress", "host": "packages.example.org"})
        );
        assert_eq!(
            r["evidence"],
            json!([]),
            "an empty list, not a missing field"
        );
        assert_eq!(r["age_seconds"], 200);
        assert_eq!(
            doc["change"],
            json!({"type": "allowlist", "edited": false, "host": "packages.example.org"})
        );
    }

    #[test]
    fn a_rejection_names_its_verdict_and_reason() {
        let p = egress_proposal();
        let decision = Decision::reject(p.id.clone(), "use the mirror", "bob", 1_764_270_200);
        let preview = Preview {
            edited: false,
            change: Change::Allowlist {
                host: "packages.example.org".into(),
            },
        };
        let doc = parsed(&show("myapp", &p, Some(&decision), None, &preview, NOW));
        assert_eq!(doc["proposal"]["state"], "rejected");
        assert_eq!(doc["decision"]["verdict"], "reject");
        assert_eq!(doc["decision"]["reason"], "use the mirror");
        assert_eq!(doc["decision"]["by"], "bob");
        assert_eq!(doc["decision"]["proposal_sha256"], Value::Null);
        assert_eq!(doc["applied"], Value::Null);
    }
}
