//! Crash-safe file writes and symlink-refusing reads inside a bottle's state folder.
//!
//! A write goes to a temp file in the target's own folder (created exclusively, never through a
//! symlink), is fsynced, moved into place, and the folder is fsynced: a crash at any point leaves
//! either the old file or the new one. Every path component between the state folder and the
//! target is checked with `symlink_metadata` first, so a symlink planted in the queue cannot
//! redirect a write (or a read) elsewhere; opens also carry `O_NOFOLLOW` for the last component.

use std::fs::OpenOptions;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::OFlag;

/// Mode of state files: supervise (another uid, in its container) reads the queue.
pub const FILE_MODE: u32 = 0o644;
/// Mode of state folders.
pub const DIR_MODE: u32 = 0o755;
/// Largest state file read whole; queue records are a few KiB.
pub const MAX_READ: u64 = 1024 * 1024;
/// Prefix of in-flight temp files (readers skip it; same as the queue protocol's).
pub const TEMP_PREFIX: &str = claude_bottle_protocol::queue::TEMP_PREFIX;

/// Why a state file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "refusing {path}: it is a symlink\nhint: state files and folders must be plain files and folders; remove the link"
    )]
    Symlink { path: PathBuf },
    #[error("refusing {path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("refusing {path}: not a folder")]
    NotAFolder { path: PathBuf },
    #[error("refusing {path}: larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("refusing {path}: it is not inside {root}")]
    Outside { path: PathBuf, root: PathBuf },
    #[error("failed to create {path}: it already exists")]
    Exists { path: PathBuf },
}

impl AtomicError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AtomicError + 'a {
        move |source| AtomicError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// Whether an atomic write may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace it (rename over it).
    Replace,
    /// Fail with [`AtomicError::Exists`]; decided by a hard link, so two racing writers cannot
    /// both succeed.
    Refuse,
}

fn nofollow() -> i32 {
    OFlag::O_NOFOLLOW.bits() | OFlag::O_CLOEXEC.bits()
}

/// Writes `bytes` to `path`, replacing any old file, refusing a symlinked target or folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AtomicError> {
    let dir = parent(path)?;
    write_atomic_in(dir, path, bytes, Overwrite::Replace)
}

