//! The dashboard's terminal loop: one task owns the [`App`] and loops over one `select!` of
//! typed events (a key, a queue file changed, the engine reported a container event, a tick, a
//! stop finished, a signal); it re-reads what changed, redraws, and carries out the commands the
//! model returns. The terminal is restored on every way out.

use std::collections::{HashSet, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use crossterm::{cursor, execute, terminal};
use futures_util::StreamExt as _;
use notify::{RecursiveMode, Watcher as _};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::super::Error;
use super::gather;
use super::model::{App, Command};
use super::render::{self, Theme};
use crate::backend::docker::DockerBackend;
use crate::backend::{Backend, BottleStatus};
use crate::error::Kind;
use crate::home::Home;
use crate::state::audit;

/// How often the state files are read again whatever the watches say (a missed event, a
/// folder that appeared between two reads), and ages move on.
const FALLBACK: Duration = Duration::from_secs(5);
/// How long file events are gathered before one re-read.
const SETTLE: Duration = Duration::from_millis(100);

/// What can happen while the dashboard runs.
#[derive(Debug)]
enum Happened {
    Key(crossterm::event::KeyEvent),
    Resized,
    /// A file under `state/` changed.
    Files,
    /// The engine reported a container of a bottle started, died, changed health…
    Engine,
    /// The engine's event stream ended (or never started): why.
    EngineLost(String),
    Tick,
    /// `claude-bottle stop` as the dashboard ran it.
    Stopped(Result<String, String>),
    /// SIGTERM, SIGINT or SIGHUP: its number.
    Signal(i32),
    /// The terminal's input ended or failed.
    InputGone,
}

/// How the dashboard ended: the operator quit, or a signal (its number) ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Quit,
    Signal(i32),
}

/// Runs the dashboard on this terminal until the operator quits or a signal comes.
pub fn run(home: &Home, config: crate::config::Config) -> Result<Ended, Error> {
    let rt = super::super::runtime()?;
    rt.block_on(async move {
        let mut screen = Screen::enter()?;
        let outcome = drive(home, config, &mut screen).await;
        drop(screen);
        outcome
    })
}

/// The terminal in raw mode on the alternate screen; dropping it (or a panic) restores it.
struct Screen {
    terminal: Terminal<CrosstermBackend<std::io::Stdout>>,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Screen")
    }
}

fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
}

impl Screen {
    fn enter() -> Result<Self, Error> {
        let fail = |e: std::io::Error| {
            restore();
            Error::new(
                Kind::Environment,
                format!("failed to set up the terminal: {e}"),
            )
        };
        // A panic restores the terminal before its message is printed.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        terminal::enable_raw_mode().map_err(fail)?;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )
        .map_err(fail)?;
        let terminal = Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(fail)?;
        Ok(Self { terminal })
    }

    fn draw(&mut self, app: &App, theme: Theme) -> Result<(), Error> {
        self.terminal
            .draw(|f| render::draw(f, app, theme))
            .map(|_| ())
            .map_err(|e| Error::new(Kind::Environment, format!("failed to draw: {e}")))
    }

    fn bell(&mut self) {
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\x07").and_then(|()| out.flush());
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Watches `state/` (bottles appearing) and each bottle's `queue/` (proposals, decisions,
/// applied records); `watched` remembers which queues have a watch.
struct Watches {
    watcher: notify::RecommendedWatcher,
    root: PathBuf,
    watched: HashSet<PathBuf>,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("root", &self.root)
            .field("watched", &self.watched)
            .finish_non_exhaustive()
    }
}

impl Watches {
    fn new(home: &Home, tx: mpsc::UnboundedSender<Happened>) -> Result<Self, String> {
        let watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            // Opening and reading are no change: the dashboard's own reads must not wake it.
            if e.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
                let _ = tx.send(Happened::Files);
            }
        })
        .map_err(|e| format!("failed to watch the state folder: {e}"))?;
        let mut w = Self {
            watcher,
            root: home.root().join("state"),
            watched: HashSet::new(),
        };
        w.refresh(home.root());
        Ok(w)
    }

    /// Adds watches for the state folder and the queues that appeared since the last call.
    fn refresh(&mut self, home_root: &Path) {
        if !self.watched.contains(&self.root) {
            let target = if self.root.is_dir() {
                self.root.clone()
            } else {
                // No bottle yet: its parent tells when `state/` appears.
                home_root.to_owned()
            };
            if self
                .watcher
                .watch(&target, RecursiveMode::NonRecursive)
                .is_ok()
                && target == self.root
            {
                self.watched.insert(self.root.clone());
            }
        }
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for e in entries.flatten() {
            let queue = crate::state::Layout::new(&e.path()).queue();
            if !self.watched.contains(&queue)
                && queue.is_dir()
                && self.watcher.watch(&queue, RecursiveMode::Recursive).is_ok()
            {
                self.watched.insert(queue);
            }
        }
    }
}

