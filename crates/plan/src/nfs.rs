//! The NFS server (`/etc/exports.d`, directories) and the cluster side (`cluster/nfs/`).
//!
//! Every export backs one StorageClass, except the etcd backup's (`backup.etcd.export`): a
//! plain export, root-writable by the control-plane nodes only (a snapshot holds every Secret).

use std::net::IpAddr;

use hakube_nfs_provisioning::backup::BackupOptions;
use hakube_nfs_provisioning::exports::{Client, ExportPath, HostName};
use hakube_nfs_provisioning::{
    ClusterOptions, DataPolicy, ExportSpec, K8sName, NfsInput, NfsServer, NfsSetup, PlainExport,
    ServerAddress,
};
use hakube_topology::{Cluster, ReclaimPolicy, RoleKind, Vm};

use crate::{Error, PlanTree};

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Component {
        component: "nfs",
        source: e.into(),
    }
}

/// Where etcd snapshots go: the NFS VM and the export path, when `backup.etcd` is set (topology
/// validation guarantees the export exists then).
pub(crate) fn etcd_backup_target(cluster: &Cluster) -> Option<(&Vm, &str)> {
    let t = &cluster.topology;
    let backup = t.backup.as_ref()?.etcd.as_ref()?;
    let vm = cluster.vms_with_role(RoleKind::Nfs).next()?;
    let export = t
        .nfs
        .as_ref()?
        .exports
        .iter()
        .find(|e| e.path.trim_end_matches('/') == backup.export.trim_end_matches('/'))?;
    Some((vm, export.path.trim_end_matches('/')))
}

/// The NFS crate's model of the cluster's NFS server (exports, StorageClasses), from the
/// topology; `None` without an NFS server. Executors use it to verify the live exports.
///
/// # Errors
/// [`Error::Component`] when the NFS crate refuses the topology's exports.
pub fn setup(cluster: &Cluster) -> Result<Option<NfsSetup>, Error> {
    let t = &cluster.topology;
    let (Some(nfs), Some(vm)) = (&t.nfs, cluster.vms_with_role(RoleKind::Nfs).next()) else {
        return Ok(None);
    };
    let mut exports = Vec::new();
    let mut default_class = None;
    for sc in &t.storage_classes {
        let Some(export) = nfs
            .exports
            .iter()
            .find(|e| e.path.trim_end_matches('/') == sc.export.trim_end_matches('/'))
        else {
            continue; // topology validation guarantees the export exists
        };
        let mut spec = ExportSpec::new(
            ExportPath::new(&export.path).map_err(err)?,
            K8sName::new(&sc.name).map_err(err)?,
        )
        .with_policy(match sc.reclaim_policy {
            ReclaimPolicy::Retain => DataPolicy::Retain,
            ReclaimPolicy::Delete => DataPolicy::Delete,
        });
        spec.clients = export
            .clients
            .iter()
            .map(|c| Client::Network((*c).into()))
            .collect();
        if sc.default {
            default_class = Some(K8sName::new(&sc.name).map_err(err)?);
        }
        exports.push(spec);
    }
    let mut plain_exports = Vec::new();
    if let Some((_, path)) = etcd_backup_target(cluster) {
        let masters = cluster
            .vms_with_role(RoleKind::ControlPlane)
            .map(|m| Client::Network(IpAddr::V4(m.address).into()))
            .collect();
        plain_exports.push(PlainExport::root_writer(
            ExportPath::new(path).map_err(err)?,
            masters,
        ));
    }
    let input = NfsInput {
        server: NfsServer {
            name: HostName::new(&vm.name).map_err(err)?,
            address: ServerAddress::Ip(vm.address.into()),
        },
        node_network: t.network.cidr.into(),
        exports,
        plain_exports,
        cluster: ClusterOptions {
            default_class,
            ..ClusterOptions::default()
        },
    };
    NfsSetup::new(input).map(Some).map_err(err)
}

/// The provisioner's place in the add-ons' install order: its manifests under `cluster/nfs/`
/// in apply order and its Deployments; `None` without StorageClasses to provision.
pub(crate) fn provisioner(cluster: &Cluster) -> Option<hakube_addons::ProvisionerInput> {
    let setup = setup(cluster).ok()??;
    let dir = hakube_nfs_provisioning::cluster::CLUSTER_DIR;
    let rel = dir.strip_prefix("cluster/").unwrap_or(dir);
    let objects = setup.cluster_objects();
    if objects.is_empty() {
        return None;
    }
    let files = objects
        .iter()
        .map(|o| format!("{rel}/{}", o.file_name()))
        .collect();
    let deployments = objects
        .iter()
        .filter(|o| o.kind() == "Deployment")
        .map(|o| {
            (
                o.metadata().namespace.clone().unwrap_or_default(),
                o.name().to_owned(),
            )
        })
        .collect();
    Some(hakube_addons::ProvisionerInput {
        dir: rel.to_owned(),
        files,
        deployments,
    })
}

/// The NFS export backup's settings (`backup.nfs`: target, retention, schedule), as the NFS
/// VM's backup host plan uses them; `None` without `backup.nfs`. Executors use it to find the
/// snapshots and restore one.
///
/// # Errors
/// [`Error::Component`] when the target is not a usable path.
pub fn backup_options(cluster: &Cluster) -> Result<Option<BackupOptions>, Error> {
    let Some(b) = cluster
        .topology
        .backup
        .as_ref()
        .and_then(|b| b.nfs.as_ref())
    else {
        return Ok(None);
    };
    Ok(Some(BackupOptions {
        schedule: b.schedule.clone(),
        ..BackupOptions::new(ExportPath::new(&b.target).map_err(err)?, b.keep.into())
    }))
}

pub(crate) fn render(cluster: &Cluster, tree: &mut PlanTree) -> Result<(), Error> {
    let Some(setup) = setup(cluster)? else {
        return Ok(());
    };
    tree.host_items(setup.server_host_plan())?;
    if let Some(options) = backup_options(cluster)? {
        tree.host_items(setup.backup_host_plan(&options).map_err(err)?)?;
    }
    for f in setup.gitops_files().map_err(err)? {
        tree.insert(format!("cluster/{}", f.path), f.contents, 0o644)?;
    }
    Ok(())
}
