//! `claude-bottle export`: the agent's workspace out of a bottle, from the running agent or the
//! last snapshot, into a folder of the operator's ([`unpack`]) or as a patch against the folder
//! `start --cwd` copied ([`patch`]). See [docs/export.md](../../../docs/export.md).

pub mod patch;
pub mod unpack;

use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

use claude_bottle_io::fs::FsError;

use crate::error::{Diagnose, Kind};
use crate::state::Layout;
use crate::state::snapshot::{Snapshot, SnapshotError, Store};
pub use unpack::{UnpackError, Unpacked};

/// The name the engine gives the workspace's entries (`workspace/…` for `/workspace`).
pub const WORKSPACE_ROOT: &str = "workspace";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("refusing to export into {path}: it is not an empty folder")]
    NotEmpty { path: PathBuf },
    #[error("refusing to write the patch to {path}: it already exists")]
    PatchExists { path: PathBuf },
    #[error("refusing to write the patch to a terminal: it holds the agent's text")]
    Terminal,
    #[error("bottle {slug} has no snapshot of its workspace, and its agent is not running")]
    NoSnapshot { slug: String },
    #[error("bottle {slug} has no recorded --cwd source to compare with")]
    NoSource { slug: String },
    #[error("the --cwd source of bottle {slug}, {path}, is not a folder any more")]
    SourceGone { slug: String, path: PathBuf },
    #[error("failed to read {path}: {detail}")]
    Dockerignore { path: PathBuf, detail: String },
    #[error("failed to write the patch: {0}")]
    Patch(#[source] std::io::Error),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl Diagnose for ExportError {
    fn kind(&self) -> Kind {
        match self {
            ExportError::NotEmpty { .. }
            | ExportError::PatchExists { .. }
            | ExportError::Terminal
            | ExportError::NoSnapshot { .. }
            | ExportError::NoSource { .. }
            | ExportError::SourceGone { .. }
            | ExportError::Dockerignore { .. } => Kind::Usage,
            ExportError::Unpack(UnpackError::TooLarge { .. }) => Kind::Environment,
            // What the agent wrote is not what the engine writes: a hostile or broken archive.
            ExportError::Unpack(UnpackError::Refused { .. } | UnpackError::Archive(_)) => {
                Kind::Engine
            }
            ExportError::Snapshot(e) => e.kind(),
            ExportError::Unpack(UnpackError::Fs(_))
            | ExportError::Fs(_)
            | ExportError::Patch(_) => Kind::Internal,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ExportError::NotEmpty { .. } => {
                "name a new or empty folder: export never writes over files".into()
            }
            ExportError::PatchExists { .. } => {
                "name a new file, or `-` to write the patch to a pipe".into()
            }
            ExportError::Terminal => "pipe it (`| git apply`) or name a file".into(),
            ExportError::NoSnapshot { .. } => {
                "a snapshot is saved when a session ends; start the bottle, or see `claude-bottle list`".into()
            }
            ExportError::NoSource { .. } => {
                "--patch compares with the folder `start --cwd DIR` copied, recorded at each start with --cwd; export the folder instead (without --patch) and compare it yourself".into()
            }
            ExportError::SourceGone { .. } => {
                "restore the folder, or export without --patch".into()
            }
            ExportError::Unpack(UnpackError::TooLarge { .. }) => format!(
                "raise snapshot_max_bytes in config.toml (or ${}), or remove what the agent does not need",
                crate::config::ENV_SNAPSHOT_MAX_BYTES
            ),
            ExportError::Snapshot(e) => return e.hint(),
            _ => return None,
        })
    }
}

/// Record the folder `start --cwd` copies into the workspace (absolute), or forget it for a
/// `start` without one: its workspace starts empty.
pub fn record_source(layout: &Layout, cwd: Option<&Path>) -> Result<(), ExportError> {
    let path = layout.workspace_source();
    match cwd {
        Some(dir) => {
            let abs = std::fs::canonicalize(dir).map_err(FsError::io("resolve", dir))?;
            crate::state::atomic::ensure_dir_in(layout.root(), layout.root())?;
            let mut bytes = abs.into_os_string().into_vec();
            bytes.push(b'\n');
            crate::state::write_atomic_in(
                layout.root(),
                &path,
                &bytes,
                crate::state::Overwrite::Replace,
            )?;
        }
        None => match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::io("remove", &path)(e).into()),
        },
    }
    Ok(())
}

