//! The tests' own images: the pipelock stand-in, the test internet and its git server. The launcher never builds
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
const TEST_GIT_DOCKERFILE: &str = include_str!("../../docker/test-git/Dockerfile");
const TEST_GIT_START: &str = include_str!("../../docker/test-git/start.sh");
const TEST_GIT_SERVER: &str = include_str!("../../docker/test-git/server.py");
const TEST_GIT_SSHD_CONFIG: &str = include_str!("../../docker/test-git/sshd_config");
const TEST_GIT_PRE_RECEIVE: &str = include_str!("../../docker/test-git/pre-receive");
const TEST_GIT_MAKE_BIG: &str = include_str!("../../docker/test-git/make-big.py");

/// pipelock stand-in: printed once listening.
pub const STANDIN_READY_LINE: &str = "pipelock-standin: ready";
/// test internet: the folder its certificate and key are mounted at (`cert.pem`, `key.pem`).
pub const TEST_INTERNET_CERT_DIR: &str = "/etc/test-internet";
/// test internet: printed once both ports listen.
pub const TEST_INTERNET_READY_LINE: &str = "test-internet: ready";

/// test git: the folder its files are mounted at (`cert.pem`, `key.pem`, `ssh_host_ed25519_key`,
/// `authorized_keys`).
pub const TEST_GIT_CERT_DIR: &str = "/etc/test-git";
/// test git: printed once 443 and 22 both listen.
pub const TEST_GIT_READY_LINE: &str = "test-git: ready";
/// test git: the variable holding the password every HTTPS request must send.
pub const TEST_GIT_TOKEN_ENV: &str = "TEST_GIT_TOKEN";
/// test git: where the bare repositories live (the ssh URLs' path; HTTPS serves it as `/`).
pub const TEST_GIT_ROOT: &str = "/srv/git";
/// test git: `test-git-make-big NAME COMMITS BLOB_MB`, run with `docker exec`.
pub const TEST_GIT_MAKE_BIG_COMMAND: &str = "test-git-make-big";

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

/// The test git image (the tests' upstream git server: smart HTTPS and ssh over the same repos).
pub fn test_git(base_image: &str) -> Result<ImageRecipe, ImageError> {
    from_base(
        "test-git",
        TEST_GIT_DOCKERFILE,
        &[
            ("start.sh", 0o755, TEST_GIT_START),
            ("server.py", 0o644, TEST_GIT_SERVER),
            ("sshd_config", 0o644, TEST_GIT_SSHD_CONFIG),
            ("pre-receive", 0o755, TEST_GIT_PRE_RECEIVE),
            ("make-big.py", 0o755, TEST_GIT_MAKE_BIG),
        ],
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
        let git = test_git(crate::BASE_IMAGE).expect("test git");
        assert!(
            standin
                .tag
                .starts_with("claude-bottle/test-pipelock-standin:")
        );
        assert!(internet.tag.starts_with("claude-bottle/test-internet:"));
        assert!(git.tag.starts_with("claude-bottle/test-git:"));
        for recipe in [&standin, &internet, &git] {
            assert_eq!(recipe.build_args["BASE_IMAGE"], crate::BASE_IMAGE);
            assert!(recipe.dockerfile.contains("FROM ${BASE_IMAGE}"));
        }
    }

    #[test]
    fn the_test_git_image_carries_its_scripts_and_states_its_contract() {
        let git = test_git(crate::BASE_IMAGE).expect("test git");
        let mut archive = tar::Archive::new(git.context.as_slice());
        let mut modes: Vec<(String, u32)> = archive
            .entries()
            .expect("tar")
            .map(|e| {
                let e = e.expect("entry");
                let mode = e.header().mode().expect("mode");
                (e.path().expect("path").display().to_string(), mode)
            })
            .filter(|(path, _)| path != claude_bottle::image::DOCKERFILE_IN_CONTEXT)
            .collect();
        modes.sort();
        assert_eq!(
            modes,
            [
                ("make-big.py".to_owned(), 0o755),
                ("pre-receive".to_owned(), 0o755),
                ("server.py".to_owned(), 0o644),
                ("sshd_config".to_owned(), 0o644),
                ("start.sh".to_owned(), 0o755),
            ]
        );
        assert!(TEST_GIT_DOCKERFILE.starts_with("# claude-bottle TEST GIT"));
        for part in [
            TEST_GIT_CERT_DIR,
            TEST_GIT_READY_LINE,
            TEST_GIT_TOKEN_ENV,
            TEST_GIT_ROOT,
            TEST_GIT_MAKE_BIG_COMMAND,
        ] {
            assert!(
                TEST_GIT_DOCKERFILE.contains(part),
                "the Dockerfile's contract does not name {part}"
            );
        }
        assert!(TEST_GIT_SERVER.contains(&format!("\"{TEST_GIT_CERT_DIR}\"")));
        assert!(TEST_GIT_START.contains(TEST_GIT_TOKEN_ENV));
    }

    #[test]
    fn the_standin_says_what_it_is() {
        assert!(STANDIN_DOCKERFILE.starts_with("# pipelock STAND-IN"));
        assert!(STANDIN_DOCKERFILE.contains("NOT for production"));
    }
}
