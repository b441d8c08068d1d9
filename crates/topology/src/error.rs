//! Errors and problems.

use std::fmt;

use crate::source::Position;

/// Why a topology could not be loaded. Nothing is retryable: the file must change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file is not YAML, or does not fit the schema (unknown field, wrong type, missing field).
    /// Not retryable: fix the file.
    #[error("{origin}:{}: {}{message}", fmt_pos(*position), fmt_path(path.as_deref()))]
    Parse {
        /// The file name (or `<string>`).
        origin: String,
        /// Where the parser stopped, when known.
        position: Option<Position>,
        /// The field path the error is about, when known.
        path: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The file parses but breaks one or more rules; every problem is listed.
    /// Not retryable: fix the file.
    #[error("{origin}: {} problem{} in the topology:\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList { origin, problems })]
    Invalid {
        /// The file name (or `<string>`).
        origin: String,
        /// Every rule broken, in file order.
        problems: Vec<Problem>,
    },
}

impl Error {
    /// The problems, for an [`Error::Invalid`]; empty otherwise.
    #[must_use]
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems, .. } => problems,
            Self::Parse { .. } => &[],
        }
    }
}

fn fmt_pos(p: Option<Position>) -> String {
    p.map_or_else(|| "?".to_owned(), |p| p.to_string())
}

fn fmt_path(p: Option<&str>) -> String {
    match p {
        Some(p) if !p.is_empty() => format!("{p}: "),
        _ => String::new(),
    }
}

struct ProblemList<'a> {
    origin: &'a str,
    problems: &'a [Problem],
}

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {}:{}", self.origin, p)?;
        }
        Ok(())
    }
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Accepted, but worth knowing (e.g. a single control-plane node).
    Warning,
    /// Refused.
    Error,
}

/// The rule a problem breaks; each has its own test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rule {
    /// Control-plane count: odd, at least one (one only for labs).
    ControlPlaneQuorum,
    /// A role or group count that cannot work (no load balancer, no worker).
    Count,
    /// A VM size that cannot boot (zero cores, too little memory or disk).
    Size,
    /// VIP, gateway, DNS or a VM address outside the node network.
    AddressOutsideNetwork,
    /// An address used twice (VM, VIP, gateway).
    AddressDuplicate,
    /// A node address inside the pod or service network.
    AddressInClusterNetwork,
    /// The address range to allocate from is wrong or too small.
    AddressPool,
    /// Pod, service and node networks overlap.
    CidrOverlap,
    /// A NodePort outside 30000-32767.
    NodePortRange,
    /// The two NodePorts are equal.
    NodePortDuplicate,
    /// A name that is not a DNS label / Proxmox VM name, or a malformed label or taint.
    InvalidName,
    /// A name used twice.
    DuplicateName,
    /// A VMID outside the allowed range.
    VmidRange,
    /// A VMID used twice.
    VmidDuplicate,
    /// The Kubernetes version does not parse.
    KubernetesVersion,
    /// An export path that is relative, repeated or nested in another.
    ExportPath,
    /// A StorageClass naming a missing export, or a repeated StorageClass name.
    StorageClass,
    /// An NFS client network outside the node network.
    ExportClient,
    /// No template to clone from on some node.
    Template,
    /// A Proxmox setting that is wrong (URL, node list, VLAN).
    Proxmox,
    /// Anti-affinity or capacity cannot hold.
    Placement,
    /// SSH user or keys missing or malformed.
    Ssh,
    /// The ingress TLS settings are inconsistent.
    Ingress,
    /// The Vault settings are inconsistent.
    Vault,
    /// The VRRP settings are wrong.
    Vrrp,
    /// The backup settings are wrong: an etcd backup export that is missing, backs a
    /// StorageClass or lists clients, a schedule that is not 5 cron fields, or no snapshot kept.
    Backup,
}

/// One broken rule, pointing into the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The rule.
    pub rule: Rule,
    /// The field path, e.g. `workers.groups[0].count`.
    pub path: String,
    /// Where that field stands in the file (or its nearest parent), when known.
    pub position: Option<Position>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning: ",
            Severity::Error => "",
        };
        write!(
            f,
            "{}: {sev}{}: {}",
            fmt_pos(self.position),
            self.path,
            self.message
        )
    }
}
