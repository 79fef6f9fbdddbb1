//! The backend-neutral launch spec: the agent and its sidecars as a backend must create them.
//!
//! Pure: built from a [`BottlePlan`] and the prepared images; a test can add sidecars of its own.

use std::path::PathBuf;
use std::time::Duration;

use super::Prepared;
use crate::image;
use crate::manifest::Runtime;
use crate::plan::BottlePlan;
use crate::secret::Secret;
use crate::stage::Stage;

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
    /// The launcher's entrypoint, then the image's own.
    pub entrypoint: Vec<String>,
    /// Replaces the image's CMD.
    pub command: Vec<String>,
    pub env: Vec<(String, EnvValue)>,
    pub mounts: Vec<Mount>,
    pub limits: crate::plan::AgentLimits,
    pub runtime: Runtime,
    /// Folders saved in a snapshot and restored into a successor.
    pub state_paths: Vec<String>,
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
    /// `uid:gid` to run as; `None` keeps the image's user.
    pub user: Option<String>,
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
    /// The spec of `plan` with its images prepared and its host folders staged.
    pub fn new(plan: &BottlePlan, prepared: &Prepared, stage: &Stage, tty: bool) -> Self {
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
        let mut mounts: Vec<Mount> = plan
            .skills
            .iter()
            .map(|s| Mount {
                source: MountSource::Bind(s.path.clone()),
                target: format!("{AGENT_HOME}/.claude/skills/{}", s.name),
                read_only: true,
            })
            .collect();
        mounts.push(Mount {
            source: MountSource::Bind(stage.current_config.clone()),
            target: CURRENT_CONFIG_IN_AGENT.into(),
            read_only: true,
        });
        // What the launcher puts into every agent, read-only and outside the image's layers.
        mounts.push(Mount {
            source: MountSource::Bind(prepared.shim.clone()),
            target: image::SHIM_PATH.into(),
            read_only: true,
        });
        mounts.push(Mount {
            source: MountSource::Bind(stage.agent_lib.clone()),
            target: AGENT_LIB_DIR.into(),
            read_only: true,
        });
        env.push((
            "BASH_ENV".into(),
            EnvValue::Plain(image::BASH_ENV_PATH.into()),
        ));
        let mut entrypoint = vec![image::ENTRYPOINT_PATH.to_string()];
        entrypoint.extend(prepared.agent_entrypoint.iter().cloned());
        let mut sidecars = Vec::new();
        if let (true, Some(image)) = (plan.supervise, &prepared.supervise_image) {
            sidecars.push(supervise_sidecar(plan, image, stage));
            // The agent gets the socket's folder read-only, never the queue.
            mounts.push(Mount {
                source: MountSource::Bind(stage.supervise_run.clone()),
                target: SUPERVISE_RUN_DIR.into(),
                read_only: true,
            });
            env.push((
                "CLAUDE_BOTTLE_SUPERVISE_SOCKET".into(),
                EnvValue::Plain(format!("{SUPERVISE_RUN_DIR}/{SUPERVISE_SOCKET}")),
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
            sidecars,
            agent: AgentSpec {
                image: prepared.agent_image.clone(),
                user: prepared
                    .agent_user
                    .clone()
                    .unwrap_or_else(|| AGENT_FALLBACK_USER.into()),
                entrypoint,
                command: plan.agent.command.clone(),
                env,
                mounts,
                limits: plan.limits,
                runtime: plan.runtime,
                state_paths: vec![AGENT_HOME.into(), crate::image::WORKSPACE_DIR.into()],
                tty,
            },
        }
    }
}

impl AgentSpec {
    /// The same agent, started with the agent file's resume arguments appended.
    pub fn resuming(&self, plan: &BottlePlan) -> Self {
        let mut next = self.clone();
        next.command = plan.agent.command.clone();
        next.command.extend(plan.agent.resume.iter().cloned());
        next
    }
}

/// Where the launcher's scripts live in the agent (the entrypoint and the bash hook).
pub const AGENT_LIB_DIR: &str = "/usr/local/lib/claude-bottle";

/// Where the agent reads its bottle's current-config.
pub const CURRENT_CONFIG_IN_AGENT: &str = "/etc/claude-bottle/current-config";
/// The folder holding supervise's socket, in supervise and (read-only) in the agent.
pub const SUPERVISE_RUN_DIR: &str = "/run/claude-bottle/supervise";
/// supervise's socket file name.
pub const SUPERVISE_SOCKET: &str = "supervise.sock";
/// The queue inside supervise.
const QUEUE_IN_SUPERVISE: &str = "/run/supervise/queue";
/// The current-config inside supervise.
const CONFIG_IN_SUPERVISE: &str = "/run/supervise/current-config";

/// supervise: no network at all; it writes proposals into the host queue and can only read the
/// decisions and applied records, which are mounted read-only over the writable queue.
fn supervise_sidecar(plan: &BottlePlan, image: &str, stage: &Stage) -> SidecarSpec {
    let bind = |host: PathBuf, target: String, read_only: bool| Mount {
        source: MountSource::Bind(host),
        target,
        read_only,
    };
    let decisions = claude_bottle_protocol::queue::DECISIONS_DIR;
    let applied = claude_bottle_protocol::queue::APPLIED_DIR;
    SidecarSpec {
        name: "supervise".into(),
        image: image.to_string(),
        command: vec![
            "--bottle".into(),
            plan.name.clone(),
            "--socket".into(),
            format!("{SUPERVISE_RUN_DIR}/{SUPERVISE_SOCKET}"),
            "--queue-dir".into(),
            QUEUE_IN_SUPERVISE.into(),
            "--config-dir".into(),
            CONFIG_IN_SUPERVISE.into(),
        ],
        env: vec![],
        networks: vec![],
        mounts: vec![
            bind(stage.queue.clone(), QUEUE_IN_SUPERVISE.into(), false),
            bind(
                stage.queue.join(decisions),
                format!("{QUEUE_IN_SUPERVISE}/{decisions}"),
                true,
            ),
            bind(
                stage.queue.join(applied),
                format!("{QUEUE_IN_SUPERVISE}/{applied}"),
                true,
            ),
            bind(stage.supervise_run.clone(), SUPERVISE_RUN_DIR.into(), false),
            bind(
                stage.current_config.clone(),
                CONFIG_IN_SUPERVISE.into(),
                true,
            ),
        ],
        user: Some(operator_user()),
        readiness: Readiness::LogLine("supervise listening".into()),
        ready_timeout: Duration::from_secs(20),
    }
}

/// The launcher's own uid:gid: sidecars that write into the operator's state folder run as them.
pub fn operator_user() -> String {
    format!("{}:{}", nix::unistd::getuid(), nix::unistd::getgid())
}
