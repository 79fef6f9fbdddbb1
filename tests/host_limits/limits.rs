//! Per-user kernel limits: the agent runs as uid 1000, on most machines the operator's uid, and
//! inotify instances (`fs.inotify.max_user_instances`, 128 by default) are counted per uid across
//! the host. An agent that takes them all starves every other process of that uid. supervise runs
//! as a uid of its own, so its watcher never shares the agent's count; the launcher runs as the
//! operator and falls back to polling. Both keep answering, within a bound these tests measure.
//!
//! When the tests run as root, the launcher (and the operator's commands) run as uid 1000 through
//! `setpriv`, as on a developer's machine where the operator's uid is the agent's.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use claude_bottle_e2e::{TestBottle, assert_clean, docker, line, wait_for_proposal};

/// The host's Python, by path: a shim on root's PATH may not be uid 1000's to run.
const HOST_PYTHON: &str = "/usr/bin/python3";
/// The uid the agent runs as, and the operator's in these tests.
const AGENT_UID: u32 = 1000;
/// How long an approval may take to reach the agent under exhaustion: the launcher's poll (2 s),
/// supervise's poll (2 s, when its watcher is gone too), and slack for a loaded machine.
const BOUND: Duration = Duration::from_secs(8);

/// `cmd` as uid 1000 when the tests run as root (with the Docker socket's group); as it is
/// otherwise. stdin is closed.
fn as_operator(cmd: &Command) -> Command {
    let mut out = if nix::unistd::getuid().is_root() {
        let socket_gid = std::fs::metadata("/var/run/docker.sock")
            .map(|m| m.gid())
            .expect("the Docker socket");
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={AGENT_UID}"))
            .arg(format!("--regid={AGENT_UID}"))
            .arg(format!("--groups={socket_gid}"))
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        c
    } else {
        let mut c = Command::new(cmd.get_program());
        c.args(cmd.get_args());
        c
    };
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => out.env(k, v),
            None => out.env_remove(k),
        };
    }
    out.stdin(Stdio::null());
    out
}

/// The bottle's home, owned by the uid the launcher runs as.
fn hand_over(bottle: &TestBottle) {
    if nix::unistd::getuid().is_root() {
        let status = Command::new("chown")
            .args(["-R", &format!("{AGENT_UID}:{AGENT_UID}")])
            .arg(bottle.path())
            .status()
            .expect("chown");
        assert!(status.success());
    }
}

/// Seconds since the epoch, as the agent prints them (one clock: the host's).
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Whether a new process of uid 1000 on the host can create an inotify instance.
fn host_uid_can_watch() -> String {
    let mut probe = Command::new(HOST_PYTHON);
    probe.args([
        "-c",
        "import ctypes; l = ctypes.CDLL(None, use_errno=True); fd = l.inotify_init1(0); \
         print('ok' if fd >= 0 else 'errno %d' % ctypes.get_errno())",
    ]);
    let out = as_operator(&probe).output().expect("probe");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A process of uid 1000 on the host that holds every inotify instance it can get, until killed.
fn hold_instances() -> (Child, usize) {
    let mut holder = Command::new(HOST_PYTHON);
    holder.args([
        "-u",
        "-c",
        "import ctypes, time\n\
         l = ctypes.CDLL(None, use_errno=True)\n\
         held = []\n\
         while len(held) < 100000:\n    fd = l.inotify_init1(0)\n    if fd < 0: break\n    held.append(fd)\n\
         print(len(held), flush=True)\n\
         time.sleep(3600)\n",
    ]);
    let mut child = as_operator(&holder)
        .stdout(Stdio::piped())
        .spawn()
        .expect("holder");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut first,
    )
    .expect("holder's count");
    (child, first.trim().parse().expect("a count"))
}

/// supervise's log lines since `since` (Unix seconds).
async fn supervise_logs(d: &bollard::Docker, slug: &str, since: i64) -> String {
    use futures_util::StreamExt as _;
    let name = claude_bottle::backend::docker::sidecar_name(slug, "supervise");
    let mut stream = d.logs(
        &name,
        Some(bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            since: i32::try_from(since).unwrap_or(0),
            ..Default::default()
        }),
    );
    let mut out = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    out
}

