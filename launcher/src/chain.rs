//! The egress chain of one launch, staged on the host: the two per-launch CAs, pipelock's config,
//! the egress-proxy's routes and token slots, and the trust bundle the agent gets.
//!
//! agent → relay (Unix socket in `run/net/`) → egress-proxy → pipelock → internet. Three folders
//! under `state/<slug>/run/`, each mounted into exactly the containers named:
//! - `net/` (0755): the relay's socket, the CA the agent trusts and its system bundle; read-only into
//!   the agent, read-write into the relay sidecar. No key is ever written here.
//! - `pipelock/` (0700): `pipelock.yaml`, pipelock's CA certificate and key (0600); read-only into
//!   pipelock, which runs as the operator's uid so it can read the key.
//! - `egress-proxy/` (0700): `mitmproxy-ca.pem` (key and certificate, 0600), `routes.json` and
//!   `upstream-ca.pem` (pipelock's CA); read-only into the egress-proxy. Tokens are not files: they
//!   go into the egress-proxy's environment only.
//!
//! Without credentialed routes there is no egress-proxy folder: the relay connects to pipelock and
//! the agent trusts pipelock's CA. A bottle that allows no host at all gets no chain: the agent
//! keeps network mode none and no proxy.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::egress::{self, EgressRoutes, PipelockInput, ResolvedTokens};
use crate::plan::BottlePlan;
use crate::secret::Secret;
use crate::state::atomic::write_atomic;
use crate::tls::{self, BottleCa, CaPurpose};

/// The folder of the relay's socket and the agent's CA files, inside the agent and the relay.
pub const NET_DIR_IN_CONTAINER: &str = "/run/claude-bottle/net";
/// The relay's socket in [`NET_DIR_IN_CONTAINER`].
pub const PROXY_SOCKET: &str = "proxy.sock";
/// Set in the agent's environment (to the socket's path) to make its entrypoint start the relay.
pub const PROXY_SOCKET_ENV: &str = "CLAUDE_BOTTLE_PROXY_SOCKET";
/// The CA the agent trusts (certificate only), in [`NET_DIR_IN_CONTAINER`].
pub const AGENT_CA_FILE: &str = "ca.pem";
/// The image's own roots plus [`AGENT_CA_FILE`], mounted over [`SYSTEM_BUNDLE`].
pub const AGENT_BUNDLE_FILE: &str = "ca-bundle.pem";
/// Debian's (and Ubuntu's, Alpine's) system trust bundle: OpenSSL, curl, git and Python read it.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Where the agent's HTTP(S)_PROXY points: the shim's relay inside the agent.
pub const AGENT_PROXY_PORT: u16 = 3128;
/// Set in the agent's environment to [`AGENT_PROXY_PORT`] for its entrypoint's relay.
pub const AGENT_PROXY_PORT_ENV: &str = "CLAUDE_BOTTLE_PROXY_PORT";
/// What the agent gets for a credential variable whose real value only the egress-proxy holds.
/// Not secret, and shaped so no DLP pattern matches it.
pub const TOKEN_PLACEHOLDER: &str =
    "claude-bottle-placeholder-the-egress-proxy-injects-the-real-one";
/// The extra upstream roots in pipelock's folder (`SSL_CERT_DIR` of its container).
pub const UPSTREAM_CA_DIR: &str = "upstream-ca.d";

/// One launch's staged chain.
#[derive(Debug, Clone)]
pub struct EgressStage {
    /// `run/net/`: socket, agent CA, agent bundle.
    pub net: PathBuf,
    /// `run/pipelock/`: config and CA.
    pub pipelock: PathBuf,
    /// `run/egress-proxy/`, when the bottle has credentialed routes.
    pub egress_proxy: Option<PathBuf>,
    /// The egress-proxy's token slots (`CLAUDE_BOTTLE_TOKEN_n`); `Debug` shows no value.
    pub tokens: Vec<(String, Secret)>,
    /// Private ranges pipelock may reach (`ssrf.ip_allowlist`), kept for rewrites on approval.
    pub allow_private_cidrs: Vec<String>,
    /// `(purpose, SHA-256)` of each CA minted for this launch.
    pub fingerprints: Vec<(CaPurpose, String)>,
    /// Whether `run/pipelock/upstream-ca.d/` holds the operator's extra upstream roots.
    pub upstream_ca: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("failed to stage the egress chain at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("upstream_ca {path}: {problem}")]
    UpstreamCa { path: PathBuf, problem: String },
    #[error(transparent)]
    Atomic(#[from] crate::state::atomic::AtomicError),
}

impl crate::error::Diagnose for ChainError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            // An operator mistake, like an invalid config.toml.
            ChainError::UpstreamCa { .. } => crate::error::Kind::Environment,
            ChainError::Tls(_) | ChainError::Io { .. } | ChainError::Atomic(_) => {
                crate::error::Kind::Internal
            }
        }
    }

    fn hint(&self) -> Option<String> {
        matches!(self, ChainError::UpstreamCa { .. }).then(|| {
            "point upstream_ca in config.toml (or $CLAUDE_BOTTLE_UPSTREAM_CA) at a PEM file of CA certificates".into()
        })
    }
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ChainError + '_ {
    move |source| ChainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `plan` gets an egress chain: it allows at least one host.
