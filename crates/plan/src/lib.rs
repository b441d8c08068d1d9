//! Composes the hakube crates into one plan: every file each VM receives and every cluster
//! object, rendered from one [`Cluster`] (a placed topology).
//!
//! The plan is a file tree: `hosts/<vm>/<absolute path on that VM>` and
//! `cluster/<component>/...`, plus `plan.json` (the placed topology, machine-readable, with the
//! [`PlanOptions`] it was rendered with) and drawings of it for people (`diagrams/`, see
//! [`diagram`]). One picture serves review (`diff -r`), dry runs, tests and the real run.
//!
//! Rendering is pure ([`render`] returns a [`PlanTree`] in memory); [`PlanTree::write_to`] is
//! the only effect, and it replaces the output directory as a whole, so an error never leaves a
//! half-written plan.
//!
//! ```
//! let text = include_str!("../../../examples/seed-cluster.yaml");
//! let cluster = hakube_topology::load(text, "seed-cluster.yaml")?;
//! let tree = hakube_plan::render(&cluster, &hakube_plan::PlanSecrets::generate())?;
//! assert!(tree.get("hosts/lb-1/etc/hosts").is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod addons;
mod base;
pub mod diagram;
mod haproxy;
mod kubeadm;
mod nfs;
mod policy;
mod proxmox;
mod rules;
mod secrets;
mod tree;
mod vault;

pub use addons::KUBEADM_ETCD_IMAGE;
pub use kubeadm::{WORKER_GROUP_LABEL, kubeadm_input};
pub use nfs::{backup_options as nfs_backup_options, setup as nfs_setup};
pub use policy::{IngressOptions, LoggingOptions, MonitoringOptions, PlanOptions, ProxmoxOptions};
pub use proxmox::{vm_specs, vm_specs_with};
pub use secrets::{
    PlanSecrets, SECRETS_DIR, SECRETS_PATH, VAULT_KEYS_PATH, VAULT_SECRETS_DIR, VAULT_TLS_DIR,
};
pub use tree::{
    HOST_PLAN_FILE, PlanFile, PlanTree, STATE_DIR, WriteSummary, read_host_plan, read_host_plans,
};
pub use vault::{
    VaultSetup, snapshot_schedule as vault_snapshot_schedule, vault_setup, vault_setup_with,
};

use hakube_topology::Cluster;

/// Why a plan could not be rendered or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A component refused the cluster (its own validation, or a plan rule). Not retryable:
    /// fix the topology.
    #[error("{component} refused the cluster")]
    Component {
        /// The component (`haproxy`, `kubeadm`, `nfs`, `addons`, `plan rules`, ...).
        component: &'static str,
        /// What it said, with its own causes.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Two components want to write the same file. A bug in hakube; not retryable.
    #[error("two components write {path}")]
    Conflict {
        /// The path inside the plan.
        path: String,
    },
    /// A path that would escape the plan directory. Not retryable.
    #[error("refusing plan path {path}: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The output directory could not be written. Retry after fixing the file system.
    #[error("writing {path}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A host plan is inconsistent (two components want the same file or service, a handler
    /// watches a file no component writes), or a stored one does not read back. Not retryable.
    #[error(transparent)]
    HostPlan(#[from] hakube_host_state::Error),
    /// A [`PlanOptions`] field is unusable. Not retryable: fix the option.
    #[error("plan option {field}: {reason}")]
    BadOption {
        /// The field, e.g. `logging.loki_retention`.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// The output directory exists and is not a previous plan: hakube will not replace it.
    #[error("{path} exists and holds no plan.json: refusing to replace it")]
    NotAPlanDir {
        /// The directory.
        path: std::path::PathBuf,
    },
}

/// Renders every artifact for `cluster` with hakube's policy ([`PlanOptions::default`]); see
/// [`render_with`].
///
/// # Errors
/// As [`render_with`].
pub fn render(cluster: &Cluster, secrets: &PlanSecrets) -> Result<PlanTree, Error> {
    render_with(cluster, secrets, &PlanOptions::default())
}

/// Renders every artifact for `cluster`, choosing by `options` what the topology leaves open
/// (volume sizes, retention, Secret names, the fallback domain; `plan.json` shows them under
/// `"policy"`). The secrets (kubeadm's bootstrap token and
/// certificate key, Grafana's admin password, the Vault VMs' TLS bundle) are an input so that
/// re-planning gives the same tree: keep them with [`PlanSecrets::to_env`] and the tree's
/// [`VAULT_TLS_DIR`] (the plan itself holds them at [`SECRETS_PATH`] and under
/// [`VAULT_TLS_DIR`], keys mode 0600, under [`SECRETS_DIR`], outside the GitOps tree
/// `cluster/`). A Vault TLS bundle that is missing or no longer fits (another VIP, a new Vault
/// VM) is completed here: its CA is kept, only what is missing is issued. The plan is refused
/// when a rule
/// between components breaks (Traefik's nodes and HAProxy's ingress backends, scrape targets
/// and what their targets bind, namespaces before their objects, no secret in `cluster/`).
///
/// # Errors
/// [`Error::BadOption`] for an unusable option, [`Error::Component`] when a component rejects
/// the cluster, [`Error::Conflict`] or [`Error::BadPath`] on a bug.
pub fn render_with(
    cluster: &Cluster,
    secrets: &PlanSecrets,
    options: &PlanOptions,
) -> Result<PlanTree, Error> {
    options.validate()?;
    let mut tree = PlanTree::default();
    base::render(cluster, options, &mut tree)?;
    diagram::render(cluster, &mut tree)?;
    kubeadm::render(cluster, secrets, &mut tree)?;
    haproxy::render(cluster, &mut tree)?;
    nfs::render(cluster, &mut tree)?;
    addons::render(cluster, options, secrets, &mut tree)?;
    let vault_tls = vault::render(cluster, secrets, &mut tree)?;
    tree.seal_host_plans()?;
    rules::no_secret_in_gitops_tree(&tree, secrets, vault_tls.as_ref())?;
    Ok(tree)
}
