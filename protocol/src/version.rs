//! The format version and the one way to read and write a versioned value as JSON.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ProtocolError;

/// Version of the wire and queue-file formats written by this build.
pub const PROTOCOL_VERSION: u32 = 1;

/// A message or file that carries a `version` field and has rules beyond its JSON shape.
pub trait Versioned: Serialize + DeserializeOwned {
    /// What it is, for error messages ("proposal", "decision"…).
    const WHAT: &'static str;
    /// The `version` it carries.
    fn version(&self) -> u32;
    /// Checks the rules serde cannot express.
    fn validate(&self) -> Result<(), ProtocolError>;
}

/// Only the version, read before the rest so that a newer format is reported as such rather
/// than as a confusing shape error.
#[derive(serde::Deserialize)]
struct VersionProbe {
    version: u32,
}

/// Parses, version-checks and validates a value. Unknown fields are ignored (forward compat).
pub fn from_json<T: Versioned>(bytes: &[u8]) -> Result<T, ProtocolError> {
    let json = |source| ProtocolError::Json {
        what: T::WHAT,
        source,
    };
    let probe: VersionProbe = serde_json::from_slice(bytes).map_err(json)?;
    check_version(T::WHAT, probe.version)?;
    let value: T = serde_json::from_slice(bytes).map_err(json)?;
    value.validate()?;
    Ok(value)
}

/// Refuses version 0 and versions newer than this build's.
pub fn check_version(what: &'static str, found: u32) -> Result<(), ProtocolError> {
    if found == 0 {
        return Err(ProtocolError::ZeroVersion { what });
    }
    if found > PROTOCOL_VERSION {
        return Err(ProtocolError::TooNew {
            what,
            found,
            supported: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

/// Compact JSON (one line: the wire format is newline-delimited).
pub fn to_json<T: Versioned>(value: &T) -> Vec<u8> {
    // Our types have string keys and no fallible Serialize impls.
    serde_json::to_vec(value).expect("protocol types always serialize")
}

/// Pretty JSON with a trailing newline, for queue files people read and write by hand.
pub fn to_json_pretty<T: Versioned>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(value).expect("protocol types always serialize");
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Applied, Decision, Proposal, ProposalId};

    const PROPOSAL: &str = r#"{"version":1,"id":"p-1","bottle":"app","kind":{"type":"egress","host":"packages.example.org"},"reason":"pip needs it","created":1764270000}"#;

    #[test]
    fn round_trips_every_file_type() {
        let p: Proposal = from_json(PROPOSAL.as_bytes()).expect("valid proposal");
        assert_eq!(from_json::<Proposal>(&to_json(&p)).ok(), Some(p.clone()));
        assert_eq!(from_json::<Proposal>(&to_json_pretty(&p)).ok(), Some(p));

        let d = Decision::approve(ProposalId::new("p-1").expect("id"), "ok", "alice", 5);
        assert_eq!(from_json::<Decision>(&to_json_pretty(&d)).ok(), Some(d));
        let a = Applied::ok(ProposalId::new("p-1").expect("id"), "image app:3", 6);
        assert_eq!(from_json::<Applied>(&to_json_pretty(&a)).ok(), Some(a));
    }

    #[test]
    fn an_old_reader_ignores_a_newer_writers_extra_fields() {
        let newer = PROPOSAL.replace(
            r#""created":1764270000"#,
            r#""created":1764270000,"priority":"high","kind_v2":{"x":1}"#,
        );
        let p: Proposal = from_json(newer.as_bytes()).expect("extra fields ignored");
        assert_eq!(p.reason, "pip needs it");
    }

    #[test]
    fn a_new_reader_accepts_an_old_writers_file_without_optional_fields() {
        // Version-1 files written before `evidence` existed simply lack it.
        let p: Proposal = from_json(PROPOSAL.as_bytes()).expect("optional fields default");
        assert!(p.evidence.is_empty());
    }

    #[test]
    fn a_newer_version_is_refused_by_name_even_if_the_shape_changed() {
        let err =
            from_json::<Proposal>(br#"{"version":2,"whole":"new shape"}"#).expect_err("too new");
        assert!(
            matches!(err, ProtocolError::TooNew { found: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("newer than 1"));
        assert!(
            from_json::<Proposal>(
                &PROPOSAL
                    .replace("\"version\":1", "\"version\":0")
                    .into_bytes()
            )
            .is_err()
        );
        assert!(
            from_json::<Proposal>(&PROPOSAL.replace("\"version\":1,", "").into_bytes()).is_err()
        );
    }

    #[test]
    fn validation_runs_after_parsing() {
        let bad = PROPOSAL.replace("packages.example.org", "evil/../host");
        assert!(matches!(
            from_json::<Proposal>(bad.as_bytes()),
            Err(ProtocolError::Json { .. } | ProtocolError::Invalid { .. })
        ));
        let blank = PROPOSAL.replace("pip needs it", "  ");
        assert!(matches!(
            from_json::<Proposal>(blank.as_bytes()),
            Err(ProtocolError::Invalid {
                field: "reason",
                ..
            })
        ));
    }
}
