//! Integration tests of the shim over real sockets, spawning the built binary.

#![expect(clippy::unwrap_used, reason = "tests")]

mod mcp;
mod proposals;
mod relay;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A spawned shim that is killed when the test ends, pass or fail.
#[derive(Debug)]
pub struct Spawned(pub Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `claude-bottle-shim ARGS…` with logs on the test's stderr.
pub fn shim(args: &[&str]) -> Spawned {
    shim_env(args, &[])
}

/// [`shim`] with extra environment variables.
pub fn shim_env(args: &[&str], env: &[(&str, &str)]) -> Spawned {
    let child = Command::new(env!("CARGO_BIN_EXE_claude-bottle-shim"))
        .args(args)
        .stdin(Stdio::null())
        .env("CLAUDE_BOTTLE_LOG", "error")
        .envs(env.iter().copied())
        .spawn()
        .unwrap();
    Spawned(child)
}

/// Waits until `ready` holds, panicking after five seconds.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A free loopback TCP port (bound then released; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for a Unix socket file to appear.
pub fn wait_for_socket(path: &Path) {
    wait_until(&format!("socket {}", path.display()), || {
        std::os::unix::net::UnixStream::connect(path).is_ok()
    });
}