pub fn needed(plan: &BottlePlan) -> bool {
    !plan.allowlist.is_empty()
}

/// Whether `plan` needs the egress-proxy: at least one route carries a credential.
pub fn needs_egress_proxy(plan: &BottlePlan) -> bool {
    !EgressRoutes::from_routes(&plan.routes).is_empty()
}

/// Mint the launch's CAs and write every file of the chain. `image_roots` is the agent image's own
/// system bundle (PEM, may be empty); `tokens` the resolved token slots.
pub fn stage(
    plan: &BottlePlan,
    tokens: &ResolvedTokens,
    upstream_ca: Option<&Path>,
    allow_private_cidrs: &[String],
    image_roots: &str,
) -> Result<EgressStage, ChainError> {
    let layout = plan.layout();
    let net = layout.net();
    let pipelock = layout.pipelock();
    make_dir(&net, 0o755)?;
    make_dir(&pipelock, 0o700)?;
    let stale = net.join(PROXY_SOCKET);
    if std::fs::symlink_metadata(&stale).is_ok() {
        std::fs::remove_file(&stale).map_err(io_at(&stale))?;
    }

    let pipelock_ca = BottleCa::mint(&plan.slug, CaPurpose::Pipelock)?;
    pipelock_ca.write_pipelock(&pipelock)?;
    let mut fingerprints = vec![(CaPurpose::Pipelock, pipelock_ca.sha256_fingerprint.clone())];
    let upstream = upstream_ca.is_some();
    let extra = pipelock.join(UPSTREAM_CA_DIR);
    if extra.exists() {
        std::fs::remove_dir_all(&extra).map_err(io_at(&extra))?;
    }
    // The operator's upstream roots also go to whoever checks a certificate pipelock passes
    // through untouched (every credentialed host): the egress-proxy, which exists exactly when
    // there is such a host.
    let mut upstream_pem = String::new();
    if let Some(path) = upstream_ca {
        upstream_pem = read_upstream_ca(path)?;
        if !upstream_pem.ends_with('\n') {
            upstream_pem.push('\n');
        }
        make_dir(&extra, 0o755)?;
        tls::write_file(
            &extra.join("upstream-ca.pem"),
            upstream_pem.as_bytes(),
            0o644,
        )?;
    }

    // What must verify what pipelock hands on: its own CA, plus the operator's upstream roots.
    let pipelock_trust = format!("{}{upstream_pem}", pipelock_ca.cert_pem);

    let routes = EgressRoutes::from_routes(&plan.routes);
    let proxy_dir = layout.egress_proxy();
    let (agent_ca, egress_proxy) = if routes.is_empty() {
        if proxy_dir.exists() {
            std::fs::remove_dir_all(&proxy_dir).map_err(io_at(&proxy_dir))?;
        }
        (pipelock_trust, None)
    } else {
        make_dir(&proxy_dir, 0o700)?;
        let proxy_ca = BottleCa::mint(&plan.slug, CaPurpose::EgressProxy)?;
        proxy_ca.write_mitmproxy(&proxy_dir)?;
        fingerprints.push((CaPurpose::EgressProxy, proxy_ca.sha256_fingerprint.clone()));
        write_atomic(
            &proxy_dir.join(egress::images::EGRESS_PROXY_ROUTES_FILE),
            routes.routes_json().as_bytes(),
        )?;
        tls::write_file(
            &proxy_dir.join(egress::images::EGRESS_PROXY_UPSTREAM_CA_FILE),
            pipelock_trust.as_bytes(),
            0o644,
        )?;
        (proxy_ca.cert_pem.clone(), Some(proxy_dir))
    };
    tls::write_file(&net.join(AGENT_CA_FILE), agent_ca.as_bytes(), 0o644)?;
    let mut bundle = image_roots.to_string();
    if !bundle.is_empty() && !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    bundle.push_str(&agent_ca);
    tls::write_file(&net.join(AGENT_BUNDLE_FILE), bundle.as_bytes(), 0o644)?;

    let staged = EgressStage {
        net,
        pipelock,
        egress_proxy,
        tokens: tokens.env.clone(),
        allow_private_cidrs: allow_private_cidrs.to_vec(),
        fingerprints,
        upstream_ca: upstream,
    };
    write_pipelock_config(plan, &staged)?;
    Ok(staged)
}

