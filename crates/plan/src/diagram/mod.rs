//! Pictures of the placed topology, drawn the way the reference design draws its cluster: the
//! Proxmox nodes with their VMs; the path of traffic (clients -> VIP -> HAProxy -> the masters
//! on 6443, and Traefik's NodePorts on the workers); storage (the NFS server, its exports and
//! the StorageClasses they back); observability.
//!
//! One picture in two forms, both plain text computed from a [`Cluster`], with no renderer
//! needed at run time: [`mermaid()`] (a Mermaid flowchart, which GitHub, GitLab and most Markdown
//! viewers draw) and [`svg()`] (a standalone SVG document laid out here: one column per Proxmox
//! node, one row per tier). [`crate::render`] puts them in the plan at [`MERMAID_PATH`] and
//! [`SVG_PATH`], beside the GitOps tree `cluster/` and never inside it.
//!
//! ```
//! let text = include_str!("../../../../examples/seed-cluster.yaml");
//! let cluster = hakube_topology::load(text, "seed-cluster.yaml")?;
//! let svg = hakube_plan::diagram::svg(&cluster);
//! assert!(svg.starts_with("<svg ") && svg.contains(">master-1<"));
//! assert!(hakube_plan::diagram::mermaid(&cluster).contains("flowchart TB"));
//! # Ok::<(), hakube_topology::Error>(())
//! ```
//!
//! The module keeps what the picture says (`facts`: columns, tiers and their text) apart
//! from the two writers ([`mermaid()`], [`svg()`]).

mod facts;
mod mermaid;
mod svg;

pub use mermaid::mermaid;
pub use svg::svg;

use hakube_topology::Cluster;

use crate::{Error, PlanTree};

/// Where the plan keeps the Mermaid form.
pub const MERMAID_PATH: &str = "diagrams/topology.mmd";
/// Where the plan keeps the SVG form.
pub const SVG_PATH: &str = "diagrams/topology.svg";

pub(crate) fn render(cluster: &Cluster, tree: &mut PlanTree) -> Result<(), Error> {
    tree.insert(MERMAID_PATH.to_owned(), mermaid(cluster), 0o644)?;
    tree.insert(SVG_PATH.to_owned(), svg(cluster), 0o644)?;
    Ok(())
}
