//! `connect PROXY HOST PORT`: ssh's `ProxyCommand` for an ssh upstream. Asks the HTTP proxy for
//! a tunnel (`CONNECT host:port`), requires `200`, then copies stdin to the tunnel and the
//! tunnel to stdout: what `nc -X connect` would do, without a netcat in the image.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs as _};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{Proxy, authority};

/// How long the proxy may take to accept the connection and answer the CONNECT.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest proxy answer header read before giving up.
const MAX_HEADER: usize = 16 * 1024;

#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The proxy: http://host:port or host:port.
    pub proxy: String,
    /// The host to reach (ssh's %h).
    pub host: String,
    /// The port to reach (ssh's %p).
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("bad proxy {proxy:?}: {problem}")]
    Proxy { proxy: String, problem: String },
    #[error("failed to reach the proxy {proxy}: {source}")]
    Dial { proxy: String, source: io::Error },
    #[error("the proxy {proxy} failed during CONNECT {target}: {source}")]
    Handshake {
        proxy: String,
        target: String,
        source: io::Error,
    },
    #[error("the proxy {proxy} refused CONNECT {target}: {status}")]
    Refused {
        proxy: String,
        target: String,
        status: String,
    },
}

/// Runs the verb: errors go to stderr (ssh shows them) and exit 1.
pub fn run(args: ConnectArgs) -> ExitCode {
    let outcome = Proxy::parse(&args.proxy)
        .map_err(|problem| ConnectError::Proxy {
            proxy: args.proxy.clone(),
            problem,
        })
        .and_then(|proxy| open(&proxy, &args.host, args.port))
        .and_then(|(stream, early)| {
            relay(stream, &early, io::stdin(), io::stdout()).map_err(|source| {
                ConnectError::Handshake {
                    proxy: args.proxy.clone(),
                    target: authority(&args.host, args.port),
                    source,
                }
            })
        });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("claude-bottle-git-gate connect: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Opens a tunnel to `host:port` through `proxy`. Returns the stream and the bytes the proxy
/// already sent past its answer (the start of the tunnel, e.g. the ssh server's banner).
pub fn open(proxy: &Proxy, host: &str, port: u16) -> Result<(TcpStream, Vec<u8>), ConnectError> {
    let target = authority(host, port);
    let dial_err = |source| ConnectError::Dial {
        proxy: proxy.authority(),
        source,
    };
    let addrs: Vec<_> = (proxy.host.as_str(), proxy.port)
        .to_socket_addrs()
        .map_err(dial_err)?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or_else(|| dial_err(last))?;
    let handshake_err = |source| ConnectError::Handshake {
        proxy: proxy.authority(),
        target: target.clone(),
        source,
    };
    stream
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(handshake_err)?;
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .map_err(handshake_err)?;
    let (status, early) = read_answer(&mut stream).map_err(handshake_err)?;
    let code = status.split_whitespace().nth(1);
    if !status.starts_with("HTTP/1.") || code != Some("200") {
        return Err(ConnectError::Refused {
            proxy: proxy.authority(),
            target,
            status: claude_bottle_protocol::text::escape_line(&status).into_owned(),
        });
    }
    stream.set_read_timeout(None).map_err(handshake_err)?;
    Ok((stream, early))
}

/// Reads the proxy's answer up to its blank line: its status line and what followed the header.
fn read_answer(stream: &mut impl Read) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let header = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = header.lines().next().unwrap_or_default().to_owned();
            return Ok((status, buf[end + 4..].to_vec()));
        }
        if buf.len() > MAX_HEADER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the proxy's answer has no end of header",
            ));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the proxy closed the connection before answering",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Copies `input` into the tunnel (then half-closes it) and the tunnel to `output`, until the
/// far end closes.
pub fn relay(
    stream: TcpStream,
    early: &[u8],
    mut input: impl Read + Send + 'static,
    mut output: impl Write,
) -> io::Result<()> {
    let mut upstream = stream.try_clone()?;
    // Not joined: when the far end closes, ssh is done, even if its stdin stays open.
    std::thread::spawn(move || {
        let _ = io::copy(&mut input, &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
    });
    output.write_all(early)?;
    output.flush()?;
    let mut downstream = stream;
    let mut buf = [0u8; 32 * 1024];
    loop {
        let n = match downstream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        output.write_all(&buf[..n])?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::BufRead as _;
    use std::net::TcpListener;

    use super::*;

    /// A CONNECT proxy for one connection: answers `status`, then (on 200) sends a banner and
    /// echoes what it reads, like a tunnel to an echo server that speaks first.
    fn proxy_once(status: &'static str) -> (Proxy, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut reader = io::BufReader::new(conn.try_clone().expect("clone"));
            let mut request = String::new();
            reader.read_line(&mut request).expect("request line");
            let mut line = String::new();
            while reader.read_line(&mut line).expect("header") > 2 {
                line.clear();
            }
            let banner = if status.contains(" 200 ") {
                "SSH-2.0-test\r\n"
            } else {
                ""
            };
            conn.write_all(format!("{status}\r\n\r\n{banner}").as_bytes())
                .expect("answer");
            if banner.is_empty() {
                return request;
            }
            let mut buf = [0u8; 64];
            loop {
                let n = reader.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                conn.write_all(&buf[..n]).expect("echo");
            }
            request
        });
        let proxy = Proxy::parse(&format!("http://127.0.0.1:{port}")).expect("proxy");
        (proxy, handle)
    }

    #[test]
    fn a_tunnel_carries_both_ways_and_keeps_the_early_bytes() {
        let (proxy, server) = proxy_once("HTTP/1.1 200 Connection Established");
        let (stream, early) = open(&proxy, "git.example", 22).expect("open");
        let mut out = Vec::new();
        relay(stream, &early, io::Cursor::new(b"hello".to_vec()), &mut out).expect("relay");
        assert_eq!(String::from_utf8_lossy(&out), "SSH-2.0-test\r\nhello");
        assert_eq!(
            server.join().expect("server"),
            "CONNECT git.example:22 HTTP/1.1\r\n"
        );
    }

    #[test]
    fn a_refusal_names_the_proxy_and_its_status() {
        let (proxy, server) = proxy_once("HTTP/1.1 403 Forbidden");
        let err = open(&proxy, "::1", 22).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("refused CONNECT [::1]:22"), "{text}");
        assert!(text.contains("403 Forbidden"), "{text}");
        assert_eq!(
            server.join().expect("server"),
            "CONNECT [::1]:22 HTTP/1.1\r\n"
        );
    }

    #[test]
    fn a_dead_proxy_is_a_dial_error() {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let proxy = Proxy::parse(&format!("127.0.0.1:{port}")).expect("proxy");
        assert!(matches!(
            open(&proxy, "h", 22),
            Err(ConnectError::Dial { .. })
        ));
    }
}
