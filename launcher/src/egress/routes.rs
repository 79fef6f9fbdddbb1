//! routes.json for the egress-proxy (and for the agent's current-config), token slots, the allowlist.
//!
//! The egress-proxy's file names, per credentialed route, the environment *slot* that holds its token
//! (`CLAUDE_BOTTLE_TOKEN_<n>`, one per distinct `token_ref`), never the value. Values are resolved on
//! the host at launch ([`EgressRoutes::resolve`]) and go only into the egress-proxy's environment.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::dlp::DlpRules;
use crate::manifest::{Route, TokenRef};
use crate::secret::Secret;

/// `version` of both routes.json files; the addon refuses any other. 2 added `dlp`.
pub const ROUTES_VERSION: u32 = 2;
/// Token slot names are this plus an index.
pub const TOKEN_SLOT_PREFIX: &str = "CLAUDE_BOTTLE_TOKEN_";

/// The egress-proxy's routes.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyRoutes {
    pub version: u32,
    pub routes: Vec<ProxyRoute>,
    /// What the addon refuses in the agent's requests before it injects anything.
    pub dlp: &'static DlpRules,
}

/// One credentialed route as the addon reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyRoute {
    pub host: String,
    /// Normalised (`//` collapsed); absent means the whole host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// `bearer`, `token`, `basic` or `header:<Name>`.
    pub auth_scheme: String,
    /// The environment variable of the egress-proxy that holds the token.
    pub token_env: String,
}

/// One environment slot: which reference fills it and which hosts receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSlot {
    pub env: String,
    pub token_ref: TokenRef,
    /// Hosts of the routes using this slot, sorted and unique.
    pub hosts: Vec<String>,
}

/// The credentialed part of a bottle's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRoutes {
    pub routes: ProxyRoutes,
    pub slots: Vec<TokenSlot>,
}

/// Token values for the egress-proxy's environment, one per slot. `Debug` shows names only.
#[derive(Debug, Clone)]
pub struct ResolvedTokens {
    /// `(slot, value)`, in slot order: the egress-proxy's environment.
    pub env: Vec<(String, Secret)>,
}

/// Why a token could not be resolved. Messages name the reference, never a value.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "failed to resolve token {token_ref}: ${name} is not set\nhint: export {name} before starting the bottle, or change the route's token_ref"
    )]
    EnvUnset { token_ref: TokenRef, name: String },
    #[error("failed to resolve token {token_ref}: cannot read {path}: {source}")]
    FileRead {
        token_ref: TokenRef,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to resolve token {token_ref}: it is empty")]
    Empty { token_ref: TokenRef },
    #[error(
        "failed to resolve token {token_ref}: it contains a line break or control character\nhint: a token is one line; check the file or variable"
    )]
    ControlChar { token_ref: TokenRef },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<TokenError>),
}

impl crate::error::Diagnose for TokenError {
    /// A route's token the operator has not provided: fixed in the environment or the bottle.
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Usage
    }
}

impl EgressRoutes {
    /// The credentialed routes of `routes`, with one slot per distinct `token_ref` in order of first
    /// use.
    pub fn from_routes(routes: &[Route]) -> Self {
        let mut slots: Vec<TokenSlot> = Vec::new();
        let mut proxy_routes = Vec::new();
        for route in routes {
            let Some(auth) = &route.auth else { continue };
            let index = match slots.iter().position(|s| s.token_ref == auth.token_ref) {
                Some(i) => i,
                None => {
                    slots.push(TokenSlot {
                        env: format!("{TOKEN_SLOT_PREFIX}{}", slots.len()),
                        token_ref: auth.token_ref.clone(),
                        hosts: Vec::new(),
                    });
                    slots.len() - 1
                }
            };
            let slot = &mut slots[index];
            if !slot.hosts.contains(&route.host) {
                slot.hosts.push(route.host.clone());
                slot.hosts.sort();
            }
            proxy_routes.push(ProxyRoute {
                host: route.host.clone(),
                path_prefix: route.path.as_deref().map(normalise_prefix),
                auth_scheme: auth.scheme.to_string(),
                token_env: slot.env.clone(),
            });
        }
        Self {
            routes: ProxyRoutes {
                version: ROUTES_VERSION,
                routes: proxy_routes,
                dlp: super::dlp::default_rules(),
            },
            slots,
        }
    }

