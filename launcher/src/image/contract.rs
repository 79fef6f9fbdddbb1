//! The image contract, checked: the agent runs as uid 1000 (gid 1000) with a passwd entry, and its
//! own home at `/home/agent` (and workspace at `/workspace`), whatever the bottle's image says.
//!
//! The embedded Dockerfile keeps the contract; a bottle's own Dockerfile, or an approved step, may
//! not: no user 1000 (the engine then starts the agent with `HOME=/`), a home owned by root, a
//! passwd entry whose home is `/`. A backend reads the facts of an image ([`ImageFacts`], a bounded
//! read of its account files and the owners of three folders), [`check`] decides, and when the
//! image can be adapted, [`contract_layer`] is one `ADD` of a small archive over it: the account
//! files with the agent's entry, and the folders owned by the agent. Nothing in it needs a shell or
//! a tool in the image (a tar unpacked by the builder keeps its owners), and the built layer is
//! checked again. What cannot be adapted (an account file that is not a plain file, too large or
//! not text) is refused, naming what is wrong. Pure: no engine here.

use std::collections::BTreeMap;

use super::{ContextBuilder, FIXED_MTIME, ImageError, ImageRecipe, labels};

/// The agent's uid and gid.
pub const AGENT_UID: u32 = 1000;
/// The agent's gid.
pub const AGENT_GID: u32 = 1000;
/// The user the agent runs as, always: a uid from the image (its `USER`) could be another
/// operator account's, or own nothing of the home.
pub const AGENT_RUN_AS: &str = "1000:1000";
/// The agent's home: what snapshots save and skills are mounted under.
pub const AGENT_HOME: &str = "/home/agent";
/// Folders the agent must own, with the mode the contract layer gives them.
const OWNED_DIRS: [(&str, u32); 3] = [
    (AGENT_HOME, 0o755),
    (CLAUDE_DIR, 0o755),
    (super::WORKSPACE_DIR, 0o755),
];
/// Claude Code's state folder, the parent of the skills' mount points.
const CLAUDE_DIR: &str = "/home/agent/.claude";
/// The account files read from an image.
pub const PASSWD: &str = "/etc/passwd";
pub const GROUP: &str = "/etc/group";
/// The most of an account file the launcher reads (a larger one is refused, never guessed at).
pub const ACCOUNT_FILE_LIMIT: u64 = 1 << 20;
/// The archive the contract layer adds.
const CONTRACT_TAR: &str = "contract.tar";

/// What an image holds at one path (from the first header of the engine's archive of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathFact {
    Missing,
    Dir {
        uid: u64,
        gid: u64,
    },
    /// A file, a symlink, anything not a folder (`kind` for messages).
    Other {
        kind: &'static str,
    },
}

/// An account file of an image, as a bounded read found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFact {
    Missing,
    /// A regular file of at most [`ACCOUNT_FILE_LIMIT`] bytes.
    Text(Vec<u8>),
    /// Larger than [`ACCOUNT_FILE_LIMIT`] (its size from the archive header).
    TooLarge {
        size: u64,
    },
    /// A symlink or anything else that is not a regular file.
    NotAFile {
        kind: &'static str,
    },
}

/// What the launcher knows of an image: its config and a bounded look at its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// The config's `User` (empty: root).
    pub user: String,
    /// The config's `HOME` variable, if it sets one.
    pub env_home: Option<String>,
    pub passwd: FileFact,
    pub group: FileFact,
    /// The directories of [`ImageFacts::dir_paths`], in order.
    pub dirs: [PathFact; 3],
}

impl ImageFacts {
    /// The paths whose facts [`ImageFacts::dirs`] holds, in order.
    pub fn dir_paths() -> [&'static str; 3] {
        OWNED_DIRS.map(|(p, _)| p)
    }
}

