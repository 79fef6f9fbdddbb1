//! `config.toml` in CLAUDE_BOTTLE_HOME: operator settings that are not per bottle.
//!
//! Every key is optional; environment variables override the file, the file overrides the built-in
//! defaults. The file is strict (unknown keys are errors, reported as `path:line: key: problem`) so a
//! typo never silently falls back to a default.
//!
//! ```toml
//! base_image = "debian:bookworm-slim"       # FROM of the embedded agent Dockerfile
//! bin_dir = "/opt/claude-bottle/bin"        # static claude-bottle-shim / -supervise binaries
//! pipelock_image = "ghcr.io/luckypipewrench/pipelock:2.3.0"
//! upstream_ca = "/etc/ssl/corp-proxy.pem"  # extra roots pipelock's outbound leg trusts
//! build_ca = "/etc/ssl/corp-proxy.pem"     # extra roots the agent image's download step trusts
//! allow_private_cidrs = ["10.20.0.0/16"]   # private ranges pipelock may reach (SSRF allowlist)
//! snapshot_max_bytes = "8g"                 # largest snapshot of the agent's home and workspace
//!
//! [agent]
//! memory = "4g"                             # bytes, or with a k/m/g/t suffix (powers of 1024)
//! pids = 1024
//! disk = "20g"                              # the agent's writable layer, where the engine can bound it; "none"
//! ```

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use claude_bottle_protocol::size;
use serde::Deserialize;

/// Name of the file inside CLAUDE_BOTTLE_HOME.
pub const CONFIG_FILE: &str = "config.toml";

/// Base image of the embedded agent Dockerfile when nothing overrides it (production users pull it).
pub const DEFAULT_BASE_IMAGE: &str = "debian:bookworm-slim";

/// The pinned pipelock release (one place: [`crate::egress::pipelock::PIPELOCK_IMAGE`], beside the
/// schema version the generated config is written for).
pub const DEFAULT_PIPELOCK_IMAGE: &str = crate::egress::pipelock::PIPELOCK_IMAGE;

/// Default memory limit of the agent container: Claude Code (a 400 MB native binary) plus a build or
/// two.
pub const DEFAULT_AGENT_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Default process limit of the agent container: generous for builds, fatal for fork bombs.
pub const DEFAULT_AGENT_PIDS: i64 = 1024;

/// Overrides [`Config::base_image`].
pub const ENV_BASE_IMAGE: &str = "CLAUDE_BOTTLE_BASE_IMAGE";
/// Overrides [`Config::bin_dir`]: the only place searched for the static binaries when set.
pub const ENV_BIN_DIR: &str = "CLAUDE_BOTTLE_BIN_DIR";
/// Overrides [`Config::pipelock_image`].
pub const ENV_PIPELOCK_IMAGE: &str = "CLAUDE_BOTTLE_PIPELOCK_IMAGE";
/// Overrides [`Config::upstream_ca`].
pub const ENV_UPSTREAM_CA: &str = "CLAUDE_BOTTLE_UPSTREAM_CA";
/// Overrides [`Config::build_ca`].
pub const ENV_BUILD_CA: &str = "CLAUDE_BOTTLE_BUILD_CA";
/// Overrides [`Config::allow_private_cidrs`] (comma-separated).
pub const ENV_ALLOW_PRIVATE_CIDRS: &str = "CLAUDE_BOTTLE_ALLOW_PRIVATE_CIDRS";
/// Overrides `disk` of [`Config::agent_limits`] (a size, or `none`).
pub const ENV_AGENT_DISK: &str = "CLAUDE_BOTTLE_AGENT_DISK";
/// The agent's disk bound when the operator sets none: generous for toolchains and builds, far
/// below a host disk.
pub const DEFAULT_AGENT_DISK_BYTES: u64 = 20 << 30;
/// Smallest `disk`: the agent's home and a build need room.
const MIN_AGENT_DISK_BYTES: u64 = 256 << 20;
/// Overrides [`Config::snapshot_max_bytes`].
pub const ENV_SNAPSHOT_MAX_BYTES: &str = "CLAUDE_BOTTLE_SNAPSHOT_MAX_BYTES";

