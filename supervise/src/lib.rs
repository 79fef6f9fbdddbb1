//! `claude-bottle-supervise`: serves the shim on a Unix socket and keeps the host queue.
//!
//! `server` parses requests and forwards them to `store`, the one owner of the queue folder;
//! the file-system rules (atomic writes, no symlinks) are `claude_bottle_io::fs`'s.

mod limits;
mod listing;
mod records;
pub mod server;
pub mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use claude_bottle_io::{runtime, socket};
use claude_bottle_protocol::BottleName;

/// Default socket path inside the supervise container (a per-bottle volume).
pub const DEFAULT_SOCKET: &str = "/run/claude-bottle/supervise/supervise.sock";
/// Default queue mount.
pub const DEFAULT_QUEUE_DIR: &str = "/run/supervise/queue";
/// Default current-config mount.
pub const DEFAULT_CONFIG_DIR: &str = "/run/supervise/current-config";

/// Receives the agent's proposals over a Unix socket and writes them into the operator's queue.
#[derive(Debug, Parser)]
#[command(name = "claude-bottle-supervise", version, about)]
pub struct Args {
    /// Unix socket to serve the shim on (created mode 0666).
    #[arg(long, env = "CLAUDE_BOTTLE_SUPERVISE_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Queue folder: proposals/ (written), decisions/ and applied/ (read).
    #[arg(long, env = "CLAUDE_BOTTLE_QUEUE_DIR", default_value = DEFAULT_QUEUE_DIR)]
    pub queue_dir: PathBuf,
    /// Read-only current-config folder (allowlist, routes.json, Dockerfile).
    #[arg(long, env = "CLAUDE_BOTTLE_CONFIG_DIR", default_value = DEFAULT_CONFIG_DIR)]
    pub config_dir: PathBuf,
    /// The bottle's name, recorded in every proposal.
    #[arg(long, env = "CLAUDE_BOTTLE_NAME", default_value = "bottle", value_parser = parse_bottle)]
    pub bottle: BottleName,
    /// Most proposals awaiting a decision at once; more are refused.
    #[arg(long, default_value_t = 32)]
    pub max_pending: usize,
    /// Sustained proposals per minute.
    #[arg(long, default_value_t = 30)]
    pub rate_per_minute: u32,
    /// Proposals accepted in a burst before the rate applies.
    #[arg(long, default_value_t = 10)]
    pub burst: u32,
    /// Slow-poll interval backing up the file watcher, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub poll_ms: u64,
    /// Poll only, without inotify: for bind mounts whose host-side changes inotify does not
    /// report (e.g. Docker Desktop file sharing).
    #[arg(long)]
    pub no_watch: bool,
    /// Most simultaneous client connections.
    #[arg(long, default_value_t = 64)]
    pub max_connections: usize,
}

fn parse_bottle(s: &str) -> Result<BottleName, String> {
    BottleName::new(s).map_err(|e| e.to_string())
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(args: Args) -> ExitCode {
    runtime::block_on("claude-bottle-supervise", async {
        serve(args).await.map(|()| ExitCode::SUCCESS)
    })
}

async fn serve(args: Args) -> Result<(), String> {
    let store = store::start(store::StoreConfig {
        queue_dir: args.queue_dir.clone(),
        config_dir: args.config_dir.clone(),
        bottle: args.bottle.clone(),
        max_pending: args.max_pending,
        rate_per_minute: args.rate_per_minute,
        burst: args.burst,
        poll_interval: Duration::from_millis(args.poll_ms.max(10)),
        watch: !args.no_watch,
        inbox: args.max_connections.saturating_mul(2),
    })
    .map_err(|e| e.to_string())?;
    let listener = socket::bind_world(&args.socket).map_err(|e| e.to_string())?;
    tracing::info!(
        socket = %args.socket.display(),
        queue = %args.queue_dir.display(),
        bottle = %args.bottle,
        "supervise listening"
    );
    tokio::select! {
        () = server::serve(listener, store, args.max_connections) => {}
        () = runtime::shutdown_signal() => tracing::info!("shutting down"),
    }
    let _ = std::fs::remove_file(&args.socket);
    Ok(())
}
