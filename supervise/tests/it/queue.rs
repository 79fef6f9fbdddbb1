//! The happy paths and durability: submit, dedupe, status, hand-written decisions, restarts.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use claude_bottle_protocol::{Proposal, from_json};
use serde_json::json;

use crate::{Supervise, call, error_code, submit_apt, submit_egress, submitted_id, write_record};

#[test]
fn a_submission_becomes_a_proposal_file_and_duplicates_are_merged() {
    let sup = Supervise::start(&[]);
    let mode = std::fs::metadata(&sup.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);

    let a = sup.call(&submit_apt(&["ripgrep", "jq"]));
    let id = submitted_id(&a);
    assert_eq!(a["response"]["duplicate"], false);
    let path = sup.queue().join("proposals").join(format!("{id}.json"));
    let p: Proposal = from_json(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(p.bottle.as_str(), "test-bottle");
    assert_eq!(p.evidence, vec!["bash: rg: command not found".to_owned()]);

    let b = sup.call(&submit_apt(&["jq", "ripgrep"]));
    assert_eq!(submitted_id(&b), id);
    assert_eq!(b["response"]["duplicate"], true);
    let files = std::fs::read_dir(sup.queue().join("proposals"))
        .unwrap()
        .count();
    assert_eq!(files, 1);

    let s = sup.call(&json!({"version": 1, "request": {"op": "status", "id": id}}));
    assert_eq!(s["response"]["proposals"][0]["state"], "pending");
    let s = sup.call(&json!({"version": 1, "request": {"op": "status", "id": "nope"}}));
    assert_eq!(error_code(&s), "not_found");
}

#[test]
fn a_hand_written_decision_wakes_a_waiting_client() {
    // A long poll interval: only the file watcher can deliver the decision in time.
    let sup = Supervise::start(&["--poll-ms", "60000"]);
    let id = submitted_id(&sup.call(&submit_egress("packages.example.org")));
    let socket = sup.socket.clone();
    let waiter_id = id.clone();
    let waiter = std::thread::spawn(move || {
        call(
            &socket,
            &json!({"version": 1, "request": {"op": "wait", "id": waiter_id,
                "timeout_ms": 20000, "until": "decided"}}),
        )
    });
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    write_record(
        &sup.queue().join("decisions"),
        &id,
        &json!({"version": 1, "id": id, "decision": "approve", "reason": "fine", "by": "op"}),
    );
    let answer = waiter.join().unwrap();
    assert_eq!(answer["response"]["type"], "waited", "{answer}");
    assert_eq!(answer["response"]["timed_out"], false);
    assert_eq!(answer["response"]["status"]["state"], "approved");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // Waiting for the final state continues past the approval until the applied record.
    write_record(
        &sup.queue().join("applied"),
        &id,
        &json!({"version": 1, "id": id, "outcome": "ok", "detail": "allowlist reloaded", "at": 1}),
    );
    let done =
        sup.call(&json!({"version": 1, "request": {"op": "wait", "id": id, "timeout_ms": 5000}}));
    assert_eq!(done["response"]["status"]["state"], "applied", "{done}");
}

#[test]
fn a_wait_times_out_with_the_current_state() {
    let sup = Supervise::start(&[]);
    let id = submitted_id(&sup.call(&submit_egress("example.com")));
    let t = Instant::now();
    let a =
        sup.call(&json!({"version": 1, "request": {"op": "wait", "id": id, "timeout_ms": 300}}));
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(a["response"]["timed_out"], true);
    assert_eq!(a["response"]["status"]["state"], "pending");
}

#[test]
fn a_restart_recovers_pending_proposals_and_their_decisions() {
    let sup = Supervise::start(&[]);
    let a = submitted_id(&sup.call(&submit_egress("a.example")));
    let b = submitted_id(&sup.call(&submit_egress("b.example")));
    let dir = sup.kill();
    write_record(
        &dir.path().join("queue").join("decisions"),
        &b,
        &json!({"version": 1, "id": b, "decision": "reject", "reason": "not needed"}),
    );
    let sup = Supervise::start_in(dir, &[]);
    let s = sup.call(&json!({"version": 1, "request": {"op": "status"}}));
    let list = s["response"]["proposals"].as_array().unwrap();
    let state = |id: &str| {
        list.iter()
            .find(|p| p["proposal"]["id"] == id)
            .map(|p| p["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state(&a).as_deref(), Some("pending"));
    assert_eq!(state(&b).as_deref(), Some("rejected"));
    // The recovered pending proposal still deduplicates.
    assert_eq!(submitted_id(&sup.call(&submit_egress("A.example"))), a);
}

#[test]
fn kill_9_mid_write_leaves_only_whole_files_and_restart_recovers() {
    let sup = Supervise::start(&[
        "--max-pending",
        "100000",
        "--rate-per-minute",
        "10000000",
        "--burst",
        "100000",
    ]);
    let socket = sup.socket.clone();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while n < 5000 {
                    let Ok(mut s) = std::os::unix::net::UnixStream::connect(&socket) else {
                        return;
                    };
                    let line = submit_egress(&format!("h{t}-{n}.example"));
                    let mut bytes = serde_json::to_vec(&line).unwrap();
                    bytes.push(b'\n');
                    if std::io::Write::write_all(&mut s, &bytes).is_err() {
                        return;
                    }
                    let mut out = String::new();
                    if std::io::BufRead::read_line(&mut std::io::BufReader::new(&s), &mut out)
                        .unwrap_or(0)
                        == 0
                    {
                        return;
                    }
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let dir = sup.kill(); // SIGKILL
    for w in writers {
        w.join().unwrap();
    }
    let proposals = dir.path().join("queue").join("proposals");
    let mut whole = 0;
    for entry in std::fs::read_dir(&proposals).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            let bytes = std::fs::read(proposals.join(&name)).unwrap();
            from_json::<Proposal>(&bytes).unwrap_or_else(|e| panic!("half file {name}: {e}"));
            whole += 1;
        } else {
            assert!(name.starts_with(".tmp-"), "unexpected {name}");
        }
    }
    assert!(whole > 0, "the writers should have filed some proposals");

    let sup = Supervise::start_in(dir, &["--max-pending", "100000"]);
    let leftovers = std::fs::read_dir(&proposals)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert_eq!(leftovers, 0, "temp files are cleaned on start");
    let s = sup.call(&json!({"version": 1, "request": {"op": "status"}}));
    assert_eq!(
        s["response"]["proposals"].as_array().unwrap().len(),
        whole.min(100),
        "status lists the newest 100"
    );
}

#[test]
fn current_config_is_served_without_following_symlinks() {
    let sup = Supervise::start(&[]);
    let cfg = sup.dir.path().join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("allowlist"), "api.anthropic.com\n").unwrap();
    std::fs::write(sup.dir.path().join("secret"), "token").unwrap();
    std::os::unix::fs::symlink(sup.dir.path().join("secret"), cfg.join("routes.json")).unwrap();
    let a = sup.call(&json!({"version": 1, "request": {"op": "current_config"}}));
    let files = a["response"]["files"].as_array().unwrap();
    assert_eq!(files[0]["name"], "allowlist");
    assert_eq!(files[0]["content"], "api.anthropic.com\n");
    assert!(!a.to_string().contains("token"), "{a}");
}

#[test]
fn without_inotify_the_slow_poll_still_delivers_decisions() {
    let sup = Supervise::start(&["--no-watch", "--poll-ms", "100"]);
    let id = submitted_id(&sup.call(&submit_egress("poll.example")));
    let socket = sup.socket.clone();
    let waiter_id = id.clone();
    let waiter = std::thread::spawn(move || {
        call(
            &socket,
            &json!({"version": 1, "request": {"op": "wait", "id": waiter_id,
                "timeout_ms": 10000, "until": "decided"}}),
        )
    });
    std::thread::sleep(Duration::from_millis(150));
    let t = Instant::now();
    write_record(
        &sup.queue().join("decisions"),
        &id,
        &json!({"version": 1, "id": id, "decision": "reject", "reason": "no"}),
    );
    let answer = waiter.join().unwrap();
    assert_eq!(
        answer["response"]["status"]["state"], "rejected",
        "{answer}"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn a_decision_written_in_place_in_two_steps_is_read_once_complete() {
    let sup = Supervise::start(&["--poll-ms", "100"]);
    let id = submitted_id(&sup.call(&submit_egress("editor.example")));
    let path = sup.queue().join("decisions").join(format!("{id}.json"));
    // An editor saving in place: first a truncated file, then the whole one.
    std::fs::write(&path, br#"{"version": 1, "id": ""#).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status = json!({"version": 1, "request": {"op": "status", "id": id}});
    assert_eq!(
        sup.call(&status)["response"]["proposals"][0]["state"],
        "pending"
    );
    std::fs::write(
        &path,
        serde_json::to_vec(&json!({"version": 1, "id": id, "decision": "approve"})).unwrap(),
    )
    .unwrap();
    crate::wait_until("the completed decision", || {
        sup.call(&status)["response"]["proposals"][0]["state"] == "approved"
    });
}
