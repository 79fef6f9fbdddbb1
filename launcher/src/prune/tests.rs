use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;

const MB: u64 = 1_000_000;

/// An image `id` built on `parent`, tagged `tags`, of `bottle`, `size` MB with its parents.
fn image(id: &str, parent: Option<&str>, tags: &[&str], bottle: Option<&str>, size: u64) -> Image {
    Image {
        id: format!("sha256:{id}"),
        parent: parent.map(|p| format!("sha256:{p}")),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        bottle: bottle.map(str::to_owned),
        size: size * MB,
        in_use: false,
    }
}

fn recorded(tag: &str) -> Bottle {
    Bottle::Recorded(vec![tag.to_owned()])
}

/// Two generations of bottle `app` over a shared base, the way approvals leave them: generation 1
/// (`:g1`, its `-root` step, a `--cwd` workspace image over it through an untagged intermediate)
/// and generation 2 (`:g2` and its `-root`), built on `:g1-root`'s layers as an approval builds.
fn two_generations() -> Vec<Image> {
    vec![
        image("base", None, &["claude-bottle/base:bookworm"], None, 100),
        image(
            "g1",
            Some("base"),
            &["claude-bottle/app:g1"],
            Some("app"),
            300,
        ),
        image(
            "g1r",
            Some("g1"),
            &["claude-bottle/app:g1-root"],
            Some("app"),
            300,
        ),
        image("ws1i", Some("g1"), &[], Some("app"), 300),
        image(
            "ws1",
            Some("ws1i"),
            &["claude-bottle/app:ws1"],
            Some("app"),
            350,
        ),
        image(
            "g2",
            Some("g1r"),
            &["claude-bottle/app:g2"],
            Some("app"),
            320,
        ),
        image(
            "g2r",
            Some("g2"),
            &["claude-bottle/app:g2-root"],
            Some("app"),
            320,
        ),
        image(
            "relay",
            None,
            &["claude-bottle/sidecar-relay:abc"],
            None,
            13,
        ),
    ]
}

fn names(removals: &[ImageRemoval]) -> Vec<String> {
    removals.iter().map(ImageRemoval::name).collect()
}

#[test]
fn the_recorded_generation_its_root_step_and_what_it_is_built_on_stay_the_rest_goes_children_first()
{
    let bottles = BTreeMap::from([("app".to_owned(), recorded("claude-bottle/app:g2"))]);
    let (removed, notes) = decide_images(&two_generations(), &bottles, None);
    // g1 and g1-root are below g2: resume builds on them. The workspace image of generation 1
    // goes, with its untagged intermediate; the sidecar and the base image carry no bottle label.
    assert_eq!(names(&removed), ["claude-bottle/app:ws1"]);
    assert_eq!(removed[0].why, Why::OlderGeneration);
    assert_eq!(
        removed[0].freed,
        50 * MB,
        "its layer and the intermediate's (0)"
    );
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn an_older_generation_goes_with_its_root_step_and_workspace_before_it() {
    // Generation 2 built from scratch (an edited Dockerfile): nothing of generation 1 is below it.
    let mut images = two_generations();
    images[5].parent = Some("sha256:base".into());
    let bottles = BTreeMap::from([("app".to_owned(), recorded("claude-bottle/app:g2"))]);
    let (removed, _) = decide_images(&images, &bottles, Some("app"));
    assert_eq!(
        names(&removed),
        [
            "claude-bottle/app:ws1",
            "claude-bottle/app:g1-root",
            "claude-bottle/app:g1"
        ],
        "children before the image they were built on"
    );
    let freed: u64 = removed.iter().map(|r| r.freed).sum();
    // ws1 and its intermediate, g1-root (a `USER root` step, no layer), g1.
    assert_eq!(freed, (50 + 200) * MB);
}

#[test]
fn a_workspace_image_the_bottle_runs_keeps_everything_below_it() {
    let bottles = BTreeMap::from([("app".to_owned(), recorded("claude-bottle/app:ws1"))]);
    let (removed, _) = decide_images(&two_generations(), &bottles, None);
    // g1 is below ws1 and g1-root is its root step; generation 2 is newer but not recorded.
    assert_eq!(
        names(&removed),
        ["claude-bottle/app:g2-root", "claude-bottle/app:g2"]
    );
}

#[test]
fn an_image_a_container_uses_stays_with_everything_below_it() {
    let mut images = two_generations();
    images[4].in_use = true; // a stopped container of ws1
    let mut g1_out = images.clone();
    g1_out[5].parent = Some("sha256:base".into());
    let bottles = BTreeMap::from([("app".to_owned(), recorded("claude-bottle/app:g2"))]);
    let (removed, _) = decide_images(&g1_out, &bottles, None);
    // ws1 is used and g1 is below it; g1's root step serves only the next approval of a
    // generation the bottle no longer runs.
    assert_eq!(names(&removed), ["claude-bottle/app:g1-root"]);
}

#[test]
fn a_running_bottle_and_one_without_a_record_keep_every_image_and_say_why() {
    for (state, note) in [
        (Bottle::Running { pid: 42 }, "running (launcher pid 42)"),
        (Bottle::Unrecorded, "no record of the image it runs"),
    ] {
        let bottles = BTreeMap::from([("app".to_owned(), state)]);
        let (removed, notes) = decide_images(&two_generations(), &bottles, None);
        assert!(removed.is_empty(), "{:?}", names(&removed));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains(note), "{notes:?}");
    }
}

