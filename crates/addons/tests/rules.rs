//! The rules that make the defects of issue 14 impossible, each shown catching the defect as it
//! was rendered before the fix: chart values that the chart's schema refuses, objects created in
//! a namespace before it exists, every-node DaemonSets and Traefik not tolerating the cluster's
//! taints, Traefik on other nodes than HAProxy's ingress backends, and stateful add-ons on a
//! volume that cannot be scheduled.

mod fixture;
use fixture::example_input;
use hakube_addons::{
    AddonsInput, ClusterFile, Component, Error, InstallStep, Taint, TaintEffect, VolumeChoice,
    check_install_order, cross_check, render, validate,
};
use serde_json::Value;

fn checks(errors: &[Error]) -> Vec<&'static str> {
    errors
        .iter()
        .filter_map(|e| match e {
            Error::CrossCheck { check, .. } => Some(*check),
            _ => None,
        })
        .collect()
}

fn reasons(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The example with the seed's shape: a worker group tainted like the seed's prod workers.
fn tainted() -> AddonsInput {
    let mut input = example_input();
    input.worker_groups[1].taints = vec![Taint::new(
        "environment",
        Some("prod"),
        TaintEffect::NoSchedule,
    )];
    input
}

fn file<'a>(files: &'a [ClusterFile], path: &str) -> &'a ClusterFile {
    files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{path} rendered"))
}

fn doc(files: &[ClusterFile], path: &str) -> Value {
    serde_saphyr::from_multiple::<Value>(&file(files, path).contents)
        .expect("YAML")
        .remove(0)
}

fn replace_doc(files: &mut [ClusterFile], path: &str, v: &Value) {
    let f = files.iter_mut().find(|f| f.path == path).expect("rendered");
    f.contents = serde_saphyr::to_string(v).expect("YAML");
}

// Defect 1: Traefik values the 41.x chart refuses.
#[test]
fn traefik_values_of_the_v40_shape_are_refused_by_the_chart_rules() {
    let input = example_input();
    let mut files = render(&input).expect("renders").cluster_files;
    let mut v = doc(&files, "traefik/values.yaml");
    // What the seed rendered before: `logs.access` and `ports.websecure.tls`.
    let o = v.as_object_mut().expect("object");
    o.remove("accessLog");
    o.insert(
        "logs".into(),
        serde_json::json!({ "access": { "enabled": true } }),
    );
    v["ports"]["websecure"]
        .as_object_mut()
        .expect("websecure")
        .remove("http");
    v["ports"]["websecure"]["tls"] = serde_json::json!({ "enabled": true });
    replace_doc(&mut files, "traefik/values.yaml", &v);
    let errors = cross_check(&input, &files);
    assert_eq!(
        checks(&errors),
        ["chart-values-schema", "chart-values-schema"],
        "{}",
        reasons(&errors)
    );
    let text = reasons(&errors);
    assert!(text.contains("logs: unknown key"), "{text}");
    assert!(text.contains("ports.websecure.tls: unknown key"), "{text}");
    assert!(
        text.contains("tag v41.3.0"),
        "names the upstream file: {text}"
    );
}

#[test]
fn the_rendered_traefik_values_fit_the_chart_rules() {
    let out = render(&tainted()).expect("renders");
    let v = doc(&out.cluster_files, "traefik/values.yaml");
    let rules = hakube_addons::chart_schema::rules_for("traefik").expect("rules");
    assert_eq!(
        hakube_addons::chart_schema::check(rules, &v),
        Vec::<String>::new()
    );
    // The Service type sits where chart 41 reads it (a top-level `service.type` is ignored).
    assert_eq!(v["service"]["spec"]["type"], "NodePort");
    assert!(v["service"].get("type").is_none());
}

