//! Per-request overhead of the egress chain on a keep-alive connection: the same HTTPS request
//! loop (Python's http.client, one connection, one TLS session) run inside the bottle through the
//! chain (agent relay → relay sidecar → egress-proxy → pipelock stand-in → test internet) and, for
//! the baseline, from a container on the bottle's egress network straight to the test internet.
//! Target: p50 overhead ≤ 3 ms.
//!
//! Run with `cargo bench -p claude-bottle-e2e --bench egress_overhead` (needs the engine and the
//! base image, like the end-to-end tests). It measures the pipelock stand-in and, when
//! `CLAUDE_BOTTLE_E2E_PIPELOCK_IMAGE` names one, a real pipelock image, in one run. The route has no
//! credential, so the chain is relay → pipelock (intercepting and scanning) → test internet.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use claude_bottle_e2e::{TestBottle, TestInternet, docker};

const HOST: &str = "bench.internet.test";
const REQUESTS: usize = 500;
const WARMUP: usize = 50;

/// Times `REQUESTS` GETs on one keep-alive connection after `WARMUP` ones; prints
/// `<label> p50=<ms> p90=<ms> p99=<ms>`. argv: label host n warmup [cafile] (chain: through
/// $HTTPS_PROXY with a CONNECT tunnel).
const MEASURE: &str = r#"
import http.client, os, ssl, sys, time, urllib.parse
label, host, n, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.create_default_context(cafile=sys.argv[5] if len(sys.argv) > 5 else None)
proxy = os.environ.get("HTTPS_PROXY")
for _ in range(600):
    try:
        if proxy:
            p = urllib.parse.urlsplit(proxy)
            c = http.client.HTTPSConnection(p.hostname, p.port, context=ctx, timeout=10)
            c.set_tunnel(host, 443)
        else:
            c = http.client.HTTPSConnection(host, 443, context=ctx, timeout=10)
        c.request("GET", "/ready"); r = c.getresponse(); r.read()
        if r.status == 200:
            break
    except Exception:
        time.sleep(0.1)
times = []
reconnects = 0
for i in range(warm + n):
    t = time.perf_counter()
    try:
        c.request("GET", "/bench"); r = c.getresponse(); r.read()
    except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
        # The hop closed the keep-alive connection: a client opens a new one (CONNECT and TLS
        # again), and that cost is part of what the request took.
        reconnects += 1
        c.close()
        c.request("GET", "/bench"); r = c.getresponse(); r.read()
    assert r.status == 200, r.status
    if i >= warm:
        times.append(time.perf_counter() - t)
times.sort()
q = lambda f: times[int(f * (len(times) - 1))] * 1e3
print(f"{label} p50={q(0.5):.3f} p90={q(0.9):.3f} p99={q(0.99):.3f} reconnects={reconnects}", flush=True)
"#;

/// The same loop with curl, which negotiates HTTP/2 where the hop offers it (pipelock does; its
/// HTTP/1.1 interception closes the connection after each request): one curl, `n + warm` URLs on
/// one connection; prints `<label> p50=… p90=… p99=… connects=<new connections>`.
const MEASURE_CURL: &str = r#"
import subprocess, sys
label, host, n, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cmd = ["curl", "-s", "-w", "%{time_total} %{num_connects}\\n"]
if len(sys.argv) > 5:
    cmd += ["--cacert", sys.argv[5]]
cmd += ["-o", "/dev/null", "https://%s/bench" % host] * (warm + n)
out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split("\n")
rows = [l.split() for l in out if l.strip()][warm:]
times = sorted(float(t) for t, _ in rows)
connects = sum(int(c) for _, c in rows)
q = lambda f: times[int(f * (len(times) - 1))] * 1e3
print(f"{label} p50={q(0.5):.3f} p90={q(0.9):.3f} p99={q(0.99):.3f} connects={connects}", flush=True)
"#;

fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(d) = rt.block_on(docker()) else {
        return;
    };
    println!(
        "egress chain per-request latency, keep-alive, {REQUESTS} requests after {WARMUP} warm-up:"
    );
    for (label, image) in claude_bottle_e2e::bench_pipelocks() {
        let (chains, direct_out) = measure(&rt, &d, &image);
        println!("  with the {label}:");
        for (client, chain) in [
            ("python http.client, HTTP/1.1", &chains[0]),
            ("curl", &chains[1]),
        ] {
            let key = if client == "curl" {
                "direct-curl "
            } else {
                "direct "
            };
            let direct_line = direct_out
                .lines()
                .find(|l| l.starts_with(key))
                .expect("figure");
            println!("   {client}:");
            println!("    {chain}");
            println!("    {direct_line}");
            for q in ["p50=", "p90=", "p99="] {
                let overhead = field(chain, q) - field(direct_line, q);
                let target = if q == "p50=" {
                    "  (target <= 3.000)"
                } else {
                    ""
                };
                println!(
                    "    overhead {}  {overhead:>7.3} ms{target}",
                    q.trim_end_matches('=')
                );
            }
        }
    }
}

/// One bottle with `pipelock` as its last hop: the chain's figure line and the baseline's output.
fn measure(
    rt: &tokio::runtime::Runtime,
    d: &bollard::Docker,
    pipelock: &str,
) -> (Vec<String>, String) {
    let yaml = format!("egress_proxy:\n  routes:\n    - host: {HOST}\n");
    // The agent measures, then idles until the bench has taken its baseline and stops the launcher.
    let script = format!(
        "python3 -c '{}' chain {HOST} {REQUESTS} {WARMUP}; python3 -c '{}' chain-curl {HOST} {REQUESTS} {WARMUP}; sleep 120",
        MEASURE.replace('\'', "'\\''"),
        MEASURE_CURL.replace('\'', "'\\''")
    );
    let bottle = TestBottle::new("overhead", &yaml, &["/bin/sh", "-c", &script]);
    let slug = bottle.slug();
    let (ca_file, leaf) = TestInternet::prepare(&bottle.path().join("ca"), &[HOST]);
    let err_file = bottle.path().join("launcher.err");
    let mut child = bottle
        .command(&["start", "--yes", &bottle.name])
        .env(claude_bottle::config::ENV_PIPELOCK_IMAGE, pipelock)
        .env("CLAUDE_BOTTLE_UPSTREAM_CA", &ca_file)
        .env(
            claude_bottle::config::ENV_ALLOW_PRIVATE_CIDRS,
            claude_bottle_e2e::TEST_INTERNET_CIDRS,
        )
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_file).expect("err"))
        .spawn()
        .expect("spawn launcher");
    let stdout = child.stdout.take().expect("stdout");
    let internet = rt.block_on(TestInternet::attach(
        d,
        &bottle,
        &mut child,
        &err_file,
        &[HOST],
        ca_file.clone(),
        &leaf,
    ));
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let mut chains = Vec::new();
    for prefix in ["chain ", "chain-curl "] {
        let found = lines.find(|l| l.starts_with(prefix)).unwrap_or_else(|| {
            panic!(
                "the agent printed no {prefix}figure:\n{}",
                std::fs::read_to_string(&err_file).unwrap_or_default()
            )
        });
        chains.push(found);
    }

    // The baseline: the same loop from the egress network, no proxy, trusting the test CA.
    let network = claude_bottle::backend::docker::network_name(
        &slug,
        claude_bottle::backend::NetworkAttachment::Egress,
    );
    let image = claude_bottle_e2e::images::test_internet(claude_bottle_e2e::BASE_IMAGE)
        .expect("recipe")
        .tag;
    let mut direct_out = String::new();
    for (script, label) in [(MEASURE, "direct"), (MEASURE_CURL, "direct-curl")] {
        let direct = Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                &network,
                "--label",
                &format!("{}={slug}", claude_bottle::plan::LABEL_BOTTLE),
                "-v",
                &format!("{}:/ca.pem:ro", ca_file.display()),
                "--entrypoint",
                "python3",
                &image,
                "-c",
                script,
                label,
                HOST,
                &REQUESTS.to_string(),
                &WARMUP.to_string(),
                "/ca.pem",
            ])
            .output()
            .expect("docker run");
        assert!(
            direct.status.success(),
            "baseline failed: {}",
            String::from_utf8_lossy(&direct.stderr)
        );
        direct_out.push_str(&String::from_utf8_lossy(&direct.stdout));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    drop(internet);

    (chains, direct_out)
}
