//! Drawing the dashboard: a pure function of the [`App`] onto a ratatui frame (the tests draw on
//! ratatui's `TestBackend`). Every text drawn was escaped when it was read.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::super::json::list::ContainerJson;
use super::super::json::proposal::State;
use super::super::render::age;
use super::model::{App, Bottle, Focus, Mode, state_name};

/// Colours, or none (`NO_COLOR`): then only bold and reverse video mark things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set to anything but the empty string (no-color.org).
    pub fn from_env() -> Self {
        Self {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
}

/// Widths from which the panes sit side by side, and from which the bottle and kind columns
/// show.
const WIDE: u16 = 120;
const NARROW: u16 = 60;

/// The container roles a bottle can have, in the order they are shown.
const ROLES: [&str; 7] = [
    "agent",
    "supervise",
    "relay",
    "egress-proxy",
    "pipelock",
    "git-gate",
    "git-pipelock",
];

/// Draws the whole screen.
pub fn draw(f: &mut Frame, app: &App, theme: Theme) {
    let area = f.area();
    let [main, bar] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
    let bottle_lines = 2 + app.snapshot.bottles.len().max(1) as u16 * 2;
    let proposal_lines = 2 + app.snapshot.proposals.len().max(1) as u16;
    if area.width >= WIDE {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(main);
        let [top, bottom] = Layout::vertical([
            Constraint::Max(bottle_lines.min(left.height / 2).max(3)),
            Constraint::Min(3),
        ])
        .areas(left);
        bottles(f, app, theme, top);
        proposals(f, app, theme, bottom);
        detail(f, app, theme, right);
    } else {
        // One column: the lists get what they need up to about a third of the height each, the
        // detail the rest; a short terminal keeps the lists.
        let third = (main.height / 3).max(3);
        let chunks = Layout::default()
            .direction(Direction::Vertical)
            .constraints([
                Constraint::Length(bottle_lines.min(third)),
                Constraint::Length(proposal_lines.min(third)),
                Constraint::Min(0),
            ])
            .split(main);
        bottles(f, app, theme, chunks[0]);
        proposals(f, app, theme, chunks[1]);
        if chunks[2].height >= 3 {
            detail(f, app, theme, chunks[2]);
        }
    }
    bottom_line(f, app, theme, bar);
    match &app.mode {
        Mode::Help => help(f, theme, area),
        Mode::Log {
            slug,
            lines,
            scroll,
        } => log(f, theme, main, slug, lines, *scroll),
        _ => {}
    }
}

fn block(title: String, focused: bool, theme: Theme) -> Block<'static> {
    let style = if focused {
        theme.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    Block::new()
        .borders(Borders::ALL)
        .border_style(style)
        .title(Span::styled(title, style))
}

/// Lines of a list `height` rows high that keep line `selected` in view.
fn window(len: usize, selected: usize, height: usize) -> std::ops::Range<usize> {
    let height = height.max(1);
    let start = (selected + 1)
        .saturating_sub(height)
        .min(len.saturating_sub(height));
    start..(start + height).min(len)
}

fn bottles(f: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let running = app.snapshot.bottles.iter().filter(|b| b.running()).count();
    let title = format!(
        " Bottles ({} · {running} running) ",
        app.snapshot.bottles.len()
    );
    let focused = app.focus == Focus::Bottles;
    let inner_height = usize::from(area.height.saturating_sub(2));
    let mut lines = Vec::new();
    if app.snapshot.bottles.is_empty() {
        lines.push(Line::from(Span::styled(
            "no bottles: start one with `claude-bottle start <bottle>`",
            theme.fg(Color::DarkGray),
        )));
    }
    // Two lines a bottle: what it is, then its containers.
    let range = window(
        app.snapshot.bottles.len(),
        app.bottle,
        (inner_height / 2).max(1),
    );
    for (i, b) in app.snapshot.bottles.iter().enumerate() {
        if !range.contains(&i) {
            continue;
        }
        let mut head = bottle_head(b, app.snapshot.now, theme);
        if focused && i == app.bottle {
            head = head.style(theme.selected());
        }
        lines.push(head);
        lines.push(container_line(b, theme));
    }
    f.render_widget(
        Paragraph::new(lines).block(block(title, focused, theme)),
        area,
    );
}

fn bottle_head(b: &Bottle, now: u64, theme: Theme) -> Line<'static> {
    let (state, colour) = match &b.containers {
        None => ("engine?", Color::Yellow),
        Some(_) if b.running() => ("running", Color::Green),
        Some(cs) if cs.is_empty() => ("stopped", Color::DarkGray),
        Some(_) => ("down", Color::Red),
    };
    let mut spans = vec![
        Span::styled(
            format!("{:<16}", b.slug),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(" "),
        Span::styled(format!("{state:<8}"), theme.fg(colour)),
    ];
    let uptime = b
        .agent()
        .filter(|a| a.state == "running")
        .and_then(|a| a.created)
        .map(|t| format!("up {}", age_secs(now.saturating_sub(t))))
        .unwrap_or_default();
    spans.push(Span::raw(format!(" {uptime:<9}")));
    let pending = match b.pending {
        0 => Span::styled(format!("{:<10}", "0 pending"), theme.fg(Color::DarkGray)),
        n => Span::styled(
            format!("{:<10}", format!("{n} pending")),
            theme.fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ),
    };
    spans.push(Span::raw(" "));
    spans.push(pending);
    if let Some(agent) = b.agent() {
        spans.push(Span::styled(
            format!(" {}", clean(&agent.image)),
            theme.fg(Color::DarkGray),
        ));
    }
    Line::from(spans)
}

/// `  agent ● supervise ● egress-proxy ! pipelock ○`: each container and how it is.
fn container_line(b: &Bottle, theme: Theme) -> Line<'static> {
    let mut spans = vec![Span::raw("  ")];
    let Some(cs) = &b.containers else {
        return Line::from(Span::styled(
            "  containers unknown: the engine did not answer",
            theme.fg(Color::DarkGray),
        ));
    };
    if cs.is_empty() {
        return Line::from(Span::styled("  no containers", theme.fg(Color::DarkGray)));
    }
    let mut sorted: Vec<&ContainerJson> = cs.iter().collect();
    sorted.sort_by_key(|c| {
        ROLES
            .iter()
            .position(|r| *r == c.role)
            .unwrap_or(ROLES.len())
    });
    for c in sorted {
        let (mark, colour) = mark(c);
        spans.push(Span::raw(format!("{} ", clean(&c.role))));
        spans.push(Span::styled(format!("{mark} "), theme.fg(colour)));
    }
    Line::from(spans)
}

