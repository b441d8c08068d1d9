//! Vault (OpenBao on VMs) with integrated raft storage, on three VMs or in the cluster, and the
//! PKI bootstrap.
//!
//! With VM placement nothing is rendered into the cluster: each Vault VM's host plan (OpenBao's
//! package, `/etc/openbao/openbao.hcl` from [`vm_config`]'s model, TLS from the plan's CA,
//! the unit and the raft snapshot timer) comes from `hakube_vault::host`, composed by
//! `hakube-plan`, and the init/unseal/PKI bootstrap is done by the `configure` stage through
//! `hakube_vault::bootstrap`; clients reach Vault through the load balancers on the VIP
//! ([`server_url`]). In-cluster placement renders values for the hashicorp/vault chart in HA
//! raft mode.

use hakube_host_state::shell_join;
use serde_json::{Value, json};

use crate::model::{AddonsInput, Host, VaultInput, VaultPlacement};
use crate::steps::{Component, HelmRelease, InstallStep, VaultBootstrap, VaultPods};
use crate::versions::VAULT;
use crate::{ClusterFile, ComponentOutput, Error, yaml};

/// OpenBao's config file on a VM.
pub const VM_CONFIG_PATH: &str = hakube_vault::config::CONFIG_PATH;
/// Raft data directory on a VM.
pub const VM_DATA_DIR: &str = hakube_vault::config::DATA_DIR;
/// TLS directory on a VM (`tls.crt`, `tls.key`, `ca.crt`).
pub const VM_TLS_DIR: &str = hakube_vault::config::TLS_DIR;
/// Vault's API port (on every node and on the VIP).
pub const API_PORT: u16 = hakube_vault::config::API_PORT;
/// Namespace of the ServiceAccount whose token Vault uses for TokenReview.
pub const REVIEWER_NAMESPACE: &str = "kube-system";
/// The ServiceAccount whose token Vault uses for TokenReview (bound to
/// `system:auth-delegator`).
pub const REVIEWER_SERVICE_ACCOUNT: &str = "vault-token-reviewer";
/// Namespace of in-cluster Vault.
pub const NAMESPACE: &str = "vault";
/// Chart values (in-cluster placement).
pub const VALUES_FILE: &str = "vault/values.yaml";
/// The Namespace of in-cluster Vault (created before its TLS Secret).
pub const NAMESPACE_FILE: &str = "vault/namespace.yaml";
/// The PKI bootstrap runbook.
pub const PKI_RUNBOOK: &str = "vault/PKI-BOOTSTRAP.md";
/// Vault mount of the root CA.
pub const ROOT_MOUNT: &str = "pki";
/// Vault mount of the intermediate CA.
pub const INT_MOUNT: &str = "pki_int";
/// Vault policy and Kubernetes auth role used by cert-manager.
pub const CERT_MANAGER_ROLE: &str = "cert-manager";

/// The URL cert-manager (and operators, and the PKI's issuing/CRL URLs) use to reach Vault:
/// with VM placement the VIP, where the load balancers front the three nodes' API (health
/// checked through `/v1/sys/health`), so no client names a single node.
#[must_use]
pub fn server_url(input: &AddonsInput, v: &VaultInput) -> String {
    if let Some(url) = &v.server_url {
        return url.clone();
    }
    match &v.placement {
        VaultPlacement::Vms(_) => format!("https://{}:{API_PORT}", input.network.api_vip),
        VaultPlacement::InCluster { .. } => format!("https://vault.{NAMESPACE}.svc:8200"),
    }
}

/// The chart's release name (its StatefulSet, Services and pods are named after it).
pub const RELEASE: &str = "vault";
/// Replicas of in-cluster Vault (raft quorum survives one loss).
pub const REPLICAS: usize = 3;

/// In-cluster Vault's pods, as the chart's StatefulSet names them (`vault-0` ...).
#[must_use]
pub fn pods() -> VaultPods {
    VaultPods {
        namespace: NAMESPACE.into(),
        pods: (0..REPLICAS).map(|i| format!("{RELEASE}-{i}")).collect(),
        port: API_PORT,
    }
}

