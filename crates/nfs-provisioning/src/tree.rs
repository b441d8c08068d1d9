//! Everything this crate renders for the GitOps tree, as one list.

use hakube_host_state::ClusterFile;

use crate::error::Result;
use crate::model::NfsSetup;

impl NfsSetup {
    /// The cluster manifests and their `kustomization.yaml`, for `cluster/nfs/` (paths
    /// relative to `cluster/`; the server side is a host plan:
    /// [`NfsSetup::server_host_plan`]).
    ///
    /// # Errors
    /// [`crate::Error::Yaml`] if a manifest cannot be serialised (a bug).
    pub fn gitops_files(&self) -> Result<Vec<ClusterFile>> {
        Ok(self
            .cluster_files()?
            .into_iter()
            .chain(self.kustomization()?)
            .collect())
    }
}
