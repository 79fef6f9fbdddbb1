//! Copies in and out of containers through the engine's archive API: the agent's snapshot and
//! its restore, and one file read out of an image. Each is streamed and bounded: what the agent
//! (or an image it shaped) holds never decides how much memory the launcher takes.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tokio::sync::mpsc;

use super::containers::remove;
use super::engine_err;
use crate::backend::BackendError;
use crate::state::snapshot::scan::{self, Scanner};
use crate::state::snapshot::{Carry, Snapshot, SnapshotError, Store};

/// Largest file [`read_image_file`] reads (the image's trust bundle): Debian's is 210 KiB, the
/// largest distributions' stay under 1 MiB.
pub const MAX_IMAGE_FILE: u64 = 4 << 20;
/// Symlinks [`read_image_file`] follows from the path it was asked for.
const MAX_LINKS: usize = 8;
/// Chunks in flight between the engine and the snapshot's file (each at most a read buffer).
const CHANNEL_CHUNKS: usize = 16;
/// Bytes per chunk sent to the engine in a restore.
const UPLOAD_CHUNK: usize = 256 * 1024;

/// The file at `path` in `image` (a created, never started, container is copied from and removed);
/// `None` when the image has no such file. A symlink is followed (at most [`MAX_LINKS`], resolved
/// inside the image); anything but a regular file of at most [`MAX_IMAGE_FILE`] bytes is refused,
/// a larger one at its header, before its data is read.
pub async fn read_image_file(
    docker: &Docker,
    image: &str,
    path: &str,
    labels: HashMap<String, String>,
) -> Result<Option<Vec<u8>>, BackendError> {
    let id = super::probe::create_probe(docker, image, labels).await?;
    let result = read_following(docker, &id, image, path).await;
    let _ = remove(docker, &id).await;
    result
}

async fn read_following(
    docker: &Docker,
    container: &str,
    image: &str,
    path: &str,
) -> Result<Option<Vec<u8>>, BackendError> {
    let refused = |at: &str, problem: String| BackendError::ImageFile {
        image: image.to_string(),
        path: path.to_string(),
        problem: if at == path {
            problem
        } else {
            format!(
                "{} (reached through a symlink): {problem}",
                scan::show_path(at.as_bytes())
            )
        },
    };
    let mut at = path.to_string();
    for _ in 0..=MAX_LINKS {
        let opts = DownloadFromContainerOptions { path: at.clone() };
        let stream = docker.download_from_container(container, Some(opts));
        match read_one(stream, MAX_IMAGE_FILE).await {
            Ok(Found::File(bytes)) => return Ok(Some(bytes)),
            Ok(Found::Missing) => return Ok(None),
            Ok(Found::Link(target)) => at = resolve_link(&at, &target),
            Err(Probe::Engine(e)) => {
                return Err(engine_err("copy out of", &format!("{image}:{at}"), e));
            }
            Err(Probe::Refused(problem)) => return Err(refused(&at, problem)),
        }
    }
    Err(refused(
        &at,
        format!("more than {MAX_LINKS} symlinks in a row"),
    ))
}

/// What the engine's archive of one path held.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    File(Vec<u8>),
    /// A symlink, with its target (the engine does not follow the last component).
    Link(String),
    Missing,
}

#[derive(Debug)]
pub(crate) enum Probe {
    Engine(bollard::errors::Error),
    Refused(String),
}

