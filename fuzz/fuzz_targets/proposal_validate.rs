//! Fuzzes proposal validation and the escaping of agent text for the operator's terminal.
//!
//! The input is read twice: as a queue file (a proposal), and as raw text for the field
//! validators and the escapers. Invariants:
//! - a proposal that parses is valid, and so is its normalized form; normalizing twice changes
//!   nothing; the fields that become a Dockerfile line, a package or a host are plain text (need
//!   no escaping), and so is the request line `queue` and `show` print;
//! - a Dockerfile line, package or host the validators accept is plain, within its limits, and
//!   (a host) lowercase and stable when parsed again;
//! - `escape_line` leaves nothing a terminal acts on, is idempotent and unambiguous (it decodes
//!   back to its input); `escape` keeps line feeds and escapes each line as `escape_line` does.

#![no_main]

use claude_bottle_protocol::{
    HostName, Proposal, ProposalKind, check_plain, escape, escape_line, from_json, limits,
    validate_apt_package, validate_dockerfile_line,
};
use libfuzzer_sys::fuzz_target;

/// Whether `c` may appear in escaped text: anything `check_plain` accepts, and the look-alike
/// spaces it refuses but `escape` keeps (they print as what they are).
fn printable(c: char) -> bool {
    let fake_space =
        (c != ' ' && c.is_whitespace() && !c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}'))
            || c == '\u{2800}';
    fake_space || check_plain("c", c.encode_utf8(&mut [0; 4])).is_ok()
}

/// The inverse of `escape_line` for text it changed: `\\`, `\n`, `\r`, `\t`, `\xNN`, `\u{…}`.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            'u' => {
                if chars.next()? != '{' {
                    return None;
                }
                let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

fn plain(s: &str) -> bool {
    escape_line(s) == s
}

fn check_escapes(s: &str) {
    let line = escape_line(s);
    assert!(line.chars().all(printable), "{s:?} -> {line:?}");
    assert!(!line.contains('\n'));
    assert_eq!(escape_line(&line), line, "idempotent");
    if line != s {
        assert_eq!(unescape(&line).as_deref(), Some(s), "unambiguous: {line:?}");
    }
    let text = escape(s);
    assert_eq!(
        text.split('\n').count(),
        s.split('\n').count(),
        "line feeds kept"
    );
    let per_line: Vec<String> = s.split('\n').map(|l| escape_line(l).into_owned()).collect();
    assert_eq!(text, per_line.join("\n"));
    assert_eq!(escape(&text), text, "idempotent");
}

fn check_kind(kind: &ProposalKind) {
    kind.validate().expect("a parsed proposal is valid");
    let n = kind.normalized();
    n.validate().expect("its normalized form is valid");
    assert_eq!(n.normalized(), n, "normalizing is idempotent");
    match kind {
        ProposalKind::Capability(c) => {
            for l in &c.dockerfile_lines {
                assert!(plain(l) && l.len() <= limits::MAX_DOCKERFILE_LINE, "{l:?}");
            }
            for p in &c.apt {
                assert!(plain(p) && !p.contains(char::is_whitespace), "{p:?}");
            }
        }
        ProposalKind::Egress(e) => {
            let h = e.host.as_str();
            assert!(plain(h) && h == h.to_ascii_lowercase(), "{h:?}");
        }
    }
    // The request line `queue` and `show` print needs no escaping.
    let summary = kind.to_string();
    assert!(plain(&summary), "{summary:?}");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = from_json::<Proposal>(data) {
        check_kind(&p.kind);
    }
    let text = String::from_utf8_lossy(data);
    check_escapes(&text);
    for field in text.split('\0') {
        if validate_dockerfile_line(field).is_ok() {
            assert!(plain(field), "{field:?}");
            assert!(!field.trim().is_empty() && field.len() <= limits::MAX_DOCKERFILE_LINE);
        }
        if validate_apt_package(field).is_ok() {
            assert!(
                plain(field) && !field.contains(char::is_whitespace),
                "{field:?}"
            );
            assert!(
                !field.ends_with('-'),
                "apt-get reads a trailing '-' as remove: {field:?}"
            );
        }
        if let Ok(h) = HostName::new(field) {
            assert!(plain(h.as_str()) && h.as_str() == h.as_str().to_ascii_lowercase());
            assert_eq!(HostName::new(h.as_str()).ok().as_ref(), Some(&h), "stable");
            assert_eq!(h.to_string(), h.as_str());
        }
    }
});
