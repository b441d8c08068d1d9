//! `cargo run --example configure -- [TOPOLOGY] --ssh-key KEY [--user U] [--known-hosts FILE | --accept-new] [--plan DIR] [--only lb,nfs,vault] [--dry-run]`
//!
//! Configures the host tiers of the topology (default: the seed cluster) from its plan: the
//! load balancers (HAProxy + keepalived holding the VIP), the NFS server (exports, backups) and
//! the Vault VMs, all in parallel, with the host-plan executor: facts first, then only what
//! differs; a config that its daemon rejects (`haproxy -c`, `keepalived -t`) never replaces
//! the live one; services reload only when their files changed. A second run changes nothing.
//!
//! Host plans come from the plan rendered in memory, or from a plan directory that `plan`
//! wrote (`--plan out`). After applying, it verifies what the tiers must do: exactly one load
//! balancer holds the VIP and the VIP accepts connections on 6443; the NFS server's live
//! exports match the model. It prints per-host changes and a summary, and exits non-zero
//! naming each failed host and item.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hakube_examples::ssh::{SshArgs, apply_plans, plans_from_dir, plans_from_tree};
use hakube_remote::{Command, Mode, RemoteExec};
use hakube_topology::{Cluster, RoleKind};

/// Configure the load balancers, the NFS server and the Vault VMs.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The topology file (default: the seed cluster).
    topology: Option<PathBuf>,
    #[command(flatten)]
    ssh: SshArgs,
    /// Apply the host plans of this plan directory (written by `plan`) instead of rendering.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Only these tiers (comma-separated: lb, nfs, vault).
    #[arg(long, value_delimiter = ',', value_parser = ["lb", "nfs", "vault"])]
    only: Vec<String>,
    /// Show what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The plan directory whose kept secrets the rendered plan uses (as `plan --out`).
    #[arg(long, default_value = "out")]
    out: PathBuf,
}

fn tier(role: RoleKind) -> Option<&'static str> {
    match role {
        RoleKind::LoadBalancer => Some("lb"),
        RoleKind::Nfs => Some("nfs"),
        RoleKind::Vault => Some("vault"),
        _ => None,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match try_main().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn try_main() -> Result<bool, String> {
    let args = Args::parse();
    let path = args
        .topology
        .clone()
        .unwrap_or_else(hakube_examples::default_topology);
    let cluster = hakube_examples::load_topology(&path)?;
    let pool = args.ssh.pool()?;
    let vms: Vec<_> = cluster
        .vms
        .iter()
        .filter(|vm| {
            tier(vm.role).is_some_and(|t| args.only.is_empty() || args.only.iter().any(|o| o == t))
        })
        .collect();
    if vms.is_empty() {
        return Err("no VM of the chosen tiers in the topology".into());
    }
    let hosts = args.ssh.sessions(&pool, &cluster, vms.iter().copied());
    let work = match &args.plan {
        Some(dir) => plans_from_dir(dir, hosts)?,
        None => {
            let secrets = hakube_examples::plan_secrets(&args.out)?;
            let tree = hakube_plan::render(&cluster, &secrets)
                .map_err(|e| hakube_examples::error_chain(&e))?;
            plans_from_tree(&tree, hosts)?
        }
    };
    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    println!(
        "configuring {} host(s){}",
        work.len(),
        if args.dry_run { " (dry run)" } else { "" }
    );
    let reports = apply_plans(&work, mode, 16).await;
    let mut ok = reports.iter().all(|r| r.result.is_ok());
    if ok && !args.dry_run {
        let hosts: Vec<Arc<dyn RemoteExec>> = work.iter().map(|(h, _)| Arc::clone(h)).collect();
        if let Err(e) = verify(&cluster, &hosts).await {
            eprintln!("verify: {e}");
            ok = false;
        }
    }
    pool.close_all().await;
    if !ok {
        for r in &reports {
            if let Err(e) = &r.result {
                eprintln!("failed: {}", hakube_examples::error_chain(e));
            }
        }
    }
    Ok(ok)
}

/// What the configured tiers must do, checked from here.
async fn verify(cluster: &Cluster, hosts: &[Arc<dyn RemoteExec>]) -> Result<(), String> {
    let role = |name: &str| cluster.vms.iter().find(|v| v.name == name).map(|v| v.role);
    let lbs: Vec<&Arc<dyn RemoteExec>> = hosts
        .iter()
        .filter(|h| role(h.host()) == Some(RoleKind::LoadBalancer))
        .collect();
    if !lbs.is_empty() {
        let vip = IpAddr::V4(cluster.topology.network.vip);
        let holder = vip_holder(&lbs, vip).await?;
        println!("verify: {holder} holds the VIP {vip}");
        let addr = SocketAddr::new(vip, 6443);
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("{addr}: no answer within 5 s"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        println!("verify: {addr} accepts connections");
    }
    if let Some(nfs) = hosts.iter().find(|h| role(h.host()) == Some(RoleKind::Nfs))
        && let Some(setup) =
            hakube_plan::nfs_setup(cluster).map_err(|e| hakube_examples::error_chain(&e))?
    {
        let live = hakube_nfs_provisioning::remote::verify_exports(nfs.as_ref(), &setup)
            .await
            .map_err(|e| hakube_examples::error_chain(&e))?;
        println!(
            "verify: {} exports live on {} as planned",
            live.len(),
            nfs.host()
        );
    }
    Ok(())
}

/// Waits (up to 15 s, VRRP elections take a few adverts) until exactly one LB holds the VIP.
async fn vip_holder(lbs: &[&Arc<dyn RemoteExec>], vip: IpAddr) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let mut holders = Vec::new();
        for lb in lbs {
            let out = lb
                .run_ok(&Command::new("ip").args(["-o", "addr", "show"]))
                .await
                .map_err(|e| hakube_examples::error_chain(&e))?;
            let held = out
                .stdout_lossy()
                .split_whitespace()
                .any(|w| w.split('/').next() == Some(&vip.to_string()));
            if held {
                holders.push(lb.host().to_owned());
            }
        }
        if holders.len() == 1 {
            return Ok(holders.remove(0));
        }
        if started.elapsed() > Duration::from_secs(15) {
            return Err(format!(
                "{} load balancers hold the VIP {vip} ({}): want exactly one",
                holders.len(),
                holders.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
