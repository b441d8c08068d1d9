//! The seed's plan tree end to end: rendered, written, read back without loss, and one VM's
//! host plan (the first load balancer: packages, the script user, files checked by the real
//! `haproxy -c` and `keepalived -t`, services) applied twice to a fresh lab host over SSH by
//! the host-plan executor. The first run lists its changes; the second changes nothing and
//! restarts nothing. Needs root for the lab (CI runs it).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{cluster, secrets};
use hakube_lab::{Lab, require_root};
use hakube_plan::{read_host_plan, read_host_plans};
use hakube_remote::{
    Auth, FanOut, HostKeyPolicy, Mode, NoProgress, RemoteExec, SshConfig, SshSession, Target,
    apply_host_plans,
};

#[test]
fn every_host_plan_reads_back_from_the_written_tree() {
    let cluster = cluster();
    let tree = hakube_plan::render(&cluster, &secrets()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    tree.write_to(&out).unwrap();
    let read = read_host_plans(&out).unwrap();
    assert_eq!(read.len(), cluster.vms.len());
    for plan in &read {
        assert_eq!(Some(plan), tree.host_plan(&plan.host), "{}", plan.host);
    }
    // A file edited behind the plan's back is noticed, naming host and path.
    std::fs::write(out.join("hosts/lb-1/etc/haproxy/haproxy.cfg"), "edited\n").unwrap();
    let err = read_host_plan(&out, "lb-1").unwrap_err().to_string();
    assert!(
        err.contains("lb-1") && err.contains("/etc/haproxy/haproxy.cfg"),
        "{err}"
    );
}

#[test]
fn the_seeds_first_load_balancer_applied_twice_to_a_fresh_lab_host() {
    if !require_root("the_seeds_first_load_balancer_applied_twice_to_a_fresh_lab_host") {
        return;
    }
    let cluster = cluster();
    let tree = hakube_plan::render(&cluster, &secrets()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    tree.write_to(&out).unwrap();
    let plan = read_host_plan(&out, "lb-1").unwrap();

    let lab = Lab::builder("seedlb")
        .hosts(["lb-1"])
        .fresh_hosts()
        .build()
        .unwrap();
    let host = lab.host("lb-1");
    // The seed's addresses (10.20.0.0/24) are not the lab's: let HAProxy bind them anyway
    // (per network namespace), as it binds its own address on the real VM.
    host.run("echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind")
        .unwrap();
    let exec: Arc<dyn RemoteExec> = Arc::new(SshSession::new(
        Target::new("lb-1", host.addr().to_string()),
        SshConfig::new(
            Auth::key_file(lab.ssh_private_key()),
            HostKeyPolicy::KnownHosts(lab.known_hosts_file().to_owned()),
        ),
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let apply = || {
        let work = vec![(Arc::clone(&exec), plan.clone())];
        runtime
            .block_on(apply_host_plans(
                &work,
                Mode::Apply,
                &FanOut::new(1),
                &NoProgress,
            ))
            .remove(0)
    };

    let first = apply();
    if let Err(e) = &first.result {
        panic!("{e}: {:?}", std::error::Error::source(e));
    }
    let changes: Vec<String> = first.changes.iter().map(ToString::to_string).collect();
    println!(
        "first run: {} changes in {:.2}s",
        changes.len(),
        first.elapsed.as_secs_f64()
    );
    for want in [
        "package haproxy: installed",
        "user keepalived_script: created",
        "file /etc/haproxy/haproxy.cfg: created",
        "file /etc/keepalived/keepalived.conf: created",
        "service haproxy: started",
        "service keepalived: started",
    ] {
        assert!(
            changes.iter().any(|c| c == want),
            "{want} missing: {changes:?}"
        );
    }
    let pid = host.service_pid("haproxy").unwrap();

    host.clear_calls("systemctl");
    let second = apply();
    second.result.as_ref().unwrap();
    println!(
        "second run: {} changes in {:.2}s",
        second.changes.len(),
        second.elapsed.as_secs_f64()
    );
    assert!(second.changes.is_empty(), "{:?}", second.changes);
    assert_eq!(second.restarts().count(), 0);
    let calls = host.calls("systemctl");
    assert!(calls.iter().all(|c| c[0].starts_with("is-")), "{calls:?}");
    assert_eq!(host.service_pid("haproxy"), Some(pid), "HAProxy restarted");
}
