//! What the operator reads while a bottle runs: one type, so every line is escaped and framed the
//! same way.
//!
//! While the agent holds the operator's terminal in raw mode, a bare `\n` only moves down a line;
//! the console frames its lines with `\r\n` then. Everything it prints may quote the agent (an id,
//! a host, a failed build's output): it goes through [`escape_line`] first.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use claude_bottle_protocol::escape_line;

/// How the operator's terminal is set while the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// Output is a stream of lines (no TTY, or before the agent is attached).
    Lines,
    /// The agent holds the terminal in raw mode.
    Raw,
}

#[derive(Debug, Clone)]
enum Sink {
    Stderr,
    /// Kept in memory, for tests.
    Captured(Arc<Mutex<Vec<u8>>>),
}

/// The launcher's lines on the operator's terminal.
#[derive(Debug, Clone)]
pub struct Console {
    sink: Sink,
    terminal: Terminal,
}

impl Console {
    /// Lines on standard error.
    pub fn stderr() -> Self {
        Self {
            sink: Sink::Stderr,
            terminal: Terminal::Lines,
        }
    }

    /// Lines kept in memory; the second value reads them.
    pub fn captured() -> (Self, Captured) {
        let buf = Arc::default();
        (
            Self {
                sink: Sink::Captured(Arc::clone(&buf)),
                terminal: Terminal::Lines,
            },
            Captured(buf),
        )
    }

    /// The console as it must write while the agent runs with (or without) the terminal.
    pub fn with_terminal(&self, terminal: Terminal) -> Self {
        Self {
            sink: self.sink.clone(),
            terminal,
        }
    }

    /// One line, `claude-bottle: ` first; `text` is escaped, so it may quote the agent.
    pub fn note(&self, text: &str) {
        let line = format!("claude-bottle: {}", escape_line(text));
        self.write(&line);
    }

    /// A block of lines the launcher wrote itself (a report with its hints); only control
    /// characters are escaped, line breaks are kept.
    pub fn block(&self, text: &str) {
        let escaped: Vec<_> = text.lines().map(escape_line).collect();
        self.write(&escaped.join(self.newline()));
    }

    fn newline(&self) -> &'static str {
        match self.terminal {
            Terminal::Lines => "\n",
            Terminal::Raw => "\r\n",
        }
    }

    fn write(&self, text: &str) {
        let framed = match self.terminal {
            Terminal::Lines => format!("{text}\n"),
            // The agent's own output may have left the cursor mid-line.
            Terminal::Raw => format!("\r\n{text}\r\n"),
        };
        match &self.sink {
            Sink::Stderr => {
                let _ = std::io::stderr().write_all(framed.as_bytes());
            }
            Sink::Captured(buf) => {
                if let Ok(mut b) = buf.lock() {
                    b.extend_from_slice(framed.as_bytes());
                }
            }
        }
    }
}

/// What a captured console received.
#[derive(Debug, Clone)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_lines_are_framed_and_agent_text_is_escaped() {
        let (console, seen) = Console::captured();
        console.note("plain");
        console
            .with_terminal(Terminal::Raw)
            .note("egress to evil\u{1b}[2J.example approved");
        assert_eq!(
            seen.text(),
            "claude-bottle: plain\n\r\nclaude-bottle: egress to evil\\x1b[2J.example approved\r\n"
        );
    }

    #[test]
    fn a_block_keeps_its_lines_and_escapes_each() {
        let (console, seen) = Console::captured();
        console
            .with_terminal(Terminal::Raw)
            .block("failed\n  hint: \u{7}run it");
        assert_eq!(seen.text(), "\r\nfailed\r\n  hint: \\x07run it\r\n");
    }
}
