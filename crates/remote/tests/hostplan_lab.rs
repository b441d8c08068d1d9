//! The host-plan executor on fresh lab hosts over real OpenSSH: facts, dry run, apply (the real
//! useradd, HAProxy started and reloaded by the lab's systemctl), handlers only on change,
//! validate-before-activate with the real `haproxy -c`, a second run with no change, and a
//! failing host named with its item while the others finish. Needs root (CI runs it).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hakube_host_state::{Directory, Exec, File, Group, HostPlan, Package, Service, User, Validate};
use hakube_lab::{Lab, require_root};
use hakube_remote::{
    Auth, Error, FanOut, HostKeyPolicy, Mode, NoProgress, RemoteExec, SshConfig, SshSession,
    Target, apply_host_plans,
};

/// Fresh hosts (own /etc with only a cloud image's accounts, empty /run, nothing installed):
/// the lab's apt-get, dpkg-query and systemctl stand-ins install packages as their postinst
/// would and really run haproxy; useradd and groupadd are the real ones.
fn lab() -> Lab {
    Lab::builder("hostplan")
        .hosts(["lb1", "lb2"])
        .fresh_hosts()
        .build()
        .unwrap()
}

fn sessions(lab: &Lab) -> Vec<Arc<dyn RemoteExec>> {
    lab.hosts()
        .iter()
        .map(|h| {
            let s: Arc<dyn RemoteExec> = Arc::new(SshSession::new(
                Target::new(h.name(), h.addr().to_string()),
                SshConfig::new(
                    Auth::key_file(lab.ssh_private_key()),
                    HostKeyPolicy::KnownHosts(lab.known_hosts_file().to_owned()),
                ),
            ));
            s
        })
        .collect()
}

const GOOD_CFG: &str = "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\nlisten l\n  bind 127.0.0.1:18080\n  server s 127.0.0.1:1\n";

