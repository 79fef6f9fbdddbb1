//! The egress chain from inside the bottle, offline: agent → relay → egress-proxy (real, mitmproxy
//! with our addon) → pipelock STAND-IN (enforces the generated allowlist) → a test "internet" on the
//! bottle's egress network. The agent holds a placeholder; only the egress-proxy holds the token.

use std::time::{Duration, Instant};

use claude_bottle_e2e::{
    InternetLaunch, TestBottle, assert_clean, docker, line, sha256_hex, start_with_internet,
    wait_for_proposal,
};

const OPEN: &str = "open.internet.test";
const ROUTED: &str = "routed.internet.test";
const DENIED: &str = "denied.internet.test";
const APPROVED: &str = "approved.internet.test";

/// The scripted agent. It never prints a header value: only whether the Authorization header
/// arrived and the SHA-256 of what arrived, so its output (the launcher's) can be checked for the
/// token too.
const AGENT: &str = r#"
set -u
shim=claude-bottle-shim
auth() {
  python3 -c 'import hashlib, json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    print("no-echo"); sys.exit()
h = {k.lower(): v for k, v in d["headers"]}
v = h.get("authorization")
print("none" if v is None else hashlib.sha256(v.encode()).hexdigest())'
}
i=0
until curl -sf -o /dev/null https://open.internet.test/ready; do
  i=$((i+1)); [ $i -ge 1200 ] && break; sleep 0.1
