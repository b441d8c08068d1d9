//! Install steps: pure data, executed by whoever runs the plan (kube-rs applier in
//! [`crate::apply`], or `kubectl`/`helm` via [`InstallStep::commands`]).

use serde::Serialize;

use crate::versions::Chart;

/// The components this crate puts in the install order, in bootstrap order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Component {
    /// Calico CNI (tigera operator + Installation).
    Calico,
    /// The NFS provisioner and its StorageClasses (objects rendered by hakube-nfs-provisioning).
    Nfs,
    /// Traefik ingress.
    Traefik,
    /// Prometheus, kube-state-metrics, metrics-server, Grafana.
    Monitoring,
    /// Loki and the log agent.
    Logging,
    /// Vault (in-cluster placement only; VM placement is host files).
    Vault,
    /// cert-manager and its Vault ClusterIssuer.
    CertManager,
    /// etcd snapshot CronJob.
    EtcdBackup,
    /// Example application with one overlay per environment.
    Apps,
}

impl Component {
    /// Folder under `cluster/` (also the component's short name).
    #[must_use]
    pub fn dir(self) -> &'static str {
        match self {
            Self::Calico => "calico",
            Self::Nfs => "nfs",
            Self::Traefik => "traefik",
            Self::Monitoring => "monitoring",
            Self::Logging => "logging",
            Self::Vault => "vault",
            Self::CertManager => "cert-manager",
            Self::EtcdBackup => "etcd-backup",
            Self::Apps => "apps",
        }
    }

    /// The server-side apply field manager for this component (one per component).
    #[must_use]
    pub fn field_manager(self) -> String {
        format!("hakube-addons.{}", self.dir())
    }
}

/// A Helm release installed with `helm upgrade --install` at a pinned chart version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HelmRelease {
    /// Owning component.
    pub component: Component,
    /// Release name.
    pub release: String,
    /// Namespace (created if missing).
    pub namespace: String,
    /// The pinned chart.
    pub chart: Chart,
    /// Values file, relative to the `cluster/` folder.
    pub values_file: String,
}

impl HelmRelease {
    /// The `helm upgrade --install` command line; `cluster_dir` is where `cluster/` was written.
    #[must_use]
    pub fn argv(&self, cluster_dir: &str) -> Vec<String> {
        let mut argv: Vec<String> = vec!["helm".into(), "upgrade".into(), "--install".into()];
        argv.push(self.release.clone());
        if self.chart.is_oci() {
            argv.push(format!("{}/{}", self.chart.repo, self.chart.name));
        } else {
            argv.push(self.chart.name.to_string());
            argv.push("--repo".into());
            argv.push(self.chart.repo.to_string());
        }
        argv.extend([
            "--version".into(),
            self.chart.version.to_string(),
            "--namespace".into(),
            self.namespace.clone(),
            "--create-namespace".into(),
            "--values".into(),
            format!("{}/{}", cluster_dir.trim_end_matches('/'), self.values_file),
            "--wait".into(),
            "--timeout".into(),
            "10m".into(),
        ]);
        argv
    }
}

/// The plan folder that keeps secrets, beside `cluster/` and never inside it (mode 0700, files
/// 0600): what a GitOps repository receives is `cluster/` alone.
pub const SECRETS_DIR: &str = "secrets";

/// Where a generated Secret value is kept, relative to [`SECRETS_DIR`]:
/// `<namespace>/<secret>/<key>`.
#[must_use]
pub fn secret_value_path(namespace: &str, name: &str, key: &str) -> String {
    format!("{namespace}/{name}/{key}")
}

/// Kinds of workload a readiness wait can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// apps/v1 StatefulSet.
    StatefulSet,
}

impl WorkloadKind {
    /// Lower-case kind as `kubectl` spells it.
    #[must_use]
    pub fn kubectl_name(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::DaemonSet => "daemonset",
            Self::StatefulSet => "statefulset",
        }
    }
}

