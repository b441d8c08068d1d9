//! Calico, Traefik, observability, Vault + cert-manager, etcd backups and the GitOps layout
//! under `cluster/` (the Vault VMs' host plans are `crate::vault`'s).

use hakube_addons::{
    AddonsInput, CalicoInput, EnvironmentInput, EtcdBackupInput, HaproxyInput, Host,
    KubeletCsrApproval, LoggingInput, MonitoringInput, NetworkInput, StorageInput, Taint,
    TaintEffect, TraefikInput, TraefikWorkload, VaultInput, VaultPlacement, VolumeChoice,
    WorkerGroup,
};
use hakube_topology::{Cluster, LogAgent, RoleKind, TlsMode, Vm};

use crate::policy::{API_PORT, ETCD_METRICS_PORT};
use crate::{Error, PlanOptions, PlanTree};

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Component {
        component: "addons",
        source: e.into(),
    }
}

/// The etcd image kubeadm runs, whose `etcdctl` takes the snapshots: kubeadm's
/// `DefaultEtcdVersion` and `SupportedEtcdVersion[34]` in `cmd/kubeadm/app/constants/constants.go`
/// on kubernetes' release-1.34 branch (Kubernetes 1.34.2, the seed's version). hakube-kubeadm pins no etcd version, so this is the one place
/// to bump. One image for every Kubernetes version: `etcdctl snapshot save` goes through the
/// Maintenance API that both etcd 3.5 (kubeadm's for Kubernetes 1.31 to 1.33) and 3.6 serve.
pub const KUBEADM_ETCD_IMAGE: &str = "registry.k8s.io/etcd:3.6.5-0";

fn host(vm: &Vm) -> Host {
    Host::new(vm.name.clone(), vm.address)
}

/// The add-ons crate's input, from the topology (which wins) and the options.
pub(crate) fn input(cluster: &Cluster, options: &PlanOptions) -> AddonsInput {
    let t = &cluster.topology;
    let domain = t
        .network
        .search_domain
        .clone()
        .unwrap_or_else(|| options.fallback_domain.clone());
    let apps_domain = t
        .addons
        .apps_domain
        .clone()
        .unwrap_or_else(|| format!("{}.{domain}", options.apps_label));
    let worker_groups = worker_groups(cluster);
    let volumes = Volumes::new(cluster, options, &worker_groups);
    AddonsInput {
        cluster_name: t.cluster.name.clone(),
        network: NetworkInput {
            pod_subnet: t.kubernetes.pod_cidr,
            service_subnet: t.kubernetes.service_cidr,
            node_subnet: t.network.cidr,
            api_vip: t.network.vip,
            api_port: API_PORT,
            kubelet_server_tls_bootstrap: true,
        },
        haproxy: HaproxyInput {
            hosts: cluster
                .vms_with_role(RoleKind::LoadBalancer)
                .map(host)
                .collect(),
            http_backend_port: t.ingress.http_node_port,
            https_backend_port: t.ingress.https_node_port,
            send_proxy: t.ingress.tls == TlsMode::Passthrough,
            exporter_port: hakube_haproxy_config::reference::STATS_PORT,
        },
        masters: cluster
            .vms_with_role(RoleKind::ControlPlane)
            .map(host)
            .collect(),
        worker_groups,
        storage: StorageInput {
            nfs_classes: t.storage_classes.iter().map(|c| c.name.clone()).collect(),
            provisioner: crate::nfs::provisioner(cluster),
        },
        calico: CalicoInput::default(),
        traefik: TraefikInput {
            web_node_port: t.ingress.http_node_port,
            websecure_node_port: t.ingress.https_node_port,
            workload: TraefikWorkload::DaemonSet,
            worker_groups: ingress_groups(cluster),
            default_certificate_secret: t
                .vault
                .as_ref()
                .map(|_| options.ingress.default_certificate_secret.clone()),
            apps_domain,
        },
        monitoring: t.addons.monitoring.then(|| MonitoringInput {
            prometheus_volume: volumes.pick(options.monitoring.volume_size(), 0, "prometheus"),
            retention: options.monitoring.retention_text(),
            csr_approval: KubeletCsrApproval::Approver {
                chart_version: hakube_addons::versions::KUBELET_CSR_APPROVER_VERSION.to_owned(),
            },
            etcd_metrics_port: ETCD_METRICS_PORT,
            grafana_admin_secret: options.monitoring.grafana_admin_secret.clone(),
        }),
        logging: t.addons.logging.then(|| LoggingInput {
            loki_volume: volumes.pick(options.logging.volume_size(), 1, "loki"),
            retention: options.logging.retention_text(),
            agent: match t.addons.log_agent {
                LogAgent::Alloy => hakube_addons::LogAgent::Alloy,
                LogAgent::Promtail => hakube_addons::LogAgent::Promtail,
            },
        }),
        vault: vault_input(cluster, &domain),
        etcd_backup: etcd_backup(cluster),
        environments: environments(cluster),
    }
}

