//! The `provision` example binary as an operator runs it, against fakepve (driven through the
//! harness of `crates/proxmox-api/tests/harness`): the seed topology, a re-run, a dry run, bad
//! credentials, a wrong certificate pin, a broken topology file and a run killed midway.
//!
//! Each test starts its own fake. Without the venv holding fakepve (`scripts/install-test-deps`)
//! the tests print `SKIP <test>: <why>` and return, unless `HAKUBE_LAB_STRICT=1` (CI), where a
//! missing fake is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers panic on unexpected answers"
)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hakube_topology::Cluster;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;

/// The API token the fake accepts, and its secret (which must never be printed).
const TOKEN_ID: &str = "root@pam!hakube";
const TOKEN_SECRET: &str = "Tok3n-S3cret-4f9c1e7a";

/// How long any one run of the binary may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------------------ the fake

/// The venv's python if it can import fakepve, else why not (checked once).
fn fakepve_python() -> Result<PathBuf, String> {
    static PROBE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let venv = std::env::var_os("HAKUBE_VENV").map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"),
                PathBuf::from,
            );
            let py = venv.join("bin/python");
            if !py.exists() {
                return Err(format!(
                    "no venv with fakepve at {} (run scripts/install-test-deps)",
                    venv.display()
                ));
            }
            let ok = std::process::Command::new(&py)
                .args(["-c", "import fakepve"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                Ok(py)
            } else {
                Err(format!(
                    "{} cannot import fakepve (run scripts/install-test-deps)",
                    py.display()
                ))
            }
        })
        .clone()
}

/// fakepve's python, or None after printing `SKIP <test>: <why>` (a failure when strict).
fn require_fakepve(test: &str) -> Option<PathBuf> {
    match fakepve_python() {
        Ok(py) => Some(py),
        Err(why) => {
            assert!(
                std::env::var(hakube_lab::STRICT_ENV).as_deref() != Ok("1"),
                "{test}: fakepve is needed ({}=1): {why}",
                hakube_lab::STRICT_ENV
            );
            eprintln!("SKIP {test}: {why}");
            None
        }
    }
}

/// A fakepve harness process on its own loopback address (a free port), stopped on drop.
struct Fake {
    child: Child,
    io: Mutex<Io>,
    url: String,
    /// The fake's self-signed certificate (PEM file, kept while the harness runs).
    ca: PathBuf,
    /// Its SHA-256 fingerprint, AA:BB:...
    fingerprint: String,
}

