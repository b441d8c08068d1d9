//! The NFS exports' data back from the snapshots the backup timer wrote on the NFS VM.
//!
//! 1. List `<backup.nfs.target>/<storage class>/` for every export: a snapshot is a timestamp
//!    present for every export (one backup run writes the same timestamp for all of them),
//!    with its checksum file.
//! 2. Check candidates newest first against their checksums on the VM (`sha256sum -c`); the
//!    first that passes for every export is restored (or the one named, which must pass).
//! 3. Run the rendered restore script ([`hakube_nfs_provisioning::backup::RESTORE_SCRIPT`]:
//!    checksums again, the copy back with owners and modes, `exportfs -ra`) and check the live
//!    export table with `exportfs -v` ([`hakube_nfs_provisioning::remote::restore`]).
//!
//! The copy adds and overwrites; files created after the snapshot stay.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hakube_host_state::shell_quote;
use hakube_nfs_provisioning::NfsSetup;
use hakube_nfs_provisioning::backup::{BackupMethod, BackupOptions};
use hakube_remote::{Command, RemoteExec, SshPool, Target};
use hakube_topology::{Cluster, RoleKind};

use super::{Error, Options, is_timestamp};

/// What the NFS restore did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The NFS VM.
    pub host: String,
    /// The snapshot restored (its UTC timestamp).
    pub snapshot: String,
    /// Newer snapshots passed over, each with why.
    pub skipped: Vec<String>,
    /// The exports written back, as `<storage class>: <path>`.
    pub exports: Vec<String>,
    /// How many exports `exportfs -v` shows live (all as planned).
    pub live_exports: usize,
    /// Wall time, listing to verification.
    pub elapsed: Duration,
}

/// Restores the NFS exports of `cluster` from the newest verified snapshot (or
/// [`Options::nfs_snapshot`]) on its NFS VM, over a session from `pool`.
///
/// # Errors
/// [`Error::NotConfirmed`] without [`Options::confirm_replace`]; [`Error::Input`] when the
/// topology has no NFS server, no export backing a StorageClass or no `backup.nfs`;
/// [`Error::NoSnapshot`]; [`Error::Step`] naming the VM and step.
pub async fn run(cluster: &Cluster, pool: &SshPool, opts: &Options) -> Result<Report, Error> {
    if !opts.confirm_replace {
        return Err(Error::NotConfirmed {
            parts: "nfs".into(),
        });
    }
    let (setup, backup) = setup(cluster)?;
    let vm = cluster
        .vms_with_role(RoleKind::Nfs)
        .next()
        .ok_or_else(|| Error::Input("the topology has no NFS VM".into()))?;
    let target = Target::new(vm.name.clone(), vm.address.to_string()).user(opts.user.clone());
    let host = pool.session(&target) as Arc<dyn RemoteExec>;
    restore_on(host.as_ref(), &setup, &backup, opts).await
}

/// The NFS model and its backup settings from the topology.
///
/// # Errors
/// [`Error::Input`] naming what the topology lacks.
pub fn setup(cluster: &Cluster) -> Result<(NfsSetup, BackupOptions), Error> {
    let bad = |e: hakube_plan::Error| Error::Input(format!("nfs: {}", crate::error_chain(&e)));
    let setup = hakube_plan::nfs_setup(cluster)
        .map_err(bad)?
        .ok_or_else(|| Error::Input("the topology has no NFS server (nfs:)".into()))?;
    if setup.input().exports.is_empty() {
        return Err(Error::Input(
            "the NFS server has no export backing a StorageClass: nothing is backed up".into(),
        ));
    }
    let backup = hakube_plan::nfs_backup_options(cluster)
        .map_err(bad)?
        .ok_or_else(|| {
            Error::Input("the topology has no backup.nfs: the exports have no snapshots".into())
        })?;
    Ok((setup, backup))
}

