//! Inputs for the hakube benchmarks: the seed cluster and generated large topologies.

/// The seed cluster's topology file.
pub const SEED: &str = include_str!("../examples/seed-cluster.yaml");

/// A topology file with `workers` workers (two groups) on `nodes` Proxmox nodes, otherwise
/// like the seed: the shape of a large real cluster, written out as YAML so parsing is measured.
#[must_use]
pub fn large_topology(workers: u32, nodes: u32) -> String {
    use std::fmt::Write as _;
    let mut s = SEED.to_owned();
    // Proxmox nodes.
    let start = s.find("  nodes:\n").expect("seed has nodes");
    let end = s.find("  storage:").expect("seed has storage");
    let mut list = String::from("  nodes:\n");
    for i in 1..=nodes {
        let _ = writeln!(
            list,
            "    - name: pve{i}\n      capacity: {{ cores: 512, memory_mib: 2097152, disk_gib: 20000 }}\n      template: {}",
            9000 + i
        );
    }
    s.replace_range(start..end, &list);
    let half = workers / 2;
    s = s
        .replacen(
            "count: 3\n      labels: { environment: prod",
            &format!(
                "count: {}\n      labels: {{ environment: prod",
                workers - half
            ),
            1,
        )
        .replacen(
            "count: 3\n      size: { cores: 4",
            &format!("count: {half}\n      size: {{ cores: 4"),
            1,
        )
        .replace("cidr: 10.20.0.0/24", "cidr: 10.20.0.0/20")
        .replace("clients: [10.20.0.0/24]", "clients: [10.20.0.0/20]")
        .replace(
            "allocate: { first: 10.20.0.11, last: 10.20.0.99 }",
            "allocate: { first: 10.20.0.11, last: 10.20.15.250 }",
        )
        .replace(
            "vmids: { first: 200, last: 299 }",
            "vmids: { first: 1000, last: 8999 }",
        );
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn large_topology_is_valid() {
        let c = hakube_topology::load(&super::large_topology(1000, 50), "large").expect("valid");
        assert_eq!(
            c.vms_with_role(hakube_topology::RoleKind::Worker).count(),
            1000
        );
        assert_eq!(c.node_totals().len(), 50);
    }
}