/// The DNS names in-cluster Vault's certificate must cover: the Services clients use
/// (`vault`, `vault-active`), each pod under the chart's headless Service `vault-internal`
/// (the raft `retry_join` addresses), in short, namespace and `svc` forms. 127.0.0.1 is on it
/// too (`hakube_vault::certs::TlsSpec::sans`): port-forwards end there.
#[must_use]
pub fn in_cluster_tls_names() -> Vec<String> {
    let mut names = Vec::new();
    for base in [RELEASE.to_owned(), format!("{RELEASE}-active")] {
        names.push(format!("{base}.{NAMESPACE}"));
        names.push(format!("{base}.{NAMESPACE}.svc"));
    }
    for p in pods().pods {
        names.push(format!("{p}.{RELEASE}-internal"));
        names.push(format!("{p}.{RELEASE}-internal.{NAMESPACE}.svc"));
    }
    names
}

/// The raft cluster of the Vault VMs, as `hakube-vault` models it.
#[must_use]
pub fn cluster_spec(input: &AddonsInput, nodes: &[Host]) -> hakube_vault::config::ClusterSpec {
    hakube_vault::config::ClusterSpec {
        name: input.cluster_name.clone(),
        nodes: nodes
            .iter()
            .map(|n| hakube_vault::config::Node::new(n.name.clone(), n.address.into()))
            .collect(),
    }
}

/// OpenBao's server config for one VM (`me`) among `nodes`.
pub fn vm_config(input: &AddonsInput, nodes: &[Host], me: &Host) -> Result<String, Error> {
    let spec = cluster_spec(input, nodes);
    hakube_vault::config::ServerConfig::new(&spec, &me.name)
        .map(|c| c.to_string())
        .map_err(|e| Error::InvalidInput {
            field: "vault.placement".into(),
            reason: e.to_string(),
        })
}

/// hashicorp/vault chart values: HA with integrated raft, 3 replicas, TLS from Secret
/// `vault-tls` (keys `tls.crt`, `tls.key`, `ca.crt`), no injector.
#[must_use]
pub fn chart_values(input: &AddonsInput, storage_class: &str) -> Value {
    let tls = "/vault/userconfig/vault-tls";
    let mut raft = format!(
        "ui = true\ncluster_name = \"{}\"\n\nlistener \"tcp\" {{\n  address         = \"[::]:8200\"\n  cluster_address = \"[::]:8201\"\n  tls_cert_file   = \"{tls}/tls.crt\"\n  tls_key_file    = \"{tls}/tls.key\"\n  tls_min_version = \"tls12\"\n}}\n\nstorage \"raft\" {{\n  path = \"/vault/data\"\n",
        input.cluster_name
    );
    for i in 0..3 {
        raft.push_str(&format!(
            "\n  retry_join {{\n    leader_api_addr     = \"https://vault-{i}.vault-internal:8200\"\n    leader_ca_cert_file = \"{tls}/ca.crt\"\n  }}\n"
        ));
    }
    raft.push_str("}\n\nservice_registration \"kubernetes\" {}\n");
    json!({
        "global": { "enabled": true, "tlsDisable": false },
        "injector": { "enabled": false },
        "ui": { "enabled": true },
        "server": {
            // Pods are replaced by hand (one at a time, each unsealed before the next), never
            // by a rollout. Also what lets `helm --wait` return while the new pods are still
            // sealed: helm 3 skips the ready check of a StatefulSet that is not
            // RollingUpdate (helm v3.19 `pkg/kube/ready.go`, `statefulSetReady`); the runner's
            // VaultBootstrap step unseals them next.
            "updateStrategyType": "OnDelete",
            "extraEnvironmentVars": { "VAULT_CACERT": format!("{tls}/ca.crt") },
            "volumes": [{ "name": "vault-tls", "secret": { "secretName": "vault-tls" } }],
            "volumeMounts": [{ "name": "vault-tls", "mountPath": tls, "readOnly": true }],
            "dataStorage": { "enabled": true, "storageClass": storage_class, "size": "10Gi" },
            "ha": {
                "enabled": true,
                "replicas": 3,
                "raft": { "enabled": true, "setNodeId": true, "config": raft },
            },
        },
    })
}

/// Who logs in to Vault through Kubernetes auth (cert-manager's issuer ServiceAccount): given
/// by the caller, so this module knows nothing of cert-manager (`certmanager` depends on
/// `vault`, never the other way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesLogin {
    /// The ServiceAccount whose tokens log in.
    pub service_account: String,
    /// Its namespace.
    pub namespace: String,
    /// The audience of its tokens (`vault://<issuer>`).
    pub audience: String,
}

