//! A file's SHA-256, remembered by the file's identity so a warm start reads no binary.
//!
//! The static sidecar binaries are 7–13 MB; reading and hashing them at every start cost 50–180 ms
//! here (the page cache does not keep them). The digest is kept in a small file beside other
//! per-bottle caches, keyed by what changes whenever the file does: device, inode, size, and the
//! modification and status-change times in nanoseconds. Any change to the file, a rebuild
//! or a copy over it, changes the key, and the file is hashed again.

use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::ImageError;

/// The SHA-256 (hex) of `path`, from `cache` when the file is unchanged since it was stored
/// there; else hashed and stored (a cache that cannot be written only costs the next start).
pub fn file_digest(path: &Path, cache: &Path) -> Result<String, ImageError> {
    let read_err = |source| ImageError::Read {
        path: path.to_owned(),
        source,
    };
    let key = identity(&std::fs::metadata(path).map_err(read_err)?, path);
    if let Ok(text) = std::fs::read_to_string(cache)
        && let Some((stored, digest)) = text.trim_end().rsplit_once(' ')
        && stored == key
        && digest.len() == 64
        && digest.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Ok(digest.to_owned());
    }
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hex(&hasher.finalize());
    // Stored only when the file held still while it was read, and not within the last seconds
    // (a rewrite in place within one timestamp tick would keep the key but not the content).
    let after = file.metadata().map_err(read_err)?;
    let settled = after
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age >= SETTLE);
    if identity(&after, path) == identity(&meta, path) && settled {
        let line = format!("{} {digest}\n", identity(&meta, path));
        if let Some(dir) = cache.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::state::write_atomic(cache, line.as_bytes());
    }
    Ok(digest)
}

/// How old a file's last change must be before its digest is cached.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The SHA-256 (hex) of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn identity(meta: &std::fs::Metadata, path: &Path) -> String {
    format!(
        "{}:{}:{}:{}.{}:{}.{}:{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        // Spaces would break the line's last-space split; the path is only part of the key.
        path.display().to_string().replace(' ', "%20")
    )
}

/// Lowercase hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Make `path` look changed `secs` seconds ago (its ctime stays now).
    fn age(path: &Path, secs: u64) {
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(then))
            .expect("set mtime");
    }

    #[test]
    fn a_changed_file_is_hashed_again_an_unchanged_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        let cache = dir.path().join("cache/bin.digest");
        std::fs::write(&bin, b"one").expect("write");
        // Just written: hashed, but not cached (it could still be changing within a tick).
        assert_eq!(
            file_digest(&bin, &cache).expect("digest"),
            digest_of(b"one")
        );
        assert!(!cache.exists());
        age(&bin, 10);
        let first = file_digest(&bin, &cache).expect("digest");
        assert_eq!(first, digest_of(b"one"));
        let text = std::fs::read_to_string(&cache).expect("cache");
        assert!(text.ends_with(&format!(" {first}\n")), "{text}");

        // A cached digest is used as long as the key matches: prove it by planting another one.
        std::fs::write(&cache, text.replace(&first, &"a".repeat(64))).expect("plant");
        assert_eq!(file_digest(&bin, &cache).expect("cached"), "a".repeat(64));

        // Rewriting the file (even with the same size and an old mtime) changes its ctime:
        // hashed again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&bin, b"two").expect("rewrite");
        age(&bin, 10);
        assert_eq!(
            file_digest(&bin, &cache).expect("digest"),
            digest_of(b"two")
        );

        // A stored line with the right key but no valid digest is not trusted.
        let text = std::fs::read_to_string(&cache).expect("cache");
        let (key, _) = text.trim_end().rsplit_once(' ').expect("line");
        for bad in ["z".repeat(64), "a".repeat(63), String::new()] {
            std::fs::write(&cache, format!("{key} {bad}\n")).expect("plant");
            assert_eq!(
                file_digest(&bin, &cache).expect("digest"),
                digest_of(b"two")
            );
        }
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err =
            file_digest(&dir.path().join("nope"), &dir.path().join("c")).expect_err("missing");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
