//! Where everything goes: the widths of the label strip, the VM boxes and the columns; one
//! row per tier under the column headers; the storage box at the right, observability below.

use hakube_topology::{Cluster, RoleKind};

use super::super::facts::{
    Column, column_lines, columns, observability_lines, rows, storage_lines, tier_lines,
    title_lines, vm_lines,
};
use super::writer::{GAP, GUTTER, MARGIN, PAD, TITLE_H, box_h, text_w};

/// One tier's row: where it starts, how high it is, and its label box's height.
pub(super) struct Row {
    /// The tier.
    pub(super) role: RoleKind,
    /// Its top.
    pub(super) y: u32,
    /// Its height.
    pub(super) h: u32,
    /// The height of its label box (at the left).
    pub(super) label_h: u32,
    /// The height of each of its VM boxes.
    pub(super) vm_h: u32,
}

/// The picture's texts and geometry, computed before anything is drawn.
pub(super) struct Layout<'a> {
    /// The Proxmox nodes.
    pub(super) cols: Vec<Column<'a>>,
    /// The tiers that have VMs, top to bottom.
    pub(super) rows: Vec<Row>,
    /// Each row's label lines.
    pub(super) tier_texts: Vec<Vec<String>>,
    /// The two title lines.
    pub(super) title: Vec<String>,
    /// The storage box's lines (empty without NFS).
    pub(super) storage: Vec<String>,
    /// The observability box's lines (empty without monitoring and logging).
    pub(super) obs: Vec<String>,
    /// The clients box's line.
    pub(super) clients: Vec<String>,
    /// Left edge of the tier labels.
    pub(super) label_x: u32,
    /// Width of the tier labels.
    pub(super) label_w: u32,
    /// Width of a VM box.
    pub(super) vm_w: u32,
    /// Width of a column.
    pub(super) col_w: u32,
    /// Left edge of the first column.
    pub(super) cols_x: u32,
    /// Right edge of the last column.
    pub(super) cols_end: u32,
    /// Left edge of the storage box.
    pub(super) storage_x: u32,
    /// Width of the storage box.
    pub(super) storage_w: u32,
    /// Top of the columns (under the title).
    pub(super) top: u32,
    /// Bottom of the columns.
    pub(super) cols_bottom: u32,
    /// Top of the observability box.
    pub(super) obs_y: u32,
    /// Right edge of the drawing.
    pub(super) right: u32,
    /// Document width.
    pub(super) width: u32,
    /// Document height.
    pub(super) height: u32,
}

impl<'a> Layout<'a> {
    pub(super) fn new(cluster: &'a Cluster) -> Self {
        let cols = columns(cluster);
        let title = title_lines(cluster);
        let storage = storage_lines(cluster);
        let obs = observability_lines(cluster);
        let clients = vec!["clients".to_owned()];
        let roles = rows(cluster);
        let tier_texts: Vec<Vec<String>> = roles.iter().map(|r| tier_lines(cluster, *r)).collect();
        let label_w = tier_texts
            .iter()
            .chain(std::iter::once(&clients))
            .map(|l| text_w(l))
            .max()
            .unwrap_or(0)
            + 2 * PAD;
        let vm_w = vm_width(cluster, &cols);
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
        let top = MARGIN + TITLE_H;
        let first = top + header_h(&cols) + GAP;
        let (rows, end) = place_rows(cluster, &cols, &roles, &tier_texts, &storage, first);
        let cols_bottom = end - 2 * GAP;
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
        Self {
            cols,
            rows,
            tier_texts,
            title,
            storage,
            obs,
            clients,
            label_x,
            label_w,
            vm_w,
            col_w,
            cols_x,
            cols_end,
            storage_x,
            storage_w,
            top,
            cols_bottom,
            obs_y,
            right,
            width,
            height,
        }
    }

    /// The left edge of column `i`.
    pub(super) fn col_x(&self, i: usize) -> u32 {
        self.cols_x + u32::try_from(i).unwrap_or(0) * (self.col_w + GAP)
    }

    /// The row of a tier, when it has VMs.
    pub(super) fn row(&self, role: RoleKind) -> Option<&Row> {
        self.rows.iter().find(|r| r.role == role)
    }
}

/// A VM box's width: room for the longest VM or column header text.
fn vm_width(cluster: &Cluster, cols: &[Column<'_>]) -> u32 {
    cluster
        .vms
        .iter()
        .map(|v| text_w(&vm_lines(v)))
        .chain(cols.iter().map(|c| text_w(&column_lines(c))))
        .max()
        .unwrap_or(0)
        + 2 * PAD
}

/// The column headers' height: the tallest one's.
fn header_h(cols: &[Column<'_>]) -> u32 {
    cols.iter()
        .map(|c| box_h(column_lines(c).len()))
        .max()
        .unwrap_or(0)
        .max(box_h(1))
}

/// The rows from `y` down, each as high as its tallest stack of VMs in one column, its label,
/// or (for NFS) the storage box; and where the next row would start.
fn place_rows(
    cluster: &Cluster,
    cols: &[Column<'_>],
    roles: &[RoleKind],
    tier_texts: &[Vec<String>],
    storage: &[String],
    mut y: u32,
) -> (Vec<Row>, u32) {
    let mut rows = Vec::new();
    for (role, label) in roles.iter().zip(tier_texts) {
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
        rows.push(Row {
            role: *role,
            y,
            h,
            label_h,
            vm_h,
        });
        y += h + 3 * GAP;
    }
    (rows, y)
}
