//! Watching a folder for new or changed files, without waking on one's own reads.
//!
//! Both the launcher (the decisions folder) and supervise (the decisions and applied folders)
//! re-read a folder when it changes. Each re-read opens the folder and its files, which inotify
//! reports as events too (notify watches `IN_OPEN`): waking on those would make every pass the
//! cause of the next, a busy loop for as long as the process runs. So only events that may mean
//! new content wake the caller, and errors do too (events may have been lost: a re-read is the
//! safe answer).

use std::path::Path;

pub use notify::RecommendedWatcher as Watcher;
use notify::Watcher as _;

/// A watcher that calls `wake` whenever a watched folder may hold new or changed content. Add
/// folders with [`watch_folder`]; the watch ends when the watcher is dropped.
pub fn watcher(wake: impl Fn() + Send + 'static) -> notify::Result<Watcher> {
    notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.map_or(true, |e| changes_content(&e)) {
            wake();
        }
    })
}

/// Watch `folder` (not the folders below it) with `watcher`.
pub fn watch_folder(watcher: &mut Watcher, folder: &Path) -> notify::Result<()> {
    watcher.watch(folder, notify::RecursiveMode::NonRecursive)
}

/// Whether an event may mean a new or changed file: anything but an access (an open, a read).
fn changes_content(event: &notify::Event) -> bool {
    !matches!(event.kind, notify::EventKind::Access(_))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn reading_a_watched_folder_does_not_wake_its_watcher_and_a_new_file_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.json"), b"{}").expect("write");
        // Let the write's own events (and the first read's atime update) pass.
        std::fs::read(dir.path().join("a.json")).expect("read");
        std::thread::sleep(Duration::from_millis(100));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut w = super::watcher(move || {
            let _ = tx.send(());
        })
        .expect("watcher");
        super::watch_folder(&mut w, dir.path()).expect("watch");
        for _ in 0..3 {
            let _ = std::fs::read_dir(dir.path()).expect("list").count();
            std::fs::read(dir.path().join("a.json")).expect("read");
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "listing and reading woke the watcher: each pass would cause the next"
        );
        std::fs::write(dir.path().join("b.json"), b"{}").expect("write");
        assert!(
            rx.recv_timeout(Duration::from_secs(5)).is_ok(),
            "a new file wakes it"
        );
    }
}
