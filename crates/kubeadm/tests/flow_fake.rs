//! The bootstrap flow against `hakube_remote::testing::FakeHost`, wrapped so that `kubeadm`
//! and `kubectl` have the side effects the real ones have (CA, kubelet.conf, tokens, nodes).

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hakube_kubeadm::config::{Document, parse_documents};
use hakube_kubeadm::flow::{
    Bootstrap, BootstrapHooks, BootstrapOptions, BootstrapProgress, Clock, Host, NodeOutcome,
    ProgressEvent,
};
use hakube_kubeadm::{
    CA_CERT_PATH, CaCertHash, ClusterInput, ClusterSecrets, Error, HookError, KUBEADM_CONFIG_PATH,
    KUBELET_CONF_PATH, MasterInput, WorkerInput,
};
use hakube_remote::testing::FakeHost;
use hakube_remote::{Command, ExitStatus, File, FileState, Output, RemoteExec};

/// A test CA made by openssl once per process.
fn ca_pem() -> &'static [u8] {
    static PEM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PEM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-subj",
                "/CN=kubernetes",
                "-days",
                "1",
                "-out",
                "ca.crt",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        std::fs::read(dir.path().join("ca.crt")).unwrap()
    })
}

/// Test clock, advanced by hand.
#[derive(Default)]
struct TestClock(AtomicU64);

impl TestClock {
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + self.0.load(Ordering::SeqCst))
    }
}

/// State shared by all fake nodes: what the "cluster" knows.
#[derive(Default)]
struct Cluster {
    log: Vec<(String, String)>,
    members: BTreeSet<String>,
    token_expires: Option<SystemTime>,
    fail_join: BTreeMap<String, u32>,
}

struct Node {
    inner: FakeHost,
    cluster: Arc<Mutex<Cluster>>,
    clock: Arc<TestClock>,
    removed: Mutex<BTreeSet<String>>,
}

impl Node {
    fn gone(&self, path: &str) -> bool {
        self.removed.lock().unwrap().contains(path)
    }
    fn put(&self, path: &str, content: &[u8]) {
        self.removed.lock().unwrap().remove(path);
        self.inner.put_file(path, content.to_vec(), 0o600);
    }
}

fn fail(stderr: &str) -> Output {
    Output {
        stdout: Vec::new(),
        stderr: stderr.as_bytes().to_vec(),
        status: ExitStatus::Code(1),
    }
}

