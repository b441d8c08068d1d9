//! The idempotent cluster bootstrap: init once, unseal and join every node, then the PKI
//! (root, intermediate signed by it, cert-manager's role), the ACL policies, the snapshot
//! job's token and (once the Kubernetes cluster exists) Kubernetes auth. Every step reads the
//! live state first and writes only what differs: a second run reports no change.
//!
//! Safety: the unseal keys and root token exist only in the [`KeyStore`] (saved before
//! anything else happens after `sys/init`) and in memory as [`Secret`]s; a cluster that is
//! already initialised but does not match the stored keys is refused before anything is sent
//! that could change it ([`Error::NotOurs`]).

use core::fmt;
use core::time::Duration;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client::{Client, Health, InitSecrets, SealStatus, transient};
use crate::config::{signer_policy, snapshot_policy};
use crate::fsutil::{io, write_file};
use crate::{Error, Secret};

/// Where the unseal keys and root token are kept.
pub trait KeyStore: Send + Sync {
    /// The kept secrets, if any.
    fn load(&self) -> Result<Option<InitSecrets>, Error>;
    /// Keeps `secrets` (replacing what was there), durably, before returning.
    fn save(&self, secrets: &InitSecrets) -> Result<(), Error>;
    /// Where, for messages (never the contents).
    fn describe(&self) -> String;
    /// Records, durably, that `sys/init` is about to be sent (`true`), or that its answer was
    /// kept (`false`). The answer is the only copy of the keys: a run killed between the two
    /// leaves the mark, which tells the next run that the initialised cluster it finds is the
    /// one whose keys were lost, so it can never have held data ([`Error::InitAnswerLost`]).
    /// The default keeps no mark.
    fn mark_init(&self, pending: bool) -> Result<(), Error> {
        let _ = pending;
        Ok(())
    }
    /// Whether [`KeyStore::mark_init`] left a mark.
    fn init_pending(&self) -> Result<bool, Error> {
        Ok(false)
    }
}

/// A JSON file, mode 0600, replaced atomically: keep it with the plan's other secrets,
/// outside the GitOps tree.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    path: PathBuf,
}

impl FileKeyStore {
    /// A store at `path` (its directory must exist).
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl KeyStore for FileKeyStore {
    fn load(&self) -> Result<Option<InitSecrets>, Error> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Invalid {
                    field: self.path.display().to_string(),
                    // serde's message names the field and position, never the value.
                    reason: format!("not a kept OpenBao key file: {}", e.classify_message()),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&self.path, e)),
        }
    }

    fn save(&self, secrets: &InitSecrets) -> Result<(), Error> {
        let text = serde_json::to_vec_pretty(secrets).map_err(|e| Error::Invalid {
            field: "secrets".into(),
            reason: e.to_string(),
        })?;
        write_file(&self.path, &text, 0o600)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn mark_init(&self, pending: bool) -> Result<(), Error> {
        let mark = self.pending_path();
        if pending {
            write_file(&mark, b"sys/init sent; its answer not kept yet\n", 0o600)
        } else {
            match std::fs::remove_file(&mark) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(&mark, e)),
            }
        }
    }

    fn init_pending(&self) -> Result<bool, Error> {
        Ok(self.pending_path().is_file())
    }
}

impl FileKeyStore {
    /// The mark [`KeyStore::mark_init`] keeps: `<file>.init-pending`.
    fn pending_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".init-pending");
        PathBuf::from(p)
    }
}

trait ClassifyMessage {
    fn classify_message(&self) -> String;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> String {
        format!(
            "{:?} at line {} column {}",
            self.classify(),
            self.line(),
            self.column()
        )
    }
}

/// The PKI: a root CA, an intermediate signed by it, and the role cert-manager signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiSpec {
    /// Mount of the root CA (`pki`).
    pub root_mount: String,
    /// Mount of the intermediate (`pki_int`).
    pub int_mount: String,
    /// Organisation on both CAs.
    pub organisation: String,
    /// Root lifetime (`87600h`).
    pub root_ttl: String,
    /// Intermediate lifetime (`43800h`).
    pub int_ttl: String,
    /// Base of the issuing-certificate and CRL URLs: the VIP, e.g. `https://10.0.0.10:8200`,
    /// so no certificate names a single node.
    pub urls_base: String,
    /// The role cert-manager signs with (`pki_int/sign/<role>`).
    pub role: String,
    /// Domains the role may issue for (with subdomains and wildcards).
    pub allowed_domains: Vec<String>,
    /// Longest certificate the role signs (`2160h`).
    pub max_ttl: String,
    /// Name of the ACL policy allowing `sign`/`issue` with the role (`cert-manager`).
    pub signer_policy: String,
}

