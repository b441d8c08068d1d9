//! `cargo run --example bootstrap -- [TOPOLOGY] --ssh-key KEY [--known-hosts FILE] [--accept-new | --danger-accept-any] [--cni-manifest FILE]...`
//!
//! Bootstraps Kubernetes with kubeadm on the topology's VMs (default topology: the seed
//! cluster): `kubeadm init --upload-certs` on the first master against the VIP, the other
//! masters joined one at a time (`--parallel-control-plane` to join them together), the
//! workers all at once, then waits for every node to be Ready. Progress is printed per node,
//! and a summary at the end. Safe to re-run: nodes that joined are skipped.
//!
//! The CNI: `--cni-manifest FILE` (repeatable, e.g. Calico's `calico.yaml`) is copied to the
//! first master and applied there with `kubectl apply --server-side` right after `init`, so the
//! nodes become Ready. Without it the CNI is left to the add-on step
//! (`out/cluster/install-steps.json`); nodes stay NotReady until then, so the run does not wait
//! for Ready and says so.
//!
//! `--prepare` first prepares every node in parallel (swap, kernel modules, sysctls, containerd
//! with `SystemdCgroup`, the pkgs.k8s.io packages of the pinned version, held, the NFS client).
//!
//! The bootstrap token and certificate key are generated on the first run and kept in the
//! plan directory's `secrets/kubeadm.env` (mode 0600, `--plan`, default `out`) so re-runs
//! reuse them; the node preparation host plans and the kubeadm configurations are read from
//! the plan directory when `plan` wrote one there (a joining node's kubeadm configuration is
//! rendered after init, once the CA pin exists); the admin kubeconfig is copied to `secrets/kubernetes/admin.conf` next to them. `--render-only` prints the files each node would receive and connects to nothing.
//! The load balancers and the CNI are separate steps (`plan`/`provision` and the add-ons).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hakube_examples::ssh::SshArgs;
use hakube_examples::stage::bootstrap::{Options, run};
use hakube_kubeadm::{ClusterSecrets, render_cluster};
use hakube_plan::kubeadm_input;

/// Bootstrap Kubernetes with kubeadm on the topology's VMs.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The topology file (default: the seed cluster).
    topology: Option<PathBuf>,
    #[command(flatten)]
    ssh: SshArgs,
    /// A CNI manifest to apply on the first master after init (repeatable, applied in order).
    #[arg(long, value_name = "FILE")]
    cni_manifest: Vec<PathBuf>,
    /// Join the extra control-plane nodes at the same time instead of one by one.
    #[arg(long)]
    parallel_control_plane: bool,
    /// The plan directory (`plan --out`): kept secrets, host plans, the admin kubeconfig.
    #[arg(long, default_value = "out")]
    plan: PathBuf,
    /// Print what each node would receive; connect to nothing.
    #[arg(long)]
    render_only: bool,
    /// Prepare the nodes first (swap, modules, sysctls, containerd, pkgs.k8s.io packages held,
    /// the NFS client, image pre-pull on masters), all in parallel.
    #[arg(long)]
    prepare: bool,
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
    if args.render_only {
        let rendered = match kubeadm_input(&cluster)
            .map_err(|e| hakube_examples::error_chain(&e))
            .and_then(|input| {
                render_cluster(&input, &ClusterSecrets::generate())
                    .map_err(|e| hakube_examples::error_chain(&e))
            }) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        for node in &rendered.nodes {
            println!("{} ({:?})", node.name, node.role);
            for f in &node.files {
                println!("  {:o} {} ({} bytes)", f.mode, f.path, f.content.len());
            }
            if node.join_config_pending {
                println!("  (join configuration rendered after init, once the CA exists)");
            }
        }
        return ExitCode::SUCCESS;
    }
    let pool = match args.ssh.pool() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e} (or use --render-only)");
            return ExitCode::FAILURE;
        }
    };
    if args.cni_manifest.is_empty() {
        eprintln!(
            "note: no --cni-manifest: the CNI is left to the add-on step \
             (out/cluster/install-steps.json); nodes stay NotReady until it runs, so this run \
             does not wait for Ready"
        );
    }
    let opts = Options {
        prepare: args.prepare,
        parallel_control_plane: args.parallel_control_plane,
        cni_manifests: args.cni_manifest.clone(),
        plan_dir: args.plan.clone(),
    };
    let result = run(&cluster, &args.ssh, &pool, &opts).await;
    pool.close_all().await;
    match result {
        Ok(report) => {
            if report.kubeconfig.is_file() {
                println!("admin kubeconfig: {}", report.kubeconfig.display());
            }
            println!("\n{}", report.flow);
            for (node, why) in &report.unprepared {
                eprintln!("error: {node}: {why}");
            }
            if report.failures().is_empty() && (report.flow.all_ready || !report.flow.ready_awaited)
            {
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
