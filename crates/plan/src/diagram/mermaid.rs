//! The Mermaid form: a flowchart that GitHub, GitLab and most Markdown viewers draw.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use hakube_topology::{Cluster, RoleKind, Vm};

use super::MERMAID_PATH;
use super::facts::{
    API_PORT, ROWS, agent_name, colours, column_lines, columns, exports, has_vault_vms,
    ingress_ports, observability_lines, reclaim, same_path, tier_lines, title_lines, vm_lines,
};

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

/// Each VM's Mermaid id, in the order the columns draw them.
type VmIds<'a> = Vec<(&'a Vm, String)>;

/// The ids of one role's VMs joined with ` & ` (Mermaid's several-nodes syntax), per role the
/// edges connect.
struct RoleIds {
    lbs: String,
    masters: String,
    workers: String,
    vaults: String,
    nfs: String,
}

impl RoleIds {
    fn new(cluster: &Cluster, vm_ids: &VmIds<'_>) -> Self {
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
        Self {
            lbs: of_role(RoleKind::LoadBalancer),
            masters: of_role(RoleKind::ControlPlane),
            workers: of_role(RoleKind::Worker),
            vaults: of_role(RoleKind::Vault),
            nfs: of_role(RoleKind::Nfs),
        }
    }
}

/// The picture as a Mermaid flowchart: a subgraph per Proxmox node holding its VMs, the VIP
/// and the traffic edges, the NFS exports and their StorageClasses, observability.
#[must_use]
pub fn mermaid(cluster: &Cluster) -> String {
    let mut ids = Ids::default();
    let mut s = String::new();
    header(&mut s, cluster);
    let vm_ids = nodes(&mut s, &mut ids, cluster);
    let roles = RoleIds::new(cluster, &vm_ids);
    traffic(&mut s, cluster, &roles);
    storage(&mut s, &mut ids, cluster, &roles);
    observability(&mut s, cluster, &roles);
    classes(&mut s, &vm_ids);
    s
}

/// The title as comments, then the clients and the VIP they reach.
fn header(s: &mut String, cluster: &Cluster) {
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
}

/// The Proxmox nodes as subgraphs holding their VMs; each VM's id.
fn nodes<'a>(s: &mut String, ids: &mut Ids, cluster: &'a Cluster) -> VmIds<'a> {
    let mut vm_ids: VmIds<'a> = Vec::new();
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
    vm_ids
}

/// The VIP's holders and what the load balancers forward where.
fn traffic(s: &mut String, cluster: &Cluster, r: &RoleIds) {
    let lbs = &r.lbs;
    if lbs.is_empty() {
        return;
    }
    let _ = writeln!(s, "    vip -.->|\"VRRP: one holds the VIP\"| {lbs}");
    if !r.masters.is_empty() {
        let _ = writeln!(s, "    {lbs} -->|\"HAProxy :{API_PORT}\"| {}", r.masters);
    }
    if !r.workers.is_empty() {
        let label = format!("{} Traefik NodePorts", ingress_ports(cluster));
        let _ = writeln!(s, "    {lbs} -->|\"{}\"| {}", mm(&label), r.workers);
    }
    if !r.vaults.is_empty() {
        let port = hakube_haproxy_config::reference::VAULT_PORT;
        let _ = writeln!(s, "    {lbs} -->|\":{port}\"| {}", r.vaults);
    }
}

/// The NFS exports with the StorageClasses they back, the NFS VM serving them and the
/// masters' etcd snapshots.
fn storage(s: &mut String, ids: &mut Ids, cluster: &Cluster, r: &RoleIds) {
    let t = &cluster.topology;
    let exports = exports(cluster);
    let (Some(n), false) = (&t.nfs, exports.is_empty()) else {
        return;
    };
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
            let default = if c.default { ", default" } else { "" };
            let _ = writeln!(
                s,
                "        {cid}([\"{}\"])",
                mm_lines(&[
                    format!("StorageClass {}", c.name),
                    format!("{}{default}", reclaim(c.reclaim_policy))
                ])
            );
            let _ = writeln!(s, "        {eid} --> {cid}");
        }
        export_ids.push((e, eid));
    }
    s.push_str("    end\n");
    if !r.nfs.is_empty() {
        let all: Vec<&str> = export_ids.iter().map(|(_, id)| id.as_str()).collect();
        let _ = writeln!(s, "    {} --- {}", r.nfs, all.join(" & "));
    }
    if !r.masters.is_empty()
        && let Some((e, eid)) = export_ids.iter().find(|(e, _)| e.etcd_backup)
    {
        let label = e.uses.last().cloned().unwrap_or_default();
        let _ = writeln!(s, "    {} -.->|\"{}\"| {eid}", r.masters, mm(&label));
    }
}

/// The in-cluster observability stack, fed by the masters and workers.
fn observability(s: &mut String, cluster: &Cluster, r: &RoleIds) {
    let obs = observability_lines(cluster);
    if obs.is_empty() {
        return;
    }
    let a = &cluster.topology.addons;
    let _ = writeln!(s, "    subgraph observability[\"{}\"]", mm(&obs[0]));
    if a.monitoring {
        s.push_str("        prometheus[\"Prometheus<br/>kube-state-metrics · metrics-server\"]\n");
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
    let sources: Vec<&str> = [r.masters.as_str(), r.workers.as_str()]
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

/// Colours by role.
fn classes(s: &mut String, vm_ids: &VmIds<'_>) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_and_unique() {
        let mut ids = Ids::default();
        assert_eq!(ids.make("vm", "a-b"), "vm_a_b");
        assert_eq!(ids.make("vm", "a_b"), "vm_a_b_2");
        assert_eq!(ids.make("vm", "a.b"), "vm_a_b_3");
        assert_eq!(ids.make("node", "a-b"), "node_a_b");
    }

    #[test]
    fn labels_cannot_end_a_statement() {
        assert_eq!(mm("a\"]\n|b"), "a#quot;] #124;b");
        assert_eq!(mm_lines(&["x".into(), "<y>".into()]), "x<br/>#lt;y#gt;");
    }
}
