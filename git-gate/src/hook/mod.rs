//! `hook <name>`: a mirror's `proc-receive` hook (`Documentation/githooks.txt`, "proc-receive").
//!
//! `git receive-pack` runs it once per push, after the pushed objects left quarantine, and hands
//! it every ref update over pkt-line. For each: [`RefUpdate::parse_line`], ancestry when the
//! decision needs it, [`PushPolicy::decide`]. The allowed ones are forwarded to the upstream in
//! one `git push` (`forward.rs`); each ref is then answered `ok` + `option fall-through` (the
//! upstream took it: receive-pack updates the mirror's ref itself) or `ng <ref> <reason>`, which
//! the agent's git prints as `! [remote rejected] … (<reason>)`. Every decision is appended to
//! the audit log. A hook that fails or exits early fails every ref: closed.
//!
//! [`PushPolicy::decide`]: claude_bottle_protocol::git_policy::PushPolicy::decide

mod forward;
pub mod pktline;

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use claude_bottle_protocol::git_policy::{Decision, RefUpdate};
use claude_bottle_protocol::text::escape_line;

use crate::ConfigArg;
use crate::audit::{self, Record, UpstreamAnswer, Verdict};
use crate::config::{Config, Remote};
use crate::upstream::Access;
pub use forward::{Answer, answers, push_args};
use pktline::Packet;

#[derive(Debug, clap::Args)]
pub struct HookArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Append one JSON line per ref decision here.
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// The remote whose mirror runs this hook.
    pub name: String,
}

/// Runs the hook on stdin/stdout; messages for the agent go to stderr (git shows them as
/// `remote: …`).
pub fn run(args: HookArgs) -> ExitCode {
    let stdin = io::stdin().lock();
    let stdout = io::stdout().lock();
    match receive(&args, stdin, stdout, &mut io::stderr()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gate: the push hook failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One command as receive-pack sent it, with what the gate made of it.
#[derive(Debug)]
struct Command {
    /// The ref name exactly as received: the answer must name it so.
    refname: String,
    old: String,
    new: String,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Allowed by `entry`, to forward; `fast_forward` as found out (or not needed).
    Allowed {
        update: RefUpdate,
        fast_forward: bool,
        entry: String,
    },
    /// Allowed and forwarded, with the upstream's answer.
    Forwarded { entry: String, answer: Answer },
    /// Refused by the gate.
    Refused(String),
}

/// The protocol, from version negotiation to the last answer.
pub fn receive(
    args: &HookArgs,
    mut input: impl BufRead,
    mut output: impl Write,
    messages: &mut impl Write,
) -> io::Result<()> {
    let atomic = negotiate(&mut input, &mut output)?;
    let mut commands = read_commands(&mut input)?;
    // receive-pack sends push options only when the hook asks for them; this one does not.
    let git_dir = std::env::var_os("GIT_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let mut audit_log = None;
    let loaded = Config::load(&args.config.path)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            // Nothing reaches the upstream unrecorded: no log, no push.
            if let Some(path) = &args.audit {
                let log = audit::AuditLog::open(path)
                    .map_err(|e| format!("failed to open the audit log {}: {e}", path.display()))?;
                audit_log = Some(log);
            }
            let remote = config.remote(&args.name).cloned().ok_or_else(|| {
                format!(
                    "no remote {:?} in {}",
                    args.name,
                    args.config.path.display()
                )
            })?;
            Ok((config, remote))
        });
    match &loaded {
        Ok((_, remote)) => decide(remote, &git_dir, &mut commands, messages)?,
        Err(e) => {
            // Fail closed, saying why: nothing here is secret (names and paths).
            let reason = format!("the gate cannot take pushes: {}", escape_line(e));
            for c in &mut commands {
                c.state = State::Refused(reason.clone());
            }
        }
    }
    if atomic {
        refuse_all_if_any_refused(&mut commands);
    }
    if let Ok((config, remote)) = &loaded {
        forward_allowed(config, remote, &git_dir, atomic, &mut commands, messages)?;
    }
    if let Some(log) = &mut audit_log {
        let records: Vec<Record> = commands.iter().map(|c| record(&args.name, c)).collect();
        if let Err(e) = log.append(&records) {
            writeln!(messages, "gate: failed to write the audit log: {e}")?;
        }
    }
    for c in &commands {
        let reason = match &c.state {
            State::Forwarded {
                answer: Answer::Accepted,
                ..
            } => {
                pktline::write_line(&mut output, format!("ok {}", c.refname).as_bytes())?;
                pktline::write_line(&mut output, b"option fall-through")?;
                continue;
            }
            State::Forwarded {
                answer: Answer::Refused(reason),
                ..
            }
            | State::Refused(reason) => reason.as_str(),
            State::Allowed { .. } => "the gate did not forward it",
        };
        pktline::write_line(&mut output, format!("ng {} {reason}", c.refname).as_bytes())?;
    }
    pktline::flush(&mut output)?;
    Ok(())
}

/// Reads receive-pack's `version=1[\0features]` and answers version 1. Returns whether the push
/// is atomic.
fn negotiate(input: &mut impl Read, output: &mut impl Write) -> io::Result<bool> {
    let mut atomic = false;
    let mut version = None;
    loop {
        match pktline::read(input)? {
            Some(Packet::Flush) => break,
            Some(Packet::Data(line)) => {
                let mut parts = line.splitn(2, |b| *b == 0);
                let head = parts.next().unwrap_or_default();
                if let Some(v) = head.strip_prefix(b"version=") {
                    version = Some(String::from_utf8_lossy(v).into_owned());
                }
                if let Some(features) = parts.next() {
                    atomic |= features.split(|b| *b == b' ').any(|f| f == b"atomic");
                }
            }
            None => return Err(unexpected_end("the version negotiation")),
        }
    }
    if version.as_deref() != Some("1") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("receive-pack offers proc-receive version {version:?}, this hook speaks 1"),
        ));
    }
    pktline::write_line(output, b"version=1")?;
    pktline::flush(output)?;
    Ok(atomic)
}

