//! Clones and fetches through the gate, and the answers of a gate that cannot serve.

use crate::git::{commit, fails, git, git_in, ok, rev};
use crate::upstream::TOKEN;
use crate::world::{TOKEN_ENV, World, start_failing};
use crate::{agent_clone, assert_token_nowhere};

#[test]
fn the_upstream_url_clones_and_fetches_through_the_gate() {
    let (world, seed) = World::new();
    let gate = world.gate(&world.config(&["claude/*"]), Some(TOKEN));
    // The agent's git maps the upstream's URL to the gate, as the launcher will set it up.
    let agent = |args: &[&str]| {
        let mut cmd = git(args);
        cmd.env("GIT_CONFIG_COUNT", "1")
            .env(
                "GIT_CONFIG_KEY_0",
                format!("url.{}.insteadOf", gate.url("origin")),
            )
            .env("GIT_CONFIG_VALUE_0", world.upstream.url());
        cmd
    };
    let work = world.path("agent");
    let cloned = ok(agent(&["clone", &world.upstream.url()]).arg(&work));
    assert_eq!(
        rev(&work, "HEAD"),
        seed.main,
        "the clone checks out upstream's main"
    );
    assert_eq!(rev(&work, "origin/claude/existing"), seed.existing);
    assert_eq!(
        rev(&work, "v0^{commit}"),
        rev(&work, "HEAD~1"),
        "tags come along"
    );
    assert_eq!(
        world
            .upstream
            .unauthorized
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the gate sends its credential with the first request (http.proactiveAuth)"
    );

    // A colleague pushes to the upstream directly; the agent's next fetch sees it.
    let colleague = world.colleague();
    let newer = commit(&colleague, "NEWS", "upstream moved on");
    ok(git_in(&colleague, &["push", "--quiet", "origin", "main"]));
    let mut fetch = agent(&["-C"]);
    fetch.arg(&work).args(["fetch", "origin"]);
    let fetched = ok(fetch);
    assert_eq!(rev(&work, "origin/main"), newer);

    let outputs = [cloned, fetched]
        .iter()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .collect::<String>();
    assert_token_nowhere(&gate, &outputs);
    let mirror_config =
        std::fs::read_to_string(gate.mirror("origin").join("config")).expect("mirror config");
    assert!(!mirror_config.contains(TOKEN));
    assert!(
        !mirror_config.contains("[remote"),
        "the mirror names no upstream:\n{mirror_config}"
    );
}

#[test]
fn a_fetch_of_an_unknown_remote_lists_the_served_ones() {
    let (world, _) = World::new();
    let gate = world.gate(&world.config(&[]), Some(TOKEN));
    let stderr = fails(git(&["ls-remote", &gate.url("other")]));
    assert!(
        stderr.contains(&format!(
            "remote: the gate serves: origin ({})",
            world.upstream.url()
        )),
        "{stderr}"
    );
    // The dumb protocol is not served either.
    let clone = world.path("dumb");
    let stderr = fails(
        git(&[
            "-c",
            "protocol.version=0",
            "clone",
            &format!("{}/", gate.url("origin")),
        ])
        .env("GIT_SMART_HTTP", "0")
        .arg(&clone),
    );
    assert!(stderr.contains("smart HTTP protocol only"), "{stderr}");
}

#[test]
fn a_refresh_that_fails_is_refused_with_its_reason() {
    let (world, _) = World::new();
    let gate = world.gate(&world.config(&[]), Some("not-the-token"));
    let stderr = fails(git(&["clone", &gate.url("origin")]).arg(world.path("agent")));
    assert!(
        stderr.contains(&format!(
            "remote: the gate could not refresh origin from {}",
            world.upstream.url()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Authentication failed"), "{stderr}");
    assert!(!stderr.contains("not-the-token"));
    assert!(!gate.log_text().contains("not-the-token"));
    assert_token_nowhere(&gate, &stderr);
}

#[test]
fn a_missing_token_stops_the_gate_at_start() {
    let (world, _) = World::new();
    let (status, stderr) = start_failing(&world, &world.config(&["claude/*"]));
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "remote origin: the token variable {TOKEN_ENV} is not set"
        )),
        "{stderr}"
    );
}

#[test]
fn the_gate_serves_after_a_restart_on_its_old_mirrors() {
    let (world, seed) = World::new();
    let config = world.config(&["claude/*"]);
    let first = world.gate(&config, Some(TOKEN));
    // Once this answers, no refresh of the first gate runs on (a killed gate's git would).
    ok(git(&["ls-remote", &first.url("origin")]));
    let mirror = first.mirror("origin");
    drop(first);
    // As a gate killed in the middle of a refresh leaves it.
    std::fs::write(mirror.join("refs/heads/main.lock"), "").expect("stale lock");
    let gate = world.gate(&config, Some(TOKEN));
    let work = agent_clone(&world, &gate, "agent");
    assert_eq!(rev(&work, "HEAD"), seed.main);
}
