//! Claude Code's session transcripts get back the order of their modification times, from their
//! own last records.
//!
//! A snapshot goes through the engine's archive API, which writes every file's modification time
//! cut to the whole second (moby's `FileInfoHeader`, for every archive it makes; its restore keeps
//! finer times, but there are none to give it). After a restore, two transcripts last written
//! within one second have equal times, and Claude Code 2.1.332 picks the session `--continue`
//! resumes by the transcript's `mtime` alone (a stable sort of the folder's listing): on a tie the
//! session resumed is whichever the file system lists first, checked with the real binary to be
//! the earlier one. Each transcript line carries the time it was written (`timestamp`, RFC 3339 to
//! the millisecond), so the last one tells the order without asking the engine for anything.
//!
//! The file's last write comes after its last timed record (Claude Code appends untimed lines, the
//! prompt and the cost, as it exits, up to a second later), so the record does not give the time
//! itself: records from the second before the file's through the file's own are mapped, in order,
//! into the file's own second. A file stays in the second the archive kept; only one whose time
//! still ends on a whole second (as a restore leaves it) is changed, and one whose record says
//! another time is left alone.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much of a transcript's end is read to find its last record (a tool's output can make one
/// line long; a file whose last record is longer is left as it is).
const TAIL_BYTES: u64 = 1 << 20;

/// Why a transcript's time could not be put back.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} {path}: {source}")]
pub struct TimesError {
    action: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// Order the restored modification times of every session transcript under
/// `home/.claude/projects/*/` by their last records; returns the files changed. A home without projects changes
/// nothing.
pub fn refine(home: &Path) -> Result<Vec<PathBuf>, TimesError> {
    let projects = home.join(".claude").join("projects");
    let mut changed = Vec::new();
    for project in read_dir(&projects)? {
        if !project.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            continue;
        }
        for file in read_dir(&project)? {
            if file.extension().is_some_and(|e| e == "jsonl") && refine_one(&file)? {
                changed.push(file);
            }
        }
    }
    changed.sort();
    Ok(changed)
}

/// The entries of `dir`; none when it does not exist.
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, TimesError> {
    let err = |source| TimesError {
        action: "list",
        path: dir.to_owned(),
        source,
    };
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.path()).map_err(err)).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(err(e)),
    }
}

/// Whether `path`'s time was put back.
fn refine_one(path: &Path) -> Result<bool, TimesError> {
    let err = |action| {
        move |source| TimesError {
            action,
            path: path.to_owned(),
            source,
        }
    };
    // Not followed: a symlink's target is not a transcript of this home.
    let meta = path.symlink_metadata().map_err(err("inspect"))?;
    if !meta.is_file() {
        return Ok(false);
    }
    let mtime = meta.modified().map_err(err("inspect"))?;
    let Ok(since_epoch) = mtime.duration_since(UNIX_EPOCH) else {
        return Ok(false);
    };
    if since_epoch.subsec_nanos() != 0 {
        return Ok(false);
    }
    let mut file = std::fs::File::open(path).map_err(err("open"))?;
    let start = meta.len().saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start)).map_err(err("read"))?;
    let mut tail = Vec::new();
    (&mut file)
        .take(TAIL_BYTES)
        .read_to_end(&mut tail)
        .map_err(err("read"))?;
    let Some(written) = last_record_time(&tail, start > 0) else {
        return Ok(false);
    };
    let Some(refined) = within_second(since_epoch, written) else {
        return Ok(false);
    };
    file.set_modified(refined).map_err(err("set the time of"))?;
    Ok(true)
}

/// The time in `second` (a whole second) of a file whose last record was `written`: records of
/// the second before through `second` itself map in order onto `second`; others give `None`.
fn within_second(second: Duration, written: SystemTime) -> Option<SystemTime> {
    let written = written.duration_since(UNIX_EPOCH).ok()?;
    let from = second.checked_sub(Duration::from_secs(1))?;
    let into = written.checked_sub(from)?;
    if into >= Duration::from_secs(2) {
        return None;
    }
    Some(UNIX_EPOCH + second + into / 2)
}

