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

impl AddonsInput {
    /// Every taint of every node: kubeadm's control-plane taint on the masters and each worker
    /// group's taints, sorted and without duplicates.
    #[must_use]
    pub fn every_taint(&self) -> Vec<Taint> {
        let mut all: Vec<Taint> = std::iter::once(Taint::control_plane())
            .chain(
                self.worker_groups
                    .iter()
                    .flat_map(|g| g.taints.iter().cloned()),
            )
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The worker groups that serve ingress: `traefik.worker_groups`, or every group when
    /// that is empty. The one selection behind both Traefik's node affinity and HAProxy's
    /// ingress backends ([`AddonsInput::ingress_nodes`]).
    #[must_use]
    pub fn ingress_groups(&self) -> Vec<&WorkerGroup> {
        self.worker_groups
            .iter()
            .filter(|g| {
                self.traefik.worker_groups.is_empty()
                    || self.traefik.worker_groups.contains(&g.name)
            })
            .collect()
    }

    /// The nodes Traefik runs on, which are exactly the nodes HAProxy must send ingress to.
    #[must_use]
    pub fn ingress_nodes(&self) -> Vec<&Host> {
        self.ingress_groups()
            .into_iter()
            .flat_map(|g| g.nodes.iter())
            .collect()
    }

    /// The taints a node carries: the control-plane taint for a master, its group's taints for
    /// a worker; `None` for an unknown node.
    #[must_use]
    pub fn taints_of(&self, node: &str) -> Option<Vec<Taint>> {
        if self.masters.iter().any(|m| m.name == node) {
            return Some(vec![Taint::control_plane()]);
        }
        self.worker_groups
            .iter()
            .find(|g| g.nodes.iter().any(|n| n.name == node))
            .map(|g| g.taints.clone())
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
    /// Taints every node of the group carries (registered by kubeadm). Workloads that must run
    /// on every node, and Traefik on the groups it serves, tolerate each of them.
    #[serde(default)]
    pub taints: Vec<Taint>,
}

/// A node taint, as kubeadm registers it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Taint {
    /// Key, e.g. `environment`.
    pub key: String,
    /// Value; `None` for a taint without one.
    pub value: Option<String>,
    /// Effect.
    pub effect: TaintEffect,
}

impl Taint {
    /// A taint.
    #[must_use]
    pub fn new(key: impl Into<String>, value: Option<&str>, effect: TaintEffect) -> Self {
        Self {
            key: key.into(),
            value: value.map(str::to_owned),
            effect,
        }
    }

    /// The taint kubeadm puts on every control-plane node
    /// (`node-role.kubernetes.io/control-plane:NoSchedule`).
    #[must_use]
    pub fn control_plane() -> Self {
        Self::new(
            "node-role.kubernetes.io/control-plane",
            None,
            TaintEffect::NoSchedule,
        )
    }

    /// The toleration that matches exactly this taint (`Equal` with a value, `Exists` without).
    #[must_use]
    pub fn toleration(&self) -> serde_json::Value {
        match &self.value {
            Some(v) => serde_json::json!({
                "key": self.key, "operator": "Equal", "value": v, "effect": self.effect.as_str(),
            }),
            None => serde_json::json!({
                "key": self.key, "operator": "Exists", "effect": self.effect.as_str(),
            }),
        }
    }

    /// Whether a Kubernetes toleration (as JSON) tolerates this taint: the matching rules of
    /// `k8s.io/api/core/v1` `Toleration.ToleratesTaint` (empty key with `Exists` matches every
    /// key; empty effect matches every effect; `Exists` ignores the value).
    #[must_use]
    pub fn tolerated_by(&self, toleration: &serde_json::Value) -> bool {
        let s = |k: &str| {
            toleration
                .get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
        };
        let effect_ok = s("effect").is_empty() || s("effect") == self.effect.as_str();
        let key_ok = if s("key").is_empty() {
            s("operator") == "Exists"
        } else {
            s("key") == self.key
        };
        let value_ok = match s("operator") {
            "Exists" => true,
            "" | "Equal" => s("value") == self.value.as_deref().unwrap_or(""),
            _ => false,
        };
        effect_ok && key_ok && value_ok
    }
}

impl std::fmt::Display for Taint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}:{}", self.key, self.effect.as_str()),
            None => write!(f, "{}:{}", self.key, self.effect.as_str()),
        }
    }
}

/// What a taint does to pods that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaintEffect {
    /// New pods are not scheduled there.
    NoSchedule,
    /// The scheduler avoids the node.
    PreferNoSchedule,
    /// Running pods are evicted too.
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

/// Storage classes in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageInput {
    /// Names of every StorageClass backed by NFS (e.g. `nfs-prod`, `nfs-nonprod`).
    pub nfs_classes: Vec<String>,
    /// The NFS provisioner and its StorageClasses, installed right after the CNI; `None` when
    /// nothing provisions the NFS classes (then every claim of them stays Pending).
    #[serde(default)]
    pub provisioner: Option<ProvisionerInput>,
}

/// The NFS provisioner's objects, rendered by another crate (hakube-nfs-provisioning) into a
/// folder of the GitOps tree, that this crate puts into the install order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionerInput {
    /// The folder under `cluster/`, e.g. `nfs` (it holds a `kustomization.yaml`).
    pub dir: String,
    /// Its manifest files relative to `cluster/`, in apply order (Namespace first).
    pub files: Vec<String>,
    /// The provisioner Deployments to wait for, as `(namespace, name)`.
    pub deployments: Vec<(String, String)>,
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
    /// A directory on one node's local disk: a `hostPath` PersistentVolume pinned to that node
    /// (node affinity) and reserved for the add-on's claim (`claimRef`), of the StorageClass
    /// [`crate::storage::NODE_LOCAL_CLASS`]. The pod follows its data to that node, so the node
    /// must carry no `NoSchedule`/`NoExecute` taint. For clusters without a local-disk
    /// provisioner. Kubernetes does not enforce `size` on such a volume.
    HostPath {
        /// The node (a worker or master name).
        node: String,
        /// Absolute directory on the node, created by the kubelet if missing.
        path: String,
        /// Nominal size, e.g. `20Gi`.
        size: String,
    },
    /// An emptyDir: data is lost when the pod moves. Named for what it is.
    Ephemeral,
}

/// How kubelet serving certificates get approved, so that metrics-server can verify them:
/// by something deployed for it, never by hand. The default is the pinned approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KubeletCsrApproval {
    /// Install postfinance/kubelet-csr-approver at this chart version (default
    /// [`crate::versions::KUBELET_CSR_APPROVER_VERSION`]): it approves kubelet-serving CSRs of
    /// known node names and addresses only.
    Approver {
        /// Chart version to pin.
        chart_version: String,
    },
}

impl Default for KubeletCsrApproval {
    fn default() -> Self {
        Self::Approver {
            chart_version: crate::versions::KUBELET_CSR_APPROVER_VERSION.to_owned(),
        }
    }
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
    /// The worker group its pods run on (node selector plus tolerations of the group's
    /// taints); `None` = anywhere the scheduler allows.
    #[serde(default)]
    pub worker_group: Option<String>,
}
