//! The bootstrap against three real `bao server` processes on 127.0.0.1 (TLS from the
//! generated CA): from scratch, re-run without changes, a CSR signed the way cert-manager's
//! Vault issuer asks (`<mount>/sign/<role>`) chaining to the root, the leader killed and a
//! certificate still signed through a surviving node, the node back sealed and a re-run
//! unsealing only it, a raft snapshot saved by the client and
//! by the rendered timer script, restored onto a fresh cluster whose PKI signs with the same
//! root; a cluster initialised by someone else refused with nothing changed; and no secret in
//! any output or log.

mod common;

use std::time::{Duration, Instant};

use common::LocalCluster;
use hakube_vault::Secret;
use hakube_vault::bootstrap::{
    BootstrapSpec, FileKeyStore, KeyStore as _, PkiSpec, Report, bootstrap, restore_snapshot,
    save_snapshot,
};
use hakube_vault::client::{Client, Health, InitSecrets, SignRequest};
use hakube_vault::config::SnapshotSchedule;
use serde_json::json;
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::{FromDer as _, X509Certificate};

fn client(c: &LocalCluster) -> Client {
    Client::for_nodes(&c.spec.nodes, &c.tls.ca_cert_pem, Duration::from_secs(5))
        .expect("client")
        .retry_for(Duration::from_secs(20))
}

fn spec() -> BootstrapSpec {
    let mut s = BootstrapSpec::new(Some(PkiSpec::new(
        "hakube tests",
        "https://vault.test.example:8200",
        "apps",
        vec!["test.example".into()],
    )));
    // Voters after 1 s instead of 10 s: the test does not wait for nothing.
    s.stabilization = Some(Duration::from_secs(1));
    s.wait = Duration::from_secs(60);
    s
}

/// A CSR as cert-manager makes it for a Certificate with only `dnsNames` (no common name),
/// and the sign request its Vault issuer sends.
fn csr(name: &str) -> SignRequest {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut p = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
    p.distinguished_name = rcgen::DistinguishedName::new();
    SignRequest {
        csr_pem: p.serialize_request(&key).expect("csr").pem().expect("pem"),
        common_name: None,
        alt_names: vec![name.to_owned()],
        ttl: "1h".into(),
    }
}

fn der(pem: &str) -> Vec<u8> {
    parse_x509_pem(pem.as_bytes()).expect("pem").1.contents
}

/// Checks leaf -> chain -> root by signatures and names; returns the root's DER.
fn assert_chains_to(leaf_pem: &str, chain: &[String], root_pem: &str) {
    let mut certs: Vec<Vec<u8>> = vec![der(leaf_pem)];
    certs.extend(chain.iter().map(|c| der(c)));
    let root_der = der(root_pem);
    if certs.last() != Some(&root_der) {
        certs.push(root_der);
    }
    for w in certs.windows(2) {
        let (_, child) = X509Certificate::from_der(&w[0]).expect("x509");
        let (_, parent) = X509Certificate::from_der(&w[1]).expect("x509");
        assert_eq!(child.issuer(), parent.subject());
        child
            .verify_signature(Some(parent.public_key()))
            .expect("signed by its parent");
    }
    let (_, root) = X509Certificate::from_der(certs.last().expect("root")).expect("x509");
    root.verify_signature(None).expect("self-signed root");
}

/// A token with only cert-manager's policy, as its Kubernetes login would get.
async fn signer_token(c: &Client, root: &Secret) -> Secret {
    let v = c
        .write(
            root,
            "auth/token/create",
            json!({ "policies": ["cert-manager"], "ttl": "10m" }),
        )
        .await
        .expect("token")
        .expect("answer");
    Secret::new(v["auth"]["client_token"].as_str().expect("token"))
}

fn all_secrets(s: &InitSecrets) -> Vec<String> {
    let mut v: Vec<String> = s
        .unseal_keys
        .iter()
        .map(|k| k.expose().to_owned())
        .collect();
    v.push(s.root_token.expose().to_owned());
    v.extend(s.snapshot_token.iter().map(|t| t.expose().to_owned()));
    v
}

