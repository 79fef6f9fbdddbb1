//! The backend-neutral launch spec: the agent and its sidecars as a backend must create them.
//!
//! Pure: built from a [`BottlePlan`] and the prepared images; a test can add sidecars of its own.

use std::path::PathBuf;
use std::time::Duration;

use super::Prepared;
use crate::chain::{self, EgressStage};
use crate::egress;
use crate::image;
use crate::manifest::Runtime;
use crate::plan::BottlePlan;
use crate::secret::Secret;
use crate::stage::Stage;

/// The agent's home inside the image (the image contract: uid 1000, checked by `prepare`).
pub const AGENT_HOME: &str = image::contract::AGENT_HOME;
/// The user the agent runs as, whatever its image's `USER` says (the image contract).
pub const AGENT_FALLBACK_USER: &str = image::contract::AGENT_RUN_AS;

/// Everything one bottle launch creates.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub slug: String,
    /// Labels every object carries (bottle, version, launcher pid); roles are added per object.
    pub labels: Vec<(String, String)>,
    /// Per-bottle named volumes (sockets shared between sidecars and the agent).
    pub volumes: Vec<String>,
    pub sidecars: Vec<SidecarSpec>,
    pub agent: AgentSpec,
}

/// The agent container.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub image: String,
    pub user: String,
    /// The launcher's entrypoint, then the image's own.
    pub entrypoint: Vec<String>,
    /// Replaces the image's CMD.
    pub command: Vec<String>,
    pub env: Vec<(String, EnvValue)>,
    pub mounts: Vec<Mount>,
    pub limits: crate::plan::AgentLimits,
    /// The `size` of its writable layer, where the storage driver bounds it.
    pub disk_bytes: Option<u64>,
    /// The size of its `/tmp`, a tmpfs.
    pub tmp_bytes: u64,
    pub runtime: Runtime,
    /// Folders saved in a snapshot and restored into a successor.
    pub state_paths: Vec<String>,
    /// Attach a TTY (interactive operator) or stream output only.
    pub tty: bool,
    /// Started ahead and held until this host file exists (a file of the stage's gate folder,
    /// which every agent has read-only at `/run/claude-bottle/gate`; the entrypoint waits for the file
    /// named by `CLAUDE_BOTTLE_GATE` before it touches the home). `None`: created, and started by
    /// `run_agent`.
    pub gate: Option<PathBuf>,
}

/// An environment value; secrets pass straight to the engine API and are never logged.
#[derive(Debug, Clone)]
pub enum EnvValue {
    Plain(String),
    Secret(Secret),
}

impl EnvValue {
    pub fn expose(&self) -> &str {
        match self {
            EnvValue::Plain(v) => v,
            EnvValue::Secret(s) => s.expose(),
        }
    }
}

/// A mount into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

impl Mount {
    /// Host path `host` at `target`, read-only.
    pub fn read_only(host: PathBuf, target: impl Into<String>) -> Self {
        Self {
            source: MountSource::Bind(host),
            target: target.into(),
            read_only: true,
        }
    }

