//! A real terminal for the end-to-end tests: a detached tmux session (Debian's tmux) running one
//! command, read with `capture-pane`, typed into with `send-keys`, and killed when dropped, however
//! the test ends.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One tmux session; dropping it kills the session and what runs in it.
#[derive(Debug)]
pub struct Tmux {
    session: String,
}

fn tmux(args: &[&str]) -> Output {
    Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux (Debian's tmux) gives the end-to-end tests a terminal")
}

/// `s` quoted for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Tmux {
    /// Run `cmd` (its program, arguments and the environment it sets) in a new `cols`×`rows`
    /// session named `session`, its stderr to `stderr`: tmux does not pass its caller's
    /// environment on, so `cmd`'s is given on the command line through `env`.
    pub fn start(session: &str, cols: u16, rows: u16, cmd: &Command, stderr: &Path) -> Self {
        let env = cmd
            .get_envs()
            .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v?.to_str()?)));
        let words: Vec<String> = env
            .chain(std::iter::once(
                cmd.get_program().to_string_lossy().into_owned(),
            ))
            .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
            .map(|w| shell_quote(&w))
            .collect();
        let inner = format!(
            "env {} 2>{}",
            words.join(" "),
            shell_quote(&stderr.to_string_lossy())
        );
        let (cols, rows) = (cols.to_string(), rows.to_string());
        let started = tmux(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            &cols,
            "-y",
            &rows,
            &inner,
        ]);
        assert!(started.status.success(), "tmux new-session: {started:?}");
        Self {
            session: session.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.session
    }

    /// What the terminal shows now.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &self.session]).stdout)
            .into_owned()
    }

    /// Press each key (tmux key names: `Enter`, `Tab`, `C-c`, `a`…).
    pub fn press(&self, keys: &[&str]) {
        for key in keys {
            let out = tmux(&["send-keys", "-t", &self.session, key]);
            assert!(out.status.success(), "send-keys {key}: {out:?}");
        }
    }

    /// Type `text` literally.
    pub fn type_text(&self, text: &str) {
        let out = tmux(&["send-keys", "-t", &self.session, "-l", text]);
        assert!(out.status.success(), "send-keys -l: {out:?}");
    }

    /// Whether a BEL reached the session's window (nobody looks at it, so tmux never clears it).
    pub fn bell_rang(&self) -> bool {
        let out = tmux(&[
            "display-message",
            "-p",
            "-t",
            &self.session,
            "#{window_bell_flag}",
        ]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Whether the session still exists (its command has not ended).
    pub fn alive(&self) -> bool {
        tmux(&["has-session", "-t", &self.session]).status.success()
    }

    /// Waits until the screen satisfies `ok`, at most `secs` seconds; the screen that did.
    pub async fn wait_screen(&self, secs: u64, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "{what} never showed:\n{s}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", &self.session]);
    }
}
