//! The `bootstrap` example binary as an operator runs it, against a hakube-lab of 3 load
//! balancers, 3 masters and 2 workers (the seed topology shrunk to the lab's hosts and VIP).
//!
//! `kubeadm` and `kubectl` are hakube-lab's stand-ins in their operation-log mode, as in
//! `crates/kubeadm/tests/lab_flow.rs` (they parse the v1beta4 configs, write what real kubeadm
//! writes, print output shaped like recorded real output and talk to the operation-log API,
//! the fake API server here). The binary has no load-balancer or CNI step (those are
//! separate: `plan`/`provision` and the add-ons), so the test plays the operator: before a run
//! it brings the VIP up on `lb-1` with the fake API behind it (nothing else listens on :6443,
//! so every join provably went through the VIP), and it applies the CNI on `master-1` as soon as
//! `kubeadm init` has written `admin.conf`, while the binary goes on joining.
//!
//! Asserted: exit status, the per-node progress lines, the summary, what the stand-ins
//! recorded on each host, what the fake API saw, the secrets file, and that nothing reaches a
//! host without a key or with an untrusted host key. Prints each run's wall time.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

#[path = "support/lab_topology.rs"]
mod lab_topology;
mod support;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hakube_kubeadm::KUBEADM_CONFIG_PATH;
use hakube_lab::stand_ins::{ClusterApi, OPERATION_LOG_API, kubeadm_script, kubectl_script};
use hakube_lab::{Lab, require_root};
use lab_topology::{Roles, lab_topology};

const LBS: [&str; 3] = ["lb-1", "lb-2", "lb-3"];
const MASTERS: [&str; 3] = ["master-1", "master-2", "master-3"];
const WORKERS: [&str; 2] = ["worker-prod-1", "worker-nonprod-1"];
/// Where the fake API reads the nodes whose joins it refuses (on `lb-1`).
const FAIL_FILE: &str = "/etc/kubernetes/fake-api-fail";
/// The CNI manifest the operator hands to `--cni-manifest` (the kubectl stand-in applies any).
const CNI_MANIFEST: &str = "calico.yaml";
const CNI_YAML: &str = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: calico-node\n  namespace: kube-system\n";
/// The longest a run may take before the test kills it (a hang is a failure, not a wait).
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// The Kubernetes nodes (what the binary works on), masters first.
fn nodes() -> impl Iterator<Item = &'static str> {
    MASTERS.iter().chain(&WORKERS).copied()
}

/// A lab with the topology's hosts, the stand-ins, and the topology file written for it.
struct Cluster {
    lab: Lab,
    vip: String,
    dir: tempfile::TempDir,
    topology: PathBuf,
}

