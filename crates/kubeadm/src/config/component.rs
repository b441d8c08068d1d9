use serde::{Deserialize, Serialize};

use super::Extra;

/// `kind: KubeletConfiguration` (`kubelet.config.k8s.io/v1beta1`), passed through by `kubeadm init`
/// into the `kubelet-config` ConfigMap every node's kubelet reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfiguration {
    /// `systemd` or `cgroupfs`; must match containerd's `SystemdCgroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_driver: Option<String>,
    /// Request serving certificates through CSRs (needed by metrics-server with TLS checks).
    #[serde(
        default,
        rename = "serverTLSBootstrap",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_tls_bootstrap: Option<bool>,
    /// Rotate the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_certificates: Option<bool>,
    /// Refuse to start with swap on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_swap_on: Option<bool>,
    /// Cluster DNS service addresses.
    #[serde(default, rename = "clusterDNS", skip_serializing_if = "Vec::is_empty")]
    pub cluster_dns: Vec<String>,
    /// Cluster DNS domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<String>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `kind: KubeProxyConfiguration` (`kubeproxy.config.k8s.io/v1alpha1`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyConfiguration {
    /// `iptables`, `ipvs` or `nftables`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Metrics listener, `0.0.0.0:10249` so Prometheus can scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_bind_address: Option<String>,
    /// Pod CIDR.
    #[serde(
        default,
        rename = "clusterCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_cidr: Option<String>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}
