//! How much the agent may write to disk: what the engine's storage driver can bound, decided
//! before anything is built or created.
//!
//! Everything the agent writes outside `/tmp` (its home, its working copy, any other folder it
//! owns) lands in its container's own writable layer: the working copy is a layer of the image,
//! not a bind mount, and the home is no volume. One engine setting bounds all of it, the
//! container's `size` storage option, and only some storage drivers take it (read in Docker's
//! sources, daemon/graphdriver): btrfs (a qgroup), zfs (a quota) and devicemapper (the thin
//! device's size) always; overlay2 and vfs only when the folder under them is xfs mounted with
//! `pquota` (the engine refuses the option otherwise: "--storage-opt is supported only for overlay
//! over xfs with 'pquota' mount option"); fuse-overlayfs, aufs and the old overlay never.
//! `/tmp` is a tmpfs of its own, sized, whatever the driver (its pages count against the memory
//! limit too). Pure: the backend reads the driver and acts.

use crate::config::DiskLimit;

/// Whether a storage driver can bound a container's writable layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverSupport {
    /// It takes the `size` option.
    Yes,
    /// It takes it only on a backing file system with project quotas (xfs with `pquota`), which
    /// the engine's info does not show: try it on a container that is never started.
    IfQuota,
    /// It never does, or not on this backing file system; `why` says which.
    No { why: String },
}

/// `driver` (the engine's `Driver`) on `backing_fs` (its `Backing Filesystem` status, when it
/// reports one).
pub fn driver_support(driver: &str, backing_fs: Option<&str>) -> DriverSupport {
    match driver {
        "btrfs" | "zfs" | "devicemapper" | "windowsfilter" => DriverSupport::Yes,
        "overlay2" | "vfs" => match backing_fs {
            Some(fs) if !fs.eq_ignore_ascii_case("xfs") => DriverSupport::No {
                why: format!(
                    "the storage driver {driver} bounds a container's size only on xfs (with \
                     pquota), and this engine's is on {fs}"
                ),
            },
            _ => DriverSupport::IfQuota,
        },
        "fuse-overlayfs" | "aufs" | "overlay" => DriverSupport::No {
            why: format!("the storage driver {driver} cannot bound a container's size"),
        },
        // An unknown driver may take the option: ask the engine.
        _ => DriverSupport::IfQuota,
    }
}

/// What the launch does about the agent's disk use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskPlan {
    /// The container's `size` storage option, in bytes.
    Bound(u64),
    /// Try `size` on a container that is never started; when the engine refuses it, `fallback`.
    Try { bytes: u64, fallback: Box<DiskPlan> },
    /// No bound, with one warning line for the operator (`None`: the operator asked for none).
    Unbounded { warning: Option<String> },
    /// The operator asked for a bound that cannot be given: refuse to start.
    Refuse { why: String },
}

/// The hint of a refusal and the end of a warning: how to get a bound.
pub const HOW_TO_BOUND: &str = "run the engine with the overlay2 storage driver on xfs mounted \
with pquota (or btrfs, zfs), or set disk = \"none\" under [agent] in config.toml";

/// The plan for `limit` on a driver with `support`.
pub fn decide(limit: DiskLimit, support: &DriverSupport) -> DiskPlan {
    let DiskLimit::Bytes { bytes, explicit } = limit else {
        return DiskPlan::Unbounded { warning: None };
    };
    let unbounded = |why: &str| {
        if explicit {
            DiskPlan::Refuse {
                why: why.to_owned(),
            }
        } else {
            DiskPlan::Unbounded {
                warning: Some(format!(
                    "warning: the agent's disk use is not bounded (its home, working copy and \
                     anything else it writes outside /tmp): {why}; to bound it, {HOW_TO_BOUND}"
                )),
            }
        }
    };
    match support {
        DriverSupport::Yes => DiskPlan::Bound(bytes),
        DriverSupport::IfQuota => DiskPlan::Try {
            bytes,
            fallback: Box::new(unbounded(
                "the engine refused a size limit (its storage is not on a file system with \
                 project quotas)",
            )),
        },
        DriverSupport::No { why } => unbounded(why),
    }
}