impl Cluster {
    fn new(tag: &str) -> Self {
        let lab = Lab::builder(tag)
            .hosts(LBS.iter().chain(&MASTERS).chain(&WORKERS).copied())
            // A failed join is cleaned up with `rm -rf /etc/cni/net.d /root/.kube/config` (the
            // binary's default); those paths must be the hosts' own, never this machine's.
            .private_dir("/etc/cni")
            .private_dir("/root/.kube")
            .build()
            .expect("lab");
        lab.stand_in("kubeadm", &kubeadm_script(ClusterApi::OperationLog))
            .unwrap();
        lab.stand_in("kubectl", &kubectl_script(ClusterApi::OperationLog))
            .unwrap();
        let vip = lab.spare_addr(0).unwrap().to_string();
        let text = lab_topology(
            &lab,
            &Roles {
                lbs: &LBS,
                masters: &MASTERS,
                prod: &WORKERS[..1],
                nonprod: &WORKERS[1..],
                ..Roles::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let topology = dir.path().join("lab-cluster.yaml");
        std::fs::write(&topology, text).unwrap();
        std::fs::write(dir.path().join(CNI_MANIFEST), CNI_YAML).unwrap();
        Self {
            lab,
            vip,
            dir,
            topology,
        }
    }

    fn secrets_file(&self) -> PathBuf {
        self.dir.path().join("out/secrets/kubeadm.env")
    }

    /// The operator's arguments: the lab's key, root login, the lab's known_hosts, and a CNI
    /// manifest the binary applies on master-1 after init.
    fn args(&self) -> Vec<String> {
        let mut args = self.args_without_cni();
        args.push("--cni-manifest".into());
        args.push(path_arg(&self.dir.path().join(CNI_MANIFEST)));
        args
    }

    /// The same without a CNI manifest (the CNI left to the add-on step).
    fn args_without_cni(&self) -> Vec<String> {
        vec![
            path_arg(&self.topology),
            "--ssh-key".into(),
            path_arg(self.lab.ssh_private_key()),
            "--user".into(),
            "root".into(),
            "--known-hosts".into(),
            path_arg(self.lab.known_hosts_file()),
            "--plan".into(),
            path_arg(&self.dir.path().join("out")),
        ]
    }

    /// The load-balancer layer as far as kubeadm sees it: the VIP on `lb-1`, the fake API on
    /// VIP:6443 (and nowhere else).
    fn start_api(&self) {
        let lb1 = self.lab.host("lb-1");
        lb1.run(&format!("ip addr add {}/24 dev eth0", self.vip))
            .unwrap();
        lb1.write_file(
            "/etc/kubernetes/fake_apiserver.py",
            OPERATION_LOG_API,
            0o755,
        )
        .unwrap();
        lb1.spawn(
            "apiserver",
            &format!(
                "exec python3 /etc/kubernetes/fake_apiserver.py {} 6443",
                self.vip
            ),
        )
        .unwrap();
        let addr: std::net::SocketAddr = format!("{}:6443", self.vip).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the fake API did not listen on {addr}: {}",
                lb1.log("apiserver")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the fake API behind the VIP holds (members, the operation log, ...).
    fn api_state(&self) -> serde_json::Value {
        let mut s = std::net::TcpStream::connect((self.vip.as_str(), 6443)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /state HTTP/1.0\r\nHost: {}\r\n\r\n", self.vip).unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (_, body) = raw.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(body).unwrap()
    }

    /// The bytes each host's sshd has logged so far, once the lab's own readiness probe (a TCP
    /// connect from this process, logged as `Connection closed by <gateway> port N` without
    /// `[preauth]`) has been logged everywhere, so it cannot pass for the binary's connection.
    fn sshd_log_lengths(&self) -> BTreeMap<String, usize> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && !self
                .lab
                .hosts()
                .iter()
                .all(|h| h.log("sshd").contains(&self.client_mark()))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.lab
            .hosts()
            .iter()
            .map(|h| (h.name().to_owned(), h.log("sshd").len()))
            .collect()
    }

    /// Asserts no SSH connection reached any host since `before` (sshd logs every connection,
    /// accepted or refused, at its default level).
    fn assert_no_ssh_since(&self, before: &BTreeMap<String, usize>) {
        for h in self.lab.hosts() {
            let new = self.sshd_log_since(h.name(), before);
            assert!(
                !new.contains(&self.client_mark()),
                "{}: the binary connected: {new}",
                h.name()
            );
        }
    }

    /// How sshd names a client on this machine in its log (`... from 10.88.3.1 port 41234`).
    fn client_mark(&self) -> String {
        format!("{} port ", self.lab.gateway())
    }

    /// What `host`'s sshd logged since `before`.
    fn sshd_log_since(&self, host: &str, before: &BTreeMap<String, usize>) -> String {
        self.lab.host(host).log("sshd")[before[host]..].to_owned()
    }

    /// Asserts nothing was changed on any host: no kubeadm/kubectl call, no kubeadm config.
    fn assert_hosts_untouched(&self) {
        for n in nodes() {
            let h = self.lab.host(n);
            assert_eq!(h.calls("kubeadm"), Vec::<Vec<String>>::new(), "{n}");
            assert_eq!(h.calls("kubectl"), Vec::<Vec<String>>::new(), "{n}");
            assert!(
                h.read_file(KUBEADM_CONFIG_PATH).is_err(),
                "{n}: config written"
            );
        }
    }
}

fn path_arg(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// The example binary as the code stands (see `support::example_binary`).
fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| support::example_binary("bootstrap"))
}

/// One run of the binary as the operator sees it.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The progress lines: `(node, step, what)`.
    fn progress(&self) -> Vec<(String, String, String)> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix('[')?.split_once("s] "))
            .map(|(_, rest)| {
                let mut w = rest.split_whitespace();
                let node = w.next().unwrap_or_default().to_owned();
                let step = w.next().unwrap_or_default().to_owned();
                (node, step, w.collect::<Vec<_>>().join(" "))
            })
            .collect()
    }

    /// Whether a progress line says `node` `step` `what…`.
    fn said(&self, node: &str, step: &str, what: &str) -> bool {
        self.progress()
            .iter()
            .any(|(n, s, w)| n == node && s == step && w.starts_with(what))
    }

    fn assert_said(&self, node: &str, step: &str, what: &str) {
        assert!(
            self.said(node, step, what),
            "no progress line `{node} {step} {what}` in:\n{}",
            self.stdout
        );
    }

    /// The summary after the progress: node -> (role, outcome text).
    fn summary(&self) -> BTreeMap<String, (String, String)> {
        let (_, report) = self
            .stdout
            .rsplit_once("\n\n")
            .unwrap_or_else(|| panic!("no summary in:\n{}", self.stdout));
        report
            .lines()
            .filter(|l| !l.starts_with("wall ") && !l.starts_with("renewed:"))
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                assert!(w.len() >= 4, "summary line {l:?}");
                (w[0].to_owned(), (w[1].to_owned(), w[3..].join(" ")))
            })
            .collect()
    }

    fn assert_no_secrets(&self, secrets: &Path) {
        let text = std::fs::read_to_string(secrets).unwrap();
        for line in text.lines() {
            let (key, value) = line.split_once('=').unwrap();
            assert!(value.len() >= 16, "{key}");
            // The token's secret half alone must not show either.
            let secret = value.rsplit('.').next().unwrap();
            for (stream, out) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
                assert!(!out.contains(secret), "{key} printed on {stream}");
            }
        }
    }
}

