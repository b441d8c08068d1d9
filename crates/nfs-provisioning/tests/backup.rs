//! Backup and restore: script snapshots, bad input, static volumes, and (as root) the real
//! scripts run with real rsync and tar in a private mount namespace: three snapshots with
//! retention 2, the exports wiped, then restored with owners and modes intact.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use hakube_host_state::HostPlan;
use hakube_nfs_provisioning::backup::{
    BACKUP_SCRIPT, BackupMethod, BackupOptions, ExistingClaim, RESTORE_SCRIPT,
};
use hakube_nfs_provisioning::exports::ExportPath;
use hakube_nfs_provisioning::{Error, K8sName};
use k8s_openapi::api::core::v1::PersistentVolume;

fn options(method: BackupMethod) -> BackupOptions {
    BackupOptions {
        method,
        ..BackupOptions::new(ExportPath::new("/var/backups/hakube-nfs").expect("path"), 2)
    }
}

fn script(plan: &HostPlan, path: &str) -> String {
    String::from_utf8(plan.file_content(path).expect("script").to_vec()).expect("utf-8")
}

#[test]
fn backup_and_restore_script_snapshots() {
    let setup = common::seed();
    for (name, method) in [("rsync", BackupMethod::Rsync), ("tar", BackupMethod::Tar)] {
        let plan = setup.backup_host_plan(&options(method)).expect("backup");
        plan.validate().expect("valid");
        insta::assert_snapshot!(
            format!("backup_script_{name}"),
            script(&plan, BACKUP_SCRIPT)
        );
        insta::assert_snapshot!(
            format!("restore_script_{name}"),
            script(&plan, RESTORE_SCRIPT)
        );
        let items: Vec<String> = plan.items.iter().map(ToString::to_string).collect();
        assert_eq!(
            items,
            [
                format!("package {name}"),
                "directory /var/backups/hakube-nfs".to_owned(),
                format!("file {BACKUP_SCRIPT}"),
                format!("file {RESTORE_SCRIPT}"),
                "file /etc/systemd/system/hakube-nfs-backup.service".to_owned(),
                "file /etc/systemd/system/hakube-nfs-backup.timer".to_owned(),
                "service hakube-nfs-backup.timer".to_owned(),
            ]
        );
        let timer = String::from_utf8_lossy(
            plan.file_content("/etc/systemd/system/hakube-nfs-backup.timer")
                .expect("timer"),
        )
        .into_owned();
        assert!(
            timer.contains("OnCalendar=*-*-* 02:30:00\nPersistent=true"),
            "{timer}"
        );
    }
}

#[test]
fn bad_backup_input_is_rejected() {
    let setup = common::seed();
    let mut o = options(BackupMethod::Rsync);
    o.retention = 0;
    assert!(matches!(
        setup.backup_host_plan(&o),
        Err(Error::InvalidValue {
            field: "backup retention",
            ..
        })
    ));
    let mut o = options(BackupMethod::Rsync);
    o.schedule = "daily\nExecStart=/bin/evil".to_owned();
    assert!(matches!(
        setup.backup_host_plan(&o),
        Err(Error::InvalidValue {
            field: "backup schedule",
            ..
        })
    ));
    let mut o = options(BackupMethod::Rsync);
    o.target = ExportPath::new("/srv/nfs/k8s-prod/backups").expect("path");
    let err = setup.backup_host_plan(&o).expect_err("inside export");
    assert_eq!(
        err.to_string(),
        "export /srv/nfs/k8s-prod/backups overlaps export /srv/nfs/k8s-prod (the same directory or nested inside it)"
    );
    // Plain exports count too: a target inside the etcd snapshots' export is refused, and the
    // script copies only the StorageClass exports (the snapshots are backups already).
    let with_etcd = common::etcd_backup();
    let mut o = options(BackupMethod::Rsync);
    o.target = ExportPath::new("/srv/nfs/etcd-backup/nfs").expect("path");
    let err = with_etcd
        .backup_host_plan(&o)
        .expect_err("inside plain export");
    assert!(matches!(err, Error::OverlappingExports { .. }), "{err}");
    let rsync = options(BackupMethod::Rsync);
    assert_eq!(
        script(
            &with_etcd.backup_host_plan(&rsync).expect("backup"),
            BACKUP_SCRIPT
        ),
        script(
            &setup.backup_host_plan(&rsync).expect("backup"),
            BACKUP_SCRIPT
        )
    );
    for bad in ["", "latest; rm -rf /", "2026-11-27", "../x"] {
        assert!(setup.restore_command(&rsync, bad).is_err(), "{bad:?}");
    }
    // tar archives have no `latest`.
    assert!(
        setup
            .restore_command(&options(BackupMethod::Tar), "latest")
            .is_err()
    );
    assert_eq!(
        setup.restore_command(&rsync, "latest").expect("latest"),
        [RESTORE_SCRIPT, "latest"]
    );
}

