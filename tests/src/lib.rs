//! Helpers for the end-to-end tests against a real Docker engine: a throw-away home with uniquely
//! named bottles, the launcher binary, and cleanup that runs even when a test fails.

pub mod images;
pub mod terminal;
pub mod test_git;

pub use test_git::{TestGit, TestGitFiles, ensure_test_git_image};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, ListNetworksOptions, ListVolumesOptions,
    RemoveContainerOptions, RemoveImageOptions, RemoveVolumeOptions,
};

/// The offline base image every test image builds FROM (made by `scripts/base-image.sh`).
pub const BASE_IMAGE: &str = "claude-bottle/base:bookworm";
/// The label every object of a bottle carries, with the bottle's slug as its value.
pub const LABEL_BOTTLE: &str = "claude-bottle.bottle";

/// Connect to the engine. Under `CI=true` a missing engine fails the test loudly; elsewhere the
/// test is skipped with a message (returns `None`).
pub async fn docker() -> Option<Docker> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let connected = match Docker::connect_with_defaults() {
        Ok(d) => match d.negotiate_version().await {
            Ok(d) => d.ping().await.map(|_| d).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    match connected {
        Ok(d) => {
            assert!(
                d.inspect_image(BASE_IMAGE).await.is_ok(),
                "the base image {BASE_IMAGE} is missing: run scripts/base-image.sh (the README's test command does)"
            );
            ensure_test_agent_image(&d).await;
            ensure_egress_test_images(&d).await;
            Some(d)
        }
        Err(e) if ci => panic!("CI=true and the Docker engine is not reachable: {e}"),
        Err(e) => {
            eprintln!("SKIPPED: no Docker engine ({e}); set CI=true to make this a failure");
            None
        }
    }
}

/// Where the launcher looks for the shim and supervise binaries in tests: `$CLAUDE_BOTTLE_BIN_DIR`
/// (scripts/test.sh points it at the static builds), else cargo's `target/<profile>/`.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("CLAUDE_BOTTLE_BIN_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(profile_dir, PathBuf::from)
}

/// `target/<profile>/`, where cargo put the launcher.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The `claude-bottle` binary next to the test binary's deps folder.
pub fn launcher() -> PathBuf {
    let p = profile_dir().join("claude-bottle");
    assert!(
        p.is_file(),
        "{} is missing: build it with `cargo build -p claude-bottle`",
        p.display()
    );
    p
}

/// Names the runtime every test bottle runs under unless its front matter names one: `runsc` runs
/// the suite under gVisor, on an engine that has it registered (`scripts/side-engine.sh --runsc`).
pub const E2E_RUNTIME_ENV: &str = "CLAUDE_BOTTLE_E2E_RUNTIME";

/// The runtime of [`E2E_RUNTIME_ENV`], when set.
pub fn suite_runtime() -> Option<String> {
    std::env::var(E2E_RUNTIME_ENV)
        .ok()
        .filter(|v| !v.is_empty())
}

/// Whether the suite runs its bottles under gVisor ([`E2E_RUNTIME_ENV`]` = runsc`).
pub fn under_gvisor() -> bool {
    suite_runtime().as_deref() == Some("runsc")
}

/// `yaml` with the suite's runtime added, unless it names its own.
fn with_suite_runtime(yaml: &str) -> String {
    match suite_runtime() {
        Some(rt) if !yaml.lines().any(|l| l.starts_with("runtime:")) => {
            format!("{yaml}runtime: {rt}\n")
        }
        _ => yaml.to_owned(),
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A throw-away CLAUDE_BOTTLE_HOME and one uniquely named bottle in it. Dropping it removes the
/// bottle's containers, networks, volumes and images from the engine and the folder from disk.
#[derive(Debug)]
pub struct TestBottle {
    pub home: tempfile::TempDir,
    pub name: String,
}

/// The shared agent image of the tests: the base image with the image contract's `agent` user.
/// Built once and kept (like the base image), so each test's own images are only thin layers.
pub const TEST_AGENT_IMAGE: &str = "claude-bottle/test-agent:bookworm";
const TEST_AGENT_DOCKERFILE: &str = "FROM claude-bottle/base:bookworm\n\
RUN useradd -u 1000 -m -d /home/agent agent && mkdir /workspace && chown agent /workspace\n\
USER agent\n\
WORKDIR /workspace\n";

/// The Dockerfile each test bottle names.
pub const TEST_DOCKERFILE: &str = "FROM claude-bottle/test-agent:bookworm\n";

static EGRESS_BUILD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static BUILD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Build [`TEST_AGENT_IMAGE`] unless it exists.
/// The images of bottle `slug` with role `agent-base` (the first layer of its agent image).
pub async fn agent_base_images(d: &Docker, slug: &str) -> Vec<bollard::models::ImageSummary> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{LABEL_BOTTLE}={slug}"),
            "claude-bottle.role=agent-base".to_string(),
        ],
    )]);
    d.list_images(Some(ListImagesOptions {
        filters: Some(filters),
        ..Default::default()
    }))
    .await
    .expect("list images")
}