    /// Host path `host` at `target`, writable.
    pub fn writable(host: PathBuf, target: impl Into<String>) -> Self {
        Self {
            read_only: false,
            ..Self::read_only(host, target)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host path.
    Bind(PathBuf),
    /// A per-bottle named volume (one of [`LaunchSpec::volumes`]).
    Volume(String),
}

/// Which of the bottle's networks a sidecar joins. The agent joins none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkAttachment {
    /// `<slug>-internal`: no route out; the sidecars talk to each other here.
    Internal,
    /// `<slug>-egress`: a bridge with a way out, for the last hop only.
    Egress,
    /// `<slug>-git`: no route out; the git gate and its own pipelock only.
    Git,
}

/// A sidecar container, started before the agent.
#[derive(Debug, Clone)]
pub struct SidecarSpec {
    /// Role and container-name suffix: `pipelock`, `egress-proxy`, `supervise`…
    pub name: String,
    pub image: String,
    /// Replaces the image's CMD.
    pub command: Vec<String>,
    pub env: Vec<(String, EnvValue)>,
    /// Empty: network mode none.
    pub networks: Vec<NetworkAttachment>,
    pub mounts: Vec<Mount>,
    /// `uid:gid` to run as; `None` keeps the image's user.
    pub user: Option<String>,
    pub readiness: Readiness,
    pub ready_timeout: Duration,
    /// Ready before the agent starts (supervise). Otherwise the agent starts while this sidecar
    /// comes up ([`super::Backend::await_sidecars`]): the relay, pipelock and the egress-proxy,
    /// whose first connections the relays hold until they listen.
    pub gates_agent: bool,
}

/// When a sidecar counts as ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Running (not exited) after a short settle time.
    Running,
    /// A line of its output contains this text.
    LogLine(String),
    /// This command, run inside it, exits 0.
    Exec(Vec<String>),
    /// `GET path` on this port of the container answers 200 (pipelock's `/health`).
    Http { port: u16, path: String },
}

impl LaunchSpec {
    /// The spec of `plan` with its images prepared and its host folders staged.
    pub fn new(plan: &BottlePlan, prepared: &Prepared, stage: &Stage, tty: bool) -> Self {
        let mut env: Vec<(String, EnvValue)> = vec![
            ("CLAUDE_BOTTLE".into(), EnvValue::Plain("1".into())),
            (
                "CLAUDE_BOTTLE_NAME".into(),
                EnvValue::Plain(plan.name.clone()),
            ),
        ];
        for f in &plan.env_forwarded {
            if let Some(v) = &f.value {
                env.push((f.name.clone(), EnvValue::Secret(v.clone())));
            }
        }
        for (name, value) in &plan.env_literal {
            env.push((name.clone(), EnvValue::Plain(value.clone())));
        }
        if let Some(model) = &plan.agent.model {
            env.push(("ANTHROPIC_MODEL".into(), EnvValue::Plain(model.clone())));
        }
        let mut mounts: Vec<Mount> = plan
            .skills
            .iter()
            .map(|s| {
                Mount::read_only(
                    s.path.clone(),
                    format!("{AGENT_HOME}/.claude/skills/{}", s.name),
                )
            })
            .collect();
        mounts.push(Mount::read_only(
            stage.current_config.clone(),
            CURRENT_CONFIG_IN_AGENT,
        ));
        // What the launcher puts into every agent, read-only and outside the image's layers.
        mounts.extend([
            Mount::read_only(prepared.shim.clone(), image::SHIM_PATH),
            Mount::read_only(stage.agent_lib.clone(), AGENT_LIB_DIR),
            Mount::read_only(stage.gate.clone(), GATE_IN_AGENT),
        ]);
        env.push((
            "BASH_ENV".into(),
            EnvValue::Plain(image::BASH_ENV_PATH.into()),
        ));
        let mut entrypoint = vec![image::ENTRYPOINT_PATH.to_string()];
        entrypoint.extend(prepared.agent_entrypoint.iter().cloned());
        let mut sidecars = Vec::new();
        if let (true, Some(image)) = (plan.supervise, &prepared.supervise_image) {
            sidecars.push(supervise_sidecar(plan, image, stage));
            // The agent gets the socket's folder read-only, never the queue.
            mounts.push(Mount::read_only(
                stage.supervise_run.clone(),
                SUPERVISE_RUN_DIR,
            ));
            env.push((
                "CLAUDE_BOTTLE_SUPERVISE_SOCKET".into(),
                EnvValue::Plain(format!("{SUPERVISE_RUN_DIR}/{SUPERVISE_SOCKET}")),
            ));
        }
        if let (Some(images), Some(staged)) = (&prepared.egress, &stage.egress) {
            sidecars.extend(egress_sidecars(images, staged));
            mounts.extend(agent_egress_mounts(staged));
            env.extend(agent_egress_env(plan));
        }
        if let (Some(images), Some(staged)) = (&prepared.git, &stage.git) {
            sidecars.extend(super::git_spec::sidecars(images, staged));
            mounts.extend(super::git_spec::agent_mounts(staged));
            env.extend(super::git_spec::agent_env(plan));
        }
        // The contract's home, whatever the image or the bottle's env say: without it the engine
        // takes the home of uid 1000's passwd entry, or `/`; snapshots save this folder.
        env.retain(|(k, _)| k != "HOME");
        env.push(("HOME".into(), EnvValue::Plain(AGENT_HOME.into())));
        let mut labels = plan.base_labels();
        labels.push((
            crate::plan::LABEL_LAUNCHER_PID.into(),
            std::process::id().to_string(),
        ));
        Self {
            slug: plan.slug.clone(),
            labels,
            volumes: Vec::new(),
            sidecars,
            agent: AgentSpec {
                image: prepared.agent_image.clone(),
                user: prepared
                    .agent_user
                    .clone()
                    .unwrap_or_else(|| AGENT_FALLBACK_USER.into()),
                entrypoint,
                command: plan.agent.command.clone(),
                env,
                mounts,
                limits: plan.limits,
                disk_bytes: prepared.agent_disk,
                tmp_bytes: super::disk::tmp_bytes(plan.limits.memory_bytes),
                runtime: plan.runtime,
                state_paths: vec![AGENT_HOME.into(), crate::image::WORKSPACE_DIR.into()],
                tty,
                gate: None,
            },
        }
    }
}

