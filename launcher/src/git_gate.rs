//! The git gate of one launch: the remotes' credentials read on the host, the gate's files
//! staged, and its two sidecars (docs/git-gate.md).
//!
//! agent (network none) → the shim's relay `127.0.0.1:3130` → `run/git/gate.sock` →
//! `<slug>-git-gate` (on `<slug>-git` only; holds the credentials) → `<slug>-git-pipelock` (on
//! `<slug>-git` and `<slug>-egress`; the upstream hosts allowed and passed through, nothing
//! else) → upstream. Folders, each mounted into exactly the containers named:
//! - `run/git/` (0755): the gate's socket; read-write in the gate, read-only in the agent.
//! - `run/git-gate/` (0700): `gate.toml`, `known_hosts` (ssh remotes), `upstream-ca.pem` (the
//!   operator's extra roots); read-only in the gate. No secret: tokens go into the gate's
//!   environment only, ssh keys are mounted from where the operator keeps them.
//! - `run/git-pipelock/` (0700): the gate's pipelock's config and CA; read-only in it.
//! - `git/mirrors/` and `git/audit/` (0700): the bare mirrors and the push audit log, kept
//!   across launches; read-write in the gate.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::egress::{self, TokenError};
use crate::manifest::{GitRemote, Transport};
use crate::plan::BottlePlan;
use crate::secret::Secret;
use crate::tls::{self, BottleCa, CaPurpose};

/// The gate's container suffix, role and network alias.
pub const GATE: &str = "git-gate";
/// The gate's pipelock's container suffix, role and network alias.
pub const GATE_PIPELOCK: &str = "git-pipelock";
/// The socket folder in the gate and (read-only) in the agent.
pub const SOCKET_DIR_IN_CONTAINER: &str = "/run/claude-bottle/git";
/// The gate's socket in [`SOCKET_DIR_IN_CONTAINER`].
pub const SOCKET: &str = "gate.sock";
/// The agent's relay to the gate listens here: the URLs of its git configuration point at it.
pub const AGENT_PORT: u16 = 3130;
/// Set in the agent's environment (to the socket's path) to make its entrypoint start the relay.
pub const SOCKET_ENV: &str = "CLAUDE_BOTTLE_GIT_SOCKET";
/// Set in the agent's environment to [`AGENT_PORT`].
pub const PORT_ENV: &str = "CLAUDE_BOTTLE_GIT_PORT";
/// The gate's configuration folder (the image's `start.sh` reads these names).
pub const CONFIG_DIR_IN_GATE: &str = "/etc/claude-bottle/git-gate";
const CONFIG_FILE: &str = "gate.toml";
const KNOWN_HOSTS_FILE: &str = "known_hosts";
/// The operator's extra roots (`upstream_ca`), which `start.sh` adds to the image's bundle.
const UPSTREAM_CA_FILE: &str = "upstream-ca.pem";
pub const KEYS_IN_GATE: &str = "/run/claude-bottle/keys";
pub const MIRRORS_IN_GATE: &str = "/srv/git";
pub const AUDIT_DIR_IN_GATE: &str = "/var/log/claude-bottle";
/// The push audit log's name in `git/audit/`.
pub const AUDIT_FILE: &str = "git-audit.jsonl";
/// Past this size the audit log is moved to `git-audit.jsonl.1` (replacing the older one) at
/// the next launch: two files of this size at most.
pub const AUDIT_ROTATE_BYTES: u64 = 16 * 1024 * 1024;
/// The gate's variable holding a remote's token: `GIT_GATE_TOKEN_<NAME>`.
const TOKEN_ENV_PREFIX: &str = "GIT_GATE_TOKEN_";
/// What the gate prints once it listens.
pub const READY_LINE: &str = "serving";
/// An ssh private key is a few KiB; anything larger is not one.
const MAX_KEY_BYTES: u64 = 64 * 1024;
const MAX_KNOWN_HOSTS_BYTES: u64 = 4 * 1024 * 1024;

/// Whether `plan` gets a git gate: it declares at least one remote.
pub fn needed(plan: &BottlePlan) -> bool {
    !plan.git.is_empty()
}

