//! Each rule lives once: what supervise refuses when the agent files a capability is what the
//! launcher refuses when an approval applies it, and what one accepts the other applies, also
//! where the rule depends on the bottle's current Dockerfile (supervise reads it from its
//! current-config, the launcher applies to it).

use std::time::Duration;

use claude_bottle::state::dockerfile;
use claude_bottle_protocol::queue::current_config;
use claude_bottle_protocol::wire::{Request, RequestMsg, Response};
use claude_bottle_protocol::{
    BottleName, Capability, ProposalId, ProposalKind, from_json, to_json,
};
use claude_bottle_supervise::{server, store};

/// `(apt packages, Dockerfile lines)`: accepted and refused ones, of every rule both sides have.
fn table() -> Vec<(Vec<String>, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let long = format!(
        "RUN {}",
        "a".repeat(claude_bottle_protocol::limits::MAX_DOCKERFILE_LINE)
    );
    let many = |n: usize, f: fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>();
    let mut t = vec![
        (s(&["jq"]), s(&[])),
        (s(&["g++", "python3.11", "libc6=2.36-9+deb12u4"]), s(&[])),
        (s(&[]), s(&["RUN pip install ruff"])),
        (s(&[]), s(&["RUN echo `date`"])),
        (s(&[]), s(&["RUN printf 'a\\n' > /x"])),
        (s(&[]), s(&["RUN cat <<<word"])),
        (s(&["ripgrep"]), s(&["ENV A=1", "WORKDIR /x"])),
        (s(&[]), s(&[])),
        (s(&[""]), s(&[])),
        (s(&["Rg"]), s(&[])),
        (s(&["bash-"]), s(&[])),
        (s(&["jq=1.6+"]), s(&[])),
        (s(&["jq:i386"]), s(&[])),
        (s(&["jq/sid"]), s(&[])),
        (s(&["lib*"]), s(&[])),
        (s(&["a;rm"]), s(&[])),
        (s(&["jq"]), s(&["RUN a \\"])),
        (s(&[]), s(&["RUN a \\"])),
        (s(&[]), s(&["RUN dir C:\\   "])),
        (s(&[]), s(&[""])),
        (s(&[]), s(&["   "])),
        (s(&[]), s(&["RUN a\nUSER root"])),
        (s(&[]), s(&["RUN a\rRUN b"])),
        (s(&[]), s(&["RUN a\0"])),
        (s(&[]), s(&["RUN\ta"])),
        (s(&[]), s(&["RUN echo \u{1b}[2K"])),
        (s(&[]), s(&["RUN echo \u{202e}hs.x"])),
        (s(&[]), s(&["RUN apt-get\u{200b} install x"])),
        (s(&[]), s(&["RUN echo \u{456}d"])),
        (s(&[]), s(&["RUN <<EOF"])),
        (s(&[]), s(&["COPY <<EOF /etc/x"])),
        (
            s(&[]),
            s(&["RUN --mount=type=secret,id=x cat /run/secrets/x"]),
        ),
        (s(&[]), s(&["RUN --network=host curl x"])),
        (s(&[]), s(&["ONBUILD RUN true"])),
        (s(&[]), vec![long]),
    ];
    t.push((many(64, |i| format!("pkg{i}")), vec![]));
    t.push((many(65, |i| format!("pkg{i}")), vec![]));
    t.push((vec![], many(64, |i| format!("RUN true {i}"))));
    t.push((vec![], many(65, |i| format!("RUN true {i}"))));
    t
}

