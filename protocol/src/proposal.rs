//! A proposal: what the agent asks for (a capability or an egress host), why, and its evidence.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{BottleName, PROTOCOL_VERSION, ProposalId, ProtocolError, UnixTime, Versioned};

/// Bounds that keep one proposal small enough to review and to hold in memory many times over.
pub mod limits {
    /// Longest reason, in bytes.
    pub const MAX_REASON: usize = 2_000;
    /// Most evidence items.
    pub const MAX_EVIDENCE_ITEMS: usize = 16;
    /// Longest evidence item, in bytes.
    pub const MAX_EVIDENCE_ITEM: usize = 4_096;
    /// Most apt packages in one proposal.
    pub const MAX_APT_PACKAGES: usize = 64;
    /// Most Dockerfile lines in one proposal.
    pub const MAX_DOCKERFILE_LINES: usize = 64;
    /// Longest Dockerfile line, in bytes.
    pub const MAX_DOCKERFILE_LINE: usize = 4_096;
    /// Longest host name (DNS limit).
    pub const MAX_HOST: usize = 253;
}

/// One request from inside the bottle, as written to `proposals/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Format version; see the crate docs.
    pub version: u32,
    /// Assigned by supervise.
    pub id: ProposalId,
    /// The bottle the agent runs in (set by supervise, never by the agent).
    pub bottle: BottleName,
    /// What is asked for.
    pub kind: ProposalKind,
    /// The agent's one-paragraph justification.
    pub reason: String,
    /// Supporting facts: failing commands, error lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// When supervise received it.
    pub created: UnixTime,
}

impl Proposal {
    /// A current-version proposal; call [`Versioned::validate`] before trusting it.
    pub fn new(
        id: ProposalId,
        bottle: BottleName,
        kind: ProposalKind,
        reason: String,
        evidence: Vec<String>,
        created: UnixTime,
    ) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            id,
            bottle,
            kind,
            reason,
            evidence,
            created,
        }
    }
}

impl Versioned for Proposal {
    const WHAT: &'static str = "proposal";
    fn version(&self) -> u32 {
        self.version
    }
    fn validate(&self) -> Result<(), ProtocolError> {
        self.kind.validate()?;
        validate_reason(&self.reason)?;
        validate_evidence(&self.evidence)
    }
}

/// Checks a proposal's reason: non-blank and at most [`limits::MAX_REASON`] bytes.
pub fn validate_reason(reason: &str) -> Result<(), ProtocolError> {
    if reason.trim().is_empty() {
        return Err(ProtocolError::invalid("reason", "must not be empty"));
    }
    if reason.len() > limits::MAX_REASON {
        return Err(ProtocolError::invalid(
            "reason",
            format!(
                "{} bytes, at most {} allowed",
                reason.len(),
                limits::MAX_REASON
            ),
        ));
    }
    Ok(())
}

/// Checks evidence items against the limits.
pub fn validate_evidence(evidence: &[String]) -> Result<(), ProtocolError> {
    if evidence.len() > limits::MAX_EVIDENCE_ITEMS {
        return Err(ProtocolError::invalid(
            "evidence",
            format!(
                "{} items, at most {}",
                evidence.len(),
                limits::MAX_EVIDENCE_ITEMS
            ),
        ));
    }
    if let Some(e) = evidence
        .iter()
        .find(|e| e.len() > limits::MAX_EVIDENCE_ITEM)
    {
        return Err(ProtocolError::invalid(
            "evidence",
            format!(
                "an item of {} bytes, at most {}",
                e.len(),
                limits::MAX_EVIDENCE_ITEM
            ),
        ));
    }
    Ok(())
}

/// What a proposal asks for. JSON: `{"type": "capability", …}` or `{"type": "egress", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProposalKind {
    /// Something installed into the agent's image.
    Capability(Capability),
    /// A host added to the egress allowlist.
    Egress(Egress),
}

