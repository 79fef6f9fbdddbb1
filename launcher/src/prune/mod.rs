//! `claude-bottle prune`: which images and state files of bottles can go, and what that frees.
//!
//! The decision is pure ([`decide_images`], [`decide_folders`]): facts in (the engine's image
//! graph, which containers use which image, each bottle's state), removals out, children before
//! their parents. [`survey`] gathers the facts and [`apply`] carries the removals out, so
//! `doctor` can ask the same question without removing anything. See docs/state.md,
//! "Reclaiming disk: prune".

mod apply;
mod survey;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use apply::{Outcome, apply};
pub use survey::{Survey, survey};

/// What [`decide_folders`] leaves in `state/<slug>/run/`: caches a warm start reads (each a few
/// KiB, each trimmed to the newest image by `prepare`) and the record of the image in use.
pub const RUN_KEPT: &[&str] = &[
    "binaries",
    "image-roots",
    "image-contract",
    crate::state::in_use::FILE_NAME,
];

/// Where every image the launcher builds is tagged.
const OUR_REPOSITORIES: &str = "claude-bottle/";

/// One image of the engine's store (intermediate build images too), as prune needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `sha256:…`
    pub id: String,
    /// The image it was built on, when the store knows it (the classic builder records it).
    pub parent: Option<String>,
    /// `claude-bottle/<slug>:<hash>`, …; empty for an intermediate or an untagged image.
    pub tags: Vec<String>,
    /// The `claude-bottle.bottle` label.
    pub bottle: Option<String>,
    /// The image's size with its parents' layers (the engine's `Size`).
    pub size: u64,
    /// A container (running or stopped) was created from it.
    pub in_use: bool,
}

/// What prune knows of a bottle that has images on the engine or a state folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bottle {
    /// Its launcher is alive: everything of it stays.
    Running { pid: u32 },
    /// Neither `bottles/<name>.md` nor `state/<slug>/` exists: its images go whole.
    Gone,
    /// The images its last launch (or capability swap) ran, from `state/<slug>/run/agent-image`.
    Recorded(Vec<String>),
    /// It has files but no record (it did not start since the record exists): nothing of its
    /// images is known to be old, so they stay.
    Unrecorded,
}

/// Why an image goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Neither the image the bottle runs, nor one below it, nor its root step.
    OlderGeneration,
    /// The bottle's files are gone.
    BottleGone,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Why::OlderGeneration => "older generation",
            Why::BottleGone => "bottle gone",
        })
    }
}

/// One image to remove: its tags one by one (the last one deletes it), or its id when untagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRemoval {
    pub id: String,
    pub tags: Vec<String>,
    pub bottle: String,
    pub why: Why,
    /// Its own layer and those of the untagged parents the engine deletes with it.
    pub freed: u64,
}

impl ImageRemoval {
    /// How the image is named to the operator: its first tag, else its short id.
    pub fn name(&self) -> String {
        self.tags
            .first()
            .cloned()
            .unwrap_or_else(|| short_id(&self.id))
    }
}