done
echo "OPEN-UP $(curl -s -o /dev/null -w '%{http_code}' https://open.internet.test/ready)"
echo "OPEN-AUTH $(curl -s https://open.internet.test/v1/x | auth)"
echo "ROUTED-AUTH $(curl -s https://routed.internet.test/v1/messages | auth)"
echo "ROUTED-DOUBLE-SLASH-AUTH $(curl -s https://routed.internet.test//v1//messages | auth)"
echo "ROUTED-OTHER-AUTH $(curl -s https://routed.internet.test/v2/messages | auth)"
echo "ROUTED-SIBLING-AUTH $(curl -s https://routed.internet.test/v1x | auth)"
echo "DENIED $(curl -s -o /dev/null -w '%{http_code}' https://denied.internet.test/x) $(curl -s https://denied.internet.test/x | auth)"
echo "PYTHON $(python3 -c 'import urllib.request; print(urllib.request.urlopen("https://open.internet.test/py").status)' 2>&1 | tail -1)"
leak="AKIA$(echo ABCDEFGHIJKLMNOP)"
echo "LEAK-HEADER-ROUTED $(curl -s -o /dev/null -w '%{http_code}' -H "X-Debug: $leak" https://routed.internet.test/v1/messages)"
echo "LEAK-BODY-OPEN $(curl -s -o /dev/null -w '%{http_code}' --data-binary "note=$leak" https://open.internet.test/upload)"
echo "LEAK-URL-OPEN $(curl -s -o /dev/null -w '%{http_code}' "https://open.internet.test/q?k=$leak")"
echo "PROXY $HTTPS_PROXY"
echo "KEY-PLACEHOLDER ${E2E_EGRESS_TOKEN:-unset}"
env | sort | sed 's/^/ENV /'
echo "BEFORE-APPROVAL $(curl -s -o /dev/null -w '%{http_code}' https://approved.internet.test/)"
id=$($shim request egress approved.internet.test --reason "e2e" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for i in $(seq 1 1200); do
  state=$($shim status "$id" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print((d[0] if isinstance(d, list) else d)["state"])')
  [ "$state" = applied ] && break
  sleep 0.1
done
echo "APPROVAL $state"
code=000
for i in $(seq 1 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' https://approved.internet.test/)
  [ "$code" = 200 ] && break
  sleep 0.1
done
echo "AFTER-APPROVAL $code"
"#;

#[tokio::test]
async fn the_chain_allows_injects_refuses_and_reloads_without_the_agent_seeing_a_token() {
    let Some(d) = docker().await else { return };
    let yaml = format!(
        "supervise: true\negress_proxy:\n  routes:\n    - host: {ROUTED}\n      path: /v1/\n      auth_scheme: bearer\n      token_ref: env:E2E_EGRESS_TOKEN\n    - host: {OPEN}\n"
    );
    let bottle = TestBottle::new("egress", &yaml, &["/bin/sh", "-c", AGENT]);
    let slug = bottle.slug();
    let hosts = [OPEN, ROUTED, DENIED, APPROVED];
    let token = format!(
        "e2e-token-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_nanos())
            .unwrap_or(0)
    );
    let mut launcher = bottle.command(&["start", "--yes", &bottle.name]);
    launcher
        .env("E2E_EGRESS_TOKEN", &token)
        .env("RUST_LOG", "debug");
    let InternetLaunch {
        mut child,
        internet,
        out: out_file,
        err: err_file,
    } = start_with_internet(&d, &bottle, launcher, &hosts).await;

    // The agent asks for the approved host only after the other checks, so by then it has run them.
    let id = wait_for_proposal(&bottle, APPROVED).await;
    let pipelock = format!("{slug}-pipelock");
    let pipelock_logs = claude_bottle::backend::docker::tail_logs(&d, &pipelock, 500).await;
    let proxy_logs =
        claude_bottle::backend::docker::tail_logs(&d, &format!("{slug}-egress-proxy"), 500).await;
    assert!(
        proxy_logs.contains("egress-proxy: blocked") && proxy_logs.contains("AWS Access ID"),
        "the egress-proxy logs its refusals:\n{proxy_logs}"
    );
    assert!(
        !proxy_logs.contains("AKIAABCDEFGHIJKLMNOP"),
        "never the secret itself"
    );
    assert!(
        pipelock_logs.contains(DENIED) && pipelock_logs.to_lowercase().contains("block"),
        "pipelock refused the host that is not allowed:\n{pipelock_logs}"
    );
    // What the engine knows of the agent: no token anywhere, the placeholder where it was asked for.
    let agent = d
        .inspect_container(&format!("{slug}-agent"), None)
        .await
        .expect("inspect agent");
    let inspected = serde_json::to_string(&agent).expect("json");
    assert!(
        !inspected.contains(&token),
        "docker inspect of the agent holds the token"
    );
    assert!(inspected.contains(claude_bottle::chain::TOKEN_PLACEHOLDER));
    let proxy = d
        .inspect_container(&format!("{slug}-egress-proxy"), None)
        .await
        .expect("inspect egress-proxy");
    assert!(
        serde_json::to_string(&proxy)
            .expect("json")
            .contains(&token),
        "the egress-proxy holds the token (its slot)"
    );
    let approve = bottle.command(&["approve", &id]).output().expect("approve");
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );

    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the agent did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = std::fs::read_to_string(&out_file).expect("out");
    let err = std::fs::read_to_string(&err_file).expect("err");
    assert!(status.success(), "launcher failed: {status}\n{out}\n{err}");
    // The test internet echoes the headers it received; the egress-proxy replaces the credential it
    // injected wherever a response echoes it, so the agent reads this marker where the upstream
    // saw `Bearer <token>`: the header arrived, and its value never came back.
    let injected = sha256_hex("[credential removed by claude-bottle]");
    assert_eq!(line(&out, "OPEN-UP"), "200", "{out}\n{err}");
    assert_eq!(
        line(&out, "OPEN-AUTH"),
        "none",
        "no header for a route without auth"
    );
    // The credentialed host is one pipelock passes through untouched; the egress-proxy still
    // verifies it, because the operator's upstream roots (here: the test internet's CA) were
    // appended to what it trusts upstream.
    assert_eq!(
        line(&out, "ROUTED-AUTH"),
        injected,
        "injected on the routed prefix"
    );
    assert_eq!(
        line(&out, "ROUTED-DOUBLE-SLASH-AUTH"),
        injected,
        "normalised prefix"
    );
    assert_eq!(
        line(&out, "ROUTED-OTHER-AUTH"),
        "none",
        "not outside the prefix"
    );
    assert_eq!(
        line(&out, "ROUTED-SIBLING-AUTH"),
        "none",
        "/v1x is not under /v1/"
    );
    let denied = line(&out, "DENIED");
    assert!(
        !denied.starts_with("200") && denied.ends_with("no-echo"),
        "the host not allowed never answered: {denied}"
    );
    assert_eq!(line(&out, "PYTHON"), "200", "Python trusts the bottle's CA");
    // A secret of the agent's own is refused before anything is injected, on a credentialed host
    // (which pipelock passes through) and on a bare one, in a header, a body or a URL.
    for key in ["LEAK-HEADER-ROUTED", "LEAK-BODY-OPEN", "LEAK-URL-OPEN"] {
        assert_eq!(line(&out, key), "403", "{key}: {out}\n{err}");
    }
    assert_eq!(line(&out, "PROXY"), "http://127.0.0.1:3128");
    assert_eq!(
        line(&out, "KEY-PLACEHOLDER"),
        claude_bottle::chain::TOKEN_PLACEHOLDER
    );
    assert_ne!(line(&out, "BEFORE-APPROVAL"), "200", "{out}");
    assert_eq!(line(&out, "APPROVAL"), "applied");
    assert_eq!(
        line(&out, "AFTER-APPROVAL"),
        "200",
        "approved without restarting the agent"
    );
    assert!(!out.contains(&token), "the agent's output holds the token");
    assert!(!err.contains(&token), "the launcher's log holds the token");
    assert!(
        err.contains("pipelock CA of this launch: SHA-256")
            && err.contains("egress-proxy CA of this launch: SHA-256"),
        "{err}"
    );
    drop(internet);
    assert_clean(&d, &slug).await;
}

/// `start` of `bottle` with `env` changed (`None` unsets), which must exit with `code` and leave
/// nothing on the engine; returns its stderr.
async fn start_fails(
    d: &bollard::Docker,
    bottle: &TestBottle,
    env: (&str, Option<&str>),
    code: i32,
) -> String {
    let mut cmd = bottle.command(&["start", "--yes", &bottle.name]);
    match env {
        (name, Some(value)) => cmd.env(name, value),
        (name, None) => cmd.env_remove(name),
    };
    let out = cmd.output().expect("run the launcher");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_clean(d, &bottle.slug()).await;
    err
}

#[tokio::test]
async fn a_missing_token_stops_the_launch_before_anything_is_created() {
    let Some(d) = docker().await else { return };
    let yaml = format!(
        "egress_proxy:\n  routes:\n    - host: {ROUTED}\n      auth_scheme: bearer\n      token_ref: env:E2E_UNSET_TOKEN_VARIABLE\n"
    );
    let bottle = TestBottle::new("egress-unset", &yaml, &["/bin/true"]);
    let err = start_fails(&d, &bottle, ("E2E_UNSET_TOKEN_VARIABLE", None), 2).await;
    assert!(
        err.contains("E2E_UNSET_TOKEN_VARIABLE") && err.contains("hint:"),
        "{err}"
    );
}

/// pipelock does not gate the agent: the agent starts while it comes up. When it dies instead,
/// the agent is stopped, the error names pipelock with its log, and nothing is left behind.
#[tokio::test]
async fn a_chain_sidecar_that_dies_stops_the_running_agent_and_is_named() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new("egress-dies", "", &["/bin/sleep", "120"]);
    // The test agent image has no pipelock: `run --config …` is not a command there.
    let started = Instant::now();
    let pipelock = (
        claude_bottle::config::ENV_PIPELOCK_IMAGE,
        Some(claude_bottle_e2e::TEST_AGENT_IMAGE),
    );
    let err = start_fails(&d, &bottle, pipelock, 1).await;
    assert!(
        err.contains("sidecar pipelock of bottle") && err.contains("exited with code"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the sleeping agent was stopped, not waited for"
    );
}

/// A pipelock image the engine does not have and cannot pull stops the launch with a hint, before
/// any container exists.
#[tokio::test]
async fn a_pipelock_image_that_cannot_be_pulled_is_refused_with_a_hint() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new("egress-pull", "", &["/bin/true"]);
    let unpullable = "127.0.0.1:9/claude-bottle/no-such-pipelock:none";
    let pipelock = (claude_bottle::config::ENV_PIPELOCK_IMAGE, Some(unpullable));
    // The operator's setting or machine, like an invalid config.toml: exit 2.
    let err = start_fails(&d, &bottle, pipelock, 2).await;
    assert!(
        err.contains(&format!(
            "the pipelock image {unpullable} is not on this engine"
        )) && err.contains("CLAUDE_BOTTLE_PIPELOCK_IMAGE"),
        "{err}"
    );
}

/// Without a credentialed route there is no egress-proxy: pipelock itself (the stand-in, or the
/// real one named by `CLAUDE_BOTTLE_E2E_PIPELOCK_IMAGE`) refuses a secret the agent sends in a
/// sensitive header, a body or a URL, lets an ordinary request through, and bounds a download.
#[tokio::test]
async fn without_an_egress_proxy_pipelock_refuses_the_agents_secrets() {
    let Some(d) = docker().await else { return };
    let yaml = format!("egress_proxy:\n  routes:\n    - host: {OPEN}\n");
    let agent = r#"
i=0
until curl -sf -o /dev/null https://open.internet.test/ready; do
  i=$((i+1)); [ $i -ge 1200 ] && break; sleep 0.1
done
leak="ghp_$(printf 'x%.0s' $(seq 1 36))"
echo "CLEAN $(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer not-a-secret' https://open.internet.test/ok)"
echo "LEAK-HEADER $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $leak" https://open.internet.test/h)"
echo "LEAK-BODY $(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "{\"k\":\"$leak\"}" https://open.internet.test/b)"
echo "LEAK-URL $(curl -s -o /dev/null -w '%{http_code}' "https://open.internet.test/u?t=$leak")"
echo "DOWNLOAD-8MIB $(curl -s -o /dev/null -w '%{http_code} %{size_download}' https://open.internet.test/bytes/8388608)"
echo "DOWNLOAD-65MIB $(curl -s -o /dev/null -w '%{http_code}' https://open.internet.test/bytes/68157440)"
sleep 2
"#;
    let bottle = TestBottle::new("egress-dlp", &yaml, &["/bin/sh", "-c", agent]);
    let slug = bottle.slug();
    let launcher = bottle.command(&["start", "--yes", &bottle.name]);
    let InternetLaunch {
        mut child,
        internet,
        out: out_file,
        err: err_file,
    } = start_with_internet(&d, &bottle, launcher, &[OPEN]).await;
    // Read pipelock's log while it runs (the agent sleeps after its requests).
    let pipelock = format!("{slug}-pipelock");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut logs = String::new();
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the agent did not finish");
        let out = std::fs::read_to_string(&out_file).unwrap_or_default();
        if out.contains("DOWNLOAD-65MIB") {
            logs = claude_bottle::backend::docker::tail_logs(&d, &pipelock, 500).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = child.wait().expect("wait");
    let out = std::fs::read_to_string(&out_file).expect("out");
    let err = std::fs::read_to_string(&err_file).expect("err");
    assert!(status.success(), "launcher failed: {status}\n{out}\n{err}");
    assert_eq!(line(&out, "CLEAN"), "200", "{out}\n{err}");
    for key in ["LEAK-HEADER", "LEAK-BODY", "LEAK-URL"] {
        assert_eq!(line(&out, key), "403", "{key}: {out}\n{err}");
    }
    // pipelock buffers an intercepted response to scan it: past its 5 MiB default (which refused
    // ordinary downloads), up to the generated 64 MiB, and no further.
    assert_eq!(line(&out, "DOWNLOAD-8MIB"), "200 8388608", "{out}\n{err}");
    assert_eq!(line(&out, "DOWNLOAD-65MIB"), "403", "{out}\n{err}");
    assert!(
        logs.contains("GitHub Token") || logs.contains("secret"),
        "pipelock logs its refusals:\n{logs}"
    );
    drop(internet);
    assert_clean(&d, &slug).await;
}

/// Early requests wait on every hop: with a pipelock that takes seconds to listen (the stand-in
/// behind a 12 s sleep) and an egress-proxy in front of it, the agent's very first request, made at
/// once and never retried, is held by the relays and the egress-proxy's wait for its upstream, and
/// succeeds once the chain is up.
#[tokio::test]
async fn an_early_request_waits_for_a_slow_pipelock_and_succeeds() {
    let Some(d) = docker().await else { return };
    let standin = claude_bottle_e2e::standin_image();
    let slow = claude_bottle::image::ImageRecipe::new(
        "test-pipelock-slow",
        format!(
            "FROM {standin}\nENTRYPOINT [\"/bin/sh\", \"-c\", \"sleep 12; exec /usr/local/lib/claude-bottle/pipelock-standin/start.sh \\\"$@\\\"\", \"start\"]\n"
        ),
        claude_bottle::image::ContextBuilder::new(),
        std::collections::BTreeMap::new(),
        std::collections::BTreeMap::new(),
    )
    .expect("recipe");
    claude_bottle::backend::docker::ensure_image(&d, &slow)
        .await
        .expect("slow pipelock image");
    let yaml = format!(
        "egress_proxy:\n  routes:\n    - host: {ROUTED}\n      auth_scheme: bearer\n      token_ref: env:E2E_EGRESS_TOKEN\n    - host: {OPEN}\n"
    );
    let agent = "echo \"FIRST $(curl -s -o /dev/null -w '%{http_code}' --max-time 90 https://open.internet.test/first)\"";
    let bottle = TestBottle::new("egress-early", &yaml, &["/bin/sh", "-c", agent]);
    let slug = bottle.slug();
    let started = Instant::now();
    let mut launcher = bottle.command(&["start", "--yes", &bottle.name]);
    launcher
        .env(claude_bottle::config::ENV_PIPELOCK_IMAGE, &slow.tag)
        .env("E2E_EGRESS_TOKEN", "e2e-early-token");
    let InternetLaunch {
        mut child,
        internet,
        out: out_file,
        err: err_file,
    } = start_with_internet(&d, &bottle, launcher, &[OPEN]).await;
    let status = child.wait().expect("wait");
    let out = std::fs::read_to_string(&out_file).expect("out");
    let err = std::fs::read_to_string(&err_file).expect("err");
    assert!(status.success(), "launcher failed: {status}\n{out}\n{err}");
    assert_eq!(line(&out, "FIRST"), "200", "{out}\n{err}");
    assert!(
        started.elapsed() > Duration::from_secs(12),
        "pipelock was slow, so the request waited"
    );
    drop(internet);
    assert_clean(&d, &slug).await;
}
