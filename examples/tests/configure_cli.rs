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
//! gone are named while the others finish. Prints each run's wall time.

#![allow(clippy::unwrap_used)]

#[path = "support/lab_topology.rs"]
mod lab_topology;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use hakube_lab::{Lab, require_root};
use lab_topology::{Roles, lab_topology};

const LBS: [&str; 3] = ["lb-1", "lb-2", "lb-3"];

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

    // The NFS VM is gone: it is named, the load balancers still finish.
    lab.remove_host("nfs-1").unwrap();
    let gone = run_with(&[]);
    assert!(!gone.ok);
    assert!(gone.stderr.contains("nfs-1"), "{}", gone.stderr);
    for h in LBS {
        assert_eq!(summary(&gone, h)[3], "ok", "{}", gone.stdout);
    }
}
