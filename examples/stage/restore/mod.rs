//! The disaster-recovery restore: what the cluster's own backups hold, put back onto its VMs.
//!
//! - [`nfs`]: the NFS export snapshots the backup timer wrote on the NFS VM (`backup.nfs.target`),
//!   the newest that passes its checksums (or the one named), copied back into every export by
//!   the rendered restore script, re-exported and checked with `exportfs -v`;
//! - [`vault`]: the newest raft snapshot a Vault VM's snapshot timer wrote, restored through the
//!   raft leader's API with the kept root token (forced), every node unsealed with the kept keys,
//!   raft waited for (every node a voter), then the PKI checked: the same root and intermediate
//!   CA as before, and a CSR signed through the intermediate chains to that root.
//!
//! - [`etcd`]: the newest etcd snapshot the backup CronJob wrote to its NFS export that passes
//!   a trial restore (or the one named), restored onto the three masters the way kubeadm's
//!   static pods allow (manifests aside, `etcdutl snapshot restore` per member, data swapped,
//!   missing PKI from the matching archive, manifests back), then a healthy 3-member cluster
//!   and the API answering through the VIP.
//!
//! Each replaces live data, so each refuses unless [`Options::confirm_replace`] is set. Secrets
//! (the unseal keys and root token in `<out>/secrets/vault/init.json`) are read, never printed.

pub mod etcd;
pub mod nfs;
pub mod vault;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hakube_remote::SshPool;
use hakube_topology::Cluster;

/// A part of the cluster the restore can bring back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// etcd, from the newest verified snapshot, onto the masters.
    Etcd,
    /// The NFS exports' data.
    Nfs,
    /// The Vault (OpenBao) raft data: secrets, PKI, policies, tokens.
    Vault,
}

impl Part {
    /// Parses `etcd`, `nfs` or `vault`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "etcd" => Some(Self::Etcd),
            "nfs" => Some(Self::Nfs),
            "vault" => Some(Self::Vault),
            _ => None,
        }
    }

    /// The part's name, as [`Part::parse`] reads it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::Nfs => "nfs",
            Self::Vault => "vault",
        }
    }
}

/// What to restore and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plan directory whose secrets the cluster was configured with (`configure --out`):
    /// the Vault CA at `secrets/vault/tls/ca.crt`, the kept keys at `secrets/vault/init.json`.
    pub out: PathBuf,
    /// SSH login user.
    pub user: String,
    /// Restore this NFS snapshot (a UTC timestamp such as `20261206T083000Z`) instead of the
    /// newest verified one.
    pub nfs_snapshot: Option<String>,
    /// Restore this Vault raft snapshot (a file name such as
    /// `raft-vault-1-20261206T083000Z.snap`, or its timestamp) instead of the newest verified one.
    pub vault_snapshot: Option<String>,
    /// The Vault PKI's root CA (PEM) as it was before the loss: the restored root must equal
    /// it. Without it the root is compared with the running cluster's before the restore,
    /// which rebuilt (uninitialised) nodes cannot tell.
    pub expect_root_ca: Option<String>,
    /// The operator confirmed that live data is replaced (`--yes-replace-data`); without it
    /// every part refuses before touching anything.
    pub confirm_replace: bool,
    /// How long to wait for a part to come back (Vault unsealed with every node a voter; the
    /// NFS restore's copy).
    pub wait: Duration,
    /// Restore this etcd snapshot (a file name on the export, such as
    /// `etcd-snapshot-20261206T083000Z-master-1.db`) instead of the newest verified one.
    pub etcd_snapshot: Option<String>,
    /// The admin kubeconfig: after the etcd restore, the API must answer through the VIP with it.
    pub kubeconfig: Option<PathBuf>,
}

impl Options {
    /// Options for `out` and `user`: the newest snapshots, not confirmed, 120 s of patience.
    #[must_use]
    pub fn new(out: impl Into<PathBuf>, user: impl Into<String>) -> Self {
        Self {
            out: out.into(),
            user: user.into(),
            nfs_snapshot: None,
            vault_snapshot: None,
            expect_root_ca: None,
            confirm_replace: false,
            wait: Duration::from_secs(120),
            etcd_snapshot: None,
            kubeconfig: None,
        }
    }
}

