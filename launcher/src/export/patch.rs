//! The agent's workspace as a patch against the folder `start --cwd` copied: the output of
//! `git diff --no-index a b` (git's headers, `a/` and `b/` prefixes, three lines of context, names
//! quoted as git quotes them), so `git apply` or `patch -p1` in the source folder applies it.
//!
//! Text files are compared with `similar`; a file with a NUL byte in its first 8000 bytes (git's
//! test), one that is not UTF-8, or one over [`TEXT_LIMIT`] is binary: `Binary files … differ`,
//! which `git apply` refuses (the folder export carries those). Symlinks are compared as git
//! stores them (mode 120000, the target as the content). `.git` folders are left out on both
//! sides, and in the source what its `.dockerignore` kept out of the copy.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read as _, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::image::DockerIgnore;

/// Largest file diffed as text; larger ones are compared as binary (memory stays bounded).
pub const TEXT_LIMIT: u64 = 8 << 20;
/// How far git looks for a NUL byte.
const BINARY_SNIFF: usize = 8000;

const MODE_FILE: u32 = 0o100644;
const MODE_EXEC: u32 = 0o100755;
const MODE_LINK: u32 = 0o120000;

/// What a patch holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub binary: usize,
}

/// One file of a tree as git sees it.
#[derive(Debug, Clone)]
struct Node {
    mode: u32,
    path: PathBuf,
}

/// Write the patch that turns `source` (minus what `ignore` excludes) into `work` to `out`.
pub fn write_patch<W: Write>(
    source: &Path,
    ignore: &DockerIgnore,
    work: &Path,
    mut out: W,
) -> io::Result<Summary> {
    let old = tree(source, Some(ignore))?;
    let new = tree(work, None)?;
    let mut names: Vec<&PathBuf> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let mut sum = Summary::default();
    for name in names {
        match (old.get(name), new.get(name)) {
            (Some(a), Some(b)) if (a.mode == MODE_LINK) != (b.mode == MODE_LINK) => {
                // git shows a change of type as a removal and an addition.
                file_diff(&mut out, name, Some(a), None, &mut sum)?;
                file_diff(&mut out, name, None, Some(b), &mut sum)?;
            }
            (a, b) => file_diff(&mut out, name, a, b, &mut sum)?,
        }
    }
    out.flush()?;
    Ok(sum)
}

/// Every file and symlink under `root` by relative path, never following a symlink.
fn tree(root: &Path, ignore: Option<&DockerIgnore>) -> io::Result<BTreeMap<PathBuf, Node>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&dir))? {
            let entry = entry?;
            let rel = dir.join(entry.file_name());
            if entry.file_name() == ".git" {
                continue;
            }
            let shown = rel.to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(entry.path())?;
            let excluded = ignore.is_some_and(|i| i.is_excluded(&shown));
            let ft = meta.file_type();
            if ft.is_dir() {
                // An excluded folder may hold files a later `!` pattern keeps.
                if !(excluded && ignore.is_some_and(|i| i.can_skip_dir(&shown))) {
                    stack.push(rel);
                }
                continue;
            }
            if excluded {
                continue;
            }
            let mode = if ft.is_symlink() {
                MODE_LINK
            } else if ft.is_file() {
                if meta.permissions().mode() & 0o111 != 0 {
                    MODE_EXEC
                } else {
                    MODE_FILE
                }
            } else {
                continue;
            };
            out.insert(
                rel,
                Node {
                    mode,
                    path: entry.path(),
                },
            );
        }
    }
    Ok(out)
}

/// A file's content as git compares it: a symlink's target, a file's bytes (`None` past
/// [`TEXT_LIMIT`]).
fn content(node: &Node) -> io::Result<Option<Vec<u8>>> {
    if node.mode == MODE_LINK {
        return Ok(Some(
            std::fs::read_link(&node.path)?
                .as_os_str()
                .as_bytes()
                .to_vec(),
        ));
    }
    let file = open_nofollow(&node.path)?;
    let mut buf = Vec::new();
    file.take(TEXT_LIMIT + 1).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= TEXT_LIMIT).then_some(buf))
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
}

