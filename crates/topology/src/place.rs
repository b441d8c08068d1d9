//! Names, addresses, VMIDs and Proxmox nodes for every VM, deterministically.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::error::Rule;
use crate::model::{Capacity, Role, Topology, VaultPlacement, VmSize};
use crate::validate::{Findings, VMID_MAX, VMID_MIN, check_node_addr, duplicates, is_dns_label};
use crate::{RoleKind, Vm};

/// A VM before placement.
struct Slot {
    name: String,
    role: RoleKind,
    group: Option<String>,
    /// Path of the setting that produced this VM (for messages).
    path: String,
    size: VmSize,
    address: Option<Ipv4Addr>,
    addr_path: String,
    vmid: Option<u32>,
    labels: BTreeMap<String, String>,
    taints: Vec<crate::model::Taint>,
}

fn expand(pattern: &str, n: u32, group: Option<&str>) -> String {
    let s = pattern.replace("{n}", &n.to_string());
    match group {
        Some(g) => s.replace("{group}", g),
        None => s,
    }
}

fn role_slots(out: &mut Vec<Slot>, kind: RoleKind, path: &str, r: &Role) {
    for i in 0..r.count {
        out.push(Slot {
            name: expand(&r.name_pattern, i + 1, None),
            role: kind,
            group: None,
            path: path.to_owned(),
            size: r.size,
            address: r
                .addresses
                .as_ref()
                .and_then(|a| a.get(i as usize).copied()),
            addr_path: format!("{path}.addresses[{i}]"),
            vmid: r.vmid_start.map(|v| v.saturating_add(i)),
            labels: BTreeMap::new(),
            taints: Vec::new(),
        });
    }
}

/// Every VM in allocation order: load balancers, control plane, NFS, Vault, then workers
/// (last, so growing a worker group never moves another role's address or VMID).
fn slots(t: &Topology) -> Vec<Slot> {
    let mut out = Vec::new();
    role_slots(
        &mut out,
        RoleKind::LoadBalancer,
        "loadbalancers",
        &t.loadbalancers,
    );
    role_slots(
        &mut out,
        RoleKind::ControlPlane,
        "control_plane",
        &t.control_plane,
    );
    if let Some(nfs) = &t.nfs {
        out.push(Slot {
            name: nfs.name.clone(),
            role: RoleKind::Nfs,
            group: None,
            path: "nfs".into(),
            size: nfs.size,
            address: nfs.address,
            addr_path: "nfs.address".into(),
            vmid: nfs.vmid,
            labels: BTreeMap::new(),
            taints: Vec::new(),
        });
    }
    if let Some(v) = &t.vault
        && v.placement == VaultPlacement::Vms
        && let Some(r) = &v.vms
    {
        role_slots(&mut out, RoleKind::Vault, "vault.vms", r);
    }
    let w = &t.workers;
    for (gi, g) in w.groups.iter().enumerate() {
        let pattern = g.name_pattern.as_deref().unwrap_or(&w.name_pattern);
        for i in 0..g.count {
            out.push(Slot {
                name: expand(pattern, i + 1, Some(&g.name)),
                role: RoleKind::Worker,
                group: Some(g.name.clone()),
                path: format!("workers.groups[{gi}]"),
                size: g.size.unwrap_or(w.size),
                address: g
                    .addresses
                    .as_ref()
                    .and_then(|a| a.get(i as usize).copied()),
                addr_path: format!("workers.groups[{gi}].addresses[{i}]"),
                vmid: g.vmid_start.map(|v| v.saturating_add(i)),
                labels: g.labels.clone(),
                taints: g.taints.clone(),
            });
        }
    }
    out
}

#[derive(Default, Clone)]
struct Load {
    vms: u32,
    cores: u64,
    memory_mib: u64,
    disk_gib: u64,
    per_role: BTreeMap<RoleKind, u32>,
}

impl Load {
    fn fits(&self, cap: Option<&Capacity>, s: &VmSize) -> bool {
        cap.is_none_or(|c| {
            self.cores + u64::from(s.cores) <= u64::from(c.cores)
                && self.memory_mib + s.memory_mib <= c.memory_mib
                && c.disk_gib.is_none_or(|d| self.disk_gib + s.disk_gib <= d)
        })
    }

    fn add(&mut self, role: RoleKind, s: &VmSize) {
        self.vms += 1;
        self.cores += u64::from(s.cores);
        self.memory_mib += s.memory_mib;
        self.disk_gib += s.disk_gib;
        *self.per_role.entry(role).or_default() += 1;
    }

    fn role(&self, r: RoleKind) -> u32 {
        self.per_role.get(&r).copied().unwrap_or(0)
    }
}

