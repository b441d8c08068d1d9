//! Everything this crate renders, as files of hakube's plan tree (`out/`).

use crate::cluster::CLUSTER_DIR;
use crate::error::Result;
use crate::model::NfsSetup;

/// A file of the plan tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFile {
    /// Path relative to the plan tree's root: `cluster/nfs/<file>`.
    pub path: String,
    /// Full contents.
    pub contents: String,
    /// Mode the file gets on its host (`0o644` for manifests).
    pub mode: u32,
}

impl NfsSetup {
    /// The cluster manifests under `cluster/nfs/...` (the server side is a host plan:
    /// [`NfsSetup::server_host_plan`]).
    ///
    /// # Errors
    /// [`crate::Error::Yaml`] if a manifest cannot be serialised (a bug).
    pub fn plan_files(&self) -> Result<Vec<PlanFile>> {
        let mut out = Vec::new();
        for f in self
            .cluster_files()?
            .into_iter()
            .chain(self.kustomization()?)
        {
            out.push(PlanFile {
                path: format!("{CLUSTER_DIR}/{}", f.name),
                contents: f.contents,
                mode: 0o644,
            });
        }
        Ok(out)
    }
}
