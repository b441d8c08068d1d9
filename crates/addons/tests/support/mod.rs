//! What the runner's tests share with the examples' add-on stage test: the objects the
//! charts would create (for the helm stand-in) and a `helm` wrapper with its own log.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use hakube_addons::InstallStep;
use hakube_addons::run::Plan;
use serde_json::{Value, json};

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text).unwrap_or_default()
}

const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "networking.k8s.io",
    "policy",
    "apiextensions.k8s.io",
];

/// Writes the rendered tree as a plan directory (`cluster/`, `cluster/install-steps.json`).
pub fn write_plan(dir: &Path, rendered: &hakube_addons::Rendered) -> Plan {
    for f in &rendered.cluster_files {
        let p = dir.join("cluster").join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.contents).unwrap();
    }
    std::fs::write(
        dir.join("cluster/install-steps.json"),
        serde_json::to_string_pretty(&rendered.steps).unwrap(),
    )
    .unwrap();
    Plan::read(dir).expect("the plan reads back")
}

/// What the charts would create that later steps need (the helm stand-in applies it when it
/// installs the release): the CRDs of every custom kind the plan applies or waits for, and the
/// workloads (with their namespaces) the plan waits for. Each goes to the release whose chart
/// name shares a word with the CRD's group, else to the nearest Helm step before its first use.
pub fn chart_objects(plan: &Plan, dir: &Path) -> PathBuf {
    let out = dir.join("helm-objects");
    std::fs::create_dir_all(&out).unwrap();
    let mut by_release: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    let release_before = |i: usize| -> String {
        plan.steps[..i]
            .iter()
            .rev()
            .find_map(|s| match s {
                InstallStep::Helm(h) => Some(h.release.clone()),
                _ => None,
            })
            .expect("a Helm step before")
    };
    let release_for_group = |group: &str, i: usize| -> String {
        plan.steps
            .iter()
            .find_map(|s| match s {
                InstallStep::Helm(h)
                    if h.chart
                        .name
                        .split('-')
                        .any(|w| group.split('.').any(|g| g == w)) =>
                {
                    Some(h.release.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| release_before(i))
    };
    // (group, version, kind, plural, namespaced) -> first step using it
    type Crd = (String, String, String, String, bool, usize);
    let mut crds: Vec<Crd> = Vec::new();
    fn add(crds: &mut Vec<Crd>, g: &str, v: &str, k: &str, plural: &str, ns: bool, i: usize) {
        if !crds.iter().any(|c| c.0 == g && c.3 == plural) {
            crds.push((g.into(), v.into(), k.into(), plural.into(), ns, i));
        }
    }
    // Workloads the plan applies itself (no chart creates them).
    let mut applied = std::collections::BTreeSet::new();
    for s in &plan.steps {
        if let InstallStep::Apply { files, .. } = s {
            for f in files {
                for d in yaml_docs(&std::fs::read_to_string(plan.cluster_dir.join(f)).unwrap()) {
                    if let (Some(ns), Some(n)) = (
                        d["metadata"]["namespace"].as_str(),
                        d["metadata"]["name"].as_str(),
                    ) {
                        applied.insert((ns.to_owned(), n.to_owned()));
                    }
                }
            }
        }
    }
    for (i, s) in plan.steps.iter().enumerate() {
        let mut docs = Vec::new();
        match s {
            InstallStep::Apply { files, .. } => {
                for f in files {
                    docs.extend(yaml_docs(
                        &std::fs::read_to_string(plan.cluster_dir.join(f)).unwrap(),
                    ));
                }
            }
            InstallStep::ApplyKustomize { dir, .. } => {
                let o = std::process::Command::new("kubectl")
                    .arg("kustomize")
                    .arg(plan.cluster_dir.join(dir))
                    .output()
                    .expect("kubectl kustomize");
                docs.extend(yaml_docs(&String::from_utf8_lossy(&o.stdout)));
            }
            InstallStep::WaitCrds { crds: names, .. } => {
                for n in names {
                    let (plural, group) = n.split_once('.').unwrap();
                    let mut kind = plural.trim_end_matches('s').to_owned();
                    kind[..1].make_ascii_uppercase();
                    add(&mut crds, group, "v1", &kind, plural, false, i);
                }
            }
            InstallStep::WaitRollout {
                namespace, name, ..
            } if applied.contains(&(namespace.clone(), name.clone())) => {}
            InstallStep::WaitRollout {
                kind,
                namespace,
                name,
                ..
            } => {
                let r = release_before(i);
                let kind = match kind {
                    hakube_addons::WorkloadKind::Deployment => "Deployment",
                    hakube_addons::WorkloadKind::DaemonSet => "DaemonSet",
                    hakube_addons::WorkloadKind::StatefulSet => "StatefulSet",
                };
                let list = by_release.entry(r).or_default();
                list.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}));
                let mut w = json!({
                    "apiVersion": "apps/v1", "kind": kind,
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {
                        "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                                     "spec": {"containers": [{"name": "main", "image": "stand-in"}]}},
                    },
                });
                if kind != "DaemonSet" {
                    w["spec"]["replicas"] = json!(1);
                }
                list.push(w);
            }
            _ => {}
        }
        for d in docs {
            let (Some(api), Some(kind)) = (d["apiVersion"].as_str(), d["kind"].as_str()) else {
                continue;
            };
            let (group, version) = api.split_once('/').unwrap_or(("", api));
            if BUILTIN_GROUPS.contains(&group) {
                continue;
            }
            let plural = format!("{}s", kind.to_lowercase());
            // Fix the kind guessed from a WaitCrds name.
            if let Some(c) = crds.iter_mut().find(|c| c.0 == group && c.3 == plural) {
                c.2 = kind.to_owned();
                c.4 = d["metadata"]["namespace"].is_string();
                continue;
            }
            add(
                &mut crds,
                group,
                version,
                kind,
                &plural,
                d["metadata"]["namespace"].is_string(),
                i,
            );
        }
    }
    for (group, version, kind, plural, namespaced, i) in crds {
        let r = release_for_group(&group, i);
        by_release.entry(r).or_default().insert(0, json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {
                "group": group,
                "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
                "scope": if namespaced { "Namespaced" } else { "Cluster" },
                "versions": [{"name": version, "served": true, "storage": true,
                              "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
            },
        }));
    }
    for (release, objects) in by_release {
        std::fs::write(
            out.join(format!("{release}.json")),
            serde_json::to_string(&objects).unwrap(),
        )
        .unwrap();
    }
    out
}