/// Whether an engine error refuses the `size` storage option itself (the probe's answer), rather
/// than anything else about the container.
pub fn refuses_size(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("storage-opt") || m.contains("storage opt") || m.contains("quota")
}

/// The size of the agent's `/tmp` (a tmpfs): a quarter of its memory limit, whose pages it
/// counts against anyway.
pub fn tmp_bytes(memory_bytes: i64) -> u64 {
    u64::try_from(memory_bytes / 4).unwrap_or(0).max(16 << 20)
}

/// The mount options of the agent's `/tmp`.
pub fn tmp_options(bytes: u64) -> String {
    format!("rw,nosuid,nodev,size={bytes},mode=1777")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn implicit() -> DiskLimit {
        DiskLimit::Bytes {
            bytes: 20 * GIB,
            explicit: false,
        }
    }

    fn explicit() -> DiskLimit {
        DiskLimit::Bytes {
            bytes: 2 * GIB,
            explicit: true,
        }
    }

    #[test]
    fn the_driver_table_follows_dockers_sources() {
        for d in ["btrfs", "zfs", "devicemapper"] {
            assert_eq!(driver_support(d, None), DriverSupport::Yes, "{d}");
        }
        for d in ["fuse-overlayfs", "aufs", "overlay"] {
            assert!(
                matches!(driver_support(d, None), DriverSupport::No { .. }),
                "{d}"
            );
        }
        assert_eq!(
            driver_support("overlay2", Some("xfs")),
            DriverSupport::IfQuota
        );
        assert_eq!(driver_support("vfs", None), DriverSupport::IfQuota);
        assert_eq!(
            driver_support("something-new", None),
            DriverSupport::IfQuota
        );
        let DriverSupport::No { why } = driver_support("overlay2", Some("extfs")) else {
            panic!("overlay2 on ext4 cannot bound");
        };
        assert!(
            why.contains("only on xfs") && why.contains("extfs"),
            "{why}"
        );
    }

    #[test]
    fn an_unbounded_driver_warns_by_default_and_refuses_an_explicit_limit() {
        let no = driver_support("fuse-overlayfs", None);
        let DiskPlan::Unbounded {
            warning: Some(warning),
        } = decide(implicit(), &no)
        else {
            panic!("a warning");
        };
        assert!(!warning.contains('\n'), "one line: {warning}");
        crate::testing::says_all(
            &warning,
            &[
                "not bounded",
                "fuse-overlayfs",
                "overlay2 storage driver on xfs",
                "pquota",
            ],
        );
        let DiskPlan::Refuse { why } = decide(explicit(), &no) else {
            panic!("refused");
        };
        assert!(why.contains("fuse-overlayfs"), "{why}");
        assert_eq!(
            decide(DiskLimit::Unbounded, &no),
            DiskPlan::Unbounded { warning: None }
        );
    }

    #[test]
    fn a_driver_that_can_bound_gets_the_size() {
        assert_eq!(
            decide(explicit(), &DriverSupport::Yes),
            DiskPlan::Bound(2 * GIB)
        );
        let DiskPlan::Try { bytes, fallback } = decide(explicit(), &DriverSupport::IfQuota) else {
            panic!("tried");
        };
        assert_eq!(bytes, 2 * GIB);
        assert!(matches!(*fallback, DiskPlan::Refuse { .. }));
        let DiskPlan::Try { fallback, .. } = decide(implicit(), &DriverSupport::IfQuota) else {
            panic!("tried");
        };
        assert!(matches!(
            *fallback,
            DiskPlan::Unbounded { warning: Some(_) }
        ));
    }

    #[test]
    fn the_engines_refusals_of_the_size_option_are_recognised() {
        assert!(refuses_size(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option (HTTP 500)"
        ));
        assert!(refuses_size("--storage-opt is not supported (HTTP 500)"));
        assert!(refuses_size("Storage opt size not supported"));
        assert!(!refuses_size("No such image: x (HTTP 404)"));
    }

    #[test]
    fn tmp_is_a_quarter_of_memory_with_a_floor() {
        assert_eq!(tmp_bytes(4 << 30), GIB);
        assert_eq!(tmp_bytes(32 << 20), 16 << 20);
        assert_eq!(
            tmp_options(GIB),
            "rw,nosuid,nodev,size=1073741824,mode=1777"
        );
    }
}