/// `●` running (and healthy), `◐` starting, `!` unhealthy, `○` not running.
fn mark(c: &ContainerJson) -> (&'static str, Color) {
    match (c.state.as_str(), c.health.as_deref()) {
        ("running", Some("unhealthy")) => ("!", Color::Red),
        ("running", Some("starting")) => ("◐", Color::Yellow),
        ("running", _) => ("●", Color::Green),
        ("created" | "restarting", _) => ("◐", Color::Yellow),
        _ => ("○", Color::Red),
    }
}

fn age_secs(secs: u64) -> String {
    age(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Engine answers (names, images) are anyone's with the engine's socket: one line, escaped.
fn clean(s: &str) -> String {
    claude_bottle_protocol::escape_line(s).into_owned()
}

fn proposals(f: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let pending = app
        .snapshot
        .proposals
        .iter()
        .filter(|i| i.proposal.state == State::Pending)
        .count();
    let title = format!(" Proposals ({pending} pending) ");
    let focused = app.focus == Focus::Proposals;
    let wide = area.width >= NARROW;
    let mut lines = Vec::new();
    if app.snapshot.proposals.is_empty() {
        lines.push(Line::from(Span::styled(
            "no pending proposals",
            theme.fg(Color::DarkGray),
        )));
    }
    let range = window(
        app.snapshot.proposals.len(),
        app.proposal,
        usize::from(area.height.saturating_sub(2)),
    );
    for (i, item) in app.snapshot.proposals.iter().enumerate() {
        if !range.contains(&i) {
            continue;
        }
        let p = &item.proposal;
        let colour = match p.state {
            State::Pending => Color::Yellow,
            State::Applied => Color::Green,
            State::Approved => Color::Cyan,
            State::Rejected | State::Failed | State::Unknown => Color::Red,
        };
        let mut spans = vec![
            // From the screen's clock, so that ages move between reads.
            Span::raw(format!(
                "{:>5} ",
                age_secs(app.snapshot.now.saturating_sub(p.created))
            )),
            Span::styled(format!("{:<8} ", state_name(p.state)), theme.fg(colour)),
        ];
        if wide {
            spans.push(Span::raw(format!(
                "{:<12.12} {:<10} ",
                clean(&p.slug),
                p.kind
            )));
        }
        spans.push(Span::raw(clean(&p.summary)));
        let mut line = Line::from(spans);
        if i == app.proposal {
            line = line.style(if focused {
                theme.selected()
            } else {
                Style::new().add_modifier(Modifier::BOLD)
            });
        }
        lines.push(line);
    }
    f.render_widget(
        Paragraph::new(lines).block(block(title, focused, theme)),
        area,
    );
}

fn detail(f: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let Some(item) = app.selected() else {
        let text = Paragraph::new(Line::from(Span::styled(
            "nothing selected",
            theme.fg(Color::DarkGray),
        )))
        .block(block(" Detail ".to_owned(), false, theme));
        f.render_widget(text, area);
        return;
    };
    let title = format!(" {} ", item.proposal.id);
    f.render_widget(
        Paragraph::new(detail_text(
            &item.detail,
            item.proposal.state == State::Pending,
            theme,
        ))
        .wrap(Wrap { trim: false })
        .scroll((app.detail_scroll, 0))
        .block(block(title, false, theme)),
        area,
    );
}

/// `show`'s text: the diff coloured (`+` green, `-` red, `@@` cyan, a `!` warning yellow), labels
/// bold. For a pending proposal the change comes first (on a short screen it is what must show),
/// then the fields; a decided one keeps `show`'s order, its decision and applied record first.
fn detail_text(text: &str, change_first: bool, theme: Theme) -> Text<'static> {
    // `show` prints the fields, a blank line, then the change; a field's further lines are
    // indented, never blank.
    let (fields, change) = text.split_once("\n\n").unwrap_or((text, ""));
    let fields = fields.lines().map(|l| field_line(l, theme));
    let change = change.lines().map(|l| change_line(l, theme));
    let out: Vec<Line<'static>> = if change_first {
        change.chain([Line::default()]).chain(fields).collect()
    } else {
        fields.chain([Line::default()]).chain(change).collect()
    };
    Text::from(out)
}

