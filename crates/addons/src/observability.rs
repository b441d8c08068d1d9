//! Monitoring (Prometheus with kube-state-metrics, metrics-server, Grafana) and logging (Loki
//! in monolithic mode with Grafana Alloy, or Promtail).
//!
//! Why Alloy by default: Promtail reached end of life on 2026-03-02 (no more fixes, including
//! security fixes); Grafana Alloy is its designated successor, reads the same pod log files,
//! and existing Promtail configs convert with `alloy convert --source-format=promtail`.
//! Promtail stays selectable for installs that still depend on it.
//!
//! Prometheus keeps its TSDB, and Loki its chunks, on a local-disk class or a node-local volume
//! ([`VolumeChoice::HostPath`], see [`crate::storage`]), or an explicitly ephemeral emptyDir:
//! Prometheus does not support NFS for its TSDB, so NFS classes are refused by
//! [`crate::validate`] and [`crate::cross_check`].
//!
//! Each namespace is a manifest applied before anything is created in it (the Grafana admin
//! Secret comes before the chart that reads it), and the DaemonSets that must run on every node
//! (node-exporter, the log agent) tolerate every taint of the cluster
//! ([`AddonsInput::every_taint`]).

use serde_json::{Value, json};

use crate::model::{
    AddonsInput, KubeletCsrApproval, LogAgent, LoggingInput, MonitoringInput, VolumeChoice,
};
use crate::steps::{Component, HelmRelease, InstallStep};
use crate::versions::{self, Chart};
use crate::{ClusterFile, ComponentOutput, Error, yaml};

/// Namespace of Prometheus, metrics-server and Grafana.
pub const MONITORING_NAMESPACE: &str = "monitoring";
/// Namespace of Loki and the log agent.
pub const LOGGING_NAMESPACE: &str = "logging";
/// Prometheus chart values.
pub const PROMETHEUS_VALUES: &str = "monitoring/prometheus-values.yaml";
/// metrics-server chart values.
pub const METRICS_SERVER_VALUES: &str = "monitoring/metrics-server-values.yaml";
/// Grafana chart values.
pub const GRAFANA_VALUES: &str = "monitoring/grafana-values.yaml";
/// kubelet-csr-approver chart values (only with [`KubeletCsrApproval::Approver`]).
pub const CSR_APPROVER_VALUES: &str = "monitoring/kubelet-csr-approver-values.yaml";
/// Loki chart values.
pub const LOKI_VALUES: &str = "logging/loki-values.yaml";
/// Log agent chart values (Alloy or Promtail).
pub const AGENT_VALUES: &str = "logging/agent-values.yaml";
/// The `monitoring` Namespace.
pub const MONITORING_NAMESPACE_FILE: &str = "monitoring/namespace.yaml";
/// The `logging` Namespace.
pub const LOGGING_NAMESPACE_FILE: &str = "logging/namespace.yaml";
/// Node-local volume of Prometheus (with [`VolumeChoice::HostPath`]).
pub const MONITORING_VOLUMES_FILE: &str = "monitoring/local-volumes.yaml";
/// Node-local volume of Loki (with [`VolumeChoice::HostPath`]).
pub const LOGGING_VOLUMES_FILE: &str = "logging/local-volumes.yaml";
/// The claim the Prometheus chart (release `prometheus`) creates for its server.
pub const PROMETHEUS_CLAIM: &str = "prometheus-server";
/// The claim Loki's single-binary StatefulSet (release `loki`) creates for replica 0
/// (`volumeClaimTemplates` name `storage`, StatefulSet `loki`; loki chart 18.11.0
/// `templates/_workload.tpl`).
pub const LOKI_CLAIM: &str = "storage-loki-0";

/// In-cluster URL of Prometheus (chart release `prometheus`).
pub const PROMETHEUS_URL: &str = "http://prometheus-server.monitoring.svc.cluster.local";
/// In-cluster URL of Loki (monolithic, no gateway).
pub const LOKI_URL: &str = "http://loki.logging.svc.cluster.local:3100";