pub async fn ensure_test_agent_image(d: &Docker) {
    let _guard = BUILD_LOCK.lock().await;
    if d.inspect_image(TEST_AGENT_IMAGE).await.is_ok() {
        return;
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(TEST_AGENT_DOCKERFILE.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, "Dockerfile", TEST_AGENT_DOCKERFILE.as_bytes())
        .expect("tar");
    let body = tar.into_inner().expect("tar");
    let opts = bollard::query_parameters::BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(TEST_AGENT_IMAGE.into()),
        rm: true,
        ..Default::default()
    };
    let mut stream = d.build_image(opts, None, Some(bollard::body_full(body.into())));
    while let Some(item) = futures_util::StreamExt::next(&mut stream).await {
        if let Err(e) = item {
            panic!("failed to build {TEST_AGENT_IMAGE}: {e}");
        }
    }
}

impl TestBottle {
    /// A bottle named `e2e-<tag>-<pid>-<n>` whose front matter is `yaml` (the test Dockerfile and an
    /// agent named after the bottle are added), with `command` as the agent's argv.
    pub fn new(tag: &str, yaml: &str, command: &[&str]) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("e2e-{tag}-{}-{n}", std::process::id());
        let home = tempfile::tempdir().expect("tempdir");
        for dir in ["bottles", "agents", "skills"] {
            std::fs::create_dir_all(home.path().join(dir)).expect("mkdir");
        }
        std::fs::write(home.path().join("bottles/Dockerfile"), TEST_DOCKERFILE)
            .expect("write Dockerfile");
        let bottle = Self { home, name };
        bottle.write_bottle(yaml);
        bottle.write_agent(command);
        bottle
    }

    /// A bottle on the **embedded** agent image (the real Claude Code CLI) with `yaml` as the rest
    /// of its front matter. Its agent is the embedded `claude`, or with `own_agent` an agent file
    /// named after the bottle (write it with [`TestBottle::write_agent_resuming`]). The image's
    /// download stage trusts the host's roots ([`TestBottle::claude_command`]).
    pub fn embedded(tag: &str, own_agent: bool, yaml: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("e2e-{tag}-{}-{n}", std::process::id());
        let home = tempfile::tempdir().expect("tempdir");
        for dir in ["bottles", "agents", "skills"] {
            std::fs::create_dir_all(home.path().join(dir)).expect("mkdir");
        }
        let agent = if own_agent { name.as_str() } else { "claude" };
        std::fs::write(
            home.path().join(format!("bottles/{name}.md")),
            format!("---\nagent: {agent}\n{}---\n", with_suite_runtime(yaml)),
        )
        .expect("write bottle");
        Self { home, name }
    }

    /// [`TestBottle::command`] for bottles on the embedded image: its build downloads Claude Code
    /// from the Python package index, trusting the host's roots too (a TLS-inspecting proxy here).
    pub fn claude_command(&self, args: &[&str]) -> Command {
        let mut c = self.command(args);
        c.env(claude_bottle::config::ENV_BUILD_CA, HOST_ROOTS);
        c
    }

    pub fn path(&self) -> &Path {
        self.home.path()
    }

    pub fn slug(&self) -> String {
        claude_bottle::plan::slug(&self.name)
    }

    pub fn write_bottle(&self, yaml: &str) {
        let text = format!(
            "---\nagent: {}\ndockerfile: Dockerfile\n{}---\n",
            self.name,
            with_suite_runtime(yaml)
        );
        std::fs::write(self.path().join(format!("bottles/{}.md", self.name)), text)
            .expect("write bottle");
    }

    pub fn write_agent(&self, command: &[&str]) {
        self.write_agent_resuming(command, &[]);
    }

    /// The agent file with `resume:` arguments (appended to the command when the session resumes).
    pub fn write_agent_resuming(&self, command: &[&str], resume: &[&str]) {
        let argv = serde_json::to_string(command).expect("argv as JSON (a YAML flow list)");
        let resume = serde_json::to_string(resume).expect("resume as JSON");
        let text = format!("---\ncommand: {argv}\nresume: {resume}\n---\nA scripted test agent.\n");
        std::fs::write(self.path().join(format!("agents/{}.md", self.name)), text)
            .expect("write agent");
    }

    pub fn add_skill(&self, name: &str, file: &str, content: &str) {
        let dir = self.path().join("skills").join(name);
        std::fs::create_dir_all(&dir).expect("mkdir skill");
        std::fs::write(dir.join(file), content).expect("write skill");
    }

    /// `claude-bottle <args>` with this home, the cargo-built binaries, the tests' pipelock
    /// ([`pipelock_image`]: the stand-in unless a real image is named), the offline base image, and
    /// no terminal.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(launcher());
        c.args(args)
            .env("CLAUDE_BOTTLE_HOME", self.path())
            .env("CLAUDE_BOTTLE_BIN_DIR", bin_dir())
            .env(claude_bottle::config::ENV_PIPELOCK_IMAGE, pipelock_image())
            .env(claude_bottle::config::ENV_BASE_IMAGE, BASE_IMAGE)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null());
        c
    }

    /// The launcher's config for in-process tests (as [`TestBottle::command`]'s environment).
    pub fn config(&self) -> claude_bottle::config::Config {
        use claude_bottle::config::{ENV_BASE_IMAGE, ENV_BIN_DIR, ENV_PIPELOCK_IMAGE};
        let bins = bin_dir();
        claude_bottle::config::Config::load_with_env(self.path(), |name| match name {
            ENV_BIN_DIR => Some(bins.clone().into_os_string()),
            ENV_PIPELOCK_IMAGE => Some(pipelock_image().into()),
            ENV_BASE_IMAGE => Some(BASE_IMAGE.into()),
            _ => None,
        })
        .expect("config")
    }
}