/// Why a restore failed. Messages name the host and step; never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Live data would be replaced and the operator did not confirm. Nothing was touched; not
    /// retryable as is: confirm.
    #[error(
        "restoring {parts} replaces the live data with the snapshots': refusing without \
         --yes-replace-data (Options::confirm_replace)"
    )]
    NotConfirmed {
        /// The parts (`nfs`, `vault`, comma-separated).
        parts: String,
    },
    /// The topology, the plan directory or an option cannot serve the restore (named).
    /// Nothing was touched; not retryable: fix the input.
    #[error("{0}")]
    Input(String),
    /// No usable snapshot: none written, none that passes its checks, or not the one named.
    /// Nothing was restored; retry after a backup ran.
    #[error("no {part} snapshot to restore: {detail}")]
    NoSnapshot {
        /// The part.
        part: &'static str,
        /// Where it was looked for, and what was found.
        detail: String,
    },
    /// A step on a host failed. Re-running the restore is safe (it restores the snapshot
    /// again), but a failure after the data was replaced leaves the part as the step left it.
    #[error("{host}: {step}")]
    Step {
        /// The host (VM) or node.
        host: String,
        /// The step.
        step: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An OpenBao API call failed; the message names the node and the operation. Retryable
    /// when the cause is (a node down, sealed or electing).
    #[error(transparent)]
    Vault(#[from] hakube_vault::Error),
    /// The restored part does not do what it must (named). Retryable when it is still settling.
    #[error("verify: {0}")]
    Verify(String),
    /// The etcd restore failed (the message names the master and step; the static pods are put
    /// back where it got that far).
    #[error("etcd")]
    Etcd(#[source] Box<crate::stage::Error>),
}

impl Error {
    /// A failed step on `host`.
    pub fn step(
        host: impl Into<String>,
        step: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Step {
            host: host.into(),
            step: step.into(),
            source: source.into(),
        }
    }
}

/// What [`run`] restored.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The etcd part, when restored.
    pub etcd: Option<etcd::Report>,
    /// The NFS part, when restored.
    pub nfs: Option<nfs::Report>,
    /// The Vault part, when restored.
    pub vault: Option<vault::Report>,
    /// Wall time of the whole restore.
    pub elapsed: Duration,
}

/// Restores `parts` of `cluster` in order (each from the newest verified snapshot or the one
/// named in `opts`), stopping at the first that fails.
///
/// # Errors
/// The first part's [`Error`].
pub async fn run(
    cluster: &Cluster,
    pool: &SshPool,
    opts: &Options,
    parts: &[Part],
) -> Result<Report, Error> {
    if !opts.confirm_replace {
        let names: Vec<&str> = parts.iter().map(|p| p.name()).collect();
        return Err(Error::NotConfirmed {
            parts: names.join(", "),
        });
    }
    let started = Instant::now();
    let mut report = Report::default();
    for part in parts {
        match part {
            Part::Etcd => {
                let ssh = crate::ssh::SshArgs {
                    ssh_key: None,
                    user: Some(opts.user.clone()),
                    known_hosts: None,
                    accept_new: false,
                    danger_accept_any: false,
                };
                let eo = etcd::Options {
                    confirm: opts.confirm_replace,
                    snapshot: opts.etcd_snapshot.clone(),
                    kubeconfig: opts.kubeconfig.clone(),
                    ..etcd::Options::default()
                };
                let r = etcd::run(cluster, &ssh, pool, &eo)
                    .await
                    .map_err(|e| Error::Etcd(Box::new(e)))?;
                report.etcd = Some(r);
            }
            Part::Nfs => report.nfs = Some(nfs::run(cluster, pool, opts).await?),
            Part::Vault => report.vault = Some(vault::run(cluster, pool, opts).await?),
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Whether `s` is a snapshot timestamp as the backup jobs write them (`YYYYMMDDTHHMMSSZ`).
#[must_use]
pub fn is_timestamp(s: &str) -> bool {
    s.len() == 16
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_parts() {
        assert!(is_timestamp("20261206T083000Z"));
        for bad in [
            "",
            "latest",
            "20261206083000Z",
            "20261206T0830Z",
            "2026120xT083000Z",
        ] {
            assert!(!is_timestamp(bad), "{bad}");
        }
        for p in [Part::Etcd, Part::Nfs, Part::Vault] {
            assert_eq!(Part::parse(p.name()), Some(p));
        }
        assert_eq!(Part::parse("lb"), None);
    }
}