#[test]
fn the_images_of_a_bottle_whose_files_are_gone_go_whole_but_one_a_container_uses() {
    let mut images = two_generations();
    images.push(image(
        "other",
        Some("base"),
        &["claude-bottle/old:1"],
        Some("old"),
        150,
    ));
    images.push(image(
        "otheruse",
        Some("base"),
        &["claude-bottle/old:2"],
        Some("old"),
        150,
    ));
    images.last_mut().expect("pushed").in_use = true;
    let bottles = BTreeMap::from([
        ("app".to_owned(), recorded("claude-bottle/app:g2")),
        ("old".to_owned(), Bottle::Gone),
    ]);
    let (removed, _) = decide_images(&images, &bottles, None);
    let gone: Vec<_> = removed.iter().filter(|r| r.bottle == "old").collect();
    assert_eq!(gone.len(), 1, "{:?}", names(&removed));
    assert_eq!(gone[0].name(), "claude-bottle/old:1");
    assert_eq!(gone[0].why, Why::BottleGone);
    assert_eq!(gone[0].freed, 50 * MB);
    // Scoped to app, old's images stay.
    let (scoped, _) = decide_images(&images, &bottles, Some("app"));
    assert!(scoped.iter().all(|r| r.bottle == "app"));
}

#[test]
fn a_dangling_image_goes_by_its_id_and_a_hand_made_tag_keeps_an_image() {
    let mut images = two_generations();
    images.push(image("dangling", Some("g2"), &[], Some("app"), 330));
    images[5].parent = Some("sha256:base".into());
    images[1]
        .tags
        .push("my-registry.example/keep-this:latest".into());
    let bottles = BTreeMap::from([("app".to_owned(), recorded("claude-bottle/app:g2"))]);
    let (removed, _) = decide_images(&images, &bottles, None);
    // g1 carries the operator's own tag: it stays, and so does everything below it; its
    // children (g1-root, the workspace image) are not below anything kept and go.
    assert_eq!(
        names(&removed),
        [
            "claude-bottle/app:ws1",
            "dangling",
            "claude-bottle/app:g1-root"
        ]
    );
    let dangling = &removed[1];
    assert!(dangling.tags.is_empty() && dangling.id == "sha256:dangling");
    assert_eq!(dangling.freed, 10 * MB);
}

#[test]
fn a_bottle_not_known_to_the_caller_is_treated_as_unrecorded() {
    let (removed, _) = decide_images(&two_generations(), &BTreeMap::new(), None);
    assert!(removed.is_empty(), "{:?}", names(&removed));
}

#[test]
fn run_folders_of_idle_bottles_lose_what_a_launch_stages_and_keep_caches_and_the_record() {
    let folder = |slug: &str, busy: bool| RunFolder {
        slug: slug.to_owned(),
        path: PathBuf::from(format!("/h/state/{slug}/run")),
        busy,
        entries: vec![
            ("agent-image".into(), 4096),
            ("binaries".into(), 8192),
            ("image-contract".into(), 4096),
            ("image-roots".into(), 300_000),
            ("lib".into(), 12_288),
            ("pipelock".into(), 16_384),
            ("supervise".into(), 4096),
        ],
    };
    let folders = [folder("idle", false), folder("busy", true)];
    let removed = decide_folders(&folders, None);
    assert_eq!(
        removed.iter().map(|r| r.path.clone()).collect::<Vec<_>>(),
        [
            PathBuf::from("/h/state/idle/run/lib"),
            PathBuf::from("/h/state/idle/run/pipelock"),
            PathBuf::from("/h/state/idle/run/supervise"),
        ]
    );
    assert_eq!(removed.iter().map(|r| r.size).sum::<u64>(), 32_768);
    assert!(decide_folders(&folders, Some("busy")).is_empty());
}
