//! The install runner against hakube-lab's Kubernetes API stand-in (HTTPS, bearer token,
//! server-side apply with field managers, CRDs that become Established, workloads rolled out)
//! and its `helm` stand-in (checks `upgrade --install --atomic --wait --version` and the
//! values file, records releases as helm's Secrets), with a real OpenBao for Vault's
//! Kubernetes auth, on the rendered add-ons of the tests' seed-like input:
//! - the first run performs every step in order, a second run changes nothing;
//! - a step the API refuses (a field another manager owns) is named with the object and the
//!   API's answer, and no later step runs;
//! - a missing helm is a clear error before anything is applied;
//! - a dry run stores nothing;
//! - no secret value appears in any output, log or error.
//!
//! Each test prints the runner's wall time, the time inside API calls/helm/Kustomize/Vault,
//! and the API stand-in's own time from its request log (`--nocapture`).
#![cfg(feature = "apply")]
#![allow(clippy::unwrap_used)]

#[path = "../../vault/tests/common/mod.rs"]
mod common;
mod fixture;
mod support;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fixture::example_input;
use hakube_addons::run::{Plan, Progress, Runner, StepOutcome};
use hakube_addons::{Error, InstallStep, render};
use hakube_lab::stand_ins::ApiServer;
use serde_json::Value;
use support::{chart_objects, helm_wrapper, write_plan};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Every line of progress, for the secret check.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Progress for Recorder {
    fn started(&self, number: usize, total: usize, step: &InstallStep) {
        self.0
            .lock()
            .unwrap()
            .push(format!("start {number}/{total} {}", step.label()));
    }
    fn finished(&self, total: usize, o: &StepOutcome) {
        let line = hakube_addons::run::line(total, o);
        println!("{line}");
        self.0.lock().unwrap().push(line);
    }
}

/// A test's world: the plan, the API stand-in, helm, and (when `bao` is installed) a real
/// one-node OpenBao, bootstrapped, whose CA and keys sit where the configure stage keeps them.
struct World {
    dir: tempfile::TempDir,
    plan: Plan,
    api: ApiServer,
    helm: PathBuf,
    helm_log: PathBuf,
    vault: Option<common::LocalCluster>,
}

async fn world() -> World {
    world_of(example_input()).await
}

/// In-cluster Vault's "pods": three real OpenBao servers on 127.0.0.1 (not initialised), named
/// as the plan's steps then name the pods (the chart makes each pod's raft `node_id` its name),
/// and Pods the helm stand-in creates with the Vault release, each port-forwarded by the API
/// stand-in to its server (`stand-in.hakube.io/forward-8200`). The plan keeps the servers' CA,
/// as `plan` keeps in-cluster Vault's.
fn in_cluster_vault(bao: &Path, plan: &mut Plan, objects: &Path) -> common::LocalCluster {
    let c = common::LocalCluster::start(bao, "vault", 3);
    let names: Vec<String> = c.spec.nodes.iter().map(|n| n.name.clone()).collect();
    for s in &mut plan.steps {
        match s {
            InstallStep::VaultBootstrap(v) => v.pods.pods.clone_from(&names),
            InstallStep::VaultKubernetesAuth(v) => {
                v.pods
                    .as_mut()
                    .expect("port-forwards")
                    .pods
                    .clone_from(&names);
            }
            _ => {}
        }
    }
    let tls = plan.secrets_dir.join("vault/tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::write(tls.join("ca.crt"), &c.tls.ca_cert_pem).unwrap();
    let node = c.tls.node_tls(&names[0]).unwrap();
    std::fs::write(tls.join("vault.crt"), &node.cert_pem).unwrap();
    std::fs::write(tls.join("vault.key"), node.key.expose()).unwrap();
    let pods = c
        .spec
        .nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": n.name, "namespace": hakube_addons::vault::NAMESPACE,
                             "annotations": {"stand-in.hakube.io/forward-8200":
                                             format!("127.0.0.1:{}", n.api_port)}},
                "spec": {"containers": [{"name": "vault", "image": "openbao"}]},
                "status": {"phase": "Running", "podIP": "127.0.0.1"},
            })
        })
        .collect();
    support::add_release_objects(objects, "vault", pods);
    c
}

