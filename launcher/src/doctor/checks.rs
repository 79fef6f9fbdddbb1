//! The verdicts: one pure function per check, from gathered facts to a [`Check`] with its fix.

use std::collections::BTreeMap;

use super::gather::{
    BinaryState, DiskFact, EngineInfo, ImageState, Inotify, Leftover, Lookup, ProbeOutcome,
    RunscOutcome,
};
use super::{Check, Status};
use crate::backend::disk::{self, DiskPlan, DriverSupport};
use crate::config::DiskLimit;
use crate::egress::pipelock::{PIPELOCK_IMAGE, PIPELOCK_VERSION};

pub const ENGINE: &str = "engine";
pub const STORAGE_DRIVER: &str = "storage driver";
pub const RUNTIMES: &str = "runtimes";
pub const RUNSC_HOST_UDS: &str = "runsc host-uds";
pub const RUNSC_START: &str = "runsc start";
pub const INTERNAL_NETWORK: &str = "internal network";
pub const STATIC_BINARIES: &str = "static binaries";
pub const BASE_IMAGE: &str = "base image";
pub const PIPELOCK: &str = "pipelock image";
pub const INOTIFY: &str = "inotify";
pub const FREE_DISK: &str = "free disk";
pub const LEFTOVERS: &str = "leftovers";
pub const RECLAIMABLE: &str = "reclaimable";
/// From this much that `prune` would free, the check warns.
pub const RECLAIMABLE_WARN_BYTES: u64 = 5 << 30;

/// Below these the agents (which run as the operator's uid on most machines) and the launcher's
/// own watcher run out of inotify instances or watches: file watchers of editors, build tools and
/// test runners fail, and the launcher falls back to polling.
pub const MIN_INOTIFY_INSTANCES: u64 = 512;
pub const MIN_INOTIFY_WATCHES: u64 = 65536;

/// Free space below which the state folder warns whatever `snapshot_max_bytes` says.
pub const MIN_FREE_BYTES: u64 = 2 << 30;

/// A check that could not run, and why; a warning, since nothing was found wrong.
pub fn not_checked(name: &'static str, why: &str) -> Check {
    Check {
        name,
        status: Status::Warn,
        detail: format!("not checked: {why}"),
        fix: Some("fix that first, then run `claude-bottle doctor` again".into()),
    }
}

/// The engine answers, and which one it is.
pub fn engine(engine: &Lookup<EngineInfo>, docker_host: Option<&str>) -> Check {
    let via = docker_host.map_or_else(
        || "the default socket unix:///var/run/docker.sock".to_owned(),
        |h| format!("DOCKER_HOST={h}"),
    );
    match engine {
        Ok(info) => Check::ok(
            ENGINE,
            format!(
                "Docker Engine {}, API {} (via {via})",
                info.server_version, info.api_version
            ),
        ),
        Err(e) => Check::fail(
            ENGINE,
            format!("failed to reach the engine via {via}: {e}"),
            "start dockerd (or Docker Desktop), make sure your user may use its socket (the docker \
             group), or point DOCKER_HOST at a running engine",
        ),
    }
}

/// The storage driver: how fast a rebuild is, and whether the agent's disk use can be bounded.
pub fn storage_driver(info: &EngineInfo, limit: DiskLimit) -> Check {
    let driver = info.storage_driver.as_str();
    let on = info
        .backing_fs
        .as_deref()
        .map_or(String::new(), |fs| format!(" on {fs}"));
    let support = disk::driver_support(driver, info.backing_fs.as_deref());
    let bound = match &support {
        DriverSupport::Yes => "the agent's disk use can be bounded".to_owned(),
        DriverSupport::IfQuota => {
            "the agent's disk use is bounded only if the engine's folder has project quotas \
             (each launch tries)"
                .to_owned()
        }
        DriverSupport::No { why } => format!("the agent's disk use cannot be bounded: {why}"),
    };
    let detail = format!("{driver}{on}: {bound}");
    if let DiskPlan::Refuse { why } = disk::decide(limit, &support) {
        return Check::fail(
            STORAGE_DRIVER,
            format!("{driver}{on}: config.toml sets a disk bound (disk under [agent]) that {why}"),
            disk::HOW_TO_BOUND,
        );
    }
    let slow = match driver {
        "vfs" => Some(
            "vfs copies every layer in full, so image builds and container starts are much slower, and take far more disk, than on overlay2",
        ),
        "fuse-overlayfs" => Some(
            "fuse-overlayfs runs every file operation through a user-space process, so image builds and rebuilds after an approved change are several times slower than on overlay2",
        ),
        _ => None,
    };
    match slow {
        Some(why) => Check::warn(
            STORAGE_DRIVER,
            format!("{detail}; {why}"),
            "use the overlay2 storage driver (\"storage-driver\": \"overlay2\" in \
             /etc/docker/daemon.json, then restart dockerd); on xfs mounted with pquota it also \
             bounds the agent's disk",
        ),
        None => Check::ok(STORAGE_DRIVER, detail),
    }
}

