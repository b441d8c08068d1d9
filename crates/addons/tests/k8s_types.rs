//! Every built-in Kubernetes object we render deserializes into its k8s-openapi type, and
//! serializing it back gives the same JSON: no misspelled or misplaced field survives (serde
//! would drop an unknown field, and the round trip would differ).

use hakube_addons::{ClusterFile, example_input, render};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, Namespace, Service, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
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
    // SA + Role + RoleBinding, Vault's reviewer SA + ClusterRoleBinding, the etcd CronJob.
    assert_eq!(checked, 2 * 5 + 2 + 5 + 1);
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
