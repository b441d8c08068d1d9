use serde::{Deserialize, Serialize};

use super::Extra;

/// `kind: ResetConfiguration` (v1beta4), read by `kubeadm reset --config`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetConfiguration {
    /// Also remove the kubeadm temp directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_tmp_dir: Option<bool>,
    /// Certificates directory to clean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_dir: Option<String>,
    /// CRI socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cri_socket: Option<String>,
    /// Only print what would be done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Do not ask for confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// Preflight errors to ignore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_preflight_errors: Vec<String>,
    /// Phases to skip.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_phases: Vec<String>,
    /// Unmodelled fields (`unmountFlags`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `kind: UpgradeConfiguration` (v1beta4), read by `kubeadm upgrade apply|node|plan --config`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeConfiguration {
    /// `kubeadm upgrade apply` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<UpgradeApply>,
    /// `kubeadm upgrade node` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<UpgradeNode>,
    /// Unmodelled fields (`diff`, `plan`, `timeouts`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `apply` of an UpgradeConfiguration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeApply {
    /// Target version, e.g. `v1.33.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Renew certificates during the upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_renewal: Option<bool>,
    /// Upgrade etcd too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_upgrade: Option<bool>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `node` of an UpgradeConfiguration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeNode {
    /// Renew certificates during the upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_renewal: Option<bool>,
    /// Upgrade etcd too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_upgrade: Option<bool>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}