/// One step of the PKI bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiStep {
    /// What the step does.
    pub description: String,
    /// The command (run with `VAULT_ADDR`, `VAULT_CACERT` and a root/admin `VAULT_TOKEN` set).
    pub argv: Vec<String>,
    /// Where standard output goes, when it must be kept (a CSR or certificate).
    pub stdout_to: Option<String>,
    /// File fed on standard input (`-` arguments), if any.
    pub stdin_from: Option<String>,
}

/// The policy allowing cert-manager to sign with the role (the same text hakube-vault's
/// bootstrap writes).
#[must_use]
pub fn cert_manager_policy(v: &VaultInput) -> String {
    hakube_vault::config::signer_policy(INT_MOUNT, &v.pki_role)
}

/// The PKI bootstrap: root CA, intermediate signed by it, a role, a policy, Kubernetes auth
/// and a role for cert-manager's `vault-issuer` ServiceAccount. Run once after the cluster is
/// initialised and unsealed. `login` is who may log in through Kubernetes auth.
#[must_use]
pub fn pki_steps(input: &AddonsInput, v: &VaultInput, login: &KubernetesLogin) -> Vec<PkiStep> {
    let s = |x: &str| x.to_owned();
    let step = |d: &str, argv: Vec<String>| PkiStep {
        description: d.into(),
        argv,
        stdout_to: None,
        stdin_from: None,
    };
    let url = server_url(input, v);
    let org = &v.organisation;
    let kube_host = match v.placement {
        VaultPlacement::Vms(_) => {
            format!(
                "https://{}:{}",
                input.network.api_vip, input.network.api_port
            )
        }
        VaultPlacement::InCluster { .. } => s("https://kubernetes.default.svc"),
    };
    let mut kube_config = vec![
        s("vault"),
        s("write"),
        s("auth/kubernetes/config"),
        format!("kubernetes_host={kube_host}"),
    ];
    // Vault outside the cluster has no token of its own: without a reviewer JWT it would
    // authenticate the TokenReview with the presented token, whose only audience is
    // `vault://vault-issuer`, and the API server refuses it. The reviewer's token (API server
    // audience) authenticates the call; the role's `audience` is what TokenReview checks the
    // presented token against. In the cluster the same setup is used, so both placements log
    // in the same way (and Vault's pods need no TokenReview right of their own).
    kube_config.push(s("kubernetes_ca_cert=@kubernetes-ca.crt"));
    kube_config.push(s("token_reviewer_jwt=@reviewer.jwt"));
    kube_config.push(s("disable_local_ca_jwt=true"));
    let mut steps = vec![
        step(
            "Enable the root PKI mount",
            vec![
                s("vault"),
                s("secrets"),
                s("enable"),
                format!("-path={ROOT_MOUNT}"),
                s("pki"),
            ],
        ),
        step(
            "Root CA lifetime: 10 years",
            vec![
                s("vault"),
                s("secrets"),
                s("tune"),
                s("-max-lease-ttl=87600h"),
                s(ROOT_MOUNT),
            ],
        ),
        PkiStep {
            stdout_to: Some(s("root-ca.crt")),
            ..step(
                "Generate the root CA (key stays in Vault)",
                vec![
                    s("vault"),
                    s("write"),
                    s("-field=certificate"),
                    format!("{ROOT_MOUNT}/root/generate/internal"),
                    format!("common_name={org} Root CA"),
                    format!("organization={org}"),
                    s("ttl=87600h"),
                ],
            )
        },
        step(
            "Issuing and CRL URLs of the root",
            vec![
                s("vault"),
                s("write"),
                format!("{ROOT_MOUNT}/config/urls"),
                format!("issuing_certificates={url}/v1/{ROOT_MOUNT}/ca"),
                format!("crl_distribution_points={url}/v1/{ROOT_MOUNT}/crl"),
            ],
        ),
        step(
            "Enable the intermediate PKI mount",
            vec![
                s("vault"),
                s("secrets"),
                s("enable"),
                format!("-path={INT_MOUNT}"),
                s("pki"),
            ],
        ),
        step(
            "Intermediate lifetime: 5 years",
            vec![
                s("vault"),
                s("secrets"),
                s("tune"),
                s("-max-lease-ttl=43800h"),
                s(INT_MOUNT),
            ],
        ),
        PkiStep {
            stdout_to: Some(s("pki_int.csr")),
            ..step(
                "Generate the intermediate's CSR",
                vec![
                    s("vault"),
                    s("write"),
                    s("-field=csr"),
                    format!("{INT_MOUNT}/intermediate/generate/internal"),
                    format!("common_name={org} Intermediate CA"),
                    format!("organization={org}"),
                ],
            )
        },
        PkiStep {
            stdout_to: Some(s("pki_int.crt")),
            ..step(
                "Sign the intermediate with the root",
                vec![
                    s("vault"),
                    s("write"),
                    s("-field=certificate"),
                    format!("{ROOT_MOUNT}/root/sign-intermediate"),
                    s("csr=@pki_int.csr"),
                    s("format=pem_bundle"),
                    s("ttl=43800h"),
                ],
            )
        },
        step(
            "Install the signed intermediate",
            vec![
                s("vault"),
                s("write"),
                format!("{INT_MOUNT}/intermediate/set-signed"),
                s("certificate=@pki_int.crt"),
            ],
        ),
        step(
            "Issuing and CRL URLs of the intermediate",
            vec![
                s("vault"),
                s("write"),
                format!("{INT_MOUNT}/config/urls"),
                format!("issuing_certificates={url}/v1/{INT_MOUNT}/ca"),
                format!("crl_distribution_points={url}/v1/{INT_MOUNT}/crl"),
            ],
        ),
        step(
            "The issuing role",
            vec![
                s("vault"),
                s("write"),
                format!("{INT_MOUNT}/roles/{}", v.pki_role),
                format!("allowed_domains={}", v.allowed_domains.join(",")),
                s("allow_subdomains=true"),
                s("allow_wildcard_certificates=true"),
                // cert-manager's Certificates often carry only DNS names.
                s("require_cn=false"),
                s("max_ttl=2160h"),
            ],
        ),
        PkiStep {
            stdin_from: Some(s("cert-manager-policy.hcl")),
            ..step(
                "Policy allowing cert-manager to sign with the role (file contents below)",
                vec![
                    s("vault"),
                    s("policy"),
                    s("write"),
                    s(CERT_MANAGER_ROLE),
                    s("-"),
                ],
            )
        },
        step(
            "Enable Kubernetes auth",
            vec![s("vault"), s("auth"), s("enable"), s("kubernetes")],
        ),
        step(
            "Point Kubernetes auth at the API server (kubernetes-ca.crt: a copy of \
             /etc/kubernetes/pki/ca.crt from a master; reviewer.jwt: `kubectl create token \
             vault-token-reviewer -n kube-system --duration=8760h`)",
            kube_config,
        ),
        step(
            "Role for cert-manager's vault-issuer ServiceAccount",
            vec![
                s("vault"),
                s("write"),
                format!("auth/kubernetes/role/{CERT_MANAGER_ROLE}"),
                format!("bound_service_account_names={}", login.service_account),
                format!("bound_service_account_namespaces={}", login.namespace),
                format!("audience={}", login.audience),
                format!("policies={CERT_MANAGER_ROLE}"),
                s("ttl=20m"),
            ],
        ),
    ];
    if matches!(v.placement, VaultPlacement::Vms(_)) {
        // OpenBao's CLI on the VMs.
        for p in &mut steps {
            if let Some(a) = p.argv.first_mut() {
                *a = s("bao");
            }
        }
    }
    steps
}

