//! Golden comparisons: what hakube renders for the reference topology must mean the same as
//! hand-written v1beta4 fixtures (tests/fixtures), modulo kubeadm defaults listed here.
//! Plus round trips: fixtures parse into the typed model and render back to the same meaning.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::BTreeMap;

use hakube_kubeadm::config::{Document, parse_documents, render_documents};
use hakube_kubeadm::{
    ClusterInput, ClusterSecrets, MasterInput, WorkerInput, init_documents, join_configuration,
};
use serde_json::Value;

const TOKEN: &str = "abcdef.0123456789abcdef";
const CERT_KEY: &str = "5a3f0c1e9b7d2468ace013579bdf02468ace13579bdf02468ace13579bdf0246";
const CA_HASH: &str = "sha256:8f43288a6d4b6e4c2d1e7b1c1b5d0f2a3c4e5f60718293a4b5c6d7e8f9012345";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn reference_input() -> ClusterInput {
    let mut c = ClusterInput::new(
        "kubernetes",
        std::net::Ipv4Addr::new(10, 0, 0, 10),
        "v1.33.2".parse().unwrap(),
        "10.244.0.0/16".parse().unwrap(),
    );
    for (i, n) in ["cp1", "cp2", "cp3"].iter().enumerate() {
        c.masters.push(MasterInput::new(
            *n,
            format!("10.0.0.2{}", i + 1).parse().unwrap(),
        ));
    }
    c.workers
        .push(WorkerInput::new("w1", "10.0.0.31".parse().unwrap()));
    c.cert_sans = ["k8s-api.example.lan", "10.0.0.21", "10.0.0.22", "10.0.0.23"]
        .map(String::from)
        .to_vec();
    c
}

fn secrets() -> ClusterSecrets {
    ClusterSecrets {
        token: TOKEN.parse().unwrap(),
        certificate_key: CERT_KEY.parse().unwrap(),
        ca_cert_hash: Some(CA_HASH.parse().unwrap()),
    }
}

/// Flattens YAML documents into `doc-kind.path -> scalar` leaves.
fn leaves(yaml: &str) -> BTreeMap<String, Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
    let mut out = BTreeMap::new();
    for d in docs.into_iter().filter(|d| !d.is_null()) {
        let kind = d["kind"].as_str().unwrap().to_owned();
        walk(&kind, &d, &mut out);
    }
    out
}

fn walk(path: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                walk(&format!("{path}.{k}"), v, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                walk(&format!("{path}[{i}]"), v, out);
            }
        }
        other => {
            out.insert(path.to_owned(), other.clone());
        }
    }
}

/// An empty list and an absent one mean the same to kubeadm, except for `taints` (nil = default
/// control-plane taint, `[]` = none), which the typed model keeps apart.
fn without_empty_lists(mut l: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    l.retain(|p, v| p.ends_with(".taints") || v.as_array().is_none_or(|a| !a.is_empty()));
    l
}

/// Compares `ours` with `golden`. Leaves only in ours must be in `ours_extra` (values kubeadm
/// would default to anyway); leaves only in the golden file must be in `golden_defaults`.
fn assert_same_meaning(
    ours: &str,
    golden: &str,
    ours_extra: &[(&str, Value)],
    golden_defaults: &[&str],
) {
    let ours = leaves(ours);
    let golden = leaves(golden);
    let mut problems = Vec::new();
    for (p, v) in &ours {
        match golden.get(p) {
            Some(g) if g == v => {}
            Some(g) => problems.push(format!("{p}: ours {v}, golden {g}")),
            None => {
                if !ours_extra.iter().any(|(ep, ev)| ep == p && ev == v) {
                    problems.push(format!("{p}: only ours ({v})"));
                }
            }
        }
    }
    for (p, g) in &golden {
        if !ours.contains_key(p) && !golden_defaults.iter().any(|d| p.starts_with(d)) {
            problems.push(format!("{p}: only golden ({g})"));
        }
    }
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
}

const CONTROL_PLANE_TAINT: [(&str, &str); 2] = [
    ("key", "node-role.kubernetes.io/control-plane"),
    ("effect", "NoSchedule"),
];

fn explicit_cp_taint(kind: &str) -> Vec<(String, Value)> {
    CONTROL_PLANE_TAINT
        .iter()
        .map(|(k, v)| {
            (
                format!("{kind}.nodeRegistration.taints[0].{k}"),
                Value::String((*v).into()),
            )
        })
        .collect()
}

#[test]
fn init_matches_golden() {
    let ours = render_documents(&init_documents(&reference_input(), &secrets()).unwrap()).unwrap();
    let mut extra: Vec<(String, Value)> = explicit_cp_taint("InitConfiguration");
    // kube-proxy's clusterCIDR defaults to the podSubnet in kubeadm; we say it explicitly.
    extra.push((
        "KubeProxyConfiguration.clusterCIDR".into(),
        Value::String("10.244.0.0/16".into()),
    ));
    let extra: Vec<(&str, Value)> = extra.iter().map(|(p, v)| (p.as_str(), v.clone())).collect();
    assert_same_meaning(
        &ours,
        &fixture("init-ha.yaml"),
        &extra,
        &[
            "InitConfiguration.timeouts.",
            "InitConfiguration.nodeRegistration.imagePull",
            "ClusterConfiguration.apiServer.extraArgs",
            "ClusterConfiguration.certificatesDir",
            "ClusterConfiguration.imageRepository",
            "ClusterConfiguration.encryptionAlgorithm",
            "ClusterConfiguration.certificateValidityPeriod",
            "ClusterConfiguration.caCertificateValidityPeriod",
        ],
    );
}