impl Drop for TestBottle {
    fn drop(&mut self) {
        let slug = self.slug();
        // Drop may run inside a test's runtime: clean up from a thread with a runtime of its own.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(remove_everything(&slug, true));
        });
        let _ = handle.join();
    }
}

/// Remove every container, network, volume (and optionally image) labelled with `slug`.
pub async fn remove_everything(slug: &str, images: bool) {
    let Ok(d) = Docker::connect_with_defaults() else {
        return;
    };
    let Ok(d) = d.negotiate_version().await else {
        return;
    };
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_BOTTLE}={slug}")])]);
    if let Ok(cs) = d
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
    {
        for c in cs {
            if let Some(id) = c.id {
                let _ = d
                    .remove_container(
                        &id,
                        Some(RemoveContainerOptions {
                            force: true,
                            v: true,
                            ..Default::default()
                        }),
                    )
                    .await;
            }
        }
    }
    if let Ok(ns) = d
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters.clone()),
        }))
        .await
    {
        for n in ns {
            if let Some(id) = n.id {
                let _ = d.remove_network(&id).await;
            }
        }
    }
    if let Ok(vs) = d
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filters.clone()),
        }))
        .await
    {
        for v in vs.volumes.unwrap_or_default() {
            let _ = d
                .remove_volume(&v.name, Some(RemoveVolumeOptions { force: true }))
                .await;
        }
    }
    if images
        && let Ok(is) = d
            .list_images(Some(ListImagesOptions {
                all: false,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
    {
        for i in is {
            for tag in i.repo_tags {
                let _ = d
                    .remove_image(
                        &tag,
                        Some(RemoveImageOptions {
                            force: true,
                            noprune: false,
                            ..Default::default()
                        }),
                        None,
                    )
                    .await;
            }
        }
    }
}

/// What the engine still holds of `slug`: (containers, networks, volumes) names.
pub async fn leftovers(d: &Docker, slug: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_BOTTLE}={slug}")])]);
    let cs = d
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .expect("list containers");
    let ns = d
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters.clone()),
        }))
        .await
        .expect("list networks");
    let vs = d
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filters),
        }))
        .await
        .expect("list volumes");
    (
        cs.into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .collect(),
        ns.into_iter().filter_map(|n| n.name).collect(),
        vs.volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect(),
    )
}