fn runbook(input: &AddonsInput, v: &VaultInput, login: &KubernetesLogin) -> String {
    let mut s = format!(
        "# Vault PKI bootstrap\n\nRendered by hakube-addons. hakube does all of this \
         (idempotently, through hakube-vault): with Vault on VMs the configure stage does the \
         PKI and the add-on stage the Kubernetes auth; with Vault in the cluster the add-on \
         stage does init, unseal, the PKI and the Kubernetes auth through port-forwards to the \
         pods. By hand: run once, after Vault is initialised and every node unsealed, with \
         `VAULT_ADDR={}` (`BAO_ADDR` for OpenBao; from outside the cluster a `kubectl \
         port-forward` to a pod and `https://127.0.0.1:8200`), `VAULT_CACERT` pointing at \
         Vault's TLS CA and a privileged `VAULT_TOKEN`.\n\n",
        server_url(input, v)
    );
    for (i, p) in pki_steps(input, v, login).iter().enumerate() {
        let mut cmd = shell_join(&p.argv);
        if let Some(f) = &p.stdin_from {
            cmd.push_str(&format!(" < {f}"));
        }
        if let Some(f) = &p.stdout_to {
            cmd.push_str(&format!(" > {f}"));
        }
        s.push_str(&format!(
            "{}. {}\n\n   ```sh\n   {cmd}\n   ```\n\n",
            i + 1,
            p.description
        ));
    }
    s.push_str("`cert-manager-policy.hcl`:\n\n```hcl\n");
    s.push_str(&cert_manager_policy(v));
    s.push_str("```\n");
    s
}