/// Wait until `path` holds a line starting with `key`; its rest.
async fn wait_line(path: &Path, key: &str, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(rest) = text.lines().find_map(|l| l.strip_prefix(key)) {
            return rest.trim().to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the launcher exited ({status}) before {key}:\n{text}");
        }
        assert!(Instant::now() < deadline, "no {key} line:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CPU seconds (user and system) process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the launcher's stat");
    // The fields after the command (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100);
    ticks / hz as f64
}

/// CPU seconds container `name` has used so far (the engine's stats).
async fn container_cpu_seconds(d: &bollard::Docker, name: &str) -> f64 {
    use futures_util::StreamExt as _;
    let mut stats = d.stats(
        name,
        Some(bollard::query_parameters::StatsOptions {
            stream: false,
            one_shot: true,
        }),
    );
    let s = stats.next().await.expect("stats").expect("stats");
    let ns = s
        .cpu_stats
        .and_then(|c| c.cpu_usage)
        .and_then(|u| u.total_usage)
        .expect("total CPU usage");
    ns as f64 / 1e9
}

/// Seconds from the decision file of `id` to its applied record (their mtimes): how long the
/// launcher took to notice the approval and apply it.
fn apply_delay(bottle: &TestBottle, id: &str) -> f64 {
    let queue = bottle
        .path()
        .join("state")
        .join(bottle.slug())
        .join("queue");
    let mtime = |dir: &str| {
        std::fs::metadata(queue.join(dir).join(format!("{id}.json")))
            .and_then(|m| m.modified())
            .expect("a queue record")
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64()
    };
    mtime("applied") - mtime("decisions")
}

/// Approve proposal `id` as the operator; the time it was written.
fn approve(bottle: &TestBottle, id: &str) -> f64 {
    let out = as_operator(&bottle.command(&["approve", id]))
        .output()
        .expect("approve");
    let at = now();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    at
}

/// The agent: takes every inotify instance it can and holds them, waits until the test has
/// restarted supervise (its socket's inode changes), then asks for a host and waits.
const EXHAUSTING_AGENT: &str = r#"
import ctypes, errno, os, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
held = []
while len(held) < 100000:
    fd = libc.inotify_init1(0)
    if fd < 0:
        err = ctypes.get_errno()
        break
    held.append(fd)
def is_inotify(fd):
    try:
        return os.readlink("/proc/self/fd/" + fd) == "anon_inode:inotify"
    except OSError:
        return False
print("INOTIFY-HELD", sum(1 for fd in os.listdir("/proc/self/fd") if is_inotify(fd)), flush=True)
print("INOTIFY-ERRNO", errno.errorcode.get(err, err), flush=True)
other = subprocess.run([sys.executable, "-c",
    "import ctypes; l = ctypes.CDLL(None, use_errno=True); fd = l.inotify_init1(0); "
    "print('ok' if fd >= 0 else 'errno %d' % ctypes.get_errno())"], capture_output=True, text=True)
print("INOTIFY-OTHER", other.stdout.strip(), flush=True)
# A hostile agent keeps taking every instance that another process of its uid frees.
import threading
def grab():
    while True:
        fd = libc.inotify_init1(0)
        if fd >= 0:
            held.append(fd)
        time.sleep(0.001)
threading.Thread(target=grab, daemon=True).start()
sock = "/run/claude-bottle/supervise/supervise.sock"
first = os.stat(sock).st_ino
deadline = time.time() + 240
while time.time() < deadline:
    try:
        if os.stat(sock).st_ino != first:
            break
    except FileNotFoundError:
        pass
    time.sleep(0.05)
print("SUPERVISE-RESTARTED", flush=True)
out = subprocess.run(["claude-bottle-shim", "request", "egress", "limits.example.org",
    "--reason", "measure", "--wait", "--timeout", "240"], capture_output=True, text=True)
print("ANSWERED-AT %.3f" % time.time(), flush=True)
print("WAIT-EXIT", out.returncode, flush=True)
print("WAIT-OUT", out.stdout.strip().replace("\n", " "), flush=True)
print("HELD-AT-END", len(held), flush=True)
time.sleep(3)
"#;

