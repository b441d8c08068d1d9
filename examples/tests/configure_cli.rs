//! The `configure` example binary as an operator runs it, against fresh lab hosts (own `/etc`
//! with only a cloud image's accounts, empty `/run`, nothing installed: the lab's apt-get,
//! dpkg-query and systemctl stand-ins install as Debian's postinst would and run the real
//! HAProxy and keepalived) for the seed's 3 load balancers and its NFS server, with the real
//! `haproxy -c`, `keepalived -t`, `useradd` and `exportfs`.
//!
//! Asserted: a dry run changes nothing; the first run configures every host, one LB holds the
//! VIP, the VIP accepts connections on 6443 and the live exports match the plan; a second run
//! changes nothing and restarts nothing; a rendered `haproxy.cfg` that HAProxy rejects never
//! replaces the live one (the VIP keeps answering); an unknown host key and a host that is
//! gone are named while the others finish; a changed host key is refused. Prints each run's wall time.
//!
//! With the Vault VMs (`configure_seed_seven_hosts_with_vault`: the seed's 3 LBs, NFS server
//! and 3 Vault VMs running the real OpenBao): configured, bootstrapped and verified (Vault's
//! health through the VIP, a TLS handshake on 6443 once a TLS stand-in answers on a master's
//! address); a re-run changes and restarts nothing; a CSR signed the way cert-manager's issuer
//! does it through the VIP chains to the root CA, also after the Vault leader was killed; a
//! Vault whose keys are not ours is refused with nothing changed; no unseal key or root token
//! ever in the output.

#![allow(clippy::unwrap_used)]

#[path = "support/lab_topology.rs"]
mod lab_topology;
#[path = "support/pki.rs"]
mod pki;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use hakube_lab::{Lab, require_root};
use lab_topology::{Roles, lab_topology};
use pki::{assert_chains_to, csr};

const LBS: [&str; 3] = ["lb-1", "lb-2", "lb-3"];

/// The lab tests here share the kernel's NFS server and two cores: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| support::example_binary("configure"))
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let started = Instant::now();
    let out = Command::new(binary()).args(args).output().unwrap();
    let r = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!(
        "configure {} -> {} in {:.2}s\n--- stdout\n{}--- stderr\n{}---",
        args.join(" "),
        out.status,
        started.elapsed().as_secs_f64(),
        r.stdout,
        r.stderr
    );
    r
}

/// The summary line of `host`: `HOST CHANGES TIME RESULT`.
fn summary<'a>(r: &'a Run, host: &str) -> Vec<&'a str> {
    r.stdout
        .lines()
        .rev()
        .find(|l| l.split_whitespace().next() == Some(host))
        .unwrap_or_else(|| panic!("no summary line for {host}:\n{}", r.stdout))
        .split_whitespace()
        .collect()
}

