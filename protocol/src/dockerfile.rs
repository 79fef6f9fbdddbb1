//! How Docker's builder reads a Dockerfile, and what may be appended to one.
//!
//! Whether a line continues on the next one and how its words and flags separate are the rules
//! of one line ([`crate::validate_dockerfile_line`] checks a proposed line by them); [`parse`]
//! reads a whole text (its `# escape=` directive, comments, continuations) as the parser does.
//! [`check_capability`] is the one judgement of a capability against the Dockerfile it would be
//! appended to: supervise makes it when the proposal is filed, against the bottle's current
//! Dockerfile in its current-config, and the launcher when an approval is applied, so that what
//! one refuses the other refuses too, in the same words.

use crate::{Capability, ProtocolError, escape_line, validate_dockerfile_line};

mod scan;

pub use scan::{Instruction, ends_in_continuation, escape_token, instructions, lines, parse};

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

/// Why a capability cannot be appended to a Dockerfile: what supervise answers when the
/// proposal is filed and the launcher when the approval is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// What [`Capability::validate`] refuses, as it says it.
    #[error("{0}")]
    Refused(String),
    /// A line the protocol refuses, or one ending in the escape character the Dockerfile's
    /// `# escape=` directive sets.
    #[error("invalid Dockerfile line \"{}\": {problem}", escape_line(.line))]
    Line { line: String, problem: String },
    #[error(
        "the Dockerfile ends in a line continuation: its last instruction line ends in `\\` or \
         its escape character, so an appended step would join that instruction\n\
         hint: end the last instruction of the bottle's Dockerfile (or of state/<slug>/Dockerfile)"
    )]
    OpenContinuation,
}

/// The Dockerfile lines `cap` becomes when it is appended to `dockerfile` (one `RUN apt-get …`
/// line for all apt packages, then the Dockerfile lines as given), or why it cannot be.
///
/// Each line is checked by the protocol's rules ([`validate_dockerfile_line`]) and by the one
/// rule that depends on `dockerfile`: it must not end in the escape character that
/// `dockerfile`'s `# escape=` directive sets, which would join whatever is appended next to this
/// step. Then the whole capability ([`Capability::validate`]); then `dockerfile` itself, which
/// must not end in a continuation ([`ends_in_continuation`]), since the appended step would join
/// its last instruction. An empty `dockerfile` stands for one without directives that ends its
/// last instruction.
pub fn check_capability(cap: &Capability, dockerfile: &str) -> Result<Vec<String>, Refusal> {
    let escape = escape_token(dockerfile);
    // Each line first, so the error quotes the line.
    for l in &cap.dockerfile_lines {
        check_line(l, escape)?;
    }
    cap.validate()
        .map_err(|e| Refusal::Refused(e.to_string()))?;
    if ends_in_continuation(dockerfile) {
        return Err(Refusal::OpenContinuation);
    }
    let mut lines = Vec::new();
    if !cap.apt.is_empty() {
        // apt-get installs exactly the packages named: no pattern fallback for a name no
        // package has (`.` and `+` make a regex otherwise), and no argument that ends in its
        // `+`/`-` modifiers (`g++` stays `g++`). See `validate_apt_package`.
        let args: Vec<String> = cap.apt.iter().map(|p| apt_arg(p)).collect();
        lines.push(format!(
            "RUN apt-get update && apt-get install -y --no-install-recommends \
             -o APT::Cmd::Pattern-Only=true {} && rm -rf /var/lib/apt/lists/*",
            args.join(" ")
        ));
    }
    lines.extend(cap.dockerfile_lines.iter().cloned());
    Ok(lines)
}

/// The argument apt-get gets for a package: `name:native`, or `name:native=version`. An argument
/// that ends in `+` or `-` is a modifier when no package has that whole name
/// (`FromModifierCommandLine` in apt's `apt-pkg/cacheset.cc`); this one never ends in either, and
/// selects the image's own architecture, as a bare name does.
fn apt_arg(spec: &str) -> String {
    match spec.split_once('=') {
        Some((name, version)) => format!("{name}:native={version}"),
        None => format!("{spec}:native"),
    }
}

