//! The tests' own upstream git server (the test-git image, [`images::test_git`]): its certificate,
//! ssh keys and token are made here, then it is started on a bottle's egress network
//! ([`TestGit::attach`]) or on any network ([`TestGit::start_on`]), serving the same bare
//! repositories over smart HTTPS (`https://<alias>/<repo>.git`, HTTP Basic with the token) and ssh
//! (`ssh://git@<alias>/srv/git/<repo>.git`, the client key).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use claude_bottle::secret::Secret;

use crate::{BASE_IMAGE, LABEL_BOTTLE, TestBottle, exec, images};

const LABEL_ROLE: &str = "claude-bottle.role";
/// Where a client container ([`TestGit::start_client`]) sees the client's files (CA, key,
/// known_hosts).
pub const CLIENT_DIR: &str = "/etc/test-git-client";
/// How long the server may take to print its ready line (and a launcher to make its network).
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// What [`TestGit::prepare`] made in its folder: the server's mount and the client's files.
#[derive(Debug, Clone)]
pub struct TestGitFiles {
    /// Mounted read-only at [`images::TEST_GIT_CERT_DIR`]: `cert.pem`, `key.pem`,
    /// `ssh_host_ed25519_key`, `authorized_keys`.
    pub server_dir: PathBuf,
    /// The client's side, to mount where a client needs it: `ca.pem`, `id_ed25519` (0600),
    /// `id_ed25519.pub`, `known_hosts`.
    pub client_dir: PathBuf,
    /// The CA that issued the server's certificate (`client_dir/ca.pem`).
    pub ca_file: PathBuf,
    /// The ssh client's private key (`client_dir/id_ed25519`, mode 0600), the one
    /// `authorized_keys` lets in as user git.
    pub client_key: PathBuf,
    /// One line per alias, `<alias> ssh-ed25519 AAAA…` (`client_dir/known_hosts`).
    pub known_hosts: PathBuf,
    /// The server's host key, `ssh-ed25519 AAAA…` (no comment).
    pub host_public_key: String,
    /// The names the certificate and `known_hosts` are for (the container's network aliases).
    pub hosts: Vec<String>,
    /// The password every HTTPS request must send (any username).
    pub token: Secret,
}

/// A running test-git server.
#[derive(Debug, Clone)]
pub struct TestGit {
    pub container: String,
    pub ca_file: PathBuf,
    pub host_public_key: String,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
    pub client_dir: PathBuf,
    pub hosts: Vec<String>,
    pub token: Secret,
}

impl TestGit {
    /// Mint a CA and its leaf for `hosts`, an ed25519 host key and an ed25519 client key pair
    /// into `dir` (`dir/server/`, `dir/client/`); nothing is started yet.
    pub fn prepare(dir: &Path, hosts: &[&str], token: &Secret) -> TestGitFiles {
        use claude_bottle::tls::{BottleCa, CaPurpose};
        assert!(!hosts.is_empty(), "the test git server needs a host name");
        let server_dir = dir.join("server");
        let client_dir = dir.join("client");
        for d in [&server_dir, &client_dir] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        let ca = BottleCa::mint("e2e-test-git", CaPurpose::Pipelock).expect("mint test-git CA");
        let leaf = ca.issue_leaf(hosts).expect("test-git leaf");
        let ca_file = client_dir.join("ca.pem");
        write(&ca_file, &ca.cert_pem, 0o644);
        write(&server_dir.join("cert.pem"), &leaf.cert_pem, 0o644);
        write(&server_dir.join("key.pem"), leaf.key_pem.expose(), 0o600);

        let host_key = server_dir.join("ssh_host_ed25519_key");
        let host_public_key = ssh_keygen(&host_key, "test-git-host");
        let client_key = client_dir.join("id_ed25519");
        let client_public_key = ssh_keygen(&client_key, "test-git-client");
        write(
            &server_dir.join("authorized_keys"),
            &format!("{client_public_key}\n"),
            0o644,
        );
        let known_hosts = client_dir.join("known_hosts");
        let lines: String = hosts
            .iter()
            .map(|h| format!("{h} {host_public_key}\n"))
            .collect();
        write(&known_hosts, &lines, 0o644);
        TestGitFiles {
            server_dir,
            client_dir,
            ca_file,
            client_key,
            known_hosts,
            host_public_key,
            hosts: hosts.iter().map(ToString::to_string).collect(),
            token: token.clone(),
        }
    }

