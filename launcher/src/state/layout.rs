//! The state folder of one bottle, `state/<slug>/`: every path the launcher reads or writes there,
//! one method each, so the layout is spelled in one place ([docs/state.md](../../../docs/state.md)).

use std::path::{Path, PathBuf};

use claude_bottle_protocol::queue::Folder;

/// `state/<slug>/` and what lives in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            root: state_dir.to_owned(),
        }
    }

    /// `state/<slug>/` itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `queue/`: supervise writes `proposals/`, the host `decisions/` and `applied/`.
    pub fn queue(&self) -> PathBuf {
        self.root.join("queue")
    }

    /// One folder of the queue.
    pub fn queue_folder(&self, folder: Folder) -> PathBuf {
        self.queue().join(folder.dir_name())
    }

    /// `audit.jsonl`: one line per proposal, decision and outcome.
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.jsonl")
    }

    /// `approved-hosts`: the egress hosts the operator approved, one a line.
    pub fn approved_hosts(&self) -> PathBuf {
        self.root.join("approved-hosts")
    }

    /// `approved-pushes`: push-policy entries the operator approved, `<remote> <entry>` a line.
    pub fn approved_pushes(&self) -> PathBuf {
        self.root.join("approved-pushes")
    }

    /// `Dockerfile`: the bottle's Dockerfile with its approved capabilities, once there is one.
    pub fn per_bottle_dockerfile(&self) -> PathBuf {
        self.root.join("Dockerfile")
    }

    /// `current-config/`: what the agent and supervise read of the bottle's settings.
    pub fn current_config(&self) -> PathBuf {
        self.root.join("current-config")
    }

    /// `snapshots/latest/`: the agent's home and workspace, as the last session left them.
    pub fn latest_snapshot(&self) -> PathBuf {
        self.root.join("snapshots").join("latest")
    }

    /// `workspace-source`: the absolute path of the folder `start --cwd` copied into the agent's
    /// workspace, what `export --patch` compares against; absent after a `start` without `--cwd`.
    pub fn workspace_source(&self) -> PathBuf {
        self.root.join("workspace-source")
    }

    /// `run/`: what one launch stages, and the caches of warm starts.
    pub fn run(&self) -> PathBuf {
        self.root.join("run")
    }

    /// `run/agent-image`: the image the agent runs, recorded for `prune` ([`super::in_use`]).
    pub fn agent_image_record(&self) -> PathBuf {
        self.run().join(super::in_use::FILE_NAME)
    }

    /// `run/supervise/`: supervise's socket folder.
    pub fn supervise_run(&self) -> PathBuf {
        self.run().join("supervise")
    }

    /// `run/gate/`: the files that release a successor started ahead of its swap (mounted
    /// read-only into the agent).
    pub fn gate(&self) -> PathBuf {
        self.run().join("gate")
    }

    /// `run/lib/`: the agent's entrypoint and bash hook.
    pub fn agent_lib(&self) -> PathBuf {
        self.run().join("lib")
    }

    /// `run/net/`: the relay's socket and the agent's trust bundle.
    pub fn net(&self) -> PathBuf {
        self.run().join("net")
    }

    /// `run/pipelock/`: pipelock's config and CA.
    pub fn pipelock(&self) -> PathBuf {
        self.run().join("pipelock")
    }

    /// `run/egress-proxy/`: the egress-proxy's routes and CA.
    pub fn egress_proxy(&self) -> PathBuf {
        self.run().join("egress-proxy")
    }

    /// `run/git/`: the git gate's socket (read-write in the gate, read-only in the agent).
    pub fn git_socket(&self) -> PathBuf {
        self.run().join("git")
    }

    /// `run/git-gate/`: the gate's configuration, `known_hosts` and extra roots (read-only in
    /// the gate; no secret).
    pub fn git_gate(&self) -> PathBuf {
        self.run().join("git-gate")
    }

    /// `run/git-pipelock/`: the gate's own pipelock's config and CA.
    pub fn git_pipelock(&self) -> PathBuf {
        self.run().join("git-pipelock")
    }

    /// `git/`: what the gate keeps across launches: `mirrors/` (a bare mirror per remote) and
    /// `audit/git-audit.jsonl` (one line per pushed ref).
    pub fn git(&self) -> PathBuf {
        self.root.join("git")
    }

    /// `run/binaries/<name>.digest`: a static binary's digest, keyed by the file's identity.
    pub fn binary_digest(&self, name: &str) -> PathBuf {
        self.run().join("binaries").join(format!("{name}.digest"))
    }

    /// `run/image-roots/`: the agent image's own trust roots, per image.
    pub fn image_roots(&self) -> PathBuf {
        self.run().join("image-roots")
    }

    /// `run/image-contract/`: the image contract's verdict, per image id.
    pub fn image_contract(&self) -> PathBuf {
        self.run().join("image-contract")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_documented_one() {
        let l = Layout::new(Path::new("/s/app"));
        let rel = |p: PathBuf| {
            p.strip_prefix("/s/app")
                .expect("under the root")
                .display()
                .to_string()
        };
        assert_eq!(rel(l.queue_folder(Folder::Decisions)), "queue/decisions");
        assert_eq!(rel(l.audit_log()), "audit.jsonl");
        assert_eq!(rel(l.approved_hosts()), "approved-hosts");
        assert_eq!(rel(l.approved_pushes()), "approved-pushes");
        assert_eq!(rel(l.per_bottle_dockerfile()), "Dockerfile");
        assert_eq!(rel(l.current_config()), "current-config");
        assert_eq!(rel(l.latest_snapshot()), "snapshots/latest");
        assert_eq!(rel(l.workspace_source()), "workspace-source");
        assert_eq!(rel(l.supervise_run()), "run/supervise");
        assert_eq!(rel(l.agent_image_record()), "run/agent-image");
        assert_eq!(rel(l.agent_lib()), "run/lib");
        assert_eq!(rel(l.net()), "run/net");
        assert_eq!(rel(l.pipelock()), "run/pipelock");
        assert_eq!(rel(l.egress_proxy()), "run/egress-proxy");
        assert_eq!(rel(l.git_socket()), "run/git");
        assert_eq!(rel(l.git_gate()), "run/git-gate");
        assert_eq!(rel(l.git_pipelock()), "run/git-pipelock");
        assert_eq!(rel(l.git()), "git");
        assert_eq!(
            rel(l.binary_digest("claude-bottle-shim")),
            "run/binaries/claude-bottle-shim.digest"
        );
        assert_eq!(rel(l.image_roots()), "run/image-roots");
        assert_eq!(rel(l.image_contract()), "run/image-contract");
    }
}
