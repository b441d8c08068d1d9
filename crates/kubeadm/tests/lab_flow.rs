//! The whole bootstrap flow over real SSH against a hakube-lab of 3 load balancers, 3 masters
//! and 6 workers. `kubeadm` and `kubectl` are hakube-lab's stand-ins (`hakube_lab::stand_ins`) in
//! their operation-log mode: they parse the v1beta4 configs, create the files real kubeadm
//! creates (a real openssl CA, kubelet.conf, admin.conf) and talk to the operation-log API that
//! the load-balancer hook starts on the VIP.
//!
//! Asserts the order of operations, joins through the VIP (nothing else listens on :6443), real
//! CA pins, a failing worker reported by host without stopping the others, and that a re-run
//! changes nothing. Prints the wall time against the critical path (no timing assertions).

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hakube_kubeadm::flow::{
    Bootstrap, BootstrapHooks, BootstrapOptions, BootstrapProgress, BootstrapReport, Host,
    NodeOutcome, ProgressEvent,
};
use hakube_kubeadm::{
    ClusterInput, ClusterSecrets, HookError, KUBEADM_CONFIG_PATH, MasterInput, WorkerInput,
};
use hakube_lab::stand_ins::{ClusterApi, OPERATION_LOG_API, kubeadm_script, kubectl_script};
use hakube_lab::{Lab, require_root};
use hakube_remote::{Auth, Command, HostKeyPolicy, RemoteExec, SshConfig, SshPool, Target};

const MASTERS: [&str; 3] = ["cp1", "cp2", "cp3"];
const WORKERS: [&str; 6] = ["w1", "w2", "w3", "w4", "w5", "w6"];
const LBS: [&str; 3] = ["lb1", "lb2", "lb3"];

struct LabHooks {
    lab: Arc<Lab>,
    vip: String,
}

#[async_trait]
impl BootstrapHooks for LabHooks {
    async fn load_balancers(&self) -> Result<(), HookError> {
        let lb1 = self.lab.host("lb1");
        if lb1.is_running("apiserver") {
            return Ok(());
        }
        lb1.run(&format!("ip addr add {}/24 dev eth0", self.vip))?;
        lb1.write_file(
            "/etc/kubernetes/fake_apiserver.py",
            OPERATION_LOG_API,
            0o755,
        )?;
        lb1.spawn(
            "apiserver",
            &format!(
                "exec python3 /etc/kubernetes/fake_apiserver.py {} 6443",
                self.vip
            ),
        )?;
        // Wait from the test process, which sits on the lab bridge, for the VIP to answer.
        let addr: std::net::SocketAddr = format!("{}:6443", self.vip).parse()?;
        for _ in 0..200 {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the fake API did not listen on {addr}: {}",
            lb1.log("apiserver")
        )
        .into())
    }

    async fn cni(&self, first: &dyn RemoteExec) -> Result<(), HookError> {
        first
            .run_ok(&Command::new("kubectl").args([
                "--kubeconfig",
                "/etc/kubernetes/admin.conf",
                "apply",
                "-f",
                "calico.yaml",
            ]))
            .await
            .map(drop)
            .map_err(Into::into)
    }
}

/// Prints every progress event with the time since the run started.
struct Printer(std::time::Instant);

impl BootstrapProgress for Printer {
    fn event(&self, node: &str, step: &'static str, event: &ProgressEvent) {
        println!(
            "{:>8.2}s {node:<14} {step:<12} {event:?}",
            self.0.elapsed().as_secs_f64()
        );
    }
}

fn api_state(lab: &Lab, vip: &str) -> serde_json::Value {
    let out = lab
        .host("cp1")
        .run(&format!(
            "python3 -c 'import urllib.request;print(urllib.request.urlopen(\"http://{vip}:6443/state\").read().decode())'"
        ))
        .unwrap();
    serde_json::from_str(&out).unwrap()
}

