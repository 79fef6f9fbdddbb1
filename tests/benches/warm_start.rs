//! Warm start: `claude-bottle start` (images cached) until the agent process runs, against a bare
//! `docker run` of the same image, measured in one run; target ratio ≤ 1.25.
//!
//! Run with `cargo bench -p claude-bottle-e2e --bench warm_start` (needs the engine and the base
//! image, like the end-to-end tests). Prints the medians and the ratio, for the pipelock stand-in
//! and, when `CLAUDE_BOTTLE_E2E_PIPELOCK_IMAGE` names one, a real pipelock image, in one run. Under
//! `CLAUDE_BOTTLE_E2E_RUNTIME=runsc` (an engine with gVisor: `scripts/side-engine.sh --runsc`) both
//! the bottle and the bare `docker run` run under runsc.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use claude_bottle_e2e::{TestBottle, docker};

const ROUNDS: usize = 7;
const READY: &str = "AGENT-READY";

/// Spawn `cmd`, return the time until it prints [`READY`] on stdout, then wait for it to exit.
fn time_to_ready(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut ready = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read stdout");
        if ready.is_none() && line.contains(READY) {
            ready = Some(start.elapsed());
        }
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "run failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    ready.expect("the agent never printed its ready line")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(d) = rt.block_on(docker()) else {
        return;
    };
    let bottle = TestBottle::new("bench", "", &["/bin/sh", "-c", "echo AGENT-READY"]);
    let launcher = |pipelock: &str| {
        let mut c = bottle.command(&["start", "--yes", &bottle.name]);
        c.env(claude_bottle::config::ENV_PIPELOCK_IMAGE, pipelock)
            .stdin(Stdio::null());
        c
    };
    let pipelocks = claude_bottle_e2e::bench_pipelocks();
    // Warm-up: builds and caches the images.
    for (_, image) in &pipelocks {
        time_to_ready(launcher(image));
    }
    let image = rt.block_on(async {
        claude_bottle_e2e::agent_base_images(&d, &bottle.slug())
            .await
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .next()
            .expect("the agent image")
    });
    // Under the suite's runtime too (CLAUDE_BOTTLE_E2E_RUNTIME), so the ratio compares like with like.
    let runtime = claude_bottle_e2e::suite_runtime().unwrap_or_else(|| "runc".into());
    let bare = || {
        let mut c = Command::new("docker");
        c.args([
            "run",
            "--rm",
            "--runtime",
            &runtime,
            "--network",
            "none",
            &image,
            "/bin/sh",
            "-c",
            "echo AGENT-READY",
        ]);
        c
    };
    time_to_ready(bare());

    let mut ours = vec![Vec::new(); pipelocks.len()];
    let mut theirs = Vec::new();
    for _ in 0..ROUNDS {
        for (i, (_, image)) in pipelocks.iter().enumerate() {
            ours[i].push(time_to_ready(launcher(image)));
        }
        theirs.push(time_to_ready(bare()));
    }
    let spread = |v: &[Duration]| {
        let ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        let lo = ms.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ms.iter().copied().fold(0.0, f64::max);
        format!("{lo:.0}-{hi:.0} ms")
    };
    let t = median(theirs.clone());
    println!(
        "warm start until the agent runs, runtime {runtime} ({ROUNDS} rounds, medians, spread):"
    );
    println!(
        "  docker run (bare)                 {:>8.1} ms  ({})",
        t.as_secs_f64() * 1e3,
        spread(&theirs)
    );
    for ((label, _), times) in pipelocks.iter().zip(&ours) {
        let o = median(times.clone());
        let ratio = o.as_secs_f64() / t.as_secs_f64();
        println!(
            "  claude-bottle start, {label}: {:>8.1} ms  ({}), ratio {ratio:.2} (target <= 1.25)",
            o.as_secs_f64() * 1e3,
            spread(times)
        );
    }
}
