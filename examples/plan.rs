//! `cargo run --example plan -- [TOPOLOGY] [--out DIR]`
//!
//! Validates and places a topology (default: the seed cluster, `examples/seed-cluster.yaml`),
//! prints a summary of every VM and Proxmox node, and writes the plan to DIR (default `out/`):
//! `plan.json`, `hosts/<vm>/<absolute path>`, `cluster/<component>/...` and pictures of the
//! placed topology (`diagrams/topology.svg`, `diagrams/topology.mmd`). Invalid input exits
//! non-zero with the file, line, field and rule, and writes nothing.
//!
//! The kubeadm bootstrap token and certificate key are generated on the first run and kept in
//! `DIR/secrets/kubeadm.env` (0600, outside the GitOps tree `DIR/cluster/`), so re-planning gives the same files; `bootstrap`
//! reads the same file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Render the hakube plan for a topology.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The topology file (default: the seed cluster).
    topology: Option<PathBuf>,
    /// Where to write the plan (replaced as a whole; only a previous plan or an empty directory).
    #[arg(long, default_value = "out")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let path = args
        .topology
        .unwrap_or_else(hakube_examples::default_topology);
    let cluster = match hakube_examples::load_topology(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let secrets = match hakube_examples::plan_secrets(&args.out) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tree = match hakube_plan::render(&cluster, &secrets) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    print!("{}", hakube_examples::summary(&cluster));
    match tree.write_to(&args.out) {
        Ok(s) => {
            println!(
                "\nwrote {} files ({} bytes) to {}",
                s.files,
                s.bytes,
                args.out.display()
            );
            println!(
                "pictures of what will be built: {} (any browser) and {} (Mermaid)",
                args.out.join(hakube_plan::diagram::SVG_PATH).display(),
                args.out.join(hakube_plan::diagram::MERMAID_PATH).display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", hakube_examples::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
