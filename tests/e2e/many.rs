//! Four bottles on one host at once: each with supervise and the egress chain, each files and gets a
//! capability approved, each resumes on its own rebuilt image; no bottle reaches another's chain,
//! queue or state; `stop` of one leaves the others running.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use claude_bottle_e2e::{LABEL_BOTTLE, TestBottle, assert_clean, docker, wait_for_proposal};

const BOTTLES: usize = 4;

/// First run: ask for this bottle's own marker, then idle until replaced. Resumed: list the markers
/// its image has (its own only), then stay up so a neighbour's `stop` can be seen not to touch it.
const AGENT: &str = r#"
n="$1"
if [ -e "/marker-$n" ]; then
  echo "RESUMED $n markers: $(ls / | grep '^marker-' | tr '\n' ' ')"
  sleep 600
  exit 0
fi
claude-bottle-shim request capability --dockerfile-line "RUN touch /marker-$n" --reason "bottle $n needs its marker"
sleep 600
"#;

fn agent_name(b: &TestBottle) -> String {
    format!("{}-agent", b.slug())
}

async fn running(d: &Docker, container: &str) -> bool {
    d.inspect_container(container, None)
        .await
        .ok()
        .and_then(|c| c.state)
        .and_then(|s| s.running)
        .unwrap_or(false)
}