fn plan(host: &str, cfg: &str) -> HostPlan {
    HostPlan::new(host)
        .package(Package::new("haproxy"))
        .group(Group::system("keepalived_script"))
        .user(User::system("keepalived_script").group("keepalived_script"))
        .directory(Directory::new("/etc/haproxy/conf.d").mode(0o750))
        .file(
            File::new("/etc/haproxy/haproxy.cfg", cfg)
                .validate(Validate::new(["haproxy", "-c", "-q", "-f", "%s"])),
        )
        .file(File::secret("/etc/haproxy/secret.pem", "not a real key"))
        .file(File::new("/etc/haproxy/README", "hello\n"))
        .service(
            Service::new("haproxy")
                .reload_on(["/etc/haproxy/haproxy.cfg"])
                .restart_on(["/etc/haproxy/secret.pem"]),
        )
        .exec(Exec::on_change(
            "touch-marker",
            ["sh", "-c", "echo x >> /etc/haproxy/marker"],
            ["/etc/haproxy/README"],
        ))
        .exec(Exec::creates(
            "once",
            ["touch", "/etc/haproxy/once"],
            "/etc/haproxy/once",
        ))
        .exec(Exec::check(
            "config-is-there",
            ["test", "-s", "/etc/haproxy/haproxy.cfg"],
        ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_apply_rerun_and_rejected_file() {
    if !require_root("dry_run_apply_rerun_and_rejected_file") {
        return;
    }
    let lab = lab();
    let execs = sessions(&lab);
    let plans = |cfg: &str| -> Vec<(Arc<dyn RemoteExec>, HostPlan)> {
        execs
            .iter()
            .map(|e| (Arc::clone(e), plan(e.host(), cfg)))
            .collect()
    };
    let fan = FanOut::new(4);

    // Dry run: every change listed, nothing done.
    let dry = apply_host_plans(&plans(GOOD_CFG), Mode::DryRun, &fan, &NoProgress).await;
    for r in &dry {
        r.result.as_ref().unwrap();
        assert!(
            r.changes.iter().all(|c| c.action.starts_with("would be")),
            "{:?}",
            r.changes
        );
        assert!(r.changes.len() >= 8, "{:?}", r.changes);
    }
    assert!(
        lab.host("lb1")
            .read_file("/etc/haproxy/haproxy.cfg")
            .is_err()
    );
    assert!(
        lab.host("lb1")
            .calls("systemctl")
            .iter()
            .all(|c| c[0].starts_with("is-"))
    );

    // First run: every item changes, the service is started (not reloaded on top).
    let first = apply_host_plans(&plans(GOOD_CFG), Mode::Apply, &fan, &NoProgress).await;
    for r in &first {
        r.result.as_ref().unwrap();
        let shown: Vec<String> = r.changes.iter().map(ToString::to_string).collect();
        for want in [
            "package haproxy: installed",
            "group keepalived_script: created",
            "user keepalived_script: created",
            "directory /etc/haproxy/conf.d: created",
            "file /etc/haproxy/haproxy.cfg: created",
            "file /etc/haproxy/secret.pem: created",
            // Enabled by the package's install, as Debian's postinst does; started here.
            "service haproxy: started",
            "exec touch-marker: ran",
            "exec once: ran",
        ] {
            assert!(
                shown.iter().any(|s| s == want),
                "{want} missing from {shown:?}"
            );
        }
        assert_eq!(r.restarts().count(), 0, "{shown:?}");
    }
    let lb1 = lab.host("lb1");
    assert_eq!(
        lb1.read_to_string("/etc/haproxy/haproxy.cfg").unwrap(),
        GOOD_CFG
    );
    assert_eq!(
        lb1.run("stat -c %a /etc/haproxy/secret.pem /etc/haproxy/conf.d")
            .unwrap(),
        "600\n750\n"
    );

    // Second run: nothing changes, nothing restarts or reloads.
    lb1.clear_calls("systemctl");
    let second = apply_host_plans(&plans(GOOD_CFG), Mode::Apply, &fan, &NoProgress).await;
    for r in &second {
        r.result.as_ref().unwrap();
        assert!(r.changes.is_empty(), "{}: {:?}", r.host, r.changes);
    }
    assert!(
        lb1.calls("systemctl")
            .iter()
            .all(|c| c[0].starts_with("is-")),
        "{:?}",
        lb1.calls("systemctl")
    );
    assert_eq!(lb1.read_to_string("/etc/haproxy/marker").unwrap(), "x\n");

    // A changed config is validated, goes live and reloads (no restart).
    let changed = GOOD_CFG.replace("maxconn 100", "maxconn 200");
    let third = apply_host_plans(&plans(&changed), Mode::Apply, &fan, &NoProgress).await;
    let shown: Vec<String> = third[0].changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "file /etc/haproxy/haproxy.cfg: content changed",
            "service haproxy: reloaded"
        ]
    );

    // A config haproxy rejects never replaces the live one; the host is named with the item,
    // and the other host still finishes.
    let mut mixed = plans(&changed);
    mixed[0].1 = plan("lb1", "global\n  no-such-keyword\n");
    let fourth = apply_host_plans(&mixed, Mode::Apply, &fan, &NoProgress).await;
    let err = fourth[0].result.as_ref().unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(err).unwrap());
    assert!(
        chain.starts_with("lb1: file /etc/haproxy/haproxy.cfg failed"),
        "{chain}"
    );
    assert!(chain.contains("haproxy -c -q -f %s"), "{chain}");
    assert!(chain.contains("the live file is unchanged"), "{chain}");
    assert!(
        matches!(err, Error::ItemFailed { source, .. } if matches!(**source, Error::Rejected { .. })),
        "{err:?}"
    );
    assert_eq!(
        lb1.read_to_string("/etc/haproxy/haproxy.cfg").unwrap(),
        changed
    );
    assert!(
        lb1.run("ls -a /etc/haproxy")
            .unwrap()
            .lines()
            .all(|l| !l.contains("hakube-new")),
        "candidate left behind"
    );
    fourth[1].result.as_ref().unwrap();

    // Secret content never shows in reports or errors.
    for r in first.iter().chain(&second).chain(&third).chain(&fourth) {
        let text = format!("{:?} {:?}", r.changes, r.result);
        assert!(!text.contains("not a real key"), "{text}");
    }
}
