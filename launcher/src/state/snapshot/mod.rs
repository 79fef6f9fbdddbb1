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

impl Snapshot {
    /// Every part as one archive to unpack at `/`, so one engine call restores every folder (each
    /// call costs a mount of the container's file system). Each entry's path is prefixed with its
    /// part's [`SnapshotPart::restore_into`], and so is a hard link's target (a path inside the
    /// archive); a symlink's target is kept as it is. PAX records other than the path, the link
    /// path and the size (all three rewritten here) are carried over: xattrs, sub-second times.
    pub fn merged(&self) -> std::io::Result<Vec<u8>> {
        let mut out = tar::Builder::new(Vec::new());
        for part in &self.parts {
            let prefix = PathBuf::from(part.restore_into().trim_matches('/'));
            let mut archive = tar::Archive::new(part.tar.as_slice());
            for entry in archive.entries()? {
                let mut entry = entry?;
                let path = prefix.join(entry.path()?);
                let mut header = entry.header().clone();
                header.set_size(entry.size());
                let pax: Vec<(String, Vec<u8>)> = match entry.pax_extensions()? {
                    Some(records) => records
                        .filter_map(Result::ok)
                        .filter_map(|r| Some((r.key().ok()?.to_owned(), r.value_bytes().to_vec())))
                        .filter(|(k, _)| !matches!(k.as_str(), "path" | "linkpath" | "size"))
                        .collect(),
                    None => Vec::new(),
                };
                if !pax.is_empty() {
                    out.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
                }
                match header.entry_type() {
                    tar::EntryType::Link | tar::EntryType::Symlink => {
                        let target = entry.link_name()?.ok_or_else(|| {
                            std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!("link {} has no target", path.display()),
                            )
                        })?;
                        let target = if header.entry_type() == tar::EntryType::Link {
                            prefix.join(target)
                        } else {
                            target.into_owned()
                        };
                        out.append_link(&mut header, &path, &target)?;
                    }
                    _ => out.append_data(&mut header, &path, &mut entry)?,
                }
            }
        }
        out.into_inner()
    }
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

    /// A GNU header of the agent's (uid and gid 1000) with `kind` and `mode`, size 0.
    fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        h
    }

    /// An archive as the engine exports a folder: entries named from the folder's own name.
    fn engine_tar(root: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = header(tar::EntryType::Directory, 0o750);
        b.append_data(&mut dir, format!("{root}/"), std::io::empty())
            .expect("dir");
        let mut file = header(tar::EntryType::Regular, 0o640);
        file.set_size(5);
        b.append_data(
            &mut file.clone(),
            format!("{root}/notes.txt"),
            &b"hello"[..],
        )
        .expect("file");
        // Longer than the 100 bytes a plain header holds.
        let long = format!("{root}/{}/deep.txt", "d".repeat(120));
        b.append_data(&mut file.clone(), &long, &b"world"[..])
            .expect("long");
        let mut link = header(tar::EntryType::Link, 0o640);
        b.append_link(
            &mut link,
            format!("{root}/hard"),
            format!("{root}/notes.txt"),
        )
        .expect("hard link");
        let mut sym = header(tar::EntryType::Symlink, 0o777);
        b.append_link(&mut sym, format!("{root}/sym"), "/etc/hostname")
            .expect("symlink");
        b.append_pax_extensions([("SCHILY.xattr.user.note", &b"kept"[..])])
            .expect("pax");
        b.append_data(&mut file, format!("{root}/xattr.txt"), &b"attrs"[..])
            .expect("xattr file");
        // As Go's archive/tar (the engine) writes a long name: a PAX `path` record, then a ustar
        // header whose own name is cut short.
        let pax_long = format!("{root}/{}/pax.txt", "p".repeat(150));
        b.append_pax_extensions([
            ("path", pax_long.as_bytes()),
            ("mtime", &b"1700000000.25"[..]),
        ])
        .expect("pax path");
        let mut ustar = tar::Header::new_ustar();
        ustar
            .set_path(format!("{root}/cut-short"))
            .expect("short name");
        ustar.set_mode(0o600);
        ustar.set_uid(1000);
        ustar.set_gid(1000);
        ustar.set_mtime(1_700_000_000);
        ustar.set_size(3);
        ustar.set_cksum();
        b.append(&ustar, &b"pax"[..]).expect("ustar entry");
        b.into_inner().expect("tar")
    }

    #[test]
    fn merged_archive_restores_every_part_at_the_root() {
        let snap = Snapshot {
            parts: vec![
                SnapshotPart {
                    path: "/home/agent".into(),
                    tar: engine_tar("agent"),
                },
                SnapshotPart {
                    path: "/workspace".into(),
                    tar: engine_tar("workspace"),
                },
            ],
        };
        let merged = snap.merged().expect("merge");
        let mut archive = tar::Archive::new(merged.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").display().to_string();
            let link = entry
                .link_name()
                .expect("link")
                .map(|l| l.display().to_string());
            let xattr = entry.pax_extensions().expect("pax").and_then(|mut r| {
                r.find_map(|x| {
                    let x = x.ok()?;
                    (x.key().ok()? == "SCHILY.xattr.user.note").then(|| x.value_bytes().to_vec())
                })
            });
            let (mode, uid) = (
                entry.header().mode().expect("mode"),
                entry.header().uid().expect("uid"),
            );
            let mut body = String::new();
            std::io::Read::read_to_string(&mut entry, &mut body).expect("body");
            seen.push((path, link, body, mode, uid, xattr));
        }
        let paths: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        let long = format!("home/agent/{}/deep.txt", "d".repeat(120));
        assert_eq!(
            paths,
            [
                "home/agent/",
                "home/agent/notes.txt",
                long.as_str(),
                "home/agent/hard",
                "home/agent/sym",
                "home/agent/xattr.txt",
                &format!("home/agent/{}/pax.txt", "p".repeat(150)),
                "workspace/",
                "workspace/notes.txt",
                &format!("workspace/{}/deep.txt", "d".repeat(120)),
                "workspace/hard",
                "workspace/sym",
                "workspace/xattr.txt",
                &format!("workspace/{}/pax.txt", "p".repeat(150)),
            ]
        );
        let by = |p: &str| seen.iter().find(|s| s.0 == p).expect(p);
        assert_eq!(by("home/agent/notes.txt").2, "hello");
        assert_eq!(
            (by("home/agent/notes.txt").3, by("home/agent/notes.txt").4),
            (0o640, 1000)
        );
        assert_eq!(by("home/agent/").3, 0o750);
        assert_eq!(by(&long).2, "world");
        // A hard link points inside the archive, so its target moves with it; a symlink's does not.
        assert_eq!(
            by("home/agent/hard").1.as_deref(),
            Some("home/agent/notes.txt")
        );
        assert_eq!(
            by("workspace/hard").1.as_deref(),
            Some("workspace/notes.txt")
        );
        assert_eq!(by("home/agent/sym").1.as_deref(), Some("/etc/hostname"));
        assert_eq!(by("home/agent/xattr.txt").5.as_deref(), Some(&b"kept"[..]));
        assert_eq!(by("home/agent/xattr.txt").2, "attrs");
        let pax = format!("home/agent/{}/pax.txt", "p".repeat(150));
        assert_eq!((by(&pax).2.as_str(), by(&pax).3), ("pax", 0o600));
    }

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
