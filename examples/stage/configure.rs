//! The configure stage: the host tiers (load balancers, NFS server, Vault VMs) from the plan's
//! host plans, the Vault cluster's bootstrap, and a check of what the tiers must do.
//!
//! 1. Host plans (from a written plan directory, or rendered in memory with the kept secrets)
//!    applied to every chosen host in parallel by the host-plan executor: facts first, only
//!    what differs, a config its daemon rejects never goes live, handlers only on change.
//! 2. Vault (when the Vault VMs are among the hosts and every host plan succeeded):
//!    [`hakube_vault::bootstrap::bootstrap`] through the nodes' API, trusting only the plan's
//!    Vault CA: init once (keys and root token kept 0600 in
//!    `<secrets root>/`[`VAULT_KEYS_PATH`], never printed), unseal, raft join, PKI root and
//!    intermediate, cert-manager's role and policy, the snapshot job's token (then written to
//!    each node). A Vault initialised by someone else (no keys of ours) is refused with nothing
//!    changed. A second run changes nothing.
//! 3. Verification: exactly one load balancer holds the VIP; the VIP accepts connections on
//!    6443 and, when an API server answers behind it, completes a TLS handshake there (before
//!    kubeadm none does: a note, not a failure); the VIP answers Vault's health on 8200
//!    through HAProxy; the NFS server's live exports match the plan.
//!
//! The secrets root is the plan directory (`plan_dir`), else `out`: the Vault TLS bundle is
//! under [`VAULT_TLS_DIR`] there, the key store at [`VAULT_KEYS_PATH`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hakube_plan::{VAULT_KEYS_PATH, VAULT_SECRETS_DIR, VAULT_TLS_DIR, VaultSetup};
use hakube_remote::{
    Command, FanOut, HostReport, Mode, NoProgress, RemoteExec, SshPool, Target, apply_host_plans,
};
use hakube_topology::{Cluster, RoleKind};
use hakube_vault::bootstrap::{BootstrapSpec, FileKeyStore, KeyStore as _, PkiSpec, bootstrap};
use hakube_vault::client::{Client, Endpoint, Health};

use crate::ssh::{HostWork, apply_plans, plans_from_dir, plans_from_tree};

/// A host tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The HAProxy + keepalived VMs.
    Lb,
    /// The NFS server.
    Nfs,
    /// The Vault (OpenBao) VMs.
    Vault,
}

impl Tier {
    /// The tier of a VM role, if it has one.
    #[must_use]
    pub fn of(role: RoleKind) -> Option<Self> {
        match role {
            RoleKind::LoadBalancer => Some(Self::Lb),
            RoleKind::Nfs => Some(Self::Nfs),
            RoleKind::Vault => Some(Self::Vault),
            _ => None,
        }
    }

    /// Parses `lb`, `nfs` or `vault`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lb" => Some(Self::Lb),
            "nfs" => Some(Self::Nfs),
            "vault" => Some(Self::Vault),
            _ => None,
        }
    }
}

/// What to configure and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Read the host plans from this written plan directory instead of rendering.
    pub plan_dir: Option<PathBuf>,
    /// The plan directory whose kept secrets a rendered plan uses (as `plan --out`).
    pub out: PathBuf,
    /// Only these tiers; empty: all.
    pub tiers: Vec<Tier>,
    /// Show what would change; change nothing (no Vault bootstrap, no verification).
    pub dry_run: bool,
    /// Hosts configured at once.
    pub concurrency: usize,
    /// SSH login user.
    pub user: String,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// Each host's host-plan report, in topology order.
    pub hosts: Vec<HostReport>,
    /// The Vault bootstrap's changes (and the snapshot token files written), never a secret.
    pub vault_changes: Vec<String>,
    /// What was verified.
    pub verified: Vec<String>,
    /// What could not be verified yet, and why (not failures).
    pub notes: Vec<String>,
    /// Wall time of the host plans.
    pub hosts_elapsed: Duration,
    /// Wall time of the Vault bootstrap.
    pub vault_elapsed: Duration,
}

impl Report {
    /// Host-plan changes over every host.
    #[must_use]
    pub fn host_changes(&self) -> usize {
        self.hosts.iter().map(|r| r.changes.len()).sum()
    }
}