/// Read the engine's archive of one path: a regular file of at most `max` bytes, or a symlink.
/// The stream is checked as it arrives ([`Scanner`]) and dropped at the first header that
/// announces more, so nothing past `max` (plus the archive's own headers) is ever read.
pub(crate) async fn read_one<S>(stream: S, max: u64) -> Result<Found, Probe>
where
    S: Stream<Item = Result<Bytes, bollard::errors::Error>>,
{
    // Room for the headers around one file: its own, a PAX record, the end blocks.
    let mut scanner = Scanner::new(max + 64 * 1024, "");
    let too_large = |size: u64| {
        Probe::Refused(format!(
            "it is {size} bytes, more than the {max} a trust bundle may be"
        ))
    };
    let mut tar = Vec::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if let Err(e) = scanner.feed(&bytes) {
                    return Err(match e {
                        scan::ScanError::OverBudget { culprit: Some(c) } => too_large(c.size),
                        scan::ScanError::OverBudget { culprit: None } => {
                            Probe::Refused(format!("its archive passes {max} bytes"))
                        }
                        other => Probe::Refused(other.to_string()),
                    });
                }
                tar.extend_from_slice(&bytes);
                if scanner.ended() {
                    break;
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(Found::Missing),
            Err(e) => return Err(Probe::Engine(e)),
        }
    }
    let bad = |e: std::io::Error| Probe::Refused(format!("its archive cannot be read: {e}"));
    let mut archive = tar::Archive::new(tar.as_slice());
    let Some(entry) = archive.entries().map_err(bad)?.next() else {
        return Ok(Found::Missing);
    };
    let mut entry = entry.map_err(bad)?;
    let kind = entry.header().entry_type();
    if kind.is_symlink() {
        let target = entry
            .link_name()
            .map_err(bad)?
            .ok_or_else(|| Probe::Refused("a symlink without a target".to_owned()))?;
        return Ok(Found::Link(target.to_string_lossy().into_owned()));
    }
    if !kind.is_file() {
        return Err(Probe::Refused(format!(
            "it is not a regular file but {}",
            kind_name(kind)
        )));
    }
    if entry.size() > max {
        return Err(too_large(entry.size()));
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut out).map_err(bad)?;
    Ok(Found::File(out))
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Char => "a character device",
        tar::EntryType::Block => "a block device",
        tar::EntryType::Directory => "a folder",
        tar::EntryType::Fifo => "a FIFO",
        tar::EntryType::Link => "a hard link",
        _ => "an entry of another type",
    }
}

/// Where symlink `link` (at `at`) points, as an absolute path in the image: a relative target is
/// taken from the link's folder, `.` and `..` are resolved by name (never above `/`); the engine
/// resolves the folders on the way inside the container's file system.
fn resolve_link(at: &str, target: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if !target.starts_with('/') {
        parts.extend(at.split('/').filter(|p| !p.is_empty()));
        parts.pop();
    }
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// One message to the task that writes a snapshot to disk.
enum Feed {
    Part(String),
    Data(Bytes),
    /// The folder is not in the container.
    Missing,
    End,
    /// Every part was fed: the snapshot may replace the latest one.
    Commit,
}

/// Copy each of `paths` out of container `name` into a new snapshot of `store`, streamed to disk
/// and checked as it arrives; a folder the image lacks is skipped. Only a complete snapshot within
/// the store's limit replaces the latest one; on any failure its files are removed, the latest
/// snapshot is left as it was, and the engine's stream is dropped at once.
pub async fn snapshot(
    docker: &Docker,
    name: &str,
    paths: &[String],
    store: &Store,
) -> Result<Snapshot, BackendError> {
    must_exist(docker, name).await?;
    let (tx, mut rx) = mpsc::channel::<Feed>(CHANNEL_CHUNKS);
    let store = store.clone();
    // Files are written (and fsynced) off the async threads.
    // `Ok(None)`: the feed stopped before the end, nothing was committed.
    let writer = tokio::task::spawn_blocking(move || -> Result<Option<Snapshot>, SnapshotError> {
        let mut w = store.writer()?;
        while let Some(feed) = rx.blocking_recv() {
            match feed {
                Feed::Part(path) => w.start_part(&path)?,
                Feed::Data(bytes) => w.write(&bytes)?,
                Feed::Missing => w.skip_part(),
                Feed::End => w.finish_part()?,
                Feed::Commit => return w.commit().map(Some),
            }
        }
        Ok(None)
    });
    let fed = feed_and_commit(docker, name, paths, tx).await;
    let written = writer.await.map_err(|e| BackendError::Engine {
        action: "snapshot",
        object: name.to_string(),
        detail: format!("the writer task failed: {e}"),
    })?;
    verdict(name, fed, written)
}

/// A missing container answers every path with 404, which would save an empty snapshot: ask
/// for it first.
async fn must_exist(docker: &Docker, name: &str) -> Result<(), BackendError> {
    docker
        .inspect_container(name, None)
        .await
        .map(drop)
        .map_err(|e| engine_err("snapshot", name, e))
}

/// [`feed_parts`], then tell the writer to commit; dropping `tx` tells it the feed is over.
async fn feed_and_commit(
    docker: &Docker,
    name: &str,
    paths: &[String],
    tx: mpsc::Sender<Feed>,
) -> Result<(), BackendError> {
    feed_parts(docker, name, paths, &tx).await?;
    tx.send(Feed::Commit).await.map_err(|_| refused(name))
}

/// What became of the snapshot of `name`, from the feed's result and the writer's. The writer's
/// refusal explains why the feed stopped; an engine error stands on its own, and the writer
/// (told nothing more) must not have committed anything then.
fn verdict<T>(
    name: &str,
    fed: Result<(), BackendError>,
    written: Result<Option<T>, SnapshotError>,
) -> Result<T, BackendError> {
    match (fed, written) {
        (Ok(()), Ok(Some(done))) => Ok(done),
        (_, Err(e)) => Err(BackendError::Snapshot(e)),
        (Err(e), Ok(_)) => Err(e),
        (Ok(()), Ok(None)) => Err(BackendError::Engine {
            action: "snapshot",
            object: name.to_string(),
            detail: "the snapshot's writer stopped before the end".to_string(),
        }),
    }
}

/// Stream each path's archive into `tx`, in order. Stops at the first engine error, or when the
/// writer hung up (it refused the snapshot); dropping the engine's stream ends its copy.
///
/// One download at a time, each asked for once the one before was read to its end: the engine
/// (20.10, `daemon/archive.go`) holds the container's lock for the whole of an archive call, so
/// overlapping calls share nothing, and two asked for at once deadlock whenever the engine
/// serves the later one first: its tar stalls once the pipe to the unread response is full,
/// holding the lock the earlier one, which this reads first, waits for (seen: a 2 MiB workspace
/// stalled every snapshot until the client's 120 s timeout).
async fn feed_parts(
    docker: &Docker,
    name: &str,
    paths: &[String],
    tx: &mpsc::Sender<Feed>,
) -> Result<(), BackendError> {
    let hung_up = || refused(name);
    for path in paths {
        tx.send(Feed::Part(path.clone()))
            .await
            .map_err(|_| hung_up())?;
        let opts = DownloadFromContainerOptions { path: path.clone() };
        let mut stream = std::pin::pin!(docker.download_from_container(name, Some(opts)));
        let mut end = Feed::End;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => tx.send(Feed::Data(bytes)).await.map_err(|_| hung_up())?,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    end = Feed::Missing;
                    break;
                }
                Err(e) => {
                    return Err(engine_err("copy out of", &format!("{name}:{path}"), e));
                }
            }
        }
        tx.send(end).await.map_err(|_| hung_up())?;
    }
    Ok(())
}