#[test]
fn configure_fresh_lbs_and_nfs_then_rerun() {
    if !require_root("configure_fresh_lbs_and_nfs_then_rerun") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if Path::new("/proc/fs/nfsd/exports").exists() {
        // Lab hosts share the kernel: exportfs would change the machine's live exports.
        println!("SKIP configure_fresh_lbs_and_nfs_then_rerun: a kernel NFS server is active here");
        return;
    }
    let lab = Lab::builder("configure")
        .hosts(LBS.iter().copied().chain(["nfs-1"]))
        .fresh_hosts()
        .private_dir("/var/lib/nfs")
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topology = dir.path().join("lab-cluster.yaml");
    let roles = Roles {
        lbs: &LBS,
        nfs: Some("nfs-1"),
        ..Roles::default()
    };
    std::fs::write(&topology, lab_topology(&lab, &roles)).unwrap();
    let out = dir.path().join("out");
    let key = lab.ssh_private_key().to_str().unwrap().to_owned();
    let known = lab.known_hosts_file().to_str().unwrap().to_owned();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            topology.to_str().unwrap(),
            "--ssh-key",
            &key,
            "--user",
            "root",
            "--known-hosts",
            &known,
            "--only",
            "lb,nfs",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let run_with = |extra: &[&str]| {
        let a = args(extra);
        run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // Dry run: every change listed as due, nothing installed or written.
    let dry = run_with(&["--dry-run"]);
    assert!(dry.ok, "{}", dry.stderr);
    assert!(dry.stdout.contains("would be installed"), "{}", dry.stdout);
    assert!(
        !lab.host("lb-1")
            .installed_packages()
            .iter()
            .any(|p| p == "haproxy")
    );
    assert!(
        lab.host("lb-1")
            .read_file("/etc/haproxy/haproxy.cfg")
            .is_err()
    );

    // First run: every host configured and verified.
    let first = run_with(&[]);
    assert!(first.ok, "{}\n{}", first.stdout, first.stderr);
    for h in LBS.iter().chain(&["nfs-1"]) {
        let s = summary(&first, h);
        assert_eq!(s[3], "ok", "{h}: {s:?}");
        assert!(s[1].parse::<usize>().unwrap() > 5, "{h}: {s:?}");
    }
    assert!(first.stdout.contains("holds the VIP"), "{}", first.stdout);
    assert!(
        first.stdout.contains(":6443 accepts connections"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("exports live on nfs-1 as planned"),
        "{}",
        first.stdout
    );
    let lb1 = lab.host("lb-1");
    assert!(lb1.installed_packages().iter().any(|p| p == "keepalived"));
    assert!(
        lb1.exec("getent passwd keepalived_script")
            .unwrap()
            .status
            .success()
    );
    let pids: Vec<Option<u32>> = LBS
        .iter()
        .map(|h| lab.host(h).service_pid("haproxy"))
        .collect();
    assert!(pids.iter().all(Option::is_some), "{pids:?}");

    // Second run: no change anywhere, nothing restarted or reloaded.
    for h in LBS.iter().chain(&["nfs-1"]) {
        lab.host(h).clear_calls("systemctl");
    }
    let second = run_with(&[]);
    assert!(second.ok, "{}", second.stderr);
    assert!(
        second.stdout.contains("4 host(s), 0 change(s), 0 failed"),
        "{}",
        second.stdout
    );
    for h in LBS.iter().chain(&["nfs-1"]) {
        let calls = lab.host(h).calls("systemctl");
        assert!(
            calls.iter().all(|c| c[0].starts_with("is-")),
            "{h}: {calls:?}"
        );
    }
    let again: Vec<Option<u32>> = LBS
        .iter()
        .map(|h| lab.host(h).service_pid("haproxy"))
        .collect();
    assert_eq!(again, pids, "HAProxy restarted");

    // A haproxy.cfg HAProxy rejects (TLS termination with a certificate that is not there):
    // refused on every LB, the live config keeps serving the VIP.
    let live = lb1.read_to_string("/etc/haproxy/haproxy.cfg").unwrap();
    let broken = std::fs::read_to_string(&topology).unwrap().replace(
        "  tls: passthrough",
        "  tls: terminate\n  certificate: /etc/haproxy/certs/missing.pem",
    );
    std::fs::write(&topology, broken).unwrap();
    let refused = run_with(&["--only", "lb"]);
    assert!(!refused.ok);
    assert!(
        refused
            .stderr
            .contains("lb-1: file /etc/haproxy/haproxy.cfg failed"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("the live file is unchanged"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        lb1.read_to_string("/etc/haproxy/haproxy.cfg").unwrap(),
        live
    );
    let again: Vec<Option<u32>> = LBS
        .iter()
        .map(|h| lab.host(h).service_pid("haproxy"))
        .collect();
    assert_eq!(again, pids, "HAProxy restarted");

    // An empty known_hosts: every host refused before any change, each named.
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    std::fs::write(&topology, lab_topology(&lab, &roles)).unwrap();
    let mut a = args(&[]);
    let at = a.iter().position(|x| x == &known).unwrap();
    a[at] = empty.to_str().unwrap().to_owned();
    let untrusted = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!untrusted.ok);
    for h in LBS.iter().chain(&["nfs-1"]) {
        assert!(
            untrusted.stderr.contains(&format!("{h}: unknown host key")),
            "{h}: {}",
            untrusted.stderr
        );
    }

    // lb-2 reinstalled (a new host key): refused and named, nothing changed on it, the others
    // finish.
    lab.host("lb-2").rotate_ssh_host_key().unwrap();
    let changed = run_with(&[]);
    assert!(!changed.ok);
    assert!(
        changed.stderr.contains("lb-2: HOST KEY CHANGED"),
        "{}",
        changed.stderr
    );
    for h in ["lb-1", "lb-3", "nfs-1"] {
        assert_eq!(summary(&changed, h)[3], "ok", "{}", changed.stdout);
    }
    lab.refresh_known_hosts().unwrap();

    // The NFS VM is gone: it is named, the load balancers still finish.
    lab.remove_host("nfs-1").unwrap();
    let gone = run_with(&[]);
    assert!(!gone.ok);
    assert!(gone.stderr.contains("nfs-1"), "{}", gone.stderr);
    for h in LBS {
        assert_eq!(summary(&gone, h)[3], "ok", "{}", gone.stdout);
    }
}

const VAULTS: [&str; 3] = ["vault-1", "vault-2", "vault-3"];

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn configure_seed_seven_hosts_with_vault() {
    if !require_root("configure_seed_seven_hosts_with_vault") {
        return;
    }
    if Path::new("/proc/fs/nfsd/exports").exists() {
        println!("SKIP configure_seed_seven_hosts_with_vault: a kernel NFS server is active here");
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let lab = Lab::builder("configvault")
        .hosts(
            LBS.iter()
                .copied()
                .chain(["nfs-1"])
                .chain(VAULTS)
                .chain(["master-1"]),
        )
        .fresh_hosts()
        .private_dir("/var/lib/nfs")
        .private_dir("/opt/openbao")
        .private_dir("/usr/local/sbin")
        .build()
        .unwrap();
    if !lab
        .host("master-1")
        .exec("apt-get install -y openbao")
        .unwrap()
        .status
        .success()
    {
        println!(
            "SKIP configure_seed_seven_hosts_with_vault: no OpenBao `bao` (scripts/install-test-deps)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let topology = dir.path().join("lab-cluster.yaml");
    let roles = Roles {
        lbs: &LBS,
        nfs: Some("nfs-1"),
        vaults: &VAULTS,
        ..Roles::default()
    };
    std::fs::write(&topology, lab_topology(&lab, &roles)).unwrap();
    let out = dir.path().join("out");
    let key = lab.ssh_private_key().to_str().unwrap().to_owned();
    let known = lab.known_hosts_file().to_str().unwrap().to_owned();
    let args: Vec<String> = [
        topology.to_str().unwrap(),
        "--ssh-key",
        &key,
        "--user",
        "root",
        "--known-hosts",
        &known,
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut outputs = String::new();

    // First run: 7 hosts configured, Vault bootstrapped, everything verified.
    let t = Instant::now();
    let first = run(&argv);
    let first_time = t.elapsed();
    outputs.push_str(&first.stdout);
    outputs.push_str(&first.stderr);
    assert!(first.ok, "{}\n{}", first.stdout, first.stderr);
    for h in LBS.iter().chain(&["nfs-1"]).chain(&VAULTS) {
        assert_eq!(summary(&first, h)[3], "ok", "{h}");
    }
    for want in [
        "7 host(s)",
        "holds the VIP",
        ":6443 accepts connections",
        "no API server answers behind the VIP yet",
        "answers Vault's health through HAProxy",
        "initialised (5 key shares, threshold 3)",
        "intermediate CA generated",
        "file /etc/openbao/snapshot.token: created",
        "exports live on nfs-1 as planned",
    ] {
        assert!(first.stdout.contains(want), "{want}:\n{}", first.stdout);
    }
    let keys = out.join(hakube_plan::VAULT_KEYS_PATH);
    assert_eq!(mode(&keys), 0o600);
    assert_eq!(
        mode(&out.join(hakube_plan::VAULT_TLS_DIR).join("ca.key")),
        0o600
    );
    let v1 = lab.host("vault-1");
    assert_eq!(
        v1.run("stat -c '%a %U' /opt/openbao/tls/tls.key")
            .unwrap()
            .trim(),
        "600 openbao"
    );
    assert!(v1.read_to_string("/etc/openbao/snapshot.token").is_ok());

    // A TLS server on master-1's planned address (an API server stand-in, on the lab host
    // master-1 as a second address): 6443 through the VIP now completes a handshake.
    let cluster = hakube_topology::load(&std::fs::read_to_string(&topology).unwrap(), "t").unwrap();
    let planned = cluster
        .vms
        .iter()
        .find(|v| v.name == "master-1")
        .unwrap()
        .address;
    let m1 = lab.host("master-1");
    m1.run(&format!(
        "ip addr add {planned}/{} dev $(ip -o link | awk -F': ' '$2 !~ /^lo/ {{print $2; exit}}' | cut -d@ -f1)",
        lab.subnet().prefix_len()
    ))
    .unwrap();
    m1.run(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
         -subj /CN=master-1 -keyout /tmp/api.key -out /tmp/api.crt 2>/dev/null",
    )
    .unwrap();
    m1.spawn(
        "apiserver",
        "exec openssl s_server -accept 6443 -cert /tmp/api.crt -key /tmp/api.key -www -quiet",
    )
    .unwrap();
    m1.wait_for_port(6443, std::time::Duration::from_secs(10))
        .unwrap();
    assert!(
        std::net::TcpStream::connect((planned, 6443)).is_ok(),
        "the stand-in answers on {planned}"
    );

    // Second run: nothing changes, nothing restarts, the TLS path is checked.
    let pids: Vec<Option<u32>> = VAULTS
        .iter()
        .map(|h| lab.host(h).service_pid("openbao"))
        .collect();
    assert!(pids.iter().all(Option::is_some), "{pids:?}");
    for h in LBS.iter().chain(&["nfs-1"]).chain(&VAULTS) {
        lab.host(h).clear_calls("systemctl");
    }
    let t = Instant::now();
    let second = run(&argv);
    let second_time = t.elapsed();
    outputs.push_str(&second.stdout);
    outputs.push_str(&second.stderr);
    assert!(second.ok, "{}\n{}", second.stdout, second.stderr);
    assert!(
        second.stdout.contains("7 host(s), 0 change(s), 0 failed"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("vault: 0 change(s)"),
        "{}",
        second.stdout
    );
    assert!(
        second
            .stdout
            .contains(":6443 accepts connections and completes a TLS handshake"),
        "{}",
        second.stdout
    );
    for h in LBS.iter().chain(&["nfs-1"]).chain(&VAULTS) {
        let calls = lab.host(h).calls("systemctl");
        assert!(
            calls.iter().all(|c| c[0].starts_with("is-")),
            "{h}: {calls:?}"
        );
    }
    let again: Vec<Option<u32>> = VAULTS
        .iter()
        .map(|h| lab.host(h).service_pid("openbao"))
        .collect();
    assert_eq!(again, pids, "OpenBao restarted");

    // cert-manager's way (`pki_int/sign/<role>` through the VIP): a chain to the root CA,
    // also right after the leader died.
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&keys).unwrap()).unwrap();
    let root_token = hakube_vault::Secret::new(kept["root_token"].as_str().unwrap());
    let unseal: Vec<String> = kept["unseal_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let ca = std::fs::read_to_string(out.join(hakube_plan::VAULT_TLS_DIR).join("ca.crt")).unwrap();
    let setup = hakube_plan::vault_setup(&cluster).unwrap().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let vip = hakube_vault::client::Client::new(
        vec![hakube_vault::client::Endpoint {
            name: "VIP".into(),
            url: setup.server_url.clone(),
        }],
        &ca,
        std::time::Duration::from_secs(5),
    )
    .unwrap()
    // The leader killed: the next certificate must come within 10 s.
    .retry_for(std::time::Duration::from_secs(10));
    let name = format!("app.{}", setup.allowed_domains[0]);
    let root_ca = rt.block_on(async {
        let v = vip.read(&root_token, "pki/cert/ca").await.unwrap().unwrap();
        v["data"]["certificate"].as_str().unwrap().to_owned()
    });
    let signed = rt
        .block_on(vip.sign(&root_token, &setup.int_mount, &setup.pki_role, &csr(&name)))
        .unwrap();
    assert_chains_to(&signed.certificate, &signed.ca_chain, &root_ca);
    let nodes = hakube_vault::client::Client::for_nodes(
        &setup.cluster.nodes,
        &ca,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let leader = rt
        .block_on(nodes.raft_peers(&root_token))
        .unwrap()
        .into_iter()
        .find(|p| p.leader)
        .unwrap()
        .node_id;
    lab.host(&leader).kill_service("openbao").unwrap();
    let t = Instant::now();
    let after = rt
        .block_on(vip.sign(&root_token, &setup.int_mount, &setup.pki_role, &csr(&name)))
        .unwrap();
    let failover = t.elapsed();
    assert_chains_to(&after.certificate, &after.ca_chain, &root_ca);

    // A Vault whose keys we do not hold (initialised by someone else, as far as our store
    // knows): refused, nothing changed, the store not recreated.
    let away = dir.path().join("init.json.away");
    std::fs::rename(&keys, &away).unwrap();
    let refused = run(&argv);
    outputs.push_str(&refused.stdout);
    outputs.push_str(&refused.stderr);
    assert!(!refused.ok);
    assert!(
        refused
            .stderr
            .contains("already initialised, but not with the keys kept at"),
        "{}",
        refused.stderr
    );
    assert!(!keys.exists(), "nothing written");
    assert!(
        !refused.stdout.contains("  vault: "),
        "no Vault change: {}",
        refused.stdout
    );

    // The same, but with the mark a run leaves when it is killed between sending `sys/init` and
    // keeping its answer: the cluster nobody can unseal is wiped and initialised again (last:
    // it replaces this test's cluster).
    let mut mark = keys.clone().into_os_string();
    mark.push(".init-pending");
    std::fs::write(&mark, "").unwrap();
    let recovered = run(&argv);
    outputs.push_str(&recovered.stdout);
    outputs.push_str(&recovered.stderr);
    assert!(recovered.ok, "{}", recovered.stderr);
    assert!(
        recovered
            .stdout
            .contains("the cluster an interrupted init left without keys was wiped"),
        "{}",
        recovered.stdout
    );
    assert!(keys.exists(), "the new keys are kept");
    assert!(!Path::new(&mark).exists(), "the mark is gone");
    let new_keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&keys).unwrap()).unwrap();
    let old_keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&away).unwrap()).unwrap();
    assert_ne!(new_keys["root_token"], old_keys["root_token"]);
    let new_secrets = new_keys["unseal_keys"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&new_keys["root_token"]])
        .map(|v| v.as_str().unwrap().to_owned());
    for secret in new_secrets {
        assert!(!outputs.contains(&secret), "a new Vault secret was printed");
    }

    // Secrets never in any output.
    for secret in unseal
        .iter()
        .map(String::as_str)
        .chain([root_token.expose()])
    {
        assert!(!outputs.contains(secret), "a Vault secret was printed");
    }
    println!(
        "configure, 7 fresh hosts (3 LB, NFS, 3 Vault): first run {:.1}s, re-run {:.1}s; \
         Vault leader {leader} killed: next certificate through the VIP after {:.2}s",
        first_time.as_secs_f64(),
        second_time.as_secs_f64(),
        failover.as_secs_f64()
    );
}