/// Extra scrape jobs: the HAProxy exporters and etcd on every master.
#[must_use]
pub fn scrape_configs(input: &AddonsInput, m: &MonitoringInput) -> Value {
    let haproxy: Vec<String> = input
        .haproxy
        .hosts
        .iter()
        .map(|h| format!("{}:{}", h.address, input.haproxy.exporter_port))
        .collect();
    let etcd: Vec<String> = input
        .masters
        .iter()
        .map(|h| format!("{}:{}", h.address, m.etcd_metrics_port))
        .collect();
    json!([
        {
            "job_name": "haproxy",
            "metrics_path": "/metrics",
            "static_configs": [{ "targets": haproxy, "labels": { "cluster": input.cluster_name } }],
        },
        {
            "job_name": "etcd",
            "metrics_path": "/metrics",
            "scheme": "http",
            "static_configs": [{ "targets": etcd, "labels": { "cluster": input.cluster_name } }],
        },
    ])
}

fn volume(v: &VolumeChoice) -> Value {
    crate::storage::chart_volume(v)
}

/// Tolerations for a workload that must run on every node: one per taint in the cluster.
#[must_use]
pub fn every_node_tolerations(input: &AddonsInput) -> Value {
    input
        .every_taint()
        .iter()
        .map(crate::model::Taint::toleration)
        .collect()
}

fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name, "labels": { "app.kubernetes.io/managed-by": "hakube" } },
    })
}

/// The node-local volume for `volume` when it is [`VolumeChoice::HostPath`], preceded by the
/// node-local StorageClass when `with_class` (one component owns it: monitoring when it uses
/// one, else logging).
fn local_volume_docs(
    volume: &VolumeChoice,
    namespace: &str,
    claim: &str,
    with_class: bool,
) -> Vec<Value> {
    match crate::storage::node_local_volume(volume, namespace, claim) {
        Some(pv) if with_class => vec![crate::storage::node_local_class(), pv],
        Some(pv) => vec![pv],
        None => vec![],
    }
}

/// Prometheus chart values: one server, kube-state-metrics and node-exporter subcharts,
/// no Alertmanager or Pushgateway, the extra scrape jobs.
pub fn prometheus_values(input: &AddonsInput, m: &MonitoringInput) -> Result<Value, Error> {
    let scrape = yaml::to_yaml(PROMETHEUS_VALUES, &scrape_configs(input, m))?;
    Ok(json!({
        "server": {
            "replicaCount": 1,
            "retention": m.retention,
            "persistentVolume": volume(&m.prometheus_volume),
        },
        "alertmanager": { "enabled": false },
        "prometheus-pushgateway": { "enabled": false },
        "kube-state-metrics": { "enabled": true },
        "prometheus-node-exporter": {
            "enabled": true,
            "tolerations": every_node_tolerations(input),
        },
        "extraScrapeConfigs": scrape,
    }))
}

