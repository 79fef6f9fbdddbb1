//! Forwarding the allowed ref updates of a push to the upstream in one `git push --porcelain`,
//! and reading the upstream's answer per ref.

use std::collections::HashMap;
use std::path::Path;

use claude_bottle_protocol::git_policy::{Change, RefUpdate};
use claude_bottle_protocol::text::escape_line;

use crate::upstream::Access;

/// Longest reason passed back to the agent for one ref (the rest is in the relayed output).
const MAX_REASON: usize = 400;

/// What the upstream did with one forwarded ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    /// Refused, with the reason shown to the agent and written to the audit log.
    Refused(String),
}

/// The outcome of a forward: one answer per ref, and git's own output to relay to the agent.
#[derive(Debug)]
pub struct Forwarded {
    pub answers: Vec<Answer>,
    /// git's stderr: the upstream's `remote:` lines and git's errors.
    pub stderr: String,
}

/// The `git push` arguments (after `push`) that forward `updates` to `url`: each update as
/// `<new>:<ref>` (`:<ref>` to delete), a non-fast-forward update or a deletion leased on the old
/// value the agent saw, so the gate overwrites only what the policy was shown.
pub fn push_args(url: &str, updates: &[(&RefUpdate, bool)], atomic: bool) -> Vec<String> {
    let mut args = vec!["--porcelain".to_owned(), "--no-verify".to_owned()];
    if atomic {
        args.push("--atomic".to_owned());
    }
    for (update, fast_forward) in updates {
        let leased = match update.change() {
            Change::Create => false,
            Change::Delete => true,
            Change::Update => !fast_forward || update.is_tag(),
        };
        if leased {
            args.push(format!(
                "--force-with-lease={}:{}",
                update.refname(),
                update.old()
            ));
        }
    }
    args.push(url.to_owned());
    for (update, _) in updates {
        args.push(match update.change() {
            Change::Delete => format!(":{}", update.refname()),
            _ => format!("{}:{}", update.new_id(), update.refname()),
        });
    }
    args
}

/// Runs the push from the mirror at `git_dir` and reads the answer for every update.
pub fn forward(
    access: &Access,
    git_dir: &Path,
    url: &str,
    updates: &[(&RefUpdate, bool)],
    atomic: bool,
) -> Forwarded {
    let output = access
        .git(git_dir)
        .arg("push")
        .args(push_args(url, updates, atomic))
        .stdin(std::process::Stdio::null())
        .output();
    match output {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let answers = answers(&stdout, &stderr, updates.iter().map(|(u, _)| u.refname()));
            Forwarded { answers, stderr }
        }
        Err(e) => Forwarded {
            answers: updates
                .iter()
                .map(|_| Answer::Refused(format!("upstream unreachable: failed to run git: {e}")))
                .collect(),
            stderr: String::new(),
        },
    }
}

/// Reads `git push --porcelain`'s lines (`<flag> TAB <from>:<to> TAB <summary>`) into an answer
/// for each of `refs`. A ref the output does not mention was not pushed: the push failed before
/// it (the upstream could not be reached, say), and git's last error is the reason.
pub fn answers<'a>(stdout: &str, stderr: &str, refs: impl Iterator<Item = &'a str>) -> Vec<Answer> {
    let mut status: HashMap<&str, (char, &str)> = HashMap::new();
    for line in stdout.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(flag), Some(spec), Some(summary)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Some(flag), Some((_, dst))) = (flag.chars().next(), spec.rsplit_once(':')) else {
            continue;
        };
        status.insert(dst, (flag, summary));
    }
    let remote_said = remote_lines(stderr);
    refs.map(|r| match status.get(r) {
        Some((' ' | '+' | '-' | '*' | '=', _)) => Answer::Accepted,
        Some((_, summary)) => {
            let reason = if remote_said.is_empty() {
                format!("upstream refused: {summary}")
            } else {
                format!("upstream refused: {remote_said} ({summary})")
            };
            Answer::Refused(one_line(&reason))
        }
        None => Answer::Refused(one_line(&format!(
            "upstream unreachable: {}",
            crate::upstream::git_error(stderr)
        ))),
    })
    .collect()
}

