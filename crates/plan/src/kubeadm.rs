//! kubeadm configs per node under `hosts/<vm>/etc/kubernetes/kubeadm/`, and the cluster's
//! bootstrap secrets kept in the plan (`secrets/kubeadm.env`, 0600, beside the GitOps tree
//! `cluster/` and never inside it) so re-planning gives the same files.

use hakube_host_state::Secret;
use hakube_kubeadm::config::TaintEffect;
use hakube_kubeadm::prep::{PrepInput, node_prep_plan};
use hakube_kubeadm::{
    BootstrapToken, CertificateKey, ClusterInput, ClusterSecrets, KubernetesVersion, MasterInput,
    WorkerInput,
};
use hakube_topology::{Cluster, RoleKind};

use crate::{Error, PlanTree};

/// Where the secrets live inside the plan (the `bootstrap` example reads the same file):
/// under `secrets/` (directory 0700, file 0600), outside `cluster/`, which is meant for a Git
/// repository.
pub const SECRETS_PATH: &str = "secrets/kubeadm.env";

/// The label every worker carries with its group name (Traefik and the GitOps overlays select on it).
pub const WORKER_GROUP_LABEL: &str = "hakube.io/worker-group";

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Component {
        component: "kubeadm",
        source: e.into(),
    }
}

/// The plan's secrets: kubeadm's bootstrap token and certificate key, the Grafana admin
/// password, and the Vault VMs' TLS bundle. `Debug` shows none of them.
#[derive(Clone)]
pub struct PlanSecrets {
    /// The kubeadm secrets (token, certificate key).
    pub kubeadm: ClusterSecrets,
    /// Grafana's admin password (32 letters and digits), generated once; the plan also keeps
    /// it where the add-on runner reads the Grafana admin Secret's generated key
    /// (`secrets/monitoring/<secret>/admin-password`). Never in `cluster/`.
    pub grafana_admin_password: Secret,
    /// The Vault VMs' CA and server certificates kept from an earlier plan
    /// (`TlsBundle::read_dir` of [`crate::VAULT_TLS_DIR`]); reconciled by [`crate::render`],
    /// which issues what is missing (a new CA when `None`).
    pub vault_tls: Option<hakube_vault::certs::TlsBundle>,
}

/// 32 letters and digits from the thread-local CSPRNG.
fn random_password() -> Secret {
    use rand::RngExt as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    Secret::new(
        (0..32)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect::<String>(),
    )
}

impl std::fmt::Debug for PlanSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanSecrets(***)")
    }
}

impl PlanSecrets {
    /// Fresh random secrets.
    #[must_use]
    pub fn generate() -> Self {
        Self {
            kubeadm: ClusterSecrets::generate(),
            grafana_admin_password: random_password(),
            vault_tls: None,
        }
    }

    /// Parses the `secrets.env` text (`TOKEN=...`, `CERTIFICATE_KEY=...`,
    /// `GRAFANA_ADMIN_PASSWORD=...`; a text without the last, from an older plan, gets a fresh
    /// password).
    ///
    /// # Errors
    /// [`Error::Component`] naming the missing or malformed key (never its value).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
                .ok_or_else(|| err(format!("{SECRETS_PATH}: no {key}= line")))
        };
        let token: BootstrapToken = get("TOKEN")?
            .parse()
            .map_err(|_| err(format!("{SECRETS_PATH}: TOKEN is not a bootstrap token")))?;
        let certificate_key: CertificateKey = get("CERTIFICATE_KEY")?.parse().map_err(|_| {
            err(format!(
                "{SECRETS_PATH}: CERTIFICATE_KEY is not 64 hex digits"
            ))
        })?;
        let grafana_admin_password = match get("GRAFANA_ADMIN_PASSWORD") {
            Ok(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Secret::new(p)
            }
            Ok(_) => {
                return Err(err(format!(
                    "{SECRETS_PATH}: GRAFANA_ADMIN_PASSWORD is not letters and digits"
                )));
            }
            Err(_) => random_password(),
        };
        Ok(Self {
            kubeadm: ClusterSecrets {
                token,
                certificate_key,
                ca_cert_hash: None,
            },
            grafana_admin_password,
            vault_tls: None,
        })
    }

    /// The secrets kept in a plan written to `dir`: [`SECRETS_PATH`] (fresh kubeadm secrets
    /// when it is absent) and the Vault TLS bundle under [`crate::VAULT_TLS_DIR`] (`None`
    /// when absent). Rendering with them gives the same tree again.
    ///
    /// # Errors
    /// [`Error::Io`] when a kept file cannot be read, [`Error::Component`] when one is
    /// malformed (naming the file, never a value).
    pub fn load(dir: &std::path::Path) -> Result<Self, Error> {
        let path = dir.join(SECRETS_PATH);
        let mut s = match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::generate(),
            Err(source) => return Err(Error::Io { path, source }),
        };
        s.vault_tls = hakube_vault::certs::TlsBundle::read_dir(&dir.join(crate::VAULT_TLS_DIR))
            .map_err(|e| Error::Component {
                component: "vault",
                source: e.into(),
            })?;
        Ok(s)
    }

    /// The `secrets.env` text.
    #[must_use]
    pub fn to_env(&self) -> String {
        format!(
            "TOKEN={}\nCERTIFICATE_KEY={}\nGRAFANA_ADMIN_PASSWORD={}\n",
            self.kubeadm.token.expose(),
            self.kubeadm.certificate_key.expose(),
            self.grafana_admin_password.expose()
        )
    }
}

