//! `hold FILE`: the launcher starts a successor agent ahead of its swap, so its start costs the
//! swap nothing; the entrypoint waits here, before it touches the home, until the launcher has
//! carried the old agent's files in and creates FILE (in a folder the agent has read-only).

use std::path::Path;
use std::time::Duration;

/// How often the file is looked for: a `stat` every 2 ms costs nothing measurable, and the
/// release waits at most this long on top of the launcher's own work.
const POLL: Duration = Duration::from_millis(2);

/// Return once `file` exists.
pub async fn until_exists(file: &Path) {
    while !tokio::fs::try_exists(file).await.unwrap_or(false) {
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_once_the_file_appears_and_not_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("1795828496-e61e54c0");
        let waiting = tokio::spawn({
            let file = file.clone();
            async move { until_exists(&file).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "released before the file existed");
        std::fs::File::create(&file).expect("release");
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("released within 2 s")
            .expect("task");
    }
}
