//! Image recipes and container contracts of the egress chain: egress-proxy, pipelock stand-in, test internet.
//!
//! All three are built `FROM` the configured base image (`ARG BASE_IMAGE`) with Debian's packages, and
//! are shared by every bottle (`claude-bottle/<slug>:<hash>`, no bottle label). The constants below are
//! the contract each image's entrypoint honours; the Dockerfile headers say the same.

use std::collections::BTreeMap;

use crate::image::{BASE_IMAGE_ARG, ContextBuilder, ImageError, ImageRecipe, labels};

const EGRESS_PROXY_DOCKERFILE: &str = include_str!("../../../docker/egress-proxy/Dockerfile");
const EGRESS_PROXY_ADDON: &str = include_str!("../../../docker/egress-proxy/addon.py");
const EGRESS_PROXY_START: &str = include_str!("../../../docker/egress-proxy/start.sh");
const EGRESS_PROXY_DLP: &str = include_str!("../../../docker/egress-proxy/dlp.py");
const STANDIN_DOCKERFILE: &str = include_str!("../../../docker/pipelock-standin/Dockerfile");
const STANDIN_ADDON: &str = include_str!("../../../docker/pipelock-standin/standin.py");
const STANDIN_START: &str = include_str!("../../../docker/pipelock-standin/start.sh");
const TEST_INTERNET_DOCKERFILE: &str = include_str!("../../../docker/test-internet/Dockerfile");
const TEST_INTERNET_SERVER: &str = include_str!("../../../docker/test-internet/server.py");

/// egress-proxy: the upstream proxy URL (`http://pipelock:8888`); required.
pub const EGRESS_PROXY_UPSTREAM_ENV: &str = "EGRESS_PROXY_UPSTREAM";
/// egress-proxy: listen port on all interfaces (default [`EGRESS_PROXY_PORT`]).
pub const EGRESS_PROXY_PORT_ENV: &str = "EGRESS_PROXY_PORT";
pub const EGRESS_PROXY_PORT: u16 = 8080;
/// egress-proxy: read-only mount holding `mitmproxy-ca.pem`, `routes.json`, `upstream-ca.pem`.
pub const EGRESS_PROXY_CONFIG_DIR: &str = "/etc/claude-bottle/egress-proxy";
/// egress-proxy: the routes file's name in [`EGRESS_PROXY_CONFIG_DIR`].
pub const EGRESS_PROXY_ROUTES_FILE: &str = "routes.json";
/// egress-proxy: PEM bundle its outbound leg trusts besides the public roots (pipelock's CA).
pub const EGRESS_PROXY_UPSTREAM_CA_FILE: &str = "upstream-ca.pem";
/// egress-proxy: the stderr line printed once the addon has loaded its routes.
pub const EGRESS_PROXY_READY_LINE: &str = "egress-proxy: ready";

/// pipelock stand-in: the config file (default `/etc/pipelock/pipelock.yaml`).
pub const STANDIN_CONFIG_ENV: &str = "PIPELOCK_CONFIG";
/// pipelock stand-in: listen port (default 8888, as pipelock).
pub const STANDIN_PORT_ENV: &str = "PIPELOCK_PORT";
/// pipelock stand-in: optional PEM bundle its upstream leg trusts besides the public roots.
pub const STANDIN_EXTRA_CA_ENV: &str = "STANDIN_EXTRA_CA";
/// pipelock stand-in: printed once listening.
pub const STANDIN_READY_LINE: &str = "pipelock-standin: ready";
/// pipelock stand-in: printed after every (re)load of the config, with the host count.
pub const STANDIN_LOADED_LINE: &str = "pipelock-standin: loaded";

/// test internet: certificate and key (default `/etc/test-internet/cert.pem`, `key.pem`).
pub const TEST_INTERNET_CERT_ENV: &str = "TEST_INTERNET_CERT";
pub const TEST_INTERNET_KEY_ENV: &str = "TEST_INTERNET_KEY";
/// test internet: the folder the default cert and key paths are in.
pub const TEST_INTERNET_CERT_DIR: &str = "/etc/test-internet";
/// test internet: ports (`TEST_INTERNET_HTTPS_PORT` default 443, `TEST_INTERNET_HTTP_PORT` default
/// 80, 0 turns plain HTTP off).
pub const TEST_INTERNET_HTTPS_PORT_ENV: &str = "TEST_INTERNET_HTTPS_PORT";
pub const TEST_INTERNET_HTTP_PORT_ENV: &str = "TEST_INTERNET_HTTP_PORT";
/// test internet: printed once both ports listen.
pub const TEST_INTERNET_READY_LINE: &str = "test-internet: ready";