/// How [`carry_over`] failed.
#[derive(Debug)]
pub enum CarryError {
    /// No snapshot was saved: the stopped agent's files are still only in it.
    Snapshot(BackendError),
    /// The snapshot was saved (it is the latest); the successor could not be filled.
    Restore(BackendError),
}

/// Copy each of `paths` out of the stopped container `from` into a new snapshot of `store` and,
/// from the same bytes as they arrive, into the created container `to` (one archive unpacked at
/// `/`, as [`restore`] would unpack the saved snapshot): a swap reads the agent's files once and
/// never waits for them on disk. The snapshot's checks decide what reaches `to`; a refused
/// snapshot fails the upload too, so the engine does not unpack a cut archive as complete.
pub async fn carry_over(
    docker: &Docker,
    from: &str,
    to: &str,
    paths: &[String],
    store: &Store,
) -> Result<Snapshot, CarryError> {
    must_exist(docker, from)
        .await
        .map_err(CarryError::Snapshot)?;
    let (tx, rx) = mpsc::channel::<Feed>(CHANNEL_CHUNKS);
    let (up_tx, up_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = store.clone();
    let carrier = tokio::task::spawn_blocking(move || carry_feed(rx, &store, up_tx));
    let body = futures_util::stream::unfold(up_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let opts = UploadToContainerOptions {
        path: "/".to_string(),
        ..Default::default()
    };
    let (fed, uploaded) = tokio::join!(
        feed_and_commit(docker, from, paths, tx),
        docker.upload_to_container(to, Some(opts), bollard::body_try_stream(body))
    );
    let carried = carrier.await.map_err(|e| {
        CarryError::Snapshot(BackendError::Engine {
            action: "snapshot",
            object: from.to_string(),
            detail: format!("the carrying task failed: {e}"),
        })
    })?;
    let (snap, restored) = verdict(from, fed, carried).map_err(CarryError::Snapshot)?;
    // The engine's answer first: a restore side that could not send means it stopped reading.
    match (uploaded, restored) {
        (Ok(()), Ok(())) => Ok(snap),
        (Err(e), _) => Err(CarryError::Restore(engine_err("restore into", to, e))),
        (Ok(()), Err(e)) => Err(CarryError::Restore(BackendError::Engine {
            action: "restore into",
            object: to.to_string(),
            detail: e.to_string(),
        })),
    }
}

fn refused(name: &str) -> BackendError {
    BackendError::Engine {
        action: "snapshot",
        object: name.to_string(),
        detail: "the snapshot was refused".to_string(),
    }
}

/// The blocking side of [`carry_over`]: each part's feed through a [`Carry`] into the snapshot's
/// files and the upload. `Ok(None)`: the feed stopped before the end, nothing was committed.
#[allow(clippy::type_complexity)]
fn carry_feed(
    mut rx: mpsc::Receiver<Feed>,
    store: &Store,
    up_tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<Option<(Snapshot, std::io::Result<()>)>, SnapshotError> {
    let out = ChunkSender {
        tx: up_tx.clone(),
        buf: Vec::with_capacity(UPLOAD_CHUNK),
    };
    let fail_upload = || {
        let _ = up_tx.blocking_send(Err(std::io::Error::other("the snapshot was refused")));
    };
    let mut carry = Carry::new(store, out)?;
    while let Some(feed) = rx.blocking_recv() {
        match feed {
            Feed::Part(path) => {
                let mut part = PartReader {
                    rx: &mut rx,
                    chunk: Bytes::new(),
                    end: None,
                };
                if let Err(e) = carry.part(&path, &mut part) {
                    fail_upload();
                    return Err(e);
                }
                match part.end {
                    Some(Feed::Missing) => carry.skip_part(),
                    Some(_) => {
                        if let Err(e) = carry.finish_part() {
                            fail_upload();
                            return Err(e);
                        }
                    }
                    // The feed stopped inside the part.
                    None => {
                        fail_upload();
                        return Ok(None);
                    }
                }
            }
            Feed::Commit => {
                let (snap, out) = match carry.finish() {
                    Ok(done) => done,
                    Err(e) => {
                        fail_upload();
                        return Err(e);
                    }
                };
                let restored = out.and_then(|mut out| out.flush_chunk());
                if restored.is_err() {
                    fail_upload();
                }
                return Ok(Some((snap, restored)));
            }
            Feed::Data(_) | Feed::Missing | Feed::End => {}
        }
    }
    fail_upload();
    Ok(None)
}

/// One part's bytes from the feed, as a reader: it ends at the part's `End` or `Missing` (kept in
/// `end`), or early when the feed stops.
struct PartReader<'a> {
    rx: &'a mut mpsc::Receiver<Feed>,
    chunk: Bytes,
    end: Option<Feed>,
}

impl std::io::Read for PartReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            if self.end.is_some() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Feed::Data(bytes)) => self.chunk = bytes,
                Some(end @ (Feed::End | Feed::Missing)) => self.end = Some(end),
                // The feed stopped inside the part (`end` stays `None`): the engine's error, or
                // the snapshot's refusal, says why.
                Some(Feed::Part(_) | Feed::Commit) | None => return Ok(0),
            }
        }
        let n = self.chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

