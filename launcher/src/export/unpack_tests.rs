use std::os::unix::fs::MetadataExt as _;

use super::*;

/// A header named `path` byte for byte (the tar crate's setters refuse `..` and absolute paths,
/// which is what a hostile archive holds).
fn header(path: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    let name = &mut h.as_old_mut().name;
    name[..path.len()].copy_from_slice(path.as_bytes());
    if let Some(link) = link {
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// An archive of `(path, kind, link, data)` entries.
fn archive(entries: &[(&str, tar::EntryType, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, link, data) in entries {
        let h = header(path, *kind, data.len() as u64, *link);
        b.append(&h, *data).expect("append");
    }
    b.into_inner().expect("finish")
}

use tar::EntryType::{
    Block, Char, Directory as Dir, Fifo, GNUSparse, Link, Regular as File, Symlink,
};

fn run(
    entries: &[(&str, tar::EntryType, Option<&str>, &[u8])],
) -> (tempfile::TempDir, Result<Unpacked, UnpackError>) {
    let out = tempfile::tempdir().expect("tempdir");
    let dest = out.path().join("dest");
    std::fs::create_dir(&dest).expect("dest");
    let result = unpack(&archive(entries)[..], "workspace", &dest, 1 << 20);
    (out, result)
}

/// Every file under the temp folder but inside `dest`: nothing may land beside it.
fn outside(out: &tempfile::TempDir) -> Vec<String> {
    std::fs::read_dir(out.path())
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "dest")
        .collect()
}

#[test]
fn a_workspace_is_unpacked_with_files_folders_links_modes_and_times() {
    let (out, r) = run(&[
        ("workspace/", Dir, None, b""),
        ("workspace/src/", Dir, None, b""),
        ("workspace/src/main.rs", File, None, b"fn main() {}\n"),
        ("workspace/README", File, None, b"hi\n"),
        ("workspace/link", Symlink, Some("src/main.rs"), b""),
        ("workspace/hard", Link, Some("workspace/README"), b""),
    ]);
    let done = r.expect("unpacked");
    assert_eq!(done.files, 4);
    assert_eq!(done.bytes, 16);
    let dest = out.path().join("dest");
    assert_eq!(
        std::fs::read_to_string(dest.join("src/main.rs")).expect("read"),
        "fn main() {}\n"
    );
    assert_eq!(
        std::fs::read_link(dest.join("link")).expect("link"),
        Path::new("src/main.rs")
    );
    let hard = std::fs::metadata(dest.join("hard")).expect("hard");
    assert_eq!(
        hard.ino(),
        std::fs::metadata(dest.join("README"))
            .expect("readme")
            .ino()
    );
    assert_eq!(hard.mtime(), 1_700_000_000);
    assert_eq!(hard.mode() & 0o777, 0o644);
}

#[test]
fn parent_components_and_absolute_paths_are_refused() {
    for path in [
        "workspace/../x",
        "../x",
        "/x",
        "/workspace/x",
        "other/x",
        "workspace/a/../../x",
    ] {
        let (out, r) = run(&[(path, File, None, b"pwned")]);
        assert!(
            matches!(r, Err(UnpackError::Refused { .. })),
            "{path}: {r:?}"
        );
        assert!(outside(&out).is_empty(), "{path} wrote {:?}", outside(&out));
    }
}

#[test]
fn a_file_under_a_symlink_to_the_root_is_refused_and_nothing_is_written_through_it() {
    let target = tempfile::tempdir().expect("target");
    let abs = target.path().to_str().expect("utf-8").to_owned();
    for link in ["/", abs.as_str(), ".."] {
        let (out, r) = run(&[
            ("workspace/escape", Symlink, Some(link), b""),
            ("workspace/escape/pwned", File, None, b"pwned"),
        ]);
        assert!(
            matches!(r, Err(UnpackError::Fs(FsError::Symlink { .. }))),
            "{link}: {r:?}"
        );
        assert!(outside(&out).is_empty());
    }
    assert!(!target.path().join("pwned").exists());
}

#[test]
fn a_file_over_a_planted_symlink_is_refused() {
    let target = tempfile::tempdir().expect("target");
    let victim = target.path().join("victim");
    std::fs::write(&victim, "safe").expect("victim");
    let (_out, r) = run(&[
        (
            "workspace/f",
            Symlink,
            Some(victim.to_str().expect("utf-8")),
            b"",
        ),
        ("workspace/f", File, None, b"pwned"),
    ]);
    assert!(r.is_err(), "{r:?}");
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "safe");
}

#[test]
fn hard_links_out_of_the_workspace_are_refused() {
    for link in [
        "/etc/passwd",
        "workspace/../../etc/passwd",
        "etc/passwd",
        "workspace/missing",
    ] {
        let (out, r) = run(&[("workspace/h", Link, Some(link), b"")]);
        assert!(
            matches!(r, Err(UnpackError::Refused { .. })),
            "{link}: {r:?}"
        );
        assert!(!out.path().join("dest/h").exists());
    }
    // A hard link to a symlink the agent planted is refused too: it would share the link, not a file.
    let (_out, r) = run(&[
        ("workspace/s", Symlink, Some("/etc/passwd"), b""),
        ("workspace/h", Link, Some("workspace/s"), b""),
    ]);
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn device_nodes_and_fifos_are_skipped_and_named_escaped() {
    let (out, r) = run(&[
        ("workspace/null", Char, None, b""),
        ("workspace/disk", Block, None, b""),
        ("workspace/pipe\x1b[31m", Fifo, None, b""),
        ("workspace/ok", File, None, b"ok"),
    ]);
    let done = r.expect("unpacked");
    assert_eq!(done.files, 1);
    assert_eq!(done.skipped.len(), 3);
    assert!(!done.skipped[2].contains('\x1b'), "{:?}", done.skipped);
    for name in ["null", "disk"] {
        assert!(!out.path().join("dest").join(name).exists());
    }
}

#[test]
fn a_huge_file_is_refused_at_its_header_and_sparse_entries_are_refused() {
    // A header announcing 1 TiB with no data behind it: refused before anything is read.
    let mut data = Vec::new();
    data.extend_from_slice(header("workspace/huge", File, 1 << 40, None).as_bytes());
    data.extend_from_slice(&[0; 1024]);
    let out = tempfile::tempdir().expect("tempdir");
    let r = unpack(&data[..], "workspace", out.path(), 1 << 20);
    assert!(matches!(r, Err(UnpackError::TooLarge { .. })), "{r:?}");
    assert!(!out.path().join("huge").exists());

    let mut h = tar::Header::new_gnu();
    h.set_path("workspace/sparse").expect("path");
    h.set_entry_type(GNUSparse);
    h.set_size(0);
    // 64 GiB of holes in no bytes: a reader that expands it writes 64 GiB.
    let gnu = h.as_gnu_mut().expect("gnu");
    gnu.realsize = *b"777777777777";
    gnu.sparse[0].offset = *b"777777777777";
    gnu.sparse[0].numbytes = *b"00000000000\0";
    h.set_cksum();
    let mut data = h.as_bytes().to_vec();
    data.extend_from_slice(&[0; 1024]);
    let out = tempfile::tempdir().expect("tempdir");
    let r = unpack(&data[..], "workspace", out.path(), 1 << 20);
    assert!(matches!(r, Err(UnpackError::Refused { .. })), "{r:?}");
    assert!(!out.path().join("sparse").exists());
}

#[test]
fn the_limit_counts_every_file() {
    let big = vec![b'x'; 700 * 1024];
    let (_out, r) = run(&[
        ("workspace/a", File, None, &big),
        ("workspace/b", File, None, &big),
    ]);
    assert!(matches!(r, Err(UnpackError::TooLarge { .. })), "{r:?}");
}
