//! From a [`ClusterInput`] and its [`ClusterSecrets`] to typed documents and per-node files.
//!
//! Files a node receives (absolute paths on the node):
//!
//! | path | mode | on | contents |
//! |---|---|---|---|
//! | [`KUBEADM_CONFIG_PATH`] | 0600 | every node | first master: Init + Cluster + Kubelet + KubeProxy; others: Join (token, certificate key) |
//! | [`RESET_CONFIG_PATH`] | 0644 | every node | ResetConfiguration for `kubeadm reset --config` |
//! | [`UPGRADE_CONFIG_PATH`] | 0644 | masters | UpgradeConfiguration pinned to the cluster version |
//!
//! Join configurations need the CA hash, which exists only after `kubeadm init`; until then
//! [`render_cluster`] marks those nodes [`NodeRender::join_config_pending`] and the bootstrap
//! flow renders their configuration once it has read the CA.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hakube_host_state::File;

use crate::config::{
    ApiEndpoint, ApiServer, Arg, BootstrapTokenDiscovery, BootstrapTokenSpec, ClusterConfiguration,
    ControlPlaneComponent, Discovery, Document, Etcd, InitConfiguration, JoinConfiguration,
    JoinControlPlane, KubeProxyConfiguration, KubeletConfiguration, LocalEtcd, Networking,
    NodeRegistration, ResetConfiguration, Taint, UpgradeApply, UpgradeConfiguration, UpgradeNode,
    render_documents,
};
use crate::error::{Error, Result};
use crate::input::{ClusterInput, kubelet_may_set_label};
use crate::secret::ClusterSecrets;

/// Directory of the rendered kubeadm configuration on every node.
pub const KUBEADM_CONFIG_DIR: &str = "/etc/kubernetes/kubeadm";
/// The configuration `kubeadm init|join --config` reads (contains secrets: mode 0600).
pub const KUBEADM_CONFIG_PATH: &str = "/etc/kubernetes/kubeadm/kubeadm-config.yaml";
/// The configuration `kubeadm reset --config` reads.
pub const RESET_CONFIG_PATH: &str = "/etc/kubernetes/kubeadm/reset-config.yaml";
/// The configuration `kubeadm upgrade apply|node --config` reads (masters only).
pub const UPGRADE_CONFIG_PATH: &str = "/etc/kubernetes/kubeadm/upgrade-config.yaml";
/// The cluster CA certificate kubeadm writes during init/join.
pub const CA_CERT_PATH: &str = "/etc/kubernetes/pki/ca.crt";
/// Exists once a node has joined (or was initialised): re-runs skip such nodes.
pub const KUBELET_CONF_PATH: &str = "/etc/kubernetes/kubelet.conf";
/// The cluster-admin kubeconfig on control-plane nodes.
pub const ADMIN_CONF_PATH: &str = "/etc/kubernetes/admin.conf";
/// Time-to-live of the bootstrap token rendered into InitConfiguration.
pub const BOOTSTRAP_TOKEN_TTL: &str = "24h0m0s";

/// The role a node plays in the bootstrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// The first master: runs `kubeadm init`.
    InitMaster,
    /// Another master: `kubeadm join --control-plane`.
    JoinMaster,
    /// A worker: `kubeadm join`.
    Worker,
}

impl NodeRole {
    /// Whether the node runs a control plane.
    #[must_use]
    pub fn is_control_plane(self) -> bool {
        !matches!(self, Self::Worker)
    }
}

/// Everything rendered for one node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRender {
    /// Node name.
    pub name: String,
    /// Node address, when known.
    pub address: Option<IpAddr>,
    /// Its role.
    pub role: NodeRole,
    /// Files, sorted by path (the kubeadm config, which holds the bootstrap token and the
    /// certificate key, is a secret file: mode 0600, content never shown).
    pub files: Vec<File>,
    /// Labels the kubelet may not set itself (`node-role.kubernetes.io/...`): the flow applies
    /// them with `kubectl label` after the node is Ready.
    pub post_join_labels: BTreeMap<String, String>,
    /// The join configuration is missing because the CA hash is not known yet.
    pub join_config_pending: bool,
}

