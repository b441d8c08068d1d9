//! The seed cluster's plan: snapshots of what the topology alone renders, and the tree's shape.

#![allow(clippy::unwrap_used)]

mod common;

use common::{secrets, seed, text};
use hakube_plan::{PlanSecrets, render};

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
fn etcd_backup_export_goes_to_the_masters_only() {
    let tree = seed();
    let exports = text(&tree, "hosts/nfs-1/etc/exports.d/hakube.exports");
    let opts = "(rw,sync,no_subtree_check,no_root_squash)";
    let line = exports
        .lines()
        .find(|l| l.starts_with("/srv/nfs/etcd-backup "))
        .unwrap_or_else(|| panic!("no backup export in {exports}"));
    // master-1..3, nobody else; root writes (the CronJob runs as root).
    assert_eq!(
        line,
        format!("/srv/nfs/etcd-backup 10.20.0.14/32{opts} 10.20.0.15/32{opts} 10.20.0.16/32{opts}")
    );
    // The StorageClass exports keep root squashed, and the backup export gets no provisioner.
    assert_eq!(exports.matches("no_root_squash").count(), 3, "{exports}");
    assert!(
        !tree
            .iter()
            .any(|(p, _)| p.starts_with("cluster/nfs/") && p.contains("etcd")),
        "the backup export must not back a StorageClass"
    );
}

#[test]
fn etcd_backup_cronjob_writes_to_the_nfs_vm() {
    let tree = seed();
    let cronjob = text(&tree, "cluster/etcd-backup/cronjob.yaml");
    for want in [
        "kind: CronJob",
        "  schedule: 0 */6 * * *\n",
        // The NFS VM's address and the export the masters may mount.
        "            nfs:\n              path: /srv/nfs/etcd-backup\n              server: \"10.20.0.17\"\n",
        &format!("image: {}\n", hakube_plan::KUBEADM_ETCD_IMAGE),
        // keep: 28 prunes from the 29th newest on.
        "| tail -n +29 |",
    ] {
        assert!(cronjob.contains(want), "no {want:?} in {cronjob}");
    }
    let steps = text(&tree, "cluster/install-steps.json");
    assert!(steps.contains("etcd-backup/cronjob.yaml"), "{steps}");
}

#[test]
fn no_backup_section_no_cronjob_and_no_backup_export() {
    let src = include_str!("../../../examples/seed-cluster.yaml");
    let start = src.find("backup:\n").unwrap();
    let end = src.find("ssh:\n").unwrap();
    let without = format!("{}{}", &src[..start], &src[end..]).replace(
        "    # etcd snapshots (backup.etcd): exported to the masters only, backs no StorageClass.\n    - path: /srv/nfs/etcd-backup\n",
        "",
    );
    let tree = render(&hakube_topology::load(&without, "s").unwrap(), &secrets()).unwrap();
    assert!(tree.get("cluster/etcd-backup/cronjob.yaml").is_none());
    let exports = text(&tree, "hosts/nfs-1/etc/exports.d/hakube.exports");
    assert!(!exports.contains("etcd-backup"), "{exports}");
    assert!(!exports.contains("no_root_squash"), "{exports}");
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
    // Re-reading the kept secrets (kubeadm's and the Vault TLS bundle) renders the same tree.
    let dir = tempfile::tempdir().unwrap();
    tree.write_to(&dir.path().join("out")).unwrap();
    let again = PlanSecrets::load(&dir.path().join("out")).unwrap();
    let text_src = include_str!("../../../examples/seed-cluster.yaml");
    assert_eq!(
        render(&hakube_topology::load(text_src, "s").unwrap(), &again).unwrap(),
        tree
    );
    assert!(
        !format!("{again:?}").contains("abcdef"),
        "Debug must not show secrets"
    );
    // Grafana's admin password: kept with the secrets and where the add-on runner reads the
    // Secret's generated key (0600), nowhere in the GitOps tree.
    let pw = common::GRAFANA_PASSWORD;
    assert_eq!(again.grafana_admin_password.expose(), pw);
    assert!(!format!("{again:?}").contains(pw), "Debug must not show it");
    let kept = tree
        .get("secrets/monitoring/grafana-admin/admin-password")
        .unwrap();
    assert_eq!(
        (kept.contents.as_slice(), kept.mode),
        (pw.as_bytes(), 0o600)
    );
    for (path, f) in tree.iter().filter(|(p, _)| p.starts_with("cluster/")) {
        assert!(
            !String::from_utf8_lossy(&f.contents).contains(pw),
            "{path} holds the Grafana password"
        );
    }
    // A plan written before the password existed gets one.
    let old = PlanSecrets::parse(&format!(
        "TOKEN={}\nCERTIFICATE_KEY={}\n",
        common::TOKEN,
        common::CERT_KEY
    ))
    .unwrap();
    assert_eq!(old.grafana_admin_password.expose().len(), 32);
}

