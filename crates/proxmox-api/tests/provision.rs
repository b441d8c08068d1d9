//! Provisioning against fakepve: a seed-like 12-VM cluster on 3 nodes, re-runs, kills,
//! faults, and the checks made before any change.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic on unexpected answers"
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Fake, mutating};
use hakube_proxmox_api::Error;
use hakube_proxmox_api::cloudinit::IpConfig;
use hakube_proxmox_api::provision::{
    CloneMode, CloudInit, Event, NetSpec, ProvisionOptions, Provisioner, VmSpec,
};
use serde_json::json;

const NODES: [&str; 3] = ["pve1", "pve2", "pve3"];

/// Three nodes, a template per node (9001..9003), as the seed topology has.
async fn seed_fake(time_scale: f64) -> Option<Fake> {
    let fake = Fake::start(time_scale).await?;
    for (i, n) in NODES.iter().enumerate() {
        fake.cmd(json!({"op": "add_node", "name": n})).await;
        let id = 9001 + i;
        fake.cmd(json!({"op": "add_vm", "vmid": id, "name": format!("ubuntu-24.04-{n}"), "node": n, "template": true,
            "config": {"scsi0": format!("local-lvm:base-{id}-disk-0,size=10G"), "memory": 2048, "cores": 1,
                       "scsihw": "virtio-scsi-single", "ide2": format!("local-lvm:vm-{id}-cloudinit,media=cdrom"),
                       "net0": "virtio=BC:24:11:00:00:0A,bridge=vmbr0", "agent": "1"}}))
            .await;
    }
    Some(fake)
}

/// The seed's 12 VMs: 3 load balancers, 3 masters, 6 workers, spread over the nodes.
fn seed_specs() -> Vec<VmSpec> {
    let mut out = Vec::new();
    let roles = [
        ("lb", 3, 2, 2048, 16),
        ("master", 3, 4, 8192, 64),
        ("worker", 6, 8, 16384, 100),
    ];
    let mut n = 0u32;
    for (role, count, cores, mem, disk) in roles {
        for k in 1..=count {
            let node = NODES[(k as usize - 1) % 3];
            let mut s = VmSpec::new(format!("{role}-{k}"), node, 200 + n, 9001 + ((k - 1) % 3));
            s.cores = cores;
            s.memory_mib = mem;
            s.disk = Some(("scsi0".into(), disk));
            s.clone_mode = CloneMode::Linked;
            s.network = Some(NetSpec {
                model: "virtio".into(),
                bridge: "vmbr0".into(),
                vlan: None,
            });
            s.cloud_init = Some(CloudInit {
                user: Some("hakube".into()),
                ssh_keys: vec![
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake+/= ops@example.lan".into(),
                ],
                ip: Some(
                    IpConfig::static_v4(
                        &format!("10.20.0.{}/24", 11 + n),
                        Some("10.20.0.1".parse().unwrap()),
                    )
                    .unwrap(),
                ),
                nameservers: vec!["10.20.0.1".parse().unwrap()],
                search_domains: vec!["k8s.example.lan".into()],
            });
            s.tags = vec![format!("role-{role}")];
            s.role = Some(role.into());
            s.ha = role != "worker";
            s.agent = true;
            out.push(s);
            n += 1;
        }
    }
    out
}

fn options() -> ProvisionOptions {
    let mut o = ProvisionOptions::new("hakube-seed");
    o.agent_timeout = Some(Duration::from_secs(20));
    o
}

