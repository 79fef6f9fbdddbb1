//! `relay` over real TCP and Unix sockets: byte-for-byte, half-close, concurrency, bad targets.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::{free_port, shim, shim_env, wait_for_socket, wait_until};

/// Reads the request to EOF (so the client's half-close must arrive), then answers its reversal.
async fn serve_reverse<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    buf.reverse();
    s.write_all(&buf).await.unwrap();
    s.shutdown().await.unwrap();
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, payload: &[u8]) -> Vec<u8> {
    s.write_all(payload).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    out
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_to_unix_is_byte_for_byte_with_half_close() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("proxy.sock");
    let server = UnixListener::bind(&target).unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = server.accept().await.unwrap();
            tokio::spawn(serve_reverse(s));
        }
    });
    let port = free_port();
    let listen = format!("tcp:127.0.0.1:{port}");
    let connect = format!("unix:{}", target.display());
    let _relay = shim(&["relay", "--listen", &listen, "--connect", &connect]);
    wait_until("relay tcp port", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let data = payload(3 * 1024 * 1024 + 17, 7);
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut got = exchange(s, &data).await;
    got.reverse();
    assert_eq!(got, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_to_tcp_resolves_names_and_is_world_connectable() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (s, _) = server.accept().await.unwrap();
            tokio::spawn(serve_reverse(s));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sub").join("relay.sock");
    let listen = format!("unix:{}", sock.display());
    let connect = format!("tcp:localhost:{port}");
    let _relay = shim(&["relay", "--listen", &listen, "--connect", &connect]);
    wait_for_socket(&sock);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666, "socket must be connectable by the agent's uid");

    let data = b"CONNECT example.com:443 HTTP/1.1\r\n\r\n".to_vec();
    let s = UnixStream::connect(&sock).await.unwrap();
    let mut got = exchange(s, &data).await;
    got.reverse();
    assert_eq!(got, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections_beyond_the_limit_all_complete() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (s, _) = server.accept().await.unwrap();
            tokio::spawn(serve_reverse(s));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("r.sock");
    let listen = format!("unix:{}", sock.display());
    let connect = format!("tcp:127.0.0.1:{port}");
    let _relay = shim(&[
        "relay",
        "--listen",
        &listen,
        "--connect",
        &connect,
        "--max-connections",
        "4",
    ]);
    wait_for_socket(&sock);
    let mut tasks = Vec::new();
    for i in 0..64u8 {
        let sock = sock.clone();
        tasks.push(tokio::spawn(async move {
            let data = payload(10_000 + usize::from(i), i);
            let s = UnixStream::connect(&sock).await.unwrap();
            let mut got = exchange(s, &data).await;
            got.reverse();
            assert_eq!(got, data);
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("all connections complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_closes_the_client_and_the_relay_survives() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("r.sock");
    let missing = dir.path().join("nobody-home.sock");
    let port = free_port();
    let listen_unix = format!("unix:{}", sock.display());
    let connect_missing = format!("unix:{}", missing.display());
    let listen_tcp = format!("tcp:127.0.0.1:{port}");
    // No warm-up wait: a target that is not there fails the client at once.
    let mut relay = shim_env(
        &[
            "relay",
            "--listen",
            &listen_unix,
            "--connect",
            &connect_missing,
            "--listen",
            &listen_tcp,
            "--connect",
            &connect_missing,
        ],
        &[(claude_bottle_shim::relay::WARMUP_WAIT_ENV, "0")],
    );
    wait_for_socket(&sock);
    for _ in 0..3 {
        let mut s = UnixStream::connect(&sock).await.unwrap();
        let mut out = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
    }
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(
        relay.0.try_wait().unwrap().is_none(),
        "relay must keep running"
    );

    // Once the target appears, the same relay carries traffic.
    let server = UnixListener::bind(&missing).unwrap();
    tokio::spawn(async move {
        let (s, _) = server.accept().await.unwrap();
        serve_reverse(s).await;
    });
    let s = UnixStream::connect(&sock).await.unwrap();
    assert_eq!(exchange(s, b"abc").await, b"cba");
}

#[test]
fn unpaired_or_malformed_endpoints_fail_with_a_message() {
    let bin = env!("CARGO_BIN_EXE_claude-bottle-shim");
    let out = std::process::Command::new(bin)
        .args([
            "relay",
            "--listen",
            "tcp:127.0.0.1:1",
            "--listen",
            "unix:/tmp/x",
        ])
        .args(["--connect", "unix:/tmp/y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 listen endpoints but 1 connect"), "{err}");

    let out = std::process::Command::new(bin)
        .args(["relay", "--listen", "tcp:nope", "--connect", "unix:/tmp/y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcp:HOST:PORT or unix:PATH"));
}

#[test]
fn a_regular_file_in_the_way_is_not_clobbered() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("precious");
    std::fs::write(&file, b"keep me").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claude-bottle-shim"))
        .args(["relay", "--listen", &format!("unix:{}", file.display())])
        .args(["--connect", "tcp:127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}
