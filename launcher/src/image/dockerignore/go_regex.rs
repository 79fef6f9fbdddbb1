//! Go's `regexp` syntax, as moby's `patternmatcher` writes it for a `.dockerignore` pattern,
//! rewritten for the `regex` crate with the same meaning.
//!
//! The two agree outside classes but for a few escapes; inside a class `regex` reads `[` as a
//! nested class and `&&`, `--`, `~~` as set operations, where Go reads plain characters. No crate
//! translates between the two, and only the subset moby writes needs to be read.

use std::iter::Peekable;
use std::str::Chars;

/// A regular expression of Go's `regexp` syntax, as [`super::compile`] writes them, rewritten for the
/// `regex` crate with the same meaning: inside a class every item is written escaped (Go reads a
/// `[` there as itself, `regex` as a nested class; `&&`, `--`, `~~` are operators only to
/// `regex`), Go's ASCII-only `\d`, `\s`, `\w` and `\b` are spelled out, and what Go refuses is
/// refused.
pub(super) fn rewrite(go: &str) -> Result<String, &'static str> {
    const BAD_ESCAPE: &str = "the pattern holds a \\ escape the engine's regular expressions \
                              refuse (escape only punctuation, e.g. \\* or \\[)";
    let mut out = String::with_capacity(go.len() * 2);
    let mut chars = go.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '^' | '$' | '.' | '*' | '?' | '(' | ')' | '|' => out.push(c),
            '[' => class(&mut chars, &mut out)?,
            '\\' => {
                let e = chars.next().ok_or(BAD_ESCAPE)?;
                match e {
                    'A' => out.push_str("\\A"),
                    'z' => out.push_str("\\z"),
                    'b' => out.push_str("(?-u:\\b)"),
                    'B' => out.push_str("(?-u:\\B)"),
                    'p' | 'P' => {
                        let name = chars.next().filter(char::is_ascii_alphabetic);
                        out.push('\\');
                        out.push(e);
                        out.push(name.ok_or(BAD_ESCAPE)?);
                    }
                    _ => match perl_class(e) {
                        Some((negated, set)) => {
                            out.push_str(if negated { "[^" } else { "[" });
                            out.push_str(set);
                            out.push(']');
                        }
                        None => push_char(&mut out, escape_char(e, &mut chars)?),
                    },
                }
            }
            c => push_char(&mut out, c),
        }
    }
    return Ok(out);

    /// A class after its `[`, as Go's `parseClass` reads it, written for `regex`.
    fn class(chars: &mut Peekable<Chars<'_>>, out: &mut String) -> Result<(), &'static str> {
        const UNCLOSED: &str = "character class is missing its closing ]";
        out.push('[');
        if chars.next_if_eq(&'^').is_some() {
            out.push('^');
        }
        let mut first = true;
        loop {
            if !first && chars.next_if_eq(&']').is_some() {
                break;
            }
            first = false;
            // A POSIX class, `[:alpha:]`, where `:]` follows a known name.
            if chars.peek() == Some(&'[') {
                let rest: String = chars.clone().collect();
                if let Some(end) = rest.get(2..).and_then(|r| r.find(":]"))
                    && rest.starts_with("[:")
                {
                    let named = &rest[..end + 4];
                    let name = named[2..named.len() - 2].trim_start_matches('^');
                    if !POSIX.contains(&name) {
                        return Err("character class names an unknown [:class:]");
                    }
                    out.push_str(named);
                    for _ in 0..named.chars().count() {
                        chars.next();
                    }
                    continue;
                }
            }
            let lo = match chars.next().ok_or(UNCLOSED)? {
                '\\' => {
                    let e = chars.next().ok_or(UNCLOSED)?;
                    if e == 'p' || e == 'P' {
                        let name = chars.next().filter(char::is_ascii_alphabetic);
                        out.push('\\');
                        out.push(e);
                        out.push(name.ok_or(UNCLOSED)?);
                        continue;
                    }
                    if let Some((negated, set)) = perl_class(e) {
                        out.push_str(if negated { "[^" } else { "[" });
                        out.push_str(set);
                        out.push(']');
                        continue;
                    }
                    escape_char(e, chars)?
                }
                c => c,
            };
            push_char(out, lo);
            let mut ahead = chars.clone();
            if ahead.next() == Some('-') && ahead.peek().is_some_and(|&c| c != ']') {
                chars.next();
                let hi = match chars.next().ok_or(UNCLOSED)? {
                    '\\' => {
                        let e = chars.next().ok_or(UNCLOSED)?;
                        escape_char(e, chars)?
                    }
                    c => c,
                };
                if hi < lo {
                    return Err("character class has a range whose end is before its start");
                }
                out.push('-');
                push_char(out, hi);
            }
        }
        out.push(']');
        Ok(())
    }

    /// The character `\e` stands for, as Go's `parseEscape` reads it (`chars` after `e`).
    fn escape_char(e: char, chars: &mut Peekable<Chars<'_>>) -> Result<char, &'static str> {
        let hex = |chars: &mut Peekable<Chars<'_>>| chars.next().and_then(|c| c.to_digit(16));
        Ok(match e {
            e if e.is_ascii() && !e.is_ascii_alphanumeric() => e,
            'a' => '\u{7}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            'x' => {
                let (hi, lo) = (hex(chars), hex(chars));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(BAD_ESCAPE);
                };
                char::from_u32(hi * 16 + lo).ok_or(BAD_ESCAPE)?
            }
            // Octal: `\0` and up to two more digits, or `\1`…`\7` followed by one (a single
            // digit would be a back-reference, which Go refuses).
            '0'..='7' => {
                let mut value = e.to_digit(8).unwrap_or(0);
                let mut digits = 0;
                while digits < 2
                    && let Some(d) = chars.peek().and_then(|c| c.to_digit(8))
                {
                    chars.next();
                    value = value * 8 + d;
                    digits += 1;
                }
                if e != '0' && digits == 0 {
                    return Err(BAD_ESCAPE);
                }
                char::from_u32(value).ok_or(BAD_ESCAPE)?
            }
            _ => return Err(BAD_ESCAPE),
        })
    }
}