#[tokio::test]
async fn an_agent_that_takes_every_inotify_instance_starves_neither_supervise_nor_approvals() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new(
        "inotify",
        "supervise: true\n",
        &["python3", "-c", EXHAUSTING_AGENT],
    );
    let slug = bottle.slug();
    hand_over(&bottle);
    let out = bottle.path().join("agent.out");
    let err = bottle.path().join("launcher.err");
    let mut child = as_operator(&bottle.command(&["start", "--yes", &bottle.name]))
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .spawn()
        .expect("launcher");

    wait_line(&out, "INOTIFY-OTHER", &mut child).await;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let held: usize = line(&text, "INOTIFY-HELD").parse().expect("a count");
    let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .expect("limit")
        .trim()
        .parse()
        .expect("a number");
    assert!(held > 0 && held <= limit, "held {held} of {limit}:\n{text}");
    assert_eq!(line(&text, "INOTIFY-ERRNO"), "EMFILE", "{text}");
    assert_eq!(line(&text, "INOTIFY-OTHER"), "errno 24", "{text}");
    // The operator's own processes of that uid are starved too: what the agent can do.
    let host = host_uid_can_watch();
    eprintln!(
        "figure: the agent holds {held} inotify instances (limit {limit}); a new process of uid \
         {AGENT_UID} on the host: {host}"
    );
    assert_eq!(host, "errno 24", "the agent's instances are the host uid's");

    // supervise restarts (a crash, an engine restart): its new watcher is its own uid's.
    let restarted_at = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("seconds");
    let name = claude_bottle::backend::docker::sidecar_name(&slug, "supervise");
    d.restart_container(
        &name,
        None::<bollard::query_parameters::RestartContainerOptions>,
    )
    .await
    .expect("restart supervise");
    wait_line(&out, "SUPERVISE-RESTARTED", &mut child).await;
    let id = wait_for_proposal(&bottle, "limits.example.org").await;
    let approved_at = approve(&bottle, &id);
    let answered: f64 = wait_line(&out, "ANSWERED-AT", &mut child)
        .await
        .parse()
        .expect("a time");
    let latency = answered - approved_at;
    let applied = apply_delay(&bottle, &id);
    // Read while the bottle still runs (the agent lingers 3 s): the teardown removes supervise.
    let logs = supervise_logs(&d, &slug, restarted_at).await;
    let status = child.wait().expect("launcher");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{text}\n{stderr}");
    assert_eq!(line(&text, "WAIT-EXIT"), "0", "{text}");
    assert!(line(&text, "WAIT-OUT").contains("applied"), "{text}");
    assert!(
        logs.contains("supervise listening"),
        "supervise's log after the restart:\n{logs}"
    );
    let launcher_polls = stderr.contains("failed to watch the decisions folder");
    eprintln!(
        "figure: approval to the agent's answer with every instance of uid {AGENT_UID} held: \
         {latency:.3} s, of which the launcher's pickup and apply {applied:.3} s (the launcher {})",
        if launcher_polls {
            "polling: it started its watcher after the agent took them all"
        } else {
            "watching"
        }
    );
    assert!(
        !logs.contains("polling only"),
        "supervise's watcher is not the agent's uid's to starve:\n{logs}"
    );
    assert!(
        latency < BOUND.as_secs_f64(),
        "{latency:.3} s from approval to the agent's answer\n{stderr}"
    );
    drop(child);
    assert_clean(&d, &slug).await;
}

/// The agent: once the egress chain has come up (an approval waits for pipelock to be ready, which
/// is not what is measured), asks for a host and waits.
const WAITING_AGENT: &str = r#"
sleep 5
out=$(claude-bottle-shim request egress limits.example.org --reason measure --wait --timeout 240)
echo "WAIT-EXIT $?"
echo "ANSWERED-AT $(date +%s.%N)"
echo "WAIT-OUT $out" | tr '\n' ' '
echo
sleep 3
"#;