    /// No credentialed route: the bottle needs no egress-proxy (the agent talks to pipelock).
    pub fn is_empty(&self) -> bool {
        self.routes.routes.is_empty()
    }

    /// The egress-proxy's routes.json (pretty, newline-terminated).
    pub fn routes_json(&self) -> String {
        to_json(&self.routes)
    }

    /// Reads every slot's token: `env:` through `lookup`, `file:` from disk; values are trimmed. All
    /// failures are reported together.
    pub fn resolve(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedTokens, TokenError> {
        let mut env = Vec::new();
        let mut errors = Vec::new();
        for slot in &self.slots {
            match resolve_one(&slot.token_ref, &lookup) {
                Ok(value) => env.push((slot.env.clone(), value)),
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(ResolvedTokens { env }),
            1 => Err(errors.remove(0)),
            _ => Err(TokenError::Several(errors)),
        }
    }
}

pub(crate) fn resolve_one(
    token_ref: &TokenRef,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Secret, TokenError> {
    let raw = match token_ref {
        TokenRef::Env(name) => lookup(name).ok_or_else(|| TokenError::EnvUnset {
            token_ref: token_ref.clone(),
            name: name.clone(),
        })?,
        TokenRef::File(path) => {
            std::fs::read_to_string(path).map_err(|source| TokenError::FileRead {
                token_ref: token_ref.clone(),
                path: path.clone(),
                source,
            })?
        }
    };
    let value = raw.trim();
    if value.is_empty() {
        return Err(TokenError::Empty {
            token_ref: token_ref.clone(),
        });
    }
    // The value becomes a header line: a line break would let it smuggle headers.
    if value.chars().any(char::is_control) {
        return Err(TokenError::ControlChar {
            token_ref: token_ref.clone(),
        });
    }
    Ok(Secret::new(value))
}

/// A route path prefix as the addon compares it: `//` runs collapsed (the manifest has already
/// refused `.`/`..` segments, queries and percent-encoding).
pub fn normalise_prefix(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// The agent's view of the routes (current-config): hosts, prefixes and schemes, no slots or refs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentRoutes {
    pub version: u32,
    pub routes: Vec<AgentRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentRoute {
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// The scheme the egress-proxy adds, or absent for a bare pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_scheme: Option<String>,
    /// From the agent's default allowlist rather than the bottle.
    pub default: bool,
}

/// The agent-facing routes.json for current-config.
pub fn agent_routes_json(routes: &[Route]) -> String {
    let doc = AgentRoutes {
        version: ROUTES_VERSION,
        routes: routes
            .iter()
            .map(|r| AgentRoute {
                host: r.host.clone(),
                path_prefix: r.path.as_deref().map(normalise_prefix),
                auth_scheme: r.auth.as_ref().map(|a| a.scheme.to_string()),
                default: r.default,
            })
            .collect(),
    };
    to_json(&doc)
}

/// Every host of `allowlist` and `approved`, sorted and unique: one a line.
pub fn allowlist_hosts(allowlist: &[String], approved: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = allowlist.iter().chain(approved).collect();
    set.into_iter().cloned().collect()
}

/// The allowlist as text, one host a line, newline-terminated.
pub fn allowlist_text(allowlist: &[String], approved: &[String]) -> String {
    allowlist_hosts(allowlist, approved)
        .iter()
        .map(|h| format!("{h}\n"))
        .collect()
}

fn to_json(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("plain structs always serialize");
    text.push('\n');
    text
}