/// The runtimes the engine has, against the bottles that ask for runsc.
pub fn runtimes(info: &EngineInfo, runsc_bottles: &[String]) -> Check {
    let names: Vec<&str> = info.runtimes.keys().map(String::as_str).collect();
    let listed = if names.is_empty() {
        "none listed".to_owned()
    } else {
        names.join(", ")
    };
    if !info.runtimes.contains_key("runsc") && !runsc_bottles.is_empty() {
        return Check::fail(
            RUNTIMES,
            format!(
                "bottle(s) {} ask for runtime runsc (gVisor), and the engine lists only {listed}",
                runsc_bottles.join(", ")
            ),
            "install gVisor, register it with `sudo runsc install -- --host-uds=open` and restart dockerd (docs/gvisor.md), or set `runtime: runc` in those bottles",
        );
    }
    Check::ok(RUNTIMES, listed)
}

/// runsc's `--host-uds` among its registered arguments (`--host-uds=all`, or `--host-uds all`);
/// the boolean `--fsgofer-host-uds` of releases before 2022, still accepted (deprecated) by later
/// ones, counts as `all`.
pub fn host_uds(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.trim_start_matches('-');
        if let Some(v) = a.strip_prefix("host-uds=") {
            return Some(v.to_owned());
        }
        if a == "host-uds" {
            return it.next().cloned();
        }
        if a == "fsgofer-host-uds" || a == "fsgofer-host-uds=true" {
            return Some("all".to_owned());
        }
    }
    None
}

/// Whether runsc lets a sandbox connect to Unix sockets bind-mounted from the host.
pub fn runsc_host_uds(info: &EngineInfo) -> Check {
    let Some(runsc) = info.runtimes.get("runsc") else {
        return Check::ok(RUNSC_HOST_UDS, "runsc is not registered: nothing to check");
    };
    let why = "a bottle under runsc reaches its relay, supervise and git gate through Unix sockets \
               bind-mounted from the host, and runsc refuses to connect to one unless it was \
               registered with --host-uds=open (or all)";
    // `open` is all the agent needs: it connects to the sockets, it never creates one on a mount.
    let fix = format!(
        "register runsc with the flag: `sudo runsc install -- --host-uds=open` (adds \
         \"runtimeArgs\": [\"--host-uds=open\"] under runtimes.runsc in /etc/docker/daemon.json; \
         path {}), then restart dockerd (docs/gvisor.md)",
        runsc.path
    );
    match host_uds(&runsc.args).as_deref() {
        Some(v @ ("all" | "open")) => {
            Check::ok(RUNSC_HOST_UDS, format!("runsc has --host-uds={v}"))
        }
        Some(v) => Check::warn(
            RUNSC_HOST_UDS,
            format!("runsc has --host-uds={v}: {why}"),
            fix,
        ),
        None => Check::warn(
            RUNSC_HOST_UDS,
            format!(
                "runsc is registered without --host-uds (args: {}): {why}",
                if runsc.args.is_empty() {
                    "none".to_owned()
                } else {
                    runsc.args.join(" ")
                }
            ),
            fix,
        ),
    }
}

