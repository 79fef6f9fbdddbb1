//! Image recipes against the real engine and the real Docker client.
//!
//! The `.dockerignore` conformance test uses the `docker` command as the oracle: what our
//! `workspace_copy` archives must be exactly what `docker build` itself sends for the same folder.
//! The launcher never shells out to `docker`; only this test does, to compare with it.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use claude_bottle::image::{self, DOCKERFILE_IN_CONTEXT};

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker client")
}

fn engine_available() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Removes what a test made, also when it fails.
struct Cleanup(Vec<Vec<String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for args in self.0.iter().rev() {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = docker(&args);
        }
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, text).expect("write");
}

/// A working folder that exercises every rule: globs, classes, `**`, exceptions inside excluded
/// folders, last-match-wins, comments, cleaned paths.
fn sample(root: &Path) {
    write(
        root,
        ".dockerignore",
        "# build output\n\
         *.log\n\
         !keep.log\n\
         build\n\
         docs/*.tmp\n\
         **/secret.txt\n\
         [ab].bin\n\
         vendor\n\
         !vendor/kept.txt\n\
         ./.git/\n\
         notes/**\n\
         !notes/public/**\n\
         notes/public/draft*\n\
         **.bak\n\
         [*]\n",
    );
    for rel in [
        "a.log",
        "keep.log",
        "sub/a.log",
        "build/out/app",
        "builder/x",
        "docs/x.tmp",
        "docs/deep/x.tmp",
        "docs/readme.md",
        "secret.txt",
        "x/y/secret.txt",
        "a.bin",
        "c.bin",
        "vendor/dep.rs",
        "vendor/kept.txt",
        ".git/HEAD",
        ".gitignore",
        "notes/private.md",
        "notes/public/ok.md",
        "notes/public/draft-1.md",
        "src/main.rs",
        "a.bak",
        "deep/x/y.bak",
        "xbak",
        "]",
        "*",
    ] {
        write(root, rel, rel);
    }
    std::fs::set_permissions(
        root.join("src/main.rs"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("src/main.rs", root.join("link")).expect("symlink");
}

/// Files and symlinks below `prefix` in a tar archive, relative to it.
fn files_under(archive: &[u8], prefix: &str) -> BTreeSet<String> {
    let mut archive = tar::Archive::new(archive);
    let mut out = BTreeSet::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut sink = Vec::new();
        entry.read_to_end(&mut sink).expect("read");
        if let Some(rel) = path.strip_prefix(prefix) {
            out.insert(rel.to_owned());
        }
    }
    out
}

#[test]
fn image_workspace_copy_sends_what_docker_sends() {
    if !engine_available() {
        eprintln!("skipped: no Docker engine reachable");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("work");
    sample(&root);

    let ours = image::workspace_copy("it-ignore", "scratch", &root).expect("recipe");
    let ours_files = files_under(&ours.context, "workspace/");

    let nonce = format!("{}-{}", std::process::id(), ours.content_id());
    let tag = format!("claude-bottle-it/ignore:{nonce}");
    let name = format!("claude-bottle-it-ignore-{nonce}");
    let _cleanup = Cleanup(vec![
        vec!["image".into(), "rm".into(), "-f".into(), tag.clone()],
        vec!["rm".into(), "-f".into(), name.clone()],
    ]);
    let dockerfile = dir.path().join("Dockerfile");
    std::fs::write(&dockerfile, "FROM scratch\nCOPY . /ctx/\n").expect("write");
    let built = docker(&[
        "build",
        "-q",
        "-t",
        &tag,
        "-f",
        &dockerfile.to_string_lossy(),
        &root.to_string_lossy(),
    ]);
    assert!(
        built.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let created = docker(&["create", "--name", &name, &tag, "none"]);
    assert!(
        created.status.success(),
        "docker create: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let exported = docker(&["export", &name]);
    assert!(
        exported.status.success(),
        "docker export: {}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let docker_files: BTreeSet<String> = files_under(&exported.stdout, "ctx/")
        .into_iter()
        // The client adds a Dockerfile from outside the context under a generated name.
        .filter(|p| !p.starts_with(".dockerfile."))
        .collect();

    assert_eq!(ours_files, docker_files);
    for expected in [
        "keep.log",
        "vendor/kept.txt",
        "notes/public/ok.md",
        "link",
        "src/main.rs",
    ] {
        assert!(
            ours_files.contains(expected),
            "{expected} missing: {ours_files:?}"
        );
    }
    assert!(!ours_files.contains("notes/public/draft-1.md"));
    // moby compiles `**.bak` to a suffix test, and `[*]` to the class `[[^/]*]`.
    for gone in ["a.bak", "deep/x/y.bak", "]"] {
        assert!(!ours_files.contains(gone), "{gone} sent: {ours_files:?}");
    }
    assert!(ours_files.contains("xbak") && ours_files.contains("*"));
}

#[test]
fn image_recipe_context_is_reproducible_across_copies() {
    // Same content in two folders (different mtimes, inode order) gives the same bytes and tag.
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    sample(a.path());
    std::thread::sleep(std::time::Duration::from_millis(20));
    sample(b.path());
    let ra = image::workspace_copy("it", "base:1", a.path()).expect("recipe");
    let rb = image::workspace_copy("it", "base:1", b.path()).expect("recipe");
    assert_eq!(ra.tag, rb.tag);
    assert_eq!(ra.context, rb.context);
    assert!(files_under(&ra.context, "").contains(DOCKERFILE_IN_CONTEXT));
}
