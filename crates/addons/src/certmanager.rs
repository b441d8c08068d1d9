//! cert-manager and its `ClusterIssuer` of type vault with Kubernetes auth.
//!
//! cert-manager requests a short-lived token for the `vault-issuer` ServiceAccount
//! (`serviceAccountRef`, audience `vault://vault-issuer`) and logs in to Vault's Kubernetes auth
//! role `cert-manager`, whose policy allows `pki_int/sign/<role>`, and whose `audience` is that
//! same `vault://vault-issuer`.
//!
//! How Vault checks the login (issue 14, defect 2): it sends the presented token to the API
//! server's TokenReview. A Vault on VMs has no ServiceAccount token of its own, and without a
//! `token_reviewer_jwt` it authenticates that call *with the presented token*, whose only
//! audience is `vault://vault-issuer`: the API server refuses it (401), so every login failed.
//! The fix: a dedicated reviewer ServiceAccount (`kube-system/vault-token-reviewer`, bound to
//! `system:auth-delegator`) whose token (API server audience) Vault is given as
//! `token_reviewer_jwt` (with `disable_local_ca_jwt`); Vault puts the role's `audience` into
//! `TokenReview.spec.audiences`, so the API server checks cert-manager's token for exactly the
//! audience it was minted for. `vault-issuer` itself needs no TokenReview right any more.

use serde_json::{Value, json};

use crate::model::{AddonsInput, VaultInput};
use crate::steps::{Component, HelmRelease, InstallStep, VaultKubernetesAuth, vault_secrets};
use crate::versions::CERT_MANAGER;
use crate::{ClusterFile, ComponentOutput, Error, vault, yaml};

/// cert-manager's namespace.
pub const NAMESPACE: &str = "cert-manager";
/// ServiceAccount whose tokens authenticate to Vault.
pub const ISSUER_SERVICE_ACCOUNT: &str = "vault-issuer";
/// Name of the ClusterIssuer.
pub const CLUSTER_ISSUER: &str = "vault-issuer";
/// Secret (in cert-manager's namespace) with Vault's TLS CA under key `ca.crt`.
pub const VAULT_CA_SECRET: &str = "vault-ca";
/// Chart values.
pub const VALUES_FILE: &str = "cert-manager/values.yaml";
/// ServiceAccount, RBAC and ClusterIssuer.
pub const ISSUER_FILE: &str = "cert-manager/vault-issuer.yaml";
/// Traefik's default certificate.
pub const DEFAULT_CERT_FILE: &str = "cert-manager/default-certificate.yaml";

/// The audience cert-manager puts in tokens for a ClusterIssuer (`vault://<issuer name>`).
#[must_use]
pub fn issuer_audience() -> String {
    format!("vault://{CLUSTER_ISSUER}")
}

/// Who logs in to Vault for the ClusterIssuer: its ServiceAccount, namespace and audience.
#[must_use]
pub fn vault_login() -> vault::KubernetesLogin {
    vault::KubernetesLogin {
        service_account: ISSUER_SERVICE_ACCOUNT.into(),
        namespace: NAMESPACE.into(),
        audience: issuer_audience(),
    }
}

/// Lifetime of the reviewer token Vault keeps (one year; re-running the add-on stage with a
/// changed Kubernetes auth config writes a fresh one).
pub const REVIEWER_TOKEN_SECONDS: i64 = 8760 * 3600;

/// The step configuring Vault's Kubernetes auth for the ClusterIssuer. Vault on VMs reaches
/// the API server on the VIP; Vault in the cluster at `kubernetes.default.svc` (a name on
/// kubeadm's API server certificate), and the runner reaches it through port-forwards to its
/// pods. Either way the reviewer token authenticates the TokenReview, so cert-manager's
/// tokens are checked for their own audience only.
#[must_use]
pub fn kubernetes_auth(input: &AddonsInput, v: &VaultInput) -> VaultKubernetesAuth {
    let (kubernetes_host, pods) = match v.placement {
        crate::model::VaultPlacement::Vms(_) => (
            format!(
                "https://{}:{}",
                input.network.api_vip, input.network.api_port
            ),
            None,
        ),
        crate::model::VaultPlacement::InCluster { .. } => (
            "https://kubernetes.default.svc".to_owned(),
            Some(vault::pods()),
        ),
    };
    VaultKubernetesAuth {
        component: Component::CertManager,
        vault_url: vault::server_url(input, v),
        pods,
        mount: "kubernetes".into(),
        kubernetes_host,
        reviewer_namespace: vault::REVIEWER_NAMESPACE.into(),
        reviewer_service_account: vault::REVIEWER_SERVICE_ACCOUNT.into(),
        reviewer_token_seconds: REVIEWER_TOKEN_SECONDS,
        role: vault::CERT_MANAGER_ROLE.into(),
        service_accounts: vec![ISSUER_SERVICE_ACCOUNT.into()],
        namespaces: vec![NAMESPACE.into()],
        audience: issuer_audience(),
        policies: vec![vault::CERT_MANAGER_ROLE.into()],
        ttl: "20m".into(),
    }
}

