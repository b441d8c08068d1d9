//! etcd snapshots from a CronJob pinned to the control-plane nodes, written to an off-cluster
//! NFS export, with retention.
//!
//! The pod runs on a master with host networking (etcd listens on 127.0.0.1:2379 there) and
//! reads the etcd client certificate kubeadm generates (`healthcheck-client`) from
//! `/etc/kubernetes/pki/etcd`, read-only. A first init container (kubeadm's own etcd image,
//! no shell needed) saves the snapshot into a per-run partial name; a second one checks what
//! was written with a trial `etcdutl snapshot restore` into an emptyDir (it checks the SHA-256
//! `snapshot save` appends: a truncated or corrupt file fails the job instead of replacing a
//! good backup; `snapshot status` alone accepts a file cut after bolt's meta pages). The main
//! container (busybox) archives `/etc/kubernetes/pki` (the cluster CA and service-account keys:
//! without them a restored etcd is useless, every kubeconfig and token would have to be
//! re-issued), checks the archive reads back, gives both timestamped final names and deletes
//! all but the newest `keep` of each.
//! Masters need the NFS client (`nfs-common`); the export must let root write (`no_root_squash`)
//! and be restricted to the masters: a snapshot holds every Secret of the cluster.

use serde_json::{Value, json};

use crate::model::EtcdBackupInput;
use crate::steps::{Component, InstallStep};
use crate::versions::BUSYBOX_IMAGE;
use crate::{ClusterFile, ComponentOutput, Error, yaml};

/// Manifest path.
pub const CRONJOB_FILE: &str = "etcd-backup/cronjob.yaml";
/// Namespace of the CronJob.
pub const NAMESPACE: &str = "kube-system";
/// Host directory with the cluster's PKI (mounted read-only), archived with every snapshot.
pub const PKI_DIR: &str = "/etc/kubernetes/pki";
/// Host directory with etcd's PKI (inside [`PKI_DIR`]).
pub const ETCD_PKI_DIR: &str = "/etc/kubernetes/pki/etcd";
/// File name prefix of the snapshots on the export.
pub const SNAPSHOT_PREFIX: &str = "etcd-snapshot-";
/// File name prefix of the PKI archives on the export.
pub const PKI_PREFIX: &str = "etcd-pki-";

/// The `batch/v1` `CronJob`.
#[must_use]
pub fn cronjob(b: &EtcdBackupInput) -> Value {
    let keep_from = u32::from(b.keep) + 1;
    let prune = format!(
        "set -eu\n\
         ts=$(date -u +%Y%m%dT%H%M%SZ)\n\
         tar -czf \"/backup/.partial-pki-${{NODE_NAME}}.tar.gz\" -C {PKI_DIR} .\n\
         tar -tzf \"/backup/.partial-pki-${{NODE_NAME}}.tar.gz\" >/dev/null\n\
         mv \"/backup/.partial-${{NODE_NAME}}.db\" \"/backup/{SNAPSHOT_PREFIX}${{ts}}-${{NODE_NAME}}.db\"\n\
         mv \"/backup/.partial-pki-${{NODE_NAME}}.tar.gz\" \"/backup/{PKI_PREFIX}${{ts}}-${{NODE_NAME}}.tar.gz\"\n\
         ls -1 /backup/{SNAPSHOT_PREFIX}*.db | sort -r | tail -n +{keep_from} | xargs -r rm -f --\n\
         ls -1 /backup/{PKI_PREFIX}*.tar.gz | sort -r | tail -n +{keep_from} | xargs -r rm -f --\n\
         ls -l /backup\n"
    );
    let node_env = json!({ "name": "NODE_NAME", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } });
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": { "name": "etcd-backup", "namespace": NAMESPACE },
        "spec": {
            "schedule": b.schedule,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 900,
                    "template": {
                        "metadata": { "labels": { "app.kubernetes.io/name": "etcd-backup" } },
                        "spec": {
                            "restartPolicy": "OnFailure",
                            "hostNetwork": true,
                            "priorityClassName": "system-cluster-critical",
                            "nodeSelector": { "node-role.kubernetes.io/control-plane": "" },
                            "tolerations": [{
                                "key": "node-role.kubernetes.io/control-plane",
                                "operator": "Exists",
                                "effect": "NoSchedule",
                            }],
                            "securityContext": { "runAsUser": 0, "runAsGroup": 0 },
                            "initContainers": [{
                                "name": "snapshot",
                                "image": b.etcd_image,
                                "env": [node_env.clone()],
                                "command": [
                                    "etcdctl",
                                    "--endpoints=https://127.0.0.1:2379",
                                    format!("--cacert={ETCD_PKI_DIR}/ca.crt"),
                                    format!("--cert={ETCD_PKI_DIR}/healthcheck-client.crt"),
                                    format!("--key={ETCD_PKI_DIR}/healthcheck-client.key"),
                                    "snapshot",
                                    "save",
                                    "/backup/.partial-$(NODE_NAME).db",
                                ],
                                "volumeMounts": [
                                    { "name": "pki", "mountPath": PKI_DIR, "readOnly": true },
                                    { "name": "backup", "mountPath": "/backup" },
                                ],
                            }, {
                                "name": "verify",
                                "image": b.etcd_image,
                                "env": [node_env.clone()],
                                // A trial restore: it checks the SHA-256 that `snapshot save`
                                // appends, so a truncated file fails; `snapshot status` alone
                                // accepts a file cut after bolt's meta pages (etcd 3.5).
                                "command": [
                                    "etcdutl",
                                    "snapshot",
                                    "restore",
                                    "/backup/.partial-$(NODE_NAME).db",
                                    "--data-dir=/scratch/restore-check",
                                ],
                                "volumeMounts": [
                                    { "name": "backup", "mountPath": "/backup" },
                                    { "name": "scratch", "mountPath": "/scratch" },
                                ],
                            }],
                            "containers": [{
                                "name": "rotate",
                                "image": BUSYBOX_IMAGE,
                                "env": [node_env],
                                "command": ["/bin/sh", "-c", prune],
                                "volumeMounts": [
                                    { "name": "pki", "mountPath": PKI_DIR, "readOnly": true },
                                    { "name": "backup", "mountPath": "/backup" },
                                ],
                            }],
                            "volumes": [
                                { "name": "scratch", "emptyDir": {} },
                                {
                                    "name": "pki",
                                    "hostPath": { "path": PKI_DIR, "type": "Directory" },
                                },
                                {
                                    "name": "backup",
                                    "nfs": { "server": b.nfs_server.to_string(), "path": b.export_path },
                                },
                            ],
                        },
                    },
                },
            },
        },
    })
}

/// Files and steps for the etcd backup.
pub(crate) fn render(b: &EtcdBackupInput) -> Result<ComponentOutput, Error> {
    Ok(ComponentOutput {
        component: Component::EtcdBackup,
        files: vec![ClusterFile::new(
            CRONJOB_FILE,
            yaml::file(CRONJOB_FILE, &[cronjob(b)])?,
        )],
        helm: vec![],
        resources: vec![CRONJOB_FILE.into()],
        steps: vec![InstallStep::Apply {
            component: Component::EtcdBackup,
            files: vec![CRONJOB_FILE.into()],
        }],
    })
}
