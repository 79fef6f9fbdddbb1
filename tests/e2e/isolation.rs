//! Isolation is the product: from inside the bottle nothing is reachable — not the host's services
//! (which an `internal` network still reaches through its gateway on this engine), not the
//! containers on the egress network, not DNS — and the hardening holds.

use std::net::TcpListener;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, StartContainerOptions, UploadToContainerOptions,
};
use claude_bottle::backend::docker::{DockerBackend, network_name, sidecar_name, tail_logs};
use claude_bottle::backend::{Backend, LaunchSpec, NetworkAttachment, Readiness, SidecarSpec};
use claude_bottle::home::Home;
use claude_bottle::prepare::PrepareOptions;
use claude_bottle::{manifest, plan, session};
use claude_bottle_e2e::{BASE_IMAGE, TestBottle, assert_clean, docker};

/// Runs inside the agent: every probe prints one `KEY value` line; exits 42.
const PROBE: &str = r#"
import os, socket, subprocess
def connect(target):
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return "open"
    except OSError as e:
        return "closed(%s)" % type(e).__name__
for t in open("/var/tmp/targets").read().split():
    print("CONNECT", t, connect(t))
try:
    socket.getaddrinfo("example.com", 443)
    print("DNS resolved")
except OSError:
    print("DNS none")
status = open("/proc/self/status").read()
print("CAPEFF", [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0])
# prctl(PR_GET_NO_NEW_PRIVS), not /proc/self/status: gVisor's status file has no NoNewPrivs line.
import ctypes
print("NONEWPRIVS", ctypes.CDLL(None, use_errno=True).prctl(39, 0, 0, 0, 0))
print("UID", os.getuid())
print("IFACES", ",".join(sorted(os.listdir("/sys/class/net"))))
print("DOCKERSOCK", "present" if os.path.exists("/var/run/docker.sock") or os.path.exists("/run/docker.sock") else "absent")
print("FORWARDED", os.environ.get("E2E_FORWARDED"))
print("LITERAL", os.environ.get("E2E_LITERAL"))
skill = os.path.expanduser("~/.claude/skills/probe-skill/SKILL.md")
print("SKILLREAD", open(skill).read().strip())
try:
    open(skill, "a").write("x")
    print("SKILLWRITE allowed")
except OSError:
    print("SKILLWRITE denied")
# gVisor shows the sandbox no cgroup files: the limit is on the sandbox's host cgroup.
for f in ("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max", None):
    if f is None:
        print("PIDSMAX unseen")
    elif os.path.exists(f):
        print("PIDSMAX", open(f).read().strip())
        break
print("KERNEL", "gVisor" if "gVisor" in subprocess.run(["dmesg"], capture_output=True, text=True).stdout else "host")
raise SystemExit(42)
"#;

