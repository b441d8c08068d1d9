//! The seed topology (`examples/seed-cluster.yaml`) shrunk to a hakube-lab: the lab's subnet,
//! gateway and spare address as VIP, and the lab hosts' addresses for the roles a test runs;
//! the other VMs get addresses from a pool no host uses.
#![allow(dead_code)]

use hakube_lab::Lab;

/// Which lab hosts play which role (empty: the role's VMs get pool addresses, no host).
#[derive(Default)]
pub struct Roles<'a> {
    pub lbs: &'a [&'a str],
    pub masters: &'a [&'a str],
    pub prod: &'a [&'a str],
    pub nonprod: &'a [&'a str],
    pub nfs: Option<&'a str>,
    pub vaults: &'a [&'a str],
}

const TOPOLOGY: &str = r"# examples/seed-cluster.yaml on a hakube-lab (written by examples/tests/support/lab_topology.rs)
cluster:
  name: lab

proxmox:
  api_url: https://pve1.example.lan:8006
  nodes:
    - name: pve1
      capacity: { cores: 32, memory_mib: 131072, disk_gib: 2000 }
      template: 9001
    - name: pve2
      capacity: { cores: 32, memory_mib: 131072, disk_gib: 2000 }
      template: 9002
    - name: pve3
      capacity: { cores: 32, memory_mib: 131072, disk_gib: 2000 }
      template: 9003
  storage: local-lvm
  bridge: vmbr0
  vmids: { first: 200, last: 299 }

network:
  cidr: @SUBNET@
  gateway: @GATEWAY@
  dns: [@GATEWAY@]
  search_domain: k8s.example.lan
  vip: @VIP@
  allocate: { first: @POOL_FIRST@, last: @POOL_LAST@ }

loadbalancers:
  count: 3
  size: { cores: 2, memory_mib: 2048, disk_gib: 16 }
  name_pattern: lb-{n}
@LBS@

control_plane:
  count: 3 # masters
  size: { cores: 4, memory_mib: 8192, disk_gib: 64 }
  name_pattern: master-{n}
@MASTERS@

workers:
  size: { cores: 8, memory_mib: 16384, disk_gib: 100 }
  name_pattern: worker-{group}-{n}
  groups:
    - name: prod
      count: 1
      labels: { environment: prod, workload: general }
      taints:
        - { key: environment, value: prod, effect: NoSchedule }
@PROD@
    - name: nonprod
      count: 1
      size: { cores: 4, memory_mib: 8192, disk_gib: 60 }
      labels: { environment: nonprod, workload: general }
@NONPROD@

nfs:
  name: nfs-1
  size: { cores: 2, memory_mib: 4096, disk_gib: 500 }
@NFS@  exports:
    - path: /srv/nfs/k8s-prod
      clients: [@SUBNET@]
    - path: /srv/nfs/k8s-nonprod
      clients: [@SUBNET@]

storage_classes:
  - name: nfs-prod
    export: /srv/nfs/k8s-prod
    reclaim_policy: Retain
  - name: nfs-nonprod
    export: /srv/nfs/k8s-nonprod
    reclaim_policy: Delete
    default: true

kubernetes:
  version: 1.34.2
  pod_cidr: 10.244.0.0/16
  service_cidr: 10.96.0.0/12
  dns_domain: cluster.local

ingress:
  http_node_port: 30080
  https_node_port: 30443
  tls: passthrough

addons:
  monitoring: true
  logging: true
  log_agent: alloy

vault:
  placement: vms
  vms:
    count: 3
    size: { cores: 2, memory_mib: 2048, disk_gib: 20 }
    name_pattern: vault-{n}
@VAULTS@
backup:
  nfs:
    target: /var/backups/hakube-nfs
    keep: 3

ssh:
  user: hakube
  public_keys:
    - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheSeedClusterOnlyReplaceMe00000 ops@example.lan
";

/// The topology text for `lab` with `roles`.
pub fn lab_topology(lab: &Lab, roles: &Roles<'_>) -> String {
    let line = |indent: &str, key: &str, names: &[&str]| {
        if names.is_empty() {
            return String::new();
        }
        let addrs: Vec<String> = names
            .iter()
            .map(|n| lab.host(n).addr().to_string())
            .collect();
        format!("{indent}{key}: [{}]\n", addrs.join(", "))
    };
    let net = u32::from(lab.subnet().network());
    TOPOLOGY
        .replace("@SUBNET@", &lab.subnet().to_string())
        .replace("@GATEWAY@", &lab.gateway().to_string())
        .replace("@VIP@", &lab.spare_addr(0).expect("spare").to_string())
        .replace(
            "@POOL_FIRST@",
            &std::net::Ipv4Addr::from(net + 150).to_string(),
        )
        .replace(
            "@POOL_LAST@",
            &std::net::Ipv4Addr::from(net + 199).to_string(),
        )
        .replace("@LBS@\n", &line("  ", "addresses", roles.lbs))
        .replace("@MASTERS@\n", &line("  ", "addresses", roles.masters))
        .replace("@PROD@\n", &line("      ", "addresses", roles.prod))
        .replace("@NONPROD@\n", &line("      ", "addresses", roles.nonprod))
        .replace(
            "@NFS@",
            &roles
                .nfs
                .map(|n| format!("  address: {}\n", lab.host(n).addr()))
                .unwrap_or_default(),
        )
        .replace("@VAULTS@\n", &line("    ", "addresses", roles.vaults))
}
