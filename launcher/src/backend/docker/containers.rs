//! Container specs for the engine: the hardened agent and the sidecars, readiness and log tails.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount as EngineMount, MountType,
    NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, LogsOptions, RemoveContainerOptions, StartContainerOptions,
    StopContainerOptions,
};
use futures_util::StreamExt as _;

use super::resources::network_name;
use super::{engine_err, with_role};
use crate::backend::{
    AgentSpec, BackendError, EnvValue, Mount, MountSource, Readiness, SidecarSpec,
};
use crate::manifest::Runtime;

/// Memory limit of every sidecar: proxies and daemons, never builds.
const SIDECAR_MEMORY_BYTES: i64 = 512 * 1024 * 1024;

/// Container name of a bottle's agent.
pub fn agent_name(slug: &str) -> String {
    format!("{slug}-agent")
}

/// Container name of the rebuilt agent between its creation and the swap (then it is renamed).
pub fn successor_name(slug: &str) -> String {
    format!("{slug}-agent-next")
}

/// Container name of an agent replaced by a rebuilt one, until it is removed (in the background,
/// after the swap). Unique, so a swap that follows at once never meets the last one's.
pub fn retired_agent_name(slug: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{slug}-agent-retired-{nanos:x}")
}

/// Container name of an agent kept because its snapshot failed ([`crate::backend::Backend::keep_agent`]).
pub fn kept_agent_name(slug: &str) -> String {
    format!("{slug}-agent-kept")
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
    name: &str,
    base_labels: &[(String, String)],
    spec: &AgentSpec,
) -> Result<(), BackendError> {
    let mut host = hardened(Some(spec.runtime));
    host.network_mode = Some("none".into());
    host.memory = Some(spec.limits.memory_bytes);
    host.memory_swap = Some(spec.limits.memory_bytes);
    host.pids_limit = Some(spec.limits.pids);
    host.nano_cpus = spec.limits.cpus.map(|c| (c * 1e9) as i64);
    host.mounts = Some(mounts(slug, &spec.mounts));
    // The writable layer (home, working copy, all but /tmp) where the driver bounds it; /tmp in
    // memory, sized, whatever the driver.
    host.storage_opt = spec
        .disk_bytes
        .map(|b| HashMap::from([("size".to_string(), b.to_string())]));
    host.tmpfs = Some(HashMap::from([(
        "/tmp".to_string(),
        crate::backend::disk::tmp_options(spec.tmp_bytes),
    )]));
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
        // No libnetwork sandbox at all (runc still brings up loopback for the in-agent relay).
        // With a sandbox, runc's libnetwork-setkey hook calls back into dockerd, and on engine
        // 20.10 that call stalled container starts for minutes while other bottles came up.
        network_disabled: Some(true),
        host_config: Some(host),
        ..Default::default()
    };
    create(docker, name, body, "create agent container").await
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

/// Create and start a sidecar; wait until it is ready when it gates the agent.
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
    // Engines before API 1.44 take one network at create: the others are connected before start.
    let endpoint = || EndpointSettings {
        aliases: Some(vec![spec.name.clone()]),
        ..Default::default()
    };
    let (mode, endpoints) = match spec.networks.first() {
        None => ("none".to_string(), None),
        Some(first) => (
            network_name(slug, *first),
            Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network_name(slug, *first), endpoint())])),
            }),
        ),
    };
    host.network_mode = Some(mode);
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        user: spec.user.clone(),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(env_list(&spec.env)),
        // As the agent: a sidecar without networks gets no libnetwork sandbox either.
        network_disabled: Some(spec.networks.is_empty()),
        labels: Some(with_role(base_labels, &spec.name)),
        host_config: Some(host),
        networking_config: endpoints,
        ..Default::default()
    };
    create(docker, &name, body, "create sidecar").await?;
    for n in spec.networks.iter().skip(1) {
        let net = network_name(slug, *n);
        docker
            .connect_network(
                &net,
                bollard::models::NetworkConnectRequest {
                    container: name.clone(),
                    endpoint_config: Some(endpoint()),
                },
            )
            .await
            .map_err(|e| engine_err("connect sidecar to", &net, e))?;
    }
    docker
        .start_container(&name, None::<StartContainerOptions>)
        .await
        .map_err(|e| engine_err("start sidecar", &name, e))?;
    if spec.gates_agent {
        wait_ready(docker, slug, spec, &name).await?;
    }
    Ok(name)
}

