//! The Docker Engine backend (bollard): images, networks, sidecars and the hardened agent.

mod attach;
mod containers;
mod images;
mod resources;

use std::path::Path;

use bollard::Docker;

pub use attach::exit_code;
pub use containers::{agent_name, sidecar_name, successor_name, tail_logs, volume_name};
pub use images::{build as build_image, ensure as ensure_image, exists as image_exists};
pub use resources::network_name;

use super::{
    AgentSpec, Backend, BackendError, BottleStatus, BuildReport, EgressImages, LaunchSpec,
    Launched, PrepareOptions, Prepared, Resource,
};
use crate::backend::SidecarSpec;
use crate::config::Config;
use crate::image::{self, AgentSource, InheritedCommand, Sidecar};
use crate::manifest::Runtime;
use crate::plan::{BottlePlan, ImageSource};
use crate::stage;
use crate::state::EffectiveDockerfile;
use crate::state::snapshot::Snapshot;

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

    /// Fail before creating anything when the bottle asks for a runtime the engine lacks.
    pub async fn check_runtime(&self, slug: &str, runtime: Runtime) -> Result<(), BackendError> {
        if runtime == Runtime::Runc {
            return Ok(());
        }
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| engine_err("query", "engine info", e))?;
        let runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        if runtimes.iter().any(|r| r == runtime.as_str()) {
            return Ok(());
        }
        let mut available = runtimes;
        available.sort();
        Err(BackendError::RuntimeMissing {
            slug: slug.to_string(),
            available: available.join(", "),
        })
    }

    async fn inherited(
        &self,
        tag: &str,
    ) -> Result<Option<(InheritedCommand, Option<String>)>, BackendError> {
        let img = match self.docker.inspect_image(tag).await {
            Ok(img) => img,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(engine_err("inspect image", tag, e)),
        };
        let cfg = img.config.unwrap_or_default();
        // Only a numeric, non-zero uid is trusted as "not root": a name (even `agent`) could map
        // to uid 0 in the image's passwd, so names fall back to the contract's 1000:1000.
        let user = cfg.user.filter(|u| numeric_non_root(u));
        Ok(Some((
            InheritedCommand {
                entrypoint: cfg.entrypoint.unwrap_or_default(),
                cmd: cfg.cmd.unwrap_or_default(),
            },
            user,
        )))
    }

    /// pipelock (pulled when missing), the egress-proxy (built from the base image) when a route
    /// carries a credential, the relay, and the agent image's own roots for its trust bundle.
    async fn egress_images(
        &self,
        plan: &BottlePlan,
        agent_base: &str,
        shim: &Path,
        builds: &mut Vec<BuildReport>,
    ) -> Result<EgressImages, BackendError> {
        let slug = &plan.slug;
        let pipelock = self.config.pipelock_image.clone();
        images::ensure_pulled(&self.docker, &pipelock, "pipelock").await?;
        let egress_proxy = if crate::chain::needs_egress_proxy(plan) {
            let recipe = crate::egress::images::egress_proxy(&self.config.base_image)
                .map_err(|e| Self::image_err(slug, e))?;
            builds.push(images::ensure(&self.docker, &recipe).await?);
            Some(recipe.tag)
        } else {
            None
        };
        let relay = self
            .scratch_image(plan, Sidecar::Relay, shim, builds)
            .await?;
        let image_roots = self.image_roots(plan, agent_base).await?;
        Ok(EgressImages {
            pipelock,
            egress_proxy,
            relay,
            image_roots,
        })
    }

    /// The `FROM scratch` image of one of our static binaries, built when missing. Its tag comes
    /// from the binary's digest, cached by the file's identity in the bottle's state folder, so a
    /// warm start neither reads nor hashes the binary.
    async fn scratch_image(
        &self,
        plan: &BottlePlan,
        sidecar: Sidecar,
        binary: &Path,
        builds: &mut Vec<BuildReport>,
    ) -> Result<String, BackendError> {
        let slug = &plan.slug;
        let cache = plan
            .state_dir
            .join("run")
            .join("binaries")
            .join(format!("{}.digest", sidecar.binary_name()));
        let digest = image::file_digest(binary, &cache).map_err(|e| Self::image_err(slug, e))?;
        let tag =
            image::sidecar_scratch_tag(sidecar, &digest).map_err(|e| Self::image_err(slug, e))?;
        if images::exists(&self.docker, &tag).await? {
            tracing::debug!(tag = %tag, "image cached");
            builds.push(BuildReport::cached(&tag));
            return Ok(tag);
        }
        let recipe =
            image::sidecar_scratch(sidecar, binary).map_err(|e| Self::image_err(slug, e))?;
        builds.push(images::build(&self.docker, &recipe).await?);
        Ok(recipe.tag)
    }

    /// The system bundle of `image`, cached per image tag (tags name content) in the bottle's
    /// state folder, so a warm start does not create a probe container.
    async fn image_roots(&self, plan: &BottlePlan, image: &str) -> Result<String, BackendError> {
        let dir = plan.state_dir.join("run").join("image-roots");
        let key: String = image
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let cached = dir.join(format!("{key}.pem"));
        if let Ok(text) = std::fs::read_to_string(&cached) {
            return Ok(text);
        }
        let found = containers::read_image_file(
            &self.docker,
            image,
            crate::chain::SYSTEM_BUNDLE,
            with_role(&plan.base_labels(), "probe"),
        )
        .await?;
        let text = found
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        // Only the newest image's roots are kept.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&cached, &text))
            .map_err(|e| Self::image_err(&plan.slug, format!("{}: {e}", cached.display())))?;
        Ok(text)
    }

    fn image_err(slug: &str, e: impl std::fmt::Display) -> BackendError {
        BackendError::Image {
            slug: slug.to_string(),
            detail: e.to_string(),
        }
    }
}

