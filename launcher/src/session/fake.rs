//! A backend without an engine, for driving the session in unit tests.
//!
//! In the spirit of youki's recording `Syscall` fake: every operation is recorded in order, and
//! the fake keeps a small model of what an engine would hold (containers, running or not, kept,
//! and the files of each agent), so a test can assert both the steps and that nothing is left
//! behind. A test scripts failures per operation, holds one operation so that a signal (or a
//! crash: dropping the session) lands exactly there, and makes the agent exit.
//!
//! Snapshots go through the real [`Store`]: the fake writes a real tar of the agent's files, so
//! the store's limits, commit and load run as they do against the engine. Images are a set of
//! tags: [`crate::prepare`] runs for real on top (recipes, caches, the image contract), and every
//! image the fake holds keeps the contract (uid 1000, its home and workspace owned).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::backend::{
    AgentSpec, Backend, BackendError, BottleStatus, BuildReport, EngineFacts, EntryKind,
    FirstEntry, ImageInfo, LaunchSpec, Launched, Progress, Removal, Resource, ResourceKind,
    SidecarSpec, SwapError,
};
use crate::image::ImageRecipe;
use crate::state::snapshot::{Snapshot, Store};

/// One operation of the [`Backend`] trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    EngineFacts,
    ImageInfo,
    /// `build_image` shown on the terminal (a launch's images, an approval's rebuild).
    Build,
    /// `build_image` of the first approval's root step, ahead, in the background.
    WarmRootStep,
    Pull,
    FirstEntries,
    ReadImageFile,
    AcceptsDiskSize,
    Launch,
    StartSidecars,
    AwaitSidecars,
    RunAgent,
    StopAgent,
    Snapshot,
    KeepAgent,
    KeptAgent,
    RunningAgent,
    CreateSuccessor,
    SwapIn,
    Restore,
    Reload,
    FindOrphans,
    Stop,
    List,
}

/// A container in the fake's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub role: String,
    pub image: String,
    pub running: bool,
    pub kept: bool,
    /// Started ahead and waiting at its gate until this file exists.
    pub held: Option<std::path::PathBuf>,
    /// The agent's home and workspace, as one text (what a snapshot carries).
    pub files: String,
}

/// What the fake does and has done.
#[derive(Debug, Default)]
pub struct State {
    /// Every operation, in the order the session asked for it.
    pub calls: Vec<Op>,
    pub containers: BTreeMap<String, Container>,
    /// Failures to answer, in turn, per operation (then success).
    pub fail: HashMap<Op, VecDeque<String>>,
    /// The operation that waits, once reached, until released (or a signal or a drop ends it).
    pub hold: Option<Op>,
    released: std::collections::HashSet<Op>,
    /// The held call waiting now.
    holding: Option<Op>,
    /// Operations that got past their hold, in order.
    pub finished: Vec<Op>,
    /// Objects an earlier launcher left, with its pid (found by `find_orphans`).
    pub orphans: Vec<(String, Option<u32>)>,
    /// Exit codes for running agents, by container name.
    exits: HashMap<String, i64>,
    /// The files the latest snapshot holds.
    pub snapshot_files: Option<String>,
    /// What `engine_facts` answers.
    pub engine: EngineFacts,
    /// Image tags on the engine, with the Dockerfile each was built from ("" when pulled).
    pub images: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    changed: Notify,
}

/// The fake backend; clones share one model.
#[derive(Debug, Clone, Default)]
pub struct Fake(Arc<Inner>);

