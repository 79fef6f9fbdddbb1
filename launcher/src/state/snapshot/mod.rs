//! `state/<slug>/snapshots/latest/`: the agent's home and workspace as tar archives, taken before
//! the agent is replaced by a rebuilt one and when a session ends, so a session can resume.
//!
//! Everything here streams, because the agent decides how large its files are: an archive goes
//! from the engine to a temp file as it arrives ([`Writer`]), checked header by header
//! ([`scan::Scanner`]) and refused the moment it would pass `snapshot_max_bytes`; only a complete
//! snapshot replaces the previous one ([`Writer::commit`]). A restore reads the files back as one
//! merged archive ([`merge_into`]), a block at a time. Blocks of zeros become holes on the host, so
//! a sparse file of the agent stays sparse here (the limit still counts every byte streamed).

mod merge;
pub mod scan;

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

pub use merge::{Carry, merge_into};
use scan::{Entry, ScanError, Scanner};

use super::atomic::{self, AtomicError, TEMP_PREFIX};

/// Default of `snapshot_max_bytes`: far above an agent's transcripts and a working copy, far below
/// what a runaway (or hostile) file could make.
pub const DEFAULT_MAX_BYTES: u64 = 8 << 30;

/// Host blocks of zeros left as holes.
const HOLE: usize = 4096;

/// Where a bottle's snapshots live, and how large one may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    state_dir: PathBuf,
    max_bytes: u64,
}

/// One folder of the agent: `path` is where it lives in the container; `file` (in the snapshot's
/// folder) holds it as the engine exports it (entries named from the folder's own name, e.g.
/// `agent/…` for /home/agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPart {
    pub path: String,
    pub file: String,
    pub bytes: u64,
}

impl SnapshotPart {
    /// The container folder the archive is unpacked into (the parent of `path`).
    pub fn restore_into(&self) -> String {
        restore_into(&self.path)
    }
}

fn restore_into(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".to_owned(),
        Some((parent, _)) => parent.to_owned(),
    }
}

/// `/home/` for `/home/agent`, `/` for `/workspace`: what an entry's path is shown after.
fn shown_prefix(path: &str) -> String {
    let parent = restore_into(path);
    if parent.ends_with('/') {
        parent
    } else {
        format!("{parent}/")
    }
}

/// A saved snapshot: its files, on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub parts: Vec<SnapshotPart>,
}

/// The snapshot went past `snapshot_max_bytes`: what was seen, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// `save` or `restore`.
    pub action: &'static str,
    pub limit: u64,
    /// The entry whose header announced more than the limit leaves, when one did.
    pub culprit: Option<Entry>,
    /// The largest entries seen until then, largest first.
    pub largest: Vec<Entry>,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "failed to {} the agent's snapshot: it is larger than snapshot_max_bytes ({})",
            self.action,
            human(self.limit)
        )?;
        if let Some(e) = &self.culprit {
            write!(
                f,
                "\n  refused at {} ({}, {} bytes), before reading it",
                e.path,
                human(e.size),
                e.size
            )?;
        }
        if !self.largest.is_empty() {
            write!(f, "\n  largest files seen:")?;
            for e in &self.largest {
                write!(f, "\n    {:>10}  {}", human(e.size), e.path)?;
            }
        }
        write!(
            f,
            "\nhint: raise snapshot_max_bytes in config.toml (or ${}), e.g. \"16g\", or remove what the agent does not need",
            crate::config::ENV_SNAPSHOT_MAX_BYTES
        )
    }
}

/// Why a snapshot could not be saved or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    TooLarge(Box<TooLarge>),
    #[error(
        "failed to {action} the agent's snapshot: the archive of {part} is not one the engine writes: {detail}"
    )]
    Archive {
        action: &'static str,
        part: String,
        detail: String,
    },
    #[error("failed to save the agent's snapshot: the archive of {part} stopped before its end")]
    Incomplete { part: String },
    /// Sending the merged snapshot to the engine; the snapshot's own files fail as `State`.
    #[error("failed to send the snapshot: {0}")]
    Send(#[source] io::Error),
    #[error(transparent)]
    State(#[from] AtomicError),
}

impl crate::error::Diagnose for SnapshotError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            // The operator's limit: raise it, or clean the agent's files.
            SnapshotError::TooLarge(_) => crate::error::Kind::Environment,
            SnapshotError::Archive { .. } | SnapshotError::Incomplete { .. } => {
                crate::error::Kind::Engine
            }
            SnapshotError::Send(_) | SnapshotError::State(_) => crate::error::Kind::Internal,
        }
    }
}