impl AgentSpec {
    /// The same agent, started with the agent file's resume arguments appended.
    pub fn resuming(&self, plan: &BottlePlan) -> Self {
        let mut next = self.clone();
        next.command = plan.agent.command.clone();
        next.command.extend(plan.agent.resume.iter().cloned());
        next
    }

    /// The same agent, started ahead and held until `release` (a new file name in the stage's
    /// gate folder) exists: a successor, whose start then costs the swap nothing.
    pub fn held(mut self, release: PathBuf) -> Self {
        let name = release
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.env.retain(|(k, _)| k != GATE_ENV);
        self.env.push((
            GATE_ENV.into(),
            EnvValue::Plain(format!("{GATE_IN_AGENT}/{name}")),
        ));
        self.gate = Some(release);
        self
    }
}

/// Where the agent sees the stage's gate folder (read-only).
pub const GATE_IN_AGENT: &str = "/run/claude-bottle/gate";
/// The file a held agent's entrypoint waits for.
const GATE_ENV: &str = "CLAUDE_BOTTLE_GATE";

/// Where the launcher's scripts live in the agent (the entrypoint and the bash hook).
pub const AGENT_LIB_DIR: &str = "/usr/local/lib/claude-bottle";

/// Where the agent reads its bottle's current-config.
pub const CURRENT_CONFIG_IN_AGENT: &str = "/etc/claude-bottle/current-config";
/// The folder holding supervise's socket, in supervise and (read-only) in the agent.
pub const SUPERVISE_RUN_DIR: &str = "/run/claude-bottle/supervise";
/// supervise's socket file name.
pub const SUPERVISE_SOCKET: &str = "supervise.sock";
/// The queue inside supervise.
const QUEUE_IN_SUPERVISE: &str = "/run/supervise/queue";
/// The current-config inside supervise.
const CONFIG_IN_SUPERVISE: &str = "/run/supervise/current-config";

