//! The static rules: everything that can be checked before names, addresses and VMIDs exist.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::Rule;
use crate::model::{EtcdBackup, NfsBackup, Role, TlsMode, Topology, VaultPlacement, VmSize};
pub use hakube_host_state::{is_dns_label, is_dns_name};

/// Collects problems by path; positions are filled in by the caller.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub(crate) errors: Vec<(Rule, String, String)>,
    pub(crate) warnings: Vec<(Rule, String, String)>,
}

impl Findings {
    pub(crate) fn error(&mut self, rule: Rule, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push((rule, path.into(), msg.into()));
    }

    pub(crate) fn warn(&mut self, rule: Rule, path: impl Into<String>, msg: impl Into<String>) {
        self.warnings.push((rule, path.into(), msg.into()));
    }
}

/// The lowest VMID Proxmox accepts for guests.
pub const VMID_MIN: u32 = 100;
/// The highest VMID Proxmox accepts.
pub const VMID_MAX: u32 = 999_999_999;
/// The Kubernetes NodePort range.
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Whether `s` is a Kubernetes label or taint key (`[prefix/]name`).
fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_name) && is_label_value(name) && !name.is_empty()
}

/// Whether `s` is a Kubernetes label value (empty, or 63 alphanumerics with `-_.` inside).
fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

/// Parses a pinned Kubernetes version (`1.34.2` or `v1.34.2`).
pub(crate) fn parse_k8s_version(v: &str) -> Result<semver::Version, String> {
    let s = v.strip_prefix('v').unwrap_or(v);
    let parsed = semver::Version::parse(s)
        .map_err(|e| format!("`{v}` is not a pinned Kubernetes version like `1.34.2` ({e})"))?;
    if parsed.major != 1 || parsed.minor < 25 {
        return Err(format!(
            "`{v}`: hakube supports Kubernetes 1.25 and later (kubeadm v1beta4 needs 1.31+ for every field)"
        ));
    }
    Ok(parsed)
}

fn check_size(f: &mut Findings, path: &str, s: &VmSize, min_mem: u64, min_disk: u64) {
    if s.cores == 0 {
        f.error(
            Rule::Size,
            format!("{path}.cores"),
            "a VM needs at least 1 core",
        );
    }
    if s.memory_mib < min_mem {
        f.error(
            Rule::Size,
            format!("{path}.memory_mib"),
            format!(
                "{} MiB is below the {min_mem} MiB this role needs",
                s.memory_mib
            ),
        );
    }
    if s.disk_gib < min_disk {
        f.error(
            Rule::Size,
            format!("{path}.disk_gib"),
            format!(
                "{} GiB is below the {min_disk} GiB this role needs",
                s.disk_gib
            ),
        );
    }
}

fn check_role(f: &mut Findings, path: &str, r: &Role, min_mem: u64) {
    check_size(f, &format!("{path}.size"), &r.size, min_mem, 8);
    if let Some(a) = &r.addresses
        && a.len() != r.count as usize
    {
        f.error(
            Rule::AddressPool,
            format!("{path}.addresses"),
            format!(
                "{} static addresses for {} VMs: give one per VM, or none to allocate",
                a.len(),
                r.count
            ),
        );
    }
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    hakube_host_state::nets_overlap(a.into(), b.into())
}

/// Every static rule, section by section in the file's order.
pub(crate) fn check(t: &Topology, f: &mut Findings) {
    check_cluster(t, f);
    check_proxmox(t, f);
    check_network(t, f);
    check_roles(t, f);
    check_workers(t, f);
    check_storage(t, f);
    check_kubernetes(t, f);
    check_ingress(t, f);
    check_addons(t, f);
    check_vault(t, f);
    check_ssh(t, f);
}

/// `cluster`: the name.
fn check_cluster(t: &Topology, f: &mut Findings) {
    if !is_dns_label(&t.cluster.name) {
        f.error(
            Rule::InvalidName,
            "cluster.name",
            format!(
                "`{}` is not a DNS label (lowercase letters, digits, `-`, at most 63)",
                t.cluster.name
            ),
        );
    }
}

