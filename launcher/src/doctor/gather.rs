//! The facts the checks judge: read from the engine, the file system and `/proc`, each lookup's
//! failure kept as a fact of its own so one broken thing never hides the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::backend::Backend as _;
use crate::backend::docker::DockerBackend;
use crate::config::{Config, DiskLimit};
use crate::home::Home;
use crate::manifest::{self, Runtime};

/// A lookup that may not have been possible; `Err` says why (a check then says "not checked").
pub type Lookup<T> = Result<T, String>;

/// What the engine says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineInfo {
    pub server_version: String,
    pub api_version: String,
    pub storage_driver: String,
    /// The file system under the driver's folder, where the engine says.
    pub backing_fs: Option<String>,
    /// Registered runtimes by name.
    pub runtimes: BTreeMap<String, RuntimeInfo>,
}

/// One registered runtime: its binary and the arguments the engine passes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeInfo {
    pub path: String,
    pub args: Vec<String>,
}

/// How the internal-network probe came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Not run (`--quick`, no engine, no base image, an engine on another host).
    Skipped(String),
    /// The probe container's connection reached the doctor's listener at `target`.
    Reachable { target: String },
    /// It did not.
    Closed { target: String },
    /// The probe itself failed.
    Failed(String),
}

/// How the runsc probe came out ([`super::runsc_probe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunscOutcome {
    /// Not run (`--quick`, no engine, no runsc registered, no base image).
    Skipped(String),
    /// The engine refused to start the container under runsc: its error.
    Refused(String),
    /// The container ran: whether on gVisor's kernel, and whether coreutils' `ls` worked.
    Ran { gvisor: bool, statx: bool },
    /// The probe itself failed.
    Failed(String),
}

/// Where a static binary was found, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryState {
    Static(PathBuf),
    /// Found, but not a statically linked executable (dynamically linked, or no ELF at all).
    NotStatic(PathBuf),
    /// Not in any of the folders searched (`tried`, as the search names them).
    NotFound {
        tried: String,
    },
    Unreadable(PathBuf, String),
}

/// An image on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageState {
    Absent,
    /// With the version it says it is, if it says one.
    Present {
        version: Option<String>,
    },
}

/// `/proc/sys/fs/inotify/max_user_{instances,watches}`; `None` where not readable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inotify {
    pub instances: Option<u64>,
    pub watches: Option<u64>,
}

/// Free space where snapshots are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskFact {
    /// The state folder, or its nearest existing ancestor.
    pub path: PathBuf,
    pub free: Lookup<u64>,
    pub snapshot_max_bytes: u64,
}

/// The objects of one bottle whose launcher is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub slug: String,
    /// The launcher pid its objects name, when they name one.
    pub pid: Option<u32>,
    /// `container cb-x-agent (exited)`, …
    pub objects: Vec<String>,
}

/// Everything [`super::assess`] judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub docker_host: Option<String>,
    pub engine: Lookup<EngineInfo>,
    pub disk_limit: DiskLimit,
    /// Bottles of the home whose manifest says `runtime: runsc`.
    pub runsc_bottles: Vec<String>,
    pub probe: ProbeOutcome,
    pub runsc_probe: RunscOutcome,
    pub binaries: Vec<(&'static str, BinaryState)>,
    pub base_image: String,
    pub base_present: Lookup<bool>,
    pub pipelock_image: String,
    pub pipelock: Lookup<ImageState>,
    pub inotify: Inotify,
    pub disk: DiskFact,
    pub leftovers: Lookup<Vec<Leftover>>,
    /// What `prune` would free: (bytes, images, folders).
    pub reclaimable: Lookup<Reclaimable>,
}

/// What `claude-bottle prune` would remove now, summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reclaimable {
    pub bytes: u64,
    pub images: usize,
    pub folders: usize,
}

/// The static binaries the launcher copies into images.
pub const STATIC_BINARIES: [&str; 3] = [
    "claude-bottle-shim",
    "claude-bottle-supervise",
    "claude-bottle-git-gate",
];