async fn world_of(input: hakube_addons::AddonsInput) -> World {
    let in_cluster = matches!(
        input.vault.as_ref().map(|v| &v.placement),
        Some(hakube_addons::VaultPlacement::InCluster { .. })
    );
    let dir = tempfile::tempdir().unwrap();
    let rendered = render(&input).expect("renders");
    let mut plan = write_plan(dir.path(), &rendered);
    if std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_err()
    {
        eprintln!(
            "SKIP (part): no kubectl for `kubectl kustomize`: the Kustomize steps are left out"
        );
        plan.steps
            .retain(|s| !matches!(s, InstallStep::ApplyKustomize { .. }));
    }
    let objects = chart_objects(&plan, dir.path());
    let api = tokio::task::spawn_blocking({
        let d = dir.path().join("api");
        move || ApiServer::start(&d, free_addr())
    })
    .await
    .unwrap()
    .expect("the API stand-in starts");
    let vault = match common::bao_bin() {
        Some(bao) if in_cluster => Some(in_cluster_vault(&bao, &mut plan, &objects)),
        Some(bao) => {
            let c = tokio::task::spawn_blocking(move || common::LocalCluster::start(&bao, "rn", 1))
                .await
                .unwrap();
            let store = hakube_vault::bootstrap::FileKeyStore::new(
                plan.secrets_dir.join(hakube_addons::vault_secrets::INIT),
            );
            std::fs::create_dir_all(plan.secrets_dir.join("vault")).unwrap();
            c.tls
                .write_dir(&plan.secrets_dir.join("vault/tls"))
                .unwrap();
            let client = hakube_vault::client::Client::for_nodes(
                &c.spec.nodes,
                &c.tls.ca_cert_pem,
                Duration::from_secs(10),
            )
            .unwrap();
            hakube_vault::bootstrap::bootstrap(
                &client,
                &store,
                &hakube_vault::bootstrap::BootstrapSpec::new(None),
            )
            .await
            .expect("OpenBao bootstraps");
            for s in &mut plan.steps {
                if let InstallStep::VaultKubernetesAuth(v) = s {
                    v.vault_url = c.spec.nodes[0].api_url();
                }
            }
            Some(c)
        }
        None => {
            assert!(
                std::env::var_os("HAKUBE_LAB_STRICT").is_none(),
                "HAKUBE_LAB_STRICT: no `bao` binary (scripts/install-test-deps)"
            );
            eprintln!(
                "SKIP (part): no `bao` binary (scripts/install-test-deps): the Vault steps are left out"
            );
            plan.steps.retain(|s| {
                !matches!(
                    s,
                    InstallStep::VaultKubernetesAuth(_) | InstallStep::VaultBootstrap(_)
                )
            });
            None
        }
    };
    let (helm, helm_log) = helm_wrapper(dir.path(), &objects);
    World {
        dir,
        plan,
        api,
        helm,
        helm_log,
        vault,
    }
}

impl World {
    async fn runner(&self, progress: Arc<dyn Progress>) -> Runner {
        Runner::from_kubeconfig(self.api.kubeconfig())
            .await
            .expect("kubeconfig")
            .helm(&self.helm)
            .poll_interval(Duration::from_millis(50))
            .crd_timeout(Duration::from_secs(20))
            .rollout_timeout(Duration::from_secs(20))
            .progress(progress)
    }

    fn helm_calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.helm_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn api_millis(&self) -> f64 {
        self.api
            .requests()
            .iter()
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn stored_objects(&self) -> usize {
        let state = std::fs::read_to_string(self.api.files().state_dir.join("state.json"))
            .unwrap_or_else(|_| "{\"objects\":{}}".into());
        let v: Value = serde_json::from_str(&state).unwrap();
        v["objects"].as_object().map_or(0, serde_json::Map::len)
    }

    /// Every secret value the plan keeps (generated ones and the Vault files).
    fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.plan.secrets_dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(t) = std::fs::read_to_string(&p) {
                    if p.extension().is_some_and(|x| x == "crt") {
                        continue; // certificates are public
                    }
                    if p.extension().is_some_and(|x| x == "json") {
                        let v: Value = serde_json::from_str(&t).unwrap();
                        out.push(v["root_token"].as_str().unwrap_or_default().to_owned());
                        continue;
                    }
                    out.push(t.trim().to_owned());
                }
            }
        }
        out.retain(|v| v.len() >= 8);
        out
    }
}

