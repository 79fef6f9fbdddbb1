//! Byte-for-byte relay between TCP and Unix sockets: the agent's only road to the proxy.
//!
//! The agent container runs with network mode none; `relay` listens on loopback TCP inside it and
//! forwards each connection to a Unix socket in a shared volume (and the reverse for sidecars).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use claude_bottle_io::fs::FsError;
use claude_bottle_io::socket::{self, Accept};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinSet;

/// How long a connect to the far side may take before the accepted connection is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default bound on simultaneous connections per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Errors of the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("failed to parse endpoint {0:?}: expected tcp:HOST:PORT or unix:PATH")]
    BadEndpoint(String),
    #[error(
        "failed to start relay: {listen} listen endpoints but {connect} connect endpoints\nhint: give one --connect after each --listen"
    )]
    Unpaired { listen: usize, connect: usize },
    #[error("failed to listen on {endpoint}: {source}")]
    Listen {
        endpoint: Endpoint,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Unix(#[from] FsError),
}

/// One side of a relay: `tcp:HOST:PORT` or `unix:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address; `host` is resolved at connect time (docker DNS may change its answer).
    Tcp { host: String, port: u16 },
    /// A Unix stream socket path.
    Unix(PathBuf),
}

impl FromStr for Endpoint {
    type Err = RelayError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RelayError::BadEndpoint(s.to_owned());
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad());
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let rest = s.strip_prefix("tcp:").ok_or_else(bad)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad());
        }
        let port = port.parse::<u16>().map_err(|_| bad())?;
        Ok(Endpoint::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A byte stream of either family.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Accept for ListenerBox {
    type Conn = Box<dyn Io>;

    async fn accept(&self) -> io::Result<Box<dyn Io>> {
        match &self.0 {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                // A proxy connection carries interactive TLS; don't batch small writes.
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok(Box::new(s))
            }
        }
    }
}

async fn connect(endpoint: &Endpoint) -> io::Result<Box<dyn Io>> {
    let fut = async {
        match endpoint {
            Endpoint::Tcp { host, port } => {
                let s = TcpStream::connect((host.as_str(), *port)).await?;
                let _ = s.set_nodelay(true);
                Ok::<Box<dyn Io>, io::Error>(Box::new(s))
            }
            Endpoint::Unix(path) => {
                let s = UnixStream::connect(path).await?;
                Ok(Box::new(s) as Box<dyn Io>)
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

/// A bound listener and where its connections go.
#[derive(Debug)]
pub struct Relay {
    listen: Endpoint,
    connect: Endpoint,
    listener: ListenerBox,
    max_connections: usize,
    /// Until when a connection waits for a target that is not there yet: the warm-up window
    /// counts from the bind, so a target that dies later fails its connections at once.
    ready_by: tokio::time::Instant,
}

struct ListenerBox(Listener);

impl fmt::Debug for ListenerBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Listener")
    }
}

impl Relay {
    /// Binds `listen`; connections are forwarded to `connect`, at most `max_connections` at once.
    pub async fn bind(
        listen: Endpoint,
        connect: Endpoint,
        max_connections: usize,
    ) -> Result<Self, RelayError> {
        let listener = match &listen {
            Endpoint::Tcp { host, port } => {
                Listener::Tcp(TcpListener::bind((host.as_str(), *port)).await.map_err(
                    |source| RelayError::Listen {
                        endpoint: listen.clone(),
                        source,
                    },
                )?)
            }
            Endpoint::Unix(path) => Listener::Unix(socket::bind_world(path)?),
        };
        Ok(Self {
            listen,
            connect,
            listener: ListenerBox(listener),
            max_connections,
            ready_by: tokio::time::Instant::now() + warmup_wait(),
        })
    }

    /// The TCP port actually bound (useful when listening on port 0).
    pub fn local_port(&self) -> Option<u16> {
        match &self.listener.0 {
            Listener::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
            Listener::Unix(_) => None,
        }
    }

    /// Accepts forever; each connection is copied both ways until both sides have closed.
    pub async fn serve(self) {
        tracing::info!(listen = %self.listen, connect = %self.connect, "relay listening");
        let connect = Arc::new(self.connect);
        let ready_by = self.ready_by;
        socket::serve(self.listener, self.max_connections, move |inbound| {
            let connect = connect.clone();
            async move {
                pipe(inbound, &connect, ready_by).await;
                Ok(())
            }
        })
        .await;
    }
}

/// How long after the relay starts a connection waits for a target that is not listening yet:
/// the bottle's agent starts while its proxies are still coming up, and its first requests wait
/// here instead of failing.
const WARMUP_WAIT: Duration = Duration::from_secs(30);
/// Overrides `WARMUP_WAIT` (how long a connection waits for its target) in milliseconds (`0`:
/// fail at once).
pub const WARMUP_WAIT_ENV: &str = "CLAUDE_BOTTLE_RELAY_WAIT_MS";

fn warmup_wait() -> Duration {
    std::env::var(WARMUP_WAIT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(WARMUP_WAIT, Duration::from_millis)
}

/// Whether `e` means "not there yet" (nothing listening, socket not created, name not yet known).
fn not_yet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::NotFound
            | io::ErrorKind::AddrNotAvailable
    ) || e.to_string().contains("failed to lookup address")
}

/// [`connect`], retried while the target is not there yet, until `ready_by`.
async fn connect_waiting(to: &Endpoint, ready_by: tokio::time::Instant) -> io::Result<Box<dyn Io>> {
    loop {
        match connect(to).await {
            Err(e) if not_yet(&e) && tokio::time::Instant::now() < ready_by => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            other => return other,
        }
    }
}

async fn pipe(mut inbound: Box<dyn Io>, to: &Endpoint, ready_by: tokio::time::Instant) {
    let mut outbound = match connect_waiting(to, ready_by).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(connect = %to, error = %e, "failed to connect relay target");
            return;
        }
    };
    match tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
        Ok((up, down)) => tracing::debug!(connect = %to, up, down, "relay connection closed"),
        Err(e) => tracing::debug!(connect = %to, error = %e, "relay connection ended"),
    }
}

