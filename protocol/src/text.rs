//! Text from the agent, made safe for a terminal: refused where it becomes a Dockerfile line, a
//! package, a host or a path ([`check_plain`]); escaped wherever an operator reads it
//! ([`escape`], [`escape_line`]).
//!
//! A terminal obeys what it is sent: ESC and CSI sequences move the cursor and erase, a backspace
//! or carriage return overwrites, a bidi override draws the rest of a line reversed, and
//! zero-width or look-alike characters hide or fake a word. Any of these in a proposal could show
//! the operator one command while another is applied.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::ProtocolError;

/// What makes `c` unfit for a terminal, if anything: the kind of character, for error messages.
///
/// Controls (C0, DEL, C1), every Unicode format character (`Cf`: bidi controls, zero-width
/// characters, the BOM, invisible operators, tag characters…), the line and paragraph
/// separators, and the blank fillers and variation selectors that draw nothing but can carry
/// text. Ordinary letters, marks, symbols, emoji (with their U+FE0E/U+FE0F presentation
/// selectors) and CJK are not hidden.
fn hidden(c: char) -> Option<&'static str> {
    let kind = match c {
        '\u{0}'..='\u{1f}' | '\u{7f}' => "a control character",
        '\u{80}'..='\u{9f}' => "a C1 control character",
        '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
            "a bidirectional control"
        }
        '\u{2028}' | '\u{2029}' => "a line or paragraph separator",
        // The rest of general category Cf (Unicode 16), by block.
        '\u{ad}'
        | '\u{600}'..='\u{605}'
        | '\u{6dd}'
        | '\u{70f}'
        | '\u{890}'..='\u{891}'
        | '\u{8e2}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200d}'
        | '\u{2060}'..='\u{2065}'
        | '\u{206a}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{110bd}'
        | '\u{110cd}'
        | '\u{13430}'..='\u{1343f}'
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0001}'
        | '\u{e0020}'..='\u{e007f}' => "an invisible format character",
        // Draw nothing, yet are letters or marks: used to hide text or fake a blank.
        '\u{115f}'
        | '\u{1160}'
        | '\u{3164}'
        | '\u{ffa0}'
        | '\u{34f}'
        | '\u{17b4}'
        | '\u{17b5}'
        | '\u{fe00}'..='\u{fe0d}'
        | '\u{e0100}'..='\u{e01ef}' => "an invisible character",
        _ => return None,
    };
    Some(kind)
}

/// Looks like a space, is not one: a shell or parser reads it as part of a word.
fn fake_space(c: char) -> bool {
    (c != ' ' && c.is_whitespace()) || c == '\u{2800}'
}

/// Refuses `s` if it holds anything a terminal would not show as it is: control characters
/// (TAB, line breaks and NUL included), C1 controls, bidi controls, invisible format characters,
/// and spaces other than U+0020. For fields that become a Dockerfile line, an apt package, a host
/// or a path, where what the operator reads must be exactly what is applied.
pub fn check_plain(field: &'static str, s: &str) -> Result<(), ProtocolError> {
    for (offset, c) in s.char_indices() {
        let kind = match hidden(c) {
            Some(kind) => kind,
            None if fake_space(c) => "a space-like character that is not a space",
            None => continue,
        };
        return Err(ProtocolError::refused(
            field,
            format!("holds {kind}, U+{:04X}, at byte {offset}", u32::from(c)),
            "only printable text is accepted here, since what the operator reads must be what \
             is applied: send it without control, bidi or invisible characters (one line, \
             spaces instead of tabs)",
        ));
    }
    Ok(())
}

/// An environment variable name as the launcher and the git gate accept one:
/// `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `s` for a terminal: every control, bidi, invisible or separator character becomes a visible
/// escape (`\x1b`, `\r`, `\t`, `\u{202e}`); line feeds are kept. Letters, marks, emoji and CJK
/// are kept.
///
/// A line with nothing to escape is kept as it is, backslashes included, so a Dockerfile line or
/// a path reads exactly as written. A line with something to escape has every backslash doubled
/// too, so its escapes are unambiguous. Escaping escaped text changes nothing.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !needs_escape(s, false) {
        return Cow::Borrowed(s);
    }
    let lines: Vec<Cow<'_, str>> = s.split('\n').map(escape_line).collect();
    Cow::Owned(lines.join("\n"))
}

/// Like [`escape`], and line feeds become `\n` too: for a value that must stay on one line (a
/// table cell, a log field). The whole text is one line: one escape doubles every backslash.
pub fn escape_line(s: &str) -> Cow<'_, str> {
    if !needs_escape(s, true) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < '\u{80}' && hidden(c).is_some() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if hidden(c).is_some() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether [`escape`] (or, with `newlines`, [`escape_line`]) would change `s`.
