//! Image recipes: Dockerfile composition, build contexts assembled in memory, content-hash tags.
//!
//! A recipe is everything a backend needs to build one image and nothing engine-specific: the
//! Dockerfile, a tar build context that contains it at [`DOCKERFILE_IN_CONTEXT`], build arguments,
//! labels and a tag. The Docker backend hands these to the Engine's build API (`dockerfile =
//! DOCKERFILE_IN_CONTEXT`, `t = tag`, `buildargs`, `labels`) and skips the build when an image with
//! the tag already exists.
//!
//! The agent image of a bottle is layered, each layer a recipe built `FROM` the previous tag:
//! 1. [`agent_base`]: the embedded `docker/agent/Dockerfile`, the bottle's own `dockerfile:`, or
//!    the per-bottle Dockerfile that approvals extend;
//! 2. [`contract::contract_layer`] (only for an image that breaks the image contract: no user
//!    1000, a home it does not own): the account entry and the folders the agent must own;
//! 3. [`workspace_copy`] (only with `start --cwd DIR`): DIR copied to `/workspace`.
//!
//! What the launcher must put into every agent (the shim, the entrypoint, the bash hook, later the
//! per-launch CA) is *not* a layer: it is mounted read-only when the container is created. A layer
//! after the bottle's own steps would have to be rebuilt after every approved step, and the CA
//! changes at every launch; mounted, an approval rebuilds exactly its own step.
//!
//! Sidecars that are our own binaries use [`sidecar_scratch`].
//!
//! Tags are `claude-bottle/<slug>:<first 12 hex digits of a sha256>` over the Dockerfile, build
//! args, labels and context bytes, so an unchanged recipe names an image that already exists and a
//! changed one builds anew (reusing the engine's layer cache). A tag does not track a moving base
//! tag such as `debian:bookworm-slim`: pin a digest in the base image setting to follow one.

mod context;
pub mod contract;
mod digest;
mod dockerignore;
mod recipes;

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::state::dockerfile::syntax;

pub use context::{ContextBuilder, FIXED_MTIME};
pub use digest::{digest_of, file_digest};
pub use dockerignore::{DockerIgnore, PatternError};
pub(crate) use recipes::check_reference;
pub use recipes::{
    AgentSource, BASH_ENV_PATH, BASH_ENV_SCRIPT, BUILD_CA_IN_CONTEXT, ENTRYPOINT_SCRIPT,
    InheritedCommand, Sidecar, agent_base, is_static_elf, sidecar_scratch, sidecar_scratch_tag,
    workspace_copy,
};

/// Where the Dockerfile sits inside every recipe's context (the build API's `dockerfile`).
pub const DOCKERFILE_IN_CONTEXT: &str = ".claude-bottle.Dockerfile";

/// The embedded default agent Dockerfile (`ARG BASE_IMAGE`, Claude Code, user `agent`).
pub const DEFAULT_AGENT_DOCKERFILE: &str = include_str!("../../../docker/agent/Dockerfile");

/// Build argument naming the base image of the agent Dockerfile.
pub const BASE_IMAGE_ARG: &str = "BASE_IMAGE";

/// The shim inside the agent image.
pub const SHIM_PATH: &str = "/usr/local/bin/claude-bottle-shim";
/// The entrypoint the launcher injects (root-owned, 0755).
pub const ENTRYPOINT_PATH: &str = "/usr/local/lib/claude-bottle/entrypoint.sh";
/// The agent's working copy, as the embedded Dockerfile makes it.
pub const WORKSPACE_DIR: &str = "/workspace";

/// The engine labels (one definition, in `plan`); roles of images are `agent-base`, `agent`,
/// `workspace` and `sidecar-<name>`.
pub use crate::plan::{LABEL_BOTTLE, LABEL_ROLE, LABEL_VERSION};

/// One image to build: the backend-neutral input of a build.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageRecipe {
    /// `claude-bottle/<slug>:<12 hex>`; identical recipes have identical tags.
    pub tag: String,
    /// The Dockerfile text (also in `context` at [`DOCKERFILE_IN_CONTEXT`]).
    pub dockerfile: String,
    /// Uncompressed tar archive of the build context.
    pub context: Vec<u8>,
    pub labels: BTreeMap<String, String>,
    pub build_args: BTreeMap<String, String>,
}

impl std::fmt::Debug for ImageRecipe {
    // The context can be megabytes: show its size, not its bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageRecipe")
            .field("tag", &self.tag)
            .field("dockerfile", &self.dockerfile)
            .field("context_bytes", &self.context.len())
            .field("labels", &self.labels)
            .field("build_args", &self.build_args)
            .finish()
    }
}

/// Why a recipe could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to use {path} as a build context: it is not a directory")]
    NotADirectory { path: PathBuf },
    #[error(
        "failed to add {path} to a build context: its name is not UTF-8\nhint: rename it or list it in .dockerignore"
    )]
    NonUtf8Path { path: PathBuf },
    #[error("failed to parse {path}: {error}\nhint: .dockerignore uses Docker's pattern syntax")]
    Dockerignore { path: PathBuf, error: PatternError },
    #[error("failed to write the build context at {path:?}: {source}")]
    Archive {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to use {reference:?} as an image: not an image reference\nhint: check $CLAUDE_BOTTLE_BASE_IMAGE and base_image in config.toml"
    )]
    InvalidReference { reference: String },
    #[error(
        "failed to use {path} in a FROM scratch image: it is dynamically linked\nhint: build the static binaries with scripts/build-static.sh and point CLAUDE_BOTTLE_BIN_DIR at them"
    )]
    NotStatic { path: PathBuf },
    #[error(
        "failed to name an image for bottle {slug:?}: not a valid image name\nhint: bottle slugs use lowercase letters, digits, '.', '_' and '-'"
    )]
    InvalidSlug { slug: String },
}

