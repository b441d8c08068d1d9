//! The apply path against a recorded API conversation: a tower-test mock service stands in for
//! the Kubernetes API server (which cannot run here). Responses are shaped from real API server
//! output (`tests/fixtures/k8s/`): PATCH answers echo the applied object like the server does,
//! Deployment status and Status error bodies follow the real shapes.

#![cfg(feature = "apply")]

mod common;

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hakube_nfs_provisioning::Error;
use hakube_nfs_provisioning::apply::{ApplyOptions, FIELD_MANAGER, apply};
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::Value;

/// One request as the fake API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

impl Seen {
    fn dry_run(&self) -> bool {
        self.query.split('&').any(|p| p == "dryRun=All")
    }
}

type Responder = Box<dyn FnMut(&Seen, usize) -> (StatusCode, Value) + Send>;

/// Starts the fake API server; returns the client and the log of requests.
fn fake_api(mut respond: Responder) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = Arc::clone(&log);
    tokio::spawn(async move {
        let mut handle = pin!(handle);
        let mut n = 0;
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.expect("body");
            let seen = Seen {
                method: parts.method.clone(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                body: if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).expect("json body")
                },
            };
            let (status, answer) = respond(&seen, n);
            n += 1;
            log2.lock().expect("log").push(seen);
            let resp = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                .expect("response");
            send.send_response(resp);
        }
    });
    (Client::new(service, "default"), log)
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/k8s/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

/// What the API server answers to an apply: the object, with server-set metadata and, for a
/// Deployment, a status.
fn echo(seen: &Seen, deployment_status: &str) -> Value {
    let mut obj = seen.body.clone();
    obj["metadata"]["uid"] = "0b0c6a58-4c4e-4a43-9f0e-5a3c4a1b2c3d".into();
    obj["metadata"]["resourceVersion"] = "4711".into();
    obj["metadata"]["generation"] = 1.into();
    if obj["kind"] == "Deployment" {
        obj["status"] = fixture(deployment_status);
    }
    obj
}

/// A GET of a Deployment: the recorded object, named after the request path, with a status.
fn deployment(seen: &Seen, status: &str) -> Value {
    let mut d = fixture("deployment-template.json");
    d["metadata"]["name"] = seen.path.rsplit('/').next().unwrap_or_default().into();
    d["status"] = fixture(status);
    d
}

fn fast() -> ApplyOptions {
    ApplyOptions {
        request_timeout: Duration::from_secs(10),
        wait_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(5),
        ..ApplyOptions::default()
    }
}

const SEED_ORDER: [&str; 8] = [
    "/api/v1/namespaces/nfs-provisioner",
    "/api/v1/namespaces/nfs-provisioner/serviceaccounts/nfs-provisioner",
    "/apis/rbac.authorization.k8s.io/v1/clusterroles/hakube-nfs-provisioner",
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/hakube-nfs-provisioner",
    "/apis/apps/v1/namespaces/nfs-provisioner/deployments/nfs-prod-provisioner",
    "/apis/apps/v1/namespaces/nfs-provisioner/deployments/nfs-nonprod-provisioner",
    "/apis/storage.k8s.io/v1/storageclasses/nfs-prod",
    "/apis/storage.k8s.io/v1/storageclasses/nfs-nonprod",
];

#[tokio::test]
async fn applies_in_order_after_a_dry_run_and_waits_for_deployments() {
    let mut prod_gets = 0;
    let (client, log) = fake_api(Box::new(move |seen, _| {
        if seen.method == Method::GET {
            // nfs-prod is still progressing on the first look, available on the second.
            let status = if seen.path.ends_with("nfs-prod-provisioner") && prod_gets == 0 {
                prod_gets += 1;
                "deployment-status-progressing.json"
            } else {
                "deployment-status-available.json"
            };
            return (StatusCode::OK, deployment(seen, status));
        }
        (
            StatusCode::OK,
            echo(seen, "deployment-status-progressing.json"),
        )
    }));
    let report = apply(&client, &common::seed(), &fast())
        .await
        .expect("apply");
    let log = log.lock().expect("log").clone();

    let (dry, rest) = log.split_at(8);
    let (real, gets) = rest.split_at(8);
    for (pass, dry_run) in [(dry, true), (real, false)] {
        let paths: Vec<_> = pass.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, SEED_ORDER);
        for s in pass {
            assert_eq!(s.method, Method::PATCH);
            assert_eq!(s.content_type, "application/apply-patch+yaml");
            assert!(
                s.query.contains(&format!("fieldManager={FIELD_MANAGER}")),
                "{}",
                s.query
            );
            assert!(!s.query.contains("force"), "{}", s.query);
            assert_eq!(s.dry_run(), dry_run, "{} {}", s.path, s.query);
            assert!(s.body["apiVersion"].is_string() && s.body["kind"].is_string());
        }
    }
    // Namespace and RBAC come before the Deployments and StorageClasses.
    assert_eq!(real[0].body["kind"], "Namespace");
    assert_eq!(real[4].body["spec"]["strategy"]["type"], "Recreate");
    // Two looks at nfs-prod (progressing, then available), one at nfs-nonprod.
    let got: Vec<_> = gets
        .iter()
        .map(|s| (s.method.clone(), s.path.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Method::GET, SEED_ORDER[4]),
            (Method::GET, SEED_ORDER[4]),
            (Method::GET, SEED_ORDER[5]),
        ]
    );
    assert_eq!(report.validated.len(), 8);
    assert_eq!(report.applied[0], "Namespace nfs-provisioner");
    assert_eq!(
        report.available,
        [
            "nfs-provisioner/nfs-prod-provisioner",
            "nfs-provisioner/nfs-nonprod-provisioner"
        ]
    );
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let (client, log) = fake_api(Box::new(|seen, _| {
        (
            StatusCode::OK,
            echo(seen, "deployment-status-progressing.json"),
        )
    }));
    let opts = ApplyOptions {
        dry_run: true,
        ..fast()
    };
    let report = apply(&client, &common::seed(), &opts)
        .await
        .expect("dry run");
    let log = log.lock().expect("log").clone();
    assert_eq!(log.len(), 8);
    assert!(log.iter().all(|s| s.method == Method::PATCH && s.dry_run()));
    assert!(report.applied.is_empty() && report.available.is_empty());
}

