//! The rendered server config and certificates, run by the real `bao server`: three nodes
//! start with them, answer over TLS checked against the generated CA, and report themselves
//! uninitialised and sealed (what a fresh cluster must look like before the bootstrap).

mod common;

use common::LocalCluster;

#[test]
fn three_nodes_start_with_the_rendered_config_and_tls() {
    let bao = need_bao!();
    let c = LocalCluster::start(&bao, "cfg", 3);
    for i in 0..3 {
        let (code, out) = c.cli(i, &["status", "-format=json"], None);
        // `bao status` exits 2 when sealed.
        assert_eq!(code, 2, "{out}\n{}", c.log(i));
        let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
        assert_eq!(v["initialized"], false, "{out}");
        assert_eq!(v["sealed"], true, "{out}");
        assert_eq!(v["storage_type"], "raft", "{out}");
    }
    // OpenBao takes every line of the rendered config (it warns about fields it ignores).
    assert!(
        !c.logs().contains("unknown or unsupported field"),
        "{}",
        c.logs()
    );
    // Verification really happens: a client trusting another CA is refused.
    let other = hakube_vault::certs::TlsBundle::generate(&hakube_vault::certs::TlsSpec {
        cluster: c.spec.clone(),
        organisation: "other".into(),
        vip: None,
        vip_dns: vec![],
    })
    .expect("certs");
    let other_ca = c.dir.path().join("other-ca.crt");
    std::fs::write(&other_ca, other.ca_cert_pem).expect("write");
    let out = std::process::Command::new(&bao)
        .args(["status"])
        .env("BAO_ADDR", c.spec.nodes[0].api_url())
        .env("BAO_CACERT", &other_ca)
        .output()
        .expect("bao");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("certificate"), "{text}");
}
