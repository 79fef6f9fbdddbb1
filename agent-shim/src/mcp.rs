//! `claude-bottle-shim mcp`: an MCP server over stdio so the agent can ask from its session.

use std::time::Duration;

use claude_bottle_protocol::wire::{ProposalStatus, WaitUntil};
use claude_bottle_protocol::{Capability, Egress, HostName, ProposalId, ProposalKind};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};

use crate::ops::{OpError, Target};

/// Longest wait a tool call may ask for (the session is blocked meanwhile).
const MAX_TOOL_WAIT_SECS: u64 = 600;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct CapabilityArgs {
    /// Debian packages to install with apt-get (e.g. ["ripgrep", "jq"]).
    #[serde(default)]
    pub apt: Vec<String>,
    /// Dockerfile lines to append to the bottle's image, one instruction each.
    #[serde(default)]
    pub dockerfile_lines: Vec<String>,
    #[serde(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EgressArgs {
    /// Host name to allow through the egress proxy (e.g. "packages.example.org").
    pub host: String,
    /// Leave out: ports are not enforced (an allowed host is reachable on every port the egress
    /// proxy serves), so a proposal with a port is refused.
    pub port: Option<u16>,
    #[serde(flatten)]
    pub request: RequestArgs,
}

/// What every request tool takes besides the thing asked for. Flattened: the tools' schemas list
/// these beside their own arguments, as the agent sees them.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct RequestArgs {
    /// Why the agent needs it: the task and what failed.
    pub reason: String,
    /// Supporting output, such as the failing command and its error, or the blocked request.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// Seconds to wait for the operator's decision (0: return at once with the id).
    #[serde(default)]
    pub wait_seconds: u64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct StatusArgs {
    /// A proposal id; leave out to list the newest proposals.
    pub id: Option<String>,
    /// Seconds to wait for a decision on `id` (0: answer at once).
    #[serde(default)]
    pub wait_seconds: u64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct NoArgs {}

/// The MCP tool server.
#[derive(Debug, Clone)]
pub struct Shim {
    target: Target,
    tool_router: ToolRouter<Self>,
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

fn failure(e: impl std::fmt::Display) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(e.to_string())])
}

fn describe(s: &ProposalStatus) -> String {
    let mut out = format!(
        "{}: {} ({})",
        s.proposal.id,
        s.state,
        s.proposal.kind.summary()
    );
    if let Some(d) = &s.decision
        && !d.reason.is_empty()
    {
        out.push_str(&format!("\noperator: {}", d.reason));
    }
    if let Some(edit) = s.decision.as_ref().and_then(|d| d.edit.as_ref()) {
        out.push_str(&format!("\napproved instead: {}", edit.summary()));
    }
    if let Some(a) = &s.applied {
        out.push_str(&format!("\napplied ({:?}): {}", a.outcome, a.detail));
    }
    out
}

