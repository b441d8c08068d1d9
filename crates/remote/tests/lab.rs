//! Integration tests in a hakube-lab network-namespace lab: each host is a namespace with its
//! own address, sshd and private /etc directories. They need root and skip otherwise.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use hakube_lab::{Lab, require_root};
use hakube_remote::{
    Auth, Command, Error, FanOut, HostKeyPolicy, NoProgress, RemoteExec, SshConfig, SshPool,
    Target, fan_out,
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
