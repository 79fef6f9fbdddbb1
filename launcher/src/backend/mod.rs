//! Where a plan becomes running containers: one narrow trait, one implementation (Docker) today.
//!
//! The trait speaks in backend-neutral terms (a [`LaunchSpec`] of an agent and its sidecars) so a
//! Kubernetes backend could implement it with a pod, NetworkPolicy and Secrets.

pub mod disk;
pub mod docker;
mod spec;

use std::future::Future;

pub use spec::{
    AGENT_HOME, AgentSpec, EGRESS_PROXY as EGRESS_PROXY_SIDECAR, EnvValue, LaunchSpec, Mount,
    MountSource, NetworkAttachment, PIPELOCK as PIPELOCK_SIDECAR, RELAY as RELAY_SIDECAR,
    Readiness, SidecarSpec,
};

use crate::plan::BottlePlan;
use crate::state::snapshot::{Snapshot, SnapshotError, Store};

/// What `prepare` made ready: the images a launch uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The agent image (with the launcher's layer, and the workspace copy when `--cwd` was given).
    pub agent_image: String,
    /// The image built from the bottle's effective Dockerfile (`agent_image` without the
    /// workspace copy) when that Dockerfile does not end as root: an approved capability's rebuild
    /// continues from it with [`crate::state::dockerfile::ROOT_STEP`] first, which can be built
    /// ahead ([`Backend::warm_root_step`]).
    pub root_step_base: Option<String>,
    /// The image's default user when it is not root, else `None` (the backend then runs uid 1000).
    pub agent_user: Option<String>,
    /// The `size` of the agent's writable layer, when the engine's storage driver can bound it
    /// (`None`: unbounded, and the operator was told; see [`disk`]).
    pub agent_disk: Option<u64>,
    /// The image's own ENTRYPOINT, kept behind the launcher's.
    pub agent_entrypoint: Vec<String>,
    /// The shim binary on the host, mounted read-only into the agent.
    pub shim: std::path::PathBuf,
    /// The supervise sidecar's image, when the bottle has `supervise: true`.
    pub supervise_image: Option<String>,
    /// The egress chain's images, when the bottle allows any host.
    pub egress: Option<EgressImages>,
    /// Images built during this prepare (tag, steps, steps served from the cache).
    pub builds: Vec<BuildReport>,
}

/// The images of the egress chain, and what the agent's trust bundle starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressImages {
    /// pipelock (the configured image, pulled when missing).
    pub pipelock: String,
    /// The egress-proxy, when a route carries a credential.
    pub egress_proxy: Option<String>,
    /// The relay between the agent's socket and the first hop.
    pub relay: String,
    /// The agent image's own system trust bundle (PEM; empty when it has none).
    pub image_roots: String,
}

/// One image build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    pub tag: String,
    /// False when an image with the tag already existed and nothing ran.
    pub built: bool,
    pub steps: usize,
    pub cached_steps: usize,
}

impl BuildReport {
    /// An image that already existed: nothing ran.
    pub fn cached(tag: &str) -> Self {
        Self {
            tag: tag.to_owned(),
            built: false,
            steps: 0,
            cached_steps: 0,
        }
    }
}

/// Options of `prepare` that are not part of the bottle.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// `start --cwd DIR`.
    pub workspace: Option<std::path::PathBuf>,
    /// Build from this Dockerfile text instead of the bottle's effective one (a candidate with
    /// an approved capability appended; it becomes the per-bottle Dockerfile only if it builds).
    pub dockerfile: Option<String>,
    /// Only the agent's image: a rebuild for an approval keeps the running sidecars and the
    /// launch's trust bundle, so their images (and the image-roots probe) are skipped.
    pub agent_only: bool,
}

