//! What the picture says, shared by both forms: the Proxmox nodes as columns, the tiers as
//! rows, and the lines of text each box carries (titles, tiers, VMs, exports, observability).

use std::fmt::Write as _;

use hakube_topology::{Cluster, LogAgent, ReclaimPolicy, RoleKind, TlsMode, Vm};

/// The Kubernetes API port HAProxy serves on the VIP and the masters listen on.
pub(super) const API_PORT: u16 = crate::policy::API_PORT;

/// The tiers, top to bottom: traffic enters at the load balancers; the NFS row sits under the
/// workers that mount it.
pub(super) const ROWS: [RoleKind; 5] = [
    RoleKind::LoadBalancer,
    RoleKind::ControlPlane,
    RoleKind::Vault,
    RoleKind::Worker,
    RoleKind::Nfs,
];

/// One Proxmox node and the VMs placed on it.
pub(super) struct Column<'a> {
    /// The node's name.
    pub(super) name: &'a str,
    /// Its VMs, in the topology's order.
    pub(super) vms: Vec<&'a Vm>,
}

/// The Proxmox nodes in the topology's order (plus any node a VM names that the topology does
/// not list, so no VM goes missing from the picture).
pub(super) fn columns(cluster: &Cluster) -> Vec<Column<'_>> {
    let mut names: Vec<&str> = cluster
        .topology
        .proxmox
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    for vm in &cluster.vms {
        if !names.contains(&vm.proxmox_node.as_str()) {
            names.push(&vm.proxmox_node);
        }
    }
    names
        .into_iter()
        .map(|name| Column {
            name,
            vms: cluster
                .vms
                .iter()
                .filter(|v| v.proxmox_node == name)
                .collect(),
        })
        .collect()
}

/// Memory as people read it: whole GiB, else MiB.
fn mem(mib: u64) -> String {
    if mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{mib} MiB")
    }
}

/// The title: the cluster, its size and its networks.
pub(super) fn title_lines(cluster: &Cluster) -> Vec<String> {
    let t = &cluster.topology;
    vec![
        format!(
            "{}: {} VMs on {} Proxmox nodes",
            t.cluster.name,
            cluster.vms.len(),
            columns(cluster).len()
        ),
        format!(
            "Kubernetes {} · node network {} · pods {} · services {} (Calico)",
            cluster.kubernetes_version,
            t.network.cidr,
            t.kubernetes.pod_cidr,
            t.kubernetes.service_cidr
        ),
    ]
}

/// A Proxmox node's header: its name and what its VMs take.
pub(super) fn column_lines(col: &Column<'_>) -> Vec<String> {
    let cores: u64 = col.vms.iter().map(|v| u64::from(v.size.cores)).sum();
    let memory: u64 = col.vms.iter().map(|v| v.size.memory_mib).sum();
    let disk: u64 = col.vms.iter().map(|v| v.size.disk_gib).sum();
    vec![
        format!("Proxmox node {}", col.name),
        format!(
            "{} VMs · {cores} cores · {} RAM",
            col.vms.len(),
            mem(memory)
        ),
        format!("{disk} GiB disk"),
    ]
}

/// A VM's box: name, address, VMID, size, worker group and taints.
pub(super) fn vm_lines(vm: &Vm) -> Vec<String> {
    let mut lines = vec![
        vm.name.clone(),
        format!("{} · vmid {}", vm.address, vm.vmid),
        format!(
            "{} cores · {} · {} GiB",
            vm.size.cores,
            mem(vm.size.memory_mib),
            vm.size.disk_gib
        ),
    ];
    if let Some(g) = &vm.group {
        lines.push(format!("group {g}"));
    }
    for t in &vm.taints {
        let value = t
            .value
            .as_deref()
            .map(|v| format!("={v}"))
            .unwrap_or_default();
        lines.push(format!("taint {}{value}:{}", t.key, t.effect.as_str()));
    }
    lines
}

/// Whether Vault runs on VMs (behind the VIP).
pub(super) fn has_vault_vms(cluster: &Cluster) -> bool {
    cluster.vms_with_role(RoleKind::Vault).next().is_some()
}

/// The ingress hop HAProxy makes: `:80 → :30080 · :443 → :30443`.
pub(super) fn ingress_ports(cluster: &Cluster) -> String {
    let i = &cluster.topology.ingress;
    format!(
        ":80 → :{} · :443 → :{}",
        i.http_node_port, i.https_node_port
    )
}