impl Fake {
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().expect("fake state")
    }

    /// Fail the next call of `op` with `why`.
    pub fn fail(&self, op: Op, why: &str) {
        self.state()
            .fail
            .entry(op)
            .or_default()
            .push_back(why.to_owned());
        self.0.changed.notify_waiters();
    }

    /// The next call of `op` waits until [`Fake::release`].
    pub fn hold(&self, op: Op) {
        self.state().hold = Some(op);
    }

    /// Wait until the call of `op` held by [`Fake::hold`] has arrived.
    pub async fn held(&self, op: Op) {
        loop {
            let notified = self.0.changed.notified();
            if self.state().holding == Some(op) {
                return;
            }
            notified.await;
        }
    }

    /// Let the held call of `op` go on.
    pub fn release(&self, op: Op) {
        self.state().released.insert(op);
        self.0.changed.notify_waiters();
    }

    /// Wait until a call of `op` got past its hold.
    pub async fn finished(&self, op: Op) {
        loop {
            let notified = self.0.changed.notified();
            if self.state().finished.contains(&op) {
                return;
            }
            notified.await;
        }
    }

    /// How many times `op` was called.
    pub fn count(&self, op: Op) -> usize {
        self.state().calls.iter().filter(|c| **c == op).count()
    }

    /// Wait until `op` has been called `n` times.
    pub async fn reached(&self, op: Op, n: usize) {
        loop {
            let notified = self.0.changed.notified();
            if self.count(op) >= n {
                return;
            }
            notified.await;
        }
    }

    /// The running agent (named `<slug>-agent`) exits with `code`.
    pub fn exit_agent(&self, slug: &str, code: i64) {
        self.state().exits.insert(format!("{slug}-agent"), code);
        self.0.changed.notify_waiters();
    }

    /// The agent writes `text` to its files.
    pub fn agent_writes(&self, slug: &str, text: &str) {
        if let Some(c) = self.state().containers.get_mut(&format!("{slug}-agent")) {
            c.files.push_str(text);
        }
    }

    /// Names of the containers the model holds.
    pub fn containers(&self) -> Vec<String> {
        self.state().containers.keys().cloned().collect()
    }

    /// Record `op`, then hold (until released), fail or go on as scripted.
    async fn enter(&self, op: Op) -> Result<(), BackendError> {
        let held = {
            let mut s = self.state();
            s.calls.push(op);
            let held = s.hold == Some(op);
            if held {
                s.hold = None;
                s.holding = Some(op);
            }
            held
        };
        self.0.changed.notify_waiters();
        if held {
            loop {
                let notified = self.0.changed.notified();
                let released = {
                    let mut s = self.state();
                    let released = s.released.remove(&op);
                    if released {
                        s.holding = None;
                    }
                    released
                };
                if released {
                    break;
                }
                notified.await;
            }
        }
        // Taken after the hold: a test can script the failure of a held call.
        let failure = {
            let mut s = self.state();
            s.finished.push(op);
            s.fail.get_mut(&op).and_then(VecDeque::pop_front)
        };
        self.0.changed.notify_waiters();
        match failure {
            Some(detail) => Err(BackendError::Engine {
                action: "fake",
                object: format!("{op:?}"),
                detail,
            }),
            None => Ok(()),
        }
    }

    fn launched(slug: &str, name: &str, tty: bool) -> Launched {
        Launched {
            slug: slug.to_owned(),
            agent: name.to_owned(),
            tty,
            state_paths: vec!["/home/agent".into(), "/workspace".into()],
            release: None,
        }
    }

    fn add(&self, name: &str, role: &str, image: &str) {
        self.state().containers.insert(
            name.to_owned(),
            Container {
                role: role.to_owned(),
                image: image.to_owned(),
                running: false,
                kept: false,
                held: None,
                files: String::new(),
            },
        );
    }
}

impl Backend for Fake {
    async fn engine_facts(&self) -> Result<EngineFacts, BackendError> {
        self.enter(Op::EngineFacts).await?;
        Ok(self.state().engine.clone())
    }

    async fn image_info(&self, tag: &str) -> Result<Option<ImageInfo>, BackendError> {
        self.enter(Op::ImageInfo).await?;
        Ok(self.state().images.contains_key(tag).then(|| ImageInfo {
            id: format!("sha256:{}", tag.replace(['/', ':'], "-")),
            user: "agent".into(),
            ..ImageInfo::default()
        }))
    }

    async fn build_image(
        &self,
        recipe: &ImageRecipe,
        progress: Progress,
    ) -> Result<BuildReport, BackendError> {
        let op = match progress {
            Progress::Shown => Op::Build,
            Progress::Quiet => Op::WarmRootStep,
        };
        self.enter(op).await?;
        self.state()
            .images
            .insert(recipe.tag.clone(), recipe.dockerfile.clone());
        Ok(BuildReport {
            tag: recipe.tag.clone(),
            built: true,
            steps: 3,
            cached_steps: 2,
        })
    }

    async fn pull_image(&self, image: &str, _what: &str) -> Result<(), BackendError> {
        self.enter(Op::Pull).await?;
        self.state().images.insert(image.to_owned(), String::new());
        Ok(())
    }

    async fn first_entries(
        &self,
        _image: &str,
        paths: &[(&str, u64)],
        _labels: &[(String, String)],
    ) -> Result<Vec<FirstEntry>, BackendError> {
        self.enter(Op::FirstEntries).await?;
        // An image that keeps the contract: its account files name uid 1000, its folders are owned.
        let file = |text: &str| FirstEntry::Entry {
            kind: EntryKind::File,
            uid: 0,
            gid: 0,
            size: text.len() as u64,
            data: Some(text.as_bytes().to_vec()),
        };
        Ok(paths
            .iter()
            .map(|(path, _)| match *path {
                "/etc/passwd" => file(
                    "root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000::/home/agent:/bin/bash\n",
                ),
                "/etc/group" => file("root:x:0:\nagent:x:1000:\n"),
                _ => FirstEntry::Entry {
                    kind: EntryKind::Dir,
                    uid: 1000,
                    gid: 1000,
                    size: 0,
                    data: None,
                },
            })
            .collect())
    }

