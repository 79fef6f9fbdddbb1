//! The push policy of a git remote: which ref updates the git gate forwards to the upstream.
//!
//! The operator writes a remote's `push:` list in the bottle; the launcher validates it with
//! [`PushPolicy::parse`] and the gate decides every ref update of a push with
//! [`PushPolicy::decide`]. The language (docs/git-gate.md, "The push policy"):
//!
//! - An entry is a pattern, optionally followed by `force` and/or `delete`, separated by spaces:
//!   `claude/*`, `claude/* force`, `refs/tags/v* delete`.
//! - A pattern without `refs/` names branches (`claude/*` is `refs/heads/claude/*`); anything
//!   else is written in full. Tags are reached only by a pattern written `refs/tags/…`.
//! - `*` stands for any part of one segment and never crosses `/`; `**`, alone between slashes,
//!   for any number of whole segments (none included; at the end, at least one).
//! - With no entry nothing may be pushed. A matching entry allows creating a ref and
//!   fast-forwarding it; a non-fast-forward update or moving an existing tag needs `force`,
//!   deleting needs `delete`, in an entry that matches the ref. Entries add up: an update is
//!   allowed when any matching entry allows it.
//!
//! Pure: the caller supplies whether an update is a fast-forward ([`RefUpdate::needs_ancestry`]).

mod pattern;
mod update;
pub mod upstream;

use std::fmt;

pub use pattern::{OPTIONS, PatternError, PushRule};
pub use update::{Change, ObjectId, RefUpdate, UpdateError};

/// A remote's `push:` list, parsed. The default (no entries) refuses every push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushPolicy {
    rules: Vec<PushRule>,
}

/// A `push:` entry that is not accepted, by its index in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternProblem {
    pub index: usize,
    pub error: PatternError,
}

impl PushPolicy {
    /// Parse every entry, collecting every problem: a bad entry, or one whose pattern an
    /// earlier entry already has (merge them instead).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, Vec<PatternProblem>> {
        let mut accepted: Vec<(usize, PushRule)> = Vec::new();
        let mut problems = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let entry = entry.as_ref();
            let rule = match PushRule::parse(entry) {
                Ok(rule) => rule,
                Err(error) => {
                    problems.push(PatternProblem { index, error });
                    continue;
                }
            };
            match accepted
                .iter()
                .find(|(_, r)| r.ref_pattern() == rule.ref_pattern())
            {
                Some((first, _)) => problems.push(PatternProblem {
                    index,
                    error: PatternError::Duplicate {
                        entry: entry.trim().to_owned(),
                        first: *first,
                    },
                }),
                None => accepted.push((index, rule)),
            }
        }
        if problems.is_empty() {
            Ok(PushPolicy {
                rules: accepted.into_iter().map(|(_, r)| r).collect(),
            })
        } else {
            Err(problems)
        }
    }

    pub fn rules(&self) -> &[PushRule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decide one ref update. `fast_forward` says whether the new object descends from the old
    /// one; it is read only for an update of an existing branch ([`RefUpdate::needs_ancestry`]).
    pub fn decide(&self, update: &RefUpdate, fast_forward: bool) -> Decision {
        let refname = update.refname();
        let matching: Vec<&PushRule> = self.rules.iter().filter(|r| r.matches(refname)).collect();
        let Some(first) = matching.first() else {
            return Decision::Refused(if self.rules.is_empty() {
                Refusal::NoPatterns
            } else if update.is_tag() && !self.rules.iter().any(PushRule::names_tags) {
                Refusal::TagNotNamed {
                    patterns: Patterns::of(self.rules.iter()),
                }
            } else {
                Refusal::NotAllowed {
                    patterns: Patterns::of(self.rules.iter()),
                }
            });
        };
        // The option this update needs from a matching entry, if any.
        let needs_force = match update.change() {
            Change::Create => return Decision::allowed(first),
            Change::Update if fast_forward && !update.is_tag() => {
                return Decision::allowed(first);
            }
            Change::Update => true,
            Change::Delete => false,
        };
        let allows = |r: &PushRule| {
            if needs_force {
                r.allows_force()
            } else {
                r.allows_delete()
            }
        };
        if let Some(rule) = matching.iter().find(|r| allows(r)) {
            return Decision::allowed(rule);
        }
        let patterns = Patterns::of(matching.into_iter());
        Decision::Refused(match update.change() {
            Change::Delete => Refusal::Deletion { patterns },
            _ if update.is_tag() => Refusal::TagExists { patterns },
            _ => Refusal::NotFastForward { patterns },
        })
    }
}

