//! How Docker's Dockerfile parser splits a text into instructions, as far as appending approved
//! lines depends on it: parser directives (the escape token), comments, blank lines and line
//! continuations.
//!
//! Modelled on the parser the engine's builders share (`frontend/dockerfile/parser` of
//! moby/buildkit, vendored by the classic builder): a line is read up to `\n`, trailing `\r`s
//! dropped; the first line loses a UTF-8 byte-order mark; an instruction's first line loses its
//! leading whitespace; a line whose first non-blank character is `#` is a comment, skipped also
//! inside a continuation; a line ending in the escape token (then spaces or tabs only) continues
//! on the next line that is neither blank nor a comment. Heredocs (BuildKit only) are not
//! modelled: approved lines may not open one (the protocol refuses `<<`).

/// The escape token without a `# escape=` directive.
pub const DEFAULT_ESCAPE: char = '\\';

/// The directives the parser knows. Any other `# key=value` line ends the directives, as does
/// any line that is not one (an instruction, a plain comment, a blank line). Docker 20.10's
/// parser does not know `check` yet and so stops there; [`super::with_capability`] refuses a
/// trailing `\` whatever the directives say, which covers a parser that stops earlier.
const DIRECTIVES: [&str; 3] = ["syntax", "escape", "check"];

/// The escape token `dockerfile`'s parser directives set: `` ` `` or `\`.
///
/// Directives are `# key=value` comments at the very top, before any instruction, other comment
/// or blank line; the key is case-insensitive, spaces are allowed around `#`, the key and `=`
/// (`#escape=`` ` ``, `# ESCAPE = `` ` ``). A directive given twice, or an escape value other
/// than `` ` `` and `\`, fails the build; the default is returned then, since nothing is built.
pub fn escape_token(dockerfile: &str) -> char {
    let mut escape = DEFAULT_ESCAPE;
    let mut seen: Vec<String> = Vec::new();
    for (n, raw) in dockerfile.split('\n').enumerate() {
        let line = if n == 0 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        let Some((key, value)) = directive(line.trim_end_matches(['\r', '\n']).trim_start()) else {
            break;
        };
        if seen.contains(&key) {
            return DEFAULT_ESCAPE;
        }
        if key == "escape" {
            escape = match value {
                "`" => '`',
                "\\" => '\\',
                _ => return DEFAULT_ESCAPE,
            };
        }
        seen.push(key);
    }
    escape
}

/// `line` (left-trimmed) as a known directive: its lowercase key and its value. The parser's
/// pattern, after `#` and any whitespace, is `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` with Go's
/// ASCII `\s` (`[\t\n\f\r ]`).
fn directive(line: &str) -> Option<(String, &str)> {
    let is_re_space = |c: char| matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ');
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, rest) = rest.split_at(key_len);
    let rest = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    if rest.is_empty() {
        return None;
    }
    // `\s*(.+?)\s*$`: the value is what remains trimmed, or, when only spaces remain, one of
    // them (which no directive accepts as a value, but it is still a directive).
    let trimmed = rest.trim_matches(is_re_space);
    let value = if trimmed.is_empty() {
        &rest[..1]
    } else {
        trimmed
    };
    let key = key.to_ascii_lowercase();
    DIRECTIVES.contains(&key.as_str()).then_some((key, value))
}

/// Whether `line` ends in the escape token `escape`, which makes the parser join the next line
/// to it. Trailing whitespace of any kind is ignored, more than the parser's spaces and tabs, so
/// that a doubt refuses rather than joins.
pub fn continues(line: &str, escape: char) -> bool {
    line.trim_end().ends_with(escape)
}

/// Whether a parser reading `dockerfile` is still inside a line continuation at its end: the last
/// line that is neither blank nor a comment ends in `\` or in the escape token. Whatever is
/// appended to such a text joins its last instruction.
pub fn ends_in_continuation(dockerfile: &str) -> bool {
    let escape = escape_token(dockerfile);
    let text = dockerfile.strip_prefix('\u{feff}').unwrap_or(dockerfile);
    text.split('\n')
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| continues(l, DEFAULT_ESCAPE) || continues(l, escape))
}

