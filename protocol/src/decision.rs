//! The operator's answer (`decisions/<id>.json`), the launcher's outcome (`applied/<id>.json`),
//! and the state a proposal is in given those two files.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{
    PROTOCOL_VERSION, Proposal, ProposalId, ProposalKind, ProtocolError, UnixTime, Versioned,
};

/// The SHA-256 (lowercase hex) of a proposal's content, as an approval binds to it.
///
/// Computed over the proposal's compact JSON as this crate serializes it (fields in declaration
/// order), not over the file's bytes: a rewrite that changes only spacing keeps the digest, any
/// change to what the operator was shown changes it. Fields a newer writer added and this reader
/// does not know are not part of it; they cannot change what this launcher applies.
pub fn proposal_digest(proposal: &Proposal) -> String {
    // Protocol types have string keys and infallible Serialize impls.
    let json = serde_json::to_vec(proposal).unwrap_or_default();
    Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
}

/// An operator's decision on one proposal. Written on the host only, never by supervise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Format version; see the crate docs.
    pub version: u32,
    /// The proposal decided; must match the file name.
    pub id: ProposalId,
    /// `"approve"` or `"reject"`.
    pub decision: Verdict,
    /// Why; required for a rejection (the agent reads it).
    #[serde(default)]
    pub reason: String,
    /// The change the operator approves instead of the one asked for (same kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<ProposalKind>,
    /// Who decided (a user name); may be left out when written by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When; may be left out when written by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<UnixTime>,
    /// The [`proposal_digest`] of the proposal the operator decided. The launcher applies an
    /// approval only while the proposal file still has this digest: a proposal replaced after
    /// it was shown is refused, never applied. Required for an approval to be applied (a
    /// hand-written one copies it from `claude-bottle show`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal_sha256: Option<String>,
    /// The operator approved an egress host that needs an explicit flag (an IP literal, a
    /// single-label or internal name, a private address): `approve --allow-internal-host`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_internal_host: bool,
}

impl Decision {
    /// An approval of the change as asked.
    pub fn approve(id: ProposalId, reason: &str, by: &str, at: UnixTime) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            id,
            decision: Verdict::Approve,
            reason: reason.to_owned(),
            edit: None,
            by: Some(by.to_owned()),
            at: Some(at),
            proposal_sha256: None,
            allow_internal_host: false,
        }
    }

    /// An approval bound to `proposal` as it is now (see [`proposal_digest`]).
    pub fn approve_bound(proposal: &Proposal, reason: &str, by: &str, at: UnixTime) -> Self {
        Self {
            proposal_sha256: Some(proposal_digest(proposal)),
            ..Self::approve(proposal.id.clone(), reason, by, at)
        }
    }

    /// Whether this decision was made on `proposal` as it is now: its digest is recorded and
    /// equal. `Err` says why not, in words for the operator and the audit log.
    pub fn check_bound_to(&self, proposal: &Proposal) -> Result<(), String> {
        let now = proposal_digest(proposal);
        match &self.proposal_sha256 {
            Some(d) if d.eq_ignore_ascii_case(&now) => Ok(()),
            Some(d) => Err(format!(
                "proposal {} changed after the decision: decided on sha256 {d}, the file now has {now}",
                self.id
            )),
            None => Err(format!(
                "the decision on {} does not name the proposal it approves (no proposal_sha256); \
                 approve it with `claude-bottle approve`, or add \"proposal_sha256\": \"{now}\" \
                 after checking `claude-bottle show {}`",
                self.id, self.id
            )),
        }
    }

    /// A rejection; `reason` must not be blank.
    pub fn reject(id: ProposalId, reason: &str, by: &str, at: UnixTime) -> Self {
        Self {
            decision: Verdict::Reject,
            ..Self::approve(id, reason, by, at)
        }
    }

    /// The change to apply: the operator's edit if any, else the proposal's own, refusing an
    /// edit of another kind (an egress proposal cannot be approved as a capability).
    pub fn effective_kind(&self, asked: &ProposalKind) -> Result<ProposalKind, ProtocolError> {
        match (&self.edit, asked) {
            (None, k) => Ok(k.clone()),
            (Some(e @ ProposalKind::Capability(_)), ProposalKind::Capability(_))
            | (Some(e @ ProposalKind::Egress(_)), ProposalKind::Egress(_))
            | (Some(e @ ProposalKind::Push(_)), ProposalKind::Push(_)) => Ok(e.clone()),
            (Some(_), _) => Err(ProtocolError::invalid(
                "edit",
                "must be of the same type as the proposal (capability, egress or push)",
            )),
        }
    }
}

