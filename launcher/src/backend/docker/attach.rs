//! Run the agent attached to the operator: a raw TTY with resize forwarding, or plain streams.

use std::io::{IsTerminal as _, Read as _};

use bollard::Docker;
use bollard::container::{AttachContainerResults, LogOutput};
use bollard::query_parameters::{
    AttachContainerOptions, ResizeContainerTTYOptions, StartContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::engine_err;
use crate::backend::BackendError;

/// Start `container` (or, when it was started ahead and waits at its gate, create its `release`
/// file), pump its output (and the operator's keystrokes when `tty`), and return its exit code
/// once it stops.
pub async fn run(
    docker: &Docker,
    container: &str,
    tty: bool,
    release: Option<&std::path::Path>,
) -> Result<i64, BackendError> {
    let t = std::time::Instant::now();
    let AttachContainerResults {
        mut output,
        mut input,
    } = docker
        .attach_container(
            container,
            Some(AttachContainerOptions {
                stdin: tty,
                stdout: true,
                stderr: true,
                stream: true,
                logs: true,
                detach_keys: None,
            }),
        )
        .await
        .map_err(|e| engine_err("attach to", container, e))?;
    match release {
        Some(file) => {
            // Sized before it goes on, so its first screen is drawn for the operator's terminal.
            if tty {
                resize(docker, container).await;
            }
            std::fs::File::create(file).map_err(|e| super::release_err(container, file, &e))?;
        }
        None => docker
            .start_container(container, None::<StartContainerOptions>)
            .await
            .map_err(|e| engine_err("start agent", container, e))?,
    }
    tracing::info!(container, ms = t.elapsed().as_millis(), "agent started");

    let _raw = if tty { RawMode::enable() } else { None };
    let mut background = Vec::new();
    if tty {
        if release.is_none() {
            resize(docker, container).await;
        }
        let d = docker.clone();
        let name = container.to_string();
        background.push(tokio::spawn(async move {
            let Ok(mut winch) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
            else {
                return;
            };
            while winch.recv().await.is_some() {
                resize(&d, &name).await;
            }
        }));
        // A plain thread: a blocking stdin read must not hold up the runtime's shutdown.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        background.push(tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                    break;
                }
            }
        }));
    }

    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    while let Some(chunk) = output.next().await {
        let written = match chunk {
            Ok(LogOutput::StdErr { message }) => {
                stderr.write_all(&message).await.and(stderr.flush().await)
            }
            Ok(other) => stdout
                .write_all(&other.into_bytes())
                .await
                .and(stdout.flush().await),
            Err(e) => {
                tracing::debug!(error = %e, "agent output stream ended");
                break;
            }
        };
        if written.is_err() {
            break;
        }
    }
    for task in background {
        task.abort();
    }
    exit_code(docker, container).await
}

/// The exit code of a container that has stopped (or is stopping).
pub async fn exit_code(docker: &Docker, container: &str) -> Result<i64, BackendError> {
    let mut wait = docker.wait_container(
        container,
        Some(WaitContainerOptions {
            condition: "not-running".into(),
        }),
    );
    match wait.next().await {
        Some(Ok(r)) => Ok(r.status_code),
        // bollard reports a non-zero exit as an error that carries the code.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(engine_err("wait for", container, e)),
        None => Err(BackendError::Engine {
            action: "wait for",
            object: container.to_string(),
            detail: "the engine closed the wait without a status".into(),
        }),
    }
}

async fn resize(docker: &Docker, container: &str) {
    if let Ok((w, h)) = crossterm::terminal::size() {
        let opts = ResizeContainerTTYOptions {
            w: i32::from(w),
            h: i32::from(h),
        };
        if let Err(e) = docker.resize_container_tty(container, opts).await {
            tracing::debug!(error = %e, "failed to resize the agent's terminal");
        }
    }
}

/// The operator's terminal in raw mode for as long as this lives (restored on drop and unwind).
struct RawMode;

impl RawMode {
    fn enable() -> Option<Self> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        match crossterm::terminal::enable_raw_mode() {
            Ok(()) => Some(RawMode),
            Err(e) => {
                tracing::warn!(error = %e, "failed to put the terminal in raw mode");
                None
            }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}
