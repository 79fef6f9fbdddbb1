//! The egress-proxy addon's own test suite (docker/egress-proxy/test_addon.py: credential
//! injection, path scoping, DLP) run inside the egress-proxy image, on the mitmproxy it ships
//! (Debian bookworm's 8.1.1), with Debian's pytest added in a test image.

use std::collections::BTreeMap;
use std::process::Command;

use claude_bottle::image::{ContextBuilder, ImageRecipe};
use claude_bottle_e2e::{BASE_IMAGE, docker};

const TEST_ADDON: &str = include_str!("../../docker/egress-proxy/test_addon.py");

#[tokio::test]
async fn the_addon_suite_passes_on_the_images_own_mitmproxy() {
    let Some(d) = docker().await else { return };
    let proxy = claude_bottle::egress::images::egress_proxy(BASE_IMAGE).expect("recipe");
    claude_bottle::backend::docker::ensure_image(&d, &proxy)
        .await
        .expect("egress-proxy image");
    let dir = "/usr/local/lib/claude-bottle/egress-proxy";
    let dockerfile = format!(
        "FROM {}\nUSER root\nRUN apt-get update && apt-get install -y --no-install-recommends python3-pytest && rm -rf /var/lib/apt/lists/*\nCOPY test_addon.py dlp-patterns.json {dir}/\n",
        proxy.tag
    );
    let mut context = ContextBuilder::new();
    context.file("test_addon.py", 0o644, TEST_ADDON).file(
        "dlp-patterns.json",
        0o644,
        claude_bottle::egress::dlp::PATTERNS_JSON,
    );
    let recipe = ImageRecipe::new(
        "test-egress-proxy-pytest",
        dockerfile,
        context,
        BTreeMap::new(),
        BTreeMap::new(),
    )
    .expect("recipe");
    claude_bottle::backend::docker::ensure_image(&d, &recipe)
        .await
        .expect("pytest image");
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "python3",
        ])
        .arg(&recipe.tag)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", dir])
        .output()
        .expect("docker run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" passed"), "{text}");
    assert!(!text.contains("skipped"), "{text}");
}
