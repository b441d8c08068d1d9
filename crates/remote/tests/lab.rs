//! Integration tests in a hakube-lab network-namespace lab: each host is a namespace with its
//! own address, sshd and private /etc directories. They need root and skip otherwise.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use hakube_lab::{Lab, require_root};
use hakube_remote::{
    Action, Auth, Command, Error, Executor, FanOut, FileTree, HostFilter, HostKeyPolicy,
    NoProgress, Plan, RemoteExec, SshConfig, SshPool, StepOutcome, Target, Upload, fan_out,
};

fn pool(lab: &Lab) -> SshPool {
    SshPool::new(
        SshConfig::new(
            Auth::key_file(lab.ssh_private_key()),
            HostKeyPolicy::KnownHosts(lab.known_hosts_file().to_owned()),
        )
        .keepalive(Duration::from_millis(500), 2)
        .command_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(3)),
    )
}

fn sessions(lab: &Lab, pool: &SshPool, names: &[&str]) -> Vec<Arc<dyn RemoteExec>> {
    names
        .iter()
        .map(|n| {
            pool.session(&Target::new(*n, lab.host(n).addr().to_string())) as Arc<dyn RemoteExec>
        })
        .collect()
}

fn lb_plan(lb1_cfg: &str) -> Plan {
    let tree = FileTree::new()
        .file(
            "lb1",
            Upload::new("/etc/haproxy/haproxy.cfg", lb1_cfg)
                .mode(0o644)
                .owner("root", "root"),
        )
        .file(
            "lb2",
            Upload::new("/etc/haproxy/haproxy.cfg", "global\n  maxconn 100\n").mode(0o644),
        )
        .file(
            "lb2",
            Upload::new("/etc/keepalived/keepalived.conf", "# vrrp\n").mode(0o600),
        );
    Plan::builder("load-balancers")
        .step("config", HostFilter::All, Action::PushTree(tree))
        .step(
            "reload",
            HostFilter::All,
            Action::RunIfChanged {
                command: Command::new("systemctl")
                    .args(["reload", "haproxy"])
                    .sudo(true),
                watch: vec!["config".into()],
            },
        )
        .step(
            "ssh-up",
            HostFilter::All,
            Action::WaitForPort {
                port: 22,
                timeout: Duration::from_secs(5),
            },
        )
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_and_dry_run_in_the_lab() {
    if !require_root("plan_apply_and_dry_run_in_the_lab") {
        return;
    }
    let lab = Lab::builder("rplan").hosts(["lb1", "lb2"]).build().unwrap();
    lab.record_only(["systemctl"]).unwrap();
    let pool = pool(&lab);
    let exec = Executor::new(sessions(&lab, &pool, &["lb1", "lb2"]));

    // Dry run first: everything would be created, nothing is.
    let report = exec.dry_run(&lb_plan("global\n")).await;
    assert!(report.success(), "{report}");
    assert!(
        report.to_string().contains("lb2: 2 of 2 files changed"),
        "{report}"
    );
    assert!(
        lab.host("lb2")
            .read_file("/etc/keepalived/keepalived.conf")
            .is_err()
    );
    assert!(lab.host("lb1").calls("systemctl").is_empty());

    let report = exec.apply(&lb_plan("global\n")).await;
    assert!(report.success(), "{report}");
    assert_eq!(
        lab.host("lb1")
            .read_to_string("/etc/haproxy/haproxy.cfg")
            .unwrap(),
        "global\n"
    );
    assert_eq!(
        lab.host("lb2")
            .read_to_string("/etc/keepalived/keepalived.conf")
            .unwrap(),
        "# vrrp\n"
    );
    // files are private per host
    assert_eq!(
        lab.host("lb2")
            .read_to_string("/etc/haproxy/haproxy.cfg")
            .unwrap(),
        "global\n  maxconn 100\n"
    );
    for h in ["lb1", "lb2"] {
        assert_eq!(
            lab.host(h).calls("systemctl"),
            vec![vec!["reload".to_owned(), "haproxy".to_owned()]]
        );
        lab.host(h).clear_calls("systemctl");
    }

    // Change only lb1: only lb1 reloads; the dry run said so beforehand.
    let report = exec.dry_run(&lb_plan("global\n  log stdout\n")).await;
    assert!(
        matches!(
            report.outcome("reload", "lb2"),
            Some(StepOutcome::NotNeeded)
        ),
        "{report}"
    );
    assert!(
        matches!(
            report.outcome("reload", "lb1"),
            Some(StepOutcome::WouldRun(_))
        ),
        "{report}"
    );
    let report = exec.apply(&lb_plan("global\n  log stdout\n")).await;
    assert!(report.success(), "{report}");
    assert!(matches!(
        report.outcome("ssh-up", "lb2"),
        Some(StepOutcome::PortOpen)
    ));
    assert_eq!(lab.host("lb1").calls("systemctl").len(), 1);
    assert!(lab.host("lb2").calls("systemctl").is_empty());
    pool.close_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_lost_mid_step_fails_alone() {
    if !require_root("a_host_lost_mid_step_fails_alone") {
        return;
    }
    let names = ["n1", "n2", "n3", "n4"];
    let lab = Lab::builder("rloss").hosts(names).build().unwrap();
    let pool = pool(&lab);
    let hosts = sessions(&lab, &pool, &names);
    // connect everyone first so the loss hits an established connection
    for h in &hosts {
        h.run_ok(&Command::new("true")).await.unwrap();
    }
    let two = FanOut::new(2);
    let step = fan_out(&hosts, "slow", &two, &NoProgress, |h| async move {
        h.run_ok(&Command::shell("touch /tmp/started; sleep 1.5; hostname"))
            .await
            .map(|o| o.stdout_lossy())
    });
    let lose = async {
        // Remove n1 once its command runs (not while its shell starts up).
        while lab.host("n1").read_file("/tmp/started").is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::task::block_in_place(|| lab.remove_host("n1").unwrap());
    };
    let (results, ()) = tokio::join!(step, lose);
    let err = results[0].result.as_ref().unwrap_err();
    assert_eq!(err.host(), Some("n1"));
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err}");
    for (r, name) in results.iter().zip(names).skip(1) {
        assert_eq!(r.result.as_ref().unwrap(), &format!("{name}\n"));
    }
    // the lost host cannot be reached again: a connect error, others still work
    let err = hosts[0].run_ok(&Command::new("true")).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(hosts[1].run_ok(&Command::new("true")).await.is_ok());
}
