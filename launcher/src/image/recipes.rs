//! The recipes of claude-bottle's images: agent base, launcher layer, workspace copy, sidecars.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    BASE_IMAGE_ARG, ContextBuilder, DEFAULT_AGENT_DOCKERFILE, DockerIgnore, ImageError,
    ImageRecipe, WORKSPACE_DIR, labels,
};

/// Sourced by every bash in the agent (`BASH_ENV`): reports commands that are not installed.
pub const BASH_ENV_SCRIPT: &str = include_str!("../../../docker/inject/bash-env.sh");
/// Where [`BASH_ENV_SCRIPT`] lives in the agent image.
pub const BASH_ENV_PATH: &str = "/usr/local/lib/claude-bottle/bash-env.sh";

/// The entrypoint script put into every agent image.
pub const ENTRYPOINT_SCRIPT: &str = include_str!("../../../docker/inject/entrypoint.sh");
const SUPERVISE_DOCKERFILE: &str = include_str!("../../../docker/supervise/Dockerfile");
const RELAY_DOCKERFILE: &str = include_str!("../../../docker/relay/Dockerfile");

/// Name of the shim binary, on the host and in the images.
pub(crate) const SHIM_BINARY: &str = "claude-bottle-shim";
/// Name of the supervise binary, on the host and in its image.
pub(crate) const SUPERVISE_BINARY: &str = "claude-bottle-supervise";

/// Where the first layer of a bottle's agent image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// The embedded [`DEFAULT_AGENT_DOCKERFILE`]; its context holds [`BUILD_CA_IN_CONTEXT`] only.
    Embedded,
    /// A bottle's own Dockerfile (its text) and the directory that is its build context, filtered
    /// by that directory's `.dockerignore`.
    Custom {
        dockerfile: String,
        context_dir: PathBuf,
    },
    /// Dockerfile text with the embedded image's context: the per-bottle Dockerfile of a bottle that
    /// started from the embedded image (approved steps never COPY from the host).
    Text { dockerfile: String },
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

/// The `ENTRYPOINT` and `CMD` of the agent image (from an image inspect): the launcher's
/// entrypoint is put in front of the image's own when the container is created, so the container
/// runs exactly what it would have run without it.
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

/// The file of the embedded agent image's build context that holds `build_ca` (PEM, empty without
/// one); its download stage trusts it besides the base image's roots.
pub const BUILD_CA_IN_CONTEXT: &str = "build-ca.pem";

