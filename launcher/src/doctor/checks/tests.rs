//! Each verdict from constructed facts: pass, warn, fail, and what the fix says.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::doctor::gather::RuntimeInfo;
use crate::testing::says_all;

fn info(driver: &str, backing: Option<&str>, runtimes: &[(&str, &[&str])]) -> EngineInfo {
    EngineInfo {
        server_version: "27.3.1".into(),
        api_version: "1.47".into(),
        storage_driver: driver.into(),
        backing_fs: backing.map(str::to_owned),
        runtimes: runtimes
            .iter()
            .map(|(n, args)| {
                let r = RuntimeInfo {
                    path: format!("/usr/bin/{n}"),
                    args: args.iter().map(|a| (*a).to_owned()).collect(),
                };
                ((*n).to_owned(), r)
            })
            .collect(),
    }
}

fn default_disk() -> DiskLimit {
    crate::config::ResourceLimits::default().disk
}

fn fix(c: &Check) -> &str {
    c.fix.as_deref().expect("a fix")
}

#[test]
fn engine_reachable_names_versions_and_unreachable_fails_with_docker_host() {
    let c = engine(&Ok(info("overlay2", None, &[])), None);
    assert_eq!(c.status, Status::Ok);
    says_all(
        &c.detail,
        &["27.3.1", "API 1.47", "unix:///var/run/docker.sock"],
    );

    let c = engine(
        &Err("connection refused".into()),
        Some("tcp://10.0.0.5:2375"),
    );
    assert_eq!(c.status, Status::Fail);
    says_all(
        &c.detail,
        &["DOCKER_HOST=tcp://10.0.0.5:2375", "connection refused"],
    );
    says_all(fix(&c), &["start dockerd", "DOCKER_HOST"]);
}

#[test]
fn overlay2_is_fine_and_says_whether_the_disk_can_be_bounded() {
    let c = storage_driver(&info("overlay2", Some("extfs"), &[]), default_disk());
    assert_eq!(c.status, Status::Ok);
    says_all(
        &c.detail,
        &["overlay2 on extfs", "cannot be bounded", "only on xfs"],
    );
    let c = storage_driver(&info("btrfs", None, &[]), default_disk());
    assert_eq!(c.status, Status::Ok);
    assert!(c.detail.contains("can be bounded"), "{}", c.detail);
}

#[test]
fn vfs_and_fuse_overlayfs_warn_of_slow_rebuilds_and_no_bound() {
    for driver in ["vfs", "fuse-overlayfs"] {
        let c = storage_driver(&info(driver, None, &[]), default_disk());
        assert_eq!(c.status, Status::Warn, "{driver}");
        says_all(&c.detail, &[driver, "slower"]);
        says_all(fix(&c), &["overlay2", "daemon.json", "pquota"]);
    }
    let c = storage_driver(&info("fuse-overlayfs", None, &[]), default_disk());
    assert!(c.detail.contains("cannot be bounded"), "{}", c.detail);
}

#[test]
fn an_explicit_disk_bound_the_driver_cannot_give_fails() {
    let limit = DiskLimit::Bytes {
        bytes: 2 << 30,
        explicit: true,
    };
    let c = storage_driver(&info("fuse-overlayfs", None, &[]), limit);
    assert_eq!(c.status, Status::Fail);
    says_all(&c.detail, &["config.toml", "fuse-overlayfs"]);
    assert!(fix(&c).contains("disk = \"none\""), "{}", fix(&c));
}

#[test]
fn runtimes_are_listed_and_a_runsc_bottle_without_runsc_fails() {
    let engine = info(
        "overlay2",
        None,
        &[("runc", &[]), ("io.containerd.runc.v2", &[])],
    );
    let c = runtimes(&engine, &[]);
    assert_eq!(c.status, Status::Ok);
    assert_eq!(c.detail, "io.containerd.runc.v2, runc");

    let c = runtimes(&engine, &["sandboxed".into()]);
    assert_eq!(c.status, Status::Fail);
    says_all(&c.detail, &["sandboxed", "runsc"]);
    says_all(fix(&c), &["runsc install", "runtime: runc"]);

    let with = info("overlay2", None, &[("runc", &[]), ("runsc", &[])]);
    assert_eq!(runtimes(&with, &["sandboxed".into()]).status, Status::Ok);
}

#[test]
fn host_uds_is_read_in_both_flag_spellings() {
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(host_uds(&args(&["--host-uds=all"])).as_deref(), Some("all"));
    assert_eq!(
        host_uds(&args(&["--debug", "--host-uds", "open"])).as_deref(),
        Some("open")
    );
    assert_eq!(host_uds(&args(&["--network=host"])), None);
    // The boolean of older releases (deprecated, still accepted by 20221219's runsc).
    assert_eq!(
        host_uds(&args(&["--fsgofer-host-uds"])).as_deref(),
        Some("all")
    );
    assert_eq!(host_uds(&args(&["--fsgofer-host-uds=false"])), None);
}