/// Why an image cannot run the agent and cannot be adapted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error(
        "{file} is larger than {ACCOUNT_FILE_LIMIT} bytes ({size})\nhint: keep {file} a plain file of account entries; the image contract is in docs/images.md"
    )]
    TooLarge { file: &'static str, size: u64 },
    #[error(
        "{file} is a {kind}, not a regular file\nhint: make {file} a plain file in the bottle's Dockerfile; the image contract is in docs/images.md"
    )]
    NotAFile {
        file: &'static str,
        kind: &'static str,
    },
    #[error(
        "{file} is not UTF-8 text\nhint: keep {file} a plain file of account entries; the image contract is in docs/images.md"
    )]
    NotText { file: &'static str },
    #[error(
        "{what}, even after the launcher's contract layer\nhint: the image contract (uid 1000, home /home/agent owned by it) is in docs/images.md; create the user in the bottle's Dockerfile"
    )]
    StillBroken { what: String },
}

/// The verdict on an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The image keeps the contract; `notes` say what of its config the launcher overrides.
    Holds { notes: Vec<String> },
    /// The image needs the contract layer.
    Adapt(Adaptation),
}

/// What the contract layer changes, and the operator's notes about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adaptation {
    /// The new `/etc/passwd`, when it changes.
    pub passwd: Option<String>,
    /// The new `/etc/group`, when it changes.
    pub group: Option<String>,
    /// Folders (absolute paths) made and given to the agent, with their modes.
    pub dirs: Vec<(&'static str, u32)>,
    /// One line per config value the container overrides, for the operator.
    pub notes: Vec<String>,
    /// One line per change the layer makes, for the operator.
    pub changes: Vec<String>,
}

/// Names a new account may take, the first free one.
const NAMES: [&str; 3] = ["agent", "claude-agent", "agent1000"];

/// Decide whether an image keeps the contract, can be adapted, or must be refused. `skills`: the
/// bottle mounts skills under `~/.claude/skills/`, whose missing parents the engine would create
/// as root, so `~/.claude` must exist as the agent's; without skills the agent makes it itself.
pub fn check(facts: &ImageFacts, skills: bool) -> Result<Verdict, ContractError> {
    let passwd = text_of(PASSWD, &facts.passwd)?;
    let group = text_of(GROUP, &facts.group)?;
    let notes = config_notes(facts, passwd.as_deref());
    let mut changes = Vec::new();

    let new_passwd = fix_passwd(passwd.as_deref(), &mut changes);
    let new_group = fix_group(group.as_deref(), &mut changes);
    let mut dirs = Vec::new();
    for ((path, mode), fact) in OWNED_DIRS.iter().zip(&facts.dirs) {
        let owned = matches!(fact, PathFact::Dir { uid, .. } if *uid == u64::from(AGENT_UID));
        let made_by_agent = *path == CLAUDE_DIR && !skills && *fact == PathFact::Missing;
        if !owned && !made_by_agent {
            changes.push(match fact {
                PathFact::Missing => format!("created {path}, owned by uid {AGENT_UID}"),
                PathFact::Dir { uid, .. } => {
                    format!("gave {path} (owned by uid {uid}) to uid {AGENT_UID}")
                }
                PathFact::Other { kind } => {
                    format!("replaced {path} (a {kind}) by a folder owned by uid {AGENT_UID}")
                }
            });
            dirs.push((*path, *mode));
        }
    }
    if new_passwd.is_none() && new_group.is_none() && dirs.is_empty() {
        return Ok(Verdict::Holds { notes });
    }
    Ok(Verdict::Adapt(Adaptation {
        passwd: new_passwd,
        group: new_group,
        dirs,
        notes,
        changes,
    }))
}

/// The check of an image built with the contract layer: it must hold now.
pub fn recheck(facts: &ImageFacts, skills: bool) -> Result<Vec<String>, ContractError> {
    match check(facts, skills)? {
        Verdict::Holds { notes } => Ok(notes),
        Verdict::Adapt(a) => Err(ContractError::StillBroken {
            what: format!("still to do: {}", a.changes.join("; ")),
        }),
    }
}