/// supervise: no network at all; it writes proposals into the host queue and can only read the
/// decisions and applied records, which are mounted read-only over the writable queue.
fn supervise_sidecar(plan: &BottlePlan, image: &str, stage: &Stage) -> SidecarSpec {
    let decisions = claude_bottle_protocol::queue::DECISIONS_DIR;
    let applied = claude_bottle_protocol::queue::APPLIED_DIR;
    SidecarSpec {
        name: "supervise".into(),
        image: image.to_string(),
        command: vec![
            "--bottle".into(),
            plan.name.clone(),
            "--socket".into(),
            format!("{SUPERVISE_RUN_DIR}/{SUPERVISE_SOCKET}"),
            "--queue-dir".into(),
            QUEUE_IN_SUPERVISE.into(),
            "--config-dir".into(),
            CONFIG_IN_SUPERVISE.into(),
        ],
        env: vec![],
        networks: vec![],
        mounts: vec![
            Mount::writable(stage.queue.clone(), QUEUE_IN_SUPERVISE),
            Mount::read_only(
                stage.queue.join(decisions),
                format!("{QUEUE_IN_SUPERVISE}/{decisions}"),
            ),
            Mount::read_only(
                stage.queue.join(applied),
                format!("{QUEUE_IN_SUPERVISE}/{applied}"),
            ),
            Mount::writable(stage.supervise_run.clone(), SUPERVISE_RUN_DIR),
            Mount::read_only(stage.current_config.clone(), CONFIG_IN_SUPERVISE),
        ],
        user: Some(supervise_user()),
        readiness: Readiness::LogLine("supervise listening".into()),
        ready_timeout: Duration::from_secs(20),
        gates_agent: true,
    }
}

/// pipelock's readiness budget: a first start may have a cold page cache.
const EGRESS_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The relay sidecar's log line once it listens.
const RELAY_READY_LINE: &str = "relay listening";

/// pipelock on both networks (the only sidecar with a way out), the egress-proxy on the internal
/// one when a route carries a credential, and the relay that gives the agent (network none) its
/// socket to the first hop. All run as the operator, who owns the 0600 keys.
fn egress_sidecars(images: &super::EgressImages, staged: &EgressStage) -> Vec<SidecarSpec> {
    use crate::egress::images as contract;
    let mut pipelock_env = Vec::new();
    if staged.upstream_ca {
        // Go's crypto/x509 adds the certificates of every file in SSL_CERT_DIR to the system
        // bundle; the stand-in honours it too.
        pipelock_env.push((
            "SSL_CERT_DIR".to_string(),
            EnvValue::Plain(format!(
                "{}/{}",
                egress::PIPELOCK_CONFIG_DIR,
                chain::UPSTREAM_CA_DIR
            )),
        ));
    }
    let mut sidecars = vec![pipelock_sidecar(
        PIPELOCK,
        &images.pipelock,
        staged.pipelock.clone(),
        NetworkAttachment::Internal,
        pipelock_env,
    )];
    let first_hop = match (&images.egress_proxy, &staged.egress_proxy) {
        (Some(image), Some(dir)) => {
            let mut env = vec![(
                contract::EGRESS_PROXY_UPSTREAM_ENV.to_string(),
                EnvValue::Plain(format!("http://{PIPELOCK}:{}", egress::PIPELOCK_PORT)),
            )];
            env.extend(
                staged
                    .tokens
                    .iter()
                    .map(|(slot, value)| (slot.clone(), EnvValue::Secret(value.clone()))),
            );
            sidecars.push(SidecarSpec {
                name: EGRESS_PROXY.into(),
                image: image.clone(),
                command: vec![],
                env,
                networks: vec![NetworkAttachment::Internal],
                mounts: vec![Mount::read_only(
                    dir.clone(),
                    contract::EGRESS_PROXY_CONFIG_DIR,
                )],
                user: Some(operator_user()),
                readiness: Readiness::LogLine(contract::EGRESS_PROXY_READY_LINE.into()),
                ready_timeout: EGRESS_READY_TIMEOUT,
                gates_agent: false,
            });
            format!("{EGRESS_PROXY}:{}", contract::EGRESS_PROXY_PORT)
        }
        _ => format!("{PIPELOCK}:{}", egress::PIPELOCK_PORT),
    };
    sidecars.push(SidecarSpec {
        name: RELAY.into(),
        image: images.relay.clone(),
        command: vec![
            "--listen".into(),
            format!(
                "unix:{}/{}",
                chain::NET_DIR_IN_CONTAINER,
                chain::PROXY_SOCKET
            ),
            "--connect".into(),
            format!("tcp:{first_hop}"),
        ],
        env: vec![("CLAUDE_BOTTLE_LOG".into(), EnvValue::Plain("info".into()))],
        networks: vec![NetworkAttachment::Internal],
        mounts: vec![Mount::writable(
            staged.net.clone(),
            chain::NET_DIR_IN_CONTAINER,
        )],
        user: Some(operator_user()),
        readiness: Readiness::LogLine(RELAY_READY_LINE.into()),
        ready_timeout: Duration::from_secs(10),
        // The agent's own relay waits for this socket to appear.
        gates_agent: false,
    });
    sidecars
}

