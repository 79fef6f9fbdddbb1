//! The sidecar framework's failures name the sidecar and show its last log lines, and images are
//! reused while the bottle is unchanged and rebuilt when it changes.

use std::time::Duration;

use claude_bottle::backend::docker::DockerBackend;
use claude_bottle::backend::{Backend, BackendError, LaunchSpec, Readiness, SidecarSpec};
use claude_bottle::home::Home;
use claude_bottle::prepare::PrepareOptions;
use claude_bottle::{manifest, plan, session, stage};
use claude_bottle_e2e::{BASE_IMAGE, TestBottle, assert_clean, docker};

fn sidecar(name: &str, script: &str, timeout: Duration) -> SidecarSpec {
    SidecarSpec {
        name: name.into(),
        image: BASE_IMAGE.into(),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![],
        networks: vec![],
        mounts: vec![],
        user: None,
        readiness: Readiness::LogLine("never printed".into()),
        ready_timeout: timeout,
        gates_agent: true,
    }
}

#[tokio::test]
async fn a_failing_sidecar_is_named_with_its_log_and_images_are_reused_until_changed() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new("framework", "", &["/bin/true"]);
    let slug = bottle.slug();
    let home = Home::new(bottle.path());
    let load = || {
        plan::build(
            &home,
            manifest::load(&home, &bottle.name).expect("valid bottle"),
            &Default::default(),
            |_| None,
        )
    };
    let backend = DockerBackend::connect(bottle.config())
        .await
        .expect("connect");

    // Content-hash tags: the second prepare finds every image; a changed Dockerfile builds.
    let plan = load();
    claude_bottle::prepare::images(
        &backend,
        &bottle.config(),
        &plan,
        &PrepareOptions::default(),
    )
    .await
    .expect("prepare");
    let again = claude_bottle::prepare::images(
        &backend,
        &bottle.config(),
        &plan,
        &PrepareOptions::default(),
    )
    .await
    .expect("prepare");
    assert!(again.builds.iter().all(|b| !b.built), "{:?}", again.builds);
    std::fs::write(
        bottle.path().join("bottles/Dockerfile"),
        format!("{}RUN true\n", claude_bottle_e2e::TEST_DOCKERFILE),
    )
    .expect("change the Dockerfile");
    let changed = claude_bottle::prepare::images(
        &backend,
        &bottle.config(),
        &load(),
        &PrepareOptions::default(),
    )
    .await
    .expect("prepare");
    assert!(
        changed.builds.iter().any(|b| b.built),
        "{:?}",
        changed.builds
    );
    assert_ne!(changed.agent_image, again.agent_image);

    // A sidecar that dies, next to one that never becomes ready: the launch names the dead one
    // and shows what it printed.
    let plan = load();
    let stage = stage::prepare(&plan).expect("stage");
    let mut spec = LaunchSpec::new(&plan, &changed, &stage, false);
    spec.sidecars.push(sidecar(
        "crasher",
        "echo crasher-last-words >&2; exit 3",
        Duration::from_secs(30),
    ));
    spec.sidecars
        .push(sidecar("sleeper", "sleep 60", Duration::from_secs(30)));
    let err = backend.launch(&spec).await.expect_err("a sidecar died");
    let text = err.to_string();
    assert!(
        matches!(err, BackendError::SidecarNotReady { ref name, .. } if name == "crasher"),
        "{text}"
    );
    assert!(
        text.contains("exited with code 3") && text.contains("crasher-last-words"),
        "{text}"
    );
    session::teardown(&backend, &slug).await;

    // One that stays up but never says it is ready times out, with its output shown.
    let mut spec = LaunchSpec::new(&plan, &changed, &stage, false);
    spec.sidecars.push(sidecar(
        "mute",
        "echo mute-started; sleep 60",
        Duration::from_secs(2),
    ));
    let text = backend
        .launch(&spec)
        .await
        .expect_err("never ready")
        .to_string();
    assert!(
        text.contains("sidecar mute") && text.contains("not ready after 2.0s"),
        "{text}"
    );
    assert!(text.contains("mute-started"), "{text}");
    session::teardown(&backend, &slug).await;
    assert_clean(&d, &slug).await;
}
