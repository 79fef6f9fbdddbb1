//! `claude-bottle doctor`: everything a launch relies on, checked on this host, each with how to
//! fix it.
//!
//! [`gather`] reads the facts (the engine's info, files, `/proc`, a throw-away probe container);
//! [`checks`] turns them into verdicts with pure functions, so every verdict is unit-tested without
//! an engine; this module holds the result types and the two ways to print them.

pub mod checks;
pub mod gather;
pub mod probe;
pub mod runsc_probe;

use std::fmt::Write as _;

use claude_bottle_protocol::escape_line;
use serde::Serialize;

pub use gather::{Facts, gather};

/// The version of the `--json` document (`{"version":1,"checks":[…],"ok":bool}`); within a
/// version fields are only ever added.
pub const JSON_VERSION: u32 = 1;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It holds.
    Ok,
    /// Launches work, but something is slower, weaker or not checked; exit status stays 0.
    Warn,
    /// A launch fails (or cannot be trusted) until it is fixed; exit status 1.
    Fail,
}

impl Status {
    /// As the text report shows it: a failure stands out.
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One verdict: what was checked, how it came out, what was found, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short and stable (`engine`, `storage driver`, …): scripts select checks by it.
    pub name: &'static str,
    pub status: Status,
    /// What was found, one line.
    pub detail: String,
    /// What to do; `None` when nothing needs doing.
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every verdict, in the order they are shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub version: u32,
    pub checks: Vec<Check>,
    /// No check failed (warnings allowed).
    pub ok: bool,
}

impl Report {
    pub fn new(checks: Vec<Check>) -> Self {
        let ok = checks.iter().all(|c| c.status != Status::Fail);
        Self {
            version: JSON_VERSION,
            checks,
            ok,
        }
    }

    /// One aligned line per check, the fix under each one that is not ok.
    pub fn render(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            // The details quote engine messages, image labels and container names.
            let _ = writeln!(
                out,
                "{:<4}  {:<width$}  {}",
                c.status.word(),
                c.name,
                escape_line(&c.detail)
            );
            if let (Some(fix), true) = (&c.fix, c.status != Status::Ok) {
                let _ = writeln!(out, "{:<4}  {:<width$}  fix: {}", "", "", escape_line(fix));
            }
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        let warned = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Warn)
            .count();
        let _ = writeln!(
            out,
            "\n{} checks: {} failed, {} warned",
            self.checks.len(),
            failed,
            warned
        );
        out
    }
}

/// Every check over `facts`, in the documented order (docs/doctor.md).
pub fn assess(facts: &Facts) -> Report {
    let engine = facts.engine.as_ref();
    let mut list = vec![checks::engine(&facts.engine, facts.docker_host.as_deref())];
    match engine {
        Ok(info) => {
            list.push(checks::storage_driver(info, facts.disk_limit));
            list.push(checks::runtimes(info, &facts.runsc_bottles));
            list.push(checks::runsc_host_uds(info));
            list.push(checks::runsc_start(&facts.runsc_probe));
        }
        Err(_) => {
            for name in [
                checks::STORAGE_DRIVER,
                checks::RUNTIMES,
                checks::RUNSC_HOST_UDS,
                checks::RUNSC_START,
            ] {
                list.push(checks::not_checked(name, "the engine is unreachable"));
            }
        }
    }
    list.push(checks::internal_network(&facts.probe));
    list.push(checks::static_binaries(&facts.binaries));
    list.push(checks::base_image(&facts.base_image, &facts.base_present));
    list.push(checks::pipelock_image(
        &facts.pipelock_image,
        &facts.pipelock,
    ));
    list.push(checks::inotify(facts.inotify));
    list.push(checks::free_disk(&facts.disk));
    list.push(checks::leftovers(&facts.leftovers));
    list.push(checks::reclaimable(&facts.reclaimable));
    Report::new(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_aligns_and_shows_fixes_of_what_is_not_ok() {
        let report = Report::new(vec![
            Check::ok("engine", "Docker Engine 27.0, API 1.46"),
            Check::warn("inotify", "128 instances", "raise it"),
            Check::fail("base image", "x is not present", "build it"),
        ]);
        assert!(!report.ok);
        assert_eq!(
            report.render(),
            [
                "ok    engine      Docker Engine 27.0, API 1.46",
                "warn  inotify     128 instances",
                "                  fix: raise it",
                "FAIL  base image  x is not present",
                "                  fix: build it",
                "",
                "3 checks: 1 failed, 1 warned",
                "",
            ]
            .join("\n")
        );
    }

    #[test]
    fn warnings_alone_leave_the_report_ok() {
        let report = Report::new(vec![
            Check::ok("engine", "up"),
            Check::warn("inotify", "low", "raise it"),
        ]);
        assert!(report.ok);
    }

    #[test]
    fn the_json_shape_is_the_documented_one() {
        let report = Report::new(vec![
            Check::ok("engine", "up"),
            Check::fail("base image", "missing", "build it"),
        ]);
        let doc = serde_json::to_value(&report).expect("serialize");
        assert_eq!(
            doc,
            serde_json::json!({
                "version": 1,
                "checks": [
                    {"name": "engine", "status": "ok", "detail": "up", "fix": null},
                    {"name": "base image", "status": "fail", "detail": "missing", "fix": "build it"},
                ],
                "ok": false,
            })
        );
    }

    #[test]
    fn an_escape_sequence_in_a_detail_reaches_the_terminal_escaped() {
        let report = Report::new(vec![Check::warn("leftovers", "bottle \x1b[2Jx", "stop it")]);
        assert!(!report.render().contains('\x1b'), "{}", report.render());
    }
}
