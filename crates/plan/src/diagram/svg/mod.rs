//! The SVG form: a standalone document laid out here ([`layout`]) and drawn with a small
//! writer ([`writer`]): one column per Proxmox node, one row per tier.

mod layout;
mod writer;

use hakube_topology::{Cluster, RoleKind, Vm};

use super::facts::{API_PORT, colours, column_lines, vm_lines};
use layout::{Layout, Row};
use writer::{GAP, LINE_H, MARGIN, PAD, Svg, box_h, role_style};

/// A VM's box as drawn: where it is, how high.
struct VmBox<'a> {
    vm: &'a Vm,
    x: u32,
    y: u32,
    h: u32,
}

/// The picture as a standalone SVG document: the tiers as rows (their labels at the left,
/// with the traffic between them), the Proxmox nodes as columns holding their VMs, the NFS
/// exports at the right and observability below.
#[must_use]
pub fn svg(cluster: &Cluster) -> String {
    let l = Layout::new(cluster);
    let mut out = Svg::start(l.width, l.height, &l.title);
    columns(&mut out, &l);
    let vm_boxes = vms(&mut out, &l);
    tiers(&mut out, &l);
    storage(&mut out, &l, &vm_boxes);
    observability(&mut out, &l);
    out.finish()
}

/// The Proxmox node columns, then the tier bands across them.
fn columns(out: &mut Svg, l: &Layout<'_>) {
    for (i, col) in l.cols.iter().enumerate() {
        let x = l.col_x(i);
        out.rect(
            x,
            l.top,
            l.col_w,
            l.cols_bottom - l.top,
            r##"fill="#f8fafc" stroke="#64748b" stroke-width="1.5""##,
        );
        out.lines(x, l.top, &column_lines(col));
    }
    for row in &l.rows {
        let (fill, _) = colours(row.role);
        out.rect(
            l.label_x + l.label_w,
            row.y - PAD,
            l.cols_end + PAD - l.label_w - l.label_x,
            row.h + 2 * PAD,
            &format!(r#"fill="{fill}" fill-opacity="0.3" stroke="none""#),
        );
    }
}

/// Every VM in its column and row, boxes of one row equally high.
fn vms<'a>(out: &mut Svg, l: &Layout<'a>) -> Vec<VmBox<'a>> {
    let mut boxes = Vec::new();
    for (i, col) in l.cols.iter().enumerate() {
        let x = l.col_x(i) + PAD;
        for row in &l.rows {
            for (k, vm) in col.vms.iter().filter(|v| v.role == row.role).enumerate() {
                let y = row.y + u32::try_from(k).unwrap_or(0) * (row.vm_h + GAP);
                let mut lines = vm_lines(vm);
                lines.resize(
                    usize::try_from((row.vm_h - 2 * PAD) / LINE_H).unwrap_or(0),
                    String::new(),
                );
                let h = out.text_box(x, y, l.vm_w, &lines, &role_style(vm.role));
                boxes.push(VmBox { vm, x, y, h });
            }
        }
    }
    boxes
}

/// The tier labels and the traffic between them: clients to the load balancers, the load
/// balancers to what they front, the workers' volumes to NFS.
fn tiers(out: &mut Svg, l: &Layout<'_>) {
    let clients_h = box_h(1);
    out.text_box(
        l.label_x,
        l.top,
        l.label_w,
        &l.clients,
        r##"fill="#ffffff" stroke="#334155""##,
    );
    for (row, label) in l.rows.iter().zip(&l.tier_texts) {
        out.text_box(l.label_x, row.y, l.label_w, label, &role_style(row.role));
    }
    let mid = l.label_x + l.label_w / 2;
    if let Some(lb) = l.row(RoleKind::LoadBalancer) {
        out.arrow(&[(mid, l.top + clients_h), (mid, lb.y)], false);
        fronted(out, l, lb);
    }
    if let (Some(w), Some(n)) = (l.row(RoleKind::Worker), l.row(RoleKind::Nfs)) {
        out.arrow(&[(mid, w.y + w.label_h), (mid, n.y)], true);
        out.small(
            mid + 4,
            (w.y + w.label_h + n.y) / 2,
            "PVCs mount the exports",
        );
    }
}

/// Arrows from the load balancers' label to each tier they front, with the port.
fn fronted(out: &mut Svg, l: &Layout<'_>, lb: &Row) {
    // Outer tracks go farthest and leave highest, so no two arrows cross.
    let vault = format!(":{}", hakube_haproxy_config::reference::VAULT_PORT);
    let api = format!(":{API_PORT}");
    let targets: Vec<(&Row, &str)> = [
        (RoleKind::Worker, ":80 :443"),
        (RoleKind::Vault, vault.as_str()),
        (RoleKind::ControlPlane, api.as_str()),
    ]
    .into_iter()
    .filter_map(|(role, port)| l.row(role).map(|r| (r, port)))
    .collect();
    for (k, (target, port)) in targets.iter().enumerate() {
        let k = u32::try_from(k).unwrap_or(0);
        let track = MARGIN + 4 + k * 10;
        let from = lb.y + PAD + 4 + k * 10;
        let to = target.y + target.label_h / 2;
        out.arrow(
            &[
                (l.label_x, from),
                (track, from),
                (track, to),
                (l.label_x, to),
            ],
            false,
        );
        out.small(track + 3, to - 3, port);
    }
}

/// The NFS exports beside the NFS VM.
fn storage(out: &mut Svg, l: &Layout<'_>, vm_boxes: &[VmBox<'_>]) {
    let (Some(row), false) = (l.row(RoleKind::Nfs), l.storage.is_empty()) else {
        return;
    };
    out.text_box(
        l.storage_x,
        row.y,
        l.storage_w,
        &l.storage,
        &role_style(RoleKind::Nfs),
    );
    for b in vm_boxes.iter().filter(|b| b.vm.role == RoleKind::Nfs) {
        let at = (b.y + b.h / 2).min(row.y + box_h(l.storage.len()) - PAD);
        out.arrow(&[(b.x + l.vm_w, at), (l.storage_x, at)], false);
    }
}

/// Observability below the columns, fed by every node's masters and workers.
fn observability(out: &mut Svg, l: &Layout<'_>) {
    if l.obs.is_empty() {
        return;
    }
    for (i, col) in l.cols.iter().enumerate() {
        if col
            .vms
            .iter()
            .any(|v| matches!(v.role, RoleKind::ControlPlane | RoleKind::Worker))
        {
            let x = l.col_x(i) + l.col_w / 2;
            out.arrow(&[(x, l.cols_bottom), (x, l.obs_y)], true);
        }
    }
    out.text_box(
        l.label_x,
        l.obs_y,
        l.right - l.label_x,
        &l.obs,
        r##"fill="#f1f5f9" stroke="#475569""##,
    );
}
