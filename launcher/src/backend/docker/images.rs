//! Image builds through the Engine's build API, with the steps streamed to a progress display.

use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal as _;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
use claude_bottle_protocol::{escape, escape_line};
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::{BackendError, BuildReport};
use crate::image::{DOCKERFILE_IN_CONTEXT, ImageRecipe};

/// How many build output lines a failure shows.
const TAIL_LINES: usize = 20;

/// True when an image with this tag exists locally.
pub async fn exists(docker: &Docker, tag: &str) -> Result<bool, BackendError> {
    match docker.inspect_image(tag).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(BackendError::Engine {
            action: "inspect image",
            object: tag.to_string(),
            detail: e.to_string(),
        }),
    }
}

/// Build `recipe` unless its tag exists. Steps show on a spinner on a terminal, as plain lines
/// otherwise; a failure carries the last lines of the build output.
pub async fn ensure(docker: &Docker, recipe: &ImageRecipe) -> Result<BuildReport, BackendError> {
    if exists(docker, &recipe.tag).await? {
        tracing::debug!(tag = %recipe.tag, "image cached");
        return Ok(BuildReport::cached(&recipe.tag));
    }
    build(docker, recipe).await
}

/// Build `recipe` unconditionally (the engine's layer cache still applies).
pub async fn build(docker: &Docker, recipe: &ImageRecipe) -> Result<BuildReport, BackendError> {
    build_with(docker, recipe, Progress::new(&recipe.tag)).await
}

/// [`build`] without a word on stderr: for builds in the background, while the operator's
/// terminal belongs to the agent.
pub async fn build_quiet(
    docker: &Docker,
    recipe: &ImageRecipe,
) -> Result<BuildReport, BackendError> {
    build_with(docker, recipe, Progress::quiet(&recipe.tag)).await
}

async fn build_with(
    docker: &Docker,
    recipe: &ImageRecipe,
    progress: Progress,
) -> Result<BuildReport, BackendError> {
    let options = build_options(recipe);
    let body = bollard::body_full(recipe.context.clone().into());
    let mut stream = docker.build_image(options, None, Some(body));
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut report = BuildReport {
        tag: recipe.tag.clone(),
        built: true,
        steps: 0,
        cached_steps: 0,
    };
    let mut failure: Option<String> = None;
    let started = std::time::Instant::now();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    failure = Some(detail);
                }
                if let Some(text) = info.stream {
                    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                        // A build step prints what it likes (an approved RUN line, a package's
                        // scripts): escaped before it reaches a log, the progress or the tail.
                        let escaped = escape_line(line);
                        let line = escaped.as_ref();
                        tracing::debug!(ms = started.elapsed().as_millis(), line, "build output");
                        if line.starts_with("Step ") {
                            report.steps += 1;
                            progress.step(line);
                        } else if line.contains("Using cache") {
                            report.cached_steps += 1;
                        }
                        if tail.len() == TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line.to_string());
                    }
                }
            }
            Err(e) => {
                failure = Some(match e {
                    bollard::errors::Error::DockerStreamError { error } => error,
                    other => other.to_string(),
                });
                break;
            }
        }
    }
    progress.finish(failure.is_none(), &report);
    if let Some(reason) = failure {
        let lines: Vec<String> = tail.into_iter().collect();
        return Err(BackendError::Build {
            tag: recipe.tag.clone(),
            detail: format!(
                "{}\n--- last build output ---\n{}",
                escape(&reason),
                lines.join("\n")
            ),
        });
    }
    Ok(report)
}

/// The build request's options. The builder is named, never left to the engine: the classic
/// builder (API `version=1`), whatever `DOCKER_BUILDKIT` or the daemon's `features.buildkit`
/// say, since those choose for the docker CLI, not for an API client. Its output is what the
/// progress display reads (`Step n/m`, `Using cache`), it needs no BuildKit session (bollard
/// would need one), and an approved line is then read by the same builder on every engine.
fn build_options(recipe: &ImageRecipe) -> BuildImageOptions {
    BuildImageOptions {
        dockerfile: DOCKERFILE_IN_CONTEXT.to_string(),
        t: Some(recipe.tag.clone()),
        rm: true,
        forcerm: true,
        buildargs: Some(
            recipe
                .build_args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ),
        // The labels are a LABEL line of the recipe's Dockerfile (one step, not one per label).
        labels: None,
        version: BuilderVersion::BuilderV1,
        ..Default::default()
    }
}

/// Build steps on a spinner (terminal), as plain stderr lines (logs, CI), or not at all (a build
/// in the background, while the operator's terminal belongs to the agent).
struct Progress {
    tag: String,
    shown: Shown,
}

enum Shown {
    Spinner(ProgressBar),
    Lines,
    Quiet,
}