#[async_trait]
impl RemoteExec for Node {
    fn host(&self) -> &str {
        self.inner.host()
    }
    fn address(&self) -> &str {
        self.inner.address()
    }
    fn is_root(&self) -> bool {
        true
    }
    async fn run(&self, command: &Command) -> Result<Output, hakube_remote::Error> {
        let line = command.to_shell(true).unwrap();
        let name = self.host().to_owned();
        self.cluster
            .lock()
            .unwrap()
            .log
            .push((name.clone(), line.clone()));
        let now = self.clock.now();
        if line.starts_with("kubeadm init --config") {
            let cfg = self.inner.file(KUBEADM_CONFIG_PATH).unwrap();
            let docs = parse_documents(std::str::from_utf8(&cfg).unwrap()).unwrap();
            assert!(matches!(docs[0], Document::Init(_)), "init with {docs:?}");
            self.put(CA_CERT_PATH, ca_pem());
            self.put(KUBELET_CONF_PATH, b"kubelet");
            self.put("/etc/kubernetes/admin.conf", b"admin");
            let mut c = self.cluster.lock().unwrap();
            c.members.insert(name);
            c.token_expires = Some(now + Duration::from_secs(24 * 3600));
            return Ok(Output::ok(
                "Your Kubernetes control-plane has initialized successfully!\n",
            ));
        }
        if line.starts_with("kubeadm join --config") {
            let cfg = self.inner.file(KUBEADM_CONFIG_PATH).unwrap();
            let docs = parse_documents(std::str::from_utf8(&cfg).unwrap()).unwrap();
            let Document::Join(j) = &docs[0] else {
                panic!("join with {docs:?}")
            };
            let bt = j.discovery.bootstrap_token.as_ref().unwrap();
            assert_eq!(
                bt.api_server_endpoint.as_deref(),
                Some("10.0.0.10:6443"),
                "join through the VIP"
            );
            assert_eq!(
                bt.ca_cert_hashes,
                [CaCertHash::from_ca_pem(ca_pem()).unwrap()]
            );
            let mut c = self.cluster.lock().unwrap();
            if c.token_expires.is_none_or(|e| e <= now) {
                return Ok(fail("error: token expired"));
            }
            if let Some(n) = c.fail_join.get_mut(&name)
                && *n > 0
            {
                *n -= 1;
                return Ok(fail(
                    "error execution phase preflight: couldn't validate the identity of the API Server",
                ));
            }
            c.members.insert(name);
            drop(c);
            self.put(KUBELET_CONF_PATH, b"kubelet");
            return Ok(Output::ok("This node has joined the cluster\n"));
        }
        if line.starts_with("kubeadm reset") {
            self.removed
                .lock()
                .unwrap()
                .insert(KUBELET_CONF_PATH.into());
            self.cluster.lock().unwrap().members.remove(&name);
            return Ok(Output::ok(""));
        }
        if line.starts_with("kubeadm token list") {
            let c = self.cluster.lock().unwrap();
            let mut out = String::from(
                "TOKEN                     TTL   EXPIRES                USAGES                   DESCRIPTION   EXTRA GROUPS\n",
            );
            if let Some(e) = c.token_expires {
                let secs = e.duration_since(UNIX_EPOCH).unwrap().as_secs();
                out.push_str(&format!(
                    "h4kube.0123456789abcdef   23h   {}   authentication,signing   <none>        system:bootstrappers:kubeadm:default-node-token\n",
                    rfc3339(secs)
                ));
            }
            return Ok(Output::ok(out));
        }
        if line.starts_with("kubeadm token create h4kube.0123456789abcdef") {
            self.cluster.lock().unwrap().token_expires = Some(now + Duration::from_secs(24 * 3600));
            return Ok(Output::ok("h4kube.0123456789abcdef\n"));
        }
        if line.starts_with("kubeadm token delete h4kube") {
            self.cluster.lock().unwrap().token_expires = None;
            return Ok(Output::ok(""));
        }
        if line.starts_with("kubeadm init phase upload-certs --upload-certs --certificate-key ") {
            let key = line.rsplit(' ').next().unwrap();
            return Ok(Output::ok(format!(
                "[upload-certs] Using certificate key:\n{key}\n"
            )));
        }
        if line.contains("get nodes") {
            let c = self.cluster.lock().unwrap();
            let mut out = String::from("NAME   STATUS   ROLES   AGE   VERSION\n");
            for m in &c.members {
                out.push_str(&format!("{m}   Ready   <none>   1m   v1.33.2\n"));
            }
            return Ok(Output::ok(out));
        }
        self.inner.run(command).await
    }
    async fn upload(&self, file: &File, sudo: bool) -> Result<(), hakube_remote::Error> {
        self.removed.lock().unwrap().remove(&file.path);
        self.inner.upload(file, sudo).await
    }
    async fn read_file(&self, path: &str, sudo: bool) -> Result<Vec<u8>, hakube_remote::Error> {
        if self.gone(path) {
            return self.inner.read_file("/nonexistent", sudo).await;
        }
        self.inner.read_file(path, sudo).await
    }
    async fn file_state(
        &self,
        path: &str,
        sudo: bool,
    ) -> Result<Option<FileState>, hakube_remote::Error> {
        if self.gone(path) {
            return Ok(None);
        }
        self.inner.file_state(path, sudo).await
    }
}

fn rfc3339(secs: u64) -> String {
    // Reuse the crate's compact formatter and reshape it.
    let c = hakube_kubeadm::etcd::compact_utc(UNIX_EPOCH + Duration::from_secs(secs));
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &c[0..4],
        &c[4..6],
        &c[6..8],
        &c[9..11],
        &c[11..13],
        &c[13..15]
    )
}

struct World {
    input: ClusterInput,
    secrets: ClusterSecrets,
    nodes: BTreeMap<String, Arc<Node>>,
    cluster: Arc<Mutex<Cluster>>,
    clock: Arc<TestClock>,
}