impl Versioned for Decision {
    const WHAT: &'static str = "decision";
    fn version(&self) -> u32 {
        self.version
    }
    fn validate(&self) -> Result<(), ProtocolError> {
        if self.decision == Verdict::Reject && self.reason.trim().is_empty() {
            return Err(ProtocolError::invalid(
                "reason",
                "a rejection needs a reason the agent can act on",
            ));
        }
        if self.reason.len() > crate::limits::MAX_REASON {
            return Err(ProtocolError::invalid("reason", "too long"));
        }
        if let Some(edit) = &self.edit {
            edit.validate()?;
        }
        if let Some(d) = &self.proposal_sha256
            && !(d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ProtocolError::invalid(
                "proposal_sha256",
                "must be 64 hex digits, as `claude-bottle show` prints it",
            ));
        }
        Ok(())
    }
}

/// Whether applying an approved change worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed,
}

/// What happened when the launcher applied an approved proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Format version; see the crate docs.
    pub version: u32,
    /// The proposal applied; must match the file name.
    pub id: ProposalId,
    /// `"ok"` or `"failed"`.
    pub outcome: Outcome,
    /// The new image tag, the reloaded allowlist, or the failure.
    #[serde(default)]
    pub detail: String,
    /// When it finished.
    pub at: UnixTime,
}

impl Applied {
    /// A success record.
    pub fn ok(id: ProposalId, detail: &str, at: UnixTime) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            id,
            outcome: Outcome::Ok,
            detail: detail.to_owned(),
            at,
        }
    }

    /// A failure record.
    pub fn failed(id: ProposalId, detail: &str, at: UnixTime) -> Self {
        Self {
            outcome: Outcome::Failed,
            ..Self::ok(id, detail, at)
        }
    }
}

impl Versioned for Applied {
    const WHAT: &'static str = "applied record";
    fn version(&self) -> u32 {
        self.version
    }
    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }
}

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    /// No decision yet.
    Pending,
    /// Approved, not yet applied.
    Approved,
    /// Rejected (final).
    Rejected,
    /// Approved and applied (final).
    Applied,
    /// Approved but applying failed (final).
    Failed,
    /// A state this build does not know (written by a newer supervise).
    #[serde(other)]
    Unknown,
}

impl ProposalState {
    /// The state implied by the decision and applied records present.
    pub fn of(decision: Option<&Decision>, applied: Option<&Applied>) -> Self {
        match (decision.map(|d| d.decision), applied.map(|a| a.outcome)) {
            (Some(Verdict::Reject), _) => ProposalState::Rejected,
            (_, Some(Outcome::Ok)) => ProposalState::Applied,
            (_, Some(Outcome::Failed)) => ProposalState::Failed,
            (Some(Verdict::Approve), None) => ProposalState::Approved,
            (None, None) => ProposalState::Pending,
        }
    }

    /// Nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ProposalState::Rejected | ProposalState::Applied | ProposalState::Failed
        )
    }

    /// The operator has answered.
    pub fn is_decided(self) -> bool {
        self != ProposalState::Pending
    }
}

