//! The cluster side: snapshots of every rendered manifest, round trips into k8s-openapi types, and
//! the ClusterRole compared with what the provisioner actually calls.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use hakube_nfs_provisioning::ClusterFile;
use hakube_nfs_provisioning::cluster::ClusterObject;
use hakube_nfs_provisioning::{Backend, NfsSetup};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;

fn files(setup: &NfsSetup) -> Vec<ClusterFile> {
    setup.cluster_files().expect("render")
}

fn find<'a>(files: &'a [ClusterFile], name: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.file_name() == name)
        .unwrap_or_else(|| panic!("{name} not rendered"))
        .contents
}

#[test]
fn seed_manifest_snapshots() {
    let files = files(&common::seed());
    let names: Vec<_> = files.iter().map(ClusterFile::file_name).collect();
    assert_eq!(
        names,
        [
            "00-namespace-nfs-provisioner.yaml",
            "01-serviceaccount-nfs-provisioner.yaml",
            "02-clusterrole-hakube-nfs-provisioner.yaml",
            "03-clusterrolebinding-hakube-nfs-provisioner.yaml",
            "10-deployment-nfs-prod-provisioner.yaml",
            "10-deployment-nfs-nonprod-provisioner.yaml",
            "20-storageclass-nfs-prod.yaml",
            "20-storageclass-nfs-nonprod.yaml",
        ]
    );
    for f in &files {
        insta::assert_snapshot!(format!("seed__{}", f.file_name()), f.contents);
    }
}

#[test]
fn varied_and_csi_storage_class_snapshots() {
    let files = files(&common::varied());
    insta::assert_snapshot!(
        "varied__storageclass-nfs-nonprod",
        find(&files, "20-storageclass-nfs-nonprod.yaml")
    );
    insta::assert_snapshot!(
        "varied__storageclass-nfs-scratch",
        find(&files, "20-storageclass-nfs-scratch.yaml")
    );
    let mut input = common::varied_input();
    input.cluster.backend = Backend::CsiDriverNfs;
    let csi = files_of(input);
    // The driver comes from its chart: only StorageClasses here.
    assert!(
        csi.iter()
            .all(|f| f.file_name().starts_with("20-storageclass-")),
        "{csi:?}"
    );
    assert_eq!(csi.len(), 3);
    for f in &csi {
        insta::assert_snapshot!(format!("csi__{}", f.file_name()), f.contents);
    }
}

fn files_of(input: hakube_nfs_provisioning::NfsInput) -> Vec<ClusterFile> {
    files(&NfsSetup::new(input).expect("valid"))
}

/// Every file deserialises back into its k8s-openapi type and equals the object it came from.
#[test]
fn manifests_round_trip_into_k8s_openapi_types() {
    for setup in [common::seed(), common::varied()] {
        for obj in setup.cluster_objects() {
            let yaml = obj.to_yaml().expect("yaml");
            let back = match &obj {
                ClusterObject::Namespace(_) => ClusterObject::Namespace(
                    serde_saphyr::from_str::<Namespace>(&yaml).expect("ns"),
                ),
                ClusterObject::ServiceAccount(_) => ClusterObject::ServiceAccount(
                    serde_saphyr::from_str::<ServiceAccount>(&yaml).expect("sa"),
                ),
                ClusterObject::ClusterRole(_) => ClusterObject::ClusterRole(
                    serde_saphyr::from_str::<ClusterRole>(&yaml).expect("cr"),
                ),
                ClusterObject::ClusterRoleBinding(_) => ClusterObject::ClusterRoleBinding(
                    serde_saphyr::from_str::<ClusterRoleBinding>(&yaml).expect("crb"),
                ),
                ClusterObject::Deployment(_) => ClusterObject::Deployment(Box::new(
                    serde_saphyr::from_str::<Deployment>(&yaml).expect("deploy"),
                )),
                ClusterObject::StorageClass(_) => ClusterObject::StorageClass(
                    serde_saphyr::from_str::<StorageClass>(&yaml).expect("sc"),
                ),
                other => panic!("unexpected {}", other.kind()),
            };
            assert_eq!(back, obj, "{} did not round-trip:\n{yaml}", obj.file_name());
            // apiVersion and kind are in every document (server-side apply needs them).
            assert!(yaml.contains(&format!("kind: {}", obj.kind())), "{yaml}");
        }
    }
}

