//! pipelock's default DLP patterns (pinned version) and which of them an injected token would trip.
//!
//! pipelock scans request headers (`Authorization`, `X-Api-Key`, …) with its DLP patterns and blocks a
//! match. The egress-proxy puts real tokens into exactly those headers, so for each host that receives
//! an injected credential the generated config exempts that host from the patterns the token matches,
//! and from no other: the agent still cannot send, say, an AWS key to api.github.com.
//!
//! Overriding a default pattern means restating it by name (pipelock merges user patterns over its
//! defaults by `name`), so the table below is the pinned version's `Defaults().DLP.Patterns`, read from
//! `internal/config/config.go` at tag v2.1.2 (commit 38801766549e) of luckyPipewrench/pipelock. Bump it
//! together with `config::DEFAULT_PIPELOCK_IMAGE`.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use crate::secret::Secret;

/// One default DLP pattern of the pinned pipelock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DlpPattern {
    pub name: &'static str,
    /// Go RE2 syntax; pipelock prefixes `(?i)` when compiling.
    pub regex: &'static str,
    pub severity: &'static str,
    pub validator: Option<&'static str>,
}

/// `Defaults().DLP.Patterns` of pipelock v2.1.2, in its order.
pub const DEFAULT_PATTERNS: &[DlpPattern] = &[
    DlpPattern {
        name: "Anthropic API Key",
        regex: r#"sk-ant-[a-zA-Z0-9\-_]{10,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "OpenAI API Key",
        regex: r#"sk-proj-[a-zA-Z0-9\-_]{10,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "OpenAI Service Key",
        regex: r#"sk-svcacct-[a-zA-Z0-9\-]{10,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Fireworks API Key",
        regex: r#"fw_[a-zA-Z0-9]{24,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Google API Key",
        regex: r#"AIza[0-9A-Za-z\-_]{35}"#,
        severity: "high",
        validator: None,
    },
    DlpPattern {
        name: "Google OAuth Client Secret",
        regex: r#"GOCSPX-[A-Za-z0-9_\-]{28,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Stripe Key",
        regex: r#"[sr]k[-_](live|test)[-_][a-zA-Z0-9]{20,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Stripe Webhook Secret",
        regex: r#"whsec_[a-zA-Z0-9_\-]{20,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "GitHub Token",
        regex: r#"gh[pousr]_[A-Za-z0-9_]{36,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "GitHub Fine-Grained PAT",
        regex: r#"github_pat_[a-zA-Z0-9_]{36,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "GitLab PAT",
        regex: r#"glpat-[a-zA-Z0-9\-_]{20,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "AWS Access ID",
        regex: r#"(AKIA|A3T|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ASIA)[A-Z0-9]{16,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "AWS Secret Key",
        regex: r#"(?:aws_secret_access_key|AWS_SECRET_ACCESS_KEY|secret.?access.?key|SecretAccessKey)\s*["'=:\s]{1,5}\s*[A-Za-z0-9/+=]{40}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Google OAuth Token",
        regex: r#"ya29\.[a-zA-Z0-9_-]{20,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Slack Token",
        regex: r#"xox[bpras]-[0-9a-zA-Z-]{15,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Slack App Token",
        regex: r#"xapp-[0-9]+-[A-Za-z0-9_]+-[0-9]+-[a-f0-9]+"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Discord Bot Token",
        regex: r#"[MN][A-Za-z0-9]{23,}\.[A-Za-z0-9\-_]{6}\.[A-Za-z0-9\-_]{27,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Twilio API Key",
        regex: r#"SK[a-f0-9]{32}"#,
        severity: "high",
        validator: None,
    },
    DlpPattern {
        name: "SendGrid API Key",
        regex: r#"SG\.[a-zA-Z0-9_-]{22}\.[a-zA-Z0-9_-]{43}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Mailgun API Key",
        regex: r#"key-[a-zA-Z0-9]{32}"#,
        severity: "high",
        validator: None,
    },
    DlpPattern {
        name: "New Relic API Key",
        regex: r#"NRAK-[A-Z0-9]{27,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Hugging Face Token",
        regex: r#"hf_[A-Za-z0-9]{20,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Databricks Token",
        regex: r#"dapi[a-z0-9]{30,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Replicate API Token",
        regex: r#"r8_[A-Za-z0-9]{20,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Together AI Key",
        regex: r#"tok_[a-z0-9]{40,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Pinecone API Key",
        regex: r#"pcsk_[a-zA-Z0-9]{36,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Groq API Key",
        regex: r#"gsk_[a-zA-Z0-9]{48,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "xAI API Key",
        regex: r#"xai-[a-zA-Z0-9\-_]{80,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "DigitalOcean Token",
        regex: r#"dop_v1_[a-f0-9]{64}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "HashiCorp Vault Token",
        regex: r#"hvs\.[a-zA-Z0-9]{23,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Vercel Token",
        regex: r#"(?:vercel|vc[piark])_[a-zA-Z0-9]{24,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Supabase Service Key",
        regex: r#"sb_secret_[a-zA-Z0-9_-]{20,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "npm Token",
        regex: r#"npm_[A-Za-z0-9]{36,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "PyPI Token",
        regex: r#"pypi-[A-Za-z0-9_-]{16,}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Linear API Key",
        regex: r#"lin_api_[a-zA-Z0-9]{40,}"#,
        severity: "high",
        validator: None,
    },
    DlpPattern {
        name: "Notion API Key",
        regex: r#"ntn_[a-zA-Z0-9]{40,}"#,
        severity: "high",
        validator: None,
    },
    DlpPattern {
        name: "Sentry Auth Token",
        regex: r#"sntrys_[a-zA-Z0-9]{40,}"#,
        severity: "high",
        validator: None,
    },
    DlpPattern {
        name: "Private Key Header",
        regex: r#"-----BEGIN\s+(RSA\s+|EC\s+|DSA\s+|OPENSSH\s+)?PRIVATE\s+KEY-----"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "JWT Token",
        regex: r#"(ey[a-zA-Z0-9_\-=]{10,}\.){2}[a-zA-Z0-9_\-=]{10,}"#,
        severity: "high",
        validator: None,
    },
    DlpPattern {
        name: "Bitcoin WIF Private Key",
        regex: r#"(?:5[1-9A-HJ-NP-Za-km-z]{50}|[KL][1-9A-HJ-NP-Za-km-z]{51})"#,
        severity: "critical",
        validator: Some("wif"),
    },
    DlpPattern {
        name: "Extended Private Key",
        regex: r#"[xyzt]prv[1-9A-HJ-NP-Za-km-z]{107,108}"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Ethereum Private Key",
        regex: r#"0x[0-9a-f]{64}\b"#,
        severity: "critical",
        validator: None,
    },
    DlpPattern {
        name: "Social Security Number",
        regex: r#"\b\d{3}-\d{2}-\d{4}\b"#,
        severity: "low",
        validator: None,
    },
    DlpPattern {
        name: "Google OAuth Client ID",
        regex: r#"[0-9]{6,}-[0-9A-Za-z_]{32}\.apps\.googleusercontent\.com"#,
        severity: "medium",
        validator: None,
    },
    DlpPattern {
        name: "Credential in URL",
        regex: r#"\b(?:password|passwd|secret|token|apikey|api_key|api-key)\s*=\s*[^\s&]{4,}"#,
        severity: "high",
        validator: None,
    },
    DlpPattern {
        name: "Environment Variable Secret",
        regex: r#"(?-i:[A-Z][A-Z0-9]*[_-](?:SECRET(?:[_-]ACCESS)?[_-]?KEY|SECRET|PASSWORD|PASSWD|TOKEN|API[_-]?KEY))\b\s*=\s*\S{8,}"#,
        severity: "high",
        validator: None,
    },
    DlpPattern {
        name: "Credit Card Number",
        regex: r#"\b\d{4}(?:[- ]?\d){11,15}\b"#,
        severity: "medium",
        validator: Some("luhn"),
    },
    DlpPattern {
        name: "IBAN",
        regex: r#"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b"#,
        severity: "medium",
        validator: Some("mod97"),
    },
];

