//! Pictures of the placed topology, drawn the way the reference design draws its cluster: the
//! Proxmox nodes with their VMs; the path of traffic (clients -> VIP -> HAProxy -> the masters
//! on 6443, and Traefik's NodePorts on the workers); storage (the NFS server, its exports and
//! the StorageClasses they back); observability.
//!
//! One picture in two forms, both plain text computed from a [`Cluster`], with no renderer
//! needed at run time: [`mermaid`] (a Mermaid flowchart, which GitHub, GitLab and most Markdown
//! viewers draw) and [`svg`] (a standalone SVG document laid out here: one column per Proxmox
//! node, one row per tier). [`crate::render`] puts them in the plan at [`MERMAID_PATH`] and
//! [`SVG_PATH`], beside the GitOps tree `cluster/` and never inside it.
//!
//! ```
//! let text = include_str!("../../../examples/seed-cluster.yaml");
//! let cluster = hakube_topology::load(text, "seed-cluster.yaml")?;
//! let svg = hakube_plan::diagram::svg(&cluster);
//! assert!(svg.starts_with("<svg ") && svg.contains(">master-1<"));
//! assert!(hakube_plan::diagram::mermaid(&cluster).contains("flowchart TB"));
//! # Ok::<(), hakube_topology::Error>(())
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;

use hakube_topology::{Cluster, LogAgent, ReclaimPolicy, RoleKind, TlsMode, Vm};

use crate::{Error, PlanTree};

/// Where the plan keeps the Mermaid form.
pub const MERMAID_PATH: &str = "diagrams/topology.mmd";
/// Where the plan keeps the SVG form.
pub const SVG_PATH: &str = "diagrams/topology.svg";

/// The Kubernetes API port HAProxy serves on the VIP and the masters listen on.
const API_PORT: u16 = 6443;

/// The tiers, top to bottom: traffic enters at the load balancers; the NFS row sits under the
/// workers that mount it.
const ROWS: [RoleKind; 5] = [
    RoleKind::LoadBalancer,
    RoleKind::ControlPlane,
    RoleKind::Vault,
    RoleKind::Worker,
    RoleKind::Nfs,
];

pub(crate) fn render(cluster: &Cluster, tree: &mut PlanTree) -> Result<(), Error> {
    tree.insert(MERMAID_PATH.to_owned(), mermaid(cluster), 0o644)?;
    tree.insert(SVG_PATH.to_owned(), svg(cluster), 0o644)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What the picture says, shared by both forms.

/// One Proxmox node and the VMs placed on it.
struct Column<'a> {
    name: &'a str,
    vms: Vec<&'a Vm>,
}

/// The Proxmox nodes in the topology's order (plus any node a VM names that the topology does
/// not list, so no VM goes missing from the picture).
fn columns(cluster: &Cluster) -> Vec<Column<'_>> {
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

fn mem(mib: u64) -> String {
    if mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{mib} MiB")
    }
}

