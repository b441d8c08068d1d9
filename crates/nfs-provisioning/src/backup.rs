//! Backup of the exports and the disaster-recovery path back into a rebuilt cluster.
//!
//! # Backup
//! [`NfsSetup::backup_plan`] renders a script for the NFS server ([`BACKUP_SCRIPT`]) and the
//! steps to install and run it. Each run snapshots every export to
//! `<target>/<storage class>/<UTC timestamp>` and keeps the newest `retention` snapshots:
//! - [`BackupMethod::Rsync`]: a directory tree per snapshot, unchanged files hard-linked to the
//!   previous snapshot (`--link-dest`), so every snapshot is complete but costs only the changes;
//! - [`BackupMethod::Tar`]: one `<timestamp>.tar.gz` per snapshot (self-contained, easy to copy
//!   off the server).
//!
//! Owners, modes, ACLs and extended attributes are kept with numeric ids. rsync decides what
//! changed by size and modification time (its quick check), like any incremental rsync backup. The snapshot is taken
//! from the live export: files written during the copy may be caught half-written, so for
//! databases on NFS dump the database first (or quiesce its workload). `target` must not lie
//! inside an export (checked, plain exports included), and should be on another disk or be
//! copied off the VM.
//!
//! Plain exports ([`crate::PlainExport`], e.g. etcd snapshots) are not copied: they hold
//! backups already, kept and pruned by their writer.
//!
//! # Restore (disaster recovery)
//! 1. Rebuild the NFS VM and run the server plan ([`NfsSetup::server_plan`]): package, export
//!    directories, exports file.
//! 2. Restore the data: [`NfsSetup::restore_plan`] copies a chosen snapshot back into each export
//!    (owners and modes kept), then re-exports (`exportfs -ra`) and verifies (`exportfs -v`).
//! 3. Rebuild the cluster and apply the NFS objects ([`crate::apply::apply`]).
//! 4. Re-attach the volumes, either way keeps the data:
//!    - dynamic: re-create each PVC with its old namespace and name in the same StorageClass. The
//!      provisioner's path pattern ([`crate::cluster::volume_dir`]) points at the restored directory,
//!      which it reuses as is (it only creates it when missing);
//!    - static: apply [`NfsSetup::static_volumes`] for the old claims: PersistentVolumes with
//!      `reclaimPolicy: Retain` pointing at the claim's directory in its export, pre-bound to their
//!      claims through `claimRef`, then re-create the PVCs. Nothing is provisioned or deleted, so
//!      this is the safer path for production data.

use core::fmt::Write as _;

use k8s_openapi::api::core::v1::{
    NFSVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::cluster::RenderedFile;
use crate::error::{Error, Result};
use crate::exports::ExportPath;
use crate::model::{K8sName, NfsSetup};
use crate::server::{Command, HostFile, Step, StepKind, shell_quote};

/// Where the backup script is installed on the NFS server.
pub const BACKUP_SCRIPT: &str = "/usr/local/sbin/hakube-nfs-backup";
/// Where the restore script is installed on the NFS server.
pub const RESTORE_SCRIPT: &str = "/usr/local/sbin/hakube-nfs-restore";

/// How snapshots are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackupMethod {
    /// Hard-linked rsync snapshot directories.
    #[default]
    Rsync,
    /// One gzip-compressed tar archive per snapshot.
    Tar,
}

/// Backup settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupOptions {
    /// The directory snapshots go to, e.g. `/var/backups/hakube-nfs` (ideally another disk).
    pub target: ExportPath,
    /// How many snapshots to keep per export (at least 1).
    pub retention: u32,
    /// Rsync tree or tar archive.
    pub method: BackupMethod,
}

impl BackupOptions {
    /// Rsync snapshots under `target`, keeping `retention`.
    #[must_use]
    pub fn new(target: ExportPath, retention: u32) -> Self {
        Self {
            target,
            retention,
            method: BackupMethod::Rsync,
        }
    }
}

/// The backup (or restore) side as data: the script file and the steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPlan {
    /// The script the NFS server receives.
    pub script: HostFile,
    /// Install prerequisites, then run the script (and for a restore re-export and verify).
    pub steps: Vec<Step>,
}