/// metrics-server values: verifies kubelet certificates when `serverTLSBootstrap` is on;
/// otherwise falls back to `--kubelet-insecure-tls` (kubelets' self-signed certificates).
#[must_use]
pub fn metrics_server_values(input: &AddonsInput) -> Value {
    let args: Vec<&str> = if input.network.kubelet_server_tls_bootstrap {
        vec!["--kubelet-preferred-address-types=InternalIP"]
    } else {
        vec![
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-insecure-tls",
        ]
    };
    json!({ "args": args })
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// kubelet-csr-approver values: approve kubelet-serving CSRs only for the known node names
/// and addresses inside the node subnet.
#[must_use]
pub fn csr_approver_values(input: &AddonsInput) -> Value {
    let mut names: Vec<String> = input
        .masters
        .iter()
        .chain(input.worker_groups.iter().flat_map(|g| g.nodes.iter()))
        .map(|h| regex_escape(&h.name))
        .collect();
    names.sort();
    json!({
        "providerRegex": format!("^({})$", names.join("|")),
        "providerIpPrefixes": [input.network.node_subnet.to_string()],
        "bypassDnsResolution": true,
    })
}

/// Grafana values: Prometheus (default) and, with logging on, Loki as data sources; the
/// admin credentials come from an existing Secret (never from Git).
#[must_use]
pub fn grafana_values(input: &AddonsInput, m: &MonitoringInput) -> Value {
    let mut sources = vec![json!({
        "name": "Prometheus",
        "type": "prometheus",
        "uid": "prometheus",
        "url": PROMETHEUS_URL,
        "access": "proxy",
        "isDefault": true,
    })];
    if input.logging.is_some() {
        sources.push(json!({
            "name": "Loki",
            "type": "loki",
            "uid": "loki",
            "url": LOKI_URL,
            "access": "proxy",
        }));
    }
    json!({
        "admin": {
            "existingSecret": m.grafana_admin_secret,
            "userKey": "admin-user",
            "passwordKey": "admin-password",
        },
        "persistence": { "enabled": false },
        "datasources": {
            "datasources.yaml": { "apiVersion": 1, "datasources": sources },
        },
    })
}

/// Loki values: monolithic (single binary, one replica), filesystem storage on a local-disk
/// volume, retention by the compactor, caches/gateway/canary off for a light install.
#[must_use]
pub fn loki_values(l: &LoggingInput) -> Value {
    json!({
        "deploymentMode": "Monolithic",
        "loki": {
            "auth_enabled": false,
            "commonConfig": { "replication_factor": 1 },
            "storage": { "type": "filesystem" },
            "schemaConfig": {
                "configs": [{
                    "from": "2026-01-01",
                    "store": "tsdb",
                    "object_store": "filesystem",
                    "schema": "v13",
                    "index": { "prefix": "loki_index_", "period": "24h" },
                }],
            },
            "limits_config": { "retention_period": l.retention },
            "compactor": { "retention_enabled": true, "delete_request_store": "filesystem" },
        },
        "singleBinary": { "replicas": 1, "persistence": volume(&l.loki_volume) },
        "read": { "replicas": 0 },
        "write": { "replicas": 0 },
        "backend": { "replicas": 0 },
        "chunksCache": { "enabled": false },
        "resultsCache": { "enabled": false },
        "gateway": { "enabled": false },
        "lokiCanary": { "enabled": false },
        "test": { "enabled": false },
        "minio": { "enabled": false },
    })
}

/// The Alloy pipeline: pods of this node, their log files under /var/log/pods, CRI parsing,
/// push to Loki.
#[must_use]
pub fn alloy_config() -> String {
    format!(
        r#"// Rendered by hakube-addons. Ships the logs of the pods on this node to Loki.
discovery.kubernetes "pods" {{
  role = "pod"
  selectors {{
    role  = "pod"
    field = "spec.nodeName=" + sys.env("NODE_NAME")
  }}
}}

discovery.relabel "pods" {{
  targets = discovery.kubernetes.pods.targets
  rule {{
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_name"]
    target_label  = "pod"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_container_name"]
    target_label  = "container"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_node_name"]
    target_label  = "node"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_uid", "__meta_kubernetes_pod_container_name"]
    separator     = "/"
    replacement   = "/var/log/pods/*$1/*.log"
    target_label  = "__path__"
  }}
}}

local.file_match "pods" {{
  path_targets = discovery.relabel.pods.output
}}

loki.source.file "pods" {{
  targets    = local.file_match.pods.targets
  forward_to = [loki.process.cri.receiver]
}}

loki.process "cri" {{
  stage.cri {{}}
  forward_to = [loki.write.default.receiver]
}}

loki.write "default" {{
  endpoint {{
    url = "{LOKI_URL}/loki/api/v1/push"
  }}
}}
"#
    )
}

/// Log agent values (Alloy as a DaemonSet, or Promtail).
#[must_use]
pub fn agent_values(input: &AddonsInput, l: &LoggingInput) -> Value {
    let tolerations = every_node_tolerations(input);
    match l.agent {
        LogAgent::Alloy => json!({
            "controller": { "type": "daemonset", "tolerations": tolerations },
            "alloy": {
                "configMap": { "create": true, "content": alloy_config() },
                "mounts": { "varlog": true },
                "extraEnv": [{
                    "name": "NODE_NAME",
                    "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } },
                }],
            },
        }),
        LogAgent::Promtail => json!({
            "config": { "clients": [{ "url": format!("{LOKI_URL}/loki/api/v1/push") }] },
            "tolerations": tolerations,
        }),
    }
}

fn release(component: Component, name: &str, ns: &str, chart: Chart, values: &str) -> HelmRelease {
    HelmRelease {
        component,
        release: name.into(),
        namespace: ns.into(),
        chart,
        values_file: values.into(),
    }
}

/// The kubelet-csr-approver release (and its values file) that approves kubelet serving
/// certificates (`kubelet_server_tls_bootstrap`).
fn csr_approver(
    input: &AddonsInput,
    approval: &KubeletCsrApproval,
) -> Result<(ClusterFile, HelmRelease), Error> {
    let KubeletCsrApproval::Approver { chart_version } = approval;
    let file = ClusterFile::new(
        CSR_APPROVER_VALUES,
        yaml::file(CSR_APPROVER_VALUES, &[csr_approver_values(input)])?,
    );
    let chart = Chart {
        repo: versions::KUBELET_CSR_APPROVER_REPO.into(),
        name: "kubelet-csr-approver".into(),
        version: chart_version.clone().into(),
        app_version: "".into(),
    };
    let r = release(
        Component::Monitoring,
        "kubelet-csr-approver",
        "kube-system",
        chart,
        CSR_APPROVER_VALUES,
    );
    Ok((file, r))
}

/// Without monitoring, kubelet serving certificates still need approving (`kubectl logs` and
/// `exec` reach the kubelets over TLS): the approver alone, at the default version, in the
/// monitoring folder. `None` when monitoring renders it or serving certificates are off.
pub(crate) fn render_csr_approver_alone(
    input: &AddonsInput,
) -> Result<Option<ComponentOutput>, Error> {
    if input.monitoring.is_some() || !input.network.kubelet_server_tls_bootstrap {
        return Ok(None);
    }
    let (file, r) = csr_approver(input, &KubeletCsrApproval::default())?;
    Ok(Some(ComponentOutput {
        component: Component::Monitoring,
        files: vec![file],
        helm: vec![r.clone()],
        resources: vec![],
        steps: vec![InstallStep::Helm(r)],
    }))
}

/// Files and install steps for monitoring.
pub(crate) fn render_monitoring(
    input: &AddonsInput,
    m: &MonitoringInput,
) -> Result<ComponentOutput, Error> {
    let c = Component::Monitoring;
    let ns = MONITORING_NAMESPACE;
    let mut files = vec![
        ClusterFile::new(
            PROMETHEUS_VALUES,
            yaml::file(PROMETHEUS_VALUES, &[prometheus_values(input, m)?])?,
        ),
        ClusterFile::new(
            METRICS_SERVER_VALUES,
            yaml::file(METRICS_SERVER_VALUES, &[metrics_server_values(input)])?,
        ),
        ClusterFile::new(
            GRAFANA_VALUES,
            yaml::file(GRAFANA_VALUES, &[grafana_values(input, m)])?,
        ),
    ];
    files.push(ClusterFile::new(
        MONITORING_NAMESPACE_FILE,
        yaml::file(MONITORING_NAMESPACE_FILE, &[namespace(ns)])?,
    ));
    let mut resources = vec![MONITORING_NAMESPACE_FILE.to_owned()];
    let volumes = local_volume_docs(&m.prometheus_volume, ns, PROMETHEUS_CLAIM, true);
    if !volumes.is_empty() {
        files.push(ClusterFile::new(
            MONITORING_VOLUMES_FILE,
            yaml::file(MONITORING_VOLUMES_FILE, &volumes)?,
        ));
        resources.push(MONITORING_VOLUMES_FILE.to_owned());
    }
    let mut helm = Vec::new();
    let mut steps = vec![
        InstallStep::Apply {
            component: c,
            files: resources.clone(),
        },
        InstallStep::Secret {
            component: c,
            namespace: ns.into(),
            name: m.grafana_admin_secret.clone(),
            literals: [("admin-user".to_owned(), "admin".to_owned())].into(),
            generated: vec!["admin-password".into()],
            from_files: std::collections::BTreeMap::new(),
        },
    ];
    if input.network.kubelet_server_tls_bootstrap {
        let (file, r) = csr_approver(input, &m.csr_approval)?;
        files.push(file);
        steps.push(InstallStep::Helm(r.clone()));
        helm.push(r);
    }
    for r in [
        release(c, "prometheus", ns, versions::PROMETHEUS, PROMETHEUS_VALUES),
        release(
            c,
            "metrics-server",
            "kube-system",
            versions::METRICS_SERVER,
            METRICS_SERVER_VALUES,
        ),
        release(c, "grafana", ns, versions::GRAFANA, GRAFANA_VALUES),
    ] {
        steps.push(InstallStep::Helm(r.clone()));
        helm.push(r);
    }
    Ok(ComponentOutput {
        component: c,
        files,
        helm,
        resources,
        steps,
    })
}

/// Files and install steps for logging.
pub(crate) fn render_logging(
    input: &AddonsInput,
    l: &LoggingInput,
) -> Result<ComponentOutput, Error> {
    let c = Component::Logging;
    let ns = LOGGING_NAMESPACE;
    let mut files = vec![
        ClusterFile::new(LOKI_VALUES, yaml::file(LOKI_VALUES, &[loki_values(l)])?),
        ClusterFile::new(
            AGENT_VALUES,
            yaml::file(AGENT_VALUES, &[agent_values(input, l)])?,
        ),
        ClusterFile::new(
            LOGGING_NAMESPACE_FILE,
            yaml::file(LOGGING_NAMESPACE_FILE, &[namespace(ns)])?,
        ),
    ];
    let mut resources = vec![LOGGING_NAMESPACE_FILE.to_owned()];
    let monitoring_owns_class = input
        .monitoring
        .as_ref()
        .is_some_and(|m| matches!(m.prometheus_volume, VolumeChoice::HostPath { .. }));
    let volumes = local_volume_docs(&l.loki_volume, ns, LOKI_CLAIM, !monitoring_owns_class);
    if !volumes.is_empty() {
        files.push(ClusterFile::new(
            LOGGING_VOLUMES_FILE,
            yaml::file(LOGGING_VOLUMES_FILE, &volumes)?,
        ));
        resources.push(LOGGING_VOLUMES_FILE.to_owned());
    }
    let agent = match l.agent {
        LogAgent::Alloy => release(c, "alloy", ns, versions::ALLOY, AGENT_VALUES),
        LogAgent::Promtail => release(c, "promtail", ns, versions::PROMTAIL, AGENT_VALUES),
    };
    let helm = vec![release(c, "loki", ns, versions::LOKI, LOKI_VALUES), agent];
    let mut steps = vec![InstallStep::Apply {
        component: c,
        files: resources.clone(),
    }];
    steps.extend(helm.iter().cloned().map(InstallStep::Helm));
    Ok(ComponentOutput {
        component: c,
        files,
        steps,
        helm,
        resources,
    })
}

#[cfg(test)]
mod tests {
    use super::regex_escape;

    #[test]
    fn node_names_are_matched_literally() {
        assert_eq!(regex_escape("worker-1"), "worker-1");
        assert_eq!(regex_escape("w.example.org"), "w\\.example\\.org");
        assert_eq!(regex_escape("a+b(c)|d"), "a\\+b\\(c\\)\\|d");
    }
}
