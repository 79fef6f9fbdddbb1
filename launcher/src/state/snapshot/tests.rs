//! Snapshots: streamed to disk part by part, refused past the limit with the previous one intact,
//! sparse on the host, merged back for a restore.

use std::os::unix::fs::MetadataExt as _;

use super::*;

/// A GNU header of the agent's (uid and gid 1000) with `kind` and `mode`, size 0.
fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_mtime(1_700_000_000);
    h.set_size(0);
    h
}

/// An archive as the engine exports a folder: entries named from the folder's own name.
fn engine_tar(root: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = header(tar::EntryType::Directory, 0o750);
    b.append_data(&mut dir, format!("{root}/"), std::io::empty())
        .expect("dir");
    let mut file = header(tar::EntryType::Regular, 0o640);
    file.set_size(5);
    b.append_data(
        &mut file.clone(),
        format!("{root}/notes.txt"),
        &b"hello"[..],
    )
    .expect("file");
    // Longer than the 100 bytes a plain header holds.
    let long = format!("{root}/{}/deep.txt", "d".repeat(120));
    b.append_data(&mut file.clone(), &long, &b"world"[..])
        .expect("long");
    let mut link = header(tar::EntryType::Link, 0o640);
    b.append_link(
        &mut link,
        format!("{root}/hard"),
        format!("{root}/notes.txt"),
    )
    .expect("hard link");
    let mut sym = header(tar::EntryType::Symlink, 0o777);
    b.append_link(&mut sym, format!("{root}/sym"), "/etc/hostname")
        .expect("symlink");
    b.append_pax_extensions([("SCHILY.xattr.user.note", &b"kept"[..])])
        .expect("pax");
    b.append_data(&mut file, format!("{root}/xattr.txt"), &b"attrs"[..])
        .expect("xattr file");
    // As Go's archive/tar (the engine) writes a long name: a PAX `path` record, then a ustar
    // header whose own name is cut short.
    let pax_long = format!("{root}/{}/pax.txt", "p".repeat(150));
    b.append_pax_extensions([
        ("path", pax_long.as_bytes()),
        ("mtime", &b"1700000000.25"[..]),
    ])
    .expect("pax path");
    let mut ustar = tar::Header::new_ustar();
    ustar
        .set_path(format!("{root}/cut-short"))
        .expect("short name");
    ustar.set_mode(0o600);
    ustar.set_uid(1000);
    ustar.set_gid(1000);
    ustar.set_mtime(1_700_000_000);
    ustar.set_size(3);
    ustar.set_cksum();
    b.append(&ustar, &b"pax"[..]).expect("ustar entry");
    b.into_inner().expect("tar")
}

/// Save `parts` (container path, archive) through a [`Writer`], fed in 1000-byte pieces.
fn save(store: &Store, parts: &[(&str, Vec<u8>)]) -> Result<Snapshot, SnapshotError> {
    let mut w = store.writer()?;
    for (path, tar) in parts {
        w.start_part(path)?;
        for piece in tar.chunks(1000) {
            w.write(piece)?;
        }
        w.finish_part()?;
    }
    w.commit()
}

/// A fresh state folder (1 GiB limit) holding a snapshot of `parts`; the folder lasts as long as
/// the returned guard.
fn saved(parts: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, Store, Snapshot) {
    saved_within(1 << 30, parts)
}

/// [`saved`] with a store limited to `max_bytes`.
fn saved_within(max_bytes: u64, parts: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, Store, Snapshot) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path(), max_bytes);
    let snap = save(&store, parts).expect("save");
    (dir, store, snap)
}

/// The file of the first part of `snap` in the state folder `state`.
fn first_file(state: &Path, snap: &Snapshot) -> PathBuf {
    state.join("snapshots/latest").join(&snap.parts[0].file)
}

/// Names in `snapshots/latest/`, sorted.
fn listing(state: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(state.join("snapshots/latest"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file of `snapshots/latest/` with its content.
fn contents(state: &Path) -> Vec<(String, Vec<u8>)> {
    listing(state)
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(state.join("snapshots/latest").join(&n)).expect("read");
            (n, bytes)
        })
        .collect()
}

/// An archive of one regular file of `size` bytes of `byte`.
fn one_file(path: &str, size: u64, byte: u8) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 0o644);
    h.set_size(size);
    let data = std::io::Read::take(std::io::repeat(byte), size);
    b.append_data(&mut h, path, data).expect("file");
    b.into_inner().expect("tar")
}

