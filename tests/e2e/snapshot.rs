//! Snapshots are streamed and bounded: an agent's huge (sparse) file neither fills the launcher's
//! memory nor the host, nor costs the agent its work or the previous snapshot.

use std::path::PathBuf;

use claude_bottle::config::ENV_SNAPSHOT_MAX_BYTES;
use claude_bottle_e2e::{
    TestBottle, assert_clean, docker, leftovers, line, run_measuring_peak_rss,
};
use futures_util::StreamExt as _;

/// The launcher's peak memory must not grow with the snapshot: tens of MiB whatever its size.
const MAX_PEAK_RSS_MIB: u64 = 200;

fn latest(bottle: &TestBottle) -> PathBuf {
    bottle
        .path()
        .join("state")
        .join(bottle.slug())
        .join("snapshots/latest")
}

/// Every file of the latest snapshot with the SHA-256 of its content, sorted by name.
fn snapshot_files(bottle: &TestBottle) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(latest(bottle))
        .expect("snapshots/latest")
        .map(|e| {
            let e = e.expect("entry");
            let bytes = std::fs::read(e.path()).expect("read");
            (
                e.file_name().to_string_lossy().into_owned(),
                claude_bottle::image::digest_of(&bytes),
            )
        })
        .collect();
    files.sort();
    files
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_snapshot_past_the_limit_is_refused_and_the_agent_kept() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new(
        "snaplimit",
        "",
        &["/bin/sh", "-c", "echo first > ~/note; echo FIRST-RAN"],
    );
    let slug = bottle.slug();
    let kept = format!("{slug}-agent-kept");
    let start = || {
        let mut c = bottle.command(&["start", "--yes", &bottle.name]);
        c.env(ENV_SNAPSHOT_MAX_BYTES, "64m");
        c
    };
    let first = start().output().expect("first start");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let before = snapshot_files(&bottle);
    assert!(before.iter().any(|(n, _)| n == "index"), "{before:?}");

    // The hostile agent: a 6 GiB sparse file (no disk in the container), named with a terminal
    // escape. The engine streams it as 6 GiB of zeros.
    bottle.write_agent(&[
        "/bin/sh",
        "-c",
        "echo second > ~/note; truncate -s 6G \"$HOME/big$(printf '\\033[2J')\"; echo SECOND-RAN",
    ]);
    let t = std::time::Instant::now();
    let second = start().output().expect("second start");
    let took = t.elapsed();
    let stderr = text(&second.stderr);
    assert!(text(&second.stdout).contains("SECOND-RAN"), "{stderr}");
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    for want in [
        "failed to save the agent's snapshot: it is larger than snapshot_max_bytes (64 MiB)",
        "refused at /home/agent/big\\x1b[2J (6 GiB, 6442450944 bytes), before reading it",
        &format!("kept: the agent's container {kept}, stopped"),
        &format!("claude-bottle resume {}", bottle.name),
        &format!("claude-bottle stop {}", bottle.name),
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "the agent's escape reached the terminal:\n{stderr}"
    );
    println!("refused a 6 GiB file with a 64 MiB limit; the whole run took {took:?}");

    // Only the kept agent is left, and it holds the second run's files.
    let (containers, networks, volumes) = leftovers(&d, &slug).await;
    assert_eq!(containers, [format!("/{kept}")], "{stderr}");
    assert!(
        networks.is_empty() && volumes.is_empty(),
        "{networks:?} {volumes:?}"
    );
    let opts = bollard::query_parameters::DownloadFromContainerOptions {
        path: "/home/agent/note".into(),
    };
    let mut tar = Vec::new();
    let mut stream = d.download_from_container(&kept, Some(opts));
    while let Some(chunk) = stream.next().await {
        tar.extend_from_slice(&chunk.expect("copy the note out"));
    }
    assert!(
        text(&tar).contains("second"),
        "the kept agent lost its files"
    );
    // The previous snapshot is whole, and nothing of the refused one is on disk.
    assert_eq!(snapshot_files(&bottle), before);

    // The next start saves the kept agent first; with the limit unchanged it refuses again and
    // keeps it, before running anything.
    bottle.write_agent(&["/bin/sh", "-c", "echo THIRD-RAN"]);
    let third = start().output().expect("third start");
    let stderr = text(&third.stderr);
    assert_eq!(third.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("saving the agent an earlier session") && stderr.contains(&kept),
        "{stderr}"
    );
    assert!(!text(&third.stdout).contains("THIRD-RAN"));
    assert_eq!(leftovers(&d, &slug).await.0, [format!("/{kept}")]);
    assert_eq!(snapshot_files(&bottle), before);

    // `stop` is how the operator discards it.
    let stop = bottle
        .command(&["stop", &bottle.name])
        .output()
        .expect("stop");
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop.stderr));
    assert!(
        text(&stop.stdout).contains(&format!("removed container {kept}")),
        "{}",
        text(&stop.stdout)
    );
    assert_clean(&d, &slug).await;
}