/// Wait until a started sidecar is ready; an exit or the timeout is an error naming it.
pub async fn wait_ready(
    docker: &Docker,
    slug: &str,
    spec: &SidecarSpec,
    name: &str,
) -> Result<(), BackendError> {
    let deadline = Instant::now() + spec.ready_timeout;
    // When the container was first seen running (the settle time of `Readiness::Running`).
    let mut running_since: Option<Instant> = None;
    let not_ready = |reason: String, logs: String| BackendError::SidecarNotReady {
        slug: slug.to_string(),
        name: spec.name.clone(),
        reason,
        logs,
    };
    loop {
        // Not created, or created and not started yet: the sidecars are started beside the
        // agent, and an approval can ask for a reload before then.
        let not_yet = || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let state = match docker.inspect_container(name, None).await {
            Ok(state) => state,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) if Instant::now() < deadline => {
                not_yet().await;
                continue;
            }
            Err(e) => return Err(engine_err("inspect sidecar", name, e)),
        };
        let ips: Vec<String> = state
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .map(|n| n.values().filter_map(|e| e.ip_address.clone()).collect())
            .unwrap_or_default();
        let st = state.state.unwrap_or_default();
        if st.status == Some(bollard::models::ContainerStateStatusEnum::CREATED)
            && Instant::now() < deadline
        {
            not_yet().await;
            continue;
        }
        if !st.running.unwrap_or(false) {
            let reason = match st.status {
                Some(bollard::models::ContainerStateStatusEnum::CREATED) => {
                    format!(
                        "it was created but not started within {:.1}s",
                        spec.ready_timeout.as_secs_f64()
                    )
                }
                _ => format!("it exited with code {}", st.exit_code.unwrap_or(-1)),
            };
            return Err(not_ready(reason, tail_logs(docker, name, 20).await));
        }
        let since = *running_since.get_or_insert_with(Instant::now);
        let ready = match &spec.readiness {
            // Still running after a settle time: a process that dies at once is caught above.
            Readiness::Running => since.elapsed() >= Duration::from_millis(300),
            Readiness::LogLine(text) => tail_logs(docker, name, 200).await.contains(text.as_str()),
            Readiness::Exec(cmd) => exec_ok(docker, name, cmd).await,
            Readiness::Http { port, path } => http_ok(&ips, *port, path).await,
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

/// `GET path` answered 200 on `port` of one of the container's addresses, from the launcher's host
/// (a distroless image such as pipelock's has no shell to exec a probe in).
async fn http_ok(ips: &[String], port: u16, path: &str) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    for ip in ips.iter().filter(|ip| !ip.is_empty()) {
        let probe = async {
            let mut conn = tokio::net::TcpStream::connect((ip.as_str(), port))
                .await
                .ok()?;
            let request = format!("GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\n\r\n");
            conn.write_all(request.as_bytes()).await.ok()?;
            let mut head = [0u8; 16];
            let n = conn.read(&mut head).await.ok()?;
            let line = String::from_utf8_lossy(&head[..n]).into_owned();
            Some(line.starts_with("HTTP/1.") && line.get(9..12) == Some("200"))
        };
        if let Ok(Some(true)) = tokio::time::timeout(Duration::from_millis(500), probe).await {
            return true;
        }
    }
    false
}

/// Send `signal` (`SIGHUP`…) to a running container.
pub async fn signal(docker: &Docker, name: &str, signal: &str) -> Result<(), BackendError> {
    docker
        .kill_container(
            name,
            Some(bollard::query_parameters::KillContainerOptions {
                signal: signal.to_string(),
            }),
        )
        .await
        .map_err(|e| engine_err("signal", name, e))
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

/// Give container `name` the name `to`.
pub async fn rename(docker: &Docker, name: &str, to: &str) -> Result<(), BackendError> {
    docker
        .rename_container(
            name,
            bollard::query_parameters::RenameContainerOptions {
                name: to.to_string(),
            },
        )
        .await
        .map_err(|e| engine_err("rename", &format!("{name} to {to}"), e))
}

/// [`rename`], where a container already gone is fine.
pub async fn rename_if_present(docker: &Docker, name: &str, to: &str) -> Result<(), BackendError> {
    match docker
        .rename_container(
            name,
            bollard::query_parameters::RenameContainerOptions {
                name: to.to_string(),
            },
        )
        .await
    {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(engine_err("rename", &format!("{name} to {to}"), e)),
    }
}
