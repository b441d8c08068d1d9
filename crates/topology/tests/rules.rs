//! One test per validation rule: each breaks the seed in one way and checks the rule, the
//! field path, the position and the wording.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use hakube_topology::{Error, Rule, Severity, load};

const SEED: &str = include_str!("../../../examples/seed-cluster.yaml");

fn seed_with(from: &str, to: &str) -> String {
    assert!(SEED.contains(from), "seed has no `{from}`");
    SEED.replacen(from, to, 1)
}

/// Loads `text`, expects an Invalid error with a problem of `rule` at `path`; returns its message.
fn problem(text: &str, rule: Rule, path: &str) -> String {
    let err = load(text, "seed.yaml").expect_err("must be refused");
    let Error::Invalid { problems, .. } = &err else {
        panic!("not a rule error: {err}")
    };
    let p = problems
        .iter()
        .find(|p| p.rule == rule && p.path == path)
        .unwrap_or_else(|| panic!("no {rule:?} at {path} in:\n{err}"));
    assert_eq!(p.severity, Severity::Error);
    assert!(p.position.is_some(), "no position for {path}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("seed.yaml:{}: {path}: ", p.position.unwrap())),
        "{text}"
    );
    p.message.clone()
}

#[test]
fn the_seed_is_valid() {
    let c = load(SEED, "seed.yaml").unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.vms.len(), 16);
}

#[test]
fn even_control_plane_is_refused_with_the_quorum_reason() {
    let m = problem(
        &seed_with("count: 3 # masters", "count: 4"),
        Rule::ControlPlaneQuorum,
        "control_plane.count",
    );
    assert!(m.contains("majority (3)") && m.contains("odd"), "{m}");
}

#[test]
fn zero_control_plane_is_refused() {
    problem(
        &seed_with("count: 3 # masters", "count: 0"),
        Rule::ControlPlaneQuorum,
        "control_plane.count",
    );
}

#[test]
fn single_control_plane_is_a_warning() {
    let c = load(&seed_with("count: 3 # masters", "count: 1"), "seed.yaml").unwrap();
    let w = c
        .warnings
        .iter()
        .find(|w| w.rule == Rule::ControlPlaneQuorum)
        .expect("warning");
    assert_eq!(w.severity, Severity::Warning);
    assert!(w.message.contains("lab"));
}

#[test]
fn vip_outside_the_node_network() {
    let m = problem(
        &seed_with("vip: 10.20.0.10", "vip: 10.30.0.10"),
        Rule::AddressOutsideNetwork,
        "network.vip",
    );
    assert!(m.contains("10.20.0.0/24"), "{m}");
}

#[test]
fn gateway_outside_the_node_network() {
    problem(
        &seed_with("gateway: 10.20.0.1", "gateway: 10.21.0.1"),
        Rule::AddressOutsideNetwork,
        "network.gateway",
    );
}

#[test]
fn static_vm_address_outside_the_node_network() {
    let text = seed_with(
        "name_pattern: lb-{n}",
        "name_pattern: lb-{n}\n  addresses: [10.20.0.2, 10.20.0.3, 10.99.0.4]",
    );
    problem(
        &text,
        Rule::AddressOutsideNetwork,
        "loadbalancers.addresses[2]",
    );
}

#[test]
fn duplicate_addresses() {
    let text = seed_with(
        "name_pattern: lb-{n}",
        "name_pattern: lb-{n}\n  addresses: [10.20.0.2, 10.20.0.3, 10.20.0.10]",
    );
    let m = problem(&text, Rule::AddressDuplicate, "loadbalancers.addresses[2]");
    assert!(m.contains("network.vip"), "{m}");
}

