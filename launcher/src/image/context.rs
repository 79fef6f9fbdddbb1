//! Build contexts as deterministic tar archives in memory: same inputs, same bytes, same tag.
//!
//! Entries are sorted by path; owner is 0:0 with no names; every mtime is [`FIXED_MTIME`]; modes
//! keep only the permission bits. Directories of the tree are walked without following symlinks
//! (a symlink is archived as a symlink, as `docker build` does); sockets, FIFOs and devices are left
//! out.

use std::collections::BTreeMap;
use std::path::Path;

use super::ImageError;
use super::dockerignore::DockerIgnore;

/// Modification time of every entry: 2000-01-01T00:00:00Z. Not 0, because tools that pack the
/// workspace (zip, Python wheels) refuse timestamps before 1980.
pub const FIXED_MTIME: u64 = 946_684_800;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// Collects the files of one build context, then writes them as a tar archive.
#[derive(Debug, Clone, Default)]
pub struct ContextBuilder {
    entries: BTreeMap<String, Entry>,
}

impl ContextBuilder {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a regular file at `path` (`/`-separated, relative), creating its parent
    /// directories (0755) as needed.
    pub fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> &mut Self {
        self.parents(path);
        self.entries.insert(
            path.to_owned(),
            Entry::File {
                mode: mode & 0o777,
                data: data.into(),
            },
        );
        self
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.parents(path);
        self.entries
            .insert(path.to_owned(), Entry::Dir { mode: mode & 0o777 });
        self
    }

    /// Adds a symbolic link (the target is stored as written, never followed).
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.parents(path);
        self.entries.insert(
            path.to_owned(),
            Entry::Symlink {
                target: target.to_owned(),
            },
        );
        self
    }

    /// Whether an entry exists at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// Paths of all entries in archive order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    fn parents(&mut self, path: &str) {
        for (i, _) in path.match_indices('/') {
            self.entries
                .entry(path[..i].to_owned())
                .or_insert(Entry::Dir { mode: 0o755 });
        }
    }

    /// Adds the contents of `root` under `prefix` (`""` for the context's root), leaving out what
    /// `ignore` excludes (paths are matched relative to `root`, as Docker does).
    pub fn tree(
        &mut self,
        prefix: &str,
        root: &Path,
        ignore: &DockerIgnore,
    ) -> Result<&mut Self, ImageError> {
        check_dir(root)?;
        if !prefix.is_empty() {
            self.dir(prefix, 0o755);
        }
        self.walk(prefix, root, "", ignore)?;
        Ok(self)
    }

    fn walk(
        &mut self,
        prefix: &str,
        dir: &Path,
        rel: &str,
        ignore: &DockerIgnore,
    ) -> Result<(), ImageError> {
        use std::os::unix::fs::PermissionsExt;

        let read_err = |path: &Path| {
            let path = path.to_owned();
            move |source| ImageError::Read { path, source }
        };
        let mut children = std::fs::read_dir(dir)
            .map_err(read_err(dir))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err(dir))?;
        children.sort();
        for path in children {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| ImageError::NonUtf8Path { path: path.clone() })?;
            let rel_path = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::symlink_metadata(&path).map_err(read_err(&path))?;
            let kind = meta.file_type();
            let in_archive = if prefix.is_empty() {
                rel_path.clone()
            } else {
                format!("{prefix}/{rel_path}")
            };
            if ignore.is_excluded(&rel_path) {
                if kind.is_dir() && !ignore.can_skip_dir(&rel_path) {
                    // Something below may be re-included: walk it, but leave the directory out.
                    self.walk(prefix, &path, &rel_path, ignore)?;
                }
                continue;
            }
            let mode = meta.permissions().mode();
            if kind.is_dir() {
                self.dir(&in_archive, mode);
                self.walk(prefix, &path, &rel_path, ignore)?;
            } else if kind.is_file() {
                let data = std::fs::read(&path).map_err(read_err(&path))?;
                self.file(&in_archive, mode, data);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).map_err(read_err(&path))?;
                let target = target
                    .to_str()
                    .ok_or_else(|| ImageError::NonUtf8Path { path: path.clone() })?;
                self.symlink(&in_archive, target);
            }
        }
        Ok(())
    }

    /// Writes the archive.
    pub fn finish(&self) -> Result<Vec<u8>, ImageError> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(FIXED_MTIME);
            header.set_uid(0);
            header.set_gid(0);
            let result = match entry {
                Entry::Dir { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty())
                }
                Entry::File { mode, data } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, path, data.as_slice())
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    tar.append_link(&mut header, path, target)
                }
            };
            result.map_err(|source| ImageError::Archive {
                path: path.clone(),
                source,
            })?;
        }
        tar.into_inner().map_err(|source| ImageError::Archive {
            path: String::new(),
            source,
        })
    }
}
/// Refuses a build context that is not a directory (following symlinks, as `docker build` does).
pub(super) fn check_dir(dir: &Path) -> Result<(), ImageError> {
    let meta = std::fs::metadata(dir).map_err(|source| ImageError::Read {
        path: dir.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ImageError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    Ok(())
}