#[test]
fn runsc_without_host_uds_warns_and_with_it_is_fine() {
    let c = runsc_host_uds(&info("overlay2", None, &[("runc", &[])]));
    assert_eq!(c.status, Status::Ok);
    assert!(c.detail.contains("not registered"), "{}", c.detail);

    let c = runsc_host_uds(&info("overlay2", None, &[("runsc", &["--host-uds=all"])]));
    assert_eq!(c.status, Status::Ok);
    assert_eq!(c.detail, "runsc has --host-uds=all");

    let c = runsc_host_uds(&info("overlay2", None, &[("runsc", &[])]));
    assert_eq!(c.status, Status::Warn);
    says_all(
        &c.detail,
        &["without --host-uds", "Unix sockets", "bind-mounted"],
    );
    says_all(
        fix(&c),
        &[
            "runsc install -- --host-uds=open",
            "/usr/bin/runsc",
            "restart dockerd",
        ],
    );

    let c = runsc_host_uds(&info(
        "overlay2",
        None,
        &[("runsc", &["--host-uds=create"])],
    ));
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.contains("--host-uds=create"), "{}", c.detail);
}

#[test]
fn the_runsc_probe_names_each_old_runsc_fault_and_its_fix() {
    let c = runsc_start(&RunscOutcome::Skipped("runsc is not registered".into()));
    assert_eq!(c.status, Status::Ok);
    assert_eq!(c.detail, "not probed: runsc is not registered");

    let c = runsc_start(&RunscOutcome::Ran {
        gvisor: true,
        statx: true,
    });
    assert_eq!(c.status, Status::Ok);
    says_all(&c.detail, &["starts under runsc", "gVisor"]);

    // Debian bookworm's runsc 0.0~20221219 with bookworm's coreutils.
    let c = runsc_start(&RunscOutcome::Ran {
        gvisor: true,
        statx: false,
    });
    assert_eq!(c.status, Status::Warn);
    says_all(&c.detail, &["`ls`", "Invalid argument", "release-20230227"]);
    says_all(fix(&c), &["August 2024", "docs/gvisor.md"]);

    let c = runsc_start(&RunscOutcome::Ran {
        gvisor: false,
        statx: true,
    });
    assert_eq!(c.status, Status::Fail);

    // The same runsc on a 6.x kernel without --network=none: the engine's own words.
    let c = runsc_start(&RunscOutcome::Refused(
        "Error response from daemon: OCI runtime start failed: starting container: setting up \
         network: creating interfaces from net namespace \"/proc/17461/ns/net\": cannot run with \
         network enabled in root network namespace: unknown"
            .into(),
    ));
    assert_eq!(c.status, Status::Fail);
    says_all(&c.detail, &["refuses", "root network namespace"]);
    says_all(
        fix(&c),
        &[
            "runsc install -- --host-uds=open --network=none",
            "release-20240807",
        ],
    );

    let c = runsc_start(&RunscOutcome::Refused("exec format error".into()));
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("exec format error"), "{}", c.detail);

    let c = runsc_start(&RunscOutcome::Failed("timeout".into()));
    assert_eq!(c.status, Status::Warn);
}

#[test]
fn a_reachable_host_from_an_internal_network_warns_and_says_the_agent_is_safe() {
    let target = "172.20.0.1:41234".to_owned();
    let c = internal_network(&ProbeOutcome::Reachable {
        target: target.clone(),
    });
    assert_eq!(c.status, Status::Warn);
    says_all(
        &c.detail,
        &[
            "reaches host services",
            "network none",
            "not affected",
            &target,
        ],
    );
    says_all(fix(&c), &["127.0.0.1", "threat-model.md"]);

    assert_eq!(
        internal_network(&ProbeOutcome::Closed { target }).status,
        Status::Ok
    );
    let c = internal_network(&ProbeOutcome::Skipped("--quick".into()));
    assert_eq!(
        (c.status, c.detail.as_str()),
        (Status::Ok, "not probed: --quick")
    );
    let c = internal_network(&ProbeOutcome::Failed("no bash".into()));
    assert_eq!(c.status, Status::Warn);
    assert!(fix(&c).contains("--quick"), "{}", fix(&c));
}