/// Writes `bytes` to `path`, which must lie inside `root`; every component below `root` and
/// the target itself must not be a symlink.
pub fn write_atomic_in(
    root: &Path,
    path: &Path,
    bytes: &[u8],
    overwrite: Overwrite,
) -> Result<(), AtomicError> {
    check_no_symlinks(root, path)?;
    let dir = parent(path)?;
    let temp = dir.join(temp_name(path));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(nofollow())
            .open(&temp)
            .map_err(AtomicError::io("create", &temp))?;
        // The mode asked for at creation is cut by the umask; supervise must still read it.
        f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
            .map_err(AtomicError::io("set the mode of", &temp))?;
        f.write_all(bytes)
            .map_err(AtomicError::io("write", &temp))?;
        f.sync_all().map_err(AtomicError::io("fsync", &temp))?;
        drop(f);
        match overwrite {
            Overwrite::Replace => {
                std::fs::rename(&temp, path).map_err(AtomicError::io("rename into place", path))?
            }
            Overwrite::Refuse => {
                std::fs::hard_link(&temp, path).map_err(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        AtomicError::Exists {
                            path: path.to_owned(),
                        }
                    } else {
                        AtomicError::io("link into place", path)(e)
                    }
                })?;
                std::fs::remove_file(&temp).map_err(AtomicError::io("remove", &temp))?;
            }
        }
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Reads a regular file of at most [`MAX_READ`] bytes inside `root`, refusing symlinks on the
/// way and checking the type on the opened descriptor. `Ok(None)` when it does not exist.
pub fn read_in(root: &Path, path: &Path) -> Result<Option<Vec<u8>>, AtomicError> {
    check_no_symlinks(root, path)?;
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(nofollow() | OFlag::O_NONBLOCK.bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            return Err(AtomicError::Symlink {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(AtomicError::io("open", path)(e)),
    };
    let meta = f.metadata().map_err(AtomicError::io("stat", path))?;
    if !meta.is_file() {
        return Err(AtomicError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mut buf = Vec::new();
    f.take(MAX_READ + 1)
        .read_to_end(&mut buf)
        .map_err(AtomicError::io("read", path))?;
    if buf.len() as u64 > MAX_READ {
        return Err(AtomicError::TooLarge {
            path: path.to_owned(),
            limit: MAX_READ,
        });
    }
    Ok(Some(buf))
}

/// Makes sure `dir` (inside `root`, or `root` itself) is a real folder, creating missing ones
/// one by one with [`DIR_MODE`] (set explicitly: supervise reads them as another uid); a symlink
/// anywhere below `root` is refused.
pub fn ensure_dir_in(root: &Path, dir: &Path) -> Result<(), AtomicError> {
    check_no_symlinks(root, dir)?;
    let rest = dir.strip_prefix(root).map_err(|_| AtomicError::Outside {
        path: dir.to_owned(),
        root: root.to_owned(),
    })?;
    let mut at = root.to_path_buf();
    ensure_one_dir(&at)?;
    for c in rest.components() {
        at.push(c);
        ensure_one_dir(&at)?;
    }
    Ok(())
}

fn ensure_one_dir(dir: &Path) -> Result<(), AtomicError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(AtomicError::Symlink {
            path: dir.to_owned(),
        }),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(AtomicError::NotAFolder {
            path: dir.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
            {
                Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
                    .map_err(AtomicError::io("set the mode of", dir)),
                Err(e) => Err(AtomicError::io("create folder", dir)(e)),
            }
        }
        Err(e) => Err(AtomicError::io("stat", dir)(e)),
    }
}

/// Refuses when `path` is outside `root`, or when `path` or any folder between `root` and it is
/// a symlink. Components that do not exist yet are fine (there is nothing to follow).
pub fn check_no_symlinks(root: &Path, path: &Path) -> Result<(), AtomicError> {
    let outside = || AtomicError::Outside {
        path: path.to_owned(),
        root: root.to_owned(),
    };
    let rest = path.strip_prefix(root).map_err(|_| outside())?;
    let mut at = root.to_path_buf();
    for c in rest.components() {
        let Component::Normal(name) = c else {
            return Err(outside());
        };
        at.push(name);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(AtomicError::Symlink { path: at }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(AtomicError::io("stat", &at)(e)),
        }
    }
    Ok(())
}

/// Makes a rename or link in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), AtomicError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nofollow() | OFlag::O_DIRECTORY.bits())
        .open(dir)
        .and_then(|d| d.sync_all())
        .map_err(AtomicError::io("fsync folder", dir))
}

fn parent(path: &Path) -> Result<&Path, AtomicError> {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| AtomicError::NotAFile {
            path: path.to_owned(),
        })
}

/// `.tmp-<name>-<pid>-<counter>`: distinct per process and per call, never a valid record name.
fn temp_name(path: &Path) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TEMP_PREFIX}{name}-{:x}-{n:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_replace_and_leave_no_temp_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("a.json");
        write_atomic(&p, b"one").expect("first write");
        write_atomic(&p, b"two").expect("second write");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        assert_eq!(names(tmp.path()), ["a.json"]);
        let mode = std::fs::metadata(&p).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, FILE_MODE);
    }

    #[test]
    fn refuse_mode_never_replaces() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("d.json");
        write_atomic_in(tmp.path(), &p, b"first", Overwrite::Refuse).expect("create");
        let err = write_atomic_in(tmp.path(), &p, b"second", Overwrite::Refuse)
            .expect_err("second create must fail");
        assert!(matches!(err, AtomicError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&p).expect("read"), b"first");
        assert_eq!(names(tmp.path()), ["d.json"], "temp file cleaned up");
    }

    #[test]
    fn a_symlinked_target_is_refused_not_followed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep").expect("victim");
        let link = tmp.path().join("x.json");
        symlink(&victim, &link).expect("symlink");
        for overwrite in [Overwrite::Replace, Overwrite::Refuse] {
            let err = write_atomic_in(tmp.path(), &link, b"evil", overwrite).expect_err("refused");
            assert!(matches!(err, AtomicError::Symlink { .. }), "{err}");
        }
        assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
        let err = read_in(tmp.path(), &link).expect_err("read refused");
        assert!(matches!(err, AtomicError::Symlink { .. }), "{err}");
    }

    #[test]
    fn a_symlinked_folder_inside_the_root_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("state");
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir_all(&root).expect("root");
        std::fs::create_dir_all(&elsewhere).expect("elsewhere");
        symlink(&elsewhere, root.join("queue")).expect("symlink");
        let target = root.join("queue").join("a.json");
        let err = write_atomic_in(&root, &target, b"x", Overwrite::Replace).expect_err("refused");
        assert!(matches!(err, AtomicError::Symlink { .. }), "{err}");
        assert!(names(&elsewhere).is_empty());
        let err = ensure_dir_in(&root, &root.join("queue").join("sub")).expect_err("refused");
        assert!(matches!(err, AtomicError::Symlink { .. }), "{err}");
    }

    #[test]
    fn paths_outside_the_root_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("state");
        for p in [tmp.path().join("x.json"), root.join("../x.json")] {
            let err = write_atomic_in(&root, &p, b"x", Overwrite::Replace).expect_err("refused");
            assert!(matches!(err, AtomicError::Outside { .. }), "{err}");
        }
    }

    #[test]
    fn reads_are_bounded_and_missing_is_none() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("big");
        assert!(read_in(tmp.path(), &p).expect("missing is fine").is_none());
        let big = vec![b'x'; usize::try_from(MAX_READ).expect("fits") + 1];
        std::fs::write(&p, big).expect("write");
        assert!(matches!(
            read_in(tmp.path(), &p),
            Err(AtomicError::TooLarge { .. })
        ));
        let err = read_in(tmp.path(), tmp.path()).expect_err("a folder is not a file");
        assert!(matches!(err, AtomicError::NotAFile { .. }), "{err}");
    }

    #[test]
    fn folders_are_created_with_their_mode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path().join("a").join("b");
        ensure_dir_in(tmp.path(), &d).expect("create");
        ensure_dir_in(tmp.path(), &d).expect("idempotent");
        let mode = std::fs::metadata(&d).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, DIR_MODE);
        std::fs::write(tmp.path().join("f"), b"").expect("file");
        assert!(matches!(
            ensure_dir_in(tmp.path(), &tmp.path().join("f")),
            Err(AtomicError::NotAFolder { .. })
        ));
    }
}