impl Fake {
    /// Starts a fake with no node (time in PVE seconds x `time_scale`); None when skipped.
    async fn start(test: &str, time_scale: f64) -> Option<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let py = require_fakepve(test)?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let host = format!("127.0.{}.{}", 10 + std::process::id() % 200, 100 + n % 150);
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/proxmox-api/tests/harness/fakepve_harness.py");
        let mut child = Command::new(py)
            .arg(script)
            .args(["--host", &host, "--port", "0", "--time-scale"])
            .arg(time_scale.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the fakepve harness");
        let stdin = child.stdin.take().expect("harness stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("harness stdout")).lines();
        let hello = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the harness did not start within 30 s")
            .expect("harness output")
            .expect("the harness exited before saying hello");
        let hello: Value = serde_json::from_str(&hello).expect("harness hello is JSON");
        Some(Self {
            child,
            io: Mutex::new(Io {
                stdin: Some(stdin),
                lines,
            }),
            url: hello["url"].as_str().expect("url").to_owned(),
            ca: PathBuf::from(hello["ca"].as_str().expect("ca")),
            fingerprint: hello["fingerprint"]
                .as_str()
                .expect("fingerprint")
                .to_owned(),
        })
    }

    /// A fake prepared as the topology expects: its Proxmox nodes online, each node's template
    /// (local-lvm disk, cloud-init drive, guest agent on), and the API token.
    async fn seeded(test: &str, cluster: &Cluster, time_scale: f64) -> Option<Self> {
        let fake = Self::start(test, time_scale).await?;
        for node in &cluster.topology.proxmox.nodes {
            fake.cmd(json!({"op": "add_node", "name": node.name})).await;
            let id = node.template.expect("the seed has a template per node");
            fake.cmd(
                json!({"op": "add_vm", "vmid": id, "name": format!("ubuntu-24.04-{}", node.name),
                "node": node.name, "template": true,
                "config": {"scsi0": format!("local-lvm:base-{id}-disk-0,size=10G"), "memory": 2048,
                           "cores": 1, "scsihw": "virtio-scsi-single", "ostype": "l26",
                           "ide2": format!("local-lvm:vm-{id}-cloudinit,media=cdrom"),
                           "net0": "virtio=BC:24:11:00:00:0A,bridge=vmbr0", "agent": "1"}}),
            )
            .await;
        }
        fake.cmd(json!({"op": "add_token", "id": TOKEN_ID, "secret": TOKEN_SECRET}))
            .await;
        Some(fake)
    }

    /// Sends one harness command and returns its result; panics on a harness error.
    async fn cmd(&self, cmd: Value) -> Value {
        let mut io = self.io.lock().await;
        let mut line = serde_json::to_string(&cmd).unwrap();
        line.push('\n');
        let stdin = io.stdin.as_mut().expect("harness open");
        stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to harness");
        stdin.flush().await.expect("flush harness");
        let answer = io
            .lines
            .next_line()
            .await
            .expect("read harness")
            .expect("harness line");
        let v: Value = serde_json::from_str(&answer).expect("harness answer is JSON");
        assert!(
            v.get("error").is_none(),
            "harness command {cmd} failed: {v}"
        );
        v["ok"].clone()
    }

    async fn request_count(&self) -> u64 {
        self.cmd(json!({"op": "request_count"}))
            .await
            .as_u64()
            .unwrap()
    }

    /// The requests from index `since` that change something: `METHOD path`.
    async fn mutating_since(&self, since: u64) -> Vec<String> {
        let all = self.cmd(json!({"op": "requests", "since": since})).await;
        all.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] != "GET" && r["method"] != "HEAD")
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["path"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// The VMs that are not templates, by VMID.
    async fn vms(&self) -> Vec<Value> {
        let all = self.cmd(json!({"op": "vms"})).await;
        all.as_array()
            .unwrap()
            .iter()
            .filter(|v| v["template"] != true)
            .cloned()
            .collect()
    }
}

// ---------------------------------------------------------------------------- the binary

/// The harness's command pipe: one JSON line in, one out.
struct Io {
    /// None once closed (which stops the harness).
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Drop for Fake {
    /// Closes the harness's stdin, so it stops and removes its temporary directory (the
    /// certificate); kills it if it has not exited within 2 s.
    fn drop(&mut self) {
        drop(self.io.get_mut().stdin.take());
        for _ in 0..200 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.start_kill();
    }
}

/// What the operator sees.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// The `provision` example binary as the code stands (see `support::example_binary`).
fn provision_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| support::example_binary("provision"))
        .clone()
}

