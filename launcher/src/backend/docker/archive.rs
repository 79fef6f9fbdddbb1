//! Copies in and out of containers through the engine's archive API: the agent's snapshot and
//! its restore, and one file read out of an image.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, UploadToContainerOptions,
};
use futures_util::StreamExt as _;

use super::containers::remove;
use super::engine_err;
use crate::backend::BackendError;
use crate::state::snapshot::{Snapshot, SnapshotPart};

/// The file at `path` in `image` (a created, never started, container is copied from and removed);
/// `None` when the image has no such file.
pub async fn read_image_file(
    docker: &Docker,
    image: &str,
    path: &str,
    labels: HashMap<String, String>,
) -> Result<Option<Vec<u8>>, BackendError> {
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        labels: Some(labels),
        entrypoint: Some(vec!["/nonexistent".into()]),
        network_disabled: Some(true),
        ..Default::default()
    };
    let created = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(|e| engine_err("create a probe container of", image, e))?;
    let result = download_tar(docker, &created.id, path).await;
    let _ = remove(docker, &created.id).await;
    let Some(tar) = result? else {
        return Ok(None);
    };
    // One regular file (a symlink's target is followed by the engine's copy API).
    let mut archive = tar::Archive::new(tar.as_slice());
    let entries = archive
        .entries()
        .map_err(|e| engine_err_text("read the copy of", path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| engine_err_text("read the copy of", path, e))?;
        if entry.header().entry_type().is_file() {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut out)
                .map_err(|e| engine_err_text("read the copy of", path, e))?;
            return Ok(Some(out));
        }
    }
    Ok(None)
}

fn engine_err_text(action: &'static str, object: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Engine {
        action,
        object: object.to_string(),
        detail: e.to_string(),
    }
}

/// `path` of container `name` as the engine's tar archive; `None` when it does not exist there.
async fn download_tar(
    docker: &Docker,
    name: &str,
    path: &str,
) -> Result<Option<Vec<u8>>, BackendError> {
    let opts = DownloadFromContainerOptions {
        path: path.to_string(),
    };
    let mut stream = docker.download_from_container(name, Some(opts));
    let mut tar = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => tar.extend_from_slice(&bytes),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(engine_err("copy out of", &format!("{name}:{path}"), e)),
        }
    }
    Ok(Some(tar))
}

/// Copy each of `paths` out of a container as a tar archive; a folder the image lacks is skipped.
pub async fn snapshot(
    docker: &Docker,
    name: &str,
    paths: &[String],
) -> Result<Snapshot, BackendError> {
    let tars = paths.iter().map(|path| download_tar(docker, name, path));
    let tars = futures_util::future::try_join_all(tars).await?;
    let parts = paths
        .iter()
        .zip(tars)
        .filter_map(|(path, tar)| {
            tar.map(|tar| SnapshotPart {
                path: path.clone(),
                tar,
            })
        })
        .collect();
    Ok(Snapshot { parts })
}

/// Unpack a snapshot into a created (not yet started) container, in one call: each call mounts
/// the container's file system, so the parts go in as one archive unpacked at `/`.
pub async fn restore(docker: &Docker, name: &str, snap: &Snapshot) -> Result<(), BackendError> {
    if snap.parts.is_empty() {
        return Ok(());
    }
    let merged = snap.merged().map_err(|e| BackendError::Engine {
        action: "restore into",
        object: name.to_string(),
        detail: format!("the snapshot's archives could not be merged: {e}"),
    })?;
    let opts = UploadToContainerOptions {
        path: "/".to_string(),
        ..Default::default()
    };
    docker
        .upload_to_container(name, Some(opts), bollard::body_full(merged.into()))
        .await
        .map_err(|e| engine_err("restore into", name, e))
}
