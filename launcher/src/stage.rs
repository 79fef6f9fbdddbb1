//! The per-launch host folders of a bottle under `state/<slug>/`: the queue supervise writes
//! proposals into, the folder its socket lives in, and the staged current-config.
//!
//! Bind-mounted (not named volumes) so the files stay in the operator's state folder: `queue/` into
//! supervise (decisions and applied read-only on top), `run/supervise/` into supervise read-write
//! and into the agent read-only, `current-config/` read-only into both. supervise runs as a uid of
//! its own with the operator's gid (`backend::spec::supervise_user`): the two folders it writes,
//! `queue/proposals/` and `run/supervise/`, are the operator's group's, mode 0775.

use std::path::{Path, PathBuf};

use claude_bottle_protocol::queue::{self, current_config};

use std::os::unix::fs::PermissionsExt as _;

use crate::image::{self, DEFAULT_AGENT_DOCKERFILE};
use crate::plan::{BottlePlan, ImageSource};
use crate::state::atomic::{AtomicError, write_atomic};
use crate::state::dockerfile::{self, EffectiveDockerfile};

/// Write `bytes` atomically unless the file already holds exactly them: most launches restage the
/// same files, and each atomic write costs an fsync of the file and of its folder.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), AtomicError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    write_atomic(path, bytes)
}

/// The agent's prompt in the staged lib folder (empty when the agent file has no body).
pub const AGENT_PROMPT_FILE: &str = "agent-prompt.md";

/// Host paths of one staged launch.
#[derive(Debug, Clone)]
pub struct Stage {
    pub queue: PathBuf,
    pub supervise_run: PathBuf,
    pub current_config: PathBuf,
    /// The launcher's scripts for the agent (entrypoint, bash hook), mounted read-only.
    pub agent_lib: PathBuf,
    /// Where a successor's release appears, mounted read-only ([`crate::backend::AgentSpec::gate`]).
    pub gate: PathBuf,
    /// The egress chain's files, when the bottle allows any host ([`crate::chain::stage`]).
    pub egress: Option<crate::chain::EgressStage>,
    /// The git gate's files, when the bottle declares git remotes ([`crate::git_gate::stage`]).
    pub git: Option<crate::git_gate::GitStage>,
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("failed to stage {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Fs(#[from] AtomicError),
}

impl crate::error::Diagnose for StageError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Internal
    }
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> StageError + '_ {
    move |source| StageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The Dockerfile the agent image is built from: the per-bottle one when approvals made it, else
/// the bottle's `dockerfile:`, else the embedded default.
pub fn effective_dockerfile(plan: &BottlePlan) -> Result<EffectiveDockerfile, StageError> {
    let bottle = match &plan.image {
        ImageSource::Embedded => None,
        ImageSource::Dockerfile(p) => Some(p.as_path()),
    };
    Ok(dockerfile::effective(
        &plan.state_dir,
        bottle,
        DEFAULT_AGENT_DOCKERFILE,
    )?)
}

/// Create the folders and write the current-config of `plan`.
pub fn prepare(plan: &BottlePlan) -> Result<Stage, StageError> {
    let layout = plan.layout();
    let queue = layout.queue();
    for folder in [
        queue::PROPOSALS_DIR,
        queue::DECISIONS_DIR,
        queue::APPLIED_DIR,
    ] {
        let dir = queue.join(folder);
        std::fs::create_dir_all(&dir).map_err(at(&dir))?;
    }
    let supervise_run = layout.supervise_run();
    std::fs::create_dir_all(&supervise_run).map_err(at(&supervise_run))?;
    for dir in [queue.join(queue::PROPOSALS_DIR), supervise_run.clone()] {
        share_with_supervise(&dir)?;
    }
    let stale = supervise_run.join("supervise.sock");
    if stale.exists() {
        std::fs::remove_file(&stale).map_err(at(&stale))?;
    }
    let current_config = layout.current_config();
    std::fs::create_dir_all(&current_config).map_err(at(&current_config))?;
    write_current_config(plan, &current_config)?;
    let agent_lib = layout.agent_lib();
    std::fs::create_dir_all(&agent_lib).map_err(at(&agent_lib))?;
    // A release left by an earlier launch names a successor that is gone: start empty.
    let gate = layout.gate();
    if gate.exists() {
        std::fs::remove_dir_all(&gate).map_err(at(&gate))?;
    }
    std::fs::create_dir_all(&gate).map_err(at(&gate))?;
    // The agent's prompt rides along; the entrypoint copies it to ~/.claude/CLAUDE.md as the
    // agent's own user (an upload into the created container cost a round trip per start).
    let prompt = if plan.agent.prompt.is_empty() {
        String::new()
    } else {
        format!("{}\n", plan.agent.prompt)
    };
    for (name, text, mode) in [
        ("entrypoint.sh", image::ENTRYPOINT_SCRIPT, 0o755),
        ("bash-env.sh", image::BASH_ENV_SCRIPT, 0o644),
        (AGENT_PROMPT_FILE, prompt.as_str(), 0o644),
    ] {
        let path = agent_lib.join(name);
        write_if_changed(&path, text.as_bytes())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(at(&path))?;
    }
    Ok(Stage {
        agent_lib,
        queue,
        supervise_run,
        current_config,
        gate,
        egress: None,
        git: None,
    })
}

