//! pipelock's config YAML for the pinned version: the bottle's allowlist, interception CA, passthrough.
//!
//! Keys follow pipelock [`PIPELOCK_VERSION`], read from `internal/config/schema.go` at that tag
//! (commit 7a3b7de4a555) of luckyPipewrench/pipelock. pipelock refuses unknown keys (and
//! multi-document YAML) since v2.2.0: the structs below carry only keys of its schema, and a unit test
//! checks every generated key against `testdata/pipelock-2.3.0-keys.txt`.
//!
//! What is generated, and why:
//! - `mode: strict` with `api_allowlist` = the route hosts (the agent's defaults folded in) plus the
//!   approved hosts: anything else is refused.
//! - `fetch_proxy.listen` on all interfaces, port [`PIPELOCK_PORT`]; `forward_proxy.enabled` so
//!   CONNECT and absolute-URI requests work (`/health` is served on the same port).
//! - `tls_interception` with the bottle's pipelock CA, so request bodies and headers can be scanned.
//! - `request_body_scanning` with `action: block` and header scanning; not configurable.
//! - Every host that receives an injected credential is in `tls_interception.passthrough_domains`:
//!   pipelock's DLP scans request headers whatever the destination, and its immutable core patterns
//!   (GitHub, Anthropic, … tokens) would refuse the egress-proxy's own header; `exempt_domains`
//!   applies to URL scanning only. pipelock still allowlists those hosts by their CONNECT name, and the
//!   egress-proxy applies pipelock's default patterns to what the agent sent before it injects
//!   anything ([`super::dlp`]). Bare-pass hosts are intercepted and scanned by pipelock itself.

use serde::{Deserialize, Serialize};

use super::routes::allowlist_hosts;
use crate::manifest::Route;

/// The pinned pipelock release: the schema this module writes and the DLP table the egress-proxy
/// applies (`docker/egress-proxy/dlp-patterns.json`). Bump all three together.
pub const PIPELOCK_VERSION: &str = "2.3.0";
/// The pinned pipelock image as pipelock publishes it (GoReleaser's `{{ .Version }}`: no `v`).
pub const PIPELOCK_IMAGE: &str = "ghcr.io/luckypipewrench/pipelock:2.3.0";
/// pipelock's port (fetch and forward proxy, `/health`).
pub const PIPELOCK_PORT: u16 = 8888;
/// The config folder inside the pipelock container (mount the folder, not the file, so a rewrite by
/// rename is seen by its watcher).
pub const PIPELOCK_CONFIG_DIR: &str = "/etc/pipelock";
/// The config file's name in [`PIPELOCK_CONFIG_DIR`].
pub const PIPELOCK_CONFIG_FILE: &str = "pipelock.yaml";

/// Everything the YAML depends on.
#[derive(Debug, Clone)]
pub struct PipelockInput<'a> {
    pub slug: &'a str,
    /// The bottle's routes, defaults folded in (`BottlePlan::routes`).
    pub routes: &'a [Route],
    /// Hosts the operator approved at run time.
    pub approved_hosts: &'a [String],
    /// `tls_interception.ca_cert` / `ca_key` as pipelock sees them (absolute, in its container).
    pub ca_cert_path: &'a str,
    pub ca_key_path: &'a str,
    /// `ssrf.ip_allowlist`: private ranges the operator lets pipelock reach (`config.toml`'s
    /// `allow_private_cidrs`); pipelock refuses private, loopback and link-local addresses otherwise.
    pub allow_private_cidrs: &'a [String],
}

