//! The backend-neutral launch spec: the agent and its sidecars as a backend must create them.
//!
//! Pure: built from a [`BottlePlan`] and the prepared images; a test can add sidecars of its own.

use std::path::PathBuf;
use std::time::Duration;

use super::Prepared;
use crate::manifest::Runtime;
use crate::plan::BottlePlan;
use crate::secret::Secret;

/// The agent's home inside the image (the image contract: user `agent`, uid 1000).
pub const AGENT_HOME: &str = "/home/agent";
/// The user the agent runs as when its image's default user is root.
pub const AGENT_FALLBACK_USER: &str = "1000:1000";

/// Everything one bottle launch creates.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub slug: String,
    /// Labels every object carries (bottle, version, launcher pid); roles are added per object.
    pub labels: Vec<(String, String)>,
    /// Per-bottle named volumes (sockets shared between sidecars and the agent).
    pub volumes: Vec<String>,
    pub sidecars: Vec<SidecarSpec>,
    pub agent: AgentSpec,
}

/// The agent container.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub image: String,
    pub user: String,
    /// Replaces the image's CMD (the launcher's entrypoint stays in front of it).
    pub command: Vec<String>,
    pub env: Vec<(String, EnvValue)>,
    pub mounts: Vec<Mount>,
    pub limits: crate::plan::AgentLimits,
    pub runtime: Runtime,
    /// Files put into the container before it starts: (absolute path, content).
    pub files: Vec<(String, String)>,
    /// Attach a TTY (interactive operator) or stream output only.
    pub tty: bool,
}

/// An environment value; secrets pass straight to the engine API and are never logged.
#[derive(Debug, Clone)]
pub enum EnvValue {
    Plain(String),
    Secret(Secret),
}

impl EnvValue {
    pub fn expose(&self) -> &str {
        match self {
            EnvValue::Plain(v) => v,
            EnvValue::Secret(s) => s.expose(),
        }
    }
}

/// A mount into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host path.
    Bind(PathBuf),
    /// A per-bottle named volume (one of [`LaunchSpec::volumes`]).
    Volume(String),
}

/// Which of the bottle's networks a sidecar joins. The agent joins none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkAttachment {
    /// `<slug>-internal`: no route out; the sidecars talk to each other here.
    Internal,
    /// `<slug>-egress`: a bridge with a way out, for the last hop only.
    Egress,
}

/// A sidecar container, started before the agent.
#[derive(Debug, Clone)]
pub struct SidecarSpec {
    /// Role and container-name suffix: `pipelock`, `egress-proxy`, `supervise`…
    pub name: String,
    pub image: String,
    /// Replaces the image's CMD.
    pub command: Vec<String>,
    pub env: Vec<(String, EnvValue)>,
    /// Empty: network mode none.
    pub networks: Vec<NetworkAttachment>,
    pub mounts: Vec<Mount>,
    pub readiness: Readiness,
    pub ready_timeout: Duration,
}

/// When a sidecar counts as ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Running (not exited) after a short settle time.
    Running,
    /// A line of its output contains this text.
    LogLine(String),
    /// This command, run inside it, exits 0.
    Exec(Vec<String>),
}

impl LaunchSpec {
    /// The spec of a plan with no sidecars of its own yet (later issues add them here).
    pub fn new(plan: &BottlePlan, prepared: &Prepared, tty: bool) -> Self {
        let mut env: Vec<(String, EnvValue)> = vec![
            ("CLAUDE_BOTTLE".into(), EnvValue::Plain("1".into())),
            (
                "CLAUDE_BOTTLE_NAME".into(),
                EnvValue::Plain(plan.name.clone()),
            ),
        ];
        for f in &plan.env_forwarded {
            if let Some(v) = &f.value {
                env.push((f.name.clone(), EnvValue::Secret(v.clone())));
            }
        }
        for (name, value) in &plan.env_literal {
            env.push((name.clone(), EnvValue::Plain(value.clone())));
        }
        if let Some(model) = &plan.agent.model {
            env.push(("ANTHROPIC_MODEL".into(), EnvValue::Plain(model.clone())));
        }
        let mounts = plan
            .skills
            .iter()
            .map(|s| Mount {
                source: MountSource::Bind(s.path.clone()),
                target: format!("{AGENT_HOME}/.claude/skills/{}", s.name),
                read_only: true,
            })
            .collect();
        let mut files = Vec::new();
        if !plan.agent.prompt.is_empty() {
            files.push((
                format!("{AGENT_HOME}/.claude/CLAUDE.md"),
                format!("{}\n", plan.agent.prompt),
            ));
        }
        let mut labels = plan.base_labels();
        labels.push((
            crate::plan::LABEL_LAUNCHER_PID.into(),
            std::process::id().to_string(),
        ));
        Self {
            slug: plan.slug.clone(),
            labels,
            volumes: Vec::new(),
            sidecars: Vec::new(),
            agent: AgentSpec {
                image: prepared.agent_image.clone(),
                user: prepared
                    .agent_user
                    .clone()
                    .unwrap_or_else(|| AGENT_FALLBACK_USER.into()),
                command: plan.agent.command.clone(),
                env,
                mounts,
                limits: plan.limits,
                runtime: plan.runtime,
                files,
                tty,
            },
        }
    }
}