#[tool_router]
impl Shim {
    /// A server sending to `target`.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            tool_router: Self::tool_router(),
        }
    }

    /// Files `kind` and answers the tool call: the id, or the outcome when asked to wait.
    async fn file(&self, kind: ProposalKind, r: RequestArgs) -> CallToolResult {
        match self.file_and_wait(kind, r).await {
            Ok(s) => text(s),
            Err(e) => failure(e),
        }
    }

    async fn file_and_wait(&self, kind: ProposalKind, r: RequestArgs) -> Result<String, OpError> {
        let wait_seconds = r.wait_seconds;
        let filed = self.target.submit(kind, r.reason, r.evidence).await?;
        let mut out = format!(
            "proposal {} {}",
            filed.id,
            if filed.duplicate {
                "was already pending"
            } else {
                "filed"
            }
        );
        if wait_seconds == 0 {
            out.push_str("; the operator will decide. Check with proposal_status.");
            return Ok(out);
        }
        let timeout = Duration::from_secs(wait_seconds.min(MAX_TOOL_WAIT_SECS));
        let w = self
            .target
            .wait(&filed.id, timeout, WaitUntil::Final)
            .await?;
        out = describe(&w.status);
        if w.timed_out {
            out.push_str("\n(still waiting for the operator; check again with proposal_status)");
        }
        Ok(out)
    }

    #[tool(
        description = "Ask the operator to install software into this bottle's image: Debian packages (apt) and/or Dockerfile lines. Returns a proposal id; approval rebuilds the image and restarts the session."
    )]
    async fn request_capability(
        &self,
        Parameters(a): Parameters<CapabilityArgs>,
    ) -> CallToolResult {
        let kind = ProposalKind::Capability(Capability {
            apt: a.apt,
            dockerfile_lines: a.dockerfile_lines,
        });
        if let Err(e) = kind.validate() {
            return failure(e);
        }
        self.file(kind, a.request).await
    }

    #[tool(
        description = "Ask the operator to allow network access to a host (through the egress proxy). Returns a proposal id."
    )]
    async fn request_egress(&self, Parameters(a): Parameters<EgressArgs>) -> CallToolResult {
        let host = match HostName::new(a.host) {
            Ok(h) => h,
            Err(e) => return failure(e),
        };
        let kind = ProposalKind::Egress(Egress { host, port: a.port });
        self.file(kind, a.request).await
    }

    #[tool(
        description = "State of a proposal (pending, approved, rejected, applied, failed) with the operator's reason, or a list of recent proposals when no id is given."
    )]
    async fn proposal_status(&self, Parameters(a): Parameters<StatusArgs>) -> CallToolResult {
        let id = match a.id.map(ProposalId::new).transpose() {
            Ok(id) => id,
            Err(e) => return failure(e),
        };
        let result = match (&id, a.wait_seconds) {
            (Some(id), secs) if secs > 0 => {
                let timeout = Duration::from_secs(secs.min(MAX_TOOL_WAIT_SECS));
                self.target
                    .wait(id, timeout, WaitUntil::Decided)
                    .await
                    .map(|w| vec![w.status])
            }
            _ => self.target.status(id).await,
        };
        match result {
            Ok(list) if list.is_empty() => text("no proposals yet"),
            Ok(list) => text(list.iter().map(describe).collect::<Vec<_>>().join("\n")),
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "The bottle's current configuration: allowed egress hosts, proxy routes (without secrets) and the effective Dockerfile."
    )]
    async fn current_config(&self, Parameters(_): Parameters<NoArgs>) -> CallToolResult {
        match self.target.current_config().await {
            Ok(files) if files.is_empty() => text("no current-config files are staged"),
            Ok(files) => text(
                files
                    .iter()
                    .map(|f| format!("==> {} <==\n{}", f.name, f.content))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            Err(e) => failure(e),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Shim {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "You run inside a claude-bottle: installs and network access are limited. When a \
             tool or host is missing, ask for it with request_capability or request_egress \
             (give a concrete reason); the operator approves or rejects.",
        )
    }
}

/// Serves MCP on stdin/stdout until the client closes it.
pub async fn serve(target: Target) -> Result<(), String> {
    let running = Shim::new(target)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("failed to start the MCP server: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| format!("the MCP server stopped: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_tools_list_their_common_arguments_at_the_top_level() {
        for schema in [
            schemars::schema_for!(CapabilityArgs),
            schemars::schema_for!(EgressArgs),
        ] {
            let json = serde_json::to_value(&schema).expect("schema");
            let properties = json["properties"].as_object().expect("properties");
            for name in ["reason", "evidence", "wait_seconds"] {
                assert!(properties.contains_key(name), "{name} in {json}");
            }
            assert!(json["required"].to_string().contains("reason"), "{json}");
        }
        let a: EgressArgs =
            serde_json::from_str(r#"{"host":"h.example","reason":"pip"}"#).expect("parse");
        assert_eq!(
            (a.request.reason.as_str(), a.request.wait_seconds),
            ("pip", 0)
        );
    }
}
