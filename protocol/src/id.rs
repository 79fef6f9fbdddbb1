//! Validated identifiers that end up in file names: proposal ids and bottle names.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ProtocolError;

/// Longest proposal id or bottle name accepted.
pub const MAX_ID_LEN: usize = 64;

fn check_id(field: &'static str, s: &str, extra: &[u8]) -> Result<(), ProtocolError> {
    if s.is_empty() || s.len() > MAX_ID_LEN {
        return Err(ProtocolError::invalid(
            field,
            format!("must be 1 to {MAX_ID_LEN} characters, got {}", s.len()),
        ));
    }
    if let Some(c) = s
        .bytes()
        .find(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || extra.contains(b)))
    {
        return Err(ProtocolError::invalid(
            field,
            format!(
                "{s:?} contains {:?}; allowed are A-Z a-z 0-9 and '-'",
                char::from(c)
            ),
        ));
    }
    Ok(())
}

/// A proposal id: `[A-Za-z0-9-]{1,64}`, so it is always a plain file name (no `/`, no `..`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProposalId(String);

impl ProposalId {
    /// Validates `s` as a proposal id.
    pub fn new(s: impl Into<String>) -> Result<Self, ProtocolError> {
        let s = s.into();
        check_id("proposal id", &s, b"")?;
        Ok(Self(s))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The queue file name for this id: `<id>.json`.
    pub fn file_name(&self) -> String {
        format!("{}{}", self.0, crate::queue::FILE_SUFFIX)
    }
}

impl TryFrom<String> for ProposalId {
    type Error = ProtocolError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<ProposalId> for String {
    fn from(id: ProposalId) -> Self {
        id.0
    }
}

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ProposalId {
    type Err = ProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A bottle's name as recorded in proposals: `[A-Za-z0-9._-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BottleName(String);

impl BottleName {
    /// Validates `s` as a bottle name.
    pub fn new(s: impl Into<String>) -> Result<Self, ProtocolError> {
        let s = s.into();
        check_id("bottle name", &s, b"._")?;
        Ok(Self(s))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BottleName {
    type Error = ProtocolError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<BottleName> for String {
    fn from(b: BottleName) -> Self {
        b.0
    }
}

impl fmt::Display for BottleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet() {
        for ok in ["a", "1764270000-3f2a", "A-Z-0", &"x".repeat(64)] {
            assert!(ProposalId::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn ids_refuse_path_tricks_and_oddities() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "a.json",
            "a b",
            "ä",
            "a\0",
            "a\n",
            ".tmp-x",
            &"x".repeat(65),
        ] {
            assert!(ProposalId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_checked_when_deserialized() {
        assert!(serde_json::from_str::<ProposalId>("\"../../etc/passwd\"").is_err());
        let id: ProposalId = serde_json::from_str("\"abc-1\"").expect("valid id");
        assert_eq!(id.file_name(), "abc-1.json");
    }

    #[test]
    fn bottle_names_allow_dots_and_underscores_but_not_slashes() {
        assert!(BottleName::new("my_app.dev").is_ok());
        assert!(BottleName::new("a/b").is_err());
        assert!(BottleName::new("").is_err());
    }
}
