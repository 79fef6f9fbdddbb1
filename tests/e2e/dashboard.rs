//! `claude-bottle dashboard` in a real terminal (tmux) against a real bottle: a proposal the agent
//! files appears without a keypress and rings the bell, one key approves it, the screen then shows it applied and
//! the agent resumed; the bottle is stopped from the dashboard and `q` leaves the terminal as it
//! was.

use std::process::Stdio;
use std::time::{Duration, Instant};

use claude_bottle_e2e::terminal::Tmux;
use claude_bottle_e2e::{TestBottle, assert_clean, docker, wait_for_root_step};

/// First run: ask for a marker in the image, then idle. Resumed after the rebuild: say so and
/// idle until stopped.
const AGENT: &str = r#"
if [ -e /dash-marker ]; then
  echo "RESUMED args=$*"
  sleep 300
  exit 0
fi
claude-bottle-shim request capability --dockerfile-line "RUN touch /dash-marker" --reason "the dashboard test needs it"
sleep 300
"#;

/// Kills the launcher however the test ends (its teardown then removes the bottle).
struct KillChild(std::process::Child);

impl Drop for KillChild {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap_or(0)),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn a_proposal_appears_live_is_approved_with_one_key_and_the_agent_resumes() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new("dash", "supervise: true\n", &[]);
    bottle.write_agent_resuming(&["/bin/sh", "-c", AGENT, "agent"], &["resumed"]);
    let slug = bottle.slug();
    let session = format!("cb-{slug}");

    // The dashboard first, on an empty queue: what follows arrives without a key.
    let err_log = bottle.path().join("dashboard.err");
    let term = Tmux::start(&session, 100, 30, &bottle.command(&["dashboard"]), &err_log);
    term.wait_screen(30, "the empty dashboard", |s| {
        s.contains("Proposals (0 pending)")
    })
    .await;
    assert!(!term.bell_rang(), "nothing new yet, no bell");

    let out_file = bottle.path().join("agent.out");
    let launcher = bottle
        .command(&["start", "--yes", &bottle.name])
        .stdout(std::fs::File::create(&out_file).expect("out file"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn launcher");
    let mut launcher = KillChild(launcher);

    // The bottle's containers and the proposal come up on the screen by themselves.
    let s = term
        .wait_screen(240, "the pending proposal", |s| {
            s.contains("Proposals (1 pending)") && s.contains("RUN touch /dash-marker")
        })
        .await;
    assert!(s.contains(&slug), "{s}");
    // The terminal's bell rang (tmux flags the window when a BEL reaches it).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !term.bell_rang() {
        assert!(Instant::now() < deadline, "no bell for the new proposal");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    term.wait_screen(60, "the running agent", |s| {
        s.contains("running") && s.contains("agent ●")
    })
    .await;
    let agent_before = d
        .inspect_container(&format!("{slug}-agent"), None)
        .await
        .expect("the agent")
        .id;

    // As an operator would: read it, then one key.
    wait_for_root_step(&d, &bottle).await;
    term.press(&["a"]);
    let s = term
        .wait_screen(10, "the approval", |s| {
            s.contains("approved ") && s.contains("Proposals (0 pending)")
        })
        .await;
    assert!(!s.contains("error"), "{s}");
    let s = term
        .wait_screen(300, "the applied record", |s| s.contains("applied   ok at"))
        .await;
    assert!(s.contains(" applied "), "the list shows it applied:\n{s}");

    // The agent resumed in the rebuilt image, and the screen shows the new agent running.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&out_file)
        .unwrap_or_default()
        .contains("RESUMED args=resumed")
    {
        assert!(
            Instant::now() < deadline,
            "the agent did not resume:\n{}",
            std::fs::read_to_string(&out_file).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let agent_after = d
        .inspect_container(&format!("{slug}-agent"), None)
        .await
        .expect("the resumed agent");
    assert_ne!(agent_after.id, agent_before, "a new agent container");
    assert!(
        agent_after.state.and_then(|s| s.running).unwrap_or(false),
        "the resumed agent runs"
    );
    term.wait_screen(30, "the resumed agent running", |s| {
        s.contains("agent ●") && s.contains(&slug)
    })
    .await;
    let audit =
        std::fs::read_to_string(bottle.path().join("state").join(&slug).join("audit.jsonl"))
            .expect("audit log");
    for event in ["\"proposal\"", "\"decision\"", "\"applied\""] {
        assert!(audit.contains(event), "{event} not audited: {audit}");
    }

    // Stopped from the dashboard, after its question.
    term.press(&["Tab"]);
    term.press(&["s"]);
    term.wait_screen(10, "the stop question", |s| {
        s.contains(&format!("stop bottle {slug}?"))
    })
    .await;
    term.press(&["y"]);
    term.wait_screen(60, "the stopped bottle", |s| {
        s.contains(&format!("stopped bottle {slug}: removed"))
            || s.contains(&format!("bottle {slug}: nothing to remove"))
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while launcher.0.try_wait().expect("launcher").is_none() {
        assert!(
            Instant::now() < deadline,
            "the launcher did not end once its bottle was stopped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // q leaves the dashboard; tmux's session ends with it.
    term.press(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while term.alive() {
        assert!(
            Instant::now() < deadline,
            "q did not quit:\n{}",
            term.screen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = std::fs::read_to_string(&err_log).unwrap_or_default();
    assert!(err.trim().is_empty(), "the dashboard printed: {err}");
    assert_clean(&d, &slug).await;
}
