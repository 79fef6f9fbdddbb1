//! The dashboard drawn on ratatui's `TestBackend` from fixture homes, each pane and state an
//! insta snapshot of the screen's text.

use claude_bottle_protocol::{Applied, Capability, Decision, ProposalKind};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

use super::super::fixture::{Fixture, NOW, full, running};
use super::super::model::App;
use super::*;

const COLOR: Theme = Theme { color: true };

/// The screen `app` draws on a `w`×`h` terminal.
fn screen(app: &App, w: u16, h: u16, theme: Theme) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| draw(f, app, theme)).expect("draw");
    t.backend().buffer().clone()
}

/// The screen as text, a line per row, trailing spaces kept off; the temp home's random name
/// replaced (its length kept, so wrapping is unchanged).
fn text(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let re = regex::Regex::new(r"\.tmp[A-Za-z0-9]{6}").expect("regex");
    re.replace_all(&out, ".tmpXXXXXX").into_owned()
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn rg() -> ProposalKind {
    ProposalKind::Capability(Capability {
        apt: vec!["ripgrep".into(), "jq".into()],
        dockerfile_lines: vec![],
    })
}

/// Two bottles: `myapp` running with a capability and an egress proposal pending, `web` stopped.
fn two_bottles() -> (Fixture, Result<Vec<crate::backend::BottleStatus>, String>) {
    let fx = Fixture::new();
    fx.propose("myapp", "1764270000-3f2a9c01", rg(), 300);
    fx.propose(
        "myapp",
        "1764270100-0b7e44d2",
        crate::testing::egress("packages.example.org"),
        200,
    );
    fx.queue("web");
    (fx, Ok(vec![full("myapp", 3_700)]))
}

#[test]
fn an_empty_host_says_how_to_start() {
    let fx = Fixture::new();
    let app = fx.app(&Ok(vec![]));
    insta::assert_snapshot!(text(&screen(&app, 80, 24, COLOR)));
}

#[test]
fn bottles_proposals_and_the_diff_fit_80_by_24() {
    let (fx, engine) = two_bottles();
    let app = fx.app(&engine);
    insta::assert_snapshot!(text(&screen(&app, 80, 24, COLOR)));
}

#[test]
fn a_wide_terminal_puts_the_detail_beside_the_lists() {
    let (fx, engine) = two_bottles();
    let app = fx.app(&engine);
    insta::assert_snapshot!(text(&screen(&app, 140, 30, COLOR)));
}

#[test]
fn the_egress_proposal_shows_its_allowlist_line() {
    let (fx, engine) = two_bottles();
    let mut app = fx.app(&engine);
    app.key(key('j'));
    insta::assert_snapshot!(text(&screen(&app, 80, 24, COLOR)));
}

#[test]
fn many_bottles_scroll_with_the_selection() {
    let fx = Fixture::new();
    let mut engine = Vec::new();
    for i in 0..12 {
        let slug = format!("bottle-{i:02}");
        fx.queue(&slug);
        if i % 3 == 0 {
            fx.propose(
                &slug,
                &format!("17642700{i:02}-0000000{}", i % 10),
                rg(),
                100 + i,
            );
        }
        match i % 4 {
            0 => engine.push(full(&slug, 60 * i)),
            1 => engine.push(running(
                &slug,
                &[
                    ("agent", "running", None),
                    ("egress-proxy", "running", Some("unhealthy")),
                    ("pipelock", "exited", None),
                    ("git-gate", "running", Some("starting")),
                ],
                86_400,
            )),
            2 => engine.push(running(&slug, &[("agent", "exited", None)], 10)),
            _ => {}
        }
    }
    let mut app = fx.app(&Ok(engine));
    app.key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    for _ in 0..9 {
        app.key(key('j'));
    }
    insta::assert_snapshot!(text(&screen(&app, 80, 24, COLOR)));
}

#[test]
fn long_lines_are_cut_in_the_list_and_wrapped_in_the_detail() {
    let fx = Fixture::new();
    let mut p = crate::testing::proposal(
        "1764270000-3f2a9c01",
        "a-bottle-with-a-rather-long-name",
        ProposalKind::Capability(Capability {
            apt: (0..30).map(|i| format!("package-number-{i}")).collect(),
            dockerfile_lines: vec![],
        }),
        NOW - 90,
    );
    p.reason = format!("the build needs {}", "every one of these, ".repeat(12));
    fx.file("a-bottle-with-a-rather-long-name", &p);
    fx.queue("a-bottle-with-a-rather-long-name");
    let app = fx.app(&Ok(vec![]));
    insta::assert_snapshot!(text(&screen(&app, 80, 24, COLOR)));
}

#[test]
fn a_failed_build_shows_its_applied_record_and_output() {
    let fx = Fixture::new();
    let p = fx.propose("myapp", "1764270000-3f2a9c01", rg(), 300);
    let d = Decision::approve_bound(&p, "", "alice", NOW - 240);
    let detail = "the rebuild failed; the agent keeps running unchanged\n\
                  failed to build image: returned a non-zero code: 100\n\
                  --- last build output ---\n\
                  E: Unable to locate package \u{1b}[31mjq\u{1b}[0m\r\n";
    fx.decide(
        "myapp",
        &d,
        Some(&Applied::failed(p.id.clone(), detail, NOW - 120)),
    );
    let mut app = fx.app(&Ok(vec![full("myapp", 600)]));
    let buf = screen(&app, 80, 24, COLOR);
    assert_no_controls(&buf);
    insta::assert_snapshot!(text(&buf));
    // The build's last lines, a page down, escaped.
    app.key(KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE));
    let buf = screen(&app, 80, 24, COLOR);
    assert_no_controls(&buf);
    let t = text(&buf);
    assert!(
        t.contains(r"E: Unable to locate package \x1b[31mjq\x1b[0m\r"),
        "{t}"
    );
    insta::assert_snapshot!("failed_build_scrolled", t);
}