/// Reads the commands up to the flush; each is checked here, decided later.
fn read_commands(input: &mut impl Read) -> io::Result<Vec<Command>> {
    let mut commands = Vec::new();
    loop {
        match pktline::read(input)? {
            Some(Packet::Flush) => return Ok(commands),
            Some(Packet::Data(line)) => {
                let line = String::from_utf8_lossy(&line).into_owned();
                let mut fields = line.splitn(3, ' ');
                let old = fields.next().unwrap_or_default().to_owned();
                let new = fields.next().unwrap_or_default().to_owned();
                let refname = fields.next().unwrap_or_default().to_owned();
                let state = match RefUpdate::parse_line(&line) {
                    // Replaced by the decision.
                    Ok(update) => State::Allowed {
                        update,
                        fast_forward: false,
                        entry: String::new(),
                    },
                    Err(e) => State::Refused(e.to_string()),
                };
                commands.push(Command {
                    refname,
                    old,
                    new,
                    state,
                });
            }
            None => return Err(unexpected_end("the commands")),
        }
    }
}

/// Decides every parsed command with the remote's policy; for each policy refusal, tells the
/// agent how to ask the operator for that push (`messages`: git shows them as `remote:` lines).
fn decide(
    remote: &Remote,
    git_dir: &Path,
    commands: &mut [Command],
    messages: &mut impl Write,
) -> io::Result<()> {
    for c in commands {
        let State::Allowed { update, .. } = &c.state else {
            continue;
        };
        let fast_forward = if update.needs_ancestry() {
            match is_ancestor(git_dir, update.old().as_str(), update.new_id().as_str()) {
                Ok(ff) => ff,
                Err(e) => {
                    c.state = State::Refused(format!("the gate could not check ancestry: {e}"));
                    continue;
                }
            }
        } else {
            false
        };
        c.state = match remote.policy.decide(update, fast_forward) {
            Decision::Allowed { rule } => State::Allowed {
                update: update.clone(),
                fast_forward,
                entry: rule,
            },
            Decision::Refused(refusal) => {
                let entry = refusal.entry(update.refname());
                // The entry is a ref name git accepted and gix-validate checked: plain text.
                writeln!(
                    messages,
                    "gate: {} is not allowed; to ask the operator: claude-bottle-shim request push {} {entry} --reason \"...\"",
                    update.refname(),
                    remote.name
                )?;
                State::Refused(refusal.to_string())
            }
        };
    }
    Ok(())
}

