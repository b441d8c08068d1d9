//! Install steps: pure data, written to the plan as `cluster/install-steps.json` and executed
//! in order by `run::Runner` (feature `apply`), or by hand with the equivalent
//! `kubectl`/`helm` command lines of [`InstallStep::commands`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::versions::Chart;

/// The components this crate puts in the install order, in bootstrap order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

    /// Every component, in bootstrap order.
    pub const ALL: [Self; 9] = [
        Self::Calico,
        Self::Nfs,
        Self::Traefik,
        Self::Monitoring,
        Self::Logging,
        Self::Vault,
        Self::CertManager,
        Self::EtcdBackup,
        Self::Apps,
    ];

    /// The component whose [`dir`](Self::dir) is `name`.
    #[must_use]
    pub fn from_dir(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.dir() == name)
    }

    /// The server-side apply field manager for this component (one per component).
    #[must_use]
    pub fn field_manager(self) -> String {
        format!("hakube-addons.{}", self.dir())
    }
}

/// A Helm release installed with `helm upgrade --install` at a pinned chart version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
            "-f".into(),
            format!("{}/{}", cluster_dir.trim_end_matches('/'), self.values_file),
            "--atomic".into(),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Vault's Kubernetes auth for cert-manager, configured by the runner through
/// `hakube_vault::bootstrap::configure_kubernetes_auth` once the reviewer ServiceAccount
/// exists: the API server's URL and CA, a token of the reviewer ServiceAccount (TokenRequest,
/// API server audience), and the role cert-manager logs in as. Vault is reached at `vault_url`
/// with the CA and root token the configure stage keeps under the plan's `secrets/vault/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultKubernetesAuth {
    /// Owning component.
    pub component: Component,
    /// Vault's URL (the VIP, fronted by the load balancers).
    pub vault_url: String,
    /// With Vault in the cluster, the runner reaches it through port-forwards to these pods
    /// instead of `vault_url` (which only resolves inside the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<VaultPods>,
    /// Auth mount (`kubernetes`).
    pub mount: String,
    /// The API server's URL as Vault reaches it (the VIP).
    pub kubernetes_host: String,
    /// Namespace of the reviewer ServiceAccount.
    pub reviewer_namespace: String,
    /// The reviewer ServiceAccount (bound to `system:auth-delegator`).
    pub reviewer_service_account: String,
    /// Lifetime asked for the reviewer's token, in seconds.
    pub reviewer_token_seconds: i64,
    /// Vault role cert-manager logs in as.
    pub role: String,
    /// ServiceAccounts allowed to log in.
    pub service_accounts: Vec<String>,
    /// Their namespaces.
    pub namespaces: Vec<String>,
    /// The audience the login tokens carry.
    pub audience: String,
    /// Policies the login gets.
    pub policies: Vec<String>,
    /// Token lifetime, e.g. `20m`.
    pub ttl: String,
}

/// The pods of in-cluster Vault's StatefulSet, which the runner reaches through the API
/// server's `pods/portforward` (what `kubectl port-forward` does): outside the cluster no
/// other path reaches a single pod, and init and unseal are per pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultPods {
    /// Namespace (`vault`).
    pub namespace: String,
    /// Pod names in raft order (`vault-0`, `vault-1`, `vault-2`): the first is initialised.
    pub pods: Vec<String>,
    /// Vault's API port in the pods (8200).
    pub port: u16,
}

/// In-cluster Vault's bootstrap, done by the runner through `hakube_vault::bootstrap::bootstrap`
/// (the same code the configure stage runs for Vault VMs) over port-forwards to the pods:
/// init the first pod once (the keys are kept under the plan's `secrets/vault/init.json`
/// before anything else happens), unseal every sealed pod (a fresh pod joins through its
/// `retry_join`), wait until all are raft voters, then the PKI (root, intermediate, the role
/// and policy cert-manager signs with). Re-runnable: a run after a pod restart only unseals it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultBootstrap {
    /// Owning component.
    pub component: Component,
    /// Where the pods are.
    pub pods: VaultPods,
    /// Organisation on the PKI's CAs.
    pub organisation: String,
    /// Base of the PKI's issuing and CRL URLs (the in-cluster Service's URL).
    pub urls_base: String,
    /// Mount of the root CA.
    pub root_mount: String,
    /// Mount of the intermediate CA.
    pub int_mount: String,
    /// The role cert-manager signs with.
    pub pki_role: String,
    /// The domains the role issues for.
    pub allowed_domains: Vec<String>,
    /// The ACL policy allowing `sign`/`issue` with the role.
    pub signer_policy: String,
}

/// Files of the plan's `secrets/` folder the runner reads for Vault (the configure stage's
/// layout, `hakube_vault::certs::TlsBundle::write_dir` and `hakube_vault::bootstrap::FileKeyStore`).
pub mod vault_secrets {
    /// Vault's TLS CA certificate (PEM), relative to the plan's `secrets/`.
    pub const CA_CERT: &str = "vault/tls/ca.crt";
    /// The init secrets (unseal keys, root token), relative to the plan's `secrets/`.
    pub const INIT: &str = "vault/init.json";
}

