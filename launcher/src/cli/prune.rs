//! `claude-bottle prune [BOTTLE] [--dry-run]`: remove older image generations, the images of
//! bottles whose files are gone and the run folders of bottles that do not run; print what and how
//! much (see docs/state.md, "Reclaiming disk: prune").

use std::process::ExitCode;

use claude_bottle_protocol::escape_line;

use crate::backend::docker::DockerBackend;
use crate::home::Home;
use crate::prune::{self, Outcome, Survey};
use crate::state::snapshot::human;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this bottle (name or slug); every bottle when left out.
    bottle: Option<String>,
    /// Remove nothing: show what would go and what it would free.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    let scope = args.bottle.as_deref().map(super::bottle_slug).transpose()?;
    let config = super::load_config(home)?;
    super::runtime()?.block_on(async {
        let backend = DockerBackend::connect(config).await?;
        let survey = prune::survey(home, &backend, scope.as_deref()).await?;
        for note in &survey.notes {
            println!("{}", escape_line(note));
        }
        if survey.images.is_empty() && survey.folders.is_empty() {
            println!("nothing to prune");
            return Ok(ExitCode::SUCCESS);
        }
        print!("{}", table(home, &survey));
        if args.dry_run {
            println!("would free {}", human(survey.reclaimable()));
            return Ok(ExitCode::SUCCESS);
        }
        let outcomes = prune::apply(&backend, &survey).await;
        let freed: u64 = outcomes.iter().map(Outcome::freed).sum();
        let failed: Vec<&str> = outcomes.iter().filter_map(Outcome::error).collect();
        for e in &failed {
            // Engine answers name images and files: escaped like the agent's text.
            eprintln!("error: {}", escape_line(e));
        }
        if failed.is_empty() {
            println!("freed {}", human(freed));
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "freed {}; {} of {} removals failed",
            human(freed),
            failed.len(),
            outcomes.len()
        );
        eprintln!(
            "  hint: what failed stays; an image a container uses goes once the container is removed (`docker ps -a`), then run prune again"
        );
        Ok(ExitCode::FAILURE)
    })
}

/// One row per removal: images first (in the order they go), then run folders.
fn table(home: &Home, survey: &Survey) -> String {
    let mut rows = Vec::new();
    for i in &survey.images {
        rows.push([
            escape_line(&i.bottle).into_owned(),
            "image".to_owned(),
            escape_line(&i.name()).into_owned(),
            human(i.freed),
            i.why.to_string(),
        ]);
    }
    for f in &survey.folders {
        let shown = f.path.strip_prefix(home.root()).unwrap_or(&f.path);
        rows.push([
            escape_line(&f.bottle).into_owned(),
            "folder".to_owned(),
            escape_line(&shown.display().to_string()).into_owned(),
            human(f.size),
            "staged by an earlier launch".to_owned(),
        ]);
    }
    super::render::table(
        ["BOTTLE", "KIND", "NAME", "SIZE", "WHY"],
        &rows,
        super::render::stdout_width(),
    )
}