impl ProposalKind {
    /// Checks every field of the change.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        match self {
            ProposalKind::Capability(c) => c.validate(),
            ProposalKind::Egress(e) => e.host.validate(),
        }
    }

    /// The same request in canonical form (sorted, deduplicated packages; lowercase host), so
    /// that two agents asking for the same thing produce equal values.
    pub fn normalized(&self) -> Self {
        match self {
            ProposalKind::Capability(c) => {
                let mut apt = c.apt.clone();
                apt.sort();
                apt.dedup();
                ProposalKind::Capability(Capability {
                    apt,
                    dockerfile_lines: c.dockerfile_lines.clone(),
                })
            }
            ProposalKind::Egress(e) => ProposalKind::Egress(Egress {
                host: HostName(e.host.0.to_ascii_lowercase()),
                port: e.port,
            }),
        }
    }

    /// A one-line summary for queue listings.
    pub fn summary(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ProposalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposalKind::Capability(c) => {
                let mut parts = Vec::new();
                if !c.apt.is_empty() {
                    parts.push(format!("apt install {}", c.apt.join(" ")));
                }
                if !c.dockerfile_lines.is_empty() {
                    parts.push(format!("dockerfile: {}", c.dockerfile_lines.join(" ⏎ ")));
                }
                write!(f, "capability: {}", parts.join("; "))
            }
            ProposalKind::Egress(Egress { host, port: None }) => write!(f, "egress: {host}"),
            ProposalKind::Egress(Egress {
                host,
                port: Some(p),
            }) => write!(f, "egress: {host}:{p}"),
        }
    }
}

/// A change to the agent's image: apt packages and/or raw Dockerfile lines (at least one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capability {
    /// Debian package names for `apt-get install`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apt: Vec<String>,
    /// Lines appended to the per-bottle Dockerfile, one instruction per line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dockerfile_lines: Vec<String>,
}

impl Capability {
    /// Checks package names against Debian policy and lines against the limits.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if self.apt.is_empty() && self.dockerfile_lines.is_empty() {
            return Err(ProtocolError::invalid(
                "capability",
                "needs at least one apt package or Dockerfile line",
            ));
        }
        if self.apt.len() > limits::MAX_APT_PACKAGES {
            return Err(ProtocolError::invalid(
                "apt",
                format!(
                    "{} packages, at most {}",
                    self.apt.len(),
                    limits::MAX_APT_PACKAGES
                ),
            ));
        }
        for p in &self.apt {
            validate_apt_package(p)?;
        }
        if self.dockerfile_lines.len() > limits::MAX_DOCKERFILE_LINES {
            return Err(ProtocolError::invalid(
                "dockerfile_lines",
                format!(
                    "{} lines, at most {}",
                    self.dockerfile_lines.len(),
                    limits::MAX_DOCKERFILE_LINES
                ),
            ));
        }
        for line in &self.dockerfile_lines {
            validate_dockerfile_line(line)?;
        }
        Ok(())
    }
}

/// A Debian package name: `[a-z0-9][a-z0-9+.-]+` (policy 5.6.1), at most 128 bytes.
pub fn validate_apt_package(spec: &str) -> Result<(), ProtocolError> {
    // `name` or `name=version` (a pin, as apt-get install takes it).
    let (name, version) = match spec.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    let b = name.as_bytes();
    let name_ok = (2..=128).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+.-".contains(c));
    // Debian versions: [epoch:]upstream[-revision], alphanumerics and . + ~ - :
    let version_ok = version.is_none_or(|v| {
        (1..=128).contains(&v.len())
            && v.starts_with(|c: char| c.is_ascii_digit())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~-:".contains(c))
    });
    if name_ok && version_ok {
        Ok(())
    } else {
        Err(ProtocolError::invalid(
            "apt package",
            format!(
                "{spec:?} is not a Debian package name ([a-z0-9][a-z0-9+.-]+), optionally pinned as name=version"
            ),
        ))
    }
}

/// One Dockerfile line: non-blank, no line breaks or NULs, at most the limit.
pub fn validate_dockerfile_line(line: &str) -> Result<(), ProtocolError> {
    if line.trim().is_empty() {
        return Err(ProtocolError::invalid(
            "dockerfile line",
            "must not be blank",
        ));
    }
    if line.len() > limits::MAX_DOCKERFILE_LINE {
        return Err(ProtocolError::invalid(
            "dockerfile line",
            format!(
                "{} bytes, at most {}",
                line.len(),
                limits::MAX_DOCKERFILE_LINE
            ),
        ));
    }
    if line.contains(['\n', '\r', '\0']) {
        return Err(ProtocolError::invalid(
            "dockerfile line",
            "must be one line (no line breaks or NUL); send several lines instead",
        ));
    }
    Ok(())
}