/// The outcome for one ref update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward it; `rule` is the entry that allowed it, for the audit log.
    Allowed {
        rule: String,
    },
    Refused(Refusal),
}

impl Decision {
    fn allowed(rule: &PushRule) -> Self {
        Decision::Allowed {
            rule: rule.to_string(),
        }
    }

    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// Entries as the operator wrote them, for a message: `claude/*, wip/* force`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patterns(String);

impl Patterns {
    fn of<'a>(rules: impl Iterator<Item = &'a PushRule>) -> Self {
        Patterns(
            rules
                .map(PushRule::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

impl fmt::Display for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why the gate refuses a ref update. The message is one line without the ref's name: git shows
/// it after the ref (`! [remote rejected] HEAD -> main (<message>)`), and the audit log records
/// the ref beside it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this remote takes no pushes: its push list is empty")]
    NoPatterns,
    #[error("no push pattern matches this ref (push: {patterns})")]
    NotAllowed { patterns: Patterns },
    #[error("tags are pushed only when a pattern names them, refs/tags/... (push: {patterns})")]
    TagNotNamed { patterns: Patterns },
    #[error("not a fast-forward, and no matching pattern allows force ({patterns})")]
    NotFastForward { patterns: Patterns },
    #[error("the tag exists, and no matching pattern allows force to move it ({patterns})")]
    TagExists { patterns: Patterns },
    #[error("deleting needs a matching pattern that allows delete ({patterns})")]
    Deletion { patterns: Patterns },
}

impl Refusal {
    /// What the operator would change in the remote's `push:` list to allow it.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::NoPatterns | Self::NotAllowed { .. } => {
                "add a pattern that matches the ref to the remote's push list, e.g. \"claude/*\""
            }
            Self::TagNotNamed { .. } => "add a tag pattern such as \"refs/tags/v*\"",
            Self::NotFastForward { .. } | Self::TagExists { .. } => {
                "add `force` after the pattern, e.g. \"claude/* force\""
            }
            Self::Deletion { .. } => "add `delete` after the pattern, e.g. \"claude/* delete\"",
        }
    }

    /// The narrowest `push:` entry that would allow this refused update of `refname`: the
    /// branch's short name (a tag or other ref in full), with `force` or `delete` when the
    /// refusal was about that. What the agent can ask the operator for.
    pub fn entry(&self, refname: &str) -> String {
        let name = refname.strip_prefix("refs/heads/").unwrap_or(refname);
        match self {
            Self::NoPatterns | Self::NotAllowed { .. } | Self::TagNotNamed { .. } => {
                name.to_owned()
            }
            Self::NotFastForward { .. } | Self::TagExists { .. } => format!("{name} force"),
            Self::Deletion { .. } => format!("{name} delete"),
        }
    }
}

/// `s` with its first letter lowercase: other crates' messages in this crate's style.
fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod entry_tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_entry_that_would_allow_it() {
        let patterns = || Patterns("claude/*".to_owned());
        let cases = [
            (Refusal::NoPatterns, "refs/heads/feature/x", "feature/x"),
            (
                Refusal::NotAllowed {
                    patterns: patterns(),
                },
                "refs/heads/main",
                "main",
            ),
            (
                Refusal::TagNotNamed {
                    patterns: patterns(),
                },
                "refs/tags/v1",
                "refs/tags/v1",
            ),
            (
                Refusal::NotFastForward {
                    patterns: patterns(),
                },
                "refs/heads/claude/x",
                "claude/x force",
            ),
            (
                Refusal::Deletion {
                    patterns: patterns(),
                },
                "refs/heads/claude/x",
                "claude/x delete",
            ),
        ];
        for (refusal, refname, want) in cases {
            let entry = refusal.entry(refname);
            assert_eq!(entry, want);
            // What the agent asks for is an entry the policy takes.
            PushPolicy::parse(&[entry]).expect("a valid entry");
        }
    }
}