#[test]
fn node_address_inside_the_pod_network() {
    // A node network that contains part of the pod network puts node addresses inside it.
    let text = seed_with("pod_cidr: 10.244.0.0/16", "pod_cidr: 10.20.0.64/26");
    problem(&text, Rule::CidrOverlap, "kubernetes.pod_cidr");
    let text = seed_with(
        "name_pattern: lb-{n}",
        "name_pattern: lb-{n}\n  addresses: [10.20.0.2, 10.20.0.3, 10.96.0.4]",
    );
    let m = problem(
        &text,
        Rule::AddressInClusterNetwork,
        "loadbalancers.addresses[2]",
    );
    assert!(m.contains("service network"), "{m}");
}

#[test]
fn overlapping_networks_explain_the_calico_default() {
    let text = seed_with("cidr: 10.20.0.0/24", "cidr: 192.168.1.0/24")
        .replace("10.20.0.", "192.168.1.")
        .replace("pod_cidr: 10.244.0.0/16", "pod_cidr: 192.168.0.0/16");
    let m = problem(&text, Rule::CidrOverlap, "kubernetes.pod_cidr");
    assert!(m.contains("192.168.0.0/16") && m.contains("Calico"), "{m}");
    let text = seed_with("service_cidr: 10.96.0.0/12", "service_cidr: 10.240.0.0/12");
    problem(&text, Rule::CidrOverlap, "kubernetes.service_cidr");
}

#[test]
fn node_ports_out_of_range() {
    let m = problem(
        &seed_with("http_node_port: 30080", "http_node_port: 8080"),
        Rule::NodePortRange,
        "ingress.http_node_port",
    );
    assert!(m.contains("30000-32767"));
}

#[test]
fn node_ports_must_differ() {
    problem(
        &seed_with("https_node_port: 30443", "https_node_port: 30080"),
        Rule::NodePortDuplicate,
        "ingress.https_node_port",
    );
}

#[test]
fn names_must_be_dns_labels() {
    let m = problem(
        &seed_with("name_pattern: lb-{n}", "name_pattern: LB_{n}"),
        Rule::InvalidName,
        "loadbalancers.name_pattern",
    );
    assert!(m.contains("LB_1"), "{m}");
    problem(
        &seed_with("name: seed", "name: Seed!"),
        Rule::InvalidName,
        "cluster.name",
    );
    problem(
        &seed_with("- name: pve2", "- name: pve 2"),
        Rule::InvalidName,
        "proxmox.nodes[1].name",
    );
    problem(
        &seed_with(
            "environment: prod, workload",
            "\"bad key!\": prod, workload",
        ),
        Rule::InvalidName,
        "workers.groups[0].labels.bad key!",
    );
}

#[test]
fn names_must_be_unique() {
    let m = problem(
        &seed_with("name_pattern: vault-{n}", "name_pattern: vault"),
        Rule::DuplicateName,
        "vault.vms.name_pattern",
    );
    assert!(m.contains("{n}"), "{m}");
    problem(
        &seed_with("name: nfs-1", "name: master-1"),
        Rule::DuplicateName,
        "nfs.name_pattern",
    );
}

#[test]
fn vmids_in_range() {
    let m = problem(
        &seed_with(
            "name_pattern: lb-{n}",
            "name_pattern: lb-{n}\n  vmid_start: 50",
        ),
        Rule::VmidRange,
        "loadbalancers.vmid_start",
    );
    assert!(m.contains("VMID 50"), "{m}");
    problem(
        &seed_with(
            "vmids: { first: 200, last: 299 }",
            "vmids: { first: 200, last: 205 }",
        ),
        Rule::VmidRange,
        "proxmox.vmids",
    );
}

#[test]
fn vmids_unique() {
    let m = problem(
        &seed_with(
            "name_pattern: lb-{n}",
            "name_pattern: lb-{n}\n  vmid_start: 9001",
        ),
        Rule::VmidDuplicate,
        "loadbalancers.vmid_start",
    );
    assert!(m.contains("9001"), "{m}");
}

