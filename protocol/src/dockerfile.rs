//! How Docker's builder reads one Dockerfile line: whether it continues on the next line, and
//! how its words and flags separate.
//!
//! Supervise checks a proposed line by these rules when it is filed
//! ([`crate::validate_dockerfile_line`]); the launcher scans whole Dockerfiles with them (its
//! `state/dockerfile/syntax.rs`, which adds directives, comments and continuations) and marks
//! added lines that read outside the build context. One definition, so that both read a line
//! alike.

/// The escape token without a `# escape=` directive.
pub const DEFAULT_ESCAPE: char = '\\';

/// Whether `line` ends in the escape token `escape`, which makes the parser join the next line
/// to it. Trailing whitespace of any kind is ignored, more than the parser's spaces and tabs, so
/// that a doubt refuses rather than joins.
pub fn continues(line: &str, escape: char) -> bool {
    line.trim_end().ends_with(escape)
}

/// The words of an instruction line as the builder's flag parser separates them: at whitespace,
/// and also at a character whose UTF-8 form holds byte 0x85 or 0xA0, since that parser tests
/// single bytes with Go's `unicode.IsSpace` (which takes those bytes for NEL and NO-BREAK
/// SPACE): `--chown=Š--from=x` is two flags to it. Looser than the split of the keyword, so that
/// a doubt finds one more word.
pub fn words(line: &str) -> impl Iterator<Item = &str> {
    line.split(is_word_break).filter(|w| !w.is_empty())
}

fn is_word_break(c: char) -> bool {
    let mut buf = [0u8; 4];
    c.is_whitespace()
        || c.encode_utf8(&mut buf)
            .bytes()
            .any(|b| b == 0x85 || b == 0xa0)
}

/// The words after an instruction's keyword split into its flags (the leading words that start
/// with `--`, as the builder takes them) and its arguments (the rest).
pub fn split_flags<'a>(words: impl IntoIterator<Item = &'a str>) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut flags = Vec::new();
    let mut args = Vec::new();
    for w in words {
        if args.is_empty() && w.starts_with("--") {
            flags.push(w);
        } else {
            args.push(w);
        }
    }
    (flags, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_continues_when_it_ends_in_the_escape_token() {
        for (line, escape, open) in [
            ("RUN a \\", '\\', true),
            ("RUN a\\ \t", '\\', true),
            ("RUN a \\\u{a0}", '\\', true),
            ("RUN a `", '`', true),
            ("RUN a `", '\\', false),
            ("RUN echo `date`", '\\', false),
            ("RUN a \\ b", '\\', false),
            ("", '\\', false),
        ] {
            assert_eq!(continues(line, escape), open, "{line:?} {escape:?}");
        }
    }

    #[test]
    fn words_split_where_the_flag_parser_sees_a_space() {
        assert_eq!(
            words("  COPY --chown=1:1\t--from=0 /a  /b ").collect::<Vec<_>>(),
            ["COPY", "--chown=1:1", "--from=0", "/a", "/b"]
        );
        // U+0160 is C5 A0 in UTF-8; U+00A0 is a space to Rust already.
        assert_eq!(
            words("COPY --chown=\u{160}--from=evil\u{a0}/a").collect::<Vec<_>>(),
            ["COPY", "--chown=", "--from=evil", "/a"]
        );
        assert_eq!(words("").count(), 0);
    }

    #[test]
    fn flags_are_the_leading_double_dash_words() {
        assert_eq!(
            split_flags(["--chown=1", "--from=x", "a", "--b", "c"]),
            (vec!["--chown=1", "--from=x"], vec!["a", "--b", "c"])
        );
        assert_eq!(
            split_flags(["echo", "--from"]),
            (vec![], vec!["echo", "--from"])
        );
        assert_eq!(split_flags([]), (vec![], vec![]));
    }
}
