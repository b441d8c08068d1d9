//! The apply path against a scripted API server (tower-test mock behind a real kube::Client):
//! CRD ordering, waiting for Established, discovery refresh, SSA conflicts, bad input.
#![cfg(feature = "apply")]

mod fixture;
use fixture::example_input;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hakube_addons::apply::Applier;
use hakube_addons::{ClusterFile, Component, Error};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/api/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// What the fake API server saw: `METHOD path?query`.
type Log = Arc<Mutex<Vec<String>>>;

/// Start a kube::Client whose every request goes to `respond(method, path, body) -> (code, json)`.
fn client<F>(mut respond: F) -> (kube::Client, Log, tokio::task::JoinHandle<()>)
where
    F: FnMut(&str, &str, &Value) -> (u16, Value) + Send + 'static,
{
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let log: Log = Arc::default();
    let seen = Arc::clone(&log);
    let task = tokio::spawn(async move {
        let mut handle = pin!(handle);
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let uri = req.uri().clone();
            let bytes = req.into_body().collect_bytes().await.expect("request body");
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).expect("request body is JSON")
            };
            let path_q = uri
                .path_and_query()
                .map(ToString::to_string)
                .unwrap_or_default();
            seen.lock().expect("log").push(format!("{method} {path_q}"));
            let (code, resp) = respond(&method, uri.path(), &body);
            let response = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&resp).expect("json")))
                .expect("response");
            send.send_response(response);
        }
    });
    (kube::Client::new(svc, "default"), log, task)
}

const CRD_PATH: &str =
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/installations.operator.tigera.io";

fn crd_doc() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "installations.operator.tigera.io" },
        "spec": {
            "group": "operator.tigera.io",
            "names": { "kind": "Installation", "plural": "installations", "singular": "installation", "listKind": "InstallationList" },
            "scope": "Cluster",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } },
            }],
        },
    })
}

fn crd_with_status(established: bool) -> Value {
    let mut crd = crd_doc();
    crd["status"] = json!({
        "acceptedNames": { "kind": "Installation", "plural": "installations" },
        "storedVersions": ["v1"],
        "conditions": [
            { "type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": "2026-11-27T06:00:00Z" },
            { "type": "Established", "status": if established { "True" } else { "False" },
              "reason": if established { "InitialNamesAccepted" } else { "Installing" },
              "message": "the initial names have been accepted", "lastTransitionTime": "2026-11-27T06:00:01Z" },
        ],
    });
    crd
}