#[tokio::test]
async fn a_launcher_started_without_inotify_applies_approvals_by_polling() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let Some(d) = docker().await else { return };
    let baseline = approval_latency(&d, false).await;
    let starved = approval_latency(&d, true).await;
    eprintln!(
        "figure: approval to the agent's answer: {baseline:.3} s with inotify, {starved:.3} s \
         with every instance of uid {AGENT_UID} held by another process (the launcher polling)"
    );
}

/// One launch whose agent asks for a host and waits; with `starve`, another process of the
/// operator's uid (an agent of another bottle) holds every inotify instance before it starts.
/// The time from the approval to the agent's answer.
async fn approval_latency(d: &bollard::Docker, starve: bool) -> f64 {
    let bottle = TestBottle::new(
        "nowatch",
        "supervise: true\n",
        &["/bin/sh", "-c", WAITING_AGENT],
    );
    let slug = bottle.slug();
    hand_over(&bottle);
    let mut holder = None;
    if starve {
        let (child, held) = hold_instances();
        eprintln!("figure: another process of uid {AGENT_UID} holds {held} instances");
        holder = Some(child);
        assert_eq!(
            host_uid_can_watch(),
            "errno 24",
            "uid {AGENT_UID} is exhausted"
        );
    }
    let out = bottle.path().join("agent.out");
    let err = bottle.path().join("launcher.err");
    let mut child = as_operator(&bottle.command(&["start", "--yes", &bottle.name]))
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .spawn()
        .expect("launcher");
    let id = wait_for_proposal(&bottle, "limits.example.org").await;
    // While a proposal waits, the launcher and supervise only wait too, whatever happened to
    // their watchers.
    let supervise = claude_bottle::backend::docker::sidecar_name(&slug, "supervise");
    let (cpu0, sup0, t0) = (
        cpu_seconds(child.id()),
        container_cpu_seconds(d, &supervise).await,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let busy = (cpu_seconds(child.id()) - cpu0) / t0.elapsed().as_secs_f64();
    let sup_busy = (container_cpu_seconds(d, &supervise).await - sup0) / t0.elapsed().as_secs_f64();
    let approved_at = approve(&bottle, &id);
    let answered: f64 = wait_line(&out, "ANSWERED-AT", &mut child)
        .await
        .parse()
        .expect("a time");
    let latency = answered - approved_at;
    let applied = apply_delay(&bottle, &id);
    eprintln!(
        "figure: {}: CPU while a proposal waits: launcher {:.1} %, supervise {:.1} %",
        if starve {
            "launcher polling"
        } else {
            "launcher watching"
        },
        busy * 100.0,
        sup_busy * 100.0
    );
    assert!(
        busy < 0.1,
        "the launcher spins: {:.0} % of a CPU",
        busy * 100.0
    );
    assert!(
        sup_busy < 0.1,
        "supervise spins: {:.0} % of a CPU",
        sup_busy * 100.0
    );
    eprintln!(
        "figure: {}: approval to the agent's answer {latency:.3} s, decision to applied record {applied:.3} s",
        if starve {
            "launcher polling"
        } else {
            "launcher watching"
        }
    );
    // Read while the bottle still runs (the agent lingers 3 s): the teardown removes supervise.
    let logs = supervise_logs(d, &slug, 0).await;
    let status = child.wait().expect("launcher");
    if let Some(mut holder) = holder {
        let _ = holder.kill();
        let _ = holder.wait();
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{text}\n{stderr}");
    assert_eq!(line(&text, "WAIT-EXIT"), "0", "{text}");
    assert!(line(&text, "WAIT-OUT").contains("applied"), "{text}");
    // The launcher is the operator's uid: starved, it says it polls, and does.
    assert_eq!(
        stderr.contains("failed to watch the decisions folder; polling it every 2 s"),
        starve,
        "{stderr}"
    );
    assert!(
        logs.contains("supervise listening"),
        "supervise's log:\n{logs}"
    );
    assert!(!logs.contains("polling only"), "supervise watches:\n{logs}");
    assert!(
        latency < BOUND.as_secs_f64(),
        "{latency:.3} s from approval to the agent's answer\n{stderr}"
    );
    assert_clean(d, &slug).await;
    latency
}