/// The folder recorded by [`record_source`], if any.
pub fn recorded_source(layout: &Layout) -> Result<Option<PathBuf>, ExportError> {
    let Some(mut bytes) = crate::state::atomic::read_in(layout.root(), &layout.workspace_source())?
    else {
        return Ok(None);
    };
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    Ok((!bytes.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))))
}

/// Make `dest` an empty folder of the operator's: created when missing; an existing one must be
/// an empty folder (not a symlink to one).
pub fn prepare_folder(dest: &Path) -> Result<(), ExportError> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => {
            let mut entries = std::fs::read_dir(dest).map_err(FsError::io("list", dest))?;
            if entries.next().is_some() {
                return Err(ExportError::NotEmpty {
                    path: dest.to_owned(),
                });
            }
            Ok(())
        }
        Ok(_) => Err(ExportError::NotEmpty {
            path: dest.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dest).map_err(FsError::io("create folder", dest))?;
            Ok(())
        }
        Err(e) => Err(FsError::io("stat", dest)(e).into()),
    }
}

/// Unpack the workspace of `snap` (a snapshot of `store`) into the empty folder `dest`, bounded by
/// the store's limit.
pub fn unpack_snapshot(
    store: &Store,
    snap: &Snapshot,
    slug: &str,
    dest: &Path,
) -> Result<Unpacked, ExportError> {
    let part = snap
        .parts
        .iter()
        .find(|p| p.path.trim_end_matches('/') == crate::image::WORKSPACE_DIR)
        .ok_or_else(|| ExportError::NoSnapshot {
            slug: slug.to_owned(),
        })?;
    let file = store.open_part(part)?;
    let reader = std::io::BufReader::with_capacity(64 * 1024, file);
    Ok(unpack::unpack(
        reader,
        WORKSPACE_ROOT,
        dest,
        store.max_bytes(),
    )?)
}

/// The `.dockerignore` of `source` (what the copy left out), or nothing ignored without one.
pub fn source_ignore(source: &Path) -> Result<crate::image::DockerIgnore, ExportError> {
    let path = source.join(".dockerignore");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            crate::image::DockerIgnore::parse(&text).map_err(|e| ExportError::Dockerignore {
                path,
                detail: e.to_string(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(ExportError::Dockerignore {
            path,
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_recorded_read_back_and_forgotten() {
        let home = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(&home.path().join("state/app"));
        assert!(recorded_source(&layout).expect("read").is_none());
        let src = home.path().join("src dir");
        std::fs::create_dir(&src).expect("src");
        record_source(&layout, Some(&src)).expect("record");
        assert_eq!(
            recorded_source(&layout).expect("read"),
            Some(std::fs::canonicalize(&src).expect("abs"))
        );
        record_source(&layout, None).expect("forget");
        assert!(recorded_source(&layout).expect("read").is_none());
    }

    #[test]
    fn only_a_missing_or_empty_folder_is_exported_into() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let new = tmp.path().join("a/b");
        prepare_folder(&new).expect("created");
        assert!(new.is_dir());
        prepare_folder(&new).expect("empty is fine");
        std::fs::write(new.join("f"), "x").expect("write");
        assert!(matches!(
            prepare_folder(&new),
            Err(ExportError::NotEmpty { .. })
        ));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path().join("empty"), &link).expect("link");
        std::fs::create_dir(tmp.path().join("empty")).expect("empty");
        assert!(matches!(
            prepare_folder(&link),
            Err(ExportError::NotEmpty { .. })
        ));
        assert!(matches!(
            prepare_folder(&new.join("f")),
            Err(ExportError::NotEmpty { .. })
        ));
    }
}
