//! `list --json`: every bottle with objects on the engine, its containers, networks and volumes.

use serde::Serialize;

use super::VERSION;
use crate::backend::{BottleStatus, Resource, ResourceKind};

/// `list --json`.
#[derive(Debug, Serialize)]
pub struct ListDoc {
    pub version: u32,
    pub bottles: Vec<BottleJson>,
}

/// One bottle as the engine sees it.
#[derive(Debug, Serialize)]
pub struct BottleJson {
    pub slug: String,
    pub containers: Vec<ContainerJson>,
    pub networks: Vec<ObjectJson>,
    pub volumes: Vec<ObjectJson>,
}

/// A container of a bottle. Names, roles and states are the engine's labels and answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerJson {
    pub name: String,
    /// `agent`, `supervise`, `egress-proxy`, `pipelock`, …: the `claude-bottle.role` label.
    pub role: String,
    /// The engine's state: `running`, `exited`, `created`, …
    pub state: String,
    /// Unix seconds; `null` when the engine did not say.
    pub created: Option<u64>,
    pub age_seconds: Option<u64>,
    /// The image it runs, as the engine names it.
    pub image: String,
    /// `healthy`, `unhealthy` or `starting` for a container with a health check, else `null`.
    pub health: Option<String>,
}

/// A network or volume of a bottle.
#[derive(Debug, Serialize)]
pub struct ObjectJson {
    pub name: String,
    pub role: String,
}

/// `list --json` of `bottles`, as of `now` (Unix seconds).
pub fn list(bottles: &[BottleStatus], now: u64) -> ListDoc {
    ListDoc {
        version: VERSION,
        bottles: bottles.iter().map(|b| bottle(b, now)).collect(),
    }
}

/// One bottle of `list --json` (the dashboard's bottles pane shows the same).
pub fn bottle(b: &BottleStatus, now: u64) -> BottleJson {
    let of = |kind: ResourceKind| b.resources.iter().filter(move |r| r.kind == kind);
    BottleJson {
        slug: b.slug.clone(),
        containers: of(ResourceKind::Container)
            .map(|r| container(r, now))
            .collect(),
        networks: of(ResourceKind::Network).map(object).collect(),
        volumes: of(ResourceKind::Volume).map(object).collect(),
    }
}

fn container(r: &Resource, now: u64) -> ContainerJson {
    // The engine gives 0 when it has no time; a time is never before 1970.
    let created = u64::try_from(r.created).ok().filter(|&t| t > 0);
    ContainerJson {
        name: r.name.clone(),
        role: r.role.clone(),
        state: r.state.clone(),
        created,
        age_seconds: created.map(|t| now.saturating_sub(t)),
        image: r.image.clone(),
        health: r.health.clone(),
    }
}

fn object(r: &Resource) -> ObjectJson {
    ObjectJson {
        name: r.name.clone(),
        role: r.role.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn resource(kind: ResourceKind, name: &str, role: &str, state: &str, created: i64) -> Resource {
        Resource {
            kind,
            name: name.into(),
            role: role.into(),
            state: state.into(),
            created,
            image: String::new(),
            health: None,
            launcher_pid: Some(4242),
            kept: false,
        }
    }

    fn parsed(bottles: &[BottleStatus], now: u64) -> Value {
        let text = super::super::to_text(&list(bottles, now)).expect("json");
        serde_json::from_str(&text).expect("the document parses")
    }

    #[test]
    fn no_bottles_is_an_empty_list() {
        assert_eq!(parsed(&[], 1_000), json!({"version": 1, "bottles": []}));
    }

    #[test]
    fn each_bottle_gives_its_containers_networks_and_volumes() {
        let bottles = [BottleStatus {
            slug: "myapp".into(),
            resources: vec![
                resource(
                    ResourceKind::Container,
                    "myapp-agent",
                    "agent",
                    "running",
                    1_000,
                ),
                resource(
                    ResourceKind::Container,
                    "myapp-pipelock",
                    "pipelock",
                    "exited",
                    0,
                ),
                resource(
                    ResourceKind::Network,
                    "myapp-internal",
                    "network-internal",
                    "",
                    0,
                ),
                resource(ResourceKind::Volume, "myapp-home", "volume", "", 0),
            ],
        }];
        let doc = parsed(&bottles, 1_300);
        assert_eq!(doc["version"], 1);
        let b = &doc["bottles"][0];
        assert_eq!(b["slug"], "myapp");
        assert_eq!(
            b["containers"],
            json!([
                {"name": "myapp-agent", "role": "agent", "state": "running",
                 "created": 1_000, "age_seconds": 300, "image": "", "health": null},
                {"name": "myapp-pipelock", "role": "pipelock", "state": "exited",
                 "created": null, "age_seconds": null, "image": "", "health": null},
            ])
        );
        assert_eq!(
            b["networks"],
            json!([{"name": "myapp-internal", "role": "network-internal"}])
        );
        assert_eq!(
            b["volumes"],
            json!([{"name": "myapp-home", "role": "volume"}])
        );
    }

    #[test]
    fn a_clock_behind_the_engine_gives_age_zero_not_a_negative_one() {
        let bottles = [BottleStatus {
            slug: "b".into(),
            resources: vec![resource(
                ResourceKind::Container,
                "c",
                "agent",
                "running",
                2_000,
            )],
        }];
        assert_eq!(
            parsed(&bottles, 1_000)["bottles"][0]["containers"][0]["age_seconds"],
            0
        );
    }
}
