//! `cargo run --example restore -- [TOPOLOGY] --out DIR --ssh-key KEY [--user U] [--known-hosts FILE | --accept-new] [--only etcd,nfs,vault] [--snapshot PART=NAME ...] [--expect-root-ca PEM] --yes-replace-data`
//!
//! The disaster-recovery restore from the backups the cluster made (default: the NFS exports'
//! data and the Vault cluster; etcd with `--only etcd`): the newest verified snapshot of each,
//! or the one `--snapshot nfs=20261206T083000Z` / `--snapshot vault=raft-vault-1-….snap`
//! names, put back and checked (`--expect-root-ca FILE`: the Vault PKI's root from before the
//! loss, which the restored one must equal). It replaces live data, so it refuses without
//! `--yes-replace-data`. `--out` is the plan directory configure used (the Vault CA and the
//! kept unseal keys and root token, never printed). The work is
//! [`hakube_examples::stage::restore`]'s; this binary parses flags and prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use hakube_examples::ssh::SshArgs;
use hakube_examples::stage::restore::{Options, Part, nfs, vault};

/// Restore NFS export data and Vault (and etcd) from the cluster's own backups.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The topology file (default: the seed cluster).
    topology: Option<PathBuf>,
    #[command(flatten)]
    ssh: SshArgs,
    /// The plan directory configure used (`--out`): secrets/vault holds the Vault CA and the
    /// kept keys.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Only these parts (comma-separated: etcd, nfs, vault); default nfs,vault.
    #[arg(long, value_delimiter = ',', value_parser = ["etcd", "nfs", "vault"])]
    only: Vec<String>,
    /// A snapshot to restore instead of the newest verified one, as PART=NAME: `nfs=<UTC
    /// timestamp>`, `vault=<raft-<host>-<timestamp>.snap or its timestamp>`. Repeatable.
    #[arg(long, value_name = "PART=NAME")]
    snapshot: Vec<String>,
    /// The Vault PKI's root CA (PEM file) from before the loss: the restored one must equal it
    /// (without it, the running cluster's root before the restore is compared, when it answers).
    #[arg(long, value_name = "PEM")]
    expect_root_ca: Option<PathBuf>,
    /// Confirm that the restore replaces live data with the snapshots' (required).
    #[arg(long)]
    yes_replace_data: bool,
    /// Seconds to wait for a restored part to come back whole.
    #[arg(long, default_value_t = 120)]
    wait: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match try_main().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn try_main() -> Result<(), String> {
    let args = Args::parse();
    let parts: Vec<Part> = if args.only.is_empty() {
        vec![Part::Nfs, Part::Vault]
    } else {
        args.only.iter().filter_map(|p| Part::parse(p)).collect()
    };
    let path = args
        .topology
        .clone()
        .unwrap_or_else(hakube_examples::default_topology);
    let cluster = hakube_examples::load_topology(&path)?;
    let mut opts = Options::new(args.out.clone(), args.ssh.user(&cluster));
    opts.confirm_replace = args.yes_replace_data;
    if let Some(p) = &args.expect_root_ca {
        opts.expect_root_ca =
            Some(std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?);
    }
    opts.wait = std::time::Duration::from_secs(args.wait.max(1));
    for s in &args.snapshot {
        let (part, name) = s
            .split_once('=')
            .ok_or_else(|| format!("--snapshot {s}: want PART=NAME, e.g. nfs=20261206T083000Z"))?;
        match Part::parse(part) {
            Some(Part::Nfs) => opts.nfs_snapshot = Some(name.to_owned()),
            Some(Part::Vault) => opts.vault_snapshot = Some(name.to_owned()),
            Some(Part::Etcd) => return Err("etcd restore: not in this build".into()),
            None => {
                return Err(format!(
                    "--snapshot {s}: unknown part {part:?} (etcd, nfs, vault)"
                ));
            }
        }
        if !parts.iter().any(|p| p.name() == part) {
            return Err(format!("--snapshot {s}: {part} is not restored (--only)"));
        }
    }
    if !opts.confirm_replace {
        let names: Vec<&str> = parts.iter().map(|p| p.name()).collect();
        return Err(format!(
            "restoring {} replaces the live data with the snapshots': refusing without \
             --yes-replace-data",
            names.join(", ")
        ));
    }
    if parts.contains(&Part::Etcd) {
        return Err("etcd restore: not in this build".into());
    }
    let pool = args.ssh.pool()?;
    let result = restore(&cluster, &pool, &opts, &parts).await;
    pool.close_all().await;
    result
}

async fn restore(
    cluster: &hakube_topology::Cluster,
    pool: &hakube_remote::SshPool,
    opts: &Options,
    parts: &[Part],
) -> Result<(), String> {
    let started = Instant::now();
    let mut lines = Vec::new();
    for part in parts {
        match part {
            Part::Nfs => {
                let r = nfs::run(cluster, pool, opts)
                    .await
                    .map_err(|e| format!("nfs restore: {}", hakube_examples::error_chain(&e)))?;
                for s in &r.skipped {
                    println!("  nfs: skipped {s}");
                }
                for e in &r.exports {
                    println!("  nfs: restored {e}");
                }
                lines.push(format!(
                    "nfs: {} snapshot {} restored into {} export(s), {} live as planned, in {:.1}s",
                    r.host,
                    r.snapshot,
                    r.exports.len(),
                    r.live_exports,
                    r.elapsed.as_secs_f64()
                ));
            }
            Part::Vault => {
                let r = vault::run(cluster, pool, opts)
                    .await
                    .map_err(|e| format!("vault restore: {}", hakube_examples::error_chain(&e)))?;
                lines.push(format!(
                    "vault: {}:{} ({} bytes, taken {}) restored, voters {}, PKI CA {}, in {:.1}s",
                    r.snapshot.host,
                    r.snapshot.path,
                    r.snapshot.bytes,
                    r.snapshot.taken,
                    r.voters.join(", "),
                    if r.root_ca_unchanged {
                        "unchanged"
                    } else {
                        "restored (no CA before to compare)"
                    },
                    r.elapsed.as_secs_f64()
                ));
            }
            Part::Etcd => return Err("etcd restore: not in this build".into()),
        }
    }
    for l in &lines {
        println!("restore: {l}");
    }
    println!("restore: done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
