//! One fresh LB host (no packages, no users: `fresh_hosts`) configured over SSH by the
//! host-plan executor from the node's host plan, with the real HAProxy and keepalived: the
//! checks catch what would break the node before anything goes live. `keepalived -t` drops the
//! health check of a missing `script_user` (its output says so; its exit status need not), a
//! rendered `haproxy.cfg` that fails `haproxy -c` never replaces the live one (which keeps
//! serving), a second run changes and restarts nothing, and the metrics answer the cluster's
//! nodes only.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod support;

use std::net::IpAddr;
use std::time::Duration;

use hakube_haproxy_config::{HAPROXY_CFG_PATH, HaInput, IngressTls, KEEPALIVED_CONF_PATH};
use hakube_host_state::{HostPlan, Item};
use hakube_lab::Lab;
use hakube_remote::Error;

/// The cause of a host report's failure, as text.
fn cause(report: &hakube_remote::HostReport) -> (String, String) {
    let err = report.result.as_ref().expect_err("the run must fail");
    let Error::ItemFailed { item, source, .. } = err else {
        panic!("{err:?}")
    };
    (item.clone(), source.to_string())
}

#[test]
fn a_fresh_lb_is_checked_before_anything_goes_live() {
    let name = "a_fresh_lb_is_checked_before_anything_goes_live";
    if !hakube_lab::require_root(name)
        || !support::have("haproxy", name)
        || !support::have("keepalived", name)
        || !support::have("curl", name)
    {
        return;
    }
    let lab = Lab::builder("freshlb")
        .hosts(["lb1", "lb2", "cp1"])
        .fresh_hosts()
        .build()
        .expect("build the lab");
    let lb1 = lab.host("lb1");
    let vip = lab.spare_addr(0).unwrap();
    let input = HaInput::new(IpAddr::V4(vip), 52)
        .lb_subnet(lab.subnet().into())
        .lb_node("lb1", IpAddr::V4(lb1.addr()), "eth0")
        .lb_node("lb2", IpAddr::V4(lab.host("lb2").addr()), "eth0")
        .control_plane_node("cp1", IpAddr::V4(lab.host("cp1").addr()));
    let node = input.render().unwrap().remove(0);
    let plan = node.host_plan();

    // A fresh host: no script user, no runtime directory, nothing installed.
    assert!(
        !lb1.exec("getent passwd keepalived_script")
            .unwrap()
            .status
            .success()
    );
    assert!(!lb1.exec("test -d /run/haproxy").unwrap().status.success());

    // Without the script user keepalived drops the health check (and the issue saw
    // `keepalived -t` exit 0 while saying so): its output refuses the candidate, and no
    // keepalived.conf goes live.
    let mut without_user = HostPlan::new("lb1");
    without_user.items = plan
        .items
        .iter()
        .filter(|i| !matches!(i, Item::User(_) | Item::Group(_)))
        .cloned()
        .collect();
    let report = support::apply(&lab, lb1, &without_user);
    let (item, why) = cause(&report);
    assert_eq!(item, format!("file {KEEPALIVED_CONF_PATH}"));
    assert!(
        why.contains("keepalived -t -f %s") && why.contains("chk_haproxy"),
        "{why}"
    );
    assert!(
        lb1.read_file(KEEPALIVED_CONF_PATH).is_err(),
        "a refused file went live"
    );
    assert!(
        lb1.run("ls -a /etc/keepalived")
            .unwrap()
            .lines()
            .all(|l| !l.contains("hakube-new")),
        "candidate left behind"
    );

    // The whole plan: packages, user, directories, files checked, HAProxy then keepalived.
    let report = support::apply(&lab, lb1, &plan);
    report.result.as_ref().unwrap();
    let changes: Vec<String> = report.changes.iter().map(ToString::to_string).collect();
    for want in [
        "user keepalived_script: created",
        "file /etc/keepalived/keepalived.conf: created",
        "service haproxy: started",
        "service keepalived: started",
    ] {
        assert!(
            changes.iter().any(|c| c == want),
            "{want} missing: {changes:?}"
        );
    }
    assert!(lb1.installed_packages().iter().any(|p| p == "haproxy"));
    lb1.wait_for_port(8404, Duration::from_secs(10)).unwrap();
    assert_eq!(
        lb1.read_to_string("/run/keepalived-haproxy.state")
            .unwrap()
            .trim(),
        "0"
    );
    // A second run: no change, nothing restarted, HAProxy's process untouched.
    let pid = lb1.service_pid("haproxy").unwrap();
    let again = support::apply(&lab, lb1, &plan);
    again.result.as_ref().unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(lb1.service_pid("haproxy"), Some(pid));

    let metrics = |from_host: bool| -> String {
        let cmd = format!(
            "curl -s -o /dev/null -w '%{{http_code}}' --max-time 2 http://{}:8404/metrics",
            lb1.addr()
        );
        if from_host {
            lb1.run(&cmd).unwrap()
        } else {
            let out = std::process::Command::new("sh")
                .args(["-c", &cmd])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    // The LB node itself is a cluster node; the test process (the lab's gateway) is not.
    assert_eq!(metrics(true), "200");
    assert_eq!(metrics(false), "403");
    assert!(
        !lb1.exec("curl -s --max-time 1 http://127.0.0.1:8404/metrics")
            .unwrap()
            .status
            .success(),
        "metrics are not on localhost any more"
    );

    // A rendered haproxy.cfg that fails `haproxy -c` (its ingress certificate does not
    // exist) is refused as a candidate; the live file and HAProxy stay as they were.
    let live = lb1.read_to_string(HAPROXY_CFG_PATH).unwrap();
    let broken = input
        .clone()
        .worker("w1", IpAddr::V4(lab.host("cp1").addr()))
        .ingress(
            30080,
            30443,
            IngressTls::Terminate {
                cert_path: "/etc/haproxy/certs/missing.pem".to_owned(),
            },
        )
        .render()
        .unwrap()
        .remove(0);
    let report = support::apply(&lab, lb1, &broken.host_plan());
    let (item, why) = cause(&report);
    assert_eq!(item, format!("file {HAPROXY_CFG_PATH}"));
    assert!(
        why.contains("haproxy -c -f %s") && why.contains("live file is unchanged"),
        "{why}"
    );
    assert_eq!(lb1.read_to_string(HAPROXY_CFG_PATH).unwrap(), live);
    assert_eq!(lb1.service_pid("haproxy"), Some(pid));
    assert_eq!(metrics(true), "200");
    // Even a reload of a broken live file is refused (Debian's ExecReload runs `haproxy -c`
    // first), and the running HAProxy keeps serving.
    lb1.write_file(HAPROXY_CFG_PATH, &broken.haproxy_cfg.content, 0o644)
        .unwrap();
    assert!(
        !lb1.exec("systemctl reload haproxy")
            .unwrap()
            .status
            .success()
    );
    assert_eq!(lb1.service_pid("haproxy"), Some(pid));
    assert_eq!(metrics(true), "200");
}
