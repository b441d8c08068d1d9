//! The hakube side of `scripts/bench-vs-ansible`: provisions N VMs (linked clone from the
//! node's template, cloud-init, start) on a fake or real PVE and prints the wall time.
//!
//! `cargo run -p hakube-proxmox-api --example bench_provision -- URL CA_PEM_FILE [COUNT] [NODES] [TASKS_PER_NODE]`

use std::time::Instant;

use hakube_proxmox_api::cloudinit::IpConfig;
use hakube_proxmox_api::provision::{CloudInit, NetSpec, ProvisionOptions, Provisioner, VmSpec};
use hakube_proxmox_api::{ClientBuilder, Secret, TlsTrust};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, ca, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: bench_provision URL CA_PEM_FILE [COUNT] [NODES] [TASKS_PER_NODE]".into(),
        );
    };
    let count: u32 = rest.first().map_or(Ok(12), |s| s.parse())?;
    let nodes: u32 = rest.get(1).map_or(Ok(3), |s| s.parse())?;
    let per_node: usize = rest.get(2).map_or(Ok(3), |s| s.parse())?;
    let started = Instant::now();
    let client = ClientBuilder::new(url)
        .password("root@pam", Secret::new("secret"))
        .trust(TlsTrust::CaPem(std::fs::read_to_string(ca)?))
        .node_concurrency(per_node)
        .build()?;
    let specs: Vec<VmSpec> = (0..count)
        .map(|i| {
            let node = i % nodes + 1;
            let mut s = VmSpec::new(
                format!("vm-{}", i + 1),
                format!("pve{node}"),
                200 + i,
                9000 + node,
            );
            s.cores = 2;
            s.memory_mib = 4096;
            s.network = Some(NetSpec {
                model: "virtio".into(),
                bridge: "vmbr0".into(),
                vlan: None,
            });
            s.cloud_init = Some(CloudInit {
                user: Some("hakube".into()),
                ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKey bench@hakube".into()],
                // 10.20.0.11/16 upwards: room for thousands of VMs.
                ip: IpConfig::static_v4(
                    &format!("10.20.{}.{}/16", (11 + i) / 254, (11 + i) % 254),
                    "10.20.0.1".parse().ok(),
                )
                .ok(),
                nameservers: Vec::new(),
                search_domains: Vec::new(),
            });
            s
        })
        .collect();
    let mut opts = ProvisionOptions::new("hakube-bench");
    opts.tasks_per_node = per_node;
    opts.agent_timeout = None;
    let report = Provisioner::new(client, opts).apply(&specs).await?;
    let secs = started.elapsed().as_secs_f64();
    if !report.is_success() {
        eprint!("{report}");
        return Err("provisioning failed".into());
    }
    println!(
        "{{\"seconds\": {secs:.3}, \"changes\": {}}}",
        report.changes()
    );
    Ok(())
}