/// A pipelock: its staged folder (`dir`, config and CA) read-only at its config folder, on `net`
/// and the egress network (its way out), as the operator, ready when `/health` answers. The
/// bottle's, and the git gate's own.
pub(super) fn pipelock_sidecar(
    name: &str,
    image: &str,
    dir: PathBuf,
    net: NetworkAttachment,
    env: Vec<(String, EnvValue)>,
) -> SidecarSpec {
    SidecarSpec {
        name: name.into(),
        image: image.to_owned(),
        command: vec![
            "run".into(),
            "--config".into(),
            format!(
                "{}/{}",
                egress::PIPELOCK_CONFIG_DIR,
                egress::PIPELOCK_CONFIG_FILE
            ),
            "--listen".into(),
            format!("0.0.0.0:{}", egress::PIPELOCK_PORT),
        ],
        env,
        networks: vec![net, NetworkAttachment::Egress],
        mounts: vec![Mount::read_only(dir, egress::PIPELOCK_CONFIG_DIR)],
        user: Some(operator_user()),
        readiness: Readiness::Http {
            port: egress::PIPELOCK_PORT,
            path: "/health".into(),
        },
        ready_timeout: EGRESS_READY_TIMEOUT,
        gates_agent: false,
    }
}

/// The relay's socket and the agent's CA, read-only; the bundle over the system store.
fn agent_egress_mounts(staged: &EgressStage) -> Vec<Mount> {
    vec![
        Mount::read_only(staged.net.clone(), chain::NET_DIR_IN_CONTAINER),
        Mount::read_only(
            staged.net.join(chain::AGENT_BUNDLE_FILE),
            chain::SYSTEM_BUNDLE,
        ),
    ]
}

/// The proxy and trust variables of an agent behind the chain, and the token placeholders.
fn agent_egress_env(plan: &BottlePlan) -> Vec<(String, EnvValue)> {
    let proxy = format!("http://127.0.0.1:{}", chain::AGENT_PROXY_PORT);
    let no_proxy = "localhost,127.0.0.1,::1".to_string();
    let ca = format!("{}/{}", chain::NET_DIR_IN_CONTAINER, chain::AGENT_CA_FILE);
    let mut env: Vec<(String, String)> = vec![
        (
            chain::PROXY_SOCKET_ENV.into(),
            format!("{}/{}", chain::NET_DIR_IN_CONTAINER, chain::PROXY_SOCKET),
        ),
        (
            chain::AGENT_PROXY_PORT_ENV.into(),
            chain::AGENT_PROXY_PORT.to_string(),
        ),
        ("HTTP_PROXY".into(), proxy.clone()),
        ("HTTPS_PROXY".into(), proxy.clone()),
        ("http_proxy".into(), proxy.clone()),
        ("https_proxy".into(), proxy),
        ("NO_PROXY".into(), no_proxy.clone()),
        ("no_proxy".into(), no_proxy),
        ("NODE_EXTRA_CA_CERTS".into(), ca),
        ("SSL_CERT_FILE".into(), chain::SYSTEM_BUNDLE.into()),
        ("REQUESTS_CA_BUNDLE".into(), chain::SYSTEM_BUNDLE.into()),
        ("CURL_CA_BUNDLE".into(), chain::SYSTEM_BUNDLE.into()),
        ("GIT_SSL_CAINFO".into(), chain::SYSTEM_BUNDLE.into()),
    ];
    for name in chain::placeholder_names(plan) {
        env.push((name, chain::TOKEN_PLACEHOLDER.into()));
    }
    env.into_iter()
        .map(|(k, v)| (k, EnvValue::Plain(v)))
        .collect()
}

