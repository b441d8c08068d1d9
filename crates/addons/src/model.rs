//! The crate's own input model: everything the add-ons need to know about the cluster.
//!
//! It stands alone (no dependency on the hakube topology); the composing layer fills it in.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// A named host with one IPv4 address (a master, a load balancer, a Vault VM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Host name (also the Kubernetes node name for cluster nodes).
    pub name: String,
    /// Address on the cluster's L2 network.
    pub address: Ipv4Addr,
}

impl Host {
    /// Build a host.
    #[must_use]
    pub fn new(name: impl Into<String>, address: Ipv4Addr) -> Self {
        Self {
            name: name.into(),
            address,
        }
    }
}

/// Everything the add-ons layer needs. Build it by hand or from the topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddonsInput {
    /// Cluster name (labels, Vault `cluster_name`, README).
    pub cluster_name: String,
    /// Network facts shared with kubeadm.
    pub network: NetworkInput,
    /// The HAProxy load balancers in front of the cluster.
    pub haproxy: HaproxyInput,
    /// Control-plane nodes (etcd members).
    pub masters: Vec<Host>,
    /// Worker groups (Traefik and apps run here).
    pub worker_groups: Vec<WorkerGroup>,
    /// Storage classes present in the cluster.
    pub storage: StorageInput,
    /// Calico settings.
    pub calico: CalicoInput,
    /// Traefik settings.
    pub traefik: TraefikInput,
    /// Monitoring (Prometheus, kube-state-metrics, metrics-server, Grafana); `None` = off.
    pub monitoring: Option<MonitoringInput>,
    /// Logging (Loki + log agent); `None` = off.
    pub logging: Option<LoggingInput>,
    /// Vault and cert-manager; `None` = off.
    pub vault: Option<VaultInput>,
    /// etcd snapshots to NFS; `None` = off.
    pub etcd_backup: Option<EtcdBackupInput>,
    /// Application environments (one GitOps overlay each), e.g. prod and nonprod.
    pub environments: Vec<EnvironmentInput>,
}

/// Network facts. `pod_subnet` and `service_subnet` must be the same values kubeadm gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInput {
    /// kubeadm `networking.podSubnet`.
    pub pod_subnet: Ipv4Net,
    /// kubeadm `networking.serviceSubnet`.
    pub service_subnet: Ipv4Net,
    /// The L2 network all nodes, load balancers and the NFS server sit on.
    pub node_subnet: Ipv4Net,
    /// The API server VIP (keepalived), reachable on port `api_port`.
    pub api_vip: Ipv4Addr,
    /// The API server port on the VIP (usually 6443).
    pub api_port: u16,
    /// kubeadm's `serverTLSBootstrap` for kubelets: when true, kubelet serving certificates are
    /// CA-signed after their CSRs are approved, and metrics-server verifies them.
    pub kubelet_server_tls_bootstrap: bool,
}

/// The HAProxy tier as seen by the add-ons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaproxyInput {
    /// Every HAProxy host (their own addresses, not the VIP: these open connections to Traefik).
    pub hosts: Vec<Host>,
    /// Port HAProxy's HTTP (80) backend targets on the workers.
    pub http_backend_port: u16,
    /// Port HAProxy's HTTPS (443) backend targets on the workers.
    pub https_backend_port: u16,
    /// Whether HAProxy sends the PROXY protocol header (`send-proxy-v2`) to Traefik.
    pub send_proxy: bool,
    /// Port of HAProxy's Prometheus exporter (`http-request use-service prometheus-exporter`).
    pub exporter_port: u16,
}

/// A group of workers sharing a node label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerGroup {
    /// Group name; nodes carry the label `hakube.io/worker-group=<name>`.
    pub name: String,
    /// The workers.
    pub nodes: Vec<Host>,
}

/// Storage classes in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageInput {
    /// Names of every StorageClass backed by NFS (e.g. `nfs-prod`, `nfs-nonprod`).
    pub nfs_classes: Vec<String>,
}

/// How Calico carries pod traffic between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encapsulation {
    /// Native routing (BGP-learned routes) between nodes of one subnet, VXLAN across subnets.
    /// The default: on one L2 network nothing is encapsulated (full MTU), yet nodes added on
    /// another subnet still work.
    VxlanCrossSubnet,
    /// No encapsulation at all, routes via BGP. Only valid while every node is on one L2 network.
    None,
    /// Always VXLAN (no BGP needed; costs 50 bytes of MTU and some CPU).
    Vxlan,
}

/// Calico settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalicoInput {
    /// The IPv4 pool; `None` = the whole pod subnet. Must lie inside `network.pod_subnet`.
    pub pool_cidr: Option<Ipv4Net>,
    /// Per-node block size (prefix length, 20..=32; Calico's default 26).
    pub block_size: u8,
    /// Encapsulation.
    pub encapsulation: Encapsulation,
}

impl Default for CalicoInput {
    fn default() -> Self {
        Self {
            pool_cidr: None,
            block_size: 26,
            encapsulation: Encapsulation::VxlanCrossSubnet,
        }
    }
}