/// The config values the container overrides, worth a word when they differ from the contract.
fn config_notes(facts: &ImageFacts, passwd: Option<&str>) -> Vec<String> {
    let mut notes = Vec::new();
    let user = facts.user.trim();
    let runs_as_agent = match user.split_once(':').map_or(user, |(u, _)| u) {
        "" => false,
        u => match u.parse::<u32>() {
            Ok(uid) => uid == AGENT_UID,
            Err(_) => passwd
                .and_then(|p| entries(p).find(|e| e.name == u).map(|e| e.uid == AGENT_UID))
                .unwrap_or(false),
        },
    };
    if !runs_as_agent {
        let shown = if user.is_empty() { "root" } else { user };
        notes.push(format!(
            "the image's USER {} is not used: the agent runs as uid {AGENT_UID}:{AGENT_GID}",
            shown.escape_debug()
        ));
    }
    if let Some(home) = facts.env_home.as_deref().filter(|h| *h != AGENT_HOME) {
        notes.push(format!(
            "the image's HOME={} is not used: the agent's home is {AGENT_HOME}",
            home.escape_debug()
        ));
    }
    notes
}

fn text_of(file: &'static str, fact: &FileFact) -> Result<Option<String>, ContractError> {
    match fact {
        FileFact::Missing => Ok(None),
        FileFact::TooLarge { size } => Err(ContractError::TooLarge { file, size: *size }),
        FileFact::NotAFile { kind } => Err(ContractError::NotAFile { file, kind }),
        FileFact::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(t) if !t.contains('\0') => Ok(Some(t.to_owned())),
            _ => Err(ContractError::NotText { file }),
        },
    }
}

/// One parsed passwd or group line (the fields the contract needs).
struct Account<'a> {
    name: &'a str,
    uid: u32,
}

/// The entries of a passwd or group file whose id field (the third) is a number.
fn entries(text: &str) -> impl Iterator<Item = Account<'_>> {
    text.lines().filter_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?.parse().ok()?;
        (!name.is_empty() && !name.starts_with(['#', '+', '-']))
            .then_some(Account { name, uid: id })
    })
}

/// A name of [`NAMES`] that `text` does not use yet.
fn free_name(text: &str) -> &'static str {
    let taken: Vec<&str> = entries(text).map(|e| e.name).collect();
    NAMES
        .into_iter()
        .find(|n| !taken.contains(n))
        .unwrap_or(NAMES[2])
}

/// `passwd` with an entry for uid 1000 whose home is the agent's; `None` when it has one.
fn fix_passwd(passwd: Option<&str>, changes: &mut Vec<String>) -> Option<String> {
    let text = passwd.unwrap_or("");
    let mut out = String::with_capacity(text.len() + 64);
    let mut found = false;
    let mut rewrote = Vec::new();
    for line in text.lines() {
        let mut fields: Vec<&str> = line.split(':').collect();
        let is_agent = fields.len() == 7 && fields[2].parse() == Ok(AGENT_UID);
        if is_agent {
            found = true;
            if fields[5] != AGENT_HOME {
                rewrote.push(format!(
                    "set the home of uid {AGENT_UID} ({}) from {} to {AGENT_HOME}",
                    fields[0].escape_debug(),
                    fields[5].escape_debug()
                ));
                fields[5] = AGENT_HOME;
            }
        }
        out.push_str(&fields.join(":"));
        out.push('\n');
    }
    if found && rewrote.is_empty() {
        return None;
    }
    changes.extend(rewrote);
    if !found {
        if passwd.is_none() {
            out.push_str("root:x:0:0:root:/root:/bin/sh\n");
        }
        let name = free_name(text);
        out.push_str(&format!(
            "{name}:x:{AGENT_UID}:{AGENT_GID}:claude-bottle agent:{AGENT_HOME}:/bin/sh\n"
        ));
        changes.push(match passwd {
            Some(_) => format!("added user {name} (uid {AGENT_UID}) to {PASSWD}"),
            None => format!("created {PASSWD} with user {name} (uid {AGENT_UID})"),
        });
    }
    Some(out)
}