/// Read every fact; `probe` runs the internal-network probe (it creates and removes a network and
/// a container).
pub async fn gather(home: &Home, config: Config, probe: bool) -> Facts {
    let docker_host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
    let backend = DockerBackend::connect(config.clone())
        .await
        .map_err(|e| match e {
            crate::backend::BackendError::Connect(why) => why,
            other => other.to_string(),
        });
    let engine = match &backend {
        Ok(b) => engine_info(b).await,
        Err(e) => Err(e.clone()),
    };
    let unreachable = "the engine is unreachable".to_owned();
    let (base_present, pipelock, leftovers, reclaimable) = match (&backend, &engine) {
        (Ok(b), Ok(_)) => (
            b.image_info(&config.base_image)
                .await
                .map(|i| i.is_some())
                .map_err(|e| e.to_string()),
            image_state(b, &config.pipelock_image).await,
            leftovers(b).await,
            crate::prune::survey(home, b, None)
                .await
                .map(|s| Reclaimable {
                    bytes: s.reclaimable(),
                    images: s.images.len(),
                    folders: s.folders.len(),
                })
                .map_err(|e| e.to_string()),
        ),
        _ => (
            Err(unreachable.clone()),
            Err(unreachable.clone()),
            Err(unreachable.clone()),
            Err(unreachable),
        ),
    };
    let run_probes = probe;
    let probe = match (&backend, run_probes, &base_present) {
        (_, false, _) => ProbeOutcome::Skipped("--quick".into()),
        (Err(_), _, _) => ProbeOutcome::Skipped("the engine is unreachable".into()),
        (_, _, Ok(false) | Err(_)) => ProbeOutcome::Skipped(format!(
            "the base image {} is not present to run the probe in",
            config.base_image
        )),
        _ if docker_host
            .as_deref()
            .is_some_and(|h| !h.starts_with("unix://")) =>
        {
            ProbeOutcome::Skipped(
                "DOCKER_HOST is not a local socket, and the probe listens on this host".into(),
            )
        }
        (Ok(b), true, Ok(true)) => super::probe::run(b.client(), &config.base_image).await,
    };
    let has_runsc = engine
        .as_ref()
        .is_ok_and(|i| i.runtimes.contains_key("runsc"));
    let runsc_probe = match (&backend, run_probes, has_runsc, &base_present) {
        (_, false, _, _) => RunscOutcome::Skipped("--quick".into()),
        (Err(_), _, _, _) => RunscOutcome::Skipped("the engine is unreachable".into()),
        (_, _, false, _) => RunscOutcome::Skipped("runsc is not registered".into()),
        (_, _, _, Ok(false) | Err(_)) => RunscOutcome::Skipped(format!(
            "the base image {} is not present to run the probe in",
            config.base_image
        )),
        (Ok(b), true, true, Ok(true)) => {
            super::runsc_probe::run(b.client(), &config.base_image).await
        }
    };
    Facts {
        docker_host,
        engine,
        disk_limit: config.agent_limits.disk,
        runsc_bottles: runsc_bottles(home),
        probe,
        runsc_probe,
        binaries: STATIC_BINARIES
            .iter()
            .map(|n| (*n, binary_state(&config, n)))
            .collect(),
        base_image: config.base_image.clone(),
        base_present,
        pipelock_image: config.pipelock_image.clone(),
        pipelock,
        inotify: read_inotify(Path::new("/proc/sys/fs/inotify")),
        disk: disk_fact(&home.root().join("state"), config.snapshot_max_bytes),
        leftovers,
        reclaimable,
    }
}

async fn engine_info(backend: &DockerBackend) -> Lookup<EngineInfo> {
    let docker = backend.client();
    let version = docker.version().await.map_err(|e| e.to_string())?;
    let info = docker.info().await.map_err(|e| e.to_string())?;
    let backing_fs = crate::backend::docker::backing_fs(&info);
    let runtimes = info
        .runtimes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, r)| {
            let info = RuntimeInfo {
                path: r.path.unwrap_or_default(),
                args: r.runtime_args.unwrap_or_default(),
            };
            (name, info)
        })
        .collect();
    Ok(EngineInfo {
        server_version: version.version.unwrap_or_else(|| "(unknown)".into()),
        api_version: version.api_version.unwrap_or_else(|| "(unknown)".into()),
        storage_driver: info.driver.unwrap_or_default(),
        backing_fs,
        runtimes,
    })
}

