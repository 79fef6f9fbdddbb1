//! The dashboard's state and what a key does to it: pure (no terminal, no files, no engine), so
//! that every key and every refresh is a unit test. The loop in `live.rs` acts on the
//! [`Command`]s it returns.

use std::collections::HashSet;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

pub use super::input::Input;

use super::super::approve::Approval;
use super::super::json::list::ContainerJson;
use super::super::json::proposal::{ProposalJson, Request, State};

/// Everything the screen shows, as read from the state files and the engine.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub bottles: Vec<Bottle>,
    /// Pending proposals, oldest first; then the ones decided lately, newest first.
    pub proposals: Vec<Item>,
    /// Files that could not be read, an engine that did not answer (escaped).
    pub problems: Vec<String>,
    /// When it was read (Unix seconds): ages count from here.
    pub now: u64,
}

/// A bottle with state on this host, or with objects on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bottle {
    pub slug: String,
    /// Its containers (`list --json`'s shape); `None` when the engine could not be asked.
    pub containers: Option<Vec<ContainerJson>>,
    pub pending: usize,
}

impl Bottle {
    /// Its agent container, when it has one: the running one (beside it may stand an agent kept
    /// after a failed snapshot, or one retired by a swap).
    pub fn agent(&self) -> Option<&ContainerJson> {
        let mut agents = self
            .containers
            .as_ref()?
            .iter()
            .filter(|c| c.role == "agent");
        let first = agents.clone().next();
        agents.find(|c| c.state == "running").or(first)
    }

    /// Whether its agent runs.
    pub fn running(&self) -> bool {
        self.agent().is_some_and(|a| a.state == "running")
    }
}

/// A proposal (`queue --json`'s shape) and what `show` prints for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub proposal: ProposalJson,
    /// `show`'s text, every line escaped.
    pub detail: String,
}

/// Which list the arrows move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Focus {
    Bottles,
    #[default]
    Proposals,
}

/// What the operator edits when approving with an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditOf {
    /// The apt packages (space-separated); the Dockerfile lines asked for stay.
    Apt { lines: Vec<String> },
    /// The one Dockerfile line asked for.
    Line,
}

/// What the keys do now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Normal,
    Help,
    /// Approve `id` (bound to `sha256`) with the edited packages or line.
    Edit {
        id: String,
        sha256: String,
        of: EditOf,
        input: Input,
    },
    /// Reject `id` with the reason typed.
    Reject {
        id: String,
        input: Input,
    },
    /// `s` was pressed: `y` stops bottle `slug`.
    ConfirmStop {
        slug: String,
    },
    /// The audit log of `slug`, escaped, a line each; `scroll` lines down.
    Log {
        slug: String,
        lines: Vec<String>,
        scroll: usize,
    },
}

/// What the loop is asked to do; each goes through the code of the CLI verb of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Approve(Approval),
    Reject { id: String, reason: String },
    Stop { slug: String },
    OpenLog { slug: String },
    Quit,
}

/// The last outcome, shown on the bottom line until the next key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub error: bool,
}

/// The dashboard's whole state.
#[derive(Debug, Default)]
pub struct App {
    pub snapshot: Snapshot,
    pub focus: Focus,
    pub bottle: usize,
    pub proposal: usize,
    /// Lines the detail pane is scrolled down.
    pub detail_scroll: u16,
    pub mode: Mode,
    pub status: Option<Status>,
    /// Pending ids already shown; `None` before the first snapshot (nothing rings then).
    seen: Option<HashSet<String>>,
}

/// Lines a page key moves.
const PAGE: usize = 10;

impl App {
    /// Takes a fresh snapshot, keeping the selection on the same bottle and proposal. `true` when
    /// a pending proposal arrived that was not on the screen before: the terminal bell rings.
    pub fn update(&mut self, snapshot: Snapshot) -> bool {
        let selected_id = self.selected().map(|i| i.proposal.id.clone());
        let selected_slug = self.selected_bottle().map(|b| b.slug.clone());
        let pending: HashSet<String> = snapshot
            .proposals
            .iter()
            .filter(|i| i.proposal.state == State::Pending)
            .map(|i| i.proposal.id.clone())
            .collect();
        let bell = self
            .seen
            .as_ref()
            .is_some_and(|seen| pending.iter().any(|id| !seen.contains(id)));
        let mut seen = self.seen.take().unwrap_or_default();
        seen.extend(pending);
        self.seen = Some(seen);
        self.snapshot = snapshot;
        if let Some(at) = selected_id.and_then(|id| {
            self.snapshot
                .proposals
                .iter()
                .position(|i| i.proposal.id == id)
        }) {
            self.proposal = at;
        }
        if let Some(at) =
            selected_slug.and_then(|slug| self.snapshot.bottles.iter().position(|b| b.slug == slug))
        {
            self.bottle = at;
        }
        self.proposal = self
            .proposal
            .min(self.snapshot.proposals.len().saturating_sub(1));
        self.bottle = self
            .bottle
            .min(self.snapshot.bottles.len().saturating_sub(1));
        bell
    }