/// Go's POSIX class names (`[:alpha:]`); `regex` knows the same ones, also ASCII-only.
const POSIX: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Go's Perl classes, which are ASCII-only (`regex`'s are Unicode): whether negated, and the set.
fn perl_class(e: char) -> Option<(bool, &'static str)> {
    let set = match e.to_ascii_lowercase() {
        'd' => "0-9",
        's' => "\\t\\n\\x0C\\r ",
        'w' => "0-9A-Za-z_",
        _ => return None,
    };
    Some((e.is_ascii_uppercase(), set))
}

/// `c` as a literal of `regex`, inside a class or out: its meta characters escaped (which
/// include `&`, `-` and `~`, its class operators), nothing else (`\<` would be a word boundary).
fn push_char(out: &mut String, c: char) {
    out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_both_read_alike_is_kept_and_literals_are_escaped() {
        assert_eq!(
            rewrite("^(.*/)?a[^/]*\\.b[^/]$").as_deref(),
            Ok("^(.*/)?a[^/]*\\.b[^/]$")
        );
        assert_eq!(rewrite("^a-b&c ~<x>$").as_deref(), Ok("^a\\-b\\&c \\~<x>$"));
        assert_eq!(rewrite("\\<").as_deref(), Ok("<"), "Go's \\< is a plain <");
    }

    #[test]
    fn class_items_are_plain_characters_as_go_reads_them() {
        assert_eq!(
            rewrite("[[a&&b~~-]").as_deref(),
            Ok("[\\[a\\&\\&b\\~\\~\\-]")
        );
        // `b--c` is to Go the range from `b` to `-`, which ends before it starts.
        assert!(rewrite("[b--c]").is_err());
        assert_eq!(rewrite("[a-z0-9]").as_deref(), Ok("[a-z0-9]"));
        assert_eq!(rewrite("[^]a]").as_deref(), Ok("[^\\]a]"));
        assert_eq!(
            rewrite("[[:alpha:][:^digit:]]").as_deref(),
            Ok("[[:alpha:][:^digit:]]")
        );
        assert!(rewrite("[z-a]").is_err());
        assert!(rewrite("[a").is_err());
        assert!(rewrite("[[:nope:]]").is_err());
    }

    #[test]
    fn gos_ascii_classes_and_escapes_keep_their_meaning() {
        assert_eq!(rewrite("\\d\\W").as_deref(), Ok("[0-9][^0-9A-Za-z_]"));
        assert_eq!(rewrite("[\\s]").as_deref(), Ok("[[\\t\\n\\x0C\\r ]]"));
        assert_eq!(rewrite("\\b").as_deref(), Ok("(?-u:\\b)"));
        assert_eq!(rewrite("\\x41\\101\\t\\*").as_deref(), Ok("AA\t\\*"));
        for bad in [
            "\\q", "\\1", "\\8", "\\u0041", "\\Qa\\E", "\\xZ", "\\\u{e9}", "\\",
        ] {
            assert!(rewrite(bad).is_err(), "{bad:?}");
        }
    }
}