impl ImageRecipe {
    /// Assembles a recipe: puts `dockerfile` into `context` and computes the tag.
    pub fn new(
        slug: &str,
        dockerfile: String,
        mut context: ContextBuilder,
        labels: BTreeMap<String, String>,
        build_args: BTreeMap<String, String>,
    ) -> Result<Self, ImageError> {
        check_slug(slug)?;
        // The labels go in as one LABEL line after the last FROM: the build API's `labels` parameter
        // would add a step per label, and every step of a rebuild costs a layer commit.
        let built = with_label_line(&dockerfile, &labels);
        context.file(DOCKERFILE_IN_CONTEXT, 0o644, built.as_bytes());
        let context = context.finish()?;
        let hash = content_hash(&dockerfile, &build_args, &labels, &context);
        Ok(Self {
            tag: format!("claude-bottle/{slug}:{}", &hash[..12]),
            dockerfile: built,
            context,
            labels,
            build_args,
        })
    }

    /// The hash part of the tag.
    pub fn content_id(&self) -> &str {
        self.tag.rsplit_once(':').map_or("", |(_, id)| id)
    }
}

/// A recipe that builds `dockerfile` exactly as given (no LABEL line, no build arguments, a
/// context of the Dockerfile alone) under `tag`: for a step that must match, in the engine's
/// layer cache, the step a later build will have.
pub fn raw_recipe(tag: String, dockerfile: String) -> Result<ImageRecipe, ImageError> {
    let mut context = ContextBuilder::new();
    context.file(DOCKERFILE_IN_CONTEXT, 0o644, dockerfile.as_bytes());
    Ok(ImageRecipe {
        tag,
        dockerfile,
        context: context.finish()?,
        labels: BTreeMap::new(),
        build_args: BTreeMap::new(),
    })
}

/// `dockerfile` with one `LABEL "k"="v" …` line right after its last `FROM` (nothing when there
/// are no labels). Early, the step is the same in every rebuild of a bottle and comes from the
/// cache; after the last FROM, it lands in the final stage of a multi-stage file.
fn with_label_line(dockerfile: &str, labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return dockerfile.to_owned();
    }
    let mut line = String::from("LABEL");
    for (k, v) in labels {
        // JSON string quoting is valid Dockerfile quoting for these values.
        line.push_str(&format!(" {}={}", json_string(k), json_string(v)));
    }
    // After the last line of the last FROM as the parser reads it ([`syntax::parse`]): a FROM
    // continued over several lines, also by a backtick under `# escape=`, takes the label after
    // its end. Without a FROM, or when the text ends inside the FROM's continuation, the label
    // goes at the end.
    let after = syntax::parse(dockerfile)
        .into_iter()
        .rfind(|i| i.is("FROM"))
        .filter(|i| !i.open)
        .map(|i| i.last_line);
    let mut label = Some(line);
    let mut out = String::with_capacity(dockerfile.len() + 256);
    // Line by line, each ending in `\n` (a `\r\n` becomes one; a last line without one gets it).
    for (i, l) in dockerfile.lines().enumerate() {
        out.push_str(l);
        out.push('\n');
        if Some(i) == after
            && let Some(label) = label.take()
        {
            out.push_str(&label);
            out.push('\n');
        }
    }
    if let Some(label) = label {
        out.push_str(&label);
        out.push('\n');
    }
    out
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// The standard labels of an image.
pub fn labels(bottle: Option<&str>, role: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if let Some(bottle) = bottle {
        labels.insert(LABEL_BOTTLE.to_owned(), bottle.to_owned());
    }
    labels.insert(LABEL_ROLE.to_owned(), role.to_owned());
    labels.insert(
        LABEL_VERSION.to_owned(),
        env!("CARGO_PKG_VERSION").to_owned(),
    );
    labels
}

/// Hex sha256 over every input of a build, each length-prefixed so no two inputs collide.
pub(crate) fn content_hash(
    dockerfile: &str,
    build_args: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    context: &[u8],
) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(b"claude-bottle image recipe v1");
    field(dockerfile.as_bytes());
    for map in [build_args, labels] {
        field(&(map.len() as u64).to_le_bytes());
        for (k, v) in map {
            field(k.as_bytes());
            field(v.as_bytes());
        }
    }
    field(context);
    digest::hex(&hasher.finalize())
}

/// A slug is one path component of a Docker repository name.
fn check_slug(slug: &str) -> Result<(), ImageError> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    let edges_ok = slug.starts_with(|c: char| c.is_ascii_alphanumeric())
        && slug.ends_with(|c: char| c.is_ascii_alphanumeric());
    if slug.len() <= 128 && edges_ok && slug.chars().all(allowed) {
        Ok(())
    } else {
        Err(ImageError::InvalidSlug {
            slug: slug.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests;
