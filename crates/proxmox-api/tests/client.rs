//! The client against fakepve: auth, TLS trust, wire quirks, tasks.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic on unexpected answers"
)]

mod common;

use common::Fake;
use hakube_proxmox_api::{CloneOptions, Error, Fingerprint, Params, Secret, TlsTrust};
use serde_json::json;

async fn fake_with_template() -> Option<Fake> {
    let fake = Fake::start(0.0).await?;
    fake.cmd(json!({"op": "add_node", "name": "pve1"})).await;
    fake.cmd(
        json!({"op": "add_vm", "vmid": 9000, "name": "tmpl", "node": "pve1", "template": true,
        "config": {"scsi0": "local-lvm:base-9000-disk-0,size=4G", "memory": 2048, "cores": 2,
                   "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0"}}),
    )
    .await;
    Some(fake)
}

#[tokio::test]
async fn password_login_ca_trust_and_typed_calls() {
    let Some(fake) = fake_with_template().await else {
        return;
    };
    let c = fake.client();
    let v = c.version().await.unwrap();
    assert!(v.has_ha_rules(), "{v:?}");
    let nodes = c.nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert!(nodes[0].is_online());
    let id = c.next_id(None).await.unwrap();
    assert_eq!(id, 100);
    let upid = c
        .qemu_clone(
            "pve1",
            9000,
            101,
            &CloneOptions {
                name: Some("m1".into()),
                full: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(upid.node(), "pve1");
    let done = c.wait_task(&upid).await.unwrap();
    assert_eq!(done.warnings, 0);
    c.qemu_set_config(
        "pve1",
        101,
        &Params::new().set("onboot", true).set("tags", "a;b"),
    )
    .await
    .unwrap();
    let cfg = c.qemu_config("pve1", 101).await.unwrap();
    assert_eq!(cfg.get_str("onboot").as_deref(), Some("1"));
    assert_eq!(cfg.disk_size("scsi0"), Some(4 << 30));
    // DELETE params go in the query; the fake records the path without the query.
    let del = c.qemu_delete("pve1", 101, true).await.unwrap();
    c.wait_task(&del).await.unwrap();
    let e = c.qemu_status("pve1", 101).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    // The API error keeps status, reason and message.
    let Error::Api {
        status,
        reason,
        message,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(*status, 500);
    assert!(reason.contains("does not exist"), "{reason}");
    assert!(message.contains("101.conf"), "{message}");
}

#[tokio::test]
async fn parameter_errors_are_kept() {
    let Some(fake) = fake_with_template().await else {
        return;
    };
    let c = fake.client();
    let e = c
        .qemu_set_config("pve1", 9000, &Params::new().set("cores", "many"))
        .await
        .unwrap_err();
    let Error::Api { status, errors, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*status, 400);
    assert!(errors.contains_key("cores"), "{errors:?}");
}

#[tokio::test]
async fn token_auth() {
    let Some(fake) = fake_with_template().await else {
        return;
    };
    fake.cmd(json!({"op": "add_token", "id": "hakube@pve!ci", "secret": "tok-secret"}))
        .await;
    let c = fake
        .builder()
        .token("hakube@pve!ci", Secret::new("tok-secret"))
        .build()
        .unwrap();
    assert_eq!(c.qemu_list("pve1").await.unwrap().len(), 1);
    let bad = fake
        .builder()
        .token("hakube@pve!ci", Secret::new("nope"))
        .build()
        .unwrap();
    let e = bad.qemu_list("pve1").await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(!e.to_string().contains("nope"));
}

#[tokio::test]
async fn bad_password_is_refused_without_leaking_it() {
    let Some(fake) = fake_with_template().await else {
        return;
    };
    let c = fake
        .builder()
        .password("root@pam", Secret::new("wrong-pw"))
        .build()
        .unwrap();
    let e = c.version().await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(!format!("{e} {e:?}").contains("wrong-pw"));
}

#[tokio::test]
async fn fingerprint_pinning() {
    let Some(fake) = fake_with_template().await else {
        return;
    };
    let good: Fingerprint = fake.fingerprint.parse().unwrap();
    let c = fake
        .builder()
        .trust(TlsTrust::Fingerprint(good))
        .password("root@pam", Secret::new("secret"))
        .build()
        .unwrap();
    c.version().await.unwrap();
    let wrong: Fingerprint = ("AB:".repeat(31) + "AB").parse().unwrap();
    let c = fake
        .builder()
        .trust(TlsTrust::Fingerprint(wrong))
        .password("root@pam", Secret::new("secret"))
        .build()
        .unwrap();
    let e = c.version().await.unwrap_err();
    let Error::Tls { reason, .. } = &e else {
        panic!("expected a TLS error, got {e:?}")
    };
    assert!(reason.contains("does not match"), "{reason}");
    // The system roots do not know the fake's self-signed certificate either.
    let c = fake
        .builder()
        .trust(TlsTrust::SystemRoots)
        .password("root@pam", Secret::new("secret"))
        .build()
        .unwrap();
    assert!(matches!(c.version().await.unwrap_err(), Error::Tls { .. }));
    // Only the explicitly dangerous mode accepts anything.
    let c = fake
        .builder()
        .trust(TlsTrust::DangerAcceptInvalidCerts)
        .password("root@pam", Secret::new("secret"))
        .build()
        .unwrap();
    c.version().await.unwrap();
}

#[tokio::test]
async fn expired_ticket_is_renewed_once() {
    let Some(fake) = fake_with_template().await else {
        return;
    };
    let c = fake.client();
    c.version().await.unwrap();
    fake.cmd(json!({"op": "revoke_tickets"})).await;
    // A write after expiry: 401 invalid PVE ticket, log in again, repeat once.
    c.qemu_set_config("pve1", 9000, &Params::new().set("description", "x"))
        .await
        .unwrap();
    let reqs = fake.requests(0).await;
    let logins = reqs
        .iter()
        .filter(|r| r.1.ends_with("/access/ticket"))
        .count();
    assert_eq!(logins, 2);
}

#[tokio::test]
async fn task_error_carries_log_tail() {
    let Some(fake) = fake_with_template().await else {
        return;
    };
    // The clone's worker fails to allocate its disk: TASK ERROR, the half-made VM is removed.
    fake.cmd(json!({"op": "set_storage", "name": "local-lvm", "options": {"active": 0}}))
        .await;
    let c = fake.client();
    let upid = c
        .qemu_clone("pve1", 9000, 102, &CloneOptions::default())
        .await
        .unwrap();
    let err = c.wait_task(&upid).await.unwrap_err();
    let Error::Task {
        exitstatus,
        log_tail,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(exitstatus.contains("not online"), "{exitstatus}");
    assert!(
        log_tail.iter().any(|l| l.starts_with("TASK ERROR")),
        "{log_tail:?}"
    );
    assert!(err.to_string().contains("task log tail"), "{err}");
}

#[tokio::test]
async fn lock_timeout_then_success_is_retried() {
    let Some(fake) = fake_with_template().await else {
        return;
    };
    fake.cmd(
        json!({"op": "fail", "method": "POST", "suffix": "/nodes/pve1/qemu/9000/clone",
        "error": "config_lock_timeout", "times": 2}),
    )
    .await;
    let c = fake.client();
    let upid = c
        .qemu_clone("pve1", 9000, 103, &CloneOptions::default())
        .await
        .unwrap();
    c.wait_task(&upid).await.unwrap();
    let clones = fake
        .requests(0)
        .await
        .into_iter()
        .filter(|r| r.0 == "POST" && r.1.ends_with("/clone"))
        .count();
    assert_eq!(clones, 3);
}
