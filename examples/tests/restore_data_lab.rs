//! The `restore` example binary as an operator runs it after a data loss, on fresh lab hosts
//! configured by the `configure` binary: the seed's NFS server and its 3 Vault VMs running the
//! real OpenBao (`--only nfs,vault`: the load balancers play no part in a restore).
//!
//! Write data (files with owners and modes in both exports; a KV secret and a PKI role in
//! Vault), back up the way the timers do (`systemctl start` of the timers' services:
//! `hakube-nfs-backup.service` on the NFS VM, twice, the newer snapshot then damaged;
//! `openbao-snapshot.service` on a Vault VM), destroy (the files deleted, the secret and role
//! deleted, a secret written after the backup), then restore:
//! - without `--yes-replace-data` refused, nothing touched; the damaged snapshot named with
//!   `--snapshot nfs=...` refused before any copy;
//! - with it: the newest snapshot that passes its checksums (the first) is restored, the
//!   damaged one named as skipped; the files come back with their checksums, owners and modes,
//!   the exports are live
//!   as planned; the secret and the role come back, the secret written after the backup is
//!   gone, every node is unsealed and a raft voter, the PKI's root CA is the one from before
//!   and a CSR signed the way cert-manager does chains to it; no Vault secret in the output.
//!
//! A Vault node that is down is named and nothing is restored. Then Vault's data is lost
//! altogether (every node's raft directory wiped, OpenBao restarted
//! uninitialised): `restore --only vault --expect-root-ca FILE` brings the cluster back from the
//! same snapshot, with the same root CA. Prints each restore's wall time.

#![allow(clippy::unwrap_used)]

#[path = "support/lab_topology.rs"]
mod lab_topology;
#[path = "support/pki.rs"]
mod pki;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hakube_lab::{Lab, require_root};
use hakube_vault::Secret;
use hakube_vault::client::Client;
use lab_topology::{Roles, lab_topology};
use pki::{assert_chains_to, csr};

const VAULTS: [&str; 3] = ["vault-1", "vault-2", "vault-3"];

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn run(binary: &Path, args: &[String]) -> Run {
    let started = Instant::now();
    let out = Command::new(binary).args(args).output().unwrap();
    let r = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    };
    println!(
        "{} {} -> {} in {:.2}s\n--- stdout\n{}--- stderr\n{}---",
        binary.file_name().unwrap().to_string_lossy(),
        args.join(" "),
        out.status,
        r.took.as_secs_f64(),
        r.stdout,
        r.stderr
    );
    r
}

/// Every file under the exports: path, owner, mode and SHA-256, sorted.
const LISTING: &str = "cd /srv/nfs && find k8s-prod k8s-nonprod -type f -printf '%p %u:%g %m ' \
                       -exec sh -c 'sha256sum < \"$1\"' _ {} \\; | LC_ALL=C sort";

