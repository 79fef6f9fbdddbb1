//! Many bottles at once: four `claude-bottle start`s (supervise and the whole egress chain, as a
//! credential route makes it: relay, egress-proxy and pipelock; images cached) launched at the same
//! moment, the time until all four agents run, against four bare `docker run`s of the same image
//! started at the same moment; and the memory of one bottle while it runs: the launcher's resident
//! set and each container's usage as the engine counts it (cgroup, page cache excluded).
//!
//! Run with `cargo bench -p claude-bottle-e2e --bench many_bottles` (needs the engine and the base
//! image, like the end-to-end tests). Prints every round, then medians with their spread.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bollard::Docker;
use claude_bottle_e2e::{LABEL_BOTTLE, TEST_AGENT_IMAGE, TestBottle, docker};

const BOTTLES: usize = 4;
const ROUNDS: usize = 5;
const READY: &str = "AGENT-READY";
/// How long each agent stays up after it is ready, so its bottle can be measured while it runs.
const HOLD_SECS: u32 = 8;
/// The variable the bottles' credential route reads its token from.
const TOKEN_ENV: &str = "BENCH_EGRESS_TOKEN";

/// Spawn every command at once; return the time from the first spawn until the last printed
/// [`READY`], and the children (still running).
fn all_ready(cmds: Vec<Command>) -> (Duration, Vec<Child>) {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let mut children = Vec::new();
    for (n, mut cmd) in cmds.into_iter().enumerate() {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains(READY) {
                    let _ = tx.send((n, start.elapsed()));
                }
            }
        });
        children.push(child);
    }
    drop(tx);
    let mut last = Duration::ZERO;
    for _ in 0..children.len() {
        let (_, at) = rx
            .recv_timeout(Duration::from_secs(300))
            .expect("an agent never printed its ready line");
        last = last.max(at);
    }
    (last, children)
}

fn wait_all(children: Vec<Child>) {
    for mut c in children {
        let status = c.wait().expect("wait");
        assert!(status.success(), "a run failed: {status}");
    }
}

/// `VmRSS` of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `(container, MiB)` for every running container of bottle `slug`: the engine's memory usage
/// without the page cache (what `docker stats` shows on cgroup v1).
async fn container_memory(d: &Docker, slug: &str) -> Vec<(String, f64)> {
    use futures_util::StreamExt as _;
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_BOTTLE}={slug}")],
    )]);
    let list = d
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .expect("list containers");
    // One-shot stats (no second sample to wait for), all containers at once.
    let reads = list.into_iter().map(|c| async move {
        let name = c.names.unwrap_or_default().concat();
        let name = name
            .trim_start_matches('/')
            .trim_start_matches(slug)
            .trim_start_matches('-')
            .to_string();
        let opts = bollard::query_parameters::StatsOptions {
            stream: false,
            one_shot: true,
        };
        let id = c.id.unwrap_or_default();
        let stats = d.stats(&id, Some(opts)).next().await?.ok()?;
        let mem = stats.memory_stats?;
        let cache = mem
            .stats
            .as_ref()
            .and_then(|s| s.get("cache").copied())
            .unwrap_or(0);
        let used = mem.usage?.saturating_sub(cache);
        Some((name, used as f64 / 1048576.0))
    });
    let mut out: Vec<(String, f64)> = futures_util::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "median {:.2} s ({:.2}–{:.2})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    )
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(d) = rt.block_on(docker()) else {
        return;
    };
    let agent = format!("echo {READY}; sleep {HOLD_SECS}");
    // The whole chain: a credential route makes the egress-proxy run beside relay and pipelock.
    let yaml = format!(
        "supervise: true\negress_proxy:\n  routes:\n    - host: api.bench.test\n      auth_scheme: \
         bearer\n      token_ref: env:{TOKEN_ENV}\n"
    );
    let bottles: Vec<TestBottle> = (0..BOTTLES)
        .map(|_| TestBottle::new("many-bench", &yaml, &["/bin/true"]))
        .collect();
    let start = |b: &TestBottle| {
        let mut c = b.command(&["start", "--yes", &b.name]);
        c.env(TOKEN_ENV, "bench-token-not-a-secret");
        c
    };
    // Images and state made once, one bottle at a time: the rounds measure warm starts.
    for b in &bottles {
        let out = start(b).output().expect("warm-up start");
        assert!(
            out.status.success(),
            "warm-up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        b.write_agent(&["/bin/sh", "-c", &agent]);
    }

    let mut bottled = Vec::new();
    let mut bare = Vec::new();
    for round in 1..=ROUNDS {
        let cmds = bottles.iter().map(start).collect();
        let (took, children) = all_ready(cmds);
        if round == 1 {
            // One bottle's memory while all four run, once the sidecars that start beside the
            // agent (the chain's) are up too.
            std::thread::sleep(Duration::from_secs(u64::from(HOLD_SECS) / 2));
            let pid = children[0].id();
            let launcher = rss_kib(pid) as f64 / 1024.0;
            let sidecars = rt.block_on(container_memory(&d, &bottles[0].slug()));
            let total: f64 = sidecars.iter().map(|(_, m)| m).sum::<f64>() + launcher;
            let list = sidecars
                .iter()
                .map(|(n, m)| format!("{n} {m:.1} MiB"))
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "memory of one bottle: launcher {launcher:.1} MiB (VmRSS); containers: {list}; \
                 total {total:.1} MiB"
            );
        }
        wait_all(children);

        let cmds = (0..BOTTLES)
            .map(|_| {
                let mut c = Command::new("docker");
                c.args([
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    TEST_AGENT_IMAGE,
                    "/bin/sh",
                    "-c",
                    &format!("echo {READY}; sleep 1"),
                ]);
                c
            })
            .collect();
        let (bare_took, children) = all_ready(cmds);
        wait_all(children);
        println!(
            "round {round}: four bottles all running after {:.2} s, four bare docker runs after \
             {:.2} s",
            took.as_secs_f64(),
            bare_took.as_secs_f64()
        );
        bottled.push(took.as_secs_f64());
        bare.push(bare_took.as_secs_f64());
    }
    println!(
        "four bottles at once: {}; four bare docker runs: {}",
        spread(bottled),
        spread(bare)
    );
}