// Defect 4: the Grafana admin Secret before its namespace.
#[test]
fn a_secret_before_its_namespace_is_refused() {
    let out = render(&example_input()).expect("renders");
    // The rendered order passes.
    assert!(check_install_order(&out.steps, &out.cluster_files).is_empty());
    // The order as it was: the Secret first, the namespace only from the Helm release after it.
    let old = vec![
        InstallStep::Secret {
            component: Component::Monitoring,
            namespace: "monitoring".into(),
            name: "grafana-admin".into(),
            literals: Default::default(),
            generated: vec!["admin-password".into()],
            from_files: Default::default(),
        },
        out.steps
            .iter()
            .find(|s| matches!(s, InstallStep::Helm(h) if h.release == "grafana"))
            .cloned()
            .expect("grafana release"),
    ];
    let errors = check_install_order(&old, &out.cluster_files);
    assert_eq!(checks(&errors), ["namespace-before-its-objects"]);
    assert!(reasons(&errors).contains("grafana-admin"));
    // An applied manifest naming a namespace nobody created is caught too.
    let files = vec![ClusterFile {
        path: "x/cm.yaml".into(),
        contents: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: nowhere\n"
            .into(),
    }];
    let step = InstallStep::Apply {
        component: Component::Monitoring,
        files: vec!["x/cm.yaml".into()],
    };
    assert_eq!(
        checks(&check_install_order(&[step], &files)),
        ["namespace-before-its-objects"]
    );
}

#[test]
fn the_grafana_secret_step_keeps_its_password_outside_the_tree() {
    let out = render(&example_input()).expect("renders");
    let secret = out
        .steps
        .iter()
        .find_map(|s| match s {
            InstallStep::Secret {
                name, generated, ..
            } => Some((name.clone(), generated.clone())),
            _ => None,
        })
        .expect("a Secret step");
    assert_eq!(
        secret,
        ("grafana-admin".into(), vec!["admin-password".into()])
    );
    for f in &out.cluster_files {
        assert!(
            !f.contents.contains("kind: Secret"),
            "{}: no Secret object in the GitOps tree",
            f.path
        );
    }
    let steps = serde_json::to_string(&out.steps).expect("JSON");
    assert!(
        !steps.contains("\"manual\""),
        "no manual step (the runner performs every step): {steps}"
    );
}

// Defect 5: nothing tolerated the seed's prod taint.
#[test]
fn every_node_daemonsets_and_traefik_tolerate_the_taints() {
    let input = tainted();
    let out = render(&input).expect("renders");
    let prod = Taint::new("environment", Some("prod"), TaintEffect::NoSchedule);
    let tolerates = |v: &Value, t: &Taint| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|x| t.tolerated_by(x)))
    };
    let agent = doc(&out.cluster_files, "logging/agent-values.yaml");
    let prom = doc(&out.cluster_files, "monitoring/prometheus-values.yaml");
    let traefik = doc(&out.cluster_files, "traefik/values.yaml");
    for t in [&prod, &Taint::control_plane()] {
        assert!(
            tolerates(&agent["controller"]["tolerations"], t),
            "agent: {t}"
        );
        assert!(
            tolerates(&prom["prometheus-node-exporter"]["tolerations"], t),
            "node-exporter: {t}"
        );
    }
    assert!(tolerates(&traefik["tolerations"], &prod));
    // Traefik serves workers only: it does not tolerate the masters' taint.
    assert!(!tolerates(&traefik["tolerations"], &Taint::control_plane()));
}

#[test]
fn a_daemonset_missing_a_toleration_is_caught() {
    let input = tainted();
    // The agent values as the seed rendered them: no tolerations at all.
    let mut files = render(&input).expect("renders").cluster_files;
    let mut agent = doc(&files, "logging/agent-values.yaml");
    agent["controller"]
        .as_object_mut()
        .expect("controller")
        .remove("tolerations");
    replace_doc(&mut files, "logging/agent-values.yaml", &agent);
    let errors = cross_check(&input, &files);
    assert_eq!(
        checks(&errors),
        [
            "every-node-tolerates-every-taint",
            "every-node-tolerates-every-taint"
        ],
        "{}",
        reasons(&errors)
    );
    let text = reasons(&errors);
    assert!(text.contains("environment=prod:NoSchedule"), "{text}");
    assert!(
        text.contains("node-role.kubernetes.io/control-plane:NoSchedule"),
        "{text}"
    );
}

#[test]
fn traefik_off_the_ingress_nodes_is_caught() {
    let input = tainted();
    let files = render(&input).expect("renders").cluster_files;
    // No toleration for the prod group HAProxy sends ingress to.
    let mut untolerated = files.clone();
    let mut v = doc(&files, "traefik/values.yaml");
    v["tolerations"] = serde_json::json!([]);
    replace_doc(&mut untolerated, "traefik/values.yaml", &v);
    let errors = cross_check(&input, &untolerated);
    assert_eq!(
        checks(&errors),
        ["traefik-on-ingress-nodes"],
        "{}",
        reasons(&errors)
    );
    assert!(reasons(&errors).contains("DOWN"));
    // Node affinity on one group while HAProxy targets both.
    let mut narrow = files.clone();
    let mut v = doc(&files, "traefik/values.yaml");
    v["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchExpressions"][0]["values"] = serde_json::json!(["general"]);
    replace_doc(&mut narrow, "traefik/values.yaml", &v);
    assert_eq!(
        checks(&cross_check(&input, &narrow)),
        ["traefik-on-ingress-nodes"]
    );
}