/// The upstream's own words: the first few `remote:` lines of git's stderr, joined.
fn remote_lines(stderr: &str) -> String {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("remote:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `s` as one escaped line of at most [`MAX_REASON`] characters.
fn one_line(s: &str) -> String {
    let s = escape_line(s);
    match s.char_indices().nth(MAX_REASON) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "eab1a733f9ad8a00ca7de5bf17fd747456df7909";
    const B: &str = "95dd0e7d2088c8cb7c10a4b8ca9ee99c383c2e5b";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn update(old: &str, new: &str, r: &str) -> RefUpdate {
        RefUpdate::new(r, old, new).expect("update")
    }

    #[test]
    fn leases_guard_what_the_policy_saw() {
        let create = update(Z, A, "refs/heads/new");
        let ff = update(A, B, "refs/heads/ff");
        let forced = update(B, A, "refs/heads/forced");
        let delete = update(A, Z, "refs/heads/gone");
        let tag = update(A, B, "refs/tags/v1");
        let args = push_args(
            "https://h/a.git",
            &[
                (&create, false),
                (&ff, true),
                (&forced, false),
                (&delete, false),
                (&tag, true),
            ],
            true,
        );
        assert_eq!(
            args,
            [
                "--porcelain".to_owned(),
                "--no-verify".to_owned(),
                "--atomic".to_owned(),
                format!("--force-with-lease=refs/heads/forced:{B}"),
                format!("--force-with-lease=refs/heads/gone:{A}"),
                format!("--force-with-lease=refs/tags/v1:{A}"),
                "https://h/a.git".to_owned(),
                format!("{A}:refs/heads/new"),
                format!("{B}:refs/heads/ff"),
                format!("{A}:refs/heads/forced"),
                ":refs/heads/gone".to_owned(),
                format!("{B}:refs/tags/v1"),
            ]
        );
    }

    #[test]
    fn porcelain_lines_become_answers() {
        // As git 2.47 prints them (checked against a local upstream).
        let stdout = format!(
            "To https://h/a.git\n-\t:refs/heads/del\t[deleted]\n+\t{A}:refs/heads/main\t95dd0e7...eab1a73 (forced update)\n*\t{A}:refs/heads/new\t[new branch]\n=\t{A}:refs/heads/same\t[up to date]\n!\t{B}:refs/heads/frozen\t[remote rejected] (pre-receive hook declined)\n!\t(delete):refs/heads/nope\t[rejected] (stale info)\nDone\n"
        );
        let stderr = "remote: upstream policy: refs/heads/frozen is frozen        \nerror: failed to push some refs to 'https://h/a.git'\n";
        let refs = [
            "refs/heads/del",
            "refs/heads/main",
            "refs/heads/new",
            "refs/heads/same",
            "refs/heads/frozen",
            "refs/heads/nope",
            "refs/heads/missing",
        ];
        let got = answers(&stdout, stderr, refs.into_iter());
        assert_eq!(
            got[..4],
            [
                Answer::Accepted,
                Answer::Accepted,
                Answer::Accepted,
                Answer::Accepted
            ]
        );
        assert_eq!(
            got[4],
            Answer::Refused(
                "upstream refused: upstream policy: refs/heads/frozen is frozen ([remote rejected] (pre-receive hook declined))".into()
            )
        );
        assert!(matches!(&got[5], Answer::Refused(r) if r.contains("(stale info)")));
        assert_eq!(
            got[6],
            Answer::Refused(
                "upstream unreachable: remote: upstream policy: refs/heads/frozen is frozen (error: failed to push some refs to 'https://h/a.git')".into()
            )
        );
    }

    #[test]
    fn an_unreachable_upstream_gives_git_s_fatal_line() {
        let stderr = "fatal: unable to access 'https://h/a.git/': Could not resolve host: h\n";
        assert_eq!(
            answers("", stderr, ["refs/heads/x"].into_iter()),
            [Answer::Refused(
                "upstream unreachable: fatal: unable to access 'https://h/a.git/': Could not resolve host: h".into()
            )]
        );
    }

    #[test]
    fn reasons_are_one_bounded_line() {
        let long = format!("remote: {}\u{1b}[1m\n", "x".repeat(1000));
        let got = answers(
            &format!("!\t{A}:refs/heads/a\t[remote rejected] (hook)\n"),
            &long,
            ["refs/heads/a"].into_iter(),
        );
        let Answer::Refused(reason) = &got[0] else {
            panic!("{got:?}")
        };
        assert!(reason.chars().count() <= MAX_REASON + 3);
        assert!(!reason.contains('\u{1b}'));
    }
}
