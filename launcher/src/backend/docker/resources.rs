//! Networks and volumes of a bottle, and finding or removing everything a bottle left on the engine.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions,
};

use super::{engine_err, with_role};
use crate::backend::{
    BackendError, BottleStatus, NetworkAttachment, Removal, Resource, ResourceKind,
};
use crate::plan::{LABEL_BOTTLE, LABEL_LAUNCHER_PID, LABEL_ROLE};

/// `<slug>-internal` or `<slug>-egress`.
pub fn network_name(slug: &str, net: NetworkAttachment) -> String {
    match net {
        NetworkAttachment::Internal => format!("{slug}-internal"),
        NetworkAttachment::Egress => format!("{slug}-egress"),
        NetworkAttachment::Git => format!("{slug}-git"),
    }
}

/// Create the bottle's networks its sidecars join (`nets`): internal and git (no way out), egress
/// (a bridge).
pub async fn create_networks(
    docker: &Docker,
    slug: &str,
    labels: &[(String, String)],
    nets: &[NetworkAttachment],
) -> Result<(), BackendError> {
    let creates = nets.iter().map(|&net| async move {
        let name = network_name(slug, net);
        let (role, internal) = match net {
            NetworkAttachment::Internal => ("network-internal", true),
            NetworkAttachment::Egress => ("network-egress", false),
            NetworkAttachment::Git => ("network-git", true),
        };
        let req = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            internal: Some(internal),
            labels: Some(with_role(labels, role)),
            ..Default::default()
        };
        docker
            .create_network(req)
            .await
            .map(|_| ())
            .map_err(|e| engine_err("create network", &name, e))
    });
    futures_util::future::try_join_all(creates).await?;
    Ok(())
}

/// Create a per-bottle named volume.
pub async fn create_volume(
    docker: &Docker,
    name: &str,
    labels: &[(String, String)],
) -> Result<(), BackendError> {
    let req = VolumeCreateRequest {
        name: Some(name.to_string()),
        labels: Some(with_role(labels, "volume")),
        ..Default::default()
    };
    docker
        .create_volume(req)
        .await
        .map_err(|e| engine_err("create volume", name, e))?;
    Ok(())
}

fn label_filter(slug: Option<&str>) -> HashMap<String, Vec<String>> {
    let value = match slug {
        Some(s) => format!("{LABEL_BOTTLE}={s}"),
        None => LABEL_BOTTLE.to_string(),
    };
    HashMap::from([("label".to_string(), vec![value])])
}

/// Every container, network and volume labelled as part of `slug` (or of any bottle).
pub async fn find(
    docker: &Docker,
    slug: Option<&str>,
) -> Result<Vec<(String, Resource)>, BackendError> {
    let mut out = Vec::new();
    let what = slug.unwrap_or("bottles");
    // Three independent queries: ask them at once.
    let (containers, networks, volumes) = tokio::join!(
        docker.list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(label_filter(slug)),
            ..Default::default()
        })),
        docker.list_networks(Some(ListNetworksOptions {
            filters: Some(label_filter(slug)),
        })),
        docker.list_volumes(Some(ListVolumesOptions {
            filters: Some(label_filter(slug)),
        })),
    );
    let containers = containers.map_err(|e| engine_err("list containers of", what, e))?;
    for c in containers {
        let health = health(&c);
        let labels = c.labels.clone().unwrap_or_default();
        let name = c
            .names
            .unwrap_or_default()
            .first()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default();
        let (_, mut r) = resource(
            ResourceKind::Container,
            name,
            &labels,
            c.state.map(|s| s.to_string()).unwrap_or_default(),
            c.created.unwrap_or(0),
        );
        r.image = c.image.unwrap_or_default();
        r.health = health;
        out.push((labels.get(LABEL_BOTTLE).cloned().unwrap_or_default(), r));
    }
    let networks = networks.map_err(|e| engine_err("list networks of", what, e))?;
    for n in networks {
        let labels = n.labels.unwrap_or_default();
        out.push(resource(
            ResourceKind::Network,
            n.name.unwrap_or_default(),
            &labels,
            String::new(),
            0,
        ));
    }
    let volumes = volumes.map_err(|e| engine_err("list volumes of", what, e))?;
    for v in volumes.volumes.unwrap_or_default() {
        out.push(resource(
            ResourceKind::Volume,
            v.name,
            &v.labels,
            String::new(),
            0,
        ));
    }
    Ok(out)
}

fn resource(
    kind: ResourceKind,
    name: String,
    labels: &HashMap<String, String>,
    state: String,
    created: i64,
) -> (String, Resource) {
    let slug = labels.get(LABEL_BOTTLE).cloned().unwrap_or_default();
    let role = labels.get(LABEL_ROLE).cloned().unwrap_or_default();
    let launcher_pid = labels.get(LABEL_LAUNCHER_PID).and_then(|p| p.parse().ok());
    let kept = kind == ResourceKind::Container && name == super::kept_agent_name(&slug);
    (
        slug,
        Resource {
            kind,
            name,
            role,
            state,
            created,
            image: String::new(),
            health: None,
            launcher_pid,
            kept,
        },
    )
}