/// Smallest `snapshot_max_bytes`: below it not even an empty home fits.
const MIN_SNAPSHOT_BYTES: u64 = 1 << 20;

/// The operator's settings, defaults filled in and environment overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `FROM` of the embedded agent Dockerfile (`ARG BASE_IMAGE`).
    pub base_image: String,
    /// An explicit directory holding the static binaries (env, then file); `None` searches next to
    /// the running executable, see [`Config::binary`].
    pub bin_dir: Option<PathBuf>,
    /// The pipelock sidecar image (pinned tag by default).
    pub pipelock_image: String,
    /// A PEM bundle the last hop (pipelock) trusts besides the public roots: a corporate
    /// TLS-inspecting proxy's CA, or the tests' own "internet". `None`: public roots only.
    pub upstream_ca: Option<PathBuf>,
    /// A PEM bundle the embedded agent image's build trusts besides the base image's roots when it
    /// downloads Claude Code from the Python package index: the CA of a TLS-inspecting proxy between
    /// the engine and the index. `None`: the base image's roots only.
    pub build_ca: Option<PathBuf>,
    /// Private address ranges pipelock may connect to (its `ssrf.ip_allowlist`): pipelock refuses
    /// private, loopback, link-local and metadata addresses otherwise, whatever the allowlist says.
    /// For an internal service the bottle must reach, or the tests' own "internet".
    pub allow_private_cidrs: Vec<String>,
    /// Resource limits of the agent container unless a bottle sets its own.
    pub agent_limits: ResourceLimits,
    /// The largest snapshot of the agent's home and workspace, counted on the bytes the engine
    /// streams; a larger one is refused and the agent's container kept.
    pub snapshot_max_bytes: u64,
    /// The file the settings came from, when one existed.
    pub source: Option<PathBuf>,
}

/// Resource limits of one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Memory limit in bytes (the engine's `Memory`).
    pub memory_bytes: u64,
    /// Process/thread limit (the engine's `PidsLimit`).
    pub pids: i64,
    /// The bound of what the agent writes to disk (its container's writable layer).
    pub disk: DiskLimit,
}

/// The bound asked for the agent's writable layer (the engine's `size` storage option), where
/// the storage driver can give one (`backend::disk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskLimit {
    /// At most `bytes`; `explicit` when the operator set it (then a driver that cannot bound
    /// it stops the launch; the default only warns).
    Bytes { bytes: u64, explicit: bool },
    /// `disk = "none"`: the operator asks for no bound (and no warning).
    Unbounded,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_AGENT_MEMORY_BYTES,
            pids: DEFAULT_AGENT_PIDS,
            disk: DiskLimit::Bytes {
                bytes: DEFAULT_AGENT_DISK_BYTES,
                explicit: false,
            },
        }
    }
}

/// One problem found in `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// 1-based line in the file.
    pub line: usize,
    /// The key, dotted (`agent.memory`).
    pub key: String,
    /// What is wrong, and how to fix it.
    pub problem: String,
}

/// Every problem of a file, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssues {
    pub path: PathBuf,
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigIssues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let lines: Vec<String> = self
            .issues
            .iter()
            .map(|i| format!("{path}:{}: {}: {}", i.line, i.key, i.problem))
            .collect();
        f.write_str(&lines.join("\n"))
    }
}

/// Why the configuration could not be loaded or a binary not found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse {path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("failed to load settings:\n{0}")]
    Invalid(ConfigIssues),
    #[error("failed to use ${name}: {problem}")]
    Env { name: &'static str, problem: String },
    #[error("failed to find {name}: looked in {tried}")]
    BinaryNotFound {
        name: String,
        tried: String,
        hint: &'static str,
    },
    #[error("failed to locate the running executable: {0}")]
    CurrentExe(#[source] std::io::Error),
}

impl crate::error::Diagnose for ConfigError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            ConfigError::Read { .. }
            | ConfigError::Parse { .. }
            | ConfigError::Invalid(_)
            | ConfigError::Env { .. } => crate::error::Kind::Usage,
            ConfigError::BinaryNotFound { .. } => crate::error::Kind::Environment,
            ConfigError::CurrentExe(_) => crate::error::Kind::Internal,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Parse { .. } => {
                Some("see docs/images.md for the keys config.toml accepts".into())
            }
            ConfigError::BinaryNotFound { hint, .. } => Some((*hint).to_owned()),
            ConfigError::CurrentExe(_) => Some(format!("set ${ENV_BIN_DIR}")),
            _ => None,
        }
    }
}

