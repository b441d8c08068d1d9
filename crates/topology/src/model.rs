//! The topology file, as the user writes it.
//!
//! Every struct rejects unknown fields, so a typo is an error naming the field rather than a
//! silently ignored setting. Sizes are plain numbers: changing a role's size is changing one
//! number.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole cluster description: one file, one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Cluster identity.
    pub cluster: ClusterMeta,
    /// The Proxmox VE cluster hosting every VM.
    pub proxmox: Proxmox,
    /// The single L2 network every VM sits on.
    pub network: Network,
    /// The HAProxy + keepalived VMs that hold the VIP.
    pub loadbalancers: Role,
    /// The kubeadm control-plane VMs (stacked etcd).
    pub control_plane: Role,
    /// The worker VMs, in groups with their own labels and taints.
    pub workers: Workers,
    /// The NFS server and its exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<Nfs>,
    /// StorageClasses backed by the NFS exports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_classes: Vec<StorageClass>,
    /// Kubernetes settings.
    pub kubernetes: Kubernetes,
    /// How HAProxy reaches the ingress controller.
    pub ingress: Ingress,
    /// Which cluster add-ons to install.
    #[serde(default)]
    pub addons: Addons,
    /// The Vault cluster behind cert-manager, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<Vault>,
    /// Backups hakube sets up (today: etcd snapshots to an NFS export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
    /// How hakube logs into the VMs.
    pub ssh: Ssh,
}

/// Cluster identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterMeta {
    /// The cluster name: a DNS label. Also the Proxmox tag that marks the VMs hakube owns.
    pub name: String,
}

/// The Proxmox VE cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Proxmox {
    /// The API endpoint, e.g. `https://pve1.example.lan:8006`.
    pub api_url: String,
    /// The Proxmox nodes VMs may be placed on, in order of preference.
    pub nodes: Vec<ProxmoxNode>,
    /// The storage VM disks are cloned to (e.g. `local-lvm`, `ceph-vm`).
    pub storage: String,
    /// The bridge every VM's NIC joins (e.g. `vmbr0`).
    pub bridge: String,
    /// An optional VLAN tag on that bridge (1-4094).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// One template on shared storage, cloned to any node. Either this or a template on every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SharedTemplate>,
    /// The VMID range hakube allocates from (inclusive).
    pub vmids: VmidRange,
    /// Allow two VMs of one anti-affine role (load balancers, masters, Vault) on one Proxmox
    /// node when there are fewer nodes than VMs. Off by default: it gives up surviving a node loss.
    #[serde(default)]
    pub allow_shared_placement: bool,
}

/// One Proxmox node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxmoxNode {
    /// The node name as Proxmox knows it (`pvecm nodes`).
    pub name: String,
    /// What this node may give to hakube's VMs; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    /// The VMID of this node's own template (local storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<u32>,
}

/// Resources a Proxmox node may give to hakube's VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Virtual CPU cores.
    pub cores: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Disk in GiB; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_gib: Option<u64>,
}

/// A template on shared storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedTemplate {
    /// The template's VMID.
    pub vmid: u32,
    /// The node the template is registered on (clones are POSTed there with `target`).
    pub node: String,
}

/// An inclusive VMID range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmidRange {
    /// First VMID (at least 100).
    pub first: u32,
    /// Last VMID (at most 999999999).
    pub last: u32,
}

/// The node network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The node network, e.g. `10.20.0.0/24`. IPv4.
    #[schemars(with = "String")]
    pub cidr: Ipv4Net,
    /// The default gateway.
    pub gateway: Ipv4Addr,
    /// DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<Ipv4Addr>,
    /// DNS search domain; VMs get `<name>.<search_domain>` in `/etc/hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_domain: Option<String>,
    /// The virtual IP keepalived moves between the load balancers.
    pub vip: Ipv4Addr,
    /// The range VM addresses are allocated from (inclusive), unless a role lists static ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocate: Option<AddressRange>,
    /// The guest's NIC name (cloud-init images: `eth0`).
    #[serde(default = "default_interface")]
    pub interface: String,
    /// The VRRP `virtual_router_id` keepalived uses for the VIP (1-255); unique per L2 network.
    #[serde(default = "default_vrid")]
    pub virtual_router_id: u8,
}

fn default_vrid() -> u8 {
    51
}

fn default_interface() -> String {
    "eth0".to_owned()
}

/// An inclusive IPv4 address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRange {
    /// First address.
    pub first: Ipv4Addr,
    /// Last address.
    pub last: Ipv4Addr,
}

