//! Cluster add-ons for a kubeadm cluster behind HAProxy on one L2 Proxmox network: Calico,
//! Traefik, observability (Prometheus, Grafana, Loki with Grafana Alloy), cert-manager with
//! Vault, an etcd backup CronJob, and the GitOps repository layout that holds them.
//!
//! The core is pure: [`render`] turns an [`AddonsInput`] into a [`Rendered`] set of files
//! (relative paths under `cluster/`, plus per-host files for Vault VMs) and an ordered list of
//! [`InstallStep`]s. [`validate`] and [`cross_check`] catch settings that would cause outages
//! (a Calico pool outside kubeadm's pod subnet, Traefik NodePorts HAProxy does not target,
//! PROXY protocol trusted from the wrong addresses, Prometheus on NFS). The effectful part,
//! [`apply::Applier`], performs server-side apply with kube-rs: CRDs first, wait until
//! Established, refresh discovery, then the objects, one field manager per component.
//!
//! Entry points:
//! - [`render`]`(&AddonsInput) -> Result<Rendered>`: the GitOps tree ([`Rendered::cluster_files`],
//!   relative to `cluster/`), per-VM files ([`Rendered::host_files`], Vault VMs) and the ordered
//!   [`Rendered::steps`] (serializable). [`example_input`] is a complete valid input.
//! - [`validate`] (input) and [`cross_check`] (rendered or hand-edited files): every problem found,
//!   including every Helm values file against its chart's rules at the pinned version
//!   ([`chart_schema`]), every-node DaemonSets tolerating every taint, and Traefik running on
//!   exactly the nodes HAProxy sends ingress to ([`AddonsInput::ingress_nodes`]).
//! - [`check_install_order`]: every namespaced object comes after its namespace.
//! - [`apply::Applier`]: `apply(component, files)`, `run_step(step, rendered)`, `wait_rollout`.
//! - Per component, the pure builders: [`calico`], [`traefik`], [`observability`], [`vault`],
//!   [`certmanager`], [`etcd_backup`], [`gitops`], [`storage`] (the NFS provisioner's place in
//!   the order, node-local volumes); pinned charts in [`versions`].
//!
//! Secrets never enter the GitOps tree: a [`InstallStep::Secret`] names the keys whose values
//! the runner generates and keeps under the plan's [`SECRETS_DIR`].
//!
//! Features: `apply` (default) enables [`apply`] and pulls in kube-rs; like every library using
//! k8s-openapi it then needs the final binary to pick a Kubernetes version feature
//! (`k8s-openapi = { features = ["latest"] }`). With `default-features = false` the crate is
//! the pure renderer only.
//!
//! ```
//! use hakube_addons::{render, example_input, Component};
//!
//! let input = example_input();
//! let out = render(&input).expect("the example input is valid");
//! assert!(out.cluster_files.iter().any(|f| f.path == "traefik/values.yaml"));
//! assert_eq!(out.steps[0].component(), Component::Calico);
//! ```

#[cfg(feature = "apply")]
pub mod apply;
pub mod calico;
pub mod certmanager;
pub mod chart_schema;
mod error;
pub mod etcd_backup;
pub mod gitops;
pub mod model;
pub mod observability;
pub mod steps;
pub mod storage;
pub mod traefik;
mod validate;
pub mod vault;
pub mod versions;
mod yaml;

pub use error::AddonsError;
pub use model::*;
pub use steps::{
    Component, HelmRelease, InstallStep, SECRETS_DIR, WorkloadKind, secret_value_path,
};
pub use validate::{check_install_order, cross_check, validate};
pub use yaml::HEADER;

/// A file of the GitOps tree, relative to `cluster/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClusterFile {
    /// Relative path with `/` separators, e.g. `traefik/values.yaml`.
    pub path: String,
    /// File contents (UTF-8 text).
    pub contents: String,
}

impl ClusterFile {
    pub(crate) fn new(path: impl Into<String>, contents: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            contents: contents.into(),
        }
    }
}

/// A file one VM receives (Vault VM placement).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostFile {
    /// Host name (as in the input).
    pub host: String,
    /// Absolute path on that host, e.g. `/etc/vault.d/vault.hcl`.
    pub path: String,
    /// Unix mode, e.g. `0o640`.
    pub mode: u32,
    /// Owner user.
    pub owner: String,
    /// Owner group.
    pub group: String,
    /// File contents.
    pub contents: String,
}

/// Everything [`render`] produces. Deterministic: rendering the same input twice gives
/// byte-identical files in the same (sorted) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The GitOps tree, sorted by path; the plan writes it under `cluster/`.
    pub cluster_files: Vec<ClusterFile>,
    /// Per-host files (Vault VMs), sorted by host then path.
    pub host_files: Vec<HostFile>,
    /// Install steps in bootstrap order.
    pub steps: Vec<InstallStep>,
}

/// What one component module renders.
#[derive(Debug, Clone)]
pub(crate) struct ComponentOutput {
    pub(crate) component: Component,
    /// Files of the component's folder (without `kustomization.yaml`).
    pub(crate) files: Vec<ClusterFile>,
    /// Charts (become `helmCharts:` in the kustomization).
    pub(crate) helm: Vec<HelmRelease>,
    /// Plain manifests (become `resources:` in the kustomization).
    pub(crate) resources: Vec<String>,
    /// Install steps.
    pub(crate) steps: Vec<InstallStep>,
}