/// The topology's worker groups: their VMs and taints.
fn worker_groups(cluster: &Cluster) -> Vec<WorkerGroup> {
    let taint = |x: &hakube_topology::Taint| {
        let effect = match x.effect {
            hakube_topology::TaintEffect::NoSchedule => TaintEffect::NoSchedule,
            hakube_topology::TaintEffect::PreferNoSchedule => TaintEffect::PreferNoSchedule,
            hakube_topology::TaintEffect::NoExecute => TaintEffect::NoExecute,
        };
        Taint::new(x.key.clone(), x.value.as_deref(), effect)
    };
    cluster
        .topology
        .workers
        .groups
        .iter()
        .map(|g| WorkerGroup {
            name: g.name.clone(),
            nodes: cluster
                .vms_with_role(RoleKind::Worker)
                .filter(|v| v.group.as_deref() == Some(&g.name))
                .map(host)
                .collect(),
            taints: g.taints.iter().map(taint).collect(),
        })
        .collect()
}

/// Where Prometheus and Loki keep their data: a PVC of the local-disk class when the topology
/// names one; otherwise a directory on a worker that takes any pod (no NoSchedule/NoExecute
/// taint), one worker each when there are two; an emptyDir (losing the data on every restart)
/// only when no worker qualifies.
struct Volumes<'a> {
    local_class: Option<&'a str>,
    schedulable: Vec<String>,
    dir: &'a str,
}

impl<'a> Volumes<'a> {
    fn new(cluster: &'a Cluster, options: &'a PlanOptions, groups: &[WorkerGroup]) -> Self {
        let schedulable = groups
            .iter()
            .filter(|g| {
                g.taints
                    .iter()
                    .all(|x| x.effect == TaintEffect::PreferNoSchedule)
            })
            .flat_map(|g| g.nodes.iter().map(|n| n.name.clone()))
            .collect();
        Self {
            local_class: cluster.topology.addons.local_storage_class.as_deref(),
            schedulable,
            dir: &options.host_path_dir,
        }
    }

    /// The volume of `size` for the `index`th data-keeping add-on, in `<dir>/<name>` when on
    /// a host directory.
    fn pick(&self, size: String, index: usize, name: &str) -> VolumeChoice {
        match self.local_class {
            Some(class) => VolumeChoice::StorageClass {
                name: class.to_owned(),
                size,
            },
            None => match self.schedulable.get(index).or(self.schedulable.first()) {
                Some(node) => VolumeChoice::HostPath {
                    node: node.clone(),
                    path: format!("{}/{name}", self.dir),
                    size,
                },
                None => VolumeChoice::Ephemeral,
            },
        }
    }
}

