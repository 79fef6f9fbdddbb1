//! The manifest as written: serde structs with `deny_unknown_fields` and spans, before validation.
//!
//! Legacy keys (`cred_proxy`, `tokens`, `egress`) are known here on purpose: they deserialize into a
//! loose value so validation can turn them into a migration recipe instead of "unknown field".

use serde::Deserialize;
use serde_saphyr::Spanned;

pub type Sp<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBottle {
    pub agent: Option<Sp<String>>,
    pub env: Option<Vec<Sp<String>>>,
    pub skills: Option<Vec<Sp<String>>>,
    pub runtime: Option<Sp<String>>,
    pub dockerfile: Option<Sp<String>>,
    pub supervise: Option<bool>,
    pub git: Option<Vec<Sp<RawGit>>>,
    pub egress_proxy: Option<Sp<RawEgressProxy>>,
    pub limits: Option<Sp<RawLimits>>,
    pub cred_proxy: Option<Sp<serde_json::Value>>,
    pub tokens: Option<Sp<serde_json::Value>>,
    pub egress: Option<Sp<serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGit {
    pub name: Option<Sp<String>>,
    pub upstream: Option<Sp<String>>,
    pub token_ref: Option<Sp<String>>,
    pub ssh_key: Option<Sp<String>>,
    pub known_hosts: Option<Sp<String>>,
    pub push: Option<Vec<Sp<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgressProxy {
    pub routes: Option<Vec<Sp<RawRoute>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub host: Option<Sp<String>>,
    pub path: Option<Sp<String>>,
    pub auth_scheme: Option<Sp<String>>,
    pub token_ref: Option<Sp<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub memory: Option<Sp<String>>,
    pub pids: Option<Sp<i64>>,
    pub cpus: Option<Sp<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub command: Option<Vec<Sp<String>>>,
    pub model: Option<Sp<String>>,
    pub skills: Option<Vec<Sp<String>>>,
    pub resume: Option<Vec<Sp<String>>>,
}