/// What the agent's first layer builds from: the candidate Dockerfile of an approval, else the
/// per-bottle Dockerfile, else the bottle's own, else the embedded one. A bottle's own folder stays
/// the build context of any text derived from its Dockerfile.
fn agent_source(plan: &BottlePlan, opts: &PrepareOptions) -> Result<AgentSource, String> {
    let text = match &opts.dockerfile {
        Some(candidate) => Some(candidate.clone()),
        None => match stage::effective_dockerfile(plan).map_err(|e| e.to_string())? {
            EffectiveDockerfile::PerBottle { text, .. } => Some(text),
            EffectiveDockerfile::Bottle { .. } | EffectiveDockerfile::Embedded { .. } => None,
        },
    };
    Ok(match (&plan.image, text) {
        (ImageSource::Dockerfile(p), None) => {
            AgentSource::from_dockerfile(p).map_err(|e| e.to_string())?
        }
        (ImageSource::Dockerfile(p), Some(dockerfile)) => AgentSource::Custom {
            dockerfile,
            context_dir: p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf),
        },
        (ImageSource::Embedded, Some(dockerfile)) => AgentSource::Text { dockerfile },
        (ImageSource::Embedded, None) => AgentSource::Embedded,
    })
}

/// The first `len` bytes of `path` (fewer when it is shorter).
fn read_head(path: &Path, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(len)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// Sidecars that gate the agent (started before it) or come up beside it.
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

/// `1000` or `1000:1000`, not `0`, `0:…`, `root` or a name.
fn numeric_non_root(user: &str) -> bool {
    let (uid, gid) = user.split_once(':').unwrap_or((user, "1"));
    matches!(uid.parse::<u32>(), Ok(u) if u != 0) && gid.parse::<u32>().is_ok()
}

impl Backend for DockerBackend {
    async fn prepare(
        &self,
        plan: &BottlePlan,
        opts: &PrepareOptions,
    ) -> Result<Prepared, BackendError> {
        self.check_runtime(&plan.slug, plan.runtime).await?;
        let slug = &plan.slug;
        let source = agent_source(plan, opts).map_err(|e| Self::image_err(slug, e))?;
        let mut builds = Vec::new();
        let base = image::agent_base(slug, &source, &self.config.base_image)
            .map_err(|e| Self::image_err(slug, e))?;
        // One inspect answers both "is it built?" and "what does it run as?".
        let (inherited, user) = match self.inherited(&base.tag).await? {
            Some(found) => {
                builds.push(BuildReport::cached(&base.tag));
                found
            }
            None => {
                builds.push(images::build(&self.docker, &base).await?);
                self.inherited(&base.tag).await?.ok_or_else(|| {
                    Self::image_err(
                        slug,
                        format!("{} is missing right after its build", base.tag),
                    )
                })?
            }
        };
        let shim = self
            .config
            .binary(Sidecar::Relay.binary_name())
            .map_err(|e| Self::image_err(slug, e))?;
        // The ELF and program headers are at the file's start: no need to read 10 MB.
        match read_head(&shim, 64 * 1024) {
            Ok(bytes) if !image::is_static_elf(&bytes) => tracing::warn!(
                shim = %shim.display(),
                "the shim is dynamically linked: it runs only in images with a compatible libc; \
                 build the static one with scripts/build-static.sh"
            ),
            _ => {}
        }
        let mut agent_image = base.tag.clone();
        if let Some(dir) = &opts.workspace {
            let ws = image::workspace_copy(slug, &agent_image, dir)
                .map_err(|e| Self::image_err(slug, e))?;
            builds.push(images::ensure(&self.docker, &ws).await?);
            agent_image = ws.tag;
        }
        let mut supervise_image = None;
        if plan.supervise && !opts.agent_only {
            let binary = self
                .config
                .binary(Sidecar::Supervise.binary_name())
                .map_err(|e| Self::image_err(slug, e))?;
            supervise_image = Some(
                self.scratch_image(plan, Sidecar::Supervise, &binary, &mut builds)
                    .await?,
            );
        }
        let egress = if crate::chain::needed(plan) && !opts.agent_only {
            Some(
                self.egress_images(plan, &base.tag, &shim, &mut builds)
                    .await?,
            )
        } else {
            None
        };
        tracing::info!(slug, image = %agent_image, "images ready");
        Ok(Prepared {
            agent_image,
            agent_base_image: base.tag.clone(),
            agent_user: user,
            agent_entrypoint: inherited.entrypoint,
            shim,
            supervise_image,
            egress,
            builds,
        })
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, BackendError> {
        let slug = &spec.slug;
        // The agent joins no network: networks exist only for the sidecars that use them, and
        // are made here only when a sidecar that gates the agent needs one.
        if networked(spec, Gating::Gates) {
            resources::create_networks(&self.docker, slug, &spec.labels).await?;
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
        })
    }

    async fn start_sidecars(&self, spec: &LaunchSpec) -> Result<(), BackendError> {
        let slug = &spec.slug;
        let others: Vec<_> = spec.sidecars.iter().filter(|s| !s.gates_agent).collect();
        if others.is_empty() {
            return Ok(());
        }
        if networked(spec, Gating::Beside) && !networked(spec, Gating::Gates) {
            resources::create_networks(&self.docker, slug, &spec.labels).await?;
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
        attach::run(&self.docker, &launched.agent, launched.tty).await
    }

    async fn stop(&self, slug: &str) -> Result<Vec<Resource>, BackendError> {
        resources::remove_all(&self.docker, slug).await
    }

    async fn list(&self) -> Result<Vec<BottleStatus>, BackendError> {
        Ok(resources::group(resources::find(&self.docker, None).await?))
    }

    async fn stop_agent(&self, launched: &Launched) -> Result<(), BackendError> {
        containers::stop(&self.docker, &launched.agent).await
    }

    async fn snapshot_agent(&self, launched: &Launched) -> Result<Snapshot, BackendError> {
        containers::snapshot(&self.docker, &launched.agent, &launched.state_paths).await
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
        Ok(Launched {
            slug: spec.slug.clone(),
            agent: name,
            tty: agent.tty,
            state_paths: agent.state_paths.clone(),
        })
    }

    async fn swap_in(
        &self,
        old: &Launched,
        successor: Launched,
        restore: Option<&Snapshot>,
    ) -> Result<Launched, BackendError> {
        if let Some(snap) = restore {
            containers::restore(&self.docker, &successor.agent, snap).await?;
        }
        containers::remove(&self.docker, &old.agent).await?;
        let name = agent_name(&old.slug);
        containers::rename(&self.docker, &successor.agent, &name).await?;
        Ok(Launched {
            agent: name,
            ..successor
        })
    }

    async fn restore_agent(
        &self,
        launched: &Launched,
        snap: &Snapshot,
    ) -> Result<(), BackendError> {
        containers::restore(&self.docker, &launched.agent, snap).await
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

    async fn warm_root_step(&self, image: &str) -> Result<Option<BuildReport>, BackendError> {
        let tag = format!("{image}-root");
        if images::exists(&self.docker, &tag).await? {
            return Ok(None);
        }
        // Exactly the step a candidate Dockerfile has after the image's own steps: no LABEL line
        // and no build arguments, which would make the engine's cache see another step. The
        // image inherits the bottle's labels, so removing the bottle's images removes it too.
        let recipe = image::raw_recipe(
            tag.clone(),
            format!("FROM {image}\n{}\n", crate::state::dockerfile::ROOT_STEP),
        )
        .map_err(|e| BackendError::Build {
            tag,
            detail: e.to_string(),
        })?;
        images::build_quiet(&self.docker, &recipe).await.map(Some)
    }

    async fn find_orphans(&self, slug: &str) -> Result<Vec<Resource>, BackendError> {
        Ok(resources::find(&self.docker, Some(slug))
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_numeric_non_root_users_are_trusted() {
        for ok in ["1000", "1000:1000", "1001:0"] {
            assert!(super::numeric_non_root(ok), "{ok}");
        }
        for bad in ["", "0", "0:0", "root", "root:root", "agent", "1000:staff"] {
            assert!(!super::numeric_non_root(bad), "{bad}");
        }
    }
}
