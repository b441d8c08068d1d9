//! Idempotent VM provisioning: desired VMs -> observe -> diff -> act.
//!
//! The input is a list of [`VmSpec`]s (not the cluster topology; the composing layer maps
//! one to the other). A run reads the cluster, checks everything it can before touching it
//! (nodes online, templates present and usable, no foreign VM on a wanted VMID), then
//! drives each VM towards its spec, observing it again after every step whose outcome the
//! plan could not foresee (a clone, a migration, a wait, a failure). So:
//!
//! - a second run makes no mutating call at all;
//! - a run killed at any point is finished by the next one: VMIDs are fixed by the spec
//!   (no duplicates), and a half-made VM carries the ownership marker from its first call
//!   (the clone's description), so it is adopted and completed, never orphaned;
//! - nothing is deleted unless [`ProvisionOptions::prune`] is set;
//! - a dry run ([`Provisioner::plan`]) makes only GET requests.
//!
//! ```no_run
//! # #[cfg(feature = "client")]
//! # mod demo {
//! use hakube_proxmox_api::provision::{Provisioner, ProvisionOptions, VmSpec};
//! # async fn f(client: hakube_proxmox_api::Client) -> Result<(), hakube_proxmox_api::Error> {
//! let mut vm = VmSpec::new("k8s-m1", "pve1", 201, 9000);
//! vm.cores = 2;
//! vm.memory_mib = 4096;
//! let p = Provisioner::new(client, ProvisionOptions::new("hakube-demo"));
//! let plan = p.plan(&[vm.clone()]).await?;
//! print!("{plan}");
//! let report = p.apply(&[vm]).await?;
//! print!("{report}");
//! # Ok(()) }
//! # }
//! ```

mod plan;
#[cfg(feature = "client")]
mod run;

use core::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use plan::{Action, ClusterState, ObservedVm, Plan, VmPlan, desired_config, plan_cluster};
#[cfg(feature = "client")]
pub use run::{Provisioner, Report, VmOutcome};

use crate::cloudinit::IpConfig;

/// How a VM is cloned from its template.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloneMode {
    /// A linked clone (fast, shares the template's base disk; same storage).
    #[default]
    Linked,
    /// A full copy, optionally onto another storage.
    Full,
}

/// The VM's first NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSpec {
    /// NIC model (`virtio`).
    pub model: String,
    /// Bridge (`vmbr0`).
    pub bridge: String,
    /// VLAN tag.
    pub vlan: Option<u16>,
}

/// Cloud-init settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloudInit {
    /// `ciuser`.
    pub user: Option<String>,
    /// SSH public keys (`sshkeys`).
    pub ssh_keys: Vec<String>,
    /// `ipconfig0`.
    pub ip: Option<IpConfig>,
    /// `nameserver`.
    pub nameservers: Vec<IpAddr>,
    /// `searchdomain`.
    pub search_domains: Vec<String>,
}

/// One desired VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSpec {
    /// VM name (a DNS label).
    pub name: String,
    /// The node it must run on.
    pub node: String,
    /// Its VMID (fixed, so re-runs never duplicate).
    pub vmid: u32,
    /// The template's VMID. On the VM's node, or on shared storage (then cloned with `target`).
    pub template: u32,
    /// Linked or full clone.
    pub clone_mode: CloneMode,
    /// Target storage of a full clone.
    pub storage: Option<String>,
    /// vCPUs.
    pub cores: u32,
    /// Memory, MiB.
    pub memory_mib: u32,
    /// The disk to grow (`scsi0`) and its wanted size in GiB; never shrunk.
    pub disk: Option<(String, u32)>,
    /// The first NIC.
    pub network: Option<NetSpec>,
    /// Cloud-init.
    pub cloud_init: Option<CloudInit>,
    /// Extra tags (the ownership tag is added).
    pub tags: Vec<String>,
    /// Resource pool.
    pub pool: Option<String>,
    /// Role: VMs of one role with `ha` get a negative resource-affinity rule.
    pub role: Option<String>,
    /// Make it an HA resource.
    pub ha: bool,
    /// Start it (and `onboot=1`).
    pub start: bool,
    /// It has a QEMU guest agent: enable it and wait for an address after start.
    pub agent: bool,
}

impl VmSpec {
    /// A VM with 1 core, 1 GiB, started, cloned (linked) from `template`.
    pub fn new(name: impl Into<String>, node: impl Into<String>, vmid: u32, template: u32) -> Self {
        Self {
            name: name.into(),
            node: node.into(),
            vmid,
            template,
            clone_mode: CloneMode::Linked,
            storage: None,
            cores: 1,
            memory_mib: 1024,
            disk: None,
            network: None,
            cloud_init: None,
            tags: Vec::new(),
            pool: None,
            role: None,
            ha: false,
            start: true,
            agent: false,
        }
    }
}

/// What happens during a run, for progress display.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// The VM (or `cluster`).
    pub vm: String,
    /// The step.
    pub step: String,
    /// Its state.
    pub phase: Phase,
}

/// The state of a step.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Started.
    Started,
    /// Finished.
    Done,
    /// Failed, will be retried.
    Retrying(String),
    /// Failed for good.
    Failed(String),
}

/// Receives [`Event`]s.
pub type Progress = Arc<dyn Fn(&Event) + Send + Sync>;

/// Settings of a provisioning run.
#[derive(Clone)]
pub struct ProvisionOptions {
    /// The ownership tag (`hakube-<cluster>`): VMs carrying it are this tool's.
    pub owner_tag: String,
    /// Delete owned VMs that are not in the spec list.
    pub prune: bool,
    /// Worker tasks (clone, start, ...) in flight per node. Default 3: pvedaemon has 3
    /// workers, and parallel clones on one storage contend for its lock.
    pub tasks_per_node: usize,
    /// How long to wait for a guest agent address (None: do not wait).
    pub agent_timeout: Option<Duration>,
    /// How long one task may take.
    pub task_timeout: Duration,
    /// Attempts of a step that failed without effect (lock timeouts, storage locks).
    pub step_attempts: u32,
    /// Progress callback.
    pub progress: Option<Progress>,
}

impl fmt::Debug for ProvisionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisionOptions")
            .field("owner_tag", &self.owner_tag)
            .field("prune", &self.prune)
            .field("tasks_per_node", &self.tasks_per_node)
            .field("agent_timeout", &self.agent_timeout)
            .finish_non_exhaustive()
    }
}

impl ProvisionOptions {
    /// Defaults for the ownership tag `owner_tag`.
    pub fn new(owner_tag: impl Into<String>) -> Self {
        Self {
            owner_tag: owner_tag.into(),
            prune: false,
            tasks_per_node: 3,
            agent_timeout: Some(Duration::from_secs(300)),
            task_timeout: Duration::from_secs(1800),
            step_attempts: 4,
            progress: None,
        }
    }

    /// The marker written into the description of every VM this tool creates.
    pub fn owner_marker(&self) -> String {
        format!("managed-by=hakube owner={}", self.owner_tag)
    }
}
