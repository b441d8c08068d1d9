//! The NFS server, its exports, and dynamic NFS volumes in Kubernetes.
//!
//! hakube's storage layer is one NFS server VM with one export per StorageClass (the seed:
//! `/srv/nfs/k8s-prod` behind `nfs-prod`, `/srv/nfs/k8s-nonprod` behind `nfs-nonprod`), plus
//! plain exports backing no StorageClass ([`PlainExport`], e.g. `/srv/nfs/etcd-backup` for etcd
//! snapshots, exported to the control-plane nodes only). This crate turns its own small input
//! model ([`NfsInput`]) into:
//!
//! - the server side as a host plan ([`NfsSetup::server_host_plan`]): `nfs-kernel-server`, the
//!   export directories with owner and mode, the exports file ([`server::EXPORTS_FILE`]) and
//!   `exportfs -ra` when it changed; verified with a parsed `exportfs -v`;
//! - the cluster side as k8s-openapi objects: per export a provisioner Deployment, a shared
//!   ServiceAccount and ClusterRole, and the StorageClasses ([`NfsSetup::cluster_objects`]), or
//!   only StorageClasses for csi-driver-nfs; rendered as YAML for `cluster/nfs/` of the plan tree
//!   ([`NfsSetup::cluster_files`]);
//! - backup of the exports on a systemd timer with verified, dated snapshots, a restore command,
//!   and static PersistentVolumes to re-attach old claims to a rebuilt cluster
//!   ([`NfsSetup::backup_host_plan`], [`NfsSetup::restore_command`],
//!   [`NfsSetup::static_volumes`]; the procedure is in [`backup`]);
//! - the GitOps files with their `kustomization.yaml`: [`NfsSetup::gitops_files`].
//!
//! Everything above is pure: no I/O, no tokio. The effects live at the edges:
//! [`apply::apply`] (kube-rs server-side apply with a dry-run pass first, then a bounded wait for
//! the Deployments), the host-plan executor in hakube-remote (the server side), and with feature
//! `remote`, `remote::verify_exports` / `remote::restore` over SSH.
//!
//! This library enables no k8s-openapi version feature: the final binary (or a dev-dependency)
//! picks one, e.g. `k8s-openapi = { version = "0.29", features = ["latest"] }`.
//!
//! ```
//! use hakube_nfs_provisioning::{NfsInput, NfsServer, NfsSetup, ServerAddress, exports::HostName};
//!
//! let server = NfsServer {
//!     name: HostName::new("nfs1")?,
//!     address: ServerAddress::Ip("10.20.0.50".parse().expect("ip")),
//! };
//! let setup = NfsSetup::new(NfsInput::seed(server, "10.20.0.0/24".parse().expect("cidr"))?)?;
//! let exports = setup.exports_file().to_string();
//! assert!(exports.contains("/srv/nfs/k8s-prod 10.20.0.0/24(rw,sync,no_subtree_check,root_squash)"));
//!
//! // The server as a host plan, the cluster objects as GitOps files (paths relative to `cluster/`).
//! assert!(setup.server_host_plan().file_content("/etc/exports.d/hakube.exports").is_some());
//! let files = setup.gitops_files()?;
//! assert!(files.iter().any(|f| f.path == "nfs/20-storageclass-nfs-prod.yaml"));
//! # Ok::<(), hakube_nfs_provisioning::Error>(())
//! ```

#[cfg(feature = "apply")]
pub mod apply;
pub mod backup;
pub mod cluster;
mod error;
pub mod exports;
mod model;
#[cfg(feature = "remote")]
pub mod remote;
pub mod server;
mod tree;

pub use error::{Error, Result};
/// A file of the GitOps tree (from `hakube-host-state`), what [`NfsSetup::gitops_files`] returns.
pub use hakube_host_state::ClusterFile;
pub use model::{
    Backend, ClusterOptions, DataPolicy, DirectoryOwner, ExportSpec, K8sName, MountOption, NOBODY,
    NfsInput, NfsServer, NfsSetup, PlainExport, SUBDIR_PROVISIONER_IMAGE, ServerAddress,
};
