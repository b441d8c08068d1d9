use serde::{Deserialize, Serialize};

use super::{ApiEndpoint, Extra, NodeRegistration, Timeouts};
use crate::secret::{BootstrapToken, CaCertHash, CertificateKey};

/// `kind: JoinConfiguration`, for control-plane (with [`JoinControlPlane`]) and worker joins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinConfiguration {
    /// Only print what would be done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Where the CA is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_path: Option<String>,
    /// Registration of this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_registration: Option<NodeRegistration>,
    /// How the node finds and trusts the cluster.
    pub discovery: Discovery,
    /// Present for control-plane joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<JoinControlPlane>,
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

/// `discovery`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    /// Token-based discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<BootstrapTokenDiscovery>,
    /// TLS bootstrap token when it differs from the discovery token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_bootstrap_token: Option<BootstrapToken>,
    /// Unmodelled fields (`file`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `discovery.bootstrapToken`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapTokenDiscovery {
    /// The bootstrap token.
    pub token: BootstrapToken,
    /// `host:port` of the API (the VIP for HA).
    #[serde(
        default,
        rename = "apiServerEndpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_server_endpoint: Option<String>,
    /// CA pins (`sha256:<hex>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_cert_hashes: Vec<CaCertHash>,
    /// Skip CA pinning (unsafe; never set by this crate).
    #[serde(
        default,
        rename = "unsafeSkipCAVerification",
        skip_serializing_if = "Option::is_none"
    )]
    pub unsafe_skip_ca_verification: Option<bool>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `controlPlane` of a control-plane join.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinControlPlane {
    /// This node's API endpoint.
    #[serde(
        default,
        rename = "localAPIEndpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_api_endpoint: Option<ApiEndpoint>,
    /// Key to decrypt the uploaded certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_key: Option<CertificateKey>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}
