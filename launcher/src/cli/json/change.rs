//! The change an approval makes, in `show --json`: the allowlist host, or the Dockerfile diff
//! with the lines it appends.

use serde::Serialize;

use crate::cli::show::{Change, Preview};
use crate::state::dockerfile::reads_outside_context;

/// The change an approval makes: the operator's edit when there is one.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChangeJson {
    /// A host added to the allowlist.
    Allowlist { edited: bool, host: String },
    /// An entry added to a git remote's push policy.
    PushPolicy {
        edited: bool,
        remote: String,
        pattern: String,
    },
    /// Lines appended to the bottle's Dockerfile.
    Dockerfile {
        edited: bool,
        /// The Dockerfile the diff is against (a path, or `<embedded default>`); `null` when it
        /// could not be read.
        against: Option<String>,
        /// A unified diff (`--- a/Dockerfile`, `+++ b/Dockerfile`); empty once applied, `null`
        /// when there is no base to diff against or the change cannot apply.
        diff: Option<String>,
        /// The lines the change appends, without the diff's `+`.
        added: Vec<String>,
        /// Added lines that read from outside the build context, and why.
        outside_context: Vec<OutsideContext>,
        /// Why there is no diff.
        note: Option<String>,
        /// Why the change cannot be applied.
        error: Option<String>,
    },
}

/// An added line that reads from another image, the network, a cache or a secret.
#[derive(Debug, Serialize)]
pub struct OutsideContext {
    pub line: String,
    pub why: &'static str,
}

impl From<&Preview> for ChangeJson {
    fn from(preview: &Preview) -> Self {
        let edited = preview.edited;
        let dockerfile = |against, diff, added: Vec<String>, note, error| {
            let outside_context = added
                .iter()
                .filter_map(|l| {
                    reads_outside_context(l).map(|why| OutsideContext {
                        line: l.clone(),
                        why,
                    })
                })
                .collect();
            ChangeJson::Dockerfile {
                edited,
                against,
                diff,
                added,
                outside_context,
                note,
                error,
            }
        };
        match &preview.change {
            Change::Allowlist { host } => ChangeJson::Allowlist {
                edited,
                host: host.clone(),
            },
            Change::PushPolicy { remote, pattern } => ChangeJson::PushPolicy {
                edited,
                remote: remote.clone(),
                pattern: pattern.clone(),
            },
            Change::Diff { against, diff } => dockerfile(
                Some(against.clone()),
                Some(diff.clone()),
                added_lines(diff),
                None,
                None,
            ),
            Change::NoBase { why, lines } => {
                let (added, error) = match lines {
                    Ok(ls) => (ls.clone(), None),
                    Err(e) => (Vec::new(), Some(e.clone())),
                };
                dockerfile(None, None, added, Some(format!("no diff: {why}")), error)
            }
            Change::Refused { error } => {
                dockerfile(None, None, Vec::new(), None, Some(error.clone()))
            }
        }
    }
}

/// The `+` lines of a unified diff, past its `+++` header.
fn added_lines(diff: &str) -> Vec<String> {
    let header = if diff.starts_with("--- ") { 2 } else { 0 };
    diff.lines()
        .skip(header)
        .filter_map(|l| l.strip_prefix('+'))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn parsed(preview: &Preview) -> Value {
        let text = super::super::to_text(&ChangeJson::from(preview)).expect("json");
        serde_json::from_str(&text).expect("the document parses")
    }

    #[test]
    fn without_a_base_the_added_lines_and_why_there_is_no_diff() {
        let c = parsed(&Preview {
            edited: false,
            change: Change::NoBase {
                why: "failed to load bottle myapp: gone".into(),
                lines: Ok(vec![
                    "RUN pip install ruff".into(),
                    "COPY --from=evil/image /x /x".into(),
                ]),
            },
        });
        assert_eq!(c["type"], "dockerfile");
        assert_eq!(c["against"], Value::Null);
        assert_eq!(c["diff"], Value::Null);
        assert_eq!(c["note"], "no diff: failed to load bottle myapp: gone");
        assert_eq!(c["error"], Value::Null);
        assert_eq!(
            c["added"],
            json!(["RUN pip install ruff", "COPY --from=evil/image /x /x"])
        );
        let flags = c["outside_context"].as_array().expect("flags");
        assert_eq!(flags.len(), 1, "{flags:?}");
        assert_eq!(flags[0]["line"], "COPY --from=evil/image /x /x");
        assert!(
            flags[0]["why"]
                .as_str()
                .is_some_and(|w| w.contains("image")),
            "{flags:?}"
        );
    }

    #[test]
    fn lines_that_cannot_apply_are_an_error_with_nothing_added() {
        let c = parsed(&Preview {
            edited: true,
            change: Change::Refused {
                error: "the Dockerfile ends in a continuation".into(),
            },
        });
        assert_eq!(c["type"], "dockerfile");
        assert_eq!(c["edited"], true);
        assert_eq!(c["diff"], Value::Null);
        assert_eq!(c["added"], json!([]));
        assert_eq!(c["error"], "the Dockerfile ends in a continuation");

        let c = parsed(&Preview {
            edited: false,
            change: Change::NoBase {
                why: "no bottle".into(),
                lines: Err("invalid Dockerfile line".into()),
            },
        });
        assert_eq!(c["added"], json!([]));
        assert_eq!(c["error"], "invalid Dockerfile line");
        assert_eq!(c["note"], "no diff: no bottle");
    }

    #[test]
    fn the_added_lines_of_a_diff_are_its_plus_lines_past_the_header() {
        let diff = "--- a/Dockerfile\n+++ b/Dockerfile\n@@ -1,2 +1,3 @@\n \
                    FROM x\n-RUN a\n+++weird\n+RUN b\n";
        assert_eq!(added_lines(diff), ["++weird", "RUN b"]);
        assert_eq!(
            added_lines(""),
            Vec::<String>::new(),
            "applied: no diff, nothing added"
        );
    }
}
