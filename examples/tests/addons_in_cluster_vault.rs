//! `vault.placement: in_cluster` end to end, from the README's commands: `plan` writes the
//! chart values, in-cluster Vault's TLS bundle and the `vault-bootstrap` step; three lab hosts
//! run what the chart's pods would run (real OpenBao with the *rendered* server config and
//! the files the `vault-tls` Secret carries, joining raft through `vault-N.vault-internal`
//! over TLS checked against the plan's certificate); the Kubernetes API stand-in
//! port-forwards to their pod IPs; and the `addons` example brings Vault up: init (keys kept
//! under `secrets/`), unseal, the PKI and cert-manager's Kubernetes auth. A re-run changes
//! nothing, and no secret is printed.
//!
//! What the lab hosts do not do that a pod would: the config's `service_registration
//! "kubernetes"` stanza is left out (it labels the pod through the API with the pod's own
//! ServiceAccount, which a lab host has not); it matters to the `vault-active` Service, not
//! to the bootstrap.

#![allow(clippy::unwrap_used)]

#[path = "../../crates/addons/tests/support/mod.rs"]
mod charts;
#[path = "../../crates/vault/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hakube_addons::InstallStep;
use hakube_addons::run::Plan;
use hakube_lab::Lab;
use serde_json::{Value, json};

/// The seed with Vault in the cluster (on local disks, as the topology requires).
fn in_cluster_topology(dir: &Path) -> std::path::PathBuf {
    let seed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("seed-cluster.yaml"))
            .unwrap();
    let start = seed.find("\nvault:\n").expect("the seed has Vault") + 1;
    let end = start + seed[start..].find("\n\n").expect("a blank line after it");
    let mut t = format!(
        "{}vault:\n  placement: in_cluster{}",
        &seed[..start],
        &seed[end..]
    );
    let addons = t.find("\naddons:\n").expect("an addons section") + "\naddons:\n".len();
    t.insert_str(addons, "  local_storage_class: local-path\n");
    let path = dir.join("in-cluster.yaml");
    std::fs::write(&path, t).unwrap();
    path
}

