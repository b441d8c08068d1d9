//! The seed cluster's plan: snapshots of what the topology alone renders, and the tree's shape.

#![allow(clippy::unwrap_used)]

use hakube_plan::{PlanSecrets, PlanTree, render};

/// Fixed secrets, so the snapshots are stable.
fn secrets() -> PlanSecrets {
    PlanSecrets::parse("TOKEN=abcdef.0123456789abcdef\nCERTIFICATE_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n").unwrap()
}

fn seed() -> PlanTree {
    let text = include_str!("../../../examples/seed-cluster.yaml");
    render(
        &hakube_topology::load(text, "seed-cluster.yaml").unwrap(),
        &secrets(),
    )
    .unwrap()
}

fn text<'a>(tree: &'a PlanTree, path: &str) -> &'a str {
    std::str::from_utf8(
        &tree
            .get(path)
            .unwrap_or_else(|| panic!("no {path}"))
            .contents,
    )
    .unwrap()
}

#[test]
fn every_vm_gets_its_base_files() {
    let tree = seed();
    let cluster =
        hakube_topology::load(include_str!("../../../examples/seed-cluster.yaml"), "s").unwrap();
    for vm in &cluster.vms {
        let files: Vec<String> = tree.host_files(&vm.name).map(|(p, _)| p).collect();
        for want in [
            "/etc/hostname",
            "/etc/hosts",
            "/etc/cloud/cloud.cfg.d/99-hakube-network.cfg",
        ] {
            assert!(files.iter().any(|f| f == want), "{} lacks {want}", vm.name);
        }
        assert!(
            text(&tree, &format!("hosts/{}/etc/hosts", vm.name))
                .contains(&format!("{}\t{}.", vm.address, vm.name))
        );
    }
}

#[test]
fn base_files_snapshot() {
    let tree = seed();
    insta::assert_snapshot!("etc_hosts", text(&tree, "hosts/lb-1/etc/hosts"));
    insta::assert_snapshot!(
        "network_config_master_1",
        text(
            &tree,
            "hosts/master-1/etc/cloud/cloud.cfg.d/99-hakube-network.cfg"
        )
    );
}

#[test]
fn plan_json_is_the_placed_topology() {
    let tree = seed();
    let v: serde_json::Value = serde_json::from_str(text(&tree, "plan.json")).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["vms"].as_array().unwrap().len(), 16);
    assert_eq!(v["vms"][0]["name"], "lb-1");
    assert_eq!(v["node_totals"].as_array().unwrap().len(), 3);
    assert_eq!(v["topology"]["cluster"]["name"], "seed");
    insta::assert_snapshot!("plan_json", text(&tree, "plan.json"));
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(seed(), seed());
}

#[test]
fn load_balancers_get_haproxy_and_keepalived() {
    let tree = seed();
    for lb in ["lb-1", "lb-2", "lb-3"] {
        let cfg = text(&tree, &format!("hosts/{lb}/etc/haproxy/haproxy.cfg"));
        for master in ["10.20.0.14:6443", "10.20.0.15:6443", "10.20.0.16:6443"] {
            assert!(cfg.contains(master), "{lb} haproxy.cfg lacks {master}");
        }
        assert!(
            cfg.contains(":30443") && cfg.contains(":30080"),
            "{lb}: Traefik NodePorts"
        );
        let ka = text(&tree, &format!("hosts/{lb}/etc/keepalived/keepalived.conf"));
        assert!(
            ka.contains("10.20.0.10") && ka.contains("virtual_router_id 51"),
            "{lb}: {ka}"
        );
        assert_eq!(
            tree.get(&format!("hosts/{lb}/etc/keepalived/check_haproxy.sh"))
                .unwrap()
                .mode,
            0o755
        );
    }
    assert!(tree.get("hosts/master-1/etc/haproxy/haproxy.cfg").is_none());
}

