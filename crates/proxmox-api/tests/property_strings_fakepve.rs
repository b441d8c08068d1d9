//! The typed property strings on the wire: what they write, fakepve (PVE's checks of
//! property strings: keys, aliases, the default key, booleans, named formats) takes, stores
//! and answers, and what it answers reads back as the value sent. A value PVE cannot take
//! (a comma: PVE has no quoting) is refused by the server, as `pve_reads_plain` says.

#![allow(clippy::unwrap_used, reason = "test")]

mod common;

use common::Fake;
use hakube_proxmox_api::Error;
use hakube_proxmox_api::generated::*;
use hakube_proxmox_api::property_string::pve_reads_plain;
use serde_json::json;

#[tokio::test]
async fn typed_config_is_taken_stored_and_read_back() {
    let Some(fake) = Fake::start(0.0).await else {
        eprintln!("SKIP: no venv with fakepve (run scripts/install-test-deps)");
        return;
    };
    fake.cmd(json!({"op": "add_node", "name": "pve1"})).await;
    fake.cmd(
        json!({"op": "add_vm", "vmid": 100, "name": "v100", "node": "pve1",
        "config": {"memory": 512, "scsi0": "local-lvm:vm-100-disk-0,size=4G"}}),
    )
    .await;
    let c = fake.client();

    let mut p = PutNodesNodeQemuVmidConfigParams::default();
    let mut net = NetProperty::default();
    (net.model, net.macaddr, net.bridge, net.firewall, net.tag) = (
        Some("virtio".into()),
        Some("BC:24:11:00:00:01".into()),
        Some("vmbr0".into()),
        Some(true),
        Some(20),
    );
    p.net.insert(0, net);
    let mut ip = IpconfigProperty::default();
    (ip.ip, ip.gw, ip.ip6) = (
        Some("10.0.0.5/24".into()),
        Some("10.0.0.1".into()),
        Some("auto".into()),
    );
    p.ipconfig.insert(0, ip);
    let mut boot = BootProperty::default();
    boot.order = Some("scsi0;net0".into());
    p.boot = Some(boot);
    let mut agent = AgentProperty::default();
    (agent.enabled, agent.fstrim_cloned_disks) = (Some(true), Some(true));
    p.agent = Some(agent);
    let mut watchdog = WatchdogProperty::default();
    (watchdog.model, watchdog.action) = (Some("i6300esb".into()), Some("reset".into()));
    p.watchdog = Some(watchdog);
    let mut rng = RngProperty::default();
    (rng.source, rng.max_bytes) = (Some("/dev/urandom".into()), Some(2048));
    p.rng0 = Some(rng);
    let mut startup = StartupProperty::default();
    (startup.order, startup.up) = (Some(2), Some(30));
    p.startup = Some(startup);
    let mut ci = CicustomProperty::default();
    ci.user = Some("local:snippets/user.yaml".into());
    p.cicustom = Some(ci);
    let mut smbios = Smbios1Property::default();
    smbios.uuid = Some("7b10d7af-b932-4c66-b2c3-3996152ec465".into());
    p.smbios1 = Some(smbios);
    let mut cpu = CpuProperty::default();
    (cpu.cputype, cpu.flags) = (Some("x86-64-v2-AES".into()), Some("+aes".into()));
    p.cpu = Some(cpu);
    let mut cdrom = IdeProperty::default();
    (cdrom.file, cdrom.media) = (Some("none".into()), Some("cdrom".into()));
    p.ide.insert(2, cdrom);
    c.put_nodes_node_qemu_vmid_config("pve1", "100", &p)
        .await
        .unwrap();

    let cfg = c
        .get_nodes_node_qemu_vmid_config(
            "pve1",
            "100",
            &GetNodesNodeQemuVmidConfigParams::default(),
        )
        .await
        .unwrap();
    // Stored as written, and read back as the value sent.
    assert_eq!(
        cfg.other["net0"],
        "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1,tag=20"
    );
    assert_eq!(cfg.net()[&0].as_ref().unwrap(), &p.net[&0]);
    assert_eq!(cfg.ipconfig()[&0].as_ref().unwrap(), &p.ipconfig[&0]);
    assert_eq!(cfg.ide()[&2].as_ref().unwrap(), &p.ide[&2]);
    assert_eq!(cfg.boot_parsed().unwrap().unwrap(), p.boot.clone().unwrap());
    assert_eq!(
        cfg.agent_parsed().unwrap().unwrap(),
        p.agent.clone().unwrap()
    );
    assert_eq!(
        cfg.watchdog_parsed().unwrap().unwrap(),
        p.watchdog.clone().unwrap()
    );
    assert_eq!(cfg.rng0_parsed().unwrap().unwrap(), p.rng0.clone().unwrap());
    assert_eq!(
        cfg.startup_parsed().unwrap().unwrap(),
        p.startup.clone().unwrap()
    );
    assert_eq!(
        cfg.cicustom_parsed().unwrap().unwrap(),
        p.cicustom.clone().unwrap()
    );
    assert_eq!(
        cfg.smbios1_parsed().unwrap().unwrap(),
        p.smbios1.clone().unwrap()
    );
    assert_eq!(cfg.cpu_parsed().unwrap().unwrap(), p.cpu.clone().unwrap());
    assert_eq!(cfg.watchdog.as_deref(), Some("i6300esb,action=reset"));
    assert_eq!(cfg.startup.as_deref(), Some("2,up=30"));

    // A bridge with a comma: quoted for a round trip, but PVE splits on every comma.
    let mut bad = PutNodesNodeQemuVmidConfigParams::default();
    let mut net = NetProperty::default();
    (net.model, net.bridge) = (Some("virtio".into()), Some("vm,br0".into()));
    assert_eq!(net.to_string(), r#"virtio,bridge="vm,br0""#);
    assert!(!pve_reads_plain("vm,br0", true));
    bad.net.insert(1, net);
    match c.put_nodes_node_qemu_vmid_config("pve1", "100", &bad).await {
        Err(Error::Api { status, errors, .. }) => {
            assert_eq!(status, 400);
            assert!(errors.contains_key("net1"), "{errors:?}");
        }
        other => panic!("PVE took a value with a comma: {other:?}"),
    }
}
