//! Carrying out a [`Survey`]: each removal on its own, a failure reported and skipped.

use crate::backend::docker::DockerBackend;

use super::{FolderRemoval, ImageRemoval, Survey};

/// What became of one removal.
#[derive(Debug)]
pub enum Outcome<'a> {
    Image(&'a ImageRemoval, Result<(), String>),
    Folder(&'a FolderRemoval, Result<(), String>),
}

impl Outcome<'_> {
    /// The bytes freed (none when it failed).
    pub fn freed(&self) -> u64 {
        match self {
            Outcome::Image(i, Ok(())) => i.freed,
            Outcome::Folder(f, Ok(())) => f.size,
            _ => 0,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Image(_, Err(e)) | Outcome::Folder(_, Err(e)) => Some(e),
            _ => None,
        }
    }
}

/// Remove the survey's images (children first, each tag in turn: the last one deletes it) and
/// folders. One that fails (an image a container started using since, a file that cannot be
/// removed) is reported in its outcome; the rest go on.
pub async fn apply<'a>(backend: &DockerBackend, survey: &'a Survey) -> Vec<Outcome<'a>> {
    let mut out = Vec::new();
    for image in &survey.images {
        let mut result = Ok(());
        let references = if image.tags.is_empty() {
            vec![image.id.clone()]
        } else {
            image.tags.clone()
        };
        for reference in &references {
            if let Err(e) = backend.remove_image(reference).await {
                result = Err(e.to_string());
                break;
            }
        }
        out.push(Outcome::Image(image, result));
    }
    for folder in &survey.folders {
        let path = &folder.path;
        let removed = match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
            Ok(_) => std::fs::remove_file(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        out.push(Outcome::Folder(
            folder,
            removed.map_err(|e| format!("failed to remove {}: {e}", path.display())),
        ));
    }
    out
}
