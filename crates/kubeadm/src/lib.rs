//! Typed kubeadm v1beta4 configuration and an HA bootstrap orchestrator.
//!
//! Work in progress: this crate is being built.

pub mod config;
mod error;
pub mod etcd;
pub mod flow;
mod input;
mod parse;
pub mod prep;
mod render;
mod secret;

pub use error::{Error, Result};
pub use input::{CONTAINERD_SOCKET, ClusterInput, MasterInput, WorkerInput, kubelet_may_set_label};
pub use parse::{
    JoinCommand, NodeStatus, TokenInfo, parse_get_nodes, parse_join_commands, parse_token_list,
    parse_upload_certs_key,
};
pub use render::{
    ADMIN_CONF_PATH, BOOTSTRAP_TOKEN_TTL, CA_CERT_PATH, KUBEADM_CONFIG_DIR, KUBEADM_CONFIG_PATH,
    KUBELET_CONF_PATH, NodeRender, NodeRole, RESET_CONFIG_PATH, RenderedCluster, RenderedFile,
    UPGRADE_CONFIG_PATH, cluster_configuration, init_documents, join_configuration,
    kube_proxy_configuration, kubelet_configuration, render_cluster, render_node,
    reset_configuration, upgrade_configuration,
};
pub use secret::{BootstrapToken, CaCertHash, CertificateKey, ClusterSecrets};