fn world(masters: usize, workers: usize) -> World {
    let mut input = ClusterInput::new(
        "lab",
        std::net::Ipv4Addr::new(10, 0, 0, 10),
        "v1.33.2".parse().unwrap(),
        "10.244.0.0/16".parse().unwrap(),
    );
    for i in 1..=masters {
        input.masters.push(MasterInput::new(
            format!("cp{i}"),
            format!("10.0.0.2{i}").parse().unwrap(),
        ));
    }
    for i in 1..=workers {
        input.workers.push(
            WorkerInput::new(format!("w{i}"), format!("10.0.0.3{i}").parse().unwrap())
                .label("node-role.kubernetes.io/worker", ""),
        );
    }
    let secrets = ClusterSecrets {
        token: "h4kube.0123456789abcdef".parse().unwrap(),
        certificate_key: "ab".repeat(32).parse().unwrap(),
        ca_cert_hash: None,
    };
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    let clock = Arc::new(TestClock::default());
    let nodes = input
        .node_names()
        .map(|n| {
            (
                n.to_owned(),
                Arc::new(Node {
                    inner: FakeHost::new(n),
                    cluster: Arc::clone(&cluster),
                    clock: Arc::clone(&clock),
                    removed: Mutex::new(BTreeSet::new()),
                }),
            )
        })
        .collect();
    World {
        input,
        secrets,
        nodes,
        cluster,
        clock,
    }
}

/// Hooks that log into the cluster log and can move the clock.
struct Hooks {
    cluster: Arc<Mutex<Cluster>>,
    clock: Arc<TestClock>,
    advance_in_cni: Duration,
}

#[async_trait]
impl BootstrapHooks for Hooks {
    async fn load_balancers(&self) -> Result<(), HookError> {
        self.cluster
            .lock()
            .unwrap()
            .log
            .push(("hook".into(), "load_balancers".into()));
        Ok(())
    }
    async fn cni(&self, first: &dyn RemoteExec) -> Result<(), HookError> {
        self.cluster
            .lock()
            .unwrap()
            .log
            .push(("hook".into(), format!("cni on {}", first.host())));
        self.clock.advance(self.advance_in_cni);
        Ok(())
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, &'static str, ProgressEvent)>>);

impl BootstrapProgress for Recorder {
    fn event(&self, node: &str, step: &'static str, event: &ProgressEvent) {
        self.0
            .lock()
            .unwrap()
            .push((node.to_owned(), step, event.clone()));
    }
}

impl World {
    fn bootstrap(&self, advance_in_cni: Duration) -> Bootstrap {
        let hosts: BTreeMap<String, Host> = self
            .nodes
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v) as Host))
            .collect();
        Bootstrap::new(self.input.clone(), self.secrets.clone(), hosts)
            .unwrap()
            .hooks(Arc::new(Hooks {
                cluster: Arc::clone(&self.cluster),
                clock: Arc::clone(&self.clock),
                advance_in_cni,
            }))
            .clock(Arc::clone(&self.clock) as Arc<dyn Clock>)
            .options(BootstrapOptions {
                ready_poll: Duration::from_millis(1),
                ready_timeout: Duration::from_millis(200),
                ..BootstrapOptions::default()
            })
    }

    fn log(&self) -> Vec<(String, String)> {
        self.cluster.lock().unwrap().log.clone()
    }

    fn take_log(&self) -> Vec<(String, String)> {
        std::mem::take(&mut self.cluster.lock().unwrap().log)
    }
}

fn pos(log: &[(String, String)], host: &str, prefix: &str) -> usize {
    log.iter()
        .position(|(h, l)| h == host && l.starts_with(prefix))
        .unwrap_or_else(|| panic!("{host}: no `{prefix}` in {log:#?}"))
}

