//! The proposal loop across the bottle wall: a scripted agent asks through the shim, the proposal
//! lands in the host queue, the operator answers with the CLI, and the shim returns the answer.
//! From inside, nothing can write a decision.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use claude_bottle_e2e::{TestBottle, assert_clean, docker};

/// The agent: a capability request that waits (the test rejects it), an egress request polled
/// until applied (the test approves it, the launcher applies it), then every way it might try to
/// decide for itself. No coreutils `find`/`ls` for the file system: under gVisor before
/// release-20230227 (Debian bookworm's runsc) their `statx(AT_NO_AUTOMOUNT)` fails with EINVAL, and a
/// `find` that fails finds no decisions folder either.
const AGENT: &str = r#"
shim=claude-bottle-shim
$shim request capability --dockerfile-line "RUN touch /marker" --reason "need a marker" --wait --timeout 120
echo "WAIT-EXIT $?"
id=$($shim request egress packages.example.org --reason "need packages" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "EGRESS-ID $id"
for i in $(seq 1 600); do
  state=$($shim status "$id" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print((d[0] if isinstance(d, list) else d)["state"])')
  [ "$state" = applied ] && break
  sleep 0.1
done
echo "EGRESS-STATE $state"
grep -qx packages.example.org /etc/claude-bottle/current-config/allowlist && echo "ALLOWLIST-UPDATED"
[ -e /run/supervise/queue ] && echo "QUEUE-IN-AGENT present" || echo "QUEUE-IN-AGENT absent"
touch /run/claude-bottle/supervise/decisions.json 2>/dev/null && echo "SOCKDIR writable" || echo "SOCKDIR readonly"
touch /etc/claude-bottle/current-config/x 2>/dev/null && echo "CONFIG writable" || echo "CONFIG readonly"
python3 - <<'PY'
import json, socket
s = socket.socket(socket.AF_UNIX)
s.connect("/run/claude-bottle/supervise/supervise.sock")
req = {"version": 1, "request": {"op": "decide", "id": "x", "decision": "approve"}}
s.sendall((json.dumps(req) + "\n").encode())
print("SOCKET-ANSWER", s.recv(4096).decode().strip())
PY
found=$(python3 - <<'PY'
import os
root = os.stat("/").st_dev
for top, dirs, _ in os.walk("/"):
    dirs[:] = [d for d in dirs if os.lstat(os.path.join(top, d)).st_dev == root]
    if "decisions" in dirs:
        print(os.path.join(top, "decisions"))
        break
PY
)
echo "DECISIONS-DIR ${found:-none}"
for f in /etc/claude-bottle/current-config/*; do echo "${f##*/}"; done
"#;

/// Wait until the queue holds a proposal whose file contains `needle`; return its id.
async fn wait_for_proposal(queue: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(entries) = std::fs::read_dir(queue.join("proposals")) {
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let name = e.file_name().to_string_lossy().to_string();
                if text.contains(needle) && name.ends_with(".json") && !name.starts_with('.') {
                    return name.trim_end_matches(".json").to_string();
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no proposal with {needle:?} in {}",
            queue.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn proposals_reach_the_host_and_answers_reach_the_agent() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new("supervise", "supervise: true\n", &["/bin/sh", "-c", AGENT]);
    let slug = bottle.slug();
    let out_file = bottle.path().join("agent.out");
    let child = bottle
        .command(&["start", "--yes", &bottle.name])
        .stdout(std::fs::File::create(&out_file).expect("out file"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn launcher");
    let queue = bottle.path().join("state").join(&slug).join("queue");

    let cap = wait_for_proposal(&queue, "touch /marker").await;
    let reject = bottle
        .command(&["reject", &cap, "--reason", "not in this bottle"])
        .output()
        .expect("reject");
    assert_eq!(
        reject.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&reject.stderr)
    );

    let egress = wait_for_proposal(&queue, "packages.example.org").await;
    let approve = bottle
        .command(&["approve", &egress])
        .output()
        .expect("approve");
    assert_eq!(
        approve.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );

    let done = child.wait_with_output().expect("launcher exit");
    let out = std::fs::read_to_string(&out_file).expect("agent output");
    let err = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{out}\n{err}");
    for want in [
        "WAIT-EXIT 2",
        "not in this bottle",
        &format!("EGRESS-ID {egress}"),
        // The launcher applied the approval: the host is in the agent's current-config.
        "EGRESS-STATE applied",
        "ALLOWLIST-UPDATED",
        "QUEUE-IN-AGENT absent",
        "SOCKDIR readonly",
        "CONFIG readonly",
        "DECISIONS-DIR none",
        "allowlist",
    ] {
        assert!(
            out.contains(want),
            "missing {want:?} in the agent's output:\n{out}\n{err}"
        );
    }
    let answer = out
        .lines()
        .find(|l| l.starts_with("SOCKET-ANSWER"))
        .unwrap_or_default();
    assert!(
        answer.contains("\"error\""),
        "a made-up decide op must be refused: {answer}"
    );

    // The host queue holds what happened; the audit log has the decisions.
    assert!(
        queue
            .join("decisions")
            .join(format!("{cap}.json"))
            .is_file()
    );
    let audit =
        std::fs::read_to_string(bottle.path().join("state").join(&slug).join("audit.jsonl"))
            .expect("audit log");
    assert!(audit.contains(&cap) && audit.contains(&egress), "{audit}");
    assert_clean(&d, &slug).await;
}