/// `(the bottle's current Dockerfile, apt packages, Dockerfile lines)`: the rules that depend on
/// the Dockerfile a capability is appended to (its `# escape=` directive, an open continuation
/// at its end), accepted and refused.
fn dockerfile_table() -> Vec<(&'static str, Vec<String>, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let backtick = "# escape=`\nFROM x\nUSER 1001\n";
    vec![
        (backtick, s(&[]), s(&["RUN curl x | sh `"])),
        (backtick, s(&[]), s(&["RUN echo a `  \t"])),
        (backtick, s(&["jq"]), s(&["ENV A=1", "`"])),
        (backtick, s(&[]), s(&["RUN echo `date`"])),
        (backtick, s(&["jq"]), s(&[])),
        (backtick, s(&[]), s(&["RUN dir C:\\"])),
        ("  # ESCAPE = `\r\nFROM x\n", s(&[]), s(&["RUN a `"])),
        (
            "\u{feff}# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n",
            s(&[]),
            s(&["RUN a `"]),
        ),
        // Where the directive does not count, a backtick is only a backtick.
        ("FROM x\n# escape=`\n", s(&[]), s(&["RUN a `"])),
        ("# a comment\n# escape=`\nFROM x\n", s(&[]), s(&["RUN a `"])),
        ("# escape=x\nFROM x\n", s(&[]), s(&["RUN a `"])),
        // The Dockerfile ends in a continuation: nothing may be appended.
        ("FROM x\nRUN a \\\n", s(&["jq"]), s(&[])),
        ("FROM x\nRUN a \\\n# a comment\n\n", s(&[]), s(&["RUN b"])),
        ("# escape=`\nFROM x\nRUN a `\n", s(&[]), s(&["RUN b"])),
        ("# escape=`\nFROM x\nRUN dir C:\\\n", s(&[]), s(&["RUN b"])),
        ("FROM x\nRUN echo `date`\n", s(&[]), s(&["RUN b"])),
        ("", s(&[]), s(&["RUN b"])),
    ]
}

#[test]
fn supervise_refuses_at_filing_exactly_what_the_launcher_refuses_at_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config");
    let handle = store::start(store::StoreConfig {
        queue_dir: dir.path().join("queue"),
        config_dir: config.clone(),
        bottle: BottleName::new("rules").expect("name"),
        max_pending: 1_000,
        rate_per_minute: 60_000,
        burst: 1_000,
        poll_interval: Duration::from_secs(60),
        watch: false,
        inbox: 16,
    })
    .expect("store");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cases = table()
        .into_iter()
        .map(|(apt, lines)| ("FROM x\n", apt, lines))
        .chain(dockerfile_table());
    let (mut accepted, mut refused, mut by_dockerfile) = (0, 0, 0);
    for (current, apt, dockerfile_lines) in cases {
        let cap = Capability {
            apt,
            dockerfile_lines,
        };
        // The Dockerfile the launcher stages in supervise's current-config, and applies to.
        std::fs::write(config.join(current_config::DOCKERFILE), current).expect("stage");
        // As supervise's socket reads a line: parsed (and validated) by the protocol, then
        // carried out by the store, which judges it against the staged Dockerfile.
        let line = to_json(&RequestMsg::new(Request::Submit {
            kind: ProposalKind::Capability(cap.clone()),
            reason: "the tests need it".to_owned(),
            evidence: vec![],
        }));
        let filed = match from_json::<RequestMsg>(&line) {
            Err(e) => Err((false, e.to_string())),
            Ok(msg) => match rt.block_on(server::execute(msg.request, &handle)) {
                Response::Submitted { .. } => Ok(()),
                Response::Error { message, .. } => Err((true, message)),
                other => panic!("unexpected answer {other:?}"),
            },
        };
        let applied =
            dockerfile::with_capability(current, &ProposalId::new("p-1").expect("id"), &cap);
        assert_eq!(
            filed.is_ok(),
            applied.is_ok(),
            "{current:?} + {cap:?}: supervise {filed:?}, launcher {applied:?}"
        );
        // What the store refuses, past the wire's own checks, it refuses in the launcher's words.
        if let (Err((true, message)), Err(e)) = (&filed, &applied) {
            assert_eq!(
                message,
                &format!("failed to file the proposal: {e}"),
                "{current:?} + {cap:?}"
            );
            by_dockerfile += 1;
        }
        if current == "FROM x\n" {
            assert_eq!(
                filed.is_ok(),
                dockerfile::capability_lines(&cap).is_ok(),
                "{cap:?}"
            );
        }
        if filed.is_ok() {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(
        accepted >= 14 && refused >= 35 && by_dockerfile >= 8,
        "{accepted} accepted, {refused} refused, {by_dockerfile} by the Dockerfile"
    );
}