/// A VM's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmSize {
    /// Virtual CPU cores.
    pub cores: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Root disk in GiB (grown from the template's, never shrunk).
    pub disk_gib: u64,
}

/// A role of identical VMs: load balancers, control plane, Vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// How many VMs.
    pub count: u32,
    /// Each VM's size.
    pub size: VmSize,
    /// VM names: `{n}` is the 1-based index, e.g. `lb-{n}`.
    pub name_pattern: String,
    /// Static addresses, one per VM; allocated from `network.allocate` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<Ipv4Addr>>,
    /// The first VMID of this role; allocated from `proxmox.vmids` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid_start: Option<u32>,
}

/// The workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workers {
    /// Default size for every group.
    pub size: VmSize,
    /// Default name pattern: `{group}` and `{n}` (1-based within the group), e.g. `worker-{group}-{n}`.
    pub name_pattern: String,
    /// Worker groups (e.g. prod and nonprod), each with its count, labels and taints.
    pub groups: Vec<WorkerGroup>,
}

/// A group of workers sharing labels and taints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerGroup {
    /// Group name (a DNS label), e.g. `prod`.
    pub name: String,
    /// How many workers in this group.
    pub count: u32,
    /// Overrides `workers.size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<VmSize>,
    /// Overrides `workers.name_pattern`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_pattern: Option<String>,
    /// Node labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Static addresses, one per VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<Ipv4Addr>>,
    /// The first VMID of this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid_start: Option<u32>,
}

/// A Kubernetes node taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Taint effect.
    pub effect: TaintEffect,
}

/// A taint's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    /// Do not schedule new pods.
    NoSchedule,
    /// Avoid scheduling new pods.
    PreferNoSchedule,
    /// Evict running pods.
    NoExecute,
}

impl TaintEffect {
    /// The effect as Kubernetes spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSchedule => "NoSchedule",
            Self::PreferNoSchedule => "PreferNoSchedule",
            Self::NoExecute => "NoExecute",
        }
    }
}

/// The NFS server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nfs {
    /// The VM name.
    pub name: String,
    /// The VM size.
    pub size: VmSize,
    /// A static address; allocated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// A fixed VMID; allocated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// The exports.
    pub exports: Vec<Export>,
}

/// One NFS export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// Absolute path on the NFS server, e.g. `/srv/nfs/k8s-prod`.
    pub path: String,
    /// Networks allowed to mount it; the node network when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub clients: Vec<Ipv4Net>,
}

/// A StorageClass backed by one export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageClass {
    /// The StorageClass name, e.g. `nfs-prod`.
    pub name: String,
    /// The export it provisions into (must be one of `nfs.exports[].path`).
    pub export: String,
    /// What happens to a volume's data when its claim is deleted.
    pub reclaim_policy: ReclaimPolicy,
    /// Mark it as the cluster's default class.
    #[serde(default)]
    pub default: bool,
}

/// A StorageClass reclaim policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReclaimPolicy {
    /// Keep the data (production).
    Retain,
    /// Delete the data.
    Delete,
}

/// Kubernetes settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    /// The pinned Kubernetes version, e.g. `1.34.2` (a leading `v` is accepted).
    pub version: String,
    /// The pod network (kubeadm `podSubnet`, Calico's pool).
    #[schemars(with = "String")]
    pub pod_cidr: Ipv4Net,
    /// The service network (kubeadm `serviceSubnet`).
    #[schemars(with = "String")]
    pub service_cidr: Ipv4Net,
    /// The cluster DNS domain.
    #[serde(default = "default_dns_domain")]
    pub dns_domain: String,
}

fn default_dns_domain() -> String {
    "cluster.local".to_owned()
}

/// How HAProxy reaches the ingress controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    /// Traefik's HTTP NodePort.
    pub http_node_port: u16,
    /// Traefik's HTTPS NodePort.
    pub https_node_port: u16,
    /// Where TLS ends.
    pub tls: TlsMode,
    /// With `terminate`: the PEM (certificate + key) on the load balancers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// Where ingress TLS ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// L4: HAProxy passes TCP through (PROXY protocol v2); TLS ends at Traefik.
    Passthrough,
    /// L7: TLS ends at HAProxy.
    Terminate,
}

/// Which add-ons to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Addons {
    /// Prometheus, kube-state-metrics, metrics-server, Grafana.
    #[serde(default = "yes")]
    pub monitoring: bool,
    /// Loki plus a log agent.
    #[serde(default = "yes")]
    pub logging: bool,
    /// The log agent.
    #[serde(default)]
    pub log_agent: LogAgent,
    /// Install a default-deny NetworkPolicy example per application namespace.
    #[serde(default)]
    pub default_deny_policies: bool,
    /// The wildcard domain for applications behind Traefik (default `apps.<search_domain>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps_domain: Option<String>,
    /// A local-disk (not NFS) StorageClass for Prometheus, Loki and in-cluster Vault. When
    /// absent they use ephemeral volumes: their data does not survive a pod move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_storage_class: Option<String>,
}