/// Run a throw-away control container on `network` that tries the same targets: proves the
/// targets are really reachable for an ordinary container, so "closed" in the bottle means something.
async fn control_probe(d: &Docker, slug: &str, network: &str, targets: &[String]) -> String {
    let name = format!("{slug}-control-{network}");
    let script = format!(
        "import socket\nfor t in {targets:?}:\n    h,p=t.rsplit(':',1)\n    try:\n        socket.create_connection((h,int(p)),timeout=2).close(); print('CONNECT',t,'open')\n    except OSError as e:\n        print('CONNECT',t,'closed')\n"
    );
    let body = ContainerCreateBody {
        image: Some(BASE_IMAGE.into()),
        cmd: Some(vec!["python3".into(), "-c".into(), script]),
        labels: Some([("claude-bottle.bottle".to_string(), slug.to_string())].into()),
        host_config: Some(HostConfig {
            network_mode: Some(network.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    d.create_container(
        Some(CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        }),
        body,
    )
    .await
    .expect("create control container");
    d.start_container(&name, None::<StartContainerOptions>)
        .await
        .expect("start control");
    let _ = claude_bottle::backend::docker::exit_code(d, &name).await;
    tail_logs(d, &name, 100).await
}

fn ip_on(c: &bollard::models::ContainerInspectResponse, network: &str) -> String {
    c.network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|n| n.get(network))
        .and_then(|e| e.ip_address.clone())
        .expect("container address on network")
}

async fn gateway(d: &Docker, network: &str) -> String {
    let n = d
        .inspect_network(
            network,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .expect("inspect network");
    let configs = n.ipam.and_then(|i| i.config).unwrap_or_default();
    if let Some(gw) = configs.iter().find_map(|c| c.gateway.clone()) {
        return gw;
    }
    // The default bridge lists only its subnet; its gateway is the subnet's first address.
    let subnet = configs
        .iter()
        .find_map(|c| c.subnet.clone())
        .expect("network subnet");
    let base = subnet.split('/').next().expect("subnet address");
    let (head, _) = base.rsplit_once('.').expect("IPv4 subnet");
    format!("{head}.1")
}

#[tokio::test]
async fn the_agent_reaches_nothing_and_runs_hardened() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new(
        "iso",
        "env: [E2E_FORWARDED, \"E2E_LITERAL=literal-value\"]\nskills: [probe-skill]\nlimits:\n  pids: 200\n",
        &["python3", "/var/tmp/probe.py"],
    );
    bottle.add_skill("probe-skill", "SKILL.md", "probe skill body");
    let slug = bottle.slug();
    let home = Home::new(bottle.path());
    let plan = plan::build(
        &home,
        manifest::load(&home, &bottle.name).expect("valid bottle"),
        &Default::default(),
        |n| (n == "E2E_FORWARDED").then(|| "forwarded-value".to_string()),
    );
    let backend = DockerBackend::connect(bottle.config())
        .await
        .expect("connect");
    session::reap_orphans(&backend, &slug)
        .await
        .expect("no leftovers");
    let prepared = claude_bottle::prepare::images(
        &backend,
        &bottle.config(),
        &plan,
        &PrepareOptions::default(),
    )
    .await
    .expect("prepare");

    // A service on the egress network, as later sidecars will be, and one on the host.
    let host_listener = TcpListener::bind("0.0.0.0:0").expect("host listener");
    let host_port = host_listener.local_addr().expect("addr").port();
    let stage = claude_bottle::stage::prepare(&plan).expect("stage");
    let mut spec = LaunchSpec::new(&plan, &prepared, &stage, false);
    spec.sidecars.push(SidecarSpec {
        name: "listener".into(),
        image: BASE_IMAGE.into(),
        command: vec![
            "python3".into(),
            "-u".into(),
            "-m".into(),
            "http.server".into(),
            "8080".into(),
        ],
        env: vec![],
        // The internal network too: a launch creates only the networks its sidecars join, and
        // the control probe below runs on it.
        networks: vec![NetworkAttachment::Egress, NetworkAttachment::Internal],
        mounts: vec![],
        user: None,
        readiness: Readiness::LogLine("Serving HTTP".into()),
        ready_timeout: Duration::from_secs(30),
        gates_agent: true,
    });
    let launched = backend.launch(&spec).await.expect("launch");

    let egress = network_name(&slug, NetworkAttachment::Egress);
    let internal = network_name(&slug, NetworkAttachment::Internal);
    let listener = d
        .inspect_container(&sidecar_name(&slug, "listener"), None)
        .await
        .expect("inspect sidecar");
    let targets = vec![
        format!("{}:8080", ip_on(&listener, &egress)),
        format!("{}:{host_port}", gateway(&d, &egress).await),
        format!("{}:{host_port}", gateway(&d, &internal).await),
        format!("{}:{host_port}", gateway(&d, "bridge").await),
        format!("127.0.0.1:{host_port}"),
    ];

    // Positive controls: an ordinary container on the egress network reaches the sidecar and the
    // host; one on the internal network still reaches the host through its gateway (the leak
    // the agent's network mode none closes).
    let control = control_probe(&d, &slug, &egress, &targets[..2]).await;
    assert!(
        control.contains(&format!("CONNECT {} open", targets[0])),
        "control cannot reach the sidecar:\n{control}"
    );
    assert!(
        control.contains(&format!("CONNECT {} open", targets[1])),
        "control cannot reach the host:\n{control}"
    );
    let internal_control = control_probe(&d, &slug, &internal, &targets[2..3]).await;
    eprintln!("engine behaviour, internal network → host gateway: {internal_control}");

    // Hand the agent its targets and its probe, then run it (not in /tmp: a tmpfs is mounted
    // there when the agent starts, over whatever the container held).
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("var/tmp/targets", targets.join("\n")),
        ("var/tmp/probe.py", PROBE.to_string()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, path, data.as_bytes()).expect("tar");
    }
    d.upload_to_container(
        &launched.agent,
        Some(UploadToContainerOptions {
            path: "/".into(),
            ..Default::default()
        }),
        bollard::body_full(tar.into_inner().expect("tar").into()),
    )
    .await
    .expect("upload probe");
    // The limits the engine put on the agent, while it exists: under gVisor the sandbox cannot
    // read its own pids cgroup, so this is where that limit shows.
    let agent_host = d
        .inspect_container(&launched.agent, None)
        .await
        .expect("inspect agent")
        .host_config
        .expect("agent host config");
    let code = backend.run_agent(&launched).await.expect("run agent");
    let out = tail_logs(&d, &launched.agent, 200).await;
    session::teardown(&backend, &slug).await;
    drop(host_listener);

    assert_eq!(code, 42, "exit code propagated:\n{out}");
    for t in &targets {
        assert!(
            out.contains(&format!("CONNECT {t} closed")),
            "{t} reachable from the agent:\n{out}"
        );
    }
    for want in [
        "DNS none",
        "CAPEFF 0000000000000000",
        "NONEWPRIVS 1",
        "UID 1000",
        "IFACES lo\n",
        "DOCKERSOCK absent",
        "FORWARDED forwarded-value",
        "LITERAL literal-value",
        "SKILLREAD probe skill body",
        "SKILLWRITE denied",
    ] {
        assert!(
            out.contains(want),
            "missing {want:?} in the agent's report:\n{out}"
        );
    }
    assert_eq!(agent_host.pids_limit, Some(200), "{agent_host:?}");
    if claude_bottle_e2e::under_gvisor() {
        assert_eq!(agent_host.runtime.as_deref(), Some("runsc"));
        for want in ["KERNEL gVisor", "PIDSMAX unseen"] {
            assert!(out.contains(want), "missing {want:?} under runsc:\n{out}");
        }
    } else {
        for want in ["KERNEL host", "PIDSMAX 200"] {
            assert!(out.contains(want), "missing {want:?}:\n{out}");
        }
    }
    assert_clean(&d, &slug).await;
}

#[tokio::test]
async fn forwarded_env_value_never_shows_in_launcher_output_or_logs() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new(
        "secret",
        "env: [E2E_SECRET]\n",
        &["/bin/sh", "-c", "test -n \"$E2E_SECRET\""],
    );
    let out = bottle
        .command(&["-vv", "start", "--yes", &bottle.name])
        .env("E2E_SECRET", "s3cr3t-value-never-printed")
        .output()
        .expect("run launcher");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the agent saw its forwarded value:\n{all}"
    );
    assert!(
        !all.contains("s3cr3t-value-never-printed"),
        "secret in launcher output:\n{all}"
    );
    assert_clean(&d, &bottle.slug()).await;
}
