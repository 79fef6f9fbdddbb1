//! The real Claude Code CLI (2.1.332, from the embedded image) in a bottle, against a fake Anthropic
//! Messages API that the test internet serves as api.anthropic.com: answers through the chain with
//! the operator's key injected, the MCP server connected, the whole proposal loop driven by the
//! model, the bash hook, and the embedded agent as it really starts, under a pseudo-terminal.

use std::process::Command;
use std::time::{Duration, Instant};

use claude_bottle_e2e::terminal::Tmux;
use claude_bottle_e2e::{
    InternetLaunch, TestBottle, TestInternet, assert_clean, docker, line, sha256_hex,
    start_with_internet, wait_for_proposal,
};

const API: &str = "api.anthropic.com";

/// The bottle: the embedded image, supervise on, the key injected.
fn bottle_yaml() -> String {
    format!(
        "supervise: true\negress_proxy:\n  routes:\n    - host: {API}\n      auth_scheme: header:x-api-key\n      token_ref: env:ANTHROPIC_API_KEY\n"
    )
}

/// First run: three prompts (plain, a Bash tool call of a missing command, a capability asked for
/// through the MCP tool), then idle until the approval replaces the agent. Resumed: the marker the
/// approval added, and `--continue` of the last session.
const AGENT: &str = r#"
one() { tr '\n\r' '  '; echo; }
if [ "${1:-}" = resumed ]; then
  echo "RESUMED marker=$(test -e /usr/local/share/e2e-approved && echo yes || echo no)"
  echo "CONTINUE $(claude --dangerously-skip-permissions -p --continue 'E2E-CONTINUE' 2>&1 | one)"
  sleep 3
  exit 0
fi
echo "VERSION $(claude --version 2>&1 | one)"
echo "HELLO $(claude --dangerously-skip-permissions -p 'E2E-HELLO' 2>&1 | one)"
echo "MCP $(claude mcp list 2>&1 | grep claude-bottle | one)"
echo "BASH $(claude --dangerously-skip-permissions -p 'E2E-BASH' 2>&1 | one)"
echo "CAPABILITY $(claude --dangerously-skip-permissions -p 'E2E-CAPABILITY' 2>&1 | one)"
sleep 600
"#;

fn unique_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_nanos())
        .unwrap_or(0);
    format!("e2e-operator-key-{}-{nanos}", std::process::id())
}

/// The fake API's records (`fake-api: {json}` lines of the test internet's log).
async fn api_calls(d: &bollard::Docker, internet: &TestInternet) -> Vec<serde_json::Value> {
    claude_bottle::backend::docker::tail_logs(d, &internet.container, 2000)
        .await
        .lines()
        .filter_map(|l| l.split_once("fake-api: ").map(|(_, j)| j))
        .filter_map(|j| serde_json::from_str(j).ok())
        .collect()
}

/// Whether `needle` occurs anywhere in the agent container's home, workspace or /tmp.
fn agent_files_hold(container: &str, needle: &str) -> bool {
    ["/home/agent", "/workspace", "/tmp"].iter().any(|dir| {
        let out = Command::new("docker")
            .args(["cp", &format!("{container}:{dir}"), "-"])
            .output()
            .expect("docker cp");
        out.stdout
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    })
}

