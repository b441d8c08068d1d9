//! The Vault (OpenBao) cluster back from the raft snapshots its snapshot timers wrote.
//!
//! 1. List every Vault VM's snapshot directory (`raft-<host>-<UTC timestamp>.snap`, what
//!    `openbao-snapshot.service` writes); take the newest (or the one named) that is still a
//!    complete archive (`tar -tzf` lists `state.bin`, as the timer checked when it wrote it)
//!    and fetch it.
//! 2. With a running cluster (initialised, ours: the kept root token is valid): note the PKI's
//!    root and intermediate CA, then force-restore the snapshot through the raft leader
//!    (`POST sys/storage/raft/snapshot-force`). OpenBao reloads its barrier from the snapshot;
//!    a node that seals is unsealed with the kept keys. With fresh nodes (nothing initialised,
//!    e.g. rebuilt VMs): [`hakube_vault::bootstrap::restore_snapshot`] (a throwaway init on the
//!    first node, the forced restore, unseal with the kept keys, the others join).
//! 3. Wait until every node is unsealed and a raft voter, then check the PKI: the same root and
//!    intermediate CA as before the restore, and a CSR signed through the intermediate
//!    (`<int mount>/sign/<role>`, as cert-manager does) chains to that root.
//!
//! The Vault CA and the kept keys are read from the plan directory ([`Options::out`]); the keys
//! and the root token are never printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hakube_host_state::shell_quote;
use hakube_plan::{VAULT_KEYS_PATH, VAULT_TLS_DIR, VaultSetup};
use hakube_remote::{Command, RemoteExec, SshPool, Target};
use hakube_topology::Cluster;
use hakube_vault::Secret;
use hakube_vault::bootstrap::{
    BootstrapSpec, FileKeyStore, KeyStore as _, PkiSpec, restore_snapshot,
};
use hakube_vault::client::{Client, Health, InitSecrets, SignRequest};

use super::{Error, Options, is_timestamp};

/// A raft snapshot file on a Vault VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The VM it is on.
    pub host: String,
    /// Its path there.
    pub path: String,
    /// When it was taken (UTC, `YYYYMMDDTHHMMSSZ`, from its name).
    pub taken: String,
    /// Its size in bytes (once fetched).
    pub bytes: u64,
}

/// What the Vault restore did (never a secret).
#[derive(Debug, Clone)]
pub struct Report {
    /// The snapshot restored.
    pub snapshot: Snapshot,
    /// Newer snapshots passed over, each with why.
    pub skipped: Vec<String>,
    /// The steps, in order (the node that took the restore, nodes unsealed, ...).
    pub steps: Vec<String>,
    /// The root CA (PEM) before the restore, when the cluster answered then.
    pub root_ca_before: Option<String>,
    /// Whether the restored root CA was compared with one from before (the running cluster's
    /// or [`Options::expect_root_ca`]) and found the same.
    pub root_ca_unchanged: bool,
    /// The root CA (PEM) after the restore.
    pub root_ca: String,
    /// The intermediate CA (PEM) after the restore.
    pub intermediate_ca: String,
    /// The raft voters after the restore.
    pub voters: Vec<String>,
    /// Serial number of the certificate signed to check the PKI.
    pub signed_serial: String,
    /// Wall time, listing to verification.
    pub elapsed: Duration,
}

