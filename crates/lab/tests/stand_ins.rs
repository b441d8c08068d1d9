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

/// `curl -sk` against a stand-in with its token: (HTTP status, body).
fn call(
    files: &hakube_lab::stand_ins::ApiServerFiles,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let token = std::fs::read_to_string(&files.token_file).unwrap();
    let mut c = Command::new("curl");
    c.args(["-sk", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .arg(format!("https://{}{path}", files.addr));
    if let Some(b) = body {
        c.args([
            "-H",
            "Content-Type: application/apply-patch+yaml",
            "--data-binary",
            b,
        ]);
    }
    let out = String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn api_servers_sharing_one_etcd_see_each_others_objects() {
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("etcd") || !have("etcdctl") || !have("curl") {
        eprintln!("SKIP: etcd, etcdctl and curl are needed (scripts/install-test-deps)");
        return;
    }
    let free = || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
    };
    let dir = std::env::temp_dir().join(format!("hakube-stand-ins-etcd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (client, peer) = (free().port(), free().port());
    let etcd_url = format!("http://127.0.0.1:{client}");
    let mut etcd = Command::new("etcd")
        .arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={etcd_url}"))
        .arg(format!("--advertise-client-urls={etcd_url}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut servers = Vec::new();
    let mut files = Vec::new();
    for i in 0..2 {
        let f = hakube_lab::stand_ins::ApiServerFiles::create(&dir.join(format!("api{i}")), free())
            .unwrap();
        // kube-apiserver's own flag names, as a static Pod manifest passes them.
        let child = Command::new("python3")
            .arg(hakube_lab::stand_ins::kube_apiserver())
            .arg(format!("--advertise-address={}", f.addr.ip()))
            .arg(format!("--secure-port={}", f.addr.port()))
            .arg(format!("--tls-cert-file={}", f.cert.display()))
            .arg(format!("--tls-private-key-file={}", f.key.display()))
            .arg(format!("--token-auth-file={}", f.token_file.display()))
            .arg(format!("--etcd-servers={etcd_url}"))
            .arg("--allow-privileged=true")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        servers.push(child);
        files.push(f);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while files
        .iter()
        .any(|f| call(f, "GET", "/readyz", None).0 != 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the stand-ins never became ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"shared","namespace":"default"},"data":{"k":"v"}}"#;
    let path = "/api/v1/namespaces/default/configmaps/shared?fieldManager=test";
    let (code, body) = call(&files[0], "PATCH", path, Some(cm));
    assert_eq!(code, 201, "{body}");
    // The other server reads it, from etcd, with the key's revision as resourceVersion.
    let (code, body) = call(
        &files[1],
        "GET",
        "/api/v1/namespaces/default/configmaps/shared",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let obj: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(obj["data"]["k"], "v");
    let rv = obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd_url,
            "get",
            "--prefix",
            "/registry/",
            "-w",
            "json",
        ])
        .output()
        .unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&keys.stdout).unwrap();
    let kv = keys["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|kv| kv["key"].as_str() == Some("L3JlZ2lzdHJ5L2NvbmZpZ21hcHMvZGVmYXVsdC9zaGFyZWQ="))
        .expect("/registry/configmaps/default/shared in etcd");
    assert_eq!(kv["mod_revision"].to_string(), rv);
    // A list from either server; a delete on one is seen by the other.
    let (_, list) = call(&files[1], "GET", "/api/v1/configmaps", None);
    assert!(list.contains("\"shared\""), "{list}");
    let (code, _) = call(
        &files[1],
        "DELETE",
        "/api/v1/namespaces/default/configmaps/shared",
        None,
    );
    assert_eq!(code, 200);
    let (code, _) = call(
        &files[0],
        "GET",
        "/api/v1/namespaces/default/configmaps/shared",
        None,
    );
    assert_eq!(code, 404);
    // Without etcd the servers are not ready.
    etcd.kill().unwrap();
    etcd.wait().unwrap();
    let (code, body) = call(&files[0], "GET", "/readyz", None);
    assert_eq!(code, 503, "{body}");
    for mut s in servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