#[tokio::test]
async fn a_kept_agent_is_saved_by_the_next_resume_once_the_limit_allows() {
    let Some(d) = docker().await else { return };
    let script = "if [ \"$1\" = resumed ]; then \
                    echo \"RESUMED $(sha256sum < ~/data | cut -c1-64) $(cat ~/note)\"; \
                  else \
                    head -c 3145728 /dev/urandom > ~/data; echo hello > ~/note; \
                    echo \"MADE $(sha256sum < ~/data | cut -c1-64)\"; \
                  fi";
    let bottle = TestBottle::new("snapkept", "", &[]);
    bottle.write_agent_resuming(&["/bin/sh", "-c", script, "agent"], &["resumed"]);
    let slug = bottle.slug();
    let first = bottle
        .command(&["start", "--yes", &bottle.name])
        .env(ENV_SNAPSHOT_MAX_BYTES, "1m")
        .output()
        .expect("start");
    let stdout = text(&first.stdout);
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stderr));
    let made = line(&stdout, "MADE").to_owned();
    assert_eq!(
        leftovers(&d, &slug).await.0,
        [format!("/{slug}-agent-kept")]
    );

    let resumed = bottle
        .command(&["resume", "--yes", &bottle.name])
        .env(ENV_SNAPSHOT_MAX_BYTES, "16m")
        .output()
        .expect("resume");
    let stderr = text(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "saved it as the latest snapshot and removed {slug}-agent-kept"
        )),
        "{stderr}"
    );
    let stdout = text(&resumed.stdout);
    assert_eq!(
        line(&stdout, "RESUMED"),
        format!("{made} hello"),
        "{stderr}"
    );
    assert_clean(&d, &slug).await;
}