/// Wait until `file` holds `needle`; fail with the launcher's stderr if `deadline` passes.
fn wait_for_output(file: &std::path::Path, err: &std::path::Path, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {} after {within:?}:\n{text}\n{}",
            file.display(),
            std::fs::read_to_string(err).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every bind mount of `container` comes from `home` (its own state and run folders) but the
/// launcher's binaries, read-only; none from another bottle's home: the agent's only ways out (the relay and supervise sockets, the queue)
/// are its own.
async fn mounts_only_from(d: &Docker, container: &str, home: &std::path::Path, others: &[String]) {
    let c = d
        .inspect_container(container, None)
        .await
        .expect("inspect agent");
    let mounts = c.mounts.unwrap_or_default();
    let bins = claude_bottle_e2e::bin_dir();
    assert!(!mounts.is_empty(), "{container} has no mounts");
    for m in mounts {
        let source = m.source.unwrap_or_default();
        // The launcher's own binaries (the shim) are shared, read-only; nothing else is.
        let shared_binary = m.rw == Some(false) && source.starts_with(&*bins.to_string_lossy());
        if m.typ.as_deref() == Some("bind") && !shared_binary {
            assert!(
                source.starts_with(&*home.to_string_lossy()),
                "{container} mounts {source}, outside its own home {}",
                home.display()
            );
        }
        for other in others {
            assert!(
                !source.contains(other.as_str()),
                "{container} mounts {source}, which belongs to bottle {other}"
            );
        }
    }
}

#[tokio::test]
async fn four_bottles_start_at_once_each_resumes_on_its_own_image_and_stop_touches_one() {
    let Some(d) = docker().await else { return };
    let bottles: Vec<TestBottle> = (0..BOTTLES)
        .map(|n| {
            let b = TestBottle::new("many", "supervise: true\n", &[]);
            b.write_agent_resuming(&["/bin/sh", "-c", AGENT, "agent", &n.to_string()], &[]);
            b
        })
        .collect();
    let slugs: Vec<String> = bottles.iter().map(TestBottle::slug).collect();

    // All four launchers at the same moment.
    let started = Instant::now();
    let mut children: Vec<Child> = bottles
        .iter()
        .map(|b| {
            b.command(&["-v", "start", "--yes", &b.name])
                .stdout(std::fs::File::create(b.path().join("out")).expect("out"))
                .stderr(std::fs::File::create(b.path().join("err")).expect("err"))
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn launcher")
        })
        .collect();
    let guard = KillOnDrop(&mut children);

    // Each files its own proposal, into its own queue only.
    let mut ids = Vec::new();
    for (n, b) in bottles.iter().enumerate() {
        ids.push(wait_for_proposal(b, &format!("/marker-{n}")).await);
    }
    let all_filed = started.elapsed();
    for (n, b) in bottles.iter().enumerate() {
        let dir = b
            .path()
            .join("state")
            .join(b.slug())
            .join("queue/proposals");
        let texts: Vec<String> = std::fs::read_dir(&dir)
            .expect("queue")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .map(|e| std::fs::read_to_string(e.path()).expect("proposal"))
            .collect();
        assert_eq!(texts.len(), 1, "bottle {n}'s queue: {texts:?}");
        assert!(texts[0].contains(&format!("/marker-{n}")), "{}", texts[0]);
        let others = slugs
            .iter()
            .filter(|s| **s != b.slug())
            .cloned()
            .collect::<Vec<_>>();
        mounts_only_from(&d, &agent_name(b), b.path(), &others).await;
    }

    // Approve all four at once; each rebuilds and resumes on its own image.
    let approvals: Vec<_> = bottles
        .iter()
        .zip(&ids)
        .map(|(b, id)| b.command(&["approve", id]).spawn().expect("approve"))
        .collect();
    for (n, mut a) in approvals.into_iter().enumerate() {
        assert!(
            a.wait().expect("approve").success(),
            "approve of bottle {n}"
        );
    }
    let mut images = HashMap::new();
    for (n, b) in bottles.iter().enumerate() {
        wait_for_output(
            &b.path().join("out"),
            &b.path().join("err"),
            &format!("RESUMED {n} markers: marker-{n} \n"),
            Duration::from_secs(240),
        );
        let agent = d
            .inspect_container(&agent_name(b), None)
            .await
            .expect("inspect resumed agent");
        let image = agent.config.and_then(|c| c.image).expect("agent image");
        assert!(
            image.starts_with(&format!("claude-bottle/{}:", b.slug())),
            "bottle {n} runs {image}"
        );
        assert!(images.insert(image.clone(), n).is_none(), "{image} shared");
        let err = std::fs::read_to_string(b.path().join("err")).expect("err");
        assert!(
            err.contains(&format!("capability {} applied", ids[n])),
            "{err}"
        );
    }
    eprintln!(
        "four bottles: all proposals filed {:.1} s after the launches, all resumed {:.1} s",
        all_filed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // `stop` of the first: its launcher ends, the other three keep every container running.
    let mut before = Vec::new();
    for slug in &slugs[1..] {
        let names = containers_of(&d, slug).await;
        assert!(names.len() >= 3, "{slug}: {names:?}");
        before.extend(names);
    }
    let out = bottles[0]
        .command(&["stop", &bottles[0].name])
        .output()
        .expect("stop");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(&d, &slugs[0]).await;
    for name in &before {
        assert!(running(&d, name).await, "{name} stopped with bottle 0");
    }
    for (b, slug) in bottles.iter().zip(&slugs).skip(1) {
        let out = b.command(&["stop", &b.name]).output().expect("stop");
        assert_eq!(out.status.code(), Some(0), "stop {slug}");
    }
    // Each launcher ends on its own once its bottle is stopped.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (n, c) in guard.0.iter_mut().enumerate() {
        while c.try_wait().expect("launcher").is_none() {
            assert!(
                Instant::now() < deadline,
                "launcher {n} still runs after stop"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for slug in &slugs {
        assert_clean(&d, slug).await;
    }
}

/// The names of every container labelled with bottle `slug`.
async fn containers_of(d: &Docker, slug: &str) -> Vec<String> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_BOTTLE}={slug}")])]);
    d.list_containers(Some(bollard::query_parameters::ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    }))
    .await
    .expect("list containers")
    .into_iter()
    .flat_map(|c| c.names.unwrap_or_default())
    .map(|n| n.trim_start_matches('/').to_string())
    .collect()
}

/// Kills the launchers when the test ends, passed or not (the bottles' drop removes the rest).
struct KillOnDrop<'a>(&'a mut Vec<Child>);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        for c in self.0.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