/// pipelock's default is 60 requests a minute per base domain, and cannot be switched off: a package
/// install or a clone makes more. Still a bound on a runaway loop.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 3000;
/// pipelock cuts a tunnel after 300 s by default; an agent keeps one connection to its model API for
/// a whole session and streams long answers over it.
pub const MAX_TUNNEL_SECONDS: u32 = 3600;
/// pipelock buffers each intercepted response whole to scan it before sending (and refuses one
/// over the limit): its 5 MiB default refuses ordinary package downloads; 64 MiB still bounds what
/// one response costs its memory.
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssrf: Option<Ssrf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FetchProxy {
    pub listen: String,
    pub monitoring: Monitoring,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Monitoring {
    pub max_requests_per_minute: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ForwardProxy {
    pub enabled: bool,
    pub max_tunnel_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Ssrf {
    pub ip_allowlist: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsInterception {
    pub enabled: bool,
    pub ca_cert: String,
    pub ca_key: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passthrough_domains: Vec<String>,
    pub max_response_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RequestBodyScanning {
    pub enabled: bool,
    pub action: String,
    pub scan_headers: bool,
}

/// The pipelock config of a bottle, as YAML with a header comment.
pub fn render(input: &PipelockInput<'_>) -> String {
    let config = build(input);
    let body = serde_saphyr::to_string(&config).expect("plain structs always serialize");
    format!(
        "# Generated by claude-bottle for bottle {slug}: do not edit, approvals rewrite it.\n\
         # Schema: pipelock {PIPELOCK_VERSION} (internal/config/schema.go at that tag).\n{body}",
        slug = input.slug
    )
}

pub(super) fn build(input: &PipelockInput<'_>) -> PipelockConfig {
    let route_hosts: Vec<String> = input.routes.iter().map(|r| r.host.clone()).collect();
    let api_allowlist = allowlist_hosts(&route_hosts, input.approved_hosts);
    let passthrough: std::collections::BTreeSet<&str> = input
        .routes
        .iter()
        .filter(|r| r.auth.is_some())
        .map(|r| r.host.as_str())
        .collect();
    let passthrough_domains = passthrough.into_iter().map(str::to_owned).collect();
    config(
        api_allowlist,
        passthrough_domains,
        (input.ca_cert_path, input.ca_key_path),
        input.allow_private_cidrs,
    )
}

/// The git gate's own pipelock: `hosts` (the upstreams) allowed and passed through untouched,
/// nothing else. The gate's git checks the upstream's certificate itself; pipelock must not
/// decrypt an ssh session or a pack (docs/git-gate.md, "The way out").
pub fn render_passthrough(
    slug: &str,
    hosts: &[String],
    (ca_cert_path, ca_key_path): (&str, &str),
    allow_private_cidrs: &[String],
) -> String {
    let mut hosts = hosts.to_vec();
    hosts.sort();
    hosts.dedup();
    let config = config(
        hosts.clone(),
        hosts,
        (ca_cert_path, ca_key_path),
        allow_private_cidrs,
    );
    let body = serde_saphyr::to_string(&config).expect("plain structs always serialize");
    format!(
        "# Generated by claude-bottle for the git gate of bottle {slug}: do not edit.\n\
         # Schema: pipelock {PIPELOCK_VERSION} (internal/config/schema.go at that tag).\n{body}"
    )
}

fn config(
    api_allowlist: Vec<String>,
    passthrough_domains: Vec<String>,
    (ca_cert, ca_key): (&str, &str),
    allow_private_cidrs: &[String],
) -> PipelockConfig {
    PipelockConfig {
        version: 1,
        mode: "strict".to_owned(),
        api_allowlist,
        fetch_proxy: FetchProxy {
            listen: format!("0.0.0.0:{PIPELOCK_PORT}"),
            monitoring: Monitoring {
                max_requests_per_minute: MAX_REQUESTS_PER_MINUTE,
            },
        },
        forward_proxy: ForwardProxy {
            enabled: true,
            max_tunnel_seconds: MAX_TUNNEL_SECONDS,
        },
        tls_interception: TlsInterception {
            enabled: true,
            ca_cert: ca_cert.to_owned(),
            ca_key: ca_key.to_owned(),
            passthrough_domains,
            max_response_bytes: MAX_RESPONSE_BYTES,
        },
        request_body_scanning: RequestBodyScanning {
            enabled: true,
            action: "block".to_owned(),
            scan_headers: true,
        },
        ssrf: (!allow_private_cidrs.is_empty()).then(|| Ssrf {
            ip_allowlist: allow_private_cidrs.to_vec(),
        }),
    }
}

/// `ca_cert` / `ca_key` in the container when the stage folder is mounted at [`PIPELOCK_CONFIG_DIR`].
pub fn default_ca_paths() -> (String, String) {
    (
        format!("{PIPELOCK_CONFIG_DIR}/{}", crate::tls::CA_CERT_FILE),
        format!("{PIPELOCK_CONFIG_DIR}/{}", crate::tls::CA_KEY_FILE),
    )
}