/// The `provision` command, without the PVE_* variables of the test's own environment.
fn provision_command() -> Command {
    let mut cmd = Command::new(provision_binary());
    for var in [
        "PVE_URL",
        "PVE_TOKEN_ID",
        "PVE_TOKEN_SECRET",
        "PVE_USER",
        "PVE_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `provision` with `args` and `env` to its end.
async fn provision(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = provision_command();
    cmd.args(args).envs(env.iter().copied());
    let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
        .await
        .expect("provision did not finish within its timeout")
        .expect("run provision");
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Flags for the seed on `fake`, authenticated with the token (secret in the environment).
fn fake_args(fake: &Fake) -> Vec<&str> {
    vec![
        "--pve-url",
        &fake.url,
        "--token-id",
        TOKEN_ID,
        "--fingerprint",
        &fake.fingerprint,
        "--agent-timeout",
        "10",
    ]
}

const TOKEN_ENV: [(&str, &str); 1] = [("PVE_TOKEN_SECRET", TOKEN_SECRET)];

fn seed() -> Cluster {
    hakube_examples::load_topology(&hakube_examples::default_topology()).unwrap()
}

/// The progress lines (`[   0.12s] VM STEP PHASE`) as (vm, step, phase), in order.
fn progress(out: &str) -> Vec<(String, String, String)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('[')?.split_once("s] ")?.1;
            let mut w = rest.split_whitespace();
            let (vm, step) = (w.next()?.to_owned(), w.next()?.to_owned());
            Some((vm, step, w.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

/// The HA rules `--ha` creates: one per anti-affine role, keeping its VMs apart
/// (`create HA rule hakube-seed-vault-apart: keep vm:207,vm:208,vm:209 apart`).
fn ha_rules(cluster: &Cluster) -> Vec<String> {
    let mut roles: Vec<&str> = Vec::new();
    for v in cluster.vms.iter().filter(|v| v.role.anti_affine()) {
        if !roles.contains(&v.role.as_str()) {
            roles.push(v.role.as_str());
        }
    }
    roles.sort_unstable();
    roles
        .into_iter()
        .map(|role| {
            let ids: Vec<String> = cluster
                .vms
                .iter()
                .filter(|v| v.role.as_str() == role)
                .map(|v| format!("vm:{}", v.vmid))
                .collect();
            format!(
                "create HA rule hakube-seed-{role}-apart: keep {} apart",
                ids.join(",")
            )
        })
        .collect()
}

/// The changes a `--ha` run makes on a fresh cluster: clone, configure, resize and start
/// each VM, an HA resource per anti-affine VM, the HA rules.
fn changes_with_ha(cluster: &Cluster) -> usize {
    let anti = cluster.vms.iter().filter(|v| v.role.anti_affine()).count();
    4 * cluster.vms.len() + anti + ha_rules(cluster).len()
}

/// Every VM of the topology exists on its node, runs, and carries its size, network,
/// cloud-init and ownership as PVE stores them; no other VM exists.
async fn assert_converged(fake: &Fake, cluster: &Cluster) {
    let vms = fake.vms().await;
    let ids: Vec<u64> = vms.iter().map(|v| v["vmid"].as_u64().unwrap()).collect();
    let want: Vec<u64> = cluster.vms.iter().map(|v| u64::from(v.vmid)).collect();
    assert_eq!(ids, want, "exactly the topology's VMs");
    let t = &cluster.topology;
    for (vm, got) in cluster.vms.iter().zip(&vms) {
        let cfg = &got["config"];
        let ctx = format!("{}: {got}", vm.name);
        assert_eq!(got["name"], vm.name.as_str(), "{ctx}");
        assert_eq!(got["node"], vm.proxmox_node.as_str(), "{ctx}");
        assert_eq!(got["status"], "running", "{ctx}");
        assert_eq!(got["lock"], Value::Null, "{ctx}");
        assert_eq!(cfg["cores"], vm.size.cores.to_string(), "{ctx}");
        assert_eq!(cfg["memory"], vm.size.memory_mib.to_string(), "{ctx}");
        let disk = cfg["scsi0"].as_str().unwrap_or_default();
        assert!(
            disk.starts_with(&format!("{}:", t.proxmox.storage))
                && disk.contains(&format!("size={}G", vm.size.disk_gib)),
            "{ctx}"
        );
        assert!(
            cfg["net0"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("bridge={}", t.proxmox.bridge)),
            "{ctx}"
        );
        assert_eq!(
            cfg["ipconfig0"],
            format!(
                "ip={}/{},gw={}",
                vm.address,
                t.network.cidr.prefix_len(),
                t.network.gateway
            ),
            "{ctx}"
        );
        assert_eq!(cfg["ciuser"], t.ssh.user.as_str(), "{ctx}");
        assert!(
            cfg["sshkeys"]
                .as_str()
                .unwrap_or_default()
                .starts_with("ssh-ed25519%20AAAAC3"),
            "{ctx}"
        );
        assert_eq!(cfg["nameserver"], "10.20.0.1", "{ctx}");
        assert_eq!(cfg["searchdomain"], "k8s.example.lan", "{ctx}");
        assert_eq!(cfg["agent"], "1", "{ctx}");
        assert_eq!(cfg["onboot"], "1", "{ctx}");
        let tags: Vec<&str> = cfg["tags"]
            .as_str()
            .unwrap_or_default()
            .split(';')
            .collect();
        assert!(
            tags.contains(&"hakube-seed")
                && tags.contains(&format!("role-{}", vm.role.as_str()).as_str()),
            "{ctx}"
        );
        assert!(
            cfg["description"]
                .as_str()
                .unwrap_or_default()
                .contains("managed-by=hakube owner=hakube-seed"),
            "{ctx}"
        );
    }
}

// ------------------------------------------------------------------------------- the tests

#[tokio::test]
async fn seed_topology_converges_and_a_rerun_changes_nothing() {
    let cluster = seed();
    let Some(fake) = Fake::seeded(
        "seed_topology_converges_and_a_rerun_changes_nothing",
        &cluster,
        0.0,
    )
    .await
    else {
        return;
    };
    let mut args = fake_args(&fake);
    args.push("--ha");
    let run = provision(&args, &TOKEN_ENV).await;
    assert!(run.status.success(), "{run}");
    assert!(run.stderr.is_empty(), "{run}");
    let out = &run.stdout;
    assert!(
        out.starts_with(&format!(
            "{} VMs for cluster seed at {}\n",
            cluster.vms.len(),
            fake.url
        )),
        "{run}"
    );
    // Progress: each VM's steps start and finish one after the other, then its guest agent
    // is waited for.
    let events = progress(out);
    for vm in &cluster.vms {
        let mut last_done = None;
        for step in ["clone", "configure", "resize", "start", "agent"] {
            let at = |phase: &str| {
                events
                    .iter()
                    .position(|(v, s, p)| *v == vm.name && s == step && p == phase)
                    .unwrap_or_else(|| panic!("no `{} {step} {phase}` line: {run}", vm.name))
            };
            let (started, done) = (at("..."), at("done"));
            assert!(
                last_done < Some(started) && started < done,
                "{}: {step} out of order: {run}",
                vm.name
            );
            last_done = Some(done);
        }
    }
    assert!(
        !out.contains("FAILED") && !out.contains("retrying"),
        "{run}"
    );
    // The summary: one row per VM with the address its guest agent reported, the HA rules,
    // the count of changes.
    for vm in &cluster.vms {
        let mut want = vec!["clone,", "configure,", "resize,", "start"];
        if vm.role.anti_affine() {
            want = vec!["clone,", "configure,", "resize,", "start,", "ha-resource"];
        }
        let row = format!(
            "{} {} {} changed {} {}",
            vm.name,
            vm.vmid,
            vm.proxmox_node,
            vm.address,
            want.join(" ")
        );
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == row),
            "no summary row `{row}`: {run}"
        );
    }
    let rules = ha_rules(&cluster);
    assert_eq!(
        rules.len(),
        3,
        "the seed has load balancers, masters and Vault"
    );
    for rule in &rules {
        let line = format!("cluster: {rule}");
        assert!(out.lines().any(|l| l == line), "no `{line}`: {run}");
    }
    // The seed: 16 VMs x 4 steps, 9 HA resources, 3 HA rules.
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("{} change(s) in ", changes_with_ha(&cluster)))
            && last.ends_with('s'),
        "{run}"
    );

    // What the fake holds.
    assert_converged(&fake, &cluster).await;
    let ha = fake.cmd(json!({"op": "ha"})).await;
    let mut sids: Vec<&str> = ha["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sid"].as_str().unwrap())
        .collect();
    sids.sort_unstable();
    let anti: Vec<String> = cluster
        .vms
        .iter()
        .filter(|v| v.role.anti_affine())
        .map(|v| format!("vm:{}", v.vmid))
        .collect();
    assert_eq!(sids, anti);
    let created = ha["rules"].as_array().unwrap();
    assert_eq!(created.len(), rules.len(), "{ha}");
    assert!(
        created
            .iter()
            .all(|r| r["affinity"] == "negative" && r["type"] == "resource-affinity"),
        "{ha}"
    );

    // Re-runs are safe: the same command changes nothing and sends no mutating request.
    // (Trusting the fake's CA this time instead of pinning its fingerprint.)
    let before = fake.request_count().await;
    let ca = fake.ca.to_str().unwrap();
    let args = [
        "--pve-url",
        &fake.url,
        "--token-id",
        TOKEN_ID,
        "--ca",
        ca,
        "--agent-timeout",
        "10",
        "--ha",
    ];
    let again = provision(&args, &TOKEN_ENV).await;
    assert!(again.status.success(), "{again}");
    assert_eq!(
        fake.mutating_since(before).await,
        Vec::<String>::new(),
        "{again}"
    );
    assert!(fake.request_count().await > before, "the re-run did look");
    for vm in &cluster.vms {
        let row = format!(
            "{} {} {} ok {} -",
            vm.name, vm.vmid, vm.proxmox_node, vm.address
        );
        assert!(
            again
                .stdout
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == row),
            "no summary row `{row}`: {again}"
        );
    }
    // Only the guest agents are asked for their addresses again.
    let steps: BTreeSet<String> = progress(&again.stdout)
        .into_iter()
        .map(|(_, step, _)| step)
        .collect();
    assert_eq!(steps, BTreeSet::from(["agent".to_owned()]), "{again}");
    assert!(!again.stdout.contains("cluster: "), "{again}");
    let last = again.stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("0 change(s) in "), "{again}");
    assert_converged(&fake, &cluster).await;

    // And a dry run now has nothing to do.
    let before = fake.request_count().await;
    let mut args = fake_args(&fake);
    args.extend(["--ha", "--dry-run"]);
    let dry = provision(&args, &TOKEN_ENV).await;
    assert!(dry.status.success(), "{dry}");
    assert!(
        dry.stdout
            .contains("dry run: 0 action(s) planned, nothing changed\n\nnothing to do: every VM matches its spec\n"),
        "{dry}"
    );
    assert_eq!(fake.mutating_since(before).await, Vec::<String>::new());
}

