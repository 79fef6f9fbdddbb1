//! Crash-safe writes and symlink-refusing reads in a folder another party can also write to.
//!
//! The launcher's state folder holds the queue supervise writes into, and supervise's queue folder
//! holds what the launcher decides: either side may find a symlink planted where a file should be.
//! So a write goes to a temp file in the target's own folder (created exclusively, never through a
//! symlink), is fsynced, moved into place, and the folder is fsynced: a crash at any point leaves
//! either the old file or the new one. Every path component between a root the caller trusts and
//! the target is checked with `symlink_metadata` first, so a symlink planted inside the root cannot
//! redirect a write (or a read) elsewhere; opens also carry `O_NOFOLLOW` for the last component,
//! and a read checks the type on the opened descriptor, so a swap after the check cannot fool it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::OFlag;

/// Mode of written files: the other side (another uid, in its container) reads them.
pub const FILE_MODE: u32 = 0o644;
/// Mode of created folders.
pub const DIR_MODE: u32 = 0o755;
/// Prefix of in-flight temp files: readers skip them (the queue protocol's).
pub const TEMP_PREFIX: &str = claude_bottle_protocol::queue::TEMP_PREFIX;

/// Why a file could not be written or read, each naming the path.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "refusing {path}: it is a symlink\nhint: these files and folders must be plain files and folders; remove the link"
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
    #[error(
        "refusing {path}: a file that is not a socket is in the way\nhint: remove it or pick another path"
    )]
    NotASocket { path: PathBuf },
}

impl FsError {
    /// `map_err(FsError::io("open", path))`: an I/O error that says what was done to which path.
    pub fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
        move |source| FsError::Io {
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
    /// Fail with [`FsError::Exists`]; decided by a hard link, so two racing writers cannot both
    /// succeed.
    Refuse,
}

fn nofollow() -> i32 {
    OFlag::O_NOFOLLOW.bits() | OFlag::O_CLOEXEC.bits()
}

/// Writes `bytes` to `path`, replacing any old file, refusing a symlinked target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let dir = parent(path)?;
    write_atomic_in(dir, path, bytes, Overwrite::Replace)
}

/// Writes `bytes` to `path` with `mode` from its first byte on (a key is never readable by others,
/// not even for a moment), replacing any old file, refusing a symlinked target.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
    let dir = parent(path)?;
    write(dir, path, bytes, Overwrite::Replace, mode)
}

/// Writes `bytes` to `path` with [`FILE_MODE`]; `path` must lie inside `root`, and neither it nor
/// any folder between `root` and it may be a symlink.
pub fn write_atomic_in(
    root: &Path,
    path: &Path,
    bytes: &[u8],
    overwrite: Overwrite,
) -> Result<(), FsError> {
    write(root, path, bytes, overwrite, FILE_MODE)
}

fn write(
    root: &Path,
    path: &Path,
    bytes: &[u8],
    overwrite: Overwrite,
    mode: u32,
) -> Result<(), FsError> {
    check_no_symlinks(root, path)?;
    let dir = parent(path)?;
    let temp = dir.join(temp_name(path));
    let result = (|| {
        let mut f = create_new(&temp, mode)?;
        f.write_all(bytes).map_err(FsError::io("write", &temp))?;
        f.sync_all().map_err(FsError::io("fsync", &temp))?;
        drop(f);
        match overwrite {
            Overwrite::Replace => {
                std::fs::rename(&temp, path).map_err(FsError::io("rename into place", path))?
            }
            Overwrite::Refuse => {
                std::fs::hard_link(&temp, path).map_err(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        FsError::Exists {
                            path: path.to_owned(),
                        }
                    } else {
                        FsError::io("link into place", path)(e)
                    }
                })?;
                std::fs::remove_file(&temp).map_err(FsError::io("remove", &temp))?;
            }
        }
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Creates `path` for writing, exclusively and never through a symlink, with exactly `mode`
/// (set again after creation: the umask cuts the mode asked for, and the other side must read it).
pub fn create_new(path: &Path, mode: u32) -> Result<File, FsError> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nofollow())
        .open(path)
        .map_err(FsError::io("create", path))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(FsError::io("set the mode of", path))?;
    Ok(f)
}

/// Opens `path` inside `root` for appending (created with `mode` when missing, cut by the umask),
/// refusing symlinks on the way: `O_APPEND` makes each `write` land whole at the end, so
/// concurrent writers of a log do not interleave.
pub fn open_append_in(root: &Path, path: &Path, mode: u32) -> Result<File, FsError> {
    check_no_symlinks(root, path)?;
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(nofollow())
        .open(path)
        .map_err(FsError::io("open", path))
}

