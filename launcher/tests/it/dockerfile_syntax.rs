//! The Dockerfile model approvals are appended by (`state::dockerfile::syntax`) against the
//! engine's own parser: each text is built through the launcher's build path (bollard, the
//! classic builder) from `FROM scratch` with metadata steps only, so it needs no base image and
//! runs nothing; the engine's step count and the image's config show how it read the text.

use claude_bottle::backend::docker::build_image;
use claude_bottle::image::raw_recipe;
use claude_bottle::state::dockerfile::{self, syntax};
use claude_bottle_protocol::{Capability, ProposalId};

/// The engine, or `None` (a skip) when there is none and this is not CI.
async fn engine() -> Option<bollard::Docker> {
    let found = match bollard::Docker::connect_with_defaults() {
        Ok(d) => d.negotiate_version().await.ok(),
        Err(_) => None,
    };
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Docker engine reachable, and CI is set: this test must run"
        );
        eprintln!("skipped: no Docker engine reachable");
    }
    found
}

/// Removes the images a test built, also when it fails.
struct Images(bollard::Docker, Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        let (docker, tags) = (self.0.clone(), std::mem::take(&mut self.1));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                for tag in tags {
                    let _ = docker
                        .remove_image(
                            &tag,
                            None::<bollard::query_parameters::RemoveImageOptions>,
                            None,
                        )
                        .await;
                }
            });
        })
        .join();
    }
}

/// What the engine made of `text`: its step count, the image's user and env.
async fn built(
    docker: &bollard::Docker,
    images: &mut Images,
    text: &str,
) -> (usize, String, Vec<String>) {
    let tag = format!(
        "claude-bottle-it/syntax:{}-{}",
        std::process::id(),
        images.1.len()
    );
    images.1.push(tag.clone());
    let recipe = raw_recipe(tag.clone(), text.to_owned()).expect("recipe");
    let report = build_image(docker, &recipe)
        .await
        .unwrap_or_else(|e| panic!("{text:?} does not build: {e}"));
    let config = docker
        .inspect_image(&tag)
        .await
        .expect("inspect")
        .config
        .expect("config");
    (
        report.steps,
        config.user.unwrap_or_default(),
        config.env.unwrap_or_default(),
    )
}

fn cap(line: &str) -> Capability {
    Capability {
        apt: Vec::new(),
        dockerfile_lines: vec![line.to_owned()],
    }
}

#[tokio::test]
async fn the_engine_reads_escape_directives_and_continuations_as_the_model_does() {
    let Some(docker) = engine().await else {
        return;
    };
    let mut images = Images(docker.clone(), Vec::new());
    let id = ProposalId::new("p").expect("id");

    // What the launcher appended before the escape directive counted: the approved line ends
    // in a backtick, and the engine joins the restoring USER to it. The image ends as root.
    let base = "# escape=`\nFROM scratch\nUSER 1001\n";
    let swallowed =
        format!("{base}# claude-bottle: approved proposal p\nUSER root\nENV A `\nUSER 1001\n");
    let (steps, user, env) = built(&docker, &mut images, &swallowed).await;
    assert_eq!(steps, syntax::instructions(&swallowed).len());
    assert_eq!((steps, user.as_str()), (4, "root"));
    assert!(env.contains(&"A=USER 1001".to_owned()), "{env:?}");
    // Now refused.
    assert!(dockerfile::with_capability(base, &id, &cap("ENV A `")).is_err());

    for (text, steps, a) in [
        // Spaces, case, the other form, a byte-order mark, another directive first; comment
        // and blank lines inside a continuation are skipped.
        (
            "#Escape = `\nFROM scratch\nENV A `\n  # c\n\nB\nLABEL x=y\n",
            3,
            "A=B",
        ),
        ("\u{feff}# escape=`\nFROM scratch\nENV A `\nB\n", 2, "A=B"),
        (
            "# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch\nENV A `\nB\n",
            2,
            "A=B",
        ),
        // Not at the top: a backtick is a backtick.
        (
            "FROM scratch\n# escape=`\nENV A 1 `\nLABEL x=y\n",
            3,
            "A=1 `",
        ),
        (
            "\n# escape=`\nFROM scratch\nENV A 1 `\nLABEL x=y\n",
            3,
            "A=1 `",
        ),
        // A doubled escape character is an escaped one: the instruction ends there.
        ("FROM scratch\nENV A a\\\\\nLABEL x=y\n", 3, "A=a\\"),
    ] {
        let (got, _, env) = built(&docker, &mut images, text).await;
        assert_eq!(got, steps, "{text:?}");
        assert_eq!(syntax::instructions(text).len(), steps, "{text:?}");
        assert!(env.contains(&a.to_owned()), "{text:?}: {env:?}");
    }

    // `# check=` is a directive to newer parsers only; Docker 20.10 stops there and keeps `\`.
    // The model follows the newer reading; either way, both characters are refused at the end
    // of an approved line.
    let text = "# check=skip=all\n# escape=`\nFROM scratch\nENV A `\nLABEL x=y\n";
    let (got, _, env) = built(&docker, &mut images, text).await;
    eprintln!("engine behaviour, `# check=` before `# escape=`: {got} steps, env {env:?}");
    assert!(got == 2 || got == 3, "{got}");
    for line in ["ENV B `", "ENV B \\"] {
        assert!(dockerfile::with_capability(text, &id, &cap(line)).is_err());
    }
}