/// A tier's label: what runs there and on which ports.
pub(super) fn tier_lines(cluster: &Cluster, role: RoleKind) -> Vec<String> {
    let t = &cluster.topology;
    let vault_port = hakube_haproxy_config::reference::VAULT_PORT;
    match role {
        RoleKind::LoadBalancer => {
            let mut ports = format!("HAProxy :{API_PORT} :80 :443");
            if has_vault_vms(cluster) {
                let _ = write!(ports, " :{vault_port}");
            }
            vec![
                "load balancers".to_owned(),
                format!("VIP {}", t.network.vip),
                format!("keepalived, VRRP id {}", t.network.virtual_router_id),
                ports,
            ]
        }
        RoleKind::ControlPlane => vec![
            "control plane (kubeadm)".to_owned(),
            format!("kube-apiserver :{API_PORT}"),
            format!(
                "stacked etcd, {} members",
                cluster.vms_with_role(RoleKind::ControlPlane).count()
            ),
        ],
        RoleKind::Vault => vec![
            "Vault (OpenBao, raft)".to_owned(),
            format!(":{vault_port} behind the VIP"),
            "cert-manager's issuer".to_owned(),
        ],
        RoleKind::Worker => {
            let groups: Vec<&str> = t.workers.groups.iter().map(|g| g.name.as_str()).collect();
            vec![
                format!("workers: {}", groups.join(", ")),
                "Traefik NodePorts".to_owned(),
                ingress_ports(cluster),
                match t.ingress.tls {
                    TlsMode::Passthrough => "TLS ends at Traefik".to_owned(),
                    TlsMode::Terminate => "TLS ends at HAProxy".to_owned(),
                },
            ]
        }
        RoleKind::Nfs => {
            let exports = t.nfs.as_ref().map_or(0, |n| n.exports.len());
            vec![
                "NFS server".to_owned(),
                format!(
                    "{exports} exports, {} StorageClasses",
                    t.storage_classes.len()
                ),
                "volumes: one directory per PVC".to_owned(),
            ]
        }
    }
}

/// A StorageClass's reclaim policy as Kubernetes spells it.
pub(super) fn reclaim(policy: ReclaimPolicy) -> &'static str {
    match policy {
        ReclaimPolicy::Retain => "Retain",
        ReclaimPolicy::Delete => "Delete",
    }
}

/// Whether two export paths name the same directory (a trailing `/` aside).
pub(super) fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// One export: its path and what it serves.
pub(super) struct ExportFacts {
    /// The exported directory.
    pub(super) path: String,
    /// What it backs: StorageClasses, etcd snapshots.
    pub(super) uses: Vec<String>,
    /// Whether the etcd snapshots go there.
    pub(super) etcd_backup: bool,
}

/// Every export of the NFS server with what it serves.
pub(super) fn exports(cluster: &Cluster) -> Vec<ExportFacts> {
    let t = &cluster.topology;
    let Some(nfs) = &t.nfs else {
        return Vec::new();
    };
    let etcd = t.backup.as_ref().and_then(|b| b.etcd.as_ref());
    nfs.exports
        .iter()
        .map(|e| {
            let mut uses: Vec<String> = t
                .storage_classes
                .iter()
                .filter(|c| same_path(&c.export, &e.path))
                .map(|c| {
                    let policy = reclaim(c.reclaim_policy);
                    let default = if c.default { ", default" } else { "" };
                    format!("StorageClass {} ({policy}{default})", c.name)
                })
                .collect();
            let etcd_backup = etcd.is_some_and(|b| same_path(&b.export, &e.path));
            if let Some(b) = etcd.filter(|_| etcd_backup) {
                uses.push(format!(
                    "etcd snapshots (cron {}), keep {}",
                    b.schedule, b.keep
                ));
            }
            ExportFacts {
                path: e.path.clone(),
                uses,
                etcd_backup,
            }
        })
        .collect()
}

/// The storage box: the exports and what they back, and the export snapshots.
pub(super) fn storage_lines(cluster: &Cluster) -> Vec<String> {
    let Some(nfs) = &cluster.topology.nfs else {
        return Vec::new();
    };
    let mut lines = vec![format!("NFS exports on {}", nfs.name)];
    for e in exports(cluster) {
        if e.uses.is_empty() {
            lines.push(e.path);
        } else {
            lines.push(format!("{} → {}", e.path, e.uses.join(", ")));
        }
    }
    if let Some(b) = cluster
        .topology
        .backup
        .as_ref()
        .and_then(|b| b.nfs.as_ref())
    {
        lines.push(format!(
            "export snapshots ({}) → {}, keep {}",
            b.schedule, b.target, b.keep
        ));
    }
    lines
}

/// The log agent's name.
pub(super) fn agent_name(agent: LogAgent) -> &'static str {
    match agent {
        LogAgent::Alloy => "Grafana Alloy",
        LogAgent::Promtail => "Promtail",
    }
}

/// The observability box, empty without monitoring and logging.
pub(super) fn observability_lines(cluster: &Cluster) -> Vec<String> {
    let a = &cluster.topology.addons;
    if !a.monitoring && !a.logging {
        return Vec::new();
    }
    let mut lines = vec!["observability (in the cluster)".to_owned()];
    if a.monitoring {
        lines.push("Prometheus · Grafana · kube-state-metrics · metrics-server".to_owned());
        lines.push(format!(
            "scrapes masters, workers, etcd, HAProxy :{}",
            hakube_haproxy_config::reference::STATS_PORT
        ));
    }
    if a.logging {
        lines.push(format!("Loki ← {} on every node", agent_name(a.log_agent)));
    }
    lines
}

/// The roles that have VMs, in row order.
pub(super) fn rows(cluster: &Cluster) -> Vec<RoleKind> {
    ROWS.into_iter()
        .filter(|r| cluster.vms_with_role(*r).next().is_some())
        .collect()
}

/// Fill and stroke per role.
pub(super) fn colours(role: RoleKind) -> (&'static str, &'static str) {
    match role {
        RoleKind::LoadBalancer => ("#fde68a", "#b45309"),
        RoleKind::ControlPlane => ("#bfdbfe", "#1d4ed8"),
        RoleKind::Worker => ("#bbf7d0", "#15803d"),
        RoleKind::Nfs => ("#e9d5ff", "#7e22ce"),
        RoleKind::Vault => ("#fecaca", "#b91c1c"),
    }
}
