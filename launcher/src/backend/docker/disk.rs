//! The agent's disk bound on this engine: its storage driver read from the engine's info, the
//! decision of [`crate::backend::disk`], and a never-started container where only the engine can
//! say whether the `size` option is taken.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::CreateContainerOptions;

use super::containers::remove;
use super::{DockerBackend, engine_err, with_role};
use crate::backend::BackendError;
use crate::backend::disk::{self, DiskPlan};
use crate::config::DiskLimit;
use crate::plan::BottlePlan;

impl DockerBackend {
    /// What this launch does about the agent's disk use, decided before anything is built: an
    /// explicit bound the driver cannot give stops here; a default one that it cannot give is
    /// the one warning line on stderr.
    pub(super) async fn disk_plan(&self, plan: &BottlePlan) -> Result<DiskPlan, BackendError> {
        if plan.limits.disk == DiskLimit::Unbounded {
            return Ok(DiskPlan::Unbounded { warning: None });
        }
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| engine_err("query", "engine info", e))?;
        let driver = info.driver.unwrap_or_default();
        let backing = info
            .driver_status
            .unwrap_or_default()
            .into_iter()
            .find_map(|kv| match kv.as_slice() {
                [k, v] if k == "Backing Filesystem" => Some(v.clone()),
                _ => None,
            });
        let decided = disk::decide(
            plan.limits.disk,
            &disk::driver_support(&driver, backing.as_deref()),
        );
        tracing::debug!(driver, backing = ?backing, plan = ?decided, "agent disk");
        self.settled_or_refused(plan, decided)
    }

    /// The `size` the agent is created with, once `image` exists: a [`DiskPlan::Try`] asks the
    /// engine with a container that is never started.
    pub(super) async fn agent_disk(
        &self,
        plan: &BottlePlan,
        decided: DiskPlan,
        image: &str,
    ) -> Result<Option<u64>, BackendError> {
        match decided {
            DiskPlan::Bound(bytes) => Ok(Some(bytes)),
            DiskPlan::Try { bytes, fallback } => {
                if self.takes_size(plan, image, bytes).await? {
                    Ok(Some(bytes))
                } else {
                    match self.settled_or_refused(plan, *fallback)? {
                        DiskPlan::Bound(b) => Ok(Some(b)),
                        _ => Ok(None),
                    }
                }
            }
            DiskPlan::Unbounded { .. } | DiskPlan::Refuse { .. } => Ok(None),
        }
    }

    /// `decided`, with its warning printed, or the refusal as an error.
    fn settled_or_refused(
        &self,
        plan: &BottlePlan,
        decided: DiskPlan,
    ) -> Result<DiskPlan, BackendError> {
        match decided {
            DiskPlan::Refuse { why } => Err(BackendError::DiskUnbounded {
                slug: plan.slug.clone(),
                limit: match plan.limits.disk {
                    DiskLimit::Bytes { bytes, .. } => human(bytes),
                    DiskLimit::Unbounded => "none".into(),
                },
                why,
            }),
            DiskPlan::Unbounded {
                warning: Some(warning),
            } => {
                eprintln!("claude-bottle: {warning}");
                Ok(DiskPlan::Unbounded { warning: None })
            }
            other => Ok(other),
        }
    }

    /// Whether the engine creates a container of `image` with `size=bytes`.
    async fn takes_size(
        &self,
        plan: &BottlePlan,
        image: &str,
        bytes: u64,
    ) -> Result<bool, BackendError> {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            labels: Some(with_role(&plan.base_labels(), "probe")),
            entrypoint: Some(vec!["/nonexistent".into()]),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                storage_opt: Some(HashMap::from([("size".to_string(), bytes.to_string())])),
                ..Default::default()
            }),
            ..Default::default()
        };
        match self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
        {
            Ok(created) => {
                let _ = remove(&self.docker, &created.id).await;
                Ok(true)
            }
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if disk::refuses_size(&message) =>
            {
                tracing::debug!(message, "the engine refuses a size limit");
                Ok(false)
            }
            Err(e) => Err(engine_err("create a probe container of", image, e)),
        }
    }
}

/// `20 GiB`, `512 MiB`.
fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b => format!("{b} bytes"),
    }
}
