//! `claude-bottle export BOTTLE DEST [--patch]`: the agent's workspace, from the running agent or
//! the last snapshot, into an empty folder, or as a patch against the `--cwd` source.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::backend::Backend as _;
use crate::backend::docker::DockerBackend;
use crate::export::{self, ExportError, Unpacked};
use crate::home::Home;
use crate::state::Layout;
use crate::state::snapshot::{Store, human};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bottle name (as given to `start`) or its slug (as `list` shows it).
    bottle: String,
    /// An empty or new folder for the workspace; with --patch, a new file for the patch (`-`:
    /// standard output, when it is not a terminal).
    dest: PathBuf,
    /// Write a unified diff against the folder `start --cwd` copied, instead of the files.
    #[arg(long)]
    patch: bool,
    /// Read the last snapshot even when the agent runs (no engine needed).
    #[arg(long)]
    snapshot: bool,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    let slug = super::bottle_slug(&args.bottle)?;
    let config = super::load_config(home)?;
    let layout = Layout::new(&home.state_dir(&slug));
    // A bottle that never started has neither an agent nor a snapshot (nor a folder to use).
    if !layout.root().is_dir() {
        return Err(ExportError::NoSnapshot { slug }.into());
    }
    let source = if args.patch {
        let source = export::recorded_source(&layout)?
            .ok_or_else(|| ExportError::NoSource { slug: slug.clone() })?;
        if !source.is_dir() {
            return Err(ExportError::SourceGone {
                slug: slug.clone(),
                path: source,
            }
            .into());
        }
        check_patch_dest(&args.dest)?;
        Some(source)
    } else {
        export::prepare_folder(&args.dest)?;
        None
    };
    let store = Store::new(layout.root(), config.snapshot_max_bytes);
    // Scratch space for a running agent's copy and a patch's tree, removed on every path.
    crate::state::atomic::ensure_dir_in(layout.root(), &layout.run()).map_err(ExportError::from)?;
    let scratch = tempfile::Builder::new()
        .prefix(".export-")
        .tempdir_in(layout.run())?;
    let into = match &source {
        Some(_) => scratch.path().join("tree"),
        None => args.dest.clone(),
    };
    std::fs::create_dir_all(&into)?;
    let (from, done) = workspace(&args, &config, &slug, &store, scratch.path(), &into)?;
    for skipped in &done.skipped {
        eprintln!("skipped {skipped}: not a file, folder or link");
    }
    match source {
        Some(source) => {
            let ignore = export::source_ignore(&source)?;
            let sum = if args.dest == Path::new("-") {
                export::patch::write_patch(&source, &ignore, &into, std::io::stdout().lock())
            } else {
                let file = claude_bottle_io::fs::create_new(&args.dest, 0o644).map_err(|_| {
                    ExportError::PatchExists {
                        path: args.dest.clone(),
                    }
                })?;
                export::patch::write_patch(&source, &ignore, &into, std::io::BufWriter::new(file))
            }
            .map_err(ExportError::Patch)?;
            eprintln!(
                "bottle {slug}: /workspace ({from}) against {}: {} added, {} removed, {} changed, {} binary",
                source.display(),
                sum.added,
                sum.removed,
                sum.changed,
                sum.binary
            );
        }
        None => eprintln!(
            "bottle {slug}: /workspace ({from}) exported to {}: {} files, {}",
            args.dest.display(),
            done.files,
            human(done.bytes)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `-` must be a pipe or a file: the patch holds the agent's text, unescaped.
fn check_patch_dest(dest: &Path) -> Result<(), ExportError> {
    if dest == Path::new("-") {
        if std::io::stdout().is_terminal() {
            return Err(ExportError::Terminal);
        }
        return Ok(());
    }
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(ExportError::PatchExists {
            path: dest.to_owned(),
        });
    }
    Ok(())
}

/// Unpack the workspace into `into`: from the running agent (copied through the engine into a
/// snapshot store in `scratch`), else from the last snapshot. Says which.
fn workspace(
    args: &Args,
    config: &crate::config::Config,
    slug: &str,
    store: &Store,
    scratch: &Path,
    into: &Path,
) -> Result<(&'static str, Unpacked), super::Error> {
    if !args.snapshot {
        let live = super::runtime()?.block_on(async {
            let backend = match DockerBackend::connect(config.clone()).await {
                Ok(b) => b,
                Err(e) => {
                    eprintln!(
                        "warning: {}\n  exporting the last snapshot instead",
                        claude_bottle_protocol::escape(&e.to_string())
                    );
                    return Ok::<_, super::Error>(None);
                }
            };
            let paths = [crate::image::WORKSPACE_DIR.to_owned()];
            let Some(agent) = backend.running_agent(slug, &paths).await? else {
                return Ok(None);
            };
            let copy = Store::new(&scratch.join("copy"), store.max_bytes());
            let snap = backend.snapshot_agent(&agent, &copy).await?;
            Ok(Some((copy, snap)))
        })?;
        if let Some((copy, snap)) = live {
            let done = export::unpack_snapshot(&copy, &snap, slug, into)?;
            return Ok(("the running agent", done));
        }
    }
    let snap = store.load()?.ok_or_else(|| ExportError::NoSnapshot {
        slug: slug.to_owned(),
    })?;
    Ok((
        "the last snapshot",
        export::unpack_snapshot(store, &snap, slug, into)?,
    ))
}