async fn owned_vms(fake: &Fake) -> Vec<(u64, String, String, String)> {
    fake.vms()
        .await
        .into_iter()
        .filter(|v| !v["template"].as_bool().unwrap_or(false))
        .map(|v| {
            (
                v["vmid"].as_u64().unwrap(),
                v["name"].as_str().unwrap().to_owned(),
                v["node"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn assert_converged(vms: &[(u64, String, String, String)]) {
    let specs = seed_specs();
    assert_eq!(vms.len(), specs.len(), "{vms:?}");
    for (s, v) in specs.iter().zip(vms) {
        assert_eq!(
            (v.0, v.1.as_str(), v.2.as_str(), v.3.as_str()),
            (
                u64::from(s.vmid),
                s.name.as_str(),
                s.node.as_str(),
                "running"
            )
        );
    }
}

#[tokio::test]
async fn seed_cluster_converges_and_rerun_makes_no_change() {
    let Some(fake) = seed_fake(0.0).await else {
        return;
    };
    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let mut o = options();
    let sink = Arc::clone(&events);
    o.progress = Some(Arc::new(move |e: &Event| {
        sink.lock().unwrap().push(e.clone());
    }));
    let p = Provisioner::new(fake.client(), o);
    let specs = seed_specs();

    // Dry run: the plan, and only GET requests.
    let before = fake.request_count().await;
    let plan = p.plan(&specs).await.unwrap();
    let text = plan.to_string();
    assert!(
        text.contains("master-1 (203 on pve1): linked clone of template 9001 on pve1"),
        "{text}"
    );
    assert!(
        text.contains("create HA rule hakube-seed-master-apart: keep vm:203,vm:204,vm:205 apart"),
        "{text}"
    );
    assert_eq!(mutating(&fake.requests(before).await), Vec::<String>::new());

    let before = fake.request_count().await;
    let report = p.apply(&specs).await.unwrap();
    assert!(report.is_success(), "{report}");
    assert_converged(&owned_vms(&fake).await);
    // Each new VM's config is read once, after its clone (its MACs and disk size are only
    // known then); the config write, the resize, the start and the HA resource change only
    // what they were planned to change, so no read follows them.
    let seen = fake.requests(before).await;
    for v in &report.vms {
        let path = format!("/qemu/{}/pending", v.vmid);
        let reads = seen
            .iter()
            .filter(|(m, p, _)| m == "GET" && p.ends_with(&path))
            .count();
        assert_eq!(reads, 1, "{}: config reads during the run", v.name);
    }
    for v in &report.vms {
        let mut want = vec!["clone", "configure", "resize", "start"];
        if !v.name.starts_with("worker") {
            want.push("ha-resource");
        }
        assert_eq!(v.done, want, "{}", v.name);
        assert!(v.address.is_some(), "{}", v.name);
    }
    assert_eq!(report.vms[3].address, Some("10.20.0.14".parse().unwrap()));
    let table = report.to_string();
    assert!(table.contains("master-1"), "{table}");
    // Configured as PVE stores it.
    let vms = fake.vms().await;
    let m1 = vms.iter().find(|v| v["name"] == "master-1").unwrap();
    let cfg = &m1["config"];
    assert_eq!(cfg["cores"], "4");
    assert_eq!(cfg["tags"], "hakube-seed;role-master");
    assert_eq!(cfg["ipconfig0"], "ip=10.20.0.14/24,gw=10.20.0.1");
    assert_eq!(
        cfg["sshkeys"],
        "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIFake%2B%2F%3D%20ops%40example.lan"
    );
    assert!(cfg["scsi0"].as_str().unwrap().contains("size=64G"), "{cfg}");
    assert!(
        cfg["net0"].as_str().unwrap().starts_with("virtio=BC:24:11"),
        "{cfg}"
    );
    let ha = fake.cmd(json!({"op": "ha"})).await;
    assert_eq!(ha["resources"].as_array().unwrap().len(), 6);
    let rules = ha["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert!(
        rules
            .iter()
            .all(|r| r["affinity"] == "negative" && r["type"] == "resource-affinity")
    );
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.vm == "worker-6" && e.step == "start")
    );

    // Second run: zero mutating calls.
    let before = fake.request_count().await;
    let again = p.apply(&specs).await.unwrap();
    assert!(again.is_success(), "{again}");
    assert_eq!(again.changes(), 0, "{again}");
    assert_eq!(mutating(&fake.requests(before).await), Vec::<String>::new());
    assert!(p.plan(&specs).await.unwrap().is_empty());
}

#[tokio::test]
async fn killed_runs_are_finished_by_the_next_run() {
    // Kill the run at several points: during clones, during config/start.
    for kill_after_ms in [30u64, 120, 260] {
        let Some(fake) = seed_fake(0.01).await else {
            return;
        };
        fake.cmd(json!({"op": "durations", "value": {"qmclone": 10, "qmstart": 5, "config": 1, "resize": 1}})).await;
        let p = Arc::new(Provisioner::new(fake.client(), options()));
        let run = {
            let p = Arc::clone(&p);
            tokio::spawn(async move { p.apply(&seed_specs()).await })
        };
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        run.abort();
        let _ = run.await;
        let report = p.apply(&seed_specs()).await.unwrap();
        assert!(report.is_success(), "kill at {kill_after_ms} ms: {report}");
        fake.cmd(json!({"op": "settle"})).await;
        // No duplicate, no orphan: exactly the wanted VMs.
        assert_converged(&owned_vms(&fake).await);
        let before = fake.request_count().await;
        assert_eq!(p.apply(&seed_specs()).await.unwrap().changes(), 0);
        assert_eq!(mutating(&fake.requests(before).await), Vec::<String>::new());
    }
}

/// PVE lists a running task as `"status": "RUNNING"` under `source=active` (the harness
/// answers as pve-manager's `PVE/API2/Tasks.pm` does): a start left running by a killed run
/// is waited for, not planned again.
#[tokio::test]
async fn a_task_left_running_is_seen_in_the_active_listing_and_waited_for() {
    let Some(fake) = seed_fake(0.05).await else {
        return;
    };
    let mut spec = seed_specs().remove(6);
    spec.ha = false;
    spec.agent = false;
    let p = Provisioner::new(fake.client(), options());
    spec.start = false;
    assert!(
        p.apply(std::slice::from_ref(&spec))
            .await
            .unwrap()
            .is_success()
    );
    spec.start = true;
    fake.cmd(json!({"op": "durations", "value": {"qmstart": 20}}))
        .await;
    let client = fake.client();
    let upid = client.qemu_start(&spec.node, spec.vmid).await.unwrap();
    let listed = client.node_tasks(&spec.node, None, true).await.unwrap();
    let entry = listed.iter().find(|t| t.upid == upid).unwrap();
    assert_eq!(entry.status.as_deref(), Some("RUNNING"));
    assert!(entry.is_active());
    // The plan waits for it (before the fix it planned a second start).
    let text = p
        .plan(std::slice::from_ref(&spec))
        .await
        .unwrap()
        .to_string();
    assert!(text.contains("wait for 1 running task(s)"), "{text}");
    assert!(!text.contains("start"), "{text}");
    let report = p.apply(std::slice::from_ref(&spec)).await.unwrap();
    assert!(report.is_success(), "{report}");
    // `onboot` follows `start`; the start itself is the earlier run's.
    assert_eq!(report.vms[0].done, ["configure"], "{report}");
    let starts = fake
        .requests(0)
        .await
        .into_iter()
        .filter(|(m, p, _)| m == "POST" && p.ends_with("/status/start"))
        .count();
    assert_eq!(starts, 1);
}

#[tokio::test]
async fn clone_lock_timeout_then_success() {
    let Some(fake) = seed_fake(0.0).await else {
        return;
    };
    fake.cmd(
        json!({"op": "fail", "method": "POST", "suffix": "/nodes/pve2/qemu/9002/clone",
        "error": "config_lock_timeout", "times": 3}),
    )
    .await;
    let report = Provisioner::new(fake.client(), options())
        .apply(&seed_specs())
        .await
        .unwrap();
    assert!(report.is_success(), "{report}");
    assert_converged(&owned_vms(&fake).await);
}

#[tokio::test]
async fn task_error_is_clear_and_leaves_nothing_half_made() {
    let Some(fake) = seed_fake(0.0).await else {
        return;
    };
    // Template 9003's storage is down: its clone workers end in TASK ERROR.
    fake.cmd(json!({"op": "add_storage", "name": "ssd3", "options": {"type": "lvmthin", "content": "images,rootdir", "vgname": "ssd", "thinpool": "data"}})).await;
    fake.cmd(json!({"op": "set_vm", "vmid": 9003, "attrs": {"config": {"scsi0": "ssd3:base-9003-disk-0,size=10G", "template": 1, "name": "t3", "net0": "virtio=BC:24:11:00:00:0B,bridge=vmbr0", "agent": "1"}}})).await;
    fake.cmd(json!({"op": "set_storage", "name": "ssd3", "options": {"active": 0}}))
        .await;
    let p = Provisioner::new(fake.client(), options());
    let report = p.apply(&seed_specs()).await.unwrap();
    assert!(!report.is_success());
    let failed: Vec<&str> = report
        .vms
        .iter()
        .filter(|v| v.error.is_some())
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(failed, ["lb-3", "master-3", "worker-3", "worker-6"]);
    let e = report.vms[2].error.as_ref().unwrap();
    assert!(matches!(e, Error::Task { .. }), "{e:?}");
    assert!(
        e.to_string().contains("storage 'ssd3' is not online"),
        "{e}"
    );
    let text = report.into_result().unwrap_err().to_string();
    assert!(text.contains("[lb-3]"), "{text}");
    // Nothing half-made: no VM for the failed clones.
    let vms = owned_vms(&fake).await;
    assert_eq!(vms.len(), 8, "{vms:?}");
    assert!(vms.iter().all(|v| v.2 != "pve3"));
    // A start that fails is reported with its task log.
    fake.cmd(json!({"op": "set_storage", "name": "ssd3", "options": {"active": 1}}))
        .await;
    fake.cmd(json!({"op": "start_error", "vmid": 202, "message": "start failed: QEMU exited with code 1"})).await;
    let report = p.apply(&seed_specs()).await.unwrap();
    let e = report.vms[2].error.as_ref().expect("lb-3 start fails");
    assert!(e.to_string().contains("QEMU exited with code 1"), "{e}");
    assert!(e.to_string().contains("TASK ERROR"), "{e}");
    fake.cmd(json!({"op": "set_vm", "vmid": 202, "attrs": {"start_error": null}}))
        .await;
    let report = p.apply(&seed_specs()).await.unwrap();
    assert!(report.is_success(), "{report}");
    assert_converged(&owned_vms(&fake).await);
}

#[tokio::test]
async fn expired_ticket_mid_run() {
    let Some(fake) = seed_fake(0.01).await else {
        return;
    };
    fake.cmd(json!({"op": "durations", "value": {"qmclone": 10, "qmstart": 5}}))
        .await;
    let fake = Arc::new(fake);
    let p = Provisioner::new(fake.client(), options());
    let revoker = {
        let fake = Arc::clone(&fake);
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                fake.cmd(json!({"op": "revoke_tickets"})).await;
            }
        })
    };
    let report = p.apply(&seed_specs()).await.unwrap();
    revoker.await.unwrap();
    assert!(report.is_success(), "{report}");
    let logins = fake
        .requests(0)
        .await
        .iter()
        .filter(|r| r.1.ends_with("/access/ticket"))
        .count();
    assert!(logins >= 2, "{logins}");
    assert_converged(&owned_vms(&fake).await);
}

