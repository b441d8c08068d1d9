//! The server and backup host plans over real SSH (hakube-remote) against a lab host (hakube-lab): real
//! sshd, real `install`, `exportfs` and `rsync`; `apt-get` and `systemctl` are the lab's
//! recording stand-ins. Needs root (network and mount namespaces); skips with a message
//! otherwise.

mod common;

use std::path::Path;
use std::time::Duration;

use hakube_host_state::HostPlan;
use hakube_lab::{Lab, require_root};
use hakube_nfs_provisioning::backup::{BACKUP_SCRIPT, BackupOptions};
use hakube_nfs_provisioning::exports::{Client, ExportPath, HostName};
use hakube_nfs_provisioning::remote::{restore, verify_exports};
use hakube_nfs_provisioning::{Error, NfsInput, NfsServer, NfsSetup, PlainExport, ServerAddress};
use hakube_remote::{
    Auth, HostKeyPolicy, Mode, NoProgress, SshConfig, SshSession, Target, apply_host_plan,
};

const TIMEOUT: Duration = Duration::from_secs(60);
const PYENV_SHIMS: &str = "/root/.pyenv/shims";

fn setup_for(lab: &Lab) -> NfsSetup {
    let nfs1 = lab.host("nfs1");
    let mut input = NfsInput::seed(
        NfsServer {
            name: HostName::new("nfs1").expect("name"),
            address: ServerAddress::Ip(nfs1.addr().into()),
        },
        lab.subnet().into(),
    )
    .expect("seed");
    // A host-name client too: the lab's /etc/hosts resolves node1.
    input.exports[0].clients = vec![
        Client::Network(lab.subnet().into()),
        Client::parse("node1").expect("host"),
    ];
    // A plain export (no StorageClass), root-writable by node1 only: the etcd backup's shape.
    input.plain_exports.push(PlainExport::root_writer(
        ExportPath::new("/srv/nfs/etcd-backup").expect("path"),
        vec![Client::Network(
            std::net::IpAddr::from(lab.host("node1").addr()).into(),
        )],
    ));
    NfsSetup::new(input).expect("valid")
}