/// An engine object that belongs to a bottle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub kind: ResourceKind,
    pub name: String,
    /// The `claude-bottle.role` label: agent, sidecar name, network role…
    pub role: String,
    /// Engine state for containers (running, exited…), empty otherwise.
    pub state: String,
    /// Unix seconds.
    pub created: i64,
    /// The pid of the launcher that created it (label), when recorded.
    pub launcher_pid: Option<u32>,
    /// An agent kept by a session whose snapshot failed ([`Backend::keep_agent`]): only
    /// [`Removal::Everything`] removes it.
    pub kept: bool,
}

/// What [`Backend::stop`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Every object of the bottle, a kept agent too (`claude-bottle stop`).
    Everything,
    /// Every object but a kept agent (a session's teardown, orphans).
    KeepKeptAgent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceKind {
    Container,
    Network,
    Volume,
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResourceKind::Container => "container",
            ResourceKind::Network => "network",
            ResourceKind::Volume => "volume",
        })
    }
}

/// A bottle as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BottleStatus {
    pub slug: String,
    pub resources: Vec<Resource>,
}

/// The running agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    pub slug: String,
    pub agent: String,
    pub tty: bool,
    /// Folders a snapshot of this agent saves.
    pub state_paths: Vec<String>,
}

/// Backend errors carry the bottle or object they are about.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(
        "failed to reach the container engine: {0}\nhint: is the Docker daemon running and DOCKER_HOST right?"
    )]
    Connect(String),
    #[error("failed to build image {tag}: {detail}")]
    Build { tag: String, detail: String },
    #[error("failed to {action} {object}: {detail}")]
    Engine {
        action: &'static str,
        object: String,
        detail: String,
    },
    #[error(
        "sidecar {name} of bottle {slug} failed to become ready: {reason}\n--- last log lines of {name} ---\n{logs}"
    )]
    SidecarNotReady {
        slug: String,
        name: String,
        reason: String,
        logs: String,
    },
    #[error(
        "bottle {slug} asks for runtime runsc (gVisor) but the engine does not list it (it has: {available})\nhint: install gVisor (runsc install) and restart dockerd, or set `runtime: runc`"
    )]
    RuntimeMissing { slug: String, available: String },
    #[error(
        "bottle {slug} is already running (launcher pid {pid})\nhint: stop it with `claude-bottle stop {slug}`"
    )]
    AlreadyRunning { slug: String, pid: u32 },
    #[error(
        "the {what} image {image} is not on this engine and could not be pulled: {detail}\nhint: `docker load` it, or name another image (for pipelock: pipelock_image in config.toml or $CLAUDE_BOTTLE_PIPELOCK_IMAGE)"
    )]
    Pull {
        what: String,
        image: String,
        detail: String,
    },
    #[error("{0}")]
    Stage(String),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(
        "failed to read {path} out of image {image}: {problem}\nhint: the agent's trust bundle starts from this file; make it a regular PEM file under 4 MiB, or remove it from the image"
    )]
    ImageFile {
        image: String,
        path: String,
        problem: String,
    },
    #[error("failed to prepare the image of bottle {slug}: {detail}")]
    Image { slug: String, detail: String },
    #[error(
        "failed to bound the disk use of bottle {slug}'s agent to {limit}: {why}\nhint: {}; nothing was created",
        disk::HOW_TO_BOUND
    )]
    DiskUnbounded {
        slug: String,
        limit: String,
        why: String,
    },
}

/// A place where bottles run.
pub trait Backend {
    /// Build (or find cached) the images the plan needs.
    fn prepare(
        &self,
        plan: &BottlePlan,
        opts: &PrepareOptions,
    ) -> impl Future<Output = Result<Prepared, BackendError>> + Send;

    /// Create the volumes, start the sidecars that gate the agent and wait until they are ready,
    /// and create the agent. The agent is started by [`Backend::run_agent`]; the other sidecars
    /// by [`Backend::start_sidecars`], beside it.
    fn launch(
        &self,
        spec: &LaunchSpec,
    ) -> impl Future<Output = Result<Launched, BackendError>> + Send;

