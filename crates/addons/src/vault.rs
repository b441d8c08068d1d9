//! Vault with integrated raft storage, on three VMs or in the cluster, and the PKI bootstrap.
//!
//! VM placement renders one `/etc/vault.d/vault.hcl` per host (the path the HashiCorp Debian
//! package's `vault.service` reads), with `storage "raft"` (`retry_join` for every peer),
//! `api_addr`, `cluster_addr` and a TLS listener. The TLS key pair and CA under
//! `/opt/vault/tls/` must be placed before start (a manual step). In-cluster placement renders
//! values for the hashicorp/vault chart in HA raft mode.

use serde_json::{Value, json};

use crate::model::{AddonsInput, Host, VaultInput, VaultPlacement};
use crate::steps::{Component, HelmRelease, InstallStep};
use crate::versions::VAULT;
use crate::{AddonsError, ClusterFile, ComponentOutput, HostFile, yaml};

/// Vault's config file on a VM.
pub const VM_CONFIG_PATH: &str = "/etc/vault.d/vault.hcl";
/// Raft data directory on a VM.
pub const VM_DATA_DIR: &str = "/opt/vault/data";
/// TLS directory on a VM (`tls.crt`, `tls.key`, `ca.crt`).
pub const VM_TLS_DIR: &str = "/opt/vault/tls";
/// Namespace of in-cluster Vault.
pub const NAMESPACE: &str = "vault";
/// Chart values (in-cluster placement).
pub const VALUES_FILE: &str = "vault/values.yaml";
/// The PKI bootstrap runbook.
pub const PKI_RUNBOOK: &str = "vault/PKI-BOOTSTRAP.md";
/// Vault mount of the root CA.
pub const ROOT_MOUNT: &str = "pki";
/// Vault mount of the intermediate CA.
pub const INT_MOUNT: &str = "pki_int";
/// Vault policy and Kubernetes auth role used by cert-manager.
pub const CERT_MANAGER_ROLE: &str = "cert-manager";

/// The URL cert-manager (and operators) use to reach Vault.
#[must_use]
pub fn server_url(v: &VaultInput) -> String {
    if let Some(url) = &v.server_url {
        return url.clone();
    }
    match &v.placement {
        VaultPlacement::Vms(nodes) => nodes
            .first()
            .map(|n| format!("https://{}:8200", n.address))
            .unwrap_or_default(),
        VaultPlacement::InCluster { .. } => format!("https://vault.{NAMESPACE}.svc:8200"),
    }
}

/// Vault's config for one VM (`me`) among `nodes`.
#[must_use]
pub fn vm_config(input: &AddonsInput, nodes: &[Host], me: &Host) -> String {
    let mut s = format!(
        "# Rendered by hakube-addons for {name}: change the input, not this file.\n\
         cluster_name  = \"{cluster}\"\n\
         ui            = true\n\
         disable_mlock = true\n\
         api_addr      = \"https://{addr}:8200\"\n\
         cluster_addr  = \"https://{addr}:8201\"\n\
         \n\
         listener \"tcp\" {{\n  \
           address         = \"0.0.0.0:8200\"\n  \
           cluster_address = \"0.0.0.0:8201\"\n  \
           tls_cert_file   = \"{tls}/tls.crt\"\n  \
           tls_key_file    = \"{tls}/tls.key\"\n  \
           tls_min_version = \"tls12\"\n\
         }}\n\
         \n\
         storage \"raft\" {{\n  \
           path    = \"{data}\"\n  \
           node_id = \"{name}\"\n",
        name = me.name,
        cluster = input.cluster_name,
        addr = me.address,
        tls = VM_TLS_DIR,
        data = VM_DATA_DIR,
    );
    for peer in nodes.iter().filter(|n| n.name != me.name) {
        s.push_str(&format!(
            "\n  retry_join {{\n    \
               leader_api_addr     = \"https://{}:8200\"\n    \
               leader_ca_cert_file = \"{VM_TLS_DIR}/ca.crt\"\n  \
             }}\n",
            peer.address
        ));
    }
    s.push_str(
        "}\n\ntelemetry {\n  prometheus_retention_time = \"30s\"\n  disable_hostname          = true\n}\n",
    );
    s
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

/// The policy allowing cert-manager to sign with the role.
#[must_use]
pub fn cert_manager_policy(v: &VaultInput) -> String {
    format!(
        "path \"{INT_MOUNT}/sign/{role}\" {{\n  capabilities = [\"create\", \"update\"]\n}}\n\npath \"{INT_MOUNT}/issue/{role}\" {{\n  capabilities = [\"create\"]\n}}\n",
        role = v.pki_role
    )
}

/// The PKI bootstrap: root CA, intermediate signed by it, a role, a policy, Kubernetes auth
/// and a role for cert-manager's `vault-issuer` ServiceAccount. Run once after the cluster is
/// initialised and unsealed.
#[must_use]
pub fn pki_steps(input: &AddonsInput, v: &VaultInput) -> Vec<PkiStep> {
    let s = |x: &str| x.to_owned();
    let step = |d: &str, argv: Vec<String>| PkiStep {
        description: d.into(),
        argv,
        stdout_to: None,
        stdin_from: None,
    };
    let url = server_url(v);
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
    if matches!(v.placement, VaultPlacement::Vms(_)) {
        // Vault outside the cluster: trust the cluster CA; the client's own JWT serves as the
        // TokenReview credential (the vault-issuer SA is bound to system:auth-delegator).
        kube_config.push(s("kubernetes_ca_cert=@kubernetes-ca.crt"));
    }
    vec![
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
            if matches!(v.placement, VaultPlacement::Vms(_)) {
                "Point Kubernetes auth at the API server (kubernetes-ca.crt: a copy of \
                 /etc/kubernetes/pki/ca.crt from a master)"
            } else {
                "Point Kubernetes auth at the API server"
            },
            kube_config,
        ),
        step(
            "Role for cert-manager's vault-issuer ServiceAccount",
            vec![
                s("vault"),
                s("write"),
                format!("auth/kubernetes/role/{CERT_MANAGER_ROLE}"),
                format!(
                    "bound_service_account_names={}",
                    crate::certmanager::ISSUER_SERVICE_ACCOUNT
                ),
                format!(
                    "bound_service_account_namespaces={}",
                    crate::certmanager::NAMESPACE
                ),
                format!("audience={}", crate::certmanager::issuer_audience()),
                format!("policies={CERT_MANAGER_ROLE}"),
                s("ttl=20m"),
            ],
        ),
    ]
}