#[test]
fn kubernetes_version_must_parse() {
    let m = problem(
        &seed_with("version: 1.34.2", "version: latest"),
        Rule::KubernetesVersion,
        "kubernetes.version",
    );
    assert!(m.contains("1.34.2"), "{m}");
    let c = load(&seed_with("version: 1.34.2", "version: v1.34.2"), "s").unwrap();
    assert_eq!(c.kubernetes_version, "1.34.2");
}

#[test]
fn exports_absolute_and_distinct() {
    problem(
        &seed_with("- path: /srv/nfs/k8s-prod", "- path: srv/nfs/k8s-prod"),
        Rule::ExportPath,
        "nfs.exports[0].path",
    );
    problem(
        &seed_with("- path: /srv/nfs/k8s-nonprod", "- path: /srv/nfs/k8s-prod/"),
        Rule::ExportPath,
        "nfs.exports[1].path",
    );
    let m = problem(
        &seed_with(
            "- path: /srv/nfs/k8s-nonprod",
            "- path: /srv/nfs/k8s-prod/dev",
        ),
        Rule::ExportPath,
        "nfs.exports[1].path",
    );
    assert!(m.contains("nested"), "{m}");
}

#[test]
fn export_clients_inside_the_node_network() {
    problem(
        &seed_with("clients: [10.20.0.0/24]", "clients: [10.0.0.0/8]"),
        Rule::ExportClient,
        "nfs.exports[0].clients[0]",
    );
}

#[test]
fn storage_classes_reference_exports_and_are_unique() {
    problem(
        &seed_with("export: /srv/nfs/k8s-prod", "export: /srv/nfs/nowhere"),
        Rule::StorageClass,
        "storage_classes[0].export",
    );
    problem(
        &seed_with("- name: nfs-nonprod", "- name: nfs-prod"),
        Rule::StorageClass,
        "storage_classes[1].name",
    );
}

#[test]
fn every_node_needs_a_template() {
    problem(
        &seed_with("\n      template: 9002", ""),
        Rule::Template,
        "proxmox.nodes[1].template",
    );
}

#[test]
fn anti_affinity_refused_on_too_few_nodes() {
    // Two Proxmox nodes cannot hold three masters apart.
    let text = seed_with(
        "    - name: pve3\n      capacity: { cores: 32, memory_mib: 131072, disk_gib: 2000 }\n      template: 9003\n",
        "",
    );
    let m = problem(&text, Rule::Placement, "loadbalancers.count");
    assert!(m.contains("allow_shared_placement"), "{m}");
    // ... unless sharing is explicitly allowed.
    let shared = text.replace("vmids: {", "allow_shared_placement: true\n  vmids: {");
    let c = load(&shared, "s").unwrap();
    assert_eq!(c.node_totals().len(), 2);
}

#[test]
fn capacity_is_respected() {
    let text = SEED.replace(
        "capacity: { cores: 32, memory_mib: 131072, disk_gib: 2000 }",
        "capacity: { cores: 8, memory_mib: 16384 }",
    );
    let m = problem(&text, Rule::Placement, "workers.groups[0]");
    assert!(m.contains("no Proxmox node has room for 3 of"), "{m}");
}

#[test]
fn address_pool_exhaustion() {
    let m = problem(
        &seed_with(
            "allocate: { first: 10.20.0.11, last: 10.20.0.99 }",
            "allocate: { first: 10.20.0.11, last: 10.20.0.14 }",
        ),
        Rule::AddressPool,
        "network.allocate",
    );
    assert!(m.contains("exhausted"), "{m}");
}

#[test]
fn sizes_must_boot() {
    problem(
        &seed_with(
            "size: { cores: 2, memory_mib: 2048, disk_gib: 16 }",
            "size: { cores: 0, memory_mib: 2048, disk_gib: 16 }",
        ),
        Rule::Size,
        "loadbalancers.size.cores",
    );
}

