//! The Docker Engine backend (bollard): images, networks, sidecars and the hardened agent.

mod archive;
mod attach;
mod containers;
mod disk;
mod images;
mod probe;
mod resources;

use bollard::Docker;

pub use attach::exit_code;
pub use containers::{
    agent_name, kept_agent_name, remove as remove_container, retired_agent_name, sidecar_name,
    successor_name, tail_logs, volume_name,
};
pub use images::{build as build_image, ensure as ensure_image, exists as image_exists};
pub use resources::network_name;

use super::{
    AgentSpec, Backend, BackendError, BottleStatus, BuildReport, EngineFacts, FirstEntry,
    ImageInfo, LaunchSpec, Launched, NetworkAttachment, Progress, Removal, Resource, SwapError,
};
use crate::backend::SidecarSpec;
use crate::config::Config;
use crate::image::ImageRecipe;
use crate::state::snapshot::{Snapshot, Store};

/// A connection to one Docker engine.
#[derive(Debug, Clone)]
pub struct DockerBackend {
    docker: Docker,
    config: Config,
}

pub(crate) fn engine_err(
    action: &'static str,
    object: &str,
    e: bollard::errors::Error,
) -> BackendError {
    let detail = match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    };
    BackendError::Engine {
        action,
        object: object.to_string(),
        detail,
    }
}

/// A held agent's release file could not be handled.
pub(crate) fn release_err(
    agent: &str,
    release: &std::path::Path,
    e: &std::io::Error,
) -> BackendError {
    BackendError::Engine {
        action: "release",
        object: agent.to_string(),
        detail: format!("{}: {e}", release.display()),
    }
}

/// `base` labels plus the object's `claude-bottle.role`.
pub(crate) fn with_role(
    base: &[(String, String)],
    role: &str,
) -> std::collections::HashMap<String, String> {
    let mut m: std::collections::HashMap<String, String> = base.iter().cloned().collect();
    m.insert(crate::plan::LABEL_ROLE.to_string(), role.to_string());
    m
}