/// Chart values: CRDs installed (and kept on uninstall), metrics on.
#[must_use]
pub fn chart_values() -> Value {
    json!({
        "crds": { "enabled": true, "keep": true },
        "prometheus": { "enabled": true },
    })
}

/// The `cert-manager.io/v1` `ClusterIssuer`: Vault through the VIP, its CA from a Secret,
/// Kubernetes auth with the `vault-issuer` ServiceAccount (audience [`issuer_audience`]).
#[must_use]
pub fn cluster_issuer(input: &AddonsInput, v: &VaultInput) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": { "name": CLUSTER_ISSUER },
        "spec": {
            "vault": {
                "server": vault::server_url(input, v),
                "path": format!("{}/sign/{}", vault::INT_MOUNT, v.pki_role),
                "caBundleSecretRef": { "name": VAULT_CA_SECRET, "key": "ca.crt" },
                "auth": {
                    "kubernetes": {
                        "role": vault::CERT_MANAGER_ROLE,
                        "mountPath": "/v1/auth/kubernetes",
                        "serviceAccountRef": { "name": ISSUER_SERVICE_ACCOUNT },
                    },
                },
            },
        },
    })
}

/// The issuer's ServiceAccount, the Role/RoleBinding letting cert-manager mint its tokens, and
/// Vault's reviewer ServiceAccount bound to `system:auth-delegator` (its token goes to Vault's
/// `token_reviewer_jwt`; requested with TokenRequest, never stored in the GitOps tree).
#[must_use]
pub fn issuer_rbac() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": { "name": ISSUER_SERVICE_ACCOUNT, "namespace": NAMESPACE },
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": { "name": "vault-issuer-token", "namespace": NAMESPACE },
            "rules": [{
                "apiGroups": [""],
                "resources": ["serviceaccounts/token"],
                "resourceNames": [ISSUER_SERVICE_ACCOUNT],
                "verbs": ["create"],
            }],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": { "name": "vault-issuer-token", "namespace": NAMESPACE },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vault-issuer-token" },
            "subjects": [{ "kind": "ServiceAccount", "name": "cert-manager", "namespace": NAMESPACE }],
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": vault::REVIEWER_SERVICE_ACCOUNT,
                "namespace": vault::REVIEWER_NAMESPACE,
            },
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": "vault-token-reviewer" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator" },
            "subjects": [{
                "kind": "ServiceAccount",
                "name": vault::REVIEWER_SERVICE_ACCOUNT,
                "namespace": vault::REVIEWER_NAMESPACE,
            }],
        }),
    ]
}

/// The wildcard certificate Traefik's default TLS store uses.
#[must_use]
pub fn default_certificate(input: &AddonsInput, secret: &str) -> Value {
    let d = &input.traefik.apps_domain;
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": { "name": "default-tls", "namespace": crate::traefik::NAMESPACE },
        "spec": {
            "secretName": secret,
            "dnsNames": [d, format!("*.{d}")],
            "duration": "2160h",
            "renewBefore": "720h",
            "issuerRef": { "group": "cert-manager.io", "kind": "ClusterIssuer", "name": CLUSTER_ISSUER },
        },
    })
}

/// Files and steps for cert-manager.
pub(crate) fn render(input: &AddonsInput, v: &VaultInput) -> Result<ComponentOutput, Error> {
    let c = Component::CertManager;
    let mut docs = issuer_rbac();
    docs.push(cluster_issuer(input, v));
    let mut files = vec![
        ClusterFile::new(VALUES_FILE, yaml::file(VALUES_FILE, &[chart_values()])?),
        ClusterFile::new(ISSUER_FILE, yaml::file(ISSUER_FILE, &docs)?),
    ];
    let mut resources = vec![ISSUER_FILE.to_owned()];
    if let Some(secret) = &input.traefik.default_certificate_secret {
        files.push(ClusterFile::new(
            DEFAULT_CERT_FILE,
            yaml::file(DEFAULT_CERT_FILE, &[default_certificate(input, secret)])?,
        ));
        resources.push(DEFAULT_CERT_FILE.to_owned());
    }
    let helm = HelmRelease {
        component: c,
        release: "cert-manager".into(),
        namespace: NAMESPACE.into(),
        chart: CERT_MANAGER,
        values_file: VALUES_FILE.into(),
    };
    let mut steps = vec![
        InstallStep::Helm(helm.clone()),
        InstallStep::WaitCrds {
            component: c,
            crds: vec![
                "certificates.cert-manager.io".into(),
                "clusterissuers.cert-manager.io".into(),
            ],
        },
        // Vault's TLS CA, as the configure stage keeps it (`TlsBundle::write_dir`).
        InstallStep::Secret {
            component: c,
            namespace: NAMESPACE.into(),
            name: VAULT_CA_SECRET.into(),
            literals: std::collections::BTreeMap::new(),
            generated: vec![],
            from_files: [("ca.crt".to_owned(), vault_secrets::CA_CERT.to_owned())].into(),
        },
        InstallStep::Apply {
            component: c,
            files: resources.clone(),
        },
    ];
    steps.push(InstallStep::VaultKubernetesAuth(kubernetes_auth(input, v)));
    Ok(ComponentOutput {
        component: c,
        files,
        helm: vec![helm],
        resources,
        steps,
    })
}