/// Assert that nothing of `slug` is left on the engine.
pub async fn assert_clean(d: &Docker, slug: &str) {
    let (c, n, v) = leftovers(d, slug).await;
    assert!(
        c.is_empty() && n.is_empty() && v.is_empty(),
        "bottle {slug} left containers {c:?}, networks {n:?}, volumes {v:?}"
    );
}

/// Wait until `state/<slug>/queue/proposals/` holds a proposal whose file contains `needle`;
/// return its id.
pub async fn wait_for_proposal(bottle: &TestBottle, needle: &str) -> String {
    let dir = bottle
        .path()
        .join("state")
        .join(bottle.slug())
        .join("queue/proposals");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                if name.ends_with(".json") && !name.starts_with('.') && text.contains(needle) {
                    return name.trim_end_matches(".json").to_string();
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no proposal with {needle:?} in {}",
            dir.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The host's trust bundle (Debian's path), given to the embedded image's build as `build_ca`.
pub const HOST_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Names a real pipelock image (built by hand from pipelock's sources; it cannot be pulled here)
/// that every end-to-end test then runs against instead of the stand-in.
pub const E2E_PIPELOCK_IMAGE_ENV: &str = "CLAUDE_BOTTLE_E2E_PIPELOCK_IMAGE";

/// Private ranges the test internet may live in (Docker's default address pools): pipelock's SSRF
/// protection refuses them otherwise. Only the tests that serve a test internet set it.
pub const TEST_INTERNET_CIDRS: &str = "172.16.0.0/12,192.168.0.0/16";

/// The pipelock every test launches: `$CLAUDE_BOTTLE_E2E_PIPELOCK_IMAGE` when set, else the stand-in.
pub fn pipelock_image() -> String {
    match std::env::var(E2E_PIPELOCK_IMAGE_ENV) {
        Ok(image) if !image.is_empty() => image,
        _ => standin_image(),
    }
}

/// The pipelocks a benchmark measures in one run, `(label, image)`: the stand-in, and the real image
/// when `$CLAUDE_BOTTLE_E2E_PIPELOCK_IMAGE` names one.
pub fn bench_pipelocks() -> Vec<(String, String)> {
    let mut out = vec![("stand-in".to_owned(), standin_image())];
    if real_pipelock() {
        let image = pipelock_image();
        out.push((format!("pipelock {image}"), image));
    }
    out
}

/// Whether the tests run against a real pipelock image.
pub fn real_pipelock() -> bool {
    std::env::var(E2E_PIPELOCK_IMAGE_ENV).is_ok_and(|v| !v.is_empty())
}

/// The pipelock STAND-IN's tag (built by [`ensure_egress_test_images`], which [`docker`] calls);
/// its recipe (the build context hashed) is made once per test process, not per command.
pub fn standin_image() -> String {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        images::pipelock_standin(BASE_IMAGE)
            .expect("stand-in recipe")
            .tag
    })
    .clone()
}

/// The pipelock STAND-IN and the test internet images (the tests' own recipes, [`images`], over
/// [`BASE_IMAGE`], cached by content like every shared image).
pub async fn ensure_egress_test_images(d: &Docker) {
    let _guard = EGRESS_BUILD_LOCK.lock().await;
    let standin = images::pipelock_standin(BASE_IMAGE).expect("stand-in recipe");
    let internet = images::test_internet(BASE_IMAGE).expect("test internet recipe");
    for recipe in [&standin, &internet] {
        claude_bottle::backend::docker::ensure_image(d, recipe)
            .await
            .unwrap_or_else(|e| panic!("failed to build {}: {e}", recipe.tag));
    }
}

