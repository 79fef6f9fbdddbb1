//! Manifests compiled into the binary, so `claude-bottle start` works with an empty home.

/// Embedded bottles by name.
pub const BOTTLES: &[(&str, &str)] = &[("default", include_str!("../../assets/default-bottle.md"))];

/// Embedded agents by name.
pub const AGENTS: &[(&str, &str)] = &[("claude", include_str!("../../assets/claude-agent.md"))];

/// Hosts the default agent needs for itself. They fold into every bottle's routes as bare passes
/// unless the bottle routes the host itself. Derived from watching Claude Code 2.1.332 (the pinned
/// CLI of the embedded image) through a recording proxy: with the image's environment
/// (`CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`, `DISABLE_AUTOUPDATER`, no marketplace auto-install)
/// and the shim's `claude-setup`, it contacts `api.anthropic.com` only (`/v1/messages`,
/// `/api/claude_code/settings`, `/api/claude_code/policy_limits`); docs/egress.md lists what it
/// contacts without them and why each is left out.
pub const DEFAULT_ALLOWLIST: &[&str] = &["api.anthropic.com"];

pub fn bottle(name: &str) -> Option<&'static str> {
    BOTTLES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn agent(name: &str) -> Option<&'static str> {
    AGENTS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
