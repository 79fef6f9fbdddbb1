//! `state/<slug>/approved-hosts`: egress hosts the operator approved, one `host[:port]` a line.
//!
//! Folded into the bottle's routes as bare passes when the plan is built, so they reach the
//! allowlist, the pipelock config and the preflight (marked `(approved)`).

use std::path::Path;

use super::atomic::{self, AtomicError};

/// The approved entries, in the order they were approved; missing file = none.
pub fn read(state_dir: &Path) -> Result<Vec<String>, AtomicError> {
    let Some(bytes) = atomic::read_in(state_dir, &super::Layout::new(state_dir).approved_hosts())?
    else {
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
    let mut entries = read(state_dir)?;
    if entries.iter().any(|e| e == entry) {
        return Ok(false);
    }
    entries.push(entry.to_owned());
    let mut text = entries.join("\n");
    text.push('\n');
    atomic::write_atomic_in(
        state_dir,
        &super::Layout::new(state_dir).approved_hosts(),
        text.as_bytes(),
        atomic::Overwrite::Replace,
    )?;
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
}
