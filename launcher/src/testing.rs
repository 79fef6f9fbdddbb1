//! Builders the launcher's unit tests share: proposals as the shim files them through supervise.

use claude_bottle_protocol::{
    BottleName, Capability, Egress, HostName, Proposal, ProposalId, ProposalKind,
};

/// A capability asking for one apt package.
pub fn capability(apt: &str) -> ProposalKind {
    ProposalKind::Capability(Capability {
        apt: vec![apt.into()],
        dockerfile_lines: vec![],
    })
}

/// An egress proposal for `host` on the default port.
pub fn egress(host: &str) -> ProposalKind {
    ProposalKind::Egress(Egress {
        host: HostName::new(host).expect("host"),
        port: None,
    })
}

/// Proposal `id` of `bottle`, filed at `created` (seconds), with a reason and no evidence.
pub fn proposal(id: &str, bottle: &str, kind: ProposalKind, created: u64) -> Proposal {
    Proposal::new(
        ProposalId::new(id).expect("id"),
        BottleName::new(bottle).expect("bottle"),
        kind,
        "needed".into(),
        vec![],
        created,
    )
}

/// `text` says each of `parts`.
#[track_caller]
pub fn says_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} not in: {text}");
    }
}