fn report_text(r: &Report) -> String {
    r.changes
        .iter()
        .map(|c| format!("{c}\n"))
        .collect::<String>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_rerun_sign_failover_snapshot_restore() {
    let bao = need_bao!();
    let mut out = String::new(); // everything a user would see
    let mut c = LocalCluster::start(&bao, "hb", 3);
    let _t_all = Instant::now();
    let keys_dir = tempfile::tempdir().expect("tmp");
    let store = FileKeyStore::new(keys_dir.path().join("openbao-keys.json"));
    let api = client(&c);

    let t = Instant::now();
    let r1 = bootstrap(&api, &store, &spec()).await.expect("bootstrap");
    let first = t.elapsed();
    out.push_str(&report_text(&r1));
    out.push_str(&format!("{r1:?}"));
    assert!(
        r1.changes.iter().any(|c| c.what.starts_with("initialised")),
        "{r1:?}"
    );
    assert!(
        r1.changes.iter().filter(|c| c.what == "unsealed").count() == 3,
        "{r1:?}"
    );

    let t = Instant::now();
    let r2 = bootstrap(&api, &store, &spec()).await.expect("re-run");
    let rerun = t.elapsed();
    assert!(r2.is_empty(), "a re-run changed: {r2:?}");
    eprintln!("bootstrap from scratch: {first:?}; re-run: {rerun:?} (0 changes)");

    let secrets = store.load().expect("load").expect("kept");
    assert_eq!(secrets.unseal_keys.len(), 5);
    assert!(secrets.snapshot_token.is_some());
    let root = secrets.root_token.clone();
    let peers = api.raft_peers(&root).await.expect("peers");
    assert_eq!(peers.iter().filter(|p| p.voter).count(), 3, "{peers:?}");

    // A CSR signed as cert-manager's Vault issuer does it, with cert-manager's policy only.
    let root_ca = api
        .read(&root, "pki/cert/ca")
        .await
        .expect("read")
        .expect("root CA")["data"]["certificate"]
        .as_str()
        .expect("pem")
        .to_owned();
    let signer = signer_token(&api, &root).await;
    let s = api
        .sign(&signer, "pki_int", "apps", &csr("web.test.example"))
        .await
        .expect("signed");
    assert_chains_to(&s.certificate, &s.ca_chain, &root_ca);
    // ... and openssl agrees.
    let d = keys_dir.path();
    std::fs::write(d.join("root.pem"), &root_ca).expect("w");
    std::fs::write(d.join("chain.pem"), s.ca_chain.join("\n")).expect("w");
    std::fs::write(d.join("leaf.pem"), &s.certificate).expect("w");
    let o = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(d.join("root.pem"))
        .arg("-untrusted")
        .arg(d.join("chain.pem"))
        .arg(d.join("leaf.pem"))
        .output();
    if let Ok(o) = o {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // Outside the role's domains: refused.
    let e = api
        .sign(&signer, "pki_int", "apps", &csr("evil.example.com"))
        .await
        .expect_err("not allowed");
    out.push_str(&e.to_string());

    // Snapshot through the client (before the failover, while all three run).
    let snap_path = d.join("raft.snap");
    let size = save_snapshot(&api, &root, &snap_path)
        .await
        .expect("snapshot");
    assert!(size > 0);

    // The rendered snapshot job, run for real against the active node (keep 1, run twice).
    let active = {
        let mut a = None;
        for i in 0..3 {
            if api.health(i).await.expect("health") == Health::Active {
                a = Some(i);
            }
        }
        a.expect("an active node")
    };
    let job_dir = d.join("snapshots");
    let sched = SnapshotSchedule {
        dir: job_dir.display().to_string(),
        keep: 1,
        ..SnapshotSchedule::default()
    };
    let token_file = d.join("snapshot.token");
    std::fs::write(
        &token_file,
        secrets.snapshot_token.as_ref().expect("t").expose(),
    )
    .expect("w");
    let script = sched.script(
        c.spec.nodes[active].api_port,
        &c.ca_file().parent().expect("tls dir").display().to_string(),
        &token_file.display().to_string(),
    );
    std::fs::write(d.join("snap.sh"), &script).expect("w");
    let path = format!(
        "{}:{}",
        bao.parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        std::env::var("PATH").unwrap_or_default()
    );
    for _ in 0..2 {
        let o = std::process::Command::new("sh")
            .arg(d.join("snap.sh"))
            .env("PATH", &path)
            .output()
            .expect("sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        out.push_str(&text);
        assert!(o.status.success(), "{text}");
        std::thread::sleep(Duration::from_millis(1100));
    }
    let snaps: Vec<_> = std::fs::read_dir(&job_dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(snaps.len(), 1, "pruned to keep=1: {snaps:?}");
    assert!(
        snaps[0].ends_with(".snap") && !snaps[0].contains("part"),
        "{snaps:?}"
    );

    // Kill the leader: a certificate is still signed through a surviving node.
    c.kill(active);
    let t = Instant::now();
    let s2 = api
        .sign(&signer, "pki_int", "apps", &csr("after.test.example"))
        .await
        .expect("signed after the leader died");
    let failover = t.elapsed();
    eprintln!(
        "leader {} killed: next certificate signed after {failover:?}",
        c.spec.nodes[active].name
    );
    assert_chains_to(&s2.certificate, &s2.ca_chain, &root_ca);

    // The killed node comes back sealed (as after a reboot): a re-run unseals it and nothing
    // else.
    c.spawn(active);
    c.wait_listening();
    let r5 = bootstrap(&api, &store, &spec())
        .await
        .expect("re-run after a restart");
    assert_eq!(
        r5.changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [format!("{}: unsealed", c.spec.nodes[active].name)],
    );

    // The old cluster is gone (a disaster), its logs kept for the secrets check below.
    let old_logs = c.logs();
    drop(c);

    // DR: the snapshot onto a fresh 3-node cluster, unsealed with the kept keys; the PKI signs
    // with the same root. A second restore run changes nothing.
    let fresh = LocalCluster::start(&bao, "dr", 3);
    let api2 = client(&fresh);
    let dr_store = FileKeyStore::new(d.join("dr-keys.json"));
    dr_store.save(&secrets).expect("copy of the kept keys");
    let t = Instant::now();
    let r3 = restore_snapshot(
        &api2,
        &dr_store,
        std::fs::read(&snap_path).expect("snap"),
        &spec(),
    )
    .await
    .unwrap_or_else(|e| panic!("restore: {e}\n{}", fresh.log(0)));
    eprintln!("restore onto a fresh cluster: {:?}", t.elapsed());
    out.push_str(&report_text(&r3));
    let root_ca2 = api2
        .read(&root, "pki/cert/ca")
        .await
        .expect("read")
        .expect("ca")["data"]["certificate"]
        .as_str()
        .expect("pem")
        .to_owned();
    assert_eq!(root_ca2, root_ca, "same root CA after the restore");
    let signer2 = signer_token(&api2, &root).await;
    let s3 = api2
        .sign(&signer2, "pki_int", "apps", &csr("dr.test.example"))
        .await
        .expect("signed after restore");
    assert_chains_to(&s3.certificate, &s3.ca_chain, &root_ca);
    let r4 = restore_snapshot(
        &api2,
        &dr_store,
        std::fs::read(&snap_path).expect("snap"),
        &spec(),
    )
    .await
    .expect("re-run");
    assert!(r4.is_empty(), "{r4:?}");

    // No secret anywhere a user or a log collector sees.
    let kept = store.load().expect("load").expect("kept");
    let everything = format!("{out}{old_logs}{}", fresh.logs());
    for s in all_secrets(&kept) {
        assert!(
            !everything.contains(&s),
            "a secret leaked into output or logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_initialised_by_someone_else_is_refused_unchanged() {
    let bao = need_bao!();
    let c = LocalCluster::start(&bao, "other", 3);
    let (code, text) = c.cli(
        0,
        &[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ],
        None,
    );
    assert_eq!(code, 0, "{text}");
    let api = client(&c);
    let before: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(api.seal_status(i).await.expect("status"));
        }
        v
    };
    let d = tempfile::tempdir().expect("tmp");

    // No kept keys.
    let store = FileKeyStore::new(d.path().join("keys.json"));
    let e = bootstrap(&api, &store, &spec()).await.expect_err("refused");
    assert!(matches!(e, hakube_vault::Error::NotOurs { .. }), "{e}");
    assert!(e.to_string().contains("other-1"), "{e}");
    assert!(!store.path().exists(), "nothing written");

    // Kept keys of another cluster: refused too, the unseal progress left as it was.
    let alien = InitSecrets {
        unseal_keys: vec![Secret::new(
            "qnNtYXJ0c2VjcmV0c2hhcmVkb25vdGxlYWtrZXlzMTIzNDU2Nzg5MA==",
        )],
        threshold: 1,
        root_token: Secret::new("s.notthisclustersrootoken"),
        cluster_id: None,
        snapshot_token: None,
    };
    store.save(&alien).expect("save");
    let e = bootstrap(&api, &store, &spec()).await.expect_err("refused");
    assert!(matches!(e, hakube_vault::Error::NotOurs { .. }), "{e}");
    assert_eq!(
        store.load().expect("load"),
        Some(alien.clone()),
        "store untouched"
    );
    for (i, b) in before.iter().enumerate() {
        let now = api.seal_status(i).await.expect("status");
        assert_eq!(
            (now.initialized, now.sealed, now.progress),
            (b.initialized, b.sealed, b.progress)
        );
    }
    let everything = format!("{e}{e:?}{}", c.logs());
    for s in all_secrets(&alien) {
        assert!(!everything.contains(&s));
    }
}
