//! The seed's plan against the defects of issue 14 that only the composed plan shows: each test
//! reads the rendered tree the way the consuming software would and fails on the old tree.

#![allow(clippy::unwrap_used)]

mod common;

use common::{CERT_KEY, TOKEN, seed, text};
use hakube_plan::PlanTree;
use serde_json::Value;

fn yaml(tree: &PlanTree, path: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(text(tree, path)).unwrap()
}

// Defect 9: the API server certificate lacks the VIP's name from /etc/hosts.
#[test]
fn every_name_etc_hosts_gives_the_vip_is_in_the_api_certificate() {
    let tree = seed();
    let hosts = text(&tree, "hosts/worker-prod-1/etc/hosts");
    let names: Vec<&str> = hosts
        .lines()
        .find(|l| l.starts_with("10.20.0.10"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .collect();
    assert!(!names.is_empty());
    let cluster_config = yaml(
        &tree,
        "hosts/master-1/etc/kubernetes/kubeadm/kubeadm-config.yaml",
    )
    .into_iter()
    .find(|d| d["kind"] == "ClusterConfiguration")
    .unwrap();
    let sans: Vec<&str> = cluster_config["apiServer"]["certSANs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for name in names {
        assert!(sans.contains(&name), "{name} not in certSANs {sans:?}");
    }
}

// Defect 6: kubeadm's secrets inside the GitOps tree.
#[test]
fn no_secret_sits_in_the_gitops_tree() {
    let tree = seed();
    assert!(!hakube_plan::SECRETS_PATH.starts_with("cluster/"));
    assert!(hakube_plan::SECRETS_PATH.starts_with(&format!("{}/", hakube_plan::SECRETS_DIR)));
    let kept = text(&tree, hakube_plan::SECRETS_PATH);
    assert!(kept.contains(TOKEN) && kept.contains(CERT_KEY));
    for (path, file) in tree.iter().filter(|(p, _)| p.starts_with("cluster/")) {
        let t = String::from_utf8_lossy(&file.contents);
        assert!(
            !t.contains(TOKEN) && !t.contains(CERT_KEY),
            "{path} holds a secret"
        );
        assert_ne!(
            file.mode & 0o044,
            0,
            "{path}: an owner-only file in cluster/"
        );
    }
}

fn steps(tree: &PlanTree) -> Vec<Value> {
    serde_json::from_str(text(tree, "cluster/install-steps.json")).unwrap()
}

// Defect 3: the NFS provisioner and StorageClasses in no install step.
#[test]
fn the_nfs_provisioner_is_installed_after_the_cni_and_before_traefik() {
    let tree = seed();
    let steps = steps(&tree);
    let component = |s: &Value| s["component"].as_str().unwrap_or_default().to_owned();
    let first = |c: &str| steps.iter().position(|s| component(s) == c).unwrap();
    let nfs = first("nfs");
    assert!(nfs > 0 && steps[..nfs].iter().all(|s| component(s) == "calico"));
    let files: Vec<&str> = steps[nfs]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        files.iter().any(|f| f.contains("storageclass-nfs-prod")),
        "{files:?}"
    );
    assert!(files[0].contains("namespace"), "Namespace first: {files:?}");
    for f in &files {
        assert!(
            tree.get(&format!("cluster/{f}")).is_some(),
            "{f} not rendered"
        );
    }
    // Every manifest of the folder is in its kustomization.
    let k = yaml(&tree, "cluster/nfs/kustomization.yaml").remove(0);
    assert_eq!(k["resources"].as_array().unwrap().len(), files.len(), "{k}");
    let traefik = steps
        .iter()
        .position(|s| s["release"] == "traefik")
        .unwrap();
    assert!(nfs < traefik);
}

// Defect 5: Traefik off the prod workers HAProxy targets.
#[test]
fn traefik_runs_on_every_ingress_backend_and_tolerates_the_prod_taint() {
    let tree = seed();
    let cfg = text(&tree, "hosts/lb-1/etc/haproxy/haproxy.cfg");
    let backends: std::collections::BTreeSet<&str> = cfg
        .lines()
        .filter(|l| l.trim_start().starts_with("server ") && l.contains(":30443"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(backends.len(), 6, "{backends:?}");
    let v = yaml(&tree, "cluster/traefik/values.yaml").remove(0);
    let groups = &v["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchExpressions"][0]["values"];
    assert_eq!(groups, &serde_json::json!(["prod", "nonprod"]));
    let prod = hakube_addons::Taint::new(
        "environment",
        Some("prod"),
        hakube_addons::TaintEffect::NoSchedule,
    );
    assert!(
        v["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| prod.tolerated_by(t))
    );
    // The log agent also runs on the masters and the prod workers.
    let agent = yaml(&tree, "cluster/logging/agent-values.yaml").remove(0);
    let tols = agent["controller"]["tolerations"].as_array().unwrap();
    for t in [prod, hakube_addons::Taint::control_plane()] {
        assert!(tols.iter().any(|x| t.tolerated_by(x)), "agent: {t}");
    }
    // Prod's example app runs on prod workers only.
    let k = text(&tree, "cluster/apps/overlays/prod/kustomization.yaml");
    assert!(k.contains("hakube.io/worker-group: prod"), "{k}");
}

// Defect 8: Prometheus and Loki on emptyDir.
#[test]
fn prometheus_and_loki_keep_their_data_on_a_node() {
    let tree = seed();
    let prom = yaml(&tree, "cluster/monitoring/prometheus-values.yaml").remove(0);
    assert_eq!(prom["server"]["persistentVolume"]["enabled"], true);
    let loki = yaml(&tree, "cluster/logging/loki-values.yaml").remove(0);
    assert_eq!(loki["singleBinary"]["persistence"]["enabled"], true);
    for path in [
        "cluster/monitoring/local-volumes.yaml",
        "cluster/logging/local-volumes.yaml",
    ] {
        let pv = yaml(&tree, path)
            .into_iter()
            .find(|d| d["kind"] == "PersistentVolume")
            .unwrap();
        let node = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]
            ["matchExpressions"][0]["values"][0]
            .as_str()
            .unwrap();
        assert!(
            node.starts_with("worker-nonprod-"),
            "{path}: untainted node, got {node}"
        );
    }
}

// The scrape-target rule's finding: HAProxy's exporter was bound to 127.0.0.1 while Prometheus
// scraped each LB's own address.
#[test]
fn haproxy_exporters_listen_where_prometheus_scrapes() {
    let tree = seed();
    for (lb, addr) in [
        ("lb-1", "10.20.0.11"),
        ("lb-2", "10.20.0.12"),
        ("lb-3", "10.20.0.13"),
    ] {
        let cfg = text(&tree, &format!("hosts/{lb}/etc/haproxy/haproxy.cfg"));
        assert!(
            cfg.lines().any(|l| l.trim() == format!("bind {addr}:8404")),
            "{lb}: {cfg}"
        );
    }
    let prom = yaml(&tree, "cluster/monitoring/prometheus-values.yaml").remove(0);
    assert!(
        prom["extraScrapeConfigs"]
            .as_str()
            .unwrap()
            .contains("10.20.0.11:8404")
    );
}