/// Sidecar names (container suffix, role label and network alias).
pub const PIPELOCK: &str = "pipelock";
pub const EGRESS_PROXY: &str = "egress-proxy";
pub const RELAY: &str = "relay";

/// The launcher's own uid:gid: sidecars that read the operator's 0600 keys run as them.
pub fn operator_user() -> String {
    format!("{}:{}", nix::unistd::getuid(), nix::unistd::getgid())
}

/// supervise's uid: neither the agent's (1000, on most machines also the operator's) nor the
/// operator's. Per-user kernel limits (inotify instances and watches, queued signals, processes)
/// are counted per uid across the host, so an agent that exhausts its own cannot starve
/// supervise's watcher. 65532 is the conventional "nonroot" of distroless images.
pub const SUPERVISE_UID: u32 = 65532;

/// supervise's uid:gid: [`SUPERVISE_UID`] with the operator's gid, the group the launcher gives
/// the two folders supervise writes (`queue/proposals/`, `run/supervise/`, mode 0775).
pub fn supervise_user() -> String {
    let uid = if nix::unistd::getuid().as_raw() == SUPERVISE_UID {
        SUPERVISE_UID + 1
    } else {
        SUPERVISE_UID
    };
    format!("{uid}:{}", nix::unistd::getgid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{EgressImages, Prepared};
    use crate::egress::EgressRoutes;
    use crate::home::Home;

    const TOKEN: &str = "sk-test-0123456789abcdefghij";

    fn launch(credentials: bool) -> (tempfile::TempDir, LaunchSpec) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = Home::new(tmp.path());
        let bottle = crate::manifest::load(&home, "default").expect("embedded default");
        let mut plan = crate::plan::build(&home, bottle, &Default::default(), |_| None);
        if !credentials {
            for r in &mut plan.routes {
                r.auth = None;
            }
        }
        let tokens = EgressRoutes::from_routes(&plan.routes)
            .resolve(|_| Some(TOKEN.to_string()))
            .expect("tokens");
        let mut stage = crate::stage::prepare(&plan).expect("stage");
        stage.egress = Some(chain::stage(&plan, &tokens, None, &[], "").expect("chain"));
        let prepared = Prepared {
            agent_image: "agent:1".into(),
            root_step_base: None,
            agent_user: None,
            agent_disk: None,
            agent_entrypoint: vec![],
            shim: "/bin/shim".into(),
            supervise_image: None,
            egress: Some(EgressImages {
                pipelock: "pipelock:1".into(),
                egress_proxy: credentials.then(|| "egress-proxy:1".to_string()),
                relay: "relay:1".into(),
                image_roots: String::new(),
            }),
            git: None,
            builds: vec![],
            notes: Vec::new(),
        };
        let spec = LaunchSpec::new(&plan, &prepared, &stage, false);
        (tmp, spec)
    }

    fn env<'a>(env: &'a [(String, EnvValue)], name: &str) -> Option<&'a EnvValue> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    #[test]
    fn the_chain_runs_in_sidecars_and_only_the_egress_proxy_holds_the_token() {
        let (_tmp, spec) = launch(true);
        let names: Vec<&str> = spec.sidecars.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [PIPELOCK, EGRESS_PROXY, RELAY]);
        let pipelock = &spec.sidecars[0];
        assert_eq!(
            pipelock.networks,
            [NetworkAttachment::Internal, NetworkAttachment::Egress]
        );
        assert_eq!(
            pipelock.readiness,
            Readiness::Http {
                port: 8888,
                path: "/health".into()
            }
        );
        assert!(pipelock.mounts.iter().all(|m| m.read_only));
        let proxy = &spec.sidecars[1];
        assert_eq!(proxy.networks, [NetworkAttachment::Internal]);
        assert!(matches!(
            env(&proxy.env, "CLAUDE_BOTTLE_TOKEN_0"),
            Some(EnvValue::Secret(s)) if s.expose() == TOKEN
        ));
        let relay = &spec.sidecars[2];
        assert_eq!(relay.networks, [NetworkAttachment::Internal]);
        assert_eq!(
            relay.command.last().map(String::as_str),
            Some("tcp:egress-proxy:8080")
        );
        for s in &spec.sidecars {
            assert_eq!(
                s.user,
                Some(operator_user()),
                "{} runs as the operator",
                s.name
            );
            if s.name != EGRESS_PROXY {
                assert!(s.env.iter().all(|(_, v)| v.expose() != TOKEN), "{}", s.name);
            }
        }
        // The agent: a placeholder, the proxy, the CA, and never the token.
        let agent = &spec.agent;
        assert!(agent.env.iter().all(|(_, v)| v.expose() != TOKEN));
        assert_eq!(
            env(&agent.env, "ANTHROPIC_API_KEY").map(EnvValue::expose),
            Some(chain::TOKEN_PLACEHOLDER)
        );
        assert_eq!(
            env(&agent.env, "HTTPS_PROXY").map(EnvValue::expose),
            Some("http://127.0.0.1:3128")
        );
        for var in [
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "GIT_SSL_CAINFO",
            "CURL_CA_BUNDLE",
        ] {
            assert_eq!(
                env(&agent.env, var).map(EnvValue::expose),
                Some(chain::SYSTEM_BUNDLE),
                "{var}"
            );
        }
        let bundle = agent
            .mounts
            .iter()
            .find(|m| m.target == chain::SYSTEM_BUNDLE)
            .expect("the bundle over the system store");
        assert!(bundle.read_only);
        let net = agent
            .mounts
            .iter()
            .find(|m| m.target == chain::NET_DIR_IN_CONTAINER)
            .expect("the socket folder");
        assert!(
            net.read_only,
            "the agent cannot replace the socket or the CA"
        );
    }

    #[test]
    fn supervise_runs_as_its_own_uid_with_the_operators_group() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = Home::new(tmp.path());
        let bottle = crate::manifest::load(&home, "default").expect("embedded default");
        let plan = crate::plan::build(&home, bottle, &Default::default(), |_| None);
        let stage = crate::stage::prepare(&plan).expect("stage");
        let supervise = supervise_sidecar(&plan, "supervise:1", &stage);
        let user = supervise.user.expect("a user");
        let (uid, gid) = user.split_once(':').expect("uid:gid");
        let uid: u32 = uid.parse().expect("numeric");
        assert_ne!(
            uid,
            crate::image::contract::AGENT_UID,
            "not the agent's uid"
        );
        assert_ne!(
            uid,
            nix::unistd::getuid().as_raw(),
            "not the operator's uid"
        );
        assert_eq!(
            gid,
            nix::unistd::getgid().to_string(),
            "the operator's group"
        );
    }

    #[test]
    fn without_credentials_the_relay_goes_to_pipelock() {
        let (_tmp, spec) = launch(false);
        let names: Vec<&str> = spec.sidecars.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [PIPELOCK, RELAY]);
        assert_eq!(
            spec.sidecars[1].command.last().map(String::as_str),
            Some("tcp:pipelock:8888")
        );
        assert!(env(&spec.agent.env, "ANTHROPIC_API_KEY").is_none());
    }
}