/// A host to allow out through the egress proxy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Egress {
    /// DNS name (or IPv4 literal) of the host.
    pub host: HostName,
    /// A single port; absent means the proxy's default (any HTTPS/HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A DNS host name: LDH labels of 1–63 bytes, 253 bytes in all, no wildcard, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostName(String);

impl HostName {
    /// Validates and lowercases `s`.
    pub fn new(s: impl Into<String>) -> Result<Self, ProtocolError> {
        let h = HostName(s.into().to_ascii_lowercase());
        h.validate()?;
        Ok(h)
    }

    /// The host as text (lowercase).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        let s = &self.0;
        let bad = |why: &str| ProtocolError::invalid("host", format!("{s:?} {why}"));
        if s.is_empty() || s.len() > limits::MAX_HOST {
            return Err(bad("must be 1 to 253 characters"));
        }
        for label in s.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(bad("has an empty or over-long label"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(bad("may only contain letters, digits, '-' and '.'"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("has a label starting or ending with '-'"));
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for HostName {
    type Error = ProtocolError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<HostName> for String {
    fn from(h: HostName) -> Self {
        h.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for HostName {
    type Err = ProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "packages.example.org",
            "Files.Example.org",
            "a",
            "10.0.0.1",
            "xn--bcher-kva.example",
        ] {
            assert!(HostName::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            HostName::new("Packages.Example.org").map(|h| h.0).ok(),
            Some("packages.example.org".into())
        );
        for bad in [
            "",
            ".",
            "a..b",
            "a.",
            ".a",
            "-a.com",
            "a-.com",
            "*.example.com",
            "a b",
            "a/b",
            "a:80",
            "[::1]",
            "ä.com",
            &"a".repeat(64),
            &"a.".repeat(127),
        ] {
            assert!(HostName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn apt_names() {
        for ok in [
            "ripgrep",
            "g++",
            "libssl3",
            "python3.11",
            "0ad",
            "jq=1.6-2.1",
            "curl=7.88.1-10+deb12u5",
            "tzdata=2024a-0+deb12u1",
            "x11-apps=1:7.7+9",
        ] {
            assert!(validate_apt_package(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "Ripgrep", "-x", "a b", "a;rm", "../x", "pkg=", "pkg=v1", "pkg=1 0",
            "pkg=1;rm",
        ] {
            assert!(validate_apt_package(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dockerfile_lines() {
        assert!(validate_dockerfile_line("RUN pip install ruff").is_ok());
        assert!(validate_dockerfile_line("RUN a\nUSER root").is_err());
        assert!(validate_dockerfile_line("  ").is_err());
    }

    #[test]
    fn capability_needs_something() {
        assert!(Capability::default().validate().is_err());
    }

    #[test]
    fn normalization_makes_equal_requests_equal() {
        let a = ProposalKind::Capability(Capability {
            apt: vec!["jq".into(), "curl".into(), "jq".into()],
            dockerfile_lines: vec![],
        });
        let b = ProposalKind::Capability(Capability {
            apt: vec!["curl".into(), "jq".into()],
            dockerfile_lines: vec![],
        });
        assert_eq!(a.normalized(), b.normalized());
        assert_eq!(b.summary(), "capability: apt install curl jq");
    }

    #[test]
    fn kind_json_shape() {
        let k = ProposalKind::Egress(Egress {
            host: HostName::new("packages.example.org").expect("valid"),
            port: Some(443),
        });
        let j = serde_json::to_string(&k).expect("serializes");
        assert_eq!(
            j,
            r#"{"type":"egress","host":"packages.example.org","port":443}"#
        );
        let k: ProposalKind =
            serde_json::from_str(r#"{"type":"capability","apt":["ripgrep"]}"#).expect("parses");
        assert_eq!(k.summary(), "capability: apt install ripgrep");
        assert!(serde_json::from_str::<ProposalKind>(r#"{"type":"root"}"#).is_err());
    }
}
