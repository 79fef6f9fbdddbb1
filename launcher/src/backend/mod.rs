//! Where a plan becomes running containers: one narrow trait, one implementation (Docker) today.
//!
//! The trait speaks in backend-neutral terms (a [`LaunchSpec`] of an agent and its sidecars) so a
//! Kubernetes backend could implement it with a pod, NetworkPolicy and Secrets.

pub mod disk;
pub mod docker;
mod git_spec;
mod spec;

use std::future::Future;

pub use spec::{
    AGENT_HOME, AgentSpec, EGRESS_PROXY as EGRESS_PROXY_SIDECAR, EnvValue, LaunchSpec, Mount,
    MountSource, NetworkAttachment, PIPELOCK as PIPELOCK_SIDECAR, RELAY as RELAY_SIDECAR,
    Readiness, SidecarSpec, operator_user,
};

use crate::state::snapshot::{Snapshot, SnapshotError, Store};

/// What `prepare` made ready: the images a launch uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The agent image (with the launcher's layer, and the workspace copy when `--cwd` was given).
    pub agent_image: String,
    /// The image built from the bottle's effective Dockerfile (`agent_image` without the
    /// workspace copy) when that Dockerfile does not end as root: an approved capability's rebuild
    /// continues from it with [`crate::state::dockerfile::ROOT_STEP`] first, which can be built
    /// ahead ([`crate::prepare::warm_root_step`]).
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
    /// The git gate's images, when the bottle declares git remotes.
    pub git: Option<GitImages>,
    /// Images built during this prepare (tag, steps, steps served from the cache).
    pub builds: Vec<BuildReport>,
    /// Lines for the operator (the disk bound's warning, what the image contract overrides).
    pub notes: Vec<String>,
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

/// The git gate's images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitImages {
    /// The gate (git, ssh and `claude-bottle-git-gate` over the base image).
    pub gate: String,
    /// Its own pipelock: the configured image, as the bottle's.
    pub pipelock: String,
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

/// What the engine says about itself, for the decisions a plan needs (runtime, disk bound).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineFacts {
    /// `overlay2`, `fuse-overlayfs`, …
    pub storage_driver: String,
    /// The file system under the driver's folder, where the engine says (`xfs`, `extfs`, …).
    pub backing_fs: Option<String>,
    /// The container runtimes the engine has registered (`runc`, `runsc`, …).
    pub runtimes: Vec<String>,
}

/// What of an image's config the launch uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The engine's image id (`sha256:…`): what a cached verdict is about.
    pub id: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// The config's `User` (empty: root).
    pub user: String,
    /// The config's `HOME` variable, if it sets one.
    pub env_home: Option<String>,
}

/// Whether a build shows its steps on the operator's terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Shown,
    /// In the background, while the terminal belongs to the agent.
    Quiet,
}

/// The first entry of an archive of one path of an image: what a probe reads of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstEntry {
    Missing,
    Entry {
        kind: EntryKind,
        uid: u64,
        gid: u64,
        size: u64,
        /// The content of a regular file of at most the limit asked for.
        data: Option<Vec<u8>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    HardLink,
    Special,
}

impl EntryKind {
    /// `file`, `folder`, …, for messages.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "folder",
            EntryKind::Symlink => "symlink",
            EntryKind::HardLink => "hard link",
            EntryKind::Special => "special file",
        }
    }
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
    /// The image a container runs, as the engine names it; empty otherwise.
    pub image: String,
    /// A container's health check state (`healthy`, `unhealthy`, `starting`) when it has one.
    pub health: Option<String>,
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
    /// A started agent held at its gate: creating this host file releases it
    /// ([`AgentSpec::gate`]). `None`: created, not started.
    pub release: Option<std::path::PathBuf>,
}

/// Backend errors carry the bottle or object they are about.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("failed to reach the container engine: {0}")]
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
        "bottle {slug} asks for runtime runsc (gVisor) but the engine does not list it (it has: {available})"
    )]
    RuntimeMissing { slug: String, available: String },
    #[error("bottle {slug} is already running (launcher pid {pid})")]
    AlreadyRunning { slug: String, pid: u32 },
    #[error("the {what} image {image} is not on this engine and could not be pulled: {detail}")]
    Pull {
        what: String,
        image: String,
        detail: String,
    },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("failed to read {path} out of image {image}: {problem}")]
    ImageFile {
        image: String,
        path: String,
        problem: String,
    },
    #[error("failed to prepare the image of bottle {slug}: {detail}")]
    Image { slug: String, detail: String },
    #[error("failed to bound the disk use of bottle {slug}'s agent to {limit}: {why}")]
    DiskUnbounded {
        slug: String,
        limit: String,
        why: String,
    },
}