/// Pattern name → hosts exempted from it (both sorted): the `exempt_domains` to generate.
pub type DlpExemptions = BTreeMap<&'static str, BTreeSet<String>>;

/// The default patterns `token` trips, compiled as pipelock does (case-insensitive). A pattern the
/// `regex` crate cannot compile is skipped (a unit test keeps the table compilable).
pub fn patterns_tripped_by(token: &Secret) -> Vec<&'static DlpPattern> {
    DEFAULT_PATTERNS
        .iter()
        .filter(|p| {
            Regex::new(&format!("(?i){}", p.regex)).is_ok_and(|re| re.is_match(token.expose()))
        })
        .collect()
}

/// Exemptions for `(host, token)` pairs: each host is exempted from exactly the patterns its token
/// trips.
pub fn exemptions<'a>(injected: impl IntoIterator<Item = (&'a str, &'a Secret)>) -> DlpExemptions {
    let mut out = DlpExemptions::new();
    for (host, token) in injected {
        for pattern in patterns_tripped_by(token) {
            out.entry(pattern.name).or_default().insert(host.to_owned());
        }
    }
    out
}

/// The default pattern called `name`.
pub fn pattern(name: &str) -> Option<&'static DlpPattern> {
    DEFAULT_PATTERNS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pinned_pattern_compiles() {
        for p in DEFAULT_PATTERNS {
            Regex::new(&format!("(?i){}", p.regex)).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
        assert_eq!(DEFAULT_PATTERNS.len(), 48);
    }

    #[test]
    fn tokens_trip_their_own_patterns_only() {
        let gh = Secret::new(format!("ghp_{}", "a1".repeat(18)));
        let names: Vec<_> = patterns_tripped_by(&gh).iter().map(|p| p.name).collect();
        assert_eq!(names, ["GitHub Token"]);
        let ant = Secret::new("sk-ant-api03-abcdefghijklmnop");
        let names: Vec<_> = patterns_tripped_by(&ant).iter().map(|p| p.name).collect();
        assert_eq!(names, ["Anthropic API Key"]);
        assert!(patterns_tripped_by(&Secret::new("plain-password")).is_empty());
    }

    #[test]
    fn exemptions_group_hosts_by_pattern() {
        let gh = Secret::new(format!("ghp_{}", "b".repeat(36)));
        let other = Secret::new("nothing-special");
        let ex = exemptions([
            ("api.github.com", &gh),
            ("uploads.github.com", &gh),
            ("example.com", &other),
        ]);
        assert_eq!(ex.len(), 1);
        let hosts: Vec<_> = ex["GitHub Token"].iter().map(String::as_str).collect();
        assert_eq!(hosts, ["api.github.com", "uploads.github.com"]);
    }
}
