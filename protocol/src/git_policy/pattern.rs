//! One `push:` entry of a git remote: a ref pattern, then the options that widen what it allows.

use std::fmt;

use globset::{GlobBuilder, GlobMatcher};

/// The options an entry may carry after its pattern, as the operator is told them.
pub const OPTIONS: &str = "force, delete";

/// Where a pattern without `refs/` points: the branches.
const BRANCHES: &str = "refs/heads/";

/// Where a tag lives; only a pattern written with this prefix reaches it.
const TAGS: &str = "refs/tags/";

/// A parsed `push:` entry such as `claude/*`, `claude/* force` or `refs/tags/v* delete`.
///
/// Equal entries are equal whatever the spacing or option order they were written with.
#[derive(Clone)]
pub struct PushRule {
    /// The entry normalised: the pattern as written, then its options in a fixed order.
    text: String,
    /// The pattern over full ref names: `refs/heads/claude/*` for `claude/*`.
    full: String,
    matcher: GlobMatcher,
    /// Written as `refs/tags/…`: the only kind of pattern that reaches a tag.
    tags: bool,
    force: bool,
    delete: bool,
}

impl PushRule {
    /// Parse one entry: a pattern, then optionally `force` and/or `delete`, separated by spaces.
    pub fn parse(entry: &str) -> Result<Self, PatternError> {
        let mut words = entry.split_ascii_whitespace();
        let pattern = words.next().ok_or(PatternError::Empty)?;
        let (mut force, mut delete) = (false, false);
        for word in words {
            let flag = match word {
                "force" => &mut force,
                "delete" => &mut delete,
                _ => {
                    return Err(PatternError::UnknownOption {
                        entry: entry.trim().to_owned(),
                        option: word.to_owned(),
                    });
                }
            };
            if *flag {
                return Err(PatternError::RepeatedOption {
                    entry: entry.trim().to_owned(),
                    option: word.to_owned(),
                });
            }
            *flag = true;
        }
        let full = full_pattern(pattern)?;
        let matcher = GlobBuilder::new(&full)
            .literal_separator(true)
            .build()
            .map_err(|e| PatternError::InvalidRef {
                pattern: pattern.to_owned(),
                reason: e.kind().to_string(),
            })?
            .compile_matcher();
        let mut text = pattern.to_owned();
        for (on, word) in [(force, " force"), (delete, " delete")] {
            if on {
                text.push_str(word);
            }
        }
        Ok(PushRule {
            text,
            tags: full.starts_with(TAGS),
            full,
            matcher,
            force,
            delete,
        })
    }

    /// The pattern over full ref names (`refs/heads/claude/*`).
    pub fn ref_pattern(&self) -> &str {
        &self.full
    }

    /// Whether the pattern was written as `refs/tags/…` and so may reach tags.
    pub fn names_tags(&self) -> bool {
        self.tags
    }

    /// Whether a matching ref may be rewritten: a non-fast-forward update, or a tag moved.
    pub fn allows_force(&self) -> bool {
        self.force
    }

    /// Whether a matching ref may be deleted.
    pub fn allows_delete(&self) -> bool {
        self.delete
    }

    /// Whether `refname` (a full name, `refs/heads/x`) falls under this pattern. A tag falls
    /// under a pattern only when the pattern names tags.
    pub fn matches(&self, refname: &str) -> bool {
        (self.tags || !refname.starts_with(TAGS)) && self.matcher.is_match(refname)
    }
}

impl fmt::Display for PushRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PushRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PushRule").field(&self.text).finish()
    }
}

impl PartialEq for PushRule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for PushRule {}

/// `pattern` as a pattern over full ref names, refused when no valid ref name could match it
/// or when it means something else than it seems.
fn full_pattern(pattern: &str) -> Result<String, PatternError> {
    if let Some(c) = pattern.chars().find(|c| matches!(c, '{' | '}')) {
        return Err(PatternError::NotAPatternCharacter {
            pattern: pattern.to_owned(),
            character: c,
        });
    }
    let full = if pattern.starts_with("refs/") {
        pattern.to_owned()
    } else {
        let first = pattern.split('/').next().unwrap_or_default();
        if matches!(first, "refs" | "heads" | "tags" | "remotes") {
            return Err(PatternError::LooksQualified {
                pattern: pattern.to_owned(),
                first: first.to_owned(),
            });
        }
        format!("{BRANCHES}{pattern}")
    };
    if full
        .split('/')
        .any(|segment| segment != "**" && segment.contains("**"))
    {
        return Err(PatternError::PartialRecursive {
            pattern: pattern.to_owned(),
        });
    }
    // A ref a pattern matches has something where each `*` stands: check that a ref of this
    // shape can exist at all (no `..`, no `.lock` ending, no control characters, …).
    let example = full.replace("**", "x").replace('*', "x");
    gix_validate::reference::name(example.as_str().into()).map_err(|e| {
        PatternError::InvalidRef {
            pattern: pattern.to_owned(),
            reason: super::lowercase_first(&e.to_string()),
        }
    })?;
    Ok(full)
}

/// Why a `push:` entry is not accepted; [`PatternError::hint`] says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty push pattern")]
    Empty,
    #[error("unknown option {option:?} in {entry:?}")]
    UnknownOption { entry: String, option: String },
    #[error("option {option:?} is written twice in {entry:?}")]
    RepeatedOption { entry: String, option: String },
    #[error("{pattern:?} holds {character:?}, which is not a pattern character")]
    NotAPatternCharacter { pattern: String, character: char },
    #[error("{pattern:?} would be the branch refs/heads/{pattern}")]
    LooksQualified { pattern: String, first: String },
    #[error("{pattern:?} has `**` inside a segment")]
    PartialRecursive { pattern: String },
    #[error("{pattern:?} matches no valid ref name: {reason}")]
    InvalidRef { pattern: String, reason: String },
    #[error("{entry:?} repeats the pattern of push[{first}]")]
    Duplicate { entry: String, first: usize },
}

impl PatternError {
    /// How to write the entry instead.
    pub fn hint(&self) -> String {
        match self {
            Self::Empty => "write a ref pattern such as claude/*, or remove the entry".to_owned(),
            Self::UnknownOption { .. } | Self::RepeatedOption { .. } => {
                format!("after the pattern, write any of: {OPTIONS} (e.g. \"claude/* force\")")
            }
            Self::NotAPatternCharacter { .. } => {
                "patterns know `*` (within a segment) and `**` (whole segments); write one entry \
                 per alternative"
                    .to_owned()
            }
            Self::LooksQualified { pattern, first } if first != "refs" => {
                format!("write the ref in full: refs/{pattern}")
            }
            Self::LooksQualified { .. } => {
                "write branches without a prefix (claude/*) and other refs in full (refs/...)"
                    .to_owned()
            }
            Self::PartialRecursive { .. } => {
                "`**` stands alone between slashes (claude/**); use `*` within a segment".to_owned()
            }
            Self::InvalidRef { .. } => {
                "a pattern is a ref name (see git check-ref-format) where `*` may stand for part \
                 of a segment and `**` for whole segments"
                    .to_owned()
            }
            Self::Duplicate { .. } => {
                format!("merge the two entries into one, with the options of both ({OPTIONS})")
            }
        }
    }
}
