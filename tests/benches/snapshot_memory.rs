//! Snapshot memory: the launcher's peak resident set while it saves (at the agent's exit) and
//! restores (`resume`) a snapshot holding one large sparse file, for two file sizes, several
//! rounds each. Streamed snapshots keep it flat: the figure must not follow the file's size.
//!
//! Run with `cargo bench -p claude-bottle-e2e --bench snapshot_memory` (needs the engine and the
//! base image, like the end-to-end tests). The engine streams every byte of a sparse file, so each
//! round copies the file's whole size out of the container and back in; the host keeps the zeros
//! as holes.

use claude_bottle::config::ENV_SNAPSHOT_MAX_BYTES;
use claude_bottle_e2e::{Measured, TestBottle, docker, run_measuring_peak_rss};

const ROUNDS: usize = 3;
const SIZES_MIB: [u64; 2] = [256, 2048];

fn mib(m: &Measured) -> f64 {
    m.peak_rss_kib as f64 / 1024.0
}

/// `median (min-max) MiB`.
fn spread(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!(
        "{:>6.1} MiB ({:.1}-{:.1})",
        s[s.len() / 2],
        s[0],
        s[s.len() - 1]
    )
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if rt.block_on(docker()).is_none() {
        return;
    }
    println!("launcher peak RSS (VmHWM), {ROUNDS} rounds, median (min-max):");
    for size in SIZES_MIB {
        let script = format!(
            "if [ \"$1\" = resumed ]; then rm -f ~/big; else truncate -s {size}M ~/big; fi"
        );
        let bottle = TestBottle::new("benchsnap", "", &[]);
        bottle.write_agent_resuming(&["/bin/sh", "-c", &script, "agent"], &["resumed"]);
        let run = |verb: &str| {
            let mut c = bottle.command(&[verb, "--yes", &bottle.name]);
            c.env(ENV_SNAPSHOT_MAX_BYTES, format!("{}m", size * 2));
            let m = run_measuring_peak_rss(c, bottle.path());
            assert!(m.status.success(), "{verb} failed:\n{}", m.stderr);
            m
        };
        let (mut saves, mut restores) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            saves.push(mib(&run("start")));
            restores.push(mib(&run("resume")));
        }
        println!(
            "  {size:>5} MiB sparse file: save {}   restore {}",
            spread(&saves),
            spread(&restores)
        );
    }
}