#[tokio::test]
async fn the_launchers_memory_stays_bounded_saving_and_restoring_a_large_sparse_file() {
    let Some(d) = docker().await else { return };
    const SIZE: u64 = 2 << 30;
    let script = "if [ \"$1\" = resumed ]; then \
                    echo \"SIZE $(python3 -c 'import os; print(os.stat(os.path.expanduser(\"~/big\")).st_size)')\"; rm -f ~/big; \
                  else \
                    truncate -s 2G ~/big; echo MADE; \
                  fi";
    let bottle = TestBottle::new("snaprss", "", &[]);
    bottle.write_agent_resuming(&["/bin/sh", "-c", script, "agent"], &["resumed"]);
    let run = |verb: &str| {
        let mut c = bottle.command(&[verb, "--yes", &bottle.name]);
        c.env(ENV_SNAPSHOT_MAX_BYTES, "3g");
        run_measuring_peak_rss(c, bottle.path())
    };

    let saved = run("start");
    assert!(saved.status.success(), "{}", saved.stderr);
    assert!(saved.stdout.contains("MADE"), "{}", saved.stdout);
    println!(
        "saving a {} MiB sparse file: launcher peak RSS {} MiB",
        SIZE >> 20,
        saved.peak_rss_kib >> 10
    );
    assert!(
        saved.peak_rss_kib >> 10 < MAX_PEAK_RSS_MIB,
        "the launcher's peak RSS was {} MiB saving a {} MiB file",
        saved.peak_rss_kib >> 10,
        SIZE >> 20
    );
    // The 2 GiB of zeros the engine streamed are holes on the host.
    let archive = std::fs::read_dir(latest(&bottle))
        .expect("latest")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().contains("home_agent"))
        .expect("the home's archive");
    let meta = std::fs::metadata(&archive).expect("stat");
    let allocated = std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
    println!(
        "the archive on the host: {} MiB, {} MiB allocated",
        meta.len() >> 20,
        allocated >> 20
    );
    assert!(meta.len() > SIZE, "{}", meta.len());
    assert!(allocated < 64 << 20, "{allocated} bytes allocated");

    let restored = run("resume");
    assert!(restored.status.success(), "{}", restored.stderr);
    assert_eq!(line(&restored.stdout, "SIZE"), SIZE.to_string());
    println!(
        "restoring it: launcher peak RSS {} MiB",
        restored.peak_rss_kib >> 10
    );
    assert!(
        restored.peak_rss_kib >> 10 < MAX_PEAK_RSS_MIB,
        "the launcher's peak RSS was {} MiB restoring a {} MiB file",
        restored.peak_rss_kib >> 10,
        SIZE >> 20
    );
    assert_clean(&d, &bottle.slug()).await;
}

/// Makes a file past the limit, then asks for a tool and idles until replaced.
const SWAP_AGENT: &str = r#"
if [ -e /marker ]; then echo REPLACED; exit 0; fi
echo before-swap > ~/state.txt
truncate -s 2G ~/big
claude-bottle-shim request capability --dockerfile-line "RUN touch /marker" --reason "need the marker"
sleep 300
"#;

#[tokio::test]
async fn a_swap_whose_snapshot_is_refused_keeps_the_agent_instead_of_replacing_it() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new("snapswap", "supervise: true\n", &[]);
    bottle.write_agent_resuming(&["/bin/sh", "-c", SWAP_AGENT, "agent"], &["resumed"]);
    let slug = bottle.slug();
    let kept = format!("{slug}-agent-kept");
    let out_file = bottle.path().join("agent.out");
    let child = bottle
        .command(&["start", "--yes", &bottle.name])
        .env(ENV_SNAPSHOT_MAX_BYTES, "64m")
        .stdout(std::fs::File::create(&out_file).expect("out file"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn launcher");
    let id = claude_bottle_e2e::wait_for_proposal(&bottle, "touch /marker").await;
    let approve = bottle.command(&["approve", &id]).output().expect("approve");
    assert_eq!(approve.status.code(), Some(0), "{}", text(&approve.stderr));

    let done = child.wait_with_output().expect("launcher");
    let stderr = text(&done.stderr);
    let stdout = std::fs::read_to_string(&out_file).expect("agent output");
    assert_eq!(done.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("REPLACED"),
        "the agent was replaced:\n{stdout}"
    );
    for want in [
        "refused at /home/agent/big (2 GiB, 2147483648 bytes), before reading it",
        &format!("kept: the agent's container {kept}, stopped"),
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    let applied = std::fs::read_to_string(
        bottle
            .path()
            .join("state")
            .join(&slug)
            .join(format!("queue/applied/{id}.json")),
    )
    .expect("applied record");
    assert!(
        applied.contains("the agent's snapshot failed, so it was not replaced"),
        "{applied}"
    );
    // Only the stopped agent is left, with its files; no snapshot was committed.
    assert_eq!(
        leftovers(&d, &slug).await.0,
        [format!("/{kept}")],
        "{stderr}"
    );
    let opts = bollard::query_parameters::DownloadFromContainerOptions {
        path: "/home/agent/state.txt".into(),
    };
    let mut tar = Vec::new();
    let mut stream = d.download_from_container(&kept, Some(opts));
    while let Some(chunk) = stream.next().await {
        tar.extend_from_slice(&chunk.expect("copy the state out"));
    }
    assert!(text(&tar).contains("before-swap"));
    let index = latest(&bottle).join("index");
    assert!(!index.exists(), "a refused snapshot was committed");

    let stop = bottle
        .command(&["stop", &bottle.name])
        .output()
        .expect("stop");
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop.stderr));
    assert_clean(&d, &slug).await;
}

