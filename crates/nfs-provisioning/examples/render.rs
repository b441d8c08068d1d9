//! Prints every file hakube-nfs-provisioning renders for the seed design (server address and node
//! network from the command line), plus how long rendering took.
//!
//! `cargo run -p hakube-nfs-provisioning --example render -- 10.20.0.50 10.20.0.0/24`

use std::time::Instant;

use hakube_nfs_provisioning::exports::HostName;
use hakube_nfs_provisioning::{NfsInput, NfsServer, NfsSetup, ServerAddress};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "10.20.0.50".to_owned());
    let network = args.next().unwrap_or_else(|| "10.20.0.0/24".to_owned());
    let server = NfsServer {
        name: HostName::new("nfs1")?,
        address: ServerAddress::Ip(address.parse()?),
    };
    let start = Instant::now();
    let setup = NfsSetup::new(NfsInput::seed(server, network.parse()?)?)?;
    let files = setup.gitops_files()?;
    let plan = setup.server_host_plan();
    let elapsed = start.elapsed();
    for f in &files {
        println!("==> cluster/{}\n{}", f.path, f.contents);
    }
    println!("==> host plan of {}\n{}", plan.host, plan.to_json());
    eprintln!(
        "rendered {} files and {} host-plan items in {elapsed:?}",
        files.len(),
        plan.items.len()
    );
    Ok(())
}
