//! `.dockerignore` with Docker's semantics, so `--cwd` copies exactly what `docker build` would send.
//!
//! Follows moby's `patternmatcher` (and its `ignorefile` reader) step by step: one pattern a line,
//! `#` comments (only at the start of a line), surrounding whitespace trimmed, patterns cleaned
//! like Go's `filepath.Clean` with a leading `/` dropped, `!` re-includes, the last matching
//! pattern wins, a pattern matching a parent directory matches everything below it. A pattern is
//! checked with Go's `filepath.Match` syntax, then compiled as moby compiles it: to a plain
//! comparison where it can (a whole path, a `dir/**` prefix, a `**/name` suffix), else to the same
//! regular expression (`*` and `?` never cross `/`, `**` spans any number of directories, `[...]`
//! and `\` passed on). That expression is written for Go's `regexp`; [`go_regex`] rewrites it for
//! the `regex` crate, whose syntax differs inside classes (nesting, `&&`, `--`, `~~`) and in a
//! few escapes, so that it matches what Go's would.

use std::fmt;
use std::iter::Peekable;
use std::str::Chars;

mod go_regex;

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// A line that is not a valid pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// 1-based line in the file.
    pub line: usize,
    /// The line as written.
    pub pattern: String,
    pub problem: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {:?}: {}",
            self.line, self.pattern, self.problem
        )
    }
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned text without `!`, for the "could an exception live below this directory" test.
    cleaned: String,
    exclusion: bool,
    matcher: Matcher,
}

