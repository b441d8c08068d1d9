//! Placement invariants over random topologies: never panics, and every placement returned
//! satisfies the rules it claims.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use std::collections::{BTreeMap, BTreeSet};

use hakube_topology::{Capacity, Cluster, RoleKind, Topology, load};
use proptest::prelude::*;

const SEED: &str = include_str!("../../../examples/seed-cluster.yaml");

#[derive(Debug, Clone)]
struct Shape {
    nodes: usize,
    capacity: Option<(u32, u64)>,
    lbs: u32,
    cps: u32,
    groups: Vec<u32>,
    vault: u32,
    shared: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        1usize..8,
        prop::option::of((8u32..80, 16_384u64..200_000)),
        0u32..5,
        0u32..7,
        prop::collection::vec(0u32..25, 1..4),
        prop_oneof![Just(0u32), Just(1), Just(3), Just(5)],
        any::<bool>(),
    )
        .prop_map(|(nodes, capacity, lbs, cps, groups, vault, shared)| Shape {
            nodes,
            capacity,
            lbs,
            cps,
            groups,
            vault,
            shared,
        })
}

fn topology(s: &Shape) -> Topology {
    let mut t = Topology::from_yaml(SEED, "seed").unwrap();
    let template = t.proxmox.nodes[0].clone();
    t.proxmox.nodes = (0..s.nodes)
        .map(|i| {
            let mut n = template.clone();
            n.name = format!("pve{}", i + 1);
            n.template = Some(9000 + i as u32);
            n.capacity = s.capacity.map(|(cores, memory_mib)| Capacity {
                cores,
                memory_mib,
                disk_gib: None,
            });
            n
        })
        .collect();
    t.proxmox.allow_shared_placement = s.shared;
    t.proxmox.vmids.last = 2000;
    t.network.cidr = "10.20.0.0/22".parse().unwrap();
    t.network.allocate = Some(hakube_topology::AddressRange {
        first: "10.20.0.11".parse().unwrap(),
        last: "10.20.3.250".parse().unwrap(),
    });
    t.loadbalancers.count = s.lbs;
    t.control_plane.count = s.cps;
    let g0 = t.workers.groups[0].clone();
    t.workers.groups = s
        .groups
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let mut g = g0.clone();
            g.name = format!("g{i}");
            g.count = count;
            g
        })
        .collect();
    if let Some(v) = t.vault.as_mut().and_then(|v| v.vms.as_mut()) {
        v.count = s.vault;
    }
    t
}

fn check(t: &Topology, c: &Cluster) {
    let nodes: BTreeSet<&str> = t.proxmox.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut names = BTreeSet::new();
    let mut vmids = BTreeSet::new();
    let mut addrs = BTreeSet::new();
    for vm in &c.vms {
        assert!(
            nodes.contains(vm.proxmox_node.as_str()),
            "{} on unknown node",
            vm.name
        );
        assert!(names.insert(&vm.name), "duplicate name {}", vm.name);
        assert!(vmids.insert(vm.vmid), "duplicate vmid {}", vm.vmid);
        assert!(addrs.insert(vm.address), "duplicate address {}", vm.address);
        assert!(t.network.cidr.contains(&vm.address));
        assert!((t.proxmox.vmids.first..=t.proxmox.vmids.last).contains(&vm.vmid));
    }
    let per = |role: RoleKind| -> Vec<usize> {
        t.proxmox
            .nodes
            .iter()
            .map(|n| {
                c.vms_with_role(role)
                    .filter(|v| v.proxmox_node == n.name)
                    .count()
            })
            .collect()
    };
    for role in [
        RoleKind::LoadBalancer,
        RoleKind::ControlPlane,
        RoleKind::Vault,
    ] {
        let counts = per(role);
        if t.proxmox.allow_shared_placement {
            // Spread evenly over the nodes that have room; without capacity limits, max - min <= 1.
            if t.proxmox.nodes[0].capacity.is_none() {
                assert!(
                    counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
                    "{role}: {counts:?}"
                );
            }
        } else {
            assert!(
                counts.iter().all(|&n| n <= 1),
                "{role} shares a node: {counts:?}"
            );
        }
    }
    let workers = per(RoleKind::Worker);
    assert!(
        workers.iter().max().unwrap() - workers.iter().min().unwrap() <= 1,
        "workers uneven: {workers:?}"
    );
    for n in &t.proxmox.nodes {
        if let Some(cap) = n.capacity {
            let load: BTreeMap<&str, (u64, u64)> = c
                .vms
                .iter()
                .filter(|v| v.proxmox_node == n.name)
                .fold(BTreeMap::new(), |mut m, v| {
                    let e = m.entry("x").or_insert((0, 0));
                    e.0 += u64::from(v.size.cores);
                    e.1 += v.size.memory_mib;
                    m
                });
            if let Some((cores, mem)) = load.get("x") {
                assert!(
                    *cores <= u64::from(cap.cores) && *mem <= cap.memory_mib,
                    "{} over capacity",
                    n.name
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn placement_holds_its_claims(s in shape()) {
        let t = topology(&s);
        let first = t.clone().place(None, "random");
        let second = t.clone().place(None, "random");
        match (&first, &second) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(a, b, "placement is not deterministic");
                check(&t, a);
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(a.to_string(), b.to_string());
                prop_assert!(!a.problems().is_empty());
            }
            _ => prop_assert!(false, "non-deterministic outcome"),
        }
        // Enough nodes and no capacity limits: the anti-affinity rules can always hold.
        if s.capacity.is_none() && s.nodes >= s.lbs.max(s.cps).max(s.vault) as usize && s.lbs > 0 && s.cps % 2 == 1 && s.groups.iter().any(|&g| g > 0) && s.vault != 0 {
            prop_assert!(first.is_ok(), "{}", first.unwrap_err());
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = load(&text, "fuzz");
    }

    #[test]
    fn mutated_seed_never_panics(cut in 0usize..3000, insert in "[ a-z0-9:{}\\[\\],\\-\\n]{0,12}") {
        let cut = cut.min(SEED.len());
        let cut = (0..=cut).rev().find(|&i| SEED.is_char_boundary(i)).unwrap_or(0);
        let text = format!("{}{}{}", &SEED[..cut], insert, &SEED[cut..]);
        let _ = load(&text, "fuzz");
    }
}
