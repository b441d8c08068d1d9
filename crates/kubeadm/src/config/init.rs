use serde::{Deserialize, Serialize};

use super::{ApiEndpoint, Extra, NodeRegistration, Timeouts};
use crate::secret::{BootstrapToken, CertificateKey};

/// `kind: InitConfiguration` (run-time settings of `kubeadm init` on the first control plane).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitConfiguration {
    /// Bootstrap tokens created during init.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap_tokens: Vec<BootstrapTokenSpec>,
    /// Only print what would be done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Registration of this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_registration: Option<NodeRegistration>,
    /// This node's API endpoint.
    #[serde(
        default,
        rename = "localAPIEndpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_api_endpoint: Option<ApiEndpoint>,
    /// Key for `--upload-certs` (the flag itself has no config field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_key: Option<CertificateKey>,
    /// Phases to skip.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_phases: Vec<String>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// Unmodelled fields (`patches`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One entry of `bootstrapTokens`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapTokenSpec {
    /// The token (a secret; rendered in full, printed as `***`).
    pub token: BootstrapToken,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Lifetime as a Go duration (`24h0m0s` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// `signing`, `authentication`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<String>,
    /// Extra groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Unmodelled fields (`expires`).
    #[serde(flatten)]
    pub extra: Extra,
}