/// Runs the binary with `args` (and `HOME=home` when given).
fn run(args: &[String], home: Option<&Path>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let exe = binary();
    let started = Instant::now();
    let mut cmd = Command::new(exe);
    if let Some(home) = home {
        cmd.env("HOME", home);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bootstrap still running after {RUN_DEADLINE:?}:\n{}\n{}",
                std::fs::read_to_string(&out_path).unwrap(),
                std::fs::read_to_string(&err_path).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let r = Run {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    };
    println!(
        "bootstrap {} -> {} in {:.2}s\n--- stdout\n{}--- stderr\n{}---",
        args.join(" "),
        r.status,
        started.elapsed().as_secs_f64(),
        r.stdout,
        r.stderr
    );
    r
}

/// The recorded `kubeadm <verb> ...` calls on `node` (`init phase ...` excluded from `init`).
fn kubeadm_calls(c: &Cluster, node: &str, verb: &str) -> Vec<Vec<String>> {
    c.lab
        .host(node)
        .calls("kubeadm")
        .into_iter()
        .filter(|a| a.first().is_some_and(|v| v == verb))
        .filter(|a| !(verb == "init" && a.get(1).is_some_and(|p| p == "phase")))
        .collect()
}

/// The value of `key:` in a rendered config (first occurrence, quotes removed).
fn config_value(config: &str, key: &str) -> Option<String> {
    config.lines().find_map(|l| {
        let v = l.trim().strip_prefix(key)?.strip_prefix(':')?;
        Some(v.trim().trim_matches('"').to_owned())
    })
}

/// The fake API's operation log: `(op, node, via)`.
fn api_ops(state: &serde_json::Value) -> Vec<(String, String, String)> {
    state["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("op"), s("node"), s("via"))
        })
        .collect()
}

