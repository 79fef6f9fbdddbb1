//! Command line: argument definitions, tracing set-up, dispatch to one module per verb, exit codes.

mod approve;
mod completions;
mod dashboard;
mod doctor;
mod export;
mod info;
mod json;
mod list;
mod prune;
mod queue;
mod reject;
mod render;
mod resume;
mod show;
mod start;
mod stop;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::home::Home;

/// Run an AI coding agent in a Docker bottle that reaches nothing but what you grant.
#[derive(Debug, Parser)]
#[command(name = "claude-bottle", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the preflight, ask, and launch a bottle.
    Start(start::Args),
    /// Start a stopped bottle again and continue the agent's last session.
    Resume(resume::Args),
    /// Copy the agent's workspace into a folder, or write it as a patch against the --cwd source.
    Export(export::Args),
    /// Show a resolved bottle: files, agent, env names, routes, allowlist, state folder.
    Info(info::Args),
    /// Bottles with containers on the engine, their containers and age.
    List(list::Args),
    /// Remove every container, network and volume of a bottle.
    Stop(stop::Args),
    /// Remove older images of bottles, images of bottles whose files are gone, stale run folders.
    Prune(prune::Args),
    /// Pending proposals of one bottle or of all: id, age, kind, summary.
    Queue(queue::Args),
    /// A proposal in full, with the Dockerfile diff or allowlist line it would add.
    Show(show::Args),
    /// Approve a proposal (optionally edited); the running launcher applies it.
    Approve(approve::Args),
    /// Reject a proposal with a reason the agent reads.
    Reject(reject::Args),
    /// Every bottle and pending proposal on one live screen; approve, reject or stop with a key.
    Dashboard(dashboard::Args),
    /// Print shell completions.
    Completions(completions::Args),
    /// Check everything a launch relies on (engine, images, binaries, limits) and how to fix each.
    Doctor(doctor::Args),
}

/// An error that ends the run: its kind decides the exit code, its hint is a field.
pub use crate::error::Error;

/// Parse arguments, start tracing, run the verb, map the outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let home = Home::from_env();
    let launches = matches!(cli.command, Command::Start(_) | Command::Resume(_));
    let result = match cli.command {
        Command::Start(args) => start::run(&home, args),
        Command::Info(args) => info::run(&home, args),
        Command::Export(args) => export::run(&home, args),
        Command::Resume(args) => resume::run(&home, args),
        Command::List(args) => list::run(&home, args),
        Command::Stop(args) => stop::run(&home, args),
        Command::Prune(args) => prune::run(&home, args),
        Command::Queue(args) => queue::run(&home, args),
        Command::Show(args) => show::run(&home, args),
        Command::Approve(args) => approve::run(&home, args),
        Command::Reject(args) => reject::run(&home, args),
        Command::Dashboard(args) => dashboard::run(&home, args),
        Command::Completions(args) => completions::run(args),
        Command::Doctor(args) => doctor::run(&home, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let e = if launches { doctor::suggest(e) } else { e };
            // Errors quote file names and contents from the queue, which supervise writes.
            eprintln!("{}", claude_bottle_protocol::escape(&e.report()));
            e.kind().into()
        }
    }
}

/// Libraries whose debug output would carry secrets (request bodies).
const QUIET_TARGETS: &[&str] = &["bollard=warn", "hyper=warn", "hyper_util=warn", "h2=warn"];

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // The engine client logs request bodies at debug level, and a container create body holds the
    // forwarded env values: its logs stop at warn whatever -v or RUST_LOG ask for.
    let filter = QUIET_TARGETS
        .iter()
        .filter_map(|t| t.parse().ok())
        .fold(filter, EnvFilter::add_directive);
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .try_init();
}

/// The slug of the bottle named on the command line (its name or its slug), or a usage error.
fn bottle_slug(name: &str) -> Result<String, Error> {
    let slug = crate::plan::slug(name);
    if slug.is_empty() {
        return Err(Error::usage(
            format!("{name:?} is not a bottle name"),
            "see `claude-bottle list`",
        ));
    }
    Ok(slug)
}

/// The operator's config.toml (a broken one is a usage error: the operator can fix it).
fn load_config(home: &Home) -> Result<crate::config::Config, Error> {
    Ok(crate::config::Config::load(home.root())?)
}

/// The async runtime for verbs that talk to the engine.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(
                crate::error::Kind::Internal,
                format!("failed to start the async runtime: {e}"),
            )
        })
}

/// The clap command, for completions and docs.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