/// Every node's render.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedCluster {
    /// Nodes, masters first in input order, then workers.
    pub nodes: Vec<NodeRender>,
}

impl RenderedCluster {
    /// The render of one node.
    #[must_use]
    pub fn node(&self, name: &str) -> Option<&NodeRender> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// The documents of `kubeadm init` on the first master: Init, Cluster, Kubelet, KubeProxy.
///
/// # Errors
/// [`Error::InvalidInput`] when the input does not validate.
pub fn init_documents(input: &ClusterInput, secrets: &ClusterSecrets) -> Result<Vec<Document>> {
    input.validate()?;
    let first = &input.masters[0];
    let init = InitConfiguration {
        bootstrap_tokens: vec![BootstrapTokenSpec {
            token: secrets.token.clone(),
            description: None,
            ttl: Some(BOOTSTRAP_TOKEN_TTL.into()),
            usages: vec!["signing".into(), "authentication".into()],
            groups: vec!["system:bootstrappers:kubeadm:default-node-token".into()],
            extra: Default::default(),
        }],
        node_registration: Some(master_registration(input, &first.name, first.address)),
        local_api_endpoint: Some(ApiEndpoint {
            advertise_address: Some(first.address.to_string()),
            bind_port: Some(input.api_port),
        }),
        certificate_key: Some(secrets.certificate_key.clone()),
        ..Default::default()
    };
    Ok(vec![
        Document::Init(Box::new(init)),
        Document::Cluster(Box::new(cluster_configuration(input))),
        Document::Kubelet(Box::new(kubelet_configuration())),
        Document::KubeProxy(Box::new(kube_proxy_configuration(input))),
    ])
}

/// The ClusterConfiguration of the cluster.
#[must_use]
pub fn cluster_configuration(input: &ClusterInput) -> ClusterConfiguration {
    let mut sans: Vec<String> = Vec::new();
    for s in std::iter::once(input.api_vip.to_string()).chain(input.cert_sans.iter().cloned()) {
        if !sans.contains(&s) {
            sans.push(s);
        }
    }
    let bind_all = || ControlPlaneComponent {
        extra_args: vec![Arg::new("bind-address", "0.0.0.0")],
        extra: Default::default(),
    };
    ClusterConfiguration {
        cluster_name: Some(input.cluster_name.clone()),
        kubernetes_version: Some(input.kubernetes_version.to_string()),
        control_plane_endpoint: Some(input.control_plane_endpoint()),
        networking: Some(Networking {
            pod_subnet: Some(input.pod_subnet.to_string()),
            service_subnet: Some(input.service_subnet.to_string()),
            dns_domain: Some(input.dns_domain.clone()),
            extra: Default::default(),
        }),
        api_server: Some(ApiServer {
            cert_sans: sans,
            ..Default::default()
        }),
        controller_manager: Some(bind_all()),
        scheduler: Some(bind_all()),
        etcd: Some(Etcd {
            local: Some(LocalEtcd {
                data_dir: Some("/var/lib/etcd".into()),
                extra_args: vec![Arg::new("listen-metrics-urls", "http://0.0.0.0:2381")],
                ..Default::default()
            }),
            extra: Default::default(),
        }),
        image_repository: input.image_repository.clone(),
        ..Default::default()
    }
}

/// The KubeletConfiguration every node's kubelet gets through the `kubelet-config` ConfigMap.
#[must_use]
pub fn kubelet_configuration() -> KubeletConfiguration {
    KubeletConfiguration {
        cgroup_driver: Some("systemd".into()),
        server_tls_bootstrap: Some(true),
        ..Default::default()
    }
}

/// The KubeProxyConfiguration of the cluster.
#[must_use]
pub fn kube_proxy_configuration(input: &ClusterInput) -> KubeProxyConfiguration {
    KubeProxyConfiguration {
        mode: Some(input.proxy_mode.to_string()),
        metrics_bind_address: Some("0.0.0.0:10249".into()),
        cluster_cidr: Some(input.pod_subnet.to_string()),
        ..Default::default()
    }
}

fn master_registration(input: &ClusterInput, name: &str, address: IpAddr) -> NodeRegistration {
    NodeRegistration {
        name: Some(name.to_owned()),
        cri_socket: Some(input.cri_socket.clone()),
        taints: Some(vec![Taint::control_plane()]),
        kubelet_extra_args: vec![Arg::new("node-ip", address.to_string())],
        ..Default::default()
    }
}

/// The JoinConfiguration of one node (a master other than the first, or a worker).
///
/// # Errors
/// [`Error::InvalidInput`] for a bad input or an unknown/first-master node name,
/// [`Error::MissingCaCertHash`] when `secrets.ca_cert_hash` is `None`.
pub fn join_configuration(
    input: &ClusterInput,
    secrets: &ClusterSecrets,
    node: &str,
) -> Result<JoinConfiguration> {
    input.validate()?;
    join_configuration_unchecked(input, secrets, node)
}

/// [`join_configuration`] for an input the caller has validated.
fn join_configuration_unchecked(
    input: &ClusterInput,
    secrets: &ClusterSecrets,
    node: &str,
) -> Result<JoinConfiguration> {
    let hash = secrets
        .ca_cert_hash
        .clone()
        .ok_or_else(|| Error::MissingCaCertHash { node: node.into() })?;
    let discovery = Discovery {
        bootstrap_token: Some(BootstrapTokenDiscovery {
            token: secrets.token.clone(),
            api_server_endpoint: Some(input.control_plane_endpoint()),
            ca_cert_hashes: vec![hash],
            unsafe_skip_ca_verification: None,
            extra: Default::default(),
        }),
        ..Default::default()
    };
    if let Some(pos) = input.masters.iter().position(|m| m.name == node) {
        if pos == 0 {
            return Err(Error::invalid(
                "node",
                format!("{node:?} is the first master: it runs init, not join"),
            ));
        }
        let m = &input.masters[pos];
        return Ok(JoinConfiguration {
            node_registration: Some(master_registration(input, &m.name, m.address)),
            discovery,
            control_plane: Some(JoinControlPlane {
                local_api_endpoint: Some(ApiEndpoint {
                    advertise_address: Some(m.address.to_string()),
                    bind_port: Some(input.api_port),
                }),
                certificate_key: Some(secrets.certificate_key.clone()),
                extra: Default::default(),
            }),
            ..Default::default()
        });
    }
    let w = input
        .workers
        .iter()
        .find(|w| w.name == node)
        .ok_or_else(|| Error::invalid("node", format!("{node:?} is not in the cluster")))?;
    let mut args = Vec::new();
    if let Some(a) = w.address {
        args.push(Arg::new("node-ip", a.to_string()));
    }
    let self_labels: Vec<String> = w
        .labels
        .iter()
        .filter(|(k, _)| kubelet_may_set_label(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !self_labels.is_empty() {
        args.push(Arg::new("node-labels", self_labels.join(",")));
    }
    Ok(JoinConfiguration {
        node_registration: Some(NodeRegistration {
            name: Some(w.name.clone()),
            cri_socket: Some(input.cri_socket.clone()),
            taints: Some(w.taints.clone()),
            kubelet_extra_args: args,
            ..Default::default()
        }),
        discovery,
        ..Default::default()
    })
}

/// The ResetConfiguration every node gets.
#[must_use]
pub fn reset_configuration(input: &ClusterInput) -> ResetConfiguration {
    ResetConfiguration {
        cri_socket: Some(input.cri_socket.clone()),
        force: Some(true),
        cleanup_tmp_dir: Some(true),
        ..Default::default()
    }
}

/// The UpgradeConfiguration masters get, pinned to the cluster's version.
#[must_use]
pub fn upgrade_configuration(input: &ClusterInput) -> UpgradeConfiguration {
    UpgradeConfiguration {
        apply: Some(UpgradeApply {
            kubernetes_version: Some(input.kubernetes_version.to_string()),
            certificate_renewal: Some(true),
            etcd_upgrade: Some(true),
            ..Default::default()
        }),
        node: Some(UpgradeNode {
            certificate_renewal: Some(true),
            etcd_upgrade: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The files of one node.
///
/// # Errors
/// As [`join_configuration`] (including [`Error::MissingCaCertHash`] for joining nodes).
pub fn render_node(
    input: &ClusterInput,
    secrets: &ClusterSecrets,
    node: &str,
) -> Result<NodeRender> {
    input.validate()?;
    render_node_inner(input, secrets, node, true)
}

fn render_node_inner(
    input: &ClusterInput,
    secrets: &ClusterSecrets,
    node: &str,
    require_hash: bool,
) -> Result<NodeRender> {
    // The caller validated `input` once: validating per node made a cluster render quadratic.
    let (role, address, labels) =
        if let Some(pos) = input.masters.iter().position(|m| m.name == node) {
            let role = if pos == 0 {
                NodeRole::InitMaster
            } else {
                NodeRole::JoinMaster
            };
            (role, Some(input.masters[pos].address), BTreeMap::new())
        } else {
            let w = input
                .workers
                .iter()
                .find(|w| w.name == node)
                .ok_or_else(|| Error::invalid("node", format!("{node:?} is not in the cluster")))?;
            (NodeRole::Worker, w.address, w.labels.clone())
        };
    let mut files = Vec::new();
    let mut pending = false;
    let main = if role == NodeRole::InitMaster {
        Some(init_documents(input, secrets)?)
    } else if secrets.ca_cert_hash.is_none() && !require_hash {
        pending = true;
        None
    } else {
        Some(vec![Document::Join(Box::new(
            join_configuration_unchecked(input, secrets, node)?,
        ))])
    };
    if let Some(docs) = main {
        files.push(File::secret(KUBEADM_CONFIG_PATH, render_documents(&docs)?));
    }
    files.push(File::new(
        RESET_CONFIG_PATH,
        render_documents(&[Document::Reset(Box::new(reset_configuration(input)))])?,
    ));
    if role.is_control_plane() {
        files.push(File::new(
            UPGRADE_CONFIG_PATH,
            render_documents(&[Document::Upgrade(Box::new(upgrade_configuration(input)))])?,
        ));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(NodeRender {
        name: node.to_owned(),
        address,
        role,
        files,
        post_join_labels: labels
            .into_iter()
            .filter(|(k, _)| !kubelet_may_set_label(k))
            .collect(),
        join_config_pending: pending,
    })
}

/// Every node's files. Joining nodes get their kubeadm configuration only when
/// `secrets.ca_cert_hash` is set; otherwise they are marked [`NodeRender::join_config_pending`].
///
/// ```
/// use std::net::Ipv4Addr;
/// use hakube_kubeadm::{
///     ClusterInput, ClusterSecrets, KubernetesVersion, MasterInput, WorkerInput, render_cluster,
/// };
/// let vip = Ipv4Addr::new(10, 0, 0, 10);
/// let version = KubernetesVersion::new(33, 2);
/// let mut input = ClusterInput::new("prod", vip, version, "10.244.0.0/16".parse()?);
/// input.masters.push(MasterInput::new("cp1", "10.0.0.21".parse()?));
/// input.workers.push(WorkerInput::new("w1", "10.0.0.31".parse()?));
/// let rendered = render_cluster(&input, &ClusterSecrets::generate())?;
/// let cp1 = rendered.node("cp1").unwrap();
/// let cfg = cp1.files.iter().find(|f| f.path == hakube_kubeadm::KUBEADM_CONFIG_PATH).unwrap();
/// assert_eq!(cfg.mode, 0o600);
/// assert!(String::from_utf8_lossy(&cfg.content).contains("controlPlaneEndpoint: 10.0.0.10:6443"));
/// assert!(rendered.node("w1").unwrap().join_config_pending);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] when the input does not validate.
pub fn render_cluster(input: &ClusterInput, secrets: &ClusterSecrets) -> Result<RenderedCluster> {
    input.validate()?;
    let nodes = input
        .node_names()
        .map(|n| render_node_inner(input, secrets, n, false))
        .collect::<Result<Vec<_>>>()?;
    Ok(RenderedCluster { nodes })
}
