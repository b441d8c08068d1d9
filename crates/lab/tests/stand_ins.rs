//! The Kubernetes API stand-in and the `helm` stand-in together: a release is recorded as
//! helm's own Secrets with increasing revisions, `helm list`/`get values`/`status` read them
//! back, calls without `--atomic`/`--wait`/`--version` and bad values files are refused, and
//! the API keeps its objects across a restart. Needs python3 with PyYAML and openssl.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use hakube_lab::stand_ins::{ApiServer, helm};

fn run_helm(kubeconfig: &Path, log: &Path, args: &[&str]) -> Output {
    Command::new(helm())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HAKUBE_HELM_LOG", log)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn helm_records_releases_and_the_api_keeps_them_across_a_restart() {
    if Command::new("python3")
        .args(["-c", "import yaml"])
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("SKIP: python3 with PyYAML is needed (scripts/install-test-deps)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("hakube-stand-ins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let mut api = ApiServer::start(&dir.join("api"), addr).unwrap();
    let kc = api.kubeconfig().to_owned();
    let log = dir.join("helm.log");
    let values = dir.join("values.yaml");
    std::fs::write(&values, "replicas: 2\nimage: { tag: \"1.0\" }\n").unwrap();
    let v = values.to_str().unwrap();
    let install = [
        "upgrade",
        "--install",
        "web",
        "oci://example.org/charts/web",
        "--version",
        "1.2.3",
        "--namespace",
        "apps",
        "--create-namespace",
        "-f",
        v,
        "--atomic",
        "--wait",
    ];

    let o = run_helm(&kc, &log, &install);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("REVISION: 1"), "{}", text(&o));
    let o = run_helm(&kc, &log, &install);
    assert!(text(&o).contains("REVISION: 2"), "{}", text(&o));

    let o = run_helm(
        &kc,
        &log,
        &["list", "--namespace", "apps", "--output", "json"],
    );
    let list = text(&o);
    for want in [
        "\"name\": \"web\"",
        "\"revision\": \"2\"",
        "\"status\": \"deployed\"",
        "\"chart\": \"web-1.2.3\"",
    ] {
        assert!(list.contains(want), "{want} in {list}");
    }
    let o = run_helm(
        &kc,
        &log,
        &[
            "get",
            "values",
            "web",
            "--namespace",
            "apps",
            "--output",
            "json",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        r#"{"replicas": 2, "image": {"tag": "1.0"}}"#
    );
    // Helm's own record: one Secret per revision, the older one superseded.
    let requests = api.requests().join("\n");
    assert!(
        requests.contains("POST /api/v1/namespaces/apps/secrets")
            && requests.contains("PUT /api/v1/namespaces/apps/secrets/sh.helm.release.v1.web.v1"),
        "{requests}"
    );

    // What hakube never does, refused.
    let without =
        |flag: &str| -> Vec<&str> { install.iter().copied().filter(|a| *a != flag).collect() };
    for flag in ["--atomic", "--wait", "--install"] {
        let o = run_helm(&kc, &log, &without(flag));
        assert!(!o.status.success(), "without {flag}: {}", text(&o));
        assert!(text(&o).contains(flag), "{}", text(&o));
    }
    let mut no_version = install.to_vec();
    no_version.drain(4..6);
    let o = run_helm(&kc, &log, &no_version);
    assert!(
        !o.status.success() && text(&o).contains("--version"),
        "{}",
        text(&o)
    );
    std::fs::write(dir.join("bad.yaml"), "a: [1, 2\n").unwrap();
    let bad = dir.join("bad.yaml");
    let mut bad_values = install.to_vec();
    bad_values[10] = bad.to_str().unwrap();
    let o = run_helm(&kc, &log, &bad_values);
    assert!(
        !o.status.success() && text(&o).contains("failed to parse"),
        "{}",
        text(&o)
    );
    let mut missing = install.to_vec();
    missing[10] = "/nonexistent/values.yaml";
    let o = run_helm(&kc, &log, &missing);
    assert!(
        !o.status.success() && text(&o).contains("no such file"),
        "{}",
        text(&o)
    );

    // A restart keeps every object.
    api.stop();
    let api = ApiServer::start(&dir.join("api"), addr).unwrap();
    let o = run_helm(&kc, &log, &["status", "web", "--namespace", "apps"]);
    assert!(
        text(&o).contains("STATUS: deployed") && text(&o).contains("REVISION: 2"),
        "{}",
        text(&o)
    );
    // Every call was recorded.
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 11, "{calls}");
    drop(api);
    let _ = std::fs::remove_dir_all(&dir);
}