/// One environment per worker group: its namespace, on the StorageClass named after the group
/// (`*-<group>`) or the default one.
fn environments(cluster: &Cluster) -> Vec<EnvironmentInput> {
    let t = &cluster.topology;
    let default_class = t
        .storage_classes
        .iter()
        .find(|c| c.default)
        .or(t.storage_classes.first())
        .map(|c| c.name.clone());
    t.workers
        .groups
        .iter()
        .filter_map(|g| {
            let class = t
                .storage_classes
                .iter()
                .find(|c| c.name.ends_with(&format!("-{}", g.name)))
                .map(|c| c.name.clone())
                .or_else(|| default_class.clone())?;
            Some(EnvironmentInput {
                name: g.name.clone(),
                namespace: g.name.clone(),
                storage_class: class,
                default_deny: t.addons.default_deny_policies,
                worker_group: Some(g.name.clone()),
            })
        })
        .collect()
}

/// Vault and cert-manager's issuer, when the topology has Vault; the PKI role issues for
/// `domain`.
fn vault_input(cluster: &Cluster, domain: &str) -> Option<VaultInput> {
    let t = &cluster.topology;
    t.vault.as_ref().map(|v| VaultInput {
        placement: match v.placement {
            hakube_topology::VaultPlacement::Vms => {
                VaultPlacement::Vms(cluster.vms_with_role(RoleKind::Vault).map(host).collect())
            }
            hakube_topology::VaultPlacement::InCluster => VaultPlacement::InCluster {
                storage_class: t.addons.local_storage_class.clone().unwrap_or_default(),
            },
        },
        allowed_domains: vec![domain.to_owned()],
        pki_role: t.cluster.name.clone(),
        organisation: t.cluster.name.clone(),
        server_url: None,
    })
}

/// The worker groups of [`Cluster::ingress_workers`]: Traefik's node affinity, from the same
/// selection HAProxy's ingress backends come from.
fn ingress_groups(cluster: &Cluster) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for vm in cluster.ingress_workers() {
        if let Some(g) = &vm.group
            && !groups.contains(g)
        {
            groups.push(g.clone());
        }
    }
    groups
}

/// The etcd snapshot CronJob's input, when `backup.etcd` is set: the NFS VM's address and the
/// export the NFS side exports to the masters only (see `crate::nfs`).
fn etcd_backup(cluster: &Cluster) -> Option<EtcdBackupInput> {
    let backup = cluster.topology.backup.as_ref()?.etcd.as_ref()?;
    let (nfs, export_path) = crate::nfs::etcd_backup_target(cluster)?;
    Some(EtcdBackupInput {
        nfs_server: nfs.address,
        export_path: export_path.to_owned(),
        schedule: backup.schedule.clone(),
        keep: backup.keep,
        etcd_image: KUBEADM_ETCD_IMAGE.to_owned(),
    })
}

pub(crate) fn render(
    cluster: &Cluster,
    options: &PlanOptions,
    secrets: &crate::PlanSecrets,
    tree: &mut PlanTree,
) -> Result<(), Error> {
    let input = input(cluster, options);
    let rendered = hakube_addons::render(&input).map_err(err)?;
    // Grafana's admin password where the add-on runner reads the Secret's generated key.
    if let Some(m) = &input.monitoring {
        let path = hakube_addons::secret_value_path(
            hakube_addons::observability::MONITORING_NAMESPACE,
            &m.grafana_admin_secret,
            "admin-password",
        );
        tree.insert(
            format!("{}/{path}", hakube_addons::SECRETS_DIR),
            secrets.grafana_admin_password.expose().to_owned(),
            0o600,
        )?;
    }
    crate::rules::check_addons(cluster, &input, &rendered, tree)?;
    for f in rendered.cluster_files {
        tree.insert(format!("cluster/{}", f.path), f.contents, 0o644)?;
    }
    let mut steps = serde_json::to_string_pretty(&rendered.steps).map_err(err)?;
    steps.push('\n');
    tree.insert("cluster/install-steps.json".into(), steps, 0o644)?;
    Ok(())
}
