//! `info --json`: the resolved bottle. Names and references only: no forwarded value and no
//! token ever enters the document.

use std::path::Path;

use serde::Serialize;

use super::VERSION;
use crate::config::DiskLimit;
use crate::manifest::Source;
use crate::plan::{BottlePlan, ImageSource};

/// `info --json`.
#[derive(Debug, Serialize)]
pub struct InfoDoc {
    pub version: u32,
    /// The bottle's name as the operator types it.
    pub bottle: String,
    /// Engine-safe name: containers, networks, images and `state/<slug>`.
    pub slug: String,
    /// The bottle file; `null` for the embedded `default`.
    pub source: Option<String>,
    pub agent: AgentJson,
    pub env: Vec<EnvJson>,
    pub skills: Vec<SkillJson>,
    pub git: Vec<GitJson>,
    pub routes: Vec<RouteJson>,
    /// Every host the agent may reach, sorted.
    pub allowlist: Vec<String>,
    /// `runc` or `runsc`.
    pub runtime: &'static str,
    pub image: ImageJson,
    pub limits: LimitsJson,
    pub supervise: bool,
    pub state_dir: String,
}

#[derive(Debug, Serialize)]
pub struct AgentJson {
    pub name: String,
    /// The agent file; `null` for an embedded agent.
    pub source: Option<String>,
    pub command: Vec<String>,
    /// `null`: the agent's default.
    pub model: Option<String>,
}

