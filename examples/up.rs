//! `cargo run --example up -- [TOPOLOGY] --pve-url URL (--token-id ID --token-secret S | --pve-user U --password P)
//! [--fingerprint FP | --ca PEM | --danger-accept-invalid-certs] --ssh-key KEY [--user U] [--known-hosts FILE | --accept-new]
//! [--out DIR] [--from STAGE] [--until STAGE] [--dry-run]`, or `up --lab` (root) for the local twin.
//!
//! The whole cluster from one command (default topology: the seed cluster), in stages:
//! `plan` (render and write the plan tree), `provision` (the VMs on Proxmox VE), `configure`
//! (load balancers holding the VIP, the NFS server, the Vault VMs), `bootstrap` (node
//! preparation, kubeadm init against the VIP, joins), `addons` (every install step: CNI, NFS
//! provisioner, Traefik, observability, cert-manager with Vault, etcd backup) and `verify`.
//! Each stage is the library code of its own binary (`hakube_examples::stage`); `up` only
//! orders them, records what finished and reports.
//!
//! State: each finished stage is recorded in `DIR/state/up.json` (next to the secrets, outside
//! the GitOps tree, kept when the plan is rewritten). A run that stopped (killed, or a stage
//! failed) resumes at the first unfinished stage; after a complete run, `up` runs every stage
//! again, which then changes nothing. Every stage is idempotent, so a run killed anywhere
//! converges on the next: no second VM, no half-written file live, no second `kubeadm init`.
//! `--from`/`--until` choose the stages explicitly.
//!
//! `--lab` builds the local twin of the topology first (see `hakube_examples::twin`): fakepve
//! with the topology's Proxmox nodes and templates, each VM a network-namespace host at its
//! planned address with a real sshd (root login by the twin's key), real HAProxy, keepalived,
//! NFS, OpenBao and etcd, stand-ins for kubeadm, kubectl, helm and the Kubernetes API. The
//! twin runs in a process of its own and is torn down when `up` ends (also when `up` is
//! killed); every stage runs (the twin starts empty). `--lab --keep` leaves it running and
//! prints how to reach each host and the VIP; the next `up --lab` continues on it (resuming
//! where the last run stopped); `up --lab-down` removes it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hakube_examples::progress::say;
use hakube_examples::ssh::SshArgs;
use hakube_examples::stage::{self, provision::PveArgs};
use hakube_topology::{Cluster, RoleKind};
use serde::{Deserialize, Serialize};

/// Build the whole cluster: plan, provision, configure, bootstrap, add-ons, verify.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The topology file (default: the seed cluster).
    topology: Option<PathBuf>,
    /// The plan directory (plan tree, secrets, state).
    #[arg(long, default_value = "out")]
    out: PathBuf,
    #[command(flatten)]
    pve: PveArgs,
    #[command(flatten)]
    ssh: SshArgs,
    /// Start at this stage (default: the first unfinished one).
    #[arg(long, value_enum)]
    from: Option<Stage>,
    /// Stop after this stage.
    #[arg(long, value_enum)]
    until: Option<Stage>,
    /// Show what each stage would do; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Build the local twin of the topology and run against it (root).
    #[arg(long)]
    lab: bool,
    /// With `--lab`: leave the twin running after this run (it prints how to reach each host),
    /// and let the next `up --lab` continue on it.
    #[arg(long)]
    keep: bool,
    /// Remove the twin an `up --lab --keep` left running (same `--out`), then exit.
    #[arg(long, conflicts_with_all = ["lab", "from", "until", "dry_run"])]
    lab_down: bool,
    /// Internal: hold the twin in this process (`up --lab` starts it so).
    #[arg(long, hide = true)]
    twin_daemon: bool,
    /// The `helm` binary for the add-ons (default: `helm` on PATH; the twin brings its own).
    #[arg(long)]
    helm: Option<PathBuf>,
}

/// The stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Stage {
    Plan,
    Provision,
    Configure,
    Bootstrap,
    Addons,
    Verify,
}

const STAGES: [Stage; 6] = [
    Stage::Plan,
    Stage::Provision,
    Stage::Configure,
    Stage::Bootstrap,
    Stage::Addons,
    Stage::Verify,
];

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Provision => "provision",
            Self::Configure => "configure",
            Self::Bootstrap => "bootstrap",
            Self::Addons => "addons",
            Self::Verify => "verify",
        }
    }
}

/// What `up` recorded in `state/up.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Stages finished by the current (or last) run, in order.
    finished: Vec<Stage>,
}

fn state_path(out: &Path) -> PathBuf {
    out.join(hakube_plan::STATE_DIR).join("up.json")
}

