//! Nothing leaks: normal exit, SIGINT, SIGTERM, and SIGKILL followed by the next start.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use claude_bottle_e2e::{TestBottle, assert_clean, docker, leftovers};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[tokio::test]
async fn normal_exit_propagates_the_code_and_removes_everything() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new("exit", "", &["/bin/sh", "-c", "echo agent-ran; exit 3"]);
    let out = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("run launcher");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("agent-ran"));
    assert_clean(&d, &bottle.slug()).await;
}

/// A launcher process that is killed and reaped if the test fails before it exits.
struct Launcher(Child);

impl Drop for Launcher {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Start a bottle whose agent sleeps, and wait until its agent container runs.
async fn start_sleeping(d: &Docker, bottle: &TestBottle) -> Launcher {
    let child = Launcher(
        bottle
            .command(&["start", "--yes", &bottle.name])
            .env("RUST_LOG", "claude_bottle=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(bottle.path().join("launcher.err")).expect("log"))
            .spawn()
            .expect("spawn launcher"),
    );
    let agent = format!("{}-agent", bottle.slug());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(c) = d.inspect_container(&agent, None).await
            && c.state.and_then(|s| s.running).unwrap_or(false)
        {
            return child;
        }
        assert!(Instant::now() < deadline, "agent {agent} never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_exit(child: &mut Launcher, bottle: &TestBottle) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.0.try_wait().expect("wait launcher") {
            return status.code();
        }
        if Instant::now() > deadline {
            panic!(
                "launcher did not exit after the signal:\n{}",
                std::fs::read_to_string(bottle.path().join("launcher.err")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn signal_removes_everything(sig: Signal, code: i32) {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new(&format!("sig{}", sig as i32), "", &["/bin/sleep", "300"]);
    let mut child = start_sleeping(&d, &bottle).await;
    kill(Pid::from_raw(child.0.id() as i32), sig).expect("signal launcher");
    assert_eq!(wait_exit(&mut child, &bottle).await, Some(code));
    // What the agent had is kept for `claude-bottle resume`.
    let index = bottle
        .path()
        .join("state")
        .join(bottle.slug())
        .join("snapshots/latest/index");
    let saved = std::fs::read_to_string(&index).expect("a snapshot taken on the signal");
    assert!(saved.contains("/home/agent"), "{saved}");
    assert_clean(&d, &bottle.slug()).await;
}

#[tokio::test]
async fn sigint_removes_everything() {
    signal_removes_everything(Signal::SIGINT, 130).await;
}

#[tokio::test]
async fn sigterm_removes_everything() {
    signal_removes_everything(Signal::SIGTERM, 143).await;
}

#[tokio::test]
async fn sigkill_leftovers_are_removed_by_the_next_start() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new("sigkill", "", &["/bin/sleep", "300"]);
    let slug = bottle.slug();
    let mut child = start_sleeping(&d, &bottle).await;
    child.0.kill().expect("SIGKILL launcher");
    let _ = child.0.wait();
    let (containers, _, _) = leftovers(&d, &slug).await;
    assert!(
        !containers.is_empty(),
        "a killed launcher leaves its agent behind"
    );

    bottle.write_agent(&["/bin/sh", "-c", "exit 0"]);
    let out = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("run launcher");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("found leftovers of bottle"), "{stderr}");
    assert!(
        stderr.contains(&format!("container {slug}-agent")),
        "{stderr}"
    );
    assert_clean(&d, &slug).await;
}

#[tokio::test]
async fn stop_removes_a_running_bottle_and_list_shows_it_before() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new("stop", "", &["/bin/sleep", "300"]);
    let slug = bottle.slug();
    let mut child = start_sleeping(&d, &bottle).await;

    let list = bottle.command(&["list"]).output().expect("list");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains(&slug) && listed.contains(&format!("{slug}-agent")),
        "{listed}"
    );

    let again = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("second start");
    let again_err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{again_err}");
    assert!(again_err.contains("is already running"), "{again_err}");

    let out = bottle
        .command(&["stop", &bottle.name])
        .output()
        .expect("stop");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("removed container {slug}-agent"))
    );
    // The launcher sees its agent go away and exits on its own.
    let _ = wait_exit(&mut child, &bottle).await;
    assert_clean(&d, &slug).await;
}