/// Unpack a snapshot into a created (not yet started) container, in one call: each call mounts
/// the container's file system, so the parts go in as one archive unpacked at `/`, merged from
/// the files as the engine reads it.
pub async fn restore(
    docker: &Docker,
    name: &str,
    store: &Store,
    snap: &Snapshot,
) -> Result<(), BackendError> {
    if snap.parts.is_empty() {
        return Ok(());
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let (store, snap) = (store.clone(), snap.clone());
    let merger = tokio::task::spawn_blocking(move || {
        let out = ChunkSender {
            tx: tx.clone(),
            buf: Vec::with_capacity(UPLOAD_CHUNK),
        };
        match crate::state::snapshot::merge_into(&store, &snap, out) {
            Ok(mut out) => out.flush_chunk().map_err(SnapshotError::Send),
            Err(e) => {
                // Fail the upload too, so the engine does not unpack a cut archive as complete.
                let _ = tx.blocking_send(Err(std::io::Error::other("the snapshot was refused")));
                Err(e)
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let opts = UploadToContainerOptions {
        path: "/".to_string(),
        ..Default::default()
    };
    let uploaded = docker
        .upload_to_container(name, Some(opts), bollard::body_try_stream(body))
        .await;
    let merged = merger.await.map_err(|e| BackendError::Engine {
        action: "restore into",
        object: name.to_string(),
        detail: format!("the snapshot reader failed: {e}"),
    })?;
    // A reader that could not send means the engine stopped reading: its error says why.
    match (uploaded, merged) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Err(SnapshotError::Send(_)) | Ok(())) => Err(engine_err("restore into", name, e)),
        (_, Err(e)) => Err(BackendError::Snapshot(e)),
    }
}

/// A writer that hands the engine's upload [`UPLOAD_CHUNK`]-byte chunks, waiting while the
/// engine is behind.
struct ChunkSender {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChunkSender {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(UPLOAD_CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| std::io::Error::other("the engine stopped reading the snapshot"))
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(UPLOAD_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == UPLOAD_CHUNK {
            self.flush_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn entry(kind: tar::EntryType, path: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).expect("append");
        b.into_inner().expect("tar")
    }

    fn chunks(tar: Vec<u8>) -> impl Stream<Item = Result<Bytes, bollard::errors::Error>> {
        let pieces: Vec<_> = tar
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures_util::stream::iter(pieces)
    }

    #[tokio::test]
    async fn a_bundle_within_the_limit_is_read_and_a_symlink_is_reported() {
        let pem = b"-----BEGIN CERTIFICATE-----\n".repeat(100);
        let tar = entry(tar::EntryType::Regular, "ca-certificates.crt", &pem);
        let found = read_one(chunks(tar), MAX_IMAGE_FILE).await.expect("read");
        assert_eq!(found, Found::File(pem));

        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "ca-certificates.crt", "../../pki/tls/cert.pem")
            .expect("link");
        let found = read_one(chunks(b.into_inner().expect("tar")), MAX_IMAGE_FILE)
            .await
            .expect("read");
        assert_eq!(found, Found::Link("../../pki/tls/cert.pem".into()));
        assert_eq!(
            resolve_link(
                "/etc/ssl/certs/ca-certificates.crt",
                "../../pki/tls/cert.pem"
            ),
            "/etc/pki/tls/cert.pem"
        );
        assert_eq!(resolve_link("/etc/a", "/../../dev/zero"), "/dev/zero");
    }

    #[tokio::test]
    async fn an_oversized_bundle_is_refused_at_its_header_without_reading_on() {
        // A header announcing 1 TiB, then zeros for ever: the reader stops at the header.
        let mut h = tar::Header::new_gnu();
        h.set_path("ca-certificates.crt").expect("path");
        h.set_mode(0o644);
        h.set_size(1 << 40);
        h.set_cksum();
        let pulled = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&pulled);
        let endless = futures_util::stream::iter([Ok(Bytes::copy_from_slice(h.as_bytes()))])
            .chain(futures_util::stream::repeat_with(|| {
                Ok(Bytes::from(vec![0u8; 64 * 1024]))
            }))
            .inspect(move |c| {
                if let Ok(c) = c {
                    counter.fetch_add(c.len() as u64, Ordering::Relaxed);
                }
            });
        let err = read_one(endless, MAX_IMAGE_FILE)
            .await
            .expect_err("refused");
        let Probe::Refused(problem) = err else {
            panic!("expected a refusal, got {err:?}");
        };
        assert!(problem.contains("1099511627776 bytes"), "{problem}");
        assert_eq!(pulled.load(Ordering::Relaxed), 512);

        // Just over the limit, in a stream that really holds it: refused too.
        let big = vec![b'x'; usize::try_from(MAX_IMAGE_FILE).expect("fits") + 1];
        let tar = entry(tar::EntryType::Regular, "ca-certificates.crt", &big);
        assert!(matches!(
            read_one(chunks(tar), MAX_IMAGE_FILE).await,
            Err(Probe::Refused(_))
        ));
    }

    #[tokio::test]
    async fn a_device_or_folder_at_the_bundle_path_is_refused() {
        for (kind, name) in [
            (tar::EntryType::Char, "a character device"),
            (tar::EntryType::Directory, "a folder"),
            (tar::EntryType::Fifo, "a FIFO"),
        ] {
            let tar = entry(kind, "ca-certificates.crt", b"");
            let err = read_one(chunks(tar), MAX_IMAGE_FILE)
                .await
                .expect_err("refused");
            assert!(
                matches!(&err, Probe::Refused(p) if p.contains(name)),
                "{err:?}"
            );
        }
    }
}