/// Restores `cluster`'s Vault VMs from the newest verified raft snapshot (or
/// [`Options::vault_snapshot`]), over sessions from `pool` (to find and fetch it) and the Vault
/// API (trusting only the plan's Vault CA).
///
/// # Errors
/// [`Error::NotConfirmed`] without [`Options::confirm_replace`]; [`Error::Input`] when the
/// topology has no Vault VMs or the plan directory lacks the CA or the kept keys (or the
/// running cluster is not the one whose keys are kept); [`Error::NoSnapshot`];
/// [`Error::Step`] naming the node and step; [`Error::Verify`] when the cluster does not come
/// back whole or the PKI signs with another CA.
pub async fn run(cluster: &Cluster, pool: &SshPool, opts: &Options) -> Result<Report, Error> {
    if !opts.confirm_replace {
        return Err(Error::NotConfirmed {
            parts: "vault".into(),
        });
    }
    let started = Instant::now();
    let setup = hakube_plan::vault_setup(cluster)
        .map_err(|e| Error::Input(format!("vault: {}", crate::error_chain(&e))))?
        .ok_or_else(|| {
            Error::Input("the topology has no Vault VMs (vault.placement: vms)".into())
        })?;
    let ca_path = opts.out.join(VAULT_TLS_DIR).join("ca.crt");
    let ca = std::fs::read_to_string(&ca_path).map_err(|e| {
        Error::Input(format!(
            "{}: {e} (the Vault CA configure kept)",
            ca_path.display()
        ))
    })?;
    let store = FileKeyStore::new(opts.out.join(VAULT_KEYS_PATH));
    let kept = store
        .load()
        .map_err(|e| Error::Input(crate::error_chain(&e)))?
        .ok_or_else(|| {
            Error::Input(format!(
                "{}: no kept unseal keys: a snapshot cannot be unsealed without the keys of its \
                 cluster",
                store.path().display()
            ))
        })?;
    let hosts: Vec<Arc<dyn RemoteExec>> = setup
        .cluster
        .nodes
        .iter()
        .map(|n| {
            let vm = cluster.vms.iter().find(|v| v.name == n.name);
            let address = vm.map_or_else(|| n.address.to_string(), |v| v.address.to_string());
            let target = Target::new(n.name.clone(), address).user(opts.user.clone());
            pool.session(&target) as Arc<dyn RemoteExec>
        })
        .collect();
    let dir = hakube_plan::vault_snapshot_schedule(cluster).dir;

    let client = Client::for_nodes(&setup.cluster.nodes, &ca, Duration::from_secs(10))
        .map_err(|e| Error::Input(format!("vault: {}", crate::error_chain(&e))))?;
    let mut any_init = false;
    // Every node answers first: a node that is down is named, nothing is restored.
    for i in 0..setup.cluster.nodes.len() {
        any_init |= client.seal_status(i).await?.initialized;
    }
    let (snapshot, bytes, skipped) =
        fetch_snapshot(&hosts, &dir, opts.vault_snapshot.as_deref()).await?;
    println!(
        "vault: restoring {}:{} ({} bytes, taken {})",
        snapshot.host, snapshot.path, snapshot.bytes, snapshot.taken
    );
    let mut steps = Vec::new();
    let root_ca_before = if any_init {
        restore_running(&client, &setup, &kept, &store, bytes, opts.wait, &mut steps).await?
    } else {
        println!("vault: no node initialised: restoring onto fresh nodes");
        let done = restore_snapshot(&client, &store, bytes, &bootstrap_spec(&setup, opts.wait))
            .await
            .map_err(|e| {
                Error::step(&setup.cluster.nodes[0].name, "restore onto fresh nodes", e)
            })?;
        steps.extend(done.changes.iter().map(ToString::to_string));
        None
    };
    for s in &steps {
        println!("  vault: {s}");
    }
    let voters = wait_whole(&client, &setup, &kept, opts.wait).await?;
    println!(
        "vault: {} node(s) unsealed, voters: {}",
        voters.len(),
        voters.join(", ")
    );
    let (root_ca, intermediate_ca, signed_serial) = verify_pki(
        &client,
        &setup,
        &kept.root_token,
        root_ca_before.as_ref(),
        opts.expect_root_ca.as_deref(),
    )
    .await?;
    let compared = root_ca_before.is_some() || opts.expect_root_ca.is_some();
    println!(
        "vault: PKI signs with the {} CA (certificate {signed_serial} chains to it)",
        if compared { "same" } else { "restored" }
    );
    Ok(Report {
        snapshot,
        skipped,
        steps,
        root_ca_before: root_ca_before.map(|(root, _)| root),
        root_ca_unchanged: compared,
        root_ca,
        intermediate_ca,
        voters,
        signed_serial,
        elapsed: started.elapsed(),
    })
}