/// Opens the regular file `path` inside `root` for reading, refusing symlinks on the way.
/// `Ok(None)` when it does not exist.
pub fn open_in(root: &Path, path: &Path) -> Result<Option<File>, FsError> {
    check_no_symlinks(root, path)?;
    // O_NONBLOCK: a FIFO planted in the folder must not hang the open.
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(nofollow() | OFlag::O_NONBLOCK.bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            return Err(FsError::Symlink {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(FsError::io("open", path)(e)),
    };
    let meta = f.metadata().map_err(FsError::io("stat", path))?;
    if !meta.is_file() {
        return Err(FsError::NotAFile {
            path: path.to_owned(),
        });
    }
    Ok(Some(f))
}

/// Reads the regular file `path` inside `root` whole, refusing one larger than `limit` bytes
/// (the writer may be hostile) and symlinks on the way. `Ok(None)` when it does not exist.
pub fn read_in(root: &Path, path: &Path, limit: u64) -> Result<Option<Vec<u8>>, FsError> {
    let Some(f) = open_in(root, path)? else {
        return Ok(None);
    };
    let too_large = || FsError::TooLarge {
        path: path.to_owned(),
        limit,
    };
    let len = f.metadata().map_err(FsError::io("stat", path))?.len();
    if len > limit {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // The file may grow after the stat: read one byte past the limit to notice.
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(FsError::io("read", path))?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(Some(buf))
}

/// Makes sure `dir` (inside `root`, or `root` itself) is a real folder, creating missing ones
/// one by one with [`DIR_MODE`] (set explicitly: the other side reads them as another uid); a
/// symlink anywhere below `root`, or `root` itself being one, is refused.
pub fn ensure_dir_in(root: &Path, dir: &Path) -> Result<(), FsError> {
    check_no_symlinks(root, dir)?;
    let rest = dir.strip_prefix(root).map_err(|_| FsError::Outside {
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

fn ensure_one_dir(dir: &Path) -> Result<(), FsError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(FsError::Symlink {
            path: dir.to_owned(),
        }),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(FsError::NotAFolder {
            path: dir.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
            {
                Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
                    .map_err(FsError::io("set the mode of", dir)),
                Err(e) => Err(FsError::io("create folder", dir)(e)),
            }
        }
        Err(e) => Err(FsError::io("stat", dir)(e)),
    }
}

/// Refuses when `path` is outside `root`, or when `path` or any folder between `root` and it is
/// a symlink. Components that do not exist yet are fine (there is nothing to follow).
pub fn check_no_symlinks(root: &Path, path: &Path) -> Result<(), FsError> {
    let outside = || FsError::Outside {
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
            Ok(m) if m.file_type().is_symlink() => return Err(FsError::Symlink { path: at }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(FsError::io("stat", &at)(e)),
        }
    }
    Ok(())
}

/// Makes a rename or link in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nofollow() | OFlag::O_DIRECTORY.bits())
        .open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FsError::io("fsync folder", dir))
}

fn parent(path: &Path) -> Result<&Path, FsError> {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| FsError::NotAFile {
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
    fn a_private_file_has_its_mode_from_the_start() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("key.pem");
        write_atomic_mode(&p, b"secret", 0o600).expect("write");
        let mode = std::fs::metadata(&p).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(names(tmp.path()), ["key.pem"]);
    }

    #[test]
    fn refuse_mode_never_replaces() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("d.json");
        write_atomic_in(tmp.path(), &p, b"first", Overwrite::Refuse).expect("create");
        let err = write_atomic_in(tmp.path(), &p, b"second", Overwrite::Refuse)
            .expect_err("second create must fail");
        assert!(matches!(err, FsError::Exists { .. }), "{err}");
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
            assert!(matches!(err, FsError::Symlink { .. }), "{err}");
        }
        assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
        let err = read_in(tmp.path(), &link, 10).expect_err("read refused");
        assert!(matches!(err, FsError::Symlink { .. }), "{err}");
        // With the link as the root nothing below it is checked: O_NOFOLLOW must refuse it.
        let err = read_in(&link, &link, 10).expect_err("read refused by the open");
        assert!(matches!(err, FsError::Symlink { .. }), "{err}");
        assert!(create_new(&link, FILE_MODE).is_err());
        assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
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
        assert!(matches!(err, FsError::Symlink { .. }), "{err}");
        assert!(names(&elsewhere).is_empty());
        let err = ensure_dir_in(&root, &root.join("queue").join("sub")).expect_err("refused");
        assert!(matches!(err, FsError::Symlink { .. }), "{err}");
        let err = ensure_dir_in(&root.join("queue"), &root.join("queue")).expect_err("refused");
        assert!(
            matches!(err, FsError::Symlink { .. }),
            "a symlinked root too: {err}"
        );
    }

    #[test]
    fn paths_outside_the_root_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("state");
        for p in [tmp.path().join("x.json"), root.join("../x.json")] {
            let err = write_atomic_in(&root, &p, b"x", Overwrite::Replace).expect_err("refused");
            assert!(matches!(err, FsError::Outside { .. }), "{err}");
        }
    }

    #[test]
    fn reads_are_bounded_and_missing_is_none() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("big");
        assert!(
            read_in(tmp.path(), &p, 4)
                .expect("missing is fine")
                .is_none()
        );
        std::fs::write(&p, b"12345").expect("write");
        assert!(matches!(
            read_in(tmp.path(), &p, 4),
            Err(FsError::TooLarge { limit: 4, .. })
        ));
        assert_eq!(
            read_in(tmp.path(), &p, 5).expect("read").as_deref(),
            Some(&b"12345"[..])
        );
        let err = read_in(tmp.path(), tmp.path(), 4).expect_err("a folder is not a file");
        assert!(matches!(err, FsError::NotAFile { .. }), "{err}");
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
            Err(FsError::NotAFolder { .. })
        ));
    }
}
