//! `claude-bottle doctor` end to end against the real engine: the JSON shape scripts read, and
//! the full run (with the internal-network probe) leaving nothing behind.

use std::process::{Command, Output, Stdio};

/// The base image the tests build FROM (scripts/base-image.sh), unless the environment names one.
fn base_image() -> String {
    std::env::var("CLAUDE_BOTTLE_BASE_IMAGE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "claude-bottle/base:bookworm".into())
}

/// Whether an engine answers; a skip outside CI when none does.
fn engine_available() -> bool {
    let up = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Docker engine reachable, and CI is set: this test must run"
        );
        eprintln!("skipped: no Docker engine reachable");
    }
    up
}

fn doctor(args: &[&str]) -> (Output, serde_json::Value) {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_claude-bottle"))
        .arg("doctor")
        .args(args)
        .arg("--json")
        .env("CLAUDE_BOTTLE_HOME", home.path())
        .env("CLAUDE_BOTTLE_BASE_IMAGE", base_image())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run claude-bottle doctor");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, doc)
}

fn check<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {doc:#}"))
}

/// Objects the probe labels, as the docker client lists them.
fn probe_objects() -> String {
    let list = |what: &[&str]| {
        let out = Command::new("docker")
            .args(what)
            .args([
                "--filter",
                "label=claude-bottle.doctor",
                "--format",
                "{{.Name}}",
            ])
            .output()
            .expect("docker ls");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    list(&["ps", "-a"]) + &list(&["network", "ls"])
}

#[test]
fn quick_json_reports_the_engine_and_every_check_in_the_documented_shape() {
    if !engine_available() {
        return;
    }
    let (out, doc) = doctor(&["--quick"]);
    assert_eq!(doc["version"], 1);
    let checks = doc["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 13, "{doc:#}");
    for c in checks {
        let status = c["status"].as_str().expect("status");
        assert!(["ok", "warn", "fail"].contains(&status), "{c}");
        assert!(c["detail"].as_str().is_some_and(|d| !d.is_empty()), "{c}");
        // A fix on every check that is not ok, none on one that is.
        assert_eq!(c["fix"].is_string(), status != "ok", "{c}");
    }
    let engine = check(&doc, "engine");
    assert_eq!(engine["status"], "ok", "{engine}");
    assert!(
        engine["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Docker Engine") && d.contains("API 1.")),
        "{engine}"
    );
    assert_eq!(
        check(&doc, "internal network")["detail"],
        "not probed: --quick"
    );
    let failed = checks.iter().any(|c| c["status"] == "fail");
    assert_eq!(doc["ok"], !failed);
    assert_eq!(out.status.code(), Some(i32::from(failed)), "{doc:#}");
}

/// Creates a network and a container: run under the engine lock with the other engine tests.
#[test]
fn the_full_doctor_probes_the_internal_network_and_leaves_nothing_behind() {
    if !engine_available() {
        return;
    }
    let before = probe_objects();
    let (_, doc) = doctor(&[]);
    let probe = check(&doc, "internal network");
    let detail = probe["detail"].as_str().expect("detail");
    // Either answer is the engine's; a failed or skipped probe is the doctor's defect.
    assert!(
        (probe["status"] == "warn" && detail.contains("reaches host services"))
            || (probe["status"] == "ok" && detail.contains("does not reach the host")),
        "{probe}"
    );
    eprintln!("engine behaviour, internal network → host: {detail}");
    // The runsc probe runs where the engine has runsc (scripts/side-engine.sh --runsc), and its
    // verdict is runsc's; a probe that could not run is the doctor's defect.
    let runsc = check(&doc, "runsc start");
    let runsc_detail = runsc["detail"].as_str().expect("detail");
    let has_runsc = check(&doc, "runtimes")["detail"]
        .as_str()
        .is_some_and(|d| d.split(", ").any(|r| r == "runsc"));
    if has_runsc {
        assert!(
            !runsc_detail.starts_with("not probed") && !runsc_detail.contains("probe failed"),
            "{runsc}"
        );
        eprintln!("engine behaviour, runsc: {runsc}");
    } else {
        assert_eq!(runsc_detail, "not probed: runsc is not registered");
    }
    assert_eq!(probe_objects(), before, "the probe left objects behind");
}

#[test]
fn a_launch_that_cannot_reach_the_engine_points_at_the_doctor() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_claude-bottle"))
        .args(["start", "--yes"])
        .env("CLAUDE_BOTTLE_HOME", home.path())
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no.sock", home.path().display()),
        )
        .env("ANTHROPIC_API_KEY", "not-a-real-key")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run claude-bottle start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("failed to reach the container engine")
            && err.ends_with("  hint: run `claude-bottle doctor` to check the host\n"),
        "{err}"
    );
}