fn print_timing(what: &str, r: &hakube_addons::run::RunReport, api_ms: f64) {
    let wall = r.wall.as_secs_f64();
    let ext = r.external().as_secs_f64();
    println!(
        "{what}: {} steps, {} changed, {} unchanged; runner wall {wall:.3} s, inside API calls/helm/Kustomize/Vault {ext:.3} s, runner's own {:.3} s ({:.1} %); API stand-in's own request time {:.3} s",
        r.steps.len(),
        r.changed(),
        r.unchanged(),
        wall - ext,
        100.0 * (wall - ext) / wall.max(1e-9),
        api_ms / 1000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_runs_in_order_and_a_rerun_changes_nothing() {
    let w = world().await;
    let rec = Arc::new(Recorder::default());
    let runner = w.runner(Arc::<Recorder>::clone(&rec)).await;
    let first = runner.run(&w.plan).await.expect("first run");
    print_timing("first run", &first, w.api_millis());
    assert_eq!(first.steps.len(), w.plan.steps.len(), "every step ran");
    for (o, s) in first.steps.iter().zip(&w.plan.steps) {
        assert_eq!(o.label, s.label(), "in order");
        if matches!(
            s,
            InstallStep::Apply { .. }
                | InstallStep::ApplyKustomize { .. }
                | InstallStep::Helm(_)
                | InstallStep::Secret { .. }
        ) {
            assert!(!o.changed.is_empty(), "step {} changed something", o.label);
        }
    }
    // Helm: every release once, in the plan's order, with the pinned version and values.
    let releases: Vec<&str> = w
        .plan
        .steps
        .iter()
        .filter_map(|s| match s {
            InstallStep::Helm(h) => Some(h.release.as_str()),
            _ => None,
        })
        .collect();
    let upgrades: Vec<Vec<String>> = w
        .helm_calls()
        .into_iter()
        .filter(|a| a[0] == "upgrade")
        .collect();
    assert_eq!(
        upgrades.iter().map(|a| a[2].as_str()).collect::<Vec<_>>(),
        releases
    );
    for a in &upgrades {
        for flag in ["--install", "--atomic", "--wait", "--version", "-f"] {
            assert!(a.iter().any(|x| x == flag), "{flag} in {a:?}");
        }
    }
    // The Grafana password: generated once, kept 0600 under secrets/, never in cluster/.
    let pw_path = w
        .plan
        .secrets_dir
        .join("monitoring/grafana-admin/admin-password");
    let pw = std::fs::read_to_string(&pw_path).expect("kept");
    assert_eq!(pw.len(), 32);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&pw_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let objects = w.stored_objects();

    // Second run: nothing changes, no helm upgrade, and the same password.
    let helm_before = w.helm_calls().len();
    let api_before = w.api.requests().len();
    let second = runner.run(&w.plan).await.expect("second run");
    print_timing("second run", &second, w.api_millis());
    assert_eq!(
        second.changed(),
        0,
        "a re-run changes nothing: {:?}",
        second
            .steps
            .iter()
            .filter(|s| !s.changed.is_empty())
            .collect::<Vec<_>>()
    );
    assert!(second.unchanged() > 0);
    assert!(
        w.helm_calls()[helm_before..]
            .iter()
            .all(|a| a[0] != "upgrade"),
        "no helm upgrade on a re-run"
    );
    assert_eq!(std::fs::read_to_string(&pw_path).unwrap(), pw);
    assert_eq!(w.stored_objects(), objects);
    // The re-run's API conversation, recorded (method, path, status; durations dropped): only
    // reads and no-op applies, and exactly these.
    let conversation: Vec<String> = w.api.requests()[api_before..]
        .iter()
        .map(|l| l.rsplit_once(' ').map_or(l.as_str(), |(a, _)| a).to_owned())
        .filter(|l| !l.contains("/token"))
        .collect();
    assert!(
        conversation
            .iter()
            .all(|l| l.starts_with("GET ") || l.starts_with("PATCH ")),
        "{conversation:#?}"
    );
    if common::bao_bin().is_some() {
        insta::assert_snapshot!("rerun_api_conversation", conversation.join("\n"));
    }
    println!(
        "objects stored: {objects}; API requests: {}",
        w.api.requests().len()
    );

    // No secret value in progress lines, the helm log, the API log or the cluster tree.
    let mut seen = rec.0.lock().unwrap().join("\n");
    seen.push_str(&std::fs::read_to_string(&w.helm_log).unwrap());
    seen.push_str(&w.api.requests().join("\n"));
    seen.push_str(&format!("{first:?}{second:?}"));
    for f in walk(&w.plan.cluster_dir) {
        seen.push_str(&std::fs::read_to_string(f).unwrap_or_default());
    }
    let secrets = w.secret_values();
    assert!(secrets.iter().any(|s| s == &pw));
    for s in &secrets {
        assert!(!seen.contains(s.as_str()), "a secret value leaked");
    }
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_step_is_named_with_the_object_and_the_answer_and_stops_the_run() {
    let w = world().await;
    // Someone else owns a label hakube sets on the logging Namespace (kubectl, say).
    let ns = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "logging", "labels": {"app.kubernetes.io/managed-by": "someone-else"}},
    });
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(w.api.kubeconfig()).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(
        client,
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
    );
    api.patch(
        "logging",
        &kube::api::PatchParams::apply("kubectl"),
        &kube::api::Patch::Apply(ns),
    )
    .await
    .expect("the other manager's apply");

    let failing = w
        .plan
        .steps
        .iter()
        .position(|s| matches!(s, InstallStep::Apply { files, .. } if files.iter().any(|f| f == "logging/namespace.yaml")))
        .expect("the logging namespace step")
        + 1;
    let err = w
        .runner(Arc::new(hakube_addons::run::Silent))
        .await
        .run(&w.plan)
        .await
        .expect_err("the step is refused");
    let chain = error_chain(&err);
    println!("{chain}");
    let Error::Step { number, .. } = &err else {
        panic!("a step error: {chain}")
    };
    assert_eq!(*number, failing);
    assert!(chain.contains("Namespace `logging`"), "the object: {chain}");
    assert!(
        chain.contains("conflict with \"kubectl\""),
        "the API's answer: {chain}"
    );
    // No later step ran: no release after the failing step was installed.
    let later: BTreeSet<&str> = w.plan.steps[failing..]
        .iter()
        .filter_map(|s| match s {
            InstallStep::Helm(h) => Some(h.release.as_str()),
            _ => None,
        })
        .collect();
    assert!(!later.is_empty());
    for a in w.helm_calls() {
        if a[0] == "upgrade" {
            assert!(!later.contains(a[2].as_str()), "{} ran", a[2]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_helm_is_a_clear_error_before_anything_is_applied() {
    let w = world().await;
    let err = w
        .runner(Arc::new(hakube_addons::run::Silent))
        .await
        .helm(w.dir.path().join("no/such/helm"))
        .run(&w.plan)
        .await
        .expect_err("no helm");
    let msg = error_chain(&err);
    println!("{msg}");
    assert!(matches!(err, Error::HelmNotFound { .. }), "{msg}");
    assert!(
        msg.contains("https://get.helm.sh"),
        "says how to get it: {msg}"
    );
    assert!(
        !w.api.requests().iter().any(|l| l.starts_with("PATCH")),
        "nothing applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_stores_nothing_and_lists_what_would_change() {
    let w = world().await;
    let before = w.stored_objects();
    let r = w
        .runner(Arc::new(hakube_addons::run::Silent))
        .await
        .dry_run(true)
        .run(&w.plan)
        .await
        .expect("dry run");
    assert_eq!(w.stored_objects(), before, "a dry run stores nothing");
    assert!(r.changed() > 0, "lists what would change");
    // A custom resource whose CRD a chart installs cannot be checked before that chart ran.
    assert!(
        r.steps.iter().any(|s| s
            .skipped
            .as_deref()
            .is_some_and(|x| x.contains("not served yet"))),
        "{r:?}"
    );
    for o in &r.steps {
        println!("dry run: {}", hakube_addons::run::line(r.steps.len(), o));
    }
    assert!(
        !w.plan
            .secrets_dir
            .join("monitoring/grafana-admin/admin-password")
            .exists(),
        "a dry run keeps no generated secret"
    );
    assert!(
        w.helm_calls()
            .iter()
            .filter(|a| a[0] == "upgrade")
            .all(|a| a.iter().any(|x| x == "--dry-run=server")),
        "helm only dry-runs"
    );
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// Vault in the cluster (`vault.placement: cluster`): the add-on stage itself initialises it,
/// unseals every pod, sets up the PKI and the Kubernetes auth, all through port-forwards the
/// API server makes to the pods (real OpenBao behind the stand-in's `pods/portforward`).
/// A re-run changes nothing; after a pod restarts (sealed), a re-run only unseals it; a pod
/// that is gone is named; no secret shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_vault_is_initialised_unsealed_and_given_its_pki_through_port_forwards() {
    let mut input = example_input();
    input.vault.as_mut().unwrap().placement = hakube_addons::VaultPlacement::InCluster {
        storage_class: "local-path".into(),
    };
    let mut w = world_of(input).await;
    if w.vault.is_none() {
        return; // skipped (no bao), said by world_of
    }
    let rec = Arc::new(Recorder::default());
    let runner = w.runner(Arc::<Recorder>::clone(&rec)).await;
    let first = runner.run(&w.plan).await.unwrap_or_else(|e| {
        panic!(
            "first run: {}\n{}",
            error_chain(&e),
            w.vault.as_ref().unwrap().logs()
        )
    });
    print_timing("in-cluster Vault, first run", &first, w.api_millis());
    let boot = first
        .steps
        .iter()
        .find(|o| o.label.starts_with("Vault init, unseal and PKI"))
        .expect("the bootstrap step ran");
    let said = boot.changed.join("\n");
    println!("{said}");
    assert!(said.contains("initialised"), "{said}");
    assert!(said.contains("pki_int"), "{said}");
    let auth = first
        .steps
        .iter()
        .find(|o| o.label.starts_with("Vault Kubernetes auth"))
        .expect("the Kubernetes auth step ran");
    assert!(!auth.changed.is_empty(), "{auth:?}");

    // What the real OpenBao now holds, asked directly (not through the tunnels).
    let c = w.vault.as_ref().unwrap();
    let store = hakube_vault::bootstrap::FileKeyStore::new(
        w.plan.secrets_dir.join(hakube_addons::vault_secrets::INIT),
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the keys are kept 0600");
    }
    let init = hakube_vault::bootstrap::KeyStore::load(&store)
        .unwrap()
        .expect("keys kept");
    let direct = hakube_vault::client::Client::for_nodes(
        &c.spec.nodes,
        &c.tls.ca_cert_pem,
        Duration::from_secs(10),
    )
    .unwrap();
    for i in 0..3 {
        let st = direct.seal_status(i).await.unwrap();
        assert!(
            st.initialized && !st.sealed,
            "{}: {st:?}",
            c.spec.nodes[i].name
        );
    }
    let peers = direct.raft_peers(&init.root_token).await.unwrap();
    assert_eq!(peers.iter().filter(|p| p.voter).count(), 3, "{peers:?}");
    for path in [
        "pki_int/roles/hakube".to_owned(),
        "auth/kubernetes/role/cert-manager".to_owned(),
        "sys/policy/cert-manager".to_owned(),
    ] {
        assert!(
            direct
                .read(&init.root_token, &path)
                .await
                .unwrap()
                .is_some(),
            "{path} exists"
        );
    }

    // A re-run changes nothing.
    let second = runner.run(&w.plan).await.expect("second run");
    print_timing("in-cluster Vault, second run", &second, w.api_millis());
    assert_eq!(
        second.changed(),
        0,
        "{:?}",
        second
            .steps
            .iter()
            .filter(|s| !s.changed.is_empty())
            .collect::<Vec<_>>()
    );

    // A pod restarts (sealed, as every Vault pod starts): the next run unseals it, nothing else.
    let restarted = c.spec.nodes[2].name.clone();
    {
        let c = w.vault.as_mut().unwrap();
        c.kill(2);
        c.spawn(2);
        c.wait_listening();
    }
    let third = runner.run(&w.plan).await.expect("third run");
    let changed: Vec<&String> = third.steps.iter().flat_map(|s| &s.changed).collect();
    println!("after a restart: {changed:?}");
    assert!(
        !changed.is_empty()
            && changed
                .iter()
                .all(|c| c.contains(&restarted) && c.contains("unseal")),
        "only {restarted} unsealed: {changed:?}"
    );

    // A pod that is gone is named with the API's answer, and the run stops there.
    let client = hakube_examples_like_client(&w).await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client, hakube_addons::vault::NAMESPACE);
    pods.delete(&restarted, &Default::default()).await.unwrap();
    let err = w
        .runner(Arc::<Recorder>::clone(&rec))
        .await
        .rollout_timeout(Duration::from_secs(1))
        .run(&w.plan)
        .await
        .expect_err("a pod is gone");
    let chain = error_chain(&err);
    println!("{chain}");
    let number = w
        .plan
        .steps
        .iter()
        .position(|s| matches!(s, InstallStep::VaultBootstrap(_)))
        .unwrap()
        + 1;
    assert!(
        matches!(&err, Error::Step { number: n, .. } if *n == number),
        "{chain}"
    );
    assert!(
        chain.contains(&format!(
            "pod `vault/{restarted}` not running after 1s: not found"
        )),
        "{chain}"
    );

    // No secret in progress lines, reports or the error.
    let mut seen = rec.0.lock().unwrap().join("\n");
    seen.push_str(&format!("{first:?}{second:?}{third:?}{chain}{err:?}"));
    assert!(
        !seen.contains(init.root_token.expose()),
        "the root token leaked"
    );
    for k in &init.unseal_keys {
        assert!(!seen.contains(k.expose()), "an unseal key leaked");
    }
}

async fn hakube_examples_like_client(w: &World) -> kube::Client {
    kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(w.api.kubeconfig()).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap()
}