async fn drive(
    home: &Home,
    config: crate::config::Config,
    screen: &mut Screen,
) -> Result<Ended, Error> {
    let theme = Theme::from_env();
    let (tx, mut rx) = mpsc::unbounded_channel::<Happened>();
    let mut app = App::default();

    let mut watches = match Watches::new(home, tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            app.report(Err(claude_bottle_protocol::escape_line(&e).into_owned()));
            None
        }
    };
    let mut backend = connect(&config).await;
    // Whether the engine's event stream is on: while it is not, the fallback re-read asks the
    // engine again (reconnecting when needed) and starts a new stream once it answers.
    let mut events_on = false;
    match &backend {
        Ok(b) => {
            spawn_events(b, tx.clone());
            events_on = true;
        }
        Err(e) => {
            let _ = tx.send(Happened::EngineLost(e.clone()));
        }
    }
    spawn_input(tx.clone());
    spawn_signals(tx.clone())?;
    let ticker = tx.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if ticker.send(Happened::Tick).is_err() {
                break;
            }
        }
    });

    let mut engine = list(&backend).await;
    let mut noted = gather::Noted::default();
    app.update(gather::snapshot(home, &engine, audit::now(), &mut noted));
    screen.draw(&app, theme)?;
    let mut ticks = 0u64;
    // What arrived while file events were gathered, in order.
    let mut backlog = VecDeque::new();
    loop {
        let happened = match backlog.pop_front() {
            Some(h) => h,
            None => match rx.recv().await {
                Some(h) => h,
                None => return Ok(Ended::Quit),
            },
        };
        let mut reread = false;
        match happened {
            Happened::Key(key) => match app.key(key) {
                Some(Command::Quit) => return Ok(Ended::Quit),
                Some(Command::OpenLog { slug }) => {
                    let lines = gather::audit_lines(home, &slug).unwrap_or_else(|e| vec![e]);
                    app.open_log(slug, lines);
                }
                Some(Command::Stop { slug }) => match &backend {
                    Ok(b) => spawn_stop(b.clone(), slug, tx.clone()),
                    Err(why) => app.report(Err(format!(
                        "the engine did not answer, nothing can be stopped: {}",
                        claude_bottle_protocol::escape_line(why)
                    ))),
                },
                Some(command) => {
                    if let Some(outcome) = gather::act(home, &command) {
                        app.report(outcome);
                    }
                    reread = true;
                }
                None => {}
            },
            Happened::Resized => {}
            Happened::Files | Happened::Engine => {
                // A burst (a decision, its audit line, an applied record; a container's create,
                // start and health events) is read once.
                let (mut files, mut containers) = (
                    matches!(happened, Happened::Files),
                    matches!(happened, Happened::Engine),
                );
                tokio::time::sleep(SETTLE).await;
                while let Ok(h) = rx.try_recv() {
                    match h {
                        Happened::Files => files = true,
                        Happened::Engine => containers = true,
                        other => backlog.push_back(other),
                    }
                }
                if files && let Some(w) = watches.as_mut() {
                    w.refresh(home.root());
                }
                if containers {
                    engine = list(&backend).await;
                }
                reread = true;
            }
            Happened::EngineLost(why) => {
                engine = Err(why);
                events_on = false;
                reread = true;
            }
            Happened::Tick => {
                ticks += 1;
                if ticks.is_multiple_of(FALLBACK.as_secs()) {
                    if let Some(w) = watches.as_mut() {
                        w.refresh(home.root());
                    }
                    if !events_on {
                        if backend.is_err() {
                            backend = connect(&config).await;
                        }
                        engine = list(&backend).await;
                        if let (Ok(b), Ok(_)) = (&backend, &engine) {
                            spawn_events(b, tx.clone());
                            events_on = true;
                        }
                    }
                    reread = true;
                } else {
                    app.snapshot.now = audit::now();
                }
            }
            Happened::Stopped(outcome) => {
                app.report(outcome);
                engine = list(&backend).await;
                reread = true;
            }
            Happened::Signal(number) => return Ok(Ended::Signal(number)),
            Happened::InputGone => return Ok(Ended::Quit),
        }
        if reread && app.update(gather::snapshot(home, &engine, audit::now(), &mut noted)) {
            screen.bell();
        }
        screen.draw(&app, theme)?;
    }
}