async fn wait_for_line(path: &std::path::Path, key: &str, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let out = std::fs::read_to_string(path).unwrap_or_default();
        if out.lines().any(|l| l.starts_with(key)) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the launcher exited ({status}) before the agent printed {key}:\n{out}");
        }
        assert!(Instant::now() < deadline, "no {key} line:\n{out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_real_claude_code_answers_through_the_chain_and_the_model_drives_the_loop() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::embedded("claude", true, &bottle_yaml());
    bottle.write_agent_resuming(&["/bin/sh", "-c", AGENT, "agent"], &["resumed"]);
    let slug = bottle.slug();
    let key = unique_key();
    let mut launcher = bottle.claude_command(&["start", "--yes", &bottle.name]);
    launcher.env("ANTHROPIC_API_KEY", &key);
    let InternetLaunch {
        mut child,
        internet,
        out: out_file,
        err: err_file,
    } = start_with_internet(&d, &bottle, launcher, &[API]).await;

    // The model asked for a capability through our MCP tool; the bash hook filed the missing
    // command before that.
    let cap = wait_for_proposal(&bottle, "e2e-approved").await;
    wait_for_line(&out_file, "CAPABILITY", &mut child).await;
    let missing = wait_for_proposal(&bottle, "e2e-missing-tool").await;
    assert_ne!(cap, missing);
    let agent = format!("{slug}-agent");
    let inspected =
        serde_json::to_string(&d.inspect_container(&agent, None).await.expect("inspect"))
            .expect("json");
    assert!(
        !inspected.contains(&key),
        "docker inspect of the agent holds the key"
    );
    assert!(
        !agent_files_hold(&agent, &key),
        "the agent's files hold the key"
    );
    let calls = api_calls(&d, &internet).await;
    assert!(calls.len() >= 5, "{calls:?}");
    let want = sha256_hex(&key);
    for call in &calls {
        assert_eq!(
            call["key_sha256"],
            want.as_str(),
            "every call carries the operator's key: {call}"
        );
    }

    let approve = bottle
        .command(&["approve", &cap])
        .output()
        .expect("approve");
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );
    wait_for_line(&out_file, "CONTINUE", &mut child).await;
    let resumed = api_calls(&d, &internet).await;
    let last = resumed.last().expect("the resumed session called the API");
    let status = child.wait().expect("wait");
    let out = std::fs::read_to_string(&out_file).expect("out");
    let err = std::fs::read_to_string(&err_file).expect("err");
    assert!(status.success(), "launcher failed: {status}\n{out}\n{err}");

    assert!(line(&out, "VERSION").starts_with("2.1.332"), "{out}");
    assert!(line(&out, "HELLO").contains("E2E-ANSWER"), "{out}\n{err}");
    let mcp = line(&out, "MCP");
    assert!(mcp.contains("Connected"), "the shim's MCP server: {mcp}");
    assert!(
        line(&out, "BASH").contains("E2E-AFTER-TOOL"),
        "the Bash tool ran and its result went back: {out}"
    );
    assert!(
        line(&out, "CAPABILITY").contains("E2E-AFTER-TOOL"),
        "the MCP tool's result went back to the model: {out}"
    );
    assert_eq!(
        line(&out, "RESUMED"),
        "marker=yes",
        "rebuilt with the approved step"
    );
    assert!(
        line(&out, "CONTINUE").contains("tool-results=1"),
        "--continue sent the earlier conversation with its tool result: {out}"
    );
    assert!(last["tool_results"].as_u64() >= Some(1), "{last}");
    assert!(
        last["user_texts"].as_array().is_some_and(|t| t
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.contains("E2E-CAPABILITY")))),
        "{last}"
    );
    assert_eq!(last["key_sha256"], want.as_str());
    assert!(
        !out.contains(&key) && !err.contains(&key),
        "the key leaked into output"
    );
    drop(internet);
    assert_clean(&d, &slug).await;
}

/// The embedded default agent exactly as it starts (`claude --dangerously-skip-permissions`, the
/// terminal attached) under tmux: no screen waits for a key; a typed prompt is answered through
/// the chain.
#[tokio::test]
async fn the_embedded_agent_starts_interactively_and_answers_a_typed_prompt() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::embedded("claude-tty", false, &bottle_yaml());
    let slug = bottle.slug();
    let key = unique_key();
    let (ca_file, leaf) = TestInternet::prepare(&bottle.path().join("ca"), &[API]);
    let session = format!("cb-{slug}");
    let log = bottle.path().join("launcher.err");
    // tmux runs the launcher, with the environment given here.
    let mut launcher = bottle.claude_command(&["start", "--yes", &bottle.name]);
    launcher
        .env("ANTHROPIC_API_KEY", &key)
        .env("CLAUDE_BOTTLE_UPSTREAM_CA", &ca_file)
        .env(
            claude_bottle::config::ENV_ALLOW_PRIVATE_CIDRS,
            claude_bottle_e2e::TEST_INTERNET_CIDRS,
        );
    let term = Tmux::start(&session, 120, 40, &launcher, &log);
    // A stand-in child for attach(): it only polls whether the launcher exited.
    let mut watcher = Command::new("sh")
        .args([
            "-c",
            &format!("while tmux has-session -t {session} 2>/dev/null; do sleep 0.2; done"),
        ])
        .spawn()
        .expect("watcher");
    let internet =
        TestInternet::attach(&d, &bottle, &mut watcher, &log, &[API], ca_file, &leaf).await;

    // Claude Code's prompt: no onboarding, no key question, no trust dialog, no bypass warning.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s = term.screen();
        if s.contains("bypass permissions") || s.contains('>') && s.contains("for shortcuts") {
            break;
        }
        for blocker in [
            "Do you trust",
            "Detected a custom API key",
            "Choose the text style",
            "WARNING",
        ] {
            assert!(
                !s.contains(blocker),
                "a first-run screen waits for a key:\n{s}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "Claude Code never showed its prompt:\n{s}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    term.type_text("E2E-HELLO");
    tokio::time::sleep(Duration::from_millis(300)).await;
    term.press(&["Enter"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let answered = loop {
        let s = term.screen();
        if s.contains("E2E-ANSWER") {
            break s;
        }
        assert!(Instant::now() < deadline, "no answer on the screen:\n{s}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(!answered.contains(&key), "the key on the agent's screen");
    let calls = api_calls(&d, &internet).await;
    assert!(
        calls
            .iter()
            .any(|c| c["user_texts"].to_string().contains("E2E-HELLO")
                && c["key_sha256"] == sha256_hex(&key).as_str()),
        "{calls:?}"
    );
    // Ctrl-C twice leaves Claude Code; the launcher then removes the bottle.
    for _ in 0..2 {
        term.press(&["C-c"]);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while watcher.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "the launcher did not exit:\n{}",
            term.screen()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(internet);
    assert_clean(&d, &slug).await;
}