/// The kubeadm crate's input for a placed cluster.
///
/// # Errors
/// [`Error::Component`] (`kubeadm`) when the cluster's Kubernetes version is not
/// `MAJOR.MINOR.PATCH` of Kubernetes 1 (the topology accepts it with or without the `v`).
pub fn kubeadm_input(cluster: &Cluster) -> Result<ClusterInput, Error> {
    let t = &cluster.topology;
    let k = &t.kubernetes;
    let version: KubernetesVersion =
        format!("v{}", cluster.kubernetes_version.trim_start_matches('v'))
            .parse()
            .map_err(err)?;
    let mut input = ClusterInput::new(
        t.cluster.name.clone(),
        t.network.vip,
        version,
        k.pod_cidr.into(),
    );
    input.service_subnet = k.service_cidr.into();
    input.dns_domain = k.dns_domain.clone();
    for vm in cluster.vms_with_role(RoleKind::ControlPlane) {
        input
            .masters
            .push(MasterInput::new(vm.name.clone(), vm.address.into()));
    }
    for vm in cluster.vms_with_role(RoleKind::Worker) {
        let mut w = WorkerInput::new(vm.name.clone(), vm.address.into());
        w.labels = vm.labels.clone();
        if let Some(g) = &vm.group {
            w.labels.insert(WORKER_GROUP_LABEL.to_owned(), g.clone());
        }
        for taint in &vm.taints {
            let effect = match taint.effect {
                hakube_topology::TaintEffect::NoSchedule => TaintEffect::NoSchedule,
                hakube_topology::TaintEffect::PreferNoSchedule => TaintEffect::PreferNoSchedule,
                hakube_topology::TaintEffect::NoExecute => TaintEffect::NoExecute,
            };
            w = w.taint(taint.key.clone(), taint.value.as_deref(), effect);
        }
        input.workers.push(w);
    }
    // The names every host's /etc/hosts gives the VIP: a client that dials the API by that
    // name must find it in the certificate.
    input.cert_sans.extend(crate::base::api_names(cluster));
    for lb in cluster.vms_with_role(RoleKind::LoadBalancer) {
        input.cert_sans.push(lb.name.clone());
        if let Some(fqdn) = cluster.fqdn(lb) {
            input.cert_sans.push(fqdn);
        }
    }
    Ok(input)
}

pub(crate) fn render(
    cluster: &Cluster,
    secrets: &PlanSecrets,
    tree: &mut PlanTree,
) -> Result<(), Error> {
    let input = kubeadm_input(cluster)?;
    let rendered = hakube_kubeadm::render_cluster(&input, &secrets.kubeadm).map_err(err)?;
    // Node preparation first: the kubeadm configs below need nothing of it, but a node's plan
    // reads best in the order it is applied.
    let masters: Vec<&str> = input.masters.iter().map(|m| m.name.as_str()).collect();
    for node in input.node_names() {
        let mut prep = PrepInput::new(input.kubernetes_version, masters.contains(&node));
        prep.cri_socket.clone_from(&input.cri_socket);
        prep.image_repository.clone_from(&input.image_repository);
        tree.host_items(node_prep_plan(node, &prep))?;
    }
    for node in rendered.nodes {
        for f in node.files {
            tree.host_file(&node.name, &f.path, f.contents, f.mode)?;
        }
    }
    tree.insert(SECRETS_PATH.to_owned(), secrets.to_env(), 0o600)?;
    Ok(())
}
