//! `cargo run --example addons -- [TOPOLOGY] --kubeconfig FILE [--plan DIR] [--only COMPONENT,...] [--dry-run] [--helm PATH]`
//!
//! Installs the cluster add-ons of a written plan (default `out/`, from `plan`) in the
//! seed's bootstrap order: Calico, the NFS provisioner and StorageClasses, Traefik,
//! observability, cert-manager with the Vault issuer, the etcd backup, the example apps.
//! Prints a line per step and a summary; a re-run changes nothing. With TOPOLOGY, the plan
//! must be that topology's current one. The logic is `hakube_examples::stage::addons`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hakube_examples::stage::addons::{Options, run};

/// Install the cluster add-ons of a plan.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The topology whose current plan DIR must be (optional).
    topology: Option<PathBuf>,
    /// The cluster's kubeconfig (also given to helm).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The plan directory written by `plan`.
    #[arg(long, default_value = "out")]
    plan: PathBuf,
    /// Only these components (comma-separated: calico, nfs, traefik, monitoring, logging,
    /// vault, cert-manager, etcd-backup, apps).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Validate on the server (dryRun=All, helm --dry-run=server); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The helm binary (default: helm on PATH).
    #[arg(long)]
    helm: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut o = Options::new(args.plan, args.kubeconfig);
    o.topology = args.topology;
    o.only = args.only;
    o.dry_run = args.dry_run;
    o.helm = args.helm;
    match run(&o).await {
        Ok(r) => {
            let (wall, ext) = (r.wall.as_secs_f64(), r.external().as_secs_f64());
            println!(
                "{} steps{}: {} objects changed, {} unchanged in {wall:.2} s ({ext:.2} s inside API calls, helm, Kustomize and Vault; {:.3} s the runner's own)",
                r.steps.len(),
                if r.dry_run { " (dry run)" } else { "" },
                r.changed(),
                r.unchanged(),
                (wall - ext).max(0.0)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", hakube_examples::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
