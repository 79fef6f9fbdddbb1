//! The git gate in a real bottle (issue 14): the agent clones, fetches and pushes the remotes its
//! bottle declares through `<slug>-git-gate`, against the tests' own git server (test-git) in
//! the test internet: one remote over HTTPS with a token, one over ssh with a key, and a big
//! repository. The push policy is enforced before the upstream sees anything; the upstream's own
//! refusal reaches the agent; no credential reaches the agent or the launcher's output.

use std::time::{Duration, Instant};

use claude_bottle::secret::Secret;
use claude_bottle_e2e::{
    TEST_INTERNET_CIDRS, TestBottle, TestGit, assert_clean, docker, ensure_egress_test_images,
    exec, line, wait_for_proposal,
};

const HOST: &str = "git.test";
const BIG_COMMITS: u32 = 10_000;
const BIG_BLOB_MB: u32 = 50;

/// The scripted agent: one `KEY value` line per check, each git command's output indented
/// under it when it fails (or when the check needs the reason).
const AGENT: &str = r#"
set -u
export GIT_AUTHOR_NAME=agent GIT_AUTHOR_EMAIL=agent@bottle GIT_COMMITTER_NAME=agent GIT_COMMITTER_EMAIL=agent@bottle
export GIT_TERMINAL_PROMPT=0
cd /tmp
# run KEY CMD...: "KEY ok" or "KEY fail" and the command's output, indented.
run() {
  key=$1; shift
  if "$@" >/tmp/run.log 2>&1; then echo "$key ok"; else echo "$key fail"; fi
  sed 's/^/    /' /tmp/run.log
}
# The gate comes up beside the agent: wait until it answers.
i=0
until git ls-remote https://git.test/app.git >/dev/null 2>&1; do
  i=$((i+1)); [ $i -ge 600 ] && break; sleep 0.2
done
run CLONE git clone https://git.test/app.git app
cd app
echo "README $(head -1 README.md 2>/dev/null)"
echo "ORIGIN $(git config remote.origin.url)"
echo "WAITING-FOR-COLLEAGUE"
before=$(git rev-parse origin/main)
for i in $(seq 1 300); do
  git fetch -q origin 2>/dev/null
  [ "$(git rev-parse origin/main)" != "$before" ] && break
  sleep 0.2
