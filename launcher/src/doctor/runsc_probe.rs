//! The runsc probe: does a container start under the engine's runsc the way the agent does
//! (network mode none, no capabilities, a non-root user), on gVisor's kernel, and can coreutils
//! stat a file there?
//!
//! Two faults of older runsc releases show only when a container runs, never in the engine's
//! runtime list (docs/gvisor.md): before release-20240807 runsc refuses every container on kernels
//! that show `/proc/sys/net/core/rmem_default` in each network namespace ("cannot run with network
//! enabled in root network namespace"), and before release-20230227 it fails coreutils 9's
//! `statx(AT_NO_AUTOMOUNT)` with EINVAL, so `ls` and `stat` fail inside the bottle. The container
//! carries [`LABEL_DOCTOR`] and is removed whatever happened.

use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, StartContainerOptions};

use super::gather::RunscOutcome;
use super::probe::LABEL_DOCTOR;

/// How long the container may take to start and exit: gVisor boots its kernel first.
const RUN_WINDOW: Duration = Duration::from_secs(30);

/// The container's script: gVisor's banner from its `dmesg`, then one coreutils `ls`.
const SCRIPT: &str = "dmesg 2>/dev/null | head -n 1; \
                      if ls / >/dev/null 2>&1; then echo STATX-OK; else echo STATX-FAIL; fi";

/// Run the probe in a container of `image` under runsc; it is gone when this returns.
pub async fn run(docker: &Docker, image: &str) -> RunscOutcome {
    let name = format!("claude-bottle-doctor-runsc-{}", std::process::id());
    let outcome = probe(docker, image, &name).await;
    let cleanup = crate::backend::docker::remove_container(docker, &name)
        .await
        .map_err(|e| e.to_string());
    match (outcome, cleanup) {
        (o, Ok(())) => o,
        (RunscOutcome::Failed(e), Err(c)) => RunscOutcome::Failed(format!("{e}; then {c}")),
        (_, Err(c)) => RunscOutcome::Failed(c),
    }
}

async fn probe(docker: &Docker, image: &str, name: &str) -> RunscOutcome {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        labels: Some([(LABEL_DOCTOR.to_owned(), std::process::id().to_string())].into()),
        entrypoint: Some(vec!["sh".into(), "-c".into(), SCRIPT.into()]),
        cmd: Some(vec![]),
        user: Some("65534:65534".into()),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            runtime: Some("runsc".into()),
            network_mode: Some("none".into()),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptions {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    if let Err(e) = docker.create_container(Some(opts), body).await {
        return RunscOutcome::Failed(format!("failed to create container {name} of {image}: {e}"));
    }
    // The engine reports runsc's own refusal as the start's error.
    if let Err(e) = docker
        .start_container(name, None::<StartContainerOptions>)
        .await
    {
        return RunscOutcome::Refused(e.to_string());
    }
    let exit =
        tokio::time::timeout(RUN_WINDOW, crate::backend::docker::exit_code(docker, name)).await;
    match exit {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return RunscOutcome::Failed(format!("failed to wait for {name}: {e}")),
        Err(_) => {
            return RunscOutcome::Failed(format!(
                "container {name} did not exit within {}s",
                RUN_WINDOW.as_secs()
            ));
        }
    }
    let logs = crate::backend::docker::tail_logs(docker, name, 20).await;
    judge(&logs)
}

/// What the probe container printed, read.
pub fn judge(logs: &str) -> RunscOutcome {
    RunscOutcome::Ran {
        gvisor: logs.contains("gVisor"),
        statx: logs.contains("STATX-OK"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_and_the_ls_line_are_read() {
        assert_eq!(
            judge("[    0.000000] Starting gVisor...\nSTATX-OK\n"),
            RunscOutcome::Ran {
                gvisor: true,
                statx: true
            }
        );
        // Debian bookworm's runsc 0.0~20221219 with bookworm's coreutils 9.1.
        assert_eq!(
            judge("[    0.000000] Starting gVisor...\nSTATX-FAIL\n"),
            RunscOutcome::Ran {
                gvisor: true,
                statx: false
            }
        );
        assert_eq!(
            judge("STATX-OK\n"),
            RunscOutcome::Ran {
                gvisor: false,
                statx: true
            }
        );
    }
}
