//! The plan's secrets ([`PlanSecrets`]: kubeadm's bootstrap token and certificate key,
//! Grafana's admin password, the Vault VMs' TLS bundle) and where the plan keeps them: under
//! [`SECRETS_DIR`] (directory 0700, keys 0600), beside the GitOps tree `cluster/` and never in
//! it, so re-planning gives the same tree.

use hakube_host_state::Secret;
use hakube_kubeadm::{BootstrapToken, CertificateKey, ClusterSecrets};

use crate::Error;

/// The plan folder for secrets (beside `cluster/`, directory 0700).
pub const SECRETS_DIR: &str = hakube_addons::SECRETS_DIR;

/// Where the secrets live inside the plan (the `bootstrap` example reads the same file):
/// under `secrets/` (directory 0700, file 0600), outside `cluster/`, which is meant for a Git
/// repository.
pub const SECRETS_PATH: &str = "secrets/kubeadm.env";

/// The Vault secrets' folder in the plan (beside `cluster/`, never in it).
pub const VAULT_SECRETS_DIR: &str = "secrets/vault";
/// The TLS bundle in the plan, as `TlsBundle::write_dir` lays it out: `ca.crt`, `ca.key`,
/// `<node>.crt`, `<node>.key` (keys 0600).
pub const VAULT_TLS_DIR: &str = "secrets/vault/tls";
/// Where the configure stage keeps OpenBao's unseal keys and root token (0600). Not written by
/// the plan; [`PlanTree::write_to`](crate::PlanTree::write_to) keeps it across re-plans.
pub const VAULT_KEYS_PATH: &str = "secrets/vault/init.json";

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
    /// (`TlsBundle::read_dir` of [`VAULT_TLS_DIR`]); reconciled by [`crate::render`],
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
    /// when it is absent) and the Vault TLS bundle under [`VAULT_TLS_DIR`] (`None`
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
        s.vault_tls =
            hakube_vault::certs::TlsBundle::read_dir(&dir.join(VAULT_TLS_DIR)).map_err(|e| {
                Error::Component {
                    component: "vault",
                    source: e.into(),
                }
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