#[test]
fn merged_archive_restores_every_part_at_the_root() {
    let (_dir, store, snap) = saved(&[
        ("/home/agent", engine_tar("agent")),
        ("/workspace", engine_tar("workspace")),
    ]);
    let merged = merge_into(&store, &snap, Vec::new()).expect("merge");
    let mut archive = tar::Archive::new(merged.as_slice());
    let mut seen = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").display().to_string();
        let link = entry
            .link_name()
            .expect("link")
            .map(|l| l.display().to_string());
        let xattr = entry.pax_extensions().expect("pax").and_then(|mut r| {
            r.find_map(|x| {
                let x = x.ok()?;
                (x.key().ok()? == "SCHILY.xattr.user.note").then(|| x.value_bytes().to_vec())
            })
        });
        let (mode, uid) = (
            entry.header().mode().expect("mode"),
            entry.header().uid().expect("uid"),
        );
        let mut body = String::new();
        std::io::Read::read_to_string(&mut entry, &mut body).expect("body");
        seen.push((path, link, body, mode, uid, xattr));
    }
    let paths: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    let long = format!("home/agent/{}/deep.txt", "d".repeat(120));
    assert_eq!(
        paths,
        [
            "home/agent/",
            "home/agent/notes.txt",
            long.as_str(),
            "home/agent/hard",
            "home/agent/sym",
            "home/agent/xattr.txt",
            &format!("home/agent/{}/pax.txt", "p".repeat(150)),
            "workspace/",
            "workspace/notes.txt",
            &format!("workspace/{}/deep.txt", "d".repeat(120)),
            "workspace/hard",
            "workspace/sym",
            "workspace/xattr.txt",
            &format!("workspace/{}/pax.txt", "p".repeat(150)),
        ]
    );
    let by = |p: &str| seen.iter().find(|s| s.0 == p).expect(p);
    assert_eq!(by("home/agent/notes.txt").2, "hello");
    assert_eq!(
        (by("home/agent/notes.txt").3, by("home/agent/notes.txt").4),
        (0o640, 1000)
    );
    assert_eq!(by("home/agent/").3, 0o750);
    assert_eq!(by(&long).2, "world");
    // A hard link points inside the archive, so its target moves with it; a symlink's does not.
    assert_eq!(
        by("home/agent/hard").1.as_deref(),
        Some("home/agent/notes.txt")
    );
    assert_eq!(
        by("workspace/hard").1.as_deref(),
        Some("workspace/notes.txt")
    );
    assert_eq!(by("home/agent/sym").1.as_deref(), Some("/etc/hostname"));
    assert_eq!(by("home/agent/xattr.txt").5.as_deref(), Some(&b"kept"[..]));
    assert_eq!(by("home/agent/xattr.txt").2, "attrs");
    let pax = format!("home/agent/{}/pax.txt", "p".repeat(150));
    assert_eq!((by(&pax).2.as_str(), by(&pax).3), ("pax", 0o600));
}

#[test]
fn saves_and_loads_the_latest_and_replaces_the_previous() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path(), 1 << 30);
    assert_eq!(store.load().expect("load"), None);
    let first = save(
        &store,
        &[
            ("/home/agent", engine_tar("agent")),
            ("/workspace", engine_tar("workspace")),
        ],
    )
    .expect("save");
    assert_eq!(store.load().expect("load"), Some(first.clone()));
    assert_eq!(first.parts[0].restore_into(), "/home");
    assert_eq!(first.parts[1].restore_into(), "/");
    assert_eq!(first.parts[0].bytes, engine_tar("agent").len() as u64);
    let second = save(&store, &[("/home/agent", one_file("agent/x", 10, b'x'))]).expect("save");
    assert_eq!(store.load().expect("load"), Some(second.clone()));
    // The first snapshot's files are gone: only the index and the second's archive remain.
    assert_eq!(
        listing(dir.path()),
        [second.parts[0].file.clone(), "index".to_owned()]
    );
    let mode = std::fs::metadata(dir.path().join("snapshots/latest"))
        .expect("stat")
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn an_index_of_the_earlier_layout_still_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let latest = dir.path().join("snapshots/latest");
    std::fs::create_dir_all(&latest).expect("mkdir");
    std::fs::write(latest.join("home_agent.tar"), engine_tar("agent")).expect("tar");
    std::fs::write(latest.join("index"), "home_agent.tar /home/agent\n").expect("index");
    let store = Store::new(dir.path(), 1 << 30);
    let snap = store.load().expect("load").expect("a snapshot");
    assert_eq!(snap.parts[0].file, "home_agent.tar");
    assert_eq!(snap.parts[0].path, "/home/agent");
    merge_into(&store, &snap, Vec::new()).expect("merge");
}

