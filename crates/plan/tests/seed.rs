//! The seed cluster's plan: snapshots of what the topology alone renders, and the tree's shape.

#![allow(clippy::unwrap_used)]

use hakube_plan::{PlanTree, render};

fn seed() -> PlanTree {
    let text = include_str!("../../../examples/seed-cluster.yaml");
    render(&hakube_topology::load(text, "seed-cluster.yaml").unwrap()).unwrap()
}

fn text<'a>(tree: &'a PlanTree, path: &str) -> &'a str {
    std::str::from_utf8(
        &tree
            .get(path)
            .unwrap_or_else(|| panic!("no {path}"))
            .contents,
    )
    .unwrap()
}

#[test]
fn every_vm_gets_its_base_files() {
    let tree = seed();
    let cluster =
        hakube_topology::load(include_str!("../../../examples/seed-cluster.yaml"), "s").unwrap();
    for vm in &cluster.vms {
        let files: Vec<String> = tree.host_files(&vm.name).map(|(p, _)| p).collect();
        for want in [
            "/etc/hostname",
            "/etc/hosts",
            "/etc/cloud/cloud.cfg.d/99-hakube-network.cfg",
        ] {
            assert!(files.iter().any(|f| f == want), "{} lacks {want}", vm.name);
        }
        assert!(
            text(&tree, &format!("hosts/{}/etc/hosts", vm.name))
                .contains(&format!("{}\t{}.", vm.address, vm.name))
        );
    }
}

#[test]
fn base_files_snapshot() {
    let tree = seed();
    insta::assert_snapshot!("etc_hosts", text(&tree, "hosts/lb-1/etc/hosts"));
    insta::assert_snapshot!(
        "network_config_master_1",
        text(
            &tree,
            "hosts/master-1/etc/cloud/cloud.cfg.d/99-hakube-network.cfg"
        )
    );
}

#[test]
fn plan_json_is_the_placed_topology() {
    let tree = seed();
    let v: serde_json::Value = serde_json::from_str(text(&tree, "plan.json")).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["vms"].as_array().unwrap().len(), 16);
    assert_eq!(v["vms"][0]["name"], "lb-1");
    assert_eq!(v["node_totals"].as_array().unwrap().len(), 3);
    assert_eq!(v["topology"]["cluster"]["name"], "seed");
    insta::assert_snapshot!("plan_json", text(&tree, "plan.json"));
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(seed(), seed());
}