/// What nfs-subdir-external-provisioner v4.0.2 (sig-storage-lib-external-provisioner v6
/// controller) does with the API, written down independently of the crate's table:
/// - informers on claims, volumes, classes (get/list/watch each), nodes for topology;
/// - creates a PV per claim and deletes it on release;
/// - updates the claim (annotations during provisioning);
/// - records events (create, update, patch).
///
/// Leader election is off, so no endpoints/leases access is needed.
const NEEDS: &[(&str, &str, &str)] = &[
    ("", "nodes", "get"),
    ("", "nodes", "list"),
    ("", "nodes", "watch"),
    ("", "persistentvolumes", "get"),
    ("", "persistentvolumes", "list"),
    ("", "persistentvolumes", "watch"),
    ("", "persistentvolumes", "create"),
    ("", "persistentvolumes", "delete"),
    ("", "persistentvolumeclaims", "get"),
    ("", "persistentvolumeclaims", "list"),
    ("", "persistentvolumeclaims", "watch"),
    ("", "persistentvolumeclaims", "update"),
    ("storage.k8s.io", "storageclasses", "get"),
    ("storage.k8s.io", "storageclasses", "list"),
    ("storage.k8s.io", "storageclasses", "watch"),
    ("", "events", "create"),
    ("", "events", "update"),
    ("", "events", "patch"),
];