#[tokio::test]
async fn dry_run_on_a_fresh_cluster_prints_the_plan_and_changes_nothing() {
    let cluster = seed();
    let Some(fake) = Fake::seeded(
        "dry_run_on_a_fresh_cluster_prints_the_plan_and_changes_nothing",
        &cluster,
        0.0,
    )
    .await
    else {
        return;
    };
    let mut args = fake_args(&fake);
    args.extend(["--dry-run", "--ha"]);
    let run = provision(&args, &TOKEN_ENV).await;
    assert!(run.status.success(), "{run}");
    assert!(run.stderr.is_empty(), "{run}");
    let out = &run.stdout;
    assert!(
        out.starts_with(&format!(
            "{} VMs for cluster seed at {}\n",
            cluster.vms.len(),
            fake.url
        )),
        "{run}"
    );
    // 16 x (clone, configure, grow, start), 9 HA resources, 3 HA rules.
    let planned = format!(
        "dry run: {} action(s) planned, nothing changed\n",
        changes_with_ha(&cluster)
    );
    assert!(out.contains(&planned), "no `{planned}`: {run}");
    for vm in &cluster.vms {
        let at = format!("{} ({} on {}): ", vm.name, vm.vmid, vm.proxmox_node);
        let want = [
            format!(
                "full clone of template {} on {} onto storage local-lvm",
                vm.template_vmid, vm.proxmox_node
            ),
            format!("grow scsi0 to {}G", vm.size.disk_gib),
            "start".to_owned(),
        ];
        for w in &want {
            let line = format!("{at}{w}");
            assert!(out.lines().any(|l| l == line), "no `{line}`: {run}");
        }
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{at}configure ")) && l.contains("ipconfig0")),
            "{}: no configure line: {run}",
            vm.name
        );
        assert_eq!(
            out.lines().any(|l| l == format!("{at}add HA resource")),
            vm.role.anti_affine(),
            "{}: {run}",
            vm.name
        );
    }
    for rule in ha_rules(&cluster) {
        let line = format!("cluster: {rule}");
        assert!(out.lines().any(|l| l == line), "no `{line}`: {run}");
    }
    // No step ran.
    assert!(
        !out.contains(" done\n") && !out.contains("change(s) in"),
        "{run}"
    );
    assert_eq!(fake.mutating_since(0).await, Vec::<String>::new());
    assert!(fake.request_count().await > 0, "the dry run did look");
    assert_eq!(fake.vms().await, Vec::<Value>::new());
}