#[tokio::test]
async fn fresh_cluster_in_order_through_the_vip() {
    let w = world(3, 6);
    let recorder = Arc::new(Recorder::default());
    let report = w
        .bootstrap(Duration::ZERO)
        .progress(Arc::clone(&recorder) as Arc<dyn BootstrapProgress>)
        .run()
        .await
        .unwrap();
    assert!(report.all_ready, "{report}");
    assert!(report.failures().is_empty(), "{report}");
    assert_eq!(report.nodes[0].outcome, NodeOutcome::Initialized);
    assert!(
        report.nodes[1..]
            .iter()
            .all(|n| n.outcome == NodeOutcome::Joined),
        "{report}"
    );

    let log = w.log();
    let lb = pos(&log, "hook", "load_balancers");
    let init = pos(
        &log,
        "cp1",
        "kubeadm init --config /etc/kubernetes/kubeadm/kubeadm-config.yaml --upload-certs",
    );
    let cni = pos(&log, "hook", "cni on cp1");
    let cp2 = pos(&log, "cp2", "kubeadm join");
    let cp3 = pos(&log, "cp3", "kubeadm join");
    assert!(
        lb < init && init < cni && cni < cp2 && cp2 < cp3,
        "{log:#?}"
    );
    for i in 1..=6 {
        assert!(cp3 < pos(&log, &format!("w{i}"), "kubeadm join"));
    }
    // The post-join label the kubelet may not set itself is applied with kubectl.
    let label = pos(
        &log,
        "cp1",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf label node w1 --overwrite node-role.kubernetes.io/worker=",
    );
    assert!(label > pos(&log, "w6", "kubeadm join"));
    // The certificates uploaded by init are fresh: no re-upload needed.
    assert!(
        !log.iter()
            .any(|(_, l)| l.contains("upload-certs --upload-certs --certificate-key"))
    );
    // Configs are 0600 and progress was reported per node.
    let meta = w.nodes["w3"].inner.file_meta(KUBEADM_CONFIG_PATH).unwrap();
    assert_eq!(meta.mode, 0o600);
    let events = recorder.0.lock().unwrap();
    for n in ["cp1", "cp2", "w6"] {
        assert!(
            events
                .iter()
                .any(|(h, _, e)| h == n && *e == ProgressEvent::Done),
            "{n}"
        );
    }
    assert!(report.critical_path <= report.wall);
}

#[tokio::test]
async fn rerun_changes_nothing() {
    let w = world(3, 6);
    w.bootstrap(Duration::ZERO).run().await.unwrap();
    let files_before: Vec<_> = w
        .nodes
        .values()
        .map(|n| n.inner.file(KUBEADM_CONFIG_PATH))
        .collect();
    w.take_log();
    let report = w.bootstrap(Duration::ZERO).run().await.unwrap();
    assert!(!report.changed(), "{report}");
    assert!(
        report
            .nodes
            .iter()
            .all(|n| n.outcome == NodeOutcome::AlreadyMember)
    );
    let log = w.log();
    assert!(
        !log.iter().any(|(_, l)| l.starts_with("kubeadm init")
            || l.starts_with("kubeadm join")
            || l.starts_with("kubeadm reset")),
        "{log:#?}"
    );
    let files_after: Vec<_> = w
        .nodes
        .values()
        .map(|n| n.inner.file(KUBEADM_CONFIG_PATH))
        .collect();
    assert_eq!(files_before, files_after);
}

#[tokio::test]
async fn a_failing_worker_is_reported_and_does_not_stop_the_others() {
    let w = world(3, 6);
    w.cluster.lock().unwrap().fail_join.insert("w3".into(), 99);
    let report = w.bootstrap(Duration::ZERO).run().await.unwrap();
    let failures = report.failures();
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0].0, "w3");
    assert!(
        failures[0].1.contains("w3") && failures[0].1.contains("failed twice"),
        "{}",
        failures[0].1
    );
    for i in [1, 2, 4, 5, 6] {
        let n = report
            .nodes
            .iter()
            .find(|n| n.node == format!("w{i}"))
            .unwrap();
        assert_eq!(n.outcome, NodeOutcome::Joined);
    }
    // Reset after each failed attempt, and no secret in the message.
    let log = w.log();
    let resets = log
        .iter()
        .filter(|(h, l)| h == "w3" && l.starts_with("kubeadm reset -f"))
        .count();
    assert_eq!(resets, 2);
    assert!(!failures[0].1.contains("0123456789abcdef"));
    // The failed node is not waited for (the run ends well before the Ready timeout), and the
    // report does not claim every node Ready while one failed.
    assert!(report.ready_awaited);
    assert!(report.members_ready);
    assert!(!report.all_ready);
    assert!(report.to_string().ends_with("all Ready: no"), "{report}");
}

#[tokio::test]
async fn a_join_that_fails_once_is_reset_and_retried() {
    let w = world(2, 1);
    w.cluster.lock().unwrap().fail_join.insert("cp2".into(), 1);
    let report = w.bootstrap(Duration::ZERO).run().await.unwrap();
    let cp2 = &report.nodes[1];
    assert_eq!(
        (cp2.outcome.clone(), cp2.attempts),
        (NodeOutcome::Joined, 2)
    );
    let log = w.log();
    let first = pos(&log, "cp2", "kubeadm join");
    let reset = pos(
        &log,
        "cp2",
        "kubeadm reset -f --config /etc/kubernetes/kubeadm/reset-config.yaml",
    );
    assert!(first < reset);
    assert_eq!(
        log.iter()
            .filter(|(h, l)| h == "cp2" && l.starts_with("kubeadm join"))
            .count(),
        2
    );
}

