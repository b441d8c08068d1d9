//! The etcd backup job's commands run for real: the init container's `etcdctl snapshot save`
//! (exact flags as rendered) against a real TLS etcd, the verify container's
//! `etcdutl snapshot status` on what was written (and on a corrupt file, which must fail), then
//! the rotate container's shell script (as rendered) for the PKI archive, naming and retention.
//! Paths are mapped from the pod's view (host PKI dir, NFS mount) to a temporary directory, and
//! `$(NODE_NAME)` is expanded as the kubelet would.
//!
//! Needs `etcd`, `etcdctl`, `openssl`, `tar` with gzip and `/bin/sh` (installed by
//! scripts/install-test-deps); skips with a message when they are missing. No root needed.
//! Debian 12 ships etcd 3.4, which has no `etcdutl`: its `etcdctl snapshot status` (the same
//! subcommand, flags and checks that etcd 3.5 moved to `etcdutl`) stands in for it then.

mod fixture;
use fixture::example_input;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hakube_addons::etcd_backup::{PKI_DIR, cronjob};
use serde_json::Value;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A CA, an etcd server certificate for 127.0.0.1, and the client pair kubeadm names
/// `healthcheck-client`, in `pki`.
fn make_pki(pki: &Path) {
    std::fs::create_dir_all(pki).expect("mkdir");
    let o = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(pki));
    o(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=etcd-ca",
    ]);
    std::fs::write(
        pki.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("ext");
    std::fs::write(pki.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for (name, cn, ext) in [
        ("server", "etcd", "server.ext"),
        (
            "healthcheck-client",
            "kube-etcd-healthcheck-client",
            "client.ext",
        ),
    ] {
        o(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ]);
        o(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            ext,
        ]);
    }
}

struct Etcd(Child);
impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn etcdctl(endpoint: &str, pki: &Path) -> Command {
    let mut c = Command::new("etcdctl");
    c.env("ETCDCTL_API", "3").args([
        format!("--endpoints={endpoint}"),
        format!("--cacert={}", pki.join("ca.crt").display()),
        format!("--cert={}", pki.join("healthcheck-client.crt").display()),
        format!("--key={}", pki.join("healthcheck-client.key").display()),
    ]);
    c
}