#[tokio::test]
async fn bad_credentials_fail_clearly_without_showing_the_secret() {
    let cluster = seed();
    let Some(fake) = Fake::seeded(
        "bad_credentials_fail_clearly_without_showing_the_secret",
        &cluster,
        0.0,
    )
    .await
    else {
        return;
    };
    let wrong = "Wr0ng-Secret-b71d2c9e";
    let cases = [
        // A wrong token secret in the environment (the recommended way).
        (
            "wrong token secret (env)",
            fake_args(&fake),
            vec![("PVE_TOKEN_SECRET", wrong)],
        ),
        // A wrong token secret on the command line.
        (
            "wrong token secret (flag)",
            [fake_args(&fake), vec!["--token-secret", wrong]].concat(),
            vec![],
        ),
        // A wrong password for a ticket login.
        (
            "wrong password",
            vec![
                "--pve-url",
                &fake.url,
                "--fingerprint",
                &fake.fingerprint,
                "--pve-user",
                "root@pam",
            ],
            vec![("PVE_PASSWORD", wrong)],
        ),
    ];
    for (what, args, env) in &cases {
        let before = fake.request_count().await;
        let run = provision(args, env).await;
        assert!(!run.status.success(), "{what}: {run}");
        let err = run.stderr.trim_end();
        assert!(err.starts_with("error: "), "{what}: {run}");
        assert!(
            !err.contains('\n') && err.contains("authentication failure"),
            "{what}: the error says authentication failed: {run}"
        );
        if *what == "wrong password" {
            assert!(err.contains("as root@pam"), "{what}: names the user: {run}");
        }
        for secret in [wrong, TOKEN_SECRET] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{what}: a secret is shown: {run}"
            );
        }
        assert!(!run.stdout.contains("change(s)"), "{what}: {run}");
        assert!(fake.request_count().await > before, "{what}: it did try");
        let changed: Vec<String> = fake
            .mutating_since(before)
            .await
            .into_iter()
            .filter(|r| !r.ends_with("/access/ticket"))
            .collect();
        assert_eq!(changed, Vec::<String>::new(), "{what}");
    }
    // Missing half of the credentials: told before any request.
    let before = fake.request_count().await;
    let run = provision(&fake_args(&fake), &[]).await;
    assert!(!run.status.success(), "{run}");
    assert_eq!(
        run.stderr, "error: --token-id needs --token-secret or PVE_TOKEN_SECRET\n",
        "{run}"
    );
    assert_eq!(fake.request_count().await, before);
    assert_eq!(fake.vms().await, Vec::<Value>::new());
}