impl PkiSpec {
    /// The usual layout: `pki` and `pki_int`, 10 and 5 years, 90-day leaves.
    #[must_use]
    pub fn new(
        organisation: &str,
        urls_base: &str,
        role: &str,
        allowed_domains: Vec<String>,
    ) -> Self {
        Self {
            root_mount: "pki".into(),
            int_mount: "pki_int".into(),
            organisation: organisation.into(),
            root_ttl: "87600h".into(),
            int_ttl: "43800h".into(),
            urls_base: urls_base.trim_end_matches('/').into(),
            role: role.into(),
            allowed_domains,
            max_ttl: "2160h".into(),
            signer_policy: "cert-manager".into(),
        }
    }

    /// The same with the mounts and the signer policy named otherwise (as a plan names them).
    #[must_use]
    pub fn named(mut self, root_mount: &str, int_mount: &str, signer_policy: &str) -> Self {
        root_mount.clone_into(&mut self.root_mount);
        int_mount.clone_into(&mut self.int_mount);
        signer_policy.clone_into(&mut self.signer_policy);
        self
    }
}

/// What [`bootstrap`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapSpec {
    /// Unseal key shares made at init (5).
    pub key_shares: u32,
    /// Shares needed to unseal (3).
    pub key_threshold: u32,
    /// The PKI, if any.
    pub pki: Option<PkiSpec>,
    /// Create the raft snapshot job's periodic token (kept in the key store).
    pub snapshot_token: bool,
    /// Raft autopilot's server stabilisation time (how long a joined node waits before it
    /// becomes a voter); `None` leaves the server's default (10 s).
    pub stabilization: Option<Duration>,
    /// How long to wait for every node to be unsealed and a voter.
    pub wait: Duration,
}

impl BootstrapSpec {
    /// 5 shares, threshold 3, the given PKI, a snapshot token, 120 s of patience.
    #[must_use]
    pub fn new(pki: Option<PkiSpec>) -> Self {
        Self {
            key_shares: 5,
            key_threshold: 3,
            pki,
            snapshot_token: true,
            stabilization: None,
            wait: Duration::from_secs(120),
        }
    }
}

/// Kubernetes auth as cert-manager's Vault issuer uses it, for a Vault outside the cluster.
///
/// Why a reviewer JWT: Vault checks a login by sending the presented token to the API server's
/// TokenReview. Without `token_reviewer_jwt` a Vault outside the cluster authenticates that
/// call *with the presented token itself*; cert-manager's tokens carry only the audience
/// `vault://<issuer>`, which the API server does not accept for its own authentication, so
/// every login failed (issue 14, defect 2). With a reviewer JWT (a long-lived token of a
/// ServiceAccount bound to `system:auth-delegator`, audience = the API server's) the call is
/// authenticated by the reviewer, and the role's `audience` makes Vault ask TokenReview to
/// check the presented token *for* `vault://<issuer>`: the token is accepted for exactly the
/// audience it was minted for, and for nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesAuthSpec {
    /// Auth mount (`kubernetes`).
    pub mount: String,
    /// API server URL, e.g. `https://10.0.0.10:6443` (the VIP).
    pub host: String,
    /// The cluster CA (PEM) the API server's certificate chains to.
    pub ca_pem: String,
    /// The reviewer ServiceAccount's token.
    pub reviewer_jwt: Secret,
    /// Role name cert-manager logs in as (`cert-manager`).
    pub role: String,
    /// ServiceAccounts allowed to log in.
    pub service_accounts: Vec<String>,
    /// Their namespaces.
    pub namespaces: Vec<String>,
    /// The audience the tokens must carry (`vault://vault-issuer`).
    pub audience: String,
    /// Policies the login gets.
    pub policies: Vec<String>,
    /// Token lifetime (`20m`).
    pub ttl: String,
}

/// One change made (or, in a dry run, to make). Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The node, when the change is node-local.
    pub node: Option<String>,
    /// What changed.
    pub what: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(n) => write!(f, "{n}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

/// The changes a run made; empty when everything already matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// In order.
    pub changes: Vec<Change>,
}

