//! One fresh LB host (no packages, no users: `fresh_hosts`) configured from `host_needs()`,
//! with the real HAProxy and keepalived: the checks catch what would break the node before
//! anything goes live. `keepalived -t` drops the health check of a missing `script_user` (its
//! output says so; its exit status need not), a rendered `haproxy.cfg` that fails `haproxy -c`
//! never replaces the live one (which keeps serving), and the metrics answer the cluster's
//! nodes only.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod support;

use std::net::IpAddr;
use std::time::Duration;

use hakube_haproxy_config::{HAPROXY_CFG_PATH, HaInput, IngressTls, KEEPALIVED_CONF_PATH};
use hakube_lab::{Host, Lab};

/// Runs `check` on `candidate` in the host; returns (exit code, output, verdict).
fn run_check(
    host: &Host,
    check: &hakube_haproxy_config::needs::ConfigCheck,
    candidate: &str,
) -> (Option<i32>, String, Result<(), String>) {
    let out = host
        .exec(&format!("{} 2>&1", check.argv(candidate).join(" ")))
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let verdict = check.judge(out.status.code(), &text);
    (out.status.code(), text, verdict)
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
        .without_sshd()
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
    let needs = node.host_needs();
    let haproxy_check = needs
        .checks
        .iter()
        .find(|c| c.path == HAPROXY_CFG_PATH)
        .unwrap();
    let keepalived_check = needs
        .checks
        .iter()
        .find(|c| c.path == KEEPALIVED_CONF_PATH)
        .unwrap();

    // A fresh host: no script user, no runtime directory, nothing installed.
    assert!(
        !lb1.exec("getent passwd keepalived_script")
            .unwrap()
            .status
            .success()
    );
    assert!(!lb1.exec("test -d /run/haproxy").unwrap().status.success());
    lb1.run(&format!("apt-get install -y {}", needs.packages.join(" ")))
        .unwrap();
    for d in &needs.directories {
        lb1.run(&format!(
            "install -d -m {:o} -o {} -g {} {}",
            d.mode, d.owner, d.group, d.path
        ))
        .unwrap();
    }
    for f in &needs.files {
        lb1.write_file(f.path, &f.contents, f.mode).unwrap();
    }

    // Without the script user keepalived drops the health check (and the issue saw
    // `keepalived -t` exit 0 while saying so): the judge goes by the output and refuses.
    let (code, text, verdict) = run_check(lb1, keepalived_check, KEEPALIVED_CONF_PATH);
    let err = verdict.expect_err("a missing script_user must be refused");
    assert!(
        err.contains("chk_haproxy"),
        "exit {code:?}, verdict {err}\n{text}"
    );
    for u in &needs.users {
        lb1.run(&format!(
            "useradd --system --user-group --no-create-home --home-dir {} --shell {} {}",
            u.home, u.shell, u.name
        ))
        .unwrap();
    }
    let (_, text, verdict) = run_check(lb1, keepalived_check, KEEPALIVED_CONF_PATH);
    assert!(verdict.is_ok(), "{verdict:?}\n{text}");
    let (_, text, verdict) = run_check(lb1, haproxy_check, HAPROXY_CFG_PATH);
    assert!(verdict.is_ok(), "{verdict:?}\n{text}");

    // Live: HAProxy, then keepalived; this node takes the VIP.
    lb1.run("systemctl daemon-reload && systemctl enable --now haproxy && systemctl enable --now keepalived")
        .unwrap();
    lb1.wait_for_port(8404, Duration::from_secs(10)).unwrap();
    assert_eq!(
        lb1.read_to_string("/run/keepalived-haproxy.state")
            .unwrap()
            .trim(),
        "0"
    );
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
    // exist) is caught as a candidate; the live file and HAProxy stay as they were.
    let live = lb1.read_to_string(HAPROXY_CFG_PATH).unwrap();
    let pid = lb1.service_pid("haproxy").unwrap();
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
    let candidate = format!("{HAPROXY_CFG_PATH}.new");
    lb1.write_file(&candidate, &broken.haproxy_cfg.contents, 0o644)
        .unwrap();
    let (_, text, verdict) = run_check(lb1, haproxy_check, &candidate);
    let err = verdict.expect_err("a config with a missing certificate must be refused");
    assert!(err.contains("haproxy -c -f"), "{err}\n{text}");
    assert_eq!(lb1.read_to_string(HAPROXY_CFG_PATH).unwrap(), live);
    // Even a reload of a broken live file is refused (Debian's ExecReload runs `haproxy -c`
    // first), and the running HAProxy keeps serving.
    lb1.write_file(HAPROXY_CFG_PATH, &broken.haproxy_cfg.contents, 0o644)
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
