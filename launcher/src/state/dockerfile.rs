//! Applying an approved capability to a Dockerfile's text, and the unified diff that shows it.
//!
//! Pure functions (but [`effective`], which reads the current one): `claude-bottle show` uses
//! them to preview a change, the remediation loop to write the per-bottle Dockerfile. The change
//! is always appended as the final step(s), so the image rebuild reuses the layer cache for
//! everything before it.

use std::path::{Path, PathBuf};

use claude_bottle_protocol::dockerfile::check_capability;
use claude_bottle_protocol::{Capability, ProposalId};

pub mod syntax;

/// The Dockerfile a bottle's agent image is built from now, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectiveDockerfile {
    /// `state/<slug>/Dockerfile`: approvals have changed it.
    PerBottle { path: PathBuf, text: String },
    /// The bottle's `dockerfile:`.
    Bottle { path: PathBuf, text: String },
    /// The Dockerfile compiled into the launcher.
    Embedded { text: &'static str },
}

impl EffectiveDockerfile {
    /// The Dockerfile's text.
    pub fn text(&self) -> &str {
        match self {
            Self::PerBottle { text, .. } | Self::Bottle { text, .. } => text,
            Self::Embedded { text } => text,
        }
    }

    /// Where it comes from, for people (a path, or `<embedded default>`).
    pub fn origin(&self) -> String {
        match self {
            Self::PerBottle { path, .. } | Self::Bottle { path, .. } => path.display().to_string(),
            Self::Embedded { .. } => "<embedded default>".to_owned(),
        }
    }
}

/// The bottle's current Dockerfile: `state_dir/Dockerfile` if it exists, else the bottle's own
/// `dockerfile:` (`bottle_dockerfile`), else `embedded`.
pub fn effective(
    state_dir: &Path,
    bottle_dockerfile: Option<&Path>,
    embedded: &'static str,
) -> Result<EffectiveDockerfile, super::AtomicError> {
    let per_bottle = super::Layout::new(state_dir).per_bottle_dockerfile();
    if let Some(bytes) = super::atomic::read_in(state_dir, &per_bottle)? {
        return Ok(EffectiveDockerfile::PerBottle {
            path: per_bottle,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    match bottle_dockerfile {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| super::AtomicError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            })?;
            Ok(EffectiveDockerfile::Bottle {
                path: path.to_owned(),
                text,
            })
        }
        None => Ok(EffectiveDockerfile::Embedded { text: embedded }),
    }
}

/// Why a capability cannot be turned into Dockerfile lines: the protocol's [`Refusal`], which
/// supervise answers with when the proposal is filed. [`with_capability`] checks again what
/// supervise checked, for decisions written by hand, files written by older versions and a
/// Dockerfile that changed since.
///
/// [`Refusal`]: claude_bottle_protocol::dockerfile::Refusal
pub use claude_bottle_protocol::dockerfile::Refusal as DockerfileError;

/// `dockerfile` with the capability of proposal `id` appended as the final step: a marker comment,
/// one `RUN apt-get …` line for all apt packages, then the Dockerfile lines as given. The step runs
/// as root (`USER root` before it, the text's last `USER` restored after it), since an image that
/// ends as the agent's user could not install anything. Applying the same proposal twice changes
/// nothing: the marker is found and the text returned as it is. The result ends with a newline.
///
/// Each appended line stays one instruction: a line ending in `\` or in the escape character a
/// `# escape=` directive of `dockerfile` sets is refused, and so is a `dockerfile` that itself
/// ends in a continuation (the protocol's [`check_capability`], which supervise applies too).
pub fn with_capability(
    dockerfile: &str,
    id: &ProposalId,
    cap: &Capability,
) -> Result<String, DockerfileError> {
    let lines = check_capability(cap, dockerfile)?;
    let marker = marker(id);
    if markers(dockerfile).any(|m| m == marker) {
        return Ok(dockerfile.to_owned());
    }
    // The step runs as root: the image may end as another user, set here or in its FROM image,
    // which the text does not show. Only a numeric USER is restored afterwards: the launcher runs
    // the agent as a numeric uid from the image and as the contract's 1000:1000 for a name or
    // root, so a name needs no restoring and each approval costs one step fewer.
    let user = last_user(dockerfile).filter(|u| !is_root(u) && is_numeric(u));
    let already_root = !needs_root_step(dockerfile);
    let mut out = String::with_capacity(dockerfile.len() + 256);
    out.push_str(dockerfile);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&marker);
    out.push('\n');
    if !already_root {
        out.push_str(ROOT_STEP);
        out.push('\n');
    }
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    if let Some(u) = user {
        out.push_str(&format!("USER {u}\n"));
    }
    Ok(out)
}

