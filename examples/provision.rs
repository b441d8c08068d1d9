//! `cargo run --example provision -- [TOPOLOGY] --pve-url URL [auth] [trust] [--dry-run]`
//!
//! Creates the topology's VMs on Proxmox VE (default topology: the seed cluster): clone from
//! the per-node (or shared) template, cloud-init, grow the disk, start, wait for the guest
//! agent's address. Safe to re-run: a second run changes nothing, and a run killed at any
//! point is finished by the next one.
//!
//! Auth: `--token-id/--token-secret` (env `PVE_TOKEN_ID`, `PVE_TOKEN_SECRET`) or
//! `--pve-user/--password` (env `PVE_USER`, `PVE_PASSWORD`). URL: `--pve-url` or `PVE_URL`
//! (default: the topology's `proxmox.api_url`). Trust: `--fingerprint AA:BB:..` (as
//! `GET /nodes` reports it), `--ca pve-root-ca.pem`, or `--danger-accept-invalid-certs`;
//! without one of these the system roots are used.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hakube_examples::stage::provision::{Options, Outcome, PveArgs, run};

/// Provision the topology's VMs on Proxmox VE.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The topology file (default: the seed cluster).
    topology: Option<PathBuf>,
    #[command(flatten)]
    pve: PveArgs,
    /// Print the planned actions and change nothing (GET requests only).
    #[arg(long)]
    dry_run: bool,
    /// Delete VMs carrying this cluster's tag that the topology no longer has.
    #[arg(long)]
    prune: bool,
    /// Make the anti-affine roles' VMs HA resources, kept apart by HA rules.
    #[arg(long)]
    ha: bool,
    /// Seconds to wait for each VM's guest agent address (0: do not wait).
    #[arg(long, default_value_t = 300)]
    agent_timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let path = args
        .topology
        .clone()
        .unwrap_or_else(hakube_examples::default_topology);
    let cluster = match hakube_examples::load_topology(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = match args.pve.client(&cluster) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", hakube_examples::error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{} VMs for cluster {} at {}",
        cluster.vms.len(),
        cluster.topology.cluster.name,
        args.pve.url(&cluster)
    );
    let opts = Options {
        dry_run: args.dry_run,
        prune: args.prune,
        ha: args.ha,
        tasks_per_node: args.pve.tasks_per_node,
        agent_timeout: (args.agent_timeout > 0).then(|| Duration::from_secs(args.agent_timeout)),
        verbose: true,
    };
    match run(&cluster, client, &opts).await {
        Ok(Outcome::Planned(plan)) => {
            println!(
                "dry run: {} action(s) planned, nothing changed\n",
                plan.len()
            );
            print!("{plan}");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Applied(report)) => {
            println!();
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", hakube_examples::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
