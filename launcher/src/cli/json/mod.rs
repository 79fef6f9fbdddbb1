//! The `--json` documents of `queue`, `show`, `list` and `info`: one serde type per shape, built
//! from the launcher's own values, and the one writer that prints them.
//!
//! The shapes are a contract with the operator's scripts (docs/queue.md, "Scripting with
//! --json"): every document carries [`VERSION`]; within a version fields are only ever added.
//! They are types of their own, not the queue files' or the plan's, so that a change there
//! cannot change what a script reads without a change here.
//!
//! Times are Unix seconds (UTC), like the queue files; ages are seconds; states and kinds are
//! lowercase strings; text the agent or a build wrote is a JSON string as it was written.

pub mod change;
pub mod info;
pub mod list;
pub mod proposal;

use std::fmt::Write as _;
use std::io::Write as _;

use claude_bottle_protocol::escape_line;
use serde::Serialize;

use super::Error;
use crate::error::Kind;

/// The version every document carries as `"version"`.
pub const VERSION: u32 = 1;

/// Prints `doc` on stdout as one pretty-printed JSON document and a newline.
pub fn print(doc: &impl Serialize) -> Result<(), Error> {
    let text = to_text(doc)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::new(Kind::Internal, format!("failed to write to stdout: {e}")))
}

/// `doc` as [`print`] writes it.
pub fn to_text(doc: &impl Serialize) -> Result<String, Error> {
    let json = serde_json::to_string_pretty(doc).map_err(|e| {
        Error::new(
            Kind::Internal,
            format!("failed to write the JSON document: {e}"),
        )
    })?;
    let mut text = terminal_safe(&json);
    text.push('\n');
    Ok(text)
}

/// `json` with every character a terminal would act on written as a `\uXXXX` escape.
///
/// serde_json escapes the C0 controls only; a C1 control (U+009B is a CSI to some terminals), a
/// bidi override or an invisible character in the agent's text would still reach a terminal that
/// shows the document. JSON's own escape keeps the value: a parser reads back the very string.
/// The document's structure is ASCII, so such a character can only stand inside a string, where
/// its escape means the same character.
fn terminal_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut buf = [0u8; 4];
    for c in json.chars() {
        // One definition of what a terminal must not receive: the protocol's escape.
        let hidden = c == '\u{7f}'
            || (!c.is_ascii()
                && matches!(
                    escape_line(c.encode_utf8(&mut buf)),
                    std::borrow::Cow::Owned(_)
                ));
        if hidden {
            for unit in c.encode_utf16(&mut [0u16; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_pretty_and_end_in_a_newline() {
        #[derive(Serialize)]
        struct Doc {
            version: u32,
            a: Vec<u8>,
        }
        let text = to_text(&Doc {
            version: VERSION,
            a: vec![1],
        })
        .expect("json");
        assert_eq!(text, "{\n  \"version\": 1,\n  \"a\": [\n    1\n  ]\n}\n");
    }

    #[test]
    fn characters_a_terminal_acts_on_are_escaped_and_read_back_the_same() {
        let hostile = "a\u{1b}[2J\u{9b}31m\u{202e}b\u{7f}\u{200b}\u{e0041}\r\n\tc\\d";
        let text = to_text(&serde_json::json!({ "reason": hostile })).expect("json");
        for c in [
            '\u{1b}',
            '\u{9b}',
            '\u{202e}',
            '\u{7f}',
            '\u{200b}',
            '\u{e0041}',
            '\r',
            '\t',
        ] {
            assert!(!text.contains(c), "raw {c:?} in {text:?}");
        }
        assert!(
            text.contains(r"\u009b") && text.contains(r"\u202e"),
            "{text}"
        );
        // Beyond the BMP: a surrogate pair, as JSON writes it.
        assert!(text.contains(r"\udb40\udc41"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back["reason"], hostile);
    }

    #[test]
    fn letters_emoji_and_cjk_are_kept_as_they_are() {
        let text = to_text(&serde_json::json!({ "s": "café 🚀 漢字 ✔️" })).expect("json");
        assert!(text.contains("café 🚀 漢字 ✔️"), "{text}");
    }
}