/// (Re)write `pipelock.yaml` from the plan's routes and approved hosts; pipelock reloads it on
/// SIGHUP (and on the file's change).
pub fn write_pipelock_config(plan: &BottlePlan, staged: &EgressStage) -> Result<(), ChainError> {
    let (ca_cert_path, ca_key_path) = egress::pipelock::default_ca_paths();
    let yaml = egress::pipelock_yaml(&PipelockInput {
        slug: &plan.slug,
        routes: &plan.routes,
        approved_hosts: &plan.approved_hosts,
        ca_cert_path: &ca_cert_path,
        ca_key_path: &ca_key_path,
        allow_private_cidrs: &staged.allow_private_cidrs,
    });
    let path = staged.pipelock.join(egress::PIPELOCK_CONFIG_FILE);
    tls::write_file(&path, yaml.as_bytes(), 0o600)?;
    Ok(())
}

fn make_dir(dir: &Path, mode: u32) -> Result<(), ChainError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(io_at(dir))
}

/// The operator's extra upstream roots: readable, and at least one certificate block.
fn read_upstream_ca(path: &Path) -> Result<String, ChainError> {
    let err = |problem: String| ChainError::UpstreamCa {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    match pem::parse_many(&text) {
        Ok(blocks) if blocks.iter().any(|b| b.tag() == "CERTIFICATE") => Ok(text),
        Ok(_) => Err(err("holds no CERTIFICATE block".into())),
        Err(e) => Err(err(format!("not PEM: {e}"))),
    }
}

/// The variables a credentialed route reads from the launcher's environment (`env:NAME`): the
/// agent gets [`TOKEN_PLACEHOLDER`] under each name its bottle does not set itself, so a tool that
/// refuses to start without its key (Claude Code) starts, and sends a header the egress-proxy
/// replaces.
pub fn placeholder_names(plan: &BottlePlan) -> Vec<String> {
    let mut names: Vec<String> = plan
        .routes
        .iter()
        .filter_map(|r| r.auth.as_ref())
        .filter_map(|a| match &a.token_ref {
            crate::manifest::TokenRef::Env(name) => Some(name.clone()),
            crate::manifest::TokenRef::File(_) => None,
        })
        .filter(|name| {
            !plan.env_forwarded.iter().any(|f| &f.name == name)
                && !plan.env_literal.iter().any(|(n, _)| n == name)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(plan: &BottlePlan, token: &str) -> ResolvedTokens {
        EgressRoutes::from_routes(&plan.routes)
            .resolve(|_| Some(token.to_string()))
            .expect("resolve")
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn stages_keys_closed_and_the_agent_gets_certificates_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plan = crate::plan::default_plan_in(tmp.path());
        let tokens = resolved(&plan, "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789");
        let roots = "-----BEGIN CERTIFICATE-----\nIMAGEROOT\n-----END CERTIFICATE-----";
        let staged = stage(&plan, &tokens, None, &[], roots).expect("stage");
        let proxy = staged
            .egress_proxy
            .clone()
            .expect("credentialed route: egress-proxy");
        assert_eq!(mode(&staged.pipelock), 0o700);
        assert_eq!(mode(&proxy), 0o700);
        assert_eq!(mode(&staged.pipelock.join("ca.key")), 0o600);
        assert_eq!(mode(&proxy.join("mitmproxy-ca.pem")), 0o600);
        assert_eq!(mode(&staged.pipelock.join("pipelock.yaml")), 0o600);
        // The agent's folder: certificates, never a key or a token.
        for entry in std::fs::read_dir(&staged.net).expect("net") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
            assert!(!text.contains("PRIVATE KEY"), "{text}");
            assert!(!text.contains("sk-ant-api03"), "{text}");
        }
        let bundle = std::fs::read_to_string(staged.net.join(AGENT_BUNDLE_FILE)).expect("bundle");
        assert!(bundle.starts_with(roots), "image roots first: {bundle}");
        let ca = std::fs::read_to_string(staged.net.join(AGENT_CA_FILE)).expect("ca");
        assert!(bundle.ends_with(&ca));
        // The agent trusts the egress-proxy's CA; the egress-proxy trusts pipelock's.
        let fp = |p: CaPurpose| {
            staged
                .fingerprints
                .iter()
                .find(|(q, _)| *q == p)
                .map(|(_, f)| f.clone())
                .expect("fingerprint")
        };
        assert_eq!(
            tls::fingerprint_pem(&ca).expect("fp"),
            fp(CaPurpose::EgressProxy)
        );
        let upstream =
            std::fs::read_to_string(proxy.join("upstream-ca.pem")).expect("upstream-ca.pem");
        assert_eq!(
            tls::fingerprint_pem(&upstream).expect("fp"),
            fp(CaPurpose::Pipelock)
        );
        assert_eq!(staged.tokens.len(), 1);
        assert_eq!(staged.tokens[0].0, "CLAUDE_BOTTLE_TOKEN_0");
        let yaml = std::fs::read_to_string(staged.pipelock.join("pipelock.yaml")).expect("yaml");
        assert!(yaml.contains("api.anthropic.com"), "{yaml}");
        assert!(yaml.contains("ca_cert: /etc/pipelock/ca.crt"), "{yaml}");
    }

    #[test]
    fn each_launch_mints_new_cas() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plan = crate::plan::default_plan_in(tmp.path());
        let tokens = resolved(&plan, "t0ken");
        let a = stage(&plan, &tokens, None, &[], "").expect("first");
        let b = stage(&plan, &tokens, None, &[], "").expect("second");
        assert_ne!(a.fingerprints, b.fingerprints);
    }

    #[test]
    fn without_credentials_the_agent_trusts_pipelock_and_no_proxy_folder_is_left() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut plan = crate::plan::default_plan_in(tmp.path());
        let tokens = resolved(&plan, "t0ken");
        stage(&plan, &tokens, None, &[], "").expect("with credentials");
        for r in &mut plan.routes {
            r.auth = None;
        }
        let none = EgressRoutes::from_routes(&plan.routes)
            .resolve(|_| None)
            .expect("nothing to resolve");
        let staged = stage(&plan, &none, None, &[], "").expect("stage");
        assert!(staged.egress_proxy.is_none());
        assert!(!plan.layout().egress_proxy().exists(), "old keys removed");
        let ca = std::fs::read_to_string(staged.net.join(AGENT_CA_FILE)).expect("ca");
        assert_eq!(
            tls::fingerprint_pem(&ca).expect("fp"),
            staged.fingerprints[0].1
        );
        assert_eq!(staged.fingerprints.len(), 1);
    }

    #[test]
    fn upstream_ca_is_checked_and_staged() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plan = crate::plan::default_plan_in(tmp.path());
        let tokens = resolved(&plan, "t0ken");
        let bad = tmp.path().join("bad.pem");
        std::fs::write(&bad, "not a certificate").expect("write");
        let err = stage(&plan, &tokens, Some(&bad), &[], "").expect_err("bad CA");
        let text = err.to_string();
        assert!(text.contains("bad.pem"), "{text}");
        // An operator mistake, like an invalid config.toml: exit 2, with the hint as a field.
        let err = crate::error::Error::from(err);
        assert_eq!(err.kind().code(), 2);
        assert!(
            err.hint().is_some_and(|h| h.contains("upstream_ca")),
            "{err}"
        );
        let missing = stage(&plan, &tokens, Some(&tmp.path().join("nope.pem")), &[], "")
            .expect_err("missing CA");
        assert!(missing.to_string().contains("nope.pem"), "{missing}");
        let ca = BottleCa::mint("x", CaPurpose::Pipelock).expect("mint");
        let good = tmp.path().join("good.pem");
        std::fs::write(&good, &ca.cert_pem).expect("write");
        let staged = stage(&plan, &tokens, Some(&good), &[], "").expect("good CA");
        assert!(staged.upstream_ca);
        let copied = std::fs::read_to_string(
            staged
                .pipelock
                .join(UPSTREAM_CA_DIR)
                .join("upstream-ca.pem"),
        )
        .expect("copied");
        assert_eq!(copied, ca.cert_pem);
        // The egress-proxy checks passed-through hosts itself: it trusts the extra roots too.
        let proxy_trust = std::fs::read_to_string(
            staged
                .egress_proxy
                .as_ref()
                .expect("egress-proxy")
                .join("upstream-ca.pem"),
        )
        .expect("upstream-ca.pem");
        assert!(proxy_trust.ends_with(&ca.cert_pem), "{proxy_trust}");
    }

    #[test]
    fn placeholders_only_for_env_tokens_the_bottle_does_not_set() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut plan = crate::plan::default_plan_in(tmp.path());
        assert_eq!(
            placeholder_names(&plan),
            vec!["ANTHROPIC_API_KEY".to_string()]
        );
        plan.env_literal
            .push(("ANTHROPIC_API_KEY".into(), "own".into()));
        assert!(placeholder_names(&plan).is_empty());
        assert!(!TOKEN_PLACEHOLDER.is_empty());
        assert!(
            crate::egress::dlp::patterns_tripped_by(&Secret::new(TOKEN_PLACEHOLDER)).is_empty(),
            "the placeholder must not look like a secret to pipelock"
        );
    }
}
