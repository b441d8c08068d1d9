//! The server-side steps over real SSH (hakube-remote) against a lab host (hakube-lab): real
//! sshd, real `install`, `exportfs` and `rsync`; `apt-get` and `systemctl` are the lab's
//! recording stand-ins. Needs root (network and mount namespaces); skips with a message
//! otherwise.

mod common;

use std::path::Path;
use std::time::Duration;

use hakube_lab::{Lab, require_root};
use hakube_nfs_provisioning::backup::BackupOptions;
use hakube_nfs_provisioning::exports::{Client, ExportPath, HostName};
use hakube_nfs_provisioning::remote::{run_server_plan, run_steps};
use hakube_nfs_provisioning::{Error, NfsInput, NfsServer, NfsSetup, PlainExport, ServerAddress};
use hakube_remote::{Auth, HostKeyPolicy, SshConfig, SshSession, Target};

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
fn server_steps_over_ssh_against_a_lab_host() {
    if !require_root("server_steps_over_ssh_against_a_lab_host") {
        return;
    }
    if Path::new("/proc/fs/nfsd/exports").exists() {
        // Lab hosts share the kernel: exportfs would change the machine's live exports.
        println!(
            "SKIP server_steps_over_ssh_against_a_lab_host: a kernel NFS server is active here"
        );
        return;
    }
    if !Path::new("/usr/sbin/exportfs").exists() {
        println!(
            "SKIP server_steps_over_ssh_against_a_lab_host: exportfs missing (apt-get install nfs-kernel-server)"
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
    let nfs1 = lab.host("nfs1");
    let setup = setup_for(&lab);
    let plan = setup.server_plan();
    let ssh = session(&lab);
    let rt = runtime();

    let report = rt
        .block_on(run_server_plan(&ssh, &plan, TIMEOUT))
        .expect("server plan");
    assert_eq!(
        report.steps,
        [
            "install-packages",
            "create-export-directories",
            "write-exports",
            "start-server",
            "reexport",
            "verify-exports"
        ]
    );
    assert_eq!(report.changed_files, ["/etc/exports.d/hakube.exports"]);
    assert_eq!(report.live_exports.len(), 4, "{:?}", report.live_exports);
    println!(
        "over SSH on {}: {} live exports verified by the real exportfs",
        nfs1.addr(),
        report.live_exports.len()
    );

    // The stand-ins saw the package install and the service start.
    assert_eq!(
        nfs1.calls("apt-get"),
        [[
            "install",
            "-y",
            "--no-install-recommends",
            "nfs-kernel-server"
        ]]
    );
    assert_eq!(
        nfs1.calls("systemctl"),
        [["enable", "--now", "nfs-server.service"]]
    );
    // The directories have their owners and modes, the file its content.
    let stat = nfs1
        .run("stat -c '%n %u:%g %a' /srv/nfs/k8s-prod /srv/nfs/k8s-nonprod /srv/nfs/etcd-backup")
        .expect("stat");
    assert_eq!(
        stat,
        "/srv/nfs/k8s-prod 65534:65534 755\n/srv/nfs/k8s-nonprod 65534:65534 755\n/srv/nfs/etcd-backup 0:0 700\n"
    );
    let backup_live: Vec<_> = report
        .live_exports
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

    // A second run changes no file and verifies again (idempotent).
    let again = rt
        .block_on(run_server_plan(&ssh, &plan, TIMEOUT))
        .expect("second run");
    assert!(again.changed_files.is_empty());
    assert_eq!(again.live_exports, report.live_exports);

    // Backup over SSH with the real rsync into the host's private /var/backups.
    let backup = setup
        .backup_plan(&BackupOptions::new(
            ExportPath::new("/var/backups/hakube-nfs").expect("path"),
            3,
        ))
        .expect("backup plan");
    nfs1.run("mkdir -p /srv/nfs/k8s-prod/shop/db && echo data > /srv/nfs/k8s-prod/shop/db/f")
        .expect("data");
    rt.block_on(run_steps(&ssh, &backup.steps, &plan.exports, TIMEOUT))
        .expect("backup");
    let snap = nfs1
        .run("cat /var/backups/hakube-nfs/nfs-prod/latest/shop/db/f")
        .expect("snapshot");
    assert_eq!(snap, "data\n");

    // Someone edits the exports behind hakube's back: verification names export and client.
    nfs1.run(
        "sed -i '/k8s-prod/s/,root_squash/,no_root_squash/' /etc/exports.d/hakube.exports && exportfs -ra",
    )
    .expect("tamper");
    let verify_only: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.name == "verify-exports")
        .cloned()
        .collect();
    let err = rt
        .block_on(run_steps(&ssh, &verify_only, &plan.exports, TIMEOUT))
        .expect_err("tampered");
    assert!(matches!(err, Error::ExportMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("missing root_squash"), "{err}");

    // A failing command stops the run and names host, step and command.
    nfs1.stand_in("exportfs", "#!/bin/sh\necho 'exportfs: boom' >&2\nexit 1\n")
        .expect("stand-in");
    let err = rt
        .block_on(run_server_plan(&ssh, &plan, TIMEOUT))
        .expect_err("exportfs fails");
    match &err {
        Error::RemoteStep {
            host,
            step,
            command,
            detail,
        } => {
            assert_eq!((host.as_str(), step.as_str()), ("nfs1", "reexport"));
            assert_eq!(command, "exportfs -ra");
            assert!(detail.contains("exportfs: boom"), "{detail}");
        }
        other => panic!("wrong error: {other:?}"),
    }
}
