//! File-system primitives of the queue: atomic writes, symlink-refusing bounded reads, the socket.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

/// Errors of queue file operations, each naming the path.
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
        "refusing {path}: it is a symlink\nhint: queue files and folders must be plain files and folders"
    )]
    Symlink { path: PathBuf },
    #[error("refusing {path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("refusing {path}: larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error(
        "refusing {path}: a file that is not a socket is in the way\nhint: remove it or pick another --socket path"
    )]
    NotASocket { path: PathBuf },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |source| FsError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn nofollow() -> i32 {
    OFlag::O_NOFOLLOW.bits() | OFlag::O_CLOEXEC.bits()
}

/// Writes `bytes` to `dir/name` so that a crash leaves either no file or the whole file:
/// temp file in the same folder (created exclusively, never through a symlink), fsync, rename,
/// fsync of the folder.
pub fn write_atomic(dir: &Path, name: &str, temp_name: &str, bytes: &[u8]) -> Result<(), FsError> {
    let temp = dir.join(temp_name);
    let target = dir.join(name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(nofollow())
            .open(&temp)
            .map_err(io_err("create", &temp))?;
        f.write_all(bytes).map_err(io_err("write", &temp))?;
        f.sync_all().map_err(io_err("fsync", &temp))?;
        drop(f);
        std::fs::rename(&temp, &target).map_err(io_err("rename into place", &target))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Makes a rename in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow() | OFlag::O_DIRECTORY.bits())
        .open(dir)
        .map_err(io_err("open folder", dir))?;
    d.sync_all().map_err(io_err("fsync folder", dir))
}

/// Reads a regular file of at most `limit` bytes, refusing symlinks (`O_NOFOLLOW`) and checking
/// the type on the opened descriptor, so a swap between check and open cannot fool it.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FsError> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow() | OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                FsError::Symlink {
                    path: path.to_owned(),
                }
            } else {
                io_err("open", path)(e)
            }
        })?;
    let meta = f.metadata().map_err(io_err("stat", path))?;
    if !meta.file_type().is_file() {
        return Err(FsError::NotAFile {
            path: path.to_owned(),
        });
    }
    if meta.len() > limit {
        return Err(FsError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(io_err("read", path))?;
    if buf.len() as u64 > limit {
        return Err(FsError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(buf)
}

/// Makes sure `dir` is a real folder (creating it if allowed), never a symlink.
pub fn ensure_dir(dir: &Path, create: bool) -> Result<(), FsError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(FsError::Symlink {
            path: dir.to_owned(),
        }),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(FsError::NotAFile {
            path: dir.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
            std::fs::create_dir_all(dir).map_err(io_err("create folder", dir))
        }
        Err(e) => Err(io_err("stat", dir)(e)),
    }
}

/// The plain file names in `dir` (symlinks and sub-folders left out, reported at debug level;
/// the one-off scan at start reports them as warnings through [`list_files_warn`]).
pub fn list_files(dir: &Path) -> Result<Vec<String>, FsError> {
    list(dir, false)
}

/// [`list_files`], warning about each symlink found.
pub fn list_files_warn(dir: &Path) -> Result<Vec<String>, FsError> {
    list(dir, true)
}

fn list(dir: &Path, warn: bool) -> Result<Vec<String>, FsError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let Ok(ft) = entry.file_type() else { continue };
        if !ft.is_file() {
            if ft.is_symlink() && warn {
                tracing::warn!(path = %entry.path().display(), "ignoring a symlink in the queue");
            } else if ft.is_symlink() {
                tracing::debug!(path = %entry.path().display(), "ignoring a symlink in the queue");
            }
            continue;
        }
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Binds the server socket so another uid (the agent's) can connect: mode 0666. A stale socket
/// from a previous run is replaced; anything else in the way is refused.
pub fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, FsError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(io_err("remove stale socket", path))?;
        }
        Ok(_) => {
            return Err(FsError::NotASocket {
                path: path.to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("stat", path)(e)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err("create socket folder", parent))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io_err("bind", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(io_err("chmod", path))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_then_bounded_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomic(dir.path(), "a.json", ".tmp-a-1", b"{}").expect("write");
        assert!(!dir.path().join(".tmp-a-1").exists());
        assert_eq!(
            read_bounded(&dir.path().join("a.json"), 10).expect("read"),
            b"{}"
        );
        assert!(matches!(
            read_bounded(&dir.path().join("a.json"), 1),
            Err(FsError::TooLarge { .. })
        ));
    }

    #[test]
    fn symlinks_are_refused_for_reading_and_as_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"s").expect("write");
        std::os::unix::fs::symlink(&secret, dir.path().join("l.json")).expect("symlink");
        assert!(matches!(
            read_bounded(&dir.path().join("l.json"), 10),
            Err(FsError::Symlink { .. })
        ));
        std::os::unix::fs::symlink(&secret, dir.path().join(".tmp-x")).expect("symlink");
        assert!(write_atomic(dir.path(), "x.json", ".tmp-x", b"evil").is_err());
        assert_eq!(std::fs::read(&secret).expect("read"), b"s");
        assert_eq!(
            list_files(dir.path()).expect("list"),
            vec!["secret".to_owned()]
        );
        assert!(matches!(
            ensure_dir(&dir.path().join("l.json"), true),
            Err(FsError::Symlink { .. })
        ));
    }
}
