//! A typed async client for the Vault API as OpenBao serves it: reqwest over rustls, trusting
//! only the cluster's CA, a timeout on every request, and cluster-wide calls that move on to the
//! next node while one is down, sealed or electing a leader.

use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::{Method, StatusCode};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::Node;
use crate::{Error, Secret};

/// One API endpoint: a node, or the VIP the load balancers answer on, or a tunnel's local end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// A name for messages (the node's name).
    pub name: String,
    /// Base URL, e.g. `https://10.0.0.21:8200`.
    pub url: String,
}

impl From<&Node> for Endpoint {
    fn from(n: &Node) -> Self {
        Self {
            name: n.name.clone(),
            url: n.api_url(),
        }
    }
}

/// `sys/seal-status` of one node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SealStatus {
    /// Whether the node belongs to an initialised cluster (a raft node not yet joined: false).
    pub initialized: bool,
    /// Whether it is sealed.
    pub sealed: bool,
    /// Unseal threshold (0 before init).
    #[serde(rename = "t", default)]
    pub threshold: u32,
    /// Unseal keys submitted so far.
    #[serde(default)]
    pub progress: u32,
    /// Cluster ID (unsealed nodes only).
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// Storage type (`raft`).
    #[serde(default)]
    pub storage_type: Option<String>,
}

/// What `sys/health` says about a node (its HTTP status carries the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The active node (200).
    Active,
    /// An unsealed standby (429) or performance standby (473).
    Standby,
    /// Not initialised (501).
    Uninitialized,
    /// Sealed (503).
    Sealed,
    /// Any other status.
    Other(u16),
}

/// The secrets `sys/init` returns once: unseal key shares and the root token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct InitSecrets {
    /// Unseal key shares (base64).
    pub unseal_keys: Vec<Secret>,
    /// How many shares unseal.
    pub threshold: u32,
    /// The initial root token.
    pub root_token: Secret,
    /// The cluster's ID, recorded at the first unseal (tells our cluster from another).
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// The periodic token of the raft snapshot job.
    #[serde(default)]
    pub snapshot_token: Option<Secret>,
}

/// A certificate signed by a PKI mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The leaf (PEM).
    pub certificate: String,
    /// The issuing CA (PEM).
    pub issuing_ca: String,
    /// The chain above the leaf, issuing CA first, up to the root (PEM each).
    pub ca_chain: Vec<String>,
    /// Serial number.
    pub serial_number: String,
}

/// A signing request as cert-manager's Vault issuer makes it (cert-manager
/// `pkg/internal/vault/vault.go`, v1.19: `common_name` from the CSR's subject, `alt_names` from
/// its DNS SANs, `exclude_cn_from_sans = true`, the CSR itself, a TTL from the Certificate's
/// duration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignRequest {
    /// The CSR (PEM).
    pub csr_pem: String,
    /// Common name, if the CSR has one (cert-manager often leaves it empty).
    pub common_name: Option<String>,
    /// DNS names.
    pub alt_names: Vec<String>,
    /// Lifetime, e.g. `2160h`.
    pub ttl: String,
}

/// A raft peer from `sys/storage/raft/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RaftPeer {
    /// Node ID (the node's name).
    pub node_id: String,
    /// Raft address.
    pub address: String,
    /// Whether it leads.
    #[serde(default)]
    pub leader: bool,
    /// Whether it votes.
    #[serde(default)]
    pub voter: bool,
}

/// The client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoints: Arc<Vec<Endpoint>>,
    /// The endpoint that answered last (cluster-wide calls start there).
    preferred: Arc<AtomicUsize>,
    retry_for: Duration,
}

