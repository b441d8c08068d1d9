//! Everything this crate renders, as files of hakube's plan tree (`out/`).

use crate::cluster::CLUSTER_DIR;
use crate::error::Result;
use crate::model::NfsSetup;

/// A file of the plan tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFile {
    /// Path relative to the plan tree's root: `hosts/<vm>/<absolute path on the VM>` for server
    /// files, `cluster/nfs/<file>` for cluster objects.
    pub path: String,
    /// Full contents.
    pub contents: String,
    /// Mode the file gets on its host (`0o644` for manifests).
    pub mode: u32,
}

impl NfsSetup {
    /// The server files under `hosts/<nfs vm>/...` and the cluster manifests under
    /// `cluster/nfs/...`, in that order.
    ///
    /// # Errors
    /// [`crate::Error::Yaml`] if a manifest cannot be serialised (a bug).
    pub fn plan_files(&self) -> Result<Vec<PlanFile>> {
        let host = self.input().server.name.as_str();
        let mut out: Vec<PlanFile> = self
            .server_files()
            .into_iter()
            .map(|f| PlanFile {
                path: format!("hosts/{host}{}", f.path),
                contents: f.contents,
                mode: f.mode,
            })
            .collect();
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