#[test]
fn restore_nfs_and_vault_from_their_backups() {
    if !require_root("restore_nfs_and_vault_from_their_backups") {
        return;
    }
    if Path::new("/proc/fs/nfsd/exports").exists() {
        println!(
            "SKIP restore_nfs_and_vault_from_their_backups: a kernel NFS server is active here"
        );
        return;
    }
    let lab = Lab::builder("restoredata")
        .hosts(["nfs-1"].into_iter().chain(VAULTS))
        .fresh_hosts()
        .private_dir("/var/lib/nfs")
        .private_dir("/opt/openbao")
        .private_dir("/usr/local/sbin")
        .build()
        .unwrap();
    if !lab
        .host("vault-1")
        .exec("apt-get install -y openbao")
        .unwrap()
        .status
        .success()
    {
        println!(
            "SKIP restore_nfs_and_vault_from_their_backups: no OpenBao `bao` (scripts/install-test-deps)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let topology = dir.path().join("lab-cluster.yaml");
    let roles = Roles {
        nfs: Some("nfs-1"),
        vaults: &VAULTS,
        ..Roles::default()
    };
    std::fs::write(&topology, lab_topology(&lab, &roles)).unwrap();
    let out = dir.path().join("out");
    let ssh: Vec<String> = [
        topology.to_str().unwrap(),
        "--ssh-key",
        lab.ssh_private_key().to_str().unwrap(),
        "--user",
        "root",
        "--known-hosts",
        lab.known_hosts_file().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let with = |extra: &[&str]| -> Vec<String> {
        let mut a = ssh.clone();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let configure = support::example_binary("configure");
    let restore = support::example_binary("restore");
    let mut outputs = String::new();

    let configured = run(&configure, &with(&["--only", "nfs,vault"]));
    assert!(
        configured.ok,
        "{}\n{}",
        configured.stdout, configured.stderr
    );

    // The data: files with owners and modes in both exports.
    let nfs = lab.host("nfs-1");
    nfs.run(
        "set -e; mkdir -p /srv/nfs/k8s-prod/shop/db-data /srv/nfs/k8s-nonprod/ci/cache/deep\n\
         head -c 1048576 /dev/urandom > /srv/nfs/k8s-prod/shop/db-data/table.bin\n\
         echo 'orders: 42' > /srv/nfs/k8s-prod/shop/db-data/meta.yaml\n\
         chown 999:999 /srv/nfs/k8s-prod/shop/db-data/table.bin; chmod 600 /srv/nfs/k8s-prod/shop/db-data/table.bin\n\
         head -c 4096 /dev/urandom > /srv/nfs/k8s-nonprod/ci/cache/deep/blob\n\
         chmod 640 /srv/nfs/k8s-nonprod/ci/cache/deep/blob",
    )
    .unwrap();
    let files_before = nfs.run(LISTING).unwrap();
    assert_eq!(files_before.lines().count(), 3, "{files_before}");

    // Vault: a KV secret and a PKI role, through the nodes with the kept root token.
    let keys = out.join(hakube_plan::VAULT_KEYS_PATH);
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&keys).unwrap()).unwrap();
    let root_token = Secret::new(kept["root_token"].as_str().unwrap());
    let unseal: Vec<String> = kept["unseal_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let ca = std::fs::read_to_string(out.join(hakube_plan::VAULT_TLS_DIR).join("ca.crt")).unwrap();
    let cluster = hakube_topology::load(&std::fs::read_to_string(&topology).unwrap(), "t").unwrap();
    let setup = hakube_plan::vault_setup(&cluster).unwrap().unwrap();
    let vault = Client::for_nodes(&setup.cluster.nodes, &ca, Duration::from_secs(5))
        .unwrap()
        .retry_for(Duration::from_secs(30));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let password = "dr-drill-value-7f3a9c";
    let role = format!("{}/roles/dr-drill", setup.int_mount);
    let root_ca = rt.block_on(async {
        vault
            .write(
                &root_token,
                "sys/mounts/dr-kv",
                serde_json::json!({ "type": "kv" }),
            )
            .await
            .unwrap();
        vault
            .write(
                &root_token,
                "dr-kv/app",
                serde_json::json!({ "password": password }),
            )
            .await
            .unwrap();
        vault
            .write(
                &root_token,
                &role,
                serde_json::json!({
                    "allowed_domains": setup.allowed_domains,
                    "allow_subdomains": true,
                    "key_type": "ec",
                    "require_cn": false,
                    "max_ttl": "2h",
                }),
            )
            .await
            .unwrap();
        let v = vault
            .read(&root_token, &format!("{}/cert/ca", setup.root_mount))
            .await
            .unwrap()
            .unwrap();
        v["data"]["certificate"].as_str().unwrap().to_owned()
    });

    // The backups, as the timers run them: two NFS runs (a file changed between them), the
    // newer then damaged (its copy of the changed file altered), so the newest *verified*
    // snapshot is the first.
    let t = Instant::now();
    nfs.run("systemctl start hakube-nfs-backup.service")
        .unwrap();
    let nfs_backup = t.elapsed();
    let first_snap = nfs
        .run("readlink /var/backups/hakube-nfs/nfs-prod/latest")
        .unwrap()
        .trim()
        .to_owned();
    std::thread::sleep(Duration::from_millis(1100)); // snapshots are named by the second
    nfs.run("echo 'orders: 43' > /srv/nfs/k8s-prod/shop/db-data/meta.yaml")
        .unwrap();
    nfs.run("systemctl start hakube-nfs-backup.service")
        .unwrap();
    let damaged = nfs
        .run("readlink /var/backups/hakube-nfs/nfs-prod/latest")
        .unwrap()
        .trim()
        .to_owned();
    assert_ne!(first_snap, damaged);
    nfs.run(&format!(
        "echo tampered >> /var/backups/hakube-nfs/nfs-prod/{damaged}/shop/db-data/meta.yaml"
    ))
    .unwrap();
    let v2 = lab.host("vault-2");
    let t = Instant::now();
    v2.run("systemctl start openbao-snapshot.service").unwrap();
    let vault_backup = t.elapsed();
    let raft = v2.run("ls -1 /var/backups/openbao").unwrap();
    assert!(raft.contains("raft-vault-2-"), "{raft}");

    // The loss: files deleted, the secret and the role deleted, a secret written after the
    // backup (the restore must take it away: the cluster goes back to the snapshot).
    nfs.run("rm -rf /srv/nfs/k8s-prod/shop /srv/nfs/k8s-nonprod/ci")
        .unwrap();
    rt.block_on(async {
        vault.delete(&root_token, "dr-kv/app").await.unwrap();
        vault.delete(&root_token, &role).await.unwrap();
        vault
            .write(
                &root_token,
                "dr-kv/after-backup",
                serde_json::json!({ "x": "1" }),
            )
            .await
            .unwrap();
        assert!(
            vault
                .read(&root_token, "dr-kv/app")
                .await
                .unwrap()
                .is_none()
        );
    });
    assert_eq!(nfs.run(LISTING).unwrap(), "");

    // Without the confirmation: refused, nothing touched.
    let refused = run(&restore, &with(&[]));
    outputs.push_str(&refused.stdout);
    outputs.push_str(&refused.stderr);
    assert!(!refused.ok);
    assert!(
        refused
            .stderr
            .contains("refusing without --yes-replace-data"),
        "{}",
        refused.stderr
    );
    assert_eq!(nfs.run(LISTING).unwrap(), "");
    // etcd: this lab's cluster never made an etcd backup: named, nothing touched.
    let etcd = run(&restore, &with(&["--only", "etcd", "--yes-replace-data"]));
    assert!(!etcd.ok);
    assert!(
        etcd.stderr
            .contains("error: etcd: the topology has no backup.etcd export"),
        "{}",
        etcd.stderr
    );
    assert_eq!(nfs.run(LISTING).unwrap(), "");

    // The damaged snapshot named: refused before any copy.
    let named = format!("nfs={damaged}");
    let bad = run(
        &restore,
        &with(&["--only", "nfs", "--snapshot", &named, "--yes-replace-data"]),
    );
    assert!(!bad.ok);
    assert!(
        bad.stderr
            .contains(&format!("nfs-1: {damaged} fails its checksums")),
        "{}",
        bad.stderr
    );
    assert_eq!(nfs.run(LISTING).unwrap(), "");

    // The restore.
    // This lab has no masters and its cluster no etcd backup: the data parts only.
    let restored = run(
        &restore,
        &with(&["--only", "nfs,vault", "--yes-replace-data"]),
    );
    outputs.push_str(&restored.stdout);
    outputs.push_str(&restored.stderr);
    assert!(restored.ok, "{}\n{}", restored.stdout, restored.stderr);
    let nfs_line = format!("restore: nfs: nfs-1 snapshot {first_snap} restored");
    let skipped = format!("snapshot {damaged} skipped");
    for want in [
        nfs_line.as_str(),
        skipped.as_str(),
        "live as planned",
        "restore: vault: vault-2:/var/backups/openbao/raft-vault-2-",
        "PKI CA unchanged",
        "snapshot restored through the raft leader (forced)",
    ] {
        assert!(
            restored.stdout.contains(want),
            "{want}:\n{}",
            restored.stdout
        );
    }
    assert_eq!(
        nfs.run(LISTING).unwrap(),
        files_before,
        "files, owners, modes"
    );
    assert!(
        nfs.run("exportfs -v")
            .unwrap()
            .contains("/srv/nfs/k8s-prod")
    );
    rt.block_on(async {
        let app = vault
            .read(&root_token, "dr-kv/app")
            .await
            .unwrap()
            .expect("the secret is back");
        assert_eq!(app["data"]["password"], password);
        assert!(
            vault
                .read(&root_token, "dr-kv/after-backup")
                .await
                .unwrap()
                .is_none(),
            "the secret written after the backup is gone"
        );
        assert!(
            vault.read(&root_token, &role).await.unwrap().is_some(),
            "the role is back"
        );
        let peers = vault.raft_peers(&root_token).await.unwrap();
        assert_eq!(peers.iter().filter(|p| p.voter).count(), 3, "{peers:?}");
        let v = vault
            .read(&root_token, &format!("{}/cert/ca", setup.root_mount))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v["data"]["certificate"].as_str().unwrap(), root_ca);
        let name = format!("app.{}", setup.allowed_domains[0]);
        for r in [setup.pki_role.as_str(), "dr-drill"] {
            let signed = vault
                .sign(&root_token, &setup.int_mount, r, &csr(&name))
                .await
                .unwrap();
            assert_chains_to(&signed.certificate, &signed.ca_chain, &root_ca);
        }
    });
    let first_restore = restored.took;

    // A Vault node down: named, nothing restored.
    lab.host("vault-3").run("systemctl stop openbao").unwrap();
    let down = run(&restore, &with(&["--only", "vault", "--yes-replace-data"]));
    assert!(!down.ok);
    assert!(
        down.stderr
            .contains("vault-3: GET sys/seal-status: cannot reach the API"),
        "{}",
        down.stderr
    );
    assert!(
        !down.stdout.contains("snapshot restored"),
        "{}",
        down.stdout
    );

    // Vault's data lost altogether: every node's raft data wiped, OpenBao uninitialised. The
    // snapshots on the VMs survive (another disk): the same snapshot brings the cluster back.
    // Every node is stopped before any starts again: a wiped node started while a peer still
    // runs the old cluster joins it through `retry_join` (and then reports initialised and
    // sealed), which is not the loss this tests.
    for h in VAULTS {
        lab.host(h).run("systemctl stop openbao").unwrap();
    }
    for h in VAULTS {
        let host = lab.host(h);
        host.run("rm -rf /opt/openbao/data/* && systemctl start openbao")
            .unwrap();
        host.wait_for_port(8200, Duration::from_secs(20)).unwrap();
    }
    rt.block_on(async {
        let st = vault.seal_status(0).await.unwrap();
        assert!(!st.initialized, "{st:?}");
    });
    let root_file = dir.path().join("root-ca.pem");
    std::fs::write(&root_file, &root_ca).unwrap();
    let rebuilt = run(
        &restore,
        &with(&[
            "--only",
            "vault",
            "--expect-root-ca",
            root_file.to_str().unwrap(),
            "--yes-replace-data",
        ]),
    );
    outputs.push_str(&rebuilt.stdout);
    outputs.push_str(&rebuilt.stderr);
    assert!(rebuilt.ok, "{}\n{}", rebuilt.stdout, rebuilt.stderr);
    for want in ["restoring onto fresh nodes", "PKI CA unchanged"] {
        assert!(rebuilt.stdout.contains(want), "{want}:\n{}", rebuilt.stdout);
    }
    rt.block_on(async {
        let app = vault
            .read(&root_token, "dr-kv/app")
            .await
            .unwrap()
            .expect("the secret is back");
        assert_eq!(app["data"]["password"], password);
        let peers = vault.raft_peers(&root_token).await.unwrap();
        assert_eq!(peers.iter().filter(|p| p.voter).count(), 3, "{peers:?}");
        let v = vault
            .read(&root_token, &format!("{}/cert/ca", setup.root_mount))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v["data"]["certificate"].as_str().unwrap(), root_ca);
        let signed = vault
            .sign(
                &root_token,
                &setup.int_mount,
                &setup.pki_role,
                &csr(&format!("app.{}", setup.allowed_domains[0])),
            )
            .await
            .unwrap();
        assert_chains_to(&signed.certificate, &signed.ca_chain, &root_ca);
    });

    for secret in unseal
        .iter()
        .map(String::as_str)
        .chain([root_token.expose(), password])
    {
        assert!(!outputs.contains(secret), "a secret was printed");
    }
    println!(
        "restore, NFS VM + 3 Vault VMs (real OpenBao): configure {:.1}s; backups: NFS {:.2}s, \
         Vault raft snapshot {:.2}s; restore nfs+vault (running cluster) {:.1}s; restore vault \
         onto wiped nodes {:.1}s",
        configured.took.as_secs_f64(),
        nfs_backup.as_secs_f64(),
        vault_backup.as_secs_f64(),
        first_restore.as_secs_f64(),
        rebuilt.took.as_secs_f64()
    );
}