fn change_line(l: &str, theme: Theme) -> Line<'static> {
    let style = if l.starts_with("+++") || l.starts_with("---") || l.ends_with(':') {
        Style::new().add_modifier(Modifier::BOLD)
    } else if l.starts_with('+') {
        theme.fg(Color::Green)
    } else if l.starts_with('-') {
        theme.fg(Color::Red)
    } else if l.starts_with("@@") {
        theme.fg(Color::Cyan)
    } else if l.starts_with('!') || l.starts_with("error") || l.starts_with("note") {
        theme.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    Line::from(Span::styled(l.to_owned(), style))
}

/// `label     value`: the label bold, a state or an outcome coloured.
fn field_line(l: &str, theme: Theme) -> Line<'static> {
    if l.starts_with(' ') || !l.is_char_boundary(10) || l.len() <= 10 {
        return Line::from(l.to_owned());
    }
    let (label, value) = l.split_at(10);
    let style = match (label.trim(), value) {
        ("applied", v) if v.starts_with("failed") => theme.fg(Color::Red),
        ("applied", _) => theme.fg(Color::Green),
        ("state", "failed" | "rejected") => theme.fg(Color::Red),
        ("state", "applied") => theme.fg(Color::Green),
        ("state", "pending") => theme.fg(Color::Yellow),
        _ => Style::new(),
    };
    Line::from(vec![
        Span::styled(label.to_owned(), Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(value.to_owned(), style),
    ])
}

