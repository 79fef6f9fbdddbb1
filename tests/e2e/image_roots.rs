//! The image's trust bundle is read out of the image bounded: an image (which approved steps shape)
//! cannot make the launcher read an unbounded file, and a symlinked bundle is followed inside it.

use claude_bottle_e2e::{TestBottle, assert_clean, docker};

/// A bottle that allows one host (so the egress chain and its trust bundle are built) on an image
/// made by `steps` (run as root) over the test agent image.
fn bottle_with_steps(tag: &str, steps: &str) -> TestBottle {
    let bottle = TestBottle::new(
        tag,
        "egress_proxy:\n  routes:\n    - host: example.com\n",
        &["/bin/sh", "-c", "echo AGENT-RAN"],
    );
    std::fs::write(
        bottle.path().join("bottles/Dockerfile"),
        format!("FROM claude-bottle/test-agent:bookworm\nUSER root\n{steps}\nUSER agent\n"),
    )
    .expect("Dockerfile");
    bottle
}

#[tokio::test]
async fn an_oversized_trust_bundle_in_the_image_is_refused() {
    let Some(d) = docker().await else { return };
    let bottle = bottle_with_steps(
        "bigroots",
        "RUN truncate -s 64M /etc/ssl/certs/ca-certificates.crt",
    );
    let out = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for want in [
        "failed to read /etc/ssl/certs/ca-certificates.crt out of image",
        "it is 67108864 bytes, more than the 4194304 a trust bundle may be",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains("AGENT-RAN"));
    assert_clean(&d, &bottle.slug()).await;
}

#[tokio::test]
async fn a_symlinked_trust_bundle_is_followed_inside_the_image() {
    let Some(d) = docker().await else { return };
    let bottle = bottle_with_steps(
        "linkroots",
        "RUN mkdir -p /opt/roots \
         && { cat /etc/ssl/certs/ca-certificates.crt; echo '# e2e-marker-roots'; } > /opt/roots/bundle.pem \
         && ln -sf ../../../opt/roots/bundle.pem /etc/ssl/certs/ca-certificates.crt",
    );
    let out = bottle
        .command(&["start", "--yes", &bottle.name])
        .output()
        .expect("start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let bundle = bottle
        .path()
        .join("state")
        .join(bottle.slug())
        .join("run/net/ca-bundle.pem");
    let bundle = std::fs::read_to_string(&bundle).expect("the agent's trust bundle");
    assert!(
        bundle.contains("# e2e-marker-roots"),
        "the image's roots were not followed through the symlink"
    );
    assert_clean(&d, &bottle.slug()).await;
}