/// moby's `matchType`: the comparison a pattern compiles to.
#[derive(Debug, Clone)]
enum Matcher {
    /// No wildcard: the whole path.
    Exact,
    /// `dir/**` (nothing special before it): the path starts with `dir/`.
    Prefix,
    /// `**name` (nothing special after it): the path ends with `name`, or is `name` after `**/`.
    Suffix,
    Regex(regex::Regex),
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore`.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = if i == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            };
            let fail = |problem| PatternError {
                line: i + 1,
                pattern: raw.to_owned(),
                problem,
            };
            if let Some(pattern) = read_line(line) {
                patterns.push(Pattern::new(&pattern).map_err(fail)?);
            }
        }
        Ok(Self { patterns })
    }

    /// True when nothing is ignored.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded from the context
    /// (moby's `MatchesOrParentMatches`).
    pub fn is_excluded(&self, path: &str) -> bool {
        let parents: Vec<&str> = match path.rfind('/') {
            Some(end) => {
                let parent = &path[..end];
                parent
                    .match_indices('/')
                    .map(|(i, _)| &parent[..i])
                    .chain(std::iter::once(parent))
                    .collect()
            }
            None => Vec::new(),
        };
        let mut excluded = false;
        for pattern in &self.patterns {
            // An include cannot change an excluded path, nor an exception an included one.
            if pattern.exclusion != excluded {
                continue;
            }
            let hit = pattern.matches(path) || parents.iter().any(|p| pattern.matches(p));
            if hit {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }

    /// Whether an excluded directory can be skipped whole: no `!` pattern could re-include anything
    /// below it. (Docker's own shortcut, kept so that both send the same files.)
    pub fn can_skip_dir(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        !self
            .patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.cleaned).starts_with(&prefix))
    }
}

/// The pattern a line holds, as moby's `ignorefile.ReadAll` writes it (`!` kept in front), or
/// `None` for a comment or a blank line.
fn read_line(line: &str) -> Option<String> {
    if line.starts_with('#') {
        return None;
    }
    let pattern = line.trim();
    if pattern.is_empty() {
        return None;
    }
    let (invert, pattern) = match pattern.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, pattern),
    };
    let mut cleaned = if pattern.is_empty() {
        String::new()
    } else {
        clean(pattern)
    };
    if cleaned.len() > 1 && cleaned.starts_with('/') {
        cleaned.remove(0);
    }
    Some(if invert {
        format!("!{cleaned}")
    } else {
        cleaned
    })
}

impl Pattern {
    /// moby's `New` for one pattern: cleaned once more (with its `!`), checked with
    /// `filepath.Match`'s syntax, then compiled.
    fn new(pattern: &str) -> Result<Self, &'static str> {
        let p = clean(pattern.trim());
        let (exclusion, p) = match p.strip_prefix('!') {
            Some("") => {
                return Err("illegal exclusion pattern: \"!\" needs a pattern after it");
            }
            Some(rest) => (true, rest.to_owned()),
            None => (false, p),
        };
        check_syntax(&p)?;
        let matcher = compile(&p)?;
        Ok(Self {
            cleaned: p,
            exclusion,
            matcher,
        })
    }

    fn matches(&self, path: &str) -> bool {
        let p = &self.cleaned;
        match &self.matcher {
            Matcher::Exact => path == p,
            Matcher::Prefix => path.starts_with(&p[..p.len() - 2]),
            Matcher::Suffix => {
                let suffix = &p[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/') == Some(path)
            }
            Matcher::Regex(re) => re.is_match(path),
        }
    }
}

/// The errors Go's `filepath.Match` reports for a pattern (moby calls it on every pattern
/// before use): a `\` with nothing after it, and a class that is not closed or has an item
/// starting with `-` or `]` (so `[]a]` and `[-a]` are errors; `[a-]` is too, its `]` being taken
/// for a range's end).
fn check_syntax(pattern: &str) -> Result<(), &'static str> {
    const TRAILING: &str = "the pattern ends in an escaping \\ with nothing to escape";
    const CLASS: &str = "character class is missing its closing ], or an item of it starts with \
                         - or ] (write \\- or \\])";
    let mut chars = pattern.chars().peekable();
    // One class item, as Go's `getEsc` reads it: at least one more character must follow.
    let item = |chars: &mut Peekable<Chars<'_>>| -> Result<(), &'static str> {
        match chars.next() {
            None | Some('-' | ']') => return Err(CLASS),
            Some('\\') => {
                chars.next().ok_or(CLASS)?;
            }
            Some(_) => {}
        }
        chars.peek().map(|_| ()).ok_or(CLASS)
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next().ok_or(TRAILING)?;
            }
            '[' => {
                chars.next_if_eq(&'^');
                let mut items = 0;
                loop {
                    if items > 0 && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    item(&mut chars)?;
                    if chars.next_if_eq(&'-').is_some() {
                        item(&mut chars)?;
                    }
                    items += 1;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// moby's `Pattern.compile`: the comparison, or the regular expression, a cleaned pattern
/// becomes.
fn compile(pattern: &str) -> Result<Matcher, &'static str> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut re = String::from("^");
    let mut kind = Kind::Exact;
    let mut chars = pattern.chars().peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.next_if_eq(&'*').is_some() => {
                chars.next_if_eq(&'/');
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(c);
            }
            '\\' => {
                re.push('\\');
                if let Some(next) = chars.next() {
                    re.push(next);
                    kind = Kind::Regex;
                }
            }
            '[' | ']' => {
                re.push(c);
                kind = Kind::Regex;
            }
            c => re.push(c),
        }
        first = false;
    }
    Ok(match kind {
        Kind::Exact => Matcher::Exact,
        Kind::Prefix => Matcher::Prefix,
        Kind::Suffix => Matcher::Suffix,
        Kind::Regex => {
            re.push('$');
            let rust = go_regex::rewrite(&re)?;
            Matcher::Regex(
                regex::Regex::new(&rust)
                    .map_err(|_| "the pattern is not a valid regular expression to the engine")?,
            )
        }
    })
}

/// Go's `path.Clean`: drop empty and `.` elements, resolve `..`.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).expect("valid .dockerignore")
    }

    /// `.dockerignore` text `patterns` excludes every path of `excluded` and none of `kept`.
    #[track_caller]
    fn excludes(patterns: &str, excluded: &[&str], kept: &[&str]) -> DockerIgnore {
        let ig = ignore(patterns);
        for path in excluded {
            assert!(ig.is_excluded(path), "{patterns:?} must exclude {path:?}");
        }
        for path in kept {
            assert!(!ig.is_excluded(path), "{patterns:?} must keep {path:?}");
        }
        ig
    }

    #[test]
    fn star_and_question_stay_within_a_directory() {
        // `*` does not cross `/`, and the root is implied.
        excludes(
            "*.log\nsrc/?.rs\n",
            &["a.log", "src/a.rs"],
            &["logs/a.log", "src/ab.rs", "src/a/b.rs"],
        );
    }

    #[test]
    fn a_matching_parent_excludes_everything_below() {
        // Unanchored names match at the root only.
        excludes(
            "node_modules\ntarget/\n",
            &["node_modules", "node_modules/x/y.js", "target/debug/app"],
            &["web/node_modules/x.js"],
        );
    }

    #[test]
    fn double_star_spans_directories() {
        excludes(
            "**/node_modules\ndocs/**/*.png\nbuild/**\n",
            &[
                "node_modules/a",
                "web/app/node_modules/a/b",
                "docs/a.png",
                "docs/x/y/a.png",
                "build/x/y",
            ],
            &["docs/a.jpg", "builder"],
        );
    }

    #[test]
    fn last_match_wins_with_exceptions() {
        // README.md: excepted, then a later pattern excludes it again.
        excludes(
            "*.md\n!README.md\nREADME*.md\n!README-keep.md\n",
            &["NOTES.md", "README.md"],
            &["README-keep.md", "main.rs"],
        );
    }

    #[test]
    fn exception_inside_excluded_directory() {
        let ig = excludes(
            "vendor\n!vendor/keep.txt\n",
            &["vendor", "vendor/other.txt"],
            &["vendor/keep.txt"],
        );
        assert!(
            !ig.can_skip_dir("vendor"),
            "the walk must enter vendor/ to find keep.txt"
        );
        assert!(ig.can_skip_dir("other"));
        assert!(ignore("vendor\n").can_skip_dir("vendor"));
    }

    #[test]
    fn comments_whitespace_and_cleaning() {
        // Only a `#` in the first column starts a comment.
        excludes(
            "\u{feff}# comment\n   \n  ./secrets/../.env  \n/abs.txt\n#not-a-comment-if-indented\n  #x\n",
            &[".env", "abs.txt", "#x"],
            &["# comment", "secrets"],
        );
    }

    #[test]
    fn classes_and_escapes() {
        excludes(
            "file[0-9].txt\nlog[^a-c]\n\\*literal\n[\\]]x\n",
            &["file7.txt", "logd", "*literal", "]x"],
            &["fileA.txt", "logb", "xliteral"],
        );
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        excludes("a.b\n(x)+|{y}$\n", &["a.b", "(x)+|{y}$"], &["axb"]);
    }

    #[test]
    fn invalid_patterns_name_their_line() {
        let err = DockerIgnore::parse("ok\n[abc\n").expect_err("unclosed class");
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("closing ]"), "{err}");
        let err = DockerIgnore::parse("a\n\n  !  \n").expect_err("bare !");
        assert_eq!(err.line, 3);
        assert!(DockerIgnore::parse("[z-a]").is_err());
        // What Go's `filepath.Match` refuses, moby refuses: a class item starting with `]` or
        // `-`, a `\` with nothing after it.
        for bad in ["[]a]", "[-a]", "[a-]", "x[", "a\\", "[a\\"] {
            assert!(DockerIgnore::parse(bad).is_err(), "{bad:?}");
        }
        // What Go's `regexp` refuses in the expression moby compiles.
        for bad in ["\\q", "\\1", "\\xZZ", "[[:nope:]]", "\\u0041"] {
            assert!(DockerIgnore::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// moby compiles a pattern without a wildcard before its `**` to a plain comparison, not to a
    /// regular expression: `**.log` is any path ending in `.log`, `build**` any starting with
    /// `build` (`patternmatcher.go`, `suffixMatch` and `prefixMatch`).
    #[test]
    fn double_star_at_either_end_compares_text_as_moby_does() {
        excludes(
            "**.log\nbuild**\n",
            &["a.log", "x/y/b.log", "builder", "build/x"],
            &["xlog", "rebuild"],
        );
        excludes("**\n!keep\n", &["anything/at/all"], &["keep"]);
        // `**/name` is the name anywhere, the top included.
        excludes("**/.env\n", &[".env", "a/b/.env"], &["a/x.env"]);
    }

    /// The expression is Go's: inside a class `[` and `&&` are plain characters, `\d` is an
    /// ASCII digit (not `v\u{663}`), a `*` inside brackets is moby's `[^/]*` (so `[*]` is a class
    /// of `[`, `^`, `/`, repeated, then `]`), `\b` is Go's ASCII word boundary.
    #[test]
    fn expressions_mean_what_they_mean_to_gos_regexp() {
        excludes(
            "[a&&b]\nv\\d\nn[[:digit:]]\n[*]\n",
            &["&", "a", "v7", "n5", "]", "[^]"],
            &["c", "vd", "v\u{663}", "*"],
        );
        excludes("x\\b\n", &["x"], &[]);
    }

    #[test]
    fn many_stars_match_in_linear_time() {
        // A backtracking matcher takes exponential time on such a pattern.
        let ig = ignore(&format!("{}b\n", "*a".repeat(30)));
        assert!(!ig.is_excluded(&"a".repeat(4_000)));
        assert!(ig.is_excluded(&format!("{}b", "a".repeat(4_000))));
    }

    #[test]
    fn an_exception_is_cleaned_again_with_its_bang_as_moby_does() {
        // `!/` becomes `!` once cleaned with its `!`: moby refuses it.
        assert!(DockerIgnore::parse("!/\n").is_err());
        excludes("*\n! /keep/../kept \n", &["keep"], &["kept"]);
    }

    #[test]
    fn clean_follows_go() {
        for (path, cleaned) in [
            ("a//b/./c/..", "a/b"),
            ("../a", "../a"),
            ("/../a/", "/a"),
            ("./", "."),
            ("/", "/"),
        ] {
            assert_eq!(clean(path), cleaned, "{path:?}");
        }
    }

    #[test]
    fn empty_file_ignores_nothing() {
        let ig = excludes("# only a comment\n\n", &[], &["anything"]);
        assert!(ig.is_empty());
    }
}
