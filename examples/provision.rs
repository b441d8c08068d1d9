//! `cargo run --example provision -- [TOPOLOGY] --pve-url URL [auth] [trust] [--dry-run]`
//!
//! Creates the topology's VMs on Proxmox VE (default topology: the seed cluster): clone from
//! the per-node (or shared) template, cloud-init, grow the disk, start, wait for the guest
//! agent's address. Safe to re-run: a second run changes nothing, and a run killed at any
//! point is finished by the next one.
//!
//! Auth: `--token-id/--token-secret` (env `PVE_TOKEN_ID`, `PVE_TOKEN_SECRET`) or
//! `--user/--password` (env `PVE_USER`, `PVE_PASSWORD`). URL: `--pve-url` or `PVE_URL`
//! (default: the topology's `proxmox.api_url`). Trust: `--fingerprint AA:BB:..` (as
//! `GET /nodes` reports it), `--ca pve-root-ca.pem`, or `--danger-accept-invalid-certs`;
//! without one of these the system roots are used.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hakube_proxmox_api::provision::{Event, Phase, ProvisionOptions, Provisioner};
use hakube_proxmox_api::{ClientBuilder, Secret, TlsTrust};

/// Provision the topology's VMs on Proxmox VE.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The topology file (default: the seed cluster).
    topology: Option<PathBuf>,
    /// The PVE API URL (env PVE_URL; default: the topology's proxmox.api_url).
    #[arg(long)]
    pve_url: Option<String>,
    /// API token id, user@realm!tokenid (env PVE_TOKEN_ID).
    #[arg(long)]
    token_id: Option<String>,
    /// API token secret (env PVE_TOKEN_SECRET; prefer the environment to the command line).
    #[arg(long)]
    token_secret: Option<String>,
    /// User for ticket login, user@realm (env PVE_USER).
    #[arg(long)]
    user: Option<String>,
    /// Password (env PVE_PASSWORD; prefer the environment to the command line).
    #[arg(long)]
    password: Option<String>,
    /// Pin the server certificate's SHA-256 fingerprint (AA:BB:...).
    #[arg(long, group = "trust")]
    fingerprint: Option<String>,
    /// Trust this CA (PEM), e.g. the cluster's /etc/pve/pve-root-ca.pem.
    #[arg(long, group = "trust")]
    ca: Option<PathBuf>,
    /// Accept any certificate. Insecure: for throwaway labs only.
    #[arg(long, group = "trust")]
    danger_accept_invalid_certs: bool,
    /// Print the planned actions and change nothing (GET requests only).
    #[arg(long)]
    dry_run: bool,
    /// Delete VMs carrying this cluster's tag that the topology no longer has.
    #[arg(long)]
    prune: bool,
    /// Make the anti-affine roles' VMs HA resources, kept apart by HA rules.
    #[arg(long)]
    ha: bool,
    /// Worker tasks in flight per Proxmox node.
    #[arg(long, default_value_t = 3)]
    tasks_per_node: usize,
    /// Seconds to wait for each VM's guest agent address (0: do not wait).
    #[arg(long, default_value_t = 300)]
    agent_timeout: u64,
}

fn env_or(flag: Option<String>, var: &str) -> Option<String> {
    flag.or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
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
    let specs = match hakube_plan::vm_specs(&cluster, args.ha) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "error: {}: {}",
                path.display(),
                hakube_examples::error_chain(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    let url = env_or(args.pve_url.clone(), "PVE_URL")
        .unwrap_or_else(|| cluster.topology.proxmox.api_url.clone());
    let mut builder = ClientBuilder::new(&url);
    if let Some(id) = env_or(args.token_id.clone(), "PVE_TOKEN_ID") {
        let Some(secret) = env_or(args.token_secret.clone(), "PVE_TOKEN_SECRET") else {
            eprintln!("error: --token-id needs --token-secret or PVE_TOKEN_SECRET");
            return ExitCode::FAILURE;
        };
        builder = builder.token(id, Secret::new(secret));
    } else if let Some(user) = env_or(args.user.clone(), "PVE_USER") {
        let Some(pw) = env_or(args.password.clone(), "PVE_PASSWORD") else {
            eprintln!("error: --user needs --password or PVE_PASSWORD");
            return ExitCode::FAILURE;
        };
        builder = builder.password(user, Secret::new(pw));
    } else {
        eprintln!(
            "error: give --token-id/--token-secret or --user/--password (or the PVE_* variables)"
        );
        return ExitCode::FAILURE;
    }
    let trust = if let Some(fp) = &args.fingerprint {
        match fp.parse() {
            Ok(fp) => TlsTrust::Fingerprint(fp),
            Err(e) => {
                eprintln!("error: --fingerprint: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else if let Some(ca) = &args.ca {
        match std::fs::read_to_string(ca) {
            Ok(pem) => TlsTrust::CaPem(pem),
            Err(e) => {
                eprintln!("error: --ca {}: {e}", ca.display());
                return ExitCode::FAILURE;
            }
        }
    } else if args.danger_accept_invalid_certs {
        eprintln!("warning: certificate verification is OFF (--danger-accept-invalid-certs)");
        TlsTrust::DangerAcceptInvalidCerts
    } else {
        TlsTrust::SystemRoots
    };
    let client = match builder
        .trust(trust)
        .node_concurrency(args.tasks_per_node.max(1))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut opts = ProvisionOptions::new(format!("hakube-{}", cluster.topology.cluster.name));
    opts.prune = args.prune;
    opts.tasks_per_node = args.tasks_per_node.max(1);
    opts.agent_timeout = (args.agent_timeout > 0).then(|| Duration::from_secs(args.agent_timeout));
    let started = Instant::now();
    opts.progress = Some(Arc::new(move |e: &Event| {
        let t = started.elapsed().as_secs_f64();
        match &e.phase {
            Phase::Started => println!("[{t:7.2}s] {:<20} {:<12} ...", e.vm, e.step),
            Phase::Done => println!("[{t:7.2}s] {:<20} {:<12} done", e.vm, e.step),
            Phase::Retrying(m) => println!("[{t:7.2}s] {:<20} {:<12} retrying: {m}", e.vm, e.step),
            Phase::Failed(m) => println!("[{t:7.2}s] {:<20} {:<12} FAILED: {m}", e.vm, e.step),
            _ => {}
        }
    }));
    let p = Provisioner::new(client, opts);
    println!(
        "{} VMs for cluster {} at {url}",
        specs.len(),
        cluster.topology.cluster.name
    );
    if args.dry_run {
        return match p.plan(&specs).await {
            Ok(plan) => {
                println!(
                    "dry run: {} action(s) planned, nothing changed\n",
                    plan.len()
                );
                print!("{plan}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}", hakube_examples::error_chain(&e));
                ExitCode::FAILURE
            }
        };
    }
    match p.apply(&specs).await {
        Ok(report) => {
            println!();
            print!("{report}");
            if report.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {}", hakube_examples::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