/// `git merge-base --is-ancestor OLD NEW`: exit 0 yes, 1 no, anything else an error.
fn is_ancestor(git_dir: &Path, old: &str, new: &str) -> Result<bool, String> {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["merge-base", "--is-ancestor", old, new])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("failed to run git: {e}"))?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(escape_line(String::from_utf8_lossy(&out.stderr).trim()).into_owned()),
    }
}

/// An atomic push is all or nothing: one refusal refuses every ref.
fn refuse_all_if_any_refused(commands: &mut [Command]) {
    let Some(first) = commands
        .iter()
        .find(|c| matches!(c.state, State::Refused(_)))
        .map(|c| escape_line(&c.refname).into_owned())
    else {
        return;
    };
    for c in commands {
        if matches!(c.state, State::Allowed { .. }) {
            c.state = State::Refused(format!("atomic push: {first} was refused"));
        }
    }
}

/// Forwards the allowed commands in one push and records each answer.
fn forward_allowed(
    config: &Config,
    remote: &Remote,
    git_dir: &Path,
    atomic: bool,
    commands: &mut [Command],
    messages: &mut impl Write,
) -> io::Result<()> {
    let allowed: Vec<(&RefUpdate, bool)> = commands
        .iter()
        .filter_map(|c| match &c.state {
            State::Allowed {
                update,
                fast_forward,
                ..
            } => Some((update, *fast_forward)),
            _ => None,
        })
        .collect();
    if allowed.is_empty() {
        return Ok(());
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("claude-bottle-git-gate"));
    let access = Access::new(&remote.upstream, config.proxy.as_ref(), &exe);
    let url = remote.upstream.url();
    let forwarded = forward::forward(&access, git_dir, url, &allowed, atomic);
    let failed = forwarded
        .answers
        .iter()
        .any(|a| matches!(a, Answer::Refused(_)));
    if failed {
        writeln!(messages, "gate: {} answered:", escape_line(url))?;
        for line in forwarded.stderr.lines().filter(|l| !l.trim().is_empty()) {
            writeln!(messages, "gate:   {}", escape_line(line.trim_end()))?;
        }
    }
    let mut answers = forwarded.answers.into_iter();
    for c in commands {
        if let State::Allowed { entry, .. } = &c.state {
            let answer = answers.next().unwrap_or_else(|| {
                Answer::Refused("the gate lost the upstream's answer".to_owned())
            });
            c.state = State::Forwarded {
                entry: entry.clone(),
                answer,
            };
        }
    }
    Ok(())
}

fn record(remote: &str, c: &Command) -> Record {
    let base = |verdict| Record::new(remote, &c.refname, &c.old, &c.new, verdict);
    match &c.state {
        State::Forwarded { entry, answer } => {
            let r = base(Verdict::Allowed).entry(entry);
            match answer {
                Answer::Accepted => r.upstream(UpstreamAnswer::Accepted),
                Answer::Refused(reason) => r.upstream(UpstreamAnswer::Refused).reason(reason),
            }
        }
        State::Refused(reason) => base(Verdict::Refused).reason(reason),
        State::Allowed { entry, .. } => base(Verdict::Allowed).entry(entry),
    }
}

