//! `claude-bottle-git-gate`: serves a bottle's git remotes to the agent from bare mirrors, holds
//! the upstreams' credentials, and forwards the pushes its push policy allows (docs/git-gate.md).
//!
//! Three verbs, one per job: [`serve`] answers git's smart HTTP on a Unix socket by running
//! `git http-backend` per request and refreshes a mirror before each ref advertisement; [`hook`]
//! is each mirror's `proc-receive` hook, which decides every ref of a push and forwards the
//! allowed ones to the upstream; [`connect`] is the ssh `ProxyCommand` that tunnels through the
//! gate's HTTP proxy. [`config`] is the file all three read; [`upstream`] builds the git commands
//! that reach an upstream with its credential; [`audit`] records every push decision.

pub mod audit;
pub mod config;
pub mod connect;
pub mod hook;
pub mod serve;
pub mod upstream;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The variable that names the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "CLAUDE_BOTTLE_GIT_GATE_CONFIG";

/// Serves a bottle's git remotes, holding their credentials and enforcing the push policy.
#[derive(Debug, Parser)]
#[command(name = "claude-bottle-git-gate", version, about)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the remotes over HTTP/1.1 on a Unix socket until SIGTERM or SIGINT.
    Serve(serve::ServeArgs),
    /// The proc-receive hook of a mirror (run by git receive-pack, not by hand).
    Hook(hook::HookArgs),
    /// Tunnel stdin/stdout to HOST:PORT through an HTTP proxy (ssh's ProxyCommand).
    Connect(connect::ConnectArgs),
}

/// The configuration file option every verb that reads it shares.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The gate's configuration file (TOML; docs/git-gate.md, "Configuration").
    #[arg(long = "config", env = CONFIG_ENV)]
    pub path: PathBuf,
}

/// Runs one verb to completion.
pub fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Serve(a) => serve::run(a),
        Command::Hook(a) => hook::run(a),
        Command::Connect(a) => connect::run(a),
    }
}