/// The remotes' credentials, read on the host before anything is created. `Debug` shows no
/// value.
#[derive(Debug, Clone, Default)]
pub struct GitCredentials {
    /// `(GIT_GATE_TOKEN_<NAME>, token)`: the gate's environment.
    pub tokens: Vec<(String, Secret)>,
    /// `(remote, key file)`: mounted read-only into the gate.
    pub keys: Vec<(String, PathBuf)>,
    /// The `known_hosts` text of the ssh remotes (their files, each once).
    pub known_hosts: String,
}

/// Why the gate cannot be given what a remote needs. Every message names the remote and the
/// file, never a value.
#[derive(Debug, thiserror::Error)]
pub enum GitGateError {
    #[error("git remote {remote}: {source}")]
    Token {
        remote: String,
        #[source]
        source: TokenError,
    },
    #[error("git remote {remote}: ssh_key {path}: {problem}")]
    Key {
        remote: String,
        path: PathBuf,
        problem: String,
        hint: String,
    },
    #[error("git remote {remote}: known_hosts {path}: {problem}")]
    KnownHosts {
        remote: String,
        path: PathBuf,
        problem: String,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<GitGateError>),
    #[error("failed to stage the git gate at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Atomic(#[from] crate::state::atomic::AtomicError),
}

impl crate::error::Diagnose for GitGateError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            GitGateError::Token { .. }
            | GitGateError::Key { .. }
            | GitGateError::KnownHosts { .. }
            | GitGateError::Several(_) => crate::error::Kind::Usage,
            GitGateError::Io { .. } | GitGateError::Tls(_) | GitGateError::Atomic(_) => {
                crate::error::Kind::Internal
            }
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            GitGateError::Token { .. } => Some(
                "export the variable (or fix the file) before `start`, or change the remote's token_ref; nothing was created".into(),
            ),
            GitGateError::Key { hint, .. } => Some(hint.clone()),
            GitGateError::KnownHosts { remote, .. } => Some(format!(
                "add the upstream's host key (e.g. `ssh-keyscan HOST >> ~/.ssh/known_hosts`, then check it), or name a file with known_hosts: in git remote {remote}"
            )),
            GitGateError::Several(all) => all.first().and_then(|e| e.hint()),
            _ => None,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> GitGateError + '_ {
    move |source| GitGateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The gate's variable for `remote`'s token: `GIT_GATE_TOKEN_` and the name in capitals, every
/// character that is not a letter or digit as `_`.
pub fn token_env(remote: &str) -> String {
    let name: String = remote
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{TOKEN_ENV_PREFIX}{name}")
}