impl Progress {
    fn new(tag: &str) -> Self {
        let shown = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} building {prefix} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(tag.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            Shown::Spinner(bar)
        } else {
            eprintln!("building {tag}");
            Shown::Lines
        };
        Self {
            tag: tag.to_string(),
            shown,
        }
    }

    fn quiet(tag: &str) -> Self {
        Self {
            tag: tag.to_string(),
            shown: Shown::Quiet,
        }
    }

    fn step(&self, line: &str) {
        match &self.shown {
            Shown::Spinner(bar) => bar.set_message(line.to_string()),
            Shown::Lines => eprintln!("  {line}"),
            Shown::Quiet => {}
        }
    }

    fn finish(&self, ok: bool, report: &BuildReport) {
        match &self.shown {
            Shown::Quiet => return,
            Shown::Spinner(bar) => bar.finish_and_clear(),
            Shown::Lines => {}
        }
        if ok {
            eprintln!(
                "built {} ({} steps, {} cached)",
                self.tag, report.steps, report.cached_steps
            );
        } else {
            eprintln!("failed to build {}", self.tag);
        }
    }
}

/// Make sure `image` (a reference such as pipelock's pinned tag) is on the engine: pull it when
/// missing. Built images never come here; only the third-party ones a bottle runs as is.
pub async fn ensure_pulled(docker: &Docker, image: &str, what: &str) -> Result<(), BackendError> {
    if exists(docker, image).await? {
        return Ok(());
    }
    eprintln!("claude-bottle: pulling {what} image {image}");
    let options = bollard::query_parameters::CreateImageOptions {
        from_image: Some(image.to_string()),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(options), None, None);
    while let Some(step) = stream.next().await {
        if let Err(e) = step {
            let detail = match e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => message,
                other => other.to_string(),
            };
            return Err(BackendError::Pull {
                what: what.to_string(),
                image: image.to_string(),
                detail,
            });
        }
    }
    if exists(docker, image).await? {
        Ok(())
    } else {
        Err(BackendError::Pull {
            what: what.to_string(),
            image: image.to_string(),
            detail: "the pull finished but the image is not on the engine".into(),
        })
    }
}

impl super::DockerBackend {
    /// The engine's image store, for `prune` ([`store`]).
    pub async fn image_store(&self) -> Result<Vec<crate::prune::Image>, BackendError> {
        store(&self.docker).await
    }

    /// Remove one image reference, never by force ([`remove`]).
    pub async fn remove_image(&self, reference: &str) -> Result<(), BackendError> {
        remove(&self.docker, reference).await
    }
}

/// Every image of the engine's store, intermediate build images too, with its parent, tags,
/// bottle label and size, and whether a container (running or stopped) was created from it: what
/// `prune` decides on.
async fn store(docker: &Docker) -> Result<Vec<crate::prune::Image>, BackendError> {
    let (images, containers) = tokio::join!(
        docker.list_images(Some(bollard::query_parameters::ListImagesOptions {
            all: true,
            ..Default::default()
        })),
        docker.list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            ..Default::default()
        })),
    );
    let engine_err = |action, e: bollard::errors::Error| BackendError::Engine {
        action,
        object: "the engine".into(),
        detail: e.to_string(),
    };
    let used: std::collections::HashSet<String> = containers
        .map_err(|e| engine_err("list containers of", e))?
        .into_iter()
        .filter_map(|c| c.image_id)
        .collect();
    Ok(images
        .map_err(|e| engine_err("list images of", e))?
        .into_iter()
        .map(|i| crate::prune::Image {
            in_use: used.contains(&i.id),
            parent: Some(i.parent_id).filter(|p| !p.is_empty()),
            tags: i
                .repo_tags
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            bottle: i.labels.get(crate::plan::LABEL_BOTTLE).cloned(),
            size: u64::try_from(i.size).unwrap_or(0),
            id: i.id,
        })
        .collect())
}

/// Remove `reference` (a tag, or an id), never by force: the engine refuses an image a container
/// uses, and one that others are built on only loses the tag. Untagged parents left without a
/// child go with it.
async fn remove(docker: &Docker, reference: &str) -> Result<(), BackendError> {
    let options = bollard::query_parameters::RemoveImageOptions {
        force: false,
        noprune: false,
        ..Default::default()
    };
    docker
        .remove_image(reference, Some(options), None)
        .await
        .map(|_| ())
        .map_err(|e| BackendError::Engine {
            action: "remove image",
            object: reference.to_string(),
            detail: match e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => message,
                other => other.to_string(),
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_names_the_classic_builder_whatever_the_engine_defaults_to() {
        let recipe = ImageRecipe {
            tag: "claude-bottle/t:0".into(),
            dockerfile: "FROM scratch\n".into(),
            context: Vec::new(),
            labels: Default::default(),
            build_args: [("BASE_IMAGE".to_string(), "debian".to_string())].into(),
        };
        let options = build_options(&recipe);
        assert_eq!(options.version, BuilderVersion::BuilderV1);
        // As the request carries it: the query parameter `version=1`, never left out.
        let query = serde_json::to_value(&options).expect("options serialize");
        assert_eq!(query["version"], serde_json::json!(1), "{query}");
        assert_eq!(query["t"], serde_json::json!("claude-bottle/t:0"));
        assert_eq!(
            query["dockerfile"],
            serde_json::json!(DOCKERFILE_IN_CONTEXT)
        );
    }
}