#[test]
fn static_volumes_point_at_the_pattern_directories() {
    let setup = common::seed();
    let claims = [ExistingClaim {
        namespace: K8sName::new("shop").expect("ns"),
        name: K8sName::new("db-data").expect("name"),
        storage_class: K8sName::new("nfs-prod").expect("class"),
        size: "10Gi".to_owned(),
    }];
    let pvs = setup.static_volumes(&claims).expect("pvs");
    let yaml = serde_saphyr::to_string(&pvs[0]).expect("yaml");
    insta::assert_snapshot!("static_pv_shop_db_data", yaml);
    let back: PersistentVolume = serde_saphyr::from_str(&yaml).expect("round trip");
    assert_eq!(back, pvs[0]);
    let spec = back.spec.expect("spec");
    assert_eq!(
        spec.nfs.expect("nfs").path,
        "/srv/nfs/k8s-prod/shop.db-data"
    );
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );

    let files = setup.static_volume_files(&claims).expect("files");
    assert_eq!(
        files[0].path,
        "nfs/restore/30-persistentvolume-restored-shop-db-data.yaml"
    );
    assert_eq!(files[0].contents, yaml);

    let mut wrong = claims[0].clone();
    wrong.storage_class = K8sName::new("nfs-fast").expect("name");
    assert!(setup.static_volumes(&[wrong]).is_err());
    let mut bad_size = claims[0].clone();
    bad_size.size = "10Gi\nx".to_owned();
    assert!(setup.static_volumes(&[bad_size]).is_err());
}

