//! The plan's policy ([`PlanOptions`]): a non-default option changes exactly the files it
//! controls, the topology wins where it sets a value itself, and `plan.json` shows the options.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{SEED, cluster, secrets, seed, text};
use hakube_plan::{Error, PlanOptions, PlanTree, render_with};

/// The paths whose contents differ between two trees (or that only one holds).
fn changed(a: &PlanTree, b: &PlanTree) -> BTreeSet<String> {
    let paths: BTreeSet<&str> = a.iter().chain(b.iter()).map(|(p, _)| p).collect();
    paths
        .into_iter()
        .filter(|p| a.get(p) != b.get(p))
        .map(str::to_owned)
        .collect()
}

#[test]
fn retention_options_change_only_the_values_they_control() {
    let mut options = PlanOptions::default();
    options.monitoring.prometheus_retention = Duration::from_secs(30 * 86_400);
    options.logging.loki_retention = Duration::from_secs(7 * 86_400);
    let tree = render_with(&cluster(), &secrets(), &options).unwrap();
    let prometheus = text(&tree, "cluster/monitoring/prometheus-values.yaml");
    assert!(prometheus.contains("retention: 30d"), "{prometheus}");
    let loki = text(&tree, "cluster/logging/loki-values.yaml");
    assert!(loki.contains("retention_period: 168h"), "{loki}");
    let default = seed();
    assert!(text(&default, "cluster/logging/loki-values.yaml").contains("retention_period: 744h"));
    assert_eq!(
        changed(&default, &tree),
        BTreeSet::from(
            [
                "cluster/logging/loki-values.yaml",
                "cluster/monitoring/prometheus-values.yaml",
                "plan.json",
            ]
            .map(str::to_owned)
        )
    );
}

#[test]
fn the_topology_wins_over_the_fallback_domain() {
    let mut options = PlanOptions::default();
    options.fallback_domain = "fallback.test".into();
    // The seed sets `network.search_domain`: only plan.json (its policy) changes.
    let tree = render_with(&cluster(), &secrets(), &options).unwrap();
    assert_eq!(
        changed(&seed(), &tree),
        BTreeSet::from(["plan.json".to_owned()])
    );
    options.apps_label = "web".into();
    // Without one, the apps domain and Vault's domains come from the option.
    let yaml = SEED.replacen("  search_domain: k8s.example.lan\n", "", 1);
    let bare = hakube_topology::load(&yaml, "seed-cluster.yaml").unwrap();
    let tree = render_with(&bare, &secrets(), &options).unwrap();
    let all: String = tree
        .iter()
        .filter(|(p, _)| p.starts_with("cluster/"))
        .map(|(_, f)| String::from_utf8_lossy(&f.contents).into_owned())
        .collect();
    assert!(all.contains("web.fallback.test") && !all.contains("example.org"));
    let setup = hakube_plan::vault_setup_with(&bare, &options)
        .unwrap()
        .unwrap();
    assert_eq!(setup.allowed_domains, ["fallback.test"]);
    // `addons.apps_domain` wins over the label.
    let yaml = yaml.replacen(
        "  log_agent: alloy\n",
        "  log_agent: alloy\n  apps_domain: apps.corp.test\n",
        1,
    );
    let named = hakube_topology::load(&yaml, "seed-cluster.yaml").unwrap();
    let tree = render_with(&named, &secrets(), &options).unwrap();
    let routes = tree
        .iter()
        .filter(|(p, _)| p.starts_with("cluster/"))
        .any(|(_, f)| String::from_utf8_lossy(&f.contents).contains("web.fallback.test"));
    assert!(!routes);
}

#[test]
fn plan_json_shows_the_policy_and_it_reads_back() {
    let tree = seed();
    let v: serde_json::Value = serde_json::from_str(text(&tree, "plan.json")).unwrap();
    assert_eq!(v["policy"]["monitoring"]["prometheus_retention"], "15d");
    assert_eq!(v["policy"]["logging"]["loki_retention"], "744h");
    let back: PlanOptions = serde_json::from_value(v["policy"].clone()).unwrap();
    assert_eq!(back, PlanOptions::default());
}

#[test]
fn an_unusable_option_is_refused_naming_it() {
    let mut options = PlanOptions::default();
    options.monitoring.grafana_admin_secret = "Grafana Admin".into();
    let err = render_with(&cluster(), &secrets(), &options).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadOption {
                field: "monitoring.grafana_admin_secret",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn proxmox_options_reach_the_vm_specs() {
    let mut options = PlanOptions::default();
    options.proxmox.disk = "virtio0".into();
    options.proxmox.nic_model = "e1000".into();
    let specs = hakube_plan::vm_specs_with(&cluster(), true, &options).unwrap();
    assert!(specs.iter().all(|s| {
        s.disk.as_ref().is_some_and(|(d, _)| d == "virtio0")
            && s.network.as_ref().is_some_and(|n| n.model == "e1000")
    }));
    let default = hakube_plan::vm_specs(&cluster(), true).unwrap();
    assert_eq!(default[0].disk.as_ref().unwrap().0, "scsi0");
}