/// A container's health: the engine's own field (API 1.51 and later), else the `(healthy)`,
/// `(unhealthy)` or `(health: starting)` its status line ends with on older engines.
fn health(c: &bollard::models::ContainerSummary) -> Option<String> {
    if let Some(status) = c.health.as_ref().and_then(|h| h.status) {
        let s = status.to_string();
        if !s.is_empty() && s != "none" {
            return Some(s);
        }
    }
    let status = c.status.as_deref()?;
    ["unhealthy", "healthy", "starting"]
        .into_iter()
        .find(|h| status.contains(&format!("({h})")) || status.contains(&format!("(health: {h})")))
        .map(str::to_owned)
}

/// The engine's events about the containers of every bottle (created, started, died, health
/// changes, removed): the bottle's slug of each. The stream ends when the engine goes away.
pub fn container_events(
    docker: &Docker,
) -> impl futures_util::Stream<Item = Result<String, BackendError>> + Send + 'static {
    use futures_util::StreamExt as _;
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("label".to_string(), vec![LABEL_BOTTLE.to_string()]),
    ]);
    docker
        .events(Some(bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .map(|e| {
            e.map(|m| {
                m.actor
                    .and_then(|a| a.attributes)
                    .and_then(|mut a| a.remove(LABEL_BOTTLE))
                    .unwrap_or_default()
            })
            .map_err(|e| engine_err("watch events of", "bottles", e))
        })
}

/// Group resources by bottle.
pub fn group(found: Vec<(String, Resource)>) -> Vec<BottleStatus> {
    let mut by: BTreeMap<String, Vec<Resource>> = BTreeMap::new();
    for (slug, r) in found {
        by.entry(slug).or_default().push(r);
    }
    by.into_iter()
        .map(|(slug, mut resources)| {
            resources.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
            BottleStatus { slug, resources }
        })
        .collect()
}

/// Wait up to 10 s for container `name` to disappear.
async fn container_gone(docker: &Docker, name: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) = docker.inspect_container(name, None).await
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// Remove everything of `slug`: containers first (they hold the networks and volumes), then
/// networks, then volumes. Keeps going past a failure. Then looks again, a few times: objects
/// can still appear or be in removal for a moment (requests a killed launcher left in flight, a
/// running launcher tearing down beside `claude-bottle stop`). Reports the last pass's first
/// failure, if one remains.
pub async fn remove_all(
    docker: &Docker,
    slug: &str,
    removal: Removal,
) -> Result<Vec<Resource>, BackendError> {
    const PASSES: usize = 3;
    let mut removed: Vec<Resource> = Vec::new();
    for pass in 1..=PASSES {
        let mut found: Vec<Resource> = find(docker, Some(slug))
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| removal == Removal::Everything || !r.kept)
            .collect();
        if found.is_empty() {
            return Ok(removed);
        }
        found.sort_by_key(|r| r.kind);
        let (gone, failure) = remove_pass(docker, found).await;
        for r in gone {
            if !removed.iter().any(|x| x.kind == r.kind && x.name == r.name) {
                removed.push(r);
            }
        }
        // A clean pass is checked again at once; a failed one after a moment.
        match failure {
            Some(e) if pass == PASSES => return Err(e),
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(300)).await,
            None => {}
        }
    }
    Ok(removed)
}

/// One removal pass over `found`: what went, and the first failure.
async fn remove_pass(
    docker: &Docker,
    found: Vec<Resource>,
) -> (Vec<Resource>, Option<BackendError>) {
    let mut removed = Vec::new();
    let mut first_error = None;
    for r in found {
        let result = match r.kind {
            ResourceKind::Container => {
                docker
                    .remove_container(
                        &r.name,
                        Some(RemoveContainerOptions {
                            force: true,
                            v: true,
                            ..Default::default()
                        }),
                    )
                    .await
            }
            ResourceKind::Network => docker.remove_network(&r.name).await,
            ResourceKind::Volume => {
                docker
                    .remove_volume(&r.name, Some(RemoveVolumeOptions { force: true }))
                    .await
            }
        };
        match result {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => removed.push(r),
            // Another caller is removing it: done once it is gone.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                ref message,
            }) if r.kind == ResourceKind::Container
                && message.contains("already in progress")
                && container_gone(docker, &r.name).await =>
            {
                removed.push(r);
            }
            Err(e) => {
                tracing::debug!(kind = %r.kind, name = %r.name, error = %e, "failed to remove");
                first_error.get_or_insert_with(|| {
                    engine_err("remove", &format!("{} {}", r.kind, r.name), e)
                });
            }
        }
    }
    (removed, first_error)
}