#[test]
fn join_control_plane_matches_golden() {
    let join = join_configuration(&reference_input(), &secrets(), "cp2").unwrap();
    let ours = render_documents(&[Document::Join(Box::new(join))]).unwrap();
    let extra = explicit_cp_taint("JoinConfiguration");
    let extra: Vec<(&str, Value)> = extra.iter().map(|(p, v)| (p.as_str(), v.clone())).collect();
    assert_same_meaning(
        &ours,
        &fixture("join-control-plane.yaml"),
        &extra,
        &["JoinConfiguration.timeouts."],
    );
}

#[test]
fn join_worker_matches_golden() {
    let join = join_configuration(&reference_input(), &secrets(), "w1").unwrap();
    let ours = render_documents(&[Document::Join(Box::new(join))]).unwrap();
    assert_same_meaning(&ours, &fixture("join-worker.yaml"), &[], &[]);
}

#[test]
fn golden_differences_are_caught() {
    // The comparator itself must notice a changed value and a missing field.
    let join = join_configuration(&reference_input(), &secrets(), "w1").unwrap();
    let ours = render_documents(&[Document::Join(Box::new(join))]).unwrap();
    let changed = fixture("join-worker.yaml").replace("10.0.0.31", "10.0.0.99");
    let r = std::panic::catch_unwind(|| assert_same_meaning(&ours, &changed, &[], &[]));
    assert!(r.is_err());
    let fewer = fixture("join-worker.yaml").replace("  taints: []\n", "");
    let r = std::panic::catch_unwind(|| assert_same_meaning(&ours, &fewer, &[], &[]));
    assert!(r.is_err());
}

#[test]
fn fixtures_round_trip_through_the_typed_model() {
    for name in [
        "init-ha.yaml",
        "join-control-plane.yaml",
        "join-worker.yaml",
    ] {
        let text = fixture(name);
        let docs = parse_documents(&text).unwrap();
        let rendered = render_documents(&docs).unwrap();
        assert_eq!(
            leaves(&rendered),
            without_empty_lists(leaves(&text)),
            "{name}"
        );
        assert_eq!(parse_documents(&rendered).unwrap(), docs, "{name}");
    }
}

#[test]
fn typed_fields_land_in_typed_places() {
    let docs = parse_documents(&fixture("init-ha.yaml")).unwrap();
    let [
        Document::Init(init),
        Document::Cluster(cluster),
        Document::Kubelet(kubelet),
        Document::KubeProxy(proxy),
    ] = docs.as_slice()
    else {
        panic!("unexpected documents {docs:?}");
    };
    assert_eq!(init.bootstrap_tokens[0].token.expose(), TOKEN);
    assert_eq!(init.certificate_key.as_ref().unwrap().expose(), CERT_KEY);
    let nr = init.node_registration.as_ref().unwrap();
    assert_eq!(nr.taints, None, "omitted taints stay nil (kubeadm default)");
    assert_eq!(nr.kubelet_extra_args[0].value, "10.0.0.21");
    assert_eq!(
        cluster.control_plane_endpoint.as_deref(),
        Some("10.0.0.10:6443")
    );
    assert_eq!(cluster.encryption_algorithm.as_deref(), Some("RSA-2048"));
    assert_eq!(
        init.timeouts.as_ref().unwrap().etcd_api_call.as_deref(),
        Some("2m0s")
    );
    assert_eq!(kubelet.cgroup_driver.as_deref(), Some("systemd"));
    assert_eq!(proxy.metrics_bind_address.as_deref(), Some("0.0.0.0:10249"));
    // Every field of the fixture is modelled: nothing fell into a pass-through map
    // (this catches camelCase renames such as `etcdAPICall`).
    assert!(init.extra.is_empty() && nr.extra.is_empty(), "{init:?}");
    assert!(init.timeouts.as_ref().unwrap().extra.is_empty());
    assert!(cluster.extra.is_empty(), "{cluster:?}");
    assert!(kubelet.extra.is_empty() && proxy.extra.is_empty());
    // The secret fields never leak through Debug.
    let dbg = format!("{docs:?}");
    assert!(!dbg.contains(CERT_KEY) && !dbg.contains(TOKEN), "{dbg}");
}

#[test]
fn unknown_fields_survive_a_round_trip() {
    let yaml = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n\
                discovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    futureField: 3\n\
                nodeRegistration:\n  name: w1\n  somethingNew: [a, b]\npatches:\n  directory: /etc/p\n";
    let docs = parse_documents(yaml).unwrap();
    assert_eq!(leaves(&render_documents(&docs).unwrap()), leaves(yaml));
}

#[test]
fn bad_documents_are_named() {
    let err = parse_documents("apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("v1beta3"), "{err}");
    let err = parse_documents(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n- token: NOT-A-TOKEN\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("document 1") && err.contains("bootstrapTokens[0].token"),
        "{err}"
    );
    assert!(!err.contains("NOT-A-TOKEN"), "{err}");
    let err = parse_documents(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: http\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("localAPIEndpoint.bindPort"), "{err}");
}

#[test]
fn numeric_looking_secrets_stay_strings() {
    // A token or key made only of digits must be quoted, or YAML would read a number.
    let mut s = secrets();
    s.token = "123456.1234567890123456".parse().unwrap();
    s.certificate_key = "1".repeat(64).parse().unwrap();
    let docs = init_documents(&reference_input(), &s).unwrap();
    let text = render_documents(&docs).unwrap();
    assert_eq!(parse_documents(&text).unwrap(), docs);
    let join = join_configuration(&reference_input(), &s, "cp3").unwrap();
    let text = render_documents(&[Document::Join(Box::new(join.clone()))]).unwrap();
    assert_eq!(
        parse_documents(&text).unwrap(),
        vec![Document::Join(Box::new(join))]
    );
}