#[tokio::test]
async fn conflict_with_another_field_manager_is_named_and_nothing_is_applied() {
    let (client, log) = fake_api(Box::new(|seen, _| {
        if seen.path.ends_with("/deployments/nfs-prod-provisioner") {
            (
                StatusCode::CONFLICT,
                fixture("status-409-apply-conflict.json"),
            )
        } else {
            (
                StatusCode::OK,
                echo(seen, "deployment-status-available.json"),
            )
        }
    }));
    let err = apply(&client, &common::seed(), &fast())
        .await
        .expect_err("conflict");
    match &err {
        Error::FieldManagerConflict {
            kind,
            name,
            managers,
            fields,
        } => {
            assert_eq!(*kind, "Deployment");
            assert_eq!(name, "nfs-provisioner/nfs-prod-provisioner");
            assert_eq!(managers, &["kubectl-client-side-apply"]);
            assert_eq!(fields[0], ".spec.replicas");
            assert_eq!(fields.len(), 2);
        }
        other => panic!("wrong error: {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.starts_with("Deployment nfs-provisioner/nfs-prod-provisioner: server-side apply conflict with field manager(s) [\"kubectl-client-side-apply\"]"),
        "{msg}"
    );
    // The conflict surfaced in the dry-run pass: no real apply was sent.
    let log = log.lock().expect("log").clone();
    assert!(
        log.iter().all(Seen::dry_run),
        "something was applied: {log:?}"
    );
    assert_eq!(log.len(), 5, "stopped at the conflicting object");
}

#[tokio::test]
async fn force_is_explicit() {
    let (client, log) = fake_api(Box::new(|seen, _| {
        (
            StatusCode::OK,
            echo(seen, "deployment-status-available.json"),
        )
    }));
    let opts = ApplyOptions {
        dry_run: true,
        force: true,
        ..fast()
    };
    apply(&client, &common::seed(), &opts)
        .await
        .expect("forced dry run");
    let log = log.lock().expect("log").clone();
    assert!(log.iter().all(|s| s.query.contains("force=true")));
}

#[tokio::test]
async fn other_api_errors_name_the_object() {
    let (client, _log) = fake_api(Box::new(|seen, _| {
        if seen.path.contains("/clusterroles/") {
            (StatusCode::FORBIDDEN, fixture("status-403-forbidden.json"))
        } else {
            (
                StatusCode::OK,
                echo(seen, "deployment-status-available.json"),
            )
        }
    }));
    let err = apply(&client, &common::seed(), &fast())
        .await
        .expect_err("forbidden");
    assert!(matches!(err, Error::Kube { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "dry-run apply ClusterRole hakube-nfs-provisioner"
    );
    let source = std::error::Error::source(&err).expect("source").to_string();
    assert!(
        source.contains("cannot patch resource \"clusterroles\""),
        "{source}"
    );
}

#[tokio::test]
async fn a_deployment_that_never_becomes_available_is_a_bounded_error() {
    let (client, _log) = fake_api(Box::new(|seen, _| {
        if seen.method == Method::GET {
            return (
                StatusCode::OK,
                deployment(seen, "deployment-status-progressing.json"),
            );
        }
        (
            StatusCode::OK,
            echo(seen, "deployment-status-progressing.json"),
        )
    }));
    let opts = ApplyOptions {
        wait_timeout: Duration::from_millis(50),
        ..fast()
    };
    let err = apply(&client, &common::seed(), &opts)
        .await
        .expect_err("not available");
    match err {
        Error::DeploymentNotAvailable {
            namespace,
            name,
            last_state,
            ..
        } => {
            assert_eq!(namespace, "nfs-provisioner");
            assert_eq!(name, "nfs-prod-provisioner");
            assert!(
                last_state.contains("0/1 available")
                    && last_state.contains("Deployment does not have minimum availability."),
                "{last_state}"
            );
        }
        other => panic!("wrong error: {other:?}"),
    }
}