/// Allocates and places; problems go to `f`. Returns VMs only when nothing failed.
pub(crate) fn place(t: &Topology, f: &mut Findings) -> Vec<Vm> {
    let mut slots = slots(t);
    let before = f.errors.len();
    check_names(&slots, f);
    assign_addresses(t, &mut slots, f);
    assign_vmids(t, &mut slots, f);
    if f.errors.len() > before || t.proxmox.nodes.is_empty() {
        return Vec::new();
    }

    let placed = place_on_nodes(t, &slots, f);
    let nodes = &t.proxmox.nodes;
    if f.errors.len() > before {
        return Vec::new();
    }

    slots
        .into_iter()
        .zip(placed)
        .map(|(s, node)| {
            let template = t
                .proxmox
                .template
                .as_ref()
                .map_or_else(|| nodes[node].template.unwrap_or_default(), |x| x.vmid);
            Vm {
                name: s.name,
                role: s.role,
                group: s.group,
                proxmox_node: nodes[node].name.clone(),
                vmid: s.vmid.unwrap_or_default(),
                address: s.address.unwrap_or(Ipv4Addr::UNSPECIFIED),
                size: s.size,
                template_vmid: template,
                labels: s.labels,
                taints: s.taints,
            }
        })
        .collect()
}

/// Names: DNS labels, each used once.
fn check_names(slots: &[Slot], f: &mut Findings) {
    for s in slots.iter() {
        if !is_dns_label(&s.name) {
            f.error(Rule::InvalidName, format!("{}.name_pattern", s.path), format!("VM name `{}` is not a DNS label / Proxmox VM name (lowercase letters, digits, `-`, at most 63)", s.name));
        }
    }
    for (name, paths) in duplicates(slots.iter().map(|s| (s.name.clone(), s.path.clone()))) {
        f.error(Rule::DuplicateName, format!("{}.name_pattern", paths[paths.len() - 1]), format!("VM name `{name}` is produced more than once (by {}): add `{{n}}` to the pattern or rename", paths.join(", ")));
    }
}

/// Addresses: static ones first, then the pool in slot order, skipping anything reserved.
fn assign_addresses(t: &Topology, slots: &mut [Slot], f: &mut Findings) {
    let net = &t.network;
    let mut taken: BTreeSet<Ipv4Addr> = slots.iter().filter_map(|s| s.address).collect();
    taken.insert(net.vip);
    taken.insert(net.gateway);
    taken.extend(net.dns.iter().copied());
    let mut pool = net
        .allocate
        .map(|r| (u32::from(r.first)..=u32::from(r.last)).map(Ipv4Addr::from));
    for s in slots.iter_mut() {
        if s.address.is_some() {
            continue;
        }
        let Some(it) = pool.as_mut() else {
            f.error(
                Rule::AddressPool,
                s.addr_path
                    .rsplit_once('[')
                    .map_or(s.addr_path.as_str(), |x| x.0)
                    .to_owned(),
                format!(
                    "VM `{}` has no static address and network.allocate is not set",
                    s.name
                ),
            );
            continue;
        };
        match it.by_ref().find(|a| !taken.contains(a)) {
            Some(a) => {
                taken.insert(a);
                s.address = Some(a);
            }
            None => {
                f.error(
                    Rule::AddressPool,
                    "network.allocate",
                    format!("the range is exhausted before VM `{}`: widen it", s.name),
                );
                break;
            }
        }
    }
    for s in slots.iter() {
        if let Some(a) = s.address {
            check_node_addr(f, t, &s.addr_path, a);
        }
    }
    let mut addr_uses: Vec<(Ipv4Addr, String)> = vec![
        (net.vip, "network.vip".into()),
        (net.gateway, "network.gateway".into()),
    ];
    addr_uses.extend(
        slots
            .iter()
            .filter_map(|s| s.address.map(|a| (a, s.addr_path.clone()))),
    );
    for (a, paths) in duplicates(addr_uses) {
        f.error(
            Rule::AddressDuplicate,
            paths[paths.len() - 1].clone(),
            format!("{a} is used more than once ({})", paths.join(", ")),
        );
    }
}

/// VMIDs: explicit starts first, then the range in slot order.
fn assign_vmids(t: &Topology, slots: &mut [Slot], f: &mut Findings) {
    let range = t.proxmox.vmids;
    let mut used: BTreeSet<u32> = slots.iter().filter_map(|s| s.vmid).collect();
    used.extend(t.proxmox.template.iter().map(|x| x.vmid));
    used.extend(t.proxmox.nodes.iter().filter_map(|n| n.template));
    let mut next = range.first;
    for s in slots.iter_mut() {
        if s.vmid.is_some() {
            continue;
        }
        while used.contains(&next) {
            next = next.saturating_add(1);
        }
        if next > range.last {
            f.error(
                Rule::VmidRange,
                "proxmox.vmids",
                format!(
                    "the range {}-{} is exhausted before VM `{}`: widen it",
                    range.first, range.last, s.name
                ),
            );
            break;
        }
        s.vmid = Some(next);
        used.insert(next);
    }
    for s in slots.iter() {
        if let Some(v) = s.vmid
            && (!(VMID_MIN..=VMID_MAX).contains(&v) || v < range.first || v > range.last)
        {
            f.error(
                Rule::VmidRange,
                format!("{}.vmid_start", s.path),
                format!(
                    "VM `{}` gets VMID {v}, outside proxmox.vmids {}-{}",
                    s.name, range.first, range.last
                ),
            );
        }
    }
    let mut vmid_uses: Vec<(u32, String)> = t
        .proxmox
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            n.template
                .map(|v| (v, format!("proxmox.nodes[{i}].template")))
        })
        .collect();
    vmid_uses.extend(
        t.proxmox
            .template
            .iter()
            .map(|x| (x.vmid, "proxmox.template.vmid".to_owned())),
    );
    vmid_uses.extend(
        slots
            .iter()
            .filter_map(|s| s.vmid.map(|v| (v, format!("{}.vmid_start", s.path)))),
    );
    // A shared template listed also per node is the same VM, not a clash.
    let mut seen_pairs = BTreeSet::new();
    vmid_uses.retain(|(v, p)| seen_pairs.insert((*v, p.clone())));
    for (v, paths) in duplicates(vmid_uses) {
        f.error(
            Rule::VmidDuplicate,
            paths[paths.len() - 1].clone(),
            format!("VMID {v} is used more than once ({})", paths.join(", ")),
        );
    }
}