/// Why the stage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No VM of the chosen tiers in the topology. Not retryable: fix the options.
    #[error("no VM of the chosen tiers in the topology")]
    NoHosts,
    /// The plan could not be rendered or read. Not retryable: fix the topology or the plan.
    #[error("the plan: {0}")]
    Plan(String),
    /// A kept secret could not be read or written. Retry after fixing the file system.
    #[error("{path}")]
    Secrets {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: hakube_vault::Error,
    },
    /// Host plans failed (each message names the host and item); the other hosts finished.
    /// Safe to retry: host plans are idempotent.
    #[error("{} host(s) failed:\n  {}", .0.len(), .0.join("\n  "))]
    HostsFailed(Vec<String>),
    /// The Vault bootstrap failed (a cluster initialised by someone else is refused here with
    /// nothing changed). Retryable when the cause is (see the source).
    #[error("vault bootstrap")]
    Vault(#[source] hakube_vault::Error),
    /// The configured tiers do not do what they must. Retryable (elections take a moment).
    #[error("verify: {0}")]
    Verify(String),
}

fn secrets_err(path: &Path) -> impl FnOnce(hakube_vault::Error) -> Error + '_ {
    move |source| Error::Secrets {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs the stage on `cluster`'s VMs of the chosen tiers, over sessions from `pool`.
///
/// # Errors
/// See [`Error`]; per-host progress and a summary are printed as hosts finish.
pub async fn run(cluster: &Cluster, pool: &SshPool, opts: &Options) -> Result<Report, Error> {
    let chosen = |t: Tier| opts.tiers.is_empty() || opts.tiers.contains(&t);
    let vms: Vec<_> = cluster
        .vms
        .iter()
        .filter(|vm| Tier::of(vm.role).is_some_and(chosen))
        .collect();
    if vms.is_empty() {
        return Err(Error::NoHosts);
    }
    let hosts: Vec<Arc<dyn RemoteExec>> = vms
        .iter()
        .map(|vm| {
            let target =
                Target::new(vm.name.clone(), vm.address.to_string()).user(opts.user.clone());
            pool.session(&target) as Arc<dyn RemoteExec>
        })
        .collect();
    let root = opts.plan_dir.clone().unwrap_or_else(|| opts.out.clone());
    let (work, vault_ca) = match &opts.plan_dir {
        Some(dir) => {
            let ca = std::fs::read_to_string(dir.join(VAULT_TLS_DIR).join("ca.crt")).ok();
            (plans_from_dir(dir, hosts).map_err(Error::Plan)?, ca)
        }
        None => {
            let secrets = crate::plan_secrets(&opts.out).map_err(Error::Plan)?;
            let tree = hakube_plan::render(cluster, &secrets)
                .map_err(|e| Error::Plan(crate::error_chain(&e)))?;
            if !opts.dry_run && chosen(Tier::Vault) {
                keep_vault_tls(&tree, &opts.out)?;
            }
            let ca = tree
                .get(&format!("{VAULT_TLS_DIR}/ca.crt"))
                .map(|f| String::from_utf8_lossy(&f.contents).into_owned());
            (plans_from_tree(&tree, hosts).map_err(Error::Plan)?, ca)
        }
    };
    let mode = if opts.dry_run {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    crate::progress::say(format!(
        "configuring {} host(s){}",
        work.len(),
        if opts.dry_run { " (dry run)" } else { "" }
    ));
    let started = Instant::now();
    let reports = apply_plans(&work, mode, opts.concurrency.max(1)).await;
    let mut report = Report {
        hosts: Vec::new(),
        vault_changes: Vec::new(),
        verified: Vec::new(),
        notes: Vec::new(),
        hosts_elapsed: started.elapsed(),
        vault_elapsed: Duration::ZERO,
    };
    let failures: Vec<String> = reports
        .iter()
        .filter_map(|r| r.result.as_ref().err().map(|e| crate::error_chain(e)))
        .collect();
    report.hosts = reports;
    if !failures.is_empty() {
        return Err(Error::HostsFailed(failures));
    }
    if opts.dry_run {
        return Ok(report);
    }
    let setup =
        hakube_plan::vault_setup(cluster).map_err(|e| Error::Plan(crate::error_chain(&e)))?;
    let vault = match (&setup, chosen(Tier::Vault)) {
        (Some(s), true) => {
            let ca = vault_ca.ok_or_else(|| {
                Error::Plan(format!(
                    "the plan has no {VAULT_TLS_DIR}/ca.crt for the Vault VMs"
                ))
            })?;
            let started = Instant::now();
            vault_tier(s, &ca, &root, &work, &mut report).await?;
            report.vault_elapsed = started.elapsed();
            Some((s, ca))
        }
        _ => None,
    };
    verify(cluster, &work, vault, chosen(Tier::Lb), &mut report).await?;
    Ok(report)
}

/// Writes the rendered Vault TLS bundle under `out` where it differs from what is kept there
/// (a new CA the render issued must survive, or the next run would issue another).
fn keep_vault_tls(tree: &hakube_plan::PlanTree, out: &Path) -> Result<(), Error> {
    let dir = out.join(VAULT_TLS_DIR);
    for (path, f) in tree.iter().filter(|(p, _)| p.starts_with(VAULT_TLS_DIR)) {
        let to = out.join(path);
        if std::fs::read(&to).ok().as_deref() == Some(f.contents.as_slice()) {
            continue;
        }
        private_dirs(out, &dir)?;
        hakube_vault::fsutil::write_file(&to, &f.contents, f.mode).map_err(secrets_err(&to))?;
    }
    Ok(())
}

/// Creates `out/secrets/...` down to `dir`, each level 0700.
fn private_dirs(out: &Path, dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut cur = out.to_path_buf();
    let rel = dir.strip_prefix(out).unwrap_or(dir);
    for part in rel.components() {
        cur.push(part);
        if !cur.exists() {
            let made = std::fs::create_dir_all(&cur).and_then(|()| {
                std::fs::set_permissions(&cur, std::fs::Permissions::from_mode(0o700))
            });
            made.map_err(|e| Error::Secrets {
                path: cur.clone(),
                source: hakube_vault::Error::Io {
                    path: cur.display().to_string(),
                    source: e,
                },
            })?;
        }
    }
    Ok(())
}

/// Stops OpenBao on every Vault VM, empties its data directory and starts it again, then waits
/// until every node's API answers. Only for a cluster nobody can have unsealed
/// ([`hakube_vault::Error::InitAnswerLost`]).
async fn wipe_vault(setup: &VaultSetup, work: &[HostWork], client: &Client) -> Result<(), Error> {
    let data = hakube_vault::config::DATA_DIR;
    let svc = hakube_vault::host::SERVICE;
    let hosts: Vec<&Arc<dyn RemoteExec>> = work
        .iter()
        .filter(|(h, _)| setup.cluster.nodes.iter().any(|n| n.name == h.host()))
        .map(|(h, _)| h)
        .collect();
    // Every node stopped before any starts again: a fresh node would otherwise join a peer
    // that still runs the old cluster (retry_join).
    for script in [
        format!("systemctl stop {svc}"),
        format!("find {data} -mindepth 1 -delete && systemctl start {svc}"),
    ] {
        for h in &hosts {
            h.run_ok(&Command::new("sh").args(["-c", &script]).sudo(true))
                .await
                .map_err(|e| Error::HostsFailed(vec![crate::error_chain(&e)]))?;
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for i in 0..client.endpoints().len() {
        while let Err(e) = client.seal_status(i).await {
            if std::time::Instant::now() > deadline {
                return Err(Error::Vault(e));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

async fn vault_tier(
    setup: &VaultSetup,
    ca: &str,
    root: &Path,
    work: &[HostWork],
    report: &mut Report,
) -> Result<(), Error> {
    private_dirs(root, &root.join(VAULT_SECRETS_DIR))?;
    let store = FileKeyStore::new(root.join(VAULT_KEYS_PATH));
    let client = Client::for_nodes(&setup.cluster.nodes, ca, Duration::from_secs(10))
        .map_err(Error::Vault)?;
    let pki = PkiSpec::new(
        &setup.organisation,
        &setup.server_url,
        &setup.pki_role,
        setup.allowed_domains.clone(),
    )
    .named(&setup.root_mount, &setup.int_mount, &setup.signer_policy);
    crate::progress::say(format!(
        "vault: bootstrapping {} node(s)",
        setup.cluster.nodes.len()
    ));
    let spec = BootstrapSpec::new(Some(pki));
    let done = match bootstrap(&client, &store, &spec).await {
        Err(hakube_vault::Error::InitAnswerLost { node, .. }) => {
            // An earlier run was killed while `sys/init` was answering: nobody has the keys,
            // so the cluster was never unsealed and holds nothing. Start it anew.
            crate::progress::say(format!(
                "vault: {node} was initialised by a run killed before it kept the keys; \
                 wiping the never-unsealed cluster and initialising again"
            ));
            wipe_vault(setup, work, &client).await?;
            report.vault_changes.push(format!(
                "{node}: the cluster an interrupted init left without keys was wiped"
            ));
            bootstrap(&client, &store, &spec)
                .await
                .map_err(Error::Vault)?
        }
        r => r.map_err(Error::Vault)?,
    };
    report
        .vault_changes
        .extend(done.changes.iter().map(ToString::to_string));
    // The snapshot job's token, once the bootstrap made it, to every Vault VM.
    let token = store
        .load()
        .map_err(secrets_err(store.path()))?
        .and_then(|s| s.snapshot_token);
    if let Some(token) = token {
        let plans: Vec<HostWork> = work
            .iter()
            .filter(|(h, _)| setup.cluster.nodes.iter().any(|n| n.name == h.host()))
            .map(|(h, _)| {
                (
                    Arc::clone(h),
                    hakube_vault::host::snapshot_token_plan(h.host(), &token),
                )
            })
            .collect();
        let done = apply_host_plans(
            &plans,
            Mode::Apply,
            &FanOut::new(plans.len().max(1)),
            &NoProgress,
        )
        .await;
        for r in &done {
            if let Err(e) = &r.result {
                return Err(Error::HostsFailed(vec![crate::error_chain(e)]));
            }
            report
                .vault_changes
                .extend(r.changes.iter().map(|c| format!("{}: {c}", r.host)));
        }
    }
    for c in &report.vault_changes {
        crate::progress::say(format!("  vault: {c}"));
    }
    crate::progress::say(format!("vault: {} change(s)", report.vault_changes.len()));
    Ok(())
}

fn say(report: &mut Report, line: String) {
    crate::progress::say(format!("verify: {line}"));
    report.verified.push(line);
}

/// What the configured tiers must do, checked from here.
async fn verify(
    cluster: &Cluster,
    work: &[HostWork],
    vault: Option<(&VaultSetup, String)>,
    lb_tier: bool,
    report: &mut Report,
) -> Result<(), Error> {
    let role = |name: &str| cluster.vms.iter().find(|v| v.name == name).map(|v| v.role);
    let lbs: Vec<&Arc<dyn RemoteExec>> = work
        .iter()
        .map(|(h, _)| h)
        .filter(|h| role(h.host()) == Some(RoleKind::LoadBalancer))
        .collect();
    let vip = IpAddr::V4(cluster.topology.network.vip);
    if !lbs.is_empty() {
        let holder = vip_holder(&lbs, vip).await.map_err(Error::Verify)?;
        say(report, format!("{holder} holds the VIP {vip}"));
        let addr = SocketAddr::new(vip, 6443);
        connect(addr).await.map_err(Error::Verify)?;
        let mut masters = Vec::new();
        for m in cluster.vms_with_role(RoleKind::ControlPlane) {
            let a = SocketAddr::new(IpAddr::V4(m.address), 6443);
            if connect(a).await.is_ok() {
                masters.push(m.name.clone());
            }
        }
        if masters.is_empty() {
            say(report, format!("{addr} accepts connections"));
            let note = format!(
                "{addr}: no API server answers behind the VIP yet (before kubeadm): TLS not checked"
            );
            crate::progress::say(format!("note: {note}"));
            report.notes.push(note);
        } else {
            let certs = tls_handshake(addr).await.map_err(Error::Verify)?;
            say(
                report,
                format!(
                    "{addr} accepts connections and completes a TLS handshake ({certs} \
                     certificate(s); API servers up: {})",
                    masters.join(", ")
                ),
            );
        }
    }
    if let Some((setup, ca)) = vault
        && lb_tier
    {
        let url = format!(
            "https://{}",
            SocketAddr::new(vip, hakube_vault::config::API_PORT)
        );
        let health = vault_health(&url, &ca).await.map_err(Error::Verify)?;
        say(
            report,
            format!(
                "{url} answers Vault's health through HAProxy ({health:?}; {} node(s) behind it)",
                setup.cluster.nodes.len()
            ),
        );
    }
    if let Some((nfs, _)) = work
        .iter()
        .find(|(h, _)| role(h.host()) == Some(RoleKind::Nfs))
        && let Some(setup) =
            hakube_plan::nfs_setup(cluster).map_err(|e| Error::Verify(crate::error_chain(&e)))?
    {
        let live = hakube_nfs_provisioning::remote::verify_exports(nfs.as_ref(), &setup)
            .await
            .map_err(|e| Error::Verify(crate::error_chain(&e)))?;
        say(
            report,
            format!("{} exports live on {} as planned", live.len(), nfs.host()),
        );
    }
    Ok(())
}

async fn connect(addr: SocketAddr) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr}: no answer within 3 s"))?
        .map(drop)
        .map_err(|e| format!("{addr}: {e}"))
}

/// Vault's health through the VIP, trusting only the Vault CA (every node's certificate names
/// the VIP). HAProxy marks nodes up a few checks after they were unsealed: retried for 30 s.
async fn vault_health(url: &str, ca: &str) -> Result<Health, String> {
    let client = Client::new(
        vec![Endpoint {
            name: "VIP".into(),
            url: url.to_owned(),
        }],
        ca,
        Duration::from_secs(5),
    )
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    loop {
        let got = client.health(0).await;
        match got {
            Ok(h @ (Health::Active | Health::Standby)) => return Ok(h),
            other if started.elapsed() > Duration::from_secs(30) => {
                return Err(format!("{url}: Vault's health: {other:?}"));
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// A TLS handshake with `addr`: proof that a TLS server answers there, not of whom (the
/// cluster CA exists only after kubeadm): the certificate is not checked and nothing is sent
/// after the handshake. Returns how many certificates the server presented.
async fn tls_handshake(addr: SocketAddr) -> Result<usize, String> {
    tokio::task::spawn_blocking(move || handshake_blocking(addr))
        .await
        .map_err(|e| e.to_string())?
}

fn handshake_blocking(addr: SocketAddr) -> Result<usize, String> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// Accepts any certificate: this handshake only shows a TLS server answers.
    #[derive(Debug)]
    struct HandshakeOnly(Arc<rustls::crypto::CryptoProvider>);
    impl ServerCertVerifier for HandshakeOnly {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(HandshakeOnly(provider)))
        .with_no_client_auth();
    let name = ServerName::IpAddress(addr.ip().into());
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut sock = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("{addr}: {e}"))?;
    let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = sock.set_write_timeout(Some(Duration::from_secs(5)));
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|e| format!("{addr}: TLS handshake: {e}"))?;
    }
    Ok(conn.peer_certificates().map_or(0, <[_]>::len))
}

/// Waits (up to 15 s, VRRP elections take a few adverts) until exactly one LB holds the VIP.
async fn vip_holder(lbs: &[&Arc<dyn RemoteExec>], vip: IpAddr) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let mut holders = Vec::new();
        for lb in lbs {
            let out = lb
                .run_ok(&Command::new("ip").args(["-o", "addr", "show"]))
                .await
                .map_err(|e| crate::error_chain(&e))?;
            let held = out
                .stdout_lossy()
                .split_whitespace()
                .any(|w| w.split('/').next() == Some(&vip.to_string()));
            if held {
                holders.push(lb.host().to_owned());
            }
        }
        if holders.len() == 1 {
            return Ok(holders.remove(0));
        }
        if started.elapsed() > Duration::from_secs(15) {
            return Err(format!(
                "{} load balancers hold the VIP {vip} ({}): want exactly one",
                holders.len(),
                holders.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
