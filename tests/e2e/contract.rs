//! The image contract (uid 1000, home `/home/agent`) is checked, not assumed: a bottle whose own
//! Dockerfile breaks it is adapted in the launcher's contract layer, or refused before anything
//! runs. Never an agent with `HOME=/` or a home it cannot write.

use claude_bottle_e2e::{TestBottle, assert_clean, docker, line};

/// What the agent reports about itself: its ids, its home, whether it can write there, and the
/// home its passwd entry names.
const REPORT: &str = r#"
echo "UID $(id -u)"
echo "GID $(id -g)"
echo "GROUPS $(id -G)"
echo "HOME-VAR $HOME"
touch "$HOME/probe" 2>/dev/null && echo "HOME-WRITABLE yes" || echo "HOME-WRITABLE no"
mkdir -p "$HOME/.claude/state" 2>/dev/null && echo "CLAUDE-WRITABLE yes" || echo "CLAUDE-WRITABLE no"
echo "PASSWD-HOME $(getent passwd "$(id -u)" | cut -d: -f6)"
echo "WHOAMI $(whoami 2>/dev/null || echo none)"
"#;

/// A bottle whose own Dockerfile is `dockerfile`, with the reporting agent.
fn bottle(tag: &str, yaml: &str, dockerfile: &str) -> TestBottle {
    let bottle = TestBottle::new(tag, yaml, &["/bin/sh", "-c", REPORT]);
    bottle.add_skill("review", "SKILL.md", "# review\n");
    std::fs::write(bottle.path().join("bottles/Dockerfile"), dockerfile).expect("Dockerfile");
    bottle
}

/// Images that break the contract in the ways a bottle's own Dockerfile (or an approved step)
/// can: no user at all, a user whose home is `/` and a home owned by root, another uid; and an
/// image without `~/.claude` under mounted skills (the engine would make it root's).
const BROKEN: &[(&str, &str, &str)] = &[
    (
        "nouser",
        "",
        "FROM claude-bottle/test-agent:bookworm\nUSER root\nRUN userdel -r agent\n",
    ),
    (
        "roothome",
        "",
        "FROM claude-bottle/test-agent:bookworm\nUSER root\n\
         RUN chown root:root /home/agent && chmod 755 /home/agent && usermod -d / agent\n",
    ),
    (
        "uid1234",
        "",
        "FROM claude-bottle/test-agent:bookworm\nUSER root\n\
         RUN chown -R 1234:1234 /home/agent\nUSER 1234\n",
    ),
    (
        "skills",
        "skills: [review]\n",
        claude_bottle_e2e::TEST_DOCKERFILE,
    ),
];

#[tokio::test]
async fn an_image_that_breaks_the_contract_is_adapted() {
    let Some(d) = docker().await else { return };
    for (tag, yaml, dockerfile) in BROKEN {
        let bottle = bottle(tag, yaml, dockerfile);
        let out = bottle
            .command(&["start", "--yes", &bottle.name])
            .output()
            .expect("start");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{tag}: {stdout}\n{stderr}");
        let report = |key| line(&stdout, key).to_string();
        assert_eq!(report("UID"), "1000", "{tag}: {stdout}");
        assert_eq!(report("GID"), "1000", "{tag}: {stdout}");
        assert_eq!(report("GROUPS"), "1000", "{tag}: no other group: {stdout}");
        assert_eq!(report("HOME-VAR"), "/home/agent", "{tag}: {stdout}");
        assert_eq!(report("HOME-WRITABLE"), "yes", "{tag}: {stdout}");
        assert_eq!(report("CLAUDE-WRITABLE"), "yes", "{tag}: {stdout}");
        assert_eq!(report("PASSWD-HOME"), "/home/agent", "{tag}: {stdout}");
        assert_ne!(report("WHOAMI"), "none", "{tag}: {stdout}");
        assert!(
            stderr.contains("image contract") && stderr.contains("adapted"),
            "{tag}: the operator is told the image was adapted:\n{stderr}"
        );
        assert_clean(&d, &bottle.slug()).await;
    }
}

#[tokio::test]
async fn an_image_that_keeps_the_contract_is_run_as_it_is() {
    let Some(d) = docker().await else { return };
    let bottle = bottle("keeps", "", claude_bottle_e2e::TEST_DOCKERFILE);
    let out = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("start");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(line(&stdout, "UID"), "1000");
    assert_eq!(line(&stdout, "HOME-VAR"), "/home/agent");
    assert_eq!(line(&stdout, "HOME-WRITABLE"), "yes");
    assert_eq!(line(&stdout, "WHOAMI"), "agent");
    assert!(!stderr.contains("adapted"), "nothing to adapt:\n{stderr}");
    assert_clean(&d, &bottle.slug()).await;
}

#[tokio::test]
async fn an_image_whose_passwd_cannot_be_read_is_refused_before_launch() {
    let Some(d) = docker().await else { return };
    // A 2 MB passwd: the launcher reads at most 1 MiB of it, and does not guess.
    let bottle = bottle(
        "hugepasswd",
        "",
        "FROM claude-bottle/test-agent:bookworm\nUSER root\n\
         RUN head -c 2000000 /dev/zero | tr '\\0' x >> /etc/passwd\n",
    );
    let out = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("start");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("image contract") && stderr.contains("/etc/passwd"),
        "the error names what is wrong:\n{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!stdout.contains("UID"), "the agent never ran:\n{stdout}");
    assert_clean(&d, &bottle.slug()).await;
}