fn tls_config(ca_pem: &str) -> Result<rustls::ClientConfig, Error> {
    let bad = |reason: String| Error::Invalid {
        field: "ca".into(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| bad(format!("bad PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no CERTIFICATE in the PEM".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A Vault API error body.
#[derive(Deserialize)]
struct ApiErrors {
    #[serde(default)]
    errors: Vec<String>,
}

/// Whether another node (or a later try) may succeed: unreachable, sealed, standby without a
/// leader, leader election in progress.
pub(crate) fn transient(e: &Error) -> bool {
    match e {
        Error::Unreachable { .. } => true,
        Error::Api { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

impl Client {
    /// A client for `endpoints`, trusting only `ca_pem`, each request bounded by `timeout`.
    /// Cluster-wide calls keep trying the endpoints for 15 s (see [`retry_for`](Self::retry_for)).
    pub fn new(endpoints: Vec<Endpoint>, ca_pem: &str, timeout: Duration) -> Result<Self, Error> {
        if endpoints.is_empty() {
            return Err(Error::Invalid {
                field: "endpoints".into(),
                reason: "no endpoint".into(),
            });
        }
        for (i, e) in endpoints.iter().enumerate() {
            if !e.url.starts_with("https://") {
                return Err(Error::Invalid {
                    field: format!("endpoints[{i}].url"),
                    reason: format!("{}: only https:// (TLS is never switched off)", e.url),
                });
            }
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(ca_pem)?)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("hakube-vault/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Invalid {
                field: "http client".into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            http,
            endpoints: Arc::new(endpoints),
            preferred: Arc::new(AtomicUsize::new(0)),
            retry_for: Duration::from_secs(15),
        })
    }

    /// A client for the nodes of a cluster.
    pub fn for_nodes(nodes: &[Node], ca_pem: &str, timeout: Duration) -> Result<Self, Error> {
        Self::new(nodes.iter().map(Endpoint::from).collect(), ca_pem, timeout)
    }

    /// How long cluster-wide calls keep trying while no node can serve them.
    #[must_use]
    pub fn retry_for(mut self, d: Duration) -> Self {
        self.retry_for = d;
        self
    }

    /// The endpoints.
    #[must_use]
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    fn endpoint(&self, node: usize) -> Result<&Endpoint, Error> {
        self.endpoints.get(node).ok_or_else(|| Error::Invalid {
            field: "node".into(),
            reason: format!("no endpoint #{node}"),
        })
    }

    /// One request to one endpoint; `Ok((status, body))` for any status the caller accepts
    /// in `ok`, else [`Error::Api`].
    async fn raw(
        &self,
        node: usize,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<Body>,
        ok: &[u16],
    ) -> Result<(u16, bytes::Bytes), Error> {
        let ep = self.endpoint(node)?;
        let op = format!("{method} {path}");
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", ep.url))
            .header("X-Vault-Request", "true");
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t.expose());
        }
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Bytes(b)) => req
                .header("Content-Type", "application/octet-stream")
                .body(b),
            None => req,
        };
        let resp = req.send().await.map_err(|e| Error::Unreachable {
            node: ep.name.clone(),
            op: op.clone(),
            reason: error_chain(&e),
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| Error::Unreachable {
            node: ep.name.clone(),
            op: op.clone(),
            reason: error_chain(&e),
        })?;
        if ok.contains(&status)
            || (ok.is_empty() && StatusCode::from_u16(status).is_ok_and(|s| s.is_success()))
        {
            return Ok((status, bytes));
        }
        let message = serde_json::from_slice::<ApiErrors>(&bytes)
            .map(|e| e.errors.join("; "))
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).chars().take(300).collect());
        Err(Error::Api {
            node: ep.name.clone(),
            op,
            status,
            message,
        })
    }

    /// A JSON request to one endpoint; `None` for 204 and 404.
    async fn json(
        &self,
        node: usize,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<Value>,
    ) -> Result<Option<Value>, Error> {
        let op = format!("{method} {path}");
        let (status, bytes) = match self
            .raw(node, method, path, token, body.map(Body::Json), &[])
            .await
        {
            Err(Error::Api { status: 404, .. }) => return Ok(None),
            r => r?,
        };
        if status == 204 || bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Protocol {
                node: self.endpoints[node].name.clone(),
                op,
                reason: e.to_string(),
            })
    }

    /// Runs `f` against endpoints, starting with the one that answered last, until one
    /// succeeds or a non-transient error comes back, for at most `retry_for`.
    async fn any<T, F, Fut>(&self, f: F) -> Result<T, Error>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now() + self.retry_for;
        let n = self.endpoints.len();
        loop {
            let start = self.preferred.load(Ordering::Relaxed);
            let mut last = None;
            for k in 0..n {
                let i = (start + k) % n;
                match f(i).await {
                    Ok(v) => {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Ok(v);
                    }
                    Err(e) if transient(&e) => {
                        tracing::debug!(node = %self.endpoints[i].name, error = %e, "trying the next node");
                        last = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            if Instant::now() >= deadline {
                return Err(last.unwrap_or(Error::Timeout {
                    what: "any node".into(),
                    secs: self.retry_for.as_secs(),
                }));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // ---- per node, unauthenticated ----

    /// `GET sys/seal-status` of node `node`.
    pub async fn seal_status(&self, node: usize) -> Result<SealStatus, Error> {
        let v = self
            .json(node, Method::GET, "sys/seal-status", None, None)
            .await?
            .unwrap_or(Value::Null);
        serde_json::from_value(v).map_err(|e| Error::Protocol {
            node: self.endpoints[node].name.clone(),
            op: "GET sys/seal-status".into(),
            reason: e.to_string(),
        })
    }

    /// `GET sys/health` of node `node`, as the load balancers' health check sees it.
    pub async fn health(&self, node: usize) -> Result<Health, Error> {
        let (status, _) = self
            .raw(
                node,
                Method::GET,
                "sys/health",
                None,
                None,
                &[200, 429, 472, 473, 501, 503],
            )
            .await?;
        Ok(match status {
            200 => Health::Active,
            429 | 473 => Health::Standby,
            501 => Health::Uninitialized,
            503 => Health::Sealed,
            s => Health::Other(s),
        })
    }

    /// `PUT sys/init` on node `node`: `shares` unseal keys, `threshold` of them unseal.
    /// The answer is the only copy of the keys: keep it before anything else.
    pub async fn init(
        &self,
        node: usize,
        shares: u32,
        threshold: u32,
    ) -> Result<InitSecrets, Error> {
        #[derive(Deserialize)]
        struct Init {
            keys_base64: Vec<Secret>,
            root_token: Secret,
        }
        let v = self
            .json(
                node,
                Method::PUT,
                "sys/init",
                None,
                Some(json!({ "secret_shares": shares, "secret_threshold": threshold })),
            )
            .await?
            .unwrap_or(Value::Null);
        let i: Init = serde_json::from_value(v).map_err(|_| Error::Protocol {
            node: self.endpoints[node].name.clone(),
            op: "PUT sys/init".into(),
            reason: "no keys_base64/root_token in the answer".into(),
        })?;
        Ok(InitSecrets {
            unseal_keys: i.keys_base64,
            threshold,
            root_token: i.root_token,
            cluster_id: None,
            snapshot_token: None,
        })
    }

    /// `PUT sys/unseal` with one key share on node `node`.
    pub async fn unseal(&self, node: usize, key: &Secret) -> Result<SealStatus, Error> {
        let v = self
            .json(
                node,
                Method::PUT,
                "sys/unseal",
                None,
                Some(json!({ "key": key.expose() })),
            )
            .await?
            .unwrap_or(Value::Null);
        serde_json::from_value(v).map_err(|e| Error::Protocol {
            node: self.endpoints[node].name.clone(),
            op: "PUT sys/unseal".into(),
            reason: e.to_string(),
        })
    }

    /// Discards the key shares submitted so far on node `node`.
    pub async fn unseal_reset(&self, node: usize) -> Result<(), Error> {
        self.json(
            node,
            Method::PUT,
            "sys/unseal",
            None,
            Some(json!({ "reset": true })),
        )
        .await
        .map(drop)
    }

    /// `POST sys/storage/raft/join` on node `node`: join the cluster led by (or reachable at)
    /// `leader_url`, checking its certificate against `ca_pem`. The node must then be
    /// unsealed with the cluster's keys to finish joining.
    pub async fn raft_join(
        &self,
        node: usize,
        leader_url: &str,
        ca_pem: &str,
    ) -> Result<bool, Error> {
        let v = self
            .json(
                node,
                Method::POST,
                "sys/storage/raft/join",
                None,
                Some(json!({ "leader_api_addr": leader_url, "leader_ca_cert": ca_pem })),
            )
            .await?;
        Ok(v.and_then(|v| v.get("joined").and_then(Value::as_bool))
            .unwrap_or(false))
    }

    // ---- cluster-wide, authenticated ----

    /// `GET` (or `LIST` with `list = true`) of `path` through any node; `None` when absent.
    pub async fn read(&self, token: &Secret, path: &str) -> Result<Option<Value>, Error> {
        self.any(|i| self.json(i, Method::GET, path, Some(token), None))
            .await
    }

    /// `GET path` on node `node` only (no moving on to another node); `None` when absent.
    pub async fn read_on(
        &self,
        node: usize,
        token: &Secret,
        path: &str,
    ) -> Result<Option<Value>, Error> {
        self.json(node, Method::GET, path, Some(token), None).await
    }

    /// `LIST path` through any node: the `keys`, empty when absent.
    pub async fn list(&self, token: &Secret, path: &str) -> Result<Vec<String>, Error> {
        let list = Method::from_bytes(b"LIST").map_err(|e| Error::Invalid {
            field: "method".into(),
            reason: e.to_string(),
        })?;
        let v = self
            .any(|i| self.json(i, list.clone(), path, Some(token), None))
            .await?;
        Ok(v.and_then(|v| {
            v.pointer("/data/keys").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default())
    }

    /// `POST path` with a JSON body through any node; the answer, if any.
    pub async fn write(
        &self,
        token: &Secret,
        path: &str,
        body: Value,
    ) -> Result<Option<Value>, Error> {
        self.any(|i| self.json(i, Method::POST, path, Some(token), Some(body.clone())))
            .await
    }

    /// `DELETE path` through any node.
    pub async fn delete(&self, token: &Secret, path: &str) -> Result<(), Error> {
        self.any(|i| self.json(i, Method::DELETE, path, Some(token), None))
            .await
            .map(drop)
    }

    /// The raft peers (`sys/storage/raft/configuration`).
    pub async fn raft_peers(&self, token: &Secret) -> Result<Vec<RaftPeer>, Error> {
        let v = self
            .read(token, "sys/storage/raft/configuration")
            .await?
            .unwrap_or(Value::Null);
        let servers = v
            .pointer("/data/config/servers")
            .cloned()
            .unwrap_or(Value::Array(vec![]));
        serde_json::from_value(servers).map_err(|e| Error::Protocol {
            node: "cluster".into(),
            op: "GET sys/storage/raft/configuration".into(),
            reason: e.to_string(),
        })
    }

    /// Signs a CSR with `role` of PKI mount `mount` (`POST <mount>/sign/<role>`) through any
    /// node, with the parameters cert-manager's Vault issuer sends (see [`SignRequest`]).
    pub async fn sign(
        &self,
        token: &Secret,
        mount: &str,
        role: &str,
        req: &SignRequest,
    ) -> Result<Signed, Error> {
        let path = format!("{mount}/sign/{role}");
        let mut body = json!({
            "csr": req.csr_pem,
            "alt_names": req.alt_names.join(","),
            "ttl": req.ttl,
            "exclude_cn_from_sans": true,
        });
        if let Some(cn) = &req.common_name {
            body["common_name"] = json!(cn);
        }
        let v = self.write(token, &path, body).await?.unwrap_or(Value::Null);
        signed_from(&v).ok_or_else(|| Error::Protocol {
            node: "cluster".into(),
            op: format!("POST {path}"),
            reason: "no certificate in the answer".into(),
        })
    }

    /// Logs in through Kubernetes auth at `mount` as `role` with a ServiceAccount `jwt` (what
    /// cert-manager does); the client token.
    pub async fn login_kubernetes(
        &self,
        mount: &str,
        role: &str,
        jwt: &Secret,
    ) -> Result<Secret, Error> {
        let path = format!("auth/{mount}/login");
        let v = self
            .any(|i| {
                self.json(
                    i,
                    Method::POST,
                    &path,
                    None,
                    Some(json!({ "role": role, "jwt": jwt.expose() })),
                )
            })
            .await?
            .unwrap_or(Value::Null);
        v.pointer("/auth/client_token")
            .and_then(Value::as_str)
            .map(Secret::new)
            .ok_or_else(|| Error::Protocol {
                node: "cluster".into(),
                op: format!("POST {path}"),
                reason: "no auth.client_token".into(),
            })
    }

    /// A raft snapshot of the whole cluster (`GET sys/storage/raft/snapshot`): a gzipped tar.
    pub async fn snapshot_save(&self, token: &Secret) -> Result<Vec<u8>, Error> {
        self.any(|i| async move {
            let (_, b) = self
                .raw(
                    i,
                    Method::GET,
                    "sys/storage/raft/snapshot",
                    Some(token),
                    None,
                    &[200],
                )
                .await?;
            Ok(b.to_vec())
        })
        .await
    }

    /// Restores a raft snapshot through node `node` (`POST sys/storage/raft/snapshot`, or
    /// `snapshot-force` when it comes from another cluster, i.e. with other unseal keys).
    pub async fn snapshot_restore(
        &self,
        node: usize,
        token: &Secret,
        snapshot: Vec<u8>,
        force: bool,
    ) -> Result<(), Error> {
        let path = if force {
            "sys/storage/raft/snapshot-force"
        } else {
            "sys/storage/raft/snapshot"
        };
        self.raw(
            node,
            Method::POST,
            path,
            Some(token),
            Some(Body::Bytes(snapshot)),
            &[],
        )
        .await
        .map(drop)
    }
}

enum Body {
    Json(Value),
    Bytes(Vec<u8>),
}

fn signed_from(v: &Value) -> Option<Signed> {
    let d = v.get("data")?;
    let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(Signed {
        certificate: s("certificate")?,
        issuing_ca: s("issuing_ca").unwrap_or_default(),
        ca_chain: d
            .get("ca_chain")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        serial_number: s("serial_number").unwrap_or_default(),
    })
}

/// The error and its causes, on one line (reqwest's own message says little).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
