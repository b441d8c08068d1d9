//! The hakube cluster topology: one YAML file describing a highly available Kubernetes cluster
//! on Proxmox VE, validated and placed before anything touches Proxmox.
//!
//! This crate does no I/O. It parses the topology file ([`Topology`]), checks every rule
//! ([`Rule`]), allocates names, addresses and VMIDs, and places every VM on a Proxmox node
//! ([`Cluster`]). The same input always gives the same result, so re-running a plan changes
//! nothing.
//!
//! ```
//! let text = include_str!("../../../examples/seed-cluster.yaml");
//! let cluster = hakube_topology::load(text, "seed-cluster.yaml")?;
//! assert_eq!(cluster.vms_with_role(hakube_topology::RoleKind::ControlPlane).count(), 3);
//! for vm in &cluster.vms {
//!     println!("{} {} on {} vmid {} at {}", vm.name, vm.role, vm.proxmox_node, vm.vmid, vm.address);
//! }
//! # Ok::<(), hakube_topology::Error>(())
//! ```
//!
//! Errors name the file, the line and column, the field path and the rule:
//!
//! ```
//! let text = include_str!("../../../examples/seed-cluster.yaml")
//!     .replace("count: 3 # masters", "count: 4 # masters");
//! let err = hakube_topology::load(&text, "seed.yaml").unwrap_err();
//! assert!(err.to_string().contains("control_plane.count"));
//! assert_eq!(err.problems()[0].rule, hakube_topology::Rule::ControlPlaneQuorum);
//! ```
//!
//! Dependencies: `serde-saphyr` parses YAML (serde_yaml is unmaintained) and reports positions;
//! `ipnet` gives CIDR arithmetic; `semver` parses the Kubernetes version; `schemars` generates
//! the JSON Schema editors use ([`json_schema`]).

pub mod model;

mod error;
mod place;
mod source;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

pub use error::{Error, Problem, Rule, Severity};
pub use model::{
    Addons, AddressRange, Backup, Capacity, ClusterMeta, DEFAULT_ETCD_BACKUP_KEEP,
    DEFAULT_ETCD_BACKUP_SCHEDULE, DEFAULT_NFS_BACKUP_KEEP, DEFAULT_NFS_BACKUP_SCHEDULE, EtcdBackup,
    Export, Ingress, Kubernetes, LogAgent, Network, Nfs, NfsBackup, Proxmox, ProxmoxNode,
    ReclaimPolicy, Role, SharedTemplate, Ssh, StorageClass, Taint, TaintEffect, TlsMode, Topology,
    Vault, VaultPlacement, VmSize, VmidRange, WorkerGroup, Workers,
};
pub use source::Position;
pub use validate::{NODE_PORT_RANGE, VMID_MAX, VMID_MIN, is_dns_label, is_dns_name};

use crate::source::SourceMap;
use crate::validate::Findings;

/// The role a VM plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleKind {
    /// HAProxy + keepalived.
    LoadBalancer,
    /// kubeadm control plane with stacked etcd.
    ControlPlane,
    /// Kubernetes worker.
    Worker,
    /// NFS server.
    Nfs,
    /// Vault server.
    Vault,
}

impl RoleKind {
    /// Whether two VMs of this role must not share a Proxmox node.
    #[must_use]
    pub fn anti_affine(self) -> bool {
        matches!(self, Self::LoadBalancer | Self::ControlPlane | Self::Vault)
    }

    /// The role as written in summaries and tags.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoadBalancer => "loadbalancer",
            Self::ControlPlane => "control-plane",
            Self::Worker => "worker",
            Self::Nfs => "nfs",
            Self::Vault => "vault",
        }
    }
}

impl fmt::Display for RoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One placed VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vm {
    /// VM name (also its hostname and Kubernetes node name).
    pub name: String,
    /// Its role.
    pub role: RoleKind,
    /// The worker group, for workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The Proxmox node it runs on.
    pub proxmox_node: String,
    /// Its VMID.
    pub vmid: u32,
    /// Its address on the node network.
    pub address: Ipv4Addr,
    /// Its size.
    pub size: VmSize,
    /// The template it is cloned from.
    pub template_vmid: u32,
    /// Kubernetes node labels (workers).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Kubernetes node taints (workers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

/// What one Proxmox node carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeTotals {
    /// The Proxmox node.
    pub node: String,
    /// VM count.
    pub vms: u32,
    /// Cores.
    pub cores: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Disk in GiB.
    pub disk_gib: u64,
}

/// A validated, placed cluster: the topology plus every VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cluster {
    /// The topology as written (defaults filled in).
    pub topology: Topology,
    /// Every VM, in allocation order (load balancers, control plane, NFS, Vault, workers).
    pub vms: Vec<Vm>,
    /// Accepted but noteworthy findings (e.g. a single control-plane node).
    pub warnings: Vec<Problem>,
    /// The pinned Kubernetes version, normalised (`1.34.2`).
    pub kubernetes_version: String,
}

impl Cluster {
    /// The VMs of one role, in order.
    pub fn vms_with_role(&self, role: RoleKind) -> impl Iterator<Item = &Vm> {
        self.vms.iter().filter(move |v| v.role == role)
    }

