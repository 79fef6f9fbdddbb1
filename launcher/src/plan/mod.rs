//! The backend-neutral plan of one bottle: everything a backend needs, resolved and validated, pure.
//!
//! Built from a [`Bottle`] plus the host environment (injected as a lookup so tests control it).

mod preflight;

use std::path::PathBuf;

pub use preflight::{LAUNCH_QUESTION, render as render_preflight, render_info};

use crate::config::{Config, ResourceLimits};
use crate::home::Home;
use crate::manifest::{self, Agent, Bottle, GitRemote, Route, Runtime, Skill, Source};
use crate::secret::Secret;

/// Labels every engine object of a bottle carries.
pub const LABEL_BOTTLE: &str = "claude-bottle.bottle";
pub const LABEL_ROLE: &str = "claude-bottle.role";
pub const LABEL_VERSION: &str = "claude-bottle.version";
/// The pid of the launcher that owns the object: alive means running, dead means orphan.
pub const LABEL_LAUNCHER_PID: &str = "claude-bottle.launcher-pid";

/// A bottle ready to launch.
#[derive(Debug, Clone)]
pub struct BottlePlan {
    /// The bottle's name as the operator types it.
    pub name: String,
    /// Engine-safe name (lowercase letters, digits, '-'): container, network and image names.
    pub slug: String,
    pub source: Source,
    pub agent: Agent,
    pub image: ImageSource,
    /// `NAME` entries: value from the host at plan time, `None` when unset there.
    pub env_forwarded: Vec<ForwardedEnv>,
    /// `NAME=value` entries.
    pub env_literal: Vec<(String, String)>,
    pub skills: Vec<Skill>,
    pub git: Vec<GitRemote>,
    /// The bottle's routes plus the agent's default hosts as bare passes.
    pub routes: Vec<Route>,
    /// Every host the agent may reach: the route hosts, sorted, unique.
    pub allowlist: Vec<String>,
    /// Hosts the operator approved (`state/<slug>/approved-hosts`), folded into the routes.
    pub approved_hosts: Vec<String>,
    /// `state/<slug>/Dockerfile` and how many approved steps it holds, when approvals made one:
    /// the agent image is built from it instead of `image`.
    pub per_bottle_dockerfile: Option<(PathBuf, usize)>,
    pub supervise: bool,
    pub runtime: Runtime,
    /// The bottle's `limits:` over the config's defaults.
    pub limits: AgentLimits,
    /// `state/<slug>/` under the home.
    pub state_dir: PathBuf,
}

/// The agent container's resource limits, resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentLimits {
    pub memory_bytes: i64,
    pub pids: i64,
    pub cpus: Option<f64>,
    /// The bound of the agent's writable layer (from the config; a bottle sets none).
    pub disk: crate::config::DiskLimit,
}

impl AgentLimits {
    /// The bottle's limits where set, else the defaults.
    pub fn resolve(bottle: manifest::Limits, defaults: &ResourceLimits) -> Self {
        Self {
            memory_bytes: bottle
                .memory_bytes
                .unwrap_or_else(|| i64::try_from(defaults.memory_bytes).unwrap_or(i64::MAX)),
            pids: bottle.pids.unwrap_or(defaults.pids),
            cpus: bottle.cpus,
            disk: defaults.disk,
        }
    }
}

/// Where the agent image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `docker/agent/Dockerfile` compiled into the launcher.
    Embedded,
    /// The bottle's `dockerfile:`.
    Dockerfile(PathBuf),
}

#[derive(Debug, Clone)]
pub struct ForwardedEnv {
    pub name: String,
    pub value: Option<Secret>,
}

impl BottlePlan {
    /// Forwarded names that are unset on the host: an error at start, `(unset)` in a dry run.
    pub fn unset_env(&self) -> Vec<&str> {
        self.env_forwarded
            .iter()
            .filter(|e| e.value.is_none())
            .map(|e| e.name.as_str())
            .collect()
    }

    /// Fold an approved egress host into the routes (as a bare pass unless routed already) and
    /// the allowlist. Returns false when it was there already.
    pub fn approve_host(&mut self, host: &str) -> bool {
        if self.approved_hosts.iter().any(|h| h == host) {
            return false;
        }
        self.approved_hosts.push(host.to_string());
        if !self.routes.iter().any(|r| r.host == host) {
            self.routes.push(Route {
                host: host.to_string(),
                path: None,
                auth: None,
                default: false,
            });
        }
        if let Err(i) = self.allowlist.binary_search_by(|h| h.as_str().cmp(host)) {
            self.allowlist.insert(i, host.to_string());
        }
        true
    }