/// Whether a container starts under runsc as the agent does, on gVisor's kernel, with a working
/// coreutils `ls` (the runsc probe).
pub fn runsc_start(probe: &RunscOutcome) -> Check {
    let upgrade = "install a gVisor release of August 2024 or later (`runsc --version` prints \
                   release-YYYYMMDD.N) and register it again (docs/gvisor.md)";
    match probe {
        RunscOutcome::Skipped(why) => Check::ok(RUNSC_START, format!("not probed: {why}")),
        RunscOutcome::Ran {
            gvisor: true,
            statx: true,
        } => Check::ok(
            RUNSC_START,
            "a container with network mode none starts under runsc, on gVisor's kernel",
        ),
        RunscOutcome::Ran {
            gvisor: true,
            statx: false,
        } => Check::warn(
            RUNSC_START,
            "under runsc, coreutils' `ls` and `stat` fail with \"Invalid argument\" (this runsc \
             rejects statx's AT_NO_AUTOMOUNT, as gVisor did before release-20230227): a bottle \
             runs, but an agent that lists folders with `ls` does not work",
            upgrade,
        ),
        RunscOutcome::Ran { gvisor: false, .. } => Check::fail(
            RUNSC_START,
            "a container started with runtime runsc did not show gVisor's kernel in its dmesg",
            "check that runtimes.runsc in the engine's daemon.json points at gVisor's runsc \
             (docs/gvisor.md)",
        ),
        RunscOutcome::Refused(e) if e.contains("root network namespace") => Check::fail(
            RUNSC_START,
            format!(
                "runsc refuses to start a container with network mode none: {}",
                e
            ),
            "this runsc misreads this kernel's network namespaces (gVisor before \
             release-20240807): register it with `sudo runsc install -- --host-uds=open \
             --network=none` and restart dockerd (the agent has no network anyway), or \
             upgrade gVisor",
        ),
        RunscOutcome::Refused(e) => Check::fail(
            RUNSC_START,
            format!("runsc refuses to start a container: {}", e),
            "read the engine's log for runsc's error; docs/gvisor.md",
        ),
        RunscOutcome::Failed(e) => Check::warn(
            RUNSC_START,
            format!("the runsc probe failed: {}", e),
            "run `claude-bottle doctor` again; `--quick` skips the probes",
        ),
    }
}

/// Whether a container on an internal network reaches a service on the host.
pub fn internal_network(probe: &ProbeOutcome) -> Check {
    match probe {
        ProbeOutcome::Skipped(why) => Check::ok(INTERNAL_NETWORK, format!("not probed: {why}")),
        ProbeOutcome::Closed { target } => Check::ok(
            INTERNAL_NETWORK,
            format!("a container on an internal network does not reach the host ({target})"),
        ),
        ProbeOutcome::Reachable { target } => Check::warn(
            INTERNAL_NETWORK,
            format!(
                "a container on an internal network reaches host services ({target}); the agent \
                 runs with network none, so it is not affected, but the bottle's sidecars are on \
                 such a network"
            ),
            "listen on 127.0.0.1 rather than 0.0.0.0 with host services no container should \
             reach, or firewall the engine's bridge addresses (docs/threat-model.md, \"Why \
             network mode none\")",
        ),
        ProbeOutcome::Failed(e) => Check::warn(
            INTERNAL_NETWORK,
            format!("failed to probe: {e}"),
            "run `claude-bottle doctor -v` for the engine's messages; `--quick` skips the probe",
        ),
    }
}

