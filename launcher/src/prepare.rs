//! The images a launch (or an approval's rebuild) uses: decided here, built by the backend.
//!
//! Which images a bottle needs, what each is built from, which are already there, what the agent's
//! disk bound and image contract ask, and the host caches that make a warm start cheap (the
//! binaries' digests, the contract's verdict and the image's trust roots, under
//! `state/<slug>/run/`) are decided in this module. The backend only answers questions about the
//! engine ([`Backend::engine_facts`], [`Backend::image_info`], [`Backend::first_entries`], …) and
//! builds, pulls and probes what it is told to: a second backend implements those primitives and
//! nothing of this.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backend::disk::{self, DiskPlan};
use crate::backend::{
    Backend, BackendError, BuildReport, EgressImages, EntryKind, FirstEntry, GitImages, ImageInfo,
    Prepared, Progress,
};
use crate::config::{Config, DiskLimit};
use crate::image::contract::{self, ACCOUNT_FILE_LIMIT, FileFact, ImageFacts, PathFact, Verdict};
use crate::image::{self, AgentSource, ImageRecipe, Sidecar};
use crate::manifest::Runtime;
use crate::plan::{BottlePlan, ImageSource};
use crate::stage;
use crate::state::EffectiveDockerfile;

/// Options of [`images`] that are not part of the bottle.
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

/// Find or build every image `plan` needs (only the agent's when `opts.agent_only`).
pub async fn images<B: Backend>(
    backend: &B,
    config: &Config,
    plan: &BottlePlan,
    opts: &PrepareOptions,
) -> Result<Prepared, BackendError> {
    let slug = &plan.slug;
    let image_err = |e: &dyn std::fmt::Display| image_err(slug, e);
    let mut notes = Vec::new();
    // A rebuild for an approval keeps the launch's runtime and agent settings, the disk among them.
    let disk = if opts.agent_only {
        DiskPlan::Unbounded { warning: None }
    } else {
        let facts = if plan.runtime != Runtime::Runc || plan.limits.disk != DiskLimit::Unbounded {
            Some(backend.engine_facts().await?)
        } else {
            None
        };
        if let Some(facts) = &facts {
            check_runtime(plan, &facts.runtimes)?;
        }
        match (plan.limits.disk, facts) {
            (DiskLimit::Unbounded, _) | (_, None) => DiskPlan::Unbounded { warning: None },
            (limit, Some(facts)) => {
                let decided = disk::decide(
                    limit,
                    &disk::driver_support(&facts.storage_driver, facts.backing_fs.as_deref()),
                );
                tracing::debug!(driver = facts.storage_driver, plan = ?decided, "agent disk");
                settled_or_refused(plan, decided, &mut notes)?
            }
        }
    };
    let source = agent_source(plan, opts).map_err(|e| image_err(&e))?;
    let mut prep = Preparing {
        backend,
        plan,
        builds: Vec::new(),
    };
    let build_ca = match &config.build_ca {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            image_err(&format!(
                "failed to read build_ca {}: {e}\nhint: point build_ca in config.toml (or ${}) at a PEM file of CA certificates",
                path.display(),
                crate::config::ENV_BUILD_CA
            ))
        })?,
        None => String::new(),
    };
    let base = image::agent_base(slug, &source, &config.base_image, &build_ca)
        .map_err(|e| image_err(&e))?;
    // One inspect answers both "is it built?" and "what does it run?".
    let info = match backend.image_info(&base.tag).await? {
        Some(found) => {
            prep.builds.push(BuildReport::cached(&base.tag));
            found
        }
        None => {
            prep.builds
                .push(backend.build_image(&base, Progress::Shown).await?);
            backend.image_info(&base.tag).await?.ok_or_else(|| {
                image_err(&format!("{} is missing right after its build", base.tag))
            })?
        }
    };
    // The agent runs as uid 1000 with its own home, or not at all.
    let contracted = prep.keep_contract(&base.tag, &info).await?;
    notes.extend(
        contracted
            .notes
            .iter()
            .map(|n| format!("image contract: {n}")),
    );
    let shim = config
        .binary(Sidecar::Relay.binary_name())
        .map_err(|e| image_err(&e))?;
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
        let ws = image::workspace_copy(slug, &agent_image, dir).map_err(|e| image_err(&e))?;
        prep.builds.push(ensure(backend, &ws).await?);
        agent_image = ws.tag;
    }
    let agent_disk = prep.agent_disk(disk, &agent_image, &mut notes).await?;
    let supervise_image = if plan.supervise && !opts.agent_only {
        let binary = config
            .binary(Sidecar::Supervise.binary_name())
            .map_err(|e| image_err(&e))?;
        Some(prep.scratch_image(Sidecar::Supervise, &binary).await?)
    } else {
        None
    };
    let egress = if crate::chain::needed(plan) && !opts.agent_only {
        Some(prep.egress_images(config, &base.tag, &shim).await?)
    } else {
        None
    };
    let git = if crate::git_gate::needed(plan) && !opts.agent_only {
        Some(prep.git_images(config).await?)
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
        agent_entrypoint: info.entrypoint,
        shim,
        supervise_image,
        egress,
        git,
        builds: prep.builds,
        notes,
    })
}

