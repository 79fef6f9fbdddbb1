//! The compact preflight shown before launch, and the fuller `info` view of a resolved bottle.
//!
//! One value per line; continuation lines align under the first value. No secret value is ever
//! rendered: forwarded env shows names, routes show the auth scheme, `info` the token *reference*.

use std::fmt::Write as _;
use std::path::Path;

use super::{BottlePlan, ImageSource};
use crate::manifest::{Route, Source};

/// Width of the label column: the longest label (`egress-proxy`) plus two spaces.
const LABEL_WIDTH: usize = 14;

/// Builds label/value blocks.
struct Block {
    out: String,
    width: usize,
}

impl Block {
    fn new(width: usize) -> Self {
        Self {
            out: String::new(),
            width,
        }
    }

    fn field<I, S>(&mut self, label: &str, values: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut any = false;
        for (i, v) in values.into_iter().enumerate() {
            any = true;
            let shown = if i == 0 { label } else { "" };
            let _ = writeln!(self.out, "{shown:<w$}{}", v.as_ref(), w = self.width);
        }
        if !any {
            let _ = writeln!(self.out, "{label:<w$}(none)", w = self.width);
        }
    }
}

/// The compact preflight (without the `Launch? [y/N]` question).
pub fn render(plan: &BottlePlan) -> String {
    let mut b = Block::new(LABEL_WIDTH);
    b.field("agent", [agent_text(plan)]);
    b.field("env", env_lines(plan));
    b.field("skills", plan.skills.iter().map(|s| s.name.clone()));
    let mut bottle = vec![format!("{} ({})", plan.name, source_text(&plan.source))];
    bottle.push(format!("runtime {}", plan.runtime.as_str()));
    bottle.push(format!("image {}", image_text(plan)));
    b.field("bottle", bottle);
    b.field(
        "git gate",
        plan.git.iter().map(|g| {
            let mut s = format!("{} → {}", g.name, g.upstream);
            if !g.push.is_empty() {
                let _ = write!(s, " push {}", g.push.join(","));
            }
            s
        }),
    );
    b.field(
        "egress-proxy",
        plan.routes.iter().map(|r| route_line(plan, r)),
    );
    if plan.supervise {
        b.field("supervise", ["on (proposals go to the operator's queue)"]);
    }
    b.out
}

/// The question after the preflight.
pub const LAUNCH_QUESTION: &str = "Launch? [y/N] ";

fn env_lines(plan: &BottlePlan) -> Vec<String> {
    let mut lines: Vec<String> = plan
        .env_forwarded
        .iter()
        .map(|e| {
            if e.value.is_some() {
                e.name.clone()
            } else {
                format!("{} (unset)", e.name)
            }
        })
        .collect();
    lines.extend(plan.env_literal.iter().map(|(n, v)| format!("{n}={v}")));
    lines
}

fn route_line(plan: &BottlePlan, r: &Route) -> String {
    let mut s = r.host.clone();
    if let Some(p) = &r.path {
        s.push_str(p);
    }
    if let Some(a) = &r.auth {
        let _ = write!(s, " [auth:{}]", a.scheme);
    }
    if r.default {
        s.push_str(" (default)");
    }
    if plan.approved_hosts.contains(&r.host) {
        s.push_str(" (approved)");
    }
    s
}

/// Where the agent image comes from; the per-bottle Dockerfile wins once approvals made one.
fn image_text(plan: &BottlePlan) -> String {
    match (&plan.per_bottle_dockerfile, &plan.image) {
        (Some((path, steps)), _) => format!("{} (per-bottle, {steps} approved)", tilde(path)),
        (None, ImageSource::Embedded) => "embedded agent image".to_string(),
        (None, ImageSource::Dockerfile(p)) => tilde(p),
    }
}

/// `claude (embedded)`, `claude (~/…/agents/claude.md)`: the agent and where it came from.
fn agent_text(plan: &BottlePlan) -> String {
    format!("{} ({})", plan.agent.name, source_text(&plan.agent.source))
}

fn source_text(s: &Source) -> String {
    match s {
        Source::Embedded => "embedded".to_string(),
        Source::File(p) => tilde(p),
    }
}

/// Show a path under $HOME as `~/…`.
fn tilde(p: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty() && h != "/")
        && let Ok(rest) = p.strip_prefix(&home)
    {
        return format!("~/{}", rest.display());
    }
    p.display().to_string()
}

/// The resolved bottle for `claude-bottle info`.
pub fn render_info(plan: &BottlePlan) -> String {
    let mut b = Block::new(12);
    b.field("bottle", [plan.name.clone()]);
    b.field("source", [source_text(&plan.source)]);
    b.field("agent", [agent_text(plan)]);
    b.field("command", [plan.agent.command.join(" ")]);
    b.field(
        "model",
        [plan
            .agent
            .model
            .clone()
            .unwrap_or_else(|| "(agent default)".to_string())],
    );
    b.field("env", env_lines(plan));
    b.field(
        "skills",
        plan.skills
            .iter()
            .map(|s| format!("{} {}", s.name, tilde(&s.path))),
    );
    b.field(
        "git",
        plan.git.iter().map(|g| {
            let mut s = format!("{} {}", g.name, g.upstream);
            if let Some(t) = &g.token_ref {
                let _ = write!(s, " token {t}");
            }
            if let Some(k) = &g.ssh_key {
                let _ = write!(s, " key {}", tilde(k));
            }
            if !g.push.is_empty() {
                let _ = write!(s, " push {}", g.push.join(","));
            }
            s
        }),
    );
    b.field(
        "routes",
        plan.routes.iter().map(|r| {
            let mut s = format!("{}{}", r.host, r.path.as_deref().unwrap_or(""));
            match &r.auth {
                Some(a) => {
                    let _ = write!(s, " auth {} token {}", a.scheme, a.token_ref);
                }
                None => s.push_str(" pass"),
            }
            if r.default {
                s.push_str(" (default)");
            }
            s
        }),
    );
    b.field("allowlist", plan.allowlist.iter());
    b.field("runtime", [plan.runtime.as_str()]);
    b.field("image", [image_text(plan)]);
    let mut limits = format!(
        "memory {} MiB, pids {}",
        plan.limits.memory_bytes / (1024 * 1024),
        plan.limits.pids
    );
    if let Some(c) = plan.limits.cpus {
        let _ = write!(limits, ", cpus {c}");
    }
    b.field("limits", [limits]);
    b.field("supervise", [if plan.supervise { "on" } else { "off" }]);
    b.field("state", [tilde(&plan.state_dir)]);
    b.out
}
