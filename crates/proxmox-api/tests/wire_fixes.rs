//! The wire fixes and the embedder features against fakepve: array parameters, JSON and
//! multipart bodies, deterministic 500s, HA-queued tasks, held node permits, VMID
//! allocation racing another tool.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic on unexpected answers"
)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Fake;
use hakube_proxmox_api::{Client, CloneOptions, Params, UploadContent, is_vmid_taken};
use serde_json::{Value, json};

async fn fake(time_scale: f64) -> Option<Fake> {
    let fake = Fake::start(time_scale).await?;
    fake.cmd(json!({"op": "add_node", "name": "pve1"})).await;
    fake.cmd(
        json!({"op": "add_vm", "vmid": 9000, "name": "tmpl", "node": "pve1", "template": true,
        "config": {"scsi0": "local-lvm:base-9000-disk-0,size=4G", "memory": 2048, "agent": "1",
                   "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0"}}),
    )
    .await;
    Some(fake)
}

async fn running_vm(c: &Client, vmid: u32) {
    let upid = c
        .qemu_clone("pve1", 9000, vmid, &CloneOptions::default())
        .await
        .unwrap();
    c.wait_task(&upid).await.unwrap();
    let upid = c.qemu_start("pve1", vmid).await.unwrap();
    c.wait_task(&upid).await.unwrap();
}

#[tokio::test]
async fn agent_exec_sends_the_command_as_an_array() {
    let Some(fake) = fake(0.0).await else { return };
    let c = fake.client();
    running_vm(&c, 101).await;
    c.wait_guest_agent("pve1", 101, Duration::from_secs(20))
        .await
        .unwrap();
    let before = fake.request_count().await;
    let pid = c
        .agent_exec("pve1", 101, &["/bin/sh", "-c", "echo a b"], None)
        .await
        .unwrap();
    let st = c.agent_exec_status("pve1", 101, pid).await.unwrap();
    assert_eq!(st.exited, Some(true), "{st:?}");
    let reqs = fake.requests(before).await;
    let exec = reqs.iter().find(|r| r.1.ends_with("/agent/exec")).unwrap();
    assert_eq!(
        exec.2, "command=%2Fbin%2Fsh&command=-c&command=echo%20a%20b",
        "each element its own key"
    );
}

#[tokio::test]
async fn guest_agent_not_running_is_asked_once() {
    let Some(fake) = fake(0.0).await else { return };
    let c = fake.client();
    let upid = c
        .qemu_clone("pve1", 9000, 102, &CloneOptions::default())
        .await
        .unwrap();
    c.wait_task(&upid).await.unwrap();
    let before = fake.request_count().await;
    // Stopped VM: PVE answers 500 "QEMU guest agent is not running" until it boots.
    let e = c.agent_network_interfaces("pve1", 102).await.unwrap_err();
    assert_eq!(e.status(), Some(500), "{e}");
    let asked = fake
        .requests(before)
        .await
        .iter()
        .filter(|r| r.1.ends_with("/agent/network-get-interfaces"))
        .count();
    assert_eq!(asked, 1, "a deterministic 500 is not retried");
    // The reusable wait gives up at its deadline, naming what it waited for.
    let e = c
        .wait_guest_agent("pve1", 102, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("guest agent of VM 102"), "{e}");
}

#[tokio::test]
async fn ha_start_and_stop_wait_for_the_vm_not_the_queueing_task() {
    // time_scale 0.02: the HA manager acts 10 PVE seconds (0.2 s) after the hastart task.
    let Some(fake) = fake(0.02).await else { return };
    let c = fake.client();
    let upid = c
        .qemu_clone("pve1", 9000, 103, &CloneOptions::default())
        .await
        .unwrap();
    c.wait_task(&upid).await.unwrap();
    c.create_ha_resource("vm:103", "stopped", None)
        .await
        .unwrap();
    let upid = c.qemu_start("pve1", 103).await.unwrap();
    assert_eq!(upid.task_type(), "hastart");
    c.wait_task(&upid).await.unwrap();
    assert_eq!(c.qemu_status("pve1", 103).await.unwrap().status, "running");
    let upid = c.qemu_stop("pve1", 103).await.unwrap();
    assert_eq!(upid.task_type(), "hastop");
    c.wait_task(&upid).await.unwrap();
    assert_eq!(c.qemu_status("pve1", 103).await.unwrap().status, "stopped");
}