/// Mode of the folders supervise writes through the operator's group.
pub const SUPERVISE_DIR_MODE: u32 = 0o775;

/// `dir` in the operator's group (a setgid parent may have given it another) and group-writable.
fn share_with_supervise(dir: &Path) -> Result<(), StageError> {
    std::os::unix::fs::chown(dir, None, Some(nix::unistd::getgid().as_raw())).map_err(at(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(SUPERVISE_DIR_MODE))
        .map_err(at(dir))
}

/// (Re)write the three current-config files: what the agent may read about its own bottle.
pub fn write_current_config(plan: &BottlePlan, dir: &Path) -> Result<(), StageError> {
    let mut allowlist = plan.allowlist.join("\n");
    allowlist.push('\n');
    write_if_changed(&dir.join(current_config::ALLOWLIST), allowlist.as_bytes())?;
    write_if_changed(
        &dir.join(current_config::ROUTES),
        crate::egress::agent_routes_json(&plan.routes).as_bytes(),
    )?;
    let dockerfile = effective_dockerfile(plan)?;
    write_if_changed(
        &dir.join(current_config::DOCKERFILE),
        dockerfile.text().as_bytes(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_queue_run_and_current_config() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plan = crate::plan::default_plan_in(tmp.path());
        let stage = prepare(&plan).expect("stage");
        for d in ["proposals", "decisions", "applied"] {
            assert!(stage.queue.join(d).is_dir());
        }
        // supervise (another uid, the operator's group) writes proposals and its socket; it only
        // reads decisions and applied records.
        use std::os::unix::fs::MetadataExt as _;
        for (dir, mode) in [
            (stage.queue.join("proposals"), SUPERVISE_DIR_MODE),
            (stage.supervise_run.clone(), SUPERVISE_DIR_MODE),
        ] {
            let meta = std::fs::metadata(&dir).expect("stat");
            assert_eq!(meta.mode() & 0o777, mode, "{}", dir.display());
            assert_eq!(
                meta.gid(),
                nix::unistd::getgid().as_raw(),
                "{}",
                dir.display()
            );
        }
        for d in ["decisions", "applied"] {
            let mode = std::fs::metadata(stage.queue.join(d)).expect("stat").mode();
            assert_eq!(mode & 0o022, 0, "{d} is writable by the operator only");
        }
        let allow =
            std::fs::read_to_string(stage.current_config.join("allowlist")).expect("allowlist");
        assert_eq!(allow, "api.anthropic.com\n");
        let routes =
            std::fs::read_to_string(stage.current_config.join("routes.json")).expect("routes");
        assert!(
            routes.contains("\"auth_scheme\": \"header:x-api-key\""),
            "{routes}"
        );
        assert!(
            !routes.contains("ANTHROPIC_API_KEY"),
            "no token reference for the agent: {routes}"
        );
        let df =
            std::fs::read_to_string(stage.current_config.join("Dockerfile")).expect("Dockerfile");
        assert_eq!(df, DEFAULT_AGENT_DOCKERFILE);
    }
}