impl Store {
    pub fn new(state_dir: &Path, max_bytes: u64) -> Self {
        Self {
            state_dir: state_dir.to_owned(),
            max_bytes,
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn latest(&self) -> PathBuf {
        super::Layout::new(&self.state_dir).latest_snapshot()
    }

    /// Start a new snapshot; the latest one stays until [`Writer::commit`].
    pub fn writer(&self) -> Result<Writer, SnapshotError> {
        let dir = self.latest();
        atomic::ensure_dir_in(&self.state_dir, &dir)?;
        // The agent's home is the operator's business alone: the folder is closed to other users.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(AtomicError::io("restrict", &dir))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Writer {
            store: self.clone(),
            dir,
            generation: format!("{nanos:x}-{:x}", std::process::id()),
            streamed: 0,
            done: Vec::new(),
            current: None,
            largest: Vec::new(),
            committed: false,
        })
    }

    /// The latest snapshot, if a session left one.
    pub fn load(&self) -> Result<Option<Snapshot>, SnapshotError> {
        let dir = self.latest();
        let Some(index) = atomic::read_in(&self.state_dir, &dir.join("index"))? else {
            return Ok(None);
        };
        let mut snap = Snapshot::default();
        for line in String::from_utf8_lossy(&index).lines() {
            let Some((name, path)) = line.split_once(' ') else {
                continue;
            };
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                continue;
            }
            let file = dir.join(name);
            atomic::check_no_symlinks(&self.state_dir, &file)?;
            let meta = std::fs::symlink_metadata(&file).map_err(AtomicError::io("read", &file))?;
            if !meta.is_file() {
                return Err(AtomicError::NotAFile { path: file }.into());
            }
            snap.parts.push(SnapshotPart {
                path: path.to_owned(),
                file: name.to_owned(),
                bytes: meta.len(),
            });
        }
        Ok(Some(snap))
    }

    /// The file of `part`, opened for reading without following a symlink (`export` reads the
    /// workspace's archive through it).
    pub fn open_part(&self, part: &SnapshotPart) -> Result<File, SnapshotError> {
        self.open(part)
    }

    /// The file of `part`, opened for reading without following a symlink.
    fn open(&self, part: &SnapshotPart) -> Result<File, SnapshotError> {
        let path = self.latest().join(&part.file);
        match atomic::open_in(&self.state_dir, &path)? {
            Some(file) => Ok(file),
            None => Err(AtomicError::io("open", &path)(io::ErrorKind::NotFound.into()).into()),
        }
    }
}

/// A snapshot being written: one temp file per part in `snapshots/latest/`, removed unless the
/// whole snapshot is committed.
#[derive(Debug)]
pub struct Writer {
    store: Store,
    dir: PathBuf,
    /// Part of every file name of this snapshot, so its files never replace the latest one's.
    generation: String,
    /// Bytes of the finished parts.
    streamed: u64,
    done: Vec<Written>,
    current: Option<Current>,
    /// The largest entries of the finished parts.
    largest: Vec<Entry>,
    committed: bool,
}

#[derive(Debug)]
struct Written {
    part: SnapshotPart,
    temp: PathBuf,
}

#[derive(Debug)]
struct Current {
    path: String,
    name: String,
    temp: PathBuf,
    out: HoleFile,
    scan: Scanner,
}

impl Writer {
    /// Start the archive of container folder `path`.
    pub fn start_part(&mut self, path: &str) -> Result<(), SnapshotError> {
        self.skip_part();
        let base = path.trim_matches('/').replace('/', "_");
        let name = format!("{base}-{}.tar", self.generation);
        let temp = self.dir.join(format!("{TEMP_PREFIX}{name}"));
        // The agent's files are the operator's alone (the folder is 0700 too).
        let file = atomic::create_new(&temp, 0o600)?;
        let budget = self.store.max_bytes.saturating_sub(self.streamed);
        self.current = Some(Current {
            path: path.to_owned(),
            name,
            temp,
            out: HoleFile::new(file),
            scan: Scanner::new(budget, &shown_prefix(path)),
        });
        Ok(())
    }

