//! pipelock's config YAML for the pinned version: the bottle's allowlist, interception CA and DLP rules.
//!
//! Keys follow pipelock v2.1.2 (`config::DEFAULT_PIPELOCK_IMAGE`), read from `internal/config/config.go`
//! at tag v2.1.2 (commit 38801766549e) of luckyPipewrench/pipelock: `Config`, `FetchProxy`,
//! `ForwardProxy`, `TLSInterception`, `RequestBodyScanning`, `DLP`, `DLPPattern`. The config must stay
//! within that schema (a later pipelock may reject unknown keys): the structs below carry only keys of
//! it, and a unit test checks every generated key against `testdata/pipelock-v2.1.2-keys.txt`.
//!
//! What is generated, and why:
//! - `mode: strict` with `api_allowlist` = the route hosts (the agent's defaults folded in) plus the
//!   approved hosts: anything else is refused.
//! - `fetch_proxy.listen` on all interfaces, port [`PIPELOCK_PORT`]; `forward_proxy.enabled` so
//!   CONNECT and absolute-URI requests work (it also serves `/health` there).
//! - `tls_interception` with the bottle's pipelock CA, so request bodies and headers can be scanned.
//! - `request_body_scanning` with `action: block` and header scanning; not configurable.
//! - DLP: each host that receives an injected credential is exempted from exactly the default
//!   patterns its token trips ([`super::dlp`]), so pipelock does not block the egress-proxy's own
//!   header.
//! - Anthropic: when a route targets `api.anthropic.com`, that host is in
//!   `tls_interception.passthrough_domains`. The agent's conversation is the request body there, and
//!   it routinely quotes secret-shaped text from the code it reads; scanning it would block the agent's
//!   own model calls, and the data goes to the model provider either way. The host stays on the
//!   allowlist; the egress-proxy (which trusts the public roots on its outbound leg) still injects.

use serde::{Deserialize, Serialize};

use super::dlp::{DlpExemptions, pattern};
use super::routes::allowlist_hosts;
use crate::manifest::Route;

/// The pinned pipelock's tag: the schema this module writes.
pub const PIPELOCK_VERSION: &str = "v2.1.2";
/// pipelock's port (fetch and forward proxy, `/health`).
pub const PIPELOCK_PORT: u16 = 8888;
/// The config folder inside the pipelock container (mount the folder, not the file, so a rewrite by
/// rename is seen by its watcher).
pub const PIPELOCK_CONFIG_DIR: &str = "/etc/pipelock";
/// The config file's name in [`PIPELOCK_CONFIG_DIR`].
pub const PIPELOCK_CONFIG_FILE: &str = "pipelock.yaml";
/// The host whose traffic pipelock passes through untouched when a route targets it.
pub const ANTHROPIC_API_HOST: &str = "api.anthropic.com";

/// Everything the YAML depends on.
#[derive(Debug, Clone)]
pub struct PipelockInput<'a> {
    pub slug: &'a str,
    /// The bottle's routes, defaults folded in (`BottlePlan::routes`).
    pub routes: &'a [Route],
    /// Hosts the operator approved at run time.
    pub approved_hosts: &'a [String],
    /// From [`super::dlp::exemptions`] over the resolved tokens; empty without credentialed routes.
    pub dlp_exemptions: &'a DlpExemptions,
    /// `tls_interception.ca_cert` / `ca_key` as pipelock sees them (absolute, in its container).
    pub ca_cert_path: &'a str,
    pub ca_key_path: &'a str,
}

/// The generated document: only keys of the pinned schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PipelockConfig {
    pub version: u32,
    pub mode: String,
    pub api_allowlist: Vec<String>,
    pub fetch_proxy: FetchProxy,
    pub forward_proxy: ForwardProxy,
    pub tls_interception: TlsInterception,
    pub request_body_scanning: RequestBodyScanning,
    #[serde(default, skip_serializing_if = "Dlp::is_empty")]
    pub dlp: Dlp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FetchProxy {
    pub listen: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ForwardProxy {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsInterception {
    pub enabled: bool,
    pub ca_cert: String,
    pub ca_key: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passthrough_domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RequestBodyScanning {
    pub enabled: bool,
    pub action: String,
    pub scan_headers: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Dlp {
    pub patterns: Vec<DlpPatternOverride>,
}

impl Dlp {
    fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// A default pattern restated by name (pipelock merges by name) with its `exempt_domains`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DlpPatternOverride {
    pub name: String,
    pub regex: String,
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<String>,
    pub exempt_domains: Vec<String>,
}

/// The pipelock config of a bottle, as YAML with a header comment.
pub fn render(input: &PipelockInput<'_>) -> String {
    let config = build(input);
    let body = serde_saphyr::to_string(&config).expect("plain structs always serialize");
    format!(
        "# Generated by claude-bottle for bottle {slug}: do not edit, approvals rewrite it.\n\
         # Schema: pipelock {PIPELOCK_VERSION} (internal/config/config.go at that tag).\n{body}",
        slug = input.slug
    )
}

pub(super) fn build(input: &PipelockInput<'_>) -> PipelockConfig {
    let route_hosts: Vec<String> = input.routes.iter().map(|r| r.host.clone()).collect();
    let api_allowlist = allowlist_hosts(&route_hosts, input.approved_hosts);
    let passthrough_domains = if input.routes.iter().any(|r| r.host == ANTHROPIC_API_HOST) {
        vec![ANTHROPIC_API_HOST.to_owned()]
    } else {
        Vec::new()
    };
    let patterns = input
        .dlp_exemptions
        .iter()
        .filter_map(|(name, hosts)| {
            let p = pattern(name)?;
            Some(DlpPatternOverride {
                name: p.name.to_owned(),
                regex: p.regex.to_owned(),
                severity: p.severity.to_owned(),
                validator: p.validator.map(str::to_owned),
                exempt_domains: hosts.iter().cloned().collect(),
            })
        })
        .collect();
    PipelockConfig {
        version: 1,
        mode: "strict".to_owned(),
        api_allowlist,
        fetch_proxy: FetchProxy {
            listen: format!("0.0.0.0:{PIPELOCK_PORT}"),
        },
        forward_proxy: ForwardProxy { enabled: true },
        tls_interception: TlsInterception {
            enabled: true,
            ca_cert: input.ca_cert_path.to_owned(),
            ca_key: input.ca_key_path.to_owned(),
            passthrough_domains,
        },
        request_body_scanning: RequestBodyScanning {
            enabled: true,
            action: "block".to_owned(),
            scan_headers: true,
        },
        dlp: Dlp { patterns },
    }
}

/// `ca_cert` / `ca_key` in the container when the stage folder is mounted at [`PIPELOCK_CONFIG_DIR`].
pub fn default_ca_paths() -> (String, String) {
    (
        format!("{PIPELOCK_CONFIG_DIR}/{}", crate::tls::CA_CERT_FILE),
        format!("{PIPELOCK_CONFIG_DIR}/{}", crate::tls::CA_KEY_FILE),
    )
}
