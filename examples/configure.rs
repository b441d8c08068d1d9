//! `cargo run --example configure -- [TOPOLOGY] --ssh-key KEY [--user U] [--known-hosts FILE | --accept-new] [--plan DIR] [--out DIR] [--only lb,nfs,vault] [--dry-run]`
//!
//! Configures the host tiers of the topology (default: the seed cluster) from its plan: the
//! load balancers (HAProxy + keepalived holding the VIP), the NFS server (exports, backups) and
//! the Vault VMs (OpenBao), all in parallel, then bootstraps the Vault cluster (init once,
//! unseal, raft join, PKI, cert-manager's role) and verifies the tiers. A second run changes
//! nothing. The work is [`hakube_examples::stage::configure`]'s; this binary parses flags and
//! prints.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hakube_examples::ssh::SshArgs;
use hakube_examples::stage::configure::{Options, Tier, run};

/// Configure the load balancers, the NFS server and the Vault VMs.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The topology file (default: the seed cluster).
    topology: Option<PathBuf>,
    #[command(flatten)]
    ssh: SshArgs,
    /// Apply the host plans of this plan directory (written by `plan`) instead of rendering;
    /// its secrets/ holds the Vault TLS bundle and key store.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Only these tiers (comma-separated: lb, nfs, vault).
    #[arg(long, value_delimiter = ',', value_parser = ["lb", "nfs", "vault"])]
    only: Vec<String>,
    /// Show what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The plan directory whose kept secrets the rendered plan uses (as `plan --out`); the
    /// Vault key store is kept there too (secrets/vault/init.json, 0600).
    #[arg(long, default_value = "out")]
    out: PathBuf,
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
    let path = args
        .topology
        .clone()
        .unwrap_or_else(hakube_examples::default_topology);
    let cluster = hakube_examples::load_topology(&path)?;
    let pool = args.ssh.pool()?;
    let opts = Options {
        plan_dir: args.plan.clone(),
        out: args.out.clone(),
        tiers: args.only.iter().filter_map(|t| Tier::parse(t)).collect(),
        dry_run: args.dry_run,
        concurrency: 16,
        user: args.ssh.user(&cluster),
    };
    let result = run(&cluster, &pool, &opts).await;
    pool.close_all().await;
    let report = result.map_err(|e| hakube_examples::error_chain(&e))?;
    if !args.dry_run {
        println!(
            "configure: {} host change(s) in {:.1}s, {} Vault change(s) in {:.1}s",
            report.host_changes(),
            report.hosts_elapsed.as_secs_f64(),
            report.vault_changes.len(),
            report.vault_elapsed.as_secs_f64()
        );
    }
    Ok(())
}
