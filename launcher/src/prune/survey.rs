//! The facts prune decides on, gathered from the engine and the home folder, and the decision.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::backend::docker::DockerBackend;
use crate::backend::{Backend, BackendError, ResourceKind};
use crate::home::Home;

use super::{Bottle, FolderRemoval, ImageRemoval, RunFolder, decide_folders, decide_images};

/// What prune would remove, and why some bottles keep everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    /// Children before their parents.
    pub images: Vec<ImageRemoval>,
    pub folders: Vec<FolderRemoval>,
    pub notes: Vec<String>,
}

impl Survey {
    /// The bytes the removals free.
    pub fn reclaimable(&self) -> u64 {
        self.images.iter().map(|i| i.freed).sum::<u64>()
            + self.folders.iter().map(|f| f.size).sum::<u64>()
    }
}

/// What prune would remove of the bottle `scope` (a slug), or of every bottle: read from the
/// engine (images, containers, launcher pids) and from `home` (bottle files, state folders, the
/// record of the image each bottle runs). Removes nothing.
pub async fn survey(
    home: &Home,
    backend: &DockerBackend,
    scope: Option<&str>,
) -> Result<Survey, BackendError> {
    let (images, on_engine) = tokio::join!(backend.image_store(), backend.list());
    let (images, on_engine) = (images?, on_engine?);
    let mut busy: BTreeSet<String> = BTreeSet::new();
    let mut running: BTreeMap<String, u32> = BTreeMap::new();
    for b in &on_engine {
        for r in b
            .resources
            .iter()
            .filter(|r| r.kind == ResourceKind::Container)
        {
            busy.insert(b.slug.clone());
            if let Some(pid) = r.launcher_pid.filter(|p| crate::session::pid_alive(*p)) {
                running.insert(b.slug.clone(), pid);
            }
        }
    }
    let state_root = home.root().join("state");
    let with_state = slugs_in(&state_root, |name, is_dir| is_dir.then(|| name.to_owned()));
    let with_file = slugs_in(&home.root().join("bottles"), |name, is_dir| {
        (!is_dir)
            .then(|| name.strip_suffix(".md"))
            .flatten()
            .map(crate::plan::slug)
    });
    let mut slugs: BTreeSet<String> = images.iter().filter_map(|i| i.bottle.clone()).collect();
    slugs.extend(with_state.iter().cloned());
    let bottles: BTreeMap<String, Bottle> = slugs
        .into_iter()
        .map(|slug| {
            let state = if let Some(pid) = running.get(&slug) {
                Bottle::Running { pid: *pid }
            } else if with_state.contains(&slug) {
                match crate::state::in_use::read(&home.state_dir(&slug)) {
                    Some(tags) if !tags.is_empty() => Bottle::Recorded(tags),
                    _ => Bottle::Unrecorded,
                }
            } else if with_file.contains(&slug) {
                Bottle::Unrecorded
            } else {
                Bottle::Gone
            };
            (slug, state)
        })
        .collect();
    let (images, notes) = decide_images(&images, &bottles, scope);
    let folders: Vec<RunFolder> = with_state
        .iter()
        .filter(|slug| scope.is_none_or(|s| s == slug.as_str()))
        .map(|slug| {
            let path = crate::state::Layout::new(&home.state_dir(slug)).run();
            RunFolder {
                slug: slug.clone(),
                entries: entries(&path),
                busy: busy.contains(slug),
                path,
            }
        })
        .collect();
    Ok(Survey {
        images,
        folders: decide_folders(&folders, scope),
        notes,
    })
}

/// The names `pick` makes of the entries of `dir` (none when it cannot be read).
fn slugs_in(dir: &Path, pick: impl Fn(&str, bool) -> Option<String>) -> BTreeSet<String> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    read.filter_map(Result::ok)
        .filter_map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            pick(e.file_name().to_str()?, is_dir)
        })
        .collect()
}

/// The entries of `dir` with their sizes on disk.
fn entries(dir: &Path) -> Vec<(String, u64)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, u64)> = read
        .filter_map(Result::ok)
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                disk_usage(&e.path()),
            )
        })
        .collect();
    out.sort();
    out
}

/// Bytes `path` takes, folders summed, symlinks not followed.
fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    own + std::fs::read_dir(path).map_or(0, |read| {
        read.filter_map(Result::ok)
            .map(|e| disk_usage(&e.path()))
            .sum()
    })
}