/// The seed's rendered haproxy.cfg passes the real `haproxy -c` (installed by scripts/test).
#[test]
fn seed_haproxy_cfg_passes_haproxy_check() {
    if std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIP seed_haproxy_cfg_passes_haproxy_check: no haproxy binary (scripts/test installs it)"
        );
        return;
    }
    let tree = seed();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, text(&tree, "hosts/lb-1/etc/haproxy/haproxy.cfg")).unwrap();
    let o = std::process::Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "haproxy -c: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn nfs_server_and_storage_classes() {
    let tree = seed();
    let exports = text(&tree, "hosts/nfs-1/etc/exports.d/hakube.exports");
    assert!(
        exports.contains("/srv/nfs/k8s-prod 10.20.0.0/24("),
        "{exports}"
    );
    assert!(
        exports.contains("/srv/nfs/k8s-nonprod 10.20.0.0/24("),
        "{exports}"
    );
    let classes: Vec<&str> = tree
        .iter()
        .map(|(p, _)| p)
        .filter(|p| p.starts_with("cluster/nfs/") && p.contains("storageclass"))
        .collect();
    assert_eq!(classes.len(), 2, "{classes:?}");
    let prod = tree
        .iter()
        .find(|(p, _)| p.starts_with("cluster/nfs/") && p.contains("storageclass-nfs-prod"))
        .unwrap();
    let prod = std::str::from_utf8(&prod.1.contents).unwrap();
    assert!(prod.contains("reclaimPolicy: Retain"), "{prod}");
    // The provisioners mount the NFS VM's address.
    assert!(
        tree.iter()
            .any(|(p, f)| p.starts_with("cluster/nfs/10-deployment")
                && String::from_utf8_lossy(&f.contents).contains("10.20.0.17"))
    );
}

#[test]
fn masters_and_workers_get_kubeadm_configs_and_secrets_stay_private() {
    let tree = seed();
    let init = text(
        &tree,
        "hosts/master-1/etc/kubernetes/kubeadm/kubeadm-config.yaml",
    );
    assert!(
        init.contains("kind: InitConfiguration")
            && init.contains("controlPlaneEndpoint: 10.20.0.10:6443"),
        "{init}"
    );
    assert!(init.contains("podSubnet: 10.244.0.0/16"), "{init}");
    assert_eq!(
        tree.get("hosts/master-1/etc/kubernetes/kubeadm/kubeadm-config.yaml")
            .unwrap()
            .mode,
        0o600
    );
    let secrets = tree.get(hakube_plan::SECRETS_PATH).unwrap();
    assert_eq!(secrets.mode, 0o600);
    // Re-reading the kept secrets renders the same tree.
    let again = PlanSecrets::parse(std::str::from_utf8(&secrets.contents).unwrap()).unwrap();
    let text_src = include_str!("../../../examples/seed-cluster.yaml");
    assert_eq!(
        render(&hakube_topology::load(text_src, "s").unwrap(), &again).unwrap(),
        tree
    );
    assert!(
        !format!("{again:?}").contains("abcdef"),
        "Debug must not show secrets"
    );
}

#[test]
fn addons_render_into_cluster_and_agree_with_haproxy() {
    let tree = seed();
    for path in [
        "cluster/calico/installation.yaml",
        "cluster/traefik/values.yaml",
        "cluster/install-steps.json",
        "hosts/vault-1/etc/vault.d/vault.hcl",
    ] {
        assert!(tree.get(path).is_some(), "no {path}");
    }
    let traefik = text(&tree, "cluster/traefik/values.yaml");
    assert!(
        traefik.contains("30080") && traefik.contains("30443"),
        "Traefik NodePorts must be the ones HAProxy targets"
    );
    for lb in ["10.20.0.11", "10.20.0.12", "10.20.0.13"] {
        assert!(traefik.contains(lb), "Traefik must trust {lb}");
    }
    assert!(text(&tree, "cluster/calico/installation.yaml").contains("10.244.0.0/16"));
}
