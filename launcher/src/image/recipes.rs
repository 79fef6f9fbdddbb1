//! The recipes of claude-bottle's images: agent base, launcher layer, workspace copy, sidecars.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{
    AGENT_USER, BASE_IMAGE_ARG, ContextBuilder, DEFAULT_AGENT_DOCKERFILE, DockerIgnore,
    ENTRYPOINT_PATH, ImageError, ImageRecipe, SHIM_PATH, WORKSPACE_DIR, labels,
};

/// The entrypoint script put into every agent image.
const ENTRYPOINT_SCRIPT: &str = include_str!("../../../docker/inject/entrypoint.sh");
const SUPERVISE_DOCKERFILE: &str = include_str!("../../../docker/supervise/Dockerfile");
const RELAY_DOCKERFILE: &str = include_str!("../../../docker/relay/Dockerfile");

/// Name of the shim binary, on the host and in the images.
pub(crate) const SHIM_BINARY: &str = "claude-bottle-shim";
/// Name of the supervise binary, on the host and in its image.
pub(crate) const SUPERVISE_BINARY: &str = "claude-bottle-supervise";

/// Where the first layer of a bottle's agent image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// The embedded [`DEFAULT_AGENT_DOCKERFILE`]; its context is empty.
    Embedded,
    /// A bottle's own Dockerfile (its text) and the directory that is its build context, filtered
    /// by that directory's `.dockerignore`.
    Custom {
        dockerfile: String,
        context_dir: PathBuf,
    },
}

impl AgentSource {
    /// A bottle's `dockerfile:`: the file's text, with the file's directory as build context.
    pub fn from_dockerfile(path: &Path) -> Result<Self, ImageError> {
        let dockerfile = std::fs::read_to_string(path).map_err(|source| ImageError::Read {
            path: path.to_owned(),
            source,
        })?;
        let context_dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(Self::Custom {
            dockerfile,
            context_dir,
        })
    }
}

/// The `ENTRYPOINT` and `CMD` of the image below the launcher's layer (from an image inspect).
///
/// Setting `ENTRYPOINT` in a derived image drops the base's `CMD`, so the launcher's layer restates
/// both behind its own entrypoint: the container runs exactly what it would have run without it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InheritedCommand {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

/// A sidecar image holding one of our static binaries, `FROM scratch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sidecar {
    /// `claude-bottle-supervise`: the proposal queue's server.
    Supervise,
    /// `claude-bottle-shim relay`: the sidecar end of a Unix-socket ↔ TCP bridge.
    Relay,
}

impl Sidecar {
    /// The binary the image holds (look it up with [`crate::config::Config::binary`]).
    pub fn binary_name(self) -> &'static str {
        match self {
            Sidecar::Supervise => SUPERVISE_BINARY,
            Sidecar::Relay => SHIM_BINARY,
        }
    }

    /// The image's slug: it is tagged `claude-bottle/<slug>:<hash>`, shared by all bottles.
    pub fn slug(self) -> &'static str {
        match self {
            Sidecar::Supervise => "sidecar-supervise",
            Sidecar::Relay => "sidecar-relay",
        }
    }

    fn dockerfile(self) -> &'static str {
        match self {
            Sidecar::Supervise => SUPERVISE_DOCKERFILE,
            Sidecar::Relay => RELAY_DOCKERFILE,
        }
    }
}

/// The bottle's agent image before the launcher's layer: the embedded Dockerfile built `FROM
/// base_image`, or the bottle's own (which gets `BASE_IMAGE` too when it declares `ARG BASE_IMAGE`).
pub fn agent_base(
    slug: &str,
    source: &AgentSource,
    base_image: &str,
) -> Result<ImageRecipe, ImageError> {
    check_reference(base_image)?;
    let (dockerfile, context) = match source {
        AgentSource::Embedded => (DEFAULT_AGENT_DOCKERFILE.to_owned(), ContextBuilder::new()),
        AgentSource::Custom {
            dockerfile,
            context_dir,
        } => {
            let ignore = read_dockerignore(context_dir)?;
            let mut context = ContextBuilder::new();
            context.tree("", context_dir, &ignore)?;
            (dockerfile.clone(), context)
        }
    };
    let mut build_args = BTreeMap::new();
    if declares_arg(&dockerfile, BASE_IMAGE_ARG) {
        build_args.insert(BASE_IMAGE_ARG.to_owned(), base_image.to_owned());
    }
    ImageRecipe::new(
        slug,
        dockerfile,
        context,
        labels(Some(slug), "agent-base"),
        build_args,
    )
}