    /// The selected proposal.
    pub fn selected(&self) -> Option<&Item> {
        self.snapshot.proposals.get(self.proposal)
    }

    /// The selected bottle.
    pub fn selected_bottle(&self) -> Option<&Bottle> {
        self.snapshot.bottles.get(self.bottle)
    }

    /// The bottle the bottle keys (`l`, `s`) act on: the selected bottle in the bottles pane,
    /// the selected proposal's in the proposals pane.
    fn target_slug(&self) -> Option<String> {
        match self.focus {
            Focus::Bottles => self.selected_bottle().map(|b| b.slug.clone()),
            Focus::Proposals => self.selected().map(|i| i.proposal.slug.clone()),
        }
    }

    /// The outcome of a command, for the bottom line.
    pub fn report(&mut self, outcome: Result<String, String>) {
        self.status = Some(match outcome {
            Ok(text) => Status { text, error: false },
            Err(text) => Status { text, error: true },
        });
    }

    /// Shows the audit log of `slug` (already escaped), from its end.
    pub fn open_log(&mut self, slug: String, lines: Vec<String>) {
        let scroll = lines.len().saturating_sub(PAGE);
        self.mode = Mode::Log {
            slug,
            lines,
            scroll,
        };
    }

    /// What `key` does; a command for the loop to carry out, if any.
    pub fn key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            return Some(Command::Quit);
        }
        match std::mem::take(&mut self.mode) {
            Mode::Normal => self.normal(key),
            Mode::Help => None,
            Mode::ConfirmStop { slug } => match key.code {
                KeyCode::Char('y' | 'Y') => {
                    self.report(Ok(format!("stopping bottle {slug}…")));
                    Some(Command::Stop { slug })
                }
                _ => {
                    self.report(Ok(format!("bottle {slug} left running")));
                    None
                }
            },
            Mode::Log {
                slug,
                lines,
                mut scroll,
            } => {
                let last = lines.len().saturating_sub(1);
                match key.code {
                    KeyCode::Esc | KeyCode::Char('q' | 'l') => return None,
                    KeyCode::Down | KeyCode::Char('j') => scroll = (scroll + 1).min(last),
                    KeyCode::Up | KeyCode::Char('k') => scroll = scroll.saturating_sub(1),
                    KeyCode::PageDown | KeyCode::Char(' ') => scroll = (scroll + PAGE).min(last),
                    KeyCode::PageUp => scroll = scroll.saturating_sub(PAGE),
                    KeyCode::Home | KeyCode::Char('g') => scroll = 0,
                    KeyCode::End | KeyCode::Char('G') => scroll = last,
                    _ => {}
                }
                self.mode = Mode::Log {
                    slug,
                    lines,
                    scroll,
                };
                None
            }
            Mode::Reject { id, mut input } => match key.code {
                KeyCode::Esc => {
                    self.report(Ok(format!("{id}: not rejected")));
                    None
                }
                KeyCode::Enter if input.text.trim().is_empty() => {
                    self.report(Err(
                        "a rejection needs a reason the agent can act on".to_owned()
                    ));
                    self.mode = Mode::Reject { id, input };
                    None
                }
                KeyCode::Enter => Some(Command::Reject {
                    id,
                    reason: input.text,
                }),
                _ => {
                    input.key(key);
                    self.mode = Mode::Reject { id, input };
                    None
                }
            },
            Mode::Edit {
                id,
                sha256,
                of,
                mut input,
            } => match key.code {
                KeyCode::Esc => {
                    self.report(Ok(format!("{id}: not approved")));
                    None
                }
                KeyCode::Enter => {
                    let (edit_apt, edit_dockerfile_lines) = match &of {
                        EditOf::Apt { lines } => (
                            input.text.split_whitespace().map(str::to_owned).collect(),
                            lines.clone(),
                        ),
                        EditOf::Line => (Vec::new(), vec![input.text.trim().to_owned()]),
                    };
                    if edit_apt.is_empty() && edit_dockerfile_lines.iter().all(|l| l.is_empty()) {
                        self.report(Err(
                            "nothing left to approve: reject it instead (r)".to_owned()
                        ));
                        self.mode = Mode::Edit {
                            id,
                            sha256,
                            of,
                            input,
                        };
                        return None;
                    }
                    Some(Command::Approve(Approval {
                        id,
                        edit_apt,
                        edit_dockerfile_lines,
                        sha256: Some(sha256),
                        ..Approval::default()
                    }))
                }
                _ => {
                    input.key(key);
                    self.mode = Mode::Edit {
                        id,
                        sha256,
                        of,
                        input,
                    };
                    None
                }
            },
        }
    }

    fn normal(&mut self, key: KeyEvent) -> Option<Command> {
        self.status = None;
        match key.code {
            KeyCode::Char('q') => return Some(Command::Quit),
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    Focus::Bottles => Focus::Proposals,
                    Focus::Proposals => Focus::Bottles,
                };
            }
            KeyCode::Down | KeyCode::Char('j') => self.step(1),
            KeyCode::Up | KeyCode::Char('k') => self.step(-1),
            KeyCode::PageDown | KeyCode::Char(' ') => {
                self.detail_scroll = self.detail_scroll.saturating_add(PAGE as u16);
            }
            KeyCode::PageUp => {
                self.detail_scroll = self.detail_scroll.saturating_sub(PAGE as u16);
            }
            KeyCode::Char('a') => return self.approve(),
            KeyCode::Char('e') => self.edit(),
            KeyCode::Char('r') => match self.pending() {
                Ok(item) => {
                    self.mode = Mode::Reject {
                        id: item.proposal.id.clone(),
                        input: Input::default(),
                    };
                }
                Err(why) => self.report(Err(why)),
            },
            KeyCode::Char('l') => match self.target_slug() {
                Some(slug) => return Some(Command::OpenLog { slug }),
                None => self.report(Err("no bottle selected".to_owned())),
            },
            KeyCode::Char('s') => match self.target_slug() {
                Some(slug) => self.mode = Mode::ConfirmStop { slug },
                None => self.report(Err("no bottle selected".to_owned())),
            },
            _ => {}
        }
        None
    }

    /// Moves the selection of the focused list by `by`.
    fn step(&mut self, by: isize) {
        let (at, len) = match self.focus {
            Focus::Bottles => (&mut self.bottle, self.snapshot.bottles.len()),
            Focus::Proposals => (&mut self.proposal, self.snapshot.proposals.len()),
        };
        let before = *at;
        *at = at.saturating_add_signed(by).min(len.saturating_sub(1));
        if self.focus == Focus::Proposals && *at != before {
            self.detail_scroll = 0;
        }
    }

    /// The selected proposal, when it waits for a decision.
    fn pending(&self) -> Result<&Item, String> {
        let item = self
            .selected()
            .ok_or_else(|| "no proposal selected".to_owned())?;
        if item.proposal.state != State::Pending {
            return Err(format!(
                "{} is already {}",
                item.proposal.id,
                state_name(item.proposal.state)
            ));
        }
        Ok(item)
    }

    fn approve(&mut self) -> Option<Command> {
        match self.pending() {
            // Bound to the digest of the text on the screen: a proposal replaced since is
            // refused, as `approve --sha256` refuses it.
            Ok(item) => Some(Command::Approve(Approval {
                id: item.proposal.id.clone(),
                sha256: Some(item.proposal.sha256.clone()),
                ..Approval::default()
            })),
            Err(why) => {
                self.report(Err(why));
                None
            }
        }
    }

    fn edit(&mut self) {
        let item = match self.pending() {
            Ok(item) => item,
            Err(why) => return self.report(Err(why)),
        };
        let (of, text) = match &item.proposal.request {
            Request::Capability {
                apt,
                dockerfile_lines,
            } if !apt.is_empty() => (
                EditOf::Apt {
                    lines: dockerfile_lines.clone(),
                },
                apt.join(" "),
            ),
            Request::Capability {
                dockerfile_lines, ..
            } if dockerfile_lines.len() == 1 => (EditOf::Line, dockerfile_lines[0].clone()),
            Request::Capability { .. } => {
                let id = item.proposal.id.clone();
                return self.report(Err(format!(
                    "{id} asks for several Dockerfile lines: edit them with `claude-bottle approve {id} --edit-dockerfile-line …`"
                )));
            }
            Request::Egress { .. } | Request::Push { .. } => {
                return self.report(Err(
                    "only a capability can be edited: approve (a) or reject (r) it".to_owned(),
                ));
            }
        };
        self.mode = Mode::Edit {
            id: item.proposal.id.clone(),
            sha256: item.proposal.sha256.clone(),
            of,
            input: Input::new(&text),
        };
    }
}

/// A state as the screen names it.
pub fn state_name(s: State) -> &'static str {
    match s {
        State::Pending => "pending",
        State::Approved => "approved",
        State::Rejected => "rejected",
        State::Applied => "applied",
        State::Failed => "failed",
        State::Unknown => "unknown",
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