/// One preparation of a bottle's images under way: what it asks the engine for, and the builds
/// so far, which the caller reports.
struct Preparing<'a, B> {
    backend: &'a B,
    plan: &'a BottlePlan,
    builds: Vec<BuildReport>,
}

/// Build `image` + [`crate::state::dockerfile::ROOT_STEP`] ahead of any approval, so the first
/// approved capability of a bottle whose image ends as another user finds that step in the layer
/// cache and builds one step, not two. Runs nothing of any proposal. Returns the build's report,
/// or `None` when it was built before.
pub async fn warm_root_step<B: Backend>(
    backend: &B,
    image: &str,
) -> Result<Option<BuildReport>, BackendError> {
    let tag = format!("{image}-root");
    if backend.image_info(&tag).await?.is_some() {
        return Ok(None);
    }
    // Exactly the step a candidate Dockerfile has after the image's own steps: no LABEL line and
    // no build arguments, which would make the engine's cache see another step. The image
    // inherits the bottle's labels, so it is listed with the bottle's images.
    let recipe = image::raw_recipe(
        tag.clone(),
        format!("FROM {image}\n{}\n", crate::state::dockerfile::ROOT_STEP),
    )
    .map_err(|e| BackendError::Build {
        tag,
        detail: e.to_string(),
    })?;
    backend
        .build_image(&recipe, Progress::Quiet)
        .await
        .map(Some)
}

fn image_err(slug: &str, e: &dyn std::fmt::Display) -> BackendError {
    BackendError::Image {
        slug: slug.to_string(),
        detail: e.to_string(),
    }
}

/// Build `recipe` unless its tag exists.
async fn ensure<B: Backend>(
    backend: &B,
    recipe: &ImageRecipe,
) -> Result<BuildReport, BackendError> {
    if backend.image_info(&recipe.tag).await?.is_some() {
        tracing::debug!(tag = %recipe.tag, "image cached");
        return Ok(BuildReport::cached(&recipe.tag));
    }
    backend.build_image(recipe, Progress::Shown).await
}

/// The labels of the never-started containers a probe creates.
fn probe_labels(plan: &BottlePlan) -> Vec<(String, String)> {
    let mut labels = plan.base_labels();
    labels.push((crate::plan::LABEL_ROLE.to_string(), "probe".to_string()));
    labels
}

fn check_runtime(plan: &BottlePlan, runtimes: &[String]) -> Result<(), BackendError> {
    if plan.runtime == Runtime::Runc || runtimes.iter().any(|r| r == plan.runtime.as_str()) {
        return Ok(());
    }
    let mut available = runtimes.to_vec();
    available.sort();
    Err(BackendError::RuntimeMissing {
        slug: plan.slug.clone(),
        available: available.join(", "),
    })
}

/// `decided`, with its warning noted, or the refusal as an error.
fn settled_or_refused(
    plan: &BottlePlan,
    decided: DiskPlan,
    notes: &mut Vec<String>,
) -> Result<DiskPlan, BackendError> {
    match decided {
        DiskPlan::Refuse { why } => Err(BackendError::DiskUnbounded {
            slug: plan.slug.clone(),
            limit: match plan.limits.disk {
                DiskLimit::Bytes { bytes, .. } => crate::state::snapshot::human(bytes),
                DiskLimit::Unbounded => "none".into(),
            },
            why,
        }),
        DiskPlan::Unbounded {
            warning: Some(warning),
        } => {
            notes.push(warning);
            Ok(DiskPlan::Unbounded { warning: None })
        }
        other => Ok(other),
    }
}

/// The `size` the agent is created with, once `image` exists: a [`DiskPlan::Try`] asks the engine.
impl<B: Backend> Preparing<'_, B> {
    async fn agent_disk(
        &self,
        decided: DiskPlan,
        image: &str,
        notes: &mut Vec<String>,
    ) -> Result<Option<u64>, BackendError> {
        let (backend, plan) = (self.backend, self.plan);
        match decided {
            DiskPlan::Bound(bytes) => Ok(Some(bytes)),
            DiskPlan::Try { bytes, fallback } => {
                if backend
                    .accepts_disk_size(image, bytes, &probe_labels(plan))
                    .await?
                {
                    Ok(Some(bytes))
                } else {
                    match settled_or_refused(plan, *fallback, notes)? {
                        DiskPlan::Bound(b) => Ok(Some(b)),
                        _ => Ok(None),
                    }
                }
            }
            DiskPlan::Unbounded { .. } | DiskPlan::Refuse { .. } => Ok(None),
        }
    }
}