done
echo "FETCHED $(git rev-parse origin/main)"
git checkout -q -b claude/x origin/main
echo work > work.txt && git add work.txt && git commit -qm work
run PUSH-ALLOWED git push origin claude/x
echo "PUSHED $(git rev-parse HEAD)"
run PUSH-PROTECTED git push origin HEAD:main
git commit -q --amend -m rewritten
run PUSH-FORCE git push -f origin claude/x
run PUSH-DELETE git push origin :claude/x
run PUSH-TAG git push origin HEAD:refs/tags/v9
run PUSH-FROZEN git push origin HEAD:claude/frozen
# A refused branch, asked for, approved, pushed.
run PUSH-UNASKED git push origin HEAD:feature/ask
id=$(claude-bottle-shim request push origin feature/ask --reason "e2e: a feature branch" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "ASKED $id"
state=none
for i in $(seq 1 1200); do
  state=$(claude-bottle-shim status "$id" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print((d[0] if isinstance(d, list) else d)["state"])')
  [ "$state" = applied ] && break
  sleep 0.1
done
echo "PUSH-APPROVAL $state"
run PUSH-APPROVED git push origin HEAD:feature/ask
echo "ASK-HEAD $(git rev-parse HEAD)"
cd /tmp
run SSH-CLONE git clone ssh://git@git.test/srv/git/lib.git lib
cd lib
git checkout -q -b claude/y
echo lib > lib.txt && git add lib.txt && git commit -qm lib
run SSH-PUSH git push origin claude/y
echo "SSH-PUSHED $(git rev-parse HEAD)"
cd /tmp
# The first listing fills the gate's mirror from the upstream (a cold start of the remote).
first=$(date +%s.%N)
i=0
until git ls-remote https://git.test/big.git >/dev/null 2>&1; do
  i=$((i+1)); [ $i -ge 600 ] && break; sleep 0.2
done
start=$(date +%s.%N)
echo "BIG-FILL-SECONDS $(python3 -c "print(round($start - $first, 2))")"
run BIG-CLONE git clone -q https://git.test/big.git big
end=$(date +%s.%N)
echo "BIG-SECONDS $(python3 -c "print(round($end - $start, 2))")"
echo "BIG-COMMITS $(git -C big rev-list --count HEAD)"
echo "ENV-HAS-GIT-GATE-TOKEN $(env | grep -c GIT_GATE_TOKEN)"
echo "DONE"
until [ -e /tmp/finish ]; do sleep 0.2; done
"#;

#[tokio::test]
async fn the_agent_clones_fetches_and_pushes_through_the_gate_without_a_credential() {
    let Some(d) = docker().await else { return };
    ensure_egress_test_images(&d).await;
    let token = Secret::new(format!(
        "e2e-git-token-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_nanos())
            .unwrap_or(0)
    ));
    let bottle = TestBottle::new("git", "", &["/bin/sh", "-c", AGENT]);
    let slug = bottle.slug();
    let files = TestGit::prepare(&bottle.path().join("test-git"), &[HOST], &token);
    bottle.write_bottle(&format!(
        "supervise: true\ngit:\n  - name: origin\n    upstream: https://{HOST}/app.git\n    token_ref: env:E2E_GIT_TOKEN\n    push: [\"claude/*\"]\n  - name: lib\n    upstream: ssh://git@{HOST}/srv/git/lib.git\n    ssh_key: {}\n    known_hosts: {}\n    push: [\"claude/*\"]\n  - name: big\n    upstream: https://{HOST}/big.git\n    token_ref: env:E2E_GIT_TOKEN\n",
        files.client_key.display(),
        files.known_hosts.display(),
    ));
    let out_file = bottle.path().join("launcher.out");
    let err_file = bottle.path().join("launcher.err");
    let mut child = bottle
        .command(&["start", "--yes", &bottle.name])
        .env("E2E_GIT_TOKEN", token.expose())
        .env(claude_bottle::config::ENV_UPSTREAM_CA, &files.ca_file)
        .env(
            claude_bottle::config::ENV_ALLOW_PRIVATE_CIDRS,
            TEST_INTERNET_CIDRS,
        )
        .env("RUST_LOG", "debug")
        .stdout(std::fs::File::create(&out_file).expect("out"))
        .stderr(std::fs::File::create(&err_file).expect("err"))
        .spawn()
        .expect("spawn launcher");
    let git = TestGit::attach(&d, &bottle, &mut child, &err_file, files).await;
    let made = git.make_big(&d, "big", BIG_COMMITS, BIG_BLOB_MB).await;
    eprintln!("made big.git ({BIG_COMMITS} commits, {BIG_BLOB_MB} MiB blob) in {made:?}");

    let out = wait_for(&mut child, &out_file, &err_file, "WAITING-FOR-COLLEAGUE").await;
    assert_eq!(line(&out, "CLONE"), "ok", "{out}");
    assert_eq!(line(&out, "README"), "# app", "{out}");
    assert_eq!(line(&out, "ORIGIN"), format!("https://{HOST}/app.git"));
    // A colleague pushes to main upstream; the agent's fetch sees it.
    let (code, colleague, err) = exec(
        &d,
        &git.container,
        &[
            "su",
            "git",
            "-s",
            "/bin/sh",
            "-c",
            "cd /srv/git/app.git && export GIT_AUTHOR_NAME=colleague GIT_AUTHOR_EMAIL=c@git.test GIT_COMMITTER_NAME=colleague GIT_COMMITTER_EMAIL=c@git.test && c=$(git commit-tree -p main -m colleague 'main^{tree}') && git update-ref refs/heads/main $c && echo $c",
        ],
    )
    .await;
    assert_eq!(code, 0, "colleague's commit: {err}");
    // The agent asks for a branch the policy refused; the operator approves it.
    let id = wait_for_proposal(&bottle, "feature/ask").await;
    let approve = bottle.command(&["approve", &id]).output().expect("approve");
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );
    let out = wait_for(&mut child, &out_file, &err_file, "DONE").await;
    assert_eq!(line(&out, "FETCHED"), colleague.trim(), "{out}");

    // The allowed push reached the upstream.
    assert_eq!(line(&out, "PUSH-ALLOWED"), "ok", "{out}");
    let pushed = line(&out, "PUSHED").to_owned();
    assert_eq!(
        git.rev_parse(&d, "app", "refs/heads/claude/x")
            .await
            .as_deref(),
        Some(pushed.as_str()),
        "claude/x upstream"
    );
    // Each refusal with its reason; the upstream unchanged after each.
    for (key, reason) in [
        ("PUSH-PROTECTED", "no push pattern matches this ref"),
        ("PUSH-FORCE", "not a fast-forward"),
        (
            "PUSH-DELETE",
            "deleting needs a matching pattern that allows delete",
        ),
        ("PUSH-TAG", "tags are pushed only when a pattern names them"),
        (
            "PUSH-FROZEN",
            "upstream policy: refs/heads/claude/frozen is frozen",
        ),
    ] {
        assert_eq!(line(&out, key), "fail", "{key}:\n{out}");
        let block = block(&out, key);
        assert!(block.contains(reason), "{key} without {reason:?}:\n{block}");
    }
    assert_eq!(
        git.rev_parse(&d, "app", "refs/heads/main").await.as_deref(),
        Some(colleague.trim()),
        "main untouched"
    );
    assert_eq!(
        git.rev_parse(&d, "app", "refs/heads/claude/x")
            .await
            .as_deref(),
        Some(pushed.as_str()),
        "claude/x neither rewritten nor deleted"
    );
    assert_eq!(git.rev_parse(&d, "app", "refs/tags/v9").await, None);
    assert_eq!(
        git.rev_parse(&d, "app", "refs/heads/claude/frozen").await,
        None
    );
    // The refusal tells the agent how to ask; once approved, the same push passes.
    assert_eq!(line(&out, "PUSH-UNASKED"), "fail", "{out}");
    assert!(
        block(&out, "PUSH-UNASKED")
            .contains("to ask the operator: claude-bottle-shim request push origin feature/ask"),
        "{out}"
    );
    assert_eq!(line(&out, "PUSH-APPROVAL"), "applied", "{out}");
    assert_eq!(line(&out, "PUSH-APPROVED"), "ok", "{out}");
    assert_eq!(
        git.rev_parse(&d, "app", "refs/heads/feature/ask")
            .await
            .as_deref(),
        Some(line(&out, "ASK-HEAD")),
    );
    let approved =
        std::fs::read_to_string(bottle.path().join(format!("state/{slug}/approved-pushes")))
            .expect("approved-pushes");
    assert_eq!(approved, "origin feature/ask\n");

    // The ssh remote: clone and push with the key the agent never sees.
    assert_eq!(line(&out, "SSH-CLONE"), "ok", "{out}");
    assert_eq!(line(&out, "SSH-PUSH"), "ok", "{out}");
    assert_eq!(
        git.rev_parse(&d, "lib", "refs/heads/claude/y")
            .await
            .as_deref(),
        Some(line(&out, "SSH-PUSHED")),
    );

    // The big repository, through the gate and straight from the same server.
    assert_eq!(line(&out, "BIG-CLONE"), "ok", "{out}");
    assert_eq!(line(&out, "BIG-COMMITS"), BIG_COMMITS.to_string());
    let gated: f64 = line(&out, "BIG-SECONDS").parse().expect("seconds");
    let direct = direct_clone_seconds(&d, &git, &slug).await;
    let fill: f64 = line(&out, "BIG-FILL-SECONDS").parse().expect("seconds");
    eprintln!(
        "clone of {BIG_COMMITS} commits + {BIG_BLOB_MB} MiB: through the gate {gated:.2} s (its mirror warm; filling it took {fill:.2} s), direct {direct:.2} s, ratio {:.2} warm, {:.2} cold",
        gated / direct,
        (gated + fill) / direct
    );

    // No credential in the agent: its environment, its files, what the engine knows of it.
    assert_eq!(line(&out, "ENV-HAS-GIT-GATE-TOKEN"), "0");
    let agent = format!("{slug}-agent");
    let (_, found, _) = exec(
        &d,
        &agent,
        &[
            "sh",
            "-c",
            &format!(
                "grep -rsl -e '{}' -e 'OPENSSH PRIVATE KEY' /home /tmp /workspace /etc /run /usr/local; true",
                token.expose()
            ),
        ],
    )
    .await;
    assert_eq!(found.trim(), "", "files in the agent holding a credential");
    let inspected = serde_json::to_string(
        &d.inspect_container(&agent, None)
            .await
            .expect("inspect agent"),
    )
    .expect("json");
    assert!(
        !inspected.contains(token.expose()),
        "docker inspect of the agent"
    );
    let gate = serde_json::to_string(
        &d.inspect_container(&format!("{slug}-git-gate"), None)
            .await
            .expect("inspect gate"),
    )
    .expect("json");
    assert!(
        gate.contains(token.expose()),
        "the gate holds the token (positive control)"
    );
    let gate_logs =
        claude_bottle::backend::docker::tail_logs(&d, &format!("{slug}-git-gate"), 2000).await;
    assert!(!gate_logs.contains(token.expose()), "the gate's log");

    // The audit log: every pushed ref, allowed or refused, with why.
    let audit = std::fs::read_to_string(
        bottle
            .path()
            .join(format!("state/{slug}/git/audit/git-audit.jsonl")),
    )
    .expect("audit log");
    for want in [
        r#""ref":"refs/heads/claude/x""#,
        r#""decision":"allowed""#,
        r#""upstream":"accepted""#,
        r#""ref":"refs/heads/main""#,
        r#""decision":"refused""#,
        r#""remote":"lib""#,
    ] {
        assert!(audit.contains(want), "audit log without {want}:\n{audit}");
    }

    // `list` shows the gate and its pipelock with the bottle's other containers.
    let listed = bottle.command(&["list"]).output().expect("list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    for name in [format!("{slug}-git-gate"), format!("{slug}-git-pipelock")] {
        assert!(listed.contains(&name), "list without {name}:\n{listed}");
    }

    let _ = exec(&d, &agent, &["touch", "/tmp/finish"]).await;
    let status = child.wait().expect("wait");
    let out = std::fs::read_to_string(&out_file).expect("out");
    let err = std::fs::read_to_string(&err_file).expect("err");
    assert!(status.success(), "launcher failed: {status}\n{out}\n{err}");
    for text in [&out, &err] {
        assert!(!text.contains(token.expose()), "the launcher's output");
    }
    assert_clean(&d, &slug).await;
}

/// The launcher's output once it holds `needle`; fails with both outputs when the launcher exits
/// first or after 10 minutes.
async fn wait_for(
    child: &mut std::process::Child,
    out_file: &std::path::Path,
    err_file: &std::path::Path,
    needle: &str,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let out = std::fs::read_to_string(out_file).unwrap_or_default();
        if out.lines().any(|l| l.starts_with(needle)) {
            return out;
        }
        let err = || std::fs::read_to_string(err_file).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the launcher exited ({status}) before {needle}:\n{out}\n{}",
                err()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no {needle} after 10 minutes:\n{out}\n{}",
            err()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `KEY …` line and the indented lines under it.
fn block(out: &str, key: &str) -> String {
    let mut lines = out.lines().skip_while(|l| !l.starts_with(key));
    let mut text = lines.next().unwrap_or_default().to_owned();
    for l in lines.take_while(|l| l.starts_with("    ")) {
        text.push('\n');
        text.push_str(l);
    }
    text
}

/// Seconds a clone of big.git takes straight from the server: a client of the test-git image on
/// the bottle's egress network, the token on its command line, removed afterwards.
async fn direct_clone_seconds(d: &bollard::Docker, git: &TestGit, slug: &str) -> f64 {
    let script = format!(
        "s=$(date +%s.%N) && git clone -q https://x:{}@{HOST}/big.git /tmp/big && e=$(date +%s.%N) && python3 -c \"print($e - $s)\"",
        git.token.expose()
    );
    let network = claude_bottle::backend::docker::network_name(
        slug,
        claude_bottle::backend::NetworkAttachment::Egress,
    );
    let client = git.start_client(d, &network, slug).await;
    let (code, out, err) = exec(d, &client, &["sh", "-c", &script]).await;
    assert_eq!(code, 0, "direct clone: {err}");
    out.trim().parse().expect("seconds")
}
