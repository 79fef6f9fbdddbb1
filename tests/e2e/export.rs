//! `claude-bottle export`: the agent's workspace out of a running bottle (through the engine) and
//! out of a stopped one (its last snapshot), as files and as a patch `git apply` takes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use claude_bottle_e2e::{TestBottle, assert_clean, docker};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_workspace_comes_out_of_a_running_and_of_a_stopped_bottle() {
    let Some(d) = docker().await else { return };
    // The agent edits the copy, adds a file and a symlink out of the workspace, then waits so the
    // export can read it while it runs.
    let script = "echo changed > /workspace/hello.txt; mkdir -p /workspace/new; \
                  echo added > /workspace/new/file.txt; ln -s /etc /workspace/etc-link; \
                  echo READY; sleep 30; echo late > /workspace/late.txt";
    let bottle = TestBottle::new("export", "", &["/bin/sh", "-c", script]);
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::write(src.path().join("hello.txt"), "hello\n").expect("write");
    let cwd = src.path().to_str().expect("utf-8 path");
    let mut start = bottle
        .command(&["start", "--yes", "--cwd", cwd, &bottle.name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");

    // While it runs: from the running agent.
    let out_dir = tempfile::tempdir().expect("tempdir");
    let live = out_dir.path().join("live");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let _ = std::fs::remove_dir_all(&live);
        let out = bottle
            .command(&["export", &bottle.name, live.to_str().expect("utf-8")])
            .output()
            .expect("export");
        let ready = live.join("new/file.txt").exists();
        if out.status.success() && ready {
            assert!(
                text(&out.stderr).contains("the running agent"),
                "{}",
                text(&out.stderr)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never exported: {}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(
        std::fs::read_to_string(live.join("hello.txt")).expect("read"),
        "changed\n"
    );
    // The symlink is written as a symlink, never followed.
    let link = std::fs::symlink_metadata(live.join("etc-link")).expect("link");
    assert!(link.file_type().is_symlink());
    assert!(!live.join("late.txt").exists());

    let status = start.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert_clean(&d, &bottle.slug()).await;

    // Stopped: from the last snapshot, now with the late file.
    let stopped = out_dir.path().join("stopped");
    let out = bottle
        .command(&["export", &bottle.name, stopped.to_str().expect("utf-8")])
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the last snapshot"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(stopped.join("late.txt")).expect("read"),
        "late\n"
    );

    // As a patch against the --cwd source, applied there with git.
    let patch = out_dir.path().join("work.diff");
    let out = bottle
        .command(&[
            "export",
            &bottle.name,
            patch.to_str().expect("utf-8"),
            "--patch",
        ])
        .output()
        .expect("export --patch");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let applied = std::process::Command::new("git")
        .arg("apply")
        .arg(&patch)
        .current_dir(src.path())
        .output()
        .expect("git apply");
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    assert_eq!(
        std::fs::read_to_string(src.path().join("hello.txt")).expect("read"),
        "changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(src.path().join("new/file.txt")).expect("read"),
        "added\n"
    );
}