#[test]
fn a_snapshot_past_the_limit_is_refused_at_the_header_and_the_previous_one_kept() {
    let (dir, store, _) = saved_within(1 << 20, &[("/home/agent", engine_tar("agent"))]);
    let before = contents(dir.path());

    let mut w = store.writer().expect("writer");
    w.start_part("/home/agent").expect("part");
    w.write(&one_file("agent/notes", 1000, b'n'))
        .expect("small part");
    w.finish_part().expect("finish");
    // The workspace's archive announces 64 GiB (a sparse file, as the engine streams it): the
    // refusal comes with its header, before any of its data.
    w.start_part("/workspace").expect("part");
    let mut h = header(tar::EntryType::Regular, 0o644);
    h.set_path("workspace/z\x1b[2J").expect("path");
    h.set_size(64 << 30);
    h.set_cksum();
    let err = w.write(h.as_bytes()).expect_err("refused");
    let SnapshotError::TooLarge(too) = &err else {
        panic!("expected TooLarge, got {err:?}");
    };
    assert_eq!(
        too.culprit,
        Some(Entry {
            path: "/workspace/z\\x1b[2J".into(),
            size: 64 << 30
        })
    );
    assert_eq!(too.largest[0].size, 64 << 30);
    assert_eq!(too.largest[1].path, "/home/agent/notes");
    let msg = err.to_string();
    assert!(
        !msg.contains('\x1b'),
        "the agent's escape reached the message: {msg}"
    );
    insta::assert_snapshot!("a_snapshot_past_the_limit", msg);
    drop(w);
    assert_eq!(
        contents(dir.path()),
        before,
        "the previous snapshot is untouched"
    );
}

#[test]
fn the_limit_counts_every_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path(), 20_000);
    let err = save(
        &store,
        &[
            ("/home/agent", one_file("agent/a", 12_000, 1)),
            ("/workspace", one_file("workspace/b", 12_000, 2)),
        ],
    )
    .expect_err("two parts over the limit together");
    assert!(matches!(err, SnapshotError::TooLarge(_)), "{err}");
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[test]
fn a_stream_cut_short_is_not_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path(), 1 << 30);
    let tar = engine_tar("agent");
    let mut w = store.writer().expect("writer");
    w.start_part("/home/agent").expect("part");
    w.write(&tar[..tar.len() - 1024]).expect("write");
    let err = w.finish_part().expect_err("no end marker");
    assert!(matches!(err, SnapshotError::Incomplete { .. }), "{err}");
    drop(w);
    assert!(listing(dir.path()).is_empty());
    assert_eq!(store.load().expect("load"), None);
}

#[test]
fn zeros_become_holes_on_the_host_and_come_back_as_zeros() {
    let size: u64 = 64 << 20;
    let (dir, store, snap) = saved(&[("/home/agent", one_file("agent/sparse", size, 0))]);
    let file = first_file(dir.path(), &snap);
    let meta = std::fs::metadata(&file).expect("stat");
    assert!(meta.len() > size, "{}", meta.len());
    // st_blocks counts 512-byte units actually allocated.
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "{} bytes allocated for {} of zeros",
        meta.blocks() * 512,
        size
    );
    let merged = merge_into(&store, &snap, Vec::new()).expect("merge");
    let mut archive = tar::Archive::new(merged.as_slice());
    let mut entry = archive
        .entries()
        .expect("entries")
        .next()
        .expect("one")
        .expect("entry");
    assert_eq!(
        entry.path().expect("path").to_str(),
        Some("home/agent/sparse")
    );
    let mut read = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut entry, &mut buf).expect("read");
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|&b| b == 0));
        read += n as u64;
    }
    assert_eq!(read, size);
    // Data that is not zeros is written as it came.
    let data = save(
        &store,
        &[("/workspace", one_file("workspace/d", 10_000, 7))],
    )
    .expect("save");
    let bytes = std::fs::read(first_file(dir.path(), &data)).expect("read");
    assert_eq!(bytes, one_file("workspace/d", 10_000, 7));
}

#[test]
fn a_restore_refuses_what_would_expand_or_pass_the_limit() {
    let (dir, store, snap) = saved(&[("/home/agent", one_file("agent/big", 100_000, 3))]);
    // The limit was lowered since: the restore says so rather than read past it.
    let lower = Store::new(dir.path(), 50_000);
    let err = merge_into(&lower, &snap, Vec::new()).expect_err("over the limit");
    let SnapshotError::TooLarge(too) = &err else {
        panic!("expected TooLarge, got {err:?}");
    };
    assert_eq!(too.action, "restore");
    assert_eq!(too.culprit.as_ref().map(|e| e.size), Some(100_000));

    // A GNU sparse entry put into the file by hand would be expanded by a tar reader: refused.
    let mut h = tar::Header::new_gnu();
    h.set_path("agent/s").expect("path");
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(0);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[0; 1024]);
    let file = first_file(dir.path(), &snap);
    std::fs::write(&file, &tar).expect("plant");
    let err = merge_into(&store, &snap, Vec::new()).expect_err("sparse");
    assert!(
        matches!(&err, SnapshotError::Archive { detail, .. } if detail.contains("sparse")),
        "{err}"
    );
}

