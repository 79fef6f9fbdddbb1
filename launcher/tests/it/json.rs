//! `--json` of `queue`, `show` and `info` through the binary, read back as a script would: the
//! documented shape, agent text as data, errors on stderr with the usual exit codes.

use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use super::queue::{Home, apt, assert_no_raw_controls, egress, err, now, out};

/// Stdout as the one JSON document it must be.
fn doc(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}", err(o));
    let text = out(o);
    assert!(
        text.ends_with("}\n"),
        "one document and a newline: {text:?}"
    );
    serde_json::from_str(&text).expect("stdout is one JSON document")
}

fn ids(queue: &Value) -> Vec<&str> {
    queue["proposals"]
        .as_array()
        .expect("a list of proposals")
        .iter()
        .map(|p| p["id"].as_str().expect("an id"))
        .collect()
}

#[test]
fn queue_json_lists_pending_proposals_as_data() {
    let home = Home::new();
    assert_eq!(
        doc(&home.run(&["queue", "--json"])),
        json!({"version": 1, "proposals": []})
    );

    home.propose("app", "100-a", apt(&["ripgrep", "jq"]), 300);
    home.propose("app", "200-b", egress("packages.example.org"), 7_300);
    home.propose("web", "300-c", apt(&["jq"]), 10);
    let all = doc(&home.run(&["queue", "--json"]));
    assert_eq!(all["version"], 1);
    assert_eq!(ids(&all), ["200-b", "100-a", "300-c"], "the table's order");
    let p = &all["proposals"][1];
    assert_eq!(p["bottle"], "app");
    assert_eq!(p["slug"], "app");
    assert_eq!(p["state"], "pending");
    assert_eq!(p["kind"], "capability");
    assert_eq!(p["summary"], "apt install ripgrep jq");
    assert_eq!(
        p["request"],
        json!({"type": "capability", "apt": ["ripgrep", "jq"], "dockerfile_lines": []})
    );
    assert_eq!(p["reason"], "the task needs it");
    assert_eq!(p["evidence"], json!(["bash: rg: command not found"]));
    let created = p["created"].as_u64().expect("unix seconds");
    assert!(created.abs_diff(now() - 300) <= 5, "{created}");
    let age = p["age_seconds"].as_u64().expect("seconds");
    assert!((300..=305).contains(&age), "{age}");
    assert_eq!(p["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(
        all["proposals"][0]["request"],
        json!({"type": "egress", "host": "packages.example.org"})
    );

    assert_eq!(ids(&doc(&home.run(&["queue", "web", "--json"]))), ["300-c"]);
    assert_eq!(
        doc(&home.run(&["queue", "nothing-here", "--json"])),
        json!({"version": 1, "proposals": []})
    );
    // Decided proposals leave the queue.
    let o = home.run(&["reject", "200-b", "--reason", "use the mirror"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(ids(&doc(&home.run(&["queue", "app", "--json"]))), ["100-a"]);
}

#[test]
fn a_script_approves_every_pending_capability_of_a_bottle_bound_to_what_it_read() {
    let home = Home::new();
    home.propose("app", "100-a", apt(&["ripgrep"]), 300);
    home.propose("app", "200-b", egress("packages.example.org"), 200);
    home.propose(
        "app",
        "300-c",
        json!({"type": "capability", "dockerfile_lines": ["RUN touch /m"]}),
        100,
    );
    home.propose("web", "400-d", apt(&["jq"]), 50);
    // docs/queue.md: jq -r '.proposals[] | select(.kind == "capability") | "\(.id) \(.sha256)"'
    let queue = doc(&home.run(&["queue", "app", "--json"]));
    let picked: Vec<(String, String)> = queue["proposals"]
        .as_array()
        .expect("proposals")
        .iter()
        .filter(|p| p["kind"] == "capability")
        .map(|p| {
            (
                p["id"].as_str().expect("id").to_owned(),
                p["sha256"].as_str().expect("sha").to_owned(),
            )
        })
        .collect();
    assert_eq!(picked.len(), 2);
    for (id, sha) in &picked {
        let o = home.run(&["approve", id, "--sha256", sha]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    }
    assert_eq!(
        ids(&doc(&home.run(&["queue", "--json"]))),
        ["200-b", "400-d"]
    );
    let shown = doc(&home.run(&["show", "300-c", "--json"]));
    assert_eq!(shown["proposal"]["state"], "approved");
    assert_eq!(shown["decision"]["verdict"], "approve");
    assert_eq!(shown["decision"]["by"], "alice");
    assert_eq!(
        shown["decision"]["proposal_sha256"],
        shown["proposal"]["sha256"]
    );
}

#[test]
fn show_json_gives_the_change_the_decision_and_the_applied_record() {
    let home = Home::new();
    home.propose("app", "100-a", apt(&["ripgrep", "jq"]), 300);
    let pending = doc(&home.run(&["show", "100-a", "--json"]));
    assert_eq!(pending["version"], 1);
    assert_eq!(pending["proposal"]["id"], "100-a");
    assert_eq!(pending["proposal"]["state"], "pending");
    assert_eq!(pending["decision"], Value::Null);
    assert_eq!(pending["applied"], Value::Null);
    let c = &pending["change"];
    assert_eq!(c["type"], "dockerfile");
    assert_eq!(c["edited"], false);
    assert!(
        c["against"]
            .as_str()
            .is_some_and(|a| a.ends_with("/bottles/app.Dockerfile")),
        "{c}"
    );
    let diff = c["diff"].as_str().expect("the diff as text");
    assert!(
        diff.starts_with("--- a/Dockerfile\n+++ b/Dockerfile\n@@ "),
        "{diff}"
    );
    assert!(
        diff.contains("\n+# claude-bottle: approved proposal 100-a\n"),
        "{diff}"
    );
    assert_eq!(c["added"][0], "# claude-bottle: approved proposal 100-a");
    assert_eq!(c["added"][1], "USER root");

    let o = home.run(&[
        "approve",
        "100-a",
        "--edit-apt",
        "ripgrep",
        "--reason",
        "jq is there",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // The launcher's remediation loop records a failed rebuild.
    let detail = "the rebuild failed; the agent keeps running unchanged\n\
                  --- last build output ---\nE: \u{1b}[31mbroken\u{1b}[0m";
    std::fs::write(
        home.queue("app", "applied").join("100-a.json"),
        serde_json::to_vec(&json!({
            "version": 1, "id": "100-a", "outcome": "failed", "detail": detail, "at": now(),
        }))
        .expect("json"),
    )
    .expect("applied");
    let o = home.run(&["show", "100-a", "--json"]);
    assert_no_raw_controls("show --json", &out(&o));
    let failed = doc(&o);
    assert_eq!(failed["proposal"]["state"], "failed");
    assert_eq!(failed["decision"]["verdict"], "approve");
    assert_eq!(failed["decision"]["reason"], "jq is there");
    assert_eq!(failed["decision"]["by"], "alice");
    assert_eq!(
        failed["decision"]["edit"],
        json!({"type": "capability", "apt": ["ripgrep"], "dockerfile_lines": []})
    );
    assert_eq!(failed["applied"]["outcome"], "failed");
    assert_eq!(failed["applied"]["detail"], detail);
    assert!(failed["applied"]["at"].is_u64());
    assert_eq!(failed["change"]["edited"], true);

    home.propose("app", "200-b", egress("packages.example.org"), 60);
    assert_eq!(
        doc(&home.run(&["show", "200-b", "--json"]))["change"],
        json!({"type": "allowlist", "edited": false, "host": "packages.example.org"})
    );
}

#[test]
fn agent_text_is_data_in_json_and_never_raw_on_the_terminal() {
    let home = Home::new();
    let reason = "needs rg\u{1b}[2J\u{1b}[1;1Happroved by security\u{9b}31m\r\u{7}\u{202e}\u{8}";
    let p = json!({
        "version": 1, "id": "500-e", "bottle": "app", "kind": apt(&["ripgrep"]),
        "reason": reason, "evidence": ["line one\nstate     applied"], "created": now() - 5,
    });
    std::fs::write(
        home.queue("app", "proposals").join("500-e.json"),
        serde_json::to_vec(&p).expect("json"),
    )
    .expect("proposal");
    for args in [&["queue", "--json"][..], &["show", "500-e", "--json"]] {
        let o = home.run(args);
        assert_no_raw_controls(&args.join(" "), &out(&o));
        let d = doc(&o);
        let p = if args[0] == "queue" {
            &d["proposals"][0]
        } else {
            &d["proposal"]
        };
        assert_eq!(
            p["reason"], reason,
            "{args:?}: read back as the agent wrote it"
        );
        assert_eq!(p["evidence"], json!(["line one\nstate     applied"]));
    }
}

#[test]
fn errors_in_json_mode_stay_on_stderr_with_their_exit_codes() {
    let home = Home::new();
    let o = home.run(&["show", "999-z", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert_eq!(out(&o), "", "no document for an error");
    assert!(err(&o).starts_with("error: "), "{}", err(&o));
    let o = home.run(&["show", "not an id", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(out(&o), "");
    let o = home.run(&["info", "no-such-bottle", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(out(&o), "");
    assert!(err(&o).contains("no bottle named"), "{}", err(&o));
}

#[test]
fn info_json_gives_names_and_references_never_a_value() {
    let secret = "hunter2-value-of-a-forwarded-variable";
    let o = Command::new(env!("CARGO_BIN_EXE_claude-bottle"))
        .args(["info", "full", "--json"])
        .env("CLAUDE_BOTTLE_HOME", "tests/fixtures/home")
        .env("GITHUB_USER", secret)
        .env("GITHUB_TOKEN", secret)
        .env("ANTHROPIC_API_KEY", secret)
        .env_remove("HOST_ONLY_UNSET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run claude-bottle");
    assert!(!out(&o).contains(secret), "{}", out(&o));
    let d = doc(&o);
    assert_eq!(d["version"], 1);
    assert_eq!(d["bottle"], "full");
    assert_eq!(d["agent"]["name"], "scripted");
    assert_eq!(
        d["env"],
        json!([
            {"name": "GITHUB_USER", "forwarded": true, "set": true, "value": null},
            {"name": "HOST_ONLY_UNSET", "forwarded": true, "set": false, "value": null},
            {"name": "MODE", "forwarded": false, "set": true, "value": "ci"},
        ])
    );
    assert_eq!(d["git"][0]["push"], json!(["claude/*", "wip/*"]));
    assert_eq!(d["git"][0]["token_ref"], "env:GITHUB_TOKEN");
    let hosts: Vec<&str> = d["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| r["host"].as_str().expect("host"))
        .collect();
    assert_eq!(
        hosts,
        [
            "api.anthropic.com",
            "api.github.com",
            "internal.example.com",
            "example.com"
        ]
    );
    assert_eq!(d["routes"][0]["auth_scheme"], "bearer");
    assert_eq!(d["routes"][0]["token_ref"], "env:ANTHROPIC_API_KEY");
    assert_eq!(d["runtime"], "runsc");
    assert_eq!(d["limits"]["pids"], 256);
    assert_eq!(d["limits"]["memory_bytes"], 2_147_483_648_u64);
}
