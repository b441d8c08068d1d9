//! `up` end to end on the local twin of the seed cluster (root): the twin built by the test
//! (fakepve whose VM starts power lab hosts, real sshd/HAProxy/keepalived/NFS/OpenBao/etcd,
//! stand-ins for kubeadm, kubectl, helm and the Kubernetes API), then the `up` binary run
//! against it as against a real Proxmox VE: from nothing to the final report; a second run
//! resumes nothing and changes nothing in every stage; bad input (unreachable Proxmox, wrong
//! password, a topology error) is named and changes nothing. Prints the wall times (no timing
//! assertions).
//!
//! Also: `up` killed (SIGKILL) during provision, configure and add-ons and re-run, with a
//! worker that never answers SSH in between (named, the others join), converging on one VM
//! each and one `kubeadm init`; and `up --lab --keep`, a run continuing on the kept twin,
//! `up --lab-down`. Twins of the seed share its subnet: they wait for each other (the twin's
//! subnet lock). After the killed runs, the DR drill: data in an NFS export and in Vault,
//! the backups the timers make, the data destroyed, `restore`, the data compared.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hakube_lab::require_root;

fn up(args: &[&str], env: &[(&str, &str)]) -> (Output, f64) {
    let t0 = Instant::now();
    let mut cmd = Command::new(support::example_binary("up"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out, t0.elapsed().as_secs_f64())
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The CHANGES column of the final report, per stage.
fn changes(report: &str) -> Vec<(String, usize)> {
    let start = report.rfind("STAGE").unwrap();
    report[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("total"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].parse().unwrap())
        })
        .collect()
}

/// The seed's twin, built by the test, and the `up` command line against it.
struct Seed {
    cluster: hakube_topology::Cluster,
    twin: hakube_lab::twin::Twin,
    twin_secs: f64,
    _dir: tempfile::TempDir,
    out: PathBuf,
    /// `up`'s arguments for the twin's Proxmox and SSH, with `--pve-url` last but one.
    args: Vec<String>,
}