/// One step of the install, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// so a re-run applies the same Secret; each of `from_files` is the contents of a file
    /// under `secrets/` that an earlier stage wrote (Vault's CA).
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
        /// Keys whose values are files under the plan's `secrets/` folder (key -> path
        /// relative to it).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        from_files: BTreeMap<String, String>,
    },
    /// Init, unseal and the PKI of in-cluster Vault.
    VaultBootstrap(VaultBootstrap),
    /// Configure Vault's Kubernetes auth for cert-manager.
    VaultKubernetesAuth(VaultKubernetesAuth),
}

impl InstallStep {
    /// The component this step belongs to.
    #[must_use]
    pub fn component(&self) -> Component {
        match self {
            Self::Helm(h) => h.component,
            Self::VaultKubernetesAuth(v) => v.component,
            Self::VaultBootstrap(v) => v.component,
            Self::WaitCrds { component, .. }
            | Self::Secret { component, .. }
            | Self::Apply { component, .. }
            | Self::ApplyKustomize { component, .. }
            | Self::WaitRollout { component, .. } => *component,
        }
    }

    /// A one-line description (no secret: values of Secrets are never part of a step).
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Helm(h) => format!(
                "helm release {}/{} ({} {})",
                h.namespace, h.release, h.chart.name, h.chart.version
            ),
            Self::WaitCrds { crds, .. } => format!("wait for CRDs {}", crds.join(", ")),
            Self::Apply { files, .. } => format!("apply {}", files.join(", ")),
            Self::ApplyKustomize { dir, .. } => format!("apply kustomization {dir}"),
            Self::WaitRollout {
                kind,
                namespace,
                name,
                ..
            } => format!("wait for {} {namespace}/{name}", kind.kubectl_name()),
            Self::Secret {
                namespace, name, ..
            } => format!("secret {namespace}/{name}"),
            Self::VaultKubernetesAuth(v) => format!(
                "Vault Kubernetes auth (role {}, reviewer {}/{})",
                v.role, v.reviewer_namespace, v.reviewer_service_account
            ),
            Self::VaultBootstrap(v) => format!(
                "Vault init, unseal and PKI (pods {}/{})",
                v.pods.namespace,
                v.pods.pods.join(",")
            ),
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
                from_files,
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
                argv.extend(
                    from_files
                        .iter()
                        .map(|(k, p)| format!("--from-file={k}={SECRETS_DIR}/{p}")),
                );
                vec![argv]
            }
            Self::VaultKubernetesAuth(v) => {
                let host = &v.kubernetes_host;
                vec![
                    vec![
                        s("kubectl"),
                        s("create"),
                        s("token"),
                        v.reviewer_service_account.clone(),
                        s("--namespace"),
                        v.reviewer_namespace.clone(),
                        format!("--duration={}s", v.reviewer_token_seconds),
                    ],
                    vec![s("bao"), s("auth"), s("enable"), v.mount.clone()],
                    vec![
                        s("bao"),
                        s("write"),
                        format!("auth/{}/config", v.mount),
                        format!("kubernetes_host={host}"),
                        s("kubernetes_ca_cert=@kubernetes-ca.crt"),
                        s("token_reviewer_jwt=@reviewer.jwt"),
                        s("disable_local_ca_jwt=true"),
                    ],
                    vec![
                        s("bao"),
                        s("write"),
                        format!("auth/{}/role/{}", v.mount, v.role),
                        format!(
                            "bound_service_account_names={}",
                            v.service_accounts.join(",")
                        ),
                        format!(
                            "bound_service_account_namespaces={}",
                            v.namespaces.join(",")
                        ),
                        format!("audience={}", v.audience),
                        format!("token_policies={}", v.policies.join(",")),
                        format!("token_ttl={}", v.ttl),
                    ],
                ]
            }
            // By hand: a port-forward per pod, init on the first, unseal each (three key
            // shares), then the PKI commands of the runbook (`vault/PKI-BOOTSTRAP.md`).
            Self::VaultBootstrap(v) => {
                let forward = |pod: &str| {
                    vec![
                        s("kubectl"),
                        s("port-forward"),
                        s("--namespace"),
                        v.pods.namespace.clone(),
                        format!("pod/{pod}"),
                        format!("{0}:{0}", v.pods.port),
                    ]
                };
                let mut out = Vec::new();
                for (i, pod) in v.pods.pods.iter().enumerate() {
                    out.push(forward(pod));
                    if i == 0 {
                        out.push(vec![
                            s("bao"),
                            s("operator"),
                            s("init"),
                            s("-key-shares=5"),
                            s("-key-threshold=3"),
                        ]);
                    }
                    out.push(vec![s("bao"), s("operator"), s("unseal")]);
                }
                out
            }
        }
    }
}
