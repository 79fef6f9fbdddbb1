//! Container specs for the engine: the hardened agent and the sidecars, readiness and log tails.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount as EngineMount, MountType,
    NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, LogsOptions, RemoveContainerOptions,
    StartContainerOptions, StopContainerOptions, UploadToContainerOptions,
};
use futures_util::StreamExt as _;

use super::resources::network_name;
use super::{engine_err, with_role};
use crate::backend::{
    AgentSpec, BackendError, EnvValue, Mount, MountSource, Readiness, SidecarSpec,
};
use crate::manifest::Runtime;
use crate::state::snapshot::{Snapshot, SnapshotPart};

/// Memory limit of every sidecar: proxies and daemons, never builds.
const SIDECAR_MEMORY_BYTES: i64 = 512 * 1024 * 1024;

/// Container name of a bottle's agent.
pub fn agent_name(slug: &str) -> String {
    format!("{slug}-agent")
}

/// Container name of a bottle's sidecar.
pub fn sidecar_name(slug: &str, sidecar: &str) -> String {
    format!("{slug}-{sidecar}")
}

fn env_list(env: &[(String, EnvValue)]) -> Vec<String> {
    // The values go straight into the API request body; nothing here is logged.
    env.iter()
        .map(|(k, v)| format!("{k}={}", v.expose()))
        .collect()
}

fn mounts(slug: &str, ms: &[Mount]) -> Vec<EngineMount> {
    ms.iter()
        .map(|m| {
            let (typ, source) = match &m.source {
                MountSource::Bind(p) => (MountType::BIND, p.display().to_string()),
                MountSource::Volume(v) => (MountType::VOLUME, volume_name(slug, v)),
            };
            EngineMount {
                target: Some(m.target.clone()),
                source: Some(source),
                typ: Some(typ),
                read_only: Some(m.read_only),
                ..Default::default()
            }
        })
        .collect()
}

/// Engine name of a per-bottle volume.
pub fn volume_name(slug: &str, volume: &str) -> String {
    format!("{slug}-{volume}")
}

/// The hardening every container of a bottle gets.
fn hardened(runtime: Option<Runtime>) -> HostConfig {
    HostConfig {
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges:true".into()]),
        init: Some(true),
        runtime: runtime.map(|r| r.as_str().to_string()),
        ..Default::default()
    }
}

/// Create (not start) the agent: no network at all, no capabilities, no new privileges, limits,
/// a non-root user, never the docker socket.
pub async fn create_agent(
    docker: &Docker,
    slug: &str,
    base_labels: &[(String, String)],
    spec: &AgentSpec,
) -> Result<String, BackendError> {
    let name = agent_name(slug);
    let mut host = hardened(Some(spec.runtime));
    host.network_mode = Some("none".into());
    host.memory = Some(spec.limits.memory_bytes);
    host.memory_swap = Some(spec.limits.memory_bytes);
    host.pids_limit = Some(spec.limits.pids);
    host.nano_cpus = spec.limits.cpus.map(|c| (c * 1e9) as i64);
    host.mounts = Some(mounts(slug, &spec.mounts));
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        user: Some(spec.user.clone()),
        entrypoint: Some(spec.entrypoint.clone()),
        cmd: Some(spec.command.clone()),
        env: Some(env_list(&spec.env)),
        labels: Some(with_role(base_labels, "agent")),
        tty: Some(spec.tty),
        open_stdin: Some(spec.tty),
        stdin_once: Some(false),
        attach_stdin: Some(spec.tty),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        network_disabled: Some(false),
        host_config: Some(host),
        ..Default::default()
    };
    create(docker, &name, body, "create agent container").await?;
    Ok(name)
}

/// Create a container under `name`.
async fn create(
    docker: &Docker,
    name: &str,
    body: ContainerCreateBody,
    action: &'static str,
) -> Result<(), BackendError> {
    let opts = CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    docker
        .create_container(Some(opts), body)
        .await
        .map(|_| ())
        .map_err(|e| engine_err(action, name, e))
}

/// Create and start one sidecar, then wait until it is ready.
pub async fn start_sidecar(
    docker: &Docker,
    slug: &str,
    base_labels: &[(String, String)],
    spec: &SidecarSpec,
) -> Result<String, BackendError> {
    let name = sidecar_name(slug, &spec.name);
    let mut host = hardened(None);
    host.mounts = Some(mounts(slug, &spec.mounts));
    host.pids_limit = Some(256);
    host.memory = Some(SIDECAR_MEMORY_BYTES);
    host.memory_swap = Some(SIDECAR_MEMORY_BYTES);
    let (mode, endpoints) = match spec.networks.first() {
        None => ("none".to_string(), None),
        Some(first) => {
            let endpoints: HashMap<String, EndpointSettings> = spec
                .networks
                .iter()
                .map(|n| {
                    let settings = EndpointSettings {
                        aliases: Some(vec![spec.name.clone()]),
                        ..Default::default()
                    };
                    (network_name(slug, *n), settings)
                })
                .collect();
            (
                network_name(slug, *first),
                Some(NetworkingConfig {
                    endpoints_config: Some(endpoints),
                }),
            )
        }
    };
    host.network_mode = Some(mode);
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        user: spec.user.clone(),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(env_list(&spec.env)),
        labels: Some(with_role(base_labels, &spec.name)),
        host_config: Some(host),
        networking_config: endpoints,
        ..Default::default()
    };
    create(docker, &name, body, "create sidecar").await?;
    docker
        .start_container(&name, None::<StartContainerOptions>)
        .await
        .map_err(|e| engine_err("start sidecar", &name, e))?;
    wait_ready(docker, slug, spec, &name).await?;
    Ok(name)
}

