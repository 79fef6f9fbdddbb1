//! `claude-bottle completions <shell>`: print a completion script.

use std::process::ExitCode;

use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

pub fn run(args: Args) -> Result<ExitCode, super::Error> {
    let mut cmd = super::command();
    clap_complete::generate(
        args.shell,
        &mut cmd,
        "claude-bottle",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::SUCCESS)
}