impl Seed {
    fn new() -> Self {
        let cluster = hakube_examples::load_topology(&hakube_examples::default_topology()).unwrap();
        let t0 = Instant::now();
        let twin = hakube_examples::twin::start(&cluster).unwrap();
        let twin_secs = t0.elapsed().as_secs_f64();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let plan = hakube_plan::render(&cluster, &hakube_plan::PlanSecrets::generate()).unwrap();
        // The twin's helm stand-in needs the plan's steps; write them once to derive its objects.
        plan.write_to(&dir.path().join("helm-plan")).unwrap();
        let helm =
            hakube_examples::twin::helm(&dir.path().join("helm-plan"), &dir.path().join("helm"))
                .unwrap();
        let args = [
            "--out",
            out.to_str().unwrap(),
            "--fingerprint",
            twin.pve_fingerprint(),
            "--ssh-key",
            twin.lab().ssh_private_key().to_str().unwrap(),
            "--user",
            "root",
            "--known-hosts",
            twin.lab().known_hosts_file().to_str().unwrap(),
            "--helm",
            helm.to_str().unwrap(),
            "--pve-url",
            twin.pve_url(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        Self {
            cluster,
            twin,
            twin_secs,
            _dir: dir,
            out,
            args,
        }
    }

    /// The arguments with another Proxmox URL.
    fn with_url(&self, url: &str) -> Vec<String> {
        let mut a = self.args.clone();
        *a.last_mut().unwrap() = url.to_owned();
        a
    }

    fn env(&self) -> [(&'static str, &str); 2] {
        [
            ("PVE_USER", hakube_lab::twin::TWIN_USER),
            ("PVE_PASSWORD", self.twin.pve_password()),
        ]
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn seed_on_the_twin_then_rerun_and_bad_input() {
    if !require_root("seed_on_the_twin_then_rerun_and_bad_input") {
        return;
    }
    let seed = Seed::new();
    let (twin, out, twin_secs) = (&seed.twin, &seed.out, seed.twin_secs);
    let base_v = seed.args.clone();
    let base = strs(&base_v);
    let unreachable_v = seed.with_url("https://127.0.0.1:9");
    let unreachable = strs(&unreachable_v);
    let env = seed.env();

    // Bad input first: nothing exists yet, and nothing may be created.
    let (o, _) = up(&unreachable, &env);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("stage provision"),
        "the failing stage is named: {t}"
    );
    let wrong = [
        ("PVE_USER", hakube_lab::twin::TWIN_USER),
        ("PVE_PASSWORD", "wrong"),
    ];
    let (o, _) = up(&base, &wrong);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("stage provision"), "{t}");
    assert!(
        !t.contains(twin.pve_password()),
        "no password in the output"
    );
    // A topology error: named with its place, nothing written.
    let bad = seed._dir.path().join("bad.yaml");
    let text_ok = std::fs::read_to_string(hakube_examples::default_topology()).unwrap();
    let broken = text_ok.replacen("count: 3 # masters", "count: 2 # masters", 1);
    assert_ne!(broken, text_ok);
    std::fs::write(&bad, broken).unwrap();
    let bad_out = seed._dir.path().join("bad-out");
    let mut bad_args = seed.args.clone();
    bad_args[1] = bad_out.to_str().unwrap().to_owned();
    bad_args.insert(0, bad.to_str().unwrap().to_owned());
    let (o, _) = up(&strs(&bad_args), &env);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("bad.yaml:") && t.contains("control_plane.count"),
        "{t}"
    );
    assert!(!bad_out.exists(), "a topology error writes nothing");

    // The state says plan finished, provision did not: the next run resumes there.
    let state = std::fs::read_to_string(out.join("state/up.json")).unwrap();
    assert!(
        state.contains("plan") && !state.contains("provision"),
        "{state}"
    );

    // Run 1: from nothing to the report (resuming after plan).
    let (o, first) = up(&base, &env);
    let t1 = text(&o);
    assert!(o.status.success(), "{t1}");
    assert!(t1.contains("resuming at provision"), "{t1}");
    assert!(
        t1.contains("is up") && t1.contains("https://10.20.0.10:6443"),
        "{t1}"
    );
    let grafana = t1.lines().find(|l| l.starts_with("Grafana ")).unwrap();
    let password = grafana.rsplit("password in ").next().unwrap();
    assert!(
        Path::new(password.trim_end_matches(')')).is_file(),
        "{grafana}"
    );
    let c1 = changes(&t1);
    assert!(c1.iter().all(|(s, n)| s == "verify" || *n > 0), "{c1:?}");
    assert!(
        Path::new(&out)
            .join("secrets/kubernetes/admin.conf")
            .is_file()
    );
    assert!(!t1.contains(twin.pve_password()));

    // Run 2: every stage again, nothing changes.
    let (o, second) = up(&base, &env);
    let t2 = text(&o);
    assert!(o.status.success(), "{t2}");
    let c2 = changes(&t2);
    assert_eq!(c2.len(), 6, "{t2}");
    assert!(
        c2.iter().all(|(_, n)| *n == 0),
        "a re-run changes nothing: {c2:?}\n{t2}"
    );
    let (o, third) = up(&base, &env);
    let t3 = text(&o);
    assert!(o.status.success(), "{t3}");
    let c3 = changes(&t3);
    assert_eq!(c3.len(), 6, "{t3}");
    assert!(
        c3.iter().all(|(_, n)| *n == 0),
        "a third run changes nothing: {c3:?}\n{t3}"
    );

    // On a terminal (a pty from script(1)): the progress view draws bars (cursor movements)
    // and still ends with the report.
    let cmd = std::iter::once(support::example_binary("up").to_str().unwrap().to_owned())
        .chain(base.iter().map(|a| (*a).to_owned()))
        .chain(["--dry-run".to_owned()])
        .collect::<Vec<_>>()
        .join(" ");
    let mut tty = Command::new("script");
    tty.args(["-qec", &cmd, "/dev/null"]);
    for (k, v) in env {
        tty.env(k, v);
    }
    let o = tty.output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("\u{1b}["), "no bars drawn on a terminal: {t}");
    assert!(t.contains("dry run: nothing changed"), "{t}");
    println!(
        "twin built in {twin_secs:.1}s; up from zero {first:.1}s; re-runs {second:.1}s, {third:.1}s\n{}",
        &t1[t1.rfind("STAGE").unwrap()..]
    );
}

/// Runs `up` and kills it (SIGKILL, as a power cut would) `after` the first output line that
/// contains `marker`; returns what it printed until then.
fn up_killed(args: &[&str], env: &[(&str, &str)], marker: &str, after: Duration) -> String {
    let mut cmd = Command::new(support::example_binary("up"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut s = seen.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while !seen.lock().unwrap().contains(marker) {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "up never reached {marker:?}: {}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(after);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let printed = seen.lock().unwrap().clone();
    assert!(
        status.code().is_none(),
        "up ended by itself before the kill: {printed}"
    );
    printed
}

/// The VMs fakepve holds, by name (templates left out).
fn pve_vms(seed: &Seed) -> Vec<String> {
    let pve = hakube_examples::stage::provision::PveArgs {
        pve_url: Some(seed.twin.pve_url().to_owned()),
        pve_user: Some(hakube_lab::twin::TWIN_USER.to_owned()),
        password: Some(seed.twin.pve_password().to_owned()),
        fingerprint: Some(seed.twin.pve_fingerprint().to_owned()),
        ..Default::default()
    };
    let client = pve.client(&seed.cluster).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut names: Vec<String> = rt
        .block_on(client.cluster_resources(Some(hakube_proxmox_api::ResourceType::Vm)))
        .unwrap()
        .into_iter()
        .filter(|r| r.template != Some(true))
        .filter_map(|r| r.name)
        .collect();
    names.sort();
    names
}

/// `up` killed during provision, configure and addons, re-run each time; a worker that never
/// answers SSH named while the others join; and the run after that converges: every VM once,
/// every node registered, `kubeadm init` run once.
#[test]
fn killed_at_three_points_and_an_unreachable_worker() {
    if !require_root("killed_at_three_points_and_an_unreachable_worker") {
        return;
    }
    let seed = Seed::new();
    let args_v = seed.args.clone();
    let args = strs(&args_v);
    let env = seed.env();

    let t = up_killed(&args, &env, "== provision", Duration::from_millis(400));
    assert!(!t.contains("== provision done"), "{t}");
    let t = up_killed(&args, &env, "== configure", Duration::from_secs(4));
    assert!(t.contains("resuming at provision"), "{t}");
    assert!(!t.contains("== configure done"), "{t}");

    // A worker whose VM runs but never answers SSH (its cable pulled: nothing answers at its
    // address; netem's 100% loss would be closer, but this kernel may lack sch_netem).
    let worker = seed
        .cluster
        .vms
        .iter()
        .rfind(|v| v.role == hakube_topology::RoleKind::Worker)
        .unwrap()
        .name
        .clone();
    seed.twin.lab().host(&worker).link_down().unwrap();
    let (o, secs) = up(&args, &env);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("resuming at configure"), "{t}");
    assert!(t.contains("stage bootstrap"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with("error:") && l.contains(&worker) && l.contains("preparation")),
        "the worker is named with its step: {t}"
    );
    let others = seed
        .cluster
        .vms
        .iter()
        .filter(|v| v.role == hakube_topology::RoleKind::Worker && v.name != worker);
    for w in others {
        assert!(
            t.lines()
                .any(|l| l.contains(&w.name) && l.contains("join") && l.contains("done")),
            "{} joined while {worker} failed: {t}",
            w.name
        );
    }
    println!("run with {worker} unreachable: {secs:.1}s");
    seed.twin.lab().host(&worker).link_up().unwrap();

    let t = up_killed(&args, &env, "== addons", Duration::from_secs(1));
    assert!(t.contains("resuming at bootstrap"), "{t}");
    assert!(t.contains("== bootstrap done"), "{t}");
    assert!(!t.contains("== addons done"), "{t}");

    let (o, secs) = up(&args, &env);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("resuming at addons"), "{t}");
    assert!(t.contains("is up"), "{t}");
    println!("the last run, from addons: {secs:.1}s");

    // Every VM once.
    let mut want: Vec<String> = seed.cluster.vms.iter().map(|v| v.name.clone()).collect();
    want.sort();
    assert_eq!(pve_vms(&seed), want);
    // One kubeadm init: one cluster CA on every master, a 3-member etcd.
    let masters: Vec<&hakube_lab::Host> = seed
        .cluster
        .vms
        .iter()
        .filter(|v| v.role == hakube_topology::RoleKind::ControlPlane)
        .map(|v| seed.twin.lab().host(&v.name))
        .collect();
    let ca = masters[0]
        .read_to_string("/etc/kubernetes/pki/ca.crt")
        .unwrap();
    for m in &masters {
        assert_eq!(m.read_to_string("/etc/kubernetes/pki/ca.crt").unwrap(), ca);
    }
    let members = masters[0]
        .run(
            "etcdctl --endpoints https://127.0.0.1:2379 --cacert /etc/kubernetes/pki/etcd/ca.crt \
             --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt \
             --key /etc/kubernetes/pki/etcd/healthcheck-client.key member list",
        )
        .unwrap();
    assert_eq!(members.lines().count(), 3, "{members}");

    dr_drill(&seed);
}

/// `curl` against Vault through the VIP with the kept root token (never printed).
fn vault(seed: &Seed, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(seed.out.join("secrets/vault/init.json")).unwrap())
            .unwrap();
    let token = kept["root_token"].as_str().unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .arg("--cacert")
        .arg(seed.out.join("secrets/vault/tls/ca.crt"));
    // The token header comes from a curl config on stdin, so it never shows in `ps`.
    cmd.args(["-K", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", b]);
    }
    cmd.arg(format!(
        "https://{}:8200/v1/{path}",
        seed.cluster.topology.network.vip
    ));
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("header = \"X-Vault-Token: {token}\"\n").as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// The ConfigMaps API in `default`, through the VIP with the admin kubeconfig.
async fn config_maps(seed: &Seed) -> kube::Api<k8s_openapi::api::core::v1::ConfigMap> {
    let kubeconfig = seed.out.join("secrets/kubernetes/admin.conf");
    kube::Api::namespaced(
        hakube_examples::kube_client(&kubeconfig).await.unwrap(),
        "default",
    )
}

/// The DR drill on the twin: data written to etcd (a ConfigMap through the VIP), an NFS export
/// and Vault; the backups the cluster makes (the etcd CronJob's pod run as the kubelet would,
/// the timers' services); the data destroyed; the `restore` binary (every part); the data
/// compared.
fn dr_drill(seed: &Seed) {
    let lab = seed.twin.lab();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kubeconfig = seed.out.join("secrets/kubernetes/admin.conf");
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "drill", "namespace": "default" },
        "data": { "written": "before the backup" },
    }))
    .unwrap();
    rt.block_on(async {
        let cms = config_maps(seed).await;
        cms.create(&kube::api::PostParams::default(), &cm)
            .await
            .unwrap();
        hakube_examples::twin::run_etcd_backup(&seed.twin, &kubeconfig, "master-1")
            .await
            .unwrap();
        cms.delete("drill", &kube::api::DeleteParams::default())
            .await
            .unwrap();
        assert!(cms.get_opt("drill").await.unwrap().is_none());
    });
    let nfs = lab.host("nfs-1");
    let file = "/srv/nfs/k8s-prod/drill/data.txt";
    let data = format!("written before the backup at {:?}\n", Instant::now());
    nfs.write_file(file, &data, 0o644).unwrap();
    let role = r#"{"allowed_domains":"drill.example","allow_subdomains":true,"max_ttl":"1h"}"#;
    let (code, body) = vault(seed, "POST", "pki_int/roles/drill", Some(role));
    assert!(code / 100 == 2, "{code} {body}");
    let (_, root_before) = vault(seed, "GET", "pki/ca/pem", None);

    // The backups, as the timers run them.
    nfs.run("systemctl start hakube-nfs-backup.service")
        .unwrap();
    lab.host("vault-2")
        .run("systemctl start openbao-snapshot.service")
        .unwrap();

    // Destroyed.
    nfs.run(&format!("rm -f {file}")).unwrap();
    let (code, _) = vault(seed, "DELETE", "pki_int/roles/drill", None);
    assert!(code / 100 == 2);
    assert_eq!(vault(seed, "GET", "pki_int/roles/drill", None).0, 404);

    let t0 = Instant::now();
    let mut cmd = Command::new(support::example_binary("restore"));
    cmd.args(["--out", seed.out.to_str().unwrap()])
        .args(["--ssh-key", lab.ssh_private_key().to_str().unwrap()])
        .args(["--user", "root"])
        .args(["--known-hosts", lab.known_hosts_file().to_str().unwrap()])
        .arg("--yes-replace-data");
    let o = cmd.output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let secs = t0.elapsed().as_secs_f64();

    // Compared.
    let back = rt.block_on(async { config_maps(seed).await.get_opt("drill").await.unwrap() });
    assert_eq!(
        back.and_then(|c| c.data)
            .and_then(|d| d.get("written").cloned()),
        Some("before the backup".to_owned())
    );
    assert_eq!(nfs.read_to_string(file).unwrap(), data);
    let (code, body) = vault(seed, "GET", "pki_int/roles/drill", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("drill.example"), "{body}");
    assert_eq!(vault(seed, "GET", "pki/ca/pem", None).1, root_before);
    let kept = std::fs::read_to_string(seed.out.join("secrets/vault/init.json")).unwrap();
    let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
    assert!(!t.contains(kept["root_token"].as_str().unwrap()));
    println!("DR drill on the twin: restore of etcd, NFS data and Vault {secs:.1}s\n{t}");
}

