//! `claude-setup`: make Claude Code usable at once inside the bottle, merged into its own state.
//!
//! Run by the launcher's entrypoint before the agent's command when Claude Code is installed. Every
//! `start` begins from the image's home, so without this every user meets the first-run screens of
//! Claude Code 2.1.332 (read from its bundled JavaScript and checked by running it):
//! - onboarding (`hasCompletedOnboarding`), which also probes `platform.claude.com` and exits when
//!   that fails;
//! - "Detected a custom API key … No (recommended)" for the placeholder key
//!   (`customApiKeyResponses.approved` holds the key's last 20 characters);
//! - the folder trust dialog (`projects[<dir>].hasTrustDialogAccepted`);
//! - the bypass-permissions warning (`skipDangerousModePermissionPrompt` in `~/.claude/settings.json`):
//!   the bottle is the boundary.
//!
//! The CLI rewrites `~/.claude.json` on every start (and moves legacy keys into settings.json), so
//! both files are *merged*: the keys below are set, everything else the agent has (its sessions,
//! settings of its own, a resumed home) stays as it was. Writes are atomic (temp file + rename).
//! With supervise on, the shim's MCP server is registered under `mcpServers.claude-bottle`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// How many trailing characters of the API key Claude Code remembers as approved.
const APPROVED_KEY_SUFFIX: usize = 20;
/// The MCP server's name in `mcpServers` (tools appear as `mcp__claude-bottle__…`).
pub const MCP_SERVER_NAME: &str = "claude-bottle";

/// What to merge, from the agent's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// `$HOME`.
    pub home: PathBuf,
    /// The folder Claude Code starts in (trusted without asking).
    pub workdir: PathBuf,
    /// `$ANTHROPIC_API_KEY` (the placeholder): its suffix is pre-approved.
    pub api_key: Option<String>,
    /// The shim's path, to register the MCP server (only with supervise on).
    pub mcp_command: Option<String>,
}

/// Why a file could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a JSON object ({problem})\nhint: Claude Code keeps its state there; fix or remove the file"
    )]
    NotAnObject { path: PathBuf, problem: String },
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Setup {
    /// Merges both files; returns the paths written.
    pub fn apply(&self) -> Result<Vec<PathBuf>, SetupError> {
        let state = self.home.join(".claude.json");
        let settings = self.home.join(".claude").join("settings.json");
        merge_file(&state, |doc| self.merge_state(doc))?;
        merge_file(&settings, merge_settings)?;
        Ok(vec![state, settings])
    }

    fn merge_state(&self, doc: &mut Map<String, Value>) {
        doc.insert("hasCompletedOnboarding".into(), Value::Bool(true));
        if let Some(key) = self
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            let start = key
                .char_indices()
                .rev()
                .nth(APPROVED_KEY_SUFFIX - 1)
                .map_or(0, |(i, _)| i);
            let suffix = Value::String(key[start..].to_owned());
            let responses = object_at(doc, "customApiKeyResponses");
            let approved = responses
                .entry("approved")
                .or_insert_with(|| Value::Array(Vec::new()));
            if !approved.is_array() {
                *approved = Value::Array(Vec::new());
            }
            if let Some(list) = approved.as_array_mut()
                && !list.contains(&suffix)
            {
                list.push(suffix);
            }
            responses
                .entry("rejected")
                .or_insert_with(|| Value::Array(Vec::new()));
        }
        let projects = object_at(doc, "projects");
        let dir = self.workdir.to_string_lossy().into_owned();
        let project = projects
            .entry(dir)
            .or_insert_with(|| Value::Object(Map::new()));
        if !project.is_object() {
            *project = Value::Object(Map::new());
        }
        if let Some(project) = project.as_object_mut() {
            project.insert("hasTrustDialogAccepted".into(), Value::Bool(true));
        }
        if let Some(command) = &self.mcp_command {
            object_at(doc, "mcpServers").insert(
                MCP_SERVER_NAME.into(),
                json!({"type": "stdio", "command": command, "args": ["mcp"]}),
            );
        }
    }
}

fn merge_settings(doc: &mut Map<String, Value>) {
    doc.insert(
        "skipDangerousModePermissionPrompt".into(),
        Value::Bool(true),
    );
}

/// `doc[key]` as an object, replacing anything else found there.
fn object_at<'a>(doc: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = doc
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("made an object just above")
}