/// Whether two large files (past [`TEXT_LIMIT`]) hold the same bytes, read a block at a time.
fn same_bytes(a: &Path, b: &Path) -> io::Result<bool> {
    let (ma, mb) = (std::fs::symlink_metadata(a)?, std::fs::symlink_metadata(b)?);
    if ma.len() != mb.len() {
        return Ok(false);
    }
    let (mut fa, mut fb) = (
        io::BufReader::new(open_nofollow(a)?),
        io::BufReader::new(open_nofollow(b)?),
    );
    let (mut ba, mut bb) = (vec![0; 64 * 1024], vec![0; 64 * 1024]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes[..bytes.len().min(BINARY_SNIFF)].contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

fn file_diff<W: Write>(
    out: &mut W,
    name: &Path,
    a: Option<&Node>,
    b: Option<&Node>,
    sum: &mut Summary,
) -> io::Result<()> {
    let old = a.map(content).transpose()?;
    let new = b.map(content).transpose()?;
    let (old, new) = (old.as_ref(), new.as_ref());
    let same = match (a, b, old, new) {
        (Some(_), Some(_), Some(Some(x)), Some(Some(y))) => x == y,
        (Some(a), Some(b), Some(None), Some(None)) => same_bytes(&a.path, &b.path)?,
        (Some(_), Some(_), _, _) => false,
        _ => false,
    };
    let modes_differ = matches!((a, b), (Some(a), Some(b)) if a.mode != b.mode);
    if same && !modes_differ {
        return Ok(());
    }
    let (na, nb) = (quote("a/", name), quote("b/", name));
    out.write_all(b"diff --git ")?;
    out.write_all(&na)?;
    out.write_all(b" ")?;
    out.write_all(&nb)?;
    out.write_all(b"\n")?;
    match (a, b) {
        (None, Some(b)) => {
            writeln!(out, "new file mode {:o}", b.mode)?;
            sum.added += 1;
        }
        (Some(a), None) => {
            writeln!(out, "deleted file mode {:o}", a.mode)?;
            sum.removed += 1;
        }
        (Some(a), Some(b)) => {
            if a.mode != b.mode {
                writeln!(out, "old mode {:o}\nnew mode {:o}", a.mode, b.mode)?;
            }
            sum.changed += 1;
        }
        (None, None) => return Ok(()),
    }
    if same {
        return Ok(());
    }
    let text_a = old.map_or(Some(""), |c| c.as_ref().and_then(|c| as_text(c)));
    let text_b = new.map_or(Some(""), |c| c.as_ref().and_then(|c| as_text(c)));
    let shown_a: &[u8] = if a.is_some() { &na } else { b"/dev/null" };
    let shown_b: &[u8] = if b.is_some() { &nb } else { b"/dev/null" };
    match (text_a, text_b) {
        (Some(x), Some(y)) => {
            // An empty file added or removed has no hunk, as in git.
            if x.is_empty() && y.is_empty() {
                return Ok(());
            }
            out.write_all(b"--- ")?;
            out.write_all(shown_a)?;
            out.write_all(b"\n+++ ")?;
            out.write_all(shown_b)?;
            out.write_all(b"\n")?;
            let diff = similar::TextDiff::from_lines(x, y);
            for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
                write!(out, "{hunk}")?;
            }
        }
        _ => {
            out.write_all(b"Binary files ")?;
            out.write_all(shown_a)?;
            out.write_all(b" and ")?;
            out.write_all(shown_b)?;
            out.write_all(b" differ\n")?;
            sum.binary += 1;
        }
    }
    Ok(())
}

/// `prefix` + `name` as git writes a path in a patch: in double quotes with C escapes when it
/// holds a quote, a backslash, a control character or a byte past ASCII (`core.quotePath`).
fn quote(prefix: &str, name: &Path) -> Vec<u8> {
    let mut raw = prefix.as_bytes().to_vec();
    raw.extend_from_slice(name.as_os_str().as_bytes());
    if !raw
        .iter()
        .any(|&c| c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c))
    {
        return raw;
    }
    let mut out = vec![b'"'];
    for c in raw {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0b => out.extend_from_slice(b"\\v"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if !(0x20..0x7f).contains(&c) => {
                out.extend_from_slice(format!("\\{c:03o}").as_bytes())
            }
            c => out.push(c),
        }
    }
    out.push(b'"');
    out
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