#[test]
fn an_applied_proposal_shows_the_new_image() {
    let fx = Fixture::new();
    let p = fx.propose("myapp", "1764270000-3f2a9c01", rg(), 300);
    let d = Decision::approve_bound(&p, "", "alice", NOW - 240);
    fx.decide(
        "myapp",
        &d,
        Some(&Applied::ok(
            p.id.clone(),
            "image claude-bottle/agent-myapp:9c0ffee12345 (12 steps, 11 cached) in 14s; agent resumed",
            NOW - 200,
        )),
    );
    let app = fx.app(&Ok(vec![full("myapp", 190)]));
    insta::assert_snapshot!(text(&screen(&app, 80, 24, COLOR)));
}

#[test]
fn a_narrow_terminal_drops_columns_and_keeps_the_lists() {
    let (fx, engine) = two_bottles();
    let app = fx.app(&engine);
    insta::assert_snapshot!(text(&screen(&app, 50, 16, COLOR)));
}

#[test]
fn a_tiny_terminal_does_not_panic() {
    let (fx, engine) = two_bottles();
    let mut app = fx.app(&engine);
    for (w, h) in [(1, 1), (10, 3), (20, 5), (0, 0)] {
        screen(&app, w, h, COLOR);
        app.key(key('?'));
        screen(&app, w, h, COLOR);
        app.key(key('x'));
    }
}

#[test]
fn an_unreachable_engine_is_said_not_hidden() {
    let (fx, _) = two_bottles();
    let app = fx.app(&Err("failed to connect to the engine: no such file".into()));
    insta::assert_snapshot!(text(&screen(&app, 80, 24, COLOR)));
}

#[test]
fn no_color_draws_no_colour_only_bold_and_reverse() {
    let (fx, engine) = two_bottles();
    let app = fx.app(&engine);
    let plain = screen(&app, 80, 24, Theme { color: false });
    for cell in plain.content() {
        assert_eq!(cell.fg, Color::Reset, "{cell:?}");
        assert_eq!(cell.bg, Color::Reset, "{cell:?}");
    }
    let coloured = screen(&app, 80, 24, COLOR);
    assert!(
        coloured.content().iter().any(|c| c.fg == Color::Green),
        "colours when NO_COLOR is not set"
    );
    // The same text either way.
    assert_eq!(text(&plain), text(&coloured));
    insta::assert_snapshot!(text(&plain));
}