/// Adds `objects` to what the helm stand-in creates with `release` (e.g. a StatefulSet's
/// Pods, given with the status their kubelet would report).
pub fn add_release_objects(objects_dir: &Path, release: &str, objects: Vec<Value>) {
    let file = objects_dir.join(format!("{release}.json"));
    let mut list: Vec<Value> = std::fs::read_to_string(&file)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_default();
    list.extend(objects);
    std::fs::write(&file, serde_json::to_string(&list).unwrap()).unwrap();
}

/// The Kubernetes API stand-in on a free port of 127.0.0.1, its files under `dir/api`.
pub fn api_stand_in(dir: &Path) -> hakube_lab::stand_ins::ApiServer {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    hakube_lab::stand_ins::ApiServer::start(&dir.join("api"), addr).unwrap()
}

/// A `helm` for this test: the stand-in with this test's log and chart objects.
pub fn helm_wrapper(dir: &Path, objects: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let log = dir.join("helm.log");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helm = bin.join("helm");
    std::fs::write(
        &helm,
        format!(
            "#!/bin/sh\nexport HAKUBE_HELM_LOG='{}' HAKUBE_HELM_OBJECTS='{}'\nexec /usr/bin/python3 '{}' \"$@\"\n",
            log.display(),
            objects.display(),
            hakube_lab::stand_ins::helm().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
    (helm, log)
}
