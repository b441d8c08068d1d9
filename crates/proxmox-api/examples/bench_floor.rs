//! The floor `scripts/bench-scale` compares the provisioner with: the same VMs made by an
//! oracle that knows every task's duration in advance and sends only what creating them
//! takes, on the same client (HTTP stack, TLS, per-node write limit).
//!
//! Per VM: the clone, one status request when the clone is due to end (more only if it has
//! not), the config write, the start, one status request when the start is due to end. No
//! observation, no listing, no check that would make a re-run safe: five requests a VM.
//! Its wall time over the Proxmox-side critical path is what the fake and this host allow
//! any client; the provisioner's own cost is its wall time over this one.
//!
//! `cargo run --release -p hakube-proxmox-api --example bench_floor -- URL CA_PEM_FILE COUNT NODES TASKS_PER_NODE CLONE_S CONFIG_S START_S`
//!
//! (the durations are the fake's, in real seconds: PVE's durations times the time scale).

use std::time::{Duration, Instant};

use hakube_proxmox_api::{
    Client, ClientBuilder, CloneOptions, Error, Params, Secret, TlsTrust, Upid,
};

/// Waits for `upid` to stop, first looking when it is due (`after`), then every 10 ms.
async fn wait_due(c: &Client, upid: &Upid, after: Duration) -> Result<(), Error> {
    tokio::time::sleep(after).await;
    loop {
        let st = c.task_status(upid).await?;
        if !st.is_running() {
            return match st.exitstatus.as_deref() {
                Some("OK") => Ok(()),
                other => Err(Error::Invalid {
                    field: upid.to_string(),
                    reason: format!("task ended with {other:?}"),
                }),
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One VM: clone, config, start, as `bench_provision` makes it.
async fn make_vm(c: &Client, i: u32, nodes: u32, due: [Duration; 3]) -> Result<(), Error> {
    let node = format!("pve{}", i % nodes + 1);
    let (vmid, template) = (200 + i, 9000 + i % nodes + 1);
    let opts = CloneOptions {
        name: Some(format!("vm-{}", i + 1)),
        full: Some(false),
        description: Some("managed-by: hakube-bench".into()),
        ..CloneOptions::default()
    };
    let upid = c.qemu_clone(&node, template, vmid, &opts).await?;
    wait_due(c, &upid, due[0]).await?;
    let ip = format!(
        "ip=10.20.{}.{}/16,gw=10.20.0.1",
        (11 + i) / 254,
        (11 + i) % 254
    );
    let p = Params::new()
        .set("cores", 2)
        .set("memory", 4096)
        .set("tags", "hakube-bench")
        .set("onboot", 1)
        .set("net0", "virtio,bridge=vmbr0")
        .set("ciuser", "hakube")
        .set(
            "sshkeys",
            "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIBenchKey%20bench%40hakube",
        )
        .set("ipconfig0", ip);
    // Synchronous in PVE: the answer comes when the write is done (`due[1]` later).
    c.qemu_set_config(&node, vmid, &p).await?;
    let upid = c.qemu_start(&node, vmid).await?;
    wait_due(c, &upid, due[2]).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, ca, count, nodes, per_node, clone_s, config_s, start_s] = args.as_slice() else {
        return Err("usage: bench_floor URL CA_PEM_FILE COUNT NODES TASKS_PER_NODE CLONE_S CONFIG_S START_S".into());
    };
    let (count, nodes): (u32, u32) = (count.parse()?, nodes.parse()?);
    let secs = |s: &str| s.parse::<f64>().map(Duration::from_secs_f64);
    let due = [secs(clone_s)?, secs(config_s)?, secs(start_s)?];
    let started = Instant::now();
    let client = ClientBuilder::new(url)
        .password("root@pam", Secret::new("secret"))
        .trust(TlsTrust::CaPem(std::fs::read_to_string(ca)?))
        .node_concurrency(per_node.parse()?)
        .build()?;
    client.login().await?;
    let runs = (0..count).map(|i| make_vm(&client, i, nodes, due));
    let failed = futures::future::join_all(runs)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect::<Vec<_>>();
    if let Some(e) = failed.first() {
        return Err(format!("{} of {count} VMs failed; the first: {e}", failed.len()).into());
    }
    println!(
        "{{\"seconds\": {:.3}, \"changes\": {}}}",
        started.elapsed().as_secs_f64(),
        count * 3
    );
    Ok(())
}
