//! Storage for the add-ons: the NFS provisioner in the install order (its objects are rendered
//! by hakube-nfs-provisioning), and node-local volumes for stateful add-ons on clusters without
//! a local-disk provisioner.
//!
//! A node-local volume is a `hostPath` PersistentVolume pinned to one node by node affinity and
//! reserved for one claim by `claimRef`, of the StorageClass [`NODE_LOCAL_CLASS`]
//! (`kubernetes.io/no-provisioner`, `WaitForFirstConsumer`). The claim the chart creates binds to
//! it, and the scheduler places the pod on that node: the data survives pod restarts and
//! rescheduling (Prometheus' TSDB and Loki's chunks are not lost with an emptyDir).

use serde_json::{Value, json};

use crate::model::{AddonsInput, ProvisionerInput, VolumeChoice};
use crate::steps::{Component, InstallStep, WorkloadKind};

/// The StorageClass of node-local volumes (no provisioner: the volumes are rendered).
pub const NODE_LOCAL_CLASS: &str = "hakube-node-local";

/// The `storage.k8s.io/v1` StorageClass of node-local volumes.
#[must_use]
pub fn node_local_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": { "name": NODE_LOCAL_CLASS },
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Retain",
    })
}

/// The PersistentVolume behind `volume` for the claim `namespace/claim`; `None` unless the
/// volume is [`VolumeChoice::HostPath`].
#[must_use]
pub fn node_local_volume(volume: &VolumeChoice, namespace: &str, claim: &str) -> Option<Value> {
    let VolumeChoice::HostPath { node, path, size } = volume else {
        return None;
    };
    Some(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": format!("{namespace}-{claim}"),
            "labels": { "app.kubernetes.io/managed-by": "hakube" },
        },
        "spec": {
            "capacity": { "storage": size },
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": NODE_LOCAL_CLASS,
            "claimRef": { "namespace": namespace, "name": claim },
            "hostPath": { "path": path, "type": "DirectoryOrCreate" },
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [{
                        "matchExpressions": [{
                            "key": "kubernetes.io/hostname",
                            "operator": "In",
                            "values": [node],
                        }],
                    }],
                },
            },
        },
    }))
}

/// The chart values of a persistent volume setting: enabled with a class and size, or off.
pub(crate) fn chart_volume(v: &VolumeChoice) -> Value {
    match v {
        VolumeChoice::StorageClass { name, size } => {
            json!({ "enabled": true, "storageClass": name, "size": size })
        }
        VolumeChoice::HostPath { size, .. } => {
            json!({ "enabled": true, "storageClass": NODE_LOCAL_CLASS, "size": size })
        }
        VolumeChoice::Ephemeral => json!({ "enabled": false }),
    }
}

/// The NFS provisioner's install steps: server-side apply of its manifests (Namespace first),
/// then wait for each provisioner Deployment.
#[must_use]
pub fn provisioner_steps(p: &ProvisionerInput) -> Vec<InstallStep> {
    let mut steps = vec![InstallStep::Apply {
        component: Component::Nfs,
        files: p.files.clone(),
    }];
    for (namespace, name) in &p.deployments {
        steps.push(InstallStep::WaitRollout {
            component: Component::Nfs,
            kind: WorkloadKind::Deployment,
            namespace: namespace.clone(),
            name: name.clone(),
        });
    }
    steps
}

/// The provisioner's component output (no files: they are rendered by the NFS crate).
pub(crate) fn render_provisioner(input: &AddonsInput) -> Option<crate::ComponentOutput> {
    let p = input.storage.provisioner.as_ref()?;
    Some(crate::ComponentOutput {
        component: Component::Nfs,
        files: vec![],
        helm: vec![],
        resources: vec![],
        steps: provisioner_steps(p),
    })
}
