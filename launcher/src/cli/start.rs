//! `claude-bottle start [BOTTLE]`: plan, preflight, confirm, launch.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::backend::docker::DockerBackend;
use crate::config::Config;
use crate::egress::{EgressRoutes, ResolvedTokens};
use crate::home::Home;
use crate::plan::{self, BottlePlan};
use crate::session::{self, SessionOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bottle name (a file in $CLAUDE_BOTTLE_HOME/bottles/ without .md).
    #[arg(default_value = "default")]
    pub bottle: String,
    /// Launch without asking.
    #[arg(short, long)]
    pub yes: bool,
    /// Print the preflight and exit without touching Docker.
    #[arg(long)]
    pub dry_run: bool,
    /// Copy DIR into the agent's workspace (the agent works on the copy, never on DIR).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    run_session(home, args, false)
}

/// `start`, or with `resume` the bottle's last session restored from its snapshot.
pub fn run_session(home: &Home, args: Args, resume: bool) -> Result<ExitCode, super::Error> {
    let config = super::load_config(home)?;
    let plan = plan::load(home, &config, &args.bottle)?;
    print!("{}", plan::render_preflight(&plan));
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    check_env(&plan)?;
    let tokens = resolve_tokens(&plan)?;
    let git = resolve_git(&plan)?;
    if !args.yes && !confirm()? {
        eprintln!("not launched");
        return Ok(ExitCode::SUCCESS);
    }
    launch(config, &plan, args.cwd, resume, tokens, git)
}

/// Every credentialed route's token, read on this host now: a missing one stops the launch before
/// anything is created, with every problem named (never a value).
fn resolve_tokens(plan: &BottlePlan) -> Result<Option<ResolvedTokens>, super::Error> {
    if !crate::chain::needed(plan) {
        return Ok(None);
    }
    EgressRoutes::from_routes(&plan.routes)
        .resolve(|name| std::env::var(name).ok())
        .map(Some)
        .map_err(|e| {
            super::Error::usage(
                format!("the egress-proxy's tokens cannot be read:\n{e}"),
                "nothing was created; `claude-bottle info` shows each route's token reference",
            )
        })
}

/// Every git remote's credential (token, ssh key, known_hosts), read on this host now, as the
/// egress-proxy's tokens are.
fn resolve_git(plan: &BottlePlan) -> Result<Option<crate::git_gate::GitCredentials>, super::Error> {
    if !crate::git_gate::needed(plan) {
        return Ok(None);
    }
    crate::git_gate::resolve(plan, |name| std::env::var(name).ok())
        .map(Some)
        .map_err(super::Error::from)
}

fn check_env(plan: &BottlePlan) -> Result<(), super::Error> {
    let unset = plan.unset_env();
    if unset.is_empty() {
        return Ok(());
    }
    Err(super::Error::usage(
        format!(
            "forwarded environment variable(s) not set on this host: {}",
            unset.join(", ")
        ),
        "export them before `start`, or remove them from the bottle's `env:`",
    ))
}

/// Ask `Launch? [y/N]` on a terminal; refuse rather than wait when stdin is not one.
fn confirm() -> Result<bool, super::Error> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(super::Error::usage(
            "refusing to launch without confirmation: stdin is not a terminal",
            "pass --yes to launch unattended, or --dry-run to only print the preflight",
        ));
    }
    print!("{}", plan::LAUNCH_QUESTION);
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

fn launch(
    config: Config,
    plan: &BottlePlan,
    cwd: Option<PathBuf>,
    resume: bool,
    tokens: Option<ResolvedTokens>,
    git: Option<crate::git_gate::GitCredentials>,
) -> Result<ExitCode, super::Error> {
    if let Some(dir) = &cwd
        && !dir.is_dir()
    {
        return Err(super::Error::usage(
            format!("--cwd {}: not a directory", dir.display()),
            "name the folder to copy into the agent's workspace",
        ));
    }
    // What `export --patch` compares with; a resume keeps the folder its first start copied.
    if !resume {
        crate::export::record_source(&plan.layout(), cwd.as_deref())?;
    }
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let outcome = super::runtime()?.block_on(async {
        let backend = DockerBackend::connect(config.clone()).await?;
        session::run(
            &backend,
            plan,
            SessionOptions {
                workspace: cwd,
                tty,
                resume,
                tokens,
                git,
                config,
            },
        )
        .await
        .map_err(super::Error::from)
    })?;
    Ok(ExitCode::from(outcome.exit_code()))
}