#[tokio::test]
async fn writes_inside_a_held_node_permit_do_not_deadlock() {
    let Some(fake) = fake(0.0).await else { return };
    let c = fake
        .builder()
        .password("root@pam", hakube_proxmox_api::Secret::new("secret"))
        .node_concurrency(1)
        .build()
        .unwrap();
    let work = c.with_node_permit("pve1", async {
        let upid = c
            .qemu_clone("pve1", 9000, 104, &CloneOptions::default())
            .await?;
        c.wait_task(&upid).await?;
        c.qemu_set_config("pve1", 104, &Params::new().set("onboot", true))
            .await
    });
    tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("deadlock")
        .unwrap();
}

#[tokio::test]
async fn json_bodies_and_multipart_upload() {
    let Some(fake) = fake(0.0).await else { return };
    let c = fake.client();
    let () = c
        .post_json(
            "/pools",
            &json!({"poolid": "fromjson", "comment": "sent as JSON"}),
        )
        .await
        .unwrap();
    assert!(
        c.pools()
            .await
            .unwrap()
            .iter()
            .any(|p| p.poolid == "fromjson")
    );
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let upid = c
        .storage_upload("pve1", "local", UploadContent::Iso, "tiny.iso", &data)
        .await
        .unwrap();
    c.wait_task(&upid).await.unwrap();
    let content: Vec<Value> = c
        .get(
            "/nodes/pve1/storage/local/content",
            &Params::new().set("content", "iso"),
        )
        .await
        .unwrap();
    assert!(
        content.iter().any(|v| v["volid"] == "local:iso/tiny.iso"),
        "{content:?}"
    );
    // Bad names are refused before anything is sent.
    assert!(
        c.storage_upload("pve1", "local", UploadContent::Iso, "../etc.iso", b"x")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn two_tools_allocating_vmids_at_once_never_collide() {
    let Some(fake) = fake(0.0).await else { return };
    // Two separate clients (two tools, two sessions), each creating 4 VMs at once.
    let tools = [fake.client(), fake.client()];
    let mut jobs = Vec::new();
    for (t, c) in tools.iter().enumerate() {
        for i in 0..4 {
            let c = c.clone();
            jobs.push(async move {
                c.create_with_free_vmid(100, 199, |id| {
                    let c = c.clone();
                    async move {
                        let opts = CloneOptions {
                            name: Some(format!("tool{t}-vm{i}")),
                            ..CloneOptions::default()
                        };
                        let upid = c.qemu_clone("pve1", 9000, id, &opts).await?;
                        c.wait_task(&upid).await
                    }
                })
                .await
            });
        }
    }
    let results = futures::future::join_all(jobs).await;
    let ids: BTreeSet<u32> = results.iter().map(|r| r.as_ref().unwrap().0).collect();
    assert_eq!(ids.len(), 8, "{ids:?}");
    let vms = fake.vms().await;
    let names: BTreeSet<&str> = vms.iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names.len(), 9, "8 clones and the template: {names:?}");
    // Every VM took at least one clone call (more when it lost a race and moved on).
    let refused = fake
        .requests(0)
        .await
        .iter()
        .filter(|r| r.0 == "POST" && r.1.ends_with("/clone"))
        .count();
    assert!(refused >= 8, "{refused}");
    // What losing a race looks like: the taken VMID is recognised.
    let e = c_err(&tools[0]).await;
    assert!(is_vmid_taken(&e), "{e}");
}

async fn c_err(c: &Client) -> hakube_proxmox_api::Error {
    c.qemu_clone("pve1", 9000, 100, &CloneOptions::default())
        .await
        .unwrap_err()
}