    /// The next bytes of the current part's archive.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), SnapshotError> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        if let Err(e) = cur.scan.feed(chunk) {
            return Err(self.refused(e));
        }
        Ok(cur
            .out
            .write(chunk)
            .map_err(AtomicError::io("write", &cur.temp))?)
    }

    /// The current part's archive is complete.
    pub fn finish_part(&mut self) -> Result<(), SnapshotError> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        if !cur.scan.ended() {
            let _ = std::fs::remove_file(&cur.temp);
            return Err(SnapshotError::Incomplete { part: cur.path });
        }
        if let Err(e) = cur.out.finish() {
            let _ = std::fs::remove_file(&cur.temp);
            return Err(AtomicError::io("write", &cur.temp)(e).into());
        }
        self.streamed += cur.scan.seen();
        self.largest = merge_largest(&self.largest, cur.scan.largest());
        self.done.push(Written {
            part: SnapshotPart {
                path: cur.path,
                file: cur.name,
                bytes: cur.scan.seen(),
            },
            temp: cur.temp,
        });
        Ok(())
    }

    /// The current part's folder does not exist in the container: leave it out.
    pub fn skip_part(&mut self) {
        if let Some(cur) = self.current.take() {
            let _ = std::fs::remove_file(&cur.temp);
        }
    }

    /// Replace the latest snapshot with this one: its files are moved into place, then the index
    /// (the one file that names them) is replaced, then the previous snapshot's files are removed.
    /// A crash before the index leaves the previous snapshot whole.
    pub fn commit(mut self) -> Result<Snapshot, SnapshotError> {
        self.skip_part();
        let mut index = String::new();
        for w in &self.done {
            let to = self.dir.join(&w.part.file);
            std::fs::rename(&w.temp, &to).map_err(AtomicError::io("rename into place", &to))?;
            index.push_str(&format!("{} {}\n", w.part.file, w.part.path));
        }
        atomic::sync_dir(&self.dir)?;
        atomic::write_atomic_in(
            &self.store.state_dir,
            &self.dir.join("index"),
            index.as_bytes(),
            atomic::Overwrite::Replace,
        )?;
        self.committed = true;
        let snap = Snapshot {
            parts: self.done.iter().map(|w| w.part.clone()).collect(),
        };
        // One launcher per bottle: whatever the index does not name is the previous snapshot, or
        // what a crashed launcher left.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name != "index" && !snap.parts.iter().any(|p| p.file == name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(snap)
    }

    fn refused(&self, e: ScanError) -> SnapshotError {
        let (part, largest) = match &self.current {
            Some(cur) => (
                cur.path.clone(),
                merge_largest(&self.largest, cur.scan.largest()),
            ),
            None => (String::new(), self.largest.clone()),
        };
        refusal("save", self.store.max_bytes, &part, largest, e)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        self.skip_part();
        for w in &self.done {
            let _ = std::fs::remove_file(&w.temp);
        }
    }
}

/// A [`ScanError`] as the operator reads it.
fn refusal(
    action: &'static str,
    limit: u64,
    part: &str,
    largest: Vec<Entry>,
    e: ScanError,
) -> SnapshotError {
    match e {
        ScanError::OverBudget { culprit } => SnapshotError::TooLarge(Box::new(TooLarge {
            action,
            limit,
            culprit,
            largest,
        })),
        other => SnapshotError::Archive {
            action,
            part: part.to_owned(),
            detail: other.to_string(),
        },
    }
}

fn merge_largest(a: &[Entry], b: &[Entry]) -> Vec<Entry> {
    let mut all: Vec<Entry> = a.iter().chain(b).cloned().collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.size));
    all.truncate(scan::LARGEST);
    all
}

/// A file written with a hole wherever a whole aligned block is zeros (blocks are judged whole,
/// however the stream cuts them).
#[derive(Debug)]
struct HoleFile {
    file: File,
    /// Bytes placed in the file so far (written or left as holes); always a block boundary.
    len: u64,
    /// The start of a block still coming.
    pending: Vec<u8>,
}

impl HoleFile {
    fn new(file: File) -> Self {
        Self {
            file,
            len: 0,
            pending: Vec::with_capacity(HOLE),
        }
    }

    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        if !self.pending.is_empty() {
            let n = (HOLE - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.pending.len() < HOLE {
                return Ok(());
            }
            let block = std::mem::replace(&mut self.pending, Vec::with_capacity(HOLE));
            self.put(&block)?;
        }
        let whole = data.len() - data.len() % HOLE;
        self.put(&data[..whole])?;
        self.pending.extend_from_slice(&data[whole..]);
        Ok(())
    }

    /// Place whole blocks: runs of data between zero blocks go out in one write each.
    fn put(&mut self, blocks: &[u8]) -> io::Result<()> {
        let mut run_start = 0;
        for (i, block) in blocks.chunks(HOLE).enumerate() {
            if is_zero(block) {
                self.write_run(&blocks[run_start..i * HOLE], run_start)?;
                run_start = (i + 1) * HOLE;
            }
        }
        self.write_run(&blocks[run_start..], run_start)?;
        self.len += blocks.len() as u64;
        Ok(())
    }

    fn write_run(&self, run: &[u8], at: usize) -> io::Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(run, self.len + at as u64)
    }

    /// Write the last partial block, extend the file over a trailing hole, make it durable.
    fn finish(mut self) -> io::Result<()> {
        let rest = std::mem::take(&mut self.pending);
        if !is_zero(&rest) {
            self.file.write_all_at(&rest, self.len)?;
        }
        self.len += rest.len() as u64;
        self.file.set_len(self.len)?;
        self.file.sync_all()
    }
}

fn is_zero(block: &[u8]) -> bool {
    block.iter().fold(0u8, |acc, &b| acc | b) == 0
}

/// `8 GiB`, `512 MiB`, `100 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut value = bytes as f64;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests;