fn bootstrap_spec(setup: &VaultSetup, wait: Duration) -> BootstrapSpec {
    let pki = PkiSpec::new(
        &setup.organisation,
        &setup.server_url,
        &setup.pki_role,
        setup.allowed_domains.clone(),
    )
    .named(&setup.root_mount, &setup.int_mount, &setup.signer_policy);
    let mut spec = BootstrapSpec::new(Some(pki));
    spec.wait = wait;
    spec
}

/// The snapshot file name's timestamp: `raft-<host>-<ts>.snap`.
fn snapshot_taken(name: &str) -> Option<&str> {
    let stem = name.strip_prefix("raft-")?.strip_suffix(".snap")?;
    let (_, ts) = stem.rsplit_once('-')?;
    is_timestamp(ts).then_some(ts)
}

/// Lists the snapshots on every node, newest first, and fetches the first that is a complete
/// archive (or the one `wanted` names: a file name or a timestamp).
async fn fetch_snapshot(
    hosts: &[Arc<dyn RemoteExec>],
    dir: &str,
    wanted: Option<&str>,
) -> Result<(Snapshot, Vec<u8>, Vec<String>), Error> {
    let mut all: Vec<(String, usize, String)> = Vec::new();
    let mut unreachable = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let listed = h
            .run_ok(
                &Command::shell(format!(
                    "if [ -d {d} ]; then ls -1 {d}; fi",
                    d = shell_quote(dir)
                ))
                .sudo(true),
            )
            .await;
        match listed {
            Ok(out) => {
                for name in out.stdout_lossy().lines() {
                    if let Some(ts) = snapshot_taken(name) {
                        all.push((ts.to_owned(), i, name.to_owned()));
                    }
                }
            }
            // A node that is gone may hold no snapshot the others lack: go on without it.
            Err(e) => {
                println!(
                    "vault: {}: snapshots not listed: {}",
                    h.host(),
                    crate::error_chain(&e)
                );
                unreachable.push(h.host().to_owned());
            }
        }
    }
    // Newest first; among equal times, node order.
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut skipped = Vec::new();
    for (ts, i, name) in &all {
        if wanted.is_some_and(|w| w != name && w != ts) {
            continue;
        }
        let h = &hosts[*i];
        let path = format!("{dir}/{name}");
        let check = h
            .run(
                &Command::shell(format!(
                    "tar -tzf {} | grep -qx state.bin",
                    shell_quote(&path)
                ))
                .sudo(true),
            )
            .await
            .map_err(|e| Error::step(h.host(), format!("check {path}"), e))?;
        let why = if check.success() {
            let bytes = h
                .read_file(&path, true)
                .await
                .map_err(|e| Error::step(h.host(), format!("fetch {path}"), e))?;
            if bytes.starts_with(&[0x1f, 0x8b]) {
                let snapshot = Snapshot {
                    host: h.host().to_owned(),
                    path,
                    taken: ts.clone(),
                    bytes: bytes.len() as u64,
                };
                return Ok((snapshot, bytes, skipped));
            }
            "changed while it was fetched: not a gzip stream".to_owned()
        } else {
            "not a complete raft snapshot (no state.bin)".to_owned()
        };
        if wanted.is_some() {
            return Err(Error::NoSnapshot {
                part: "vault",
                detail: format!("{}:{path}: {why}", h.host()),
            });
        }
        println!("vault: {}:{path} skipped: {why}", h.host());
        skipped.push(format!("{}:{path}: {why}", h.host()));
    }
    let nodes: Vec<&str> = hosts.iter().map(|h| h.host()).collect();
    let mut detail = match wanted {
        Some(w) => format!("no snapshot {w} under {dir} on {}", nodes.join(", ")),
        None if all.is_empty() => format!(
            "no raft-<host>-<timestamp>.snap under {dir} on {} (has openbao-snapshot.timer run?)",
            nodes.join(", ")
        ),
        None => format!("every snapshot under {dir} is incomplete"),
    };
    if !unreachable.is_empty() {
        detail.push_str(&format!(" ({} not listed)", unreachable.join(", ")));
    }
    Err(Error::NoSnapshot {
        part: "vault",
        detail,
    })
}

