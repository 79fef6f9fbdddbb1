//! Probes of an image on the engine: a bounded look at some of its paths through a created,
//! never started, container (the image contract's account files and folders; what the launch
//! decides from them is [`crate::prepare`]'s).

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, DownloadFromContainerOptions};
use futures_util::StreamExt as _;

use super::containers::remove;
use super::engine_err;
use crate::backend::{BackendError, EntryKind, FirstEntry};

/// What of an archive's first entry is read beyond its content: PAX or GNU headers before it.
const HEADER_ALLOWANCE: u64 = 64 * 1024;

/// The first entry of each `(path, limit)` of `image`, from one created (never started) container.
pub(super) async fn first_entries(
    docker: &Docker,
    image: &str,
    paths: &[(&str, u64)],
    labels: HashMap<String, String>,
) -> Result<Vec<FirstEntry>, BackendError> {
    let id = create_probe(docker, image, labels).await?;
    let id = id.as_str();
    let reads = paths
        .iter()
        .map(|(path, limit)| first_entry(docker, id, path, *limit));
    let result = futures_util::future::try_join_all(reads).await;
    let _ = remove(docker, id).await;
    result
}

/// A container of `image` that is never started: its entrypoint does not exist and it has no
/// network. The engine creates it (or refuses `host_config`) without running anything of the
/// image.
pub(super) fn probe_body(
    image: &str,
    labels: HashMap<String, String>,
    host_config: Option<HostConfig>,
) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        labels: Some(labels),
        entrypoint: Some(vec!["/nonexistent".into()]),
        network_disabled: Some(true),
        host_config,
        ..Default::default()
    }
}

/// A [`probe_body`] container: what the engine's archive API reads an image's files through.
/// Returns its id; the caller removes it.
pub(super) async fn create_probe(
    docker: &Docker,
    image: &str,
    labels: HashMap<String, String>,
) -> Result<String, BackendError> {
    let body = probe_body(image, labels, None);
    let created = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(|e| engine_err("create a probe container of", image, e))?;
    Ok(created.id)
}

/// The archive of `path` in container `id`, read only as far as its first entry (and, for a
/// regular file of at most `limit` bytes, its content): a home of gigabytes costs a header.
async fn first_entry(
    docker: &Docker,
    id: &str,
    path: &str,
    limit: u64,
) -> Result<FirstEntry, BackendError> {
    let opts = DownloadFromContainerOptions {
        path: path.to_string(),
    };
    let cap = usize::try_from(limit + HEADER_ALLOWANCE).unwrap_or(usize::MAX);
    let mut stream = docker.download_from_container(id, Some(opts));
    let mut tar = Vec::new();
    while tar.len() < cap {
        match stream.next().await {
            None => break,
            Some(Ok(bytes)) => tar.extend_from_slice(&bytes[..bytes.len().min(cap - tar.len())]),
            Some(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })) => return Ok(FirstEntry::Missing),
            Some(Err(e)) => return Err(engine_err("copy out of", &format!("{id}:{path}"), e)),
        }
    }
    drop(stream);
    parse_first(&tar, limit).map_err(|e| BackendError::Engine {
        action: "read the copy of",
        object: path.to_string(),
        detail: e.to_string(),
    })
}

/// The first entry of a (possibly truncated) tar archive.
fn parse_first(tar: &[u8], limit: u64) -> std::io::Result<FirstEntry> {
    let mut archive = tar::Archive::new(tar);
    let Some(entry) = archive.entries()?.next() else {
        return Ok(FirstEntry::Missing);
    };
    let mut entry = entry?;
    let header = entry.header();
    let (kind, uid, gid, size) = (
        header.entry_type(),
        header.uid()?,
        header.gid()?,
        entry.size(),
    );
    let data = if kind.is_file() && size <= limit {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut out)?;
        Some(out)
    } else {
        None
    };
    Ok(FirstEntry::Entry {
        kind: entry_kind(kind),
        uid,
        gid,
        size,
        data,
    })
}

fn entry_kind(kind: tar::EntryType) -> EntryKind {
    match kind {
        k if k.is_file() => EntryKind::File,
        k if k.is_dir() => EntryKind::Dir,
        k if k.is_symlink() => EntryKind::Symlink,
        k if k.is_hard_link() => EntryKind::HardLink,
        _ => EntryKind::Special,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, tar::EntryType, u64, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, kind, uid, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_uid(*uid);
            h.set_gid(*uid);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, name, *data).expect("append");
        }
        tar.into_inner().expect("tar")
    }

    #[test]
    fn a_file_is_read_whole_up_to_the_limit_and_only_sized_beyond() {
        let tar = archive(&[(
            "passwd",
            tar::EntryType::Regular,
            0,
            b"root:x:0:0::/:/bin/sh\n",
        )]);
        assert_eq!(
            parse_first(&tar, 1024).expect("parse"),
            FirstEntry::Entry {
                kind: EntryKind::File,
                uid: 0,
                gid: 0,
                size: 22,
                data: Some(b"root:x:0:0::/:/bin/sh\n".to_vec())
            }
        );
        let big = vec![b'x'; 4096];
        let tar = archive(&[("passwd", tar::EntryType::Regular, 0, &big)]);
        // Cut short, as the bounded download leaves it: the header still tells the size.
        assert!(matches!(
            parse_first(&tar[..1024], 1000).expect("parse"),
            FirstEntry::Entry {
                kind: EntryKind::File,
                size: 4096,
                data: None,
                ..
            }
        ));
    }

    #[test]
    fn a_folder_reports_its_owner_from_its_first_header() {
        let tar = archive(&[
            ("agent/", tar::EntryType::Directory, 1000, b""),
            ("agent/big", tar::EntryType::Regular, 1000, &[0u8; 2048]),
        ]);
        // Only the first header is needed; the rest may be cut off.
        assert!(matches!(
            parse_first(&tar[..600], 0).expect("parse"),
            FirstEntry::Entry {
                kind: EntryKind::Dir,
                uid: 1000,
                gid: 1000,
                ..
            }
        ));
        let link = archive(&[("agent", tar::EntryType::Symlink, 0, b"")]);
        assert!(matches!(
            parse_first(&link, 10).expect("parse"),
            FirstEntry::Entry {
                kind: EntryKind::Symlink,
                data: None,
                ..
            }
        ));
        assert_eq!(parse_first(&[], 0).expect("parse"), FirstEntry::Missing);
    }
}
