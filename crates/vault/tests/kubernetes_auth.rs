//! Kubernetes auth for cert-manager, against real OpenBao and a TokenReview stand-in that
//! applies the API server's audience rules (tests/fake_tokenreview.py): the seed's setup
//! (no reviewer JWT) fails exactly as issue 14 says, hakube's setup (reviewer JWT, role
//! audience `vault://vault-issuer`) logs cert-manager in, a re-run changes nothing, a token
//! for another audience is refused, and the reviewer JWT is in no output or log.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::LocalCluster;
use hakube_vault::Secret;
use hakube_vault::bootstrap::{
    BootstrapSpec, FileKeyStore, KeyStore as _, KubernetesAuthSpec, Report, bootstrap,
    configure_kubernetes_auth,
};
use hakube_vault::client::Client;
use serde_json::json;

const API_AUD: &str = "https://kubernetes.default.svc.cluster.local";

fn b64url(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    s
}

/// A ServiceAccount token as TokenRequest issues it (projected claims); signed by the
/// stand-in's "issuer", i.e. not verified by anyone but the stand-in.
fn sa_token(ns: &str, name: &str, aud: &[&str]) -> Secret {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let header = json!({ "alg": "RS256", "kid": "test" });
    let claims = json!({
        "aud": aud,
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "iss": API_AUD,
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io": {
            "namespace": ns,
            "serviceaccount": { "name": name, "uid": "0b2f6c1e-4a43-4b8e-9d39-2f1f5c7c2a11" },
        },
    });
    Secret::new(format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(b"not-checked-by-vault-signature-0123456789")
    ))
}