#[test]
fn environments_pinned_to_their_group_select_and_tolerate_it() {
    let mut input = tainted();
    input.environments[1].worker_group = Some("edge".into());
    let out = render(&input).expect("renders");
    let k = doc(
        &out.cluster_files,
        "apps/overlays/nonprod/kustomization.yaml",
    );
    let patches = k["patches"].as_array().expect("patches");
    let deployment = patches
        .iter()
        .find(|p| p["target"]["kind"] == "Deployment")
        .expect("a Deployment patch");
    let ops: Vec<Value> =
        serde_saphyr::from_str(deployment["patch"].as_str().expect("patch text")).expect("ops");
    assert_eq!(ops[0]["value"]["hakube.io/worker-group"], "edge");
    assert!(
        Taint::new("environment", Some("prod"), TaintEffect::NoSchedule)
            .tolerated_by(&ops[1]["value"][0])
    );
    // An unknown group is refused.
    input.environments[1].worker_group = Some("nope".into());
    assert!(render(&input).is_err());
}

// Defect 8: Prometheus and Loki on emptyDir.
#[test]
fn node_local_volumes_bind_the_charts_claims_on_their_node() {
    let mut input = tainted();
    let host = |node: &str, dir: &str| VolumeChoice::HostPath {
        node: node.into(),
        path: format!("/var/lib/hakube/{dir}"),
        size: "20Gi".into(),
    };
    if let Some(m) = input.monitoring.as_mut() {
        m.prometheus_volume = host("worker-1", "prometheus");
    }
    if let Some(l) = input.logging.as_mut() {
        l.loki_volume = host("worker-2", "loki");
    }
    let out = render(&input).expect("renders");
    let prom = doc(&out.cluster_files, "monitoring/prometheus-values.yaml");
    assert_eq!(prom["server"]["persistentVolume"]["enabled"], true);
    assert_eq!(
        prom["server"]["persistentVolume"]["storageClass"],
        hakube_addons::storage::NODE_LOCAL_CLASS
    );
    let loki = doc(&out.cluster_files, "logging/loki-values.yaml");
    assert_eq!(loki["singleBinary"]["persistence"]["enabled"], true);
    for (path, claim, node) in [
        (
            "monitoring/local-volumes.yaml",
            "prometheus-server",
            "worker-1",
        ),
        ("logging/local-volumes.yaml", "storage-loki-0", "worker-2"),
    ] {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&file(&out.cluster_files, path).contents).expect("YAML");
        let pv = docs
            .iter()
            .find(|d| d["kind"] == "PersistentVolume")
            .expect("a PV");
        assert_eq!(pv["spec"]["claimRef"]["name"], claim);
        assert_eq!(
            pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
                [0],
            node
        );
        // Applied before the chart that claims it.
        let applied = out.steps.iter().position(
            |s| matches!(s, InstallStep::Apply { files, .. } if files.iter().any(|f| f == path)),
        );
        let first_helm = out.steps.iter().position(|s| {
            matches!(s, InstallStep::Helm(h) if h.values_file.starts_with(path.split('/').next().unwrap_or_default()))
        });
        assert!(applied < first_helm, "{path}: {applied:?} < {first_helm:?}");
    }
    // A volume on a tainted node would keep the pod Pending: refused.
    if let Some(m) = input.monitoring.as_mut() {
        m.prometheus_volume = host("worker-5", "prometheus");
    }
    let errors = validate(&input);
    assert_eq!(errors.len(), 1, "{}", reasons(&errors));
    assert!(reasons(&errors).contains("environment=prod:NoSchedule"));
    if let Some(m) = input.monitoring.as_mut() {
        m.prometheus_volume = host("ghost", "prometheus");
    }
    assert!(reasons(&validate(&input)).contains("neither a master nor a worker"));
}