/// The instructions of `dockerfile` as the parser joins them: each with its continuation lines
/// appended (escape token and line ends removed), comments and blank lines left out.
pub fn instructions(dockerfile: &str) -> Vec<String> {
    let escape = escape_token(dockerfile);
    // The parser's continuation pattern: the escape token, then spaces and tabs to the end, but
    // not after another escape token (`a\\` ends an instruction; Docker 20.10.24 reads it so).
    let cut = |line: &str| -> (String, bool) {
        let body = line.trim_end_matches([' ', '\t']);
        match body.strip_suffix(escape) {
            Some(head) if !head.ends_with(escape) => (head.to_owned(), false),
            _ => (line.to_owned(), true),
        }
    };
    let is_comment = |line: &str| line.trim_start().starts_with('#');
    let mut out = Vec::new();
    let mut lines = dockerfile.split('\n').enumerate();
    while let Some((n, raw)) = lines.next() {
        let raw = if n == 0 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        let first = raw.trim_end_matches(['\r', '\n']).trim_start();
        if first.starts_with('#') {
            continue;
        }
        let (mut joined, mut end) = cut(first);
        if end && joined.is_empty() {
            continue;
        }
        while !end {
            let Some((_, next)) = lines.next() else { break };
            let next = next.trim_end_matches(['\r', '\n']);
            if is_comment(next) || next.trim_start().is_empty() {
                continue;
            }
            let (part, e) = cut(next);
            joined.push_str(&part);
            end = e;
        }
        out.push(joined);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_escape_directive_counts_only_at_the_very_top() {
        for (text, escape) in [
            ("# escape=`\nFROM x\n", '`'),
            ("#escape=`\nFROM x\n", '`'),
            ("  #  ESCAPE =  `  \r\nFROM x\n", '`'),
            ("\u{feff}# escape=`\nFROM x\n", '`'),
            ("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n", '`'),
            ("# check=skip=all\n#Escape=`\nFROM x\n", '`'),
            ("# escape=\\\nFROM x\n", '\\'),
            // Not at the top: after an instruction, a plain comment, a blank line, an
            // unknown directive.
            ("FROM x\n# escape=`\n", '\\'),
            ("# a comment\n# escape=`\nFROM x\n", '\\'),
            ("\n# escape=`\nFROM x\n", '\\'),
            ("# foo=bar\n# escape=`\nFROM x\n", '\\'),
            // Not a directive: no value, a key that is not one word.
            ("# escape=\n# escape=`\nFROM x\n", '\\'),
            ("# es-cape=`\nFROM x\n", '\\'),
            // Invalid: the build fails, nothing to continue.
            ("# escape=x\nFROM x\n", '\\'),
            ("# escape=`\n# escape=`\nFROM x\n", '\\'),
            ("", '\\'),
        ] {
            assert_eq!(escape_token(text), escape, "{text:?}");
        }
    }

    #[test]
    fn instructions_join_continuations_and_skip_comments() {
        assert_eq!(
            instructions("FROM x\nRUN a \\\n  # note\n\n  b\nUSER 1\n"),
            ["FROM x", "RUN a   b", "USER 1"]
        );
        assert_eq!(
            instructions("# escape=`\nFROM x\nRUN a `\nb\nRUN c \\\nRUN d\n"),
            ["FROM x", "RUN a b", "RUN c \\", "RUN d"]
        );
        // A continuation at the end of the text simply ends.
        assert_eq!(instructions("FROM x\nRUN a \\"), ["FROM x", "RUN a "]);
        // A doubled escape character is an escaped one, not a continuation.
        assert_eq!(
            instructions("FROM x\nRUN a \\\\\nUSER 1\n"),
            ["FROM x", "RUN a \\\\", "USER 1"]
        );
    }

    #[test]
    fn a_text_ends_in_a_continuation_by_its_last_instruction_line() {
        for (text, open) in [
            ("FROM x\nRUN a\n", false),
            ("FROM x\nRUN a \\\n", true),
            ("FROM x\nRUN a \\ \t\n# trailing comment\n\n", true),
            ("# escape=`\nFROM x\nRUN a `\n", true),
            ("# escape=`\nFROM x\nRUN dir C:\\\n", true),
            ("FROM x\nRUN echo `date`\n", false),
        ] {
            assert_eq!(ends_in_continuation(text), open, "{text:?}");
        }
    }
}
