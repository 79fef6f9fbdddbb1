//! Agent files: `agents/<name>.md` whose front matter says what to run and whose body is the prompt.

use std::path::{Path, PathBuf};

use super::diagnostic::ManifestError;
use super::raw::RawAgent;
use super::validate::{Ctx, parse_yaml};
use super::{Agent, Source, embedded, frontmatter, read_optional};
use crate::home::Home;

const AGENT_KEYS: &str = "command, model, skills, resume";

/// Why an agent could not be loaded: absent (the bottle reports it at its `agent:` line) or invalid.
#[derive(Debug)]
pub enum LoadError {
    Missing(PathBuf),
    Invalid(ManifestError),
}

pub fn load(home: &Home, name: &str) -> Result<Agent, LoadError> {
    let file = home.agent_file(name);
    let valid_name = !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.');
    if !valid_name {
        return Err(LoadError::Missing(file));
    }
    let (source, text) = match read_optional(&file).map_err(|d| LoadError::Invalid(d.into()))? {
        Some(t) => (Source::File(file), t),
        None => match embedded::agent(name) {
            Some(t) => (Source::Embedded, t.to_string()),
            None => return Err(LoadError::Missing(file)),
        },
    };
    let path = source.display_path("agents", name);
    parse(&path, name, source, &text).map_err(LoadError::Invalid)
}

fn parse(path: &Path, name: &str, source: Source, text: &str) -> Result<Agent, ManifestError> {
    let fm = frontmatter::split(path, text)?;
    let raw: RawAgent = parse_yaml(path, fm.yaml, fm.line_offset, AGENT_KEYS)?;
    let mut cx = Ctx {
        path: path.to_path_buf(),
        offset: fm.line_offset,
        diags: Vec::new(),
    };
    let command: Vec<String> = match &raw.command {
        None => vec![
            "claude".to_string(),
            "--dangerously-skip-permissions".to_string(),
        ],
        Some(argv) => argv.iter().map(|a| a.value.clone()).collect(),
    };
    if command.first().is_none_or(|c| c.trim().is_empty()) {
        let loc = raw
            .command
            .as_ref()
            .and_then(|c| c.first())
            .map_or(serde_saphyr::Location::UNKNOWN, |a| a.referenced);
        cx.push_hint(
            &loc,
            "command",
            "empty command",
            "write the argv as a list, e.g. [claude, --dangerously-skip-permissions]",
        );
    }
    let mut skills = Vec::new();
    for (i, s) in raw.skills.iter().flatten().enumerate() {
        if s.value.is_empty() || s.value.contains(['/', '\\']) {
            cx.push_hint(
                &s.referenced,
                format!("skills[{i}]"),
                format!("{:?} is not a skill name", s.value),
                "name a folder under skills/",
            );
        } else {
            skills.push(s.value.clone());
        }
    }
    if !cx.diags.is_empty() {
        return Err(ManifestError {
            diagnostics: cx.diags,
        });
    }
    Ok(Agent {
        name: name.to_string(),
        source,
        command,
        model: raw.model.map(|m| m.value),
        resume: raw
            .resume
            .map(|r| r.into_iter().map(|a| a.value).collect())
            .unwrap_or_default(),
        skills,
        prompt: fm.body.trim().to_string(),
    })
}