#[tokio::test]
async fn slow_and_flaky_network() {
    let Some(fake) = seed_fake(0.01).await else {
        return;
    };
    fake.cmd(json!({"op": "slow_network", "latency": 0.5, "jitter": 1.0}))
        .await;
    fake.cmd(json!({"op": "flaky_network", "drop_rate": 0.05, "seed": 7}))
        .await;
    let p = Provisioner::new(fake.client(), options());
    let report = p.apply(&seed_specs()).await.unwrap();
    assert!(report.is_success(), "{report}");
    assert_converged(&owned_vms(&fake).await);
    fake.cmd(json!({"op": "flaky_network", "drop_rate": 0.0}))
        .await;
    let before = fake.request_count().await;
    assert_eq!(p.apply(&seed_specs()).await.unwrap().changes(), 0);
    assert_eq!(mutating(&fake.requests(before).await), Vec::<String>::new());
}

#[tokio::test]
async fn offline_node_is_a_clear_error_before_any_change() {
    let Some(fake) = seed_fake(0.0).await else {
        return;
    };
    fake.cmd(json!({"op": "node_offline", "node": "pve2"}))
        .await;
    let e = Provisioner::new(fake.client(), options())
        .apply(&seed_specs())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::NodeUnavailable { node, .. } if node == "pve2"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("Proxmox node pve2 is offline; needed for lb-2, master-2, worker-2"),
        "{e}"
    );
    assert_eq!(mutating(&fake.requests(0).await), Vec::<String>::new());
}

