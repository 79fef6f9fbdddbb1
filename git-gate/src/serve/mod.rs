//! `serve`: git's smart HTTP for the configured remotes on a Unix socket.
//!
//! At start: check that every credential is there (a token's variable set, a key file
//! readable), create or take each mirror ([`mirror`]), bind the socket, then refresh every
//! mirror in the background. Each connection is served by hyper; each request is routed by
//! [`http`] and run through `git http-backend` by `cgi.rs`.

mod cgi;
pub mod http;
pub mod mirror;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use claude_bottle_io::{runtime, socket};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::ConfigArg;
use crate::config::{Config, Upstream};
use crate::upstream::Access;
use mirror::{HookCommand, Mirror};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Unix socket to serve on (created mode 0666: the agent's relay runs as another uid).
    #[arg(long)]
    pub socket: PathBuf,
    /// Folder of the mirrors, `<name>.git` each (created if missing).
    #[arg(long)]
    pub root: PathBuf,
    /// Audit log the push hook appends to (one JSON line per ref decision).
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// Most simultaneous client connections.
    #[arg(long, default_value_t = 32)]
    pub max_connections: usize,
}

/// What every request handler reads.
#[derive(Debug)]
pub struct Gate {
    pub root: PathBuf,
    pub mirrors: Vec<Mirror>,
}

impl Gate {
    pub fn mirror(&self, name: &str) -> Option<&Mirror> {
        self.mirrors.iter().find(|m| m.remote.name == name)
    }

    /// The `404` body: which remotes this gate serves.
    pub fn served_list(&self) -> String {
        let list: Vec<String> = self
            .mirrors
            .iter()
            .map(|m| format!("{} ({})", m.remote.name, m.remote.upstream.url()))
            .collect();
        if list.is_empty() {
            "the gate serves no remote\n".to_owned()
        } else {
            format!("the gate serves: {}\n", list.join(", "))
        }
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(args: ServeArgs) -> ExitCode {
    runtime::block_on("claude-bottle-git-gate", async {
        serve(args).await.map(|()| ExitCode::SUCCESS)
    })
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = Config::load(&args.config.path).map_err(|e| e.to_string())?;
    check_credentials(&config)?;
    let exe = std::env::current_exe()
        .map_err(|e| format!("failed to find this program's path for the hooks: {e}"))?;
    std::fs::create_dir_all(&args.root)
        .map_err(|e| format!("failed to create {}: {e}", args.root.display()))?;
    let hook = HookCommand {
        exe: exe.clone(),
        config: absolute(&args.config.path)?,
        audit: args.audit.as_deref().map(absolute).transpose()?,
    };
    let root = absolute(&args.root)?;
    let mut mirrors = Vec::new();
    for remote in &config.remotes {
        let access = Access::new(&remote.upstream, config.proxy.as_ref(), &exe);
        mirrors.push(
            Mirror::prepare(&root, remote.clone(), access, &hook).map_err(|e| e.to_string())?,
        );
    }
    let gate = Arc::new(Gate { root, mirrors });
    let listener = socket::bind_world(&args.socket).map_err(|e| e.to_string())?;
    tracing::info!(
        socket = %args.socket.display(),
        remotes = %gate.mirrors.iter().map(|m| m.remote.name.as_str()).collect::<Vec<_>>().join(","),
        "serving"
    );
    // The first clone then finds the mirror filled (or waits for this refresh to end).
    let started = Instant::now();
    for i in 0..gate.mirrors.len() {
        let gate = gate.clone();
        tokio::spawn(async move {
            let _ = gate.mirrors[i].refresh(started).await;
        });
    }
    let accept = socket::serve(listener, args.max_connections, move |stream| {
        let gate = gate.clone();
        async move {
            http1::Builder::new()
                .serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |request| http::handle(gate.clone(), request)),
                )
                .await
                .map_err(std::io::Error::other)
        }
    });
    tokio::select! {
        () = accept => {}
        () = runtime::shutdown_signal() => tracing::info!("stopping"),
    }
    let _ = std::fs::remove_file(&args.socket);
    Ok(())
}

/// Fails when a credential the configuration names is missing, so the operator learns it at
/// start rather than at the agent's first push. Only presence is checked: the gate never reads
/// a token's value.
fn check_credentials(config: &Config) -> Result<(), String> {
    let mut missing = Vec::new();
    for remote in &config.remotes {
        match &remote.upstream {
            Upstream::Http {
                token: Some(token), ..
            } => {
                if std::env::var_os(&token.env).is_none_or(|v| v.is_empty()) {
                    missing.push(format!(
                        "remote {}: the token variable {} is not set",
                        remote.name, token.env
                    ));
                }
            }
            Upstream::Http { token: None, .. } => {}
            Upstream::Ssh {
                key, known_hosts, ..
            } => {
                for (what, path) in [("key", key), ("known_hosts file", known_hosts)] {
                    if let Err(e) = std::fs::File::open(path) {
                        missing.push(format!(
                            "remote {}: the ssh {what} {} cannot be read: {e}",
                            remote.name,
                            path.display()
                        ));
                    }
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("\n"))
    }
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("failed to resolve {}: {e}", path.display()))
}