/// `sha256:0123456789ab…` → `0123456789ab`.
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// The images to remove, children before their parents, and a line for each bottle of `scope`
/// whose images all stay for a reason the operator may want to know.
///
/// An image stays when a container uses it, when its bottle runs or has no record, when it is
/// (or is below) an image the bottle's record names, or when it is the `<tag>-root` step of such
/// an image (`prepare::warm_root_step`, the next approval's head start). Of the rest, the images
/// labelled with a bottle of `scope` (all bottles when `None`) go: tagged ones, and untagged ones
/// no image is built on. Sidecar images carry no bottle label and are never candidates.
pub fn decide_images(
    images: &[Image],
    bottles: &BTreeMap<String, Bottle>,
    scope: Option<&str>,
) -> (Vec<ImageRemoval>, Vec<String>) {
    let graph = Graph::new(images);
    let state = |slug: &str| bottles.get(slug).unwrap_or(&Bottle::Unrecorded);
    // Kept outright: in use, of a bottle that runs or has no record, named by a record.
    let mut kept: Vec<usize> = Vec::new();
    let mut named: Vec<usize> = Vec::new();
    for (i, image) in images.iter().enumerate() {
        // A tag of someone else's (`docker tag` by hand) says the image is wanted.
        let foreign = image.tags.iter().any(|t| !t.starts_with(OUR_REPOSITORIES));
        let keep = image.in_use
            || foreign
            || match image.bottle.as_deref().map(state) {
                None | Some(Bottle::Gone) => false,
                Some(Bottle::Running { .. } | Bottle::Unrecorded) => true,
                Some(Bottle::Recorded(tags)) => {
                    let recorded = image.tags.iter().any(|t| tags.contains(t));
                    if recorded {
                        named.push(i);
                    }
                    recorded
                }
            };
        if keep {
            kept.push(i);
        }
    }
    let mut protected = graph.with_ancestors(&kept);
    // The root step of each image a record names and of each image below it.
    let roots: BTreeSet<String> = graph
        .with_ancestors(&named)
        .into_iter()
        .flat_map(|i| images[i].tags.iter().map(|t| format!("{t}-root")))
        .collect();
    let root_steps: Vec<usize> = images
        .iter()
        .enumerate()
        .filter(|(_, image)| image.tags.iter().any(|t| roots.contains(t)))
        .map(|(i, _)| i)
        .collect();
    protected.extend(graph.with_ancestors(&root_steps));

    let mut candidates: Vec<(usize, Why)> = Vec::new();
    for (i, image) in images.iter().enumerate() {
        let Some(slug) = image.bottle.as_deref() else {
            continue;
        };
        if protected.contains(&i)
            || scope.is_some_and(|s| s != slug)
            || (image.tags.is_empty() && !graph.children[i].is_empty())
        {
            continue;
        }
        let why = match state(slug) {
            Bottle::Gone => Why::BottleGone,
            _ => Why::OlderGeneration,
        };
        candidates.push((i, why));
    }
    // Children first: the deepest image goes before anything it was built on.
    candidates.sort_by(|a, b| {
        graph.depth[b.0]
            .cmp(&graph.depth[a.0])
            .then_with(|| images[a.0].tags.cmp(&images[b.0].tags))
            .then_with(|| images[a.0].id.cmp(&images[b.0].id))
    });
    let removing: BTreeSet<usize> = candidates.iter().map(|(i, _)| *i).collect();
    // The engine deletes an untagged parent with its last child: count its layer with that child.
    let mut children_left: Vec<usize> = graph.children.iter().map(Vec::len).collect();
    let mut removals = Vec::new();
    for (i, why) in candidates {
        let mut freed = graph.own_size(i);
        let mut at = i;
        while let Some(p) = graph.parent[at] {
            children_left[p] = children_left[p].saturating_sub(1);
            let parent = &images[p];
            if children_left[p] > 0
                || !parent.tags.is_empty()
                || parent.in_use
                || protected.contains(&p)
                || removing.contains(&p)
            {
                break;
            }
            freed += graph.own_size(p);
            at = p;
        }
        removals.push(ImageRemoval {
            id: images[i].id.clone(),
            tags: images[i].tags.clone(),
            bottle: images[i].bottle.clone().unwrap_or_default(),
            why,
            freed,
        });
    }
    let mut notes = Vec::new();
    for (slug, bottle) in bottles {
        if scope.is_some_and(|s| s != slug) {
            continue;
        }
        match bottle {
            Bottle::Running { pid } => notes.push(format!(
                "bottle {slug} is running (launcher pid {pid}): nothing of it is removed"
            )),
            Bottle::Unrecorded
                if images
                    .iter()
                    .any(|i| i.bottle.as_deref() == Some(slug.as_str())) =>
            {
                notes.push(format!(
                    "bottle {slug} has no record of the image it runs (state/{slug}/run/agent-image): its images stay until it starts once"
                ));
            }
            _ => {}
        }
    }
    (removals, notes)
}

/// The engine's image store as a graph: parents, children, depths, by index into the images.
struct Graph<'a> {
    images: &'a [Image],
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    depth: Vec<usize>,
}

impl<'a> Graph<'a> {
    fn new(images: &'a [Image]) -> Self {
        let index: HashMap<&str, usize> = images
            .iter()
            .enumerate()
            .map(|(i, image)| (image.id.as_str(), i))
            .collect();
        let parent: Vec<Option<usize>> = images
            .iter()
            .map(|image| image.parent.as_deref().and_then(|p| index.get(p).copied()))
            .collect();
        let mut children = vec![Vec::new(); images.len()];
        for (i, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                children[*p].push(i);
            }
        }
        // Bounded by the number of images: a store with a cycle (it has none) cannot hang us.
        let depth = (0..images.len())
            .map(|i| {
                let mut d = 0;
                let mut at = i;
                while let Some(p) = parent[at] {
                    d += 1;
                    at = p;
                    if d > images.len() {
                        break;
                    }
                }
                d
            })
            .collect();
        Self {
            images,
            parent,
            children,
            depth,
        }
    }

    /// `start` and every image below them.
    fn with_ancestors(&self, start: &[usize]) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        for &i in start {
            let mut at = Some(i);
            while let Some(x) = at {
                if !out.insert(x) {
                    break;
                }
                at = self.parent[x];
            }
        }
        out
    }

    /// The size of the image's own layer: its size less its parent's.
    fn own_size(&self, i: usize) -> u64 {
        let below = self.parent[i].map_or(0, |p| self.images[p].size);
        self.images[i].size.saturating_sub(below)
    }
}

/// A bottle's `run/` folder as prune sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    pub slug: String,
    pub path: std::path::PathBuf,
    /// The engine holds a container of the bottle (its launcher may run, or a kept agent or
    /// leftovers may mount these files): the folder is left alone.
    pub busy: bool,
    /// Its entries and their sizes on disk.
    pub entries: Vec<(String, u64)>,
}

/// One entry of a `run/` folder to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderRemoval {
    pub bottle: String,
    pub path: std::path::PathBuf,
    pub size: u64,
}

/// What a launch staged in `run/` of a bottle with nothing on the engine: every entry but
/// [`RUN_KEPT`]. The next launch stages it again (the chain's CAs are new at every launch anyway).
pub fn decide_folders(folders: &[RunFolder], scope: Option<&str>) -> Vec<FolderRemoval> {
    folders
        .iter()
        .filter(|f| !f.busy && scope.is_none_or(|s| s == f.slug))
        .flat_map(|f| {
            f.entries
                .iter()
                .filter(|(name, _)| !RUN_KEPT.contains(&name.as_str()))
                .map(|(name, size)| FolderRemoval {
                    bottle: f.slug.clone(),
                    path: f.path.join(name),
                    size: *size,
                })
        })
        .collect()
}