fn merge_file(path: &Path, merge: impl FnOnce(&mut Map<String, Value>)) -> Result<(), SetupError> {
    let mut doc = match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Map::new(),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(SetupError::NotAnObject {
                    path: path.to_owned(),
                    problem: "another JSON value".into(),
                });
            }
            Err(e) => {
                return Err(SetupError::NotAnObject {
                    path: path.to_owned(),
                    problem: e.to_string(),
                });
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(source) => {
            return Err(SetupError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    merge(&mut doc);
    let mut text = serde_json::to_string_pretty(&Value::Object(doc)).expect("a map serializes");
    text.push('\n');
    write_atomic(path, text.as_bytes()).map_err(|source| SetupError::Write {
        path: path.to_owned(),
        source,
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.claude-bottle.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(home: &Path) -> Setup {
        Setup {
            home: home.to_owned(),
            workdir: "/workspace".into(),
            api_key: Some("claude-bottle-placeholder-the-egress-proxy-injects-the-real-one".into()),
            mcp_command: Some("/usr/local/bin/claude-bottle-shim".into()),
        }
    }

    fn read(path: &Path) -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
    }

    #[test]
    fn a_fresh_home_gets_every_key() {
        let home = tempfile::tempdir().expect("tempdir");
        setup(home.path()).apply().expect("apply");
        let state = read(&home.path().join(".claude.json"));
        assert_eq!(state["hasCompletedOnboarding"], true);
        assert_eq!(
            state["customApiKeyResponses"]["approved"],
            json!(["injects-the-real-one"])
        );
        assert_eq!(
            state["projects"]["/workspace"]["hasTrustDialogAccepted"],
            true
        );
        assert_eq!(
            state["mcpServers"]["claude-bottle"],
            json!({"type": "stdio", "command": "/usr/local/bin/claude-bottle-shim", "args": ["mcp"]})
        );
        let settings = read(&home.path().join(".claude/settings.json"));
        assert_eq!(settings["skipDangerousModePermissionPrompt"], true);
    }

    #[test]
    fn the_agents_own_state_is_kept_and_a_second_run_changes_nothing() {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(home.path().join(".claude")).expect("mkdir");
        std::fs::write(
            home.path().join(".claude.json"),
            r#"{"numStartups": 7, "projects": {"/workspace": {"history": ["x"]}, "/other": {}},
                "customApiKeyResponses": {"approved": ["abc"], "rejected": ["def"]},
                "mcpServers": {"mine": {"command": "me"}}}"#,
        )
        .expect("write");
        std::fs::write(
            home.path().join(".claude/settings.json"),
            r#"{"model": "opus", "permissions": {"allow": ["Bash"]}}"#,
        )
        .expect("write");
        setup(home.path()).apply().expect("apply");
        let once = std::fs::read_to_string(home.path().join(".claude.json")).expect("read");
        setup(home.path()).apply().expect("apply again");
        assert_eq!(
            once,
            std::fs::read_to_string(home.path().join(".claude.json")).expect("read")
        );
        let state = read(&home.path().join(".claude.json"));
        assert_eq!(state["numStartups"], 7);
        assert_eq!(state["projects"]["/workspace"]["history"], json!(["x"]));
        assert_eq!(
            state["projects"]["/workspace"]["hasTrustDialogAccepted"],
            true
        );
        assert!(state["projects"]["/other"].is_object());
        assert_eq!(
            state["customApiKeyResponses"],
            json!({"approved": ["abc", "injects-the-real-one"], "rejected": ["def"]})
        );
        assert_eq!(state["mcpServers"]["mine"], json!({"command": "me"}));
        let settings = read(&home.path().join(".claude/settings.json"));
        assert_eq!(settings["model"], "opus");
        assert_eq!(settings["skipDangerousModePermissionPrompt"], true);
    }

    #[test]
    fn without_supervise_or_key_nothing_of_them_is_written() {
        let home = tempfile::tempdir().expect("tempdir");
        let mut s = setup(home.path());
        s.mcp_command = None;
        s.api_key = None;
        s.apply().expect("apply");
        let state = read(&home.path().join(".claude.json"));
        assert!(state.get("mcpServers").is_none());
        assert!(state.get("customApiKeyResponses").is_none());
    }

    #[test]
    fn a_broken_state_file_is_an_error_and_is_left_alone() {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(home.path().join(".claude.json"), "{not json").expect("write");
        let err = setup(home.path()).apply().expect_err("broken");
        assert!(err.to_string().contains("hint:"), "{err}");
        assert_eq!(
            std::fs::read_to_string(home.path().join(".claude.json")).expect("read"),
            "{not json"
        );
    }
}
