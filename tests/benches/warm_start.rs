//! Warm start: `claude-bottle start` (images cached) until the agent process runs, against a bare
//! `docker run` of the same image, measured in one run; target ratio ≤ 1.5.
//!
//! Run with `cargo bench -p claude-bottle-e2e --bench warm_start` (needs the engine and the base
//! image, like the end-to-end tests). Prints the medians and the ratio.

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
    let launcher = || {
        let mut c = bottle.command(&["start", "--yes", &bottle.name]);
        c.stdin(Stdio::null());
        c
    };
    // Warm-up: builds and caches the images.
    time_to_ready(launcher());
    let image = rt.block_on(async {
        let filters = std::collections::HashMap::from([(
            "label".to_string(),
            vec![
                format!("{}={}", claude_bottle::plan::LABEL_BOTTLE, bottle.slug()),
                "claude-bottle.role=agent-base".to_string(),
            ],
        )]);
        let images = d
            .list_images(Some(bollard::query_parameters::ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .expect("list images");
        images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .next()
            .expect("the agent image")
    });
    let bare = || {
        let mut c = Command::new("docker");
        c.args([
            "run",
            "--rm",
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

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ours.push(time_to_ready(launcher()));
        theirs.push(time_to_ready(bare()));
    }
    let (o, t) = (median(ours), median(theirs));
    let ratio = o.as_secs_f64() / t.as_secs_f64();
    println!("warm start until the agent runs ({ROUNDS} rounds, medians):");
    println!("  claude-bottle start   {:>8.1} ms", o.as_secs_f64() * 1e3);
    println!("  docker run (bare)     {:>8.1} ms", t.as_secs_f64() * 1e3);
    println!("  ratio                 {ratio:>8.2}  (target <= 1.50)");
}
