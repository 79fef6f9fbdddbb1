//! `start --dry-run` on a 50-route bottle: the whole process (target ≤ 30 ms) and the in-process
//! load → plan → preflight part of it. Run with `cargo bench -p claude-bottle --bench dry_run`.

use std::fmt::Write as _;
use std::process::{Command, Stdio};

use claude_bottle::home::Home;
use claude_bottle::plan;
use criterion::{Criterion, criterion_group, criterion_main};

/// A home with `bottles/bench.md`: 50 routes, half of them credentialed, plus env and git.
fn home_with_50_routes() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("bottles")).expect("mkdir");
    let mut yaml = String::from(
        "---\nenv: [HOME, \"MODE=bench\"]\ngit:\n  - name: origin\n    upstream: git@example.com:a/b.git\n    push: [\"claude/*\"]\negress_proxy:\n  routes:\n",
    );
    for i in 0..50 {
        let _ = write!(yaml, "    - host: api{i}.example.com\n      path: /v{i}/\n");
        if i % 2 == 0 {
            let _ = write!(
                yaml,
                "      auth_scheme: bearer\n      token_ref: env:TOKEN_{i}\n"
            );
        }
    }
    yaml.push_str("---\nBenchmark bottle.\n");
    std::fs::write(dir.path().join("bottles/bench.md"), yaml).expect("write bottle");
    dir
}

fn bench(c: &mut Criterion) {
    let home_dir = home_with_50_routes();
    let home = Home::new(home_dir.path());
    let config = claude_bottle::config::Config::default();

    c.bench_function(
        "dry-run in process (load, plan, preflight), 50 routes",
        |b| {
            b.iter(|| {
                let p = plan::load(&home, &config, "bench").expect("valid bottle");
                std::hint::black_box(plan::render_preflight(&p));
            });
        },
    );

    let exe = env!("CARGO_BIN_EXE_claude-bottle");
    c.bench_function(
        "claude-bottle start --dry-run (whole process), 50 routes",
        |b| {
            b.iter(|| {
                let status = Command::new(exe)
                    .args(["start", "--dry-run", "bench"])
                    .env("CLAUDE_BOTTLE_HOME", home_dir.path())
                    .stdout(Stdio::null())
                    .status()
                    .expect("run claude-bottle");
                assert!(status.success());
            });
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