/// The file as written: every key optional, unknown keys fatal.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    base_image: Option<toml::Spanned<String>>,
    bin_dir: Option<toml::Spanned<String>>,
    pipelock_image: Option<toml::Spanned<String>>,
    upstream_ca: Option<toml::Spanned<String>>,
    build_ca: Option<toml::Spanned<String>>,
    allow_private_cidrs: Option<toml::Spanned<Vec<String>>>,
    snapshot_max_bytes: Option<toml::Spanned<String>>,
    agent: Option<RawAgent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    memory: Option<toml::Spanned<String>>,
    pids: Option<toml::Spanned<i64>>,
    disk: Option<toml::Spanned<String>>,
}

impl Config {
    /// Loads `<home>/config.toml` (absent is fine) and applies the process environment.
    pub fn load(home: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(home, |name| std::env::var_os(name))
    }

    /// As [`Config::load`], reading variables through `env` (tests inject a map; an empty value
    /// counts as unset).
    pub fn load_with_env(
        home: &Path,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Config, ConfigError> {
        let path = home.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let mut config = match &text {
            Some(text) => Self::from_toml(&path, text)?,
            None => Self::default(),
        };

        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(value) = env(ENV_BASE_IMAGE) {
            config.base_image = env_image(ENV_BASE_IMAGE, value)?;
        }
        if let Some(value) = env(ENV_PIPELOCK_IMAGE) {
            config.pipelock_image = env_image(ENV_PIPELOCK_IMAGE, value)?;
        }
        if let Some(value) = env(ENV_BIN_DIR) {
            config.bin_dir = Some(PathBuf::from(value));
        }
        if let Some(value) = env(ENV_UPSTREAM_CA) {
            config.upstream_ca = Some(PathBuf::from(value));
        }
        if let Some(value) = env(ENV_BUILD_CA) {
            config.build_ca = Some(PathBuf::from(value));
        }
        if let Some(value) = env(ENV_ALLOW_PRIVATE_CIDRS) {
            let text = value.to_string_lossy();
            let mut cidrs = Vec::new();
            for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                check_cidr(item).map_err(|problem| ConfigError::Env {
                    name: ENV_ALLOW_PRIVATE_CIDRS,
                    problem,
                })?;
                cidrs.push(item.to_owned());
            }
            config.allow_private_cidrs = cidrs;
        }
        if let Some(value) = env(ENV_AGENT_DISK) {
            config.agent_limits.disk =
                parse_disk(&value.to_string_lossy()).map_err(|problem| ConfigError::Env {
                    name: ENV_AGENT_DISK,
                    problem,
                })?;
        }
        if let Some(value) = env(ENV_SNAPSHOT_MAX_BYTES) {
            config.snapshot_max_bytes =
                parse_snapshot_size(&value.to_string_lossy()).map_err(|problem| {
                    ConfigError::Env {
                        name: ENV_SNAPSHOT_MAX_BYTES,
                        problem,
                    }
                })?;
        }
        Ok(config)
    }

