//! `.dockerignore` with Docker's semantics, so `--cwd` copies exactly what `docker build` would send.
//!
//! Mirrors moby's `patternmatcher`: one pattern a line, `#` comments (only at the start of a line),
//! surrounding whitespace trimmed, patterns cleaned like Go's `filepath.Clean` with a leading `/`
//! dropped; `*` and `?` never cross `/`, `[...]` classes, `\` escapes, `**` spans any number of
//! directories; `!` re-includes; the last matching pattern wins; a pattern matching a parent
//! directory matches everything below it.

use std::fmt;

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
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `?`: one character but `/`.
    One,
    /// `*`: any run without `/`.
    Star,
    /// `**` followed by more pattern: `(.*/)?`.
    AnyDirs,
    /// `**` at the end: anything at all.
    Rest,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
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
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let exclusion = pattern.starts_with('!');
            if exclusion {
                pattern = pattern[1..].trim();
                if pattern.is_empty() {
                    return Err(PatternError {
                        line: i + 1,
                        pattern: raw.to_owned(),
                        problem: "illegal exclusion pattern: \"!\" needs a pattern after it",
                    });
                }
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let tokens = compile(&cleaned).map_err(|problem| PatternError {
                line: i + 1,
                pattern: raw.to_owned(),
                problem,
            })?;
            patterns.push(Pattern {
                cleaned,
                exclusion,
                tokens,
            });
        }
        Ok(Self { patterns })
    }

    /// True when nothing is ignored.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded from the context.
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

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        let chars: Vec<char> = path.chars().collect();
        match_tokens(&self.tokens, &chars)
    }
}

fn match_tokens(tokens: &[Token], s: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Lit(c) => s.first() == Some(c) && match_tokens(rest, &s[1..]),
        Token::One => s.first().is_some_and(|&c| c != '/') && match_tokens(rest, &s[1..]),
        Token::Class { negated, ranges } => {
            s.first()
                .is_some_and(|&c| ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated)
                && match_tokens(rest, &s[1..])
        }
        Token::Star => {
            let run = s.iter().position(|&c| c == '/').unwrap_or(s.len());
            (0..=run).any(|i| match_tokens(rest, &s[i..]))
        }
        Token::AnyDirs => {
            match_tokens(rest, s)
                || s.iter()
                    .enumerate()
                    .any(|(i, &c)| c == '/' && match_tokens(rest, &s[i + 1..]))
        }
        Token::Rest => true,
    }
}

/// Translates a cleaned pattern the way moby turns it into a regular expression.
fn compile(pattern: &str) -> Result<Vec<Token>, &'static str> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                tokens.push(if chars.peek().is_none() {
                    Token::Rest
                } else {
                    Token::AnyDirs
                });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' => tokens.push(Token::Lit(chars.next().unwrap_or('\\'))),
            '[' => tokens.push(compile_class(&mut chars)?),
            c => tokens.push(Token::Lit(c)),
        }
    }
    Ok(tokens)
}

