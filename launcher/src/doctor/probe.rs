//! The internal-network probe: does a container on an `internal: true` network reach a service
//! listening on all of the host's interfaces? (On Docker 20.10 it does, through the network's
//! gateway: docs/threat-model.md, "Why network mode none".)
//!
//! The doctor listens on `0.0.0.0:<random>` for the probe's duration, creates a throw-away internal
//! network and a container of the base image on it that opens a TCP connection to the gateway at
//! that port, and counts what reached the listener. The network and the container carry the label
//! [`LABEL_DOCTOR`] (this process's pid) and are removed whatever happened.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, InspectNetworkOptions, StartContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt as _;

use super::gather::ProbeOutcome;

/// Label of every object the probe creates, valued with the doctor's pid.
pub const LABEL_DOCTOR: &str = "claude-bottle.doctor";

/// How long the probe's connection may take: an internal network drops, rather than refuses,
/// what it does not route.
const CONNECT_WINDOW: Duration = Duration::from_secs(8);

/// Run the probe in a container of `image`; everything it created is gone when this returns.
pub async fn run(docker: &Docker, image: &str) -> ProbeOutcome {
    let listener = match tokio::net::TcpListener::bind("0.0.0.0:0").await {
        Ok(l) => l,
        Err(e) => return ProbeOutcome::Failed(format!("failed to listen on 0.0.0.0: {e}")),
    };
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => return ProbeOutcome::Failed(format!("failed to read the listener's port: {e}")),
    };
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let accept = tokio::spawn(async move {
        while let Ok((_, peer)) = listener.accept().await {
            let _ = seen_tx.send(peer);
        }
    });
    let name = format!("claude-bottle-doctor-{}-{port}", std::process::id());
    let outcome = probe(docker, image, &name, port, &mut seen_rx).await;
    accept.abort();
    let cleanup = remove(docker, &name).await;
    match (outcome, cleanup) {
        (Ok(o), Ok(())) => o,
        (Err(e), Ok(())) => ProbeOutcome::Failed(e),
        (Ok(_), Err(c)) => ProbeOutcome::Failed(c),
        (Err(e), Err(c)) => ProbeOutcome::Failed(format!("{e}; then {c}")),
    }
}

async fn probe(
    docker: &Docker,
    image: &str,
    name: &str,
    port: u16,
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<std::net::SocketAddr>,
) -> Result<ProbeOutcome, String> {
    let labels = HashMap::from([(LABEL_DOCTOR.to_owned(), std::process::id().to_string())]);
    docker
        .create_network(NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            internal: Some(true),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("failed to create network {name}: {e}"))?;
    let net = docker
        .inspect_network(name, None::<InspectNetworkOptions>)
        .await
        .map_err(|e| format!("failed to inspect network {name}: {e}"))?;
    let gateway = net
        .ipam
        .and_then(|i| i.config)
        .unwrap_or_default()
        .into_iter()
        .find_map(|c| c.gateway)
        .ok_or_else(|| format!("network {name} has no gateway address"))?;
    let target = format!("{gateway}:{port}");
    // bash's /dev/tcp: the base images the project builds FROM are Debian, which has bash.
    let script = format!("exec 3<>/dev/tcp/{gateway}/{port}");
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        labels: Some(labels),
        entrypoint: Some(vec!["bash".into(), "-c".into(), script]),
        cmd: Some(vec![]),
        user: Some("65534:65534".into()),
        host_config: Some(HostConfig {
            network_mode: Some(name.to_owned()),
            cap_drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.to_owned()),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(|e| format!("failed to create container {name} of {image}: {e}"))?;
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await
        .map_err(|e| format!("failed to start container {name}: {e}"))?;
    let mut wait = docker.wait_container(name, None::<WaitContainerOptions>);
    let exited = tokio::time::timeout(CONNECT_WINDOW, wait.next()).await;
    let code = match exited {
        Ok(Some(Ok(w))) => Some(w.status_code),
        // A non-zero exit arrives as an error of the wait stream.
        Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => Some(code),
        Ok(Some(Err(e))) => return Err(format!("failed to wait for container {name}: {e}")),
        Ok(None) | Err(_) => None,
    };
    if seen.try_recv().is_ok() || code == Some(0) {
        return Ok(ProbeOutcome::Reachable { target });
    }
    match code {
        Some(c @ (126 | 127)) => Err(format!(
            "the probe needs bash in {image}, and its container exited {c}"
        )),
        _ => Ok(ProbeOutcome::Closed { target }),
    }
}

/// Remove the probe's container and network (each may not exist).
async fn remove(docker: &Docker, name: &str) -> Result<(), String> {
    crate::backend::docker::remove_container(docker, name)
        .await
        .map_err(|e| e.to_string())?;
    match docker.remove_network(name).await {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(format!("failed to remove network {name}: {e}")),
    }
}
