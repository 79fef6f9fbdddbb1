//! `start --cwd DIR`: the agent works on a copy of DIR (minus its .dockerignore), never on DIR.

use claude_bottle_e2e::{TestBottle, assert_clean, docker};

#[tokio::test]
async fn the_agent_works_on_a_copy_of_the_folder() {
    let Some(d) = docker().await else { return };
    let script = "cat /workspace/hello.txt; \
                  [ -e /workspace/secret.env ] && echo SECRET-COPIED || echo SECRET-IGNORED; \
                  echo changed-by-agent > /workspace/hello.txt && echo WRITE-OK";
    let bottle = TestBottle::new("cwd", "", &["/bin/sh", "-c", script]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hello.txt"), "hello from the host\n").expect("write");
    std::fs::write(dir.path().join("secret.env"), "TOKEN=x\n").expect("write");
    std::fs::write(dir.path().join(".dockerignore"), "secret.env\n").expect("write");
    let cwd = dir.path().to_str().expect("utf-8 path");
    let out = bottle
        .command(&["start", "--yes", "--cwd", cwd, &bottle.name])
        .output()
        .expect("start");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in ["hello from the host", "SECRET-IGNORED", "WRITE-OK"] {
        assert!(stdout.contains(want), "missing {want:?}:\n{stdout}");
    }
    let host = std::fs::read_to_string(dir.path().join("hello.txt")).expect("read");
    assert_eq!(
        host, "hello from the host\n",
        "the host folder must be untouched"
    );
    assert_clean(&d, &bottle.slug()).await;
}