impl std::fmt::Display for ProposalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProposalState::Pending => "pending",
            ProposalState::Approved => "approved",
            ProposalState::Rejected => "rejected",
            ProposalState::Applied => "applied",
            ProposalState::Failed => "failed",
            ProposalState::Unknown => "unknown",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Capability, Egress, HostName, from_json};

    fn id() -> ProposalId {
        ProposalId::new("p1").expect("valid id")
    }

    #[test]
    fn a_minimal_hand_written_approval_parses() {
        let d: Decision = from_json(br#"{"version":1,"id":"p1","decision":"approve"}"#)
            .expect("minimal decision");
        assert_eq!(d.decision, Verdict::Approve);
        assert_eq!(d.by, None);
    }

    #[test]
    fn a_rejection_without_reason_is_invalid() {
        assert!(from_json::<Decision>(br#"{"version":1,"id":"p1","decision":"reject"}"#).is_err());
        assert!(from_json::<Decision>(br#"{"version":1,"id":"p1","decision":"maybe"}"#).is_err());
    }

    #[test]
    fn edits_must_keep_the_kind() {
        let egress = ProposalKind::Egress(Egress {
            host: HostName::new("packages.example.org").expect("host"),
            port: None,
        });
        let cap = ProposalKind::Capability(Capability {
            apt: vec!["jq".into()],
            dockerfile_lines: vec![],
        });
        let mut d = Decision::approve(id(), "", "op", 1);
        assert_eq!(d.effective_kind(&egress).ok(), Some(egress.clone()));
        d.edit = Some(cap.clone());
        assert!(d.effective_kind(&egress).is_err());
        assert_eq!(d.effective_kind(&cap).ok(), Some(cap));
    }

    #[test]
    fn an_approval_binds_to_the_proposals_content() {
        let asked = Proposal::new(
            id(),
            crate::BottleName::new("app").expect("bottle"),
            ProposalKind::Capability(Capability {
                apt: vec!["jq".into()],
                dockerfile_lines: vec![],
            }),
            "needs jq".into(),
            vec![],
            7,
        );
        let d = Decision::approve_bound(&asked, "", "op", 8);
        assert_eq!(d.check_bound_to(&asked), Ok(()));
        // Any change of content, even of the reason alone, breaks the binding.
        let mut other = asked.clone();
        other.reason = "needs jq!".into();
        let why = d.check_bound_to(&other).expect_err("changed");
        assert!(why.contains("changed after the decision"), "{why}");
        // Spacing does not: the digest is over the parsed content.
        let spaced = serde_json::to_string_pretty(&asked).expect("json");
        let reparsed: Proposal = from_json(spaced.as_bytes()).expect("parse");
        assert_eq!(d.check_bound_to(&reparsed), Ok(()));
        // An unbound approval is refused with the digest to add.
        let unbound = Decision::approve(id(), "", "op", 8);
        let why = unbound.check_bound_to(&asked).expect_err("unbound");
        assert!(why.contains(&proposal_digest(&asked)), "{why}");
        // A malformed digest is refused when the decision is read.
        let bad = br#"{"version":1,"id":"p1","decision":"approve","proposal_sha256":"abc"}"#;
        assert!(from_json::<Decision>(bad).is_err());
    }

    #[test]
    fn states() {
        let ok = Applied::ok(id(), "", 1);
        let failed = Applied::failed(id(), "boom", 1);
        let yes = Decision::approve(id(), "", "op", 1);
        let no = Decision::reject(id(), "no", "op", 1);
        assert_eq!(ProposalState::of(None, None), ProposalState::Pending);
        assert_eq!(ProposalState::of(Some(&yes), None), ProposalState::Approved);
        assert_eq!(
            ProposalState::of(Some(&yes), Some(&ok)),
            ProposalState::Applied
        );
        assert_eq!(
            ProposalState::of(Some(&yes), Some(&failed)),
            ProposalState::Failed
        );
        assert_eq!(ProposalState::of(Some(&no), None), ProposalState::Rejected);
        assert!(!ProposalState::Approved.is_final());
        assert!(ProposalState::Approved.is_decided());
        let s: ProposalState = serde_json::from_str("\"withdrawn\"").expect("unknown kept");
        assert_eq!(s, ProposalState::Unknown);
    }
}
