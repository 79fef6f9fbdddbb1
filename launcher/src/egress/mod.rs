//! The egress chain's generated files, backend-neutral and pure: routes.json, allowlist, pipelock YAML.
//!
//! agent → (relay) → egress-proxy (mitmproxy + addon: refuses secrets the agent sends, injects the
//! tokens it holds) → pipelock (allowlist, DLP of the hosts it intercepts, last hop) → internet. Without credentialed routes there is no egress-proxy and the agent's relay
//! goes to pipelock directly. [`images`] describes the sidecar images and their container contracts.

pub mod dlp;
pub mod images;
pub mod pipelock;
pub mod routes;

pub use dlp::{DlpPattern, DlpRules, default_rules as dlp_rules};
pub use pipelock::{
    PIPELOCK_CONFIG_DIR, PIPELOCK_CONFIG_FILE, PIPELOCK_PORT, PIPELOCK_VERSION, PipelockInput,
    render as pipelock_yaml,
};
pub use routes::{
    EgressRoutes, ProxyRoute, ProxyRoutes, ROUTES_VERSION, ResolvedTokens, TOKEN_SLOT_PREFIX,
    TokenError, TokenSlot, agent_routes_json, allowlist_text,
};

#[cfg(test)]
mod tests;