#[tokio::test]
async fn a_failed_control_plane_join_stops_later_ones() {
    let w = world(3, 2);
    w.cluster.lock().unwrap().fail_join.insert("cp2".into(), 99);
    let report = w.bootstrap(Duration::ZERO).run().await.unwrap();
    assert!(matches!(report.nodes[1].outcome, NodeOutcome::Failed(_)));
    assert_eq!(report.nodes[2].outcome, NodeOutcome::NotAttempted);
    assert!(!report.all_ready);
    assert!(
        !w.log()
            .iter()
            .any(|(h, l)| h == "cp3" && l.starts_with("kubeadm join"))
    );
}

#[tokio::test]
async fn expired_certificate_key_is_renewed_before_the_next_master_joins() {
    let w = world(3, 1);
    // The CNI takes 3 hours: the uploaded certificates are gone by then.
    let report = w
        .bootstrap(Duration::from_secs(3 * 3600))
        .run()
        .await
        .unwrap();
    assert!(report.renewed.contains(&"certificate-key"), "{report}");
    let log = w.log();
    let upload = pos(
        &log,
        "cp1",
        "kubeadm init phase upload-certs --upload-certs --certificate-key abab",
    );
    assert!(upload > pos(&log, "hook", "cni") && upload < pos(&log, "cp2", "kubeadm join"));
    // Only once: the renewal is fresh for cp3.
    assert_eq!(
        log.iter()
            .filter(|(_, l)| l.contains("upload-certs --upload-certs"))
            .count(),
        1
    );
}

#[tokio::test]
async fn expired_token_is_recreated_before_joins() {
    let w = world(2, 2);
    // The CNI takes 25 hours: the token from init expired.
    let report = w
        .bootstrap(Duration::from_secs(25 * 3600))
        .run()
        .await
        .unwrap();
    assert!(report.failures().is_empty(), "{report}");
    assert!(report.renewed.contains(&"token"), "{report}");
    let log = w.log();
    let create = pos(
        &log,
        "cp1",
        "kubeadm token create h4kube.0123456789abcdef --ttl 24h0m0s",
    );
    assert!(pos(&log, "cp1", "kubeadm token delete h4kube") < create);
    assert!(create < pos(&log, "cp2", "kubeadm join"));
}

#[tokio::test]
async fn a_rerun_after_losing_a_master_reuploads_certs_and_rejoins_it() {
    let w = world(3, 1);
    w.bootstrap(Duration::ZERO).run().await.unwrap();
    // cp3 was reset by hand.
    w.nodes["cp3"]
        .removed
        .lock()
        .unwrap()
        .insert(KUBELET_CONF_PATH.into());
    w.take_log();
    let report = w.bootstrap(Duration::ZERO).run().await.unwrap();
    assert_eq!(report.nodes[2].outcome, NodeOutcome::Joined);
    assert_eq!(report.nodes[1].outcome, NodeOutcome::AlreadyMember);
    let log = w.log();
    // This run did not upload the certificates itself, so it must before a control-plane join.
    assert!(pos(&log, "cp1", "kubeadm init phase upload-certs") < pos(&log, "cp3", "kubeadm join"));
    assert!(
        !log.iter()
            .any(|(h, l)| h == "cp1" && l.starts_with("kubeadm init --config"))
    );
}

#[tokio::test]
async fn parallel_control_plane_joins_are_opt_in_and_work() {
    let w = world(3, 1);
    let b = w.bootstrap(Duration::ZERO).options(BootstrapOptions {
        parallel_control_plane_joins: true,
        ready_poll: Duration::from_millis(1),
        ready_timeout: Duration::from_millis(200),
        ..BootstrapOptions::default()
    });
    let report = b.run().await.unwrap();
    assert!(report.failures().is_empty() && report.all_ready, "{report}");
}