/// The root and intermediate CA certificates (PEM), when the PKI answers.
async fn read_cas(
    client: &Client,
    setup: &VaultSetup,
    token: &Secret,
) -> Result<(String, String), hakube_vault::Error> {
    let mut got = Vec::new();
    for mount in [&setup.root_mount, &setup.int_mount] {
        let path = format!("{mount}/cert/ca");
        let v = client.read(token, &path).await?;
        let pem = v
            .as_ref()
            .and_then(|v| v.pointer("/data/certificate"))
            .and_then(serde_json::Value::as_str)
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| hakube_vault::Error::Protocol {
                node: "cluster".into(),
                op: format!("GET {path}"),
                reason: "no CA certificate".into(),
            })?;
        got.push(pem.trim().to_owned());
    }
    let int = got.pop().unwrap_or_default();
    let root = got.pop().unwrap_or_default();
    Ok((root, int))
}

/// Unseals every sealed node with the kept keys; the nodes that were sealed.
async fn unseal_sealed(client: &Client, setup: &VaultSetup, kept: &InitSecrets) -> Vec<String> {
    let mut unsealed = Vec::new();
    for (i, n) in setup.cluster.nodes.iter().enumerate() {
        let Ok(st) = client.seal_status(i).await else {
            continue;
        };
        if !st.initialized || !st.sealed {
            continue;
        }
        for k in kept.unseal_keys.iter().take(kept.threshold as usize) {
            match client.unseal(i, k).await {
                Ok(st) if !st.sealed => {
                    unsealed.push(n.name.clone());
                    break;
                }
                Ok(_) => {}
                // Busy right after a restore: the caller's loop tries again.
                Err(e) => {
                    println!("vault: {}: unseal: {e} (trying again)", n.name);
                    break;
                }
            }
        }
    }
    unsealed
}