/// `proxmox`: the API URL, nodes, templates, VLAN, storage and bridge, the VMID range.
fn check_proxmox(t: &Topology, f: &mut Findings) {
    let px = &t.proxmox;
    if !(px.api_url.starts_with("https://") && px.api_url.len() > "https://".len()) {
        f.error(
            Rule::Proxmox,
            "proxmox.api_url",
            format!(
                "`{}` must be an https:// URL (the API is TLS only)",
                px.api_url
            ),
        );
    }
    if px.nodes.is_empty() {
        f.error(
            Rule::Proxmox,
            "proxmox.nodes",
            "at least one Proxmox node is needed",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, n) in px.nodes.iter().enumerate() {
        if !is_dns_label(&n.name) {
            f.error(
                Rule::InvalidName,
                format!("proxmox.nodes[{i}].name"),
                format!("`{}` is not a valid Proxmox node name", n.name),
            );
        }
        if !seen.insert(n.name.as_str()) {
            f.error(
                Rule::DuplicateName,
                format!("proxmox.nodes[{i}].name"),
                format!("Proxmox node `{}` is listed twice", n.name),
            );
        }
        if let Some(v) = n.template
            && !(VMID_MIN..=VMID_MAX).contains(&v)
        {
            f.error(
                Rule::VmidRange,
                format!("proxmox.nodes[{i}].template"),
                format!("template VMID {v} is outside {VMID_MIN}-{VMID_MAX}"),
            );
        }
    }
    match &px.template {
        Some(s) => {
            if !px.nodes.iter().any(|n| n.name == s.node) {
                f.error(
                    Rule::Template,
                    "proxmox.template.node",
                    format!("`{}` is not one of proxmox.nodes", s.node),
                );
            }
            if !(VMID_MIN..=VMID_MAX).contains(&s.vmid) {
                f.error(
                    Rule::VmidRange,
                    "proxmox.template.vmid",
                    format!("template VMID {} is outside {VMID_MIN}-{VMID_MAX}", s.vmid),
                );
            }
        }
        None => {
            for (i, n) in px.nodes.iter().enumerate() {
                if n.template.is_none() {
                    f.error(Rule::Template, format!("proxmox.nodes[{i}].template"), format!("node `{}` has no template: give every node its own template VMID, or one shared one in proxmox.template", n.name));
                }
            }
        }
    }
    if let Some(v) = px.vlan
        && !(1..=4094).contains(&v)
    {
        f.error(
            Rule::Proxmox,
            "proxmox.vlan",
            format!("VLAN tag {v} is outside 1-4094"),
        );
    }
    for (name, val) in [
        ("proxmox.storage", &px.storage),
        ("proxmox.bridge", &px.bridge),
    ] {
        if val.is_empty() || val.contains(|c: char| c.is_whitespace() || c == ',' || c == '=') {
            f.error(
                Rule::Proxmox,
                name,
                format!("`{val}` is not a valid Proxmox identifier"),
            );
        }
    }
    let r = px.vmids;
    if r.first < VMID_MIN || r.last > VMID_MAX || r.first > r.last {
        f.error(
            Rule::VmidRange,
            "proxmox.vmids",
            format!(
                "{}-{} must lie within {VMID_MIN}-{VMID_MAX}, first <= last",
                r.first, r.last
            ),
        );
    }
}

/// `network`: no overlap between the node, pod and service networks; the gateway, VIP, interface, VRRP id and allocation pool.
fn check_network(t: &Topology, f: &mut Findings) {
    let net = &t.network;
    let k = &t.kubernetes;
    let nets = [
        ("network.cidr", net.cidr),
        ("kubernetes.pod_cidr", k.pod_cidr),
        ("kubernetes.service_cidr", k.service_cidr),
    ];
    for i in 0..nets.len() {
        for j in i + 1..nets.len() {
            if overlaps(nets[i].1, nets[j].1) {
                let hint = if nets[j].0 == "kubernetes.pod_cidr"
                    || nets[i].0 == "kubernetes.pod_cidr"
                {
                    " (Calico's default 192.168.0.0/16 overlapping a LAN is the classic case: pick a pod network no host uses)"
                } else {
                    ""
                };
                f.error(
                    Rule::CidrOverlap,
                    nets[j].0,
                    format!("{} overlaps {} {}{hint}", nets[j].1, nets[i].0, nets[i].1),
                );
            }
        }
    }
    let mut special: Vec<(String, Ipv4Addr)> = vec![
        ("network.gateway".into(), net.gateway),
        ("network.vip".into(), net.vip),
    ];
    // DNS servers may live outside the node network (routed); only the VIP and gateway must be on-link.
    if let Some(s) = &net.search_domain
        && !is_dns_name(s)
    {
        f.error(
            Rule::InvalidName,
            "network.search_domain",
            format!("`{s}` is not a DNS name"),
        );
    }
    if net.interface.is_empty()
        || net.interface.len() > 15
        || net
            .interface
            .contains(|c: char| c.is_whitespace() || c == '/' || c == '#')
    {
        f.error(
            Rule::InvalidName,
            "network.interface",
            format!("`{}` is not a Linux interface name", net.interface),
        );
    }
    for (path, a) in &mut special {
        check_node_addr(f, t, path, *a);
    }
    if net.virtual_router_id == 0 {
        f.error(
            Rule::Vrrp,
            "network.virtual_router_id",
            "0 is not a VRRP router id: use 1-255",
        );
    }
    if net.gateway == net.vip {
        f.error(
            Rule::AddressDuplicate,
            "network.vip",
            format!("{} is also the gateway", net.vip),
        );
    }
    if let Some(pool) = net.allocate
        && (!net.cidr.contains(&pool.first)
            || !net.cidr.contains(&pool.last)
            || pool.first > pool.last)
    {
        f.error(
            Rule::AddressPool,
            "network.allocate",
            format!(
                "{}-{} must lie inside {} with first <= last",
                pool.first, pool.last, net.cidr
            ),
        );
    }
}

/// `loadbalancers` and `control_plane`: counts (etcd quorum) and sizes.
fn check_roles(t: &Topology, f: &mut Findings) {
    if t.loadbalancers.count == 0 {
        f.error(
            Rule::Count,
            "loadbalancers.count",
            "at least one load balancer must hold the VIP (three for HA)",
        );
    } else if t.loadbalancers.count == 1 {
        f.warn(
            Rule::Count,
            "loadbalancers.count",
            "one load balancer is a single point of failure; use 2 or 3",
        );
    }
    check_role(f, "loadbalancers", &t.loadbalancers, 512);
    let cp = t.control_plane.count;
    if cp == 0 {
        f.error(
            Rule::ControlPlaneQuorum,
            "control_plane.count",
            "at least one control-plane node is needed (three for HA)",
        );
    } else if cp == 1 {
        f.warn(Rule::ControlPlaneQuorum, "control_plane.count", "a single control-plane node has no etcd redundancy: fine for a lab, not for production");
    } else if cp.is_multiple_of(2) {
        f.error(Rule::ControlPlaneQuorum, "control_plane.count", format!("{cp} control-plane nodes: etcd needs a majority ({}) for quorum, so {cp} survive {} failure(s), no more than {}; use an odd count (3 or 5)", cp / 2 + 1, (cp - 1) / 2, cp - 1));
    }
    check_role(f, "control_plane", &t.control_plane, 2048);
}

/// `workers`: at least one, sizes, unique group names, addresses, labels and taints.
fn check_workers(t: &Topology, f: &mut Findings) {
    let w = &t.workers;
    if w.groups.is_empty() || w.groups.iter().all(|g| g.count == 0) {
        f.error(
            Rule::Count,
            "workers.groups",
            "at least one worker is needed: masters run no workloads",
        );
    }
    check_size(f, "workers.size", &w.size, 1024, 8);
    let mut groups = BTreeSet::new();
    for (i, g) in w.groups.iter().enumerate() {
        let p = format!("workers.groups[{i}]");
        if !is_dns_label(&g.name) {
            f.error(
                Rule::InvalidName,
                format!("{p}.name"),
                format!("`{}` is not a DNS label", g.name),
            );
        }
        if !groups.insert(g.name.as_str()) {
            f.error(
                Rule::DuplicateName,
                format!("{p}.name"),
                format!("worker group `{}` is defined twice", g.name),
            );
        }
        if let Some(s) = &g.size {
            check_size(f, &format!("{p}.size"), s, 1024, 8);
        }
        if let Some(a) = &g.addresses
            && a.len() != g.count as usize
        {
            f.error(
                Rule::AddressPool,
                format!("{p}.addresses"),
                format!("{} static addresses for {} VMs", a.len(), g.count),
            );
        }
        for (key, val) in &g.labels {
            if !is_label_key(key) || !is_label_value(val) {
                f.error(
                    Rule::InvalidName,
                    format!("{p}.labels.{key}"),
                    format!("`{key}={val}` is not a valid Kubernetes label"),
                );
            }
        }
        for (j, taint) in g.taints.iter().enumerate() {
            if !is_label_key(&taint.key) || !taint.value.as_deref().is_none_or(is_label_value) {
                f.error(
                    Rule::InvalidName,
                    format!("{p}.taints[{j}]"),
                    format!("`{}` is not a valid taint key/value", taint.key),
                );
            }
        }
    }
}

/// `nfs`, `storage_classes` and `backup`.
fn check_storage(t: &Topology, f: &mut Findings) {
    let export_paths = check_exports(t, f);
    let defaults = check_storage_classes(t, f, &export_paths);
    check_export_use(t, f);
    if let Some(b) = t.backup.as_ref().and_then(|b| b.etcd.as_ref()) {
        check_etcd_backup(f, t, b);
    }
    if let Some(b) = t.backup.as_ref().and_then(|b| b.nfs.as_ref()) {
        check_nfs_backup(f, t, b);
    }
    if defaults > 1 {
        f.error(
            Rule::StorageClass,
            "storage_classes",
            "more than one StorageClass is marked default",
        );
    }
}

/// `nfs`: size and exports (absolute, clean, neither twice nor nested, clients on the node
/// network). Returns the export paths without trailing `/`.
fn check_exports(t: &Topology, f: &mut Findings) -> BTreeSet<String> {
    let net = &t.network;
    let mut export_paths = BTreeSet::new();
    if let Some(nfs) = &t.nfs {
        check_size(f, "nfs.size", &nfs.size, 512, 8);
        for (i, e) in nfs.exports.iter().enumerate() {
            let p = format!("nfs.exports[{i}]");
            if !e.path.starts_with('/') {
                f.error(
                    Rule::ExportPath,
                    format!("{p}.path"),
                    format!("`{}` must be an absolute path", e.path),
                );
                continue;
            }
            if e.path
                .contains(|c: char| c.is_whitespace() || c == '#' || c == '"')
                || e.path.split('/').any(|s| s == ".." || s == ".")
            {
                f.error(
                    Rule::ExportPath,
                    format!("{p}.path"),
                    format!(
                        "`{}` contains whitespace, `#`, quotes or dot segments",
                        e.path
                    ),
                );
                continue;
            }
            let norm = e.path.trim_end_matches('/').to_owned();
            for other in &export_paths {
                let o: &String = other;
                if *o == norm {
                    f.error(
                        Rule::ExportPath,
                        format!("{p}.path"),
                        format!("`{}` is exported twice", e.path),
                    );
                } else if norm.starts_with(&format!("{o}/")) || o.starts_with(&format!("{norm}/")) {
                    f.error(
                        Rule::ExportPath,
                        format!("{p}.path"),
                        format!(
                            "`{}` and `{o}` are nested: one export would expose the other's data",
                            e.path
                        ),
                    );
                }
            }
            export_paths.insert(norm);
            for (j, c) in e.clients.iter().enumerate() {
                if !(net.cidr.contains(&c.network()) && c.prefix_len() >= net.cidr.prefix_len()) {
                    f.error(
                        Rule::ExportClient,
                        format!("{p}.clients[{j}]"),
                        format!("{c} is outside the node network {}", net.cidr),
                    );
                }
            }
        }
        if nfs.exports.is_empty() {
            f.error(
                Rule::ExportPath,
                "nfs.exports",
                "an NFS server needs at least one export",
            );
        }
    }
    export_paths
}

/// `storage_classes`: names, unique, each on an export. Returns how many are marked default.
fn check_storage_classes(t: &Topology, f: &mut Findings, export_paths: &BTreeSet<String>) -> usize {
    let mut classes = BTreeSet::new();
    let mut defaults = 0;
    for (i, sc) in t.storage_classes.iter().enumerate() {
        let p = format!("storage_classes[{i}]");
        if !is_dns_name(&sc.name) {
            f.error(
                Rule::InvalidName,
                format!("{p}.name"),
                format!("`{}` is not a valid StorageClass name", sc.name),
            );
        }
        if !classes.insert(sc.name.as_str()) {
            f.error(
                Rule::StorageClass,
                format!("{p}.name"),
                format!("StorageClass `{}` is defined twice", sc.name),
            );
        }
        if !export_paths.contains(sc.export.trim_end_matches('/')) {
            f.error(
                Rule::StorageClass,
                format!("{p}.export"),
                format!("`{}` is not one of nfs.exports", sc.export),
            );
        }
        defaults += usize::from(sc.default);
    }
    defaults
}

/// Each export backs exactly one StorageClass, or holds the etcd backups.
fn check_export_use(t: &Topology, f: &mut Findings) {
    let etcd_backup = t.backup.as_ref().and_then(|b| b.etcd.as_ref());
    let backup_export = etcd_backup.map(|b| b.export.trim_end_matches('/'));
    if let Some(nfs) = &t.nfs {
        for (i, e) in nfs.exports.iter().enumerate() {
            let path = e.path.trim_end_matches('/');
            let users = t
                .storage_classes
                .iter()
                .filter(|sc| sc.export.trim_end_matches('/') == path)
                .count();
            // The etcd backup export backs none; its own rule reports a StorageClass on it.
            if users != 1 && !(users == 0 && backup_export == Some(path)) {
                f.error(Rule::StorageClass, format!("nfs.exports[{i}].path"), format!("`{}` backs {users} StorageClasses: each export backs exactly one, or holds the etcd backups (separate exports keep environments and backups apart)", e.path));
            }
        }
    }
}

/// `kubernetes`: version, DNS domain, service network size.
fn check_kubernetes(t: &Topology, f: &mut Findings) {
    let net = &t.network;
    let k = &t.kubernetes;
    if let Err(m) = parse_k8s_version(&k.version) {
        f.error(Rule::KubernetesVersion, "kubernetes.version", m);
    }
    if !is_dns_name(&k.dns_domain) {
        f.error(
            Rule::InvalidName,
            "kubernetes.dns_domain",
            format!("`{}` is not a DNS name", k.dns_domain),
        );
    }
    if net.vip == k.service_cidr.network() || k.service_cidr.prefix_len() > 28 {
        f.error(
            Rule::AddressPool,
            "kubernetes.service_cidr",
            format!("{} is too small for cluster services", k.service_cidr),
        );
    }
}

/// `ingress`: NodePorts and TLS.
fn check_ingress(t: &Topology, f: &mut Findings) {
    let ing = &t.ingress;
    for (name, port) in [
        ("ingress.http_node_port", ing.http_node_port),
        ("ingress.https_node_port", ing.https_node_port),
    ] {
        if !NODE_PORT_RANGE.contains(&port) {
            f.error(
                Rule::NodePortRange,
                name,
                format!("{port} is outside the NodePort range 30000-32767"),
            );
        }
    }
    if ing.http_node_port == ing.https_node_port {
        f.error(
            Rule::NodePortDuplicate,
            "ingress.https_node_port",
            format!("{} is also the HTTP NodePort", ing.https_node_port),
        );
    }
    match (ing.tls, &ing.certificate) {
        (TlsMode::Terminate, None) => f.error(
            Rule::Ingress,
            "ingress.certificate",
            "tls: terminate needs the PEM path on the load balancers",
        ),
        (TlsMode::Terminate, Some(c)) if !c.starts_with('/') || c.contains(char::is_whitespace) => {
            f.error(
                Rule::Ingress,
                "ingress.certificate",
                format!("`{c}` must be an absolute path without spaces"),
            );
        }
        (TlsMode::Passthrough, Some(_)) => f.warn(
            Rule::Ingress,
            "ingress.certificate",
            "ignored with tls: passthrough (TLS ends at Traefik)",
        ),
        _ => {}
    }
}

/// `addons`: domains and the local StorageClass.
fn check_addons(t: &Topology, f: &mut Findings) {
    if let Some(d) = &t.addons.apps_domain
        && !is_dns_name(d)
    {
        f.error(
            Rule::InvalidName,
            "addons.apps_domain",
            format!("`{d}` is not a DNS name"),
        );
    }
    if let Some(c) = &t.addons.local_storage_class {
        if !is_dns_name(c) {
            f.error(
                Rule::InvalidName,
                "addons.local_storage_class",
                format!("`{c}` is not a StorageClass name"),
            );
        } else if t.storage_classes.iter().any(|sc| &sc.name == c) {
            f.error(Rule::StorageClass, "addons.local_storage_class", format!("`{c}` is an NFS class: Prometheus, Loki and Vault need local disks (fsync-heavy, NFS corrupts their data)"));
        }
    }
    if t.vault
        .as_ref()
        .is_some_and(|v| v.placement == VaultPlacement::InCluster)
        && t.addons.local_storage_class.is_none()
    {
        f.error(
            Rule::Vault,
            "vault.placement",
            "in_cluster Vault needs addons.local_storage_class for its raft data",
        );
    }
}

/// `vault`: placement and the VMs' count.
fn check_vault(t: &Topology, f: &mut Findings) {
    if let Some(v) = &t.vault {
        match (v.placement, &v.vms) {
            (VaultPlacement::Vms, None) => f.error(
                Rule::Vault,
                "vault.vms",
                "placement: vms needs the Vault VMs (count, size, name_pattern)",
            ),
            (VaultPlacement::Vms, Some(r)) => {
                check_role(f, "vault.vms", r, 512);
                if r.count == 0 || r.count % 2 == 0 {
                    f.error(
                        Rule::Vault,
                        "vault.vms.count",
                        format!("{} Vault nodes: raft needs an odd count (3 or 5)", r.count),
                    );
                }
            }
            (VaultPlacement::InCluster, Some(_)) => f.error(
                Rule::Vault,
                "vault.vms",
                "placement: in_cluster runs no Vault VMs; remove vault.vms",
            ),
            (VaultPlacement::InCluster, None) => {}
        }
    }
}

/// `ssh`: the user and the public keys.
fn check_ssh(t: &Topology, f: &mut Findings) {
    if !is_dns_label(&t.ssh.user) && t.ssh.user != "root" {
        f.error(
            Rule::Ssh,
            "ssh.user",
            format!("`{}` is not a valid user name", t.ssh.user),
        );
    }
    if t.ssh.public_keys.is_empty() {
        f.error(
            Rule::Ssh,
            "ssh.public_keys",
            "at least one public key is needed: hakube logs in by key only",
        );
    }
    for (i, key) in t.ssh.public_keys.iter().enumerate() {
        let mut parts = key.split_whitespace();
        let ok = matches!(parts.next(), Some(kind) if kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
            && parts.next().is_some_and(|b| {
                b.len() > 16
                    && b.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
            })
            && !key.contains('\n');
        if !ok {
            f.error(
                Rule::Ssh,
                format!("ssh.public_keys[{i}]"),
                "not an OpenSSH public key (`ssh-ed25519 AAAA... comment`)",
            );
        }
    }
}

/// The etcd backup: an export of its own, on the control-plane nodes only, a cron schedule and
/// at least one snapshot kept.
fn check_etcd_backup(f: &mut Findings, t: &Topology, b: &EtcdBackup) {
    let path = b.export.trim_end_matches('/');
    match &t.nfs {
        None => f.error(
            Rule::Backup,
            "backup.etcd.export",
            format!("`{}`: etcd backups go to an NFS export, and there is no nfs server", b.export),
        ),
        Some(nfs) => match nfs
            .exports
            .iter()
            .position(|e| e.path.trim_end_matches('/') == path)
        {
            None => f.error(
                Rule::Backup,
                "backup.etcd.export",
                format!("`{}` is not one of nfs.exports", b.export),
            ),
            Some(i) if !nfs.exports[i].clients.is_empty() => f.error(
                Rule::Backup,
                format!("nfs.exports[{i}].clients"),
                format!("`{}` holds the etcd snapshots (every Secret of the cluster): hakube exports it to the control-plane nodes only; remove its clients", nfs.exports[i].path),
            ),
            Some(_) => {}
        },
    }
    if let Some((i, sc)) = t
        .storage_classes
        .iter()
        .enumerate()
        .find(|(_, sc)| sc.export.trim_end_matches('/') == path)
    {
        f.error(
            Rule::Backup,
            "backup.etcd.export",
            format!("`{}` backs StorageClass `{}` (storage_classes[{i}]): its volumes' writers could read or delete the snapshots, which hold every Secret of the cluster; give the backups an export of their own", b.export, sc.name),
        );
    }
    if let Err(m) = check_cron(&b.schedule) {
        f.error(Rule::Backup, "backup.etcd.schedule", m);
    }
    if b.keep == 0 {
        f.error(
            Rule::Backup,
            "backup.etcd.keep",
            "keep at least one snapshot",
        );
    }
}

/// The NFS backup: an NFS server to run on, an absolute target outside every export, a
/// schedule systemd can read, at least one snapshot kept.
fn check_nfs_backup(f: &mut Findings, t: &Topology, b: &NfsBackup) {
    let target = b.target.trim_end_matches('/');
    if !b.target.starts_with('/') || b.target.contains(['\n', '\0', ' ']) || target.is_empty() {
        f.error(
            Rule::Backup,
            "backup.nfs.target",
            format!("`{}` is not an absolute directory path", b.target),
        );
    }
    match &t.nfs {
        None => f.error(
            Rule::Backup,
            "backup.nfs",
            "NFS backups run on the NFS server, and there is no nfs server",
        ),
        Some(nfs) => {
            let inside = |outer: &str, inner: &str| {
                inner == outer || inner.starts_with(&format!("{outer}/"))
            };
            for (i, e) in nfs.exports.iter().enumerate() {
                let path = e.path.trim_end_matches('/');
                if inside(path, target) || inside(target, path) {
                    f.error(
                        Rule::Backup,
                        "backup.nfs.target",
                        format!("`{}` overlaps nfs.exports[{i}] `{}`: a backup inside what it backs up is copied into itself and lost with it", b.target, e.path),
                    );
                }
            }
        }
    }
    if b.schedule.trim().is_empty()
        || !b
            .schedule
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " *-:/,.~".contains(c))
    {
        f.error(
            Rule::Backup,
            "backup.nfs.schedule",
            format!(
                "`{}` is not a systemd OnCalendar= expression (e.g. `daily` or `*-*-* 02:30:00`)",
                b.schedule
            ),
        );
    }
    if b.keep == 0 {
        f.error(
            Rule::Backup,
            "backup.nfs.keep",
            "keep at least one snapshot",
        );
    }
}

/// Checks a 5-field cron schedule as Kubernetes CronJobs read it: minute, hour, day of month,
/// month, day of week; each a comma list of `*`, `N` or `N-M`, optionally `/step`; month and
/// day of week also by name (`jan`, `mon`), the two day fields also `?`.
pub(crate) fn check_cron(schedule: &str) -> Result<(), String> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "`{schedule}` is not a cron schedule of 5 fields (minute hour day-of-month month day-of-week), e.g. `0 */6 * * *`"
        ));
    }
    let specs: [(&str, u32, u32, &[&str]); 5] = [
        ("minute", 0, 59, &[]),
        ("hour", 0, 23, &[]),
        ("day of month", 1, 31, &[]),
        ("month", 1, 12, &MONTHS),
        ("day of week", 0, 6, &DAYS),
    ];
    for (i, (field, (name, lo, hi, names))) in fields.iter().zip(specs).enumerate() {
        let value = |s: &str| -> Option<u32> {
            let n = s.parse::<u32>().ok().or_else(|| {
                names
                    .iter()
                    .position(|m| m.eq_ignore_ascii_case(s))
                    .and_then(|p| u32::try_from(p).ok())
                    .map(|p| p + lo)
            })?;
            (lo..=hi).contains(&n).then_some(n)
        };
        let item_ok = |item: &str| -> bool {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            let step_ok = step.is_none_or(|s| s.parse::<u32>().is_ok_and(|s| s >= 1));
            let range_ok = range == "*"
                || (range == "?" && i >= 2 && i != 3)
                || match range.split_once('-') {
                    Some((a, b)) => matches!((value(a), value(b)), (Some(a), Some(b)) if a <= b),
                    None => value(range).is_some(),
                };
            step_ok && range_ok
        };
        if !field.split(',').all(item_ok) {
            return Err(format!(
                "`{schedule}`: `{field}` is not a valid {name} field ({lo}-{hi}, `*`, ranges `a-b`, steps `/n`, lists `a,b`)"
            ));
        }
    }
    Ok(())
}

