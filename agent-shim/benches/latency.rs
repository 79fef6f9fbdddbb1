//! Prints the remediation loop's figures: shim call → proposal file, decision file → shim
//! answered (p50/p90/max), and supervise's idle RSS.
//!
//! `cargo build --release -p claude-bottle-supervise` first to measure the real supervise
//! binary; otherwise this program runs the supervise library in a child copy of itself.
//! Then: `cargo bench -p claude-bottle-shim --bench latency`.

#![expect(clippy::unwrap_used, reason = "a benchmark program")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use claude_bottle_protocol::wire::WaitUntil;
use claude_bottle_protocol::{Egress, HostName, ProposalKind};
use claude_bottle_shim::ops::Target;

const ROUNDS: usize = 60;
const SHIM: &str = env!("CARGO_BIN_EXE_claude-bottle-shim");

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    if std::env::var_os("BENCH_ROLE").is_some_and(|r| r == "supervise") {
        let args = claude_bottle_supervise::Args::parse_from(std::env::args_os().skip(1));
        claude_bottle_io::runtime::init_tracing("info");
        std::process::exit(
            if claude_bottle_supervise::run(args) == std::process::ExitCode::SUCCESS {
                0
            } else {
                1
            },
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let sup_sock = dir.path().join("supervise.sock");
    let shim_sock = dir.path().join("shim.sock");
    let queue = dir.path().join("queue");

    let real = Path::new(SHIM).with_file_name("claude-bottle-supervise");
    let (program, role, what) = if real.exists() {
        (real, None, "the supervise binary")
    } else {
        (
            std::env::current_exe().unwrap(),
            Some("supervise"),
            "the supervise library (no release binary found)",
        )
    };
    let mut cmd = Command::new(&program);
    if let Some(role) = role {
        cmd.env("BENCH_ROLE", role);
    }
    let supervise = Kill(
        cmd.arg("--socket")
            .arg(&sup_sock)
            .arg("--queue-dir")
            .arg(&queue)
            .arg("--config-dir")
            .arg(dir.path().join("config"))
            .args([
                "--bottle",
                "bench",
                "--max-pending",
                "100000",
                "--rate-per-minute",
                "100000000",
                "--burst",
                "100000",
            ])
            .env("CLAUDE_BOTTLE_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&sup_sock);
    let daemon = Kill(
        Command::new(SHIM)
            .arg("--socket")
            .arg(&shim_sock)
            .arg("--supervise-socket")
            .arg(&sup_sock)
            .arg("daemon")
            .env("CLAUDE_BOTTLE_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    wait_for(&shim_sock);

    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = rss_kib(supervise.0.id());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let via_daemon = Target {
        sockets: vec![shim_sock.clone()],
    };
    let direct = Target {
        sockets: vec![sup_sock.clone()],
    };

    // Shim CLI process (through the daemon) → proposal file present on the host.
    let mut cli = Vec::new();
    for i in 0..ROUNDS {
        let host = format!("cli-{i}.bench.example");
        let t = Instant::now();
        let out = Command::new(SHIM)
            .arg("--socket")
            .arg(&shim_sock)
            .arg("--supervise-socket")
            .arg(&sup_sock)
            .args(["request", "egress", &host, "--reason", "bench", "--json"])
            .output()
            .unwrap();
        let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let file = queue
            .join("proposals")
            .join(format!("{}.json", id["id"].as_str().unwrap()));
        while !file.exists() {
            std::thread::yield_now();
        }
        cli.push(t.elapsed());
    }

    // Library call through the daemon → proposal file present.
    let mut lib = Vec::new();
    for i in 0..ROUNDS {
        let t = Instant::now();
        let filed = rt
            .block_on(via_daemon.submit(
                egress(&format!("lib-{i}.bench.example")),
                "bench".into(),
                vec![],
            ))
            .unwrap();
        let file = queue.join("proposals").join(filed.id.file_name());
        while !file.exists() {
            std::thread::yield_now();
        }
        lib.push(t.elapsed());
    }

    // Decision file written → waiting shim answered (through the daemon, and directly).
    let mut decided_daemon = Vec::new();
    let mut decided_direct = Vec::new();
    for i in 0..ROUNDS {
        let target = if i % 2 == 0 { &via_daemon } else { &direct };
        let filed = rt
            .block_on(target.submit(
                egress(&format!("dec-{i}.bench.example")),
                "bench".into(),
                vec![],
            ))
            .unwrap();
        let id = filed.id.clone();
        let elapsed = rt.block_on(async {
            let waiter = {
                let target = target.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    let w = target
                        .wait(&id, Duration::from_secs(20), WaitUntil::Decided)
                        .await
                        .unwrap();
                    (Instant::now(), w)
                })
            };
            tokio::time::sleep(Duration::from_millis(30)).await;
            let t0 = Instant::now();
            let dir = queue.join("decisions");
            let tmp = dir.join(format!(".tmp-{id}"));
            std::fs::write(
                &tmp,
                format!(r#"{{"version":1,"id":"{id}","decision":"approve"}}"#),
            )
            .unwrap();
            std::fs::rename(&tmp, dir.join(id.file_name())).unwrap();
            let (t1, w) = waiter.await.unwrap();
            assert!(!w.timed_out);
            t1 - t0
        });
        if i % 2 == 0 {
            decided_daemon.push(elapsed)
        } else {
            decided_direct.push(elapsed)
        }
    }

    println!("claude-bottle remediation loop ({ROUNDS} rounds each; supervise = {what})");
    report("shim CLI process → proposal file (via daemon)", &mut cli);
    report("shim library call → proposal file (via daemon)", &mut lib);
    report(
        "decision file → shim answered (via daemon)",
        &mut decided_daemon,
    );
    report(
        "decision file → shim answered (direct)",
        &mut decided_direct,
    );
    println!(
        "supervise idle RSS: {:.1} MiB ({} KiB)",
        idle_rss as f64 / 1024.0,
        idle_rss
    );
    println!(
        "supervise RSS after {} proposals: {:.1} MiB",
        ROUNDS * 3,
        rss_kib(supervise.0.id()) as f64 / 1024.0
    );
    drop(daemon);
}

fn egress(host: &str) -> ProposalKind {
    ProposalKind::Egress(Egress {
        host: HostName::new(host).unwrap(),
        port: None,
    })
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(pick(0.5)),
        ms(pick(0.9)),
        ms(pick(1.0))
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn wait_for(sock: &PathBuf) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(sock).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} never came up",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
