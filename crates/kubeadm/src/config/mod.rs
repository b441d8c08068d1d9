//! Serde types for the kubeadm v1beta4 configuration documents and the two component configs
//! kubeadm passes through (kubelet, kube-proxy).
//!
//! Every struct carries the fields a cluster bootstrap sets or reads; everything else is kept
//! in a flattened `extra` map, so a document parsed from YAML renders back without loss.
//! Field names are the upstream camelCase ones. Optional fields are skipped when unset, so a
//! rendered document only says what was chosen and leaves the rest to kubeadm's defaults.
//!
//! [`Document`] ties a body to its `apiVersion`/`kind`; [`render_documents`] and
//! [`parse_documents`] convert a whole `---`-separated stream.

mod cluster;
mod component;
mod document;
mod init;
mod join;
mod reset_upgrade;

pub use cluster::{
    ApiServer, ClusterConfiguration, ControlPlaneComponent, Etcd, LocalEtcd, Networking, Toggle,
};
pub use component::{KubeProxyConfiguration, KubeletConfiguration};
pub use document::{Document, parse_documents, render_documents};
pub use init::{BootstrapTokenSpec, InitConfiguration};
pub use join::{BootstrapTokenDiscovery, Discovery, JoinConfiguration, JoinControlPlane};
pub use reset_upgrade::{ResetConfiguration, UpgradeApply, UpgradeConfiguration, UpgradeNode};

use serde::{Deserialize, Serialize};

/// Fields this crate does not model, kept verbatim (flattened into the parent object).
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// `kubeadm.k8s.io/v1beta4`.
pub const KUBEADM_API_VERSION: &str = "kubeadm.k8s.io/v1beta4";
/// `kubelet.config.k8s.io/v1beta1`.
pub const KUBELET_API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
/// `kubeproxy.config.k8s.io/v1alpha1`.
pub const KUBE_PROXY_API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";

/// One command-line argument in v1beta4's list form (`extraArgs`, `kubeletExtraArgs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arg {
    /// Flag name without dashes, e.g. `bind-address`.
    pub name: String,
    /// Flag value.
    pub value: String,
}

impl Arg {
    /// `{name, value}`.
    #[must_use]
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// What a taint does to pods that do not tolerate it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaintEffect {
    /// New pods are not scheduled.
    NoSchedule,
    /// The scheduler avoids the node.
    PreferNoSchedule,
    /// Running pods are evicted too.
    NoExecute,
}

/// A node taint, as in `nodeRegistration.taints`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Taint {
    /// Taint key, e.g. `node-role.kubernetes.io/control-plane`.
    pub key: String,
    /// Optional value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect.
    pub effect: TaintEffect,
}

impl Taint {
    /// The taint kubeadm puts on control-plane nodes.
    #[must_use]
    pub fn control_plane() -> Self {
        Self {
            key: "node-role.kubernetes.io/control-plane".into(),
            value: None,
            effect: TaintEffect::NoSchedule,
        }
    }
}

/// `nodeRegistration`, shared by Init and Join configurations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRegistration {
    /// Node name (`.metadata.name` of the Node object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// CRI socket, e.g. `unix:///var/run/containerd/containerd.sock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cri_socket: Option<String>,
    /// Taints; `None` lets kubeadm choose (control-plane taint on control-plane nodes), an empty
    /// list means no taints at all. The distinction survives a round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<Taint>>,
    /// Extra kubelet flags (v1beta4 list form).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubelet_extra_args: Vec<Arg>,
    /// Preflight errors to ignore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_preflight_errors: Vec<String>,
    /// `Always`, `IfNotPresent` or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Pull images one at a time (v1beta4, default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_serial: Option<bool>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `localAPIEndpoint`: where this node's API server listens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiEndpoint {
    /// Address the API server advertises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_address: Option<String>,
    /// Port (6443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_port: Option<u16>,
}

/// v1beta4 `timeouts` (Go duration strings such as `4m0s`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Wait for control-plane components to be healthy (4m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_component_health_check: Option<String>,
    /// Wait for the kubelet (4m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_health_check: Option<String>,
    /// Any API call (1m).
    #[serde(
        default,
        rename = "kubernetesAPICall",
        skip_serializing_if = "Option::is_none"
    )]
    pub kubernetes_api_call: Option<String>,
    /// etcd calls, e.g. learner promotion (2m).
    #[serde(
        default,
        rename = "etcdAPICall",
        skip_serializing_if = "Option::is_none"
    )]
    pub etcd_api_call: Option<String>,
    /// TLS bootstrap of a joining kubelet (5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_bootstrap: Option<String>,
    /// Discovery of a joining node (5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<String>,
    /// Static Pod manifest upgrades (5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_manifests: Option<String>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}