    /// Add `entry` to the push policy of git remote `remote`, unless it is there; `Err` says why
    /// it cannot (no such remote, or the list would not parse, e.g. the pattern is there with
    /// other options).
    pub fn approve_push(&mut self, remote: &str, entry: &str) -> Result<bool, String> {
        let Some(git) = self.git.iter_mut().find(|g| g.name == remote) else {
            let names: Vec<&str> = self.git.iter().map(|g| g.name.as_str()).collect();
            return Err(format!(
                "the bottle has no git remote {remote:?} (it has: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        };
        if git.push.iter().any(|p| p == entry) {
            return Ok(false);
        }
        let mut push = git.push.clone();
        push.push(entry.to_owned());
        if let Err(problems) = claude_bottle_protocol::git_policy::PushPolicy::parse(&push) {
            let p = &problems[0];
            return Err(format!("{} ({})", p.error, p.error.hint()));
        }
        git.push = push;
        Ok(true)
    }

    /// The bottle's state folder, path by path.
    pub fn layout(&self) -> crate::state::Layout {
        crate::state::Layout::new(&self.state_dir)
    }

    /// Labels every engine object of this bottle carries (the role is added per object).
    pub fn base_labels(&self) -> Vec<(String, String)> {
        vec![
            (LABEL_BOTTLE.to_string(), self.slug.clone()),
            (
                LABEL_VERSION.to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ]
    }
}

/// Lowercase letters, digits and '-' only; other characters become '-'.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// Resolve a validated bottle into a plan, reading forwarded env through `lookup`.
pub fn build(
    home: &Home,
    bottle: Bottle,
    defaults: &ResourceLimits,
    lookup: impl Fn(&str) -> Option<String>,
) -> BottlePlan {
    let slug = slug(&bottle.name);
    let mut env_forwarded = Vec::new();
    let mut env_literal = Vec::new();
    for e in bottle.env {
        match e {
            manifest::EnvEntry::Forward(name) => {
                let value = lookup(&name).map(Secret::new);
                env_forwarded.push(ForwardedEnv { name, value });
            }
            manifest::EnvEntry::Literal { name, value } => env_literal.push((name, value)),
        }
    }
    let routes = fold_default_routes(bottle.routes, manifest::DEFAULT_ALLOWLIST);
    let mut allowlist: Vec<String> = routes.iter().map(|r| r.host.clone()).collect();
    allowlist.sort();
    allowlist.dedup();
    BottlePlan {
        state_dir: home.state_dir(&slug),
        name: bottle.name,
        slug,
        source: bottle.source,
        agent: bottle.agent,
        image: bottle
            .dockerfile
            .map_or(ImageSource::Embedded, ImageSource::Dockerfile),
        env_forwarded,
        env_literal,
        skills: bottle.skills,
        git: bottle.git,
        routes,
        allowlist,
        approved_hosts: Vec::new(),
        per_bottle_dockerfile: None,
        supervise: bottle.supervise,
        runtime: bottle.runtime,
        limits: AgentLimits::resolve(bottle.limits, defaults),
    }
}

/// Append the default hosts as bare-pass routes unless the bottle already routes that host.
fn fold_default_routes(mut routes: Vec<Route>, defaults: &[&str]) -> Vec<Route> {
    for host in defaults {
        if !routes.iter().any(|r| r.host == *host) {
            routes.push(Route {
                host: (*host).to_string(),
                path: None,
                auth: None,
                default: true,
            });
        }
    }
    routes
}

/// Load the bottle `name` from `home` and plan it against the process environment.
pub fn load(
    home: &Home,
    config: &Config,
    name: &str,
) -> Result<BottlePlan, manifest::ManifestError> {
    let bottle = manifest::load(home, name)?;
    let mut plan = build(home, bottle, &config.agent_limits, |n| {
        std::env::var(n).ok()
    });
    let approved = crate::state::approved::hosts(&plan.state_dir).map_err(|e| {
        manifest::Diagnostic::new(&plan.state_dir, None, "approved-hosts", e.to_string())
            .hint("fix or remove the file; it lists one approved host a line")
    })?;
    for host in approved {
        plan.approve_host(&host);
    }
    let pushes = crate::state::approved::pushes(&plan.state_dir).map_err(|e| {
        manifest::Diagnostic::new(&plan.state_dir, None, "approved-pushes", e.to_string())
            .hint("fix or remove the file; it lists one approved `<remote> <push entry>` a line")
    })?;
    for (remote, entry) in pushes {
        // A remote since removed from the bottle, or an entry its list now holds with other
        // options, is left out: the bottle file decides.
        if let Err(why) = plan.approve_push(&remote, &entry) {
            tracing::warn!(
                remote,
                entry,
                "an approved push entry is not applied: {why}"
            );
        }
    }
    let per_bottle = plan.layout().per_bottle_dockerfile();
    if let Ok(text) = std::fs::read_to_string(&per_bottle) {
        let steps = crate::state::dockerfile::markers(&text).count();
        plan.per_bottle_dockerfile = Some((per_bottle, steps));
    }
    Ok(plan)
}

/// The plan of the embedded `default` bottle in a home at `dir`, with no environment: the
/// starting point of the unit tests that need a whole plan.
#[cfg(test)]
pub(crate) fn default_plan_in(dir: &std::path::Path) -> BottlePlan {
    let home = crate::home::Home::new(dir);
    let bottle = crate::manifest::load(&home, "default").expect("embedded default");
    build(&home, bottle, &Default::default(), |_| None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_engine_safe() {
        assert_eq!(slug("My_Bottle"), "my-bottle");
        assert_eq!(slug("dev-2"), "dev-2");
    }

    #[test]
    fn defaults_fold_in_unless_routed() {
        let routed = Route {
            host: "api.anthropic.com".into(),
            path: None,
            auth: None,
            default: false,
        };
        let routes = fold_default_routes(vec![routed.clone()], &["api.anthropic.com", "sentry.io"]);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0], routed);
        assert!(routes[1].default && routes[1].host == "sentry.io");
    }
}