/// `group` with an entry for gid 1000; `None` when it has one.
fn fix_group(group: Option<&str>, changes: &mut Vec<String>) -> Option<String> {
    let text = group.unwrap_or("");
    if entries(text).any(|e| e.uid == AGENT_GID) {
        return None;
    }
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if group.is_none() {
        out.push_str("root:x:0:\n");
    }
    let name = free_name(text);
    out.push_str(&format!("{name}:x:{AGENT_GID}:\n"));
    changes.push(format!("added group {name} (gid {AGENT_GID}) to {GROUP}"));
    Some(out)
}

/// The layer over `from` (whose image id is `from_id`) that makes it keep the contract: one
/// `ADD` of an archive whose entries carry their owners (the builder unpacks a local tar as it
/// is, owners included, also over an existing folder).
pub fn contract_layer(
    slug: &str,
    from: &str,
    from_id: &str,
    adaptation: &Adaptation,
) -> Result<ImageRecipe, ImageError> {
    super::recipes::check_reference(from)?;
    let archive = contract_archive(adaptation).map_err(|source| ImageError::Archive {
        path: CONTRACT_TAR.to_owned(),
        source,
    })?;
    let mut context = ContextBuilder::new();
    context.file(CONTRACT_TAR, 0o644, archive);
    // The id names the content the layer goes over: a tag moved to another image builds anew.
    let dockerfile = format!(
        "# Generated by claude-bottle: the image contract (uid {AGENT_UID}, home {AGENT_HOME}).\n\
         # over {}\n\
         FROM {from}\n\
         ADD {CONTRACT_TAR} /\n",
        from_id.escape_debug()
    );
    ImageRecipe::new(
        slug,
        dockerfile,
        context,
        labels(Some(slug), "contract"),
        BTreeMap::new(),
    )
}

