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
    let removed = super::runtime()?.block_on(async {
        let backend = DockerBackend::connect(config).await?;
        backend.stop(&slug, Removal::Everything).await
    })?;
    if removed.is_empty() {
        println!("bottle {slug}: nothing to remove");
    }
    for r in &removed {
        println!("removed {}", session::describe(r));
    }
    Ok(ExitCode::SUCCESS)
}
