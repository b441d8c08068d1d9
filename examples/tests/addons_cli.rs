//! The `addons` example on the seed's written plan, against hakube-lab's Kubernetes API
//! stand-in and `helm` stand-in, with a real one-node OpenBao standing in for the Vault VMs
//! (its CA and keys where the configure stage keeps them): the first run performs every step,
//! a second run changes nothing; a missing plan and an unknown component are clear errors.
//! Prints the seed's step and object counts and where the time goes (`--nocapture`).

#![allow(clippy::unwrap_used)]

#[path = "../../crates/addons/tests/support/mod.rs"]
mod charts;
#[path = "../../crates/vault/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hakube_addons::InstallStep;
use hakube_addons::run::Plan;
use hakube_lab::stand_ins::ApiServer;

fn addons(args: &[&str]) -> std::process::Output {
    Command::new(support::example_binary("addons"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn plan_seed(out: &Path) {
    let o = Command::new(support::example_binary("plan"))
        .args(["--out", out.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn no_plan_and_unknown_components_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, "").unwrap();
    let o = addons(&[
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--plan",
        dir.path().join("nothing").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("holds no plan") && err.contains("--example plan"),
        "{err}"
    );
    let o = addons(&[
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--only",
        "traefik,grafana",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("unknown component `grafana`") && err.contains("monitoring"),
        "{err}"
    );
}

#[test]
fn the_seed_installs_then_a_rerun_changes_nothing() {
    // The workspace's .venv (common::bao_bin looks two levels up from the crate).
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/bao");
    let Some(bao) = venv.exists().then_some(venv).or_else(common::bao_bin) else {
        eprintln!("SKIP: no `bao` binary (scripts/install-test-deps) for the Vault step");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    plan_seed(&out);
    let mut plan = Plan::read(&out).unwrap();

    // OpenBao where the VIP would front the Vault VMs: bootstrapped, its CA and keys kept
    // as the configure stage keeps them; the plan's Vault URL points at it.
    let vault = common::LocalCluster::start(&bao, "ex", 1);
    vault
        .tls
        .write_dir(&plan.secrets_dir.join("vault/tls"))
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = hakube_vault::client::Client::for_nodes(
            &vault.spec.nodes,
            &vault.tls.ca_cert_pem,
            Duration::from_secs(10),
        )
        .unwrap();
        let store = hakube_vault::bootstrap::FileKeyStore::new(
            plan.secrets_dir.join(hakube_addons::vault_secrets::INIT),
        );
        hakube_vault::bootstrap::bootstrap(
            &client,
            &store,
            &hakube_vault::bootstrap::BootstrapSpec::new(None),
        )
        .await
        .unwrap();
    });
    for s in &mut plan.steps {
        if let InstallStep::VaultKubernetesAuth(v) = s {
            v.vault_url = vault.spec.nodes[0].api_url();
        }
    }
    std::fs::write(
        out.join(hakube_addons::run::STEPS_FILE),
        serde_json::to_string_pretty(&plan.steps).unwrap(),
    )
    .unwrap();

    let objects = charts::chart_objects(&plan, dir.path());
    let (helm, _log) = charts::helm_wrapper(dir.path(), &objects);
    let api = charts::api_stand_in(dir.path());
    let args = [
        "--kubeconfig",
        api.kubeconfig().to_str().unwrap(),
        "--plan",
        out.to_str().unwrap(),
        "--helm",
        helm.to_str().unwrap(),
    ];
    let api_ms = |api: &ApiServer| -> f64 {
        api.requests()
            .iter()
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };

    let o = addons(&args);
    let first = String::from_utf8_lossy(&o.stdout).into_owned();
    println!("{first}");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let steps = plan.steps.len();
    assert!(
        first.contains(&format!("{steps} steps: ")),
        "every step ran: {first}"
    );
    let api_first = api_ms(&api);
    println!(
        "seed: {steps} steps, {} objects stored by the API stand-in, its own request time {:.3} s",
        std::fs::read_to_string(api.files().state_dir.join("state.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["objects"].as_object().map(serde_json::Map::len))
            .unwrap_or(0),
        api_first / 1000.0
    );

    let o = addons(&args);
    let second = String::from_utf8_lossy(&o.stdout).into_owned();
    println!("{second}");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        second.contains(&format!("{steps} steps: 0 objects changed")),
        "a re-run changes nothing: {second}"
    );
    println!(
        "API stand-in's own request time on the re-run: {:.3} s",
        (api_ms(&api) - api_first) / 1000.0
    );
    // The Grafana password the plan generated is what the cluster got, and never printed.
    let pw = std::fs::read_to_string(out.join("secrets/monitoring/grafana-admin/admin-password"))
        .unwrap();
    assert!(!first.contains(&pw) && !second.contains(&pw));
}
