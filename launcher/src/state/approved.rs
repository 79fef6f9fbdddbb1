//! `state/<slug>/approved-hosts`: egress hosts the operator approved, one `host[:port]` a line;
//! `state/<slug>/approved-pushes`: push-policy entries, one `<remote> <entry>` a line.
//!
//! Hosts are folded into the bottle's routes as bare passes when the plan is built, so they reach
//! the allowlist, the pipelock config and the preflight (marked `(approved)`); push entries into
//! their remote's `push:` list, so they reach the git gate's configuration.

use std::path::Path;

use super::atomic::{self, AtomicError};

/// The approved entries, in the order they were approved; missing file = none.
pub fn read(state_dir: &Path) -> Result<Vec<String>, AtomicError> {
    read_lines(state_dir, &super::Layout::new(state_dir).approved_hosts())
}

fn read_lines(state_dir: &Path, file: &Path) -> Result<Vec<String>, AtomicError> {
    let Some(bytes) = atomic::read_in(state_dir, file)? else {
        return Ok(Vec::new());
    };
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// The host names alone (ports dropped: routes and allowlists match on the name).
pub fn hosts(state_dir: &Path) -> Result<Vec<String>, AtomicError> {
    let mut hosts: Vec<String> = read(state_dir)?
        .into_iter()
        .map(|e| e.split(':').next().unwrap_or_default().to_owned())
        .collect();
    hosts.dedup();
    Ok(hosts)
}

/// Add `entry` (`host` or `host:port`) unless present; returns whether the file changed.
pub fn add(state_dir: &Path, entry: &str) -> Result<bool, AtomicError> {
    add_line(
        state_dir,
        &super::Layout::new(state_dir).approved_hosts(),
        entry,
    )
}

/// The approved push entries, `(remote, entry)`, in the order they were approved.
pub fn pushes(state_dir: &Path) -> Result<Vec<(String, String)>, AtomicError> {
    Ok(
        read_lines(state_dir, &super::Layout::new(state_dir).approved_pushes())?
            .into_iter()
            .filter_map(|l| {
                let (remote, entry) = l.split_once(' ')?;
                Some((remote.to_owned(), entry.trim().to_owned()))
            })
            .collect(),
    )
}

/// Add the push entry `entry` of `remote` unless present; returns whether the file changed.
pub fn add_push(state_dir: &Path, remote: &str, entry: &str) -> Result<bool, AtomicError> {
    add_line(
        state_dir,
        &super::Layout::new(state_dir).approved_pushes(),
        &format!("{remote} {entry}"),
    )
}

fn add_line(state_dir: &Path, file: &Path, line: &str) -> Result<bool, AtomicError> {
    let mut entries = read_lines(state_dir, file)?;
    if entries.iter().any(|e| e == line) {
        return Ok(false);
    }
    entries.push(line.to_owned());
    let mut text = entries.join("\n");
    text.push('\n');
    atomic::write_atomic_in(state_dir, file, text.as_bytes(), atomic::Overwrite::Replace)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_is_idempotent_and_hosts_drop_ports() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path()).expect("read").is_empty());
        assert!(add(dir.path(), "packages.example.org:443").expect("add"));
        assert!(!add(dir.path(), "packages.example.org:443").expect("add"));
        assert!(add(dir.path(), "files.example.org").expect("add"));
        assert_eq!(
            hosts(dir.path()).expect("hosts"),
            ["packages.example.org", "files.example.org"]
        );
    }

    #[test]
    fn push_entries_keep_their_options() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(pushes(dir.path()).expect("read").is_empty());
        assert!(add_push(dir.path(), "origin", "feature/x").expect("add"));
        assert!(add_push(dir.path(), "lib", "wip/** force delete").expect("add"));
        assert!(!add_push(dir.path(), "origin", "feature/x").expect("again"));
        assert_eq!(
            pushes(dir.path()).expect("read"),
            [
                ("origin".to_owned(), "feature/x".to_owned()),
                ("lib".to_owned(), "wip/** force delete".to_owned())
            ]
        );
        assert!(hosts(dir.path()).expect("hosts").is_empty(), "files apart");
    }
}