/// Runs `script` as root in a private mount namespace where /srv and /var/backups are tmpfs.
fn in_namespace(script: &str) -> String {
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "script failed:\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn real_backup_retention_and_restore() {
    if !common::is_root() {
        println!(
            "SKIP real_backup_retention_and_restore: needs root (mount namespaces); CI runs it"
        );
        return;
    }
    for tool in ["rsync", "tar"] {
        if !Path::new(&format!("/usr/bin/{tool}")).exists() {
            println!("SKIP real_backup_retention_and_restore: {tool} not installed");
            return;
        }
    }
    let setup = common::seed();
    for method in [BackupMethod::Rsync, BackupMethod::Tar] {
        let tmp = tempfile::tempdir().expect("tmp");
        let t = tmp.path().display();
        let plan = setup.backup_host_plan(&options(method)).expect("backup");
        let restore_name = if method == BackupMethod::Rsync {
            "latest".to_owned()
        } else {
            // The second snapshot of the fake clock below.
            "20261127T060002Z".to_owned()
        };
        std::fs::write(tmp.path().join("backup.sh"), script(&plan, BACKUP_SCRIPT)).expect("write");
        std::fs::write(tmp.path().join("restore.sh"), script(&plan, RESTORE_SCRIPT))
            .expect("write");
        // The restore re-exports at the end: not this machine's exports.
        std::fs::write(tmp.path().join("bin-exportfs"), "#!/bin/sh\nexit 0\n").expect("exportfs");
        // A fake `date` so three runs get three distinct timestamps.
        std::fs::create_dir_all(tmp.path().join("bin")).expect("bin");
        std::fs::write(
            tmp.path().join("bin/date"),
            format!(
                "#!/bin/sh\nn=$(cat {t}/clock 2>/dev/null || echo 0); n=$((n+1)); echo $n > {t}/clock\nprintf '20261127T06000%dZ\\n' $n\n"
            ),
        )
        .expect("date");
        let mut script = format!(
            "set -e\nexport PATH={t}/bin:$PATH\nchmod 755 {t}/bin/date\n\
             mv {t}/bin-exportfs {t}/bin/exportfs && chmod 755 {t}/bin/exportfs\n\
             mount -t tmpfs hakube-test /srv\nmount -t tmpfs hakube-test /var/backups\n"
        );
        // The server plan's directories, then some volume data with other owners.
        for d in setup.server_directories() {
            let _ = writeln!(
                script,
                "install -d -o {} -g {} -m {:o} {}",
                d.owner.as_deref().unwrap_or("0"),
                d.group.as_deref().unwrap_or("0"),
                d.mode,
                d.path
            );
        }
        script.push_str(
            "mkdir -p /srv/nfs/k8s-prod/shop/db && echo v1 > /srv/nfs/k8s-prod/shop/db/data\n\
             chown -R 1000:1000 /srv/nfs/k8s-prod/shop && chmod 0640 /srv/nfs/k8s-prod/shop/db/data\n\
             mkdir -p /srv/nfs/k8s-nonprod/dev/cache && echo scratch > /srv/nfs/k8s-nonprod/dev/cache/f\n",
        );
        let _ = writeln!(script, "sh {t}/backup.sh >/dev/null");
        // rsync's quick check compares size and mtime: give each version its own mtime, as
        // writes seconds apart would.
        script.push_str(
            "echo v2 > /srv/nfs/k8s-prod/shop/db/data && touch -d @1800000002 /srv/nfs/k8s-prod/shop/db/data\n",
        );
        let _ = writeln!(script, "sh {t}/backup.sh >/dev/null");
        script.push_str(
            "echo v3 > /srv/nfs/k8s-prod/shop/db/data && touch -d @1800000003 /srv/nfs/k8s-prod/shop/db/data\n",
        );
        let _ = writeln!(script, "sh {t}/backup.sh");
        script.push_str(
            "echo '== links'\nstat -c %h /var/backups/hakube-nfs/nfs-nonprod/*/dev/cache/f 2>/dev/null | head -n 1\n\
             echo '== snapshots'\nls -1 /var/backups/hakube-nfs/nfs-prod | grep -v sha256\n",
        );
        // Disaster: the exports are gone; the server plan re-creates empty directories.
        script.push_str("rm -rf /srv/nfs\n");
        for d in setup.server_directories() {
            let _ = writeln!(
                script,
                "install -d -o {} -g {} -m {:o} {}",
                d.owner.as_deref().unwrap_or("0"),
                d.group.as_deref().unwrap_or("0"),
                d.mode,
                d.path
            );
        }
        let _ = writeln!(script, "sh {t}/restore.sh {restore_name} >/dev/null");
        script.push_str(
            "echo '== restored'\ncat /srv/nfs/k8s-prod/shop/db/data\n\
             stat -c '%u:%g %a' /srv/nfs/k8s-prod/shop/db/data /srv/nfs/k8s-prod\n\
             cat /srv/nfs/k8s-nonprod/dev/cache/f\n",
        );
        let out = in_namespace(&script);
        let (runs, rest) = out.split_once("== links\n").expect("links");
        let (links, rest) = rest.split_once("== snapshots\n").expect("snapshots");
        let (snapshots, restored) = rest.split_once("== restored\n").expect("restored");
        assert!(
            runs.contains("nfs-prod: /var/backups/hakube-nfs/nfs-prod/20261127T060003Z"),
            "{runs}"
        );
        let snapshots: Vec<_> = snapshots.lines().collect();
        let restored: Vec<_> = restored.lines().collect();
        match method {
            BackupMethod::Rsync => {
                // Retention 2: the first snapshot is pruned; `latest` is the third.
                assert_eq!(
                    snapshots,
                    ["20261127T060002Z", "20261127T060003Z", "latest"]
                );
                assert_eq!(restored[0], "v3");
                // An unchanged file is one inode shared by both kept snapshots.
                assert_eq!(links.trim(), "2", "hard links between snapshots");
            }
            BackupMethod::Tar => {
                assert_eq!(
                    snapshots,
                    ["20261127T060002Z.tar.gz", "20261127T060003Z.tar.gz"]
                );
                assert_eq!(restored[0], "v2", "restored the chosen snapshot");
            }
        }
        assert_eq!(restored[1], "1000:1000 640", "owner and mode kept");
        assert_eq!(
            restored[2], "65534:65534 755",
            "export directory owner kept"
        );
        assert_eq!(restored[3], "scratch");
        println!(
            "{method:?}: 3 snapshots taken, 2 kept, restore of {restore_name} verified with real tools"
        );
    }
}