/// The step an approved capability starts with when the Dockerfile does not end as root.
pub const ROOT_STEP: &str = "USER root";

/// Whether [`with_capability`] puts [`ROOT_STEP`] before the approved lines: the text's last
/// `USER` is not root (or there is none, and the `FROM` image's user is unknown). That step is
/// the same for every first approval, so the launcher can build it ahead (see the session).
pub fn needs_root_step(dockerfile: &str) -> bool {
    !last_user(dockerfile).is_some_and(|u| is_root(&u))
}

/// How every marker line starts.
pub const MARKER_PREFIX: &str = "# claude-bottle: approved proposal ";

/// The comment that marks the step of one proposal in a per-bottle Dockerfile.
pub fn marker(id: &ProposalId) -> String {
    format!("{MARKER_PREFIX}{id}")
}

/// The marker lines of `dockerfile`, one for each approved step, without trailing whitespace.
pub fn markers(dockerfile: &str) -> impl Iterator<Item = &str> {
    dockerfile
        .lines()
        .filter(|l| l.starts_with(MARKER_PREFIX))
        .map(str::trim_end)
}

/// The argument of the last `USER` instruction, if any, as the parser reads instructions: a
/// `USER root` line inside another instruction's continuation is not one.
fn last_user(dockerfile: &str) -> Option<String> {
    syntax::parse(dockerfile)
        .iter()
        .rev()
        .filter(|i| i.is("USER"))
        .find_map(|i| i.arguments().map(str::to_owned))
}

fn is_numeric(user: &str) -> bool {
    user.split(':')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or(user);
    name == "root" || name == "0"
}

/// The Dockerfile lines a capability becomes, validated for a Dockerfile without a `# escape=`
/// directive that ends its last instruction ([`with_capability`] checks them again against the
/// real one).
pub fn capability_lines(cap: &Capability) -> Result<Vec<String>, DockerfileError> {
    check_capability(cap, "")
}

/// How `show` marks an added line that reads from outside the build context.
pub const OUTSIDE_CONTEXT_MARK: &str = "! reads outside the build context: ";

/// Why the instruction `line` reads from outside the build context, if it does: another image
/// (`FROM`, `--from`), the network (`ADD` of a URL or git repository), a cache, secret or SSH
/// agent (`--mount`), also behind `ONBUILD`. The build context is all that `show` lets the
/// operator see of what a step takes in; these reach further. Keywords and flags are matched
/// case-insensitively, more loosely than the builder does, so that a doubt marks the line.
pub fn reads_outside_context(line: &str) -> Option<&'static str> {
    let mut words = syntax::words(line).peekable();
    // ONBUILD's instruction runs in every build FROM this image; a loop, not recursion, since
    // the line may be long.
    while words
        .peek()
        .is_some_and(|w| w.eq_ignore_ascii_case("ONBUILD"))
    {
        words.next();
    }
    let keyword = words.next()?;
    if keyword.eq_ignore_ascii_case("FROM") {
        return Some("FROM starts a stage from another image, which the engine pulls or has");
    }
    let (flags, args) = syntax::split_flags(words);
    let flags: Vec<String> = flags.iter().map(|f| f.to_ascii_lowercase()).collect();
    for f in &flags {
        if f.contains("--from") {
            return Some("--from takes files from another image or build stage");
        }
        if f.contains("--mount") {
            return Some("--mount reaches a cache, a secret, the SSH agent or another image");
        }
    }
    if !keyword.eq_ignore_ascii_case("ADD") {
        return None;
    }
    if flags
        .iter()
        .any(|f| f.starts_with("--checksum") || f.starts_with("--keep-git-dir"))
    {
        return Some("ADD fetches a URL or git repository");
    }
    // The sources: every argument but the destination (all of them when there is one).
    let sources = match args.len() {
        0 | 1 => &args[..],
        n => &args[..n - 1],
    };
    for src in sources {
        let src = src.trim_matches(['[', ']', '"', ',', '\'']);
        let lower = src.to_ascii_lowercase();
        if lower.contains("://") || lower.starts_with("git@") {
            return Some("ADD fetches a URL or git repository");
        }
        if src.contains(['$', '\\', '`', ':', '@']) {
            return Some("ADD's source expands variables or escapes and may name a URL");
        }
    }
    None
}