fn title_lines(cluster: &Cluster) -> Vec<String> {
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

fn column_lines(col: &Column<'_>) -> Vec<String> {
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

fn vm_lines(vm: &Vm) -> Vec<String> {
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

fn has_vault_vms(cluster: &Cluster) -> bool {
    cluster.vms_with_role(RoleKind::Vault).next().is_some()
}

/// The ingress hop HAProxy makes: `:80 → :30080 · :443 → :30443`.
fn ingress_ports(cluster: &Cluster) -> String {
    let i = &cluster.topology.ingress;
    format!(
        ":80 → :{} · :443 → :{}",
        i.http_node_port, i.https_node_port
    )
}

fn tier_lines(cluster: &Cluster, role: RoleKind) -> Vec<String> {
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

fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// One export: its path and what it serves.
struct ExportFacts {
    path: String,
    uses: Vec<String>,
    etcd_backup: bool,
}

fn exports(cluster: &Cluster) -> Vec<ExportFacts> {
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
                    let policy = match c.reclaim_policy {
                        ReclaimPolicy::Retain => "Retain",
                        ReclaimPolicy::Delete => "Delete",
                    };
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

fn storage_lines(cluster: &Cluster) -> Vec<String> {
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

fn agent_name(agent: LogAgent) -> &'static str {
    match agent {
        LogAgent::Alloy => "Grafana Alloy",
        LogAgent::Promtail => "Promtail",
    }
}

fn observability_lines(cluster: &Cluster) -> Vec<String> {
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
fn rows(cluster: &Cluster) -> Vec<RoleKind> {
    ROWS.into_iter()
        .filter(|r| cluster.vms_with_role(*r).next().is_some())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Mermaid.

/// Text inside a quoted Mermaid label: Mermaid's entity codes for the characters its grammar
/// or its HTML labels would read (`"`, `<`, `>`, `&`, `#`, `|`); control characters become
/// spaces, so no input ends a statement early.
fn mm(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '#' => out.push_str("#35;"),
            '|' => out.push_str("#124;"),
            '`' => out.push_str("#96;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Lines of a Mermaid label, each escaped, joined with `<br/>`.
fn mm_lines(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| mm(l))
        .collect::<Vec<_>>()
        .join("<br/>")
}

/// Mermaid ids: the name's letters, digits and `_` (other characters become `_`), with a
/// prefix, made unique by a suffix when two names map to one id.
#[derive(Default)]
struct Ids(BTreeSet<String>);

impl Ids {
    fn make(&mut self, prefix: &str, name: &str) -> String {
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let base = format!("{prefix}_{name}");
        let mut id = base.clone();
        let mut n = 2;
        while !self.0.insert(id.clone()) {
            id = format!("{base}_{n}");
            n += 1;
        }
        id
    }
}

/// The picture as a Mermaid flowchart: a subgraph per Proxmox node holding its VMs, the VIP
/// and the traffic edges, the NFS exports and their StorageClasses, observability.
#[must_use]
pub fn mermaid(cluster: &Cluster) -> String {
    let t = &cluster.topology;
    let mut ids = Ids::default();
    let mut s = String::new();
    for line in title_lines(cluster) {
        let _ = writeln!(s, "%% {}", mm(&line));
    }
    let _ = writeln!(
        s,
        "%% Written by hakube from the topology ({MERMAID_PATH}); do not edit."
    );
    s.push_str("flowchart TB\n");
    s.push_str("    clients([\"clients\"])\n");
    let _ = writeln!(
        s,
        "    vip{{{{\"{}\"}}}}",
        mm_lines(&tier_lines(cluster, RoleKind::LoadBalancer)[1..3])
    );
    let mut entry = format!(":{API_PORT} API · :80 :443 ingress");
    if has_vault_vms(cluster) {
        let _ = write!(
            entry,
            " · :{} Vault",
            hakube_haproxy_config::reference::VAULT_PORT
        );
    }
    let _ = writeln!(s, "    clients -->|\"{}\"| vip", mm(&entry));

    // The Proxmox nodes and their VMs.
    let mut vm_ids: Vec<(&Vm, String)> = Vec::new();
    for col in columns(cluster) {
        let id = ids.make("node", col.name);
        let _ = writeln!(
            s,
            "    subgraph {id}[\"{}\"]",
            mm_lines(&column_lines(&col))
        );
        for vm in &col.vms {
            let vid = ids.make("vm", &vm.name);
            let _ = writeln!(s, "        {vid}[\"{}\"]", mm_lines(&vm_lines(vm)));
            vm_ids.push((vm, vid));
        }
        s.push_str("    end\n");
    }
    let of_role = |role: RoleKind| -> String {
        // In the topology's VM order, not the columns'.
        cluster
            .vms_with_role(role)
            .filter_map(|vm| {
                vm_ids
                    .iter()
                    .find(|(v, _)| std::ptr::eq(*v, vm))
                    .map(|(_, id)| id.as_str())
            })
            .collect::<Vec<_>>()
            .join(" & ")
    };
    let lbs = of_role(RoleKind::LoadBalancer);
    let masters = of_role(RoleKind::ControlPlane);
    let workers = of_role(RoleKind::Worker);
    let vaults = of_role(RoleKind::Vault);
    let nfs = of_role(RoleKind::Nfs);

    // Traffic.
    if !lbs.is_empty() {
        let _ = writeln!(s, "    vip -.->|\"VRRP: one holds the VIP\"| {lbs}");
        if !masters.is_empty() {
            let _ = writeln!(s, "    {lbs} -->|\"HAProxy :{API_PORT}\"| {masters}");
        }
        if !workers.is_empty() {
            let label = format!("{} Traefik NodePorts", ingress_ports(cluster));
            let _ = writeln!(s, "    {lbs} -->|\"{}\"| {workers}", mm(&label));
        }
        if !vaults.is_empty() {
            let port = hakube_haproxy_config::reference::VAULT_PORT;
            let _ = writeln!(s, "    {lbs} -->|\":{port}\"| {vaults}");
        }
    }

    // Storage.
    let exports = exports(cluster);
    if let (Some(n), false) = (&t.nfs, exports.is_empty()) {
        let _ = writeln!(
            s,
            "    subgraph storage[\"{}\"]",
            mm(&format!("NFS exports on {}", n.name))
        );
        let mut export_ids = Vec::new();
        for e in &exports {
            let eid = ids.make("export", &e.path);
            let _ = writeln!(s, "        {eid}[(\"{}\")]", mm(&e.path));
            for c in t
                .storage_classes
                .iter()
                .filter(|c| same_path(&c.export, &e.path))
            {
                let cid = ids.make("class", &c.name);
                let policy = match c.reclaim_policy {
                    ReclaimPolicy::Retain => "Retain",
                    ReclaimPolicy::Delete => "Delete",
                };
                let default = if c.default { ", default" } else { "" };
                let _ = writeln!(
                    s,
                    "        {cid}([\"{}\"])",
                    mm_lines(&[
                        format!("StorageClass {}", c.name),
                        format!("{policy}{default}")
                    ])
                );
                let _ = writeln!(s, "        {eid} --> {cid}");
            }
            export_ids.push((e, eid));
        }
        s.push_str("    end\n");
        if !nfs.is_empty() {
            let all: Vec<&str> = export_ids.iter().map(|(_, id)| id.as_str()).collect();
            let _ = writeln!(s, "    {nfs} --- {}", all.join(" & "));
        }
        if !masters.is_empty()
            && let Some((e, eid)) = export_ids.iter().find(|(e, _)| e.etcd_backup)
        {
            let label = e.uses.last().cloned().unwrap_or_default();
            let _ = writeln!(s, "    {masters} -.->|\"{}\"| {eid}", mm(&label));
        }
    }

    // Observability.
    let obs = observability_lines(cluster);
    if !obs.is_empty() {
        let a = &t.addons;
        let _ = writeln!(s, "    subgraph observability[\"{}\"]", mm(&obs[0]));
        if a.monitoring {
            s.push_str(
                "        prometheus[\"Prometheus<br/>kube-state-metrics · metrics-server\"]\n",
            );
            s.push_str("        grafana[\"Grafana\"]\n");
            s.push_str("        prometheus --> grafana\n");
        }
        if a.logging {
            s.push_str("        loki[\"Loki\"]\n");
            if a.monitoring {
                s.push_str("        loki --> grafana\n");
            }
        }
        s.push_str("    end\n");
        let sources: Vec<&str> = [masters.as_str(), workers.as_str()]
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect();
        if !sources.is_empty() {
            let what = match (a.monitoring, a.logging) {
                (true, true) => format!("metrics, logs ({})", agent_name(a.log_agent)),
                (true, false) => "metrics".to_owned(),
                (false, _) => format!("logs ({})", agent_name(a.log_agent)),
            };
            let _ = writeln!(
                s,
                "    {} -.->|\"{}\"| observability",
                sources.join(" & "),
                mm(&what)
            );
        }
    }

    // Colours by role.
    for role in ROWS {
        let members: Vec<&str> = vm_ids
            .iter()
            .filter(|(v, _)| v.role == role)
            .map(|(_, id)| id.as_str())
            .collect();
        if members.is_empty() {
            continue;
        }
        let (fill, stroke) = colours(role);
        let class = role.as_str().replace('-', "_");
        let _ = writeln!(s, "    classDef {class} fill:{fill},stroke:{stroke}");
        let _ = writeln!(s, "    class {} {class}", members.join(","));
    }
    s
}

/// Fill and stroke per role.
fn colours(role: RoleKind) -> (&'static str, &'static str) {
    match role {
        RoleKind::LoadBalancer => ("#fde68a", "#b45309"),
        RoleKind::ControlPlane => ("#bfdbfe", "#1d4ed8"),
        RoleKind::Worker => ("#bbf7d0", "#15803d"),
        RoleKind::Nfs => ("#e9d5ff", "#7e22ce"),
        RoleKind::Vault => ("#fecaca", "#b91c1c"),
    }
}

// ---------------------------------------------------------------------------------------------
// SVG.

/// Text for SVG character data and attribute values: the five XML special characters as
/// entities; characters XML 1.0 cannot carry (controls other than tab) become spaces.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Layout units (pixels). Text is set in a monospace font, so a line's width is known from its
/// length without font metrics.
const FONT: u32 = 12;
const CHAR_W10: u32 = 73; // tenths of a pixel per character at 12 px
const LINE_H: u32 = 16;
const PAD: u32 = 8;
const GAP: u32 = 12;
const MARGIN: u32 = 20;
/// The strip left of the tier labels where the arrows from the load balancers run.
const GUTTER: u32 = 64;
const TITLE_H: u32 = 48;
const INK: &str = "#334155";

fn text_w(lines: &[String]) -> u32 {
    let chars = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let chars = u32::try_from(chars).unwrap_or(u32::MAX / CHAR_W10);
    (chars * CHAR_W10).div_ceil(10)
}

fn box_h(lines: usize) -> u32 {
    2 * PAD + u32::try_from(lines).unwrap_or(0) * LINE_H
}

/// A growing SVG document.
struct Svg(String);

impl Svg {
    fn rect(&mut self, x: u32, y: u32, w: u32, h: u32, style: &str) {
        let _ = writeln!(
            self.0,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" {style}/>"#
        );
    }

    /// Lines of text in a box at (x, y): the first one bold.
    fn lines(&mut self, x: u32, y: u32, lines: &[String]) {
        for (i, l) in lines.iter().enumerate() {
            let weight = if i == 0 { r#" font-weight="bold""# } else { "" };
            let baseline = y + PAD + FONT + u32::try_from(i).unwrap_or(0) * LINE_H;
            let _ = writeln!(
                self.0,
                r#"<text x="{}" y="{baseline}"{weight}>{}</text>"#,
                x + PAD,
                xml(l)
            );
        }
    }

    /// A box with its lines.
    fn text_box(&mut self, x: u32, y: u32, w: u32, lines: &[String], style: &str) -> u32 {
        let h = box_h(lines.len());
        self.rect(x, y, w, h, style);
        self.lines(x, y, lines);
        h
    }

    /// A small label (an arrow's port).
    fn small(&mut self, x: u32, y: u32, text: &str) {
        let _ = writeln!(
            self.0,
            r#"<text x="{x}" y="{y}" font-size="10">{}</text>"#,
            xml(text)
        );
    }

    /// An arrow along a polyline.
    fn arrow(&mut self, points: &[(u32, u32)], dashed: bool) {
        let d: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, (x, y))| format!("{}{x},{y}", if i == 0 { 'M' } else { 'L' }))
            .collect();
        let dash = if dashed {
            r#" stroke-dasharray="5,4""#
        } else {
            ""
        };
        let _ = writeln!(
            self.0,
            r#"<path d="{}" fill="none" stroke="{INK}" stroke-width="1.5"{dash} marker-end="url(#arrow)"/>"#,
            d.join(" ")
        );
    }
}

fn role_style(role: RoleKind) -> String {
    let (fill, stroke) = colours(role);
    format!(r#"fill="{fill}" stroke="{stroke}""#)
}

/// One tier's row: where it starts, how high it is, and its label box's height.
struct Row {
    role: RoleKind,
    y: u32,
    h: u32,
    label_h: u32,
    vm_h: u32,
}

/// The picture as a standalone SVG document: the tiers as rows (their labels at the left,
/// with the traffic between them), the Proxmox nodes as columns holding their VMs, the NFS
/// exports at the right and observability below.
#[must_use]
pub fn svg(cluster: &Cluster) -> String {
    let cols = columns(cluster);
    let roles = rows(cluster);
    let title = title_lines(cluster);
    let storage = storage_lines(cluster);
    let obs = observability_lines(cluster);
    let clients = vec!["clients".to_owned()];

    // Widths.
    let tier_texts: Vec<Vec<String>> = roles.iter().map(|r| tier_lines(cluster, *r)).collect();
    let label_w = tier_texts
        .iter()
        .chain(std::iter::once(&clients))
        .map(|l| text_w(l))
        .max()
        .unwrap_or(0)
        + 2 * PAD;
    let vm_w = cluster
        .vms
        .iter()
        .map(|v| text_w(&vm_lines(v)))
        .chain(cols.iter().map(|c| text_w(&column_lines(c))))
        .max()
        .unwrap_or(0)
        + 2 * PAD;
    let col_w = vm_w + 2 * PAD;
    let label_x = MARGIN + GUTTER;
    let cols_x = label_x + label_w + 2 * GAP;
    let n_cols = u32::try_from(cols.len()).unwrap_or(0);
    let cols_end = cols_x + n_cols * col_w + n_cols.saturating_sub(1) * GAP;
    let storage_x = cols_end + 2 * GAP;
    let storage_w = if storage.is_empty() {
        0
    } else {
        text_w(&storage) + 2 * PAD
    };

    // Heights: the rows under the column headers.
    let header_h = cols
        .iter()
        .map(|c| box_h(column_lines(c).len()))
        .max()
        .unwrap_or(0)
        .max(box_h(1));
    let top = MARGIN + TITLE_H;
    let mut y = top + header_h + GAP;
    let mut layout = Vec::new();
    for (role, label) in roles.iter().zip(&tier_texts) {
        let stacked = cols
            .iter()
            .map(|c| c.vms.iter().filter(|v| v.role == *role).count())
            .max()
            .unwrap_or(0);
        let stacked = u32::try_from(stacked).unwrap_or(0);
        let lines = cluster
            .vms_with_role(*role)
            .map(|v| vm_lines(v).len())
            .max()
            .unwrap_or(0);
        let vm_h = box_h(lines);
        let label_h = box_h(label.len());
        let mut h = (stacked * (vm_h + GAP)).saturating_sub(GAP).max(label_h);
        if *role == RoleKind::Nfs && !storage.is_empty() {
            h = h.max(box_h(storage.len()));
        }
        layout.push(Row {
            role: *role,
            y,
            h,
            label_h,
            vm_h,
        });
        y += h + 3 * GAP;
    }
    let cols_bottom = y - 2 * GAP;
    let obs_y = cols_bottom + 3 * GAP;
    let right = if storage.is_empty() {
        cols_end
    } else {
        storage_x + storage_w
    };
    let height = if obs.is_empty() {
        cols_bottom
    } else {
        obs_y + box_h(obs.len())
    } + MARGIN;
    let width = right.max(MARGIN + text_w(&title[1..]) + PAD) + MARGIN;

    let mut out = Svg(String::new());
    let _ = writeln!(
        out.0,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT}" fill="{INK}">"#
    );
    let _ = writeln!(out.0, "<title>{}</title>", xml(&title[0]));
    let _ = writeln!(
        out.0,
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{INK}"/></marker></defs>"#
    );
    let _ = writeln!(
        out.0,
        r##"<rect width="{width}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out.0,
        r#"<text x="{MARGIN}" y="{}" font-size="16" font-weight="bold">{}</text>"#,
        MARGIN + 16,
        xml(&title[0])
    );
    let _ = writeln!(
        out.0,
        r#"<text x="{MARGIN}" y="{}">{}</text>"#,
        MARGIN + 36,
        xml(&title[1])
    );

    // Proxmox node columns, then the tier bands across them, then the VMs.
    for (i, col) in cols.iter().enumerate() {
        let x = cols_x + u32::try_from(i).unwrap_or(0) * (col_w + GAP);
        out.rect(
            x,
            top,
            col_w,
            cols_bottom - top,
            r##"fill="#f8fafc" stroke="#64748b" stroke-width="1.5""##,
        );
        out.lines(x, top, &column_lines(col));
    }
    for row in &layout {
        let (fill, _) = colours(row.role);
        out.rect(
            label_x + label_w,
            row.y - PAD,
            cols_end + PAD - label_w - label_x,
            row.h + 2 * PAD,
            &format!(r#"fill="{fill}" fill-opacity="0.3" stroke="none""#),
        );
    }
    let mut vm_boxes: Vec<(&Vm, u32, u32, u32)> = Vec::new(); // vm, x, y, h
    for (i, col) in cols.iter().enumerate() {
        let x = cols_x + u32::try_from(i).unwrap_or(0) * (col_w + GAP) + PAD;
        for row in &layout {
            for (k, vm) in col.vms.iter().filter(|v| v.role == row.role).enumerate() {
                let y = row.y + u32::try_from(k).unwrap_or(0) * (row.vm_h + GAP);
                let mut lines = vm_lines(vm);
                lines.resize(
                    usize::try_from((row.vm_h - 2 * PAD) / LINE_H).unwrap_or(0),
                    String::new(),
                );
                let h = out.text_box(x, y, vm_w, &lines, &role_style(vm.role));
                vm_boxes.push((vm, x, y, h));
            }
        }
    }

    // The tier labels and the traffic between them.
    let clients_h = box_h(1);
    out.text_box(
        label_x,
        top,
        label_w,
        &clients,
        r##"fill="#ffffff" stroke="#334155""##,
    );
    for (row, label) in layout.iter().zip(&tier_texts) {
        out.text_box(label_x, row.y, label_w, label, &role_style(row.role));
    }
    let row_of = |role: RoleKind| layout.iter().find(|r| r.role == role);
    let mid = label_x + label_w / 2;
    if let Some(lb) = row_of(RoleKind::LoadBalancer) {
        out.arrow(&[(mid, top + clients_h), (mid, lb.y)], false);
        // Outer tracks go farthest and leave highest, so no two arrows cross.
        let vault = format!(":{}", hakube_haproxy_config::reference::VAULT_PORT);
        let targets: Vec<(&Row, &str)> = [
            (RoleKind::Worker, ":80 :443"),
            (RoleKind::Vault, vault.as_str()),
            (RoleKind::ControlPlane, ":6443"),
        ]
        .into_iter()
        .filter_map(|(role, port)| row_of(role).map(|r| (r, port)))
        .collect();
        for (k, (target, port)) in targets.iter().enumerate() {
            let k = u32::try_from(k).unwrap_or(0);
            let track = MARGIN + 4 + k * 10;
            let from = lb.y + PAD + 4 + k * 10;
            let to = target.y + target.label_h / 2;
            out.arrow(
                &[(label_x, from), (track, from), (track, to), (label_x, to)],
                false,
            );
            out.small(track + 3, to - 3, port);
        }
    }
    if let (Some(w), Some(n)) = (row_of(RoleKind::Worker), row_of(RoleKind::Nfs)) {
        out.arrow(&[(mid, w.y + w.label_h), (mid, n.y)], true);
        out.small(
            mid + 4,
            (w.y + w.label_h + n.y) / 2,
            "PVCs mount the exports",
        );
    }

    // Storage: the NFS exports beside the NFS VM.
    if let (Some(row), false) = (row_of(RoleKind::Nfs), storage.is_empty()) {
        out.text_box(
            storage_x,
            row.y,
            storage_w,
            &storage,
            &role_style(RoleKind::Nfs),
        );
        for (_, x, y, h) in vm_boxes.iter().filter(|(v, ..)| v.role == RoleKind::Nfs) {
            let at = (y + h / 2).min(row.y + box_h(storage.len()) - PAD);
            out.arrow(&[(x + vm_w, at), (storage_x, at)], false);
        }
    }

    // Observability: fed by every node's masters and workers.
    if !obs.is_empty() {
        for (i, col) in cols.iter().enumerate() {
            if col
                .vms
                .iter()
                .any(|v| matches!(v.role, RoleKind::ControlPlane | RoleKind::Worker))
            {
                let x = cols_x + u32::try_from(i).unwrap_or(0) * (col_w + GAP) + col_w / 2;
                out.arrow(&[(x, cols_bottom), (x, obs_y)], true);
            }
        }
        out.text_box(
            label_x,
            obs_y,
            right - label_x,
            &obs,
            r##"fill="#f1f5f9" stroke="#475569""##,
        );
    }
    out.0.push_str("</svg>\n");
    out.0
}