/// Render every enabled add-on. Fails on the first problem [`validate`] finds, or when the
/// rendered output fails [`cross_check`].
pub fn render(input: &AddonsInput) -> Result<Rendered, AddonsError> {
    if let Some(first) = validate(input).into_iter().next() {
        return Err(first);
    }
    let mut outputs = vec![calico::render(input)?];
    outputs.extend(storage::render_provisioner(input));
    outputs.push(traefik::render(input)?);
    if let Some(m) = &input.monitoring {
        outputs.push(observability::render_monitoring(input, m)?);
    }
    if let Some(l) = &input.logging {
        outputs.push(observability::render_logging(input, l)?);
    }
    let mut host_files = Vec::new();
    if let Some(v) = &input.vault {
        let (out, hosts) = vault::render(input, v)?;
        host_files = hosts;
        if let Some(out) = out {
            outputs.push(out);
        }
        outputs.push(certmanager::render(input, v)?);
    }
    if let Some(b) = &input.etcd_backup {
        outputs.push(etcd_backup::render(b)?);
    }
    outputs.push(gitops::render_apps(input)?);

    let steps = outputs.iter().flat_map(|o| o.steps.clone()).collect();
    let cluster_files = gitops::assemble(input, &outputs)?;
    host_files.sort();
    let rendered = Rendered {
        cluster_files,
        host_files,
        steps,
    };
    if let Some(first) = cross_check(input, &rendered.cluster_files)
        .into_iter()
        .next()
    {
        return Err(first);
    }
    // The provisioner's files come from another crate: the composing layer checks the whole
    // order (with them) again.
    let own: Vec<InstallStep> = rendered
        .steps
        .iter()
        .filter(|s| s.component() != Component::Nfs)
        .cloned()
        .collect();
    if let Some(first) = check_install_order(&own, &rendered.cluster_files)
        .into_iter()
        .next()
    {
        return Err(first);
    }
    Ok(rendered)
}

/// A complete, valid example input (three masters, two HAProxy hosts, two worker groups,
/// monitoring, logging, Vault on three VMs, etcd backups, prod and nonprod): used by docs,
/// tests and the plan example.
#[must_use]
pub fn example_input() -> AddonsInput {
    use std::net::Ipv4Addr;
    let ip = |d: u8| Ipv4Addr::new(10, 10, 0, d);
    let net = |s: &str| s.parse().expect("literal CIDR");
    AddonsInput {
        cluster_name: "hakube".into(),
        network: NetworkInput {
            pod_subnet: net("10.244.0.0/16"),
            service_subnet: net("10.96.0.0/12"),
            node_subnet: net("10.10.0.0/24"),
            api_vip: ip(10),
            api_port: 6443,
            kubelet_server_tls_bootstrap: true,
        },
        haproxy: HaproxyInput {
            hosts: vec![Host::new("lb-1", ip(11)), Host::new("lb-2", ip(12))],
            http_backend_port: 30080,
            https_backend_port: 30443,
            send_proxy: true,
            exporter_port: 8404,
        },
        masters: (1..=3)
            .map(|i| Host::new(format!("master-{i}"), ip(20 + i)))
            .collect(),
        worker_groups: vec![
            WorkerGroup {
                name: "general".into(),
                nodes: (1..=4)
                    .map(|i| Host::new(format!("worker-{i}"), ip(30 + i)))
                    .collect(),
                taints: vec![],
            },
            WorkerGroup {
                name: "edge".into(),
                nodes: (5..=6)
                    .map(|i| Host::new(format!("worker-{i}"), ip(30 + i)))
                    .collect(),
                taints: vec![],
            },
        ],
        storage: StorageInput {
            nfs_classes: vec!["nfs-prod".into(), "nfs-nonprod".into()],
            provisioner: None,
        },
        calico: CalicoInput::default(),
        traefik: TraefikInput {
            web_node_port: 30080,
            websecure_node_port: 30443,
            workload: TraefikWorkload::DaemonSet,
            worker_groups: vec![],
            default_certificate_secret: Some("default-tls".into()),
            apps_domain: "apps.example.org".into(),
        },
        monitoring: Some(MonitoringInput {
            prometheus_volume: VolumeChoice::StorageClass {
                name: "local-path".into(),
                size: "50Gi".into(),
            },
            retention: "15d".into(),
            csr_approval: KubeletCsrApproval::Manual,
            etcd_metrics_port: 2381,
            grafana_admin_secret: "grafana-admin".into(),
        }),
        logging: Some(LoggingInput {
            loki_volume: VolumeChoice::StorageClass {
                name: "local-path".into(),
                size: "50Gi".into(),
            },
            retention: "744h".into(),
            agent: LogAgent::Alloy,
        }),
        vault: Some(VaultInput {
            placement: VaultPlacement::Vms(
                (1..=3)
                    .map(|i| Host::new(format!("vault-{i}"), ip(40 + i)))
                    .collect(),
            ),
            allowed_domains: vec!["example.org".into()],
            pki_role: "hakube".into(),
            organisation: "hakube".into(),
            server_url: None,
        }),
        etcd_backup: Some(EtcdBackupInput {
            nfs_server: ip(50),
            export_path: "/srv/nfs/etcd-backup".into(),
            schedule: "17 */6 * * *".into(),
            keep: 28,
            etcd_image: "registry.k8s.io/etcd:3.6.5-0".into(),
        }),
        environments: vec![
            EnvironmentInput {
                name: "prod".into(),
                namespace: "prod".into(),
                storage_class: "nfs-prod".into(),
                default_deny: true,
                worker_group: None,
            },
            EnvironmentInput {
                name: "nonprod".into(),
                namespace: "nonprod".into(),
                storage_class: "nfs-nonprod".into(),
                default_deny: true,
                worker_group: None,
            },
        ],
    }
}
