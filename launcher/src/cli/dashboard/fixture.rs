//! Fixture homes for the dashboard's tests: queues written as supervise and the launcher write
//! them, the engine's answer made up, read back through `gather` as the dashboard reads them.

use claude_bottle_protocol::{Applied, Decision, Proposal, ProposalKind};

use super::gather;
use super::model::{App, Snapshot};
use crate::backend::{BottleStatus, Resource, ResourceKind};
use crate::home::Home;
use crate::state::Queue;
use crate::testing;

/// The time the fixtures are read at.
pub const NOW: u64 = 1_764_270_300;

/// A home in a folder whose name always has the same length (`/tmp/.tmpXXXXXX`), so that a path
/// shown in a wrapped pane wraps the same way every run.
#[derive(Debug)]
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub home: Home,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .tempdir_in("/tmp")
            .expect("temp home");
        let home = Home::new(dir.path());
        Self { _dir: dir, home }
    }

    /// The queue of `slug`, with a per-bottle Dockerfile so that a capability shows its diff.
    pub fn queue(&self, slug: &str) -> Queue {
        let dir = self.home.state_dir(slug);
        let q = Queue::open(&dir).expect("queue");
        let df = crate::state::Layout::new(&dir).per_bottle_dockerfile();
        if !df.exists() {
            std::fs::write(&df, "FROM debian:bookworm-slim\nUSER agent\n").expect("Dockerfile");
        }
        q
    }

    /// Files proposal `id` as supervise would, `age` seconds before [`NOW`].
    pub fn propose(&self, slug: &str, id: &str, kind: ProposalKind, age: u64) -> Proposal {
        let mut p = testing::proposal(id, slug, kind, NOW - age);
        p.evidence = vec!["bash: rg: command not found".into()];
        self.file(slug, &p);
        p
    }

    /// Writes `p` into the proposals folder of `slug`.
    pub fn file(&self, slug: &str, p: &Proposal) {
        let q = self.queue(slug);
        let path = q.path(claude_bottle_protocol::queue::Folder::Proposals, &p.id);
        std::fs::write(path, serde_json::to_vec_pretty(p).expect("json")).expect("proposal");
    }

    /// Approves `p` at `at` and records `applied`, as the launcher would.
    pub fn decide(&self, slug: &str, d: &Decision, applied: Option<&Applied>) {
        let q = self.queue(slug);
        q.decide(d).expect("decide");
        if let Some(a) = applied {
            q.record_applied(a).expect("applied");
        }
    }

    /// The snapshot the dashboard reads, with `engine` as the engine's answer.
    pub fn snapshot(&self, engine: &Result<Vec<BottleStatus>, String>) -> Snapshot {
        gather::snapshot(&self.home, engine, NOW, &mut gather::Noted::default())
    }

    /// An app showing this home.
    pub fn app(&self, engine: &Result<Vec<BottleStatus>, String>) -> App {
        let mut app = App::default();
        app.update(self.snapshot(engine));
        app
    }
}

/// A bottle's containers on the engine: each role running and created `age` seconds before
/// [`NOW`], health as given.
pub fn running(slug: &str, roles: &[(&str, &str, Option<&str>)], age: u64) -> BottleStatus {
    BottleStatus {
        slug: slug.into(),
        resources: roles
            .iter()
            .map(|(role, state, health)| Resource {
                kind: ResourceKind::Container,
                name: format!("{slug}-{role}"),
                role: (*role).into(),
                state: (*state).into(),
                created: i64::try_from(NOW - age).expect("time"),
                image: if *role == "agent" {
                    format!("claude-bottle/agent-{slug}:3f2a9c01d4e5")
                } else {
                    format!("claude-bottle/{role}:0.1.0")
                },
                health: health.map(str::to_owned),
                launcher_pid: None,
                kept: false,
            })
            .collect(),
    }
}

/// Every container of a bottle with the egress chain and supervise, all running.
pub fn full(slug: &str, age: u64) -> BottleStatus {
    running(
        slug,
        &[
            ("agent", "running", None),
            ("supervise", "running", None),
            ("relay", "running", None),
            ("egress-proxy", "running", Some("healthy")),
            ("pipelock", "running", Some("healthy")),
        ],
        age,
    )
}
