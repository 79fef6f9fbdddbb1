//! Manifests compiled into the binary, so `claude-bottle start` works with an empty home.

/// Embedded bottles by name.
pub const BOTTLES: &[(&str, &str)] = &[("default", include_str!("../../assets/default-bottle.md"))];

/// Embedded agents by name.
pub const AGENTS: &[(&str, &str)] = &[("claude", include_str!("../../assets/claude-agent.md"))];

/// Hosts the default agent needs for itself (API, telemetry, error reports). They fold into every
/// bottle's routes as bare passes unless the bottle routes the host itself.
pub const DEFAULT_ALLOWLIST: &[&str] = &["api.anthropic.com", "statsig.anthropic.com", "sentry.io"];

pub fn bottle(name: &str) -> Option<&'static str> {
    BOTTLES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn agent(name: &str) -> Option<&'static str> {
    AGENTS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
