//! The generated property-string types (`net[n]`, `scsi[n]`, `ipconfig[n]`, `agent`, ...)
//! read what real PVE answers and write what PVE reads. The answers are recorded ones
//! (community.proxmox's unit-test fixtures "recorded from PVE version 6.2" and fog's, as in
//! `shared/reference/pve/responses`), inlined here.

#![allow(clippy::unwrap_used, reason = "test")]

use hakube_proxmox_api::generated::*;
use proptest::prelude::*;

/// `GET /nodes/testnode/qemu/101/config`, recorded from PVE 6.2 (community.proxmox
/// `tests/unit/plugins/inventory/test_proxmox.py`).
const CONFIG_101: &str = r#"{"tags": "one, two, three", "cores": 1, "ide2": "none,media=cdrom",
 "memory": 1000, "kvm": 1, "digest": "0123456789abcdef0123456789abcdef0123456789",
 "description": "A test qemu", "sockets": 1, "onboot": 1, "numa": 0, "bootdisk": "scsi0",
 "cpu": "host", "name": "test-qemu", "ostype": "l26", "hotplug": "network,disk,usb",
 "scsi0": "local-lvm:vm-101-disk-0,size=8G",
 "net0": "virtio=ff:ff:ff:ff:ff:ff,bridge=vmbr0,firewall=1", "agent": "1,fstrim_cloned_disks=1",
 "bios": "seabios", "ide0": "local-lvm:vm-101-cloudinit,media=cdrom,size=4M", "boot": "cdn",
 "scsihw": "virtio-scsi-pci", "smbios1": "uuid=ffffffff-ffff-ffff-ffff-ffffffffffff",
 "ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1", "ipconfig1": "ip=dhcp,ip6=auto"}"#;

#[test]
fn recorded_config_reads_typed() {
    let cfg: GetNodesNodeQemuVmidConfigAnswer = serde_json::from_str(CONFIG_101).unwrap();
    let net = cfg.net();
    let net0 = net[&0].as_ref().unwrap();
    // `virtio=MAC` is PVE's short form of model=virtio,macaddr=MAC.
    assert_eq!(net0.model.as_deref(), Some("virtio"));
    assert_eq!(net0.macaddr.as_deref(), Some("ff:ff:ff:ff:ff:ff"));
    assert_eq!(net0.bridge.as_deref(), Some("vmbr0"));
    assert_eq!(net0.firewall, Some(true));
    let scsi = cfg.scsi();
    let scsi0 = scsi[&0].as_ref().unwrap();
    assert_eq!(scsi0.file.as_deref(), Some("local-lvm:vm-101-disk-0"));
    assert_eq!(scsi0.size.as_deref(), Some("8G"));
    let ide = cfg.ide();
    assert_eq!(ide.len(), 2);
    assert_eq!(ide[&2].as_ref().unwrap().file.as_deref(), Some("none"));
    assert_eq!(ide[&0].as_ref().unwrap().media.as_deref(), Some("cdrom"));
    let agent = cfg.agent_parsed().unwrap().unwrap();
    assert_eq!(agent.enabled, Some(true));
    assert_eq!(agent.fstrim_cloned_disks, Some(true));
    let ip = cfg.ipconfig();
    let ip0 = ip[&0].as_ref().unwrap();
    assert_eq!(
        (ip0.ip.as_deref(), ip0.gw.as_deref()),
        (Some("10.0.0.5/24"), Some("10.0.0.1"))
    );
    let ip1 = ip[&1].as_ref().unwrap();
    assert_eq!(
        (ip1.ip.as_deref(), ip1.ip6.as_deref()),
        (Some("dhcp"), Some("auto"))
    );
}

fn round_trip<T>(v: &T, what: &str)
where
    T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
    T::Err: std::fmt::Debug,
{
    assert_eq!(&v.to_string().parse::<T>().unwrap(), v, "{what}");
}

#[test]
fn written_as_pve_reads_and_read_back() {
    let cfg: GetNodesNodeQemuVmidConfigAnswer = serde_json::from_str(CONFIG_101).unwrap();
    for (n, v) in cfg.net() {
        round_trip(&v.unwrap(), &format!("net{n}"));
    }
    for (n, v) in cfg.scsi() {
        round_trip(&v.unwrap(), &format!("scsi{n}"));
    }
    for (n, v) in cfg.ide() {
        round_trip(&v.unwrap(), &format!("ide{n}"));
    }
    for (n, v) in cfg.ipconfig() {
        round_trip(&v.unwrap(), &format!("ipconfig{n}"));
    }
    let mut p = PostNodesNodeQemuVmidConfigParams::default();
    let mut net = NetProperty::default();
    net.model = Some("virtio".into());
    net.bridge = Some("vmbr0".into());
    net.firewall = Some(false);
    net.tag = Some(20);
    p.net.insert(1, net);
    let mut ip = IpconfigProperty::default();
    ip.ip = Some("10.0.0.5/24".into());
    ip.gw = Some("10.0.0.1".into());
    p.ipconfig.insert(0, ip);
    let mut disk = ScsiProperty::default();
    disk.file = Some("local-lvm:4".into());
    disk.discard = Some("on".into());
    p.scsi.insert(1, disk);
    // Keys in the schema's (alphabetical) order, the default key bare: PVE reads any order.
    assert_eq!(
        p.to_params().encode(),
        "ipconfig0=gw%3D10.0.0.1%2Cip%3D10.0.0.5%2F24\
         &net1=virtio%2Cbridge%3Dvmbr0%2Cfirewall%3D0%2Ctag%3D20\
         &scsi1=local-lvm%3A4%2Cdiscard%3Don"
    );
}

#[test]
fn a_bad_value_names_its_key() {
    let e = "virtio,firewall=maybe".parse::<NetProperty>().unwrap_err();
    assert_eq!(e.key, "firewall");
    let e = "virtio,tag=x".parse::<NetProperty>().unwrap_err();
    assert_eq!(e.key, "tag");
    // Keys the schema does not list are kept, in order.
    let n: NetProperty = "virtio,bridge=vmbr0,future-key=1".parse().unwrap();
    assert_eq!(n.other, vec![("future-key".to_owned(), "1".to_owned())]);
    assert!(n.to_string().ends_with(",future-key=1"));
}

proptest! {
    #[test]
    fn property_strings_never_panic(s in "\\PC{0,80}", t in "[a-z_=,0-9:.-]{0,60}") {
        for input in [&s, &t] {
            let _ = input.parse::<NetProperty>();
            let _ = input.parse::<ScsiProperty>();
            let _ = input.parse::<IdeProperty>();
            let _ = input.parse::<IpconfigProperty>();
            let _ = input.parse::<AgentProperty>();
        }
    }
}