/// The egress-proxy image (mitmdump + the credential-injecting addon) over `base_image`.
pub fn egress_proxy(base_image: &str) -> Result<ImageRecipe, ImageError> {
    let mut context = ContextBuilder::new();
    context
        .file("addon.py", 0o644, EGRESS_PROXY_ADDON)
        .file("dlp.py", 0o644, EGRESS_PROXY_DLP)
        .file("start.sh", 0o755, EGRESS_PROXY_START);
    recipe(
        "sidecar-egress-proxy",
        EGRESS_PROXY_DOCKERFILE,
        context,
        base_image,
    )
}

/// The pipelock STAND-IN image (tests only; mitmdump enforcing the generated allowlist).
pub fn pipelock_standin(base_image: &str) -> Result<ImageRecipe, ImageError> {
    let mut context = ContextBuilder::new();
    context
        .file("standin.py", 0o644, STANDIN_ADDON)
        .file("start.sh", 0o755, STANDIN_START)
        .file("dlp.py", 0o644, EGRESS_PROXY_DLP)
        .file("dlp-patterns.json", 0o644, super::dlp::PATTERNS_JSON);
    recipe(
        "test-pipelock-standin",
        STANDIN_DOCKERFILE,
        context,
        base_image,
    )
}

/// The test internet image (tests only; an HTTPS echo server for many host names).
pub fn test_internet(base_image: &str) -> Result<ImageRecipe, ImageError> {
    let mut context = ContextBuilder::new();
    context.file("server.py", 0o644, TEST_INTERNET_SERVER);
    recipe(
        "test-internet",
        TEST_INTERNET_DOCKERFILE,
        context,
        base_image,
    )
}

fn recipe(
    slug: &str,
    dockerfile: &str,
    context: ContextBuilder,
    base_image: &str,
) -> Result<ImageRecipe, ImageError> {
    if base_image.is_empty()
        || base_image
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ImageError::InvalidReference {
            reference: base_image.to_owned(),
        });
    }
    let build_args = BTreeMap::from([(BASE_IMAGE_ARG.to_owned(), base_image.to_owned())]);
    ImageRecipe::new(
        slug,
        dockerfile.to_owned(),
        context,
        labels(None, slug),
        build_args,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_carry_their_files_and_base() {
        for (recipe, files) in [
            (
                egress_proxy("claude-bottle/base:bookworm"),
                &["addon.py", "dlp.py", "start.sh"][..],
            ),
            (
                pipelock_standin("claude-bottle/base:bookworm"),
                &["standin.py", "start.sh", "dlp.py", "dlp-patterns.json"],
            ),
            (test_internet("claude-bottle/base:bookworm"), &["server.py"]),
        ] {
            let recipe = recipe.expect("recipe");
            assert_eq!(
                recipe.build_args[BASE_IMAGE_ARG],
                "claude-bottle/base:bookworm"
            );
            assert!(recipe.dockerfile.contains("FROM ${BASE_IMAGE}"));
            let mut archive = tar::Archive::new(recipe.context.as_slice());
            let names: Vec<String> = archive
                .entries()
                .expect("tar")
                .map(|e| {
                    e.expect("entry")
                        .path()
                        .expect("path")
                        .display()
                        .to_string()
                })
                .collect();
            for f in files {
                assert!(names.iter().any(|n| n == f), "{f} in {names:?}");
            }
            assert!(!recipe.labels.contains_key(crate::image::LABEL_BOTTLE));
        }
    }

    #[test]
    fn tags_follow_the_base_and_refuse_bad_references() {
        let a = egress_proxy("debian:bookworm-slim").expect("a");
        let b = egress_proxy("claude-bottle/base:bookworm").expect("b");
        assert!(a.tag.starts_with("claude-bottle/sidecar-egress-proxy:"));
        assert_ne!(a.tag, b.tag);
        assert!(matches!(
            test_internet("two words"),
            Err(ImageError::InvalidReference { .. })
        ));
    }

    #[test]
    fn the_standin_says_what_it_is() {
        assert!(STANDIN_DOCKERFILE.starts_with("# pipelock STAND-IN"));
        assert!(STANDIN_DOCKERFILE.contains("NOT for production"));
    }
}
