//! Bad input and unreachable nodes: clear errors naming the node or field, nothing written.

use std::net::TcpListener;
use std::time::Duration;

use hakube_vault::bootstrap::{BootstrapSpec, FileKeyStore, bootstrap};
use hakube_vault::certs::{TlsBundle, TlsSpec};
use hakube_vault::client::{Client, Endpoint};
use hakube_vault::config::{ClusterSpec, Node};

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn an_unreachable_node_is_named_and_nothing_is_kept() {
    let node = Node {
        name: "vault-9".into(),
        address: "127.0.0.1".parse().expect("ip"),
        api_port: closed_port(),
        cluster_port: closed_port(),
    };
    let tls = TlsBundle::generate(&TlsSpec {
        cluster: ClusterSpec {
            name: "t".into(),
            nodes: vec![node.clone()],
        },
        organisation: "t".into(),
        vip: None,
        vip_dns: vec![],
    })
    .expect("certs");
    let api = Client::for_nodes(&[node], &tls.ca_cert_pem, Duration::from_secs(2)).expect("client");
    let d = tempfile::tempdir().expect("tmp");
    let store = FileKeyStore::new(d.path().join("keys.json"));
    let e = bootstrap(&api, &store, &BootstrapSpec::new(None))
        .await
        .expect_err("unreachable");
    assert!(
        matches!(e, hakube_vault::Error::Unreachable { .. }),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("vault-9: GET sys/seal-status"),
        "{e}"
    );
    assert!(!store.path().exists());
}

#[test]
fn bad_client_input_is_refused() {
    let e = Client::new(
        vec![Endpoint {
            name: "a".into(),
            url: "http://10.0.0.1:8200".into(),
        }],
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        Duration::from_secs(1),
    )
    .expect_err("refused");
    assert!(
        e.to_string().contains("ca") || e.to_string().contains("https"),
        "{e}"
    );
    let e = Client::new(vec![], "", Duration::from_secs(1)).expect_err("refused");
    assert!(e.to_string().contains("endpoints"), "{e}");
}
