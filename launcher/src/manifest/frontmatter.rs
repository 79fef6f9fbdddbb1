//! Split a Markdown manifest into its YAML front matter and its body, remembering the line offset.

use std::path::Path;

use super::diagnostic::Diagnostic;

/// A manifest file cut into parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontMatter<'a> {
    /// The YAML between the `---` fences (empty when the file has none).
    pub yaml: &'a str,
    /// Lines before the YAML's first line: add to a YAML-relative line to get the file's line.
    pub line_offset: usize,
    /// The Markdown after the closing fence.
    pub body: &'a str,
}

/// Cut `text` (the content of `path`) at its `---` fences. A file without front matter is all body.
pub fn split<'a>(path: &Path, text: &'a str) -> Result<FrontMatter<'a>, Diagnostic> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = strip_fence(text) else {
        return Ok(FrontMatter {
            yaml: "",
            line_offset: 0,
            body: text,
        });
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" || line.trim_end() == "..." {
            let yaml = &rest[..offset];
            let body = &rest[offset + line.len()..];
            return Ok(FrontMatter {
                yaml,
                line_offset: 1,
                body,
            });
        }
        offset += line.len();
    }
    Err(Diagnostic::new(
        path,
        Some(1),
        "",
        "front matter opened with `---` is never closed",
    )
    .hint("end the YAML front matter with a line holding only `---`"))
}

fn strip_fence(text: &str) -> Option<&str> {
    let first_end = text.find('\n')?;
    (text[..first_end].trim_end() == "---").then(|| &text[first_end + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_yaml_and_body() {
        let fm = split(Path::new("b.md"), "---\nagent: claude\n---\n# notes\n").expect("valid");
        assert_eq!(fm.yaml, "agent: claude\n");
        assert_eq!(fm.line_offset, 1);
        assert_eq!(fm.body, "# notes\n");
    }

    #[test]
    fn no_front_matter_is_all_body() {
        let fm = split(Path::new("b.md"), "just notes\n").expect("valid");
        assert_eq!(fm.yaml, "");
        assert_eq!(fm.body, "just notes\n");
    }

    #[test]
    fn unclosed_front_matter_is_an_error_on_line_one() {
        let err = split(Path::new("b.md"), "---\nagent: claude\n").expect_err("unclosed");
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn crlf_fences_are_accepted() {
        let fm = split(Path::new("b.md"), "---\r\nagent: x\r\n---\r\nbody").expect("valid");
        assert_eq!(fm.yaml, "agent: x\r\n");
        assert_eq!(fm.body, "body");
    }
}
