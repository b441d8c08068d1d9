use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Arg, Extra};

/// `kind: ClusterConfiguration` (cluster-wide settings, stored in the `kubeadm-config` ConfigMap).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfiguration {
    /// Cluster name (`kubernetes` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// Pinned version, e.g. `v1.33.2` (the default triggers a network lookup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Shared API endpoint `host:port` (the VIP for HA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<String>,
    /// Pod and service networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<Networking>,
    /// kube-apiserver settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server: Option<ApiServer>,
    /// kube-controller-manager settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_manager: Option<ControlPlaneComponent>,
    /// kube-scheduler settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<ControlPlaneComponent>,
    /// etcd settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<Etcd>,
    /// CoreDNS add-on (`disabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Toggle>,
    /// kube-proxy add-on (`disabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Toggle>,
    /// Where certificates live (`/etc/kubernetes/pki`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_dir: Option<String>,
    /// Image registry (`registry.k8s.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    /// Key algorithm (`RSA-2048`, `ECDSA-P256`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_algorithm: Option<String>,
    /// Leaf certificate lifetime (`8760h0m0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_validity_period: Option<String>,
    /// CA lifetime (`87600h0m0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_validity_period: Option<String>,
    /// Feature gates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `networking`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Networking {
    /// Pod CIDR (must match the CNI's pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_subnet: Option<String>,
    /// Service CIDR (`10.96.0.0/12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_subnet: Option<String>,
    /// Cluster DNS domain (`cluster.local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_domain: Option<String>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `apiServer`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiServer {
    /// Extra names and addresses in the serving certificate.
    #[serde(default, rename = "certSANs", skip_serializing_if = "Vec::is_empty")]
    pub cert_sans: Vec<String>,
    /// Extra flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    /// Unmodelled fields (`extraVolumes`, `extraEnvs`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `controllerManager` / `scheduler`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneComponent {
    /// Extra flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    /// Unmodelled fields (`extraVolumes`, `extraEnvs`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `etcd`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Etcd {
    /// Stacked etcd run by kubeadm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalEtcd>,
    /// Unmodelled fields (`external`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `etcd.local`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalEtcd {
    /// Data directory (`/var/lib/etcd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    /// Extra flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    /// Extra SANs of the etcd serving certificate.
    #[serde(
        default,
        rename = "serverCertSANs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub server_cert_sans: Vec<String>,
    /// Extra SANs of the etcd peer certificate.
    #[serde(
        default,
        rename = "peerCertSANs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub peer_cert_sans: Vec<String>,
    /// Unmodelled fields (`imageRepository`, `extraEnvs`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `dns` / `proxy`: an add-on that can be disabled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Toggle {
    /// Do not install the add-on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Unmodelled fields (`imageRepository`, `imageTag`).
    #[serde(flatten)]
    pub extra: Extra,
}