#[test]
fn static_binaries_must_all_be_found_and_static() {
    let ok = [
        (
            "claude-bottle-shim",
            BinaryState::Static(PathBuf::from("/b/claude-bottle-shim")),
        ),
        (
            "claude-bottle-supervise",
            BinaryState::Static(PathBuf::from("/b/claude-bottle-supervise")),
        ),
    ];
    let c = static_binaries(&ok);
    assert_eq!(c.status, Status::Ok);
    says_all(
        &c.detail,
        &["claude-bottle-shim (/b/claude-bottle-shim)", "supervise"],
    );

    let bad = [
        (
            "claude-bottle-shim",
            BinaryState::NotStatic(PathBuf::from("/t/debug/claude-bottle-shim")),
        ),
        (
            "claude-bottle-git-gate",
            BinaryState::NotFound {
                tried: "/x, /y".into(),
            },
        ),
        (
            "claude-bottle-supervise",
            BinaryState::NotFound {
                tried: "/x, /y".into(),
            },
        ),
    ];
    let c = static_binaries(&bad);
    assert_eq!(c.status, Status::Fail);
    says_all(
        &c.detail,
        &[
            "claude-bottle-git-gate, claude-bottle-supervise not found (looked in /x, /y); /t/debug/claude-bottle-shim is not a statically linked",
            "FROM scratch",
        ],
    );
    says_all(
        fix(&c),
        &["scripts/build-static.sh", "CLAUDE_BOTTLE_BIN_DIR"],
    );
}

#[test]
fn a_missing_base_image_fails_with_both_ways_to_get_one() {
    assert_eq!(
        base_image("debian:bookworm-slim", &Ok(true)).status,
        Status::Ok
    );
    let c = base_image("debian:bookworm-slim", &Ok(false));
    assert_eq!(c.status, Status::Fail);
    says_all(
        fix(&c),
        &[
            "docker pull debian:bookworm-slim",
            "scripts/base-image.sh",
            "base_image",
        ],
    );
    let c = base_image("x", &Err("the engine is unreachable".into()));
    assert_eq!(c.status, Status::Warn);
    assert_eq!(c.detail, "not checked: the engine is unreachable");
}

#[test]
fn the_pipelock_version_comes_from_the_label_then_the_tag() {
    let labels = BTreeMap::from([(
        "org.opencontainers.image.version".to_owned(),
        "v2.4.0".to_owned(),
    )]);
    assert_eq!(image_version("p:2.3.0", &labels).as_deref(), Some("2.4.0"));
    assert_eq!(
        image_version("ghcr.io/a/pipelock:2.3.0", &BTreeMap::new()).as_deref(),
        Some("2.3.0")
    );
    assert_eq!(
        image_version("registry:5000/pipelock", &BTreeMap::new()),
        None
    );
    assert_eq!(image_version("pipelock:latest", &BTreeMap::new()), None);
}

#[test]
fn pipelock_of_the_pinned_version_is_fine_and_anything_else_warns() {
    let present = |v: Option<&str>| {
        Ok(ImageState::Present {
            version: v.map(str::to_owned),
        })
    };
    let c = pipelock_image(PIPELOCK_IMAGE, &present(Some(PIPELOCK_VERSION)));
    assert_eq!(c.status, Status::Ok);

    let c = pipelock_image("p:9.0.0", &present(Some("9.0.0")));
    assert_eq!(c.status, Status::Warn);
    says_all(&c.detail, &["9.0.0", PIPELOCK_VERSION, "unknown keys"]);
    assert!(fix(&c).contains(PIPELOCK_IMAGE), "{}", fix(&c));

    let c = pipelock_image("p:latest", &present(None));
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.contains("says no version"), "{}", c.detail);

    let c = pipelock_image(PIPELOCK_IMAGE, &Ok(ImageState::Absent));
    assert_eq!(c.status, Status::Warn);
    says_all(&c.detail, &["not on the engine", "pulls it"]);
    assert!(
        fix(&c).contains(&format!("docker pull {PIPELOCK_IMAGE}")),
        "{}",
        fix(&c)
    );
}

#[test]
fn low_inotify_limits_warn_with_the_sysctl_lines() {
    let c = inotify(Inotify {
        instances: Some(8192),
        watches: Some(524_288),
    });
    assert_eq!(c.status, Status::Ok);
    let c = inotify(Inotify {
        instances: Some(128),
        watches: Some(524_288),
    });
    assert_eq!(c.status, Status::Warn);
    says_all(&c.detail, &["max_user_instances 128", "per uid"]);
    let f = fix(&c);
    says_all(
        f,
        &[
            "sudo sysctl fs.inotify.max_user_instances=512",
            "/etc/sysctl.d/",
        ],
    );
    assert!(!f.contains("max_user_watches"), "{f}");
    let c = inotify(Inotify {
        instances: Some(128),
        watches: Some(8192),
    });
    says_all(
        fix(&c),
        &["max_user_instances=512", "max_user_watches=65536"],
    );
    assert_eq!(inotify(Inotify::default()).status, Status::Ok);
}