#[tokio::test]
async fn foreign_vm_on_a_wanted_vmid_is_refused() {
    let Some(fake) = seed_fake(0.0).await else {
        return;
    };
    fake.cmd(json!({"op": "add_vm", "vmid": 205, "name": "payroll-db", "node": "pve3", "status": "running",
        "config": {"scsi0": "local-lvm:vm-205-disk-0,size=50G", "tags": "finance"}}))
        .await;
    let e = Provisioner::new(fake.client(), options())
        .apply(&seed_specs())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ForeignVm { vmid: 205, .. }), "{e}");
    assert!(e.to_string().contains("payroll-db"), "{e}");
    assert_eq!(mutating(&fake.requests(0).await), Vec::<String>::new());
    let vms = fake.vms().await;
    let foreign = vms.iter().find(|v| v["vmid"] == 205).unwrap();
    assert_eq!(foreign["name"], "payroll-db");
}

#[tokio::test]
async fn pve8_falls_back_to_ha_groups() {
    let Some(fake) = seed_fake(0.0).await else {
        return;
    };
    fake.cmd(json!({"op": "set_version", "version": "8.4.1", "release": "8.4"}))
        .await;
    let specs: Vec<VmSpec> = seed_specs().into_iter().take(3).collect();
    let report = Provisioner::new(fake.client(), options())
        .apply(&specs)
        .await
        .unwrap();
    assert!(report.is_success(), "{report}");
    let reqs = mutating(&fake.requests(0).await);
    assert!(
        reqs.iter()
            .any(|r| r == "POST /api2/json/cluster/ha/groups"),
        "{reqs:?}"
    );
    assert!(
        !reqs.iter().any(|r| r.contains("/cluster/ha/rules")),
        "{reqs:?}"
    );
}