fn unexpected_end(during: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("receive-pack closed the pipe during {during}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "eab1a733f9ad8a00ca7de5bf17fd747456df7909";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn packets(lines: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in lines {
            if l.is_empty() {
                pktline::flush(&mut out).expect("flush");
            } else {
                pktline::write_line(&mut out, l).expect("line");
            }
        }
        out
    }

    fn read_all(bytes: &[u8]) -> Vec<String> {
        let mut input = io::Cursor::new(bytes);
        let mut out = Vec::new();
        while let Some(p) = pktline::read(&mut input).expect("packet") {
            out.push(match p {
                Packet::Data(d) => String::from_utf8_lossy(&d).into_owned(),
                Packet::Flush => "<flush>".to_owned(),
            });
        }
        out
    }

    #[test]
    fn the_negotiation_answers_version_1_and_notes_atomic() {
        let input = packets(&[b"version=1\0atomic push-options", b""]);
        let mut out = Vec::new();
        assert!(negotiate(&mut io::Cursor::new(input), &mut out).expect("negotiate"));
        assert_eq!(read_all(&out), ["version=1", "<flush>"]);
        let input = packets(&[b"version=1", b""]);
        assert!(!negotiate(&mut io::Cursor::new(input), &mut Vec::new()).expect("plain"));
        let input = packets(&[b"version=2", b""]);
        assert!(negotiate(&mut io::Cursor::new(input), &mut Vec::new()).is_err());
        assert!(negotiate(&mut io::Cursor::new(Vec::new()), &mut Vec::new()).is_err());
    }

    #[test]
    fn every_ref_is_answered_in_order_and_audited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("gate.toml");
        std::fs::write(
            &config,
            "version = 1\n[[remote]]\nname = \"origin\"\nupstream = \"https://h/a.git\"\npush = [\"claude/*\"]\n",
        )
        .expect("config");
        let audit = dir.path().join("audit.jsonl");
        let args = HookArgs {
            config: ConfigArg {
                path: config.clone(),
            },
            audit: Some(audit.clone()),
            name: "origin".to_owned(),
        };
        let create_main = format!("{Z} {A} refs/heads/main");
        let delete = format!("{A} {Z} refs/heads/claude/x");
        let bad = format!("{Z} {A} refs/heads/a..b");
        let input = packets(&[
            b"version=1\0atomic",
            b"",
            create_main.as_bytes(),
            delete.as_bytes(),
            bad.as_bytes(),
            b"",
        ]);
        let mut out = Vec::new();
        let mut messages = Vec::new();
        receive(&args, io::Cursor::new(input), &mut out, &mut messages).expect("receive");
        let answers = read_all(&out);
        assert_eq!(answers[..2], ["version=1", "<flush>"]);
        assert_eq!(
            answers[2..],
            [
                "ng refs/heads/main no push pattern matches this ref (push: claude/*)".to_owned(),
                "ng refs/heads/claude/x deleting needs a matching pattern that allows delete (claude/*)".to_owned(),
                "ng refs/heads/a..b \"refs/heads/a..b\" is not a ref name the gate accepts: reference name cannot contain repeated dots".to_owned(),
                "<flush>".to_owned(),
            ]
        );
        let lines = std::fs::read_to_string(&audit).expect("audit");
        assert_eq!(lines.lines().count(), 3);
        assert!(
            lines
                .lines()
                .all(|l| l.contains("\"decision\":\"refused\""))
        );

        // A remote the file does not have: closed, with the reason.
        let args = HookArgs {
            name: "other".to_owned(),
            ..args
        };
        let input = packets(&[b"version=1", b"", create_main.as_bytes(), b""]);
        let mut out = Vec::new();
        receive(&args, io::Cursor::new(input), &mut out, &mut messages).expect("receive");
        let answers = read_all(&out);
        assert!(
            answers[2]
                .starts_with("ng refs/heads/main the gate cannot take pushes: no remote \"other\""),
            "{answers:?}"
        );
    }
}