#[test]
fn fresh_lab_then_rerun() {
    if !require_root("fresh_lab_then_rerun") {
        return;
    }
    let c = Cluster::new("bootfresh");
    c.start_api();
    let endpoint = format!("{}:6443", c.vip);
    let secrets = c.secrets_file();
    assert!(!secrets.exists());

    // Run 1: a fresh cluster.
    let r1 = run(&c.args(), None);
    assert!(r1.status.success(), "exit {}: {}", r1.status, r1.stderr);
    assert!(
        r1.stdout.contains(&format!(
            "bootstrapping lab (3 masters, 2 workers) behind {endpoint}"
        )),
        "{}",
        r1.stdout
    );
    r1.assert_said("master-1", "init", "started");
    r1.assert_said("master-1", "init", "done");
    for n in nodes().skip(1) {
        r1.assert_said(n, "join", "started");
        r1.assert_said(n, "join", "done");
    }
    for n in nodes() {
        r1.assert_said(n, "ready", "done");
    }
    assert!(!r1.stdout.contains("FAILED"), "{}", r1.stdout);
    let summary = r1.summary();
    assert_eq!(
        summary.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut all: Vec<&str> = nodes().collect();
            all.sort_unstable();
            all
        },
        "the summary names every node and only them: {summary:?}"
    );
    assert_eq!(
        summary["master-1"],
        ("InitMaster".into(), "initialized".into())
    );
    for m in &MASTERS[1..] {
        assert_eq!(summary[*m], ("JoinMaster".into(), "joined".into()));
    }
    for w in WORKERS {
        assert_eq!(summary[w], ("Worker".into(), "joined".into()));
    }
    assert!(r1.stdout.contains("all Ready: yes"), "{}", r1.stdout);
    // The CNI manifest went to master-1 and was applied there, once, after init.
    r1.assert_said("master-1", "cni", "done");
    assert_eq!(
        c.lab
            .host("master-1")
            .read_to_string(format!("/etc/kubernetes/hakube/cni/00-{CNI_MANIFEST}"))
            .unwrap(),
        CNI_YAML
    );
    let applies: Vec<_> = c
        .lab
        .host("master-1")
        .calls("kubectl")
        .into_iter()
        .filter(|a| a.iter().any(|w| w == "apply"))
        .collect();
    assert_eq!(
        applies,
        vec![
            [
                "--kubeconfig",
                "/etc/kubernetes/admin.conf",
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                &format!("/etc/kubernetes/hakube/cni/00-{CNI_MANIFEST}"),
            ]
            .map(str::to_owned)
            .to_vec()
        ]
    );

    // kubeadm init once, on master-1, against the VIP endpoint.
    for n in nodes() {
        let inits = kubeadm_calls(&c, n, "init");
        let joins = kubeadm_calls(&c, n, "join");
        assert!(kubeadm_calls(&c, n, "reset").is_empty(), "{n}: reset");
        if n == "master-1" {
            assert_eq!(
                inits,
                vec![vec![
                    "init".to_owned(),
                    "--config".into(),
                    KUBEADM_CONFIG_PATH.into(),
                    "--upload-certs".into()
                ]]
            );
            assert!(joins.is_empty(), "master-1 joined: {joins:?}");
        } else {
            assert!(inits.is_empty(), "{n}: {inits:?}");
            assert_eq!(
                joins,
                vec![vec![
                    "join".to_owned(),
                    "--config".into(),
                    KUBEADM_CONFIG_PATH.into()
                ]],
                "{n}"
            );
        }
        // The config holds the token and certificate key: 0600 on the node.
        let config = c.lab.host(n).host_path(KUBEADM_CONFIG_PATH).unwrap();
        let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{n}: {KUBEADM_CONFIG_PATH} mode {mode:o}");
        let text = std::fs::read_to_string(&config).unwrap();
        if n == "master-1" {
            assert_eq!(
                config_value(&text, "controlPlaneEndpoint").as_deref(),
                Some(endpoint.as_str())
            );
        } else {
            // The other masters join as control-plane nodes (the config-file form of
            // `--control-plane`), workers without; all through the VIP.
            assert!(text.contains("kind: JoinConfiguration"), "{n}: {text}");
            assert_eq!(
                text.lines().any(|l| l.starts_with("controlPlane:")),
                MASTERS.contains(&n),
                "{n}: {text}"
            );
            assert_eq!(
                config_value(&text, "apiServerEndpoint").as_deref(),
                Some(endpoint.as_str()),
                "{n}"
            );
        }
    }
    // What the API behind the VIP saw: init, then master-2, master-3 one at a time, then the
    // workers; every join through the VIP; control-plane members as such.
    let state = c.api_state();
    let ops = api_ops(&state);
    let at = |op: &str, node: &str| {
        ops.iter()
            .position(|(o, n, _)| o == op && n == node)
            .unwrap_or_else(|| panic!("no {op} {node} in {ops:?}"))
    };
    assert_eq!(ops.iter().filter(|(o, _, _)| o == "init").count(), 1);
    assert!(at("init", "master-1") < at("join", "master-2"));
    assert!(at("join", "master-2") < at("join", "master-3"));
    for w in WORKERS {
        assert!(at("join", "master-3") < at("join", w), "{ops:?}");
    }
    for (op, node, via) in &ops {
        if op == "join" {
            assert_eq!(via, &endpoint, "{node} joined via {via}");
        }
    }
    for n in nodes() {
        assert_eq!(
            state["members"][n]["cp"].as_bool(),
            Some(MASTERS.contains(&n)),
            "{n}: {}",
            state["members"]
        );
    }
    // The secrets file: created 0600, its values never printed.
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "secrets file mode {mode:o}");
    let kept = std::fs::read(&secrets).unwrap();
    assert!(String::from_utf8_lossy(&kept).starts_with("TOKEN="));
    r1.assert_no_secrets(&secrets);

    // Run 2: same secrets file; every node is skipped, nothing is run again.
    for n in nodes() {
        c.lab.host(n).clear_calls("kubeadm");
    }
    let ops_before = ops.len();
    let r2 = run(&c.args(), None);
    assert!(r2.status.success(), "exit {}: {}", r2.status, r2.stderr);
    r2.assert_said("master-1", "init", "skipped (already initialised)");
    for n in nodes().skip(1) {
        r2.assert_said(n, "join", "skipped (already joined)");
        assert!(!r2.said(n, "join", "started"), "{n}:\n{}", r2.stdout);
    }
    for n in nodes() {
        r2.assert_said(n, "ready", "done");
        assert_eq!(r2.summary()[n].1, "already a member", "{n}");
        for verb in ["init", "join", "reset"] {
            let calls = kubeadm_calls(&c, n, verb);
            assert!(calls.is_empty(), "{n}: kubeadm {verb} again: {calls:?}");
        }
    }
    assert!(!r2.stdout.contains("renewed:"), "{}", r2.stdout);
    let new_ops: Vec<_> = api_ops(&c.api_state()).split_off(ops_before);
    assert!(
        new_ops
            .iter()
            .all(|(o, _, _)| !matches!(o.as_str(), "init" | "join" | "reset")),
        "{new_ops:?}"
    );
    assert_eq!(std::fs::read(&secrets).unwrap(), kept, "secrets rewritten");
    r2.assert_no_secrets(&secrets);
}

