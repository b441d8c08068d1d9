//! The stages of building a cluster, as library code: each binary (`plan`, `provision`,
//! `configure`, `bootstrap`, `addons`) is a thin command line over one of these, and `up`
//! runs them in order.

pub mod addons;
pub mod bootstrap;
pub mod configure;
pub mod plan;
pub mod provision;
pub mod restore_etcd;

/// A stage's failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input (a flag, a file), named.
    #[error("{0}")]
    Input(String),
    /// A step of the stage failed; the source says why.
    #[error("{what}")]
    Stage {
        /// What failed.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The kubeadm flow stopped (its message names the node and step).
    #[error(transparent)]
    Kubeadm(#[from] hakube_kubeadm::Error),
    /// The Proxmox API refused or failed (its message names the server or VM).
    #[error(transparent)]
    Proxmox(#[from] hakube_proxmox_api::Error),
    /// Some hosts or VMs failed (each named with its cause) while the others finished.
    #[error("{} failed: {}", .0.len(), .0.join("; "))]
    Failed(Vec<String>),
}

impl Error {
    /// A failed step with its cause.
    pub fn stage(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Stage {
            what: what.into(),
            source: Box::new(source),
        }
    }
}
