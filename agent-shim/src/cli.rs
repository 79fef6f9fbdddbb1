//! The agent-facing verbs: `request`, `status`, `config`, `report`; each prints for people
//! (or JSON with `--json`) and maps the outcome to an exit code.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use claude_bottle_protocol::wire::{ProposalStatus, WaitUntil};
use claude_bottle_protocol::{
    Capability, Egress, HostName, ProposalId, ProposalKind, ProposalState, ProtocolError,
};

use crate::ops::{OpError, Target};

/// Exit code: the proposal was rejected or applying it failed.
pub const EXIT_REJECTED: u8 = 2;
/// Exit code: still undecided when `--wait` ran out.
pub const EXIT_TIMED_OUT: u8 = 3;

/// Parses `HOST` or `HOST:PORT`.
pub fn parse_egress(s: &str) -> Result<Egress, ProtocolError> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => {
            let port = p.parse::<u16>().map_err(|_| {
                ProtocolError::invalid("port", format!("{p:?} is not a port number"))
            })?;
            (h, Some(port))
        }
        None => (s, None),
    };
    Ok(Egress {
        host: HostName::new(host)?,
        port,
    })
}

/// `request capability|egress … [--wait]`.
pub async fn request(
    target: &Target,
    kind: ProposalKind,
    reason: String,
    evidence: Vec<String>,
    wait: Option<Duration>,
    json: bool,
) -> Result<ExitCode, OpError> {
    kind.validate().map_err(|e| OpError::Refused {
        action: "file the proposal",
        code: claude_bottle_protocol::wire::ErrorCode::BadRequest,
        message: e.to_string(),
    })?;
    let filed = target.submit(kind, reason, evidence).await?;
    let Some(timeout) = wait else {
        if json {
            println!(
                "{}",
                serde_json::json!({"id": filed.id, "duplicate": filed.duplicate})
            );
        } else if filed.duplicate {
            println!("{} (already pending; the operator has it)", filed.id);
        } else {
            println!("{} filed; the operator will decide", filed.id);
        }
        return Ok(ExitCode::SUCCESS);
    };
    if !json {
        eprintln!("{} filed; waiting for the operator…", filed.id);
    }
    let waited = target.wait(&filed.id, timeout, WaitUntil::Final).await?;
    print_statuses(std::slice::from_ref(&waited.status), json, true);
    Ok(exit_for(&waited.status, waited.timed_out))
}

/// The exit code that tells a script how a proposal ended.
pub fn exit_for(status: &ProposalStatus, timed_out: bool) -> ExitCode {
    match status.state {
        ProposalState::Rejected | ProposalState::Failed => ExitCode::from(EXIT_REJECTED),
        _ if timed_out => ExitCode::from(EXIT_TIMED_OUT),
        _ => ExitCode::SUCCESS,
    }
}

/// `status [ID]`.
pub async fn status(
    target: &Target,
    id: Option<ProposalId>,
    json: bool,
) -> Result<ExitCode, OpError> {
    let detailed = id.is_some();
    let list = target.status(id).await?;
    print_statuses(&list, json, detailed);
    Ok(ExitCode::SUCCESS)
}

/// `config`.
pub async fn config(target: &Target, json: bool) -> Result<ExitCode, OpError> {
    let files = target.current_config().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&files).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if files.is_empty() {
        println!("(no current-config files are staged)");
    }
    for f in files {
        println!("==> {} <==", f.name);
        print!("{}", f.content);
        if !f.content.ends_with('\n') {
            println!();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `report command-not-found CMD`: files an apt proposal named after the command, quietly and
/// quickly, because it runs from the shell's `command_not_found_handle`.
pub async fn report_command_not_found(target: &Target, cmd: &str) -> ExitCode {
    let kind = ProposalKind::Capability(Capability {
        apt: vec![cmd.to_owned()],
        dockerfile_lines: vec![],
    });
    if kind.validate().is_err() {
        // Not a package-like name (a typo, a path): nothing sensible to ask for.
        return ExitCode::SUCCESS;
    }
    let reason = format!("the agent ran `{cmd}`, which is not installed in the bottle");
    let evidence = vec![format!("{cmd}: command not found")];
    let filed = tokio::time::timeout(
        Duration::from_secs(3),
        target.submit(kind, reason, evidence),
    )
    .await;
    match filed {
        Ok(Ok(f)) => {
            eprintln!(
                "claude-bottle: `{cmd}` is not installed; proposal {} asks the operator for it (see `claude-bottle-shim status {}`)",
                f.id, f.id
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("claude-bottle: could not report `{cmd}`: {e}");
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::FAILURE,
    }
}

fn print_statuses(list: &[ProposalStatus], json: bool, detailed: bool) {
    if json {
        let v = if detailed && list.len() == 1 {
            serde_json::to_string_pretty(&list[0])
        } else {
            serde_json::to_string_pretty(list)
        };
        println!("{}", v.unwrap_or_default());
        return;
    }
    if list.is_empty() {
        println!("(no proposals)");
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for s in list {
        let p = &s.proposal;
        println!(
            "{}  {:<8}  {:>5}  {}",
            p.id,
            s.state.to_string(),
            age(now.saturating_sub(p.created)),
            p.kind.summary()
        );
        if !detailed {
            continue;
        }
        println!("  reason: {}", p.reason);
        if let Some(d) = &s.decision {
            let by = d.by.as_deref().unwrap_or("operator");
            println!("  decision: {:?} by {by}: {}", d.decision, d.reason);
            if let Some(edit) = &d.edit {
                println!("  approved instead: {}", edit.summary());
            }
        }
        if let Some(a) = &s.applied {
            println!("  applied: {:?}: {}", a.outcome, a.detail);
        }
    }
}

fn age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_argument() {
        let e = parse_egress("Packages.Example.org:443").expect("valid");
        assert_eq!(
            (e.host.as_str(), e.port),
            ("packages.example.org", Some(443))
        );
        assert_eq!(
            parse_egress("packages.example.org").expect("valid").port,
            None
        );
        for bad in [
            "packages.example.org:http",
            "a/b",
            ":80",
            "packages.example.org:99999",
        ] {
            assert!(parse_egress(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ages() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(125), "2m");
        assert_eq!(age(7300), "2h");
        assert_eq!(age(200_000), "2d");
    }
}
