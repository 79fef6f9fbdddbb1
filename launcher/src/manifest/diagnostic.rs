//! Manifest diagnostics: `path:line: key.path: problem` plus a hint, collected rather than thrown.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in a manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in (or `<embedded>/…` for compiled-in manifests).
    pub path: PathBuf,
    /// 1-based line in the whole file (front matter offset included), when known.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `egress_proxy.routes[2].host`.
    pub key: String,
    pub problem: String,
    /// How to fix it; may span several lines (a migration recipe).
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(
        path: &Path,
        line: Option<usize>,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            key: key.into(),
            problem: problem.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.problem)?;
        } else {
            write!(f, ": {}: {}", self.key, self.problem)?;
        }
        if let Some(hint) = &self.hint {
            let mut lines = hint.lines();
            if let Some(first) = lines.next() {
                write!(f, "\n  hint: {first}")?;
            }
            for rest in lines {
                write!(f, "\n        {rest}")?;
            }
        }
        Ok(())
    }
}

/// Every problem found while loading one bottle (its file, its agent, its skills).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.diagnostics.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))?;
        if self.diagnostics.len() > 1 {
            write!(f, "\n{} problems found", self.diagnostics.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

impl From<Diagnostic> for ManifestError {
    fn from(d: Diagnostic) -> Self {
        Self {
            diagnostics: vec![d],
        }
    }
}