#[test]
fn cluster_role_grants_exactly_the_provisioners_needs() {
    let files = files(&common::seed());
    let role: ClusterRole =
        serde_saphyr::from_str(find(&files, "02-clusterrole-hakube-nfs-provisioner.yaml"))
            .expect("role");
    let mut granted = BTreeSet::new();
    for rule in role.rules.expect("rules") {
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
        for g in rule.api_groups.expect("groups") {
            for r in rule.resources.as_ref().expect("resources") {
                for v in &rule.verbs {
                    assert_ne!(v, "*", "wildcard verb");
                    assert_ne!(r, "*", "wildcard resource");
                    granted.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    let needed: BTreeSet<_> = NEEDS
        .iter()
        .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect();
    let extra: Vec<_> = granted.difference(&needed).collect();
    let missing: Vec<_> = needed.difference(&granted).collect();
    assert!(extra.is_empty(), "granted but not needed: {extra:?}");
    assert!(missing.is_empty(), "needed but not granted: {missing:?}");
    // No leader-locking Role: leader election is off.
    assert!(!files.iter().any(|f| f.path.contains("-role-")));

    let binding: ClusterRoleBinding = serde_saphyr::from_str(find(
        &files,
        "03-clusterrolebinding-hakube-nfs-provisioner.yaml",
    ))
    .expect("binding");
    let subject = &binding.subjects.expect("subjects")[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "nfs-provisioner", Some("nfs-provisioner"))
    );
    assert_eq!(binding.role_ref.name, role.metadata.name.expect("name"));
}

#[test]
fn each_deployment_matches_its_storage_class() {
    let setup = common::varied();
    let objects = setup.cluster_objects();
    let classes: BTreeMap<_, _> = objects
        .iter()
        .filter_map(|o| match o {
            ClusterObject::StorageClass(sc) => Some((sc.provisioner.clone(), sc.clone())),
            _ => None,
        })
        .collect();
    let deployments: Vec<_> = objects
        .iter()
        .filter_map(|o| match o {
            ClusterObject::Deployment(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(deployments.len(), 3);
    assert_eq!(classes.len(), 3, "one distinct provisioner per class");
    for d in deployments {
        // Via JSON: `Deployment.spec` is an Option only before Kubernetes 1.37.
        let spec: DeploymentSpec =
            serde_json::from_value(serde_json::to_value(d).expect("json")["spec"].clone())
                .expect("spec");
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(
            spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
            Some("Recreate")
        );
        let pod = spec.template.spec.as_ref().expect("pod");
        let c = &pod.containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("registry.k8s.io/sig-storage/nfs-subdir-external-provisioner:v4.0.2")
        );
        let env: BTreeMap<_, _> = c
            .env
            .as_ref()
            .expect("env")
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(env["ENABLE_LEADER_ELECTION"], "false");
        assert_eq!(env["NFS_SERVER"], "10.20.0.50");
        let sc = &classes[env["PROVISIONER_NAME"]];
        let nfs = pod.volumes.as_ref().expect("volumes")[0]
            .nfs
            .as_ref()
            .expect("nfs");
        assert_eq!(nfs.path, env["NFS_PATH"]);
        assert_eq!(
            c.volume_mounts.as_ref().expect("mounts")[0].mount_path,
            "/persistentvolumes"
        );
        let res = c.resources.as_ref().expect("resources");
        assert!(res.requests.is_some() && res.limits.is_some());
        println!(
            "{} -> StorageClass {} ({})",
            d.metadata.name.as_deref().unwrap_or_default(),
            sc.metadata.name.as_deref().unwrap_or_default(),
            env["NFS_PATH"]
        );
    }
    // Prod retains, nonprod deletes; nonprod is the default here.
    let by_name: BTreeMap<_, _> = classes
        .values()
        .map(|sc| (sc.metadata.name.clone().expect("name"), sc))
        .collect();
    assert_eq!(
        by_name["nfs-prod"].reclaim_policy.as_deref(),
        Some("Retain")
    );
    assert_eq!(
        by_name["nfs-nonprod"].reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert!(by_name["nfs-prod"].metadata.annotations.is_none());
    assert_eq!(
        by_name["nfs-nonprod"]
            .metadata
            .annotations
            .as_ref()
            .expect("default")["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
}

/// The directory logic of nfs-subdir-external-provisioner v4.0.2 (the last release), written
/// after `Provision` and `Delete` in `cmd/nfs-subdir-external-provisioner/provisioner.go` at tag
/// v4.0.2: `Provision` creates `/persistentvolumes/<pathPattern expanded>` and records
/// `<NFS_PATH>/<pathPattern expanded>` in the PV; `Delete` works on
/// `/persistentvolumes/<basename of the PV path>` and skips when it does not exist, then
/// `onDelete: delete` removes it, `retain` keeps it, otherwise `archiveOnDelete: "false"`
/// removes it and anything else renames it to `archived-<basename>`.
struct SubdirV402<'a> {
    mount: &'a std::path::Path,
    nfs_path: &'a str,
}

impl SubdirV402<'_> {
    fn expand(pattern: &str, namespace: &str, name: &str) -> String {
        pattern
            .replace("${.PVC.namespace}", namespace)
            .replace("${.PVC.name}", name)
    }

    /// Returns the PV's NFS path.
    fn provision(&self, params: &BTreeMap<String, String>, namespace: &str, name: &str) -> String {
        let custom = Self::expand(&params["pathPattern"], namespace, name);
        std::fs::create_dir_all(self.mount.join(&custom)).expect("mkdir");
        std::fs::write(self.mount.join(&custom).join("data"), "old data").expect("write");
        format!("{}/{custom}", self.nfs_path)
    }

    fn delete(&self, params: &BTreeMap<String, String>, pv_path: &str) {
        let base = std::path::Path::new(pv_path)
            .file_name()
            .expect("basename")
            .to_owned();
        let old = self.mount.join(&base);
        if !old.exists() {
            return; // "path ... does not exist, deletion skipped"
        }
        match params.get("onDelete").map(String::as_str) {
            Some("delete") => return std::fs::remove_dir_all(&old).expect("rm"),
            Some("retain") => return,
            _ => {}
        }
        if params.get("archiveOnDelete").map(String::as_str) == Some("false") {
            return std::fs::remove_dir_all(&old).expect("rm");
        }
        let mut archived = std::ffi::OsString::from("archived-");
        archived.push(&base);
        std::fs::rename(&old, self.mount.join(archived)).expect("rename");
    }
}

#[test]
fn the_provisioner_deletes_what_it_created_for_every_policy() {
    use hakube_nfs_provisioning::DataPolicy;
    for (policy, remains) in [
        (DataPolicy::Delete, None),
        (DataPolicy::Archive, Some("archived-shop.db-data")),
        (DataPolicy::Retain, Some("shop.db-data")),
    ] {
        let mut input = common::seed().input().clone();
        input.exports.truncate(1);
        input.exports[0].data_policy = policy;
        let setup = NfsSetup::new(input).expect("valid");
        let class = setup
            .cluster_objects()
            .into_iter()
            .find_map(|o| match o {
                ClusterObject::StorageClass(sc) => Some(sc),
                _ => None,
            })
            .expect("a StorageClass");
        let params = class.parameters.expect("parameters");
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = SubdirV402 {
            mount: tmp.path(),
            nfs_path: setup.input().exports[0].path.as_str(),
        };
        let pv_path = p.provision(&params, "shop", "db-data");
        p.delete(&params, &pv_path);
        let left: Vec<String> = std::fs::read_dir(tmp.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            remains.into_iter().map(str::to_owned).collect::<Vec<_>>(),
            "{policy:?}: the claim's directory after deletion"
        );
        // A claim re-created after deletion starts empty unless the policy keeps the data.
        let again = p.provision(&params, "shop", "db-data");
        assert_eq!(again, pv_path);
    }
}

#[test]
fn the_folder_has_a_kustomization_listing_every_manifest_in_order() {
    let setup = common::seed();
    let k = setup
        .kustomization()
        .expect("render")
        .expect("objects exist");
    assert_eq!(k.path, "nfs/kustomization.yaml");
    let v: serde_json::Value = serde_saphyr::from_str(&k.contents).expect("YAML");
    let listed: Vec<&str> = v["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let files = files(&setup);
    let names: Vec<&str> = files.iter().map(ClusterFile::file_name).collect();
    assert_eq!(listed, names);
    assert!(
        setup
            .gitops_files()
            .expect("GitOps files")
            .iter()
            .any(|f| f.path == "nfs/kustomization.yaml")
    );
}
