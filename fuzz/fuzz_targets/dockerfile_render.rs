//! Fuzzes how an approved capability is rendered into the per-bottle Dockerfile and shown.
//!
//! Input: the Dockerfile's text, then NUL-separated parts, each an approved Dockerfile line or,
//! prefixed `apt:`, an apt package. Invariants when `with_capability` accepts:
//! - the result is the old text (plus a newline where it had none) followed by the new lines;
//! - the parser model reads the old instructions unchanged, then exactly the new lines, one
//!   instruction each, with the escape character unchanged and no new line continuing;
//! - the approved lines run as root (the last USER before them is root);
//! - applying the same proposal again changes nothing;
//! - the diff `show` prints is a pure append whose `+` lines are the new lines, and its
//!   outside-the-context marks only add lines.

#![no_main]

use claude_bottle::state::dockerfile::{
    OUTSIDE_CONTEXT_MARK, ROOT_STEP, flag_outside_context, marker, reads_outside_context, syntax,
    unified_diff, with_capability,
};
use claude_bottle_protocol::{Capability, ProposalId, limits};
use libfuzzer_sys::fuzz_target;

fn is_user(instruction: &str) -> Option<&str> {
    let (word, rest) = instruction.split_once(char::is_whitespace)?;
    word.eq_ignore_ascii_case("USER").then(|| rest.trim())
}

fn is_root(user: &str) -> bool {
    matches!(user.split(':').next(), Some("root" | "0"))
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let mut parts = input.split('\0');
    let text = parts.next().unwrap_or_default();
    let mut cap = Capability::default();
    for p in parts.take(limits::MAX_DOCKERFILE_LINES + 2) {
        match p.strip_prefix("apt:") {
            Some(a) => cap.apt.push(a.to_owned()),
            None => cap.dockerfile_lines.push(p.to_owned()),
        }
    }
    // Whatever the line, marking it never fails.
    for l in text
        .split('\n')
        .chain(cap.dockerfile_lines.iter().map(String::as_str))
    {
        let _ = reads_outside_context(l);
    }

    let id = ProposalId::new("p-1").expect("a valid id");
    let Ok(out) = with_capability(text, &id, &cap) else {
        return;
    };
    let marker = marker(&id);
    if text.lines().any(|l| l.trim_end() == marker) {
        assert_eq!(out, text, "a proposal applied twice changes nothing");
        return;
    }

    // The old text, then the new lines.
    assert!(out.starts_with(text));
    let mut tail = &out[text.len()..];
    if !text.is_empty() && !text.ends_with('\n') {
        tail = tail
            .strip_prefix('\n')
            .expect("a newline ends the old text");
    }
    let added: Vec<&str> = tail
        .strip_suffix('\n')
        .expect("the result ends with a newline")
        .split('\n')
        .collect();
    assert_eq!(added[0], marker);
    let mut rest = &added[1..];
    let root_step = rest.first() == Some(&ROOT_STEP);
    if root_step {
        rest = &rest[1..];
    }
    if !cap.apt.is_empty() {
        let apt = rest[0];
        assert!(
            apt.starts_with("RUN apt-get update && apt-get install "),
            "{apt}"
        );
        // Each package exactly as named (apt-get's `name:native[=version]`), one word each.
        for p in &cap.apt {
            let arg = match p.split_once('=') {
                Some((name, version)) => format!("{name}:native={version}"),
                None => format!("{p}:native"),
            };
            assert!(apt.split(' ').any(|w| w == arg), "{arg} in {apt}");
        }
        rest = &rest[1..];
    }
    assert_eq!(
        &rest[..cap.dockerfile_lines.len()],
        &cap.dockerfile_lines[..]
    );
    let restored = &rest[cap.dockerfile_lines.len()..];
    assert!(restored.len() <= 1 && restored.iter().all(|l| l.starts_with("USER ")));

    // One instruction a line, read as the engine reads them.
    let escape = syntax::escape_token(text);
    assert_eq!(syntax::escape_token(&out), escape);
    for l in &added {
        assert!(
            !syntax::continues(l, escape) && !syntax::continues(l, '\\'),
            "{l:?}"
        );
    }
    let before = syntax::instructions(text);
    let after = syntax::instructions(&out);
    assert_eq!(&after[..before.len()], &before[..]);
    let new: Vec<&str> = added
        .iter()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(&after[before.len()..], &new[..]);

    // The approved lines run as root: the last USER instruction before them is root, and the
    // image's user before the step is what follows it, when numeric.
    let last_user = before.iter().rev().find_map(|i| is_user(i));
    let step_user = after[..after.len() - new.len() + usize::from(root_step)]
        .iter()
        .rev()
        .find_map(|i| is_user(i));
    if !cap.dockerfile_lines.is_empty() || !cap.apt.is_empty() {
        assert!(
            step_user.is_some_and(is_root),
            "the step runs as {step_user:?} (last USER before it: {last_user:?})"
        );
    }

    // Applying it again changes nothing.
    assert_eq!(
        with_capability(&out, &id, &cap).expect("accepted once, accepted again"),
        out
    );

    // What `show` prints: a pure append, its `+` lines the new lines; marks only add lines.
    let diff = unified_diff(text, &out, "a/Dockerfile", "b/Dockerfile");
    let body: Vec<&str> = diff.split('\n').skip(2).collect();
    assert!(!body.iter().any(|l| l.starts_with('-')), "{diff}");
    let plus: Vec<&str> = body.iter().filter_map(|l| l.strip_prefix('+')).collect();
    assert_eq!(plus, added, "{diff}");
    let flagged = flag_outside_context(&diff);
    let unflagged: String = flagged
        .split_inclusive('\n')
        .filter(|l| !l.starts_with(OUTSIDE_CONTEXT_MARK))
        .collect();
    assert_eq!(unflagged, diff);
});