#[test]
fn addons_render_into_cluster_and_agree_with_haproxy() {
    let tree = seed();
    for path in [
        "cluster/calico/installation.yaml",
        "cluster/traefik/values.yaml",
        "cluster/install-steps.json",
        "hosts/vault-1/etc/openbao/openbao.hcl",
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

#[test]
fn vault_vms_get_host_plans_with_tls_from_the_plans_ca() {
    let tree = seed();
    let ca = text(&tree, &format!("{}/ca.crt", hakube_plan::VAULT_TLS_DIR)).to_owned();
    for vm in ["vault-1", "vault-2", "vault-3"] {
        let plan = tree.host_plan(vm).unwrap();
        let json = plan.to_json();
        for want in [
            "\"name\": \"openbao\"",
            "\"path\": \"/opt/openbao/data\"",
            "\"path\": \"/etc/systemd/system/openbao.service\"",
            "\"name\": \"openbao-snapshot.timer\"",
        ] {
            assert!(json.contains(want), "{vm} lacks {want}:\n{json}");
        }
        assert_eq!(
            text(&tree, &format!("hosts/{vm}/opt/openbao/tls/ca.crt")),
            ca
        );
        let key = tree
            .get(&format!("hosts/{vm}/opt/openbao/tls/tls.key"))
            .unwrap();
        assert_eq!(key.mode, 0o600);
        // The node's key is the one kept with the plan's secrets.
        let kept = tree
            .get(&format!("{}/{vm}.key", hakube_plan::VAULT_TLS_DIR))
            .unwrap();
        assert_eq!((kept.mode, &kept.contents), (0o600, &key.contents));
        assert!(!json.contains("PRIVATE KEY"));
    }
    let key = tree
        .get(&format!("{}/ca.key", hakube_plan::VAULT_TLS_DIR))
        .unwrap();
    assert_eq!(key.mode, 0o600);
    // The setup configure bootstraps with: the VIP, the add-ons' PKI names.
    let setup = hakube_plan::vault_setup(&common::cluster())
        .unwrap()
        .unwrap();
    assert_eq!(setup.server_url, "https://10.20.0.10:8200");
    assert_eq!(setup.cluster.nodes.len(), 3);
    assert_eq!(
        (setup.int_mount.as_str(), setup.pki_role.as_str()),
        ("pki_int", "seed")
    );
}

#[test]
fn a_new_vault_vm_keeps_the_ca_and_the_other_certificates() {
    let before = seed();
    let src = common::SEED.replace("vault-{n}", "bao-{n}");
    let renamed = render(&hakube_topology::load(&src, "s").unwrap(), &secrets()).unwrap();
    let path = format!("{}/ca.crt", hakube_plan::VAULT_TLS_DIR);
    assert_eq!(
        text(&before, &path),
        text(&renamed, &path),
        "the CA is kept"
    );
    assert!(
        renamed
            .get(&format!("{}/vault-1.key", hakube_plan::VAULT_TLS_DIR))
            .is_none()
    );
    assert!(
        renamed
            .get(&format!("{}/bao-1.key", hakube_plan::VAULT_TLS_DIR))
            .is_some()
    );
}