impl DockerBackend {
    /// Connect through `DOCKER_HOST` (or the local socket) and negotiate the API version, since
    /// engines differ; the negotiation's /version call doubles as the reachability check.
    pub async fn connect(config: Config) -> Result<Self, BackendError> {
        let docker =
            Docker::connect_with_defaults().map_err(|e| BackendError::Connect(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| BackendError::Connect(e.to_string()))?;
        Ok(Self { docker, config })
    }

    /// The bollard client, for tests and tools that need the raw engine.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The engine's events about bottles' containers, each as the bottle's slug
    /// ([`resources::container_events`]): what the dashboard redraws on instead of polling.
    pub fn container_events(
        &self,
    ) -> impl futures_util::Stream<Item = Result<String, BackendError>> + Send + 'static {
        resources::container_events(&self.docker)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Gating {
    Gates,
    Beside,
}

/// Whether one of the sidecars of that kind joins a network.
fn networked(spec: &LaunchSpec, kind: Gating) -> bool {
    spec.sidecars
        .iter()
        .any(|s| s.gates_agent == (kind == Gating::Gates) && !s.networks.is_empty())
}

/// Every network some sidecar of `spec` joins, each once.
fn networks_of(spec: &LaunchSpec) -> Vec<NetworkAttachment> {
    let mut nets: Vec<NetworkAttachment> = Vec::new();
    for n in spec.sidecars.iter().flat_map(|s| &s.networks) {
        if !nets.contains(n) {
            nets.push(*n);
        }
    }
    nets
}

/// The file system under the engine's storage driver, where its driver status says.
pub fn backing_fs(info: &bollard::models::SystemInfo) -> Option<String> {
    info.driver_status
        .iter()
        .flatten()
        .find_map(|kv| match kv.as_slice() {
            [k, v] if k == "Backing Filesystem" => Some(v.clone()),
            _ => None,
        })
}

/// The engine's storage driver (and the file system under it, where it says) and runtimes.
pub async fn engine_facts(docker: &Docker) -> Result<EngineFacts, BackendError> {
    let info = docker
        .info()
        .await
        .map_err(|e| engine_err("query", "engine info", e))?;
    let backing_fs = backing_fs(&info);
    Ok(EngineFacts {
        storage_driver: info.driver.unwrap_or_default(),
        backing_fs,
        runtimes: info.runtimes.unwrap_or_default().into_keys().collect(),
    })
}

fn label_map(labels: &[(String, String)]) -> std::collections::HashMap<String, String> {
    labels.iter().cloned().collect()
}

impl Backend for DockerBackend {
    async fn engine_facts(&self) -> Result<EngineFacts, BackendError> {
        engine_facts(&self.docker).await
    }

    async fn image_info(&self, tag: &str) -> Result<Option<ImageInfo>, BackendError> {
        let img = match self.docker.inspect_image(tag).await {
            Ok(img) => img,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(engine_err("inspect image", tag, e)),
        };
        let cfg = img.config.unwrap_or_default();
        let env_home = cfg
            .env
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find_map(|kv| kv.strip_prefix("HOME=").map(str::to_owned));
        Ok(Some(ImageInfo {
            id: img.id.unwrap_or_else(|| tag.to_owned()),
            entrypoint: cfg.entrypoint.unwrap_or_default(),
            cmd: cfg.cmd.unwrap_or_default(),
            user: cfg.user.unwrap_or_default(),
            env_home,
        }))
    }

    async fn build_image(
        &self,
        recipe: &ImageRecipe,
        progress: Progress,
    ) -> Result<BuildReport, BackendError> {
        match progress {
            Progress::Shown => images::build(&self.docker, recipe).await,
            Progress::Quiet => images::build_quiet(&self.docker, recipe).await,
        }
    }

    async fn pull_image(&self, image: &str, what: &str) -> Result<(), BackendError> {
        images::ensure_pulled(&self.docker, image, what).await
    }

    async fn first_entries(
        &self,
        image: &str,
        paths: &[(&str, u64)],
        labels: &[(String, String)],
    ) -> Result<Vec<FirstEntry>, BackendError> {
        probe::first_entries(&self.docker, image, paths, label_map(labels)).await
    }

    async fn read_image_file(
        &self,
        image: &str,
        path: &str,
        labels: &[(String, String)],
    ) -> Result<Option<Vec<u8>>, BackendError> {
        archive::read_image_file(&self.docker, image, path, label_map(labels)).await
    }

    async fn accepts_disk_size(
        &self,
        image: &str,
        bytes: u64,
        labels: &[(String, String)],
    ) -> Result<bool, BackendError> {
        self.takes_size(image, bytes, label_map(labels)).await
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, BackendError> {
        let slug = &spec.slug;
        // The agent joins no network: networks exist only for the sidecars that use them, and
        // are made here only when a sidecar that gates the agent needs one.
        if networked(spec, Gating::Gates) {
            resources::create_networks(&self.docker, slug, &spec.labels, &networks_of(spec))
                .await?;
            tracing::info!(slug, "networks created");
        }
        let volumes = spec.volumes.iter().map(|v| async move {
            resources::create_volume(&self.docker, &volume_name(slug, v), &spec.labels).await
        });
        futures_util::future::try_join_all(volumes).await?;
        // The gating sidecars start concurrently; the first failure wins and names its sidecar.
        let gating: Vec<_> = spec.sidecars.iter().filter(|s| s.gates_agent).collect();
        let starts = gating
            .iter()
            .map(|s| containers::start_sidecar(&self.docker, slug, &spec.labels, s));
        // The agent is created (not started) while they come up; a failure of either leaves
        // labelled objects the session's teardown removes.
        let sidecars = async {
            futures_util::future::try_join_all(starts).await?;
            tracing::info!(slug, sidecars = gating.len(), "gating sidecars ready");
            Ok::<_, BackendError>(())
        };
        let agent = agent_name(slug);
        let create =
            containers::create_agent(&self.docker, slug, &agent, &spec.labels, &spec.agent);
        tokio::try_join!(sidecars, create)?;
        tracing::info!(slug, "agent created");
        Ok(Launched {
            slug: slug.clone(),
            agent,
            tty: spec.agent.tty,
            state_paths: spec.agent.state_paths.clone(),
            release: None,
        })
    }

    async fn start_sidecars(&self, spec: &LaunchSpec) -> Result<(), BackendError> {
        let slug = &spec.slug;
        let others: Vec<_> = spec.sidecars.iter().filter(|s| !s.gates_agent).collect();
        if others.is_empty() {
            return Ok(());
        }
        if networked(spec, Gating::Beside) && !networked(spec, Gating::Gates) {
            resources::create_networks(&self.docker, slug, &spec.labels, &networks_of(spec))
                .await?;
            tracing::info!(slug, "networks created");
        }
        // Every start runs to its end before the first failure is reported: a create request
        // dropped half-way could still make a container after the teardown has looked.
        let starts = others
            .iter()
            .map(|s| containers::start_sidecar(&self.docker, slug, &spec.labels, s));
        for started in futures_util::future::join_all(starts).await {
            started?;
        }
        tracing::info!(slug, sidecars = others.len(), "sidecars started");
        Ok(())
    }

    async fn run_agent(&self, launched: &Launched) -> Result<i64, BackendError> {
        attach::run(
            &self.docker,
            &launched.agent,
            launched.tty,
            launched.release.as_deref(),
        )
        .await
    }

    async fn stop(&self, slug: &str, removal: Removal) -> Result<Vec<Resource>, BackendError> {
        resources::remove_all(&self.docker, slug, removal).await
    }

    async fn list(&self) -> Result<Vec<BottleStatus>, BackendError> {
        Ok(resources::group(resources::find(&self.docker, None).await?))
    }

    async fn stop_agent(&self, launched: &Launched) -> Result<(), BackendError> {
        containers::stop(&self.docker, &launched.agent).await
    }

    async fn snapshot_agent(
        &self,
        launched: &Launched,
        store: &Store,
    ) -> Result<Snapshot, BackendError> {
        archive::snapshot(&self.docker, &launched.agent, &launched.state_paths, store).await
    }

    async fn keep_agent(&self, launched: &Launched) -> Result<String, BackendError> {
        let kept = kept_agent_name(&launched.slug);
        containers::stop(&self.docker, &launched.agent).await?;
        if launched.agent != kept {
            containers::rename(&self.docker, &launched.agent, &kept).await?;
        }
        Ok(kept)
    }

    async fn kept_agent(
        &self,
        slug: &str,
        state_paths: &[String],
    ) -> Result<Option<Launched>, BackendError> {
        let name = kept_agent_name(slug);
        match self.docker.inspect_container(&name, None).await {
            Ok(_) => Ok(Some(Launched {
                slug: slug.to_string(),
                agent: name,
                tty: false,
                state_paths: state_paths.to_vec(),
                release: None,
            })),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(engine_err("inspect", &name, e)),
        }
    }

    async fn running_agent(
        &self,
        slug: &str,
        state_paths: &[String],
    ) -> Result<Option<Launched>, BackendError> {
        let name = agent_name(slug);
        match self.docker.inspect_container(&name, None).await {
            Ok(c) if c.state.as_ref().and_then(|s| s.running) == Some(true) => Ok(Some(Launched {
                slug: slug.to_string(),
                agent: name,
                tty: false,
                state_paths: state_paths.to_vec(),
                release: None,
            })),
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(engine_err("inspect", &name, e)),
        }
    }

    async fn create_successor(
        &self,
        spec: &LaunchSpec,
        agent: &AgentSpec,
    ) -> Result<Launched, BackendError> {
        let name = successor_name(&spec.slug);
        // Left only by a swap that failed half-way; the session ended then, but be sure.
        containers::remove(&self.docker, &name).await?;
        containers::create_agent(&self.docker, &spec.slug, &name, &spec.labels, agent).await?;
        if let Some(release) = &agent.gate {
            // Started now, while the old agent still runs: the start (the file system mounted,
            // the runtime's init) is off the swap's path. Its entrypoint waits at the gate.
            match std::fs::remove_file(release) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(release_err(&name, release, &e)),
            }
            self.docker
                .start_container(
                    &name,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await
                .map_err(|e| engine_err("start agent", &name, e))?;
        }
        Ok(Launched {
            slug: spec.slug.clone(),
            agent: name,
            tty: agent.tty,
            state_paths: agent.state_paths.clone(),
            release: agent.gate.clone(),
        })
    }

    async fn swap_in(
        &self,
        old: &Launched,
        successor: Launched,
        store: &Store,
    ) -> Result<Launched, SwapError> {
        let t = std::time::Instant::now();
        // Until its files are saved the stopped agent keeps its name: a launcher interrupted here
        // (a signal drops this future) saves or keeps the agent it finds under that name.
        let carried = archive::carry_over(
            &self.docker,
            &old.agent,
            &successor.agent,
            &old.state_paths,
            store,
        )
        .await;
        tracing::debug!(ms = t.elapsed().as_millis(), "files carried over");
        match carried {
            Ok(_) => {}
            Err(archive::CarryError::Snapshot(e)) => return Err(SwapError::Snapshot(e)),
            // The session ends; its teardown removes both containers.
            Err(archive::CarryError::Restore(e)) => return Err(SwapError::Successor(e)),
        }
        // Then it gives up its name and is removed in the background: removing a container (its
        // writable layer) costs more than renaming it, and nothing waits for it. If the launcher
        // ends first, the teardown removes it with the bottle's other objects (it keeps their
        // labels).
        let retired = retired_agent_name(&old.slug);
        containers::rename_if_present(&self.docker, &old.agent, &retired)
            .await
            .map_err(SwapError::Successor)?;
        tracing::debug!(ms = t.elapsed().as_millis(), "replaced agent renamed");
        let name = agent_name(&old.slug);
        containers::rename(&self.docker, &successor.agent, &name)
            .await
            .map_err(SwapError::Successor)?;
        tracing::debug!(ms = t.elapsed().as_millis(), "successor renamed");
        let docker = self.docker.clone();
        tokio::spawn(async move {
            if let Err(e) = containers::remove(&docker, &retired).await {
                tracing::warn!(error = %e, "failed to remove the replaced agent");
            }
        });
        Ok(Launched {
            agent: name,
            ..successor
        })
    }

    async fn restore_agent(
        &self,
        launched: &Launched,
        store: &Store,
        snap: &Snapshot,
    ) -> Result<(), BackendError> {
        archive::restore(&self.docker, &launched.agent, store, snap).await
    }

    async fn await_sidecars(&self, spec: &LaunchSpec) -> Result<(), BackendError> {
        let waits = spec.sidecars.iter().filter(|s| !s.gates_agent).map(|s| {
            let name = sidecar_name(&spec.slug, &s.name);
            async move { containers::wait_ready(&self.docker, &spec.slug, s, &name).await }
        });
        futures_util::future::try_join_all(waits).await?;
        tracing::info!(slug = %spec.slug, "egress chain ready");
        Ok(())
    }

    async fn reload_sidecar(&self, slug: &str, sidecar: &SidecarSpec) -> Result<(), BackendError> {
        let name = sidecar_name(slug, &sidecar.name);
        containers::wait_ready(&self.docker, slug, sidecar, &name).await?;
        containers::signal(&self.docker, &name, "SIGHUP").await
    }

    async fn find_orphans(&self, slug: &str) -> Result<Vec<Resource>, BackendError> {
        Ok(resources::find(&self.docker, Some(slug))
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }
}