/// The launcher's layer over `from`: the shim at [`SHIM_PATH`] and the entrypoint at
/// [`ENTRYPOINT_PATH`] (both root-owned, 0755), the entrypoint placed before `inherited`. The
/// image's `USER` stays what `from` set.
pub fn agent_injected(
    slug: &str,
    from: &str,
    shim_binary: &Path,
    inherited: &InheritedCommand,
) -> Result<ImageRecipe, ImageError> {
    check_reference(from)?;
    let shim = read_file(shim_binary)?;
    let mut context = ContextBuilder::new();
    context
        .file(SHIM_BINARY, 0o755, shim)
        .file("entrypoint.sh", 0o755, ENTRYPOINT_SCRIPT);

    let mut entrypoint = vec![ENTRYPOINT_PATH.to_owned()];
    entrypoint.extend(inherited.entrypoint.iter().cloned());
    let mut dockerfile = format!(
        "# Generated by claude-bottle: what the launcher puts into every agent image.\n\
         FROM {from}\n\
         COPY --chown=0:0 {SHIM_BINARY} {SHIM_PATH}\n\
         COPY --chown=0:0 entrypoint.sh {ENTRYPOINT_PATH}\n\
         ENTRYPOINT {}\n",
        json_array(&entrypoint)
    );
    if !inherited.cmd.is_empty() {
        let _ = writeln!(dockerfile, "CMD {}", json_array(&inherited.cmd));
    }
    ImageRecipe::new(
        slug,
        dockerfile,
        context,
        labels(Some(slug), "agent"),
        BTreeMap::new(),
    )
}

/// `start --cwd DIR`: `from` with DIR's contents (minus its `.dockerignore`) copied to
/// [`WORKSPACE_DIR`], owned by [`AGENT_USER`]. The agent works on this copy, never on DIR.
pub fn workspace_copy(slug: &str, from: &str, dir: &Path) -> Result<ImageRecipe, ImageError> {
    check_reference(from)?;
    let ignore = read_dockerignore(dir)?;
    let mut context = ContextBuilder::new();
    context.tree("workspace", dir, &ignore)?;
    let dockerfile = format!(
        "# Generated by claude-bottle: the agent's copy of the working folder.\n\
         FROM {from}\n\
         COPY --chown={AGENT_USER} workspace/ {WORKSPACE_DIR}/\n"
    );
    ImageRecipe::new(
        slug,
        dockerfile,
        context,
        labels(Some(slug), "workspace"),
        BTreeMap::new(),
    )
}

/// A sidecar image `FROM scratch` holding `binary` (a static build, see
/// `scripts/build-static.sh`) under its own name.
pub fn sidecar_scratch(sidecar: Sidecar, binary: &Path) -> Result<ImageRecipe, ImageError> {
    let data = read_file(binary)?;
    let mut context = ContextBuilder::new();
    context.file(sidecar.binary_name(), 0o755, data);
    ImageRecipe::new(
        sidecar.slug(),
        sidecar.dockerfile().to_owned(),
        context,
        labels(None, sidecar.slug()),
        BTreeMap::new(),
    )
}

/// `dir/.dockerignore`, or nothing ignored when there is none; `dir` must be a directory.
pub(crate) fn read_dockerignore(dir: &Path) -> Result<DockerIgnore, ImageError> {
    let meta = std::fs::metadata(dir).map_err(|source| ImageError::Read {
        path: dir.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ImageError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    let path = dir.join(".dockerignore");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            DockerIgnore::parse(&text).map_err(|error| ImageError::Dockerignore { path, error })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerIgnore::default()),
        Err(source) => Err(ImageError::Read { path, source }),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|source| ImageError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Whether a Dockerfile has an `ARG name` (with or without a default) before or after `FROM`.
fn declares_arg(dockerfile: &str, name: &str) -> bool {
    dockerfile.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next().is_some_and(|w| w.eq_ignore_ascii_case("ARG"))
            && words
                .next()
                .is_some_and(|w| w.split('=').next() == Some(name))
    })
}

/// An image reference goes into a Dockerfile line: it must be one word.
fn check_reference(reference: &str) -> Result<(), ImageError> {
    if reference.is_empty()
        || reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ImageError::InvalidReference {
            reference: reference.to_owned(),
        });
    }
    Ok(())
}

/// A Dockerfile exec-form array (JSON).
fn json_array(items: &[String]) -> String {
    serde_json::to_string(items).expect("a list of strings always serializes")
}