fn read_state(out: &Path) -> Result<State, String> {
    let path = state_path(out);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn write_state(out: &Path, state: &State) -> Result<(), String> {
    let path = state_path(out);
    let body = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    hakube_examples::write_private_atomic(&path, &body)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One stage's line in the final report.
struct Done {
    stage: Stage,
    changes: usize,
    seconds: f64,
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
    let mut args = Args::parse();
    let started = Instant::now();
    let path = args
        .topology
        .clone()
        .unwrap_or_else(hakube_examples::default_topology);
    let cluster = hakube_examples::load_topology(&path)?;
    if args.twin_daemon {
        return hakube_examples::twin::serve(&cluster, &args.out, args.keep).await;
    }
    if args.keep && !args.lab {
        return Err("--keep keeps the local twin: it needs --lab".into());
    }
    if args.lab_down {
        return match hakube_examples::twin::Running::find(&args.out)? {
            Some(t) => {
                t.stop()?;
                // What the stages finished was on the twin, which is gone.
                let _ = std::fs::remove_file(state_path(&args.out));
                say(format!("removed the twin ({} hosts)", t.hosts.len()));
                Ok(())
            }
            None => {
                say(format!("no twin is running for {}", args.out.display()));
                Ok(())
            }
        };
    }
    // The twin runs in its own process (so that `--keep` can leave it behind); without
    // `--keep` it ends with this run, and also when this run is killed.
    let twin = if args.lab {
        if args.dry_run {
            return Err("--lab builds a twin to change: it cannot be a --dry-run".into());
        }
        // The twin runs no workload pods (no container runtime): in-cluster Vault's pods
        // would never start, and the add-on stage would wait for them in vain.
        if cluster.topology.vault.as_ref().map(|v| v.placement)
            == Some(hakube_topology::VaultPlacement::InCluster)
        {
            return Err(format!(
                "{}: vault.placement: in_cluster cannot run on the local twin, which runs no \
                 workload pods (Vault's pods would never start); use placement: vms with --lab. \
                 In-cluster Vault is exercised by examples/tests/addons_in_cluster_vault.rs \
                 (the addons example against OpenBao on lab hosts)",
                args.topology
                    .as_deref()
                    .map_or_else(|| "the seed".into(), |p| p.display().to_string())
            ));
        }
        let t0 = Instant::now();
        let twin = match hakube_examples::twin::Running::find(&args.out)? {
            Some(t) => {
                say(format!(
                    "== the local twin kept by an earlier run (process {})",
                    t.pid
                ));
                t
            }
            None => {
                say(format!("== local twin of {}", path.display()));
                // A fresh twin has none of what an earlier run finished.
                let _ = std::fs::remove_file(state_path(&args.out));
                let (p, o, keep) = (path.clone(), args.out.clone(), args.keep);
                tokio::task::spawn_blocking(move || hakube_examples::twin::spawn(&p, &o, keep))
                    .await
                    .map_err(|e| e.to_string())??
            }
        };
        say(format!(
            "twin: {} hosts on {}, Proxmox VE at {} ({:.1}s)",
            twin.hosts.len(),
            cluster.topology.network.cidr,
            twin.pve_url,
            t0.elapsed().as_secs_f64()
        ));
        args.pve = PveArgs {
            pve_url: Some(twin.pve_url.clone()),
            pve_user: Some(hakube_lab::twin::TWIN_USER.to_owned()),
            password: Some(twin.pve_password.clone()),
            fingerprint: Some(twin.pve_fingerprint.clone()),
            tasks_per_node: args.pve.tasks_per_node,
            ..PveArgs::default()
        };
        args.ssh = SshArgs {
            ssh_key: Some(twin.ssh_key.clone()),
            user: Some("root".into()),
            known_hosts: Some(twin.known_hosts.clone()),
            accept_new: false,
            danger_accept_any: false,
        };
        Some(twin)
    } else {
        None
    };
    let result = run(&cluster, &args, twin.is_some(), started).await;
    if let Some(t) = &twin {
        if args.keep {
            print!("\n{}", t.access(cluster.topology.network.vip));
        } else {
            t.stop()?;
        }
    }
    result
}

/// The stages from the first to run to the last asked for, recorded as they finish.
async fn run(cluster: &Cluster, args: &Args, lab: bool, started: Instant) -> Result<(), String> {
    let mut state = read_state(&args.out)?;
    let complete = state.finished.len() == STAGES.len();
    let first = args.from.unwrap_or_else(|| {
        if complete {
            Stage::Plan
        } else {
            STAGES
                .into_iter()
                .find(|s| !state.finished.contains(s))
                .unwrap_or(Stage::Plan)
        }
    });
    let last = args.until.unwrap_or(Stage::Verify);
    if first > last {
        return Err(format!(
            "--from {} comes after --until {}",
            first.name(),
            last.name()
        ));
    }
    if complete || args.from.is_some() {
        state.finished.retain(|s| *s < first);
    }
    if first > Stage::Plan {
        say(format!(
            "resuming at {} (finished before: {:?})",
            first.name(),
            state.finished
        ));
    }
    let mut done: Vec<Done> = Vec::new();
    for stage in STAGES.into_iter().filter(|s| (first..=last).contains(s)) {
        hakube_examples::progress::stage(stage.name());
        let t0 = Instant::now();
        let changes = run_stage(stage, cluster, args, lab)
            .await
            .map_err(|e| format!("stage {}: {e}", stage.name()))?;
        let seconds = t0.elapsed().as_secs_f64();
        hakube_examples::progress::stage_done(&format!(
            "== {} done: {changes} change(s), {seconds:.1}s",
            stage.name()
        ));
        if !args.dry_run {
            if !state.finished.contains(&stage) {
                state.finished.push(stage);
            }
            write_state(&args.out, &state)?;
        }
        done.push(Done {
            stage,
            changes,
            seconds,
        });
    }
    report(cluster, args, &done, started.elapsed());
    Ok(())
}

async fn run_stage(
    stage: Stage,
    cluster: &Cluster,
    args: &Args,
    lab: bool,
) -> Result<usize, String> {
    let chain = |e: &dyn std::error::Error| hakube_examples::error_chain(e);
    match stage {
        Stage::Plan => {
            if args.dry_run {
                let secrets = hakube_examples::plan_secrets(&args.out)?;
                let tree = hakube_plan::render(cluster, &secrets).map_err(|e| chain(&e))?;
                say(format!(
                    "would write {} files to {}",
                    tree.iter().count(),
                    args.out.display()
                ));
                return Ok(0);
            }
            let r = stage::plan::run(cluster, &args.out).map_err(|e| chain(&e))?;
            say(format!(
                "wrote {} files ({} bytes) to {}, {} new or changed",
                r.files,
                r.bytes,
                args.out.display(),
                r.changed
            ));
            Ok(r.changed)
        }
        Stage::Provision => {
            let client = args.pve.client(cluster).map_err(|e| chain(&e))?;
            let opts = stage::provision::Options {
                dry_run: args.dry_run,
                tasks_per_node: args.pve.tasks_per_node,
                ..stage::provision::Options::default()
            };
            let outcome = stage::provision::run(cluster, client, &opts)
                .await
                .map_err(|e| chain(&e))?;
            match &outcome {
                stage::provision::Outcome::Planned(p) => say(p.to_string().trim_end()),
                stage::provision::Outcome::Applied(r) => say(r.to_string().trim_end()),
            }
            Ok(outcome.changes())
        }
        Stage::Configure => configure(cluster, args).await,
        Stage::Bootstrap => {
            if args.dry_run {
                say("would bootstrap (kubeadm has no dry run here)");
                return Ok(0);
            }
            let pool = args.ssh.pool()?;
            let opts = stage::bootstrap::Options {
                prepare: true,
                parallel_control_plane: false,
                cni_manifests: Vec::new(),
                plan_dir: args.out.clone(),
            };
            let r = stage::bootstrap::run(cluster, &args.ssh, &pool, &opts).await;
            pool.close_all().await;
            let r = r.map_err(|e| chain(&e))?;
            say(r.flow.to_string().trim_end());
            let failed: Vec<String> = r
                .failures()
                .iter()
                .map(|(node, why)| format!("{node}: {why}"))
                .collect();
            if !failed.is_empty() {
                return Err(format!(
                    "{} node(s) failed: {}",
                    failed.len(),
                    failed.join("; ")
                ));
            }
            Ok(r.changes())
        }
        Stage::Addons => {
            let kubeconfig = args.out.join(stage::bootstrap::ADMIN_KUBECONFIG);
            let mut opts = stage::addons::Options::new(&args.out, &kubeconfig);
            opts.dry_run = args.dry_run;
            opts.helm.clone_from(&args.helm);
            if lab {
                let dir = args.out.join(hakube_plan::STATE_DIR).join("twin-helm");
                opts.helm = Some(hakube_examples::twin::helm(&args.out, &dir)?);
            }
            let r = stage::addons::run(&opts).await.map_err(|e| chain(&e))?;
            Ok(r.changed())
        }
        Stage::Verify => verify(cluster, args).await.map(|()| 0),
    }
}

/// The host tiers (load balancers, NFS server, Vault VMs) from the written plan, the Vault
/// bootstrap, and their checks: `configure`'s stage.
async fn configure(cluster: &Cluster, args: &Args) -> Result<usize, String> {
    let pool = args.ssh.pool()?;
    let opts = stage::configure::Options {
        plan_dir: Some(args.out.clone()),
        out: args.out.clone(),
        tiers: Vec::new(),
        dry_run: args.dry_run,
        concurrency: 16,
        user: args.ssh.user(cluster),
    };
    let r = stage::configure::run(cluster, &pool, &opts).await;
    pool.close_all().await;
    let r = r.map_err(|e| hakube_examples::error_chain(&e))?;
    for v in &r.verified {
        say(format!("verified: {v}"));
    }
    for n in &r.notes {
        say(format!("note: {n}"));
    }
    Ok(r.host_changes() + r.vault_changes.len())
}

/// What the cluster must do, checked from here: the API answers through the VIP, every node
/// is registered.
async fn verify(cluster: &Cluster, args: &Args) -> Result<(), String> {
    if args.dry_run {
        say("would verify the API through the VIP");
        return Ok(());
    }
    let kubeconfig = args.out.join(stage::bootstrap::ADMIN_KUBECONFIG);
    let client = hakube_examples::kube_client(&kubeconfig).await?;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    let list = tokio::time::timeout(Duration::from_secs(30), nodes.list(&Default::default()))
        .await
        .map_err(|_| "listing nodes through the VIP: no answer within 30 s".to_owned())?
        .map_err(|e| format!("listing nodes through the VIP: {e}"))?;
    let want: Vec<&str> = cluster
        .vms
        .iter()
        .filter(|v| matches!(v.role, RoleKind::ControlPlane | RoleKind::Worker))
        .map(|v| v.name.as_str())
        .collect();
    let have: Vec<String> = list
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let missing: Vec<&&str> = want
        .iter()
        .filter(|w| !have.iter().any(|h| h == **w))
        .collect();
    if !missing.is_empty() {
        return Err(format!("nodes not registered: {missing:?}"));
    }
    say(format!(
        "verify: the API answers through {}:6443; {} nodes registered",
        cluster.topology.network.vip,
        have.len()
    ));
    Ok(())
}

fn report(cluster: &Cluster, args: &Args, done: &[Done], wall: Duration) {
    let vip = cluster.topology.network.vip;
    say(format!("\n== {} is up", cluster.topology.cluster.name));
    say(format!("API server     https://{vip}:6443"));
    say(format!(
        "ingress        http://{vip}/  https://{vip}/ (Traefik behind HAProxy)"
    ));
    match cluster.topology.vault.as_ref().map(|v| v.placement) {
        Some(hakube_topology::VaultPlacement::Vms) => {
            say(format!("Vault          https://{vip}:8200"));
        }
        // No load balancer fronts it: in the cluster at its Service, from outside by a
        // port-forward (its certificate names 127.0.0.1).
        Some(hakube_topology::VaultPlacement::InCluster) => say(format!(
            "Vault          https://vault.vault.svc:8200 in the cluster; from outside: kubectl \
             --kubeconfig {} -n vault port-forward svc/vault-active 8200, then \
             https://127.0.0.1:8200 (CA {})",
            args.out.join(stage::bootstrap::ADMIN_KUBECONFIG).display(),
            args.out
                .join(hakube_plan::SECRETS_DIR)
                .join("vault/tls/ca.crt")
                .display()
        )),
        None => {}
    }
    let kubeconfig = args.out.join(stage::bootstrap::ADMIN_KUBECONFIG);
    // Grafana has no ingress of its own (a ClusterIP Service): a port-forward reaches it.
    if args
        .out
        .join("cluster/monitoring/grafana-values.yaml")
        .is_file()
    {
        say(format!(
            "Grafana        kubectl --kubeconfig {} -n monitoring port-forward svc/grafana 3000:80, \
             then http://localhost:3000 (user admin, password in {})",
            kubeconfig.display(),
            args.out
                .join(hakube_plan::SECRETS_DIR)
                .join("monitoring")
                .join(
                    &hakube_plan::PlanOptions::default()
                        .monitoring
                        .grafana_admin_secret
                )
                .join("admin-password")
                .display()
        ));
    }
    say(format!("kubeconfig     {}", kubeconfig.display()));
    say(format!(
        "secrets        {}",
        args.out.join(hakube_plan::SECRETS_DIR).display()
    ));
    say(format!("\n{:<10} {:>8} {:>8}", "STAGE", "CHANGES", "TIME"));
    for d in done {
        say(format!(
            "{:<10} {:>8} {:>7.1}s",
            d.stage.name(),
            d.changes,
            d.seconds
        ));
    }
    let sum: f64 = done.iter().map(|d| d.seconds).sum();
    say(format!(
        "total {:.1}s (stages {sum:.1}s){}",
        wall.as_secs_f64(),
        if args.dry_run {
            ", dry run: nothing changed"
        } else {
            ""
        }
    ));
}
