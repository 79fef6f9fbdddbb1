//! A test's world: an upstream with a token, the gate binary serving it on a Unix socket, and
//! a TCP→Unix relay in front of the socket (the shim's relay's job in a bottle), all in one
//! temp folder and torn down on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::git::{commit, git, git_in, ok};
use crate::upstream::{TOKEN, Upstream};

/// The variable the gate reads the upstream's token from.
pub const TOKEN_ENV: &str = "GATE_TEST_TOKEN";

#[derive(Debug)]
pub struct World {
    pub dir: tempfile::TempDir,
    pub runtime: tokio::runtime::Runtime,
    pub upstream: Upstream,
}

/// The ids the seeded upstream starts with.
#[derive(Debug, Clone)]
pub struct Seed {
    /// main's tip (its parent is the first commit).
    pub main: String,
    /// claude/existing: a child of main's first commit, beside main.
    pub existing: String,
}

impl World {
    /// A world whose upstream holds `main` (two commits), `claude/existing` and tag `v0`.
    pub fn new() -> (Self, Seed) {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let upstream = Upstream::start(&dir.path().join("upstream"), runtime.handle());
        let seed_dir = dir.path().join("seed");
        ok(git(&["init", "--quiet", "--initial-branch=main"]).arg(&seed_dir));
        let first = commit(&seed_dir, "README", "first");
        ok(git_in(&seed_dir, &["checkout", "--quiet", "-b", "side"]));
        let existing = commit(&seed_dir, "side", "side work");
        ok(git_in(&seed_dir, &["checkout", "--quiet", "main"]));
        let main = commit(&seed_dir, "README", "second");
        ok(git_in(&seed_dir, &["tag", "v0", &first]));
        let repo = upstream.repo();
        ok(git_in(&seed_dir, &["push", "--quiet"]).arg(&repo).args([
            "main",
            "side:refs/heads/claude/existing",
            "v0",
        ]));
        (
            World {
                dir,
                runtime,
                upstream,
            },
            Seed { main, existing },
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The gate's configuration for one remote `origin` of the upstream.
    pub fn config(&self, push: &[&str]) -> String {
        let push: Vec<String> = push.iter().map(|p| format!("{p:?}")).collect();
        format!(
            "version = 1\n\n[[remote]]\nname = \"origin\"\nupstream = \"{}\"\npush = [{}]\ntoken_env = \"{TOKEN_ENV}\"\n",
            self.upstream.url(),
            push.join(", ")
        )
    }

    /// Starts the gate with `config`, its token variable set to `token` (or unset).
    pub fn gate(&self, config: &str, token: Option<&str>) -> Gate {
        Gate::start(self, config, token)
    }

    /// A client work tree cloned straight from the upstream (a colleague's, with the token).
    pub fn colleague(&self) -> PathBuf {
        let dir = self.path("colleague");
        if !dir.exists() {
            ok(git(&["clone", "--quiet", &self.upstream.authed_url()]).arg(&dir));
        }
        dir
    }
}

/// The running gate, reached through the relay; killed on drop.
#[derive(Debug)]
pub struct Gate {
    child: Child,
    pub socket: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    pub audit: PathBuf,
    pub relay: SocketAddr,
}

impl Gate {
    fn start(world: &World, config: &str, token: Option<&str>) -> Self {
        let dir = world.path("gate");
        std::fs::create_dir_all(&dir).expect("gate dir");
        let config_path = dir.join("gate.toml");
        std::fs::write(&config_path, config).expect("config");
        let socket = dir.join("run/gate.sock");
        let root = dir.join("mirrors");
        let log = dir.join("gate.log");
        let audit = dir.join("audit.jsonl");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-bottle-git-gate"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--socket")
            .arg(&socket)
            .arg("--root")
            .arg(&root)
            .arg("--audit")
            .arg(&audit)
            // As much logging as there is: the token must be in none of it.
            .env("CLAUDE_BOTTLE_LOG", "debug")
            .env("HOME", &dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_DIR")
            .env_remove(TOKEN_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        for var in [
            "http_proxy",
            "https_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
        ] {
            cmd.env_remove(var);
        }
        if let Some(token) = token {
            cmd.env(TOKEN_ENV, token);
        }
        let child = cmd.spawn().expect("start the gate");
        let relay = world.runtime.block_on(relay(socket.clone()));
        let mut gate = Gate {
            child,
            socket,
            root,
            log,
            audit,
            relay,
        };
        gate.wait_ready();
        gate
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the gate exited ({status}):\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "the gate did not start:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the gate to exit by itself (a start that fails); returns its log.
    pub fn exit_log(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("wait");
        (status, self.log_text())
    }

    /// The remote's URL as the agent's git would use it (after `insteadOf`).
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}.git", self.relay)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is json"))
            .collect()
    }

    pub fn mirror(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.git"))
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A starting gate that is expected to fail: spawned without waiting for its socket.
pub fn start_failing(world: &World, config: &str) -> (std::process::ExitStatus, String) {
    let dir = world.path("gate-failing");
    std::fs::create_dir_all(&dir).expect("dir");
    let config_path = dir.join("gate.toml");
    std::fs::write(&config_path, config).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_claude-bottle-git-gate"))
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--socket")
        .arg(dir.join("gate.sock"))
        .arg("--root")
        .arg(dir.join("mirrors"))
        .env_remove(TOKEN_ENV)
        .output()
        .expect("run the gate");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Accepts TCP on loopback and joins each connection to the gate's socket.
async fn relay(socket: PathBuf) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the relay");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Ok(mut unix) = tokio::net::UnixStream::connect(&socket).await {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    });
    addr
}

/// Every file under `dir` whose bytes contain the token (pack files included).
pub fn files_holding_token(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes())
            {
                found.push(path);
            }
        }
    }
    found
}