/// In-cluster Vault's init, unseal and PKI step.
#[must_use]
pub fn bootstrap_step(input: &AddonsInput, v: &VaultInput) -> VaultBootstrap {
    VaultBootstrap {
        component: Component::Vault,
        pods: pods(),
        organisation: v.organisation.clone(),
        urls_base: server_url(input, v),
        root_mount: ROOT_MOUNT.into(),
        int_mount: INT_MOUNT.into(),
        pki_role: v.pki_role.clone(),
        allowed_domains: v.allowed_domains.clone(),
        signer_policy: CERT_MANAGER_ROLE.into(),
    }
}

/// Files and steps for Vault (the runbook with either placement; chart values with in-cluster
/// placement). The VMs' host plans are hakube-plan's (`hakube_vault::host`).
pub(crate) fn render(
    input: &AddonsInput,
    v: &VaultInput,
    login: &KubernetesLogin,
) -> Result<Option<ComponentOutput>, Error> {
    let mut files = vec![ClusterFile::new(PKI_RUNBOOK, runbook(input, v, login))];
    let mut helm = Vec::new();
    let mut steps = Vec::new();
    let mut resources = Vec::new();
    match &v.placement {
        // The VMs' host plans are hakube-plan's (hakube_vault::host).
        VaultPlacement::Vms(_) => {}
        VaultPlacement::InCluster { storage_class } => {
            files.push(ClusterFile::new(
                VALUES_FILE,
                yaml::file(VALUES_FILE, &[chart_values(input, storage_class)])?,
            ));
            let ns = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": { "name": NAMESPACE, "labels": { "app.kubernetes.io/managed-by": "hakube" } },
            });
            files.push(ClusterFile::new(
                NAMESPACE_FILE,
                yaml::file(NAMESPACE_FILE, &[ns])?,
            ));
            resources.push(NAMESPACE_FILE.to_owned());
            steps.push(InstallStep::Apply {
                component: Component::Vault,
                files: resources.clone(),
            });
            // The TLS material is kept with the plan's secrets, in the layout of
            // `hakube_vault::certs::TlsBundle::write_dir` (server certificate as `vault.crt`).
            steps.push(InstallStep::Secret {
                component: Component::Vault,
                namespace: NAMESPACE.into(),
                name: "vault-tls".into(),
                literals: std::collections::BTreeMap::new(),
                generated: vec![],
                from_files: [
                    ("ca.crt", "vault/tls/ca.crt"),
                    ("tls.crt", "vault/tls/vault.crt"),
                    ("tls.key", "vault/tls/vault.key"),
                ]
                .into_iter()
                .map(|(k, p)| (k.to_owned(), p.to_owned()))
                .collect(),
            });
            let r = HelmRelease {
                component: Component::Vault,
                release: "vault".into(),
                namespace: NAMESPACE.into(),
                chart: VAULT,
                values_file: VALUES_FILE.into(),
            };
            steps.push(InstallStep::Helm(r.clone()));
            helm.push(r);
            steps.push(InstallStep::VaultBootstrap(bootstrap_step(input, v)));
        }
    }
    // On VMs the configure stage (hakube_vault::bootstrap) does init, unseal and the PKI; in
    // the cluster the runner does the same through port-forwards (`VaultBootstrap`). The
    // Kubernetes auth comes with cert-manager, after the reviewer ServiceAccount exists
    // (certmanager::render).
    Ok(Some(ComponentOutput {
        component: Component::Vault,
        files,
        helm,
        resources,
        steps,
    }))
}
