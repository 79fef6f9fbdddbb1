//! Bottle and agent manifests: Markdown files whose YAML front matter is the configuration.
//!
//! `load` reads `bottles/<name>.md` (or the embedded default), its agent and its skills, and validates
//! everything into typed values, collecting every problem as a [`Diagnostic`].

mod agent;
mod diagnostic;
mod embedded;
pub use embedded::DEFAULT_ALLOWLIST;
mod frontmatter;
mod legacy;
mod raw;
mod route;
mod validate;

use std::path::{Path, PathBuf};

pub use claude_bottle_protocol::git_policy::upstream::Transport;
pub use diagnostic::{Diagnostic, ManifestError};
pub use route::{AuthScheme, Route, RouteAuth, TokenRef};

use crate::home::Home;

/// Where a manifest came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// Compiled into the binary; used when no file of that name exists.
    Embedded,
}

impl Source {
    /// The path diagnostics name: the file, or `<embedded>/<kind>/<name>.md`.
    pub fn display_path(&self, kind: &str, name: &str) -> PathBuf {
        match self {
            Source::File(p) => p.clone(),
            Source::Embedded => PathBuf::from(format!("<embedded>/{kind}/{name}.md")),
        }
    }
}

/// A validated bottle with its agent resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Bottle {
    pub name: String,
    pub source: Source,
    pub agent: Agent,
    pub env: Vec<EnvEntry>,
    pub skills: Vec<Skill>,
    pub runtime: Runtime,
    /// A bottle's own Dockerfile (resolved against the bottle file's folder); else the embedded image.
    pub dockerfile: Option<PathBuf>,
    pub supervise: bool,
    pub git: Vec<GitRemote>,
    /// Routes as written in the bottle (the default allowlist is folded in by the plan).
    pub routes: Vec<Route>,
    pub limits: Limits,
    /// The Markdown after the front matter: free notes.
    pub notes: String,
}

/// A validated agent definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    pub source: Source,
    /// argv run in the agent container.
    pub command: Vec<String>,
    pub model: Option<String>,
    pub skills: Vec<String>,
    /// The body of the agent file: the agent's prompt.
    pub prompt: String,
    /// Arguments appended to `command` when the session resumes (after a rebuild, or
    /// `claude-bottle resume`); e.g. `[--continue]` for Claude Code.
    pub resume: Vec<String>,
}

/// One `env:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvEntry {
    /// `NAME`: the host's value is forwarded at launch.
    Forward(String),
    /// `NAME=value`: a literal written in the bottle.
    Literal { name: String, value: String },
}

impl EnvEntry {
    pub fn name(&self) -> &str {
        match self {
            EnvEntry::Forward(n) => n,
            EnvEntry::Literal { name, .. } => name,
        }
    }
}

/// A skill folder mounted read-only into the agent's skills directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    pub name: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    /// gVisor.
    Runsc,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Runsc => "runsc",
        }
    }
}

/// A git remote served to the agent through the git gate; the credential stays in the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRemote {
    pub name: String,
    pub upstream: String,
    /// How the gate reaches the upstream, and its host (allowlisted in the gate's pipelock).
    pub transport: Transport,
    pub host: String,
    /// https: the token the gate sends (none for a public upstream).
    pub token_ref: Option<TokenRef>,
    /// ssh: the private key the gate uses, mounted read-only into the gate alone.
    pub ssh_key: Option<PathBuf>,
    /// ssh: the `known_hosts` file the upstream's host key is checked against
    /// (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// Ref patterns the agent may push, e.g. `claude/*`.
    pub push: Vec<String>,
}

/// The bottle's own resource limits (`limits:`); unset ones fall back to `config.toml`'s
/// `[agent]` defaults when the plan is built.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub memory_bytes: Option<i64>,
    pub pids: Option<i64>,
    /// CPUs as a fraction (1.5 = one and a half cores); `None` leaves the engine's default.
    pub cpus: Option<f64>,
}

/// Load and validate the bottle `name` from `home` (or the embedded one of that name).
pub fn load(home: &Home, name: &str) -> Result<Bottle, ManifestError> {
    validate::load_bottle(home, name)
}

/// Bottle names are file stems that also become container and network names.
pub fn check_bottle_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid bottle name {name:?}: use 1-48 letters, digits, '-' or '_', starting with a letter or digit"
        ))
    }
}

/// The bottles in `home/bottles`, plus the embedded ones, sorted by name.
pub fn list_names(home: &Home) -> Vec<String> {
    let mut names: Vec<String> = embedded::BOTTLES
        .iter()
        .map(|(n, _)| (*n).to_string())
        .collect();
    if let Ok(entries) = std::fs::read_dir(home.root().join("bottles")) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "md")
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
            {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Read a manifest file; `Ok(None)` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, Diagnostic> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Diagnostic::new(
            path,
            None,
            "",
            format!("failed to read: {e}"),
        )),
    }
}