/// The archive of [`contract_layer`]: no entry for a parent folder (`/etc`, `/home` keep theirs).
fn contract_archive(a: &Adaptation) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, owner: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(u64::from(owner));
        h.set_gid(u64::from(owner));
        h.set_mtime(FIXED_MTIME);
        h.set_size(size);
        h
    };
    for (path, text) in [(PASSWD, &a.passwd), (GROUP, &a.group)] {
        if let Some(text) = text {
            let mut h = header(tar::EntryType::Regular, 0o644, 0, text.len() as u64);
            tar.append_data(&mut h, path.trim_start_matches('/'), text.as_bytes())?;
        }
    }
    for (path, mode) in &a.dirs {
        let mut h = header(tar::EntryType::Directory, *mode, AGENT_UID, 0);
        let name = format!("{}/", path.trim_start_matches('/'));
        tar.append_data(&mut h, name, std::io::empty())?;
    }
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n";
    const DEBIAN_GROUP: &str = "root:x:0:\ndaemon:x:1:\n";

    fn owned() -> PathFact {
        PathFact::Dir {
            uid: 1000,
            gid: 1000,
        }
    }

    /// The facts of an image that keeps the contract (the embedded one).
    fn keeps() -> ImageFacts {
        ImageFacts {
            user: "agent".into(),
            env_home: Some(AGENT_HOME.into()),
            passwd: FileFact::Text(
                format!("{DEBIAN_PASSWD}agent:x:1000:1000::/home/agent:/bin/bash\n").into(),
            ),
            group: FileFact::Text(format!("{DEBIAN_GROUP}agent:x:1000:\n").into()),
            dirs: [owned(), owned(), owned()],
        }
    }

    fn adapt(facts: &ImageFacts) -> Adaptation {
        match check(facts, true).expect("adaptable") {
            Verdict::Adapt(a) => a,
            other => panic!("expected an adaptation, got {other:?}"),
        }
    }

    #[test]
    fn the_embedded_image_keeps_the_contract_without_a_word() {
        assert_eq!(check(&keeps(), true), Ok(Verdict::Holds { notes: vec![] }));
        let numeric = ImageFacts {
            user: "1000:1000".into(),
            ..keeps()
        };
        assert_eq!(check(&numeric, true), Ok(Verdict::Holds { notes: vec![] }));
    }

    #[test]
    fn another_user_or_home_in_the_config_is_only_noted() {
        let facts = ImageFacts {
            user: "".into(),
            env_home: Some("/root".into()),
            ..keeps()
        };
        let Ok(Verdict::Holds { notes }) = check(&facts, true) else {
            panic!("the files keep the contract");
        };
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("USER root is not used"), "{notes:?}");
        assert!(notes[1].contains("HOME=/root is not used"), "{notes:?}");
        // A name is looked up: `node` is uid 1000 here, `nobody` is not.
        let node = ImageFacts {
            user: "node".into(),
            passwd: FileFact::Text(
                format!("{DEBIAN_PASSWD}node:x:1000:1000::/home/agent:/bin/sh\n").into(),
            ),
            ..keeps()
        };
        assert_eq!(check(&node, true), Ok(Verdict::Holds { notes: vec![] }));
    }

    #[test]
    fn a_missing_user_is_added_with_its_group_and_home() {
        let facts = ImageFacts {
            passwd: FileFact::Text(DEBIAN_PASSWD.into()),
            group: FileFact::Text(DEBIAN_GROUP.into()),
            dirs: [PathFact::Missing, PathFact::Missing, owned()],
            ..keeps()
        };
        let a = adapt(&facts);
        assert_eq!(
            a.passwd.as_deref(),
            Some(
                format!(
                    "{DEBIAN_PASSWD}agent:x:1000:1000:claude-bottle agent:/home/agent:/bin/sh\n"
                )
                .as_str()
            )
        );
        assert_eq!(
            a.group.as_deref(),
            Some(format!("{DEBIAN_GROUP}agent:x:1000:\n").as_str())
        );
        assert_eq!(
            a.dirs,
            [("/home/agent", 0o755), ("/home/agent/.claude", 0o755)]
        );
        assert_eq!(a.changes.len(), 4, "{:?}", a.changes);
    }

    #[test]
    fn a_missing_claude_folder_matters_only_under_skills() {
        let facts = ImageFacts {
            dirs: [owned(), PathFact::Missing, owned()],
            ..keeps()
        };
        assert_eq!(check(&facts, false), Ok(Verdict::Holds { notes: vec![] }));
        assert_eq!(adapt(&facts).dirs, [(CLAUDE_DIR, 0o755)]);
        // Present and someone else's, it is given to the agent either way.
        let root = ImageFacts {
            dirs: [owned(), PathFact::Dir { uid: 0, gid: 0 }, owned()],
            ..keeps()
        };
        assert!(matches!(check(&root, false), Ok(Verdict::Adapt(_))));
    }

    #[test]
    fn a_taken_name_is_not_reused() {
        let facts = ImageFacts {
            passwd: FileFact::Text(
                format!("{DEBIAN_PASSWD}agent:x:1001:1001::/x:/bin/sh\n").into(),
            ),
            group: FileFact::Text(format!("{DEBIAN_GROUP}agent:x:1001:\n").into()),
            ..keeps()
        };
        let a = adapt(&facts);
        assert!(
            a.passwd.as_deref().is_some_and(|p| p
                .ends_with("claude-agent:x:1000:1000:claude-bottle agent:/home/agent:/bin/sh\n")),
            "{:?}",
            a.passwd
        );
        assert!(
            a.group
                .as_deref()
                .is_some_and(|g| g.ends_with("claude-agent:x:1000:\n"))
        );
    }

    #[test]
    fn a_home_elsewhere_is_moved_and_a_home_owned_by_another_uid_is_given_back() {
        let facts = ImageFacts {
            passwd: FileFact::Text(format!("{DEBIAN_PASSWD}agent:x:1000:1000::/:/bin/sh\n").into()),
            dirs: [
                PathFact::Dir { uid: 0, gid: 0 },
                PathFact::Other { kind: "symlink" },
                owned(),
            ],
            ..keeps()
        };
        let a = adapt(&facts);
        assert_eq!(
            a.passwd.as_deref(),
            Some(format!("{DEBIAN_PASSWD}agent:x:1000:1000::/home/agent:/bin/sh\n").as_str())
        );
        assert_eq!(a.group, None);
        assert_eq!(a.dirs.len(), 2);
        assert!(
            a.changes
                .iter()
                .any(|c| c.contains("from / to /home/agent")),
            "{:?}",
            a.changes
        );
        assert!(
            a.changes.iter().any(|c| c.contains("owned by uid 0")),
            "{:?}",
            a.changes
        );
        assert!(
            a.changes.iter().any(|c| c.contains("a symlink")),
            "{:?}",
            a.changes
        );
    }

    #[test]
    fn an_image_without_account_files_gets_them() {
        let facts = ImageFacts {
            user: "".into(),
            env_home: None,
            passwd: FileFact::Missing,
            group: FileFact::Missing,
            dirs: [PathFact::Missing, PathFact::Missing, PathFact::Missing],
        };
        let a = adapt(&facts);
        assert_eq!(
            a.passwd.as_deref(),
            Some(
                "root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:claude-bottle agent:/home/agent:/bin/sh\n"
            )
        );
        assert_eq!(a.group.as_deref(), Some("root:x:0:\nagent:x:1000:\n"));
        assert_eq!(a.dirs.len(), 3);
    }

    #[test]
    fn unreadable_account_files_are_refused_naming_the_file() {
        for (passwd, want) in [
            (
                FileFact::TooLarge { size: 2_000_000 },
                "larger than 1048576 bytes (2000000)",
            ),
            (FileFact::NotAFile { kind: "symlink" }, "is a symlink"),
            (FileFact::Text(vec![0xff, b'\n']), "not UTF-8"),
            (FileFact::Text(b"root\0:x:0:0\n".to_vec()), "not UTF-8"),
        ] {
            let facts = ImageFacts { passwd, ..keeps() };
            let e = check(&facts, true).expect_err("refused");
            let text = e.to_string();
            assert!(
                text.contains("/etc/passwd") && text.contains(want),
                "{text}"
            );
            assert!(text.contains("\nhint: "), "{text}");
        }
    }

    #[test]
    fn a_layer_that_did_not_take_is_an_error() {
        assert_eq!(recheck(&keeps(), true), Ok(vec![]));
        let facts = ImageFacts {
            dirs: [PathFact::Dir { uid: 0, gid: 0 }, owned(), owned()],
            ..keeps()
        };
        let e = recheck(&facts, true).expect_err("still broken");
        assert!(
            e.to_string().contains("still to do: gave /home/agent"),
            "{e}"
        );
    }

    #[test]
    fn notes_escape_what_the_image_says() {
        let facts = ImageFacts {
            user: "x\u{1b}[2J".into(),
            ..keeps()
        };
        let Ok(Verdict::Holds { notes }) = check(&facts, true) else {
            panic!("holds");
        };
        assert!(notes.iter().all(|n| !n.contains('\u{1b}')), "{notes:?}");
    }

    #[test]
    fn the_layer_adds_one_archive_with_owners_and_no_parent_folders() {
        let facts = ImageFacts {
            passwd: FileFact::Text(DEBIAN_PASSWD.into()),
            dirs: [PathFact::Missing, PathFact::Missing, owned()],
            ..keeps()
        };
        let a = adapt(&facts);
        let recipe = contract_layer("b", "claude-bottle/b:0123", "sha256:abc", &a).expect("recipe");
        assert!(recipe.dockerfile.contains("FROM claude-bottle/b:0123\n"));
        assert!(recipe.dockerfile.contains("ADD contract.tar /\n"));
        assert!(recipe.dockerfile.contains("# over sha256:abc\n"));
        let other = contract_layer("b", "claude-bottle/b:0123", "sha256:def", &a).expect("recipe");
        assert_ne!(
            recipe.tag, other.tag,
            "another image under the tag builds anew"
        );
        let inner = contract_archive(&a).expect("archive");
        let mut archive = tar::Archive::new(inner.as_slice());
        let seen: Vec<(String, u64, u32)> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    e.path().expect("path").display().to_string(),
                    h.uid().expect("uid"),
                    h.mode().expect("mode"),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("etc/passwd".to_string(), 0, 0o644),
                ("home/agent/".to_string(), 1000, 0o755),
                ("home/agent/.claude/".to_string(), 1000, 0o755),
            ]
        );
    }
}
