//! `run/agent-image`: the image the bottle's agent runs, one tag a line, written when a launch
//! has prepared it and again when a capability swap replaced it. `claude-bottle prune` keeps that
//! image, every image below it (what `resume` builds on: with the recorded Dockerfile, `resume`
//! finds its image or rebuilds it from their layers) and its root step.

use std::path::Path;

use super::Layout;
use super::atomic::{AtomicError, write_atomic};

/// The record's file name in `run/`.
pub const FILE_NAME: &str = "agent-image";

/// Record `image` as the one the bottle runs. When that fails, an earlier record is removed (if
/// it can be): a stale one would name an older image, and prune keeps every image of a bottle
/// without a record.
pub fn record(layout: &Layout, image: &str) -> Result<(), AtomicError> {
    let path = layout.agent_image_record();
    let written = match path.parent() {
        Some(dir) => std::fs::create_dir_all(dir).map_err(AtomicError::io("create", dir)),
        None => Ok(()),
    }
    .and_then(|()| write_atomic(&path, format!("{image}\n").as_bytes()));
    if written.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    written
}

/// The recorded images; `None` when nothing was recorded (or the file cannot be read).
pub fn read(state_dir: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(Layout::new(state_dir).agent_image_record()).ok()?;
    Some(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_image_reads_back_and_a_missing_record_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        assert_eq!(read(dir.path()), None);
        record(&layout, "claude-bottle/app:0123456789ab").expect("record");
        assert_eq!(
            read(dir.path()),
            Some(vec!["claude-bottle/app:0123456789ab".to_owned()])
        );
        record(&layout, "claude-bottle/app:ba9876543210").expect("record again");
        assert_eq!(
            read(dir.path()),
            Some(vec!["claude-bottle/app:ba9876543210".to_owned()])
        );
    }
}
