//! Pinned chart and image versions (each chart's release as published upstream, checked
//! 2026-08; the chart rules in `chart_schema` name the file and tag they were read from).

use std::borrow::Cow;

/// Where a Helm chart comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chart {
    /// Chart repository URL (`https://...` index or `oci://...` registry path without the name).
    pub repo: Cow<'static, str>,
    /// Chart name.
    pub name: Cow<'static, str>,
    /// Pinned chart version.
    pub version: Cow<'static, str>,
    /// Application version the chart ships (informational; may be empty).
    pub app_version: Cow<'static, str>,
}

impl Chart {
    /// True when the repository is an OCI registry.
    #[must_use]
    pub fn is_oci(&self) -> bool {
        self.repo.starts_with("oci://")
    }
}

/// Calico's operator chart (Calico v3.32.1, operator v1.42.3).
pub const TIGERA_OPERATOR: Chart = Chart {
    repo: Cow::Borrowed("https://docs.tigera.io/calico/charts"),
    name: Cow::Borrowed("tigera-operator"),
    version: Cow::Borrowed("v3.32.1"),
    app_version: Cow::Borrowed("v3.32.1"),
};

/// Traefik (chart 41.3.0, Traefik v3.7.11).
pub const TRAEFIK: Chart = Chart {
    repo: Cow::Borrowed("https://traefik.github.io/charts"),
    name: Cow::Borrowed("traefik"),
    version: Cow::Borrowed("41.3.0"),
    app_version: Cow::Borrowed("v3.7.11"),
};

/// Prometheus (single server; bundles kube-state-metrics and node-exporter as subcharts).
pub const PROMETHEUS: Chart = Chart {
    repo: Cow::Borrowed("https://prometheus-community.github.io/helm-charts"),
    name: Cow::Borrowed("prometheus"),
    version: Cow::Borrowed("29.27.0"),
    app_version: Cow::Borrowed("v3.14.0"),
};

/// kube-state-metrics version the Prometheus chart's subchart is expected at (informational).
pub const KUBE_STATE_METRICS: Chart = Chart {
    repo: Cow::Borrowed("https://prometheus-community.github.io/helm-charts"),
    name: Cow::Borrowed("kube-state-metrics"),
    version: Cow::Borrowed("8.4.0"),
    app_version: Cow::Borrowed("v2.20.0"),
};

/// metrics-server.
pub const METRICS_SERVER: Chart = Chart {
    repo: Cow::Borrowed("https://kubernetes-sigs.github.io/metrics-server/"),
    name: Cow::Borrowed("metrics-server"),
    version: Cow::Borrowed("3.13.1"),
    app_version: Cow::Borrowed("0.8.1"),
};

/// Grafana (moved to grafana-community in 2026).
pub const GRAFANA: Chart = Chart {
    repo: Cow::Borrowed("https://grafana-community.github.io/helm-charts"),
    name: Cow::Borrowed("grafana"),
    version: Cow::Borrowed("12.11.1"),
    app_version: Cow::Borrowed("13.2.0"),
};

/// Loki (grafana-community chart, monolithic mode).
pub const LOKI: Chart = Chart {
    repo: Cow::Borrowed("https://grafana-community.github.io/helm-charts"),
    name: Cow::Borrowed("loki"),
    version: Cow::Borrowed("18.11.0"),
    app_version: Cow::Borrowed("3.7.6"),
};

/// Grafana Alloy, the default log agent.
pub const ALLOY: Chart = Chart {
    repo: Cow::Borrowed("https://grafana.github.io/helm-charts"),
    name: Cow::Borrowed("alloy"),
    version: Cow::Borrowed("1.11.1"),
    app_version: Cow::Borrowed("v1.18.1"),
};

/// Promtail: deprecated chart, end of life 2026-03-02.
pub const PROMTAIL: Chart = Chart {
    repo: Cow::Borrowed("https://grafana.github.io/helm-charts"),
    name: Cow::Borrowed("promtail"),
    version: Cow::Borrowed("6.17.1"),
    app_version: Cow::Borrowed("3.5.1"),
};

/// cert-manager (OCI chart on quay.io).
pub const CERT_MANAGER: Chart = Chart {
    repo: Cow::Borrowed("oci://quay.io/jetstack/charts"),
    name: Cow::Borrowed("cert-manager"),
    version: Cow::Borrowed("v1.21.1"),
    app_version: Cow::Borrowed("v1.21.1"),
};

/// Vault (hashicorp/vault chart 0.34.1, Vault 2.0.4).
pub const VAULT: Chart = Chart {
    repo: Cow::Borrowed("https://helm.releases.hashicorp.com"),
    name: Cow::Borrowed("vault"),
    version: Cow::Borrowed("0.34.1"),
    app_version: Cow::Borrowed("2.0.4"),
};

/// Repository of postfinance/kubelet-csr-approver (its version is an input).
pub const KUBELET_CSR_APPROVER_REPO: &str = "https://postfinance.github.io/kubelet-csr-approver";

/// A known release of the kubelet-csr-approver chart: tag v1.2.14 (2026-04-09) of
/// postfinance/kubelet-csr-approver, whose release workflow (`.github/workflows/publish.yaml`)
/// publishes the chart with the tag's version without its `v`.
pub const KUBELET_CSR_APPROVER_VERSION: &str = "1.2.14";

/// Image used by the etcd backup job's pruning container.
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:1.37.0";

/// Example application image used in the GitOps `apps` base.
pub const WHOAMI_IMAGE: &str = "docker.io/traefik/whoami:v1.11.0";

/// Every pinned chart (kubelet-csr-approver's version is an input, so it is not here).
pub const ALL: &[Chart] = &[
    TIGERA_OPERATOR,
    TRAEFIK,
    PROMETHEUS,
    KUBE_STATE_METRICS,
    METRICS_SERVER,
    GRAFANA,
    LOKI,
    ALLOY,
    PROMTAIL,
    CERT_MANAGER,
    VAULT,
];
