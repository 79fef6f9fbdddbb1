//! `claude-bottle doctor [--json] [--quick]`: check everything a launch relies on, and say how to
//! fix each (docs/doctor.md). Exit 0 when no check fails, 1 otherwise.

use std::process::ExitCode;

use crate::doctor;
use crate::error::Kind;
use crate::home::Home;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON document instead: {"version":1,"checks":[…],"ok":bool} (docs/doctor.md).
    #[arg(long)]
    json: bool,
    /// Skip the probes (internal network, runsc): the checks that create networks and containers.
    #[arg(long)]
    quick: bool,
}

pub fn run(home: &Home, args: Args) -> Result<ExitCode, super::Error> {
    let config = super::load_config(home)?;
    let facts = super::runtime()?.block_on(doctor::gather(home, config, !args.quick));
    let report = doctor::assess(&facts);
    if args.json {
        super::json::print(&report)?;
    } else {
        print!("{}", report.render());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A failed launch for a reason of the host (its set-up, its engine) points at the doctor.
pub fn suggest(e: super::Error) -> super::Error {
    if !matches!(e.kind(), Kind::Environment | Kind::Engine) {
        return e;
    }
    let more = "run `claude-bottle doctor` to check the host";
    let hint = match e.hint() {
        Some(h) => format!("{h}\n  hint: {more}"),
        None => more.to_owned(),
    };
    e.with_hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_failure_suggests_the_doctor_and_keeps_its_own_hint() {
        let e = suggest(
            super::super::Error::new(Kind::Environment, "no runsc").with_hint("install gVisor"),
        );
        assert_eq!(
            e.report(),
            "error: no runsc\n  hint: install gVisor\n  hint: run `claude-bottle doctor` to check the host"
        );
        let e = suggest(super::super::Error::new(Kind::Engine, "engine down"));
        assert_eq!(
            e.hint(),
            Some("run `claude-bottle doctor` to check the host")
        );
    }

    #[test]
    fn a_usage_error_does_not() {
        let e = suggest(super::super::Error::usage("bad manifest", "fix line 3"));
        assert_eq!(e.hint(), Some("fix line 3"));
    }
}
