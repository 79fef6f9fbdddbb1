//! `claude-bottle prune`: a bottle started on two generations of its image (the first with
//! `--cwd`, so with a workspace image) keeps the one it runs and its root step, loses the older
//! one (workspace image and root step first) and its staged run files; `--dry-run` removes
//! nothing.

use bollard::Docker;
use claude_bottle_e2e::{
    TEST_DOCKERFILE, TestBottle, assert_clean, docker, ensure_test_agent_image,
};

/// Start the bottle once (its agent exits at once), with `--cwd` when given, and return the image
/// its launch recorded.
fn start(bottle: &TestBottle, cwd: Option<&std::path::Path>) -> String {
    let mut args = vec!["start", "--yes"];
    if let Some(dir) = cwd {
        args.extend(["--cwd", dir.to_str().expect("utf-8 path")]);
    }
    args.push(&bottle.name);
    let out = bottle.command(&args).output().expect("start");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = bottle
        .path()
        .join("state")
        .join(bottle.slug())
        .join("run/agent-image");
    std::fs::read_to_string(&record)
        .unwrap_or_else(|e| panic!("the launch records its image at {}: {e}", record.display()))
        .trim()
        .to_owned()
}

/// The root step an approval's rebuild starts from (`prepare::warm_root_step`), built by hand:
/// `FROM image` + `USER root`, the bottle's labels inherited.
async fn root_step(d: &Docker, image: &str) -> String {
    let tag = format!("{image}-root");
    let dockerfile = format!("FROM {image}\nUSER root\n");
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())
        .expect("tar");
    let body = tar.into_inner().expect("tar");
    let opts = bollard::query_parameters::BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(tag.clone()),
        rm: true,
        ..Default::default()
    };
    let mut stream = d.build_image(opts, None, Some(bollard::body_full(body.into())));
    while let Some(item) = futures_util::StreamExt::next(&mut stream).await {
        if let Err(e) = item {
            panic!("failed to build {tag}: {e}");
        }
    }
    tag
}

/// The bottle's one image of role `agent-base` (its first layer).
async fn agent_base(d: &Docker, slug: &str) -> String {
    let images = claude_bottle_e2e::agent_base_images(d, slug).await;
    assert_eq!(images.len(), 1, "{images:?}");
    images[0].repo_tags[0].clone()
}

async fn exists(d: &Docker, image: &str) -> bool {
    d.inspect_image(image).await.is_ok()
}

#[tokio::test]
async fn prune_removes_the_older_generation_and_keeps_the_one_the_bottle_runs() {
    let Some(d) = docker().await else { return };
    ensure_test_agent_image(&d).await;
    // The 2 MiB file below also guards the snapshot against the engine's archive deadlock (two
    // downloads of one container asked for at once; see `archive::feed_parts`): it stalled 3 of
    // 4 runs of this test until the snapshot asked for one folder at a time.
    let bottle = TestBottle::new("prune", "", &["/bin/true"]);
    let slug = bottle.slug();
    let generation = |n: u8| {
        std::fs::write(
            bottle.path().join("bottles/Dockerfile"),
            format!("{TEST_DOCKERFILE}ENV E2E_PRUNE_GENERATION={n}\n"),
        )
        .expect("write the Dockerfile");
    };
    // Generation 1, run on a copy of a folder: a workspace image over the agent image.
    generation(1);
    let cwd = tempfile::tempdir().expect("tempdir");
    std::fs::write(cwd.path().join("data.bin"), vec![7u8; 2 << 20]).expect("write");
    let workspace = start(&bottle, Some(cwd.path()));
    let old = agent_base(&d, &slug).await;
    assert_ne!(
        workspace, old,
        "with --cwd the agent runs the workspace image"
    );
    // Generation 2: an edited Dockerfile, started without --cwd.
    generation(2);
    let new = start(&bottle, None);
    assert_ne!(old, new, "a changed Dockerfile is a new generation");
    let (old_root, new_root) = (root_step(&d, &old).await, root_step(&d, &new).await);
    let run = bottle.path().join("state").join(&slug).join("run");
    assert!(run.join("lib").is_dir(), "the launch staged run/lib");

    // --dry-run: the table names the older generation, children first; nothing goes.
    let out = bottle
        .command(&["prune", "--dry-run", &bottle.name])
        .output()
        .expect("prune --dry-run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    println!("--- prune --dry-run ---\n{stdout}");
    let row = |name: &str| {
        stdout
            .lines()
            .position(|l| l.split_whitespace().nth(2) == Some(name))
    };
    for image in [&workspace, &old, &old_root] {
        assert!(row(image).is_some(), "no row of {image} in:\n{stdout}");
    }
    assert!(
        row(&workspace) < row(&old) && row(&old_root) < row(&old),
        "children come before the image they were built on:\n{stdout}"
    );
    for kept in [&new, &new_root] {
        assert!(row(kept).is_none(), "{kept} is listed:\n{stdout}");
    }
    for want in ["older generation", "run/lib", "would free"] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    for image in [&workspace, &old, &old_root, &new, &new_root] {
        assert!(exists(&d, image).await, "--dry-run removed {image}");
    }
    assert!(run.join("lib").is_dir(), "--dry-run removed run/lib");

    // prune: the older generation goes, the current one and its root step stay.
    let out = bottle
        .command(&["prune", &bottle.name])
        .output()
        .expect("prune");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    println!("--- prune ---\n{stdout}");
    assert!(stdout.contains("freed "), "{stdout}");
    for image in [&workspace, &old, &old_root] {
        assert!(!exists(&d, image).await, "{image} was not removed");
    }
    for image in [&new, &new_root] {
        assert!(exists(&d, image).await, "{image} was removed");
    }
    assert!(!run.join("lib").exists(), "run/lib stayed");
    for cache in ["agent-image", "binaries"] {
        assert!(run.join(cache).exists(), "run/{cache} was removed");
    }

    // Nothing is left to prune; the bottle starts again on the image prune kept.
    let out = bottle
        .command(&["prune", &bottle.name])
        .output()
        .expect("prune again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("nothing to prune"), "{stdout}");
    assert_eq!(start(&bottle, None), new);
    assert_clean(&d, &slug).await;
}