/// The `timestamp` of the last line of `tail` that is a JSON object with one. With `cut`, the
/// first line may be the end of a longer one and is not read.
fn last_record_time(tail: &[u8], cut: bool) -> Option<SystemTime> {
    #[derive(serde::Deserialize)]
    struct Record {
        timestamp: Option<String>,
    }
    let mut lines: Vec<&[u8]> = tail.split(|b| *b == b'\n').collect();
    if cut && !lines.is_empty() {
        lines.remove(0);
    }
    lines.iter().rev().find_map(|line| {
        let record: Record = serde_json::from_slice(line).ok()?;
        let at = time::OffsetDateTime::parse(
            record.timestamp.as_deref()?,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        let nanos = u64::try_from(at.unix_timestamp_nanos()).ok()?;
        Some(UNIX_EPOCH + Duration::from_nanos(nanos))
    })
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    fn mtime(path: &Path) -> SystemTime {
        std::fs::metadata(path)
            .expect("stat")
            .modified()
            .expect("mtime")
    }

    /// A transcript whose last record was written at `written`, its time cut to the second as a
    /// restore leaves it.
    fn transcript(dir: &Path, name: &str, written: &str, mtime_secs: u64) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "{{\"type\":\"user\",\"timestamp\":\"2023-11-14T22:13:20.001Z\"}}\n\
                 {{\"type\":\"assistant\",\"timestamp\":\"{written}\"}}\n\
                 {{\"type\":\"last-prompt\",\"lastPrompt\":\"no time here\"}}\n"
            ),
        )
        .expect("write");
        File::options()
            .write(true)
            .open(&path)
            .expect("open")
            .set_modified(at(mtime_secs, 0))
            .expect("set mtime");
        path
    }

    #[test]
    fn two_transcripts_restored_within_one_second_come_back_in_the_order_they_were_written() {
        let home = tempfile::tempdir().expect("tempdir");
        let project = home.path().join(".claude/projects/-workspace");
        std::fs::create_dir_all(&project).expect("mkdir");
        // 1700000000 is 2023-11-14T22:13:20Z. The later session sorts first by name, so the
        // archive restores it first: a tie of times would resume the earlier one.
        let later = transcript(
            &project,
            "0aaa.jsonl",
            "2023-11-14T22:13:20.750Z",
            1_700_000_000,
        );
        let earlier = transcript(
            &project,
            "ffff.jsonl",
            "2023-11-14T22:13:20.250Z",
            1_700_000_000,
        );
        assert_eq!(mtime(&later), mtime(&earlier), "tied, as after a restore");

        let changed = refine(home.path()).expect("refine");

        assert_eq!(changed, vec![later.clone(), earlier.clone()]);
        assert_eq!(mtime(&earlier), at(1_700_000_000, 625));
        assert_eq!(mtime(&later), at(1_700_000_000, 875));
        assert!(mtime(&later) > mtime(&earlier));
        assert!(refine(home.path()).expect("again").is_empty(), "done once");
    }

    #[test]
    fn records_of_the_second_before_keep_their_order_within_the_files_second() {
        let second = Duration::from_secs(1_700_000_000);
        // The last timed record precedes the file's last write (untimed lines at exit).
        let a = within_second(second, at(1_699_999_999, 100)).expect("a");
        let b = within_second(second, at(1_699_999_999, 900)).expect("b");
        let c = within_second(second, at(1_700_000_000, 300)).expect("c");
        assert!(at(1_700_000_000, 0) <= a && a < b && b < c && c < at(1_700_000_001, 0));
        assert_eq!(within_second(second, at(1_699_999_998, 999)), None);
        assert_eq!(within_second(second, at(1_700_000_001, 0)), None);
    }

    #[test]
    fn a_time_the_archive_did_not_cut_or_a_record_of_another_second_is_left_alone() {
        let home = tempfile::tempdir().expect("tempdir");
        let project = home.path().join(".claude/projects/-workspace");
        std::fs::create_dir_all(&project).expect("mkdir");
        let written_since = transcript(&project, "a.jsonl", "2023-11-14T22:13:20.500Z", 1);
        File::options()
            .write(true)
            .open(&written_since)
            .expect("open")
            .set_modified(at(1_700_000_000, 900))
            .expect("set mtime");
        let other_second = transcript(
            &project,
            "b.jsonl",
            "2023-11-14T22:13:25.500Z",
            1_700_000_000,
        );
        let long_before = transcript(
            &project,
            "e.jsonl",
            "2023-11-14T22:13:18.500Z",
            1_700_000_000,
        );
        let no_time = project.join("c.jsonl");
        std::fs::write(&no_time, "{\"type\":\"summary\"}\nnot json\n").expect("write");
        std::fs::write(project.join("notes.txt"), "").expect("write");
        std::os::unix::fs::symlink(&other_second, project.join("d.jsonl")).expect("symlink");

        assert!(refine(home.path()).expect("refine").is_empty());
        assert_eq!(mtime(&written_since), at(1_700_000_000, 900));
        assert_eq!(mtime(&other_second), at(1_700_000_000, 0));
        assert_eq!(mtime(&long_before), at(1_700_000_000, 0));
    }

    #[test]
    fn a_home_without_claude_projects_changes_nothing() {
        let home = tempfile::tempdir().expect("tempdir");
        assert!(refine(home.path()).expect("refine").is_empty());
    }

    #[test]
    fn the_last_record_of_a_long_transcript_is_read_from_its_end() {
        let home = tempfile::tempdir().expect("tempdir");
        let project = home.path().join(".claude/projects/-workspace");
        std::fs::create_dir_all(&project).expect("mkdir");
        let path = project.join("long.jsonl");
        let mut text = "{\"timestamp\":\"2023-11-14T22:13:20.900Z\"}\n".repeat(40_000);
        text.push_str("{\"timestamp\":\"2023-11-14T22:13:20.125Z\"}\n");
        assert!(text.len() as u64 > TAIL_BYTES);
        std::fs::write(&path, text).expect("write");
        File::options()
            .write(true)
            .open(&path)
            .expect("open")
            .set_modified(at(1_700_000_000, 0))
            .expect("set mtime");
        assert_eq!(refine(home.path()).expect("refine"), vec![path.clone()]);
        assert_eq!(
            mtime(&path),
            at(1_700_000_000, 562) + Duration::from_micros(500)
        );
        // The first line of a cut tail may be the end of another record: it is not read.
        let record = b"{\"timestamp\":\"2023-11-14T22:13:20.500Z\"}\n";
        assert_eq!(last_record_time(record, true), None);
        assert_eq!(
            last_record_time(record, false),
            Some(at(1_700_000_000, 500))
        );
    }
}