#[test]
fn a_symlinked_archive_is_refused() {
    let (dir, store, snap) = saved(&[("/home/agent", engine_tar("agent"))]);
    let file = first_file(dir.path(), &snap);
    let elsewhere = dir.path().join("elsewhere.tar");
    std::fs::rename(&file, &elsewhere).expect("move");
    std::os::unix::fs::symlink(&elsewhere, &file).expect("symlink");
    assert!(store.load().is_err());
    assert!(merge_into(&store, &snap, Vec::new()).is_err());
}

#[test]
fn sizes_are_shown_in_binary_units() {
    assert_eq!(human(100), "100 B");
    assert_eq!(human(8 << 30), "8 GiB");
    assert_eq!(human(1536), "1.5 KiB");
}

/// A reader that hands out `data` 700 bytes at a time, as the engine's stream arrives.
struct Pieces<'a>(&'a [u8]);

impl std::io::Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(buf.len()).min(700);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn a_carry_saves_the_snapshot_and_writes_what_its_restore_would_unpack() {
    let parts = [
        ("/home/agent", engine_tar("agent")),
        ("/workspace", engine_tar("workspace")),
    ];
    let (_dir, saved_store, saved_snap) = saved(&parts);
    let restored = merge_into(&saved_store, &saved_snap, Vec::new()).expect("merge");

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path(), 1 << 30);
    let mut carry = Carry::new(&store, Vec::new()).expect("carry");
    for (path, tar) in &parts {
        carry.part(path, Pieces(tar)).expect("part");
        carry.finish_part().expect("finish");
    }
    // A folder the image lacks: the engine answers nothing, the part is left out.
    carry
        .part("/opt/missing", Pieces(&[]))
        .expect("missing part");
    carry.skip_part();
    let (snap, out) = carry.finish().expect("saved");
    assert_eq!(
        out.expect("restore side"),
        restored,
        "the same archive as a restore of it"
    );
    assert_eq!(store.load().expect("load"), Some(snap.clone()));
    assert_eq!(snap.parts.len(), 2);
    assert_eq!(
        merge_into(&store, &snap, Vec::new()).expect("merge the carried one"),
        restored
    );
}

#[test]
fn a_carry_past_the_limit_saves_nothing_and_stops_the_restore_at_the_header() {
    let (dir, store, _) = saved_within(1 << 20, &[("/home/agent", engine_tar("agent"))]);
    let before = contents(dir.path());
    let big = one_file("workspace/big", 2 << 20, b'x');
    let mut carry = Carry::new(&store, Vec::new()).expect("carry");
    let err = carry.part("/workspace", Pieces(&big)).expect_err("refused");
    assert!(matches!(err, SnapshotError::TooLarge(_)), "{err}");
    drop(carry);
    assert_eq!(
        contents(dir.path()),
        before,
        "the previous snapshot is untouched"
    );
}

/// A sink that takes `room` bytes, then fails as an engine that stopped reading.
struct Gone {
    room: usize,
}

impl std::io::Write for Gone {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::other("the engine stopped reading"));
        }
        let n = data.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_restore_that_fails_half_way_still_saves_the_whole_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path(), 1 << 30);
    let parts = [
        ("/home/agent", engine_tar("agent")),
        ("/workspace", engine_tar("workspace")),
    ];
    let mut carry = Carry::new(&store, Gone { room: 2048 }).expect("carry");
    for (path, tar) in &parts {
        carry.part(path, Pieces(tar)).expect("part");
        carry.finish_part().expect("finish");
    }
    let (snap, out) = carry.finish().expect("the snapshot is saved");
    let err = out.err().expect("the restore failed");
    assert!(err.to_string().contains("stopped reading"), "{err}");
    assert_eq!(store.load().expect("load"), Some(snap.clone()));
    let (_d, s2, expected) = saved(&parts);
    assert_eq!(
        merge_into(&store, &snap, Vec::new()).expect("merge"),
        merge_into(&s2, &expected, Vec::new()).expect("merge"),
        "the saved snapshot is whole"
    );
}
