//! The shim's verbs: `relay` (TCP↔Unix forwarding), and the proposal daemon, CLI and MCP server.

pub mod relay;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Files capability and egress proposals for the agent and waits for the operator's decision.
#[derive(Debug, Parser)]
#[command(name = "claude-bottle-shim", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The shim's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Forward connections between TCP and Unix sockets, byte for byte.
    Relay(RelayArgs),
}

/// `relay --listen A --connect B [--listen C --connect D]…`
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Where to accept connections: tcp:HOST:PORT or unix:PATH (socket created mode 0666).
    #[arg(long, required = true)]
    pub listen: Vec<relay::Endpoint>,
    /// Where to forward the matching --listen: tcp:HOST:PORT (resolved per connection) or unix:PATH.
    #[arg(long, required = true)]
    pub connect: Vec<relay::Endpoint>,
    /// Most simultaneous connections per listener; more wait in the kernel backlog.
    #[arg(long, default_value_t = relay::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
}

impl Cli {
    /// The default log level for this verb: daemons say more than one-shot commands.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Relay(_) => "info",
        }
    }
}

/// Starts `tracing` on stderr, filtered by `CLAUDE_BOTTLE_LOG` (default: `default_level`).
pub fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAUDE_BOTTLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one verb to completion and maps its outcome to an exit code.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("claude-bottle-shim: failed to start the async runtime: {e}");
            return ExitCode::from(70);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Relay(args) => {
                let relays = relay::run(args.listen, args.connect, args.max_connections);
                tokio::select! {
                    r = relays => r.map_err(|e| e.to_string()),
                    () = shutdown_signal() => Ok(()),
                }
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("claude-bottle-shim: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM so containers stop promptly.
async fn shutdown_signal() {
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