    /// Parses and validates the text of a config file, collecting every problem.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().to_owned(),
        })?;
        let mut issues = Vec::new();
        let mut config = Config {
            source: Some(path.to_owned()),
            ..Config::default()
        };
        let mut problem = |span: std::ops::Range<usize>, key: &str, problem: String| {
            issues.push(ConfigIssue {
                line: line_of(text, span.start),
                key: key.to_owned(),
                problem,
            });
        };

        for (key, value, slot) in [
            ("base_image", raw.base_image, &mut config.base_image),
            (
                "pipelock_image",
                raw.pipelock_image,
                &mut config.pipelock_image,
            ),
        ] {
            if let Some(value) = value {
                match check_image(value.get_ref()) {
                    Ok(()) => *slot = value.get_ref().clone(),
                    Err(p) => problem(value.span(), key, p),
                }
            }
        }
        if let Some(dir) = raw.bin_dir {
            if dir.get_ref().is_empty() {
                problem(dir.span(), "bin_dir", "must not be empty".to_owned());
            } else {
                // Relative paths are relative to the file, so a home folder can be moved whole.
                let base = path.parent().unwrap_or(Path::new("."));
                config.bin_dir = Some(base.join(dir.get_ref()));
            }
        }
        for (key, value, slot) in [
            ("upstream_ca", raw.upstream_ca, &mut config.upstream_ca),
            ("build_ca", raw.build_ca, &mut config.build_ca),
        ] {
            if let Some(ca) = value {
                if ca.get_ref().is_empty() {
                    problem(ca.span(), key, "must not be empty".to_owned());
                } else {
                    let base = path.parent().unwrap_or(Path::new("."));
                    *slot = Some(base.join(ca.get_ref()));
                }
            }
        }
        if let Some(cidrs) = raw.allow_private_cidrs {
            for item in cidrs.get_ref() {
                match check_cidr(item) {
                    Ok(()) => config.allow_private_cidrs.push(item.clone()),
                    Err(p) => problem(cidrs.span(), "allow_private_cidrs", p),
                }
            }
        }
        if let Some(size) = raw.snapshot_max_bytes {
            match parse_snapshot_size(size.get_ref()) {
                Ok(bytes) => config.snapshot_max_bytes = bytes,
                Err(p) => problem(size.span(), "snapshot_max_bytes", p),
            }
        }
        let agent = raw.agent.unwrap_or_default();
        if let Some(memory) = agent.memory {
            match size::agent_memory(memory.get_ref()) {
                Ok(bytes) => config.agent_limits.memory_bytes = bytes,
                Err(e) => problem(memory.span(), "agent.memory", size_problem(e)),
            }
        }
        if let Some(pids) = agent.pids {
            match size::agent_pids(*pids.get_ref()) {
                Ok(n) => config.agent_limits.pids = n,
                Err(e) => problem(pids.span(), "agent.pids", size_problem(e)),
            }
        }
        if let Some(disk) = agent.disk {
            match parse_disk(disk.get_ref()) {
                Ok(limit) => config.agent_limits.disk = limit,
                Err(p) => problem(disk.span(), "agent.disk", p),
            }
        }

        if issues.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(ConfigIssues {
                path: path.to_owned(),
                issues,
            }))
        }
    }

    /// The directories searched for a static binary, in order.
    ///
    /// With [`Config::bin_dir`] set (`$CLAUDE_BOTTLE_BIN_DIR`, else `bin_dir` in `config.toml`) it
    /// is the only one: an explicit choice never falls back silently. Otherwise, with `exe_dir` the
    /// directory of the running `claude-bottle`:
    /// 1. `exe_dir/static`,
    /// 2. `exe_dir/../static` (a build in `target/debug` or `target/release` finds
    ///    `scripts/build-static.sh`'s default output `target/static`),
    /// 3. `exe_dir` (an installed release puts all binaries side by side).
    ///
    /// The static folders come first: cargo also leaves dynamically linked copies next to the
    /// launcher, which fail in `FROM scratch` images and in agent images of another libc.
    pub fn bin_search_path(&self, exe_dir: &Path) -> Vec<PathBuf> {
        match &self.bin_dir {
            Some(dir) => vec![dir.clone()],
            None => vec![
                exe_dir.join("static"),
                exe_dir.join("..").join("static"),
                exe_dir.to_owned(),
            ],
        }
    }

    /// Finds a static binary (`claude-bottle-shim`, `claude-bottle-supervise`) along
    /// [`Config::bin_search_path`] of the running executable.
    pub fn binary(&self, name: &str) -> Result<PathBuf, ConfigError> {
        let exe = std::env::current_exe().map_err(ConfigError::CurrentExe)?;
        let exe_dir = exe.parent().unwrap_or(Path::new("/"));
        self.binary_in(name, exe_dir)
    }

    /// As [`Config::binary`], with the executable's directory given (tests).
    pub fn binary_in(&self, name: &str, exe_dir: &Path) -> Result<PathBuf, ConfigError> {
        let dirs = self.bin_search_path(exe_dir);
        if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
            return Ok(found);
        }
        let tried = dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(ConfigError::BinaryNotFound {
            name: name.to_owned(),
            tried,
            hint: "run scripts/build-static.sh, or point $CLAUDE_BOTTLE_BIN_DIR (or bin_dir in config.toml) at the static binaries",
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            base_image: DEFAULT_BASE_IMAGE.to_owned(),
            bin_dir: None,
            pipelock_image: DEFAULT_PIPELOCK_IMAGE.to_owned(),
            upstream_ca: None,
            build_ca: None,
            allow_private_cidrs: Vec::new(),
            agent_limits: ResourceLimits::default(),
            snapshot_max_bytes: crate::state::snapshot::DEFAULT_MAX_BYTES,
            source: None,
        }
    }
}

