//! Typed kubeadm v1beta4 configuration and an HA bootstrap orchestrator.
//!
//! The crate turns a small cluster description ([`ClusterInput`]: VIP, pinned version,
//! subnets, masters, workers with labels and taints, load balancer names) into the kubeadm
//! configuration every node needs, and drives `kubeadm init`/`join` over SSH to bring the
//! nodes up behind the VIP, the way kubespray, KubeKey or k0sctl do, but typed and safe to re-run.
//!
//! - [`config`]: serde types for InitConfiguration, ClusterConfiguration, JoinConfiguration,
//!   ResetConfiguration, UpgradeConfiguration (`kubeadm.k8s.io/v1beta4`), KubeletConfiguration
//!   and KubeProxyConfiguration, with unmodelled fields passed through, rendered and parsed as
//!   one multi-document YAML stream (serde-saphyr).
//! - [`render_cluster`] / [`render_node`]: the pure entry points, input + secrets -> per-node
//!   files with their absolute paths and modes ([`KUBEADM_CONFIG_PATH`] is 0600: it holds the
//!   token and the certificate key).
//! - [`ClusterSecrets`]: the bootstrap token and the certificate key are generated, not parsed
//!   from output; the CA pin ([`CaCertHash`]) is computed from the CA certificate. Secret types
//!   print `***`.
//! - [`prep`]: node preparation as data (swap, modules, sysctls, containerd, pkgs.k8s.io, held
//!   packages, image pre-pull).
//! - Parsers for what the flow reads: [`parse_join_commands`], [`parse_upload_certs_key`],
//!   [`parse_get_nodes`], [`parse_token_list`].
//! - [`flow`]: the orchestration on [`hakube_remote::RemoteExec`] (load balancers first, init,
//!   CNI, masters one by one, workers at once, Ready; renewal of expired tokens and uploaded
//!   certificates; reset-and-retry; skip of nodes that joined).
//! - [`etcd`]: snapshots with kubeadm's certificate paths, verified and copied off the node,
//!   with retention, and the whole-control-plane restore.
//!
//! ```
//! use std::net::IpAddr;
//!
//! use hakube_kubeadm::config::{Document, TaintEffect, parse_documents};
//! use hakube_kubeadm::{ClusterInput, ClusterSecrets, MasterInput, WorkerInput, render_node};
//!
//! let mut input = ClusterInput::new(
//!     "prod",
//!     "10.0.0.10".parse::<IpAddr>()?,
//!     "v1.33.2".parse()?,
//!     "10.244.0.0/16".parse()?,
//! );
//! input.masters.push(MasterInput::new("cp1", "10.0.0.21".parse()?));
//! input.masters.push(MasterInput::new("cp2", "10.0.0.22".parse()?));
//! input.workers.push(
//!     WorkerInput::new("w1", "10.0.0.31".parse()?)
//!         .label("env", "prod")
//!         .taint("env", Some("prod"), TaintEffect::NoSchedule),
//! );
//! input.cert_sans.push("lb-1".into());
//!
//! // Secrets are generated; the CA pin is known once `kubeadm init` wrote the CA.
//! let ca = "sha256:a2cfd158e6346f9ca75589ad98e0fcc76d89f03e89b2b5f84e7fe87a4328fdc9";
//! let secrets = ClusterSecrets::generate().with_ca_cert_hash(ca.parse()?);
//!
//! let w1 = render_node(&input, &secrets, "w1")?;
//! let config = &w1.files[0];
//! assert_eq!((config.path.as_str(), config.mode), (hakube_kubeadm::KUBEADM_CONFIG_PATH, 0o600));
//! let docs = parse_documents(std::str::from_utf8(&config.content)?)?;
//! let Document::Join(join) = &docs[0] else { unreachable!() };
//! let discovery = join.discovery.bootstrap_token.as_ref().unwrap();
//! assert_eq!(discovery.api_server_endpoint.as_deref(), Some("10.0.0.10:6443"));
//! assert!(format!("{secrets:?}").contains("***"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
mod error;
pub mod etcd;
#[cfg(feature = "remote")]
pub mod flow;
mod input;
mod parse;
pub mod prep;
mod render;
mod secret;

pub use error::{Error, HookError, Result};
pub use input::{
    ApiHost, CONTAINERD_SOCKET, ClusterInput, DnsName, KubernetesVersion, MasterInput, ProxyMode,
    WorkerInput, kubelet_may_set_label,
};
pub use parse::{
    JoinCommand, NodeStatus, TokenInfo, parse_get_nodes, parse_join_commands, parse_token_list,
    parse_upload_certs_key,
};
pub use render::{
    ADMIN_CONF_PATH, BOOTSTRAP_TOKEN_TTL, CA_CERT_PATH, KUBEADM_CONFIG_DIR, KUBEADM_CONFIG_PATH,
    KUBELET_CONF_PATH, NodeRender, NodeRole, RESET_CONFIG_PATH, RenderedCluster,
    UPGRADE_CONFIG_PATH, cluster_configuration, init_documents, join_configuration,
    kube_proxy_configuration, kubelet_configuration, render_cluster, render_node,
    reset_configuration, upgrade_configuration,
};
pub use secret::{BootstrapToken, CaCertHash, CertificateKey, ClusterSecrets};
