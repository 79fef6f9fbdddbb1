//! The shim↔supervise (and CLI↔shim-daemon) wire: one JSON object per line, each way.
//!
//! A client writes one [`RequestMsg`] line and reads one [`ResponseMsg`] line; a connection may
//! carry several in sequence. A line longer than [`MAX_LINE_BYTES`] is refused.

use serde::{Deserialize, Serialize};

use crate::{
    Applied, Decision, PROTOCOL_VERSION, Proposal, ProposalId, ProposalKind, ProposalState,
    ProtocolError, Versioned,
};

/// Longest request or response line, newline excluded.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Longest response line a client accepts (current-config answers can exceed a request's cap).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Longest long-poll a server grants; longer waits are cut to this and the client asks again.
pub const MAX_WAIT_MS: u64 = 10 * 60 * 1000;

/// A request line: `{"version":1,"request":{"op":"…",…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMsg {
    pub version: u32,
    pub request: Request,
}

impl RequestMsg {
    /// Wraps a request at the current version.
    pub fn new(request: Request) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            request,
        }
    }
}

/// What a client can ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// File a proposal; answered with [`Response::Submitted`].
    Submit {
        kind: ProposalKind,
        reason: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        evidence: Vec<String>,
    },
    /// One proposal's status, or all known ones when `id` is absent.
    Status {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<ProposalId>,
    },
    /// Block until the proposal reaches `until` or `timeout_ms` passes.
    Wait {
        id: ProposalId,
        timeout_ms: u64,
        #[serde(default)]
        until: WaitUntil,
    },
    /// The read-only current-config files.
    CurrentConfig,
}

/// How far a `wait` waits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitUntil {
    /// Any decision (approve or reject).
    Decided,
    /// A final state: rejected, applied or failed.
    #[default]
    Final,
}

impl Versioned for RequestMsg {
    const WHAT: &'static str = "request";
    fn version(&self) -> u32 {
        self.version
    }
    fn validate(&self) -> Result<(), ProtocolError> {
        match &self.request {
            Request::Submit {
                kind,
                reason,
                evidence,
            } => {
                kind.validate()?;
                crate::proposal::validate_reason(reason)?;
                crate::proposal::validate_evidence(evidence)
            }
            Request::Status { .. } | Request::Wait { .. } | Request::CurrentConfig => Ok(()),
        }
    }
}

/// A response line: `{"version":1,"response":{"type":"…",…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseMsg {
    pub version: u32,
    pub response: Response,
}

impl ResponseMsg {
    /// Wraps a response at the current version.
    pub fn new(response: Response) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            response,
        }
    }

    /// An error response.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(Response::Error {
            code,
            message: message.into(),
        })
    }
}

impl Versioned for ResponseMsg {
    const WHAT: &'static str = "response";
    fn version(&self) -> u32 {
        self.version
    }
    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }
}

/// What a server answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// The proposal is queued; `duplicate` when an identical pending one already was.
    Submitted { id: ProposalId, duplicate: bool },
    /// Status of one or all proposals, oldest first.
    Status { proposals: Vec<ProposalStatus> },
    /// The status when the wait ended; `timed_out` when it ended without reaching `until`.
    Waited {
        status: Box<ProposalStatus>,
        timed_out: bool,
    },
    /// The current-config files present, in [`crate::queue::current_config::FILES`] order.
    CurrentConfig { files: Vec<ConfigFile> },
    /// The request failed; nothing was changed.
    Error { code: ErrorCode, message: String },
}

/// A proposal with whatever answers it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalStatus {
    pub state: ProposalState,
    pub proposal: Proposal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
}

impl ProposalStatus {
    /// Builds the status, deriving `state` from the records.
    pub fn new(proposal: Proposal, decision: Option<Decision>, applied: Option<Applied>) -> Self {
        Self {
            state: ProposalState::of(decision.as_ref(), applied.as_ref()),
            proposal,
            decision,
            applied,
        }
    }

