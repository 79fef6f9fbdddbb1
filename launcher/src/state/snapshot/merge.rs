//! A snapshot's parts as one archive to unpack at `/`, written to any sink a block at a time, so
//! one engine call restores every folder (each call costs a mount of the container's file system)
//! and memory does not grow with the snapshot.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use super::scan::{Entry, Scanner};
use super::{Snapshot, SnapshotError, Store, refusal, shown_prefix};

/// Write every part of `snap` into `out` as one archive to unpack at `/`. Each entry's path is
/// prefixed with its part's [`super::SnapshotPart::restore_into`], and so is a hard link's target
/// (a path inside the archive); a symlink's target is kept as it is. PAX records other than the
/// path, the link path and the size (all three rewritten here) are carried over: xattrs,
/// sub-second times.
///
/// The files are read through the same checks as when they were saved (the limit, no sparse
/// entries, bounded extension records), so a restore never writes more than the files hold.
pub fn merge_into<W: Write>(store: &Store, snap: &Snapshot, out: W) -> Result<W, SnapshotError> {
    let mut out = tar::Builder::new(out);
    let mut read: u64 = 0;
    for part in &snap.parts {
        let file = store.open(part)?;
        let mut scan = Scanner::new(
            store.max_bytes.saturating_sub(read),
            &shown_prefix(&part.path),
        );
        let checked = Checked::new(io::BufReader::with_capacity(64 * 1024, file), |bytes| {
            scan.feed(bytes)
        });
        let mut archive = tar::Archive::new(checked);
        let result = copy_entries(&mut archive, &mut out, &part.restore_into());
        if let Some(e) = archive.into_inner().refused {
            let largest: Vec<Entry> = scan.largest().to_vec();
            return Err(refusal("restore", store.max_bytes, &part.path, largest, e));
        }
        result.map_err(|e| SnapshotError::Archive {
            action: "restore",
            part: part.path.clone(),
            detail: e.to_string(),
        })?;
        read += scan.seen();
    }
    out.into_inner().map_err(SnapshotError::Send)
}

fn copy_entries<R: Read, W: Write>(
    archive: &mut tar::Archive<R>,
    out: &mut tar::Builder<W>,
    restore_into: &str,
) -> io::Result<()> {
    let prefix = PathBuf::from(restore_into.trim_matches('/'));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = prefix.join(entry.path()?);
        let mut header = entry.header().clone();
        header.set_size(entry.size());
        let pax: Vec<(String, Vec<u8>)> = match entry.pax_extensions()? {
            Some(records) => records
                .filter_map(Result::ok)
                .filter_map(|r| Some((r.key().ok()?.to_owned(), r.value_bytes().to_vec())))
                .filter(|(k, _)| !matches!(k.as_str(), "path" | "linkpath" | "size"))
                .collect(),
            None => Vec::new(),
        };
        if !pax.is_empty() {
            out.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        match header.entry_type() {
            tar::EntryType::Link | tar::EntryType::Symlink => {
                let target = entry.link_name()?.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("link {} has no target", path.display()),
                    )
                })?;
                let target = if header.entry_type() == tar::EntryType::Link {
                    prefix.join(target)
                } else {
                    target.into_owned()
                };
                out.append_link(&mut header, &path, &target)?;
            }
            _ => out.append_data(&mut header, &path, &mut entry)?,
        }
    }
    Ok(())
}

/// A reader that shows every byte it reads to `check` (a [`Scanner`] on a restore, the
/// snapshot's writer on a carry) and fails the read `check` refuses, and every read after it;
/// the refusal is kept in `refused` for the caller to report.
struct Checked<R, F, E> {
    inner: R,
    check: F,
    refused: Option<E>,
}

impl<R, F, E> Checked<R, F, E>
where
    F: FnMut(&[u8]) -> Result<(), E>,
{
    fn new(inner: R, check: F) -> Self {
        Self {
            inner,
            check,
            refused: None,
        }
    }
}

impl<R, F, E> Read for Checked<R, F, E>
where
    R: Read,
    F: FnMut(&[u8]) -> Result<(), E>,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.refused.is_some() {
            return Err(io::Error::other("the snapshot was refused"));
        }
        let n = self.inner.read(buf)?;
        if let Err(e) = (self.check)(&buf[..n]) {
            self.refused = Some(e);
            return Err(io::Error::other("the snapshot was refused"));
        }
        Ok(n)
    }
}

/// A snapshot saved and, from the same bytes as they arrive, the archive a restore of it would
/// unpack at `/` ([`merge_into`]'s output) written to `out`: a swap copies the stopped agent's
/// folders into its successor in one pass instead of saving them and reading them back.
///
/// The snapshot decides: every byte goes through [`Writer::write`](super::Writer::write) (its scan and limit) before
/// the restore's archive sees it, so nothing the snapshot refuses reaches `out`. A failure on the
/// restore's side (`out`, or an archive the tar reader cannot rewrite) stops only that side: the
/// snapshot is still saved whole, since the agent's files may exist nowhere else.
pub struct Carry<W: Write> {
    writer: super::Writer,
    out: Option<tar::Builder<W>>,
    restore_failed: Option<io::Error>,
}

impl<W: Write> std::fmt::Debug for Carry<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Carry")
            .field("writer", &self.writer)
            .field("restoring", &self.out.is_some())
            .field("restore_failed", &self.restore_failed)
            .finish()
    }
}

impl<W: Write> Carry<W> {
    pub fn new(store: &Store, out: W) -> Result<Self, SnapshotError> {
        Ok(Self {
            writer: store.writer()?,
            out: Some(tar::Builder::new(out)),
            restore_failed: None,
        })
    }

    /// Carry the engine's archive of container folder `path`, read from `input` to its end. Then
    /// [`Carry::finish_part`], or [`Carry::skip_part`] when the folder turned out to be missing.
    pub fn part<R: Read>(&mut self, path: &str, input: R) -> Result<(), SnapshotError> {
        self.writer.start_part(path)?;
        // Every byte goes to the snapshot's writer before it is passed on.
        let writer = &mut self.writer;
        let mut tee = Checked::new(input, |bytes| writer.write(bytes));
        if let Some(out) = self.out.as_mut() {
            let mut archive = tar::Archive::new(&mut tee);
            let copied = copy_entries(&mut archive, out, &super::restore_into(path));
            if let Some(e) = tee.refused.take() {
                return Err(e);
            }
            if let Err(e) = copied {
                self.out = None;
                self.restore_failed = Some(e);
            }
        }
        // The tar reader stops at the end blocks; the snapshot keeps the engine's archive whole.
        io::copy(&mut tee, &mut io::sink()).map_err(|source| match tee.refused.take() {
            Some(e) => e,
            None => SnapshotError::Archive {
                action: "save",
                part: path.to_owned(),
                detail: source.to_string(),
            },
        })?;
        Ok(())
    }

    pub fn finish_part(&mut self) -> Result<(), SnapshotError> {
        self.writer.finish_part()
    }

    pub fn skip_part(&mut self) {
        self.writer.skip_part();
    }

    /// Commit the snapshot (it replaces the latest one) and end the restore's archive. The
    /// snapshot's failure comes first: without it nothing may be restored.
    pub fn finish(self) -> Result<(Snapshot, io::Result<W>), SnapshotError> {
        let snap = self.writer.commit()?;
        let restored = match (self.out, self.restore_failed) {
            (Some(out), None) => out.into_inner(),
            (_, Some(e)) => Err(e),
            (None, None) => Err(io::Error::other("the restore stopped")),
        };
        Ok((snap, restored))
    }
}
