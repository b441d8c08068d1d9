//! The client against fakepve: auth, TLS trust, wire quirks, tasks.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic on unexpected answers"
)]

mod common;

use common::Fake;
use hakube_proxmox_api::{
    CloneOptions, DeleteOptions, Error, Fingerprint, Params, Secret, TlsTrust,
};
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
    let del = c
        .qemu_delete("pve1", 101, &DeleteOptions::default().purge(true))
        .await
        .unwrap();
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
    assert!(
        reason.starts_with("certificate fingerprint "),
        "no rustls wrapper text: {reason}"
    );
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

#[tokio::test]
async fn every_typed_call_decodes_the_fakes_answers() {
    let Some(fake) = fake_with_template().await else {
        return;
    };
    fake.cmd(json!({"op": "add_node", "name": "pve2"})).await;
    let c = fake.client();
    // Cluster and nodes.
    let st = c.cluster_status().await.unwrap();
    assert!(
        st.iter()
            .any(|e| e.kind == "cluster" && e.quorate == Some(true)),
        "{st:?}"
    );
    assert!(
        st.iter()
            .any(|e| e.kind == "node" && e.name == "pve2" && e.online == Some(true))
    );
    let status = c.node_status("pve1").await.unwrap();
    assert!(status.get("uptime").is_some(), "{status}");
    let nodes = c
        .cluster_resources(Some(hakube_proxmox_api::ResourceType::Node))
        .await
        .unwrap();
    assert_eq!(nodes.len(), 2);
    assert!(!c.storages().await.unwrap().is_empty());
    assert!(
        c.node_storages("pve1")
            .await
            .unwrap()
            .iter()
            .any(|s| s.storage == "local-lvm")
    );
    // nextid: a taken id is a 400 with the field named.
    let e = c.next_id(Some(9000)).await.unwrap_err();
    let Error::Api { status, errors, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!((*status, errors.contains_key("vmid")), (400, true));
    assert_eq!(c.next_id(Some(4242)).await.unwrap(), 4242);
    // Create, configure (async), resize, template.
    let upid = c
        .qemu_create(
            "pve1",
            &Params::new()
                .set("vmid", 150u32)
                .set("name", "scratch")
                .set("scsi0", "local-lvm:4")
                .set("agent", true)
                .set("net0", "virtio,bridge=vmbr0"),
        )
        .await
        .unwrap();
    c.wait_task(&upid).await.unwrap();
    let cfg_task = c
        .qemu_set_config_async("pve1", 150, &Params::new().set("cores", 2u32))
        .await
        .unwrap()
        .expect("a qmconfig task");
    c.wait_task(&cfg_task).await.unwrap();
    assert_eq!(
        c.qemu_config("pve1", 150).await.unwrap().get_u64("cores"),
        Some(2)
    );
    let resize = c
        .qemu_resize("pve1", 150, "scsi0", "8G")
        .await
        .unwrap()
        .expect("task");
    c.wait_task(&resize).await.unwrap();
    assert_eq!(
        c.qemu_config("pve1", 150).await.unwrap().disk_size("scsi0"),
        Some(8 << 30)
    );
    // Power, pending, agent.
    let start = c.qemu_start("pve1", 150).await.unwrap();
    c.wait_task(&start).await.unwrap();
    c.qemu_set_config("pve1", 150, &Params::new().set("memory", 4096u32))
        .await
        .unwrap();
    let pending = c.qemu_pending("pve1", 150).await.unwrap();
    assert!(
        pending
            .iter()
            .any(|p| p.key == "memory" && p.pending.is_some()),
        "{pending:?}"
    );
    c.agent_ping("pve1", 150).await.unwrap();
    let ifs = c.agent_network_interfaces("pve1", 150).await.unwrap();
    assert!(
        hakube_proxmox_api::primary_address(&ifs).is_some(),
        "{ifs:?}"
    );
    let vs = c.qemu_status("pve1", 150).await.unwrap();
    assert_eq!((vs.status.as_str(), vs.agent), ("running", Some(true)));
    let reboot = c.qemu_reboot("pve1", 150).await.unwrap();
    c.wait_task(&reboot).await.unwrap();
    let shutdown = c.qemu_shutdown("pve1", 150, Some(30), true).await.unwrap();
    c.wait_task(&shutdown).await.unwrap();
    let start = c.qemu_start("pve1", 150).await.unwrap();
    c.wait_task(&start).await.unwrap();
    let stop = c.qemu_stop("pve1", 150).await.unwrap();
    c.wait_task(&stop).await.unwrap();
    let mig = c
        .qemu_migrate("pve1", 150, "pve2", false, true)
        .await
        .unwrap();
    c.wait_task(&mig).await.unwrap();
    assert_eq!(c.qemu_list("pve2").await.unwrap()[0].vmid, 150);
    if let Some(t) = c.qemu_template("pve2", 150).await.unwrap() {
        c.wait_task(&t).await.unwrap();
    }
    assert_eq!(
        c.qemu_status("pve2", 150).await.unwrap().template,
        Some(true)
    );
    // Tasks of a node, and a log.
    let tasks = c.node_tasks("pve2", Some(150), false).await.unwrap();
    assert!(tasks.iter().all(|t| !t.is_active()), "{tasks:?}");
    let log = c.task_log(&mig, 0, 50).await.unwrap();
    assert!(log.iter().any(|l| l.t == "TASK OK"), "{log:?}");
    // Pools and HA.
    c.create_pool("k8s", Some("test")).await.unwrap();
    assert!(c.pools().await.unwrap().iter().any(|p| p.poolid == "k8s"));
    c.create_ha_resource("vm:9000", "started", None)
        .await
        .unwrap();
    assert_eq!(c.ha_resources().await.unwrap()[0].sid, "vm:9000");
    c.create_ha_rule(&hakube_proxmox_api::HaRuleSpec::NodeAffinity {
        rule: "pin".into(),
        resources: vec!["vm:9000".into()],
        nodes: vec!["pve1:2".into(), "pve2".into()],
        strict: false,
        comment: None,
    })
    .await
    .unwrap();
    let rules = c.ha_rules().await.unwrap();
    assert_eq!(
        (rules[0].kind.as_str(), rules[0].nodes.as_deref()),
        ("node-affinity", Some("pve1:2,pve2"))
    );
    // Delete with purge.
    let del = c
        .qemu_delete("pve1", 9000, &DeleteOptions::default().purge(true))
        .await
        .unwrap();
    c.wait_task(&del).await.unwrap();
}

#[tokio::test]
async fn task_quirks_warnings_no_such_task_and_transient_gets() {
    let Some(fake) = fake_with_template().await else {
        return;
    };
    let c = fake.client();
    // WARNINGS: n is success.
    fake.cmd(json!({"op": "warn_types", "value": ["qmclone"]}))
        .await;
    let upid = c
        .qemu_clone("pve1", 9000, 120, &CloneOptions::default())
        .await
        .unwrap();
    let done = c.wait_task(&upid).await.unwrap();
    assert_eq!(
        (done.exitstatus.as_str(), done.warnings),
        ("WARNINGS: 1", 1)
    );
    // A fresh task briefly unknown to its node, as PVE says it: 400 "Parameter
    // verification failed." with the text in errors.upid (pve-manager Tasks.pm).
    fake.cmd(json!({"op": "fail", "method": "GET", "suffix": "/status", "error": "param_upid_no_such_task", "times": 2})).await;
    let upid = c.qemu_start("pve1", 120).await.unwrap();
    c.wait_task(&upid).await.unwrap();
    let status_gets = fake
        .requests(0)
        .await
        .iter()
        .filter(|r| r.0 == "GET" && r.1.contains(upid.as_str()) && r.1.ends_with("/status"))
        .count();
    assert!(status_gets >= 3, "{status_gets}");
    // Transient proxy errors on reads are retried.
    fake.cmd(json!({"op": "fail", "method": "GET", "suffix": "/cluster/resources", "status": 596, "message": "Broken pipe", "times": 2})).await;
    let r = c.cluster_resources(None).await.unwrap();
    assert!(r.iter().any(|r| r.vmid == Some(120)));
    // ...but not on writes: a 596 may have been processed.
    fake.cmd(json!({"op": "fail", "method": "POST", "suffix": "/status/stop", "status": 596, "message": "Broken pipe", "times": 1})).await;
    let e = c.qemu_stop("pve1", 120).await.unwrap_err();
    assert_eq!(e.retry(), hakube_proxmox_api::Retry::AfterObserve);
    let stops = fake
        .requests(0)
        .await
        .iter()
        .filter(|r| r.1.ends_with("/status/stop"))
        .count();
    assert_eq!(stops, 1);
}

/// The TOTP login against the harness's fakepve, which completes PVE 7+'s two-step login
/// (fakepve 0.5.0 only answers the first step, `NeedTFA`): the code is checked as RFC 6238
/// at now +-1 step, a full ticket renews without a code, every refusal is 401.
#[tokio::test]
async fn totp_second_factor_against_fakepve() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use hakube_proxmox_api::TotpSource;

    let Some(fake) = fake_with_template().await else {
        return;
    };
    let user = json!({"op": "add_totp_user", "user": "ops@pve", "password": "pw-ops",
                      "secret": "JBSWY3DPEHPK3PXP"});
    fake.cmd(user).await;
    let code = Arc::new(Mutex::new(String::new()));
    let asked = Arc::new(AtomicU32::new(0));
    let source = {
        let (code, asked) = (Arc::clone(&code), Arc::clone(&asked));
        TotpSource::new(move || {
            asked.fetch_add(1, Ordering::SeqCst);
            Secret::new(code.lock().unwrap().clone())
        })
    };
    let set_code = |c: serde_json::Value| *code.lock().unwrap() = c.as_str().unwrap().to_owned();
    set_code(fake.cmd(json!({"op": "totp_now", "user": "ops@pve"})).await);
    let since = fake.request_count().await;
    let c = fake
        .builder()
        .password_totp("ops@pve", Secret::new("pw-ops"), source.clone())
        .ticket_renew_after(std::time::Duration::ZERO)
        .build()
        .unwrap();
    c.login().await.unwrap();
    // Logged in: calls work, and each renews the ticket (renew_after 0) without a code.
    c.version().await.unwrap();
    c.nodes().await.unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 1, "one code per fresh login");
    let counts = fake.cmd(json!({"op": "tfa_counts"})).await;
    assert_eq!(counts, json!({"accepted": 1, "refused": 0}));
    let logins: Vec<String> = fake
        .requests(since)
        .await
        .into_iter()
        .filter(|r| r.1.ends_with("/access/ticket"))
        .map(|r| r.2)
        .collect();
    assert!(logins.len() >= 3, "{logins:?}");
    assert!(
        logins[0].contains("new-format=1") && !logins[0].contains("tfa-challenge"),
        "{logins:?}"
    );
    assert!(
        logins[1].contains("tfa-challenge=***") && logins[1].contains("password=***"),
        "{logins:?}"
    );
    assert!(
        logins[2..].iter().all(|b| !b.contains("tfa-challenge")),
        "{logins:?}"
    );

    // A wrong code: refused once (401, never retried), the error names the user, not the code.
    let wrong = fake
        .cmd(json!({"op": "totp_wrong", "user": "ops@pve"}))
        .await;
    set_code(wrong.clone());
    let c = fake
        .builder()
        .password_totp("ops@pve", Secret::new("pw-ops"), source)
        .build()
        .unwrap();
    let err = c.version().await.unwrap_err();
    let Error::Auth { user, status, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!((user.as_str(), *status), ("ops@pve", Some(401)));
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(wrong.as_str().unwrap()) && !shown.contains("pw-ops"),
        "{shown}"
    );
    let counts = fake.cmd(json!({"op": "tfa_counts"})).await;
    assert_eq!(counts, json!({"accepted": 1, "refused": 1}));

    // No TOTP source for an account that needs one: said plainly, nothing sent after step one.
    let c = fake
        .builder()
        .password("ops@pve", Secret::new("pw-ops"))
        .build()
        .unwrap();
    let err = c.version().await.unwrap_err();
    assert!(err.to_string().contains("second factor"), "{err}");
    let counts = fake.cmd(json!({"op": "tfa_counts"})).await;
    assert_eq!(counts, json!({"accepted": 1, "refused": 1}));
}