    async fn read_image_file(
        &self,
        _image: &str,
        _path: &str,
        _labels: &[(String, String)],
    ) -> Result<Option<Vec<u8>>, BackendError> {
        self.enter(Op::ReadImageFile).await?;
        Ok(None)
    }

    async fn accepts_disk_size(
        &self,
        _image: &str,
        _bytes: u64,
        _labels: &[(String, String)],
    ) -> Result<bool, BackendError> {
        self.enter(Op::AcceptsDiskSize).await?;
        Ok(true)
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, BackendError> {
        self.enter(Op::Launch).await?;
        for s in spec.sidecars.iter().filter(|s| s.gates_agent) {
            self.add(&format!("{}-{}", spec.slug, s.name), &s.name, &s.image);
        }
        let name = format!("{}-agent", spec.slug);
        self.add(&name, "agent", &spec.agent.image);
        Ok(Self::launched(&spec.slug, &name, spec.agent.tty))
    }

    async fn start_sidecars(&self, spec: &LaunchSpec) -> Result<(), BackendError> {
        self.enter(Op::StartSidecars).await?;
        for s in spec.sidecars.iter().filter(|s| !s.gates_agent) {
            let name = format!("{}-{}", spec.slug, s.name);
            self.add(&name, &s.name, &s.image);
            if let Some(c) = self.state().containers.get_mut(&name) {
                c.running = true;
            }
        }
        Ok(())
    }

    async fn await_sidecars(&self, _spec: &LaunchSpec) -> Result<(), BackendError> {
        self.enter(Op::AwaitSidecars).await
    }

    async fn run_agent(&self, launched: &Launched) -> Result<i64, BackendError> {
        self.enter(Op::RunAgent).await?;
        if let Some(release) = &launched.release {
            // As the engine's backend: the held agent goes on once its release file exists.
            std::fs::File::create(release).map_err(|e| BackendError::Engine {
                action: "release",
                object: launched.agent.clone(),
                detail: e.to_string(),
            })?;
        }
        if let Some(c) = self.state().containers.get_mut(&launched.agent) {
            c.running = true;
            c.held = None;
        }
        loop {
            let notified = self.0.changed.notified();
            {
                let mut s = self.state();
                if !s.containers.contains_key(&launched.agent) {
                    return Err(BackendError::Engine {
                        action: "wait for",
                        object: launched.agent.clone(),
                        detail: "no such container".into(),
                    });
                }
                if let Some(code) = s.exits.remove(&launched.agent) {
                    if let Some(c) = s.containers.get_mut(&launched.agent) {
                        c.running = false;
                    }
                    return Ok(code);
                }
            }
            notified.await;
        }
    }

    async fn stop(&self, slug: &str, removal: Removal) -> Result<Vec<Resource>, BackendError> {
        self.enter(Op::Stop).await?;
        let mut s = self.state();
        let names: Vec<String> = s
            .containers
            .iter()
            .filter(|(name, c)| {
                name.starts_with(slug) && (removal == Removal::Everything || !c.kept)
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut removed = Vec::new();
        for name in names {
            if let Some(c) = s.containers.remove(&name) {
                removed.push(Resource {
                    kind: ResourceKind::Container,
                    name,
                    role: c.role,
                    state: String::new(),
                    created: 0,
                    image: String::new(),
                    health: None,
                    launcher_pid: None,
                    kept: c.kept,
                });
            }
        }
        s.orphans.clear();
        drop(s);
        self.0.changed.notify_waiters();
        Ok(removed)
    }

    async fn list(&self) -> Result<Vec<BottleStatus>, BackendError> {
        self.enter(Op::List).await?;
        Ok(Vec::new())
    }

    async fn stop_agent(&self, launched: &Launched) -> Result<(), BackendError> {
        self.enter(Op::StopAgent).await?;
        // SIGTERM's exit code.
        self.state().exits.insert(launched.agent.clone(), 143);
        self.0.changed.notify_waiters();
        Ok(())
    }

    async fn snapshot_agent(
        &self,
        launched: &Launched,
        store: &Store,
    ) -> Result<Snapshot, BackendError> {
        self.enter(Op::Snapshot).await?;
        let files = self
            .state()
            .containers
            .get(&launched.agent)
            .map(|c| c.files.clone())
            .ok_or_else(|| BackendError::Engine {
                action: "copy files out of",
                object: launched.agent.clone(),
                detail: "no such container".into(),
            })?;
        let mut w = store.writer()?;
        w.start_part("/home/agent")?;
        w.write(&tar_of("agent/files", files.as_bytes()))?;
        w.finish_part()?;
        let snap = w.commit()?;
        self.state().snapshot_files = Some(files);
        Ok(snap)
    }

    async fn keep_agent(&self, launched: &Launched) -> Result<String, BackendError> {
        self.enter(Op::KeepAgent).await?;
        let kept = format!("{}-agent-kept", launched.slug);
        let mut s = self.state();
        if let Some(mut c) = s.containers.remove(&launched.agent) {
            c.running = false;
            c.kept = true;
            s.containers.insert(kept.clone(), c);
        }
        Ok(kept)
    }

    async fn kept_agent(
        &self,
        slug: &str,
        _state_paths: &[String],
    ) -> Result<Option<Launched>, BackendError> {
        self.enter(Op::KeptAgent).await?;
        let name = format!("{slug}-agent-kept");
        Ok(self
            .state()
            .containers
            .contains_key(&name)
            .then(|| Self::launched(slug, &name, false)))
    }

    async fn running_agent(
        &self,
        slug: &str,
        state_paths: &[String],
    ) -> Result<Option<Launched>, BackendError> {
        self.enter(Op::RunningAgent).await?;
        let name = format!("{slug}-agent");
        let running = self
            .state()
            .containers
            .get(&name)
            .is_some_and(|c| c.running);
        Ok(running.then(|| Launched {
            state_paths: state_paths.to_vec(),
            ..Self::launched(slug, &name, false)
        }))
    }

    async fn create_successor(
        &self,
        spec: &LaunchSpec,
        agent: &AgentSpec,
    ) -> Result<Launched, BackendError> {
        self.enter(Op::CreateSuccessor).await?;
        let name = format!("{}-agent-next", spec.slug);
        self.add(&name, "agent", &agent.image);
        if let Some(gate) = &agent.gate {
            let mut s = self.state();
            let c = s.containers.get_mut(&name).expect("just added");
            c.running = true;
            c.held = Some(gate.clone());
        }
        Ok(Launched {
            release: agent.gate.clone(),
            ..Self::launched(&spec.slug, &name, agent.tty)
        })
    }

    async fn swap_in(
        &self,
        old: &Launched,
        successor: Launched,
        store: &Store,
    ) -> Result<Launched, SwapError> {
        // The files are saved on the way, as a snapshot is (`Op::Snapshot` fails or holds it);
        // what fails after that (the restore, the renames) is `Op::SwapIn`'s.
        self.snapshot_agent(old, store)
            .await
            .map_err(SwapError::Snapshot)?;
        self.enter(Op::SwapIn).await.map_err(SwapError::Successor)?;
        let mut s = self.state();
        let files = s.snapshot_files.clone().unwrap_or_default();
        s.containers.remove(&old.agent);
        if let Some(mut c) = s.containers.remove(&successor.agent) {
            c.files = files;
            s.containers.insert(old.agent.clone(), c);
        }
        Ok(Launched {
            agent: old.agent.clone(),
            ..successor
        })
    }

    async fn restore_agent(
        &self,
        launched: &Launched,
        _store: &Store,
        _snap: &Snapshot,
    ) -> Result<(), BackendError> {
        self.enter(Op::Restore).await?;
        let mut s = self.state();
        let files = s.snapshot_files.clone().unwrap_or_default();
        if let Some(c) = s.containers.get_mut(&launched.agent) {
            c.files = files;
        }
        Ok(())
    }

    async fn reload_sidecar(
        &self,
        _slug: &str,
        _sidecar: &SidecarSpec,
    ) -> Result<(), BackendError> {
        self.enter(Op::Reload).await
    }

    async fn find_orphans(&self, slug: &str) -> Result<Vec<Resource>, BackendError> {
        self.enter(Op::FindOrphans).await?;
        let s = self.state();
        Ok(s.containers
            .iter()
            .filter(|(name, _)| name.starts_with(slug))
            .map(|(name, c)| Resource {
                kind: ResourceKind::Container,
                name: name.clone(),
                role: c.role.clone(),
                state: String::new(),
                created: 0,
                image: String::new(),
                health: None,
                launcher_pid: s
                    .orphans
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, pid)| *pid),
                kept: c.kept,
            })
            .collect())
    }
}

/// A tar archive of one file, as the engine's archive API would send it.
fn tar_of(path: &str, bytes: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, path, bytes).expect("tar in memory");
    b.into_inner().expect("tar in memory")
}