/// How Traefik pods are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraefikWorkload {
    /// One pod per selected worker: every node HAProxy targets answers (recommended with
    /// `externalTrafficPolicy: Local`).
    DaemonSet,
    /// A fixed number of replicas; HAProxy must health-check nodes, since with
    /// `externalTrafficPolicy: Local` nodes without a Traefik pod refuse the NodePort.
    Deployment {
        /// Replica count.
        replicas: u16,
    },
}

/// Traefik settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraefikInput {
    /// NodePort of the `web` entry point (must equal `haproxy.http_backend_port`).
    pub web_node_port: u16,
    /// NodePort of the `websecure` entry point (must equal `haproxy.https_backend_port`).
    pub websecure_node_port: u16,
    /// DaemonSet or Deployment.
    pub workload: TraefikWorkload,
    /// Worker groups Traefik runs on; empty = every worker group.
    pub worker_groups: Vec<String>,
    /// Secret (in the Traefik namespace) holding the default TLS certificate; `None` = Traefik's
    /// self-signed default. With Vault enabled a cert-manager Certificate fills it.
    pub default_certificate_secret: Option<String>,
    /// Wildcard domain for the default certificate and example routes, e.g. `apps.example.org`.
    pub apps_domain: String,
}

/// Where Prometheus keeps its TSDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeChoice {
    /// A PersistentVolumeClaim of this (non-NFS, local-disk) StorageClass.
    StorageClass {
        /// StorageClass name.
        name: String,
        /// Size, e.g. `50Gi`.
        size: String,
    },
    /// An emptyDir: data is lost when the pod moves. Named for what it is.
    Ephemeral,
}

/// How kubelet serving certificates are trusted by metrics-server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KubeletCsrApproval {
    /// Install postfinance/kubelet-csr-approver at this chart version (not pinned in
    /// the crate: the shared VERSIONS.md has no verified release for it).
    Approver {
        /// Chart version to pin.
        chart_version: String,
    },
    /// Approve kubelet-serving CSRs by hand (an install step lists the commands).
    Manual,
}

/// Monitoring settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitoringInput {
    /// Prometheus TSDB volume (must not be an NFS class).
    pub prometheus_volume: VolumeChoice,
    /// Prometheus retention, e.g. `15d`.
    pub retention: String,
    /// How kubelet-serving CSRs get approved when `kubelet_server_tls_bootstrap` is on.
    pub csr_approval: KubeletCsrApproval,
    /// Port of etcd's plain-HTTP metrics listener on the masters (kubeadm: 2381; kubeadm must
    /// set `listen-metrics-urls` to the node address, not only 127.0.0.1, for it to be scraped).
    pub etcd_metrics_port: u16,
    /// Secret (namespace `monitoring`) with keys `admin-user` / `admin-password` for Grafana.
    pub grafana_admin_secret: String,
}

/// The log shipping agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogAgent {
    /// Grafana Alloy (default): Promtail's successor.
    Alloy,
    /// Promtail: end of life since 2026-03-02, kept selectable for existing installs.
    Promtail,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggingInput {
    /// Loki's volume (a local-disk class is preferred; NFS is refused).
    pub loki_volume: VolumeChoice,
    /// Loki retention, e.g. `744h`.
    pub retention: String,
    /// The node agent.
    pub agent: LogAgent,
}

/// Where Vault runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VaultPlacement {
    /// Three (or five) dedicated VMs; per-host config files are rendered.
    Vms(Vec<Host>),
    /// In the cluster via the hashicorp/vault chart (HA raft, 3 replicas).
    InCluster {
        /// StorageClass for the raft data (must not be an NFS class).
        storage_class: String,
    },
}

/// Vault + cert-manager settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultInput {
    /// Where Vault runs.
    pub placement: VaultPlacement,
    /// Domains the PKI role may issue for (subdomains allowed), e.g. `["example.org"]`.
    pub allowed_domains: Vec<String>,
    /// PKI role name (also in the ClusterIssuer path `pki_int/sign/<role>`).
    pub pki_role: String,
    /// Organisation name on the CA certificates.
    pub organisation: String,
    /// URL cert-manager uses to reach Vault; `None` = the first VM (VM placement) or the
    /// in-cluster Service. Set it to a DNS name or load-balanced address that follows the
    /// active node for failover.
    pub server_url: Option<String>,
}

/// etcd backup settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdBackupInput {
    /// The NFS server (off-cluster).
    pub nfs_server: Ipv4Addr,
    /// The export for snapshots, e.g. `/srv/nfs/etcd-backup`.
    pub export_path: String,
    /// Cron schedule (5 fields).
    pub schedule: String,
    /// How many snapshots to keep.
    pub keep: u16,
    /// etcd image providing `etcdctl` (kubeadm's), e.g. `registry.k8s.io/etcd:3.6.5-0`.
    pub etcd_image: String,
}

/// An application environment (a GitOps overlay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentInput {
    /// Environment name, e.g. `prod`.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its StorageClass, e.g. `nfs-prod`.
    pub storage_class: String,
    /// Apply a default-deny NetworkPolicy (with DNS egress and ingress from Traefik allowed).
    pub default_deny: bool,
}