/// `diff` (a [`unified_diff`], or `+` lines alone) with an [`OUTSIDE_CONTEXT_MARK`] line under
/// each added line that [`reads_outside_context`].
pub fn flag_outside_context(diff: &str) -> String {
    let mut out = String::with_capacity(diff.len());
    // A diff's `+++` header names a file; every later `+` line is an added line, even one that
    // starts with `++`.
    let header = if diff.starts_with("--- ") { 2 } else { 0 };
    for (n, line) in diff.split_inclusive('\n').enumerate() {
        out.push_str(line);
        let Some(added) = line.strip_prefix('+').filter(|_| n >= header) else {
            continue;
        };
        if let Some(why) = reads_outside_context(added) {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(OUTSIDE_CONTEXT_MARK);
            out.push_str(why);
            out.push('\n');
        }
    }
    out
}

/// A unified diff (`---`/`+++`/`@@` hunks, 3 lines of context, as `diff -u` writes them) from
/// `old` to `new`, line by line (Myers' algorithm, by `similar`). Empty when the texts are equal.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let (a, b) = (diff_lines(old), diff_lines(new));
    similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Myers)
        .diff_slices(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

/// `text`'s lines as the parser reads them: cut at `\n` only, so a `\r` stays part of its line
/// (and shows, escaped) instead of making an unchanged line differ from itself. (`similar`'s own
/// line splitting also cuts at a lone `\r`.)
fn diff_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    if text.is_empty() || text.ends_with('\n') {
        lines.pop();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ProposalId {
        ProposalId::new(s).expect("valid id")
    }

    fn cap(apt: &[&str], lines: &[&str]) -> Capability {
        Capability {
            apt: apt.iter().map(|s| (*s).to_owned()).collect(),
            dockerfile_lines: lines.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn apt_packages_become_one_run_line_then_the_lines_as_given() {
        let out = with_capability(
            "FROM x\nUSER agent",
            &id("p-1"),
            &cap(&["ripgrep", "jq=1.6-2.1"], &["RUN touch /marker"]),
        )
        .expect("valid");
        assert_eq!(
            out,
            "FROM x\nUSER agent\n# claude-bottle: approved proposal p-1\nUSER root\n\
             RUN apt-get update && apt-get install -y --no-install-recommends \
             -o APT::Cmd::Pattern-Only=true ripgrep:native jq:native=1.6-2.1 \
             && rm -rf /var/lib/apt/lists/*\nRUN touch /marker\n"
        );
        // Applying the same proposal again changes nothing.
        let again = with_capability(&out, &id("p-1"), &cap(&["ripgrep"], &[])).expect("valid");
        assert_eq!(again, out);
        // A numeric user is restored; once the file ends as root, later steps add no USER.
        let numeric = with_capability(
            "FROM x\nUSER 1001:1001\n",
            &id("p-3"),
            &cap(&[], &["RUN b"]),
        )
        .expect("valid");
        assert!(
            numeric.ends_with("USER root\nRUN b\nUSER 1001:1001\n"),
            "{numeric}"
        );
        let next = with_capability(&again, &id("p-4"), &cap(&[], &["RUN c"])).expect("valid");
        assert!(next.ends_with("approved proposal p-4\nRUN c\n"), "{next}");
        // Without a USER in the text (it may come from the FROM image) the step still runs as
        // root, and there is nothing to restore.
        let root = with_capability("FROM x\n", &id("p-2"), &cap(&[], &["RUN a"])).expect("valid");
        assert_eq!(
            root,
            "FROM x\n# claude-bottle: approved proposal p-2\nUSER root\nRUN a\n"
        );
    }

    #[test]
    fn the_markers_are_the_lines_that_start_with_the_prefix() {
        // What `with_capability` finds a proposal by and the plan counts approved steps by.
        let text = "FROM x\n# claude-bottle: approved proposal a \r\nRUN a\n  \
                    # claude-bottle: approved proposal b\n# claude-bottle: approved proposal c";
        assert_eq!(
            markers(text).collect::<Vec<_>>(),
            [
                "# claude-bottle: approved proposal a",
                "# claude-bottle: approved proposal c"
            ]
        );
        assert_eq!(
            with_capability(text, &id("a"), &cap(&[], &["RUN b"])).as_deref(),
            Ok(text)
        );
    }

    #[test]
    fn the_root_step_is_needed_exactly_when_the_text_does_not_end_as_root() {
        for (text, needed) in [
            ("FROM x\n", true),
            ("FROM x\nUSER agent\n", true),
            ("FROM x\nUSER 1000:1000\nRUN a\n", true),
            ("FROM x\nUSER root\nRUN a\n", false),
            ("FROM x\nUSER agent\nuser 0:0\n", false),
        ] {
            assert_eq!(needs_root_step(text), needed, "{text:?}");
            // What is built ahead is what the candidate then holds.
            let out = with_capability(text, &id("p"), &cap(&[], &["RUN touch /m"])).expect("valid");
            assert_eq!(
                out.contains(&format!("\n{ROOT_STEP}\nRUN touch /m")),
                needed,
                "{out}"
            );
        }
    }

    #[test]
    fn a_user_line_inside_a_continuation_does_not_make_the_step_root() {
        // Found by the dockerfile_render fuzz target: the parser joins `USER root` to the RUN
        // before it, so the text does not end as root and the step needs its own USER root.
        for text in [
            "FROM x\nUSER agent\nRUN echo \\\nUSER root\n",
            "# escape=`\nFROM x\nUSER 1001\nRUN echo `\n# c\nUSER 0\n",
        ] {
            assert!(needs_root_step(text), "{text:?}");
            let out = with_capability(text, &id("p"), &cap(&[], &["RUN b"])).expect("valid");
            assert!(
                out.ends_with(&format!("{ROOT_STEP}\nRUN b\n"))
                    || out.contains(&format!("{ROOT_STEP}\nRUN b\nUSER 1001\n")),
                "{out}"
            );
        }
    }

    #[test]
    fn apt_names_are_strict() {
        for ok in [
            "jq",
            "g++",
            "python3.11",
            "libc6=2.36-9+deb12u4",
            "xz=1:2.0~rc1",
        ] {
            assert!(capability_lines(&cap(&[ok], &[])).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Rg",
            "-x",
            "a b",
            "a;rm",
            "$(id)",
            "a=",
            "a=v1",
            "=1",
            "a=1 2",
            "a=1;x",
            "../x",
            // What apt-get reads as a removal, another architecture or release, or a pattern.
            "bash-",
            "coreutils-",
            "jq=1.6-",
            "jq=1.6+",
            "jq:i386",
            "jq/sid",
            "?essential",
            "lib*",
            "a",
        ] {
            assert!(capability_lines(&cap(&[bad], &[])).is_err(), "{bad:?}");
        }
        assert!(with_capability("FROM x\n", &id("p"), &cap(&["a&&b"], &[])).is_err());
        let e = capability_lines(&cap(&["bash-"], &[])).expect_err("a removal");
        assert!(e.to_string().contains("remove"), "{e}");
    }

    /// apt-get reads an argument ending in `+` or `-` as a modifier when no package has the whole
    /// name, and a name with `.` or `+` that no package has as a pattern (cacheset.cc): the line
    /// names each package so that apt-get can install only that one.
    #[test]
    fn the_apt_line_names_exactly_the_packages_shown() {
        let lines = capability_lines(&cap(
            &["g++", "memtest86+", "python3.11", "jq=1.6-2.1"],
            &[],
        ))
        .expect("valid");
        assert_eq!(
            lines,
            [
                "RUN apt-get update && apt-get install -y --no-install-recommends \
                 -o APT::Cmd::Pattern-Only=true g++:native memtest86+:native python3.11:native \
                 jq:native=1.6-2.1 && rm -rf /var/lib/apt/lists/*"
            ]
        );
        assert!(
            lines[0].split(' ').all(|w| !w.ends_with(['+', '-'])),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn bad_lines_and_empty_capabilities_are_refused() {
        let e = with_capability("FROM x\n", &id("p"), &cap(&[], &[])).expect_err("empty");
        assert!(e.to_string().contains("at least one"), "{e}");
        for bad in ["", "  ", "RUN a\nRUN b", "RUN a \\"] {
            assert!(
                with_capability("FROM x\n", &id("p"), &cap(&[], &[bad])).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_line_ending_in_the_escape_directives_character_is_refused() {
        // With `# escape=`` ` ``, a line ending in a backtick would join the next approved line
        // (or the restoring USER) to itself: `RUN curl x | sh `` ` `` + `USER 1001` runs as root.
        for text in [
            "# escape=`\nFROM x\nUSER 1001\n",
            "#escape=`\nFROM x\n",
            "  # ESCAPE = `\r\nFROM x\n",
            "\u{feff}# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n",
            "# check=skip=all\n# escape=`\nFROM x\n",
        ] {
            for line in ["RUN echo a `", "RUN echo a `  \t", "`"] {
                assert!(
                    matches!(
                        with_capability(text, &id("p"), &cap(&[], &[line])),
                        Err(DockerfileError::Line { .. })
                    ),
                    "{text:?} + {line:?}"
                );
            }
            // A backslash is refused whatever the directives say.
            assert!(
                with_capability(text, &id("p"), &cap(&[], &["RUN dir C:\\"])).is_err(),
                "{text:?}"
            );
        }
        // Where the directive does not count (not at the very top), a backtick is only a
        // backtick: the line is one instruction, and appended as such.
        for text in [
            "FROM x\n# escape=`\n",
            "# a comment\n# escape=`\nFROM x\n",
            "\n# escape=`\nFROM x\n",
            "# unknown=1\n# escape=`\nFROM x\n",
        ] {
            let out = with_capability(text, &id("p"), &cap(&[], &["RUN echo `date`"]))
                .unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(
                syntax::instructions(&out).last().map(String::as_str),
                Some("RUN echo `date`"),
                "{out}"
            );
        }
    }

    #[test]
    fn every_appended_line_stays_one_instruction() {
        let text = "# escape=`\nFROM x\nRUN a `\n  b\nUSER 1001\n";
        let out =
            with_capability(text, &id("p"), &cap(&["jq"], &["RUN c", "ENV D=1"])).expect("valid");
        let before = syntax::instructions(text);
        let after = syntax::instructions(&out);
        assert_eq!(before, ["FROM x", "RUN a   b", "USER 1001"]);
        assert_eq!(&after[..before.len()], &before[..]);
        assert_eq!(
            &after[before.len()..],
            [
                "USER root",
                "RUN apt-get update && apt-get install -y --no-install-recommends \
                 -o APT::Cmd::Pattern-Only=true jq:native && rm -rf /var/lib/apt/lists/*",
                "RUN c",
                "ENV D=1",
                "USER 1001"
            ]
        );
    }

    #[test]
    fn a_dockerfile_that_ends_in_a_continuation_takes_no_step() {
        // The marker is a comment, skipped inside a continuation: `USER root` (or the approved
        // line) would become part of the text's last RUN.
        for text in [
            "FROM x\nRUN a \\\n",
            "FROM x\nRUN a \\\n# a comment\n\n",
            "# escape=`\nFROM x\nRUN a `\n",
            "# escape=`\nFROM x\nRUN a \\\n",
        ] {
            assert_eq!(
                with_capability(text, &id("p"), &cap(&[], &["RUN b"])),
                Err(DockerfileError::OpenContinuation),
                "{text:?}"
            );
        }
        // A backtick ends nothing without the directive.
        assert!(
            with_capability("FROM x\nRUN echo `date`\n", &id("p"), &cap(&[], &["RUN b"])).is_ok()
        );
    }

    #[test]
    fn the_protocols_refusals_hold_for_lines_that_were_never_proposals() {
        // A decision's edit written by hand, or a per-bottle file of an older version, reaches
        // with_capability without the protocol's validation.
        let long = format!(
            "RUN {}",
            "a".repeat(claude_bottle_protocol::limits::MAX_DOCKERFILE_LINE)
        );
        assert!(matches!(
            with_capability("FROM x\n", &id("p"), &cap(&[], &[&long])),
            Err(DockerfileError::Line { .. })
        ));
        for line in [
            "RUN <<EOF",
            "RUN cat <<-END > /etc/x",
            "COPY <<EOF /etc/x",
            "RUN --mount=type=secret,id=x cat /run/secrets/x",
            "RUN --network=host curl x",
            "RUN --security=insecure true",
            "RUN echo \u{1b}[2K",
            "RUN echo \u{202e}hs.x",
        ] {
            assert!(
                matches!(
                    with_capability("FROM x\n", &id("p"), &cap(&[], &[line])),
                    Err(DockerfileError::Line { .. })
                ),
                "{line:?}"
            );
        }
    }

    #[test]
    fn lines_that_read_outside_the_build_context_are_named() {
        for (line, outside) in [
            ("COPY --from=builder /x /y", true),
            ("copy --FROM=evil/image:1 / /", true),
            ("COPY --chown=1:1 --from=0 /a /b", true),
            ("COPY --chown=\u{160}--from=evil /a /b", true),
            ("COPY\u{a0}--from=evil /a /b", true),
            ("ADD https://example.com/x.tgz /opt/", true),
            ("ADD http://example.com/x /x", true),
            ("ADD git@github.com:acme/x.git /src", true),
            (
                "ADD --keep-git-dir=true https://github.com/acme/x.git /src",
                true,
            ),
            ("ADD --checksum=sha256:abc https://x/y /y", true),
            ("ADD [\"https://example.com/x\", \"/x\"]", true),
            ("ADD $URL /x", true),
            ("ADD http:\\/\\/example.com/x /x", true),
            ("FROM debian:bookworm", true),
            ("  from scratch AS x", true),
            ("ONBUILD COPY --from=x /a /b", true),
            ("ONBUILD ADD https://x/y /y", true),
            ("onbuild onbuild FROM x", true),
            ("RUN --mount=type=cache,target=/x true", true),
            ("COPY ./a /b", false),
            ("ADD ./vendor.tar.gz /opt/", false),
            ("ADD a b /dest/", false),
            ("RUN curl https://example.com", false),
            ("ENV FROM=1", false),
            ("RUN echo --from", false),
            ("# FROM x", false),
            ("ONBUILD RUN true", false),
            ("", false),
        ] {
            assert_eq!(
                reads_outside_context(line).is_some(),
                outside,
                "{line:?}: {:?}",
                reads_outside_context(line)
            );
        }
    }

    #[test]
    fn show_marks_each_added_line_that_reads_outside_the_context() {
        let old = "FROM x\nUSER root\n";
        let new = with_capability(
            old,
            &id("p"),
            &cap(
                &[],
                &["COPY --from=evil /x /y", "RUN true", "ADD https://x/y /y"],
            ),
        )
        .expect("valid");
        let diff = unified_diff(old, &new, "a/Dockerfile", "b/Dockerfile");
        assert_eq!(
            flag_outside_context(&diff),
            "--- a/Dockerfile\n+++ b/Dockerfile\n@@ -1,2 +1,6 @@\n FROM x\n USER root\n\
             +# claude-bottle: approved proposal p\n+COPY --from=evil /x /y\n\
             ! reads outside the build context: --from takes files from another image or build stage\n\
             +RUN true\n+ADD https://x/y /y\n\
             ! reads outside the build context: ADD fetches a URL or git repository\n"
        );
        // The +++ header names a file, not a line; a context line is not marked.
        assert_eq!(
            flag_outside_context("--- a\n+++ FROM x\n@@ -1 +1 @@\n FROM x\n"),
            "--- a\n+++ FROM x\n@@ -1 +1 @@\n FROM x\n"
        );
        // `+` lines without a diff header (show's fallback) are marked too.
        assert!(flag_outside_context("+FROM x\n").contains(OUTSIDE_CONTEXT_MARK));
    }

    #[test]
    fn an_append_diffs_as_one_hunk_with_context() {
        let old = "FROM x\nRUN a\nRUN b\nRUN c\nUSER agent\n";
        let new = with_capability(old, &id("p"), &cap(&[], &["RUN touch /m"])).expect("valid");
        assert_eq!(
            unified_diff(old, &new, "a/Dockerfile", "b/Dockerfile"),
            "--- a/Dockerfile\n+++ b/Dockerfile\n@@ -3,3 +3,6 @@\n RUN b\n RUN c\n USER agent\n\
             +# claude-bottle: approved proposal p\n+USER root\n+RUN touch /m\n"
        );
    }

    #[test]
    fn diffs_of_small_or_empty_files_use_the_zero_and_one_length_forms() {
        // As `diff -u` writes them: an empty range is `start,0` at the line before it, a range of
        // one line is its start alone.
        assert_eq!(
            unified_diff("", "RUN x\n", "a", "b"),
            "--- a\n+++ b\n@@ -0,0 +1 @@\n+RUN x\n"
        );
        assert_eq!(
            unified_diff("FROM x\n", "FROM y\n", "a", "b"),
            "--- a\n+++ b\n@@ -1 +1 @@\n-FROM x\n+FROM y\n"
        );
        assert_eq!(unified_diff("same\n", "same\n", "a", "b"), "");
    }

    #[test]
    fn the_per_bottle_dockerfile_wins_then_the_bottles_then_the_embedded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let own = tmp.path().join("own.Dockerfile");
        std::fs::write(&own, "FROM own\n").expect("own");
        let state = tmp.path().join("state");
        std::fs::create_dir(&state).expect("state");
        let e = effective(&state, None, "FROM embedded\n").expect("embedded");
        assert_eq!(
            (e.text(), e.origin().as_str()),
            ("FROM embedded\n", "<embedded default>")
        );
        let e = effective(&state, Some(&own), "FROM embedded\n").expect("bottle's");
        assert_eq!(e.text(), "FROM own\n");
        std::fs::write(
            crate::state::Layout::new(&state).per_bottle_dockerfile(),
            "FROM per-bottle\n",
        )
        .expect("write");
        let e = effective(&state, Some(&own), "FROM embedded\n").expect("per-bottle");
        assert!(matches!(e, EffectiveDockerfile::PerBottle { .. }));
        assert_eq!(e.text(), "FROM per-bottle\n");
    }

    #[test]
    fn an_append_to_a_text_ending_in_a_carriage_return_deletes_no_line() {
        // Found by the dockerfile_render fuzz target: `lines()` took `x\r` without a newline
        // for a different line than `x\r\n`, and the diff showed the old line removed.
        for old in ["\r", "FROM x\r", "FROM x\r\nRUN a\r"] {
            let new = with_capability(old, &id("p"), &cap(&[], &["RUN b"])).expect("valid");
            let diff = unified_diff(old, &new, "a", "b");
            assert!(
                !diff.lines().skip(2).any(|l| l.starts_with('-')),
                "{diff:?}"
            );
            assert!(diff.ends_with("+RUN b\n"), "{diff:?}");
        }
        assert_eq!(
            unified_diff("a\r\nb\n", "a\r\nc\n", "a", "b"),
            "--- a\n+++ b\n@@ -1,2 +1,2 @@\n a\r\n-b\n+c\n"
        );
    }

    #[test]
    fn general_diffs_are_valid_hunks() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n";
        let new = "1\n2x\n3\n4\n5\n6\n7\n8\n9\n10\n12\n13\n";
        assert_eq!(
            unified_diff(old, new, "a", "b"),
            "--- a\n+++ b\n@@ -1,5 +1,5 @@\n 1\n-2\n+2x\n 3\n 4\n 5\n\
             @@ -8,5 +8,5 @@\n 8\n 9\n 10\n-11\n 12\n+13\n"
        );
    }
}