/// [`run`] on an open session to the NFS VM.
///
/// # Errors
/// As [`run`].
pub async fn restore_on(
    host: &dyn RemoteExec,
    setup: &NfsSetup,
    backup: &BackupOptions,
    opts: &Options,
) -> Result<Report, Error> {
    if !opts.confirm_replace {
        return Err(Error::NotConfirmed {
            parts: "nfs".into(),
        });
    }
    let started = Instant::now();
    let target = backup.target.as_str();
    if let Some(s) = &opts.nfs_snapshot
        && !is_timestamp(s)
    {
        return Err(Error::Input(format!(
            "--snapshot nfs={s}: not a snapshot timestamp such as 20261206T083000Z"
        )));
    }
    let candidates = list(host, setup, backup).await?;
    let mut chosen = None;
    let mut skipped = Vec::new();
    for ts in candidates.iter().rev() {
        if opts.nfs_snapshot.as_ref().is_some_and(|s| s != ts) {
            continue;
        }
        match check(host, setup, backup, ts).await? {
            None => {
                chosen = Some(ts.clone());
                break;
            }
            Some(why) if opts.nfs_snapshot.is_some() => {
                return Err(Error::NoSnapshot {
                    part: "nfs",
                    detail: format!("{}: {ts} fails its checksums: {why}", host.host()),
                });
            }
            Some(why) => {
                println!("nfs: {}: snapshot {ts} skipped: {why}", host.host());
                skipped.push(format!("{ts}: {why}"));
            }
        }
    }
    let Some(snapshot) = chosen else {
        let detail = match &opts.nfs_snapshot {
            Some(s) => format!(
                "{}: {s} is not among the snapshots of every export under {target} ({})",
                host.host(),
                if candidates.is_empty() {
                    "none".to_owned()
                } else {
                    candidates.join(", ")
                }
            ),
            None if candidates.is_empty() => format!(
                "{}: no snapshot under {target} for every export (has the backup run?)",
                host.host()
            ),
            None => format!(
                "{}: every snapshot under {target} fails its checksums",
                host.host()
            ),
        };
        return Err(Error::NoSnapshot {
            part: "nfs",
            detail,
        });
    };
    println!(
        "nfs: {}: restoring snapshot {snapshot} into {} export(s)",
        host.host(),
        setup.input().exports.len()
    );
    let live = hakube_nfs_provisioning::remote::restore(
        host,
        setup,
        backup,
        &snapshot,
        opts.wait.max(Duration::from_secs(30)),
    )
    .await
    .map_err(|e| Error::step(host.host(), format!("restore snapshot {snapshot}"), e))?;
    let exports = setup
        .input()
        .exports
        .iter()
        .map(|e| format!("{}: {}", e.storage_class.as_str(), e.path))
        .collect();
    Ok(Report {
        host: host.host().to_owned(),
        snapshot,
        skipped,
        exports,
        live_exports: live.len(),
        elapsed: started.elapsed(),
    })
}

/// The snapshot timestamps present (with their checksum file) for every export, oldest first.
async fn list(
    host: &dyn RemoteExec,
    setup: &NfsSetup,
    backup: &BackupOptions,
) -> Result<Vec<String>, Error> {
    let target = backup.target.as_str();
    let mut common: Option<BTreeSet<String>> = None;
    for e in &setup.input().exports {
        let dir = format!("{target}/{}", e.storage_class.as_str());
        let out = host
            .run_ok(
                &Command::shell(format!(
                    "if [ -d {d} ]; then ls -1 {d}; fi",
                    d = shell_quote(&dir)
                ))
                .sudo(true),
            )
            .await
            .map_err(|e| Error::step(host.host(), format!("list {dir}"), e))?;
        let names: BTreeSet<String> = out.stdout_lossy().lines().map(str::to_owned).collect();
        let found: BTreeSet<String> = names
            .iter()
            .filter_map(|n| match backup.method {
                BackupMethod::Rsync => {
                    (is_timestamp(n) && names.contains(&format!("{n}.sha256"))).then(|| n.clone())
                }
                BackupMethod::Tar => n
                    .strip_suffix(".tar.gz")
                    .filter(|ts| is_timestamp(ts) && names.contains(&format!("{n}.sha256")))
                    .map(str::to_owned),
            })
            .collect();
        common = Some(match common {
            None => found,
            Some(c) => c.intersection(&found).cloned().collect(),
        });
    }
    Ok(common.unwrap_or_default().into_iter().collect())
}

/// Checks snapshot `ts` of every export against its checksums on the VM: `None` when it
/// passes, else what failed.
async fn check(
    host: &dyn RemoteExec,
    setup: &NfsSetup,
    backup: &BackupOptions,
    ts: &str,
) -> Result<Option<String>, Error> {
    let target = backup.target.as_str();
    for e in &setup.input().exports {
        let dir = shell_quote(&format!("{target}/{}", e.storage_class.as_str()));
        let script = match backup.method {
            // An empty manifest is an empty export (the backup script writes it so).
            BackupMethod::Rsync => format!(
                "cd {dir}/{ts} && {{ [ ! -s ../{ts}.sha256 ] || sha256sum --quiet --strict -c ../{ts}.sha256; }}"
            ),
            BackupMethod::Tar => format!(
                "cd {dir} && sha256sum --quiet --strict -c {ts}.tar.gz.sha256 && tar -tzf {ts}.tar.gz > /dev/null"
            ),
        };
        let out = host
            .run(&Command::shell(script).sudo(true))
            .await
            .map_err(|e| Error::step(host.host(), format!("check snapshot {ts}"), e))?;
        if !out.success() {
            let why = out.stdout_lossy() + &out.stderr_lossy();
            let why = why.lines().take(3).collect::<Vec<_>>().join("; ");
            return Ok(Some(format!("{}: {why}", e.storage_class.as_str())));
        }
    }
    Ok(None)
}
