//! [`crate::prepare::images`] on the fake: what it asks the engine, and what it decides.

use super::*;
use crate::backend::{BackendError, Prepared};
use crate::config::DiskLimit;
use crate::prepare::{PrepareOptions, images};

/// The images of `b` as a launch prepares them.
async fn launch_images(b: &Bottle) -> Result<Prepared, BackendError> {
    images(
        &b.fake,
        &b.opts().config,
        &b.plan,
        &PrepareOptions::default(),
    )
    .await
}

#[tokio::test]
async fn a_warm_start_builds_nothing_and_creates_no_probe() {
    let b = Bottle::new();
    let first = launch_images(&b).await.expect("prepare");
    assert!(first.builds.iter().any(|r| r.built));
    let probes = (
        b.fake.count(Op::FirstEntries),
        b.fake.count(Op::ReadImageFile),
    );
    assert_eq!(
        probes,
        (1, 1),
        "the contract and the trust roots are probed once"
    );
    let again = launch_images(&b).await.expect("prepare");
    assert!(again.builds.iter().all(|r| !r.built), "{:?}", again.builds);
    assert_eq!(
        (
            b.fake.count(Op::FirstEntries),
            b.fake.count(Op::ReadImageFile)
        ),
        probes,
        "cached in the state folder"
    );
    assert_eq!(again.agent_image, first.agent_image);
    assert!(again.supervise_image.is_some() && again.egress.is_some());
}

#[tokio::test]
async fn a_rebuild_for_an_approval_builds_only_the_agent() {
    let b = Bottle::new();
    launch_images(&b).await.expect("prepare");
    let builds = b.fake.count(Op::Build);
    let rebuilt = images(
        &b.fake,
        &b.opts().config,
        &b.plan,
        &PrepareOptions {
            dockerfile: Some(format!(
                "{}RUN true\n",
                crate::image::DEFAULT_AGENT_DOCKERFILE
            )),
            agent_only: true,
            ..PrepareOptions::default()
        },
    )
    .await
    .expect("rebuild");
    assert_eq!(b.fake.count(Op::Build), builds + 1, "the agent image alone");
    assert!(rebuilt.supervise_image.is_none() && rebuilt.egress.is_none());
    assert_eq!(b.fake.count(Op::Pull), 1, "pipelock is not asked for again");
}

#[tokio::test]
async fn a_runtime_the_engine_lacks_is_refused_naming_what_it_has() {
    let mut b = Bottle::new();
    b.plan.runtime = crate::manifest::Runtime::Runsc;
    b.fake.state().engine.runtimes = vec!["runc".into(), "io.containerd.runc.v2".into()];
    let err = launch_images(&b).await.expect_err("no runsc");
    assert!(
        matches!(&err, BackendError::RuntimeMissing { available, .. } if available == "io.containerd.runc.v2, runc"),
        "{err}"
    );
    assert_eq!(
        b.fake.count(Op::Build),
        0,
        "refused before anything is built"
    );
}

#[tokio::test]
async fn a_driver_that_cannot_bound_the_disk_warns_or_refuses_as_the_operator_asked() {
    let mut b = Bottle::new();
    b.engine_stores_with("fuse-overlayfs", None);
    let prepared = launch_images(&b)
        .await
        .expect("the default bound only warns");
    assert_eq!(prepared.agent_disk, None);
    assert!(
        prepared
            .notes
            .iter()
            .any(|n| n.contains("fuse-overlayfs cannot bound")),
        "{:?}",
        prepared.notes
    );
    b.plan.limits.disk = DiskLimit::Bytes {
        bytes: 2 << 30,
        explicit: true,
    };
    let err = launch_images(&b)
        .await
        .expect_err("an explicit bound refuses");
    assert!(err.to_string().contains("to 2 GiB"), "{err}");
}

#[tokio::test]
async fn a_driver_that_takes_the_size_bounds_the_agent() {
    let b = Bottle::new();
    b.engine_stores_with("overlay2", Some("xfs"));
    let prepared = launch_images(&b).await.expect("prepare");
    assert_eq!(b.fake.count(Op::AcceptsDiskSize), 1);
    assert!(prepared.agent_disk.is_some());
    assert!(prepared.notes.is_empty(), "{:?}", prepared.notes);
}