    /// Wait until the bottle's egress network exists (the launcher creates it), then start the
    /// server on it as `<slug>-test-git` with every name of `files.hosts` as an alias, labelled
    /// with the bottle (so teardown and [`TestBottle`]'s drop remove it); return once it serves.
    /// Fails at once, with the launcher's stderr (`log`), when `launcher` exits first.
    pub async fn attach(
        d: &Docker,
        bottle: &TestBottle,
        launcher: &mut std::process::Child,
        log: &Path,
        files: TestGitFiles,
    ) -> Self {
        use claude_bottle::backend::NetworkAttachment;
        ensure_test_git_image(d).await;
        let slug = bottle.slug();
        let network =
            claude_bottle::backend::docker::network_name(&slug, NetworkAttachment::Egress);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut launcher_alive = || match launcher.try_wait() {
            Ok(Some(status)) => Err(format!(
                "the launcher exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )),
            _ => Ok(()),
        };
        while d.inspect_network(&network, None).await.is_err() {
            if let Err(why) = launcher_alive() {
                panic!("{why}\n(before creating {network})");
            }
            assert!(
                Instant::now() < deadline,
                "the launcher never created {network}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let labels = [(LABEL_BOTTLE, slug.as_str())];
        start(
            d,
            &network,
            &format!("{slug}-test-git"),
            &labels,
            files,
            launcher_alive,
        )
        .await
    }

    /// Start the server as `name` on the existing `network` with `labels` (give it one the test
    /// removes by, e.g. `claude-bottle.bottle=<slug>`; `claude-bottle.role=test-git` is added),
    /// every name of `files.hosts` as an alias; return once it serves.
    pub async fn start_on(
        d: &Docker,
        network: &str,
        name: &str,
        labels: &[(&str, &str)],
        files: TestGitFiles,
    ) -> Self {
        ensure_test_git_image(d).await;
        start(d, network, name, labels, files, || Ok(())).await
    }

    /// `https://<host>/<repo>.git`, without credentials.
    pub fn https_url(host: &str, repo: &str) -> String {
        format!("https://{host}/{repo}.git")
    }

    /// `ssh://git@<host>/srv/git/<repo>.git`.
    pub fn ssh_url(host: &str, repo: &str) -> String {
        format!("ssh://git@{host}{}/{repo}.git", images::TEST_GIT_ROOT)
    }

    /// `git@<host>:/srv/git/<repo>.git`, the scp-like form.
    pub fn scp_url(host: &str, repo: &str) -> String {
        format!("git@{host}:{}/{repo}.git", images::TEST_GIT_ROOT)
    }

    /// `test-git-make-big NAME COMMITS BLOB_MB` in the server; returns how long it took.
    pub async fn make_big(&self, d: &Docker, name: &str, commits: u32, blob_mb: u32) -> Duration {
        let started = Instant::now();
        let (code, out, err) = exec(
            d,
            &self.container,
            &[
                images::TEST_GIT_MAKE_BIG_COMMAND,
                name,
                &commits.to_string(),
                &blob_mb.to_string(),
            ],
        )
        .await;
        assert_eq!(code, 0, "test-git-make-big failed:\n{out}{err}");
        started.elapsed()
    }

    /// The commit `reference` names in the server's `<repo>.git`, or `None` when there is no
    /// such ref.
    pub async fn rev_parse(&self, d: &Docker, repo: &str, reference: &str) -> Option<String> {
        let git_dir = format!("{}/{repo}.git", images::TEST_GIT_ROOT);
        let (code, out, _) = exec(
            d,
            &self.container,
            &[
                "git",
                "--git-dir",
                &git_dir,
                "rev-parse",
                "--verify",
                "--quiet",
                reference,
            ],
        )
        .await;
        (code == 0).then(|| out.trim().to_owned())
    }

    /// A client container from the server's image (git and ssh), on `network`, with the client's
    /// files at [`CLIENT_DIR`] (labelled with `slug`, so the bottle's teardown removes it) and git told to use them.
    pub async fn start_client(&self, d: &Docker, network: &str, slug: &str) -> String {
        let name = format!("{slug}-git-client");
        let ssh = format!(
            "ssh -i {CLIENT_DIR}/id_ed25519 -o IdentitiesOnly=yes -o UserKnownHostsFile={CLIENT_DIR}/known_hosts \
         -o StrictHostKeyChecking=yes -o BatchMode=yes"
        );
        let body = ContainerCreateBody {
            image: Some(images::test_git(BASE_IMAGE).expect("recipe").tag),
            entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
            env: Some(vec![
                format!("GIT_SSL_CAINFO={CLIENT_DIR}/ca.pem"),
                format!("GIT_SSH_COMMAND={ssh}"),
                "GIT_TERMINAL_PROMPT=0".into(),
                "GIT_AUTHOR_NAME=e2e".into(),
                "GIT_AUTHOR_EMAIL=e2e@git.test".into(),
                "GIT_COMMITTER_NAME=e2e".into(),
                "GIT_COMMITTER_EMAIL=e2e@git.test".into(),
            ]),
            labels: Some(HashMap::from([
                (LABEL_BOTTLE.to_owned(), slug.to_owned()),
                (LABEL_ROLE.to_owned(), "test-git-client".to_owned()),
            ])),
            host_config: Some(HostConfig {
                network_mode: Some(network.to_owned()),
                binds: Some(vec![format!(
                    "{}:{CLIENT_DIR}:ro",
                    self.client_dir.display()
                )]),
                ..Default::default()
            }),
            ..Default::default()
        };
        d.create_container(
            Some(bollard::query_parameters::CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .expect("create the git client");
        d.start_container(
            &name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect("start the git client");
        name
    }

    /// Everything the server printed (its request log and sshd's).
    pub async fn logs(&self, d: &Docker) -> String {
        container_logs(d, &self.container).await
    }
}

/// Build the test-git image unless it exists (the tests' recipe, cached by content like every
/// shared image).
pub async fn ensure_test_git_image(d: &Docker) {
    static BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = BUILD.lock().await;
    let recipe = images::test_git(BASE_IMAGE).expect("test-git recipe");
    claude_bottle::backend::docker::ensure_image(d, &recipe)
        .await
        .unwrap_or_else(|e| panic!("failed to build {}: {e}", recipe.tag));
}

/// Create and start the server, then wait for its ready line while `alive` says the test may go
/// on (it returns why not otherwise).
async fn start(
    d: &Docker,
    network: &str,
    name: &str,
    labels: &[(&str, &str)],
    files: TestGitFiles,
    mut alive: impl FnMut() -> Result<(), String>,
) -> TestGit {
    let mut labels: HashMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.insert(LABEL_ROLE.to_owned(), "test-git".to_owned());
    let body = ContainerCreateBody {
        image: Some(images::test_git(BASE_IMAGE).expect("recipe").tag),
        env: Some(vec![format!(
            "{}={}",
            images::TEST_GIT_TOKEN_ENV,
            files.token.expose()
        )]),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_owned()),
            binds: Some(vec![format!(
                "{}:{}:ro",
                files.server_dir.display(),
                images::TEST_GIT_CERT_DIR
            )]),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_owned(),
                EndpointSettings {
                    aliases: Some(files.hosts.clone()),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    d.create_container(
        Some(bollard::query_parameters::CreateContainerOptions {
            name: Some(name.to_owned()),
            ..Default::default()
        }),
        body,
    )
    .await
    .unwrap_or_else(|e| panic!("failed to create the test git server {name}: {e}"));
    d.start_container(
        name,
        None::<bollard::query_parameters::StartContainerOptions>,
    )
    .await
    .unwrap_or_else(|e| panic!("failed to start the test git server {name}: {e}"));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let logs = claude_bottle::backend::docker::tail_logs(d, name, 50).await;
        if logs.contains(images::TEST_GIT_READY_LINE) {
            break;
        }
        let running = d
            .inspect_container(name, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.running)
            .unwrap_or(false);
        assert!(running, "the test git server {name} exited:\n{logs}");
        if let Err(why) = alive() {
            panic!("{why}\n(before the test git server {name} was up)");
        }
        assert!(
            Instant::now() < deadline,
            "the test git server {name} is not ready:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    TestGit {
        container: name.to_owned(),
        ca_file: files.ca_file,
        host_public_key: files.host_public_key,
        client_key: files.client_key,
        known_hosts: files.known_hosts,
        client_dir: files.client_dir,
        hosts: files.hosts,
        token: files.token,
    }
}

/// All of a container's output, stdout and stderr interleaved.
pub async fn container_logs(d: &Docker, container: &str) -> String {
    use futures_util::StreamExt as _;
    let mut stream = d.logs(
        container,
        Some(bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            tail: "all".into(),
            ..Default::default()
        }),
    );
    let mut out = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("failed to read the logs of {container}: {e}"));
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    out
}

/// `ssh-keygen -q -t ed25519 -N '' -C comment -f path` (replacing an older pair); returns the
/// public key as `ssh-ed25519 AAAA…`, without the comment.
fn ssh_keygen(path: &Path, comment: &str) -> String {
    for old in [path.to_path_buf(), path.with_extension("pub")] {
        let _ = std::fs::remove_file(old);
    }
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("failed to run ssh-keygen: {e}\nhint: install OpenSSH's client tools (apt-get install openssh-client)")
        });
    assert!(
        out.status.success(),
        "ssh-keygen failed for {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    set_mode(path, 0o600);
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .unwrap_or_else(|e| panic!("read {}.pub: {e}", path.display()));
    let mut fields = public.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(kind @ "ssh-ed25519"), Some(key)) => format!("{kind} {key}"),
        _ => panic!(
            "{}.pub is not an ed25519 public key: {public}",
            path.display()
        ),
    }
}

fn write(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode(path, mode);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