struct Fake(Child);
impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> Option<String> {
    ["python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("-c")
                .arg("import ssl")
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_manager_logs_in_with_a_reviewer_jwt_and_its_audience() {
    let bao = need_bao!();
    let Some(py) = python() else {
        eprintln!("SKIP: no python3 with ssl for the TokenReview stand-in");
        return;
    };
    let c = LocalCluster::start(&bao, "ka", 1);
    let d = tempfile::tempdir().expect("tmp");

    // The "cluster CA" and the API server's certificate (for 127.0.0.1).
    let kube_ca_key = rcgen::KeyPair::generate().expect("key");
    let mut p = rcgen::CertificateParams::default();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "kubernetes");
    let kube_ca = p.self_signed(&kube_ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(p, kube_ca_key);
    let srv_key = rcgen::KeyPair::generate().expect("key");
    let mut sp = rcgen::CertificateParams::new(vec!["kubernetes".to_owned()]).expect("p");
    sp.subject_alt_names
        .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let srv = sp.signed_by(&srv_key, &issuer).expect("cert");
    std::fs::write(d.path().join("api.crt"), srv.pem()).expect("w");
    std::fs::write(d.path().join("api.key"), srv_key.serialize_pem()).expect("w");
    let port_file = d.path().join("port");
    let log = d.path().join("reviews.jsonl");
    let _fake = Fake(
        Command::new(&py)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fake_tokenreview.py"
            ))
            .arg(d.path().join("api.crt"))
            .arg(d.path().join("api.key"))
            .arg(&port_file)
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !port_file.exists() {
        assert!(Instant::now() < deadline, "stand-in never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let host = format!(
        "https://127.0.0.1:{}",
        std::fs::read_to_string(&port_file).expect("port").trim()
    );

    let api = Client::for_nodes(&c.spec.nodes, &c.tls.ca_cert_pem, Duration::from_secs(5))
        .expect("client");
    let store = FileKeyStore::new(d.path().join("keys.json"));
    let mut spec = BootstrapSpec::new(None);
    spec.snapshot_token = false;
    spec.wait = Duration::from_secs(60);
    bootstrap(&api, &store, &spec).await.expect("bootstrap");
    let root = store.load().expect("load").expect("kept").root_token;
    let mut out = String::new();

    let issuer_token = sa_token("cert-manager", "vault-issuer", &["vault://vault-issuer"]);
    let reviewer = sa_token("kube-system", "vault-token-reviewer", &[API_AUD]);

    // The seed's setup: no reviewer JWT. OpenBao authenticates the TokenReview with the
    // presented token, whose audience is not the API server's: refused.
    api.write(
        &root,
        "sys/auth/kubernetes",
        json!({ "type": "kubernetes" }),
    )
    .await
    .expect("enable");
    api.write(
        &root,
        "auth/kubernetes/config",
        json!({ "kubernetes_host": host, "kubernetes_ca_cert": kube_ca.pem() }),
    )
    .await
    .expect("config");
    api.write(
        &root,
        "auth/kubernetes/role/cert-manager",
        json!({
            "bound_service_account_names": ["vault-issuer"],
            "bound_service_account_namespaces": ["cert-manager"],
            "audience": "vault://vault-issuer",
            "token_policies": ["cert-manager"],
            "token_ttl": "20m",
        }),
    )
    .await
    .expect("role");
    let e = api
        .login_kubernetes("kubernetes", "cert-manager", &issuer_token)
        .await
        .expect_err("the seed's setup cannot log in");
    out.push_str(&format!("{e}\n"));
    let reviews = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        reviews.contains("\"caller_sub\": \"system:serviceaccount:cert-manager:vault-issuer\"")
            && reviews.contains("\"result\": \"401\""),
        "the TokenReview was authenticated with cert-manager's own token and refused: {reviews}"
    );

    // hakube's setup.
    let k = KubernetesAuthSpec {
        mount: "kubernetes".into(),
        host: host.clone(),
        ca_pem: kube_ca.pem(),
        reviewer_jwt: reviewer.clone(),
        role: "cert-manager".into(),
        service_accounts: vec!["vault-issuer".into()],
        namespaces: vec!["cert-manager".into()],
        audience: "vault://vault-issuer".into(),
        policies: vec!["cert-manager".into()],
        ttl: "20m".into(),
    };
    let mut r1 = Report::default();
    configure_kubernetes_auth(&api, &root, &k, false, &mut r1)
        .await
        .expect("configure");
    assert!(!r1.is_empty());
    let mut r2 = Report::default();
    configure_kubernetes_auth(&api, &root, &k, false, &mut r2)
        .await
        .expect("re-run");
    assert!(r2.is_empty(), "a re-run changed: {r2:?}");
    out.push_str(&format!("{r1:?}{r2:?}"));

    std::fs::write(&log, "").expect("truncate");
    let t = api
        .login_kubernetes("kubernetes", "cert-manager", &issuer_token)
        .await
        .expect("cert-manager logs in");
    let me = api
        .read(&t, "auth/token/lookup-self")
        .await
        .expect("lookup")
        .expect("answer");
    let policies = me["data"]["policies"].to_string();
    assert!(policies.contains("cert-manager"), "{policies}");
    let reviews = std::fs::read_to_string(&log).expect("log");
    assert!(
        reviews
            .contains("\"caller_sub\": \"system:serviceaccount:kube-system:vault-token-reviewer\"")
            && reviews.contains("\"spec_audiences\": [\"vault://vault-issuer\"]")
            && reviews.contains("\"result\": \"authenticated\""),
        "reviewed by the reviewer, for cert-manager's audience: {reviews}"
    );

    // A token for the API server (not minted for Vault) is refused.
    let plain = sa_token("cert-manager", "vault-issuer", &[API_AUD]);
    let e = api
        .login_kubernetes("kubernetes", "cert-manager", &plain)
        .await
        .expect_err("wrong audience");
    out.push_str(&format!("{e}\n"));

    let everything = format!("{out}{}", c.logs());
    for s in [&reviewer, &issuer_token, &root] {
        assert!(
            !everything.contains(s.expose()),
            "a token leaked into output or logs"
        );
    }
}
