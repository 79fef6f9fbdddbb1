//! The image contract on the engine: a bounded look at an image (its account files and the
//! folders the agent must own) through a created, never started, container, and the contract
//! layer when the image needs one (the decision is [`crate::image::contract`]'s).

use std::collections::HashMap;
use std::path::Path;

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, DownloadFromContainerOptions};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::containers::remove;
use super::{DockerBackend, engine_err, images, with_role};
use crate::backend::{BackendError, BuildReport};
use crate::image::contract::{self, ACCOUNT_FILE_LIMIT, FileFact, ImageFacts, PathFact, Verdict};
use crate::plan::BottlePlan;

/// What of an archive's first entry is read beyond its content: PAX or GNU headers before it.
const HEADER_ALLOWANCE: u64 = 64 * 1024;

/// The config of an image that the contract looks at.
#[derive(Debug, Clone, Default)]
pub(super) struct ImageConfig {
    /// The engine's image id (`sha256:…`): what a cached verdict is about.
    pub id: String,
    pub user: String,
    pub env_home: Option<String>,
}

/// The image the agent runs (the image itself, or the contract layer over it), and the lines the
/// operator is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Contracted {
    pub image: String,
    pub notes: Vec<String>,
}

impl DockerBackend {
    /// `base` as an image that keeps the contract: itself, or the contract layer over it (built
    /// when missing, then checked again); an image that cannot be adapted is refused. The verdict
    /// is cached per image id in the bottle's state folder, so a warm start creates no probe.
    pub(super) async fn keep_contract(
        &self,
        plan: &BottlePlan,
        base: &str,
        config: &ImageConfig,
        builds: &mut Vec<BuildReport>,
    ) -> Result<Contracted, BackendError> {
        let slug = &plan.slug;
        let dir = plan.state_dir.join("run").join("image-contract");
        let key: String = config
            .id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let skills = !plan.skills.is_empty();
        let cache = dir.join(format!("{key}{}.json", if skills { "-skills" } else { "" }));
        if let Some(found) = read_cache(&cache)
            && (found.image == base || images::exists(&self.docker, &found.image).await?)
        {
            return Ok(found);
        }
        let labels = with_role(&plan.base_labels(), "probe");
        let refuse = |image: &str, e: contract::ContractError| {
            Self::image_err(
                slug,
                format!(
                    "{image} breaks the image contract (uid {}, home {}) and cannot be adapted: {e}",
                    contract::AGENT_UID,
                    contract::AGENT_HOME
                ),
            )
        };
        let started = std::time::Instant::now();
        let facts = probe(&self.docker, base, config, labels.clone()).await?;
        tracing::debug!(
            image = base,
            ms = started.elapsed().as_millis(),
            "image contract probed"
        );
        let found = match contract::check(&facts, skills).map_err(|e| refuse(base, e))? {
            Verdict::Holds { notes } => Contracted {
                image: base.to_owned(),
                notes,
            },
            Verdict::Adapt(adaptation) => {
                let recipe = contract::contract_layer(slug, base, &config.id, &adaptation)
                    .map_err(|e| Self::image_err(slug, e))?;
                builds.push(images::ensure(&self.docker, &recipe).await?);
                let after = probe(&self.docker, &recipe.tag, config, labels).await?;
                contract::recheck(&after, skills).map_err(|e| refuse(&recipe.tag, e))?;
                let mut notes = adaptation.notes;
                notes.extend(
                    adaptation
                        .changes
                        .iter()
                        .map(|c| format!("adapted as {}: {c}", recipe.tag)),
                );
                Contracted {
                    image: recipe.tag,
                    notes,
                }
            }
        };
        // Only the newest image's verdict is kept.
        let _ = std::fs::remove_dir_all(&dir);
        let written = serde_json::to_vec(&found)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                std::fs::create_dir_all(&dir)?;
                std::fs::write(&cache, bytes)
            });
        if let Err(e) = written {
            tracing::warn!(path = %cache.display(), error = %e, "failed to cache the image contract's verdict");
        }
        Ok(found)
    }
}