#[test]
fn ssh_keys_required_and_well_formed() {
    problem(
        &seed_with("- ssh-ed25519 AAAAC3", "- not-a-key AAAAC3"),
        Rule::Ssh,
        "ssh.public_keys[0]",
    );
}

#[test]
fn terminate_needs_a_certificate() {
    problem(
        &seed_with("tls: passthrough", "tls: terminate"),
        Rule::Ingress,
        "ingress.certificate",
    );
    load(
        &seed_with(
            "tls: passthrough",
            "tls: terminate\n  certificate: /etc/haproxy/certs/ingress.pem",
        ),
        "s",
    )
    .unwrap();
}

#[test]
fn vault_needs_an_odd_count() {
    problem(
        &seed_with(
            "count: 3\n    size: { cores: 2, memory_mib: 2048, disk_gib: 20 }",
            "count: 2\n    size: { cores: 2, memory_mib: 2048, disk_gib: 20 }",
        ),
        Rule::Vault,
        "vault.vms.count",
    );
}

#[test]
fn proxmox_url_must_be_https() {
    problem(
        &seed_with("api_url: https://", "api_url: http://"),
        Rule::Proxmox,
        "proxmox.api_url",
    );
}

#[test]
fn unknown_fields_are_rejected_with_position_and_path() {
    let err = load(
        &seed_with("  vip: 10.20.0.10", "  vip: 10.20.0.10\n  vipp: 10.20.0.11"),
        "seed.yaml",
    )
    .unwrap_err();
    let Error::Parse {
        position,
        path,
        message,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(path.as_deref(), Some("network"));
    assert!(message.contains("vipp"), "{message}");
    assert!(position.is_some());
    assert!(err.to_string().starts_with("seed.yaml:"), "{err}");
}

#[test]
fn wrong_types_name_the_field() {
    let err = load(
        &seed_with("count: 3 # masters", "count: three"),
        "seed.yaml",
    )
    .unwrap_err();
    let Error::Parse { path, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(path.as_deref(), Some("control_plane.count"));
}

#[test]
fn garbage_never_panics() {
    for text in [
        "",
        ":",
        "[",
        "cluster: [1, 2",
        "\t\u{0}",
        "a: &a [*a]",
        "- - -",
    ] {
        assert!(load(text, "x").is_err());
    }
}

#[test]
fn changing_a_role_size_is_one_number() {
    let text = SEED.replace(
        "capacity: { cores: 32, memory_mib: 131072, disk_gib: 2000 }",
        "capacity: { cores: 512, memory_mib: 1048576 }",
    );
    let c = load(
        &text.replacen(
            "count: 3\n      labels: { environment: prod",
            "count: 30\n      labels: { environment: prod",
            1,
        ),
        "s",
    )
    .unwrap();
    assert_eq!(
        c.vms
            .iter()
            .filter(|v| v.group.as_deref() == Some("prod"))
            .count(),
        30
    );
}

#[test]
fn growing_workers_moves_nothing_else() {
    let a = load(SEED, "s").unwrap();
    let b = load(
        &seed_with(
            "count: 3\n      size: { cores: 4",
            "count: 5\n      size: { cores: 4",
        ),
        "s",
    )
    .unwrap();
    for vm in a
        .vms
        .iter()
        .filter(|v| v.role != hakube_topology::RoleKind::Worker)
    {
        let same = b.vm(&vm.name).unwrap();
        assert_eq!(
            (vm.vmid, vm.address, &vm.proxmox_node),
            (same.vmid, same.address, &same.proxmox_node)
        );
    }
}

#[test]
fn json_schema_describes_the_file() {
    let schema = hakube_topology::json_schema();
    let props = &schema["properties"];
    for key in [
        "cluster",
        "proxmox",
        "network",
        "loadbalancers",
        "control_plane",
        "workers",
        "nfs",
        "kubernetes",
        "ingress",
        "vault",
        "backup",
        "ssh",
    ] {
        assert!(props.get(key).is_some(), "schema lacks {key}");
    }
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    let etcd = &schema["$defs"]["EtcdBackup"];
    assert_eq!(etcd["additionalProperties"], serde_json::json!(false));
    assert_eq!(etcd["required"], serde_json::json!(["export"]), "{etcd}");
    assert_eq!(etcd["properties"]["schedule"]["default"], "0 */6 * * *");
    assert_eq!(etcd["properties"]["keep"]["default"], 28);
    assert_eq!(etcd["properties"]["keep"]["minimum"], 1);
    assert!(
        etcd["properties"]["export"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("nfs.exports")),
        "{etcd}"
    );
}

#[test]
fn vrrp_router_id_must_be_valid() {
    problem(
        &seed_with("vip: 10.20.0.10", "vip: 10.20.0.10\n  virtual_router_id: 0"),
        Rule::Vrrp,
        "network.virtual_router_id",
    );
}

#[test]
fn every_export_backs_one_storage_class() {
    let text = seed_with("export: /srv/nfs/k8s-nonprod", "export: /srv/nfs/k8s-prod");
    let m = problem(&text, Rule::StorageClass, "nfs.exports[1].path");
    assert!(m.contains("backs 0"), "{m}");
}

#[test]
fn local_storage_class_must_not_be_nfs() {
    let m = problem(
        &seed_with(
            "log_agent: alloy",
            "log_agent: alloy\n  local_storage_class: nfs-prod",
        ),
        Rule::StorageClass,
        "addons.local_storage_class",
    );
    assert!(m.contains("local disks"), "{m}");
    problem(&seed_with("placement: vms", "placement: in_cluster").replace("  vms:\n    count: 3\n    size: { cores: 2, memory_mib: 2048, disk_gib: 20 }\n    name_pattern: vault-{n}\n", ""), Rule::Vault, "vault.placement");
}

#[test]
fn the_seed_backs_up_etcd_to_its_own_export() {
    let c = load(SEED, "seed.yaml").unwrap();
    let b = c.topology.backup.unwrap().etcd.unwrap();
    assert_eq!(b.export, "/srv/nfs/etcd-backup");
    assert_eq!((b.schedule.as_str(), b.keep), ("0 */6 * * *", 28));
    // Schedule and keep have defaults.
    let text = seed_with("    schedule: \"0 */6 * * *\"\n    keep: 28\n", "");
    let b = load(&text, "s")
        .unwrap()
        .topology
        .backup
        .unwrap()
        .etcd
        .unwrap();
    assert_eq!(
        (b.schedule.as_str(), b.keep),
        (
            hakube_topology::DEFAULT_ETCD_BACKUP_SCHEDULE,
            hakube_topology::DEFAULT_ETCD_BACKUP_KEEP
        )
    );
}

#[test]
fn etcd_backup_export_must_be_an_nfs_export() {
    let m = problem(
        &seed_with(
            "export: /srv/nfs/etcd-backup",
            "export: /srv/nfs/etcd-snapshots",
        ),
        Rule::Backup,
        "backup.etcd.export",
    );
    assert!(m.contains("not one of nfs.exports"), "{m}");
    // Without an NFS server there is nowhere to write.
    let start = SEED.find("nfs:\n").unwrap();
    let end = SEED.find("kubernetes:\n").unwrap();
    let text = format!("{}{}", &SEED[..start], &SEED[end..]);
    let m = problem(&text, Rule::Backup, "backup.etcd.export");
    assert!(m.contains("no nfs server"), "{m}");
}

#[test]
fn etcd_backup_export_must_not_back_a_storage_class() {
    let m = problem(
        &seed_with(
            "export: /srv/nfs/k8s-nonprod",
            "export: /srv/nfs/etcd-backup",
        ),
        Rule::Backup,
        "backup.etcd.export",
    );
    assert!(
        m.contains("nfs-nonprod") && m.contains("every Secret"),
        "{m}"
    );
}

#[test]
fn etcd_backup_export_lists_no_clients() {
    let m = problem(
        &seed_with(
            "- path: /srv/nfs/etcd-backup",
            "- path: /srv/nfs/etcd-backup\n      clients: [10.20.0.0/24]",
        ),
        Rule::Backup,
        "nfs.exports[2].clients",
    );
    assert!(m.contains("control-plane nodes only"), "{m}");
}

#[test]
fn etcd_backup_schedule_is_five_cron_fields() {
    for bad in [
        "0 */6 * *",
        "0 */6 * * * *",
        "@daily",
        "60 * * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "0 0 * 13 *",
        "0 0 * * 7",
        "0 */0 * * *",
        "5-1 * * * *",
        "0 0 * foo *",
        "0 ? * * *",
        "0 0 1,,2 * *",
    ] {
        let m = problem(
            &seed_with("\"0 */6 * * *\"", &format!("\"{bad}\"")),
            Rule::Backup,
            "backup.etcd.schedule",
        );
        assert!(m.contains(bad), "{m}");
    }
    for good in [
        "*/15 2-4 1,15 jan-mar mon-fri",
        "30 1 ? * SUN",
        "0 0 1 */2 ?",
        "5/10 * * * *",
    ] {
        load(&seed_with("\"0 */6 * * *\"", &format!("\"{good}\"")), "s")
            .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn etcd_backup_keeps_at_least_one_snapshot() {
    let m = problem(
        &seed_with("keep: 28", "keep: 0"),
        Rule::Backup,
        "backup.etcd.keep",
    );
    assert!(m.contains("at least one"), "{m}");
}

#[test]
fn etcd_backup_rejects_unknown_fields() {
    let err = load(
        &seed_with("keep: 28", "keep: 28\n    retention: 7"),
        "seed.yaml",
    )
    .unwrap_err();
    let Error::Parse { path, message, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(path.as_deref(), Some("backup.etcd"), "{err}");
    assert!(message.contains("retention"), "{message}");
}

#[test]
fn nfs_backup_target_is_absolute_and_outside_every_export() {
    let m = problem(
        &seed_with("target: /var/backups/hakube-nfs", "target: var/backups"),
        Rule::Backup,
        "backup.nfs.target",
    );
    assert!(m.contains("not an absolute"), "{m}");
    for inside in ["/srv/nfs/k8s-prod/backups", "/srv/nfs"] {
        let m = problem(
            &seed_with(
                "target: /var/backups/hakube-nfs",
                &format!("target: {inside}"),
            ),
            Rule::Backup,
            "backup.nfs.target",
        );
        assert!(m.contains("overlaps nfs.exports"), "{m}");
    }
}

#[test]
fn nfs_backup_needs_an_nfs_server() {
    let start = SEED.find("nfs:\n").unwrap();
    let end = SEED.find("kubernetes:\n").unwrap();
    let text = format!("{}{}", &SEED[..start], &SEED[end..]);
    let m = problem(&text, Rule::Backup, "backup.nfs");
    assert!(m.contains("no nfs server"), "{m}");
}

#[test]
fn nfs_backup_schedule_is_an_on_calendar_expression() {
    let m = problem(
        &seed_with("\"*-*-* 02:30:00\"", "\"daily; rm -rf /\""),
        Rule::Backup,
        "backup.nfs.schedule",
    );
    assert!(m.contains("OnCalendar"), "{m}");
    load(&seed_with("\"*-*-* 02:30:00\"", "daily"), "s").unwrap();
}

#[test]
fn nfs_backup_keeps_at_least_one_snapshot() {
    let m = problem(
        &seed_with("keep: 7", "keep: 0"),
        Rule::Backup,
        "backup.nfs.keep",
    );
    assert!(m.contains("at least one"), "{m}");
}