/// Placement: each VM on a Proxmox node with room, its tier spread across the nodes; the
/// node index of each slot (`usize::MAX` where none had room, which is an error in `f`).
fn place_on_nodes(t: &Topology, slots: &[Slot], f: &mut Findings) -> Vec<usize> {
    let before = f.errors.len();
    let nodes = &t.proxmox.nodes;
    let mut load = vec![Load::default(); nodes.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(slots.len());
    let mut failed: BTreeSet<RoleKind> = BTreeSet::new();
    let mut no_room: BTreeMap<String, (u32, String, VmSize)> = BTreeMap::new();
    let mut group_load: BTreeMap<(usize, &str), u32> = BTreeMap::new();
    for s in slots.iter() {
        let fits: Vec<usize> = (0..nodes.len())
            .filter(|&i| load[i].fits(nodes[i].capacity.as_ref(), &s.size))
            .collect();
        let choice = if s.role.anti_affine() {
            let free: Vec<usize> = fits
                .iter()
                .copied()
                .filter(|&i| load[i].role(s.role) == 0)
                .collect();
            if let Some(&i) = free
                .iter()
                .min_by_key(|&&i| (load[i].vms, load[i].memory_mib, i))
            {
                Some(i)
            } else if t.proxmox.allow_shared_placement {
                fits.iter()
                    .copied()
                    .min_by_key(|&i| (load[i].role(s.role), load[i].vms, load[i].memory_mib, i))
            } else {
                if failed.insert(s.role) {
                    let count = slots.iter().filter(|x| x.role == s.role).count();
                    f.error(Rule::Placement, format!("{}.count", s.path), format!(
                        "{count} {} VMs need {count} distinct Proxmox nodes with room, but only {} {} available; add nodes or capacity, or set proxmox.allow_shared_placement: true (then one node loss can take out two of them)",
                        s.role, (0..nodes.len()).filter(|i| load[*i].role(s.role) > 0 || fits.contains(i)).count(),
                        if nodes.len() == 1 { "is" } else { "are" }
                    ));
                }
                None
            }
        } else if s.role == RoleKind::Worker {
            let group = s.group.as_deref().unwrap_or_default();
            let choice = fits.iter().copied().min_by_key(|&i| {
                let same_group = group_load.get(&(i, group)).copied().unwrap_or(0);
                (load[i].role(RoleKind::Worker), same_group, load[i].vms, i)
            });
            if let Some(i) = choice {
                *group_load.entry((i, group)).or_default() += 1;
            }
            choice
        } else {
            fits.iter()
                .copied()
                .min_by_key(|&i| (load[i].vms, load[i].memory_mib, i))
        };
        match choice {
            Some(i) => {
                load[i].add(s.role, &s.size);
                placed.push(i);
            }
            None => {
                if !s.role.anti_affine() || t.proxmox.allow_shared_placement {
                    no_room
                        .entry(s.path.clone())
                        .or_insert_with(|| (0, s.name.clone(), s.size))
                        .0 += 1;
                }
                placed.push(usize::MAX);
            }
        }
    }
    for (path, (n, first, size)) in no_room {
        let total = slots.iter().filter(|x| x.path == path).count();
        f.error(Rule::Placement, path, format!("no Proxmox node has room for {n} of these {total} VMs (from `{first}` on; {} cores, {} MiB, {} GiB each): raise proxmox.nodes[].capacity or shrink the VMs", size.cores, size.memory_mib, size.disk_gib));
    }
    let workers: Vec<u32> = load.iter().map(|l| l.role(RoleKind::Worker)).collect();
    if let (Some(max), Some(min)) = (workers.iter().max(), workers.iter().min())
        && max - min > 1
        && f.errors.len() == before
    {
        f.error(Rule::Placement, "workers.groups", format!("capacity prevents spreading workers evenly (per node: {}): raise the capacity of the nodes with fewer", nodes.iter().zip(&workers).map(|(n, w)| format!("{}={w}", n.name)).collect::<Vec<_>>().join(", ")));
    }
    placed
}