fn read_cache(path: &Path) -> Option<Contracted> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The facts of `image`: its account files (at most [`ACCOUNT_FILE_LIMIT`] bytes each) and the
/// owner of each folder the agent must own, read from a created (never started) container.
async fn probe(
    docker: &Docker,
    image: &str,
    config: &ImageConfig,
    labels: HashMap<String, String>,
) -> Result<ImageFacts, BackendError> {
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
    let id = created.id.as_str();
    let [home, claude, workspace] = ImageFacts::dir_paths();
    let read = async {
        let (passwd, group, home, claude, workspace) = futures_util::try_join!(
            first_entry(docker, id, contract::PASSWD, ACCOUNT_FILE_LIMIT),
            first_entry(docker, id, contract::GROUP, ACCOUNT_FILE_LIMIT),
            first_entry(docker, id, home, 0),
            first_entry(docker, id, claude, 0),
            first_entry(docker, id, workspace, 0),
        )?;
        Ok::<_, BackendError>(ImageFacts {
            user: config.user.clone(),
            env_home: config.env_home.clone(),
            passwd: file_fact(passwd),
            group: file_fact(group),
            dirs: [path_fact(&home), path_fact(&claude), path_fact(&workspace)],
        })
    };
    let result = read.await;
    let _ = remove(docker, id).await;
    result
}

/// The first entry of the engine's archive of one path.
#[derive(Debug)]
enum First {
    Missing,
    Entry {
        kind: tar::EntryType,
        uid: u64,
        gid: u64,
        size: u64,
        /// The content of a regular file of at most the limit asked for.
        data: Option<Vec<u8>>,
    },
}

/// The archive of `path` in container `id`, read only as far as its first entry (and, for a
/// regular file of at most `limit` bytes, its content): a home of gigabytes costs a header.
async fn first_entry(
    docker: &Docker,
    id: &str,
    path: &str,
    limit: u64,
) -> Result<First, BackendError> {
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
            })) => return Ok(First::Missing),
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
fn parse_first(tar: &[u8], limit: u64) -> std::io::Result<First> {
    let mut archive = tar::Archive::new(tar);
    let Some(entry) = archive.entries()?.next() else {
        return Ok(First::Missing);
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
    Ok(First::Entry {
        kind,
        uid,
        gid,
        size,
        data,
    })
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        k if k.is_file() => "file",
        k if k.is_dir() => "folder",
        k if k.is_symlink() => "symlink",
        k if k.is_hard_link() => "hard link",
        _ => "special file",
    }
}

fn file_fact(first: First) -> FileFact {
    match first {
        First::Missing => FileFact::Missing,
        First::Entry {
            data: Some(data), ..
        } => FileFact::Text(data),
        First::Entry { kind, size, .. } if kind.is_file() => FileFact::TooLarge { size },
        First::Entry { kind, .. } => FileFact::NotAFile {
            kind: kind_name(kind),
        },
    }
}

fn path_fact(first: &First) -> PathFact {
    match first {
        First::Missing => PathFact::Missing,
        First::Entry { kind, uid, gid, .. } if kind.is_dir() => PathFact::Dir {
            uid: *uid,
            gid: *gid,
        },
        First::Entry { kind, .. } => PathFact::Other {
            kind: kind_name(*kind),
        },
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
            file_fact(parse_first(&tar, 1024).expect("parse")),
            FileFact::Text(b"root:x:0:0::/:/bin/sh\n".to_vec())
        );
        let big = vec![b'x'; 4096];
        let tar = archive(&[("passwd", tar::EntryType::Regular, 0, &big)]);
        // Cut short, as the bounded download leaves it: the header still tells the size.
        assert_eq!(
            file_fact(parse_first(&tar[..1024], 1000).expect("parse")),
            FileFact::TooLarge { size: 4096 }
        );
    }

    #[test]
    fn a_folder_reports_its_owner_from_its_first_header() {
        let tar = archive(&[
            ("agent/", tar::EntryType::Directory, 1000, b""),
            ("agent/big", tar::EntryType::Regular, 1000, &[0u8; 2048]),
        ]);
        // Only the first header is needed; the rest may be cut off.
        assert_eq!(
            path_fact(&parse_first(&tar[..600], 0).expect("parse")),
            PathFact::Dir {
                uid: 1000,
                gid: 1000
            }
        );
        let link = archive(&[("agent", tar::EntryType::Symlink, 0, b"")]);
        assert_eq!(
            path_fact(&parse_first(&link, 0).expect("parse")),
            PathFact::Other { kind: "symlink" }
        );
        assert_eq!(
            file_fact(parse_first(&link, 10).expect("parse")),
            FileFact::NotAFile { kind: "symlink" }
        );
        assert!(matches!(parse_first(&[], 0), Ok(First::Missing)));
    }
}