impl Report {
    fn node(&mut self, node: &str, what: impl Into<String>) {
        let c = Change {
            node: Some(node.into()),
            what: what.into(),
        };
        tracing::info!(change = %c, "openbao");
        self.changes.push(c);
    }

    fn cluster(&mut self, what: impl Into<String>) {
        let c = Change {
            node: None,
            what: what.into(),
        };
        tracing::info!(change = %c, "openbao");
        self.changes.push(c);
    }

    /// Whether nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

fn name(client: &Client, i: usize) -> String {
    client.endpoints()[i].name.clone()
}

/// Brings the cluster behind `client` (its endpoints are the nodes, in order) to `spec`:
/// - no node initialised: init node 0, keep the keys in `store` at once, refuse if `store`
///   already holds keys (of a cluster that no longer exists: restore it or move the file);
/// - initialised: go on only if `store`'s keys belong to it, else [`Error::NotOurs`] with
///   nothing changed;
/// - unseal every sealed node (a fresh node joins through its `retry_join` when unsealed);
///   wait until every node is unsealed and a raft voter;
/// - then the PKI, policies and snapshot token, each only where it differs.
pub async fn bootstrap(
    client: &Client,
    store: &dyn KeyStore,
    spec: &BootstrapSpec,
) -> Result<Report, Error> {
    let mut report = Report::default();
    let n = client.endpoints().len();
    let mut status = Vec::with_capacity(n);
    for i in 0..n {
        status.push(client.seal_status(i).await?);
    }
    let stored = store.load()?;
    let mut secrets = if let Some(i) = status.iter().position(|s| s.initialized) {
        let Some(s) = stored else {
            if store.init_pending()? {
                return Err(Error::InitAnswerLost {
                    node: name(client, i),
                    store: store.describe(),
                });
            }
            return Err(Error::NotOurs {
                node: name(client, i),
                store: store.describe(),
            });
        };
        check_ours(client, store, &status, &s).await?;
        // Killed after the keys were kept but before the mark went: it is stale.
        store.mark_init(false)?;
        s
    } else {
        if stored.is_some() {
            return Err(Error::Invalid {
                field: store.describe(),
                reason: "holds the keys of a cluster these nodes do not have (restore its \
                         snapshot with restore_snapshot, or move the file away to start anew)"
                    .into(),
            });
        }
        store.mark_init(true)?;
        let s = client.init(0, spec.key_shares, spec.key_threshold).await?;
        store.save(&s)?;
        store.mark_init(false)?;
        report.node(
            &name(client, 0),
            format!(
                "initialised ({} key shares, threshold {}); keys and root token kept in {}",
                spec.key_shares,
                spec.key_threshold,
                store.describe()
            ),
        );
        s
    };
    unseal_all(client, &secrets, spec.wait, &mut report).await?;
    let token = secrets.root_token.clone();
    if secrets.cluster_id.is_none() {
        secrets.cluster_id = cluster_id(client).await?;
        store.save(&secrets)?;
    }
    if let Some(d) = spec.stabilization {
        autopilot(client, &token, d, &mut report).await?;
    }
    wait_voters(client, &token, spec.wait).await?;
    if let Some(pki) = &spec.pki {
        ensure_pki(client, &token, pki, &mut report).await?;
    }
    if spec.snapshot_token {
        ensure_policy(
            client,
            &token,
            SNAPSHOT_POLICY,
            &snapshot_policy(),
            &mut report,
        )
        .await?;
        if ensure_snapshot_token(client, &token, &mut secrets, &mut report).await? {
            store.save(&secrets)?;
        }
    }
    Ok(report)
}

/// Name of the snapshot job's policy.
pub const SNAPSHOT_POLICY: &str = "raft-snapshot";

async fn cluster_id(client: &Client) -> Result<Option<String>, Error> {
    for i in 0..client.endpoints().len() {
        if let Ok(s) = client.seal_status(i).await
            && s.cluster_id.is_some()
        {
            return Ok(s.cluster_id);
        }
    }
    Ok(None)
}

/// Whether `s` are the keys of the initialised cluster: its cluster ID (any unsealed node)
/// and root token must match; with every node sealed, the keys must unseal the first one.
async fn check_ours(
    client: &Client,
    store: &dyn KeyStore,
    status: &[SealStatus],
    s: &InitSecrets,
) -> Result<(), Error> {
    let not_ours = |i: usize| Error::NotOurs {
        node: name(client, i),
        store: store.describe(),
    };
    if let Some(i) = status.iter().position(|st| !st.sealed) {
        if let (Some(want), Some(got)) = (&s.cluster_id, &status[i].cluster_id)
            && want != got
        {
            return Err(not_ours(i));
        }
        return match client.read(&s.root_token, "auth/token/lookup-self").await {
            Ok(_) => Ok(()),
            Err(Error::Api { status: 403, .. }) => Err(not_ours(i)),
            Err(e) => Err(e),
        };
    }
    // Every node sealed: the shares either unseal the first initialised node or fail there
    // (an unseal attempt leaves nothing behind; the progress is reset on failure).
    let i = status.iter().position(|st| st.initialized).unwrap_or(0);
    if status[i].threshold != 0 && status[i].threshold != s.threshold {
        return Err(not_ours(i));
    }
    for k in s.unseal_keys.iter().take(s.threshold as usize) {
        match client.unseal(i, k).await {
            Ok(st) if !st.sealed => return Ok(()),
            Ok(_) => {}
            Err(Error::Api { status: 400, .. }) => {
                let _ = client.unseal_reset(i).await;
                return Err(not_ours(i));
            }
            Err(e) => {
                let _ = client.unseal_reset(i).await;
                return Err(e);
            }
        }
    }
    Ok(())
}

async fn unseal_all(
    client: &Client,
    s: &InitSecrets,
    wait: Duration,
    report: &mut Report,
) -> Result<(), Error> {
    let n = client.endpoints().len();
    // The nodes already in the cluster first (one of them must lead before others can join).
    let mut order: Vec<(usize, SealStatus)> = Vec::with_capacity(n);
    for i in 0..n {
        order.push((i, client.seal_status(i).await?));
    }
    order.sort_by_key(|(i, st)| (!st.initialized, *i));
    for (i, st) in order {
        if !st.sealed {
            continue;
        }
        let deadline = Instant::now() + wait;
        loop {
            // A node joining through retry_join consumes the shares for its join challenge
            // and unseals a moment later: submit them again only if it asks for them.
            let st = client.seal_status(i).await?;
            if !st.sealed {
                break;
            }
            if st.progress == 0 {
                for k in s.unseal_keys.iter().take(s.threshold as usize) {
                    let r = client.unseal(i, k).await;
                    match r {
                        Ok(st) if !st.sealed => break,
                        Ok(_) => {}
                        // A join waits for a leader, or retry_join has not fetched the
                        // leader's challenge yet ("not initialized"): try again below.
                        Err(e)
                            if matches!(&e, Error::Api { status, message, .. }
                                if *status >= 500 || message.contains("not initialized")) =>
                        {
                            tracing::debug!(node = %name(client, i), error = %e, "unseal");
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{}: unseal", name(client, i)),
                    secs: wait.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        report.node(&name(client, i), "unsealed");
    }
    Ok(())
}

async fn autopilot(
    client: &Client,
    token: &Secret,
    d: Duration,
    report: &mut Report,
) -> Result<(), Error> {
    let path = "sys/storage/raft/autopilot/configuration";
    let cur = client.read(token, path).await?.unwrap_or(Value::Null);
    let want = format!("{}s", d.as_secs().max(1));
    let have = cur
        .pointer("/data/server_stabilization_time")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if parse_secs(&have) != Some(d.as_secs().max(1)) {
        client
            .write(token, path, json!({ "server_stabilization_time": want }))
            .await?;
        report.cluster(format!("raft autopilot: server stabilisation time {want}"));
    }
    Ok(())
}

fn parse_secs(s: &str) -> Option<u64> {
    let s = s.strip_suffix('s')?;
    // "10s", "1m0s"
    if let Some((m, sec)) = s.split_once('m') {
        return Some(m.parse::<u64>().ok()? * 60 + sec.parse::<u64>().ok()?);
    }
    s.parse().ok()
}

async fn wait_voters(client: &Client, token: &Secret, wait: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + wait;
    let want: Vec<String> = client.endpoints().iter().map(|e| e.name.clone()).collect();
    loop {
        let peers = client.raft_peers(token).await?;
        let ok = want
            .iter()
            .all(|w| peers.iter().any(|p| &p.node_id == w && p.voter));
        let mut active = false;
        for i in 0..client.endpoints().len() {
            if client.health(i).await.ok() == Some(Health::Active) {
                active = true;
            }
        }
        if ok && active {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!(
                    "raft voters {:?} (have {:?})",
                    want,
                    peers
                        .iter()
                        .map(|p| format!(
                            "{}{}",
                            p.node_id,
                            if p.voter { "" } else { " (non-voter)" }
                        ))
                        .collect::<Vec<_>>()
                ),
                secs: wait.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Seconds of a Vault duration string (`87600h`, `20m`, `30s`, `90`).
fn duration_secs(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'h' => (&s[..s.len() - 1], 3600),
        'm' => (&s[..s.len() - 1], 60),
        's' => (&s[..s.len() - 1], 1),
        'd' => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

fn num(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(duration_secs))
}

async fn ensure_mount(
    client: &Client,
    token: &Secret,
    path: &str,
    kind: &str,
    max_ttl: &str,
    report: &mut Report,
) -> Result<(), Error> {
    let want = duration_secs(max_ttl).ok_or_else(|| Error::Invalid {
        field: format!("{path}.max_ttl"),
        reason: format!("{max_ttl:?} is not a duration"),
    })?;
    let all = client
        .read(token, "sys/mounts")
        .await?
        .unwrap_or(Value::Null);
    let mount = all
        .get("data")
        .unwrap_or(&all)
        .get(format!("{path}/"))
        .cloned()
        .map(|m| json!({ "data": m }));
    match mount {
        None => {
            client
                .write(
                    token,
                    &format!("sys/mounts/{path}"),
                    json!({ "type": kind, "config": { "max_lease_ttl": max_ttl } }),
                )
                .await?;
            report.cluster(format!("mounted {kind} at {path}/ (max TTL {max_ttl})"));
        }
        Some(v) => {
            let t = v
                .pointer("/data/type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if t != kind {
                return Err(Error::Invalid {
                    field: format!("mount {path}/"),
                    reason: format!("is a {t} mount, not {kind}"),
                });
            }
            let have = v.pointer("/data/config/max_lease_ttl").and_then(num);
            if have != Some(want) {
                client
                    .write(
                        token,
                        &format!("sys/mounts/{path}/tune"),
                        json!({ "max_lease_ttl": max_ttl }),
                    )
                    .await?;
                report.cluster(format!("{path}/: max TTL {max_ttl}"));
            }
        }
    }
    Ok(())
}

async fn has_issuer(client: &Client, token: &Secret, mount: &str) -> Result<bool, Error> {
    Ok(!client
        .list(token, &format!("{mount}/issuers"))
        .await?
        .is_empty())
}

async fn ensure_urls(
    client: &Client,
    token: &Secret,
    mount: &str,
    base: &str,
    report: &mut Report,
) -> Result<(), Error> {
    let issuing = format!("{base}/v1/{mount}/ca");
    let crl = format!("{base}/v1/{mount}/crl");
    let cur = client
        .read(token, &format!("{mount}/config/urls"))
        .await?
        .unwrap_or(Value::Null);
    let first = |k: &str| {
        cur.pointer(&format!("/data/{k}"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    if first("issuing_certificates") != [issuing.clone()]
        || first("crl_distribution_points") != [crl.clone()]
    {
        client
            .write(
                token,
                &format!("{mount}/config/urls"),
                json!({ "issuing_certificates": [issuing], "crl_distribution_points": [crl] }),
            )
            .await?;
        report.cluster(format!("{mount}/: issuing and CRL URLs under {base}"));
    }
    Ok(())
}

async fn ensure_pki(
    client: &Client,
    token: &Secret,
    p: &PkiSpec,
    report: &mut Report,
) -> Result<(), Error> {
    ensure_mount(client, token, &p.root_mount, "pki", &p.root_ttl, report).await?;
    if !has_issuer(client, token, &p.root_mount).await? {
        client
            .write(
                token,
                &format!("{}/root/generate/internal", p.root_mount),
                json!({
                    "common_name": format!("{} Root CA", p.organisation),
                    "organization": p.organisation,
                    "ttl": p.root_ttl,
                    "key_type": "ec",
                    "key_bits": 256,
                    "issuer_name": "root",
                }),
            )
            .await?;
        report.cluster(format!(
            "{}/: root CA generated (key kept inside)",
            p.root_mount
        ));
    }
    ensure_urls(client, token, &p.root_mount, &p.urls_base, report).await?;

    ensure_mount(client, token, &p.int_mount, "pki", &p.int_ttl, report).await?;
    if !has_issuer(client, token, &p.int_mount).await? {
        let csr = client
            .write(
                token,
                &format!("{}/intermediate/generate/internal", p.int_mount),
                json!({
                    "common_name": format!("{} Intermediate CA", p.organisation),
                    "organization": p.organisation,
                    "key_type": "ec",
                    "key_bits": 256,
                }),
            )
            .await?
            .and_then(|v| {
                v.pointer("/data/csr")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .ok_or_else(|| Error::Protocol {
                node: "cluster".into(),
                op: format!("{}/intermediate/generate/internal", p.int_mount),
                reason: "no csr".into(),
            })?;
        let cert = client
            .write(
                token,
                &format!("{}/root/sign-intermediate", p.root_mount),
                json!({ "csr": csr, "format": "pem_bundle", "ttl": p.int_ttl }),
            )
            .await?
            .and_then(|v| {
                v.pointer("/data/certificate")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .ok_or_else(|| Error::Protocol {
                node: "cluster".into(),
                op: format!("{}/root/sign-intermediate", p.root_mount),
                reason: "no certificate".into(),
            })?;
        client
            .write(
                token,
                &format!("{}/intermediate/set-signed", p.int_mount),
                json!({ "certificate": cert }),
            )
            .await?;
        report.cluster(format!(
            "{}/: intermediate CA generated and signed by {}/",
            p.int_mount, p.root_mount
        ));
    }
    ensure_urls(client, token, &p.int_mount, &p.urls_base, report).await?;

    // The role.
    let role_path = format!("{}/roles/{}", p.int_mount, p.role);
    let want_ttl = duration_secs(&p.max_ttl).ok_or_else(|| Error::Invalid {
        field: "pki.max_ttl".into(),
        reason: format!("{:?} is not a duration", p.max_ttl),
    })?;
    let cur = client.read(token, &role_path).await?;
    let same = cur.as_ref().is_some_and(|v| {
        let d = &v["data"];
        let domains: Vec<&str> = d["allowed_domains"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        domains
            == p.allowed_domains
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
            && d["allow_subdomains"] == true
            && d["allow_wildcard_certificates"] == true
            && d["require_cn"] == false
            && num(&d["max_ttl"]) == Some(want_ttl)
    });
    if !same {
        client
            .write(
                token,
                &role_path,
                json!({
                    "allowed_domains": p.allowed_domains,
                    "allow_subdomains": true,
                    "allow_wildcard_certificates": true,
                    // cert-manager's Certificates often have only DNS names.
                    "require_cn": false,
                    "max_ttl": p.max_ttl,
                    "key_type": "any",
                }),
            )
            .await?;
        report.cluster(format!("{role_path}: written"));
    }
    ensure_policy(
        client,
        token,
        &p.signer_policy,
        &signer_policy(&p.int_mount, &p.role),
        report,
    )
    .await
}

/// Writes ACL policy `name` unless it already reads `text`.
pub async fn ensure_policy(
    client: &Client,
    token: &Secret,
    name: &str,
    text: &str,
    report: &mut Report,
) -> Result<(), Error> {
    let path = format!("sys/policies/acl/{name}");
    let cur = client.read(token, &path).await?;
    let have = cur
        .as_ref()
        .and_then(|v| v.pointer("/data/policy").and_then(Value::as_str));
    if have != Some(text) {
        client
            .write(token, &path, json!({ "policy": text }))
            .await?;
        report.cluster(format!("policy {name}: written"));
    }
    Ok(())
}

async fn ensure_snapshot_token(
    client: &Client,
    root: &Secret,
    s: &mut InitSecrets,
    report: &mut Report,
) -> Result<bool, Error> {
    if let Some(t) = &s.snapshot_token {
        let r = client
            .write(root, "auth/token/lookup", json!({ "token": t.expose() }))
            .await;
        match r {
            Ok(Some(_)) => return Ok(false),
            Ok(None)
            | Err(Error::Api {
                status: 403 | 400, ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    let v = client
        .write(
            root,
            "auth/token/create-orphan",
            json!({
                "policies": [SNAPSHOT_POLICY],
                "period": "768h",
                "display_name": "raft-snapshot",
                "no_default_policy": true,
            }),
        )
        .await?
        .unwrap_or(Value::Null);
    let t = v
        .pointer("/auth/client_token")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Protocol {
            node: "cluster".into(),
            op: "auth/token/create-orphan".into(),
            reason: "no auth.client_token".into(),
        })?;
    s.snapshot_token = Some(Secret::new(t));
    report.cluster("snapshot job token created (periodic, 768h; kept with the keys)");
    Ok(true)
}

/// Kubernetes auth for cert-manager (see [`KubernetesAuthSpec`] for the reviewer JWT and the
/// audience), written only where it differs. The reviewer JWT cannot be read back: it is
/// written whenever the config is written, or when `rotate_reviewer_jwt` is set.
pub async fn configure_kubernetes_auth(
    client: &Client,
    token: &Secret,
    k: &KubernetesAuthSpec,
    rotate_reviewer_jwt: bool,
    report: &mut Report,
) -> Result<(), Error> {
    let auths = client.read(token, "sys/auth").await?.unwrap_or(Value::Null);
    let key = format!("{}/", k.mount);
    let present = auths.get("data").unwrap_or(&auths).get(&key).is_some();
    if !present {
        client
            .write(
                token,
                &format!("sys/auth/{}", k.mount),
                json!({ "type": "kubernetes" }),
            )
            .await?;
        report.cluster(format!("auth method kubernetes enabled at {key}"));
    }
    let cfg_path = format!("auth/{}/config", k.mount);
    let cur = client.read(token, &cfg_path).await?.unwrap_or(Value::Null);
    let d = &cur["data"];
    let same = d["kubernetes_host"] == k.host.as_str()
        && d["kubernetes_ca_cert"].as_str().map(str::trim) == Some(k.ca_pem.trim())
        && d["disable_local_ca_jwt"] == true
        && d["token_reviewer_jwt_set"] == true;
    if !same || rotate_reviewer_jwt {
        client
            .write(
                token,
                &cfg_path,
                json!({
                    "kubernetes_host": k.host,
                    "kubernetes_ca_cert": k.ca_pem,
                    "token_reviewer_jwt": k.reviewer_jwt.expose(),
                    "disable_local_ca_jwt": true,
                }),
            )
            .await?;
        report.cluster(format!(
            "{cfg_path}: API server {} with a reviewer JWT",
            k.host
        ));
    }
    let role_path = format!("auth/{}/role/{}", k.mount, k.role);
    let cur = client.read(token, &role_path).await?;
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let same = cur.as_ref().is_some_and(|v| {
        let d = &v["data"];
        strs(&d["bound_service_account_names"]) == k.service_accounts
            && strs(&d["bound_service_account_namespaces"]) == k.namespaces
            && d["audience"] == k.audience.as_str()
            && strs(&d["token_policies"]) == k.policies
            && num(&d["token_ttl"]) == duration_secs(&k.ttl)
    });
    if !same {
        client
            .write(
                token,
                &role_path,
                json!({
                    "bound_service_account_names": k.service_accounts,
                    "bound_service_account_namespaces": k.namespaces,
                    "audience": k.audience,
                    "token_policies": k.policies,
                    "token_ttl": k.ttl,
                }),
            )
            .await?;
        report.cluster(format!("{role_path}: audience {}", k.audience));
    }
    Ok(())
}

/// Saves a raft snapshot of the cluster to `path` (0600: it holds the encrypted barrier
/// keyring and the PKI keys), checked to be a gzip stream before it replaces the file.
pub async fn save_snapshot(client: &Client, token: &Secret, path: &Path) -> Result<u64, Error> {
    let b = client.snapshot_save(token).await?;
    if b.len() < 2 || b[0] != 0x1f || b[1] != 0x8b {
        return Err(Error::Protocol {
            node: "cluster".into(),
            op: "GET sys/storage/raft/snapshot".into(),
            reason: "not a gzip stream".into(),
        });
    }
    write_file(path, &b, 0o600)?;
    Ok(b.len() as u64)
}

/// The DR restore: brings the cluster behind `client` (fresh nodes: nothing initialised) back
/// from `snapshot`, whose unseal keys and root token are in `store` (the key store kept with
/// the old cluster). Node 0 is initialised with throwaway keys (in memory only), the snapshot
/// is force-restored through it, then every node is unsealed with the kept keys and joins.
/// Re-running on a restored cluster changes nothing (it is ours by then).
pub async fn restore_snapshot(
    client: &Client,
    store: &dyn KeyStore,
    snapshot: Vec<u8>,
    spec: &BootstrapSpec,
) -> Result<Report, Error> {
    let kept = store.load()?.ok_or_else(|| Error::Invalid {
        field: store.describe(),
        reason: "no kept keys: a snapshot cannot be unsealed without the keys of its cluster"
            .into(),
    })?;
    let mut report = Report::default();
    let n = client.endpoints().len();
    let mut any_init = false;
    for i in 0..n {
        any_init |= client.seal_status(i).await?.initialized;
    }
    if !any_init {
        // The same share count and threshold as the kept keys: the node keeps this seal
        // configuration through the restore, and the kept shares must fit it.
        let shares = u32::try_from(kept.unseal_keys.len()).unwrap_or(u32::MAX);
        let temp = client.init(0, shares, kept.threshold).await?;
        for k in temp.unseal_keys.iter().take(kept.threshold as usize) {
            client.unseal(0, k).await?;
        }
        // Wait for node 0 to become active before restoring through it.
        let deadline = Instant::now() + spec.wait;
        while client.health(0).await? != Health::Active {
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{}: active after init", name(client, 0)),
                    secs: spec.wait.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        client
            .snapshot_restore(0, &temp.root_token, snapshot, true)
            .await?;
        report.node(
            &name(client, 0),
            "snapshot restored (forced: keys of the snapshot's cluster from now on)",
        );
        // The node reseals under the snapshot's keyring; unseal it with the kept keys.
        let deadline = Instant::now() + spec.wait;
        loop {
            // The node is busy for a moment after the restore: keep asking.
            let st = match client.seal_status(0).await {
                Ok(st) => st,
                Err(e) if transient(&e) => {
                    tracing::debug!(error = %e, "after restore");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            tracing::debug!(?st, "after restore");
            // Unsealed *as the kept cluster*: right after the restore the node still runs
            // with the throwaway keyring for a few seconds, so ask this node itself (no
            // moving on to others) whether the kept root token is valid.
            if !st.sealed
                && client
                    .read_on(0, &kept.root_token, "auth/token/lookup-self")
                    .await
                    .is_ok()
            {
                break;
            }
            if st.sealed {
                for k in kept.unseal_keys.iter().take(kept.threshold as usize) {
                    if let Ok(st) = client.unseal(0, k).await
                        && !st.sealed
                    {
                        break;
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "{}: unsealed with the kept keys after restore",
                        name(client, 0)
                    ),
                    secs: spec.wait.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // From here the cluster is the kept one: the bootstrap unseals and joins the rest.
    let mut kept_now = store.load()?.unwrap_or(kept);
    kept_now.cluster_id = None;
    store.save(&kept_now)?;
    let more = bootstrap(client, store, spec).await?;
    report.changes.extend(more.changes);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_secs("87600h"), Some(315_360_000));
        assert_eq!(duration_secs("20m"), Some(1200));
        assert_eq!(duration_secs("90"), Some(90));
        assert_eq!(parse_secs("1m0s"), Some(60));
        assert_eq!(parse_secs("10s"), Some(10));
    }

    #[test]
    fn key_store_is_private_and_round_trips() {
        let t = tempfile::tempdir().expect("tmp");
        let st = FileKeyStore::new(t.path().join("openbao-keys.json"));
        assert!(st.load().expect("ok").is_none());
        let s = InitSecrets {
            unseal_keys: vec![Secret::new("k1"), Secret::new("k2")],
            threshold: 2,
            root_token: Secret::new("s.root"),
            cluster_id: Some("id".into()),
            snapshot_token: None,
        };
        st.save(&s).expect("saves");
        assert_eq!(st.load().expect("ok"), Some(s.clone()));
        use std::os::unix::fs::PermissionsExt as _;
        let m = std::fs::metadata(st.path())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m, 0o600);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("s.root") && !dbg.contains("k1"), "{dbg}");
        std::fs::write(st.path(), "{\"root_token\": \"s.leak\"").expect("write");
        let e = st.load().expect_err("bad file").to_string();
        assert!(!e.contains("s.leak"), "{e}");
    }
}
