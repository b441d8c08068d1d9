//! Backup of the exports and the disaster-recovery path back into a rebuilt cluster.
//!
//! # Backup
//! [`NfsSetup::backup_host_plan`] puts a script on the NFS server ([`BACKUP_SCRIPT`]) and a
//! systemd timer that runs it on a schedule. Each run snapshots every export to
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
//! 1. Rebuild the NFS VM and apply its host plans ([`NfsSetup::server_host_plan`],
//!    [`NfsSetup::backup_host_plan`]): package, export directories, exports file, scripts.
//! 2. Restore the data: [`NfsSetup::restore_command`] checks a chosen snapshot against its
//!    checksums, copies it back into each export (owners and modes kept), then re-exports
//!    (`exportfs -ra`); verify with `exportfs -v` (`remote::restore` does both).
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

use crate::cluster::gitops_path;
use crate::error::{Error, Result};
use crate::exports::ExportPath;
use crate::model::{K8sName, NfsSetup};
use hakube_host_state::{ClusterFile, Directory, File, HostPlan, Package, Service, shell_quote};

/// Where the backup script is installed on the NFS server.
pub const BACKUP_SCRIPT: &str = "/usr/local/sbin/hakube-nfs-backup";
/// Where the restore script is installed on the NFS server.
pub const RESTORE_SCRIPT: &str = "/usr/local/sbin/hakube-nfs-restore";
/// The systemd units that run the backup: `<this>.service` and `<this>.timer`.
pub const BACKUP_UNIT: &str = "hakube-nfs-backup";
/// The default schedule (systemd `OnCalendar=`): every day at 02:30.
pub const DEFAULT_BACKUP_SCHEDULE: &str = "*-*-* 02:30:00";

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
    /// When the timer runs the backup: a systemd `OnCalendar=` expression.
    pub schedule: String,
}

impl BackupOptions {
    /// Rsync snapshots under `target`, keeping `retention`, daily at 02:30.
    #[must_use]
    pub fn new(target: ExportPath, retention: u32) -> Self {
        Self {
            target,
            retention,
            method: BackupMethod::Rsync,
            schedule: DEFAULT_BACKUP_SCHEDULE.to_owned(),
        }
    }
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