#[tokio::test]
async fn an_untrusted_certificate_stops_the_run_before_any_request() {
    let cluster = seed();
    let Some(fake) = Fake::seeded(
        "an_untrusted_certificate_stops_the_run_before_any_request",
        &cluster,
        0.0,
    )
    .await
    else {
        return;
    };
    // A pin that is not the fake's certificate: the fake's, with its first byte changed.
    let first = u8::from_str_radix(&fake.fingerprint[..2], 16).unwrap();
    let wrong_pin = format!("{:02X}{}", first ^ 0xff, &fake.fingerprint[2..]);
    let host = fake
        .url
        .trim_start_matches("https://")
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    let pinned = [
        "--pve-url",
        &fake.url,
        "--token-id",
        TOKEN_ID,
        "--fingerprint",
        &wrong_pin,
    ];
    // No trust flag: the system roots, which do not know the fake's self-signed certificate.
    let system_roots = ["--pve-url", &fake.url, "--token-id", TOKEN_ID];
    for (what, args) in [
        ("wrong pin", &pinned[..]),
        ("system roots", &system_roots[..]),
    ] {
        for dry in [false, true] {
            let mut args = args.to_vec();
            if dry {
                args.push("--dry-run");
            }
            let run = provision(&args, &TOKEN_ENV).await;
            assert!(!run.status.success(), "{what}: {run}");
            let err = run.stderr.trim_end();
            assert!(
                err.starts_with(&format!("error: TLS certificate of {host}"))
                    && err.contains("refused"),
                "{what}: {run}"
            );
            if what == "wrong pin" {
                // Both fingerprints, so the operator can tell a typo from a swapped server.
                assert!(
                    err.contains(&format!(
                        "certificate fingerprint {} does not match the pinned {wrong_pin}",
                        fake.fingerprint
                    )),
                    "{what}: {run}"
                );
            }
            assert!(!run.stderr.contains(TOKEN_SECRET), "{what}: {run}");
            assert!(!run.stdout.contains("change(s)"), "{what}: {run}");
        }
    }
    // The handshake failed: the fake never saw a request, let alone a change.
    assert_eq!(fake.request_count().await, 0);
    assert_eq!(fake.vms().await, Vec::<Value>::new());
    // A pin that is no fingerprint at all is refused before connecting.
    let run = provision(
        &[
            "--pve-url",
            &fake.url,
            "--token-id",
            TOKEN_ID,
            "--fingerprint",
            "AA:BB",
        ],
        &TOKEN_ENV,
    )
    .await;
    assert!(!run.status.success(), "{run}");
    assert!(run.stderr.starts_with("error: --fingerprint: "), "{run}");
    assert_eq!(fake.request_count().await, 0);
}