/// The image the agent runs (the image itself, or the contract layer over it), and the lines the
/// operator is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Contracted {
    image: String,
    notes: Vec<String>,
}

/// `base` as an image that keeps the contract: itself, or the contract layer over it (built when
/// missing, then checked again); an image that cannot be adapted is refused. The verdict is cached
/// per image id in the bottle's state folder, so a warm start creates no probe.
impl<B: Backend> Preparing<'_, B> {
    async fn keep_contract(
        &mut self,
        base: &str,
        info: &ImageInfo,
    ) -> Result<Contracted, BackendError> {
        let (backend, plan) = (self.backend, self.plan);
        let slug = &plan.slug;
        let dir = plan.layout().image_contract();
        let skills = !plan.skills.is_empty();
        let cache = dir.join(format!(
            "{}{}.json",
            file_key(&info.id),
            if skills { "-skills" } else { "" }
        ));
        if let Some(found) = read_cache(&cache)
            && (found.image == base || backend.image_info(&found.image).await?.is_some())
        {
            return Ok(found);
        }
        let refuse = |image: &str, e: contract::ContractError| {
            image_err(
                slug,
                &format!(
                    "{image} breaks the image contract (uid {}, home {}) and cannot be adapted: {e}",
                    contract::AGENT_UID,
                    contract::AGENT_HOME
                ),
            )
        };
        let started = std::time::Instant::now();
        let facts = self.probe(base, info).await?;
        tracing::debug!(
            image = base,
            ms = started.elapsed().as_millis(),
            "image contract probed"
        );
        let found = match contract::check(&facts, skills).map_err(|e| refuse(base, e))? {
            Verdict::Holds { notes } => Contracted {
                image: base.to_owned(),
                notes,
            },
            Verdict::Adapt(adaptation) => {
                let recipe = contract::contract_layer(slug, base, &info.id, &adaptation)
                    .map_err(|e| image_err(slug, &e))?;
                self.builds.push(ensure(backend, &recipe).await?);
                let after = self.probe(&recipe.tag, info).await?;
                contract::recheck(&after, skills).map_err(|e| refuse(&recipe.tag, e))?;
                let mut notes = adaptation.notes;
                notes.extend(
                    adaptation
                        .changes
                        .iter()
                        .map(|c| format!("adapted as {}: {c}", recipe.tag)),
                );
                Contracted {
                    image: recipe.tag,
                    notes,
                }
            }
        };
        // Only the newest image's verdict is kept.
        let _ = std::fs::remove_dir_all(&dir);
        let written = serde_json::to_vec(&found)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                std::fs::create_dir_all(&dir)?;
                std::fs::write(&cache, bytes)
            });
        if let Err(e) = written {
            tracing::warn!(path = %cache.display(), error = %e, "failed to cache the image contract's verdict");
        }
        Ok(found)
    }

    /// The facts of `image` the contract is checked on: its account files (at most
    /// [`ACCOUNT_FILE_LIMIT`] bytes each) and the owner of each folder the agent must own.
    async fn probe(&self, image: &str, info: &ImageInfo) -> Result<ImageFacts, BackendError> {
        let (backend, plan) = (self.backend, self.plan);
        let [home, claude, workspace] = ImageFacts::dir_paths();
        let asked = [
            (contract::PASSWD, ACCOUNT_FILE_LIMIT),
            (contract::GROUP, ACCOUNT_FILE_LIMIT),
            (home, 0),
            (claude, 0),
            (workspace, 0),
        ];
        let found = backend
            .first_entries(image, &asked, &probe_labels(plan))
            .await?;
        let [passwd, group, home, claude, workspace]: [FirstEntry; 5] =
            found.try_into().map_err(|got: Vec<FirstEntry>| {
                image_err(
                    &plan.slug,
                    &format!("the probe of {image} answered {} paths of 5", got.len()),
                )
            })?;
        Ok(ImageFacts {
            user: info.user.clone(),
            env_home: info.env_home.clone(),
            passwd: file_fact(passwd),
            group: file_fact(group),
            dirs: [path_fact(&home), path_fact(&claude), path_fact(&workspace)],
        })
    }
}