/// Two Claude Code session transcripts last written within one second: the engine's archive keeps
/// whole seconds, so they come back with equal times and `claude --continue` (newest `mtime`
/// first) could resume the earlier session. The entrypoint's `claude-setup` orders them by their
/// last records again. A stand-in `claude` is in the image: the entrypoint runs `claude-setup`
/// only where Claude Code is installed; no model is needed.
#[tokio::test]
async fn transcripts_written_within_one_second_come_back_in_the_order_they_were_written() {
    let Some(d) = docker().await else { return };
    // The later session's file sorts first, so the archive restores it first.
    // Modification times with nanoseconds, as `stat -c %.9Y` prints them; python's, not
    // coreutils': under gVisor before release-20230227 coreutils' stat fails (docs/gvisor.md).
    let script = r#"p=$HOME/.claude/projects/-workspace
mtimes() { python3 -c 'import os, sys; print(" ".join("%d.%09d" % divmod(os.stat(f).st_mtime_ns, 10**9) for f in sys.argv[1:]))' "$@"; }
if [ "$1" = resumed ]; then
  echo "TIMES $(mtimes $p/0-later.jsonl $p/f-earlier.jsonl)"
  exit 0
fi
mkdir -p $p
record() { printf '{"type":"assistant","timestamp":"%s"}\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" > "$p/$1"; }
while [ "$(date +%N | cut -c1)" != 0 ]; do sleep 0.02; done
record f-earlier.jsonl
sleep 0.3
record 0-later.jsonl
echo "WRITTEN $(mtimes $p/0-later.jsonl $p/f-earlier.jsonl)"
"#;
    let bottle = TestBottle::new("snaptimes", "", &[]);
    std::fs::write(
        bottle.path().join("bottles/Dockerfile"),
        "FROM claude-bottle/test-agent:bookworm\nUSER root\n\
         RUN echo 'exit 0' > /usr/local/bin/claude && chmod 0755 /usr/local/bin/claude\n\
         USER agent\n",
    )
    .expect("Dockerfile");
    bottle.write_agent_resuming(&["/bin/sh", "-c", script, "agent"], &["resumed"]);
    let slug = bottle.slug();
    let times = |out: &str, key: &str| -> Vec<f64> {
        line(out, key)
            .split_whitespace()
            .map(|t| t.parse().expect("a time"))
            .collect()
    };

    let first = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("start");
    let stdout = text(&first.stdout);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let written = times(&stdout, "WRITTEN");
    assert_eq!(
        written[0].floor(),
        written[1].floor(),
        "one second: {stdout}"
    );
    assert!(written[0] > written[1], "{stdout}");

    let resumed = bottle
        .command(&["resume", "--yes", &bottle.name])
        .output()
        .expect("resume");
    let stdout = text(&resumed.stdout);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let restored = times(&stdout, "TIMES");
    assert!(
        restored[0] > restored[1],
        "the later transcript is newer again: written {written:?}, restored {restored:?}"
    );
    assert_eq!(restored[0].floor(), written[0].floor(), "its own second");
    assert_eq!(restored[1].floor(), written[1].floor(), "its own second");
    assert_clean(&d, &slug).await;
}