// Defect 3: the NFS provisioner in no install step.
#[test]
fn the_nfs_provisioner_installs_right_after_the_cni() {
    let mut input = example_input();
    input.storage.provisioner = Some(hakube_addons::ProvisionerInput {
        dir: "nfs".into(),
        files: vec![
            "nfs/00-namespace-nfs-provisioner.yaml".into(),
            "nfs/20-storageclass-nfs-prod.yaml".into(),
        ],
        deployments: vec![("nfs-provisioner".into(), "nfs-prod-provisioner".into())],
    });
    let out = render(&input).expect("renders");
    let components: Vec<Component> = out.steps.iter().map(InstallStep::component).collect();
    let first_nfs = components
        .iter()
        .position(|c| *c == Component::Nfs)
        .expect("NFS steps");
    assert!(
        components[..first_nfs]
            .iter()
            .all(|c| *c == Component::Calico)
    );
    assert_eq!(components[first_nfs + 2], Component::Traefik);
    assert!(matches!(
        &out.steps[first_nfs + 1],
        InstallStep::WaitRollout { name, .. } if name == "nfs-prod-provisioner"
    ));
}

// Every Helm values file against its chart at the pinned version.
#[test]
fn every_helm_values_file_is_checked_against_its_chart() {
    let mut approver = tainted();
    if let Some(m) = approver.monitoring.as_mut() {
        m.csr_approval = hakube_addons::KubeletCsrApproval::Approver {
            chart_version: hakube_addons::versions::KUBELET_CSR_APPROVER_VERSION.into(),
        };
    }
    let mut in_cluster = example_input();
    in_cluster.vault.as_mut().expect("vault").placement =
        hakube_addons::VaultPlacement::InCluster {
            storage_class: "local-path".into(),
        };
    let mut checked = std::collections::BTreeSet::new();
    for input in [example_input(), tainted(), approver, in_cluster] {
        let out = render(&input).expect("renders");
        for step in &out.steps {
            let InstallStep::Helm(h) = step else { continue };
            let Some(rules) = hakube_addons::chart_schema::rules_for(&h.chart.name) else {
                // Promtail is deprecated.
                assert!(
                    ["promtail"].contains(&h.chart.name.as_ref()),
                    "{}: no chart rules",
                    h.chart.name
                );
                continue;
            };
            assert_eq!(rules.version, h.chart.version, "{}", h.chart.name);
            let v = doc(&out.cluster_files, &h.values_file);
            assert_eq!(
                hakube_addons::chart_schema::check(rules, &v),
                Vec::<String>::new(),
                "{} ({})",
                h.values_file,
                rules.source
            );
            checked.insert(h.chart.name.to_string());
        }
    }
    assert_eq!(checked.len(), 10, "{checked:?}");
}

#[test]
fn a_misspelled_key_in_a_schemaless_chart_is_caught() {
    // Grafana's chart has no values.schema.json: Helm would install this and ignore the key.
    let rules = hakube_addons::chart_schema::rules_for("grafana").expect("rules");
    let v = serde_json::json!({ "admin": { "existingSecret": "g", "passwordKey": "p", "userkey": "u" } });
    let problems = hakube_addons::chart_schema::check(rules, &v);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("admin.userkey: unknown key"));
}

#[test]
fn logging_alone_brings_the_node_local_class() {
    let mut input = example_input();
    input.monitoring = None;
    if let Some(l) = input.logging.as_mut() {
        l.loki_volume = VolumeChoice::HostPath {
            node: "worker-2".into(),
            path: "/var/lib/hakube/loki".into(),
            size: "20Gi".into(),
        };
    }
    let out = render(&input).expect("renders");
    let docs: Vec<Value> = serde_saphyr::from_multiple(
        &file(&out.cluster_files, "logging/local-volumes.yaml").contents,
    )
    .expect("YAML");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["StorageClass", "PersistentVolume"]);
}

#[test]
fn vault_chart_values_are_checked_where_the_schema_leaves_them_open() {
    // vault-helm's schema closes nothing: a misspelled raft key would be ignored and every pod
    // get a random raft node_id (the bootstrap waits for voters named after the pods), and a
    // RollingUpdate would make `helm --wait` wait for sealed pods.
    let rules = hakube_addons::chart_schema::rules_for("vault").expect("rules");
    let v = serde_json::json!({
        "server": {
            "ha": { "raft": { "setNodeID": true } },
            "updateStrategyType": "Recreate",
        }
    });
    let problems = hakube_addons::chart_schema::check(rules, &v);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("server.ha.raft.setNodeID: unknown key")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("server.updateStrategyType")),
        "{problems:?}"
    );
}