    /// Whether this status satisfies a wait.
    pub fn reached(&self, until: WaitUntil) -> bool {
        match until {
            WaitUntil::Decided => self.state.is_decided(),
            WaitUntil::Final => self.state.is_final(),
        }
    }
}

/// One current-config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFile {
    pub name: String,
    pub content: String,
}

/// Why a request failed, for programs; the message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, wrong shape, failed validation.
    BadRequest,
    /// Longer than [`MAX_LINE_BYTES`].
    TooLarge,
    /// A version this server does not read.
    UnsupportedVersion,
    /// No proposal with that id.
    NotFound,
    /// Too many pending proposals; wait for decisions.
    QueueFull,
    /// Too many submissions too fast; retry later.
    RateLimited,
    /// The server could not do its part (disk, permissions).
    Internal,
    /// Supervise cannot be reached (reported by the shim daemon).
    Unavailable,
    /// A code this build does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code for a request that failed to parse.
    pub fn for_parse_error(e: &ProtocolError) -> Self {
        match e {
            ProtocolError::TooNew { .. } | ProtocolError::ZeroVersion { .. } => {
                ErrorCode::UnsupportedVersion
            }
            ProtocolError::Json { .. }
            | ProtocolError::Invalid { .. }
            | ProtocolError::Refused { .. } => ErrorCode::BadRequest,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::QueueFull | ErrorCode::RateLimited | ErrorCode::Unavailable
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{from_json, to_json};

    #[test]
    fn request_lines_round_trip_and_stay_on_one_line() {
        let reqs = [
            Request::Submit {
                kind: serde_json::from_str(r#"{"type":"capability","apt":["jq"]}"#).expect("kind"),
                reason: "need\njq".into(),
                evidence: vec!["jq: command not found".into()],
            },
            Request::Status { id: None },
            Request::Wait {
                id: ProposalId::new("x").expect("id"),
                timeout_ms: 5,
                until: WaitUntil::Decided,
            },
            Request::CurrentConfig,
        ];
        for r in reqs {
            let line = to_json(&RequestMsg::new(r.clone()));
            assert!(!line.contains(&b'\n'));
            assert_eq!(from_json::<RequestMsg>(&line).expect("parses").request, r);
        }
    }

    #[test]
    fn documented_request_shapes_parse() {
        let r: RequestMsg = from_json(br#"{"version":1,"request":{"op":"current_config"}}"#)
            .expect("current_config");
        assert_eq!(r.request, Request::CurrentConfig);
        let r: RequestMsg =
            from_json(br#"{"version":1,"request":{"op":"wait","id":"a","timeout_ms":1}}"#)
                .expect("wait");
        assert!(matches!(
            r.request,
            Request::Wait {
                until: WaitUntil::Final,
                ..
            }
        ));
    }

    #[test]
    fn hostile_requests_are_errors() {
        for bad in [
            &b"not json"[..],
            br#"{"version":1,"request":{"op":"approve","id":"a"}}"#,
            br#"{"version":1,"request":{"op":"wait","id":"../a","timeout_ms":1}}"#,
            br#"{"version":1,"request":{"op":"submit","kind":{"type":"egress","host":"a b"},"reason":"x"}}"#,
            br#"{"version":1,"request":{"op":"submit","kind":{"type":"capability"},"reason":"x"}}"#,
            br#"{"version":1,"request":{"op":"submit","kind":{"type":"capability","apt":["jq"]},"reason":""}}"#,
            br#"{"version":9,"request":{"op":"status"}}"#,
            br#"[1,2,3]"#,
        ] {
            assert!(from_json::<RequestMsg>(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn an_old_client_tolerates_unknown_error_codes() {
        let r: ResponseMsg = from_json(
            br#"{"version":1,"response":{"type":"error","code":"quota_exceeded","message":"m"}}"#,
        )
        .expect("unknown code tolerated");
        assert!(matches!(
            r.response,
            Response::Error {
                code: ErrorCode::Unknown,
                ..
            }
        ));
    }
}
