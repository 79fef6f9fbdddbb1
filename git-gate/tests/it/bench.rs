//! How long a clone of a repository with a few thousand commits takes through the gate against
//! a clone straight from the same upstream. Prints the figures; asserts only that both clones
//! got the same history.

use std::io::Write as _;
use std::process::Stdio;
use std::time::Instant;

use crate::git::{git, git_in, ok, rev};
use crate::upstream::TOKEN;
use crate::world::World;

/// Commits in the generated history (override with GATE_BENCH_COMMITS).
const COMMITS: usize = 3000;
/// Size of one incompressible blob in the last commit, in MiB (GATE_BENCH_BLOB_MB).
const BLOB_MB: usize = 5;

#[test]
fn clone_time_through_the_gate_against_direct() {
    let commits = env_usize("GATE_BENCH_COMMITS", COMMITS);
    let blob_mb = env_usize("GATE_BENCH_BLOB_MB", BLOB_MB);
    let (world, _) = World::new();
    fill(&world, commits, blob_mb);
    // As a forge keeps it: one well-deltified pack.
    ok(git_in(
        &world.upstream.repo(),
        &["repack", "-a", "-d", "-f", "--quiet"],
    ));
    let gate = world.gate(&world.config(&[]), Some(TOKEN));
    // The gate's first refresh (the mirror's initial copy) is not what is measured.
    ok(git(&["ls-remote", &gate.url("origin")]));

    let mut direct = Vec::new();
    let mut through = Vec::new();
    for i in 0..3 {
        let dir = world.path(&format!("direct{i}"));
        let t = Instant::now();
        ok(git(&["clone", "--quiet", "--bare", &world.upstream.authed_url()]).arg(&dir));
        direct.push(t.elapsed().as_secs_f64());
        let dir2 = world.path(&format!("through{i}"));
        let t = Instant::now();
        ok(git(&["clone", "--quiet", "--bare", &gate.url("origin")]).arg(&dir2));
        through.push(t.elapsed().as_secs_f64());
        assert_eq!(rev(&dir, "main"), rev(&dir2, "main"));
        std::fs::remove_dir_all(&dir).expect("rm");
        std::fs::remove_dir_all(&dir2).expect("rm");
    }
    let t = Instant::now();
    ok(git(&["ls-remote", &world.upstream.authed_url()]));
    let ls_direct = t.elapsed().as_secs_f64();
    let t = Instant::now();
    ok(git(&["ls-remote", &gate.url("origin")]));
    let ls_gate = t.elapsed().as_secs_f64();
    let (d, g) = (median(&mut direct), median(&mut through));
    eprintln!(
        "clone of {commits} commits + a {blob_mb} MiB blob (median of 3): direct {d:.2} s, through the gate {g:.2} s ({:.2}x); ls-remote direct {ls_direct:.3} s, through the gate {ls_gate:.3} s (refresh included)",
        g / d
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Adds `commits` commits to the upstream's main with `git fast-import`, the last one holding a
/// blob of `blob_mb` MiB of pseudo-random bytes.
fn fill(world: &World, commits: usize, blob_mb: usize) {
    let mut child = git_in(&world.upstream.repo(), &["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    let mut input = std::io::BufWriter::new(child.stdin.take().expect("stdin"));
    let parent = world.upstream.rev("refs/heads/main").expect("main");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..commits {
        let content = format!("line {i}\n").repeat(1 + i % 7);
        write!(
            input,
            "commit refs/heads/main\ncommitter Test <test@example.invalid> {} +0000\ndata {}\nc{i}\n",
            1_700_000_000 + i,
            format!("c{i}").len() + 1
        )
        .expect("write");
        if i == 0 {
            writeln!(input, "from {parent}").expect("write");
        }
        writeln!(
            input,
            "M 644 inline f{}.txt\ndata {}\n{content}",
            i % 97,
            content.len()
        )
        .expect("write");
        if i + 1 == commits && blob_mb > 0 {
            let mut blob = Vec::with_capacity(blob_mb << 20);
            while blob.len() < blob_mb << 20 {
                // xorshift: incompressible without a dependency.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                blob.extend_from_slice(&state.to_le_bytes());
            }
            writeln!(input, "M 644 inline big.bin\ndata {}", blob.len()).expect("write");
            input.write_all(&blob).expect("write");
            writeln!(input).expect("write");
        }
        writeln!(input).expect("write");
    }
    drop(input);
    assert!(child.wait().expect("fast-import").success());
}
