//! The tests' own upstream git server (test-git) does what the git gate's tests will lean on:
//! HTTPS with a token (and 401 without it), ssh with the client key and a pinned host key, pushes
//! over both protocols into the same repositories, the upstream's own refusal of
//! `claude/frozen`, chunked pushes and a large clone, and a log without the token. No launcher:
//! the server and a client (the same image, which has git and ssh) share a labelled network.

use std::collections::HashMap;
use std::time::Instant;

use bollard::Docker;
use bollard::models::NetworkCreateRequest;
use claude_bottle::plan::LABEL_BOTTLE;
use claude_bottle::secret::Secret;
use claude_bottle_e2e::{TestBottle, TestGit, assert_clean, docker, exec};

const HOST: &str = "git.test";
/// Where the client container sees the client's files (CA, key, known_hosts).
use claude_bottle_e2e::test_git::CLIENT_DIR;
const USER: &str = "x-access-token";

#[tokio::test]
async fn the_test_git_server_serves_https_and_ssh_with_its_policy_and_large_repositories() {
    let Some(d) = docker().await else { return };
    // The bottle is only the cleanup scope and the folder for the keys: the network and both
    // containers carry its label, so its drop removes them even when an assertion fails.
    let scope = TestBottle::new("test-git", "", &["/bin/true"]);
    let slug = scope.slug();
    let network = format!("{slug}-git");
    d.create_network(NetworkCreateRequest {
        name: network.clone(),
        driver: Some("bridge".into()),
        internal: Some(true),
        labels: Some(HashMap::from([(LABEL_BOTTLE.to_owned(), slug.clone())])),
        ..Default::default()
    })
    .await
    .expect("create the test network");

    let token = Secret::new(format!(
        "tg{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    ));
    let files = TestGit::prepare(&scope.path().join("test-git"), &[HOST], &token);
    let started = Instant::now();
    let server = TestGit::start_on(
        &d,
        &network,
        &format!("{slug}-test-git"),
        &[(LABEL_BOTTLE, &slug)],
        files,
    )
    .await;
    eprintln!("test-git ready in {:.1?}", started.elapsed());
    let client = server.start_client(&d, &network, &slug).await;
    let https = |repo: &str, secret: &str| format!("https://{USER}:{secret}@{HOST}/{repo}.git");

    // HTTPS: the token lets a clone in (HEAD main, the README, the tag v0); a wrong one is 401.
    let good = https("app", token.expose());
    let out = sh(
        &d,
        &client,
        &format!(
            "git clone -q {good} /tmp/app && cd /tmp/app && git rev-parse --abbrev-ref HEAD \
             && git tag && cat README.md"
        ),
    )
    .await;
    assert!(
        out.starts_with("main\nv0\n# app\n"),
        "an https clone of app:\n{out}"
    );
    let (code, _, err) = run(
        &d,
        &client,
        &format!("git clone {} /tmp/wrong", https("app", "not-the-token")),
    )
    .await;
    assert_ne!(code, 0, "a clone with a wrong token succeeded");
    assert!(err.contains("Authentication failed"), "{err}");

    // A push of a new branch lands upstream; one to claude/frozen meets the upstream's hook.
    let pushed = sh(
        &d,
        &client,
        "cd /tmp/app && echo change > change.txt && git add change.txt \
         && git commit -qm change && git push -q origin HEAD:claude/x && git rev-parse HEAD",
    )
    .await;
    assert_eq!(
        server.rev_parse(&d, "app", "refs/heads/claude/x").await,
        Some(pushed.trim().to_owned())
    );
    let (code, _, err) = run(
        &d,
        &client,
        "cd /tmp/app && git push origin HEAD:claude/frozen",
    )
    .await;
    assert_ne!(code, 0, "the push to claude/frozen was accepted");
    assert!(
        err.contains("upstream policy: refs/heads/claude/frozen is frozen"),
        "{err}"
    );
    assert_eq!(
        server
            .rev_parse(&d, "app", "refs/heads/claude/frozen")
            .await,
        None
    );

    // A push over http.postBuffer (1 MiB) goes chunked: the server de-chunks it into the backend.
    let (code, out, err) = run(
        &d,
        &client,
        "cd /tmp/app && head -c 3145728 /dev/urandom > blob.bin && git add blob.bin \
         && git commit -qm blob && GIT_TRACE_CURL=1 GIT_TRACE_CURL_NO_DATA=1 \
         git push -q origin HEAD:claude/chunked && git rev-parse HEAD",
    )
    .await;
    assert_eq!(code, 0, "the chunked push failed:\n{err}");
    assert!(
        err.contains("Send header: Transfer-Encoding: chunked"),
        "the 3 MiB push did not go chunked:\n{}",
        err.lines()
            .filter(|l| l.contains("header"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        server
            .rev_parse(&d, "app", "refs/heads/claude/chunked")
            .await,
        Some(out.trim().to_owned())
    );

    // ssh, with the client key and the pinned host key: a clone sees the https push; a push
    // through the scp-like URL lands in the same repository https serves.
    let cloned = sh(
        &d,
        &client,
        &format!(
            "git clone -q {} /tmp/app-ssh && git -C /tmp/app-ssh rev-parse origin/claude/x",
            TestGit::ssh_url(HOST, "app")
        ),
    )
    .await;
    assert_eq!(cloned.trim(), pushed.trim(), "the ssh clone of app");
    let pushed_ssh = sh(
        &d,
        &client,
        &format!(
            "git clone -q {} /tmp/lib-ssh && cd /tmp/lib-ssh && echo y > y.txt && git add y.txt \
             && git commit -qm y && git push -q origin HEAD:claude/y && git rev-parse HEAD",
            TestGit::scp_url(HOST, "lib")
        ),
    )
    .await;
    let seen = sh(
        &d,
        &client,
        &format!(
            "git ls-remote {} refs/heads/claude/y",
            https("lib", token.expose())
        ),
    )
    .await;
    assert!(
        seen.starts_with(pushed_ssh.trim()),
        "https does not see the ssh push: {seen}"
    );
    // The host key is checked: without it in known_hosts, strict checking refuses the server.
    let (code, _, err) = run(
        &d,
        &client,
        &format!(
            "GIT_SSH_COMMAND=\"ssh -i {CLIENT_DIR}/id_ed25519 -o IdentitiesOnly=yes \
             -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes\" \
             git ls-remote {}",
            TestGit::ssh_url(HOST, "app")
        ),
    )
    .await;
    assert_ne!(code, 0, "ssh went ahead with an unknown host key");
    assert!(err.contains("Host key verification failed"), "{err}");

    // A large repository: 10,000 commits and a 50 MiB incompressible blob, cloned over https.
    let made = server.make_big(&d, "big", 10_000, 50).await;
    let started = Instant::now();
    let big = sh(
        &d,
        &client,
        &format!(
            "git clone -q {} /tmp/big && git -C /tmp/big rev-list --count HEAD \
             && stat -c %s /tmp/big/big.bin",
            https("big", token.expose())
        ),
    )
    .await;
    let cloned_in = started.elapsed();
    assert_eq!(big, "10000\n52428800\n", "the clone of big");
    eprintln!("test-git-make-big big 10000 50: {made:.1?}; https clone of it: {cloned_in:.1?}");

    // The log names each request and its user, and never the token (nor the header value).
    let logs = server.logs(&d).await;
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{}", token.expose()))
    };
    assert!(
        !logs.contains(token.expose()) && !logs.contains(&basic),
        "the token is in test-git's log:\n{logs}"
    );
    for line in [
        format!("test-git: GET /app.git/info/refs?service=git-upload-pack 200 user={USER}"),
        format!("test-git: POST /app.git/git-receive-pack 200 user={USER}"),
        "test-git: GET /app.git/info/refs?service=git-upload-pack 401 user=-".to_owned(),
        format!("test-git: POST /big.git/git-upload-pack 200 user={USER}"),
    ] {
        assert!(
            logs.contains(&line),
            "no {line:?} in test-git's log:\n{logs}"
        );
    }
    assert!(
        logs.contains("Accepted publickey for git"),
        "sshd did not log the key login:\n{logs}"
    );

    drop(scope);
    assert_clean(&d, &slug).await;
}

/// `sh -c script` in `container`: (exit code, stdout, stderr).
async fn run(d: &Docker, container: &str, script: &str) -> (i64, String, String) {
    exec(d, container, &["sh", "-c", script]).await
}

/// [`run`], which must succeed; its stdout.
async fn sh(d: &Docker, container: &str, script: &str) -> String {
    let (code, out, err) = run(d, container, script).await;
    assert_eq!(code, 0, "`{script}` failed ({code}):\n{out}{err}");
    out
}