impl Default for Addons {
    fn default() -> Self {
        Self {
            monitoring: true,
            logging: true,
            log_agent: LogAgent::default(),
            default_deny_policies: false,
            apps_domain: None,
            local_storage_class: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// The log shipping agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogAgent {
    /// Grafana Alloy, Promtail's successor (the default).
    #[default]
    Alloy,
    /// Promtail: end-of-life since 2026-03-02, kept for existing setups.
    Promtail,
}

/// The Vault cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vault {
    /// Where Vault runs.
    pub placement: VaultPlacement,
    /// The VMs (with `placement: vms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vms: Option<Role>,
}

/// Where Vault runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VaultPlacement {
    /// Dedicated VMs (the seed's second diagram: three).
    Vms,
    /// Inside the Kubernetes cluster (Helm chart, HA raft).
    InCluster,
}

/// Backups hakube sets up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Periodic etcd snapshots to an NFS export; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdBackup>,
    /// Periodic snapshots of the NFS exports on the NFS VM; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<NfsBackup>,
}

/// Snapshots of every StorageClass export, taken on the NFS VM by a systemd timer: dated
/// directories (rsync, unchanged files hard-linked to the previous snapshot), each verified
/// against a SHA-256 manifest, the newest `keep` kept. Restore with the NFS VM's
/// `hakube-nfs-restore SNAPSHOT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NfsBackup {
    /// Absolute directory on the NFS VM, outside every export (ideally another disk, or copied
    /// off the VM).
    pub target: String,
    /// When to run: a systemd `OnCalendar=` expression (`daily`, `*-*-* 02:30:00`). Default:
    /// every day at 02:30.
    #[serde(default = "default_nfs_backup_schedule")]
    pub schedule: String,
    /// How many snapshots to keep per export (at least 1). Default: 7.
    #[serde(default = "default_nfs_backup_keep")]
    #[schemars(range(min = 1))]
    pub keep: u16,
}

/// The default NFS backup schedule (systemd `OnCalendar=`): every day at 02:30.
pub const DEFAULT_NFS_BACKUP_SCHEDULE: &str = "*-*-* 02:30:00";
/// The default number of NFS snapshots kept.
pub const DEFAULT_NFS_BACKUP_KEEP: u16 = 7;

fn default_nfs_backup_schedule() -> String {
    DEFAULT_NFS_BACKUP_SCHEDULE.to_owned()
}

fn default_nfs_backup_keep() -> u16 {
    DEFAULT_NFS_BACKUP_KEEP
}

/// Periodic etcd snapshots, taken on the control-plane nodes and written to an NFS export.
///
/// The export is exported to the control-plane nodes only, with `no_root_squash` (the snapshot
/// job runs as root) and a root-owned `0700` directory: a snapshot holds every Secret of the
/// cluster. It backs no StorageClass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EtcdBackup {
    /// The export snapshots go to: one of `nfs.exports[].path`, backing no StorageClass and
    /// listing no `clients` (hakube exports it to the control-plane nodes).
    pub export: String,
    /// When to take a snapshot: a 5-field cron schedule (minute, hour, day of month, month,
    /// day of week), in kube-controller-manager's time zone. Default: every 6 hours.
    #[serde(default = "default_etcd_backup_schedule")]
    pub schedule: String,
    /// How many snapshots to keep (at least 1); older ones are deleted. Default: 28 (a week
    /// at the default schedule).
    #[serde(default = "default_etcd_backup_keep")]
    #[schemars(range(min = 1))]
    pub keep: u16,
}

/// The default etcd snapshot schedule: every 6 hours, on the hour.
pub const DEFAULT_ETCD_BACKUP_SCHEDULE: &str = "0 */6 * * *";
/// The default number of etcd snapshots kept.
pub const DEFAULT_ETCD_BACKUP_KEEP: u16 = 28;

fn default_etcd_backup_schedule() -> String {
    DEFAULT_ETCD_BACKUP_SCHEDULE.to_owned()
}

fn default_etcd_backup_keep() -> u16 {
    DEFAULT_ETCD_BACKUP_KEEP
}

/// SSH access to the VMs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    /// The login user cloud-init creates.
    pub user: String,
    /// Authorized public keys (OpenSSH format).
    pub public_keys: Vec<String>,
}