#[test]
fn free_disk_warns_below_the_floor_or_one_largest_snapshot() {
    let fact = |free: u64, max: u64| DiskFact {
        path: PathBuf::from("/home/op/.claude-bottle"),
        free: Ok(free),
        snapshot_max_bytes: max,
    };
    let c = free_disk(&fact(50 << 30, 8 << 30));
    assert_eq!(c.status, Status::Ok);
    assert_eq!(
        c.detail,
        "50.0 GiB free at /home/op/.claude-bottle (snapshot_max_bytes 8.0 GiB)"
    );
    let c = free_disk(&fact(1 << 30, 256 << 20));
    assert_eq!(c.status, Status::Warn);
    says_all(fix(&c), &["free space", "snapshot_max_bytes"]);
    assert_eq!(free_disk(&fact(6 << 30, 8 << 30)).status, Status::Warn);
    let c = free_disk(&DiskFact {
        free: Err("EACCES".into()),
        ..fact(0, 0)
    });
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.starts_with("not checked"), "{}", c.detail);
}

#[test]
fn leftovers_of_dead_launchers_warn_with_a_stop_per_bottle() {
    assert_eq!(leftovers(&Ok(vec![])).status, Status::Ok);
    let c = leftovers(&Ok(vec![
        Leftover {
            slug: "app".into(),
            pid: Some(4242),
            objects: vec![
                "container app-agent (exited)".into(),
                "network app-internal".into(),
            ],
        },
        Leftover {
            slug: "old".into(),
            pid: None,
            objects: vec!["volume old-home".into()],
        },
    ]));
    assert_eq!(c.status, Status::Warn);
    says_all(
        &c.detail,
        &[
            "app (launcher pid 4242 gone: container app-agent (exited), network app-internal)",
            "old (no launcher pid",
        ],
    );
    assert_eq!(
        fix(&c),
        "`claude-bottle stop app`, `claude-bottle stop old`"
    );
}

#[test]
fn an_unreachable_engine_fails_once_and_the_checks_that_need_it_say_not_checked() {
    let facts = crate::doctor::Facts {
        docker_host: None,
        engine: Err("connection refused".into()),
        disk_limit: default_disk(),
        runsc_bottles: vec![],
        probe: ProbeOutcome::Skipped("the engine is unreachable".into()),
        runsc_probe: RunscOutcome::Skipped("the engine is unreachable".into()),
        binaries: vec![],
        base_image: "b".into(),
        base_present: Err("the engine is unreachable".into()),
        pipelock_image: "p".into(),
        pipelock: Err("the engine is unreachable".into()),
        inotify: Inotify::default(),
        disk: DiskFact {
            path: PathBuf::from("/"),
            free: Ok(100 << 30),
            snapshot_max_bytes: 1 << 30,
        },
        leftovers: Err("the engine is unreachable".into()),
        reclaimable: Err("the engine is unreachable".into()),
    };
    let report = crate::doctor::assess(&facts);
    assert!(!report.ok);
    let names: Vec<_> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            ENGINE,
            STORAGE_DRIVER,
            RUNTIMES,
            RUNSC_HOST_UDS,
            RUNSC_START,
            INTERNAL_NETWORK,
            STATIC_BINARIES,
            BASE_IMAGE,
            PIPELOCK,
            INOTIFY,
            FREE_DISK,
            LEFTOVERS,
            RECLAIMABLE
        ]
    );
    let failed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name)
        .collect();
    assert_eq!(failed, [ENGINE]);
}

#[test]
fn what_prune_would_free_is_reported_and_warned_of_when_large() {
    use crate::doctor::gather::Reclaimable;
    let nothing = reclaimable(&Ok(Reclaimable {
        bytes: 0,
        images: 0,
        folders: 0,
    }));
    assert_eq!(nothing.status, Status::Ok);
    assert!(nothing.detail.contains("nothing"), "{}", nothing.detail);
    let some = reclaimable(&Ok(Reclaimable {
        bytes: 3 << 20,
        images: 2,
        folders: 1,
    }));
    assert_eq!(some.status, Status::Ok);
    assert!(
        some.detail.contains(&format!(
            "would free {} (2 images, 1 folders)",
            crate::state::snapshot::human(3 << 20)
        )),
        "{}",
        some.detail
    );
    let much = reclaimable(&Ok(Reclaimable {
        bytes: RECLAIMABLE_WARN_BYTES,
        images: 9,
        folders: 0,
    }));
    assert_eq!(much.status, Status::Warn);
    assert!(fix(&much).contains("claude-bottle prune --dry-run"));
    assert_eq!(
        reclaimable(&Err("the engine is unreachable".into())).status,
        Status::Warn
    );
}