#[tokio::test]
async fn wrong_ca_pin_and_missing_hosts_are_errors() {
    let w = world(1, 1);
    let mut b_secrets = w.secrets.clone();
    b_secrets.ca_cert_hash = Some(format!("sha256:{}", "00".repeat(32)).parse().unwrap());
    let hosts: BTreeMap<String, Host> = w
        .nodes
        .iter()
        .map(|(k, v)| (k.clone(), Arc::clone(v) as Host))
        .collect();
    let err = Bootstrap::new(w.input.clone(), b_secrets, hosts.clone())
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CaMismatch { .. }), "{err}");
    let mut fewer = hosts;
    fewer.remove("w1");
    let err = Bootstrap::new(w.input.clone(), w.secrets.clone(), fewer).unwrap_err();
    assert!(err.to_string().contains("w1"), "{err}");
}

#[tokio::test]
async fn removing_a_master_removes_its_etcd_member() {
    let w = world(3, 0);
    w.bootstrap(Duration::ZERO).run().await.unwrap();
    w.nodes["cp1"].inner.respond(
        "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system exec etcd-cp1 -- etcdctl",
        Output::ok(
            "8e9e05c52164694d, started, cp1, https://10.0.0.21:2380, https://10.0.0.21:2379, false\n\
             2a1b3c4d5e6f7081, started, cp3, https://10.0.0.23:2380, https://10.0.0.23:2379, false\n",
        ),
    );
    w.take_log();
    w.bootstrap(Duration::ZERO)
        .remove_control_plane_node("cp3", "cp1")
        .await
        .unwrap();
    let log = w.log();
    let reset = pos(&log, "cp3", "kubeadm reset -f");
    let remove = pos(
        &log,
        "cp1",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system exec etcd-cp1 -- etcdctl --cacert /etc/kubernetes/pki/etcd/ca.crt",
    );
    assert!(reset < remove);
    assert!(
        log.iter()
            .any(|(h, l)| h == "cp1" && l.ends_with("member remove 2a1b3c4d5e6f7081")),
        "{log:#?}"
    );
    assert!(
        !log.iter()
            .any(|(_, l)| l.ends_with("member remove 8e9e05c52164694d"))
    );
    assert!(
        log.iter()
            .any(|(h, l)| h == "cp1" && l.contains("delete node cp3"))
    );
}

#[tokio::test]
async fn planned_files_are_pushed_instead_of_the_flows_render() {
    use hakube_kubeadm::{RESET_CONFIG_PATH, render_cluster};

    let w = world(2, 2);
    // What a plan tree holds: the render without the CA pin (joining nodes have no kubeadm
    // config yet), here edited after review so the pushed bytes tell which copy went.
    let plan = render_cluster(&w.input, &w.secrets).unwrap();
    let mut planned: BTreeMap<String, Vec<File>> = BTreeMap::new();
    for node in &plan.nodes {
        let files = node
            .files
            .iter()
            .map(|f| {
                File::new(
                    &f.path,
                    format!("{}# from the plan\n", String::from_utf8_lossy(&f.content)),
                )
                .mode(f.mode)
            })
            .collect();
        planned.insert(node.name.clone(), files);
    }
    // A stale join configuration in the plan is not used: the flow renders it with this
    // run's CA pin.
    planned
        .get_mut("w1")
        .unwrap()
        .push(File::new(KUBEADM_CONFIG_PATH, "stale").mode(0o600));
    let report = w
        .bootstrap(Duration::ZERO)
        .planned_files(planned)
        .run()
        .await
        .unwrap();
    assert!(report.failures().is_empty(), "{report}");
    let text = |node: &str, path: &str| {
        String::from_utf8(w.nodes[node].inner.file(path).unwrap()).unwrap()
    };
    assert!(text("cp1", KUBEADM_CONFIG_PATH).ends_with("# from the plan\n"));
    assert_eq!(
        w.nodes["cp1"]
            .inner
            .file_meta(KUBEADM_CONFIG_PATH)
            .unwrap()
            .mode,
        0o600
    );
    for n in ["cp1", "cp2", "w1", "w2"] {
        assert!(
            text(n, RESET_CONFIG_PATH).ends_with("# from the plan\n"),
            "{n}"
        );
    }
    for n in ["cp2", "w1", "w2"] {
        let join = text(n, KUBEADM_CONFIG_PATH);
        assert!(
            join.contains("kind: JoinConfiguration") && !join.contains("# from the plan"),
            "{n}: {join}"
        );
    }
}