/// `up --lab --keep` leaves the twin running (and says how to reach it), the next
/// `up --lab` continues on it, `up --lab-down` removes it.
#[test]
fn lab_keep_then_continue_then_down() {
    if !require_root("lab_keep_then_continue_then_down") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    // Whatever fails below, the kept twin goes (it would hold the seed's subnet).
    struct Down(PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = up(&["--lab-down", "--out", self.0.to_str().unwrap()], &[]);
        }
    }
    let _down = Down(out.clone());
    let (o, _) = up(
        &["--lab", "--keep", "--until", "provision", "--out", out_s],
        &[],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("the twin stays up"), "{t}");
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("state/twin.json")).unwrap()).unwrap();
    let pid = kept["pid"].as_u64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // A started VM answers SSH as the report says.
    let line = t
        .lines()
        .find(|l| l.trim_start().starts_with("lb-1 ") && l.contains(" ssh -i "))
        .unwrap();
    let ssh: Vec<&str> = line
        .split_whitespace()
        .skip(1)
        .take_while(|w| *w != "(ip")
        .collect();
    let o = Command::new(ssh[0])
        .args(&ssh[1..])
        .args(["-o", "BatchMode=yes", "hostname"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // The next run continues on the kept twin (resuming after provision) and keeps it.
    let (o, _) = up(
        &[
            "--lab", "--keep", "--until", "plan", "--from", "plan", "--out", out_s,
        ],
        &[],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(&format!("kept by an earlier run (process {pid})")),
        "{t}"
    );

    let (o, _) = up(&["--lab-down", "--out", out_s], &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("removed the twin"), "{t}");
    // Gone, or a zombie nobody reaped (its parent, the first `up`, ended long ago).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty()
            || stat
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z')),
        "the twin's process still runs: {stat}"
    );
    assert!(!out.join("state/twin.json").exists());
    let ns = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let prefix = kept["hosts"][0][2]
        .as_str()
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .to_owned();
    assert!(!ns.contains(&prefix), "namespaces left: {ns}");
}
