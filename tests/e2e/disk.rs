//! The agent's writable space is bounded where the engine's storage driver allows it, and the
//! launcher says so where it does not: one warning line by default, a refusal before anything is
//! built when the operator asked for a bound. `/tmp` is a sized tmpfs on every engine.

use claude_bottle::backend::disk::{DriverSupport, driver_support};
use claude_bottle_e2e::{TestBottle, assert_clean, docker, line};

/// The engine's storage driver and what it can bound.
async fn support(d: &bollard::Docker) -> (String, DriverSupport) {
    let facts = claude_bottle::backend::docker::engine_facts(d)
        .await
        .expect("engine info");
    let support = driver_support(&facts.storage_driver, facts.backing_fs.as_deref());
    (facts.storage_driver, support)
}

#[tokio::test]
async fn a_disk_bound_the_driver_cannot_give_is_warned_about_or_refused() {
    let Some(d) = docker().await else { return };
    let (driver, support) = support(&d).await;
    let bottle = TestBottle::new("disk", "", &["/bin/sh", "-c", "echo AGENT-RAN"]);
    let warnings = |stderr: &str| {
        stderr
            .lines()
            .filter(|l| l.contains("disk use is not bounded"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };

    // The default bound.
    let out = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("AGENT-RAN"));
    match &support {
        DriverSupport::No { .. } => {
            let lines = warnings(&stderr);
            assert_eq!(lines.len(), 1, "one warning line:\n{stderr}");
            for want in [
                driver.as_str(),
                "overlay2 storage driver on xfs",
                "pquota",
                "disk = \"none\"",
            ] {
                assert!(lines[0].contains(want), "{want}: {}", lines[0]);
            }
        }
        DriverSupport::Yes => assert!(warnings(&stderr).is_empty(), "{stderr}"),
        DriverSupport::IfQuota => eprintln!("{driver}: the engine decides; stderr:\n{stderr}"),
    }
    assert_clean(&d, &bottle.slug()).await;

    // An explicit bound: refused before anything is built where the driver cannot give it.
    let out = bottle
        .command(&["start", "--yes", &bottle.name])
        .env(claude_bottle::config::ENV_AGENT_DISK, "2g")
        .output()
        .expect("start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if let DriverSupport::No { .. } = &support {
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        for want in [
            "failed to bound the disk use",
            "to 2 GiB",
            driver.as_str(),
            "hint: run the engine with the overlay2 storage driver on xfs mounted with pquota",
            "nothing was created",
        ] {
            assert!(stderr.contains(want), "{want}:\n{stderr}");
        }
        assert!(
            !stderr.contains("building"),
            "refused before any build:\n{stderr}"
        );
        assert!(!stdout.contains("AGENT-RAN"), "{stdout}");
    } else {
        assert_eq!(out.status.code(), Some(0), "{stderr}");
    }
    assert_clean(&d, &bottle.slug()).await;

    // `none`: the operator accepts no bound, and is not warned again.
    let out = bottle
        .command(&["start", "--yes", &bottle.name])
        .env(claude_bottle::config::ENV_AGENT_DISK, "none")
        .output()
        .expect("start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(warnings(&stderr).is_empty(), "{stderr}");
    assert_clean(&d, &bottle.slug()).await;
}

/// The agent fills `/tmp`: it stops at a quarter of the memory limit, in memory, not on disk.
const FILL_TMP: &str = r#"
echo "TMP-FS $(awk '$2 == "/tmp" { print $3 }' /proc/mounts)"
echo "TMP-KB $(df -k /tmp | awk 'NR == 2 { print $2 }')"
if head -c 100000000 /dev/zero > /tmp/fill 2>/dev/null; then echo "TMP-FULL no"; else echo "TMP-FULL yes"; fi
rm -f /tmp/fill
touch /tmp/ok && echo "TMP-WRITABLE yes"
"#;

#[tokio::test]
async fn the_agents_tmp_is_a_sized_tmpfs() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new(
        "tmpfs",
        "limits:\n  memory: 256m\n",
        &["/bin/sh", "-c", FILL_TMP],
    );
    let out = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("start");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(line(&stdout, "TMP-FS"), "tmpfs", "{stdout}");
    assert_eq!(
        line(&stdout, "TMP-KB"),
        "65536",
        "a quarter of 256m: {stdout}"
    );
    assert_eq!(
        line(&stdout, "TMP-FULL"),
        "yes",
        "100 MB do not fit: {stdout}"
    );
    assert_eq!(line(&stdout, "TMP-WRITABLE"), "yes", "{stdout}");
    assert_clean(&d, &bottle.slug()).await;
}