/// Installation first, CRD second, a ConfigMap, a Namespace last: the applier must reorder.
fn manifests() -> Vec<ClusterFile> {
    let docs = [
        json!({ "apiVersion": "operator.tigera.io/v1", "kind": "Installation", "metadata": { "name": "default" }, "spec": { "variant": "Calico" } }),
        crd_doc(),
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "settings", "namespace": "calico-extra" }, "data": { "mode": "strict" } }),
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "calico-extra" } }),
    ];
    let text = docs
        .iter()
        .map(|d| serde_json::to_string(d).expect("json"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    vec![ClusterFile {
        path: "calico/test.yaml".into(),
        contents: text,
    }]
}

fn applier(client: kube::Client) -> Applier {
    Applier::new(client)
        .poll_interval(Duration::from_millis(1))
        .crd_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn crds_first_then_established_then_discovery_then_objects() {
    let mut gets = 0;
    let (client, log, _task) = client(move |method, path, body| match (method, path) {
        ("PATCH", _) => (200, body.clone()),
        ("GET", CRD_PATH) => {
            gets += 1;
            (200, crd_with_status(gets >= 2))
        }
        ("GET", "/apis/operator.tigera.io/v1") => {
            (200, fixture("operator-tigera-io-v1-resources.json"))
        }
        ("GET", "/api/v1") => (200, fixture("core-v1-resources.json")),
        _ => (404, fixture("status-not-found.json")),
    });
    let report = applier(client)
        .apply(Component::Calico, &manifests())
        .await
        .expect("apply succeeds");
    assert_eq!(
        report.applied,
        [
            "CustomResourceDefinition installations.operator.tigera.io",
            "Namespace calico-extra",
            "Installation default",
            "ConfigMap calico-extra/settings",
        ]
    );
    let log = log.lock().expect("log").clone();
    let paths: Vec<&str> = log
        .iter()
        .map(|l| l.split('?').next().unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        [
            format!("PATCH {CRD_PATH}").as_str(),
            format!("GET {CRD_PATH}").as_str(),
            format!("GET {CRD_PATH}").as_str(),
            // Discovery only for the custom resource's group: built-in kinds (Namespace,
            // ConfigMap) resolve from the shared applier's table without a request.
            "GET /apis/operator.tigera.io/v1",
            "PATCH /api/v1/namespaces/calico-extra",
            "PATCH /apis/operator.tigera.io/v1/installations/default",
            "PATCH /api/v1/namespaces/calico-extra/configmaps/settings",
        ]
    );
    for l in log.iter().filter(|l| l.starts_with("PATCH")) {
        assert!(
            l.contains("fieldManager=hakube-addons.calico"),
            "one field manager: {l}"
        );
        assert!(!l.contains("force=true"), "never forces: {l}");
    }
}

#[tokio::test]
async fn apply_conflict_is_a_clear_error_and_stops() {
    let (client, log, _task) = client(|method, path, body| match (method, path) {
        ("PATCH", "/api/v1/namespaces/calico-extra/configmaps/settings") => {
            (409, fixture("status-apply-conflict.json"))
        }
        ("PATCH", _) => (200, body.clone()),
        ("GET", CRD_PATH) => (200, crd_with_status(true)),
        ("GET", "/apis/operator.tigera.io/v1") => {
            (200, fixture("operator-tigera-io-v1-resources.json"))
        }
        ("GET", "/api/v1") => (200, fixture("core-v1-resources.json")),
        _ => (404, fixture("status-not-found.json")),
    });
    let err = applier(client)
        .apply(Component::Calico, &manifests())
        .await
        .expect_err("conflict");
    match &err {
        Error::ApplyConflict {
            component,
            kind,
            name,
            field_manager,
            message,
        } => {
            assert_eq!(component, "calico");
            assert_eq!(kind, "ConfigMap");
            assert_eq!(name, "calico-extra/settings");
            assert_eq!(field_manager, "hakube-addons.calico");
            assert!(
                message.contains("kubectl-edit") && message.contains(".data.mode"),
                "{message}"
            );
        }
        other => panic!("expected ApplyConflict, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("ConfigMap `calico-extra/settings`") && text.contains("kubectl-edit"),
        "{text}"
    );
    assert_eq!(
        log.lock()
            .expect("log")
            .last()
            .map(|l| l.starts_with("PATCH /api/v1/namespaces/calico-extra/configmaps/settings")),
        Some(true)
    );
}

#[tokio::test]
async fn crd_never_established_times_out_before_any_custom_resource() {
    let (client, log, _task) = client(|method, path, body| match (method, path) {
        ("PATCH", _) => (200, body.clone()),
        ("GET", CRD_PATH) => (200, crd_with_status(false)),
        _ => (404, fixture("status-not-found.json")),
    });
    let err = Applier::new(client)
        .poll_interval(Duration::from_millis(1))
        .crd_timeout(Duration::from_millis(30))
        .apply(Component::Calico, &manifests())
        .await
        .expect_err("not established");
    assert!(
        matches!(&err, Error::CrdNotEstablished { name, .. } if name == "installations.operator.tigera.io"),
        "{err:?}"
    );
    let log = log.lock().expect("log").clone();
    assert!(
        log.iter().filter(|l| l.starts_with("PATCH")).count() == 1,
        "only the CRD was applied: {log:?}"
    );
    assert!(
        log.iter().any(|l| l.starts_with("GET")),
        "status was polled"
    );
}

#[tokio::test]
async fn bad_manifest_sends_nothing() {
    let (client, log, _task) = client(|_, _, _| (500, json!({})));
    let mut files = manifests();
    files.push(ClusterFile {
        path: "calico/broken.yaml".into(),
        contents: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: x\n".into(),
    });
    let err = applier(client)
        .apply(Component::Calico, &files)
        .await
        .expect_err("missing name");
    assert!(
        matches!(&err, Error::Manifest { path, index: 0, reason } if path == "calico/broken.yaml" && reason.contains("metadata.name")),
        "{err:?}"
    );
    assert!(
        log.lock().expect("log").is_empty(),
        "nothing is half-applied"
    );
}

#[tokio::test]
async fn kind_not_served_is_reported() {
    let (client, _log, _task) = client(|method, path, body| match (method, path) {
        ("GET", "/api/v1") => (200, fixture("core-v1-resources.json")),
        ("PATCH", _) => (200, body.clone()),
        _ => (404, fixture("status-not-found.json")),
    });
    let files = vec![ClusterFile {
        path: "traefik/route.yaml".into(),
        contents: "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata:\n  name: r\n  namespace: default\n".into(),
    }];
    let err = applier(client)
        .apply(Component::Traefik, &files)
        .await
        .expect_err("CRD missing");
    assert!(
        matches!(&err, Error::UnknownKind { api_version, kind, .. } if api_version == "traefik.io/v1alpha1" && kind == "IngressRoute"),
        "{err:?}"
    );
}

#[tokio::test]
async fn rendered_install_steps_run_through_the_applier() {
    let rendered = hakube_addons::render(&example_input()).expect("renders");
    let (client, log, _task) = client(|method, path, body| match (method, path) {
        ("PATCH", _) => (200, body.clone()),
        ("GET", "/apis/batch/v1") => (200, fixture("batch-v1-resources.json")),
        ("GET", "/apis/operator.tigera.io/v1") => {
            (200, fixture("operator-tigera-io-v1-resources.json"))
        }
        _ => (404, fixture("status-not-found.json")),
    });
    let applier = applier(client);
    let mut applied = Vec::new();
    for step in rendered.steps.iter().filter(|s| {
        matches!(s.component(), Component::Calico | Component::EtcdBackup)
            && matches!(s, hakube_addons::InstallStep::Apply { .. })
    }) {
        let report = applier
            .run_step(step, &rendered)
            .await
            .expect("applies")
            .expect("handled");
        applied.extend(report.applied);
    }
    assert_eq!(
        applied,
        [
            "Installation default",
            "APIServer default",
            "CronJob kube-system/etcd-backup"
        ]
    );
    let log = log.lock().expect("log").clone();
    assert!(
        log.iter().any(|l| l
            .starts_with("PATCH /apis/batch/v1/namespaces/kube-system/cronjobs/etcd-backup?")
            && l.contains("fieldManager=hakube-addons.etcd-backup")),
        "{log:?}"
    );
}

fn daemonset(generation: i64, observed: i64, desired: i64, updated: i64, available: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": { "name": "calico-node", "namespace": "calico-system", "generation": generation },
        "spec": {
            "selector": { "matchLabels": { "k8s-app": "calico-node" } },
            "template": { "metadata": { "labels": { "k8s-app": "calico-node" } }, "spec": { "containers": [] } },
        },
        "status": {
            "observedGeneration": observed,
            "currentNumberScheduled": desired, "desiredNumberScheduled": desired,
            "numberMisscheduled": 0, "numberReady": available,
            "updatedNumberScheduled": updated, "numberAvailable": available,
        },
    })
}

#[tokio::test]
async fn rollout_wait_covers_absent_then_progressing_workloads() {
    let mut seen = 0;
    let (client, log, _task) = client(move |method, path, _| {
        assert_eq!(
            (method, path),
            (
                "GET",
                "/apis/apps/v1/namespaces/calico-system/daemonsets/calico-node"
            )
        );
        seen += 1;
        match seen {
            1 => (404, fixture("status-not-found.json")),
            2 => (200, daemonset(2, 1, 3, 3, 3)),
            3 => (200, daemonset(2, 2, 3, 3, 2)),
            _ => (200, daemonset(2, 2, 3, 3, 3)),
        }
    });
    let step = hakube_addons::InstallStep::WaitRollout {
        component: Component::Calico,
        kind: hakube_addons::WorkloadKind::DaemonSet,
        namespace: "calico-system".into(),
        name: "calico-node".into(),
    };
    let rendered = hakube_addons::render(&example_input()).expect("renders");
    let done = applier(client)
        .run_step(&step, &rendered)
        .await
        .expect("rolls out");
    assert!(done.is_some(), "the applier handles rollout waits");
    assert_eq!(
        log.lock().expect("log").len(),
        4,
        "absent, old generation, 2/3 available, done"
    );
}

#[tokio::test]
async fn rollout_that_never_completes_reports_its_last_state() {
    let (client, _log, _task) = client(|_, _, _| (200, daemonset(1, 1, 3, 3, 1)));
    let err = applier(client)
        .rollout_timeout(Duration::from_millis(20))
        .wait_rollout(
            hakube_addons::WorkloadKind::DaemonSet,
            "calico-system",
            "calico-node",
        )
        .await
        .expect_err("never ready");
    match &err {
        Error::RolloutTimeout {
            kind,
            namespace,
            name,
            state,
            ..
        } => {
            assert_eq!(
                (kind.as_str(), namespace.as_str(), name.as_str()),
                ("DaemonSet", "calico-system", "calico-node")
            );
            assert_eq!(state, "3/3 updated, 1/3 available");
        }
        other => panic!("expected RolloutTimeout, got {other:?}"),
    }
}