fn start_etcd(dir: &Path, pki: &Path) -> (Etcd, String) {
    let client = format!("https://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("etcd.log")).expect("log");
    let child = Command::new("etcd")
        .args(["--name", "t", "--data-dir"])
        .arg(dir.join("data"))
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args([
            "--initial-cluster",
            &format!("t={peer}"),
            "--client-cert-auth",
        ])
        .arg(format!(
            "--trusted-ca-file={}",
            pki.join("ca.crt").display()
        ))
        .arg(format!("--cert-file={}", pki.join("server.crt").display()))
        .arg(format!("--key-file={}", pki.join("server.key").display()))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start etcd");
    let etcd = Etcd(child);
    // Readiness wait (not a timing assertion): up to ~30 s for the endpoint to answer.
    for _ in 0..300 {
        let ok = etcdctl(&client, pki)
            .args(["endpoint", "health"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return (etcd, client);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "etcd did not become healthy: {}",
        std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default()
    );
}

/// Map the pod's paths to the test's directories, and expand `$(NODE_NAME)`. `pki` stands for
/// the host's `/etc/kubernetes/pki` (etcd's PKI is its `etcd/` folder).
fn map(arg: &str, endpoint: &str, pki: &Path, backup: &Path) -> String {
    let scratch = backup.with_file_name("scratch");
    arg.replace("https://127.0.0.1:2379", endpoint)
        .replace("/scratch", &scratch.display().to_string())
        .replace(PKI_DIR, &pki.display().to_string())
        .replace("/backup", &backup.display().to_string())
        .replace("$(NODE_NAME)", "master-1")
}

fn snapshots(backup: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(backup)
        .expect("read backup dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    v.sort();
    v
}

#[test]
fn rendered_snapshot_and_rotation_work_against_real_etcd() {
    let missing: Vec<&str> = ["etcd", "etcdctl", "openssl", "tar", "gzip"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIP rendered_snapshot_and_rotation_work_against_real_etcd: {missing:?} not installed (scripts/install-test-deps installs them)"
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki: PathBuf = tmp.path().join("pki");
    let etcd_pki = pki.join("etcd");
    let backup: PathBuf = tmp.path().join("backup");
    std::fs::create_dir_all(&backup).expect("mkdir");
    make_pki(&etcd_pki);
    // The cluster CA kubeadm keeps beside etcd's PKI (what a restore needs besides the data).
    std::fs::write(pki.join("ca.key"), "cluster CA key\n").expect("ca.key");
    std::fs::write(pki.join("sa.key"), "service account key\n").expect("sa.key");
    let (_etcd, endpoint) = start_etcd(tmp.path(), &etcd_pki);
    run(etcdctl(&endpoint, &etcd_pki).args(["put", "/registry/hakube/probe", "in-the-snapshot"]));

    let mut input = example_input();
    let b = input.etcd_backup.as_mut().expect("example has backups");
    b.keep = 3;
    let job = cronjob(b);
    let pod = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"];

    // Older snapshots and PKI archives from earlier runs (and other masters).
    for day in 1..=5 {
        std::fs::write(
            backup.join(format!("etcd-snapshot-2026010{day}T000000Z-master-2.db")),
            b"old",
        )
        .expect("old");
        std::fs::write(
            backup.join(format!("etcd-pki-2026010{day}T000000Z-master-2.tar.gz")),
            b"old",
        )
        .expect("old");
    }
    assert_eq!(pod["initContainers"].as_array().map(Vec::len), Some(2));

    let init: Vec<String> = pod["initContainers"][0]["command"]
        .as_array()
        .expect("init command")
        .iter()
        .filter_map(Value::as_str)
        .map(|a| map(a, &endpoint, &pki, &backup))
        .collect();
    assert_eq!(init[0], "etcdctl");
    run(Command::new(&init[0])
        .args(&init[1..])
        .env("ETCDCTL_API", "3"));
    assert!(
        backup.join(".partial-master-1.db").exists(),
        "{:?}",
        snapshots(&backup)
    );

    // The verify container, as rendered: it accepts the snapshot just written...
    let mut verify: Vec<String> = pod["initContainers"][1]["command"]
        .as_array()
        .expect("verify command")
        .iter()
        .filter_map(Value::as_str)
        .map(|a| map(a, &endpoint, &pki, &backup))
        .collect();
    assert_eq!(verify[..3], ["etcdutl", "snapshot", "restore"]);
    if !have("etcdutl") {
        verify[0] = "etcdctl".into();
    }
    run(Command::new(&verify[0])
        .args(&verify[1..])
        .env("ETCDCTL_API", "3"));
    let scratch = backup.with_file_name("scratch");
    assert!(
        scratch.join("restore-check/member").is_dir(),
        "the trial restore ran"
    );
    // (each job's pod starts with an empty scratch directory)
    std::fs::remove_dir_all(&scratch).expect("empty scratch");
    // ...and fails the job on a truncated one (so no rotation replaces a good backup).
    let good = std::fs::read(backup.join(".partial-master-1.db")).expect("snapshot");
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(broken.join(".partial-master-1.db"), &good[..good.len() / 3]).expect("cut");
    let mut bad = verify.clone();
    for a in &mut bad {
        *a = a.replace(&backup.display().to_string(), &broken.display().to_string());
    }
    let out = Command::new(&bad[0])
        .args(&bad[1..])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("spawn verify");
    assert!(
        !out.status.success(),
        "a truncated snapshot passed verification: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        !why.contains("exist"),
        "it failed on the truncation, not on a leftover directory: {why}"
    );

    let rotate = pod["containers"][0]["command"]
        .as_array()
        .expect("rotate command");
    assert_eq!(rotate[0], "/bin/sh");
    let script = map(
        rotate[2].as_str().expect("script"),
        &endpoint,
        &pki,
        &backup,
    );
    run(Command::new("/bin/sh")
        .args(["-c", &script])
        .env("NODE_NAME", "master-1"));

    let all = snapshots(&backup);
    assert!(!all.iter().any(|f| f.starts_with(".partial")), "{all:?}");
    let (archives, left): (Vec<String>, Vec<String>) =
        all.into_iter().partition(|f| f.starts_with("etcd-pki-"));
    assert_eq!(left.len(), 3, "keep = 3: {left:?}");
    assert_eq!(
        &left[..2],
        [
            "etcd-snapshot-20260104T000000Z-master-2.db",
            "etcd-snapshot-20260105T000000Z-master-2.db"
        ]
    );
    assert_eq!(archives.len(), 3, "keep = 3: {archives:?}");
    let archive = &archives[2];
    assert!(archive.ends_with("-master-1.tar.gz"), "{archive}");
    // The PKI archive holds the cluster CA key and etcd's certificates.
    let listing = run(Command::new("tar").arg("-tzf").arg(backup.join(archive)));
    for want in [
        "./ca.key",
        "./sa.key",
        "./etcd/ca.crt",
        "./etcd/healthcheck-client.key",
    ] {
        assert!(
            listing.lines().any(|l| l == want),
            "{want} not in {listing}"
        );
    }
    let newest = &left[2];
    assert!(
        newest.starts_with("etcd-snapshot-") && newest.ends_with("-master-1.db"),
        "{newest}"
    );

    // The kept snapshot is a real etcd snapshot holding our key.
    let status = run(Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(backup.join(newest)));
    let status: Value = serde_json::from_str(status.trim()).expect("status JSON");
    assert!(status["totalKey"].as_u64().unwrap_or(0) >= 1, "{status}");
}