/// The static binaries the images are built with.
pub fn static_binaries(found: &[(&'static str, BinaryState)]) -> Check {
    let mut problems: Vec<String> = Vec::new();
    let mut fine = Vec::new();
    // Binaries not found were looked for in the same folders: name them once.
    let mut not_found: Vec<(&str, Vec<&str>)> = Vec::new();
    for (name, state) in found {
        match state {
            BinaryState::Static(p) => fine.push(format!("{name} ({})", p.display())),
            BinaryState::NotStatic(p) => problems.push(format!(
                "{} is not a statically linked executable",
                p.display()
            )),
            BinaryState::Unreadable(p, e) => {
                problems.push(format!("failed to read {}: {e}", p.display()));
            }
            BinaryState::NotFound { tried } => match not_found.iter_mut().find(|(t, _)| t == tried)
            {
                Some((_, names)) => names.push(name),
                None => not_found.push((tried, vec![name])),
            },
        }
    }
    for (tried, names) in not_found.iter().rev() {
        problems.insert(
            0,
            format!("{} not found (looked in {tried})", names.join(", ")),
        );
    }
    if problems.is_empty() {
        return Check::ok(STATIC_BINARIES, fine.join(", "));
    }
    Check::fail(
        STATIC_BINARIES,
        format!(
            "{} (they run in FROM scratch images and agent images of any libc, so they must be \
             static)",
            problems.join("; ")
        ),
        "run scripts/build-static.sh, or point $CLAUDE_BOTTLE_BIN_DIR (or bin_dir in config.toml) \
         at the static binaries",
    )
}

/// The base image every bottle's agent image is built FROM.
pub fn base_image(image: &str, present: &Lookup<bool>) -> Check {
    match present {
        Err(why) => not_checked(BASE_IMAGE, why),
        Ok(true) => Check::ok(BASE_IMAGE, format!("{image} is present")),
        Ok(false) => Check::fail(
            BASE_IMAGE,
            format!("{image} is not on the engine; the first build needs it"),
            format!(
                "`docker pull {image}`; or, offline, build one with scripts/base-image.sh and set \
                 base_image in config.toml (or $CLAUDE_BOTTLE_BASE_IMAGE) to its tag"
            ),
        ),
    }
}

/// The version an image says it is: the OCI version label, else its tag.
pub fn image_version(reference: &str, labels: &BTreeMap<String, String>) -> Option<String> {
    let label = labels
        .get("org.opencontainers.image.version")
        .filter(|v| !v.is_empty());
    let tag = reference
        .rsplit_once(':')
        .map(|(_, t)| t)
        .filter(|t| !t.contains('/') && t.starts_with(|c: char| c.is_ascii_digit() || c == 'v'));
    label
        .map(String::as_str)
        .or(tag)
        .map(|v| v.trim_start_matches('v').to_owned())
}

/// The pipelock image: present, and the release whose config schema the launcher writes.
pub fn pipelock_image(image: &str, state: &Lookup<ImageState>) -> Check {
    let use_pinned = format!(
        "use the pinned {PIPELOCK_IMAGE} (remove pipelock_image from config.toml and \
         $CLAUDE_BOTTLE_PIPELOCK_IMAGE), or an image of pipelock {PIPELOCK_VERSION}"
    );
    match state {
        Err(why) => not_checked(PIPELOCK, why),
        Ok(ImageState::Absent) => Check::warn(
            PIPELOCK,
            format!("{image} is not on the engine; the first launch pulls it"),
            format!(
                "`docker pull {image}` now, where the first launch will have no registry access"
            ),
        ),
        Ok(ImageState::Present { version: Some(v) }) if v == PIPELOCK_VERSION => Check::ok(
            PIPELOCK,
            format!("{image} is present, pipelock {v} (the schema the config is written for)"),
        ),
        Ok(ImageState::Present { version: Some(v) }) => Check::warn(
            PIPELOCK,
            format!(
                "{image} is pipelock {v}, and the config the launcher writes follows pipelock \
                 {PIPELOCK_VERSION}'s schema (pipelock refuses unknown keys)"
            ),
            use_pinned,
        ),
        Ok(ImageState::Present { version: None }) => Check::warn(
            PIPELOCK,
            format!(
                "{image} is present but says no version (no org.opencontainers.image.version \
                 label, no version tag); the config follows pipelock {PIPELOCK_VERSION}'s schema"
            ),
            use_pinned,
        ),
    }
}

/// The per-user inotify limits the agents share with the operator's own programs.
pub fn inotify(limits: Inotify) -> Check {
    let (Some(instances), Some(watches)) = (limits.instances, limits.watches) else {
        return Check::ok(
            INOTIFY,
            "not on Linux, or /proc/sys/fs/inotify is not readable",
        );
    };
    let detail = format!("max_user_instances {instances}, max_user_watches {watches}");
    let mut low = Vec::new();
    if instances < MIN_INOTIFY_INSTANCES {
        low.push(format!(
            "fs.inotify.max_user_instances={MIN_INOTIFY_INSTANCES}"
        ));
    }
    if watches < MIN_INOTIFY_WATCHES {
        low.push(format!("fs.inotify.max_user_watches={MIN_INOTIFY_WATCHES}"));
    }
    if low.is_empty() {
        return Check::ok(INOTIFY, detail);
    }
    Check::warn(
        INOTIFY,
        format!(
            "{detail}: the limits count per uid across the host, and agents running as your uid \
             share them with your editors and each other (watchers fail, the launcher polls)"
        ),
        format!(
            "`sudo sysctl {}`, and the same settings in /etc/sysctl.d/90-claude-bottle.conf to keep them",
            low.join(" ")
        ),
    )
}

fn gib(bytes: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a size shown with one decimal")]
    let g = bytes as f64 / f64::from(1u32 << 30);
    format!("{g:.1} GiB")
}

/// Room for snapshots on the state folder's file system.
pub fn free_disk(fact: &DiskFact) -> Check {
    let path = fact.path.display();
    let free = match &fact.free {
        Ok(free) => *free,
        Err(e) => return not_checked(FREE_DISK, &format!("failed to stat {path}: {e}")),
    };
    let detail = format!(
        "{} free at {path} (snapshot_max_bytes {})",
        gib(free),
        gib(fact.snapshot_max_bytes)
    );
    if free < MIN_FREE_BYTES || free < fact.snapshot_max_bytes {
        return Check::warn(
            FREE_DISK,
            format!(
                "{detail}: a snapshot of the agent's home and workspace, written at the end of each session, may not fit"
            ),
            "free space on that file system, or lower snapshot_max_bytes in config.toml (a larger \
             snapshot is refused and the agent's container kept)",
        );
    }
    Check::ok(FREE_DISK, detail)
}

/// What `claude-bottle prune` would free: older image generations, gone bottles' images, stale
/// run files.
pub fn reclaimable(found: &Lookup<super::gather::Reclaimable>) -> Check {
    let r = match found {
        Err(why) => return not_checked(RECLAIMABLE, why),
        Ok(r) => *r,
    };
    if r.images == 0 && r.folders == 0 {
        return Check::ok(RECLAIMABLE, "nothing for `claude-bottle prune` to remove");
    }
    let detail = format!(
        "`claude-bottle prune` would free {} ({} images, {} folders)",
        crate::state::snapshot::human(r.bytes),
        r.images,
        r.folders
    );
    if r.bytes >= RECLAIMABLE_WARN_BYTES {
        return Check::warn(
            RECLAIMABLE,
            detail,
            "run `claude-bottle prune --dry-run` to see what, then `claude-bottle prune`",
        );
    }
    Check::ok(RECLAIMABLE, detail)
}

/// Objects of bottles whose launcher is gone.
pub fn leftovers(found: &Lookup<Vec<Leftover>>) -> Check {
    let found = match found {
        Err(why) => return not_checked(LEFTOVERS, why),
        Ok(f) if f.is_empty() => {
            return Check::ok(LEFTOVERS, "no objects of dead launchers");
        }
        Ok(f) => f,
    };
    let bottles: Vec<String> = found
        .iter()
        .map(|l| {
            let pid = l.pid.map_or(String::from("no launcher pid"), |p| {
                format!("launcher pid {p} gone")
            });
            format!("{} ({pid}: {})", l.slug, l.objects.join(", "))
        })
        .collect();
    let stops: Vec<String> = found
        .iter()
        .map(|l| format!("`claude-bottle stop {}`", l.slug))
        .collect();
    Check::warn(
        LEFTOVERS,
        format!(
            "objects of dead launchers: {} (the bottle's next start removes them)",
            bottles.join("; ")
        ),
        stops.join(", "),
    )
}

#[cfg(test)]
mod tests;
