//! What the topology alone knows: `plan.json`, the topology's JSON Schema, and per VM its
//! hostname, `/etc/hosts` and a cloud-init network config.

use std::fmt::Write as _;

use hakube_host_state::{Exec, HostPlan};
use hakube_topology::{Cluster, Vm};
use serde::Serialize;

use crate::{Error, PlanOptions, PlanTree};

/// The machine-readable plan: the placed cluster, per-node totals and the policy it was
/// rendered with.
#[derive(Serialize)]
struct PlanJson<'a> {
    /// Bumped when the shape changes.
    format: u32,
    #[serde(flatten)]
    cluster: &'a Cluster,
    node_totals: Vec<hakube_topology::NodeTotals>,
    /// What the plan chose where the topology says nothing.
    policy: &'a PlanOptions,
}

/// The name `/etc/hosts` gives the VIP.
pub(crate) fn api_name(cluster: &Cluster) -> String {
    format!("{}-api", cluster.topology.cluster.name)
}

pub(crate) fn render(
    cluster: &Cluster,
    options: &PlanOptions,
    tree: &mut PlanTree,
) -> Result<(), Error> {
    let json = PlanJson {
        format: 1,
        cluster,
        node_totals: cluster.node_totals(),
        policy: options,
    };
    let mut text = serde_json::to_string_pretty(&json).map_err(|e| Error::Component {
        component: "plan",
        source: e.into(),
    })?;
    text.push('\n');
    tree.insert("plan.json".into(), text, 0o644)?;
    let mut schema =
        serde_json::to_string_pretty(&hakube_topology::json_schema()).unwrap_or_default();
    schema.push('\n');
    tree.insert("topology.schema.json".into(), schema, 0o644)?;

    let hosts = etc_hosts(cluster);
    for vm in &cluster.vms {
        tree.host_file(&vm.name, "/etc/hostname", format!("{}\n", vm.name), 0o644)?;
        // Cloud-init names the VM at first boot; this only corrects a VM renamed since.
        tree.host_items(HostPlan::new(&vm.name).exec(Exec::unless(
            "hostname",
            ["hostnamectl", "set-hostname", &vm.name],
            ["sh", "-c", &format!("test \"$(hostname)\" = {}", vm.name)],
        )))?;
        tree.host_file(&vm.name, "/etc/hosts", hosts.clone(), 0o644)?;
        tree.host_file(
            &vm.name,
            "/etc/cloud/cloud.cfg.d/99-hakube-network.cfg",
            network_config(cluster, vm),
            0o644,
        )?;
    }
    Ok(())
}

/// Every name `/etc/hosts` gives the VIP: the fully qualified one (with a search domain)
/// and the short one.
pub(crate) fn api_names(cluster: &Cluster) -> Vec<String> {
    let short = api_name(cluster);
    match cluster.topology.network.search_domain.as_deref() {
        Some(d) => vec![format!("{short}.{d}"), short],
        None => vec![short],
    }
}

/// `/etc/hosts` for every VM: localhost, the VIP, then every VM.
fn etc_hosts(cluster: &Cluster) -> String {
    let t = &cluster.topology;
    let domain = t.network.search_domain.as_deref();
    let mut s = String::from(
        "# Written by hakube from the topology; do not edit.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    let line = |s: &mut String, addr: &dyn std::fmt::Display, name: &str| {
        let _ = match domain {
            Some(d) => writeln!(s, "{addr}\t{name}.{d} {name}"),
            None => writeln!(s, "{addr}\t{name}"),
        };
    };
    let _ = writeln!(s, "{}\t{}", t.network.vip, api_names(cluster).join(" "));
    for vm in &cluster.vms {
        line(&mut s, &vm.address, &vm.name);
    }
    s
}

/// A cloud-init network config (version 2) with the VM's static address.
fn network_config(cluster: &Cluster, vm: &Vm) -> String {
    let net = &cluster.topology.network;
    let mut s = String::new();
    let _ = writeln!(s, "# Written by hakube from the topology; do not edit.");
    let _ = writeln!(
        s,
        "network:\n  version: 2\n  ethernets:\n    {}:",
        net.interface
    );
    let _ = writeln!(
        s,
        "      dhcp4: false\n      addresses: [{}/{}]",
        vm.address,
        net.cidr.prefix_len()
    );
    let _ = writeln!(
        s,
        "      routes:\n        - to: default\n          via: {}",
        net.gateway
    );
    if !net.dns.is_empty() || net.search_domain.is_some() {
        let _ = writeln!(s, "      nameservers:");
        if !net.dns.is_empty() {
            let dns: Vec<String> = net.dns.iter().map(ToString::to_string).collect();
            let _ = writeln!(s, "        addresses: [{}]", dns.join(", "));
        }
        if let Some(d) = &net.search_domain {
            let _ = writeln!(s, "        search: [{d}]");
        }
    }
    s
}