#[test]
fn the_diff_is_coloured() {
    let (fx, engine) = two_bottles();
    let app = fx.app(&engine);
    let buf = screen(&app, 80, 24, COLOR);
    let row = (0..24)
        .find(|&y| {
            (0..80)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .contains("+RUN")
        })
        .expect("an added line");
    let x = (0..80)
        .find(|&x| buf[(x, row)].symbol() == "+")
        .expect("its +");
    assert_eq!(buf[(x, row)].fg, Color::Green);
}

fn assert_no_controls(buf: &Buffer) {
    for cell in buf.content() {
        assert!(
            !cell.symbol().chars().any(char::is_control),
            "a raw control on the screen: {cell:?}"
        );
    }
}

#[test]
fn the_agents_control_characters_never_reach_the_screen() {
    let fx = Fixture::new();
    let mut p = crate::testing::proposal("1764270000-3f2a9c01", "myapp", rg(), NOW - 10);
    p.reason = "clear\u{1b}[2J\u{9b}31m the \u{202e}screen\u{7}\r\nnext".into();
    p.evidence = vec!["\u{1b}]0;owned\u{7}".into()];
    fx.file("myapp", &p);
    let app = fx.app(&Ok(vec![]));
    let buf = screen(&app, 80, 40, COLOR);
    assert_no_controls(&buf);
    let t = text(&buf);
    assert!(t.contains(r"\x1b[2J"), "{t}");
    assert!(!t.contains('\u{202e}'), "{t}");
}

#[test]
fn help_lists_every_key() {
    let (fx, engine) = two_bottles();
    let mut app = fx.app(&engine);
    app.key(key('?'));
    insta::assert_snapshot!(text(&screen(&app, 80, 24, COLOR)));
}

#[test]
fn rejecting_types_the_reason_on_the_bottom_line() {
    let (fx, engine) = two_bottles();
    let mut app = fx.app(&engine);
    app.key(key('r'));
    for c in "use the vendored copy".chars() {
        app.key(key(c));
    }
    let t = text(&screen(&app, 80, 24, COLOR));
    assert!(
        t.lines()
            .last()
            .is_some_and(|l| l == "reject 1764270000-3f2a9c01, reason: use the vendored copy"),
        "{t}"
    );
}

#[test]
fn editing_shows_the_packages_in_place() {
    let (fx, engine) = two_bottles();
    let mut app = fx.app(&engine);
    app.key(key('e'));
    let t = text(&screen(&app, 80, 24, COLOR));
    assert_eq!(
        t.lines().last(),
        Some("approve 1764270000-3f2a9c01 as: ripgrep jq"),
        "{t}"
    );
}

#[test]
fn stopping_asks_first() {
    let (fx, engine) = two_bottles();
    let mut app = fx.app(&engine);
    app.key(key('s'));
    insta::assert_snapshot!(
        text(&screen(&app, 80, 24, COLOR))
            .lines()
            .last()
            .unwrap_or_default()
    );
}

#[test]
fn the_audit_log_is_a_scrollable_view() {
    let (fx, engine) = two_bottles();
    let mut app = fx.app(&engine);
    let mut lines: Vec<String> = (0..40)
        .map(|i| format!("{} proposal 1764270000-{i:08}", NOW + i))
        .collect();
    lines[2] = format!(
        "{} decision 1764270000-00000002 {{\"by\":\"alice\",\"decision\":\"reject\",\"reason\":\"{}\"}}",
        NOW + 2,
        "a reason long enough to wrap ".repeat(3)
    );
    app.open_log("myapp".into(), lines);
    app.key(KeyEvent::new(KeyCode::Home, KeyModifiers::NONE));
    app.key(key('j'));
    insta::assert_snapshot!(text(&screen(&app, 80, 24, COLOR)));
}

#[test]
fn the_readme_and_docs_show_a_real_render() {
    let (fx, engine) = two_bottles();
    let app = fx.app(&engine);
    let shown = text(&screen(&app, 80, 24, COLOR)).replace("/tmp/.tmpXXXXXX", "~/.claude-bottle");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for doc in ["README.md", "docs/queue.md"] {
        let text = std::fs::read_to_string(root.join(doc)).expect("doc");
        assert!(
            text.contains(&shown),
            "{doc} does not show the dashboard as it draws now; paste:\n{shown}"
        );
    }
}
