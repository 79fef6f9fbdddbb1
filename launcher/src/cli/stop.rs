//! `claude-bottle stop <bottle>`: remove every container, network and volume of a bottle, an agent
//! kept because its snapshot failed too.

use std::process::ExitCode;

use crate::backend::docker::DockerBackend;
use crate::backend::{Backend, Removal};
use crate::home::Home;
use crate::session;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bottle name (as given to `start`) or its slug (as `list` shows it).
    bottle: String,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    let slug = super::bottle_slug(&args.bottle)?;
    let config = super::load_config(home)?;
    let lines = super::runtime()?.block_on(async {
        let backend = DockerBackend::connect(config).await?;
        stop(&backend, &slug).await
    })?;
    for line in lines {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes every object of bottle `slug`; returns what was removed, a line each. The one way a
/// bottle is stopped by hand: `stop` and the dashboard both call it.
pub(super) async fn stop(backend: &impl Backend, slug: &str) -> Result<Vec<String>, super::Error> {
    let removed = backend.stop(slug, Removal::Everything).await?;
    if removed.is_empty() {
        return Ok(vec![format!("bottle {slug}: nothing to remove")]);
    }
    Ok(removed
        .iter()
        .map(|r| format!("removed {}", session::describe(r)))
        .collect())
}