#[test]
fn a_failing_worker_is_named_and_the_others_join() {
    if !require_root("a_failing_worker_is_named_and_the_others_join") {
        return;
    }
    let c = Cluster::new("bootfail");
    c.start_api();
    let bad = "worker-nonprod-1";
    c.lab
        .host("lb-1")
        .write_file(FAIL_FILE, format!("{bad}\n"), 0o644)
        .unwrap();

    let r = run(&c.args(), None);
    assert!(!r.status.success(), "a failed worker must fail the run");
    r.assert_said(bad, "join", "failed, resetting and retrying:");
    let failed = r
        .progress()
        .into_iter()
        .find(|(n, s, w)| n == bad && s == "join" && w.starts_with("FAILED:"))
        .unwrap_or_else(|| panic!("no FAILED line for {bad}:\n{}", r.stdout));
    assert!(
        failed
            .2
            .contains(&format!("{bad}: kubeadm join failed twice"))
            && failed.2.contains(&format!("injected failure for {bad}")),
        "{failed:?}"
    );
    let summary = r.summary();
    let (role, outcome) = &summary[bad];
    assert_eq!(role, "Worker");
    assert!(
        outcome.starts_with(&format!("FAILED: {bad}:")) && outcome.contains("injected failure"),
        "{outcome}"
    );
    assert_eq!(summary["master-1"].1, "initialized");
    assert!(r.stdout.contains("all Ready: no"), "{}", r.stdout);
    for n in nodes().skip(1).filter(|n| *n != bad) {
        assert_eq!(summary[n].1, "joined", "{n}");
        r.assert_said(n, "ready", "done");
    }
    // The failing worker was tried twice and reset after each try; the API has every node
    // but it.
    assert_eq!(kubeadm_calls(&c, bad, "join").len(), 2);
    assert_eq!(kubeadm_calls(&c, bad, "reset").len(), 2);
    let state = c.api_state();
    for n in nodes() {
        assert_eq!(
            state["members"].get(n).is_some(),
            n != bad,
            "{n}: {}",
            state["members"]
        );
    }
    assert!(
        c.lab
            .host(bad)
            .read_file("/etc/kubernetes/kubelet.conf")
            .is_err(),
        "the reset must leave {bad} clean"
    );
    r.assert_no_secrets(&c.secrets_file());
}