/// Binds every pair, then serves them all until one listener fails for good.
pub async fn run(
    listen: Vec<Endpoint>,
    connect: Vec<Endpoint>,
    max_connections: usize,
) -> Result<(), RelayError> {
    if listen.len() != connect.len() || listen.is_empty() {
        return Err(RelayError::Unpaired {
            listen: listen.len(),
            connect: connect.len(),
        });
    }
    let mut relays = Vec::with_capacity(listen.len());
    for (l, c) in listen.into_iter().zip(connect) {
        relays.push(Relay::bind(l, c, max_connections).await?);
    }
    let mut set = JoinSet::new();
    for relay in relays {
        set.spawn(relay.serve());
    }
    while set.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_target_that_comes_up_late_is_waited_for() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("late.sock");
        let target = Endpoint::Unix(sock.clone());
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let listener = UnixListener::bind(&sock).expect("bind");
            let (mut s, _) = listener.accept().await.expect("accept");
            s.write_all(b"late").await.expect("write");
        });
        let started = tokio::time::Instant::now();
        let mut conn = connect_waiting(&target, started + Duration::from_secs(30))
            .await
            .expect("waited for the target");
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"late");
        server.await.expect("server");
        // Past the warm-up window a missing target fails at once, not after another wait.
        let gone = Endpoint::Unix(dir.path().join("gone.sock"));
        let t = tokio::time::Instant::now();
        assert!(connect_waiting(&gone, started).await.is_err());
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(not_yet(&refused));
        assert!(!not_yet(&io::Error::from(io::ErrorKind::PermissionDenied)));
    }

    #[test]
    fn parses_endpoints() {
        assert_eq!(
            "tcp:127.0.0.1:3128".parse::<Endpoint>().ok(),
            Some(Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 3128
            })
        );
        assert_eq!(
            "tcp:[::1]:80".parse::<Endpoint>().ok(),
            Some(Endpoint::Tcp {
                host: "::1".into(),
                port: 80
            })
        );
        assert_eq!(
            "unix:/run/x.sock".parse::<Endpoint>().ok(),
            Some(Endpoint::Unix("/run/x.sock".into()))
        );
        for bad in ["tcp:host", "tcp::80", "tcp:h:99999", "unix:", "udp:x:1", ""] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for s in ["tcp:egress-proxy:8080", "tcp:[::1]:80", "unix:/a/b.sock"] {
            let e: Endpoint = s.parse().expect("valid");
            assert_eq!(e.to_string(), s);
        }
    }
}
