//! Every built-in Kubernetes object we render deserializes into its k8s-openapi type, and
//! serializing it back gives the same JSON: no misspelled or misplaced field survives (serde
//! would drop an unknown field, and the round trip would differ).

mod fixture;
use fixture::example_input;
use hakube_addons::{ClusterFile, render};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, Namespace, PersistentVolume, Service, ServiceAccount, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Deserialize `v` as `T` (with the failing path on error), serialize back, compare.
fn round_trip<T: DeserializeOwned + Serialize>(what: &str, v: &Value) {
    let typed: T = serde_path_to_error::deserialize(v.clone())
        .unwrap_or_else(|e| panic!("{what}: does not deserialize at `{}`: {e}", e.path()));
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(
        &back, v,
        "{what}: fields lost or changed in the k8s-openapi round trip"
    );
}

/// Checks one object; false for kinds checked elsewhere (custom resources, kustomizations).
fn check_object(path: &str, v: &Value) -> bool {
    let what = format!("{path} {} {}", v["kind"], v["metadata"]["name"]);
    match (v["apiVersion"].as_str(), v["kind"].as_str()) {
        (Some("v1"), Some("Namespace")) => round_trip::<Namespace>(&what, v),
        (Some("v1"), Some("Service")) => round_trip::<Service>(&what, v),
        (Some("v1"), Some("ServiceAccount")) => round_trip::<ServiceAccount>(&what, v),
        (Some("v1"), Some("PersistentVolume")) => round_trip::<PersistentVolume>(&what, v),
        (Some("storage.k8s.io/v1"), Some("StorageClass")) => {
            round_trip::<StorageClass>(&what, v);
        }
        (Some("apps/v1"), Some("Deployment")) => round_trip::<Deployment>(&what, v),
        (Some("batch/v1"), Some("CronJob")) => round_trip::<CronJob>(&what, v),
        (Some("networking.k8s.io/v1"), Some("NetworkPolicy")) => {
            round_trip::<NetworkPolicy>(&what, v);
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("Role")) => round_trip::<Role>(&what, v),
        (Some("rbac.authorization.k8s.io/v1"), Some("RoleBinding")) => {
            round_trip::<RoleBinding>(&what, v);
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
            round_trip::<ClusterRoleBinding>(&what, v);
        }
        (Some(api), _) if api.starts_with("kustomize.config.k8s.io/") => return false,
        (Some(api), Some(_)) if !api.contains(".k8s.io") && api.contains('.') => return false, // custom resources: see crd_schemas.rs
        other => panic!("{what}: built-in kind {other:?} has no k8s-openapi check"),
    }
    true
}

fn docs(f: &ClusterFile) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&f.contents).expect("valid YAML")
}

/// The example with a tainted worker group, environments pinned to their groups and
/// node-local volumes for Prometheus and Loki: every optional object is rendered.
fn tainted_input() -> hakube_addons::AddonsInput {
    use hakube_addons::{Taint, TaintEffect, VolumeChoice};
    let mut input = example_input();
    input.worker_groups[1].taints = vec![Taint::new(
        "environment",
        Some("edge"),
        TaintEffect::NoSchedule,
    )];
    for (env, group) in input.environments.iter_mut().zip(["general", "edge"]) {
        env.worker_group = Some(group.into());
    }
    if let Some(m) = input.monitoring.as_mut() {
        m.prometheus_volume = VolumeChoice::HostPath {
            node: "worker-1".into(),
            path: "/var/lib/hakube/prometheus".into(),
            size: "20Gi".into(),
        };
    }
    if let Some(l) = input.logging.as_mut() {
        l.loki_volume = VolumeChoice::HostPath {
            node: "worker-2".into(),
            path: "/var/lib/hakube/loki".into(),
            size: "20Gi".into(),
        };
    }
    input
}

#[test]
fn every_optional_object_round_trips_too() {
    let out = render(&tainted_input()).expect("renders");
    let mut kinds = Vec::new();
    for f in out
        .cluster_files
        .iter()
        .filter(|f| f.path.ends_with(".yaml") && !f.path.ends_with("values.yaml"))
    {
        for d in docs(f) {
            if check_object(&f.path, &d) {
                kinds.push(d["kind"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    // A PersistentVolume per node-local volume (Prometheus, Loki), and their StorageClass once.
    assert_eq!(kinds.iter().filter(|k| *k == "PersistentVolume").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "StorageClass").count(), 1);
    let get = |p: &str| {
        let f = out
            .cluster_files
            .iter()
            .find(|f| f.path == p)
            .expect("file rendered");
        docs(f).remove(0)
    };
    let traefik = get("traefik/values.yaml");
    round_trip::<Vec<Toleration>>("traefik tolerations", &traefik["tolerations"]);
    let alloy = get("logging/agent-values.yaml");
    round_trip::<Vec<Toleration>>("alloy tolerations", &alloy["controller"]["tolerations"]);
    let prom = get("monitoring/prometheus-values.yaml");
    round_trip::<Vec<Toleration>>(
        "node-exporter tolerations",
        &prom["prometheus-node-exporter"]["tolerations"],
    );
}

#[test]
fn every_builtin_object_round_trips_through_k8s_openapi() {
    let out = render(&example_input()).expect("renders");
    let mut checked = 0;
    for f in out
        .cluster_files
        .iter()
        .filter(|f| f.path.ends_with(".yaml") && !f.path.ends_with("values.yaml"))
    {
        for d in docs(f) {
            if check_object(&f.path, &d) {
                checked += 1;
            }
        }
    }
    // Namespaces and 4 policies per environment (2), whoami Deployment + Service, cert-manager
    // SA + Role + RoleBinding, Vault's reviewer SA + ClusterRoleBinding, the etcd CronJob, the
    // monitoring and logging Namespaces.
    assert_eq!(checked, 2 * 5 + 2 + 5 + 1 + 2);
}

#[test]
fn kubernetes_fragments_inside_helm_values_are_well_typed() {
    let out = render(&example_input()).expect("renders");
    let get = |p: &str| {
        let f = out
            .cluster_files
            .iter()
            .find(|f| f.path == p)
            .expect("file rendered");
        docs(f).remove(0)
    };
    let traefik = get("traefik/values.yaml");
    round_trip::<Affinity>("traefik affinity", &traefik["affinity"]);
    let alloy = get("logging/agent-values.yaml");
    round_trip::<Vec<EnvVar>>("alloy extraEnv", &alloy["alloy"]["extraEnv"]);
    // In-cluster Vault renders volumes and mounts for its TLS Secret.
    let mut input = example_input();
    if let Some(v) = input.vault.as_mut() {
        v.placement = hakube_addons::VaultPlacement::InCluster {
            storage_class: "local-path".into(),
        };
    }
    let out = render(&input).expect("renders");
    let f = out
        .cluster_files
        .iter()
        .find(|f| f.path == "vault/values.yaml")
        .expect("vault values");
    let vault = docs(f).remove(0);
    round_trip::<Vec<Volume>>("vault volumes", &vault["server"]["volumes"]);
    round_trip::<Vec<VolumeMount>>("vault volumeMounts", &vault["server"]["volumeMounts"]);
}

#[test]
fn the_round_trip_catches_a_misspelled_field() {
    let v = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "x" },
        "spec": { "replcas": 2, "selector": {}, "template": {} },
    });
    let caught = std::panic::catch_unwind(|| round_trip::<Deployment>("typo", &v));
    assert!(caught.is_err(), "`replcas` must not pass");
}