/// A CIDR as pipelock's `ssrf.ip_allowlist` takes it: an address, a prefix length within its
/// family, no host bits set, and not the whole address space.
pub fn check_cidr(text: &str) -> Result<(), String> {
    let hint = "write a network such as 10.20.0.0/16";
    let Some((addr, len)) = text.split_once('/') else {
        return Err(format!("{text:?} is not a CIDR (no /length): {hint}"));
    };
    let addr: std::net::IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?}: {addr:?} is not an IP address: {hint}"))?;
    let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
    // Digits only: Rust's integer parser takes a leading `+`, pipelock's does not.
    let digits = !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit());
    let len: u32 = match len.parse() {
        Ok(n) if digits && (1..=bits).contains(&n) => n,
        _ => return Err(format!("{text:?}: the length must be 1 to {bits}: {hint}")),
    };
    let value: u128 = match addr {
        std::net::IpAddr::V4(a) => u128::from(u32::from(a)),
        std::net::IpAddr::V6(a) => u128::from(a),
    };
    let host_mask: u128 = if len == bits {
        0
    } else {
        (1u128 << (bits - len)) - 1
    };
    if value & host_mask != 0 {
        return Err(format!(
            "{text:?} has host bits set (pipelock refuses it): {hint}"
        ));
    }
    Ok(())
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// An image reference the engine could accept: non-empty, no whitespace or control characters.
fn check_image(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{reference:?} is not an image reference (it contains whitespace)"
        ));
    }
    Ok(())
}

fn env_image(name: &'static str, value: OsString) -> Result<String, ConfigError> {
    let value = value.into_string().map_err(|_| ConfigError::Env {
        name,
        problem: "not valid UTF-8".to_owned(),
    })?;
    check_image(&value).map_err(|problem| ConfigError::Env { name, problem })?;
    Ok(value)
}

/// A size as the operator is told to fix it: the problem, then the hint.
fn size_problem(e: size::LimitError) -> String {
    format!("{e}; {}", e.hint())
}

/// The agent's disk bound as the operator writes it: `none`, or a size of at least 256 MiB.
fn parse_disk(text: &str) -> Result<DiskLimit, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(DiskLimit::Unbounded);
    }
    let bytes = size::parse_bytes(text).map_err(size_problem)?;
    if bytes < MIN_AGENT_DISK_BYTES {
        return Err(format!(
            "{text:?} is too small for the agent's home and a build (minimum 256m, or \"none\")"
        ));
    }
    Ok(DiskLimit::Bytes {
        bytes,
        explicit: true,
    })
}

/// A snapshot limit: a size ([`size::parse_bytes`]) of at least 1 MiB.
fn parse_snapshot_size(text: &str) -> Result<u64, String> {
    let bytes = size::parse_bytes(text).map_err(size_problem)?;
    if bytes < MIN_SNAPSHOT_BYTES {
        return Err(format!(
            "{text:?} is too small for a snapshot of the agent's home (minimum 1m)"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