    /// Create the networks and create and start the sidecars that do not gate the agent
    /// (concurrently; the first failure names its sidecar). Runs while the agent starts.
    fn start_sidecars(
        &self,
        spec: &LaunchSpec,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Wait until the sidecars that do not gate the agent are ready (the agent may already run);
    /// an exit or a timeout names the sidecar and shows its log tail. One not created yet is
    /// waited for.
    fn await_sidecars(
        &self,
        spec: &LaunchSpec,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Start the agent, attach the operator's terminal (or stream its output), return its exit code.
    fn run_agent(
        &self,
        launched: &Launched,
    ) -> impl Future<Output = Result<i64, BackendError>> + Send;

    /// Remove every container, network and volume of the bottle (but a kept agent, unless
    /// `removal` says everything); returns what was removed.
    fn stop(
        &self,
        slug: &str,
        removal: Removal,
    ) -> impl Future<Output = Result<Vec<Resource>, BackendError>> + Send;

    /// Bottles that have objects on the engine.
    fn list(&self) -> impl Future<Output = Result<Vec<BottleStatus>, BackendError>> + Send;

    /// Stop the agent: SIGTERM, then SIGKILL after a short grace. `run_agent` then returns.
    fn stop_agent(
        &self,
        launched: &Launched,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Copy the agent's home and workspace out of its container (running or stopped) into a new
    /// snapshot of `store`, streamed to disk and refused past the store's limit; only a complete
    /// snapshot replaces the latest one.
    fn snapshot_agent(
        &self,
        launched: &Launched,
        store: &Store,
    ) -> impl Future<Output = Result<Snapshot, BackendError>> + Send;

    /// Stop the agent and keep its container, under a name of its own, out of the teardown: its
    /// snapshot failed, so its files exist nowhere else. Returns the container's name.
    fn keep_agent(
        &self,
        launched: &Launched,
    ) -> impl Future<Output = Result<String, BackendError>> + Send;

    /// The agent an earlier session of `slug` kept ([`Backend::keep_agent`]), if there is one,
    /// ready for [`Backend::snapshot_agent`].
    fn kept_agent(
        &self,
        slug: &str,
        state_paths: &[String],
    ) -> impl Future<Output = Result<Option<Launched>, BackendError>> + Send;

    /// Create (not start) the agent that replaces the running one, from `agent`, under a name of
    /// its own: the session makes it while the running agent is snapshotted.
    fn create_successor(
        &self,
        spec: &LaunchSpec,
        agent: &AgentSpec,
    ) -> impl Future<Output = Result<Launched, BackendError>> + Send;

    /// Unpack `restore` into `successor`, remove the stopped agent it replaces (`old`) and give
    /// the successor the agent's name; `run_agent` starts it.
    fn swap_in(
        &self,
        old: &Launched,
        successor: Launched,
        restore: Option<(&Store, &Snapshot)>,
    ) -> impl Future<Output = Result<Launched, BackendError>> + Send;

    /// Unpack a snapshot of `store` into the created (not yet started) agent, streamed from disk.
    fn restore_agent(
        &self,
        launched: &Launched,
        store: &Store,
        snap: &Snapshot,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Ask the sidecar `sidecar` of `slug` to reload its configuration (SIGHUP), once it is
    /// ready: a process still starting may not handle the signal yet, and would die of it.
    fn reload_sidecar(
        &self,
        slug: &str,
        sidecar: &SidecarSpec,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Build `image` + [`crate::state::dockerfile::ROOT_STEP`] ahead of any approval, so the
    /// first approved capability of a bottle whose image ends as another user finds that step in
    /// the layer cache and builds one step, not two. Runs nothing of any proposal. Returns the
    /// build's report, or `None` when it was built before.
    fn warm_root_step(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<BuildReport>, BackendError>> + Send;

    /// Objects of `slug` left by an earlier run.
    fn find_orphans(
        &self,
        slug: &str,
    ) -> impl Future<Output = Result<Vec<Resource>, BackendError>> + Send;
}
