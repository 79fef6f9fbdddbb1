//! Integration tests of supervise over its real Unix socket, spawning the built binary.

#![expect(clippy::unwrap_used, reason = "tests")]

mod dockerfile;
mod hostile;
mod queue;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running supervise with its own temp queue; killed on drop.
#[derive(Debug)]
pub struct Supervise {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl Supervise {
    /// Starts supervise on a fresh queue with `extra` flags.
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    /// Starts supervise on an existing folder (for restarts).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let socket = dir.path().join("sock").join("supervise.sock");
        let _ = std::fs::remove_file(&socket);
        let child = spawn(dir.path(), &socket, extra);
        wait_until("supervise socket", || UnixStream::connect(&socket).is_ok());
        Self { child, dir, socket }
    }

    pub fn queue(&self) -> PathBuf {
        self.dir.path().join("queue")
    }

    pub fn call(&self, line: &Value) -> Value {
        call(&self.socket, line)
    }

    /// Kills and reaps the process, keeping the folder.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Supervise {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn(dir: &Path, socket: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_claude-bottle-supervise"))
        .arg("--socket")
        .arg(socket)
        .arg("--queue-dir")
        .arg(dir.join("queue"))
        .arg("--config-dir")
        .arg(dir.join("config"))
        .args(["--bottle", "test-bottle"])
        .args(extra)
        .stdin(Stdio::null())
        .env("CLAUDE_BOTTLE_LOG", "warn")
        .spawn()
        .unwrap()
}

/// One request, one answer, on a fresh connection.
pub fn call(socket: &Path, line: &Value) -> Value {
    let mut s = UnixStream::connect(socket).unwrap();
    call_on(&mut s, line)
}

/// One request, one answer, on an existing connection.
pub fn call_on(s: &mut UnixStream, line: &Value) -> Value {
    let mut bytes = serde_json::to_vec(line).unwrap();
    bytes.push(b'\n');
    s.write_all(&bytes).unwrap();
    read_answer(s)
}

pub fn read_answer(s: &UnixStream) -> Value {
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

pub fn submit_egress(host: &str) -> Value {
    json!({"version": 1, "request": {"op": "submit",
        "kind": {"type": "egress", "host": host}, "reason": "pip install needs it"}})
}

pub fn submit_apt(pkgs: &[&str]) -> Value {
    json!({"version": 1, "request": {"op": "submit",
        "kind": {"type": "capability", "apt": pkgs}, "reason": "command not found",
        "evidence": ["bash: rg: command not found"]}})
}

pub fn submitted_id(answer: &Value) -> String {
    assert_eq!(answer["response"]["type"], "submitted", "{answer}");
    answer["response"]["id"].as_str().unwrap().to_owned()
}

pub fn error_code(answer: &Value) -> &str {
    assert_eq!(answer["response"]["type"], "error", "{answer}");
    answer["response"]["code"].as_str().unwrap()
}

/// Writes a file the way an operator's tool should: temp file then rename.
pub fn write_record(dir: &Path, id: &str, value: &Value) {
    let tmp = dir.join(format!(".tmp-{id}-hand"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{id}.json"))).unwrap();
}

pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn help_and_version() {
    let bin = env!("CARGO_BIN_EXE_claude-bottle-supervise");
    let out = Command::new(bin).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--socket",
        "--queue-dir",
        "--config-dir",
        "--bottle",
        "--max-pending",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}
