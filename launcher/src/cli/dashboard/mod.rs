//! `claude-bottle dashboard`: every bottle and every pending proposal on one live screen, each
//! decided with one key.
//!
//! `model` is the state and what each key does (pure); `render` draws it (pure, drawn on ratatui's
//! `TestBackend` by the tests); `gather` reads the queues, the audit log and the engine's answer
//! the way `queue --json`, `show` and `list --json` read them, and carries out approvals and
//! rejections through the verbs' own functions; `live` is the terminal loop over file watches,
//! the engine's events, keys and signals.

mod gather;
mod input;
mod live;
mod model;
mod render;

#[cfg(test)]
mod fixture;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use crate::home::Home;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(home: &Home, _args: Args) -> Result<ExitCode, super::Error> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(super::Error::usage(
            "the dashboard needs a terminal",
            "for scripts, use `claude-bottle queue --json` and `claude-bottle show ID --json`",
        ));
    }
    let config = super::load_config(home)?;
    Ok(exit_code(live::run(home, config)?))
}

/// 0 when the operator quit; 128 + the signal's number when a signal ended it (143 for SIGTERM), as
/// a shell reports a process a signal ended.
fn exit_code(ended: live::Ended) -> ExitCode {
    match ended {
        live::Ended::Quit => ExitCode::SUCCESS,
        live::Ended::Signal(number) => ExitCode::from(u8::try_from(128 + number).unwrap_or(255)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_ends_it_with_128_plus_its_number_and_quitting_with_0() {
        assert_eq!(exit_code(live::Ended::Quit), ExitCode::SUCCESS);
        assert_eq!(exit_code(live::Ended::Signal(15)), ExitCode::from(143));
        assert_eq!(exit_code(live::Ended::Signal(2)), ExitCode::from(130));
        assert_eq!(exit_code(live::Ended::Signal(1)), ExitCode::from(129));
    }
}