async fn wait_ready(
    docker: &Docker,
    slug: &str,
    spec: &SidecarSpec,
    name: &str,
) -> Result<(), BackendError> {
    let started = Instant::now();
    let deadline = started + spec.ready_timeout;
    let not_ready = |reason: String, logs: String| BackendError::SidecarNotReady {
        slug: slug.to_string(),
        name: spec.name.clone(),
        reason,
        logs,
    };
    loop {
        let state = docker
            .inspect_container(name, None)
            .await
            .map_err(|e| engine_err("inspect sidecar", name, e))?;
        let st = state.state.unwrap_or_default();
        if !st.running.unwrap_or(false) {
            let code = st.exit_code.unwrap_or(-1);
            return Err(not_ready(
                format!("it exited with code {code}"),
                tail_logs(docker, name, 20).await,
            ));
        }
        let ready = match &spec.readiness {
            // Still running after a settle time: a process that dies at once is caught above.
            Readiness::Running => started.elapsed() >= Duration::from_millis(300),
            Readiness::LogLine(text) => tail_logs(docker, name, 200).await.contains(text.as_str()),
            Readiness::Exec(cmd) => exec_ok(docker, name, cmd).await,
        };
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(not_ready(
                format!("not ready after {:.1}s", spec.ready_timeout.as_secs_f64()),
                tail_logs(docker, name, 20).await,
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn exec_ok(docker: &Docker, container: &str, cmd: &[String]) -> bool {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let Ok(exec) = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
    else {
        return false;
    };
    if let Ok(StartExecResults::Attached { mut output, .. }) =
        docker.start_exec(&exec.id, None).await
    {
        while output.next().await.is_some() {}
    }
    matches!(docker.inspect_exec(&exec.id).await, Ok(i) if i.exit_code == Some(0))
}

/// The last `n` lines a container printed (stdout and stderr), for error messages.
pub async fn tail_logs(docker: &Docker, container: &str, n: usize) -> String {
    let mut stream = docker.logs(
        container,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            tail: n.to_string(),
            ..Default::default()
        }),
    );
    let mut out = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    if out.is_empty() {
        "(no output)".to_string()
    } else {
        out.trim_end().to_string()
    }
}

/// Seconds between SIGTERM and SIGKILL when the agent is stopped for a replacement.
const STOP_GRACE_SECS: i32 = 3;

/// Stop a container (SIGTERM, SIGKILL after the grace); a container already gone is fine.
pub async fn stop(docker: &Docker, name: &str) -> Result<(), BackendError> {
    let opts = StopContainerOptions {
        t: Some(STOP_GRACE_SECS),
        signal: None,
    };
    match docker.stop_container(name, Some(opts)).await {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 304 | 404,
            ..
        }) => Ok(()),
        Err(e) => Err(engine_err("stop", name, e)),
    }
}

/// Remove a container (forced); a container already gone is fine.
pub async fn remove(docker: &Docker, name: &str) -> Result<(), BackendError> {
    let opts = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(name, Some(opts)).await {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(engine_err("remove", name, e)),
    }
}

/// Copy each of `paths` out of a container as a tar archive; a folder the image lacks is skipped.
pub async fn snapshot(
    docker: &Docker,
    name: &str,
    paths: &[String],
) -> Result<Snapshot, BackendError> {
    let mut snap = Snapshot::default();
    for path in paths {
        let opts = DownloadFromContainerOptions { path: path.clone() };
        let mut stream = docker.download_from_container(name, Some(opts));
        let mut tar = Vec::new();
        let mut missing = false;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => tar.extend_from_slice(&bytes),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    missing = true;
                    break;
                }
                Err(e) => return Err(engine_err("copy out of", &format!("{name}:{path}"), e)),
            }
        }
        if !missing {
            snap.parts.push(SnapshotPart {
                path: path.clone(),
                tar,
            });
        }
    }
    Ok(snap)
}

/// Unpack a snapshot into a created (not yet started) container.
pub async fn restore(docker: &Docker, name: &str, snap: &Snapshot) -> Result<(), BackendError> {
    for part in &snap.parts {
        let opts = UploadToContainerOptions {
            path: part.restore_into(),
            ..Default::default()
        };
        docker
            .upload_to_container(
                name,
                Some(opts),
                bollard::body_full(part.tar.clone().into()),
            )
            .await
            .map_err(|e| engine_err("restore into", &format!("{name}:{}", part.path), e))?;
    }
    Ok(())
}
