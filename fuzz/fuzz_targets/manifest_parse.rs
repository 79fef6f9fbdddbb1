//! Fuzzes bottle manifests: the input is written as `bottles/fuzz.md` of a scratch
//! `CLAUDE_BOTTLE_HOME` (with the test fixtures' agents, two skills and a Dockerfile) and loaded
//! as `start` loads it: front matter, YAML, validation, agent, skills.
//!
//! Invariants: loading never panics and gives the same answer twice; a refused file has at least
//! one diagnostic, each naming a line of the file (or none); an accepted bottle holds only what
//! validation promises (variable names, lowercase host names, path prefixes without `.`/`..`,
//! limits within their bounds, skills that exist).

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use claude_bottle::home::Home;
use claude_bottle::manifest::{self, Bottle, EnvEntry};
use libfuzzer_sys::fuzz_target;

struct Scratch {
    _dir: tempfile::TempDir,
    home: Home,
    file: PathBuf,
}

fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for folder in ["bottles", "agents", "skills/review", "skills/lint"] {
            std::fs::create_dir_all(root.join(folder)).expect("folder");
        }
        let fixtures: [(&str, &str); 4] = [
            (
                "agents/scripted.md",
                include_str!("../../launcher/tests/fixtures/home/agents/scripted.md"),
            ),
            (
                "agents/broken.md",
                include_str!("../../launcher/tests/fixtures/home/agents/broken.md"),
            ),
            ("skills/review/SKILL.md", "# review\n"),
            ("bottles/Dockerfile", "FROM scratch\n"),
        ];
        for (path, text) in fixtures {
            std::fs::write(root.join(path), text).expect("fixture");
        }
        Scratch {
            home: Home::new(root),
            file: root.join("bottles/fuzz.md"),
            _dir: dir,
        }
    })
}

fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_bottle(b: &Bottle) {
    assert_eq!(b.name, "fuzz");
    let mut names: Vec<&str> = b.env.iter().map(EnvEntry::name).collect();
    assert!(names.iter().all(|n| is_env_name(n)), "{names:?}");
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), b.env.len(), "one entry per name");
    for r in &b.routes {
        let h = &r.host;
        assert!(
            !h.is_empty()
                && h.len() <= 253
                && h.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                }),
            "{h:?}"
        );
        if let Some(p) = &r.path {
            assert!(p.starts_with('/'), "{p:?}");
            assert!(!p.split('/').any(|s| s == "." || s == ".."), "{p:?}");
        }
    }
    assert!(b.limits.memory_bytes.is_none_or(|m| m >= 64 << 20));
    assert!(b.limits.pids.is_none_or(|p| p >= 16));
    assert!(b.limits.cpus.is_none_or(|c| c > 0.0 && c <= 1024.0));
    for s in &b.skills {
        assert!(s.path.is_dir(), "{s:?}");
    }
    if let Some(d) = &b.dockerfile {
        assert!(d.is_file(), "{d:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let s = scratch();
    std::fs::write(&s.file, data).expect("write the bottle");
    let first = manifest::load(&s.home, "fuzz");
    let again = manifest::load(&s.home, "fuzz");
    assert_eq!(first, again, "deterministic");
    match first {
        Ok(b) => check_bottle(&b),
        Err(e) => {
            assert!(!e.diagnostics.is_empty(), "refused without a reason");
            // YAML breaks lines at `\r\n`, `\r` and `\n`: a bare `\r` counts too.
            let lines = data
                .split(|&b| b == b'\n')
                .map(|l| {
                    1 + l
                        .strip_suffix(b"\r")
                        .unwrap_or(l)
                        .iter()
                        .filter(|&&b| b == b'\r')
                        .count()
                })
                .sum::<usize>();
            for d in e.diagnostics.iter().filter(|d| d.path == s.file) {
                assert!(
                    d.line.is_none_or(|l| l >= 1 && l <= lines + 1),
                    "line {:?} of a {lines}-line file: {d}",
                    d.line
                );
            }
            assert!(e.diagnostics.iter().all(|d| !d.problem.is_empty()), "{e:?}");
            assert!(!e.to_string().is_empty());
        }
    }
});
