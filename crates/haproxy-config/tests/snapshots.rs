//! insta snapshots of the seed-like rendered set: 3 LBs, 3 masters, 6 workers, both TLS modes.
#![allow(clippy::unwrap_used)]

mod support;

use hakube_haproxy_config::IngressTls;
use support::{SEED_CERT_PATH, seed_input};

#[test]
fn seed_passthrough() {
    let nodes = seed_input(IngressTls::Passthrough).render().unwrap();
    assert_eq!(nodes.len(), 3);
    for node in &nodes {
        insta::assert_snapshot!(format!("passthrough_{}", node.node), node.to_string());
    }
}

#[test]
fn seed_terminate() {
    let tls = IngressTls::Terminate {
        cert_path: SEED_CERT_PATH.to_owned(),
    };
    let nodes = seed_input(tls).render().unwrap();
    assert_eq!(nodes.len(), 3);
    for node in &nodes {
        insta::assert_snapshot!(format!("terminate_{}", node.node), node.to_string());
    }
}
