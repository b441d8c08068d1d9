//! The GitOps tree's plain-manifest kustomizations built by real Kustomize (`kubectl
//! kustomize`, Kustomize v5): the overlays set the namespace, patch the IngressRoute host and
//! carry the default-deny policies. Folders with `helmCharts` need `helm` and are not built here.
//! Skips with a message when kubectl is not installed.

mod fixture;
use fixture::example_input;
use std::process::Command;

use hakube_addons::render;
use serde_json::Value;

fn kustomize(dir: &std::path::Path) -> Option<Vec<Value>> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    Some(serde_saphyr::from_multiple::<Value>(&text).expect("YAML"))
}

#[test]
fn overlays_build_with_real_kustomize() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("SKIP overlays_build_with_real_kustomize: kubectl not installed");
        return;
    }
    let out = render(&example_input()).expect("renders");
    let tmp = tempfile::tempdir().expect("tempdir");
    for f in &out.cluster_files {
        let p = tmp.path().join(&f.path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, &f.contents).expect("write");
    }
    for env in ["prod", "nonprod"] {
        let docs = kustomize(&tmp.path().join("apps/overlays").join(env)).expect("kubectl runs");
        let mut kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        kinds.sort_unstable();
        assert_eq!(
            kinds,
            [
                "Deployment",
                "IngressRoute",
                "Namespace",
                "NetworkPolicy",
                "NetworkPolicy",
                "NetworkPolicy",
                "NetworkPolicy",
                "Service"
            ],
            "{env}"
        );
        for d in &docs {
            let ns = if d["kind"] == "Namespace" {
                &d["metadata"]["name"]
            } else {
                &d["metadata"]["namespace"]
            };
            assert_eq!(
                ns, env,
                "{env}: {} in the environment's namespace",
                d["kind"]
            );
            assert_eq!(
                d["metadata"]["labels"]["hakube.io/environment"], env,
                "{env}: {} labelled",
                d["kind"]
            );
        }
        let route = docs
            .iter()
            .find(|d| d["kind"] == "IngressRoute")
            .expect("route");
        assert_eq!(
            route["spec"]["routes"][0]["match"],
            format!("Host(`whoami-{env}.apps.example.org`)")
        );
    }
    let docs = kustomize(&tmp.path().join("etcd-backup")).expect("kubectl runs");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["kind"], "CronJob");
}