fn needs_escape(s: &str, newlines: bool) -> bool {
    s.chars()
        .any(|c| hidden(c).is_some() && (newlines || c != '\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything a terminal acts on instead of printing.
    const HOSTILE: &[char] = &[
        '\u{0}',
        '\u{7}',
        '\u{8}',
        '\t',
        '\n',
        '\u{b}',
        '\u{c}',
        '\r',
        '\u{1b}',
        '\u{7f}',
        '\u{85}',
        '\u{9b}',
        '\u{9d}',
        '\u{61c}',
        '\u{200b}',
        '\u{200c}',
        '\u{200d}',
        '\u{200e}',
        '\u{200f}',
        '\u{202a}',
        '\u{202b}',
        '\u{202c}',
        '\u{202d}',
        '\u{202e}',
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}',
        '\u{2028}',
        '\u{2029}',
        '\u{2060}',
        '\u{feff}',
        '\u{ad}',
        '\u{e0041}',
        '\u{e0100}',
        '\u{3164}',
    ];

    #[test]
    fn check_plain_refuses_every_hostile_character_and_says_where() {
        for &c in HOSTILE {
            let s = format!("RUN echo a{c}b");
            let e = check_plain("dockerfile line", &s).expect_err("refused");
            let text = e.to_string();
            assert!(text.contains(&format!("U+{:04X}", u32::from(c))), "{text}");
            assert!(text.contains("at byte 10"), "{text}");
            assert!(text.starts_with("invalid dockerfile line:"), "{text}");
            let (message, hint) = text.split_once("\nhint: ").expect("a hint line");
            assert!(
                !message.contains(c) && !hint.contains(c),
                "the message itself is plain: {text:?}"
            );
        }
        for fake in ['\u{a0}', '\u{2002}', '\u{3000}', '\u{202f}', '\u{2800}'] {
            assert!(check_plain("x", &format!("a{fake}b")).is_err(), "{fake:?}");
        }
    }

    #[test]
    fn check_plain_accepts_ordinary_text() {
        for ok in [
            "RUN pip install ruff",
            "café",
            "日本語",
            "emoji 🎉❤️",
            "a\\b",
            "",
        ] {
            assert!(check_plain("x", ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn escape_makes_every_hostile_character_visible() {
        for &c in HOSTILE {
            let s = format!("safe{c}text");
            let shown = escape_line(&s);
            assert!(
                shown.chars().all(|c| hidden(c).is_none()),
                "{c:?} -> {shown:?}"
            );
            assert!(
                shown.starts_with("safe\\") && shown.ends_with("text"),
                "{shown}"
            );
        }
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape("x\u{9b}31m"), "x\\u{9b}31m");
        assert_eq!(escape("x\u{202e}gnp.exe"), "x\\u{202e}gnp.exe");
        assert_eq!(escape("a\rb\tc"), "a\\rb\\tc");
        assert_eq!(escape("bs\u{8}\u{8}"), "bs\\x08\\x08");
    }

    #[test]
    fn escape_keeps_line_feeds_and_escape_line_does_not() {
        assert_eq!(escape("one\ntwo"), "one\ntwo");
        assert!(matches!(escape("one\ntwo"), Cow::Borrowed(_)));
        assert_eq!(escape_line("one\ntwo"), "one\\ntwo");
        assert_eq!(escape("one\ntwo\u{1b}"), "one\ntwo\\x1b");
        // Each line on its own: a hostile line leaves the backslashes of the others alone.
        assert_eq!(
            escape("RUN printf 'a\\n'\nRUN \\\u{1b}"),
            "RUN printf 'a\\n'\nRUN \\\\\\x1b"
        );
    }

    #[test]
    fn escapes_are_unambiguous_and_plain_text_is_untouched() {
        // Nothing hidden: shown exactly as written, backslashes too.
        for plain in ["RUN printf 'a\\nb' > /x", "café 日本 🎉", "C:\\x1b is text"] {
            assert_eq!(escape(plain), plain);
            assert!(matches!(escape(plain), Cow::Borrowed(_)));
        }
        // Something hidden: a literal backslash can no longer pass for an escape.
        assert_eq!(escape("\\x1b\u{1b}"), "\\\\x1b\\x1b");
        assert_ne!(escape("\\x1b\u{1b}"), escape("\u{1b}\u{1b}"));
        // Idempotent: escaped text is plain.
        for &c in HOSTILE {
            let once = escape(&format!("a\\{c}")).into_owned();
            assert_eq!(escape(&once), once);
        }
    }
}