fn read_cache(path: &Path) -> Option<Contracted> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An engine reference or id as a file name.
fn file_key(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn file_fact(first: FirstEntry) -> FileFact {
    match first {
        FirstEntry::Missing => FileFact::Missing,
        FirstEntry::Entry {
            data: Some(data), ..
        } => FileFact::Text(data),
        FirstEntry::Entry {
            kind: EntryKind::File,
            size,
            ..
        } => FileFact::TooLarge { size },
        FirstEntry::Entry { kind, .. } => FileFact::NotAFile { kind: kind.name() },
    }
}

fn path_fact(first: &FirstEntry) -> PathFact {
    match first {
        FirstEntry::Missing => PathFact::Missing,
        FirstEntry::Entry {
            kind: EntryKind::Dir,
            uid,
            gid,
            ..
        } => PathFact::Dir {
            uid: *uid,
            gid: *gid,
        },
        FirstEntry::Entry { kind, .. } => PathFact::Other { kind: kind.name() },
    }
}

/// pipelock (pulled when missing), the egress-proxy (built from the base image) when a route
/// carries a credential, the relay, and the agent image's own roots for its trust bundle.
impl<B: Backend> Preparing<'_, B> {
    async fn egress_images(
        &mut self,
        config: &Config,
        agent_base: &str,
        shim: &Path,
    ) -> Result<EgressImages, BackendError> {
        let (backend, plan) = (self.backend, self.plan);
        let pipelock = config.pipelock_image.clone();
        backend.pull_image(&pipelock, "pipelock").await?;
        let egress_proxy = if crate::chain::needs_egress_proxy(plan) {
            let recipe = crate::egress::images::egress_proxy(&config.base_image)
                .map_err(|e| image_err(&plan.slug, &e))?;
            self.builds.push(ensure(backend, &recipe).await?);
            Some(recipe.tag)
        } else {
            None
        };
        let relay = self.scratch_image(Sidecar::Relay, shim).await?;
        let image_roots = self.image_roots(agent_base).await?;
        Ok(EgressImages {
            pipelock,
            egress_proxy,
            relay,
            image_roots,
        })
    }

    /// The git gate's image (built over the base image when missing) and its pipelock (the
    /// configured one, pulled when missing).
    async fn git_images(&mut self, config: &Config) -> Result<GitImages, BackendError> {
        let (backend, plan) = (self.backend, self.plan);
        let pipelock = config.pipelock_image.clone();
        backend.pull_image(&pipelock, "pipelock").await?;
        let binary = config
            .binary(crate::git_gate::BINARY)
            .map_err(|e| image_err(&plan.slug, &e))?;
        // Known from the binary's cached digest: a warm start neither reads nor hashes it.
        let cache = plan.layout().binary_digest(crate::git_gate::BINARY);
        let digest = image::file_digest(&binary, &cache).map_err(|e| image_err(&plan.slug, &e))?;
        let tag = crate::git_gate::image_tag(&config.base_image, &digest)
            .map_err(|e| image_err(&plan.slug, &e))?;
        if backend.image_info(&tag).await?.is_some() {
            self.builds.push(BuildReport::cached(&tag));
        } else {
            let recipe = crate::git_gate::image(&config.base_image, &binary)
                .map_err(|e| image_err(&plan.slug, &e))?;
            self.builds.push(ensure(backend, &recipe).await?);
        }
        Ok(GitImages {
            gate: tag,
            pipelock,
        })
    }

    /// The `FROM scratch` image of one of our static binaries, built when missing. Its tag comes from
    /// the binary's digest, cached by the file's identity in the bottle's state folder, so a warm
    /// start neither reads nor hashes the binary.
    async fn scratch_image(
        &mut self,
        sidecar: Sidecar,
        binary: &Path,
    ) -> Result<String, BackendError> {
        let (backend, plan) = (self.backend, self.plan);
        let slug = &plan.slug;
        let cache = plan.layout().binary_digest(sidecar.binary_name());
        let digest = image::file_digest(binary, &cache).map_err(|e| image_err(slug, &e))?;
        let tag = image::sidecar_scratch_tag(sidecar, &digest).map_err(|e| image_err(slug, &e))?;
        if backend.image_info(&tag).await?.is_some() {
            tracing::debug!(tag = %tag, "image cached");
            self.builds.push(BuildReport::cached(&tag));
            return Ok(tag);
        }
        let recipe = image::sidecar_scratch(sidecar, binary).map_err(|e| image_err(slug, &e))?;
        self.builds
            .push(backend.build_image(&recipe, Progress::Shown).await?);
        Ok(recipe.tag)
    }

    /// The system bundle of `image`, cached per image tag (tags name content) in the bottle's state
    /// folder, so a warm start does not create a probe container.
    async fn image_roots(&self, image: &str) -> Result<String, BackendError> {
        let (backend, plan) = (self.backend, self.plan);
        let dir = plan.layout().image_roots();
        let cached = dir.join(format!("{}.pem", file_key(image)));
        if let Ok(text) = std::fs::read_to_string(&cached) {
            return Ok(text);
        }
        let found = backend
            .read_image_file(image, crate::chain::SYSTEM_BUNDLE, &probe_labels(plan))
            .await?;
        let text = found
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        // Only the newest image's roots are kept.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&cached, &text))
            .map_err(|e| image_err(&plan.slug, &format!("{}: {e}", cached.display())))?;
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