    /// The workers that serve ingress: HAProxy sends ports 80/443 to their NodePorts, and
    /// Traefik runs on exactly these nodes. Every worker today; both sides take their nodes
    /// from here, so they cannot drift apart (with `externalTrafficPolicy: Local` a node
    /// without a Traefik pod refuses the NodePort and its backend is always DOWN).
    pub fn ingress_workers(&self) -> impl Iterator<Item = &Vm> {
        self.vms_with_role(RoleKind::Worker)
    }

    /// The first control-plane VM (where `kubeadm init` runs).
    #[must_use]
    pub fn first_master(&self) -> Option<&Vm> {
        self.vms_with_role(RoleKind::ControlPlane).next()
    }

    /// A VM by name.
    #[must_use]
    pub fn vm(&self, name: &str) -> Option<&Vm> {
        self.vms.iter().find(|v| v.name == name)
    }

    /// Per Proxmox node totals, in the order of `proxmox.nodes`.
    #[must_use]
    pub fn node_totals(&self) -> Vec<NodeTotals> {
        self.topology
            .proxmox
            .nodes
            .iter()
            .map(|n| {
                let mut t = NodeTotals {
                    node: n.name.clone(),
                    vms: 0,
                    cores: 0,
                    memory_mib: 0,
                    disk_gib: 0,
                };
                for vm in self.vms.iter().filter(|v| v.proxmox_node == n.name) {
                    t.vms += 1;
                    t.cores += u64::from(vm.size.cores);
                    t.memory_mib += vm.size.memory_mib;
                    t.disk_gib += vm.size.disk_gib;
                }
                t
            })
            .collect()
    }

    /// The fully qualified name of a VM, when a search domain is set.
    #[must_use]
    pub fn fqdn(&self, vm: &Vm) -> Option<String> {
        self.topology
            .network
            .search_domain
            .as_ref()
            .map(|d| format!("{}.{d}", vm.name))
    }
}

impl Topology {
    /// Parses a topology file. `origin` names it in errors (a path, or `<string>`).
    ///
    /// # Errors
    /// [`Error::Parse`] with the position and field path when the text is not YAML or does not
    /// fit the schema (unknown fields are rejected).
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, Error> {
        serde_saphyr::from_str::<Self>(text).map_err(|e| {
            let inner = e.without_snippet();
            let position = inner.location().filter(|l| l.line() > 0).map(|l| Position {
                line: l.line(),
                column: l.column(),
            });
            let mut message = inner.to_string();
            let mut path = position
                .and_then(|p| SourceMap::build(text).and_then(|m| m.path_at(p).map(str::to_owned)));
            // An unknown or missing field is about the mapping that holds it.
            if message.starts_with("unknown field") || message.starts_with("missing field") {
                path = path.map(|p| p.rfind('.').map_or_else(String::new, |i| p[..i].to_owned()));
            }
            // The position is printed by us; drop the library's own suffix.
            if let Some(i) = message.find(" at line ") {
                message.truncate(i);
            }
            Error::Parse {
                origin: origin.to_owned(),
                position,
                path,
                message,
            }
        })
    }

    /// Checks every rule, allocates and places every VM.
    ///
    /// `text` is the file this topology came from, used only to point errors at lines; pass
    /// `None` for a topology built in code.
    ///
    /// # Errors
    /// [`Error::Invalid`] listing every problem when any rule is broken.
    pub fn place(self, text: Option<&str>, origin: &str) -> Result<Cluster, Error> {
        let mut f = Findings::default();
        validate::check(&self, &mut f);
        let vms = if f.errors.is_empty() {
            place::place(&self, &mut f)
        } else {
            Vec::new()
        };
        // Positions are only needed to report something: skip the second parse otherwise.
        let needs_map = !f.errors.is_empty() || !f.warnings.is_empty();
        let map = text
            .filter(|_| needs_map)
            .and_then(SourceMap::build)
            .unwrap_or_default();
        let to_problems = |items: Vec<(Rule, String, String)>, severity| {
            let mut v: Vec<Problem> = items
                .into_iter()
                .map(|(rule, path, message)| Problem {
                    severity,
                    rule,
                    position: map.position(&path),
                    path,
                    message,
                })
                .collect();
            v.sort_by(|a, b| {
                a.position
                    .cmp(&b.position)
                    .then_with(|| a.path.cmp(&b.path))
            });
            v
        };
        let warnings = to_problems(f.warnings, Severity::Warning);
        if !f.errors.is_empty() {
            return Err(Error::Invalid {
                origin: origin.to_owned(),
                problems: to_problems(f.errors, Severity::Error),
            });
        }
        let kubernetes_version = validate::parse_k8s_version(&self.kubernetes.version)
            .map(|v| v.to_string())
            .unwrap_or_default();
        Ok(Cluster {
            topology: self,
            vms,
            warnings,
            kubernetes_version,
        })
    }
}

/// Parses, validates and places a topology file.
///
/// # Errors
/// See [`Topology::from_yaml`] and [`Topology::place`].
pub fn load(text: &str, origin: &str) -> Result<Cluster, Error> {
    Topology::from_yaml(text, origin)?.place(Some(text), origin)
}

/// The JSON Schema of the topology file, for editors (e.g. yaml-language-server).
#[must_use]
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Topology)).unwrap_or_default()
}