#[test]
fn no_key_or_render_only_connects_to_nothing() {
    if !require_root("no_key_or_render_only_connects_to_nothing") {
        return;
    }
    let c = Cluster::new("bootnokey");
    let before = c.sshd_log_lengths();

    // Without --ssh-key: refused before anything else, no secrets file either.
    let args: Vec<String> = c
        .args()
        .into_iter()
        .filter(|a| *a != "--ssh-key" && a.as_str() != path_arg(c.lab.ssh_private_key()))
        .collect();
    let r = run(&args, None);
    assert!(!r.status.success());
    assert!(
        r.stderr
            .contains("error: --ssh-key is required (or use --render-only)"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(!c.secrets_file().exists());

    // --render-only: every node's files, from the topology alone.
    let mut args = c.args();
    args.push("--render-only".into());
    let r = run(&args, None);
    assert!(r.status.success(), "exit {}: {}", r.status, r.stderr);
    let blocks: Vec<&str> = r.stdout.split_inclusive('\n').collect();
    let headers: Vec<&str> = blocks
        .iter()
        .filter(|l| !l.starts_with(' '))
        .map(|l| l.trim_end())
        .collect();
    assert_eq!(
        headers,
        [
            "master-1 (InitMaster)",
            "master-2 (JoinMaster)",
            "master-3 (JoinMaster)",
            "worker-prod-1 (Worker)",
            "worker-nonprod-1 (Worker)",
        ],
        "{}",
        r.stdout
    );
    let files_of = |node: &str| -> Vec<String> {
        r.stdout
            .lines()
            .skip_while(|l| !l.starts_with(&format!("{node} (")))
            .skip(1)
            .take_while(|l| l.starts_with(' '))
            .map(|l| l.trim().to_owned())
            .collect()
    };
    let m1 = files_of("master-1");
    assert!(
        m1.iter()
            .any(|l| l.starts_with(&format!("600 {KUBEADM_CONFIG_PATH} ("))),
        "{m1:?}"
    );
    for n in nodes().skip(1) {
        let f = files_of(n);
        assert!(
            f.iter().any(|l| l.starts_with("644 /etc/kubernetes/"))
                && f.iter()
                    .any(|l| l == "(join configuration rendered after init, once the CA exists)"),
            "{n}: {f:?}"
        );
    }
    assert!(!c.secrets_file().exists(), "render-only keeps no secrets");

    c.assert_no_ssh_since(&before);
    c.assert_hosts_untouched();
}

/// A lab whose operator has an empty known_hosts (`$HOME/.ssh/known_hosts`, where
/// `--accept-new` records keys), and the run of the binary against it without `--accept-new`.
struct UntrustedRun {
    c: Cluster,
    home: PathBuf,
    known_hosts: PathBuf,
    sshd_before: BTreeMap<String, usize>,
    run: Run,
}

fn run_with_empty_known_hosts(tag: &str) -> UntrustedRun {
    let c = Cluster::new(tag);
    c.start_api();
    let home = c.dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let known_hosts = home.join(".ssh/known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let args: Vec<String> = c
        .args()
        .into_iter()
        .map(|a| {
            if a == path_arg(c.lab.known_hosts_file()) {
                path_arg(&known_hosts)
            } else {
                a
            }
        })
        .collect();
    let sshd_before = c.sshd_log_lengths();
    let run = run(&args, None);
    UntrustedRun {
        c,
        home,
        known_hosts,
        sshd_before,
        run,
    }
}

#[test]
fn unknown_host_keys_stop_the_run_before_any_change() {
    if !require_root("unknown_host_keys_stop_the_run_before_any_change") {
        return;
    }
    let UntrustedRun {
        c,
        home,
        known_hosts,
        sshd_before: before,
        run: r,
    } = run_with_empty_known_hosts("boothostkey");
    assert!(!r.status.success());
    // master-1 is contacted first (init) and named; the exact cause is checked in
    // `an_unknown_host_key_is_named_with_its_fingerprint`.
    assert!(r.stderr.starts_with("error: master-1: "), "{}", r.stderr);
    assert!(!r.said("master-1", "init", "started"), "{}", r.stdout);
    // Nothing changed: no session was opened anywhere, no call, no file, the API untouched,
    // no key recorded.
    for h in c.lab.hosts() {
        let new = c.sshd_log_since(h.name(), &before);
        assert!(!new.contains("Accepted"), "{}: {new}", h.name());
    }
    // sshd did log the refused connection (an SSH client that got past the banners: `[preauth]`),
    // so the log check in `no_key_or_render_only_connects_to_nothing` would see one.
    assert!(
        c.sshd_log_since("master-1", &before)
            .lines()
            .any(|l| l.contains(&c.client_mark()) && l.ends_with("[preauth]")),
        "{}",
        c.lab.host("master-1").log("sshd")
    );
    c.assert_hosts_untouched();
    assert!(api_ops(&c.api_state()).is_empty());
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), "");

    // The operator's way out: --accept-new records the nodes' keys in the --known-hosts file
    // (here the same file as $HOME's) and the run goes through.
    let mut args: Vec<String> = c
        .args()
        .into_iter()
        .map(|a| {
            if a == path_arg(c.lab.known_hosts_file()) {
                path_arg(&known_hosts)
            } else {
                a
            }
        })
        .collect();
    args.push("--accept-new".into());
    let r = run(&args, Some(&home));
    assert!(r.status.success(), "exit {}: {}", r.status, r.stderr);
    assert_eq!(r.summary()["master-1"].1, "initialized");
    let recorded = std::fs::read_to_string(&known_hosts).unwrap();
    for h in c.lab.hosts() {
        let key = h.ssh_host_public_key();
        let blob = key.split_whitespace().nth(1).unwrap();
        assert_eq!(
            recorded.contains(blob),
            nodes().any(|n| n == h.name()),
            "{}: {recorded}",
            h.name()
        );
    }
}

#[test]
fn an_unknown_host_key_is_named_with_its_fingerprint() {
    if !require_root("an_unknown_host_key_is_named_with_its_fingerprint") {
        return;
    }
    let UntrustedRun { c, run: r, .. } = run_with_empty_known_hosts("bootkeyname");
    assert!(!r.status.success());
    // The first host contacted is master-1 (init); its key's fingerprint, as OpenSSH prints it.
    let key_file = c.dir.path().join("master-1.pub");
    std::fs::write(&key_file, c.lab.host("master-1").ssh_host_public_key()).unwrap();
    let keygen = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "ssh-keygen -lf failed");
    let fingerprint = String::from_utf8_lossy(&keygen.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        r.stderr.contains("master-1")
            && r.stderr
                .contains(&format!("unknown host key {fingerprint}"))
            && r.stderr.contains("refusing to connect"),
        "{}",
        r.stderr
    );
}

#[test]
fn without_a_cni_manifest_ready_is_not_awaited() {
    if !require_root("without_a_cni_manifest_ready_is_not_awaited") {
        return;
    }
    let c = Cluster::new("bootnocni");
    c.start_api();
    let r = run(&c.args_without_cni(), None);
    assert!(r.status.success(), "exit {}: {}", r.status, r.stderr);
    assert!(r.stderr.contains("note: no --cni-manifest"), "{}", r.stderr);
    r.assert_said("master-1", "cni", "skipped (no CNI given");
    assert!(!r.said("master-1", "cni", "done"), "{}", r.stdout);
    for n in nodes() {
        r.assert_said(n, "ready", "skipped (not awaited)");
    }
    assert!(r.stdout.contains("all Ready: not awaited"), "{}", r.stdout);
    // Nothing was applied on master-1.
    assert!(
        c.lab
            .host("master-1")
            .calls("kubectl")
            .iter()
            .all(|a| !a.iter().any(|w| w == "apply")),
        "{:?}",
        c.lab.host("master-1").calls("kubectl")
    );
}
