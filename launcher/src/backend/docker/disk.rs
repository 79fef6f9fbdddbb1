//! The agent's disk bound on this engine: a never-started container where only the engine can
//! say whether the `size` option is taken (what to ask is [`crate::prepare`]'s decision).

use std::collections::HashMap;

use bollard::models::HostConfig;
use bollard::query_parameters::CreateContainerOptions;

use super::containers::remove;
use super::probe::probe_body;
use super::{DockerBackend, engine_err};
use crate::backend::BackendError;
use crate::backend::disk;

impl DockerBackend {
    /// Whether the engine creates a container of `image` with `size=bytes`.
    pub(super) async fn takes_size(
        &self,
        image: &str,
        bytes: u64,
        labels: HashMap<String, String>,
    ) -> Result<bool, BackendError> {
        let size = HostConfig {
            storage_opt: Some(HashMap::from([("size".to_string(), bytes.to_string())])),
            ..Default::default()
        };
        let body = probe_body(image, labels, Some(size));
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