/// A character class after its `[`, with regular-expression syntax (`^` negates).
fn compile_class(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<Token, &'static str> {
    const UNCLOSED: &str = "character class is missing its closing ]";
    let negated = chars.next_if_eq(&'^').is_some();
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = chars.next().ok_or(UNCLOSED)?;
        let lo = match c {
            ']' if !first => break,
            '\\' => chars.next().ok_or(UNCLOSED)?,
            c => c,
        };
        first = false;
        let mut hi = lo;
        if chars.peek() == Some(&'-') {
            let mut ahead = chars.clone();
            ahead.next();
            if ahead.peek().is_some_and(|&c| c != ']') {
                chars.next();
                hi = match chars.next().ok_or(UNCLOSED)? {
                    '\\' => chars.next().ok_or(UNCLOSED)?,
                    c => c,
                };
                if hi < lo {
                    return Err("character class has a range whose end is before its start");
                }
            }
        }
        ranges.push((lo, hi));
    }
    Ok(Token::Class { negated, ranges })
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

    #[test]
    fn star_and_question_stay_within_a_directory() {
        let ig = ignore("*.log\nsrc/?.rs\n");
        assert!(ig.is_excluded("a.log"));
        assert!(
            !ig.is_excluded("logs/a.log"),
            "* does not cross / and the root is implied"
        );
        assert!(ig.is_excluded("src/a.rs"));
        assert!(!ig.is_excluded("src/ab.rs"));
        assert!(!ig.is_excluded("src/a/b.rs"));
    }

    #[test]
    fn a_matching_parent_excludes_everything_below() {
        let ig = ignore("node_modules\ntarget/\n");
        assert!(ig.is_excluded("node_modules"));
        assert!(ig.is_excluded("node_modules/x/y.js"));
        assert!(ig.is_excluded("target/debug/app"));
        assert!(
            !ig.is_excluded("web/node_modules/x.js"),
            "unanchored names match at the root only"
        );
    }

    #[test]
    fn double_star_spans_directories() {
        let ig = ignore("**/node_modules\ndocs/**/*.png\nbuild/**\n");
        assert!(ig.is_excluded("node_modules/a"));
        assert!(ig.is_excluded("web/app/node_modules/a/b"));
        assert!(ig.is_excluded("docs/a.png"));
        assert!(ig.is_excluded("docs/x/y/a.png"));
        assert!(!ig.is_excluded("docs/a.jpg"));
        assert!(ig.is_excluded("build/x/y"));
        assert!(!ig.is_excluded("builder"));
    }

    #[test]
    fn last_match_wins_with_exceptions() {
        let ig = ignore("*.md\n!README.md\nREADME*.md\n!README-keep.md\n");
        assert!(ig.is_excluded("NOTES.md"));
        assert!(
            ig.is_excluded("README.md"),
            "a later pattern excludes it again"
        );
        assert!(!ig.is_excluded("README-keep.md"));
        assert!(!ig.is_excluded("main.rs"));
    }

    #[test]
    fn exception_inside_excluded_directory() {
        let ig = ignore("vendor\n!vendor/keep.txt\n");
        assert!(ig.is_excluded("vendor"));
        assert!(ig.is_excluded("vendor/other.txt"));
        assert!(!ig.is_excluded("vendor/keep.txt"));
        assert!(
            !ig.can_skip_dir("vendor"),
            "the walk must enter vendor/ to find keep.txt"
        );
        assert!(ig.can_skip_dir("other"));
        assert!(ignore("vendor\n").can_skip_dir("vendor"));
    }

    #[test]
    fn comments_whitespace_and_cleaning() {
        let ig = ignore(
            "\u{feff}# comment\n   \n  ./secrets/../.env  \n/abs.txt\n#not-a-comment-if-indented\n  #x\n",
        );
        assert!(ig.is_excluded(".env"));
        assert!(ig.is_excluded("abs.txt"));
        assert!(!ig.is_excluded("# comment"));
        assert!(
            ig.is_excluded("#x"),
            "only a # in the first column starts a comment"
        );
        assert!(!ig.is_excluded("secrets"));
    }

    #[test]
    fn classes_and_escapes() {
        let ig = ignore("file[0-9].txt\nlog[^a-c]\n\\*literal\n[]]x\n");
        assert!(ig.is_excluded("file7.txt"));
        assert!(!ig.is_excluded("fileA.txt"));
        assert!(ig.is_excluded("logd"));
        assert!(!ig.is_excluded("logb"));
        assert!(ig.is_excluded("*literal"));
        assert!(!ig.is_excluded("xliteral"));
        assert!(ig.is_excluded("]x"));
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        let ig = ignore("a.b\n(x)+|{y}$\n");
        assert!(ig.is_excluded("a.b"));
        assert!(!ig.is_excluded("axb"));
        assert!(ig.is_excluded("(x)+|{y}$"));
    }

    #[test]
    fn invalid_patterns_name_their_line() {
        let err = DockerIgnore::parse("ok\n[abc\n").expect_err("unclosed class");
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("closing ]"), "{err}");
        let err = DockerIgnore::parse("a\n\n  !  \n").expect_err("bare !");
        assert_eq!(err.line, 3);
        assert!(DockerIgnore::parse("[z-a]").is_err());
    }

    #[test]
    fn clean_follows_go() {
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean("/../a/"), "/a");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn empty_file_ignores_nothing() {
        let ig = ignore("# only a comment\n\n");
        assert!(ig.is_empty());
        assert!(!ig.is_excluded("anything"));
    }
}