#[tokio::test]
async fn prune_deletes_only_owned_vms_when_asked() {
    let Some(fake) = seed_fake(0.0).await else {
        return;
    };
    let p = Provisioner::new(fake.client(), options());
    assert!(p.apply(&seed_specs()).await.unwrap().is_success());
    let fewer: Vec<VmSpec> = seed_specs()
        .into_iter()
        .filter(|s| s.name != "worker-6")
        .collect();
    // Without pruning, nothing is deleted.
    let r = p.apply(&fewer).await.unwrap();
    assert_eq!(r.changes(), 0, "{r}");
    assert_eq!(owned_vms(&fake).await.len(), 12);
    let mut o = options();
    o.prune = true;
    let r = Provisioner::new(fake.client(), o)
        .apply(&fewer)
        .await
        .unwrap();
    assert_eq!(r.pruned, ["worker-6 (211)"], "{r}");
    assert_eq!(owned_vms(&fake).await.len(), 11);
}

#[tokio::test]
async fn cross_node_clone_from_shared_storage_uses_target_and_pools() {
    let Some(fake) = Fake::start(0.0).await else {
        return;
    };
    for n in NODES {
        fake.cmd(json!({"op": "add_node", "name": n})).await;
    }
    fake.cmd(json!({"op": "add_storage", "name": "ceph-vm", "options": {"type": "rbd", "pool": "rbd", "content": "images,rootdir", "shared": 1}})).await;
    fake.cmd(json!({"op": "add_vm", "vmid": 9100, "name": "shared-tmpl", "node": "pve1", "template": true,
        "config": {"scsi0": "ceph-vm:base-9100-disk-0,size=10G", "net0": "virtio=BC:24:11:00:00:0C,bridge=vmbr0"}}))
        .await;
    let specs: Vec<VmSpec> = NODES
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut s = VmSpec::new(format!("w{}", i + 1), *n, 300 + i as u32, 9100);
            s.pool = Some("k8s".into());
            s.disk = Some(("scsi0".into(), 20));
            s
        })
        .collect();
    let p = Provisioner::new(fake.client(), options());
    let report = p.apply(&specs).await.unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(report.cluster, ["create pool k8s"]);
    let reqs = fake.requests(0).await;
    let clones: Vec<&(String, String, String)> =
        reqs.iter().filter(|r| r.1.ends_with("/clone")).collect();
    assert_eq!(clones.len(), 3);
    assert!(
        clones
            .iter()
            .all(|r| r.1 == "/api2/json/nodes/pve1/qemu/9100/clone"),
        "{clones:?}"
    );
    assert!(
        clones.iter().any(|r| r.2.contains("target=pve3")),
        "{clones:?}"
    );
    let vms = owned_vms(&fake).await;
    assert_eq!(vms.iter().map(|v| v.2.as_str()).collect::<Vec<_>>(), NODES);
    let before = fake.request_count().await;
    assert_eq!(p.apply(&specs).await.unwrap().changes(), 0);
    assert_eq!(mutating(&fake.requests(before).await), Vec::<String>::new());
}

