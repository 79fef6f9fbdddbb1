//! The git gate's containers in a launch spec: the gate and its own pipelock, and what the
//! agent gets (the socket folder, its relay's variables, the `insteadOf` rewrites). The files
//! they use are staged by [`crate::git_gate`].

use std::time::Duration;

use super::{EnvValue, Mount, NetworkAttachment, Readiness, SidecarSpec};
use crate::git_gate::{
    AGENT_PORT, AUDIT_DIR_IN_GATE, CONFIG_DIR_IN_GATE, GATE, GATE_PIPELOCK, GitStage, KEYS_IN_GATE,
    MIRRORS_IN_GATE, PORT_ENV, READY_LINE, SOCKET, SOCKET_DIR_IN_CONTAINER, SOCKET_ENV,
};
use crate::plan::BottlePlan;

/// The gate's pipelock readiness budget, as the bottle's own.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The gate and its pipelock. Both run as the operator, who owns the key files and the folders.
pub fn sidecars(images: &super::GitImages, staged: &GitStage) -> Vec<SidecarSpec> {
    let user = Some(super::operator_user());
    let mut env = vec![
        (
            "CLAUDE_BOTTLE_LOG".to_owned(),
            EnvValue::Plain("info".into()),
        ),
        // git wants a home for its own files; the gate's is a throw-away one.
        ("HOME".to_owned(), EnvValue::Plain("/tmp".into())),
    ];
    env.extend(
        staged
            .credentials
            .tokens
            .iter()
            .map(|(k, v)| (k.clone(), EnvValue::Secret(v.clone()))),
    );
    let mut mounts = vec![
        Mount::read_only(staged.gate_dir.clone(), CONFIG_DIR_IN_GATE),
        Mount::writable(staged.socket_dir.clone(), SOCKET_DIR_IN_CONTAINER),
        Mount::writable(staged.mirrors.clone(), MIRRORS_IN_GATE),
        Mount::writable(staged.audit_dir.clone(), AUDIT_DIR_IN_GATE),
    ];
    mounts.extend(
        staged
            .credentials
            .keys
            .iter()
            .map(|(name, path)| Mount::read_only(path.clone(), format!("{KEYS_IN_GATE}/{name}"))),
    );
    vec![
        super::spec::pipelock_sidecar(
            GATE_PIPELOCK,
            &images.pipelock,
            staged.pipelock_dir.clone(),
            NetworkAttachment::Git,
            vec![],
        ),
        SidecarSpec {
            name: GATE.into(),
            image: images.gate.clone(),
            command: vec![],
            env,
            networks: vec![NetworkAttachment::Git],
            mounts,
            user,
            readiness: Readiness::LogLine(READY_LINE.into()),
            ready_timeout: READY_TIMEOUT,
            // The agent's relay holds its first connection until the socket appears.
            gates_agent: false,
        },
    ]
}

/// The agent's side: the socket folder read-only.
pub fn agent_mounts(staged: &GitStage) -> Vec<Mount> {
    vec![Mount::read_only(
        staged.socket_dir.clone(),
        SOCKET_DIR_IN_CONTAINER,
    )]
}

/// The agent's relay and git configuration: each upstream URL rewritten to the gate
/// (`url.<gate>.insteadOf <upstream>`, as `GIT_CONFIG_COUNT/KEY_n/VALUE_n`, which git ≥ 2.31
/// reads after every configuration file).
pub fn agent_env(plan: &BottlePlan) -> Vec<(String, EnvValue)> {
    let mut env = vec![
        (
            SOCKET_ENV.to_owned(),
            format!("{SOCKET_DIR_IN_CONTAINER}/{SOCKET}"),
        ),
        (PORT_ENV.to_owned(), AGENT_PORT.to_string()),
        ("GIT_CONFIG_COUNT".to_owned(), plan.git.len().to_string()),
    ];
    for (i, g) in plan.git.iter().enumerate() {
        env.push((
            format!("GIT_CONFIG_KEY_{i}"),
            format!("url.http://127.0.0.1:{AGENT_PORT}/{}.git.insteadOf", g.name),
        ));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), g.upstream.clone()));
    }
    env.into_iter()
        .map(|(k, v)| (k, EnvValue::Plain(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git_gate::fixture::{TOKEN, lookup, plan};
    use crate::git_gate::resolve;

    #[test]
    fn only_the_gate_holds_the_token_and_the_agent_reaches_it_by_its_relay() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plan = plan(tmp.path(), 0o600);
        let creds = resolve(&plan, lookup).expect("resolved");
        let mut stage = crate::stage::prepare(&plan).expect("stage");
        stage.git = Some(crate::git_gate::stage(&plan, creds, None, &[]).expect("git stage"));
        let prepared = super::super::Prepared {
            agent_image: "agent:1".into(),
            root_step_base: None,
            agent_user: None,
            agent_disk: None,
            agent_entrypoint: vec![],
            shim: "/bin/shim".into(),
            supervise_image: None,
            egress: None,
            git: Some(super::super::GitImages {
                gate: "gate:1".into(),
                pipelock: "pipelock:1".into(),
            }),
            builds: vec![],
            notes: vec![],
        };
        let spec = super::super::LaunchSpec::new(&plan, &prepared, &stage, false);
        let names: Vec<&str> = spec.sidecars.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [GATE_PIPELOCK, GATE]);
        let (pipelock, gate) = (&spec.sidecars[0], &spec.sidecars[1]);
        assert_eq!(
            pipelock.networks,
            [NetworkAttachment::Git, NetworkAttachment::Egress]
        );
        assert_eq!(
            gate.networks,
            [NetworkAttachment::Git],
            "the gate has no way out but its pipelock"
        );
        assert!(matches!(
            gate.env.iter().find(|(k, _)| k == "GIT_GATE_TOKEN_ORIGIN"),
            Some((_, EnvValue::Secret(s))) if s.expose() == TOKEN
        ));
        let key = gate
            .mounts
            .iter()
            .find(|m| m.target == "/run/claude-bottle/keys/lib.x")
            .expect("the key");
        assert!(key.read_only);
        assert!(pipelock.env.iter().all(|(_, v)| v.expose() != TOKEN));
        let agent = &spec.agent;
        assert!(agent.env.iter().all(|(_, v)| v.expose() != TOKEN));
        assert!(agent.mounts.iter().all(|m| m.target != key.target));
        let env = |name: &str| {
            agent
                .env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.expose().to_owned())
        };
        assert_eq!(env("GIT_CONFIG_COUNT").as_deref(), Some("2"));
        assert_eq!(
            env("GIT_CONFIG_KEY_1").as_deref(),
            Some("url.http://127.0.0.1:3130/lib.x.git.insteadOf")
        );
        assert_eq!(
            env("GIT_CONFIG_VALUE_1").as_deref(),
            Some("git@git.test:/srv/git/lib.git")
        );
        assert_eq!(
            env(SOCKET_ENV).as_deref(),
            Some("/run/claude-bottle/git/gate.sock")
        );
        let socket = agent
            .mounts
            .iter()
            .find(|m| m.target == SOCKET_DIR_IN_CONTAINER)
            .expect("the socket folder");
        assert!(
            socket.read_only,
            "the agent cannot replace the gate's socket"
        );
    }
}
