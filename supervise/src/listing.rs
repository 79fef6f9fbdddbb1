//! Listing a queue folder: the plain files in it, never what a symlink points to.

use std::path::Path;

use claude_bottle_io::fs::FsError;

/// The plain file names in `dir` (symlinks and sub-folders left out, reported at debug level;
/// the one-off scan at start reports them as warnings through [`list_files_warn`]).
pub fn list_files(dir: &Path) -> Result<Vec<String>, FsError> {
    list(dir, false)
}

/// [`list_files`], warning about each symlink found.
pub fn list_files_warn(dir: &Path) -> Result<Vec<String>, FsError> {
    list(dir, true)
}

fn list(dir: &Path, warn: bool) -> Result<Vec<String>, FsError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(FsError::io("list", dir))? {
        let entry = entry.map_err(FsError::io("list", dir))?;
        let Ok(ft) = entry.file_type() else { continue };
        if !ft.is_file() {
            if ft.is_symlink() && warn {
                tracing::warn!(path = %entry.path().display(), "ignoring a symlink in the queue");
            } else if ft.is_symlink() {
                tracing::debug!(path = %entry.path().display(), "ignoring a symlink in the queue");
            }
            continue;
        }
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_and_folders_are_not_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"s").expect("write");
        std::os::unix::fs::symlink(&secret, dir.path().join("l.json")).expect("symlink");
        std::fs::create_dir(dir.path().join("sub")).expect("folder");
        assert_eq!(
            list_files(dir.path()).expect("list"),
            vec!["secret".to_owned()]
        );
        assert_eq!(
            list_files_warn(dir.path()).expect("list"),
            vec!["secret".to_owned()]
        );
    }
}
