//! A capability is judged against the bottle's current Dockerfile (the current-config folder) as
//! the launcher judges it when the approval is applied: its `# escape=` directive and an open
//! continuation at its end count at filing.

use claude_bottle_protocol::Capability;
use claude_bottle_protocol::dockerfile::check_capability;
use serde_json::{Value, json};

use crate::{Supervise, error_code, submitted_id};

fn submit_lines(lines: &[&str]) -> Value {
    json!({"version": 1, "request": {"op": "submit",
        "kind": {"type": "capability", "dockerfile_lines": lines}, "reason": "the build needs it"}})
}

fn lines(lines: &[&str]) -> Capability {
    Capability {
        apt: Vec::new(),
        dockerfile_lines: lines.iter().map(|l| (*l).to_owned()).collect(),
    }
}

/// Stages `text` as the launcher does: `<config>/Dockerfile`, replaced whole.
fn stage(sup: &Supervise, text: &str) {
    let dir = sup.dir.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(".Dockerfile.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("Dockerfile")).unwrap();
}

fn message(answer: &Value) -> &str {
    answer["response"]["message"].as_str().unwrap()
}

fn proposals(sup: &Supervise) -> usize {
    std::fs::read_dir(sup.queue().join("proposals"))
        .unwrap()
        .count()
}

#[test]
fn a_line_ending_in_the_escape_character_of_the_bottles_dockerfile_is_refused_when_filed() {
    let sup = Supervise::start(&[]);
    let text = "# escape=`\nFROM debian\nUSER 1001\n";
    stage(&sup, text);
    let line = "RUN curl x | sh `";
    let a = sup.call(&submit_lines(&[line]));
    assert_eq!(error_code(&a), "bad_request", "{a}");
    // The launcher's reason, word for word: it applies by the same function.
    let reason = check_capability(&lines(&[line]), text)
        .expect_err("refused")
        .to_string();
    assert_eq!(
        message(&a),
        format!("failed to file the proposal: {reason}")
    );
    assert!(reason.contains("`# escape=` directive"), "{reason}");
    assert_eq!(proposals(&sup), 0, "nothing filed");

    // The file is read at each filing: without the directive a backtick is only a backtick.
    stage(&sup, "FROM debian\nUSER 1001\n");
    submitted_id(&sup.call(&submit_lines(&[line])));
    assert_eq!(proposals(&sup), 1);
}

#[test]
fn a_bottle_dockerfile_that_ends_in_a_continuation_takes_no_capability() {
    let sup = Supervise::start(&[]);
    let text = "FROM debian\nRUN apt-get update \\\n# trailing comment\n";
    stage(&sup, text);
    let a = sup.call(&crate::submit_apt(&["ripgrep"]));
    assert_eq!(error_code(&a), "bad_request", "{a}");
    assert!(
        message(&a).contains("the Dockerfile ends in a line continuation"),
        "{a}"
    );
    // An egress proposal has nothing to do with the Dockerfile.
    submitted_id(&sup.call(&crate::submit_egress("example.com")));
}

#[test]
fn without_a_readable_dockerfile_the_default_escape_character_is_judged() {
    for unreadable in [false, true] {
        let sup = Supervise::start(&[]);
        // None staged, or a folder where the file should be: judged as no Dockerfile.
        if unreadable {
            std::fs::create_dir_all(sup.dir.path().join("config").join("Dockerfile")).unwrap();
        }
        submitted_id(&sup.call(&submit_lines(&["RUN echo `date`"])));
        let a = sup.call(&submit_lines(&["RUN dir C:\\"]));
        assert_eq!(error_code(&a), "bad_request", "{a}");
    }
}