/// The `bench_provision` example binary, built by `cargo test` next to this test.
fn bench_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe
        .parent()?
        .parent()?
        .join("examples")
        .join("bench_provision");
    bin.exists().then_some(bin)
}

#[tokio::test]
async fn killed_process_is_finished_by_the_next_run() {
    let Some(bin) = bench_binary() else {
        eprintln!("SKIP: examples/bench_provision not built (cargo test builds it)");
        return;
    };
    let Some(fake) = Fake::start(0.01).await else {
        return;
    };
    for (i, n) in NODES.iter().enumerate() {
        fake.cmd(json!({"op": "add_node", "name": n})).await;
        let id = 9001 + i;
        fake.cmd(json!({"op": "add_vm", "vmid": id, "name": format!("t{id}"), "node": n, "template": true,
            "config": {"scsi0": format!("local-lvm:base-{id}-disk-0,size=10G"), "net0": "virtio=BC:24:11:00:00:0A,bridge=vmbr0"}}))
            .await;
    }
    fake.cmd(json!({"op": "durations", "value": {"qmclone": 20, "qmstart": 5, "config": 1}}))
        .await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &fake.ca).unwrap();
    let run = |kill_after: Option<Duration>| {
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.arg(&fake.url).arg(ca.path()).args(["12", "3", "3"]);
        cmd.stdout(std::process::Stdio::null()).kill_on_drop(true);
        async move {
            let mut child = cmd.spawn().unwrap();
            match kill_after {
                Some(d) => {
                    tokio::time::sleep(d).await;
                    child.kill().await.unwrap(); // SIGKILL: no cleanup of any kind
                    None
                }
                None => Some(child.wait().await.unwrap().success()),
            }
        }
    };
    run(Some(Duration::from_millis(150))).await;
    assert_eq!(run(None).await, Some(true));
    fake.cmd(json!({"op": "settle"})).await;
    let vms = owned_vms(&fake).await;
    assert_eq!(vms.len(), 12, "{vms:?}");
    assert!(vms.iter().all(|v| v.3 == "running"), "{vms:?}");
    let before = fake.request_count().await;
    assert_eq!(run(None).await, Some(true));
    assert_eq!(mutating(&fake.requests(before).await), Vec::<String>::new());
}

#[tokio::test]
async fn vm_on_the_wrong_node_is_migrated() {
    let Some(fake) = seed_fake(0.0).await else {
        return;
    };
    let specs: Vec<VmSpec> = seed_specs().into_iter().take(2).collect();
    let p = Provisioner::new(fake.client(), options());
    assert!(p.apply(&specs).await.unwrap().is_success());
    // The spec moves lb-2 from pve2 to pve3.
    let mut moved = specs.clone();
    moved[1].node = "pve3".into();
    let plan = p.plan(&moved).await.unwrap();
    assert!(
        plan.to_string()
            .contains("lb-2 (201 on pve3): migrate from pve2"),
        "{plan}"
    );
    let r = p.apply(&moved).await.unwrap();
    assert!(r.is_success(), "{r}");
    assert_eq!(r.vms[1].done, ["migrate"]);
    let vms = owned_vms(&fake).await;
    assert_eq!((vms[1].2.as_str(), vms[1].3.as_str()), ("pve3", "running"));
    let before = fake.request_count().await;
    assert_eq!(p.apply(&moved).await.unwrap().changes(), 0);
    assert_eq!(mutating(&fake.requests(before).await), Vec::<String>::new());
}

#[tokio::test]
async fn clones_run_in_parallel_within_the_per_node_limit() {
    let Some(fake) = seed_fake(0.01).await else {
        return;
    };
    fake.cmd(json!({"op": "durations", "value": {"qmclone": 10, "qmstart": 2}}))
        .await;
    let mut o = options();
    o.tasks_per_node = 2;
    let report = Provisioner::new(fake.client(), o)
        .apply(&seed_specs())
        .await
        .unwrap();
    assert!(report.is_success(), "{report}");
    // 4 VMs per node: never more than 2 worker tasks at once on a node, and they did overlap.
    let max = fake.cmd(json!({"op": "max_running"})).await;
    for n in NODES {
        assert!(
            max[n].as_u64().is_some_and(|m| (1..=2).contains(&m)),
            "{max}"
        );
    }
    assert!(NODES.iter().any(|n| max[*n] == 2), "{max}");
}