/// One `env:` entry. A forwarded variable's value is never given, only whether the host has it.
#[derive(Debug, Serialize)]
pub struct EnvJson {
    pub name: String,
    /// `NAME` (from the host) rather than `NAME=value` (from the bottle file).
    pub forwarded: bool,
    /// Whether it has a value: a forwarded one unset on the host stops `start`.
    pub set: bool,
    /// The literal value the bottle file writes; `null` for a forwarded variable.
    pub value: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SkillJson {
    pub name: String,
    pub path: String,
}

/// A remote of the git gate.
#[derive(Debug, Serialize)]
pub struct GitJson {
    pub name: String,
    pub upstream: String,
    /// `https` or `ssh`: how the gate reaches the upstream.
    pub transport: String,
    /// The upstream's host, which the gate's pipelock allows.
    pub host: String,
    /// Where the token comes from (`env:NAME`, `file:PATH`), never the token (https).
    pub token_ref: Option<String>,
    /// The private key file the gate uses (ssh), never its content.
    pub ssh_key: Option<String>,
    /// The push policy's entries, approved ones included.
    pub push: Vec<String>,
}

/// A route of the egress proxy.
#[derive(Debug, Serialize)]
pub struct RouteJson {
    pub host: String,
    /// The path prefix the credential is injected under; `null`: the whole host.
    pub path: Option<String>,
    /// `bearer`, `token`, `basic` or `header:<Name>`; `null` for a bare pass.
    pub auth_scheme: Option<String>,
    /// Where the credential comes from (`env:NAME`, `file:PATH`), never the credential.
    pub token_ref: Option<String>,
    /// From the agent's default allowlist rather than the bottle.
    pub default: bool,
    /// Approved by the operator (`state/<slug>/approved-hosts`).
    pub approved: bool,
}

/// Where the agent image is built from.
#[derive(Debug, Serialize)]
pub struct ImageJson {
    /// `embedded`, `dockerfile` (the bottle's) or `per_bottle` (approvals changed it).
    pub source: &'static str,
    /// The Dockerfile; `null` for the embedded one.
    pub path: Option<String>,
    /// Approved steps in the per-bottle Dockerfile; `null` otherwise.
    pub approved_steps: Option<usize>,
}

/// The agent container's limits, resolved over the config's defaults.
#[derive(Debug, Serialize)]
pub struct LimitsJson {
    pub memory_bytes: i64,
    pub pids: i64,
    /// `null`: no CPU limit.
    pub cpus: Option<f64>,
    /// The bound of the writable layer; `null`: none (`disk = "none"`).
    pub disk_bytes: Option<u64>,
}

/// `info --json` of `plan`.
pub fn info(plan: &BottlePlan) -> InfoDoc {
    let env = plan
        .env_forwarded
        .iter()
        .map(|e| EnvJson {
            name: e.name.clone(),
            forwarded: true,
            set: e.value.is_some(),
            value: None,
        })
        .chain(plan.env_literal.iter().map(|(name, value)| EnvJson {
            name: name.clone(),
            forwarded: false,
            set: true,
            value: Some(value.clone()),
        }))
        .collect();
    let image = match (&plan.per_bottle_dockerfile, &plan.image) {
        (Some((path, steps)), _) => ImageJson {
            source: "per_bottle",
            path: Some(text(path)),
            approved_steps: Some(*steps),
        },
        (None, ImageSource::Embedded) => ImageJson {
            source: "embedded",
            path: None,
            approved_steps: None,
        },
        (None, ImageSource::Dockerfile(path)) => ImageJson {
            source: "dockerfile",
            path: Some(text(path)),
            approved_steps: None,
        },
    };
    InfoDoc {
        version: VERSION,
        bottle: plan.name.clone(),
        slug: plan.slug.clone(),
        source: source(&plan.source),
        agent: AgentJson {
            name: plan.agent.name.clone(),
            source: source(&plan.agent.source),
            command: plan.agent.command.clone(),
            model: plan.agent.model.clone(),
        },
        env,
        skills: plan
            .skills
            .iter()
            .map(|s| SkillJson {
                name: s.name.clone(),
                path: text(&s.path),
            })
            .collect(),
        git: plan
            .git
            .iter()
            .map(|g| GitJson {
                name: g.name.clone(),
                upstream: g.upstream.clone(),
                transport: g.transport.to_string(),
                host: g.host.clone(),
                token_ref: g.token_ref.as_ref().map(ToString::to_string),
                ssh_key: g.ssh_key.as_ref().map(|k| k.display().to_string()),
                push: g.push.clone(),
            })
            .collect(),
        routes: plan
            .routes
            .iter()
            .map(|r| RouteJson {
                host: r.host.clone(),
                path: r.path.clone(),
                auth_scheme: r.auth.as_ref().map(|a| a.scheme.to_string()),
                token_ref: r.auth.as_ref().map(|a| a.token_ref.to_string()),
                default: r.default,
                approved: plan.approved_hosts.contains(&r.host),
            })
            .collect(),
        allowlist: plan.allowlist.clone(),
        runtime: plan.runtime.as_str(),
        image,
        limits: LimitsJson {
            memory_bytes: plan.limits.memory_bytes,
            pids: plan.limits.pids,
            cpus: plan.limits.cpus,
            disk_bytes: match plan.limits.disk {
                DiskLimit::Bytes { bytes, .. } => Some(bytes),
                DiskLimit::Unbounded => None,
            },
        },
        supervise: plan.supervise,
        state_dir: text(&plan.state_dir),
    }
}

fn source(s: &Source) -> Option<String> {
    match s {
        Source::File(p) => Some(text(p)),
        Source::Embedded => None,
    }
}

/// A path as text (a name that is not UTF-8 shows U+FFFD where it is not).
fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::home::Home;

    const SECRET: &str = "hunter2-forwarded-value";

    /// The fixture bottle `full` (every key), planned with every forwarded variable but
    /// `HOST_ONLY_UNSET` set to [`SECRET`].
    fn full_plan() -> BottlePlan {
        let home = Home::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/home"));
        let bottle = crate::manifest::load(&home, "full").expect("the fixture loads");
        crate::plan::build(&home, bottle, &Default::default(), |name| {
            (name != "HOST_ONLY_UNSET").then(|| SECRET.to_owned())
        })
    }

    fn parsed(plan: &BottlePlan) -> (String, Value) {
        let text = super::super::to_text(&info(plan)).expect("json");
        let value = serde_json::from_str(&text).expect("the document parses");
        (text, value)
    }

