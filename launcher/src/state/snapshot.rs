//! `state/<slug>/snapshots/latest/`: the agent's home and workspace as tar archives, taken before
//! the agent is replaced by a rebuilt one and when a session ends, so a session can resume.

use std::path::{Path, PathBuf};

use super::atomic::{self, AtomicError};

/// One folder of the agent: `path` is where it lives in the container; `tar` holds it as the
/// engine exports it (entries named from the folder's own name, e.g. `agent/…` for /home/agent).
#[derive(Clone, PartialEq, Eq)]
pub struct SnapshotPart {
    pub path: String,
    pub tar: Vec<u8>,
}

impl std::fmt::Debug for SnapshotPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotPart")
            .field("path", &self.path)
            .field("bytes", &self.tar.len())
            .finish()
    }
}

impl SnapshotPart {
    /// The container folder the archive is unpacked into (the parent of `path`).
    pub fn restore_into(&self) -> String {
        match self.path.trim_end_matches('/').rsplit_once('/') {
            Some(("", _)) | None => "/".to_owned(),
            Some((parent, _)) => parent.to_owned(),
        }
    }

    fn file_name(&self) -> String {
        format!("{}.tar", self.path.trim_matches('/').replace('/', "_"))
    }
}

/// The agent's state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub parts: Vec<SnapshotPart>,
}

fn latest(state_dir: &Path) -> PathBuf {
    state_dir.join("snapshots").join("latest")
}

/// Replace the latest snapshot with `snap` (each archive written atomically; the index last).
pub fn save(state_dir: &Path, snap: &Snapshot) -> Result<(), AtomicError> {
    let dir = latest(state_dir);
    atomic::ensure_dir_in(state_dir, &dir)?;
    // The agent's home is the operator's business alone: the folder is closed to other users.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).map_err(
        |source| AtomicError::Io {
            action: "restrict",
            path: dir.clone(),
            source,
        },
    )?;
    let mut index = String::new();
    for part in &snap.parts {
        let name = part.file_name();
        atomic::write_atomic_in(
            state_dir,
            &dir.join(&name),
            &part.tar,
            atomic::Overwrite::Replace,
        )?;
        index.push_str(&format!("{name} {}\n", part.path));
    }
    atomic::write_atomic_in(
        state_dir,
        &dir.join("index"),
        index.as_bytes(),
        atomic::Overwrite::Replace,
    )
}

/// The latest snapshot, if a session left one.
pub fn load(state_dir: &Path) -> Result<Option<Snapshot>, AtomicError> {
    let dir = latest(state_dir);
    let Some(index) = atomic::read_in(state_dir, &dir.join("index"))? else {
        return Ok(None);
    };
    let mut snap = Snapshot::default();
    for line in String::from_utf8_lossy(&index).lines() {
        let Some((name, path)) = line.split_once(' ') else {
            continue;
        };
        if name.contains('/') || name.starts_with('.') {
            continue;
        }
        let file = dir.join(name);
        let tar = read_large(state_dir, &file)?;
        snap.parts.push(SnapshotPart {
            path: path.to_owned(),
            tar,
        });
    }
    Ok(Some(snap))
}

/// Archives are larger than the state module's bounded reads allow; still no symlinks.
fn read_large(state_dir: &Path, file: &Path) -> Result<Vec<u8>, AtomicError> {
    atomic::check_no_symlinks(state_dir, file)?;
    std::fs::read(file).map_err(|source| AtomicError::Io {
        action: "read",
        path: file.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_the_latest() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(dir.path()).expect("load"), None);
        let snap = Snapshot {
            parts: vec![
                SnapshotPart {
                    path: "/home/agent".into(),
                    tar: b"home".to_vec(),
                },
                SnapshotPart {
                    path: "/workspace".into(),
                    tar: b"ws".to_vec(),
                },
            ],
        };
        save(dir.path(), &snap).expect("save");
        assert_eq!(load(dir.path()).expect("load"), Some(snap.clone()));
        assert_eq!(snap.parts[0].restore_into(), "/home");
        assert_eq!(snap.parts[1].restore_into(), "/");
    }
}
