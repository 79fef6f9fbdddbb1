//! The shim's verbs: `relay` (TCP↔Unix forwarding), `daemon`, the agent-facing CLI
//! (`request`, `status`, `config`, `report`) and the `mcp` stdio server.

pub mod claude_setup;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod hold;
pub mod mcp;
pub mod ops;
pub mod relay;
pub mod transcript_times;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use claude_bottle_io::runtime;
use claude_bottle_protocol::{Capability, ProposalId, ProposalKind};

/// Files capability and egress proposals for the agent and waits for the operator's decision.
#[derive(Debug, Parser)]
#[command(name = "claude-bottle-shim", version, about)]
pub struct Cli {
    /// The shim daemon's socket (tried first).
    #[arg(long, global = true, env = "CLAUDE_BOTTLE_SHIM_SOCKET", default_value = client::DEFAULT_SHIM_SOCKET)]
    pub socket: PathBuf,
    /// Supervise's socket (used directly when no daemon runs; the daemon forwards to it).
    #[arg(long, global = true, env = "CLAUDE_BOTTLE_SUPERVISE_SOCKET", default_value = client::DEFAULT_SUPERVISE_SOCKET)]
    pub supervise_socket: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// The shim's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask the operator for a capability or an egress host.
    #[command(subcommand)]
    Request(RequestCmd),
    /// Show one proposal in detail, or the newest proposals.
    Status {
        /// A proposal id.
        id: Option<ProposalId>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the bottle's current config (allowlist, routes.json, Dockerfile).
    Config {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Report a wall the agent hit (for shell hooks; quick and quiet).
    #[command(subcommand)]
    Report(ReportCmd),
    /// Serve the local socket that tools and hooks call, holding on to supervise.
    Daemon {
        /// How long to keep retrying a request while supervise is unreachable, in seconds.
        #[arg(long, default_value_t = 60)]
        retry_secs: u64,
        /// How long identical submissions are answered from the cache, in seconds.
        #[arg(long, default_value_t = 300)]
        dedupe_secs: u64,
    },
    /// Serve the MCP tools request_capability, request_egress, proposal_status and
    /// current_config over stdio.
    Mcp,
    /// Forward connections between TCP and Unix sockets, byte for byte.
    Relay(RelayArgs),
    /// Merge what Claude Code needs to start without a prompt into ~/.claude.json and
    /// ~/.claude/settings.json (the entrypoint runs it when Claude Code is installed).
    ClaudeSetup {
        /// The folder Claude Code starts in, trusted without asking (default: the current one).
        #[arg(long)]
        workdir: Option<PathBuf>,
    },
    /// Wait until FILE exists: a successor started ahead of its swap is released so (the
    /// entrypoint runs it when $CLAUDE_BOTTLE_GATE is set).
    Hold {
        /// The file the launcher creates.
        file: PathBuf,
    },
}

/// `request …`
#[derive(Debug, Subcommand)]
pub enum RequestCmd {
    /// Packages or Dockerfile lines for the agent image.
    Capability {
        /// Debian package to install (repeatable).
        #[arg(long = "apt", value_name = "PKG", num_args = 1.., required_unless_present = "dockerfile_lines", conflicts_with = "dockerfile_lines")]
        apt: Vec<String>,
        /// Dockerfile line to append (repeatable).
        #[arg(long = "dockerfile-line", value_name = "LINE", num_args = 1..)]
        dockerfile_lines: Vec<String>,
        #[command(flatten)]
        common: RequestCommon,
    },
    /// A host to allow through the egress proxy (on every port it serves).
    Egress {
        /// HOST. A HOST:PORT is parsed only to be refused with the reason: ports are not
        /// enforced, so a proposal cannot ask for one.
        #[arg(value_name = "HOST", value_parser = parse_egress)]
        host: claude_bottle_protocol::Egress,
        #[command(flatten)]
        common: RequestCommon,
    },
    /// An entry for a git remote's push policy, when the git gate refused a push: e.g.
    /// `request push origin feature/x --reason "…"`, then push again once it is applied.
    Push {
        /// The remote's name in the bottle (the gate serves it as /REMOTE.git).
        #[arg(value_name = "REMOTE")]
        remote: String,
        /// The entry: a branch (`feature/x`), a pattern (`feature/*`), or `refs/tags/v1`;
        /// `force` and/or `delete` after it to rewrite or delete.
        #[arg(value_name = "ENTRY", num_args = 1.., required = true)]
        entry: Vec<String>,
        #[command(flatten)]
        common: RequestCommon,
    },
}

/// Flags every `request` takes.
#[derive(Debug, Args)]
pub struct RequestCommon {
    /// Why the agent needs it.
    #[arg(long)]
    pub reason: String,
    /// Supporting output, such as the failing command (repeatable).
    #[arg(long)]
    pub evidence: Vec<String>,
    /// Wait for the outcome (exit 0 applied/approved, 2 rejected or failed, 3 timed out).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `report …`
#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// A command the shell could not find (from `command_not_found_handle`).
    CommandNotFound {
        /// The command's name.
        cmd: String,
    },
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

fn parse_egress(s: &str) -> Result<claude_bottle_protocol::Egress, String> {
    cli::parse_egress(s).map_err(|e| e.to_string())
}

impl Cli {
    /// The default log level for this verb: daemons say more than one-shot commands.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Relay(_) | Command::Daemon { .. } => "info",
            _ => "warn",
        }
    }
}

/// `claude-setup`: the agent's environment decides what is merged (see [`claude_setup`]).
fn claude_setup(workdir: Option<PathBuf>) -> Result<ExitCode, String> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or("claude-setup: $HOME is not set")?;
    let workdir = match workdir {
        Some(dir) => dir,
        None => std::env::current_dir().map_err(|e| format!("claude-setup: {e}"))?,
    };
    let supervised =
        std::env::var_os("CLAUDE_BOTTLE_SUPERVISE_SOCKET").is_some_and(|v| !v.is_empty());
    let shim = std::env::current_exe()
        .map_err(|e| format!("claude-setup: {e}"))?
        .to_string_lossy()
        .into_owned();
    claude_setup::Setup {
        home: home.clone(),
        workdir,
        api_key: std::env::var("ANTHROPIC_API_KEY").ok(),
        mcp_command: supervised.then_some(shim),
    }
    .apply()
    .map_err(|e| e.to_string())?;
    // A resumed home's transcripts: `--continue` must find the session written last. A failure
    // costs only that order, not the start.
    if let Err(e) = transcript_times::refine(&home) {
        eprintln!("claude-bottle: --continue may resume an earlier session: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one verb to completion and maps its outcome to an exit code.
pub fn run(cli: Cli) -> ExitCode {
    runtime::block_on("claude-bottle-shim", dispatch(cli))
}

async fn dispatch(cli: Cli) -> Result<ExitCode, String> {
    let target = ops::Target {
        sockets: vec![cli.socket.clone(), cli.supervise_socket.clone()],
    };
    let op = |r: Result<ExitCode, ops::OpError>| r.map_err(|e| e.to_string());
    match cli.command {
        Command::Request(RequestCmd::Capability {
            apt,
            dockerfile_lines,
            common,
        }) => {
            let kind = ProposalKind::Capability(Capability {
                apt,
                dockerfile_lines,
            });
            op(request(&target, kind, common).await)
        }
        Command::Request(RequestCmd::Egress { host, common }) => {
            op(request(&target, ProposalKind::Egress(host), common).await)
        }
        Command::Request(RequestCmd::Push {
            remote,
            entry,
            common,
        }) => {
            let kind = ProposalKind::Push(claude_bottle_protocol::Push {
                remote,
                pattern: entry.join(" "),
            });
            op(request(&target, kind, common).await)
        }
        Command::Status { id, json } => op(cli::status(&target, id, json).await),
        Command::Config { json } => op(cli::config(&target, json).await),
        Command::Report(ReportCmd::CommandNotFound { cmd }) => {
            Ok(cli::report_command_not_found(&target, &cmd).await)
        }
        Command::Daemon {
            retry_secs,
            dedupe_secs,
        } => {
            let cfg = daemon::DaemonConfig {
                listen: cli.socket,
                supervise: cli.supervise_socket,
                retry_for: Duration::from_secs(retry_secs),
                dedupe_for: Duration::from_secs(dedupe_secs),
            };
            tokio::select! {
                r = daemon::run(cfg) => r.map(|()| ExitCode::SUCCESS).map_err(|e| e.to_string()),
                () = runtime::shutdown_signal() => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Mcp => mcp::serve(target).await.map(|()| ExitCode::SUCCESS),
        Command::ClaudeSetup { workdir } => claude_setup(workdir),
        Command::Hold { file } => tokio::select! {
            () = hold::until_exists(&file) => Ok(ExitCode::SUCCESS),
            () = runtime::shutdown_signal() => Err(format!("stopped while held at {}", file.display())),
        },
        Command::Relay(args) => {
            let relays = relay::run(args.listen, args.connect, args.max_connections);
            tokio::select! {
                r = relays => r.map(|()| ExitCode::SUCCESS).map_err(|e| e.to_string()),
                () = runtime::shutdown_signal() => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

async fn request(
    target: &ops::Target,
    kind: ProposalKind,
    c: RequestCommon,
) -> Result<ExitCode, ops::OpError> {
    let wait = c.wait.then(|| Duration::from_secs(c.timeout));
    cli::request(target, kind, c.reason, c.evidence, wait, c.json).await
}