/// One step of the install, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum InstallStep {
    /// `helm upgrade --install` of a pinned chart.
    Helm(HelmRelease),
    /// Wait until these CRDs (installed by a chart) are Established.
    WaitCrds {
        /// Owning component.
        component: Component,
        /// CRD names, e.g. `installations.operator.tigera.io`.
        crds: Vec<String>,
    },
    /// Server-side apply of plain manifests (CRDs first, then the rest) with the component's
    /// field manager.
    Apply {
        /// Owning component.
        component: Component,
        /// Manifest files, relative to `cluster/`.
        files: Vec<String>,
    },
    /// Server-side apply of a Kustomize folder (`kubectl apply --server-side -k`), for overlays
    /// that need Kustomize to build (GitOps controllers do the same from Git).
    ApplyKustomize {
        /// Owning component.
        component: Component,
        /// Folder relative to `cluster/`, e.g. `apps/overlays/prod`.
        dir: String,
    },
    /// Wait until a workload has rolled out.
    WaitRollout {
        /// Owning component.
        component: Component,
        /// Workload kind.
        kind: WorkloadKind,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Create a Secret whose values are kept outside the GitOps tree (never in `cluster/`):
    /// `literals` are plain values, each of `generated` is a random value the runner creates
    /// once and keeps at [`secret_value_path`] under the plan's `secrets/` folder (mode 0600),
    /// so a re-run applies the same Secret.
    Secret {
        /// Owning component.
        component: Component,
        /// Namespace (created by an earlier step).
        namespace: String,
        /// Secret name.
        name: String,
        /// Keys with plain (non-secret) values, e.g. `admin-user: admin`.
        literals: std::collections::BTreeMap<String, String>,
        /// Keys whose values are generated and kept outside the GitOps tree.
        generated: Vec<String>,
    },
    /// Something a human (or a later automation) must do; the commands are given verbatim.
    Manual {
        /// Owning component.
        component: Component,
        /// What and why.
        description: String,
        /// Commands to run, each an argv.
        commands: Vec<Vec<String>>,
    },
}

impl InstallStep {
    /// The component this step belongs to.
    #[must_use]
    pub fn component(&self) -> Component {
        match self {
            Self::Helm(h) => h.component,
            Self::WaitCrds { component, .. }
            | Self::Secret { component, .. }
            | Self::Apply { component, .. }
            | Self::ApplyKustomize { component, .. }
            | Self::WaitRollout { component, .. }
            | Self::Manual { component, .. } => *component,
        }
    }

    /// Equivalent shell-free command lines (`helm`, `kubectl`), for executors without kube-rs
    /// and for the README. `cluster_dir` is where `cluster/` was written.
    #[must_use]
    pub fn commands(&self, cluster_dir: &str) -> Vec<Vec<String>> {
        let dir = cluster_dir.trim_end_matches('/');
        let s = |x: &str| x.to_owned();
        match self {
            Self::Helm(h) => vec![h.argv(cluster_dir)],
            Self::WaitCrds { crds, .. } => {
                let mut argv = vec![s("kubectl"), s("wait"), s("--for=condition=Established")];
                argv.extend(crds.iter().map(|c| format!("crd/{c}")));
                argv.push(s("--timeout=120s"));
                vec![argv]
            }
            Self::Apply { component, files } => files
                .iter()
                .map(|f| {
                    vec![
                        s("kubectl"),
                        s("apply"),
                        s("--server-side"),
                        format!("--field-manager={}", component.field_manager()),
                        s("-f"),
                        format!("{dir}/{f}"),
                    ]
                })
                .collect(),
            Self::ApplyKustomize { component, dir: d } => vec![vec![
                s("kubectl"),
                s("apply"),
                s("--server-side"),
                format!("--field-manager={}", component.field_manager()),
                s("-k"),
                format!("{dir}/{d}"),
            ]],
            Self::WaitRollout {
                kind,
                namespace,
                name,
                ..
            } => vec![vec![
                s("kubectl"),
                s("rollout"),
                s("status"),
                s("--namespace"),
                namespace.clone(),
                format!("{}/{name}", kind.kubectl_name()),
                s("--timeout=600s"),
            ]],
            Self::Secret {
                namespace,
                name,
                literals,
                generated,
                ..
            } => {
                let mut argv = vec![
                    s("kubectl"),
                    s("create"),
                    s("secret"),
                    s("generic"),
                    name.clone(),
                    s("--namespace"),
                    namespace.clone(),
                ];
                argv.extend(
                    literals
                        .iter()
                        .map(|(k, v)| format!("--from-literal={k}={v}")),
                );
                argv.extend(generated.iter().map(|k| {
                    format!(
                        "--from-file={k}={SECRETS_DIR}/{}",
                        secret_value_path(namespace, name, k)
                    )
                }));
                vec![argv]
            }
            Self::Manual { commands, .. } => commands.clone(),
        }
    }
}
