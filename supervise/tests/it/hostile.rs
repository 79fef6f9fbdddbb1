//! Hostile input: oversized and malformed lines, bad ids, planted symlinks, a flood.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use serde_json::{Value, json};

use crate::{
    Supervise, call_on, error_code, read_answer, submit_egress, submitted_id, write_record,
};

fn raw(sup: &Supervise, bytes: &[u8]) -> Value {
    let mut s = UnixStream::connect(&sup.socket).unwrap();
    s.write_all(bytes).unwrap();
    read_answer(&s)
}

#[test]
fn malformed_lines_get_error_answers_and_the_connection_goes_on() {
    let sup = Supervise::start(&[]);
    let mut s = UnixStream::connect(&sup.socket).unwrap();
    let cases: [(&[u8], &str); 7] = [
        (b"{not json\n", "bad_request"),
        (b"\xff\xfe\x00\n", "bad_request"),
        (br#"{"version":1,"request":{"op":"approve","id":"x"}}"#, "bad_request"),
        (br#"{"version":1,"request":{"op":"wait","id":"../../etc","timeout_ms":1}}"#, "bad_request"),
        (br#"{"version":1,"request":{"op":"submit","kind":{"type":"egress","host":"a/b"},"reason":"r"}}"#, "bad_request"),
        (br#"{"version":1,"request":{"op":"submit","kind":{"type":"capability","dockerfile_lines":["RUN a\nUSER root"]},"reason":"r"}}"#, "bad_request"),
        (br#"{"version":7,"request":{"op":"status"}}"#, "unsupported_version"),
    ];
    for (line, code) in cases {
        let mut bytes = line.to_vec();
        if bytes.last() != Some(&b'\n') {
            bytes.push(b'\n');
        }
        s.write_all(&bytes).unwrap();
        let a = read_answer(&s);
        assert_eq!(error_code(&a), code, "{}", String::from_utf8_lossy(line));
    }
    // Still serving on the same connection.
    let a = call_on(&mut s, &json!({"version": 1, "request": {"op": "status"}}));
    assert_eq!(a["response"]["type"], "status");
}

#[test]
fn an_oversized_line_is_refused_and_the_connection_closed() {
    let sup = Supervise::start(&[]);
    let mut s = UnixStream::connect(&sup.socket).unwrap();
    let big = vec![b'a'; 200 * 1024];
    // The server may close before reading it all; a write error is acceptable then.
    let _ = s.write_all(&big);
    let a = read_answer(&s);
    assert_eq!(error_code(&a), "too_large");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
    // A reason just over the limit inside valid JSON is also too large.
    let reason = "x".repeat(70 * 1024);
    let line = json!({"version": 1, "request": {"op": "submit",
        "kind": {"type": "egress", "host": "a.example"}, "reason": reason}});
    let mut bytes = serde_json::to_vec(&line).unwrap();
    bytes.push(b'\n');
    assert_eq!(error_code(&raw(&sup, &bytes)), "too_large");
    assert_eq!(
        std::fs::read_dir(sup.queue().join("proposals"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn planted_symlinks_are_never_followed() {
    let sup = Supervise::start(&["--poll-ms", "50"]);
    let id = submitted_id(&sup.call(&submit_egress("a.example")));
    let outside = sup.dir.path().join("outside.json");
    std::fs::write(
        &outside,
        serde_json::to_vec(&json!({"version": 1, "id": id, "decision": "approve"})).unwrap(),
    )
    .unwrap();
    let decisions = sup.queue().join("decisions");
    std::os::unix::fs::symlink(&outside, decisions.join(format!("{id}.json"))).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = sup.call(&json!({"version": 1, "request": {"op": "status", "id": id}}));
    assert_eq!(s["response"]["proposals"][0]["state"], "pending", "{s}");

    // A symlinked proposal planted before a restart is skipped, not loaded.
    let planted_id = "1-planted";
    let proposals = sup.queue().join("proposals");
    let dir = sup.kill();
    let _ = proposals;
    let proposals = dir.path().join("queue").join("proposals");
    std::os::unix::fs::symlink(&outside, proposals.join(format!("{planted_id}.json"))).unwrap();
    let sup = Supervise::start_in(dir, &[]);
    let s = sup.call(&json!({"version": 1, "request": {"op": "status", "id": planted_id}}));
    assert_eq!(error_code(&s), "not_found");
}

#[test]
fn a_symlinked_queue_folder_stops_supervise_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    std::fs::create_dir_all(&queue).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, queue.join("proposals")).unwrap();
    let mut child = crate::spawn(dir.path(), &dir.path().join("s.sock"), &[]);
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn a_decision_naming_another_id_is_ignored() {
    let sup = Supervise::start(&["--poll-ms", "50"]);
    let id = submitted_id(&sup.call(&submit_egress("a.example")));
    write_record(
        &sup.queue().join("decisions"),
        &id,
        &json!({"version": 1, "id": "someone-else", "decision": "approve"}),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = sup.call(&json!({"version": 1, "request": {"op": "status", "id": id}}));
    assert_eq!(s["response"]["proposals"][0]["state"], "pending");
}

#[test]
fn a_flood_of_10000_proposals_is_refused_with_bounded_files_and_memory() {
    let sup = Supervise::start(&["--max-pending", "32", "--burst", "10"]);
    let before = sup.rss_kib();
    let mut s = UnixStream::connect(&sup.socket).unwrap();
    let (mut ok, mut limited, mut full) = (0, 0, 0);
    for i in 0..10_000 {
        let a = call_on(&mut s, &submit_egress(&format!("h{i}.flood.example")));
        match a["response"]["type"].as_str().unwrap() {
            "submitted" => ok += 1,
            "error" => match error_code(&a) {
                "rate_limited" => limited += 1,
                "queue_full" => full += 1,
                other => panic!("unexpected error {other}"),
            },
            other => panic!("unexpected answer {other}"),
        }
    }
    assert!(ok <= 32, "{ok} accepted");
    assert_eq!(ok + limited + full, 10_000);
    let files = std::fs::read_dir(sup.queue().join("proposals"))
        .unwrap()
        .count();
    assert_eq!(files, ok);
    let after = sup.rss_kib();
    assert!(
        after < before + 8 * 1024,
        "rss grew from {before} KiB to {after} KiB"
    );
}