    #[test]
    fn the_plan_is_data_with_names_and_references_but_no_secret() {
        let (text, doc) = parsed(&full_plan());
        assert!(!text.contains(SECRET), "a forwarded value leaked: {text}");
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["bottle"], "full");
        assert_eq!(doc["slug"], "full");
        assert!(
            doc["source"]
                .as_str()
                .is_some_and(|s| s.ends_with("/bottles/full.md"))
        );
        assert_eq!(doc["agent"]["name"], "scripted");
        assert_eq!(
            doc["agent"]["command"],
            json!(["/bin/sh", "-c", "echo hello from the bottle"])
        );
        assert_eq!(doc["agent"]["model"], "claude-sonnet-4-5");
        assert_eq!(
            doc["env"],
            json!([
                {"name": "GITHUB_USER", "forwarded": true, "set": true, "value": null},
                {"name": "HOST_ONLY_UNSET", "forwarded": true, "set": false, "value": null},
                {"name": "MODE", "forwarded": false, "set": true, "value": "ci"},
            ])
        );
        assert_eq!(doc["skills"][0]["name"], "review");
        assert_eq!(
            doc["git"],
            json!([{"name": "origin", "upstream": "https://github.com/acme/app.git",
                    "transport": "https", "host": "github.com", "ssh_key": null,
                    "token_ref": "env:GITHUB_TOKEN", "push": ["claude/*", "wip/*"]}])
        );
        assert_eq!(
            doc["routes"][1],
            json!({"host": "api.github.com", "path": "/repos/acme/", "auth_scheme": "token",
                   "token_ref": "env:GITHUB_TOKEN", "default": false, "approved": false})
        );
        assert_eq!(doc["routes"][2]["auth_scheme"], "header:X-Api-Key");
        assert_eq!(doc["routes"][2]["token_ref"], "file:/run/secrets/internal");
        assert_eq!(
            doc["routes"][3],
            json!({"host": "example.com", "path": null, "auth_scheme": null,
                   "token_ref": null, "default": false, "approved": false})
        );
        assert_eq!(
            doc["allowlist"],
            json!([
                "api.anthropic.com",
                "api.github.com",
                "example.com",
                "internal.example.com"
            ])
        );
        assert_eq!(doc["runtime"], "runsc");
        assert_eq!(
            doc["image"],
            json!({"source": "embedded", "path": null, "approved_steps": null})
        );
        assert_eq!(
            doc["limits"],
            json!({"memory_bytes": 2_147_483_648_i64, "pids": 256, "cpus": 1.5,
                   "disk_bytes": 20 * 1024 * 1024 * 1024_u64})
        );
        assert_eq!(doc["supervise"], true);
        assert!(
            doc["state_dir"]
                .as_str()
                .is_some_and(|s| s.ends_with("/state/full"))
        );
    }

    #[test]
    fn approvals_show_as_approved_routes_and_a_per_bottle_image() {
        let mut plan = full_plan();
        plan.approve_host("pypi.example.org");
        plan.per_bottle_dockerfile = Some((plan.state_dir.join("Dockerfile"), 2));
        plan.limits.disk = DiskLimit::Unbounded;
        plan.limits.cpus = None;
        let (_, doc) = parsed(&plan);
        let routes = doc["routes"].as_array().expect("routes");
        let approved = routes.last().expect("the approved host");
        assert_eq!(approved["host"], "pypi.example.org");
        assert_eq!(approved["approved"], true);
        assert_eq!(approved["auth_scheme"], Value::Null);
        assert_eq!(doc["image"]["source"], "per_bottle");
        assert!(
            doc["image"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/state/full/Dockerfile"))
        );
        assert_eq!(doc["image"]["approved_steps"], 2);
        assert_eq!(doc["limits"]["disk_bytes"], Value::Null);
        assert_eq!(doc["limits"]["cpus"], Value::Null);
    }

    #[test]
    fn the_embedded_default_has_no_source_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, doc) = parsed(&crate::plan::default_plan_in(dir.path()));
        assert_eq!(doc["bottle"], "default");
        assert_eq!(doc["source"], Value::Null);
        assert_eq!(doc["agent"]["source"], Value::Null);
        assert_eq!(
            doc["routes"],
            json!([{"host": "api.anthropic.com", "path": null, "auth_scheme": "header:x-api-key",
                    "token_ref": "env:ANTHROPIC_API_KEY", "default": false, "approved": false}])
        );
        assert_eq!(
            doc["env"],
            json!([]),
            "the API key reaches the agent through the route, not the env"
        );
    }
}