fn run(name: &str, args: &[&str]) -> std::process::Output {
    Command::new(support::example_binary(name))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn in_cluster_vault_comes_up_through_the_addons_example() {
    if !hakube_lab::require_root("in_cluster_vault_comes_up_through_the_addons_example") {
        return;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/bao");
    let Some(bao) = venv.exists().then_some(venv).or_else(common::bao_bin) else {
        assert!(
            std::env::var_os(hakube_lab::STRICT_ENV).is_none(),
            "no `bao` binary (scripts/install-test-deps)"
        );
        eprintln!("SKIP: no `bao` binary (scripts/install-test-deps)");
        return;
    };
    let bao = std::fs::canonicalize(bao).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topo = in_cluster_topology(dir.path());
    let out = dir.path().join("out");
    let o = run(
        "plan",
        &[topo.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan = Plan::read(&out).unwrap();
    let pods = plan
        .steps
        .iter()
        .find_map(|s| match s {
            InstallStep::VaultBootstrap(v) => Some(v.pods.clone()),
            _ => None,
        })
        .expect("plan wrote the vault-bootstrap step");

    // What each pod runs: the rendered raft config, the files of the vault-tls Secret.
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(out.join("cluster/vault/values.yaml")).unwrap(),
    )
    .unwrap();
    let config = values["server"]["ha"]["raft"]["config"]
        .as_str()
        .expect("the raft config")
        .replace("service_registration \"kubernetes\" {}\n", "");
    let mount = values["server"]["volumeMounts"][0]["mountPath"]
        .as_str()
        .unwrap()
        .to_owned();
    let tls = out.join("secrets/vault/tls");
    let secret = [
        ("ca.crt", std::fs::read(tls.join("ca.crt")).unwrap()),
        ("tls.crt", std::fs::read(tls.join("vault.crt")).unwrap()),
        ("tls.key", std::fs::read(tls.join("vault.key")).unwrap()),
    ];

    let lab = Lab::builder("icvault")
        .hosts(pods.pods.iter().cloned())
        .private_dir("/vault")
        .without_sshd()
        .build()
        .unwrap();
    // The headless Service `vault-internal` as cluster DNS would answer it.
    let dns: String = pods
        .pods
        .iter()
        .map(|p| format!("{} {p}.vault-internal\n", lab.host(p).addr()))
        .collect();
    for p in &pods.pods {
        let h = lab.host(p);
        for (name, bytes) in &secret {
            h.write_file(format!("{mount}/{name}"), bytes, 0o600)
                .unwrap();
        }
        h.write_file("/vault/config/server.hcl", &config, 0o644)
            .unwrap();
        h.run(&format!(
            "mkdir -p /vault/data && printf '%s' '{dns}' >> /etc/hosts"
        ))
        .unwrap();
        // The environment the chart's StatefulSet gives the server (POD_IP, HOSTNAME and
        // setNodeId), under OpenBao's names too.
        let ip = h.addr();
        let env = [
            ("API_ADDR", format!("https://{ip}:8200")),
            ("CLUSTER_ADDR", format!("https://{p}.vault-internal:8201")),
            ("RAFT_NODE_ID", p.clone()),
        ];
        let exports: String = env
            .iter()
            .map(|(k, v)| format!("VAULT_{k}={v} BAO_{k}={v} "))
            .collect();
        h.spawn(
            "vault",
            &format!(
                "exec env {exports}{} server -config=/vault/config/server.hcl",
                bao.display()
            ),
        )
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for p in &pods.pods {
        let addr = (lab.host(p).addr(), pods.port);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "{p} does not listen: {}",
                std::fs::read_to_string(lab.host(p).log_path("vault")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // The pods, as the StatefulSet's controller and scheduler would make them; the helm
    // stand-in creates them with the release.
    let objects = charts::chart_objects(&plan, dir.path());
    let pod_objects = pods
        .pods
        .iter()
        .map(|p| {
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": p, "namespace": pods.namespace},
                "spec": {"nodeName": p, "containers": [{"name": "vault", "image": "hashicorp/vault"}]},
                "status": {"phase": "Running", "podIP": lab.host(p).addr().to_string()},
            })
        })
        .collect();
    charts::add_release_objects(&objects, "vault", pod_objects);
    let (helm, _log) = charts::helm_wrapper(dir.path(), &objects);
    let api = charts::api_stand_in(dir.path());
    let args = [
        topo.to_str().unwrap(),
        "--kubeconfig",
        api.kubeconfig().to_str().unwrap(),
        "--plan",
        out.to_str().unwrap(),
        "--helm",
        helm.to_str().unwrap(),
    ];

    let t = Instant::now();
    let o = run("addons", &args);
    let first = String::from_utf8_lossy(&o.stdout).into_owned();
    println!("{first}\nfirst run: {:.1} s", t.elapsed().as_secs_f64());
    let logs = || -> String {
        pods.pods
            .iter()
            .map(|p| {
                format!(
                    "--- {p}\n{}",
                    std::fs::read_to_string(lab.host(p).log_path("vault")).unwrap_or_default()
                )
            })
            .collect()
    };
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        logs()
    );
    for what in [
        "initialised",
        "unsealed",
        "pki_int/roles/",
        "auth/kubernetes/role/",
    ] {
        assert!(first.contains(what), "{what}: {first}");
    }

    // What OpenBao says on every pod (asked on the pod, at 127.0.0.1 as its certificate
    // names it): initialised, unsealed, three raft voters.
    let init: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("secrets/vault/init.json")).unwrap(),
    )
    .unwrap();
    let token = init["root_token"].as_str().unwrap().to_owned();
    let cli = |p: &str, args: &str| -> Value {
        let o = lab
            .host(p)
            .exec_with_input(
                &format!(
                    "read -r BAO_TOKEN; export BAO_TOKEN BAO_ADDR=https://127.0.0.1:8200 \
                     BAO_CACERT={mount}/ca.crt; {} {args} -format=json",
                    bao.display()
                ),
                format!("{token}\n").as_bytes(),
            )
            .unwrap();
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{p}: bao {args}: {}", String::from_utf8_lossy(&o.stderr)))
    };
    for p in &pods.pods {
        let st = cli(p, "status");
        assert_eq!(st["initialized"], true, "{p}: {st}");
        assert_eq!(st["sealed"], false, "{p}: {st}");
    }
    let peers = cli(&pods.pods[0], "operator raft list-peers");
    let voters: Vec<&str> = peers["data"]["config"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["voter"] == true)
        .filter_map(|s| s["node_id"].as_str())
        .collect();
    assert_eq!(voters.len(), 3, "{peers}");

    // A re-run changes nothing.
    let o = run("addons", &args);
    let second = String::from_utf8_lossy(&o.stdout).into_owned();
    println!("{second}");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        second.contains(&format!("{} steps: 0 objects changed", plan.steps.len())),
        "a re-run changes nothing: {second}"
    );
    for key in init["unseal_keys"].as_array().unwrap() {
        let key = key.as_str().unwrap();
        assert!(
            !first.contains(key) && !second.contains(key),
            "an unseal key was printed"
        );
    }
    assert!(
        !first.contains(&token) && !second.contains(&token),
        "the root token was printed"
    );
}

#[test]
fn the_twin_refuses_in_cluster_vault_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let topo = in_cluster_topology(dir.path());
    let out = dir.path().join("out");
    let o = run(
        "up",
        &[
            topo.to_str().unwrap(),
            "--lab",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("in-cluster.yaml: vault.placement: in_cluster cannot run on the local twin"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}
