//! How Docker's Dockerfile parser splits a text into instructions: parser directives (the escape
//! token), comments, blank lines and line continuations. The one scanner of Dockerfile texts:
//! supervise reads the bottle's current Dockerfile with it when a capability is filed, and the
//! launcher every Dockerfile it appends to or reads (its `state/dockerfile/syntax.rs` re-exports
//! it).
//!
//! Modelled on the parser the engine's builders share (`frontend/dockerfile/parser` of
//! moby/buildkit, vendored by the classic builder): a line is read up to `\n`, trailing `\r`s
//! dropped; the first line loses a UTF-8 byte-order mark; an instruction's first line loses its
//! leading whitespace; a line whose first non-blank character is `#` is a comment, skipped also
//! inside a continuation; a line ending in the escape token (then spaces or tabs only) continues
//! on the next line that is neither blank nor a comment. Heredocs (BuildKit only) are not
//! modelled: approved lines may not open one (the protocol refuses `<<`).

use super::{DEFAULT_ESCAPE, continues};

/// The directives the parser knows. Any other `# key=value` line ends the directives, as does
/// any line that is not one (an instruction, a plain comment, a blank line). Docker 20.10's
/// parser does not know `check` yet and so stops there; [`super::check_capability`] refuses a
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
    for line in lines(dockerfile) {
        let Some((key, value)) = directive(line.trim_start()) else {
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

/// The lines of `dockerfile` as the parser reads them, numbered from 0 by their position: cut at
/// `\n` only, trailing `\r`s dropped, the first one without a UTF-8 byte-order mark. A text that
/// ends in `\n` has an empty last line.
pub fn lines(dockerfile: &str) -> impl Iterator<Item = &str> {
    dockerfile.split('\n').enumerate().map(|(n, raw)| {
        let raw = if n == 0 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        raw.trim_end_matches('\r')
    })
}

/// One instruction as the parser reads it, and the lines it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Its lines joined: the first without its leading whitespace, each continuation line
    /// appended without the escape token and line end; comment and blank lines inside left out.
    pub text: String,
    /// The [`lines`] it starts and ends on: its first line, and the last that holds part of it
    /// (comment and blank lines after it belong to no instruction).
    pub first_line: usize,
    pub last_line: usize,
    /// The text ends inside its continuation: whatever is appended to the text joins it.
    pub open: bool,
}

impl Instruction {
    /// The word that names the instruction, as written (`FROM`, `from`): what comes before the
    /// first whitespace.
    pub fn keyword(&self) -> &str {
        self.text
            .split_once(char::is_whitespace)
            .map_or(self.text.as_str(), |(keyword, _)| keyword)
    }

    /// Whether the keyword is `keyword`, in any case, as the parser compares it.
    pub fn is(&self, keyword: &str) -> bool {
        self.keyword().eq_ignore_ascii_case(keyword)
    }

    /// What follows the keyword, trimmed; `None` when nothing does, not even whitespace.
    pub fn arguments(&self) -> Option<&str> {
        self.text
            .split_once(char::is_whitespace)
            .map(|(_, rest)| rest.trim())
    }
}

/// The instructions of `dockerfile` in order, as the parser joins them: what every reader of a
/// Dockerfile text goes through.
pub fn parse(dockerfile: &str) -> Vec<Instruction> {
    let escape = escape_token(dockerfile);
    // The parser's continuation pattern: the escape token, then spaces and tabs to the end, but
    // not after another escape token (`a\\` ends an instruction; Docker 20.10.24 reads it so).
    // The line without the token, and whether the instruction ends with it.
    let cut = |line: &str| -> (String, bool) {
        let body = line.trim_end_matches([' ', '\t']);
        match body.strip_suffix(escape) {
            Some(head) if !head.ends_with(escape) => (head.to_owned(), false),
            _ => (line.to_owned(), true),
        }
    };
    let is_comment = |line: &str| line.trim_start().starts_with('#');
    let mut out = Vec::new();
    let mut lines = lines(dockerfile).enumerate();
    while let Some((first_line, raw)) = lines.next() {
        let first = raw.trim_start();
        if first.starts_with('#') {
            continue;
        }
        let (mut text, mut end) = cut(first);
        if end && text.is_empty() {
            continue;
        }
        let mut last_line = first_line;
        while !end {
            let Some((n, next)) = lines.next() else { break };
            if is_comment(next) || next.trim_start().is_empty() {
                continue;
            }
            let (part, e) = cut(next);
            text.push_str(&part);
            (last_line, end) = (n, e);
        }
        out.push(Instruction {
            text,
            first_line,
            last_line,
            open: !end,
        });
    }
    out
}

/// The text of each instruction of `dockerfile` ([`parse`]).
pub fn instructions(dockerfile: &str) -> Vec<String> {
    parse(dockerfile).into_iter().map(|i| i.text).collect()
}

/// Whether a parser reading `dockerfile` may still be inside a line continuation at its end: the
/// last line of its last instruction ends in `\` or in the escape token (trailing whitespace of
/// any kind ignored, a doubled token too). Whatever is appended to such a text joins its last
/// instruction.
pub fn ends_in_continuation(dockerfile: &str) -> bool {
    let escape = escape_token(dockerfile);
    parse(dockerfile)
        .last()
        .and_then(|i| lines(dockerfile).nth(i.last_line))
        .is_some_and(|l| continues(l, DEFAULT_ESCAPE) || continues(l, escape))
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
            // Looser than the parser: a doubled token, trailing whitespace of any kind.
            ("FROM x\nRUN a \\\\\n", true),
            ("FROM x\nRUN a \\\u{a0}\n", true),
            ("\u{feff}RUN a \\\r\n", true),
            ("", false),
            ("# only a comment \\\n", false),
        ] {
            assert_eq!(ends_in_continuation(text), open, "{text:?}");
        }
    }

    /// Each instruction's text, first and last line, and whether the text ends inside it.
    fn spans(text: &str) -> Vec<(String, usize, usize, bool)> {
        parse(text)
            .into_iter()
            .map(|i| (i.text, i.first_line, i.last_line, i.open))
            .collect()
    }

    fn span(text: &str, first: usize, last: usize) -> (String, usize, usize, bool) {
        (text.to_owned(), first, last, false)
    }

    #[test]
    fn an_instruction_spans_its_first_line_to_its_last_continued_one() {
        // Comment and blank lines (a `\r\n` one too) inside a continuation are within its span;
        // those after it belong to nothing.
        assert_eq!(
            spans("FROM base \\\n  # note\n\r\n  AS final\n# after\n\nRUN true\n"),
            [span("FROM base   AS final", 0, 3), span("RUN true", 6, 6)]
        );
        // Under `# escape=``, a backtick continues and a backslash does not; the directive is
        // line 0 and no instruction.
        assert_eq!(
            spans("# escape=`\nFROM a `\n\n  AS b\nRUN c \\\nUSER d\n"),
            [
                span("FROM a   AS b", 1, 3),
                span("RUN c \\", 4, 4),
                span("USER d", 5, 5)
            ]
        );
        // A byte-order mark and CRLF line ends are not part of any text; a last line without a
        // newline is a line.
        assert_eq!(
            spans("\u{feff}FROM a\r\nRUN b \\\r\n  c\r\nUSER 1"),
            [
                span("FROM a", 0, 0),
                span("RUN b   c", 1, 2),
                span("USER 1", 3, 3)
            ]
        );
        // Multi-stage: each FROM is its own instruction, indented or in any case.
        assert_eq!(
            spans("FROM a AS build\nRUN make\n  from b\nCOPY --from=build /x /x"),
            [
                span("FROM a AS build", 0, 0),
                span("RUN make", 1, 1),
                span("from b", 2, 2),
                span("COPY --from=build /x /x", 3, 3)
            ]
        );
        // The text ends inside a continuation: the instruction is open, and ends on the last
        // line that holds part of it, not on the comment after.
        assert_eq!(
            spans("FROM a\nRUN b \\\n# c\n"),
            [span("FROM a", 0, 0), ("RUN b ".to_owned(), 1, 1, true)]
        );
        assert!(spans("").is_empty());
        assert!(spans("\u{feff}\n# c\n \t\r\n").is_empty());
    }

    #[test]
    fn lines_are_numbered_as_the_parser_counts_them() {
        assert_eq!(
            lines("\u{feff}# escape=`\r\nFROM a\r\r\n\nRUN b").collect::<Vec<_>>(),
            ["# escape=`", "FROM a", "", "RUN b"]
        );
        assert_eq!(lines("FROM a\n").collect::<Vec<_>>(), ["FROM a", ""]);
        // A byte-order mark counts only at the very start.
        assert_eq!(
            lines("a\n\u{feff}b").collect::<Vec<_>>(),
            ["a", "\u{feff}b"]
        );
    }

    #[test]
    fn the_keyword_is_the_first_word_and_the_arguments_the_rest() {
        let at = |text: &str| Instruction {
            text: text.to_owned(),
            first_line: 0,
            last_line: 0,
            open: false,
        };
        let user = at("user  1000:1000 ");
        assert_eq!(
            (user.keyword(), user.is("USER"), user.arguments()),
            ("user", true, Some("1000:1000"))
        );
        // Nothing after the keyword, not even a space: no arguments.
        let bare = at("USER");
        assert_eq!((bare.keyword(), bare.arguments()), ("USER", None));
        assert_eq!(at("USER ").arguments(), Some(""));
        assert!(!at("USERS x").is("USER"));
        // Any whitespace ends the keyword.
        let run = at("RUN\tmake all");
        assert_eq!((run.keyword(), run.arguments()), ("RUN", Some("make all")));
    }
}
