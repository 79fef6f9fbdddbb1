//! The agent's workspace archive unpacked into a folder the operator named, never writing outside
//! it: every entry's path is checked (no `..`, no absolute path, nothing outside the archive's
//! own folder), every write goes through the io crate's no-follow helpers (a symlink anywhere on
//! the way is refused, files are created exclusively with `O_NOFOLLOW`), and every byte counts
//! against a limit, checked at each entry's header before its data is read.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use claude_bottle_io::fs::{self as nofollow, FsError};

use crate::state::snapshot::human;
use crate::state::snapshot::scan::show_path;

/// What an unpack wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub bytes: u64,
    /// Entries left out (devices, FIFOs), their paths escaped.
    pub skipped: Vec<String>,
}

/// Why an archive was not unpacked whole.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// An entry that could write (or link) outside the folder, or that another reader would
    /// expand; the path is the agent's, escaped.
    #[error("refusing the workspace entry {path}: {why}")]
    Refused { path: String, why: &'static str },
    #[error(
        "failed to export the workspace: it is larger than snapshot_max_bytes ({}), refused at {path}",
        human(*.limit)
    )]
    TooLarge { limit: u64, path: String },
    #[error("failed to read the workspace archive: {0}")]
    Archive(#[source] io::Error),
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Unpack `archive`, whose entries are named from folder `root` (`workspace/…`, as the engine
/// exports `/workspace`), into `dest` (an existing folder), at most `budget` bytes of file data.
pub fn unpack<R: Read>(
    archive: R,
    root: &str,
    dest: &Path,
    budget: u64,
) -> Result<Unpacked, UnpackError> {
    let mut archive = tar::Archive::new(archive);
    let mut done = Unpacked::default();
    for entry in archive.entries().map_err(UnpackError::Archive)? {
        let mut entry = entry.map_err(UnpackError::Archive)?;
        let raw = entry.path_bytes().into_owned();
        let shown = show_path(&raw);
        let refused = |why| UnpackError::Refused {
            path: shown.clone(),
            why,
        };
        let Some(rel) = relative(&raw, root) else {
            return Err(refused("its path leaves the workspace"));
        };
        let to = dest.join(&rel);
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                if rel.as_os_str().is_empty() {
                    continue;
                }
                nofollow::ensure_dir_in(dest, &to)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                if size > budget.saturating_sub(done.bytes) {
                    return Err(UnpackError::TooLarge {
                        limit: budget,
                        path: shown,
                    });
                }
                let parent = parent_of(dest, &to, &rel, &refused)?;
                nofollow::ensure_dir_in(dest, &parent)?;
                nofollow::check_no_symlinks(dest, &to)?;
                let mode = entry.header().mode().unwrap_or(0o644);
                // No set-id bits and nothing writable by others; always the operator's to edit.
                let mut file = nofollow::create_new(&to, (mode & 0o755) | 0o600)?;
                let copied = io::copy(&mut (&mut entry).take(size), &mut file)
                    .map_err(FsError::io("write", &to))?;
                if copied != size {
                    return Err(UnpackError::Archive(io::ErrorKind::UnexpectedEof.into()));
                }
                if let Ok(mtime) = entry.header().mtime() {
                    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
                    let _ = file.set_modified(t);
                }
                done.files += 1;
                done.bytes += size;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused("a symlink without a target"))?
                    .into_owned();
                let parent = parent_of(dest, &to, &rel, &refused)?;
                nofollow::ensure_dir_in(dest, &parent)?;
                nofollow::check_no_symlinks(dest, &to)?;
                // Written as the agent wrote it, never followed: every later entry's path is
                // checked for symlinks on the way.
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &to)
                    .map_err(FsError::io("create symlink", &to))?;
                done.files += 1;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused("a hard link without a target"))?
                    .into_owned();
                let Some(target_rel) = relative(&target, root) else {
                    return Err(refused("a hard link to a file outside the workspace"));
                };
                let from = dest.join(&target_rel);
                nofollow::check_no_symlinks(dest, &from)?;
                match std::fs::symlink_metadata(&from) {
                    Ok(m) if m.is_file() => {}
                    _ => return Err(refused("a hard link to no file the archive wrote before")),
                }
                let parent = parent_of(dest, &to, &rel, &refused)?;
                nofollow::ensure_dir_in(dest, &parent)?;
                nofollow::check_no_symlinks(dest, &to)?;
                std::fs::hard_link(&from, &to).map_err(FsError::io("link", &to))?;
                done.files += 1;
            }
            tar::EntryType::GNUSparse => {
                return Err(refused(
                    "a GNU sparse entry, which would expand beyond the archive's size",
                ));
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                done.skipped.push(shown);
            }
            _ => return Err(refused("an entry type the engine does not write")),
        }
    }
    Ok(done)
}

/// The path of an entry named `root/…` relative to `root`, `None` when it is outside (another
/// first component, `..`, an absolute path). `root/` itself is the empty path.
fn relative(raw: &[u8], root: &str) -> Option<PathBuf> {
    let path = Path::new(OsStr::from_bytes(raw));
    let mut parts = path.components();
    match parts.next()? {
        Component::Normal(first) if first == OsStr::new(root) => {}
        _ => return None,
    }
    let mut rel = PathBuf::new();
    for c in parts {
        match c {
            Component::Normal(name) => rel.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(rel)
}

fn parent_of(
    dest: &Path,
    to: &Path,
    rel: &Path,
    refused: &dyn Fn(&'static str) -> UnpackError,
) -> Result<PathBuf, UnpackError> {
    if rel.as_os_str().is_empty() {
        return Err(refused("a file in place of the workspace folder"));
    }
    Ok(to.parent().map_or_else(|| dest.to_owned(), Path::to_owned))
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
