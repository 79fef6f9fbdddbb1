//! The tests' own images: the pipelock stand-in and the test internet. The launcher never builds
//! them (they are not part of the product); the end-to-end helpers and benches do, over
//! [`crate::BASE_IMAGE`], with the launcher's recipe for shared images
//! ([`claude_bottle::egress::images::from_base`]), so they are cached by content like every
//! shared image. Each Dockerfile's header states the image's contract (environment, mounts,
//! readiness line); the constants are the parts the helpers use.

use claude_bottle::egress::dlp::PATTERNS_JSON;
use claude_bottle::egress::images::{EGRESS_PROXY_DLP, from_base};
use claude_bottle::image::{ImageError, ImageRecipe};

const STANDIN_DOCKERFILE: &str = include_str!("../../docker/pipelock-standin/Dockerfile");
const STANDIN_ADDON: &str = include_str!("../../docker/pipelock-standin/standin.py");
const STANDIN_START: &str = include_str!("../../docker/pipelock-standin/start.sh");
const TEST_INTERNET_DOCKERFILE: &str = include_str!("../../docker/test-internet/Dockerfile");
const TEST_INTERNET_SERVER: &str = include_str!("../../docker/test-internet/server.py");

/// pipelock stand-in: printed once listening.
pub const STANDIN_READY_LINE: &str = "pipelock-standin: ready";
/// test internet: the folder its certificate and key are mounted at (`cert.pem`, `key.pem`).
pub const TEST_INTERNET_CERT_DIR: &str = "/etc/test-internet";
/// test internet: printed once both ports listen.
pub const TEST_INTERNET_READY_LINE: &str = "test-internet: ready";

/// The pipelock STAND-IN image (mitmdump enforcing the generated allowlist and DLP rules).
pub fn pipelock_standin(base_image: &str) -> Result<ImageRecipe, ImageError> {
    from_base(
        "test-pipelock-standin",
        STANDIN_DOCKERFILE,
        &[
            ("standin.py", 0o644, STANDIN_ADDON),
            ("start.sh", 0o755, STANDIN_START),
            ("dlp.py", 0o644, EGRESS_PROXY_DLP),
            ("dlp-patterns.json", 0o644, PATTERNS_JSON),
        ],
        base_image,
    )
}

/// The test internet image (an HTTPS echo server for many host names).
pub fn test_internet(base_image: &str) -> Result<ImageRecipe, ImageError> {
    from_base(
        "test-internet",
        TEST_INTERNET_DOCKERFILE,
        &[("server.py", 0o644, TEST_INTERNET_SERVER)],
        base_image,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_images_are_built_over_the_base_under_their_own_names() {
        let standin = pipelock_standin(crate::BASE_IMAGE).expect("stand-in");
        let internet = test_internet(crate::BASE_IMAGE).expect("test internet");
        assert!(
            standin
                .tag
                .starts_with("claude-bottle/test-pipelock-standin:")
        );
        assert!(internet.tag.starts_with("claude-bottle/test-internet:"));
        for recipe in [&standin, &internet] {
            assert_eq!(recipe.build_args["BASE_IMAGE"], crate::BASE_IMAGE);
            assert!(recipe.dockerfile.contains("FROM ${BASE_IMAGE}"));
        }
    }

    #[test]
    fn the_standin_says_what_it_is() {
        assert!(STANDIN_DOCKERFILE.starts_with("# pipelock STAND-IN"));
        assert!(STANDIN_DOCKERFILE.contains("NOT for production"));
    }
}
