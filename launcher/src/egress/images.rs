//! The egress-proxy's image recipe and container contract.
//!
//! It is built `FROM` the configured base image (`ARG BASE_IMAGE`) with Debian's packages, and is
//! shared by every bottle (`claude-bottle/<slug>:<hash>`, no bottle label); the tests build their
//! pipelock stand-in and test internet the same way through [`from_base`] (`tests/src/images.rs`).
//! The constants below are the contract the image's entrypoint honours; the Dockerfile header says
//! the same.

use std::collections::BTreeMap;

use crate::image::{
    BASE_IMAGE_ARG, ContextBuilder, ImageError, ImageRecipe, check_reference, labels,
};

const EGRESS_PROXY_DOCKERFILE: &str = include_str!("../../../docker/egress-proxy/Dockerfile");
const EGRESS_PROXY_ADDON: &str = include_str!("../../../docker/egress-proxy/addon.py");
const EGRESS_PROXY_START: &str = include_str!("../../../docker/egress-proxy/start.sh");
/// egress-proxy: its DLP module (the tests' pipelock stand-in scans requests with it too).
pub const EGRESS_PROXY_DLP: &str = include_str!("../../../docker/egress-proxy/dlp.py");

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

/// The egress-proxy image (mitmdump + the credential-injecting addon) over `base_image`.
pub fn egress_proxy(base_image: &str) -> Result<ImageRecipe, ImageError> {
    from_base(
        "sidecar-egress-proxy",
        EGRESS_PROXY_DOCKERFILE,
        &[
            ("addon.py", 0o644, EGRESS_PROXY_ADDON),
            ("dlp.py", 0o644, EGRESS_PROXY_DLP),
            ("start.sh", 0o755, EGRESS_PROXY_START),
        ],
        base_image,
    )
}

/// A shared image `FROM base_image` (passed as `ARG BASE_IMAGE`): its Dockerfile and the files of
/// its build context (path, mode, content), labelled with `slug` as its role and no bottle.
pub fn from_base(
    slug: &str,
    dockerfile: &str,
    files: &[(&str, u32, &str)],
    base_image: &str,
) -> Result<ImageRecipe, ImageError> {
    check_reference(base_image)?;
    let mut context = ContextBuilder::new();
    for (path, mode, content) in files {
        context.file(path, *mode, *content);
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
    fn the_egress_proxy_carries_its_files_and_base() {
        let recipe = egress_proxy("claude-bottle/base:bookworm").expect("recipe");
        assert_eq!(
            recipe.build_args[BASE_IMAGE_ARG],
            "claude-bottle/base:bookworm"
        );
        assert!(recipe.dockerfile.contains("FROM ${BASE_IMAGE}"));
        let mut archive = tar::Archive::new(recipe.context.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .expect("tar")
            .map(|e| {
                let e = e.expect("entry");
                e.path().expect("path").display().to_string()
            })
            .collect();
        names.sort();
        let want = [
            crate::image::DOCKERFILE_IN_CONTEXT,
            "addon.py",
            "dlp.py",
            "start.sh",
        ];
        assert_eq!(names, want);
        assert!(!recipe.labels.contains_key(crate::image::LABEL_BOTTLE));
    }

    #[test]
    fn tags_follow_the_base_and_refuse_bad_references() {
        let a = egress_proxy("debian:bookworm-slim").expect("a");
        let b = egress_proxy("claude-bottle/base:bookworm").expect("b");
        assert!(a.tag.starts_with("claude-bottle/sidecar-egress-proxy:"));
        assert_ne!(a.tag, b.tag);
        assert!(matches!(
            egress_proxy("two words"),
            Err(ImageError::InvalidReference { .. })
        ));
    }
}