/// Checks an address that must be on the node network and outside the cluster networks.
pub(crate) fn check_node_addr(f: &mut Findings, t: &Topology, path: &str, a: Ipv4Addr) {
    let net = t.network.cidr;
    if !net.contains(&a) {
        f.error(
            Rule::AddressOutsideNetwork,
            path,
            format!("{a} is outside the node network {net}"),
        );
    } else if net.prefix_len() < 31 && (a == net.network() || a == net.broadcast()) {
        f.error(
            Rule::AddressOutsideNetwork,
            path,
            format!("{a} is the network or broadcast address of {net}"),
        );
    }
    for (name, c) in [
        ("pod", t.kubernetes.pod_cidr),
        ("service", t.kubernetes.service_cidr),
    ] {
        if c.contains(&a) {
            f.error(Rule::AddressInClusterNetwork, path, format!("{a} is inside the {name} network {c}: traffic to it would be routed into the cluster"));
        }
    }
}

/// Groups duplicates: value -> list of paths.
pub(crate) fn duplicates<K: Ord + Clone>(
    items: impl IntoIterator<Item = (K, String)>,
) -> BTreeMap<K, Vec<String>> {
    let mut m: BTreeMap<K, Vec<String>> = BTreeMap::new();
    for (k, p) in items {
        m.entry(k).or_default().push(p);
    }
    m.retain(|_, v| v.len() > 1);
    m
}