/// The running cluster: ours, unsealed, CAs noted, the snapshot force-restored through the
/// leader. Returns the CAs from before.
async fn restore_running(
    client: &Client,
    setup: &VaultSetup,
    kept: &InitSecrets,
    store: &FileKeyStore,
    snapshot: Vec<u8>,
    wait: Duration,
    steps: &mut Vec<String>,
) -> Result<Option<(String, String)>, Error> {
    let token = &kept.root_token;
    for n in unseal_sealed(client, setup, kept).await {
        steps.push(format!(
            "{n}: unsealed with the kept keys (before the restore)"
        ));
    }
    // Ours: the kept root token is valid here (a cluster initialised by someone else is not
    // replaced with our data).
    let ours = client.read(token, "auth/token/lookup-self").await;
    match ours {
        Ok(Some(_)) => {}
        Ok(None) | Err(hakube_vault::Error::Api { status: 403, .. }) => {
            return Err(Error::Input(format!(
                "the Vault cluster does not accept the root token kept at {}: not the cluster \
                 whose keys are kept, refusing to replace its data",
                store.path().display()
            )));
        }
        Err(e) => return Err(Error::Vault(e)),
    }
    let before = match read_cas(client, setup, token).await {
        Ok(cas) => Some(cas),
        Err(e) => {
            println!("vault: the PKI's CAs before the restore: {e} (not compared)");
            None
        }
    };
    let peers = client.raft_peers(token).await.map_err(Error::Vault)?;
    let leader = peers
        .iter()
        .find(|p| p.leader)
        .and_then(|p| setup.cluster.nodes.iter().position(|n| n.name == p.node_id))
        .unwrap_or(0);
    let leader_name = &setup.cluster.nodes[leader].name;
    client
        .snapshot_restore(leader, token, snapshot, true)
        .await
        .map_err(Error::Vault)?;
    steps.push(format!(
        "{leader_name}: snapshot restored through the raft leader (forced)"
    ));
    // OpenBao reloads the barrier from the snapshot; nodes that seal meanwhile are unsealed
    // with the kept keys until the leader answers for the kept root token again.
    let deadline = Instant::now() + wait;
    loop {
        for n in unseal_sealed(client, setup, kept).await {
            steps.push(format!(
                "{n}: unsealed with the kept keys (after the restore)"
            ));
        }
        if client
            .read_on(leader, token, "auth/token/lookup-self")
            .await
            .is_ok()
        {
            break;
        }
        if Instant::now() >= deadline {
            return Err(Error::Verify(format!(
                "{leader_name}: does not accept the kept root token {}s after the restore",
                wait.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(before)
}

/// Waits until every node is unsealed (active or standby) and every node a raft voter,
/// unsealing nodes that seal meanwhile. Returns the voters.
async fn wait_whole(
    client: &Client,
    setup: &VaultSetup,
    kept: &InitSecrets,
    wait: Duration,
) -> Result<Vec<String>, Error> {
    let deadline = Instant::now() + wait;
    loop {
        unseal_sealed(client, setup, kept).await;
        let mut not_ready = Vec::new();
        for (i, n) in setup.cluster.nodes.iter().enumerate() {
            match client.health(i).await {
                Ok(Health::Active | Health::Standby) => {}
                Ok(h) => not_ready.push(format!("{} {h:?}", n.name)),
                Err(e) => not_ready.push(format!("{}: {e}", n.name)),
            }
        }
        let voters: Vec<String> = match client.raft_peers(&kept.root_token).await {
            Ok(peers) => peers
                .into_iter()
                .filter(|p| p.voter)
                .map(|p| p.node_id)
                .collect(),
            Err(e) => {
                not_ready.push(format!("raft configuration: {e}"));
                Vec::new()
            }
        };
        for n in &setup.cluster.nodes {
            if !voters.contains(&n.name) {
                not_ready.push(format!("{} not a raft voter", n.name));
            }
        }
        if not_ready.is_empty() {
            return Ok(voters);
        }
        if Instant::now() >= deadline {
            return Err(Error::Verify(format!(
                "the Vault cluster is not whole {}s after the restore: {}",
                wait.as_secs(),
                not_ready.join("; ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The PKI after the restore: its CAs (the same as `before` and `expected_root`, when known)
/// and a CSR signed
/// through the intermediate that chains to the root. Returns (root, intermediate, serial).
async fn verify_pki(
    client: &Client,
    setup: &VaultSetup,
    token: &Secret,
    before: Option<&(String, String)>,
    expected_root: Option<&str>,
) -> Result<(String, String, String), Error> {
    let (root, int) = read_cas(client, setup, token)
        .await
        .map_err(|e| Error::Verify(format!("the PKI after the restore: {e}")))?;
    if let Some(want) = expected_root
        && der("expected root CA", want).map_err(Error::Input)?
            != der("root CA", &root).map_err(Error::Verify)?
    {
        return Err(Error::Verify(format!(
            "{}: the root CA after the restore is not the expected one",
            setup.root_mount
        )));
    }
    if let Some((root_before, int_before)) = before {
        if *root_before != root {
            return Err(Error::Verify(format!(
                "{}: the root CA after the restore differs from the one before",
                setup.root_mount
            )));
        }
        if *int_before != int {
            return Err(Error::Verify(format!(
                "{}: the intermediate CA after the restore differs from the one before",
                setup.int_mount
            )));
        }
    }
    let domain = setup
        .allowed_domains
        .first()
        .ok_or_else(|| Error::Input("the Vault PKI role allows no domain".into()))?;
    let name = format!("dr-check.{domain}");
    let csr = csr_for(&name).map_err(Error::Verify)?;
    let signed = client
        .sign(
            token,
            &setup.int_mount,
            &setup.pki_role,
            &SignRequest {
                csr_pem: csr,
                common_name: None,
                alt_names: vec![name.clone()],
                ttl: "5m".into(),
            },
        )
        .await
        .map_err(|e| {
            Error::Verify(format!(
                "{}/sign/{}: {}",
                setup.int_mount,
                setup.pki_role,
                crate::error_chain(&e)
            ))
        })?;
    chains_to(&signed.certificate, &int, &root).map_err(|e| {
        Error::Verify(format!(
            "the certificate {}/sign/{} issued for {name}: {e}",
            setup.int_mount, setup.pki_role
        ))
    })?;
    Ok((root, int, signed.serial_number))
}

/// A CSR for `name` with a fresh P-256 key (the key is dropped: the certificate only proves
/// the PKI signs).
fn csr_for(name: &str) -> Result<String, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("CSR key: {e}"))?;
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(|e| format!("CSR: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| format!("CSR: {e}"))
}

fn der(what: &str, pem: &str) -> Result<Vec<u8>, String> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map(|(_, p)| p.contents)
        .map_err(|e| format!("{what}: not a PEM certificate: {e}"))
}

/// `leaf` is signed by `int`, `int` by `root`, and `root` by itself (names and signatures).
fn chains_to(leaf: &str, int: &str, root: &str) -> Result<(), String> {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let ders = [
        der("leaf", leaf)?,
        der("intermediate", int)?,
        der("root", root)?,
    ];
    let mut certs = Vec::new();
    for (what, d) in ["leaf", "intermediate", "root"].iter().zip(&ders) {
        let (_, c) =
            X509Certificate::from_der(d).map_err(|e| format!("{what}: not a certificate: {e}"))?;
        certs.push((*what, c));
    }
    for w in certs.windows(2) {
        let ((child_name, child), (parent_name, parent)) = (&w[0], &w[1]);
        if child.issuer() != parent.subject() {
            return Err(format!("{child_name}'s issuer is not the {parent_name}"));
        }
        child
            .verify_signature(Some(parent.public_key()))
            .map_err(|e| format!("{child_name} not signed by the {parent_name}: {e}"))?;
    }
    let (_, root) = &certs[2];
    root.verify_signature(None)
        .map_err(|e| format!("the root is not self-signed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names() {
        assert_eq!(
            snapshot_taken("raft-vault-1-20261206T083000Z.snap"),
            Some("20261206T083000Z")
        );
        assert_eq!(
            snapshot_taken("raft-vault-1-20261206T083000Z.snap.part"),
            None
        );
        assert_eq!(snapshot_taken("raft-20261206T083000Z.snap"), None);
        assert_eq!(snapshot_taken("notes.txt"), None);
    }

    #[test]
    fn chain_check() {
        type Made = (rcgen::Certificate, rcgen::CertificateParams, rcgen::KeyPair);
        let make = |cn: &str, issuer: Option<&Made>| -> Made {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let cert = match issuer {
                Some((_, ip, ik)) => p
                    .signed_by(&key, &rcgen::Issuer::new(ip.clone(), ik))
                    .expect("signed"),
                None => p.self_signed(&key).expect("self-signed"),
            };
            (cert, p, key)
        };
        let root = make("root", None);
        let int = make("int", Some(&root));
        let leaf = make("leaf", Some(&int));
        chains_to(&leaf.0.pem(), &int.0.pem(), &root.0.pem()).expect("chains");
        let other = make("root", None);
        let e = chains_to(&leaf.0.pem(), &int.0.pem(), &other.0.pem()).expect_err("another root");
        assert!(e.contains("intermediate not signed by the root"), "{e}");
    }
}
