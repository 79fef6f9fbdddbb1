//! The one error type of the protocol crate: parse, version and validation failures.

/// Why bytes could not become a protocol value.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("failed to parse {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Written by a newer build than this one understands.
    #[error(
        "failed to read {what}: format version {found} is newer than {supported}, the newest this build reads\nhint: upgrade claude-bottle where this message is read"
    )]
    TooNew {
        what: &'static str,
        found: u32,
        supported: u32,
    },
    /// Version 0 never existed.
    #[error("failed to read {what}: format version 0 is not valid\nhint: set \"version\": 1")]
    ZeroVersion { what: &'static str },
    /// Well-formed JSON whose content breaks a rule (bad id, bad host, empty reason…).
    #[error("invalid {field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    /// Content that would be read or applied as something other than it looks (a control
    /// character, a heredoc, a package name apt reads as a pattern, a port nothing enforces).
    #[error("invalid {field}: {problem}\nhint: {hint}")]
    Refused {
        field: &'static str,
        problem: String,
        hint: &'static str,
    },
}

impl ProtocolError {
    /// Shorthand for a validation failure.
    pub fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        ProtocolError::Invalid {
            field,
            problem: problem.into(),
        }
    }

    /// A validation failure with a hint on how to ask instead.
    pub fn refused(field: &'static str, problem: impl Into<String>, hint: &'static str) -> Self {
        ProtocolError::Refused {
            field,
            problem: problem.into(),
            hint,
        }
    }
}