fn runbook(input: &AddonsInput, v: &VaultInput) -> String {
    let mut s = format!(
        "# Vault PKI bootstrap\n\nRendered by hakube-addons. Run once, after Vault is \
         initialised (`vault operator init`) and every node unsealed, with `VAULT_ADDR={}`, \
         `VAULT_CACERT` pointing at Vault's TLS CA and a privileged `VAULT_TOKEN`.\n\n",
        server_url(v)
    );
    for (i, p) in pki_steps(input, v).iter().enumerate() {
        let mut cmd = p
            .argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ");
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

/// Quote an argument for display in a POSIX shell (single quotes when needed).
pub(crate) fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        a.to_owned()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

fn manual(description: String, commands: Vec<Vec<String>>) -> InstallStep {
    InstallStep::Manual {
        component: Component::Vault,
        description,
        commands,
    }
}

/// Files, host files and steps for Vault. The component output is `None` for VM placement
/// (nothing in the cluster) except for steps, which are returned in it anyway.
pub(crate) fn render(
    input: &AddonsInput,
    v: &VaultInput,
) -> Result<(Option<ComponentOutput>, Vec<HostFile>), AddonsError> {
    let mut files = vec![ClusterFile::new(PKI_RUNBOOK, runbook(input, v))];
    let mut helm = Vec::new();
    let mut steps = Vec::new();
    let mut host_files = Vec::new();
    let s = |x: &str| x.to_owned();
    match &v.placement {
        VaultPlacement::Vms(nodes) => {
            for me in nodes {
                host_files.push(HostFile {
                    host: me.name.clone(),
                    path: VM_CONFIG_PATH.into(),
                    mode: 0o640,
                    owner: "vault".into(),
                    group: "vault".into(),
                    contents: vm_config(input, nodes, me),
                });
            }
            steps.push(manual(
                format!(
                    "On every Vault VM: install TLS material in {VM_TLS_DIR} (tls.crt with the \
                     node's IP SAN, tls.key, ca.crt), then `systemctl enable --now vault`."
                ),
                vec![vec![s("systemctl"), s("enable"), s("--now"), s("vault")]],
            ));
        }
        VaultPlacement::InCluster { storage_class } => {
            files.push(ClusterFile::new(
                VALUES_FILE,
                yaml::file(VALUES_FILE, &[chart_values(input, storage_class)])?,
            ));
            steps.push(manual(
                "Create Secret vault-tls (tls.crt, tls.key, ca.crt; SANs vault, \
                 vault.vault.svc, *.vault-internal) in namespace vault."
                    .into(),
                vec![vec![
                    s("kubectl"),
                    s("create"),
                    s("secret"),
                    s("generic"),
                    s("vault-tls"),
                    s("--namespace"),
                    s(NAMESPACE),
                    s("--from-file=tls.crt"),
                    s("--from-file=tls.key"),
                    s("--from-file=ca.crt"),
                ]],
            ));
            let r = HelmRelease {
                component: Component::Vault,
                release: "vault".into(),
                namespace: NAMESPACE.into(),
                chart: VAULT,
                values_file: VALUES_FILE.into(),
            };
            steps.push(InstallStep::Helm(r.clone()));
            helm.push(r);
        }
    }
    steps.push(manual(
        "Initialise Vault once (keep the unseal keys and root token offline), then unseal \
         every node (3 of 5 key shares each)."
            .into(),
        vec![
            vec![
                s("vault"),
                s("operator"),
                s("init"),
                s("-key-shares=5"),
                s("-key-threshold=3"),
            ],
            vec![s("vault"), s("operator"), s("unseal")],
        ],
    ));
    for p in pki_steps(input, v) {
        let mut d = p.description.clone();
        if let Some(f) = &p.stdout_to {
            d.push_str(&format!(" (save standard output to {f})"));
        }
        if let Some(f) = &p.stdin_from {
            d.push_str(&format!(" (standard input from {f}, see {PKI_RUNBOOK})"));
        }
        steps.push(manual(d, vec![p.argv]));
    }
    Ok((
        Some(ComponentOutput {
            component: Component::Vault,
            files,
            helm,
            resources: vec![],
            steps,
        }),
        host_files,
    ))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_quote_quotes_only_when_needed() {
        assert_eq!(shell_quote("pki_int/sign/web"), "pki_int/sign/web");
        assert_eq!(
            shell_quote("common_name=x Root CA"),
            "'common_name=x Root CA'"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("Host(`a`)"), "'Host(`a`)'");
    }
}