#[tokio::test]
async fn a_bad_topology_file_is_named_and_nothing_is_sent() {
    let Some(fake) = Fake::start("a_bad_topology_file_is_named_and_nothing_is_sent", 0.0).await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/seed-cluster.yaml")).unwrap();
    let broken = |name: &str, from: &str, to: &str| {
        assert!(seed.contains(from), "the seed no longer has `{from}`");
        let path = dir.path().join(name);
        std::fs::write(&path, seed.replace(from, to)).unwrap();
        path
    };
    let even = broken("even-masters.yaml", "count: 3 # masters", "count: 2");
    let typo = broken(
        "typo.yaml",
        "memory_mib: 8192, disk_gib: 64",
        "memory_mb: 8192, disk_gib: 64",
    );
    let missing = dir.path().join("missing.yaml");
    let cases = [
        (&even, vec!["control_plane.count", "quorum"]),
        (
            &typo,
            vec!["control_plane.size", "unknown field `memory_mb`"],
        ),
        (&missing, vec!["No such file"]),
    ];
    for (path, words) in cases {
        let file = path.to_str().unwrap();
        let mut args = fake_args(&fake);
        args.insert(0, file);
        let run = provision(&args, &TOKEN_ENV).await;
        assert!(!run.status.success(), "{file}: {run}");
        assert!(
            run.stderr.starts_with(&format!("error: {file}:")),
            "the error names the file: {run}"
        );
        for w in words {
            assert!(run.stderr.contains(w), "the error names `{w}`: {run}");
        }
        assert_eq!(run.stdout, "", "{run}");
    }
    assert_eq!(
        fake.request_count().await,
        0,
        "no request for a bad topology"
    );
}

#[tokio::test]
async fn a_killed_run_is_finished_by_the_next_one() {
    let cluster = seed();
    // PVE seconds x 0.01: a clone takes 0.4 s, a start 0.05 s.
    let Some(fake) = Fake::seeded("a_killed_run_is_finished_by_the_next_one", &cluster, 0.01).await
    else {
        return;
    };
    fake.cmd(json!({"op": "durations", "value": {"qmclone": 40, "qmstart": 5, "config": 1, "resize": 1}}))
        .await;
    let mut cmd = provision_command();
    cmd.args(fake_args(&fake)).envs(TOKEN_ENV);
    let mut child = cmd.spawn().unwrap();
    // Kill it once the first clones are under way (SIGKILL: no cleanup of any kind).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let clones = fake
            .mutating_since(0)
            .await
            .iter()
            .filter(|r| r.ends_with("/clone"))
            .count();
        if clones >= 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "provision started no clone"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().await.unwrap();
    // Killed midway: VMs half made (cloning), others not begun.
    let vms = fake.vms().await;
    assert!(
        !vms.is_empty()
            && vms
                .iter()
                .any(|v| v["status"] != "running" || !v["lock"].is_null()),
        "killed midway: {vms:?}"
    );

    let run = provision(&fake_args(&fake), &TOKEN_ENV).await;
    assert!(run.status.success(), "{run}");
    fake.cmd(json!({"op": "settle"})).await;
    assert_converged(&fake, &cluster).await;
    let before = fake.request_count().await;
    let again = provision(&fake_args(&fake), &TOKEN_ENV).await;
    assert!(again.status.success(), "{again}");
    assert!(
        again
            .stdout
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("0 change(s) in "),
        "{again}"
    );
    assert_eq!(fake.mutating_since(before).await, Vec::<String>::new());
}
