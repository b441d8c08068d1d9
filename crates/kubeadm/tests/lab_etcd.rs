//! etcd backup and the whole-cluster restore against a real 3-member etcd (Debian etcd-server,
//! TLS on for clients and peers, certificates made with openssl here, at kubeadm's paths) in a
//! hakube-lab, over real SSH: write keys, snapshot (verified, copied off, retention), lose data,
//! restore every member, read the keys back.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::path::Path;
use std::process::Command as Proc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use hakube_kubeadm::etcd::{
    BackupOptions, EtcdRunner, RestoreMember, RestoreOptions, backup, restore_cluster,
};
use hakube_lab::{Lab, require_root};
use hakube_remote::{Auth, HostKeyPolicy, RemoteExec, SshConfig, SshPool, SshSession, Target};

const MEMBERS: [&str; 3] = ["e1", "e2", "e3"];
const PKI: &str = "/etc/kubernetes/pki/etcd";

fn sh(dir: &Path, script: &str) {
    let out = Proc::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn have(cmd: &str) -> bool {
    Proc::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The etcd command line of one member (same flags for the first start and after a restore:
/// etcd ignores the initial-cluster flags once its data directory exists).
fn etcd_cmd(name: &str, addr: &str, initial_cluster: &str) -> String {
    format!(
        "etcd --name {name} --data-dir /var/lib/etcd/data \
         --listen-client-urls https://{addr}:2379,https://127.0.0.1:2379 --advertise-client-urls https://{addr}:2379 \
         --listen-peer-urls https://{addr}:2380 --initial-advertise-peer-urls https://{addr}:2380 \
         --initial-cluster {initial_cluster} --initial-cluster-token lab-1 --initial-cluster-state new \
         --cert-file {PKI}/server.crt --key-file {PKI}/server.key --trusted-ca-file {PKI}/ca.crt --client-cert-auth \
         --peer-cert-file {PKI}/server.crt --peer-key-file {PKI}/server.key --peer-trusted-ca-file {PKI}/ca.crt --peer-client-cert-auth"
    )
}

/// Starts etcd in the background, its pid in /run/etcd.pid (works over SSH and lab exec).
fn start_script(cmd: &str) -> String {
    format!("setsid sh -c 'echo $$ > /run/etcd.pid; exec {cmd}' >>/tmp/etcd.log 2>&1 </dev/null &")
}

const STOP: &str = "if [ -f /run/etcd.pid ]; then kill $(cat /run/etcd.pid) 2>/dev/null || true; \
                    i=0; while kill -0 $(cat /run/etcd.pid) 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; fi";

fn etcdctl(args: &str) -> String {
    format!(
        "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={PKI}/ca.crt \
         --cert={PKI}/healthcheck-client.crt --key={PKI}/healthcheck-client.key {args}"
    )
}

#[test]
fn snapshot_wipe_restore_on_a_real_three_member_cluster() {
    if !require_root("snapshot_wipe_restore_on_a_real_three_member_cluster") {
        return;
    }
    if !have("etcd") || !have("etcdctl") || !have("openssl") {
        eprintln!(
            "SKIP snapshot_wipe_restore: needs etcd-server, etcd-client and openssl (scripts/install-test-deps)"
        );
        return;
    }
    let lab = Arc::new(Lab::builder("ketcd").hosts(MEMBERS).build().expect("lab"));
    let addr = |n: &str| lab.host(n).addr().to_string();
    let initial_cluster = MEMBERS
        .iter()
        .map(|n| format!("{n}=https://{}:2380", addr(n)))
        .collect::<Vec<_>>()
        .join(",");

    // PKI: one CA, a server+peer certificate per member, a healthcheck client certificate.
    let pki = tempfile::tempdir().unwrap();
    sh(
        pki.path(),
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
         -subj /CN=etcd-ca -days 1 -out ca.crt 2>/dev/null
         printf 'extendedKeyUsage=clientAuth\\n' > client.ext
         openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key \
         -subj /CN=kube-etcd-healthcheck-client -out client.csr 2>/dev/null
         openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
         -extfile client.ext -out client.crt 2>/dev/null",
    );
    for n in MEMBERS {
        let a = addr(n);
        sh(
            pki.path(),
            &format!(
                "printf 'subjectAltName=IP:{a},IP:127.0.0.1,DNS:{n}\\nextendedKeyUsage=serverAuth,clientAuth\\n' > {n}.ext
                 openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {n}.key \
                 -subj /CN={n} -out {n}.csr 2>/dev/null
                 openssl x509 -req -in {n}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
                 -extfile {n}.ext -out {n}.crt 2>/dev/null"
            ),
        );
        let h = lab.host(n);
        let copy = |from: &str, to: &str, mode| {
            h.write_file(
                format!("{PKI}/{to}"),
                std::fs::read(pki.path().join(from)).unwrap(),
                mode,
            )
            .unwrap();
        };
        copy("ca.crt", "ca.crt", 0o644);
        copy(&format!("{n}.crt"), "server.crt", 0o644);
        copy(&format!("{n}.key"), "server.key", 0o600);
        copy("client.crt", "healthcheck-client.crt", 0o644);
        copy("client.key", "healthcheck-client.key", 0o600);
        h.run(&start_script(&etcd_cmd(n, &a, &initial_cluster)))
            .unwrap();
    }
    let e1 = lab.host("e1");
    let healthy = || {
        e1.exec_timeout(
            &etcdctl("endpoint health --cluster"),
            Duration::from_secs(10),
        )
        .is_ok_and(|o| o.status.success())
    };
    for _ in 0..100 {
        if healthy() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        healthy(),
        "etcd did not come up: {}",
        e1.run("cat /tmp/etcd.log").unwrap_or_default()
    );

    // Keys before the backup.
    for i in 0..20 {
        e1.run(&etcdctl(&format!("put /registry/k{i} v{i}")))
            .unwrap();
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pool = SshPool::new(SshConfig::new(
        Auth::key_file(lab.ssh_private_key()),
        HostKeyPolicy::KnownHosts(lab.known_hosts_file().to_owned()),
    ));
    let sessions: Vec<Arc<SshSession>> = MEMBERS
        .iter()
        .map(|n| pool.session(&Target::new(*n, addr(n))))
        .collect();
    let local = tempfile::tempdir().unwrap();
    // Everything under the hosts' private /var/lib/etcd (the rest of /var/lib is the machine's).
    let opts = BackupOptions {
        remote_dir: "/var/lib/etcd/backup".into(),
        retain: 2,
        ..BackupOptions::default()
    };

    // Three snapshots at different times with retention 2: the oldest is pruned everywhere.
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut snaps = Vec::new();
    for k in 0..3u64 {
        let s = rt
            .block_on(backup(
                sessions[0].as_ref(),
                &opts,
                local.path(),
                t0 + Duration::from_secs(3600 * k),
            ))
            .unwrap();
        snaps.push(s);
    }
    let last = snaps.last().unwrap().clone();
    assert!(last.status.total_key >= 20, "{:?}", last.status);
    assert_eq!(snaps[2].pruned.len(), 1, "{snaps:?}");
    let on_node = e1.run("ls /var/lib/etcd/backup").unwrap();
    assert_eq!(on_node.lines().count(), 2, "{on_node}");
    assert_eq!(std::fs::read_dir(local.path()).unwrap().count(), 2);
    let bytes = std::fs::read(&last.local_path).unwrap();

    // Data loss after the backup: keys deleted, a key written that must not survive.
    e1.run(&etcdctl("del --prefix /registry/")).unwrap();
    e1.run(&etcdctl("put /after-backup x")).unwrap();
    assert!(
        e1.run(&etcdctl("get /registry/k7 --print-value-only"))
            .unwrap()
            .trim()
            .is_empty()
    );

    // Restore the whole cluster from the copied-off snapshot.
    let members: Vec<RestoreMember<'_>> = MEMBERS
        .iter()
        .zip(&sessions)
        .map(|(n, s)| RestoreMember {
            host: s.as_ref() as &dyn RemoteExec,
            name: (*n).to_owned(),
            peer_url: format!("https://{}:2380", addr(n)),
        })
        .collect();
    let start_any = format!(
        "case $(hostname) in {} esac",
        MEMBERS
            .iter()
            .map(|n| format!(
                "{n}) {} ;;",
                start_script(&etcd_cmd(n, &addr(n), &initial_cluster))
            ))
            .collect::<String>()
    );
    let ropts = RestoreOptions {
        runner: EtcdRunner::Commands {
            stop: STOP.into(),
            start: start_any,
        },
        health_timeout: Duration::from_secs(60),
        data_dir: "/var/lib/etcd/data".into(),
        snapshot_path: "/var/lib/etcd/restore.db".into(),
        ..RestoreOptions::kubeadm("restored-1")
    };
    rt.block_on(restore_cluster(&members, &bytes, &ropts, t0))
        .unwrap();

    for n in MEMBERS {
        let h = lab.host(n);
        assert_eq!(
            h.run(&etcdctl("get /registry/k7 --print-value-only"))
                .unwrap()
                .trim(),
            "v7",
            "{n}"
        );
        assert_eq!(
            h.run(&etcdctl("get /registry/ --prefix --keys-only"))
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty())
                .count(),
            20,
            "{n}"
        );
        assert!(
            h.run(&etcdctl("get /after-backup --print-value-only"))
                .unwrap()
                .trim()
                .is_empty(),
            "{n}"
        );
        // The old data directory was kept aside.
        assert!(
            h.run("ls /var/lib/etcd/data.before-restore-*/member")
                .is_ok(),
            "{n}"
        );
    }
    let members_out = e1.run(&etcdctl("member list")).unwrap();
    assert_eq!(members_out.lines().count(), 3, "{members_out}");
    rt.block_on(pool.close_all());
}
