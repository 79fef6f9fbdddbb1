//! CLAUDE_BOTTLE_HOME: where bottles, agents, skills and per-bottle state live.

use std::path::{Path, PathBuf};

/// The resolved home folder and the paths inside it. Injected everywhere so tests use temp dirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `$CLAUDE_BOTTLE_HOME`, else `~/.claude-bottle`.
    pub fn from_env() -> Self {
        if let Some(dir) = std::env::var_os("CLAUDE_BOTTLE_HOME").filter(|v| !v.is_empty()) {
            return Self::new(dir);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        Self::new(home.join(".claude-bottle"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bottle_file(&self, name: &str) -> PathBuf {
        self.root.join("bottles").join(format!("{name}.md"))
    }

    pub fn agent_file(&self, name: &str) -> PathBuf {
        self.root.join("agents").join(format!("{name}.md"))
    }

    pub fn skill_dir(&self, name: &str) -> PathBuf {
        self.root.join("skills").join(name)
    }

    pub fn state_dir(&self, slug: &str) -> PathBuf {
        self.root.join("state").join(slug)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_under_the_root() {
        let h = Home::new("/h");
        assert_eq!(h.bottle_file("dev"), PathBuf::from("/h/bottles/dev.md"));
        assert_eq!(h.agent_file("claude"), PathBuf::from("/h/agents/claude.md"));
        assert_eq!(h.skill_dir("review"), PathBuf::from("/h/skills/review"));
        assert_eq!(h.state_dir("dev"), PathBuf::from("/h/state/dev"));
    }
}