/// How long connecting to the engine may take before the dashboard shows it as not answering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection to the engine, or why there is none.
async fn connect(config: &crate::config::Config) -> Result<DockerBackend, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, DockerBackend::connect(config.clone())).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer from the engine in {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// The engine's bottles, or why it did not answer.
async fn list(backend: &Result<DockerBackend, String>) -> Result<Vec<BottleStatus>, String> {
    match backend {
        Ok(b) => b.list().await.map_err(|e| e.to_string()),
        Err(why) => Err(why.clone()),
    }
}

fn spawn_events(backend: &DockerBackend, tx: mpsc::UnboundedSender<Happened>) {
    let mut events = Box::pin(backend.container_events());
    tokio::spawn(async move {
        let why = loop {
            match events.next().await {
                Some(Ok(_slug)) => {
                    if tx.send(Happened::Engine).is_err() {
                        return;
                    }
                }
                Some(Err(e)) => break e.to_string(),
                None => break "the engine's event stream ended".to_owned(),
            }
        };
        let _ = tx.send(Happened::EngineLost(why));
    });
}

fn spawn_input(tx: mpsc::UnboundedSender<Happened>) {
    tokio::spawn(async move {
        let mut input = EventStream::new();
        while let Some(e) = input.next().await {
            let happened = match e {
                Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => Happened::Key(k),
                Ok(Event::Resize(..)) => Happened::Resized,
                Ok(_) => continue,
                Err(_) => break,
            };
            if tx.send(happened).is_err() {
                return;
            }
        }
        let _ = tx.send(Happened::InputGone);
    });
}

fn spawn_signals(tx: mpsc::UnboundedSender<Happened>) -> Result<(), Error> {
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ] {
        let mut s = signal(kind).map_err(|e| {
            Error::new(Kind::Internal, format!("failed to listen for signals: {e}"))
        })?;
        let tx = tx.clone();
        let number = kind.as_raw_value();
        tokio::spawn(async move {
            if s.recv().await.is_some() {
                let _ = tx.send(Happened::Signal(number));
            }
        });
    }
    Ok(())
}

/// `claude-bottle stop`'s own function, in a task: the screen stays live while it removes.
fn spawn_stop(backend: DockerBackend, slug: String, tx: mpsc::UnboundedSender<Happened>) {
    tokio::spawn(async move {
        let outcome = super::super::stop::stop(&backend, &slug)
            .await
            .map(|lines| match lines.first() {
                Some(l) if l.starts_with("removed") => {
                    format!("stopped bottle {slug}: {}", lines.join(", "))
                }
                _ => lines.join(", "),
            })
            .map_err(|e| claude_bottle_protocol::escape_line(&e.report()).into_owned());
        let _ = tx.send(Happened::Stopped(outcome));
    });
}
