//! The remediation loop on the engine: an approval rebuilds the bottle from the layer cache and the
//! agent continues where it was; a failed build leaves it running; an approval made while no
//! launcher ran is applied exactly once at the next start; a stopped bottle resumes.

use std::process::Stdio;
use std::time::Instant;

use claude_bottle_e2e::{TestBottle, assert_clean, docker, wait_for_proposal, wait_for_root_step};

/// First run: state in the home, ask for a marker file in the image, then idle until replaced.
/// Resumed (after the rebuild): prove the marker, the home state and the resume argument.
const MARKER_AGENT: &str = r#"
if [ -e /marker ]; then
  echo "RESUMED args=$*"
  echo "HOME-STATE $(cat ~/state.txt)"
  echo "WORKSPACE-STATE $(cat /workspace/work.txt)"
  exit 0
fi
echo before-rebuild > ~/state.txt
echo work-in-progress > /workspace/work.txt
claude-bottle-shim request capability --dockerfile-line "RUN touch /marker" --reason "need the marker"
sleep 300
"#;

fn state(bottle: &TestBottle) -> std::path::PathBuf {
    bottle.path().join("state").join(bottle.slug())
}

#[tokio::test]
async fn an_approved_capability_rebuilds_and_the_session_resumes() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new("remedy", "supervise: true\n", &[]);
    bottle.write_agent_resuming(&["/bin/sh", "-c", MARKER_AGENT, "agent"], &["resumed"]);
    // Steps before the approved one, so the rebuild has something to take from the cache.
    std::fs::write(
        bottle.path().join("bottles/Dockerfile"),
        "FROM claude-bottle/test-agent:bookworm\nUSER root\nRUN echo one > /one\nRUN echo two > /two\nUSER agent\n",
    )
    .expect("write Dockerfile");
    let out_file = bottle.path().join("agent.out");
    let child = bottle
        .command(&["-v", "start", "--yes", &bottle.name])
        .stdout(std::fs::File::create(&out_file).expect("out file"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn launcher");

    let id = wait_for_proposal(&bottle, "touch /marker").await;
    // An operator reads the proposal first; by then the launcher has built the `USER root` step
    // every first approval starts with.
    wait_for_root_step(&d, &bottle).await;
    let approved = Instant::now();
    let out = bottle.command(&["approve", &id]).output().expect("approve");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let done = child.wait_with_output().expect("launcher");
    let elapsed = approved.elapsed();
    let stdout = std::fs::read_to_string(&out_file).expect("agent output");
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{stdout}\n{stderr}");
    for want in [
        "RESUMED args=resumed",
        "HOME-STATE before-rebuild",
        "WORKSPACE-STATE work-in-progress",
    ] {
        assert!(
            stdout.contains(want),
            "missing {want:?}:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!("capability {id} applied")),
        "{stderr}"
    );
    eprintln!("{stderr}");
    eprintln!(
        "approval → resumed agent finished in {:.2}s",
        elapsed.as_secs_f64()
    );

    // The change is the per-bottle Dockerfile's, recorded once, built from the cache.
    let dockerfile =
        std::fs::read_to_string(state(&bottle).join("Dockerfile")).expect("per-bottle Dockerfile");
    assert_eq!(
        dockerfile
            .matches(&format!("approved proposal {id}"))
            .count(),
        1,
        "{dockerfile}"
    );
    let applied = std::fs::read_to_string(state(&bottle).join(format!("queue/applied/{id}.json")))
        .expect("applied");
    assert!(applied.contains("\"ok\""), "{applied}");
    // "(8 steps, 6 cached)": every step but FROM (never counted) and the approved one is cached.
    let count = |after: &str, before: &str| -> usize {
        applied
            .split(before)
            .next()
            .and_then(|head| head.rsplit(after).next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {before:?} count in the applied detail: {applied}"))
    };
    let (steps, cached) = (count("(", " steps"), count("steps, ", " cached"));
    assert_eq!(
        cached,
        steps - 2,
        "the rebuild ran more than the approved step: {applied}"
    );
    let audit = std::fs::read_to_string(state(&bottle).join("audit.jsonl")).expect("audit");
    assert!(audit.contains("\"applied\""), "{audit}");

    // Resume after stop: the snapshot of the last session comes back with the resume argument.
    bottle.write_agent_resuming(
        &[
            "/bin/sh",
            "-c",
            "echo \"AFTER-STOP args=$* $(cat ~/state.txt)\"",
            "agent",
        ],
        &["resumed"],
    );
    let again = bottle
        .command(&["resume", "--yes", &bottle.name])
        .output()
        .expect("resume");
    let again_out = String::from_utf8_lossy(&again.stdout);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{again_out}\n{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        again_out.contains("AFTER-STOP args=resumed before-rebuild"),
        "{again_out}"
    );
    assert_clean(&d, &bottle.slug()).await;
}

#[tokio::test]
async fn a_failed_build_leaves_the_agent_running_and_is_recorded() {
    let Some(d) = docker().await else { return };
    let script = r#"
claude-bottle-shim request capability --dockerfile-line "RUN echo this-step-fails && exit 3" --reason "will fail" --wait --timeout 120
echo "WAIT-EXIT $?"
echo "SAME-AGENT $(cat /proc/1/cmdline | tr '\0' ' ' | head -c 40)"
"#;
    let bottle = TestBottle::new("failbuild", "supervise: true\n", &["/bin/sh", "-c", script]);
    let child = bottle
        .command(&["start", "--yes", &bottle.name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn launcher");
    let id = wait_for_proposal(&bottle, "this-step-fails").await;
    let out = bottle.command(&["approve", &id]).output().expect("approve");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = child.wait_with_output().expect("launcher");
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert_eq!(
        done.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        stdout.contains("WAIT-EXIT 2"),
        "the shim reports the failure:\n{stdout}"
    );
    assert!(
        stdout.contains("SAME-AGENT"),
        "the agent kept running:\n{stdout}"
    );
    let applied = std::fs::read_to_string(state(&bottle).join(format!("queue/applied/{id}.json")))
        .expect("applied");
    assert!(
        applied.contains("\"failed\"") && applied.contains("this-step-fails"),
        "{applied}"
    );
    assert!(
        !state(&bottle).join("Dockerfile").exists(),
        "a failed build must not become the per-bottle Dockerfile"
    );
    assert_clean(&d, &bottle.slug()).await;
}

/// A build step prints what it likes: an approved line (plain ASCII, as the protocol requires)
/// whose output holds terminal controls. The launcher's own output (its notes and its debug log
/// of the build) and `show` of the failed record print them escaped.
#[tokio::test]
async fn a_builds_terminal_controls_reach_the_operator_escaped() {
    let Some(d) = docker().await else { return };
    // Inside double quotes sh keeps the backslashes: printf in the build turns them into ESC,
    // a carriage return mid-line, BEL and a UTF-8 CSI (U+009B).
    let script = r#"
claude-bottle-shim request capability --dockerfile-line "RUN printf 'ctl-out\033[2J\rFAKE\033]0;pwned\007\302\233H\n' && exit 3" --reason "x" --wait --timeout 120
echo "WAIT-EXIT $?"
"#;
    let bottle = TestBottle::new("buildctl", "supervise: true\n", &["/bin/sh", "-c", script]);
    let child = bottle
        .command(&["-vv", "start", "--yes", &bottle.name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn launcher");
    let id = wait_for_proposal(&bottle, "ctl-out").await;
    let out = bottle.command(&["approve", &id]).output().expect("approve");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = child.wait_with_output().expect("launcher");
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("WAIT-EXIT 2"),
        "the build failed as meant"
    );
    let raw = ['\u{1b}', '\u{9b}', '\u{7}', '\r'];
    assert!(
        stderr.contains("ctl-out"),
        "the log shows the build's output:\n{stderr}"
    );
    // The launcher ends its own notes with CR LF (the terminal may be raw): the build's CR is
    // the one before FAKE.
    assert!(
        !stderr.contains(&raw[..3]) && !stderr.contains("\rFAKE"),
        "the launcher printed a raw control: {stderr:?}"
    );
    let applied = std::fs::read_to_string(state(&bottle).join(format!("queue/applied/{id}.json")))
        .expect("applied");
    assert!(applied.contains("ctl-out"), "{applied}");
    let show = bottle.command(&["show", &id]).output().expect("show");
    let shown = String::from_utf8_lossy(&show.stdout);
    assert_eq!(show.status.code(), Some(0), "{shown}");
    assert!(shown.contains("ctl-out\\x1b[2J"), "{shown}");
    assert!(
        !shown.contains(&raw[..]),
        "show printed a raw control: {shown:?}"
    );
    assert_clean(&d, &bottle.slug()).await;
}

#[tokio::test]
async fn an_approval_made_while_no_launcher_ran_is_applied_once_at_the_next_start() {
    let Some(d) = docker().await else { return };
    let script = r#"claude-bottle-shim request capability --dockerfile-line "RUN touch /offline-marker" --reason "x"; sleep 300"#;
    let bottle = TestBottle::new("crash", "supervise: true\n", &["/bin/sh", "-c", script]);
    let mut child = bottle
        .command(&["start", "--yes", &bottle.name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn launcher");
    let id = wait_for_proposal(&bottle, "offline-marker").await;
    // The launcher dies (SIGKILL) with the proposal pending; the operator approves afterwards.
    child.kill().expect("kill launcher");
    let _ = child.wait();
    let out = bottle.command(&["approve", &id]).output().expect("approve");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    bottle.write_agent(&[
        "/bin/sh",
        "-c",
        "[ -e /offline-marker ] && echo MARKER-PRESENT",
    ]);
    for round in 0..2 {
        let run = bottle
            .command(&["start", "--yes", &bottle.name])
            .output()
            .expect("start");
        let (o, e) = (
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
        );
        assert_eq!(run.status.code(), Some(0), "round {round}:\n{o}\n{e}");
        assert!(o.contains("MARKER-PRESENT"), "round {round}:\n{o}\n{e}");
        assert_eq!(
            e.contains(&format!("applied {id} before launch")),
            round == 0,
            "round {round}:\n{e}"
        );
    }
    let dockerfile =
        std::fs::read_to_string(state(&bottle).join("Dockerfile")).expect("per-bottle Dockerfile");
    assert_eq!(
        dockerfile
            .matches(&format!("approved proposal {id}"))
            .count(),
        1,
        "{dockerfile}"
    );
    assert_clean(&d, &bottle.slug()).await;
}

#[tokio::test]
async fn a_proposal_replaced_after_its_approval_is_refused_and_audited() {
    let Some(d) = docker().await else { return };
    let script = r#"claude-bottle-shim request capability --dockerfile-line "RUN touch /asked-marker" --reason "x"; sleep 300"#;
    let bottle = TestBottle::new("swapped", "supervise: true\n", &["/bin/sh", "-c", script]);
    let mut child = bottle
        .command(&["start", "--yes", &bottle.name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn launcher");
    let id = wait_for_proposal(&bottle, "asked-marker").await;
    child.kill().expect("kill launcher");
    let _ = child.wait();
    let out = bottle.command(&["approve", &id]).output().expect("approve");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The proposals folder is writable to supervise: the approved proposal is replaced by
    // another change before the launcher applies it.
    let file = state(&bottle)
        .join("queue/proposals")
        .join(format!("{id}.json"));
    let text = std::fs::read_to_string(&file).expect("proposal");
    assert!(text.contains("/asked-marker"), "{text}");
    std::fs::write(&file, text.replace("/asked-marker", "/swapped-marker")).expect("replace");

    bottle.write_agent(&[
        "/bin/sh",
        "-c",
        "ls /asked-marker /swapped-marker 2>&1; echo AGENT-RAN",
    ]);
    let run = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("start");
    let (o, e) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(o.contains("AGENT-RAN"), "{o}\n{e}");
    assert!(
        !o.contains("/swapped-marker\n"),
        "the swapped change ran:\n{o}"
    );
    assert!(!o.contains("/asked-marker\n"), "{o}");
    assert!(e.contains(&format!("refused to apply {id}")), "{e}");
    let applied = std::fs::read_to_string(
        state(&bottle)
            .join("queue/applied")
            .join(format!("{id}.json")),
    )
    .expect("applied record");
    assert!(
        applied.contains("\"failed\"") && applied.contains("changed after the decision"),
        "{applied}"
    );
    let audit = std::fs::read_to_string(state(&bottle).join("audit.jsonl")).expect("audit");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"applied\"") && l.contains("changed after the decision")),
        "{audit}"
    );
    assert!(
        !state(&bottle).join("Dockerfile").exists()
            || !std::fs::read_to_string(state(&bottle).join("Dockerfile"))
                .expect("read")
                .contains("swapped-marker")
    );
    assert_clean(&d, &bottle.slug()).await;
}

#[tokio::test]
async fn a_hand_written_approval_of_an_internal_host_without_the_flag_is_refused() {
    let Some(d) = docker().await else { return };
    // A single-label name is a sidecar on the bottle's networks: the agent asks to reach pipelock.
    let script = r#"claude-bottle-shim request egress pipelock --reason "x"; sleep 300"#;
    let bottle = TestBottle::new("internal", "supervise: true\n", &["/bin/sh", "-c", script]);
    let mut child = bottle
        .command(&["start", "--yes", &bottle.name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn launcher");
    let id = wait_for_proposal(&bottle, "pipelock").await;
    child.kill().expect("kill launcher");
    let _ = child.wait();
    // `approve` refuses without the flag; a decision written by hand, bound to the proposal but
    // without `allow_internal_host`, is refused by the launcher the same way.
    let out = bottle.command(&["approve", &id]).output().expect("approve");
    assert_eq!(out.status.code(), Some(2));
    let show = bottle.command(&["show", &id]).output().expect("show");
    let digest = String::from_utf8_lossy(&show.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("sha256").map(|d| d.trim().to_owned()))
        .expect("sha256 line");
    let decisions = state(&bottle).join("queue/decisions");
    std::fs::write(
        decisions.join(".tmp-hand"),
        format!(r#"{{"version":1,"id":"{id}","decision":"approve","proposal_sha256":"{digest}"}}"#),
    )
    .expect("write decision");
    std::fs::rename(
        decisions.join(".tmp-hand"),
        decisions.join(format!("{id}.json")),
    )
    .expect("rename decision");

    bottle.write_agent(&["/bin/sh", "-c", "echo AGENT-RAN"]);
    let run = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("start");
    let (o, e) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(o.contains("AGENT-RAN"), "{o}\n{e}");
    let applied = std::fs::read_to_string(
        state(&bottle)
            .join("queue/applied")
            .join(format!("{id}.json")),
    )
    .expect("applied record");
    assert!(
        applied.contains("\"failed\"") && applied.contains("allow_internal_host"),
        "{applied}"
    );
    let approved =
        std::fs::read_to_string(state(&bottle).join("approved-hosts")).unwrap_or_default();
    assert!(!approved.contains("pipelock"), "{approved}");
    assert_clean(&d, &bottle.slug()).await;
}