/// An HTTPS "internet" of the tests' own: the test-internet image answering for `hosts` on a
/// bottle's egress network, with a leaf certificate from a CA minted here. Labelled with the
/// bottle, so the launcher's teardown and [`TestBottle`]'s drop remove it.
#[derive(Debug)]
pub struct TestInternet {
    /// The CA's certificate file: give it to the launcher as `upstream_ca`.
    pub ca_file: PathBuf,
    pub container: String,
}

impl TestInternet {
    /// Mint the CA and its leaf for `hosts` into `dir` (nothing is started yet).
    pub fn prepare(dir: &Path, hosts: &[&str]) -> (PathBuf, claude_bottle::tls::LeafCert) {
        use claude_bottle::tls::{BottleCa, CaPurpose};
        let ca = BottleCa::mint("e2e-test-internet", CaPurpose::Pipelock).expect("mint test CA");
        let leaf = ca.issue_leaf(hosts).expect("leaf");
        std::fs::create_dir_all(dir).expect("mkdir");
        let ca_file = dir.join("test-internet-ca.pem");
        std::fs::write(&ca_file, &ca.cert_pem).expect("write CA");
        (ca_file, leaf)
    }

    /// Wait until the bottle's egress network exists (the launcher creates it), then start the
    /// server on it with every host name of `hosts` as an alias; return once it serves. Fails at
    /// once, with the launcher's stderr (`log`), when `launcher` exits first.
    pub async fn attach(
        d: &Docker,
        bottle: &TestBottle,
        launcher: &mut std::process::Child,
        log: &Path,
        hosts: &[&str],
        ca_file: PathBuf,
        leaf: &claude_bottle::tls::LeafCert,
    ) -> Self {
        use bollard::models::{
            ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig,
        };
        use claude_bottle::backend::NetworkAttachment;
        let slug = bottle.slug();
        let network =
            claude_bottle::backend::docker::network_name(&slug, NetworkAttachment::Egress);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        while d.inspect_network(&network, None).await.is_err() {
            if let Ok(Some(status)) = launcher.try_wait() {
                panic!(
                    "the launcher exited ({status}) before creating {network}:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the launcher never created {network}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let certs = bottle.path().join("test-internet");
        std::fs::create_dir_all(&certs).expect("mkdir");
        std::fs::write(certs.join("cert.pem"), &leaf.cert_pem).expect("cert");
        std::fs::write(certs.join("key.pem"), leaf.key_pem.expose()).expect("key");
        let image = images::test_internet(BASE_IMAGE).expect("recipe").tag;
        let container = format!("{slug}-test-internet");
        let body = ContainerCreateBody {
            image: Some(image),
            labels: Some(HashMap::from([
                (LABEL_BOTTLE.to_string(), slug.clone()),
                (
                    "claude-bottle.role".to_string(),
                    "test-internet".to_string(),
                ),
            ])),
            host_config: Some(HostConfig {
                network_mode: Some(network.clone()),
                binds: Some(vec![format!(
                    "{}:{}:ro",
                    certs.display(),
                    images::TEST_INTERNET_CERT_DIR
                )]),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.clone(),
                    EndpointSettings {
                        aliases: Some(hosts.iter().map(ToString::to_string).collect()),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        d.create_container(
            Some(bollard::query_parameters::CreateContainerOptions {
                name: Some(container.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .expect("create test internet");
        d.start_container(
            &container,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect("start test internet");
        loop {
            let logs = claude_bottle::backend::docker::tail_logs(d, &container, 50).await;
            if logs.contains(images::TEST_INTERNET_READY_LINE) {
                break;
            }
            if let Ok(Some(status)) = launcher.try_wait() {
                panic!(
                    "the launcher exited ({status}) before the test internet was up:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "test internet not ready: {logs}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self { ca_file, container }
    }
}

/// Run `cmd` in the running `container` (as its default user) to its end: (exit code, stdout,
/// stderr).
pub async fn exec(d: &Docker, container: &str, cmd: &[&str]) -> (i64, String, String) {
    use bollard::container::LogOutput;
    use bollard::exec::{CreateExecOptions, StartExecResults};
    use futures_util::StreamExt as _;
    let created = d
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd.iter().map(ToString::to_string).collect()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("failed to create an exec of {cmd:?} in {container}: {e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    match d.start_exec(&created.id, None).await {
        Ok(StartExecResults::Attached { mut output, .. }) => {
            while let Some(item) = output.next().await {
                match item {
                    Ok(LogOutput::StdOut { message }) => out.extend_from_slice(&message),
                    Ok(LogOutput::StdErr { message }) => err.extend_from_slice(&message),
                    Ok(_) => {}
                    Err(e) => panic!("the exec of {cmd:?} in {container} broke off: {e}"),
                }
            }
        }
        Ok(StartExecResults::Detached) => panic!("the exec of {cmd:?} in {container} detached"),
        Err(e) => panic!("failed to start an exec of {cmd:?} in {container}: {e}"),
    }
    let code = d
        .inspect_exec(&created.id)
        .await
        .unwrap_or_else(|e| panic!("failed to inspect the exec of {cmd:?} in {container}: {e}"))
        .exit_code
        .unwrap_or_else(|| panic!("the exec of {cmd:?} in {container} has no exit code"));
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// The value of the agent's `KEY value` output line `key` (the scripted agents print one per check).
pub fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
        .unwrap_or_else(|| panic!("no {key} line in the agent's output:\n{out}"))
}

/// SHA-256 (hex) of a string, as the agents and the fake API print it instead of a secret.
pub fn sha256_hex(s: &str) -> String {
    claude_bottle::image::digest_of(s.as_bytes())
}

/// A launcher running beside a test internet ([`start_with_internet`]).
#[derive(Debug)]
pub struct InternetLaunch {
    pub child: std::process::Child,
    pub internet: TestInternet,
    /// The launcher's (and the agent's) stdout.
    pub out: PathBuf,
    /// The launcher's stderr.
    pub err: PathBuf,
}

/// Spawn `launcher` (a [`TestBottle::command`] with any extra environment) with a test internet
/// serving `hosts`: the internet's CA as `upstream_ca`, its private ranges allowed past pipelock's
/// SSRF protection, stdout and stderr to files in the bottle's home; returns once it serves.
pub async fn start_with_internet(
    d: &Docker,
    bottle: &TestBottle,
    mut launcher: Command,
    hosts: &[&str],
) -> InternetLaunch {
    let (ca_file, leaf) = TestInternet::prepare(&bottle.path().join("ca"), hosts);
    let out = bottle.path().join("launcher.out");
    let err = bottle.path().join("launcher.err");
    let mut child = launcher
        .env(claude_bottle::config::ENV_UPSTREAM_CA, &ca_file)
        .env(
            claude_bottle::config::ENV_ALLOW_PRIVATE_CIDRS,
            TEST_INTERNET_CIDRS,
        )
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn launcher");
    let internet = TestInternet::attach(d, bottle, &mut child, &err, hosts, ca_file, &leaf).await;
    InternetLaunch {
        child,
        internet,
        out,
        err,
    }
}

/// Wait until the launcher has built its image's `USER root` step ahead (`<agent image>-root`).
pub async fn wait_for_root_step(d: &Docker, bottle: &TestBottle) {
    let reference = format!("claude-bottle/{}:*-root", bottle.slug());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let filters = HashMap::from([("reference".to_string(), vec![reference.clone()])]);
        let found = d
            .list_images(Some(ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .expect("list images");
        if !found.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the launcher never built {reference}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// What [`run_measuring_peak_rss`] saw of one launcher run.
#[derive(Debug)]
pub struct Measured {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The largest `VmHWM` (peak resident set) read from `/proc/<pid>/status`, in KiB.
    pub peak_rss_kib: u64,
}

/// Run `cmd` to its end (stdout and stderr to files in `dir`), reading the process's peak resident
/// set (`VmHWM`, a high-water mark, so a later read includes every earlier peak) every 10 ms; only
/// a peak in the last 10 ms before the exit could be missed.
pub fn run_measuring_peak_rss(mut cmd: Command, dir: &Path) -> Measured {
    let out = dir.join("measured.out");
    let err = dir.join("measured.err");
    let mut child = cmd
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| vm_hwm_kib(&s))
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Measured {
        status,
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        peak_rss_kib: peak,
    }
}

/// `VmHWM:   12345 kB` of a `/proc/<pid>/status` text.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
