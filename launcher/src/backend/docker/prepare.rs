//! `prepare`: the images a launch (or an approval's rebuild) uses, found or built.

use std::path::Path;

use super::contract::ImageConfig;
use super::{DockerBackend, archive, engine_err, images, with_role};
use crate::backend::{BackendError, BuildReport, EgressImages, PrepareOptions, Prepared};
use crate::image::{self, AgentSource, InheritedCommand, Sidecar, contract};
use crate::plan::{BottlePlan, ImageSource};
use crate::stage;
use crate::state::EffectiveDockerfile;

impl DockerBackend {
    pub(super) async fn prepare_images(
        &self,
        plan: &BottlePlan,
        opts: &PrepareOptions,
    ) -> Result<Prepared, BackendError> {
        self.check_runtime(&plan.slug, plan.runtime).await?;
        // A rebuild for an approval keeps the launch's agent settings, this among them.
        let disk = if opts.agent_only {
            crate::backend::disk::DiskPlan::Unbounded { warning: None }
        } else {
            self.disk_plan(plan).await?
        };
        let slug = &plan.slug;
        let source = agent_source(plan, opts).map_err(|e| Self::image_err(slug, e))?;
        let mut builds = Vec::new();
        let build_ca = match &self.config.build_ca {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                Self::image_err(
                    slug,
                    format!(
                        "failed to read build_ca {}: {e}\nhint: point build_ca in config.toml (or ${}) at a PEM file of CA certificates",
                        path.display(),
                        crate::config::ENV_BUILD_CA
                    ),
                )
            })?,
            None => String::new(),
        };
        let base = image::agent_base(slug, &source, &self.config.base_image, &build_ca)
            .map_err(|e| Self::image_err(slug, e))?;
        // One inspect answers both "is it built?" and "what does it run?".
        let (inherited, config) = match self.inherited(&base.tag).await? {
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
        // The agent runs as uid 1000 with its own home, or not at all.
        let contracted = self
            .keep_contract(plan, &base.tag, &config, &mut builds)
            .await?;
        for note in &contracted.notes {
            if opts.agent_only {
                // The agent holds the terminal; the approval's record tells the outcome.
                tracing::info!(note = %note, "image contract");
            } else {
                eprintln!("claude-bottle: image contract: {note}");
            }
        }
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
        let mut agent_image = contracted.image;
        if let Some(dir) = &opts.workspace {
            let ws = image::workspace_copy(slug, &agent_image, dir)
                .map_err(|e| Self::image_err(slug, e))?;
            builds.push(images::ensure(&self.docker, &ws).await?);
            agent_image = ws.tag;
        }
        let agent_disk = self.agent_disk(plan, disk, &agent_image).await?;
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
            root_step_base: crate::state::dockerfile::needs_root_step(&base.dockerfile)
                .then(|| base.tag.clone()),
            agent_user: Some(contract::AGENT_RUN_AS.to_owned()),
            agent_disk,
            agent_entrypoint: inherited.entrypoint,
            shim,
            supervise_image,
            egress,
            builds,
        })
    }

    /// The entrypoint, command and contract-relevant config of image `tag`; `None` when the
    /// engine has no such image.
    async fn inherited(
        &self,
        tag: &str,
    ) -> Result<Option<(InheritedCommand, ImageConfig)>, BackendError> {
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
        Ok(Some((
            InheritedCommand {
                entrypoint: cfg.entrypoint.unwrap_or_default(),
                cmd: cfg.cmd.unwrap_or_default(),
            },
            ImageConfig {
                id: img.id.unwrap_or_else(|| tag.to_owned()),
                user: cfg.user.unwrap_or_default(),
                env_home,
            },
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
        let found = archive::read_image_file(
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
