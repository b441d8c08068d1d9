//! Snapshots of a seed-like cluster: 3 masters, 6 workers in two groups, 3 load balancers.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use hakube_kubeadm::config::TaintEffect;
use hakube_kubeadm::{ClusterInput, ClusterSecrets, MasterInput, WorkerInput, render_cluster};

fn seed() -> ClusterInput {
    let mut c = ClusterInput::new(
        "hakube",
        std::net::Ipv4Addr::new(192, 168, 50, 10),
        "v1.33.2".parse().unwrap(),
        "10.244.0.0/16".parse().unwrap(),
    );
    for i in 1..=3u8 {
        c.masters.push(MasterInput::new(
            format!("master-{i}"),
            format!("192.168.50.2{i}").parse().unwrap(),
        ));
    }
    for i in 1..=6u8 {
        let env = if i <= 3 { "prod" } else { "nonprod" };
        let mut w = WorkerInput::new(
            format!("worker-{i}"),
            format!("192.168.50.3{i}").parse().unwrap(),
        )
        .label("hakube.io/env", env)
        .label("node-role.kubernetes.io/worker", "");
        if env == "nonprod" {
            w = w.taint("hakube.io/env", Some("nonprod"), TaintEffect::NoSchedule);
        }
        c.workers.push(w);
    }
    c.cert_sans = vec![
        "k8s-api.hakube.lan".into(),
        "lb-1".into(),
        "lb-2".into(),
        "lb-3".into(),
    ];
    c
}

fn secrets(with_hash: bool) -> ClusterSecrets {
    let s = ClusterSecrets {
        token: "h4kube.0123456789abcdef".parse().unwrap(),
        certificate_key: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
            .parse()
            .unwrap(),
        ca_cert_hash: None,
    };
    if with_hash {
        s.with_ca_cert_hash(
            "sha256:a2cfd158e6346f9ca75589ad98e0fcc76d89f03e89b2b5f84e7fe87a4328fdc9"
                .parse()
                .unwrap(),
        )
    } else {
        s
    }
}

fn tree(with_hash: bool) -> String {
    let r = render_cluster(&seed(), &secrets(with_hash)).unwrap();
    let mut out = String::new();
    for n in &r.nodes {
        out.push_str(&format!(
            "######## {} ({:?}) post_join_labels={:?} pending={}\n",
            n.name, n.role, n.post_join_labels, n.join_config_pending
        ));
        for f in &n.files {
            out.push_str(&format!(
                "#### {} mode {:o}\n{}",
                f.path,
                f.mode,
                String::from_utf8_lossy(&f.content)
            ));
        }
    }
    out
}

#[test]
fn seed_cluster_render() {
    insta::assert_snapshot!("seed_cluster_render", tree(true));
}

#[test]
fn seed_cluster_render_before_init() {
    let t = tree(false);
    assert!(!t.contains("JoinConfiguration"));
    insta::assert_snapshot!("seed_cluster_render_before_init", t);
}
