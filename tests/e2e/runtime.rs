//! `runtime: runsc`: used where the engine has gVisor, a clear error before anything is created
//! where it does not.

use claude_bottle_e2e::{TestBottle, assert_clean, docker};

#[tokio::test]
async fn runsc_is_used_or_refused_before_anything_is_created() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new(
        "runsc",
        "runtime: runsc\n",
        &["/bin/sh", "-c", "dmesg 2>/dev/null | head -1; exit 0"],
    );
    let info = d.info().await.expect("engine info");
    let has_runsc = info.runtimes.unwrap_or_default().contains_key("runsc");
    let out = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("run launcher");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if has_runsc {
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("gVisor"),
            "expected gVisor's dmesg banner, got:\n{stdout}"
        );
    } else {
        // The operator's machine: exit 2, as an invalid config.toml.
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("runsc") && stderr.contains("hint: install gVisor"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("building"),
            "nothing may be built before the runtime check:\n{stderr}"
        );
    }
    assert_clean(&d, &bottle.slug()).await;
}
