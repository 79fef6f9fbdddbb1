//! `claude-bottle list`: bottles with objects on the engine, their containers and age.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::backend::docker::DockerBackend;
use crate::backend::{Backend, ResourceKind};
use crate::home::Home;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(home: &Home, _args: Args) -> Result<ExitCode, super::Error> {
    let config = super::load_config(home)?;
    let bottles = super::runtime()?.block_on(async {
        let backend = DockerBackend::connect(config).await?;
        backend.list().await
    })?;
    if bottles.is_empty() {
        println!("no bottles running");
        return Ok(ExitCode::SUCCESS);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for b in bottles {
        println!("{}", b.slug);
        for r in &b.resources {
            match r.kind {
                ResourceKind::Container => {
                    let age = if r.created > 0 {
                        age(now - r.created)
                    } else {
                        "?".into()
                    };
                    println!("  {:<32} {:<10} {:<9} {age}", r.name, r.role, r.state);
                }
                _ => println!("  {:<32} {}", r.name, r.kind),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `42s`, `5m`, `3h`, `2d`.
fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages() {
        assert_eq!(super::age(5), "5s");
        assert_eq!(super::age(300), "5m");
        assert_eq!(super::age(7200), "2h");
        assert_eq!(super::age(200_000), "2d");
    }
}