/// The bottle's agent image before the launcher's layer: the embedded Dockerfile built `FROM
/// base_image`, or the bottle's own (which gets `BASE_IMAGE` too when it declares `ARG BASE_IMAGE`).
/// `build_ca` is the text of `config::Config::build_ca` ("" without one), for the embedded image.
pub fn agent_base(
    slug: &str,
    source: &AgentSource,
    base_image: &str,
    build_ca: &str,
) -> Result<ImageRecipe, ImageError> {
    check_reference(base_image)?;
    let embedded_context = || {
        let mut context = ContextBuilder::new();
        context.file(BUILD_CA_IN_CONTEXT, 0o644, build_ca.as_bytes());
        context
    };
    let (dockerfile, context) = match source {
        AgentSource::Embedded => (DEFAULT_AGENT_DOCKERFILE.to_owned(), embedded_context()),
        AgentSource::Text { dockerfile } => (dockerfile.clone(), embedded_context()),
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

/// `start --cwd DIR`: `from` with DIR's contents (minus its `.dockerignore`) copied to
/// [`WORKSPACE_DIR`], owned by the agent's uid and gid as numbers (an image adapted by the
/// contract layer may name uid 1000 otherwise). The agent works on this copy, never on DIR.
pub fn workspace_copy(slug: &str, from: &str, dir: &Path) -> Result<ImageRecipe, ImageError> {
    check_reference(from)?;
    let ignore = read_dockerignore(dir)?;
    let mut context = ContextBuilder::new();
    context.tree("workspace", dir, &ignore)?;
    let dockerfile = format!(
        "# Generated by claude-bottle: the agent's copy of the working folder.\n\
         FROM {from}\n\
         COPY --chown={uid}:{gid} workspace/ {WORKSPACE_DIR}/\n",
        uid = super::contract::AGENT_UID,
        gid = super::contract::AGENT_GID,
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
    if !is_static_elf(&data) {
        return Err(ImageError::NotStatic {
            path: binary.to_owned(),
        });
    }
    let tag = sidecar_scratch_tag(sidecar, &super::digest::digest_of(&data))?;
    let mut context = ContextBuilder::new();
    context.file(sidecar.binary_name(), 0o755, data);
    let mut recipe = ImageRecipe::new(
        sidecar.slug(),
        sidecar.dockerfile().to_owned(),
        context,
        labels(None, sidecar.slug()),
        BTreeMap::new(),
    )?;
    recipe.tag = tag;
    Ok(recipe)
}

/// The tag of [`sidecar_scratch`]'s image for a binary whose SHA-256 is `digest`: it names the
/// Dockerfile, the labels and the binary's content, and is known without reading the binary
/// (see [`super::file_digest`]), so a warm start reads no binary at all.
pub fn sidecar_scratch_tag(sidecar: Sidecar, digest: &str) -> Result<String, ImageError> {
    super::check_slug(sidecar.slug())?;
    let content = format!("{} 0755 sha256:{digest}", sidecar.binary_name());
    let hash = super::content_hash(
        sidecar.dockerfile(),
        &BTreeMap::new(),
        &labels(None, sidecar.slug()),
        content.as_bytes(),
    );
    Ok(format!("claude-bottle/{}:{}", sidecar.slug(), &hash[..12]))
}

/// `dir/.dockerignore`, or nothing ignored when there is none; `dir` must be a directory.
pub(crate) fn read_dockerignore(dir: &Path) -> Result<DockerIgnore, ImageError> {
    super::context::check_dir(dir)?;
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

/// Whether a Dockerfile has an `ARG name` (with or without a default) before or after `FROM`:
/// the first argument of an `ARG` instruction, as the parser reads them.
fn declares_arg(dockerfile: &str, name: &str) -> bool {
    crate::state::dockerfile::syntax::parse(dockerfile)
        .iter()
        .filter(|i| i.is("ARG"))
        .filter_map(|i| i.arguments()?.split_whitespace().next())
        .any(|w| w.split('=').next() == Some(name))
}

/// An image reference goes into a Dockerfile line: it must be one word.
pub(crate) fn check_reference(reference: &str) -> Result<(), ImageError> {
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

/// True for a 64-bit ELF with no program interpreter (`PT_INTERP`): it runs in `FROM scratch`.
/// A dynamically linked binary would fail there with a confusing "no such file or directory".
pub fn is_static_elf(data: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    // ELF magic, 64-bit, little-endian.
    if data.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let at = phoff + i * usize::from(phentsize);
        u32_at(at).is_some_and(|t| t != PT_INTERP)
    })
}

#[cfg(test)]
mod static_elf_tests {
    use super::is_static_elf;

    /// A 64-bit little-endian ELF header with `phnum` program headers of type `ptype`.
    fn elf(ptype: u32, phnum: u16) -> Vec<u8> {
        let mut d = vec![0u8; 64 + 56 * usize::from(phnum)];
        d[..6].copy_from_slice(b"\x7fELF\x02\x01");
        d[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        d[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        d[0x38..0x3a].copy_from_slice(&phnum.to_le_bytes());
        for i in 0..usize::from(phnum) {
            d[64 + i * 56..64 + i * 56 + 4].copy_from_slice(&ptype.to_le_bytes());
        }
        d
    }

    #[test]
    fn interpreter_means_dynamic() {
        assert!(is_static_elf(&elf(1, 3)));
        assert!(!is_static_elf(&elf(3, 3)));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        assert!(!is_static_elf(&elf(1, 3)[..40]));
        let me = std::fs::read(std::env::current_exe().expect("exe")).expect("read exe");
        assert!(!is_static_elf(&me), "the test binary is dynamically linked");
    }
}
