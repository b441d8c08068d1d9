//! Measures how long building (and tearing down) a lab takes.
//!
//! `cargo run -p hakube-lab --example build_time -- [HOSTS] [ROUNDS] [fresh]` (as root; default
//! 12 hosts, 3 rounds; `fresh` builds fresh hosts, `LabBuilder::fresh_hosts`). Prints one line
//! per round and the median.

use std::time::Instant;

use hakube_lab::{Lab, require_root};

fn main() -> Result<(), hakube_lab::Error> {
    if !require_root("build_time") {
        return Ok(());
    }
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(12);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let fresh = args.next().as_deref() == Some("fresh");
    let names: Vec<String> = (1..=n).map(|i| format!("h{i}")).collect();
    let mut builds = Vec::new();
    for round in 1..=rounds {
        let t = Instant::now();
        let mut builder = Lab::builder("bench").hosts(names.iter().cloned());
        if fresh {
            builder = builder.fresh_hosts();
        }
        let lab = builder.build()?;
        let built = t.elapsed();
        // Prove the lab is usable: one SSH round trip to the last host.
        let last = lab.host(&names[n - 1]);
        let out = last.ssh("hostname")?;
        assert!(
            out.status.success(),
            "ssh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = Instant::now();
        lab.teardown();
        let torn = t.elapsed();
        println!(
            "round {round}: {n} {}hosts with sshd built in {built:?}, torn down in {torn:?}",
            if fresh { "fresh " } else { "" }
        );
        builds.push(built);
    }
    builds.sort();
    println!(
        "median build time for {n} hosts: {:?}",
        builds[builds.len() / 2]
    );
    Ok(())
}
