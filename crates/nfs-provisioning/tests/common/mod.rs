//! Shared test inputs.
#![allow(dead_code, missing_docs)]

use hakube_nfs_provisioning::exports::{Client, ExportOptions, ExportPath, HostName, Squash};
use hakube_nfs_provisioning::{
    DataPolicy, ExportSpec, K8sName, NfsInput, NfsServer, NfsSetup, PlainExport, ServerAddress,
};

pub fn server() -> NfsServer {
    NfsServer {
        name: HostName::new("nfs1").expect("valid"),
        address: ServerAddress::Ip("10.20.0.50".parse().expect("ip")),
    }
}

/// The seed design: two exports to the node network.
pub fn seed_input() -> NfsInput {
    NfsInput::seed(server(), "10.20.0.0/24".parse().expect("cidr")).expect("seed")
}

pub fn seed() -> NfsSetup {
    NfsSetup::new(seed_input()).expect("valid seed")
}

/// A richer input: explicit clients, squash variants, fsids, a default class, archive policy.
pub fn varied_input() -> NfsInput {
    let mut input = seed_input();
    input.exports[0].clients = vec![
        Client::parse("10.20.0.0/25").expect("cidr"),
        Client::parse("10.20.0.200").expect("ip"),
    ];
    input.exports[0].options.fsid = Some(101);
    input.exports[1].options = ExportOptions {
        async_writes: true,
        squash: Squash::All {
            anonuid: 1000,
            anongid: 1000,
        },
        fsid: Some(102),
        ..ExportOptions::default()
    };
    input.exports.push(
        ExportSpec::new(
            ExportPath::new("/srv/nfs/k8s-scratch").expect("path"),
            K8sName::new("nfs-scratch").expect("name"),
        )
        .with_policy(DataPolicy::Archive)
        .with_clients(vec![Client::parse("node1").expect("host")])
        .with_options(ExportOptions {
            squash: Squash::None,
            ..ExportOptions::default()
        }),
    );
    input.cluster.default_class = Some(K8sName::new("nfs-nonprod").expect("name"));
    input
}

pub fn varied() -> NfsSetup {
    NfsSetup::new(varied_input()).expect("valid varied")
}

/// The control-plane nodes of the etcd backup input.
pub const MASTERS: [&str; 3] = ["10.20.0.14", "10.20.0.15", "10.20.0.16"];

/// The seed plus an export backing no StorageClass: etcd snapshots, written by root on the
/// three masters only.
pub fn etcd_backup_input() -> NfsInput {
    let mut input = seed_input();
    input.plain_exports.push(PlainExport::root_writer(
        ExportPath::new("/srv/nfs/etcd-backup").expect("path"),
        MASTERS
            .iter()
            .map(|m| Client::parse(m).expect("ip"))
            .collect(),
    ));
    input
}

pub fn etcd_backup() -> NfsSetup {
    NfsSetup::new(etcd_backup_input()).expect("valid etcd backup")
}

pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
