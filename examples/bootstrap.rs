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
//! The bootstrap token and certificate key are generated on the first run and kept in
//! `--secrets-file` (mode 0600, default `out/secrets/kubeadm.env`) so re-runs reuse
//! them. `--render-only` prints the files each node would receive and connects to nothing.
//! The load balancers and the CNI are separate steps (`plan`/`provision` and the add-ons).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use hakube_examples::ssh::{SshArgs, apply_plans, plans_from_tree};
use hakube_kubeadm::flow::{
    Bootstrap, BootstrapHooks, BootstrapOptions, BootstrapProgress, Host, ProgressEvent,
};
use hakube_kubeadm::{ClusterSecrets, render_cluster};
use hakube_plan::{PlanSecrets, kubeadm_input};
use hakube_remote::{Command, Mode, RemoteExec, Upload, push_file};
use hakube_topology::RoleKind;

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
    /// Where the token and certificate key are kept between runs.
    #[arg(long, default_value = "out/secrets/kubeadm.env")]
    secrets_file: PathBuf,
    /// Print what each node would receive; connect to nothing.
    #[arg(long)]
    render_only: bool,
    /// Prepare the nodes first (swap, modules, sysctls, containerd, pkgs.k8s.io packages held,
    /// the NFS client, image pre-pull on masters), all in parallel.
    #[arg(long)]
    prepare: bool,
}

/// Where CNI manifests are copied on the first master.
const CNI_DIR: &str = "/etc/kubernetes/hakube/cni";

/// Applies the operator's CNI manifests on the first master with the admin kubeconfig.
struct CniManifests(Vec<(String, Vec<u8>)>);

#[async_trait::async_trait]
impl BootstrapHooks for CniManifests {
    async fn cni(&self, first_master: &dyn RemoteExec) -> Result<(), String> {
        for (name, contents) in &self.0 {
            let path = format!("{CNI_DIR}/{name}");
            push_file(
                first_master,
                &Upload::new(path.clone(), contents.clone())
                    .mode(0o600)
                    .sudo(true),
            )
            .await
            .map_err(|e| hakube_examples::error_chain(&e))?;
            first_master
                .run_ok(
                    &Command::new("kubectl")
                        .args(["--kubeconfig", "/etc/kubernetes/admin.conf", "apply"])
                        .args(["--server-side", "--force-conflicts", "-f", &path])
                        .sudo(true),
                )
                .await
                .map_err(|e| hakube_examples::error_chain(&e))?;
        }
        Ok(())
    }

    fn applies_cni(&self) -> bool {
        !self.0.is_empty()
    }
}

/// Reads the CNI manifests, named `NN-<file name>` on the master so they apply in order.
fn read_manifests(paths: &[PathBuf]) -> Result<Vec<(String, Vec<u8>)>, String> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let contents =
                std::fs::read(p).map_err(|e| format!("--cni-manifest {}: {e}", p.display()))?;
            let base = p.file_name().map_or_else(
                || "cni.yaml".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
            Ok((format!("{i:02}-{base}"), contents))
        })
        .collect()
}

/// Prints each node's progress with the time since the start.
struct Printer(Instant);

impl BootstrapProgress for Printer {
    fn event(&self, node: &str, step: &'static str, event: &ProgressEvent) {
        let what = match event {
            ProgressEvent::Started => "started".to_owned(),
            ProgressEvent::Done => "done".to_owned(),
            ProgressEvent::Skipped(why) => format!("skipped ({why})"),
            ProgressEvent::Retrying(why) => format!("failed, resetting and retrying: {why}"),
            ProgressEvent::Failed(why) => format!("FAILED: {why}"),
        };
        println!(
            "[{:>7.1}s] {node:<18} {step:<13} {what}",
            self.0.elapsed().as_secs_f64()
        );
    }
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
    let input = kubeadm_input(&cluster);
    if args.render_only {
        let rendered = match render_cluster(&input, &ClusterSecrets::generate()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        for node in &rendered.nodes {
            println!("{} ({:?})", node.name, node.role);
            for f in &node.files {
                println!("  {:o} {} ({} bytes)", f.mode, f.path, f.contents.len());
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
    let manifests = match read_manifests(&args.cni_manifest) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if manifests.is_empty() {
        eprintln!(
            "note: no --cni-manifest: the CNI is left to the add-on step \
             (out/cluster/install-steps.json); nodes stay NotReady until it runs, so this run \
             does not wait for Ready"
        );
    }
    let secrets =
        match hakube_examples::load_or_create_secrets(&args.secrets_file).map(|s| s.kubeadm) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    let nodes: Vec<Host> = args.ssh.sessions(
        &pool,
        &cluster,
        cluster
            .vms
            .iter()
            .filter(|vm| matches!(vm.role, RoleKind::ControlPlane | RoleKind::Worker)),
    );
    let hosts: BTreeMap<String, Host> = nodes
        .iter()
        .map(|h| (h.host().to_owned(), Arc::clone(h)))
        .collect();
    println!(
        "bootstrapping {} ({} masters, {} workers) behind {}",
        input.cluster_name,
        input.masters.len(),
        input.workers.len(),
        input.control_plane_endpoint()
    );
    let bootstrap = match Bootstrap::new(input, secrets.clone(), hosts) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}", hakube_examples::error_chain(&e));
            return ExitCode::FAILURE;
        }
    }
    .options(BootstrapOptions {
        parallel_control_plane_joins: args.parallel_control_plane,
        wait_for_ready: !manifests.is_empty(),
        ..BootstrapOptions::default()
    })
    .hooks(Arc::new(CniManifests(manifests)))
    .progress(Arc::new(Printer(Instant::now())));
    if args.prepare {
        // The nodes' host plans (node preparation, base files, kubeadm configs), as `plan`
        // writes them, applied by the host-plan executor.
        let plan_secrets = PlanSecrets {
            kubeadm: secrets.clone(),
            ..PlanSecrets::generate()
        };
        let tree = match hakube_plan::render(&cluster, &plan_secrets) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {}", hakube_examples::error_chain(&e));
                return ExitCode::FAILURE;
            }
        };
        println!("preparing {} node(s)", nodes.len());
        let work = match plans_from_tree(&tree, nodes.clone()) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let reports = apply_plans(&work, Mode::Apply, 16).await;
        if reports.iter().any(|r| r.result.is_err()) {
            eprintln!("error: node preparation failed (see above)");
            pool.close_all().await;
            return ExitCode::FAILURE;
        }
    }
    let result = bootstrap.run().await;
    pool.close_all().await;
    match result {
        Ok(report) => {
            println!("\n{report}");
            if report.failures().is_empty() && (report.all_ready || !report.ready_awaited) {
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
