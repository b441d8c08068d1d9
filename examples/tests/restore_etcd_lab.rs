//! The etcd DR drill on the local twin of the seed cluster (root): `up`, write an object
//! through the VIP, run the cluster's own etcd backup Job (the CronJob's commands, on a master,
//! writing to the NFS export), then "destroy" (delete that object, create another), put a
//! newer but truncated snapshot on the export, remove the CA key on a master) and restore:
//! the truncated snapshot is named and skipped, the first object is back, the second is gone,
//! the CA key is back from the PKI archive, etcd has its three healthy members and the API
//! answers through the VIP. Prints the restore's wall time (no timing assertions).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use std::process::Command;
use std::time::Instant;

use hakube_examples::ssh::SshArgs;
use hakube_examples::stage::restore::etcd as restore_etcd;
use hakube_lab::require_root;
use hakube_topology::RoleKind;
use k8s_openapi::api::core::v1::ConfigMap;

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": "default" },
        "data": { "written": name },
    }))
    .unwrap()
}

#[test]
fn etcd_backup_destroy_restore_on_the_twin() {
    if !require_root("etcd_backup_destroy_restore_on_the_twin") {
        return;
    }
    let cluster = hakube_examples::load_topology(&hakube_examples::default_topology()).unwrap();
    let twin = hakube_examples::twin::start(&cluster).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let plan = hakube_plan::render(&cluster, &hakube_plan::PlanSecrets::generate()).unwrap();
    plan.write_to(&dir.path().join("helm-plan")).unwrap();
    let helm = hakube_examples::twin::helm(&dir.path().join("helm-plan"), &dir.path().join("helm"))
        .unwrap();
    let key = twin.lab().ssh_private_key().to_owned();
    let known = twin.lab().known_hosts_file().to_owned();
    let o = Command::new(support::example_binary("up"))
        .args(["--out".as_ref(), out.as_os_str()])
        .args([
            "--pve-url",
            twin.pve_url(),
            "--fingerprint",
            twin.pve_fingerprint(),
        ])
        .args(["--ssh-key".as_ref(), key.as_os_str()])
        .args(["--user", "root"])
        .args(["--known-hosts".as_ref(), known.as_os_str()])
        .args(["--helm".as_ref(), helm.as_os_str()])
        .env("PVE_USER", hakube_lab::twin::TWIN_USER)
        .env("PVE_PASSWORD", twin.pve_password())
        .output()
        .unwrap();
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{t}");
    let kubeconfig = out.join(hakube_examples::stage::bootstrap::ADMIN_KUBECONFIG);
    let masters: Vec<String> = cluster
        .vms
        .iter()
        .filter(|v| v.role == RoleKind::ControlPlane)
        .map(|v| v.name.clone())
        .collect();
    let nfs = cluster
        .vms
        .iter()
        .find(|v| v.role == RoleKind::Nfs)
        .unwrap()
        .name
        .clone();
    let export = cluster
        .topology
        .backup
        .as_ref()
        .unwrap()
        .etcd
        .as_ref()
        .unwrap()
        .export
        .clone();
    let export_dir = twin.lab().host(&nfs).host_path(&export).unwrap();

    // Every master serves the API from etcd (HAProxy's backends are all up).
    for m in &masters {
        let h = twin.lab().host(m);
        let o = h
            .exec("ss -Hltn | grep -E ':(2379|6443)[[:space:]]' | wc -l")
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "3",
            "{m}: etcd and the API listen"
        );
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = hakube_examples::kube_client(&kubeconfig).await.unwrap();
        let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
        let pp = kube::api::PostParams::default();
        cms.create(&pp, &config_map("dr-before")).await.unwrap();

        // The backup the cluster makes: the CronJob's Pod, run as the kubelet would.
        let job = hakube_examples::twin::run_etcd_backup(&twin, &kubeconfig, &masters[0])
            .await
            .unwrap();
        let names: Vec<String> = std::fs::read_dir(&export_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let snapshot = names
            .iter()
            .find(|n| {
                n.starts_with("etcd-snapshot-") && n.ends_with(&format!("-{}.db", masters[0]))
            })
            .unwrap_or_else(|| panic!("no snapshot on the export: {names:?}\n{job:?}"))
            .clone();
        assert!(
            names.iter().any(|n| n.starts_with("etcd-pki-")),
            "{names:?}"
        );

        // Destroy: the object goes, another comes; and a newer snapshot that is cut short.
        cms.delete("dr-before", &Default::default()).await.unwrap();
        cms.create(&pp, &config_map("dr-after")).await.unwrap();
        let good = std::fs::read(export_dir.join(&snapshot)).unwrap();
        let broken = "etcd-snapshot-29991231T235959Z-master-9.db";
        std::fs::write(export_dir.join(broken), &good[..good.len() / 2]).unwrap();
        // A master that lost the cluster CA's key (a shared PKI file).
        let third = twin.lab().host(&masters[2]);
        let ca_key = "/etc/kubernetes/pki/ca.key";
        let want_key = twin.lab().host(&masters[0]).read_file(ca_key).unwrap();
        std::fs::remove_file(third.host_path(ca_key).unwrap()).unwrap();

        let ssh = SshArgs {
            ssh_key: Some(key.clone()),
            user: Some("root".into()),
            known_hosts: Some(known.clone()),
            accept_new: false,
            danger_accept_any: false,
        };
        let pool = ssh.pool().unwrap();
        let mut opts = restore_etcd::Options {
            kubeconfig: Some(kubeconfig.clone()),
            ..restore_etcd::Options::default()
        };
        let refused = restore_etcd::run(&cluster, &ssh, &pool, &opts)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("confirm"), "{refused}");
        assert!(
            cms.get_opt("dr-after").await.unwrap().is_some(),
            "a refusal changes nothing"
        );

        opts.confirm = true;
        let t0 = Instant::now();
        let report = restore_etcd::run(&cluster, &ssh, &pool, &opts)
            .await
            .unwrap();
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(report.snapshot, snapshot, "{report:?}");
        assert_eq!(report.rejected.len(), 1, "{report:?}");
        assert_eq!(report.rejected[0].0, broken, "{report:?}");
        assert_eq!(report.members.len(), 3, "{report:?}");
        for m in &report.members {
            let want: &[&str] = if m.host == masters[2] {
                &["ca.key"]
            } else {
                &[]
            };
            assert_eq!(m.pki_restored, want, "{m:?}");
        }
        assert_eq!(
            third.read_file(ca_key).unwrap(),
            want_key,
            "the CA key from the archive"
        );

        // Compare: the state of the backup, through the VIP.
        let before = cms.get_opt("dr-before").await.unwrap();
        assert_eq!(
            before
                .and_then(|c| c.data)
                .and_then(|d| d.get("written").cloned())
                .as_deref(),
            Some("dr-before")
        );
        assert!(
            cms.get_opt("dr-after").await.unwrap().is_none(),
            "written after the backup"
        );
        // A write after the restore works (the restored cluster has a quorum).
        cms.create(&pp, &config_map("dr-later")).await.unwrap();

        // Three healthy members, each master with its old data kept aside.
        let h = twin.lab().host(&masters[1]);
        let o = h
            .exec(
                "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 \
                 --cacert=/etc/kubernetes/pki/etcd/ca.crt \
                 --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
                 --key=/etc/kubernetes/pki/etcd/healthcheck-client.key \
                 endpoint health --cluster",
            )
            .unwrap();
        let health =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{health}");
        assert_eq!(health.matches("is healthy").count(), 3, "{health}");
        for m in &report.members {
            let kept = twin.lab().host(&m.host).host_path(&m.kept).unwrap();
            assert!(
                kept.join("wal").is_dir() || kept.join("snap").is_dir(),
                "{m:?}"
            );
        }
        println!(
            "restored {} (revision {}) onto {} masters in {secs:.1}s; rejected {:?}",
            report.snapshot,
            report.revision,
            report.members.len(),
            report.rejected
        );
    });
}
