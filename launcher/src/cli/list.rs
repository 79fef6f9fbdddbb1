//! `claude-bottle list [--json]`: bottles with objects on the engine, their containers and age.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use claude_bottle_protocol::escape_line;

use crate::backend::docker::DockerBackend;
use crate::backend::{Backend, ResourceKind};
use crate::home::Home;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON document instead (see docs/queue.md, "Scripting with --json").
    #[arg(long)]
    json: bool,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    let config = super::load_config(home)?;
    let bottles = super::runtime()?.block_on(async {
        let backend = DockerBackend::connect(config).await?;
        backend.list().await
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if args.json {
        super::json::print(&super::json::list::list(&bottles, now))?;
        return Ok(ExitCode::SUCCESS);
    }
    if bottles.is_empty() {
        println!("no bottles running");
        return Ok(ExitCode::SUCCESS);
    }
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let mut rows = Vec::new();
    for b in bottles {
        for r in &b.resources {
            let age = match r.kind {
                ResourceKind::Container if r.created > 0 => super::render::age(now - r.created),
                ResourceKind::Container => "?".to_owned(),
                _ => String::new(),
            };
            // Names, roles and states are labels and answers of the engine, which any user with
            // its socket can set: escaped like the agent's text.
            rows.push([
                escape_line(&b.slug).into_owned(),
                r.kind.to_string(),
                escape_line(&r.name).into_owned(),
                escape_line(&r.role).into_owned(),
                escape_line(&r.state).into_owned(),
                age,
            ]);
        }
    }
    print!(
        "{}",
        super::render::table(
            ["BOTTLE", "KIND", "NAME", "ROLE", "STATE", "AGE"],
            &rows,
            super::render::stdout_width()
        )
    );
    Ok(ExitCode::SUCCESS)
}