/// The protocol's rules for one line, and the line must not end in `escape`.
fn check_line(line: &str, escape: char) -> Result<(), Refusal> {
    let bad = |problem| Refusal::Line {
        line: line.to_owned(),
        problem,
    };
    validate_dockerfile_line(line).map_err(|e| {
        bad(match e {
            ProtocolError::Invalid { problem, .. } => problem,
            ProtocolError::Refused { problem, hint, .. } => format!("{problem}\nhint: {hint}"),
            other => other.to_string(),
        })
    })?;
    if continues(line, escape) {
        return Err(bad(format!(
            "it ends with a line continuation ({escape}, the escape character this Dockerfile's \
             `# escape=` directive sets)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(apt: &[&str], lines: &[&str]) -> Capability {
        Capability {
            apt: apt.iter().map(|s| (*s).to_owned()).collect(),
            dockerfile_lines: lines.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn a_capability_becomes_one_apt_line_then_its_lines() {
        assert_eq!(
            check_capability(
                &cap(&["g++", "jq=1.6-2.1"], &["RUN a", "ENV B=1"]),
                "FROM x\n"
            ),
            Ok(vec![
                "RUN apt-get update && apt-get install -y --no-install-recommends \
                 -o APT::Cmd::Pattern-Only=true g++:native jq:native=1.6-2.1 \
                 && rm -rf /var/lib/apt/lists/*"
                    .to_owned(),
                "RUN a".to_owned(),
                "ENV B=1".to_owned()
            ])
        );
        assert_eq!(
            check_capability(&cap(&[], &["RUN a"]), ""),
            Ok(vec!["RUN a".to_owned()])
        );
        assert!(matches!(
            check_capability(&cap(&[], &[]), ""),
            Err(Refusal::Refused(_))
        ));
        assert!(matches!(
            check_capability(&cap(&["bash-"], &[]), ""),
            Err(Refusal::Refused(_))
        ));
    }

    #[test]
    fn a_line_ending_in_the_escape_character_of_the_dockerfile_is_refused() {
        let backtick = "# escape=`\nFROM x\nUSER 1001\n";
        let e = check_capability(&cap(&[], &["RUN echo a `"]), backtick).expect_err("backtick");
        assert_eq!(
            e.to_string(),
            "invalid Dockerfile line \"RUN echo a `\": it ends with a line continuation (`, the \
             escape character this Dockerfile's `# escape=` directive sets)"
        );
        // Without the directive (or where it does not count) a backtick is only a backtick.
        for text in ["", "FROM x\n", "FROM x\n# escape=`\n"] {
            assert!(
                check_capability(&cap(&[], &["RUN echo a `"]), text).is_ok(),
                "{text:?}"
            );
        }
        // A backslash is refused whatever the directives say.
        for text in ["", backtick] {
            assert!(matches!(
                check_capability(&cap(&[], &["RUN dir C:\\"]), text),
                Err(Refusal::Line { .. })
            ));
        }
    }

    #[test]
    fn a_dockerfile_that_ends_in_a_continuation_takes_no_capability() {
        for text in [
            "FROM x\nRUN a \\\n",
            "FROM x\nRUN a \\\n# a comment\n\n",
            "# escape=`\nFROM x\nRUN a `\n",
        ] {
            assert_eq!(
                check_capability(&cap(&["jq"], &[]), text),
                Err(Refusal::OpenContinuation),
                "{text:?}"
            );
        }
        // A bad line is named first: it is what the agent can change.
        assert!(matches!(
            check_capability(&cap(&[], &["RUN b `"]), "# escape=`\nFROM x\nRUN a `\n"),
            Err(Refusal::Line { .. })
        ));
    }

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
