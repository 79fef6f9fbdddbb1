//! An interactive session: under a pseudo-terminal (util-linux `script`) the launcher attaches the
//! operator's terminal in raw mode, forwards keystrokes and the window size, and returns the
//! agent's exit code.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use claude_bottle_e2e::{TestBottle, assert_clean, docker, launcher};

#[tokio::test]
async fn keystrokes_window_size_and_exit_code_cross_the_terminal() {
    let Some(d) = docker().await else { return };
    let bottle = TestBottle::new(
        "tty",
        "",
        &["/bin/sh", "-c", "read x; echo got:$x; stty size; exit 5"],
    );
    let inner = format!(
        "stty rows 33 cols 111; exec {} start --yes {}",
        launcher().display(),
        bottle.name
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .env("CLAUDE_BOTTLE_HOME", bottle.path())
        .env("CLAUDE_BOTTLE_BIN_DIR", claude_bottle_e2e::bin_dir())
        .env(
            claude_bottle::config::ENV_PIPELOCK_IMAGE,
            claude_bottle_e2e::pipelock_image(),
        )
        .env(
            claude_bottle::config::ENV_BASE_IMAGE,
            claude_bottle_e2e::BASE_IMAGE,
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs the launcher under a pty");
    let mut stdin = child.stdin.take().expect("stdin");
    // Type once the agent is up: the launcher reads the terminal only after it attached.
    let agent = format!("{}-agent", bottle.slug());
    for _ in 0..600 {
        if let Ok(c) = d.inspect_container(&agent, None).await
            && c.state.and_then(|s| s.running).unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Enter in a raw terminal is a carriage return.
    stdin.write_all(b"hello\r").expect("type");
    let out = child.wait_with_output().expect("script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("got:hello"),
        "keystrokes reach the agent:\n{stdout}"
    );
    assert!(
        stdout.contains("33 111"),
        "the window size reaches the agent:\n{stdout}"
    );
    drop(stdin);
    assert_clean(&d, &bottle.slug()).await;
}