/// Keys, or the last outcome, or the line being typed.
fn bottom_line(f: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let line = match &app.mode {
        Mode::Reject { id, input } => prompt(f, area, &format!("reject {id}, reason: "), input),
        Mode::Edit { id, input, .. } => prompt(f, area, &format!("approve {id} as: "), input),
        Mode::ConfirmStop { slug } => Line::from(Span::styled(
            format!("stop bottle {slug}? every container, network and volume is removed [y/N]"),
            theme.fg(Color::Yellow).add_modifier(Modifier::BOLD),
        )),
        Mode::Log { .. } => Line::from("↑↓/PgUp/PgDn scroll  g/G start/end  q/Esc close"),
        Mode::Help => Line::from("any key closes the help"),
        Mode::Normal => match (&app.status, app.snapshot.problems.first()) {
            (Some(s), _) => Line::from(Span::styled(
                s.text.clone(),
                if s.error {
                    theme.fg(Color::Red).add_modifier(Modifier::BOLD)
                } else {
                    theme.fg(Color::Green)
                },
            )),
            (None, Some(problem)) => Line::from(Span::styled(
                format!("warning: {problem}"),
                theme.fg(Color::Yellow),
            )),
            (None, None) => keys_line(area.width),
        },
    };
    f.render_widget(Paragraph::new(line), area);
}

fn keys_line(width: u16) -> Line<'static> {
    let keys = if width >= 80 {
        "a approve  e edit  r reject  l log  s stop  Tab pane  ↑↓ move  ? help  q quit"
    } else {
        "a e r l s  Tab ↑↓  ? help  q quit"
    };
    Line::from(Span::styled(keys, Style::new().add_modifier(Modifier::DIM)))
}

/// `label` and the input, the terminal's cursor placed in it.
fn prompt(f: &mut Frame, area: Rect, label: &str, input: &super::model::Input) -> Line<'static> {
    let label_width = label.chars().count();
    // The text as typed is the operator's, but it may be pasted: shown escaped.
    let shown = clean(&input.text);
    let before: String = clean(&input.text.chars().take(input.cursor).collect::<String>());
    let cursor = label_width + before.chars().count();
    let x = area.x
        + u16::try_from(cursor)
            .unwrap_or(u16::MAX)
            .min(area.width.saturating_sub(1));
    f.set_cursor_position((x, area.y));
    Line::from(vec![
        Span::styled(label.to_owned(), Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(shown),
    ])
}

/// A rectangle `w`×`h` in the middle of `area`, clipped to it.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

const HELP: &[(&str, &str)] = &[
    (
        "a",
        "approve the selected proposal (bound to the text shown)",
    ),
    (
        "e",
        "approve with an edit: the packages, or the Dockerfile line",
    ),
    ("r", "reject, with a reason the agent reads"),
    ("l", "the audit log of the bottle"),
    ("s", "stop the bottle (asks first)"),
    ("Tab", "switch between bottles and proposals"),
    ("↑↓ j k", "move; PgUp/PgDn scroll the detail"),
    ("?", "this help"),
    ("q ^C", "quit"),
    ("", ""),
    ("●", "running  ◐ starting  ! unhealthy  ○ not running"),
];

fn help(f: &mut Frame, theme: Theme, area: Rect) {
    let rect = centered(area, 70, HELP.len() as u16 + 2);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {k:<7}"),
                    theme.fg(Color::Cyan).add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines).block(block(" Keys ".to_owned(), true, theme)),
        rect,
    );
}

fn log(f: &mut Frame, theme: Theme, area: Rect, slug: &str, lines: &[String], scroll: usize) {
    let title = format!(" Audit log of {slug} ({} lines) ", lines.len());
    let height = usize::from(area.height.saturating_sub(2));
    let start = scroll.min(lines.len().saturating_sub(height));
    let shown: Vec<Line> = lines
        .iter()
        .skip(start)
        .take(height)
        .map(|l| Line::from(l.clone()))
        .collect();
    f.render_widget(Clear, area);
    // A record is long: wrapped, whole, rather than cut at the edge.
    f.render_widget(
        Paragraph::new(shown)
            .wrap(Wrap { trim: false })
            .block(block(title, true, theme)),
        area,
    );
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