fn ops(state: &serde_json::Value) -> Vec<(String, String)> {
    state["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["op"].as_str().unwrap().to_owned(),
                e["node"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn run(
    lab: &Arc<Lab>,
    input: &ClusterInput,
    secrets: &ClusterSecrets,
    pool: &SshPool,
    vip: &str,
) -> BootstrapReport {
    let hosts: BTreeMap<String, Host> = input
        .node_names()
        .map(|n| {
            let t = Target::new(n, lab.host(n).addr().to_string());
            (n.to_owned(), pool.session(&t) as Host)
        })
        .collect();
    Bootstrap::new(input.clone(), secrets.clone(), hosts)
        .unwrap()
        .hooks(Arc::new(LabHooks {
            lab: Arc::clone(lab),
            vip: vip.to_owned(),
        }))
        .progress(Arc::new(Printer(std::time::Instant::now())))
        .options(BootstrapOptions {
            ready_poll: Duration::from_millis(200),
            ready_timeout: Duration::from_secs(30),
            // Inside the hosts' private /etc/kubernetes: /etc/cni is the machine's own here.
            reset_cleanup: vec!["/etc/kubernetes/cni-net.d".into()],
            ..BootstrapOptions::default()
        })
        .run()
        .await
        .unwrap()
}

#[test]
fn whole_flow_on_the_lab() {
    if !require_root("whole_flow_on_the_lab") {
        return;
    }
    let names: Vec<&str> = LBS
        .iter()
        .chain(&MASTERS)
        .chain(&WORKERS)
        .copied()
        .collect();
    let lab = Arc::new(Lab::builder("kadm").hosts(names).build().expect("lab"));
    lab.stand_in("kubeadm", &kubeadm_script(ClusterApi::OperationLog))
        .unwrap();
    lab.stand_in("kubectl", &kubectl_script(ClusterApi::OperationLog))
        .unwrap();
    let vip = lab.spare_addr(0).unwrap().to_string();

    let mut input = ClusterInput::new(
        "lab",
        lab.spare_addr(0).unwrap(),
        "v1.33.2".parse().unwrap(),
        "10.244.0.0/16".parse().unwrap(),
    );
    for m in MASTERS {
        input
            .masters
            .push(MasterInput::new(m, lab.host(m).addr().into()));
    }
    for w in WORKERS {
        input.workers.push(
            WorkerInput::new(w, lab.host(w).addr().into())
                .label("node-role.kubernetes.io/worker", ""),
        );
    }
    input.cert_sans = LBS.iter().map(|s| (*s).to_owned()).collect();
    let secrets = ClusterSecrets::generate();
    // w3 fails every join in the first run.
    lab.host("lb1")
        .write_file("/etc/kubernetes/fake-api-fail", "w3\n", 0o644)
        .unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pool = SshPool::new(
        SshConfig::new(
            Auth::key_file(lab.ssh_private_key()),
            HostKeyPolicy::KnownHosts(lab.known_hosts_file().to_owned()),
        )
        .connect_timeout(Duration::from_secs(10)),
    );

    // Run 1: everything but w3.
    let r1 = rt.block_on(run(&lab, &input, &secrets, &pool, &vip));
    println!("run 1:\n{r1}");
    let failures = r1.failures();
    assert_eq!(failures.len(), 1, "{r1}");
    assert_eq!(failures[0].0, "w3");
    assert!(
        failures[0].1.contains("w3") && failures[0].1.contains("injected failure"),
        "{}",
        failures[0].1
    );
    for n in r1.nodes.iter().filter(|n| n.node != "w3") {
        assert!(
            matches!(n.outcome, NodeOutcome::Initialized | NodeOutcome::Joined),
            "{r1}"
        );
    }
    // Every member is Ready; the report does not call the cluster all Ready while w3 failed.
    assert!(r1.members_ready && !r1.all_ready, "{r1}");

    let state = api_state(&lab, &vip);
    let log = ops(&state);
    let at = |op: &str, node: &str| {
        log.iter()
            .position(|(o, n)| o == op && n == node)
            .unwrap_or_else(|| panic!("no {op} {node} in {log:?}"))
    };
    // Order: init, CNI, cp2, cp3 (one at a time), then workers.
    let init = at("init", "cp1");
    let cni = log.iter().position(|(o, _)| o == "cni").unwrap();
    assert!(
        init < cni && cni < at("join", "cp2") && at("join", "cp2") < at("join", "cp3"),
        "{log:?}"
    );
    for w in ["w1", "w2", "w4", "w5", "w6"] {
        assert!(at("join", "cp3") < at("join", w), "{log:?}");
    }
    // Every join reached the API through the VIP (the fake API listens on nothing else).
    for e in state["log"].as_array().unwrap() {
        if e["op"] == "join" {
            assert_eq!(e["via"].as_str().unwrap(), format!("{vip}:6443"), "{e}");
        }
    }
    // The CA pin our Rust code computed is the one openssl computed on cp1.
    let hash = hakube_kubeadm::CaCertHash::from_ca_pem(
        &lab.host("cp1")
            .read_file("/etc/kubernetes/pki/ca.crt")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(state["ca_hash"].as_str().unwrap(), hash.to_string());
    // The config holds secrets: 0600 on the node.
    let mode = lab
        .host("w1")
        .run(&format!("stat -c %a {KUBEADM_CONFIG_PATH}"))
        .unwrap();
    assert_eq!(mode.trim(), "600");
    // w3 was reset after each failed attempt.
    let resets = lab
        .host("w3")
        .calls("kubeadm")
        .iter()
        .filter(|c| c.first().is_some_and(|a| a == "reset"))
        .count();
    assert_eq!(resets, 2);
    // The label the kubelet may not set was applied.
    assert!(
        state["labels"]["w1"]
            .get("node-role.kubernetes.io/worker")
            .is_some(),
        "{}",
        state["labels"]
    );
    let ratio1 = r1.wall.as_secs_f64() / r1.critical_path.as_secs_f64();

    // Run 2: w3 fixed; only w3 joins.
    lab.host("lb1")
        .write_file("/etc/kubernetes/fake-api-fail", "", 0o644)
        .unwrap();
    let r2 = rt.block_on(run(&lab, &input, &secrets, &pool, &vip));
    println!("run 2:\n{r2}");
    assert!(r2.failures().is_empty(), "{r2}");
    for n in &r2.nodes {
        let want = if n.node == "w3" {
            NodeOutcome::Joined
        } else {
            NodeOutcome::AlreadyMember
        };
        assert_eq!(n.outcome, want, "{r2}");
    }

    // Run 3: nothing to do; no kubeadm init/join/reset anywhere, files untouched.
    let before: Vec<_> = input
        .node_names()
        .map(|n| {
            lab.host(n)
                .run(&format!("stat -c %Y {KUBEADM_CONFIG_PATH}"))
                .unwrap()
        })
        .collect();
    for n in input.node_names() {
        lab.host(n).clear_calls("kubeadm");
    }
    let r3 = rt.block_on(run(&lab, &input, &secrets, &pool, &vip));
    println!("run 3:\n{r3}");
    assert!(!r3.changed(), "{r3}");
    for n in input.node_names() {
        let calls = lab.host(n).calls("kubeadm");
        assert!(
            !calls.iter().any(|c| matches!(
                c.first().map(String::as_str),
                Some("init" | "join" | "reset")
            )),
            "{n}: {calls:?}"
        );
    }
    let after: Vec<_> = input
        .node_names()
        .map(|n| {
            lab.host(n)
                .run(&format!("stat -c %Y {KUBEADM_CONFIG_PATH}"))
                .unwrap()
        })
        .collect();
    assert_eq!(before, after);

    println!(
        "FIGURE lab bootstrap 3 masters + 6 workers: wall {:.2}s, critical path {:.2}s, ratio {:.2} (run 1, one worker failing twice); re-run {:.2}s",
        r1.wall.as_secs_f64(),
        r1.critical_path.as_secs_f64(),
        ratio1,
        r3.wall.as_secs_f64()
    );
    rt.block_on(pool.close_all());
}