/// Read every remote's credential: `token_ref` through `lookup` (env) or from its file; an ssh
/// key checked to be a private file ssh will use; its `known_hosts` (default
/// `~/.ssh/known_hosts`). All problems are reported together.
pub fn resolve(
    plan: &BottlePlan,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<GitCredentials, GitGateError> {
    let mut creds = GitCredentials::default();
    let mut errors = Vec::new();
    let mut hosts_files: Vec<PathBuf> = Vec::new();
    for remote in &plan.git {
        match remote.transport {
            Transport::Http => {
                if let Some(token_ref) = &remote.token_ref {
                    match egress::routes::resolve_one(token_ref, &lookup) {
                        Ok(value) => creds.tokens.push((token_env(&remote.name), value)),
                        Err(source) => errors.push(GitGateError::Token {
                            remote: remote.name.clone(),
                            source,
                        }),
                    }
                }
            }
            Transport::Ssh => {
                if let Some(key) = &remote.ssh_key {
                    match check_key(remote, key) {
                        Ok(()) => creds.keys.push((remote.name.clone(), key.clone())),
                        Err(e) => errors.push(e),
                    }
                }
                let file = remote
                    .known_hosts
                    .clone()
                    .unwrap_or_else(default_known_hosts);
                if hosts_files.contains(&file) {
                    continue;
                }
                match read_known_hosts(remote, &file) {
                    Ok(text) => {
                        creds.known_hosts.push_str(&text);
                        if !creds.known_hosts.ends_with('\n') {
                            creds.known_hosts.push('\n');
                        }
                        hosts_files.push(file);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    match errors.len() {
        0 => Ok(creds),
        1 => Err(errors.remove(0)),
        _ => Err(GitGateError::Several(errors)),
    }
}

fn default_known_hosts() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    home.join(".ssh").join(KNOWN_HOSTS_FILE)
}

/// A key ssh will use: a regular file (links followed), readable, small, and closed to group and
/// others (ssh refuses a key others can read: "UNPROTECTED PRIVATE KEY FILE").
fn check_key(remote: &GitRemote, path: &Path) -> Result<(), GitGateError> {
    let err = |problem: String, hint: &str| GitGateError::Key {
        remote: remote.name.clone(),
        path: path.to_path_buf(),
        problem,
        hint: hint.to_owned(),
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        err(
            e.to_string(),
            "name the private key of a deploy key of this repository with ssh_key",
        )
    })?;
    if !meta.is_file() {
        return Err(err(
            "not a regular file".into(),
            "name the private key file (not the .pub one, not a folder)",
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(err(
            format!(
                "mode {:o}: group or others can read it, and ssh refuses such a key",
                meta.mode() & 0o777
            ),
            &format!("chmod 600 {}", path.display()),
        ));
    }
    if meta.len() > MAX_KEY_BYTES {
        return Err(err(
            format!("{} bytes: too large for an ssh private key", meta.len()),
            "name the private key file",
        ));
    }
    let text = std::fs::read(path).map_err(|e| {
        err(
            e.to_string(),
            "the gate runs as you: make the key readable by your user",
        )
    })?;
    if !text.starts_with(b"-----BEGIN ") || !text.windows(11).any(|w| w == b"PRIVATE KEY") {
        return Err(err(
            "not a PEM or OpenSSH private key".into(),
            "name the private key file (not the .pub one)",
        ));
    }
    Ok(())
}

fn read_known_hosts(remote: &GitRemote, path: &Path) -> Result<String, GitGateError> {
    let err = |problem: String| GitGateError::KnownHosts {
        remote: remote.name.clone(),
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > MAX_KNOWN_HOSTS_BYTES {
        return Err(err(format!("{} bytes: too large", meta.len())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    if !text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    {
        return Err(err(
            "holds no host key: the gate checks the upstream's key strictly".into(),
        ));
    }
    Ok(text)
}

/// One launch's staged gate.
#[derive(Debug, Clone)]
pub struct GitStage {
    /// `run/git/`: the socket.
    pub socket_dir: PathBuf,
    /// `run/git-gate/`: configuration, `known_hosts`, extra roots.
    pub gate_dir: PathBuf,
    /// `run/git-pipelock/`: the gate's pipelock.
    pub pipelock_dir: PathBuf,
    /// `git/mirrors/`.
    pub mirrors: PathBuf,
    /// `git/audit/`.
    pub audit_dir: PathBuf,
    pub credentials: GitCredentials,
}

/// The gate's configuration file, as `claude-bottle-git-gate` reads it (`git-gate/src/config.rs`).
#[derive(Debug, Serialize)]
struct GateConfig<'a> {
    version: u32,
    proxy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    known_hosts: Option<String>,
    remote: Vec<GateRemote<'a>>,
}

#[derive(Debug, Serialize)]
struct GateRemote<'a> {
    name: &'a str,
    upstream: &'a str,
    push: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    token_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_key: Option<String>,
}

/// Write every file of the gate: its configuration, `known_hosts`, the operator's extra roots,
/// its pipelock's config and CA; create the socket, mirror and audit folders.
pub fn stage(
    plan: &BottlePlan,
    credentials: GitCredentials,
    upstream_ca: Option<&Path>,
    allow_private_cidrs: &[String],
) -> Result<GitStage, GitGateError> {
    let layout = plan.layout();
    let socket_dir = layout.git_socket();
    let gate_dir = layout.git_gate();
    let pipelock_dir = layout.git_pipelock();
    let kept = layout.git();
    let mirrors = kept.join("mirrors");
    let audit_dir = kept.join("audit");
    make_dir(&socket_dir, 0o755)?;
    for dir in [&gate_dir, &pipelock_dir, &kept, &mirrors, &audit_dir] {
        make_dir(dir, 0o700)?;
    }
    let stale = socket_dir.join(SOCKET);
    if std::fs::symlink_metadata(&stale).is_ok() {
        std::fs::remove_file(&stale).map_err(io_at(&stale))?;
    }
    rotate_audit(&audit_dir)?;

    let has_ssh = plan.git.iter().any(|g| g.transport == Transport::Ssh);
    let hosts_file = gate_dir.join(KNOWN_HOSTS_FILE);
    if has_ssh {
        tls::write_file(&hosts_file, credentials.known_hosts.as_bytes(), 0o644)?;
    } else if hosts_file.exists() {
        std::fs::remove_file(&hosts_file).map_err(io_at(&hosts_file))?;
    }
    let ca_file = gate_dir.join(UPSTREAM_CA_FILE);
    match upstream_ca {
        Some(path) => {
            let text = std::fs::read(path).map_err(io_at(path))?;
            tls::write_file(&ca_file, &text, 0o644)?;
        }
        None if ca_file.exists() => std::fs::remove_file(&ca_file).map_err(io_at(&ca_file))?,
        None => {}
    }
    let staged = GitStage {
        socket_dir,
        gate_dir,
        pipelock_dir,
        mirrors,
        audit_dir,
        credentials,
    };
    write_config(plan, &staged)?;

    let ca = BottleCa::mint(&plan.slug, CaPurpose::Pipelock)?;
    ca.write_pipelock(&staged.pipelock_dir)?;
    let (cert, key) = egress::pipelock::default_ca_paths();
    let hosts: Vec<String> = plan.git.iter().map(|g| g.host.clone()).collect();
    let yaml = egress::pipelock::render_passthrough(
        &plan.slug,
        &hosts,
        (&cert, &key),
        allow_private_cidrs,
    );
    tls::write_file(
        &staged.pipelock_dir.join(egress::PIPELOCK_CONFIG_FILE),
        yaml.as_bytes(),
        0o600,
    )?;
    Ok(staged)
}

/// (Re)write `gate.toml` from the plan's remotes (their push lists with the approved entries).
/// The gate's hook reads it for every push, so a rewrite applies from the next push on.
pub fn write_config(plan: &BottlePlan, staged: &GitStage) -> Result<(), GitGateError> {
    let (gate_dir, credentials) = (&staged.gate_dir, &staged.credentials);
    let has_ssh = plan.git.iter().any(|g| g.transport == Transport::Ssh);
    let config = GateConfig {
        version: 1,
        proxy: format!("http://{GATE_PIPELOCK}:{}", egress::PIPELOCK_PORT),
        known_hosts: has_ssh.then(|| format!("{CONFIG_DIR_IN_GATE}/{KNOWN_HOSTS_FILE}")),
        remote: plan
            .git
            .iter()
            .map(|g| GateRemote {
                name: &g.name,
                upstream: &g.upstream,
                push: &g.push,
                token_env: credentials
                    .tokens
                    .iter()
                    .any(|(env, _)| *env == token_env(&g.name))
                    .then(|| token_env(&g.name)),
                ssh_key: (g.transport == Transport::Ssh)
                    .then(|| format!("{KEYS_IN_GATE}/{}", g.name)),
            })
            .collect(),
    };
    let toml = toml::to_string(&config).map_err(|e| GitGateError::Io {
        path: gate_dir.join(CONFIG_FILE),
        source: std::io::Error::other(e),
    })?;
    let text = format!(
        "# Generated by claude-bottle for bottle {}: do not edit, every launch rewrites it.\n{toml}",
        plan.slug
    );
    tls::write_file(&gate_dir.join(CONFIG_FILE), text.as_bytes(), 0o644)?;

    Ok(())
}

fn make_dir(dir: &Path, mode: u32) -> Result<(), GitGateError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(io_at(dir))
}

/// Move a full audit log aside, so the gate's appends stay bounded across launches.
fn rotate_audit(dir: &Path) -> Result<(), GitGateError> {
    let log = dir.join(AUDIT_FILE);
    match std::fs::symlink_metadata(&log) {
        Ok(m) if m.len() > AUDIT_ROTATE_BYTES || !m.is_file() => {
            let old = dir.join(format!("{AUDIT_FILE}.1"));
            std::fs::rename(&log, &old).map_err(io_at(&log))
        }
        _ => Ok(()),
    }
}

const DOCKERFILE: &str = include_str!("../../docker/git-gate/Dockerfile");
const START_SCRIPT: &str = include_str!("../../docker/git-gate/start.sh");
/// The gate's binary, on the host (found like the other static binaries) and in its image.
pub const BINARY: &str = "claude-bottle-git-gate";
/// The gate image's slug: `claude-bottle/sidecar-git-gate:<hash>`, shared by every bottle.
pub const IMAGE_SLUG: &str = "sidecar-git-gate";

/// The tag of [`image`] over `base_image` for a binary whose SHA-256 is `digest`: it names the
/// Dockerfile, the base, the labels and the files' contents, and is known without reading the
/// binary (its digest is cached by the file's identity, [`crate::image::file_digest`]), so a warm
/// start reads no binary.
pub fn image_tag(base_image: &str, digest: &str) -> Result<String, crate::image::ImageError> {
    use crate::image::{BASE_IMAGE_ARG, digest_of, labels};
    crate::image::check_reference(base_image)?;
    let content = format!(
        "{BINARY} 0755 sha256:{digest}\nstart.sh 0755 sha256:{}",
        digest_of(START_SCRIPT.as_bytes())
    );
    let hash = crate::image::content_hash(
        DOCKERFILE,
        &std::collections::BTreeMap::from([(BASE_IMAGE_ARG.to_owned(), base_image.to_owned())]),
        &labels(None, IMAGE_SLUG),
        content.as_bytes(),
    );
    Ok(format!("claude-bottle/{IMAGE_SLUG}:{}", &hash[..12]))
}

/// The gate's image over `base_image`: Debian's git and ssh client, the static `binary`, and the
/// entrypoint script, tagged [`image_tag`].
pub fn image(
    base_image: &str,
    binary: &Path,
) -> Result<crate::image::ImageRecipe, crate::image::ImageError> {
    use crate::image::{BASE_IMAGE_ARG, ContextBuilder, ImageError, ImageRecipe, labels};
    let data = std::fs::read(binary).map_err(|source| ImageError::Read {
        path: binary.to_owned(),
        source,
    })?;
    if !crate::image::is_static_elf(&data) {
        return Err(ImageError::NotStatic {
            path: binary.to_owned(),
        });
    }
    let tag = image_tag(base_image, &crate::image::digest_of(&data))?;
    let mut context = ContextBuilder::new();
    context.file(BINARY, 0o755, data);
    context.file("start.sh", 0o755, START_SCRIPT);
    let mut recipe = ImageRecipe::new(
        IMAGE_SLUG,
        DOCKERFILE.to_owned(),
        context,
        labels(None, IMAGE_SLUG),
        std::collections::BTreeMap::from([(BASE_IMAGE_ARG.to_owned(), base_image.to_owned())]),
    )?;
    recipe.tag = tag;
    Ok(recipe)
}

/// A bottle with git remotes, for the unit tests here and of the gate's container specs.
#[cfg(test)]
pub(crate) mod fixture {
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::Path;

    use crate::home::Home;
    use crate::plan::BottlePlan;

    /// The token `lookup` gives for `E2E_GIT_TOKEN`.
    pub const TOKEN: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";

    /// A home with one bottle `gitty` declaring an https remote with a token and an ssh remote
    /// with a key and its own known_hosts, both files in the home.
    pub fn plan(dir: &Path, key_mode: u32) -> BottlePlan {
        let bottles = dir.join("bottles");
        std::fs::create_dir_all(&bottles).expect("mkdir");
        let key = dir.join("deploy_key");
        std::fs::write(
            &key,
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        )
        .expect("key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(key_mode)).expect("chmod");
        std::fs::write(
            dir.join("known_hosts"),
            "git.test ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
        )
        .expect("known_hosts");
        std::fs::write(
            bottles.join("gitty.md"),
            format!(
                "---\ngit:\n  - name: origin\n    upstream: https://git.test/srv/app.git\n    token_ref: env:E2E_GIT_TOKEN\n    push: [\"claude/*\"]\n  - name: lib.x\n    upstream: git@git.test:/srv/git/lib.git\n    ssh_key: {}\n    known_hosts: {}\n---\n",
                key.display(),
                dir.join("known_hosts").display()
            ),
        )
        .expect("bottle");
        let home = Home::new(dir);
        let bottle = crate::manifest::load(&home, "gitty").expect("valid bottle");
        crate::plan::build(&home, bottle, &Default::default(), |_| None)
    }

    /// The launcher's environment: the token of `origin`, nothing else.
    pub fn lookup(name: &str) -> Option<String> {
        (name == "E2E_GIT_TOKEN").then(|| TOKEN.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::fixture::{TOKEN, lookup, plan};
    use super::*;

    #[test]
    fn token_variables_are_named_after_the_remote() {
        assert_eq!(token_env("origin"), "GIT_GATE_TOKEN_ORIGIN");
        assert_eq!(token_env("my-lib.x"), "GIT_GATE_TOKEN_MY_LIB_X");
    }

    #[test]
    fn credentials_are_read_and_problems_are_named_with_a_fix() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plan = plan(tmp.path(), 0o600);
        let creds = resolve(&plan, lookup).expect("resolved");
        assert_eq!(creds.tokens.len(), 1);
        assert_eq!(creds.tokens[0].0, "GIT_GATE_TOKEN_ORIGIN");
        assert_eq!(creds.tokens[0].1.expose(), TOKEN);
        assert_eq!(
            creds.keys,
            [("lib.x".to_owned(), tmp.path().join("deploy_key"))]
        );
        assert!(creds.known_hosts.starts_with("git.test ssh-ed25519 "));
        assert!(
            !format!("{creds:?}").contains(TOKEN),
            "Debug shows no token"
        );

        // A missing token and a key others can read: both reported, as usage errors.
        let open = plan_with_key_mode(0o644);
        let err = resolve(&open.1, |_| None).expect_err("two problems");
        let text = err.to_string();
        assert!(
            text.contains("git remote origin: failed to resolve token env:E2E_GIT_TOKEN"),
            "{text}"
        );
        assert!(text.contains("git remote lib.x: ssh_key"), "{text}");
        assert!(text.contains("mode 644"), "{text}");
        assert!(!text.contains(TOKEN));
        use crate::error::Diagnose as _;
        assert_eq!(err.kind(), crate::error::Kind::Usage);
        let key_err = resolve(&open.1, lookup).expect_err("the key");
        assert!(
            key_err.hint().expect("hint").starts_with("chmod 600 "),
            "{key_err}"
        );
    }

    fn plan_with_key_mode(mode: u32) -> (tempfile::TempDir, BottlePlan) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plan = plan(tmp.path(), mode);
        (tmp, plan)
    }

    #[test]
    fn a_missing_known_hosts_or_a_public_key_is_refused() {
        let (tmp, plan) = plan_with_key_mode(0o600);
        std::fs::write(tmp.path().join("deploy_key"), "ssh-ed25519 AAAA me@host\n").expect("pub");
        std::fs::remove_file(tmp.path().join("known_hosts")).expect("rm");
        let text = resolve(&plan, lookup).expect_err("refused").to_string();
        assert!(text.contains("not a PEM or OpenSSH private key"), "{text}");
        assert!(text.contains("known_hosts"), "{text}");
    }

    #[test]
    fn the_staged_config_is_one_the_gate_accepts_and_holds_no_secret() {
        let (tmp, plan) = plan_with_key_mode(0o600);
        let creds = resolve(&plan, lookup).expect("resolved");
        let staged = stage(&plan, creds, None, &["172.16.0.0/12".to_owned()]).expect("stage");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&staged.socket_dir), 0o755);
        assert_eq!(mode(&staged.gate_dir), 0o700);
        assert_eq!(mode(&staged.pipelock_dir), 0o700);
        assert_eq!(mode(&staged.mirrors), 0o700);
        let toml = std::fs::read_to_string(staged.gate_dir.join(CONFIG_FILE)).expect("config");
        // The gate's own reading of the file: the two programs agree on its shape.
        let config = claude_bottle_git_gate::config::Config::parse(&toml)
            .unwrap_or_else(|e| panic!("the gate refuses its config: {e:?}\n{toml}"));
        assert_eq!(config.remotes.len(), 2);
        assert_eq!(
            config.proxy.as_ref().map(|p| p.url()),
            Some("http://git-pipelock:8888".to_owned())
        );
        assert!(
            toml.contains("token_env = \"GIT_GATE_TOKEN_ORIGIN\""),
            "{toml}"
        );
        assert!(
            toml.contains("ssh_key = \"/run/claude-bottle/keys/lib.x\""),
            "{toml}"
        );
        // No secret anywhere under the staged folders.
        for dir in [&staged.gate_dir, &staged.pipelock_dir, &staged.socket_dir] {
            for entry in std::fs::read_dir(dir).expect("ls") {
                let path = entry.expect("entry").path();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                assert!(!text.contains(TOKEN), "{}", path.display());
                assert!(!text.contains("OPENSSH PRIVATE KEY"), "{}", path.display());
            }
        }
        let yaml = std::fs::read_to_string(staged.pipelock_dir.join(egress::PIPELOCK_CONFIG_FILE))
            .expect("pipelock");
        let parsed: serde_json::Value = serde_saphyr::from_str(&yaml).expect("yaml");
        assert_eq!(parsed["api_allowlist"], serde_json::json!(["git.test"]));
        assert_eq!(
            parsed["tls_interception"]["passthrough_domains"],
            serde_json::json!(["git.test"])
        );
        assert_eq!(
            parsed["ssrf"]["ip_allowlist"],
            serde_json::json!(["172.16.0.0/12"])
        );
        drop(tmp);
    }

    #[test]
    fn an_approved_push_entry_joins_its_remote_and_the_gates_config() {
        let (_tmp, mut plan) = plan_with_key_mode(0o600);
        assert_eq!(plan.approve_push("origin", "feature/x"), Ok(true));
        assert_eq!(plan.approve_push("origin", "feature/x"), Ok(false));
        let none = plan.approve_push("nope", "x").expect_err("no such remote");
        assert!(
            none.contains(r#"no git remote "nope" (it has: origin, lib.x)"#),
            "{none}"
        );
        let clash = plan
            .approve_push("origin", "claude/* force")
            .expect_err("the pattern is there with other options");
        assert!(clash.contains("repeats the pattern"), "{clash}");
        let creds = resolve(&plan, lookup).expect("resolved");
        let staged = stage(&plan, creds, None, &[]).expect("stage");
        let toml = std::fs::read_to_string(staged.gate_dir.join(CONFIG_FILE)).expect("config");
        let config = claude_bottle_git_gate::config::Config::parse(&toml).expect("the gate's");
        let origin = config.remote("origin").expect("origin");
        let update = claude_bottle_protocol::git_policy::RefUpdate::parse_line(&format!(
            "{} {} refs/heads/feature/x",
            "0".repeat(40),
            "a".repeat(40)
        ))
        .expect("an update");
        assert!(
            matches!(
                origin.policy.decide(&update, false),
                claude_bottle_protocol::git_policy::Decision::Allowed { .. }
            ),
            "the gate allows the approved branch"
        );
    }

    #[test]
    fn the_gate_image_is_tagged_from_the_binarys_digest_without_reading_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join(BINARY);
        // The smallest ELF the static check takes: one PT_LOAD, no PT_INTERP.
        let mut elf = vec![0u8; 64 + 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20] = 64;
        elf[0x36] = 56;
        elf[0x38] = 1;
        elf[64] = 1;
        std::fs::write(&bin, &elf).expect("write");
        let base = "claude-bottle/base:bookworm";
        let recipe = image(base, &bin).expect("recipe");
        let digest = crate::image::digest_of(&elf);
        assert_eq!(recipe.tag, image_tag(base, &digest).expect("tag"));
        assert!(recipe.tag.starts_with("claude-bottle/sidecar-git-gate:"));
        assert_ne!(
            image_tag(base, &digest).expect("tag"),
            image_tag("debian:bookworm-slim", &digest).expect("tag"),
            "the base is part of the tag"
        );
        assert_ne!(
            image_tag(base, &digest).expect("tag"),
            image_tag(base, &crate::image::digest_of(b"another binary")).expect("tag"),
            "a new binary makes a new image"
        );
    }

    #[test]
    fn a_full_audit_log_is_moved_aside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join(AUDIT_FILE);
        std::fs::write(&log, "x").expect("small");
        rotate_audit(tmp.path()).expect("rotate");
        assert!(log.exists(), "a small log stays");
        let f = std::fs::File::create(&log).expect("big");
        f.set_len(AUDIT_ROTATE_BYTES + 1).expect("grow");
        rotate_audit(tmp.path()).expect("rotate");
        assert!(!log.exists());
        assert!(tmp.path().join(format!("{AUDIT_FILE}.1")).exists());
    }
}
