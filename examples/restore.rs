//! `cargo run --example restore -- [TOPOLOGY] --out DIR --ssh-key KEY [--user U] [--known-hosts FILE | --accept-new] [--only etcd,nfs,vault] [--snapshot PART=NAME ...] [--expect-root-ca PEM] --yes-replace-data`
//!
//! The disaster-recovery restore from the backups the cluster made (default: etcd onto the
//! three masters, the NFS exports' data and the Vault cluster; `--only` picks): the newest
//! verified snapshot of each, or the one `--snapshot etcd=etcd-snapshot-….db` /
//! `--snapshot nfs=20261206T083000Z` / `--snapshot vault=raft-vault-1-….snap` names, put back
//! and checked (etcd: a healthy 3-member cluster, and the API through the VIP when
//! `DIR/secrets/kubernetes/admin.conf` is there; Vault: `--expect-root-ca FILE`, the PKI's
//! root from before the loss, which the restored one must equal). It replaces live data, so it refuses without
//! `--yes-replace-data`. `--out` is the plan directory configure used (the Vault CA and the
//! kept unseal keys and root token, never printed). The work is
//! [`hakube_examples::stage::restore`]'s; this binary parses flags and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hakube_examples::ssh::SshArgs;
use hakube_examples::stage::restore::{Options, Part, run};

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
    /// Only these parts (comma-separated: etcd, nfs, vault); default all three.
    #[arg(long, value_delimiter = ',', value_parser = ["etcd", "nfs", "vault"])]
    only: Vec<String>,
    /// A snapshot to restore instead of the newest verified one, as PART=NAME: `etcd=<file on
    /// the export>`, `nfs=<UTC timestamp>`, `vault=<raft-<host>-<timestamp>.snap or its
    /// timestamp>`. Repeatable.
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
        vec![Part::Etcd, Part::Nfs, Part::Vault]
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
    let kubeconfig = args
        .out
        .join(hakube_examples::stage::bootstrap::ADMIN_KUBECONFIG);
    opts.kubeconfig = kubeconfig.is_file().then_some(kubeconfig);
    for s in &args.snapshot {
        let (part, name) = s
            .split_once('=')
            .ok_or_else(|| format!("--snapshot {s}: want PART=NAME, e.g. nfs=20261206T083000Z"))?;
        match Part::parse(part) {
            Some(Part::Nfs) => opts.nfs_snapshot = Some(name.to_owned()),
            Some(Part::Vault) => opts.vault_snapshot = Some(name.to_owned()),
            Some(Part::Etcd) => opts.etcd_snapshot = Some(name.to_owned()),
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
    let r = run(cluster, pool, opts, parts)
        .await
        .map_err(|e| hakube_examples::error_chain(&e))?;
    if let Some(r) = &r.etcd {
        for (name, why) in &r.rejected {
            println!("  etcd: skipped {name}: {why}");
        }
        for m in &r.members {
            println!(
                "  etcd: {} restored as member {} ({}); its old data kept at {}{}",
                m.host,
                m.name,
                m.peer_url,
                m.kept,
                if m.pki_restored.is_empty() {
                    String::new()
                } else {
                    format!("; PKI restored: {}", m.pki_restored.join(", "))
                }
            );
        }
        println!(
            "restore: etcd: {} (revision {}) onto {} master(s), in {:.1}s",
            r.snapshot,
            r.revision,
            r.members.len(),
            r.elapsed.as_secs_f64()
        );
    }
    if let Some(r) = &r.nfs {
        for e in &r.exports {
            println!("  nfs: restored {e}");
        }
        println!(
            "restore: nfs: {} snapshot {} restored into {} export(s), {} live as planned, in {:.1}s",
            r.host,
            r.snapshot,
            r.exports.len(),
            r.live_exports,
            r.elapsed.as_secs_f64()
        );
    }
    if let Some(r) = &r.vault {
        println!(
            "restore: vault: {}:{} ({} bytes, taken {}) restored, voters {}, PKI CA {}, in {:.1}s",
            r.snapshot.host,
            r.snapshot.path,
            r.snapshot.bytes,
            r.snapshot.taken,
            r.voters.join(", "),
            if r.root_ca_unchanged {
                "unchanged"
            } else {
                "restored (no CA from before to compare)"
            },
            r.elapsed.as_secs_f64()
        );
    }
    println!("restore: done in {:.1}s", r.elapsed.as_secs_f64());
    Ok(())
}
