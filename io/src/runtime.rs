//! How a sidecar binary starts and stops: logs on stderr, one async thread, SIGTERM or SIGINT.

use std::process::ExitCode;

/// The variable that filters the logs (`tracing_subscriber::EnvFilter` syntax).
pub const LOG_ENV: &str = "CLAUDE_BOTTLE_LOG";

/// Exit code when the runtime cannot start (`EX_SOFTWARE`).
const EXIT_NO_RUNTIME: u8 = 70;

/// Starts `tracing` on stderr, filtered by [`LOG_ENV`] (default: `default_level`); colours only
/// on a terminal, so container logs stay plain text.
pub fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(LOG_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs `main` to completion and maps its outcome to an exit code; an error is printed as
/// `<program>: <message>` and exits 1.
///
/// One thread: a sidecar's load is one bottle's requests, and a small resident size matters more
/// than parallelism.
pub fn block_on<F>(program: &str, main: F) -> ExitCode
where
    F: Future<Output = Result<ExitCode, String>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: failed to start the async runtime: {e}");
            return ExitCode::from(EXIT_NO_RUNTIME);
        }
    };
    match runtime.block_on(main) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{program}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (what `docker stop` sends) or SIGINT, so a container stops at once instead
/// of after the engine's grace period.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outcome_of_main_becomes_the_exit_code() {
        assert_eq!(
            block_on("test", async { Ok(ExitCode::from(3)) }),
            ExitCode::from(3)
        );
        assert_eq!(
            block_on("test", async { Err("no".to_owned()) }),
            ExitCode::FAILURE
        );
    }
}