async fn image_state(backend: &DockerBackend, image: &str) -> Lookup<ImageState> {
    match backend.client().inspect_image(image).await {
        Ok(img) => {
            let labels: BTreeMap<String, String> = img
                .config
                .and_then(|c| c.labels)
                .unwrap_or_default()
                .into_iter()
                .collect();
            Ok(ImageState::Present {
                version: super::checks::image_version(image, &labels),
            })
        }
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(ImageState::Absent),
        Err(e) => Err(format!("failed to inspect {image}: {e}")),
    }
}

/// Bottles with objects on the engine none of whose launchers is alive on this host (a kept
/// agent is no leftover: `resume` saves it).
async fn leftovers(backend: &DockerBackend) -> Lookup<Vec<Leftover>> {
    let bottles = backend.list().await.map_err(|e| e.to_string())?;
    Ok(bottles
        .into_iter()
        .filter_map(|b| {
            let loose: Vec<_> = b.resources.iter().filter(|r| !r.kept).collect();
            let alive = loose
                .iter()
                .filter_map(|r| r.launcher_pid)
                .any(crate::session::pid_alive);
            (!loose.is_empty() && !alive).then(|| Leftover {
                slug: b.slug.clone(),
                pid: loose.iter().find_map(|r| r.launcher_pid),
                objects: loose.iter().map(|r| crate::session::describe(r)).collect(),
            })
        })
        .collect())
}

/// Bottles of the home (and the embedded ones) that ask for runsc; a manifest that does not load
/// is `start`'s to report, not this check's.
fn runsc_bottles(home: &Home) -> Vec<String> {
    manifest::list_names(home)
        .into_iter()
        .filter(|n| manifest::load(home, n).is_ok_and(|b| b.runtime == Runtime::Runsc))
        .collect()
}

fn binary_state(config: &Config, name: &str) -> BinaryState {
    let path = match config.binary(name) {
        Ok(p) => p,
        Err(crate::config::ConfigError::BinaryNotFound { tried, .. }) => {
            return BinaryState::NotFound { tried };
        }
        Err(e) => {
            return BinaryState::NotFound {
                tried: e.to_string(),
            };
        }
    };
    // The program headers sit in the first kilobytes; read a bounded prefix.
    let head = std::fs::File::open(&path).and_then(|f| {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, 64 * 1024), &mut buf)?;
        Ok(buf)
    });
    match head {
        Ok(data) if crate::image::is_static_elf(&data) => BinaryState::Static(path),
        Ok(_) => BinaryState::NotStatic(path),
        Err(e) => BinaryState::Unreadable(path, e.to_string()),
    }
}

/// The inotify limits under `dir` (`/proc/sys/fs/inotify`).
pub fn read_inotify(dir: &Path) -> Inotify {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    Inotify {
        instances: read("max_user_instances"),
        watches: read("max_user_watches"),
    }
}

/// Free space for an unprivileged writer on the file system of `state` (or of its nearest
/// existing ancestor: before the first launch there is no state folder yet).
pub fn disk_fact(state: &Path, snapshot_max_bytes: u64) -> DiskFact {
    let path = state
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
        .to_owned();
    let free = nix::sys::statvfs::statvfs(&path)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
        .map_err(|e| e.to_string());
    DiskFact {
        path,
        free,
        snapshot_max_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inotify_limits_are_read_from_the_folder_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("max_user_instances"), "128\n").expect("write");
        std::fs::write(dir.path().join("max_user_watches"), "oops\n").expect("write");
        assert_eq!(
            read_inotify(dir.path()),
            Inotify {
                instances: Some(128),
                watches: None
            }
        );
    }

    #[test]
    fn free_disk_is_measured_at_the_nearest_existing_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fact = disk_fact(&dir.path().join("state").join("x"), 1 << 30);
        assert_eq!(fact.path, dir.path());
        assert!(fact.free.as_ref().is_ok_and(|f| *f > 0), "{:?}", fact.free);
    }

    #[test]
    fn a_missing_binary_says_where_it_looked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            bin_dir: Some(dir.path().to_owned()),
            ..Config::default()
        };
        assert_eq!(
            binary_state(&config, "claude-bottle-shim"),
            BinaryState::NotFound {
                tried: dir.path().display().to_string()
            }
        );
        std::fs::write(dir.path().join("claude-bottle-shim"), b"#!/bin/sh\n").expect("write");
        assert_eq!(
            binary_state(&config, "claude-bottle-shim"),
            BinaryState::NotStatic(dir.path().join("claude-bottle-shim"))
        );
    }
}