    /// The NFS VM's backup as a host plan: the copy tool, the target directory (0700), the
    /// backup and restore scripts ([`BACKUP_SCRIPT`], [`RESTORE_SCRIPT`]), and a systemd
    /// service + timer ([`BACKUP_UNIT`]) that runs the backup on `options.schedule`
    /// (`Persistent=true`: a run missed while the VM was off happens at the next boot).
    ///
    /// Each snapshot is verified before it counts: rsync snapshots get a SHA-256 manifest of
    /// every file (`<timestamp>.sha256`, checked against the copy right after it is written),
    /// tar archives a checksum file and a full read of the archive. Only then is the snapshot
    /// renamed from `.partial` to its timestamp and older ones pruned, so a failed run leaves
    /// the previous snapshots as they were.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a retention of 0 or a schedule with characters systemd's
    /// `OnCalendar=` does not use, [`Error::OverlappingExports`] when the target is inside an
    /// export or contains one.
    pub fn backup_host_plan(&self, options: &BackupOptions) -> Result<HostPlan> {
        self.check_backup(options)?;
        if options.schedule.is_empty()
            || !options
                .schedule
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " *-:/,.~".contains(c))
        {
            return Err(Error::InvalidValue {
                field: "backup schedule",
                value: options.schedule.clone(),
                reason: "a systemd OnCalendar= expression, e.g. `*-*-* 02:00:00` or `daily`",
            });
        }
        let target = options.target.as_str();
        let package = match options.method {
            BackupMethod::Rsync => "rsync",
            BackupMethod::Tar => "tar",
        };
        let service = format!(
            "[Unit]\nDescription=hakube NFS export backup\nAfter=local-fs.target\n\n\
             [Service]\nType=oneshot\nExecStart={BACKUP_SCRIPT}\nNice=10\nIOSchedulingClass=idle\n"
        );
        let timer = format!(
            "[Unit]\nDescription=hakube NFS export backup schedule\n\n\
             [Timer]\nOnCalendar={}\nPersistent=true\nRandomizedDelaySec=5min\n\n\
             [Install]\nWantedBy=timers.target\n",
            options.schedule
        );
        let unit_dir = "/etc/systemd/system";
        Ok(HostPlan::new(self.input().server.name.as_str())
            .package(Package::new(package))
            .directory(Directory::new(target).mode(0o700).owner("0", "0"))
            .file(File::new(BACKUP_SCRIPT, self.backup_script(options)).mode(0o700))
            .file(File::new(RESTORE_SCRIPT, self.restore_script(options)).mode(0o700))
            .file(File::new(
                format!("{unit_dir}/{BACKUP_UNIT}.service"),
                service,
            ))
            .file(File::new(format!("{unit_dir}/{BACKUP_UNIT}.timer"), timer))
            .service(Service::new(format!("{BACKUP_UNIT}.timer"))))
    }

    fn backup_script(&self, options: &BackupOptions) -> String {
        let target = options.target.as_str();
        let mut s = String::from(
            "#!/bin/sh\n# hakube NFS export backup (rendered by hakube-nfs-provisioning).\n\
             # Snapshots every export to <target>/<class>/<UTC timestamp>, verifies each copy,\n\
             # then keeps the newest N.\nset -eu\numask 077\n",
        );
        let _ = writeln!(s, "TARGET={}", shell_quote(target));
        let _ = writeln!(s, "KEEP={}", options.retention);
        s.push_str("TS=$(date -u +%Y%m%dT%H%M%SZ)\n");
        s.push_str(
            "prune() { # $1: directory; keep the newest $KEEP entries matching $2\n  \
             ls -1 \"$1\" | grep -E \"$2\" | sort -r | tail -n +$((KEEP + 1)) | while read -r old; do\n    \
             rm -rf -- \"$1/$old\" \"$1/$old.sha256\"\n  done\n}\n\
             manifest() { # $1: directory; sha256 of every file, by relative path\n  \
             (cd \"$1\" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)\n}\n",
        );
        for e in &self.input().exports {
            let class = e.storage_class.as_str();
            let src = shell_quote(e.path.as_str());
            let _ = writeln!(s, "\n# {} -> $TARGET/{class}", e.path);
            let _ = writeln!(
                s,
                "mkdir -p \"$TARGET/{class}\"\nrm -rf -- \"$TARGET/{class}\"/*.partial \"$TARGET/{class}\"/*.partial.sha256"
            );
            match options.method {
                BackupMethod::Rsync => {
                    let _ = writeln!(
                        s,
                        "LINK=\nif [ -d \"$TARGET/{class}/latest\" ]; then LINK=\"--link-dest=$TARGET/{class}/latest\"; fi\n\
                         rsync -aHAX --numeric-ids --delete $LINK {src}/ \"$TARGET/{class}/$TS.partial/\"\n\
                         manifest \"$TARGET/{class}/$TS.partial\" > \"$TARGET/{class}/$TS.partial.sha256\"\n\
                         {{ [ ! -s \"$TARGET/{class}/$TS.partial.sha256\" ] || (cd \"$TARGET/{class}/$TS.partial\" && sha256sum --quiet --strict -c \"$TARGET/{class}/$TS.partial.sha256\"); }}\n\
                         mv \"$TARGET/{class}/$TS.partial.sha256\" \"$TARGET/{class}/$TS.sha256\"\n\
                         mv \"$TARGET/{class}/$TS.partial\" \"$TARGET/{class}/$TS\"\n\
                         ln -sfn \"$TS\" \"$TARGET/{class}/latest\"\n\
                         prune \"$TARGET/{class}\" '^[0-9]{{8}}T[0-9]{{6}}Z$'"
                    );
                }
                BackupMethod::Tar => {
                    let _ = writeln!(
                        s,
                        "tar --numeric-owner --acls --xattrs -czf \"$TARGET/{class}/$TS.tar.gz.partial\" -C {src} .\n\
                         tar -tzf \"$TARGET/{class}/$TS.tar.gz.partial\" > /dev/null\n\
                         (cd \"$TARGET/{class}\" && sha256sum \"$TS.tar.gz.partial\" | sed 's/\\.partial$//' > \"$TS.tar.gz.sha256\")\n\
                         mv \"$TARGET/{class}/$TS.tar.gz.partial\" \"$TARGET/{class}/$TS.tar.gz\"\n\
                         (cd \"$TARGET/{class}\" && sha256sum --quiet --strict -c \"$TS.tar.gz.sha256\")\n\
                         prune \"$TARGET/{class}\" '^[0-9]{{8}}T[0-9]{{6}}Z\\.tar\\.gz$'"
                    );
                }
            }
            let _ = writeln!(s, "echo \"{class}: $TARGET/{class}/$TS (verified)\"");
        }
        s
    }

    fn restore_script(&self, options: &BackupOptions) -> String {
        let mut s = String::from(
            "#!/bin/sh\n# hakube NFS export restore (rendered by hakube-nfs-provisioning).\n\
             # Usage: hakube-nfs-restore SNAPSHOT (a UTC timestamp, or latest for rsync snapshots).\n\
             # Checks each snapshot against its checksums before copying anything back.\nset -eu\n",
        );
        let _ = writeln!(s, "TARGET={}", shell_quote(options.target.as_str()));
        s.push_str(
            "SNAP=${1:?usage: hakube-nfs-restore SNAPSHOT}\n\
             case \"$SNAP\" in latest|[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) ;; \
             *) echo \"bad snapshot name $SNAP\" >&2; exit 2 ;; esac\n",
        );
        // Verify every export's snapshot first, so a bad one stops the restore before any copy.
        for e in &self.input().exports {
            let class = e.storage_class.as_str();
            match options.method {
                BackupMethod::Rsync => {
                    let _ = writeln!(
                        s,
                        "S=$(readlink -f \"$TARGET/{class}/$SNAP\") || S=\ntest -d \"$S\" || {{ echo \"missing snapshot $TARGET/{class}/$SNAP\" >&2; exit 1; }}\n\
                         {{ [ ! -s \"$S.sha256\" ] || (cd \"$S\" && sha256sum --quiet --strict -c \"$S.sha256\"); }} || {{ echo \"snapshot $S fails its checksums\" >&2; exit 1; }}"
                    );
                }
                BackupMethod::Tar => {
                    let _ = writeln!(
                        s,
                        "test -f \"$TARGET/{class}/$SNAP.tar.gz\" || {{ echo \"missing snapshot $TARGET/{class}/$SNAP.tar.gz\" >&2; exit 1; }}\n\
                         (cd \"$TARGET/{class}\" && sha256sum --quiet --strict -c \"$SNAP.tar.gz.sha256\") || {{ echo \"snapshot $SNAP.tar.gz fails its checksum\" >&2; exit 1; }}"
                    );
                }
            }
        }
        for e in &self.input().exports {
            let class = e.storage_class.as_str();
            let dst = shell_quote(e.path.as_str());
            let _ = writeln!(s, "\n# $TARGET/{class}/$SNAP -> {}", e.path);
            match options.method {
                BackupMethod::Rsync => {
                    let _ = writeln!(
                        s,
                        "rsync -aHAX --numeric-ids \"$TARGET/{class}/$SNAP/\" {dst}/"
                    );
                }
                BackupMethod::Tar => {
                    let _ = writeln!(
                        s,
                        "tar --numeric-owner --acls --xattrs -xzpf \"$TARGET/{class}/$SNAP.tar.gz\" -C {dst}"
                    );
                }
            }
            let _ = writeln!(s, "echo \"{class}: restored $SNAP into {}\"", e.path);
        }
        s.push_str("exportfs -ra\n");
        s
    }

    /// The command that restores `snapshot` (a timestamp, or `latest` for rsync snapshots) into
    /// every export on the NFS VM, after checking it against its checksums, then re-exports.
    /// Run it on a rebuilt server after [`Self::server_host_plan`] and
    /// [`Self::backup_host_plan`] (which installs the script); `remote::restore` (feature
    /// `remote`) runs it and verifies the exports.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a snapshot name that is not a timestamp
    /// (`YYYYMMDDTHHMMSSZ`) or `latest` (rsync snapshots only).
    pub fn restore_command(&self, options: &BackupOptions, snapshot: &str) -> Result<Vec<String>> {
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
        Ok(vec![RESTORE_SCRIPT.to_owned(), snapshot.to_owned()])
    }

    /// [`Self::static_volumes`] as YAML files (`30-persistentvolume-<name>.yaml`), for
    /// `cluster/nfs/restore/` or `kubectl apply --server-side`.
    ///
    /// # Errors
    /// As [`Self::static_volumes`], plus [`Error::Yaml`] (a bug).
    pub fn static_volume_files(&self, claims: &[ExistingClaim]) -> Result<Vec<ClusterFile>> {
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
                Ok(ClusterFile::new(
                    gitops_path(&format!("restore/{name}")),
                    contents,
                ))
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
