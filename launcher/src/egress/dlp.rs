//! pipelock's default DLP patterns (pinned version): what the egress-proxy refuses in the agent's requests.
//!
//! pipelock passes every credentialed host through without decrypting it (its DLP would refuse the
//! credential the egress-proxy injects: it scans request headers whatever the destination, and
//! `exempt_domains` applies to URL scanning only). So the egress-proxy scans what the agent sent (URL,
//! headers, body) with pipelock's own default patterns *before* it injects anything, and refuses a
//! match; pipelock still scans every host it intercepts. The table is
//! `docker/egress-proxy/dlp-patterns.json`, transcribed from `Defaults().DLP.Patterns` in
//! `internal/config/defaults.go` of the pinned pipelock ([`super::PIPELOCK_VERSION`]); the launcher
//! writes it into routes.json, and the pipelock stand-in loads the same file.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The embedded table (also copied into the egress-proxy's and the stand-in's images).
pub const PATTERNS_JSON: &str = include_str!("../../../docker/egress-proxy/dlp-patterns.json");

/// One default DLP pattern of the pinned pipelock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlpPattern {
    pub name: String,
    /// Go RE2 syntax; pipelock prefixes `(?i)` when compiling (the addon compiles with IGNORECASE).
    pub regex: String,
    pub severity: String,
    /// A checksum a match must also pass: `luhn`, `mod97` or `wif`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<String>,
}

/// The rules the egress-proxy applies: routes.json's `dlp` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlpRules {
    /// The pipelock release the table was read from.
    pub pipelock_version: String,
    /// pipelock's `request_body_scanning.max_body_bytes` default: a larger body is refused.
    pub max_body_bytes: u64,
    pub patterns: Vec<DlpPattern>,
}

/// The pinned table, parsed once.
pub fn default_rules() -> &'static DlpRules {
    static RULES: OnceLock<DlpRules> = OnceLock::new();
    RULES.get_or_init(|| {
        serde_json::from_str(PATTERNS_JSON)
            .expect("the embedded DLP table is valid (a unit test parses it)")
    })
}

/// The default patterns `token` trips, compiled as pipelock does (case-insensitive). A pattern the
/// `regex` crate cannot compile is skipped (a unit test keeps the table compilable).
pub fn patterns_tripped_by(token: &Secret) -> Vec<&'static DlpPattern> {
    default_rules()
        .patterns
        .iter()
        .filter(|p| {
            Regex::new(&format!("(?i){}", p.regex)).is_ok_and(|re| re.is_match(token.expose()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_table_parses_and_compiles() {
        let rules = default_rules();
        assert_eq!(rules.pipelock_version, super::super::PIPELOCK_VERSION);
        assert_eq!(rules.max_body_bytes, 5 * 1024 * 1024);
        for p in &rules.patterns {
            Regex::new(&format!("(?i){}", p.regex)).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            if let Some(v) = &p.validator {
                assert!(["luhn", "mod97", "wif"].contains(&v.as_str()), "{v}");
            }
        }
        assert_eq!(rules.patterns.len(), 48);
    }

    #[test]
    fn tokens_trip_their_own_patterns_only() {
        let names = |s: &str| -> Vec<String> {
            patterns_tripped_by(&Secret::new(s))
                .iter()
                .map(|p| p.name.clone())
                .collect()
        };
        assert_eq!(names(&format!("ghp_{}", "a1".repeat(18))), ["GitHub Token"]);
        assert_eq!(
            names("sk-ant-api03-abcdefghijklmnop"),
            ["Anthropic API Key"]
        );
        assert!(names("plain-password").is_empty());
    }
}