/// A claim of the old cluster to re-attach with a static PersistentVolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingClaim {
    /// The claim's namespace.
    pub namespace: K8sName,
    /// The claim's name.
    pub name: K8sName,
    /// The StorageClass it was provisioned from.
    pub storage_class: K8sName,
    /// Its requested size, e.g. `10Gi` (NFS does not enforce it).
    pub size: String,
}

impl NfsSetup {
    fn check_backup(&self, options: &BackupOptions) -> Result<()> {
        if options.retention == 0 {
            return Err(Error::InvalidValue {
                field: "backup retention",
                value: "0".to_owned(),
                reason: "keep at least one snapshot",
            });
        }
        let input = self.input();
        let paths = input
            .exports
            .iter()
            .map(|e| &e.path)
            .chain(input.plain_exports.iter().map(|e| &e.path));
        for path in paths {
            if path.contains(&options.target) || options.target.contains(path) {
                return Err(Error::OverlappingExports {
                    outer: path.to_string(),
                    inner: options.target.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The backup script and the steps to install and run it once.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a retention of 0, [`Error::OverlappingExports`] when the
    /// target is inside an export or contains one.
    pub fn backup_plan(&self, options: &BackupOptions) -> Result<BackupPlan> {
        self.check_backup(options)?;
        let target = options.target.as_str();
        let mut s = String::from(
            "#!/bin/sh\n# hakube NFS export backup (rendered by hakube-nfs-provisioning).\n\
             # Snapshots every export to <target>/<class>/<UTC timestamp>, keeps the newest N.\n\
             set -eu\numask 077\n",
        );
        let _ = writeln!(s, "TARGET={}", shell_quote(target));
        let _ = writeln!(s, "KEEP={}", options.retention);
        s.push_str("TS=$(date -u +%Y%m%dT%H%M%SZ)\n");
        s.push_str(
            "prune() { # $1: directory; keep the newest $KEEP entries matching $2\n  \
             ls -1 \"$1\" | grep -E \"$2\" | sort -r | tail -n +$((KEEP + 1)) | while read -r old; do\n    \
             rm -rf -- \"$1/$old\"\n  done\n}\n",
        );
        for e in &self.input().exports {
            let class = e.storage_class.as_str();
            let src = shell_quote(e.path.as_str());
            let _ = writeln!(s, "\n# {} -> $TARGET/{class}", e.path);
            let _ = writeln!(
                s,
                "mkdir -p \"$TARGET/{class}\"\nrm -rf -- \"$TARGET/{class}\"/*.partial"
            );
            match options.method {
                BackupMethod::Rsync => {
                    let _ = writeln!(
                        s,
                        "LINK=\nif [ -d \"$TARGET/{class}/latest\" ]; then LINK=\"--link-dest=$TARGET/{class}/latest\"; fi\n\
                         rsync -aHAX --numeric-ids --delete $LINK {src}/ \"$TARGET/{class}/$TS.partial/\"\n\
                         mv \"$TARGET/{class}/$TS.partial\" \"$TARGET/{class}/$TS\"\n\
                         ln -sfn \"$TS\" \"$TARGET/{class}/latest\"\n\
                         prune \"$TARGET/{class}\" '^[0-9]{{8}}T[0-9]{{6}}Z$'"
                    );
                }
                BackupMethod::Tar => {
                    let _ = writeln!(
                        s,
                        "tar --numeric-owner --acls --xattrs -czf \"$TARGET/{class}/$TS.tar.gz.partial\" -C {src} .\n\
                         mv \"$TARGET/{class}/$TS.tar.gz.partial\" \"$TARGET/{class}/$TS.tar.gz\"\n\
                         prune \"$TARGET/{class}\" '^[0-9]{{8}}T[0-9]{{6}}Z\\.tar\\.gz$'"
                    );
                }
            }
            let _ = writeln!(s, "echo \"{class}: $TARGET/{class}/$TS\"");
        }
        let script = HostFile {
            path: BACKUP_SCRIPT.to_owned(),
            contents: s,
            mode: 0o700,
        };
        let package = match options.method {
            BackupMethod::Rsync => "rsync",
            BackupMethod::Tar => "tar",
        };
        let steps = vec![
            Step {
                name: "install-backup-tools",
                description: "install the copy tool",
                files: Vec::new(),
                commands: vec![Command::new([
                    "env",
                    "DEBIAN_FRONTEND=noninteractive",
                    "apt-get",
                    "install",
                    "-y",
                    "--no-install-recommends",
                    package,
                ])],
                kind: StepKind::Change,
            },
            Step {
                name: "write-backup-script",
                description: "install the backup script and its target directory",
                files: vec![script.clone()],
                commands: vec![Command::new(["install", "-d", "-m", "0700", target])],
                kind: StepKind::Change,
            },
            Step {
                name: "run-backup",
                description: "snapshot every export and prune old snapshots",
                files: Vec::new(),
                commands: vec![Command::new([BACKUP_SCRIPT])],
                kind: StepKind::Change,
            },
        ];
        Ok(BackupPlan { script, steps })
    }

    /// The restore script and steps: copy one snapshot (a timestamp, or `latest` for rsync
    /// snapshots) back into every export, keeping owners and modes, then re-export and verify.
    /// Run after the server plan on a rebuilt server.
    ///
    /// # Errors
    /// As [`Self::backup_plan`], plus [`Error::InvalidValue`] for a snapshot name that is not a
    /// timestamp (`YYYYMMDDTHHMMSSZ`) or `latest`.
    pub fn restore_plan(&self, options: &BackupOptions, snapshot: &str) -> Result<BackupPlan> {
        self.check_backup(options)?;
        let is_ts = snapshot.len() == 16
            && snapshot.bytes().enumerate().all(|(i, b)| match i {
                8 => b == b'T',
                15 => b == b'Z',
                _ => b.is_ascii_digit(),
            });
        if !(is_ts || (snapshot == "latest" && options.method == BackupMethod::Rsync)) {
            return Err(Error::InvalidValue {
                field: "snapshot",
                value: snapshot.to_owned(),
                reason: "a timestamp like 20261127T060000Z (or latest for rsync snapshots)",
            });
        }
        let mut s = String::from(
            "#!/bin/sh\n# hakube NFS export restore (rendered by hakube-nfs-provisioning).\nset -eu\n",
        );
        let _ = writeln!(s, "TARGET={}", shell_quote(options.target.as_str()));
        let _ = writeln!(s, "SNAP={snapshot}");
        for e in &self.input().exports {
            let class = e.storage_class.as_str();
            let dst = shell_quote(e.path.as_str());
            let _ = writeln!(s, "\n# $TARGET/{class}/$SNAP -> {}", e.path);
            match options.method {
                BackupMethod::Rsync => {
                    let _ = writeln!(
                        s,
                        "test -d \"$TARGET/{class}/$SNAP\" || {{ echo \"missing snapshot $TARGET/{class}/$SNAP\" >&2; exit 1; }}\n\
                         rsync -aHAX --numeric-ids \"$TARGET/{class}/$SNAP/\" {dst}/"
                    );
                }
                BackupMethod::Tar => {
                    let _ = writeln!(
                        s,
                        "test -f \"$TARGET/{class}/$SNAP.tar.gz\" || {{ echo \"missing snapshot $TARGET/{class}/$SNAP.tar.gz\" >&2; exit 1; }}\n\
                         tar --numeric-owner --acls --xattrs -xzpf \"$TARGET/{class}/$SNAP.tar.gz\" -C {dst}"
                    );
                }
            }
            let _ = writeln!(s, "echo \"{class}: restored $SNAP into {}\"", e.path);
        }
        let script = HostFile {
            path: RESTORE_SCRIPT.to_owned(),
            contents: s,
            mode: 0o700,
        };
        let steps = vec![
            Step {
                name: "write-restore-script",
                description: "install the restore script",
                files: vec![script.clone()],
                commands: Vec::new(),
                kind: StepKind::Change,
            },
            Step {
                name: "restore-data",
                description: "copy the snapshot back into every export",
                files: Vec::new(),
                commands: vec![Command::new([RESTORE_SCRIPT])],
                kind: StepKind::Change,
            },
            Step {
                name: "reexport",
                description: "re-export the restored directories",
                files: Vec::new(),
                commands: vec![Command::new(["exportfs", "-ra"])],
                kind: StepKind::Change,
            },
            Step {
                name: "verify-exports",
                description: "check `exportfs -v` lists every export with the wanted options",
                files: Vec::new(),
                commands: vec![Command::new(["exportfs", "-v"])],
                kind: StepKind::VerifyExports,
            },
        ];
        Ok(BackupPlan { script, steps })
    }

    /// [`Self::static_volumes`] as YAML files (`30-persistentvolume-<name>.yaml`), for
    /// `cluster/nfs/restore/` or `kubectl apply --server-side`.
    ///
    /// # Errors
    /// As [`Self::static_volumes`], plus [`Error::Yaml`] (a bug).
    pub fn static_volume_files(&self, claims: &[ExistingClaim]) -> Result<Vec<RenderedFile>> {
        self.static_volumes(claims)?
            .iter()
            .map(|pv| {
                let name = format!(
                    "30-persistentvolume-{}.yaml",
                    pv.metadata.name.as_deref().unwrap_or_default()
                );
                let contents = serde_saphyr::to_string(pv).map_err(|source| Error::Yaml {
                    file: name.clone(),
                    source,
                })?;
                Ok(RenderedFile { name, contents })
            })
            .collect()
    }

    /// Static PersistentVolumes re-attaching old claims to their restored directories
    /// (`<export>/<namespace>/<claim>`, the provisioner's path pattern), pre-bound with
    /// `claimRef` and `reclaimPolicy: Retain`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a StorageClass that is not one of this setup's, or a size
    /// that is not a plain quantity such as `10Gi`.
    pub fn static_volumes(&self, claims: &[ExistingClaim]) -> Result<Vec<PersistentVolume>> {
        let input = self.input();
        claims
            .iter()
            .map(|c| {
                let export = input
                    .exports
                    .iter()
                    .find(|e| e.storage_class == c.storage_class)
                    .ok_or_else(|| Error::InvalidValue {
                        field: "claim storage class",
                        value: c.storage_class.to_string(),
                        reason: "not a StorageClass of this NFS setup",
                    })?;
                if c.size.is_empty()
                    || !c
                        .size
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.')
                {
                    return Err(Error::InvalidValue {
                        field: "claim size",
                        value: c.size.clone(),
                        reason: "a quantity such as 10Gi",
                    });
                }
                let mount_options: Vec<String> = input
                    .cluster
                    .mount_options
                    .iter()
                    .map(|o| o.as_str().to_owned())
                    .collect();
                Ok(PersistentVolume {
                    metadata: ObjectMeta {
                        name: Some(format!("restored-{}-{}", c.namespace, c.name)),
                        labels: Some(
                            [
                                ("app.kubernetes.io/managed-by", "hakube"),
                                ("hakube.io/restored-from", export.storage_class.as_str()),
                            ]
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect(),
                        ),
                        ..ObjectMeta::default()
                    },
                    spec: Some(PersistentVolumeSpec {
                        capacity: Some(
                            [("storage".to_owned(), Quantity(c.size.clone()))]
                                .into_iter()
                                .collect(),
                        ),
                        access_modes: Some(vec!["ReadWriteMany".to_owned()]),
                        persistent_volume_reclaim_policy: Some("Retain".to_owned()),
                        storage_class_name: Some(c.storage_class.to_string()),
                        mount_options: (!mount_options.is_empty()).then_some(mount_options),
                        nfs: Some(NFSVolumeSource {
                            server: input.server.address.to_string(),
                            path: format!(
                                "{}/{}",
                                export.path,
                                crate::cluster::volume_dir(
                                    input.cluster.backend,
                                    c.namespace.as_str(),
                                    c.name.as_str()
                                )
                            ),
                            ..NFSVolumeSource::default()
                        }),
                        claim_ref: Some(ObjectReference {
                            namespace: Some(c.namespace.to_string()),
                            name: Some(c.name.to_string()),
                            ..ObjectReference::default()
                        }),
                        ..PersistentVolumeSpec::default()
                    }),
                    ..PersistentVolume::default()
                })
            })
            .collect()
    }
}