fn session(lab: &Lab) -> SshSession {
    let config = SshConfig::new(
        Auth::key_file(lab.ssh_private_key()),
        HostKeyPolicy::KnownHosts(lab.known_hosts_file().to_path_buf()),
    );
    SshSession::new(
        Target::new("nfs1", lab.host("nfs1").addr().to_string()),
        config,
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn server_and_backup_host_plans_over_ssh_against_a_lab_host() {
    if !require_root("server_and_backup_host_plans_over_ssh_against_a_lab_host") {
        return;
    }
    if Path::new("/proc/fs/nfsd/exports").exists() {
        // Lab hosts share the kernel: exportfs would change the machine's live exports.
        println!(
            "SKIP server_and_backup_host_plans_over_ssh_against_a_lab_host: a kernel NFS server is active here"
        );
        return;
    }
    if !Path::new("/usr/sbin/exportfs").exists() {
        println!(
            "SKIP server_and_backup_host_plans_over_ssh_against_a_lab_host: exportfs missing (apt-get install nfs-kernel-server)"
        );
        return;
    }
    let mut builder = Lab::builder("nfs")
        .hosts(["nfs1", "node1"])
        // exportfs keeps its table in /var/lib/nfs: private per host, like a real VM's.
        .private_dir("/var/lib/nfs");
    // Root's ~/.bashrc on this machine kind runs `pyenv init`, whose rehash waits up to 60 s
    // for a lock file that killed shells (e.g. of torn-down labs) leave behind in the shared
    // shims directory. Every SSH command runs through that bashrc, so give each lab host its
    // own (empty) shims directory: the hosts never use pyenv's Python.
    if Path::new(PYENV_SHIMS).is_dir() {
        builder = builder.private_dir(PYENV_SHIMS);
    }
    let lab = builder.build().expect("lab");
    // A systemctl that remembers what it was told (per host, under the private /run).
    lab.stand_in(
        "systemctl",
        "#!/bin/sh\nd=/run/test-systemd; mkdir -p $d\ncase \"$1\" in\n  is-enabled) [ -e $d/$3.enabled ] ;;\n  is-active) [ -e $d/$3.active ] ;;\n  enable) touch $d/$2.enabled ;;\n  start|restart|reload) touch $d/$2.active ;;\n  daemon-reload) ;;\n  *) exit 1 ;;\nesac\n",
    )
    .expect("systemctl");
    let nfs1 = lab.host("nfs1");
    let setup = setup_for(&lab);
    let options = BackupOptions::new(ExportPath::new("/var/backups/hakube-nfs").expect("path"), 3);
    let plan = setup
        .server_host_plan()
        .extend(setup.backup_host_plan(&options).expect("backup plan"));
    let ssh = session(&lab);
    let rt = runtime();
    let apply =
        |plan: &HostPlan| rt.block_on(apply_host_plan(&ssh, plan, Mode::Apply, &NoProgress));

    let report = apply(&plan);
    report.result.as_ref().expect("server plan");
    let changes: Vec<String> = report.changes.iter().map(ToString::to_string).collect();
    for want in [
        "directory /srv/nfs/k8s-prod: created",
        "directory /srv/nfs/etcd-backup: created",
        "file /etc/exports.d/hakube.exports: created",
        "service nfs-server: enabled",
        "service nfs-server: started",
        "exec exportfs: ran",
        "directory /var/backups/hakube-nfs: created",
        "file /etc/systemd/system/hakube-nfs-backup.timer: created",
        "service hakube-nfs-backup.timer: started",
    ] {
        assert!(
            changes.iter().any(|c| c == want),
            "{want} missing from {changes:?}"
        );
    }
    // The unit files changed, so systemd re-read them before the timer started.
    let calls = nfs1.calls("systemctl");
    let at = |verb: &str| calls.iter().position(|c| c[0] == verb).expect(verb);
    assert!(at("daemon-reload") < calls.iter().rposition(|c| c[0] == "start").expect("start"));
    let live = rt.block_on(verify_exports(&ssh, &setup)).expect("verified");
    assert_eq!(live.len(), 4, "{live:?}");
    println!(
        "over SSH on {}: {} live exports verified by the real exportfs",
        nfs1.addr(),
        live.len()
    );
    // The directories have their owners and modes, the file its content.
    let stat = nfs1
        .run("stat -c '%n %u:%g %a' /srv/nfs/k8s-prod /srv/nfs/k8s-nonprod /srv/nfs/etcd-backup")
        .expect("stat");
    assert_eq!(
        stat,
        "/srv/nfs/k8s-prod 65534:65534 755\n/srv/nfs/k8s-nonprod 65534:65534 755\n/srv/nfs/etcd-backup 0:0 700\n"
    );
    let backup_live: Vec<_> = live
        .iter()
        .filter(|l| l.path == "/srv/nfs/etcd-backup")
        .collect();
    assert_eq!(backup_live.len(), 1, "{backup_live:?}");
    assert_eq!(
        backup_live[0].client,
        format!("{}/32", lab.host("node1").addr())
    );
    assert!(backup_live[0].has("no_root_squash"), "{backup_live:?}");
    assert_eq!(
        nfs1.read_to_string("/etc/exports.d/hakube.exports")
            .expect("exports"),
        setup.exports_file().to_string()
    );

    // A second run changes nothing and restarts nothing.
    let again = apply(&plan);
    again.result.as_ref().expect("second run");
    assert!(again.changes.is_empty(), "{:?}", again.changes);

    // The backup (what the timer runs) with the real rsync: a dated, verified snapshot.
    nfs1.run("mkdir -p /srv/nfs/k8s-prod/shop/db && echo data > /srv/nfs/k8s-prod/shop/db/f")
        .expect("data");
    let out = nfs1.run(BACKUP_SCRIPT).expect("backup");
    assert!(
        out.contains("nfs-prod: /var/backups/hakube-nfs/nfs-prod/") && out.contains("(verified)"),
        "{out}"
    );
    let snap = nfs1
        .run("cat /var/backups/hakube-nfs/nfs-prod/latest/shop/db/f")
        .expect("snapshot");
    assert_eq!(snap, "data\n");
    let before = nfs1
        .run("cd /srv/nfs/k8s-prod && find . -type f -exec sha256sum {} + | sort")
        .expect("checksums");

    // Lose the data, restore the newest snapshot, compare.
    nfs1.run("rm -rf /srv/nfs/k8s-prod/shop")
        .expect("lose data");
    let live = rt
        .block_on(restore(&ssh, &setup, &options, "latest", TIMEOUT))
        .expect("restore");
    assert_eq!(live.len(), 4);
    let after = nfs1
        .run("cd /srv/nfs/k8s-prod && find . -type f -exec sha256sum {} + | sort")
        .expect("checksums");
    assert_eq!(after, before);

    // A snapshot that no longer matches its checksums is refused before anything is copied.
    nfs1.run("echo corrupt > /var/backups/hakube-nfs/nfs-prod/latest/shop/db/f && echo new > /srv/nfs/k8s-prod/shop/db/f")
        .expect("corrupt");
    let err = rt
        .block_on(restore(&ssh, &setup, &options, "latest", TIMEOUT))
        .expect_err("corrupt snapshot");
    assert!(err.to_string().contains("fails its checksums"), "{err}");
    assert_eq!(
        nfs1.read_to_string("/srv/nfs/k8s-prod/shop/db/f")
            .expect("f"),
        "new\n"
    );
    assert!(matches!(
        setup.restore_command(&options, "yesterday"),
        Err(Error::InvalidValue {
            field: "snapshot",
            ..
        })
    ));

    // Someone edits the exports behind hakube's back: verification names export and client.
    nfs1.run(
        "sed -i '/k8s-prod/s/,root_squash/,no_root_squash/' /etc/exports.d/hakube.exports && exportfs -ra",
    )
    .expect("tamper");
    let err = rt
        .block_on(verify_exports(&ssh, &setup))
        .expect_err("tampered");
    assert!(matches!(err, Error::ExportMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("missing root_squash"), "{err}");

    // The next run puts the file back; a failing exportfs is named with host and item.
    nfs1.stand_in("exportfs", "#!/bin/sh\necho 'exportfs: boom' >&2\nexit 1\n")
        .expect("stand-in");
    let failed = apply(&plan);
    let err = failed.result.expect_err("exportfs fails");
    let chain = format!("{err}: {}", std::error::Error::source(&err).expect("cause"));
    assert!(chain.starts_with("nfs1: exec exportfs failed"), "{chain}");
    assert!(chain.contains("exportfs: boom"), "{chain}");
}