impl crate::error::Diagnose for BackendError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            BackendError::Connect(_)
            | BackendError::Build { .. }
            | BackendError::Engine { .. }
            | BackendError::SidecarNotReady { .. } => Kind::Engine,
            BackendError::RuntimeMissing { .. }
            | BackendError::AlreadyRunning { .. }
            | BackendError::Pull { .. }
            | BackendError::DiskUnbounded { .. } => Kind::Environment,
            // The bottle's image or its inputs (Dockerfile, build_ca, --cwd, the contract).
            BackendError::ImageFile { .. } | BackendError::Image { .. } => Kind::Usage,
            BackendError::Snapshot(e) => e.kind(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            BackendError::Connect(_) => {
                Some("is the Docker daemon running and DOCKER_HOST right?".into())
            }
            BackendError::RuntimeMissing { .. } => Some(
                "install gVisor, register it with `sudo runsc install -- --host-uds=open` and restart dockerd (docs/gvisor.md), or set `runtime: runc`".into(),
            ),
            BackendError::AlreadyRunning { slug, .. } => {
                Some(format!("stop it with `claude-bottle stop {slug}`"))
            }
            BackendError::Pull { .. } => Some(
                "`docker load` it, or name another image (for pipelock: pipelock_image in config.toml or $CLAUDE_BOTTLE_PIPELOCK_IMAGE)".into(),
            ),
            BackendError::ImageFile { .. } => Some(
                "the agent's trust bundle starts from this file; make it a regular PEM file under 4 MiB, or remove it from the image".into(),
            ),
            BackendError::DiskUnbounded { .. } => {
                Some(format!("{}; nothing was created", disk::HOW_TO_BOUND))
            }
            BackendError::Snapshot(e) => e.hint(),
            _ => None,
        }
    }
}

/// How [`Backend::swap_in`] failed.
#[derive(Debug)]
pub enum SwapError {
    /// The stopped agent's files could not be saved: nothing was replaced, and the agent (under
    /// its own name) still holds the only copy.
    Snapshot(BackendError),
    /// The files were saved (the latest snapshot), but the successor could not take over.
    Successor(BackendError),
}

/// A place where bottles run.
pub trait Backend {
    /// The engine's storage driver and runtimes.
    fn engine_facts(&self) -> impl Future<Output = Result<EngineFacts, BackendError>> + Send;

    /// The config of image `tag`; `None` when the engine has no such image.
    fn image_info(
        &self,
        tag: &str,
    ) -> impl Future<Output = Result<Option<ImageInfo>, BackendError>> + Send;

    /// Build `recipe` (the engine's layer cache applies) and tag it; a failure carries the last
    /// lines of the build output.
    fn build_image(
        &self,
        recipe: &crate::image::ImageRecipe,
        progress: Progress,
    ) -> impl Future<Output = Result<BuildReport, BackendError>> + Send;

    /// Make sure `image` (a third-party reference such as pipelock's) is on the engine: pull it
    /// when missing. `what` names it in messages.
    fn pull_image(
        &self,
        image: &str,
        what: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// The first archive entry of each `(path, limit)` of `image` (with a regular file's content
    /// when it is at most `limit` bytes), read without running the image; probe objects carry
    /// `labels`. Answers in the order asked.
    fn first_entries(
        &self,
        image: &str,
        paths: &[(&str, u64)],
        labels: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<FirstEntry>, BackendError>> + Send;

    /// The content of regular file `path` of `image` (symlinks followed inside the image, at most
    /// 4 MiB), `None` when it does not exist; read without running the image.
    fn read_image_file(
        &self,
        image: &str,
        path: &str,
        labels: &[(String, String)],
    ) -> impl Future<Output = Result<Option<Vec<u8>>, BackendError>> + Send;

    /// Whether a container of `image` can be created with its writable layer bounded to `bytes`.
    fn accepts_disk_size(
        &self,
        image: &str,
        bytes: u64,
        labels: &[(String, String)],
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

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

    /// The running agent of `slug`, if there is one, ready for [`Backend::snapshot_agent`] of
    /// `state_paths` only (`claude-bottle export` asks for the workspace).
    fn running_agent(
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

    /// Carry the stopped agent's (`old`'s) home and workspace into the created `successor` and,
    /// in the same pass, into a new snapshot of `store` (streamed, checked and bounded as
    /// [`Backend::snapshot_agent`]); then remove `old` and give the successor the agent's name.
    /// `run_agent` starts it.
    fn swap_in(
        &self,
        old: &Launched,
        successor: Launched,
        store: &Store,
    ) -> impl Future<Output = Result<Launched, SwapError>> + Send;

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

    /// Objects of `slug` left by an earlier run.
    fn find_orphans(
        &self,
        slug: &str,
    ) -> impl Future<Output = Result<Vec<Resource>, BackendError>> + Send;
}
