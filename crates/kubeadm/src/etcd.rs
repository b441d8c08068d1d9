//! etcd backup and restore for a kubeadm control plane (stacked etcd), as code.
//!
//! Backup ([`backup`]): `etcdctl snapshot save` with the kubeadm certificate paths, verified with
//! `etcdutl snapshot status` (or `etcdctl snapshot status` where etcdutl does not exist, as on
//! etcd 3.4), copied off the node and checked by SHA-256, then old snapshots beyond the
//! retention count are deleted on the node and locally.
//!
//! Restore ([`restore_cluster`]), the DR path for the whole control plane:
//! 1. stop etcd on every member (kubeadm: move the etcd and kube-apiserver static Pod manifests
//!    out of `/etc/kubernetes/manifests`, which makes the kubelet stop them);
//! 2. upload the snapshot to every member;
//! 3. move the old data directory aside and `snapshot restore` into it with the member's name,
//!    peer URL and the full initial cluster (a new cluster token);
//! 4. start etcd everywhere (move the manifests back);
//! 5. wait until `endpoint health` succeeds.

#[cfg(feature = "remote")]
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(feature = "remote")]
use hakube_remote::{Command, File, RemoteExec};

use crate::error::{Error, Result};

/// etcdctl TLS flags with kubeadm's certificate paths.
pub const ETCDCTL_TLS_ARGS: [&str; 6] = [
    "--cacert",
    "/etc/kubernetes/pki/etcd/ca.crt",
    "--cert",
    "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
    "--key",
    "/etc/kubernetes/pki/etcd/healthcheck-client.key",
];

/// Client TLS material etcdctl uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA certificate path on the node.
    pub cacert: String,
    /// Client certificate path on the node.
    pub cert: String,
    /// Client key path on the node.
    pub key: String,
}

impl EtcdTls {
    /// kubeadm's paths (`/etc/kubernetes/pki/etcd/{ca.crt,healthcheck-client.*}`).
    #[must_use]
    pub fn kubeadm() -> Self {
        Self {
            cacert: "/etc/kubernetes/pki/etcd/ca.crt".into(),
            cert: "/etc/kubernetes/pki/etcd/healthcheck-client.crt".into(),
            key: "/etc/kubernetes/pki/etcd/healthcheck-client.key".into(),
        }
    }

    #[cfg(feature = "remote")]
    fn args(&self) -> [&str; 6] {
        [
            "--cacert",
            &self.cacert,
            "--cert",
            &self.cert,
            "--key",
            &self.key,
        ]
    }
}

/// Where and how snapshots are taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupOptions {
    /// Client URL of the local member.
    pub endpoint: String,
    /// TLS material.
    pub tls: EtcdTls,
    /// Snapshot directory on the node.
    pub remote_dir: String,
    /// How many snapshots to keep (on the node and locally); at least 1.
    pub retain: usize,
    /// Timeout of each command.
    pub timeout: Duration,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            endpoint: "https://127.0.0.1:2379".into(),
            tls: EtcdTls::kubeadm(),
            remote_dir: "/var/lib/etcd-backup".into(),
            retain: 7,
            timeout: Duration::from_secs(300),
        }
    }
}

/// What `snapshot status` says about a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// Hash of the snapshot contents.
    pub hash: u64,
    /// Revision.
    pub revision: u64,
    /// Number of keys.
    pub total_key: u64,
    /// Size in bytes.
    pub total_size: u64,
}

/// A snapshot taken and copied off the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Path on the node.
    pub remote_path: String,
    /// Path of the local copy.
    pub local_path: std::path::PathBuf,
    /// SHA-256 of the file (hex), equal on both sides.
    pub sha256: String,
    /// Its status.
    pub status: SnapshotStatus,
    /// Snapshots deleted by retention (file names).
    pub pruned: Vec<String>,
}

/// One member of `etcdctl member list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdMember {
    /// Hex member id.
    pub id: String,
    /// `started` or `unstarted`.
    pub status: String,
    /// Member name (kubeadm: the node name).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// Learner (not yet promoted).
    pub is_learner: bool,
}

/// Parses `etcdctl member list` (simple format: `id, status, name, peers, clients[, learner]`).
///
/// # Errors
/// [`Error::OutputParse`] for a line with fewer than five fields.
pub fn parse_member_list(text: &str) -> Result<Vec<EtcdMember>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('{'))
        .map(|l| {
            let f: Vec<&str> = l.split(", ").map(str::trim).collect();
            if f.len() < 5 {
                return Err(Error::OutputParse {
                    command: "etcdctl member list",
                    reason: format!("line with {} fields, expected at least 5", f.len()),
                });
            }
            let urls = |s: &str| {
                s.split(',')
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            Ok(EtcdMember {
                id: f[0].to_owned(),
                status: f[1].to_owned(),
                name: f[2].to_owned(),
                peer_urls: urls(f[3]),
                client_urls: urls(f[4]),
                is_learner: f.get(5).is_some_and(|v| *v == "true"),
            })
        })
        .collect()
}

/// Parses `snapshot status -w json` (etcdctl 3.4 and etcdutl 3.5+ print the same keys).
///
/// # Errors
/// [`Error::OutputParse`] when the JSON lacks the fields.
pub fn parse_snapshot_status(text: &str) -> Result<SnapshotStatus> {
    let bad = |reason: String| Error::OutputParse {
        command: "etcdutl snapshot status",
        reason,
    };
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| bad("no JSON object".into()))?;
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
    let get = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad(format!("no numeric {k}")))
    };
    Ok(SnapshotStatus {
        hash: get("hash")?,
        revision: get("revision")?,
        total_key: get("totalKey")?,
        total_size: get("totalSize")?,
    })
}

/// `20261127T055000Z` for a time.
#[must_use]
pub fn compact_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(feature = "remote")]
fn status_script(path: &str) -> String {
    format!(
        "if command -v etcdutl >/dev/null 2>&1; then etcdutl snapshot status {path} -w json; \
         else ETCDCTL_API=3 etcdctl snapshot status {path} -w json; fi"
    )
}

#[cfg(feature = "remote")]
fn remote_err(host: &str, step: &'static str) -> impl FnOnce(hakube_remote::Error) -> Error {
    Error::remote(host, step)
}

#[cfg(feature = "remote")]
/// Takes a snapshot on `host`, verifies it, copies it into `local_dir`, and applies retention.
///
/// # Errors
/// [`Error::Remote`] for failed commands, [`Error::Etcd`] when the snapshot is empty or the
/// copy's hash differs, [`Error::OutputParse`] for an unreadable status.
pub async fn backup(
    host: &dyn RemoteExec,
    options: &BackupOptions,
    local_dir: &Path,
    now: SystemTime,
) -> Result<Snapshot> {
    let name = host.host().to_owned();
    let file = format!("etcd-snapshot-{}.db", compact_utc(now));
    let remote_path = format!("{}/{file}", options.remote_dir);
    let run = |c: Command| c.sudo(true).timeout(options.timeout);
    host.run_ok(&run(Command::new("mkdir").args([
        "-p",
        "-m",
        "700",
        &options.remote_dir,
    ])))
    .await
    .map_err(remote_err(&name, "mkdir"))?;
    host.run_ok(
        &run(Command::new("etcdctl"))
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &options.endpoint])
            .args(options.tls.args())
            .args(["snapshot", "save", &remote_path]),
    )
    .await
    .map_err(remote_err(&name, "etcdctl snapshot save"))?;
    let out = host
        .run_ok(&run(Command::shell(status_script(&remote_path))))
        .await
        .map_err(remote_err(&name, "snapshot status"))?;
    let status = parse_snapshot_status(&out.stdout_lossy())?;
    if status.total_size == 0 || status.revision == 0 {
        return Err(Error::Etcd {
            host: name,
            op: "snapshot status",
            reason: format!("snapshot {remote_path} is empty ({status:?})"),
        });
    }
    let out = host
        .run_ok(&run(Command::new("sha256sum").arg(&remote_path)))
        .await
        .map_err(remote_err(&name, "sha256sum"))?;
    let remote_sha = out
        .stdout_lossy()
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned();
    let bytes = host
        .read_file(&remote_path, true)
        .await
        .map_err(remote_err(&name, "copy snapshot"))?;
    let local_sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    if local_sha != remote_sha {
        return Err(Error::Etcd {
            host: name,
            op: "copy snapshot",
            reason: format!("local copy sha256 {local_sha} differs from the node's {remote_sha}"),
        });
    }
    let local_path = local_dir.join(format!("{name}-{file}"));
    let io = |e: std::io::Error| Error::Etcd {
        host: name.clone(),
        op: "copy snapshot",
        reason: format!("{}: {e}", local_path.display()),
    };
    std::fs::create_dir_all(local_dir).map_err(io)?;
    let tmp = local_path.with_extension("db.part");
    std::fs::write(&tmp, &bytes).map_err(io)?;
    std::fs::rename(&tmp, &local_path).map_err(io)?;

    // Retention on the node (names sort by time).
    let retain = options.retain.max(1);
    let out = host
        .run_ok(&run(Command::shell(format!(
            "ls -1 {}/ | grep -E '^etcd-snapshot-[0-9TZ]+\\.db$' || true",
            options.remote_dir
        ))))
        .await
        .map_err(remote_err(&name, "list snapshots"))?;
    let mut names: Vec<String> = out.stdout_lossy().lines().map(str::to_owned).collect();
    names.sort();
    let mut pruned = Vec::new();
    if names.len() > retain {
        for old in &names[..names.len() - retain] {
            host.run_ok(&run(Command::new("rm")
                .arg("-f")
                .arg(format!("{}/{old}", options.remote_dir))))
                .await
                .map_err(remote_err(&name, "prune snapshot"))?;
            pruned.push(old.clone());
        }
    }
    // Local retention for this node's snapshots.
    let prefix = format!("{name}-etcd-snapshot-");
    let mut local: Vec<_> = std::fs::read_dir(local_dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with(&prefix) && n.ends_with(".db"))
        .collect();
    local.sort();
    if local.len() > retain {
        for old in &local[..local.len() - retain] {
            std::fs::remove_file(local_dir.join(old)).map_err(io)?;
        }
    }
    Ok(Snapshot {
        remote_path,
        local_path,
        sha256: local_sha,
        status,
        pruned,
    })
}

/// How etcd is stopped and started on a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtcdRunner {
    /// kubeadm's static Pods: move the etcd and kube-apiserver manifests out of (and back into)
    /// `/etc/kubernetes/manifests`; the kubelet stops and starts them.
    KubeadmStaticPod,
    /// Arbitrary shell commands (systemd units, or a test lab).
    Commands {
        /// Stops etcd and returns once it is stopped.
        stop: String,
        /// Starts etcd in the background.
        start: String,
    },
}

#[cfg(feature = "remote")]
impl EtcdRunner {
    fn stop(&self) -> String {
        match self {
            Self::KubeadmStaticPod => "mkdir -p /etc/kubernetes/manifests.hakube-dr && \
                for f in etcd.yaml kube-apiserver.yaml; do \
                [ -f /etc/kubernetes/manifests/$f ] && mv /etc/kubernetes/manifests/$f /etc/kubernetes/manifests.hakube-dr/; \
                done; sleep 20"
                .into(),
            Self::Commands { stop, .. } => stop.clone(),
        }
    }
    fn start(&self) -> String {
        match self {
            Self::KubeadmStaticPod => "for f in etcd.yaml kube-apiserver.yaml; do \
                [ -f /etc/kubernetes/manifests.hakube-dr/$f ] && mv /etc/kubernetes/manifests.hakube-dr/$f /etc/kubernetes/manifests/; \
                done; true"
                .into(),
            Self::Commands { start, .. } => start.clone(),
        }
    }
}

#[cfg(feature = "remote")]
/// One member of the restored cluster.
#[derive(Clone)]
pub struct RestoreMember<'a> {
    /// The node.
    pub host: &'a dyn RemoteExec,
    /// Member name (kubeadm: the node name).
    pub name: String,
    /// Peer URL, `https://ADDR:2380`.
    pub peer_url: String,
}

#[cfg(feature = "remote")]
impl core::fmt::Debug for RestoreMember<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RestoreMember")
            .field("host", &self.host.host())
            .field("name", &self.name)
            .field("peer_url", &self.peer_url)
            .finish()
    }
}

/// Options of a restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Data directory of etcd on every member.
    pub data_dir: String,
    /// Where the snapshot is uploaded on every member.
    pub snapshot_path: String,
    /// A new cluster token (a restore makes a new cluster).
    pub cluster_token: String,
    /// How etcd is stopped and started.
    pub runner: EtcdRunner,
    /// Client URL and TLS for the final health check.
    pub endpoint: String,
    /// TLS material for the health check.
    pub tls: EtcdTls,
    /// How long to wait for health.
    pub health_timeout: Duration,
}

impl RestoreOptions {
    /// kubeadm defaults: `/var/lib/etcd`, static Pods, kubeadm TLS paths.
    #[must_use]
    pub fn kubeadm(cluster_token: impl Into<String>) -> Self {
        Self {
            data_dir: "/var/lib/etcd".into(),
            snapshot_path: "/var/lib/etcd-restore.db".into(),
            cluster_token: cluster_token.into(),
            runner: EtcdRunner::KubeadmStaticPod,
            endpoint: "https://127.0.0.1:2379".into(),
            tls: EtcdTls::kubeadm(),
            health_timeout: Duration::from_secs(180),
        }
    }
}

/// The restore command of one member.
#[must_use]
pub fn restore_command(
    member: &str,
    peer_url: &str,
    initial_cluster: &str,
    o: &RestoreOptions,
) -> String {
    let args = format!(
        "snapshot restore {snap} --name {member} --initial-cluster {initial_cluster} \
         --initial-cluster-token {token} --initial-advertise-peer-urls {peer_url} --data-dir {dir}",
        snap = o.snapshot_path,
        token = o.cluster_token,
        dir = o.data_dir,
    );
    format!(
        "if command -v etcdutl >/dev/null 2>&1; then etcdutl {args}; else ETCDCTL_API=3 etcdctl {args}; fi"
    )
}

#[cfg(feature = "remote")]
/// Restores every member from one snapshot (the whole-control-plane DR path; see the module
/// docs for the order). The old data directories are kept next to the new ones
/// (contents moved to `<data_dir>.before-restore-<time>`; the data directory may be a mount point).
///
/// # Errors
/// [`Error::Remote`] for failed commands, [`Error::Etcd`] when the cluster is not healthy in time.
pub async fn restore_cluster(
    members: &[RestoreMember<'_>],
    snapshot: &[u8],
    options: &RestoreOptions,
    now: SystemTime,
) -> Result<()> {
    if members.is_empty() {
        return Err(Error::invalid("members", "at least one member is needed"));
    }
    for (i, m) in members.iter().enumerate() {
        for (field, v) in [("name", &m.name), ("peer_url", &m.peer_url)] {
            if v.is_empty()
                || v.contains(|c: char| {
                    c.is_whitespace() || matches!(c, ',' | '=' | '\'' | ';' | '&' | '|' | '$' | '`')
                })
            {
                return Err(Error::invalid(
                    format!("members[{i}].{field}"),
                    format!("{v:?} is not a plain name/URL"),
                ));
            }
        }
    }
    let initial_cluster = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url))
        .collect::<Vec<_>>()
        .join(",");
    let sh = |s: String| {
        Command::shell(s)
            .sudo(true)
            .timeout(Duration::from_secs(300))
    };
    // 1. Stop etcd everywhere before touching any data.
    for m in members {
        m.host
            .run_ok(&sh(options.runner.stop()))
            .await
            .map_err(remote_err(m.host.host(), "stop etcd"))?;
    }
    // 2-3. Upload and restore.
    let aside = format!("{}.before-restore-{}", options.data_dir, compact_utc(now));
    for m in members {
        m.host
            .upload(
                &File::secret(options.snapshot_path.clone(), snapshot.to_vec()),
                true,
            )
            .await
            .map_err(remote_err(m.host.host(), "upload snapshot"))?;
        // The data directory may be a mount point: move its contents aside, restore into a
        // temporary sibling (restore refuses an existing directory), then move the result in.
        let tmp = format!("{}.hakube-restore", options.data_dir);
        m.host
            .run_ok(&sh(format!(
                "rm -rf {tmp} && mkdir -p {aside} && if [ -d {d} ]; then \
                 find {d} -mindepth 1 -maxdepth 1 -exec mv {{}} {aside}/ \\; ; fi",
                d = options.data_dir
            )))
            .await
            .map_err(remote_err(m.host.host(), "move data aside"))?;
        let restore_to = RestoreOptions {
            data_dir: tmp.clone(),
            ..options.clone()
        };
        m.host
            .run_ok(&sh(restore_command(
                &m.name,
                &m.peer_url,
                &initial_cluster,
                &restore_to,
            )))
            .await
            .map_err(remote_err(m.host.host(), "snapshot restore"))?;
        m.host
            .run_ok(&sh(format!(
                "mkdir -p {d} && chmod 700 {d} && find {tmp} -mindepth 1 -maxdepth 1 -exec mv {{}} {d}/ \\; && rmdir {tmp}",
                d = options.data_dir
            )))
            .await
            .map_err(remote_err(m.host.host(), "install restored data"))?;
    }
    // 4. Start everywhere.
    for m in members {
        m.host
            .run_ok(&sh(options.runner.start()))
            .await
            .map_err(remote_err(m.host.host(), "start etcd"))?;
    }
    // 5. Health.
    let deadline = std::time::Instant::now() + options.health_timeout;
    let first = members[0].host;
    loop {
        let out = first
            .run(
                &Command::new("etcdctl")
                    .sudo(true)
                    .timeout(Duration::from_secs(30))
                    .env("ETCDCTL_API", "3")
                    .args(["--endpoints", &options.endpoint])
                    .args(options.tls.args())
                    .args(["endpoint", "health", "--cluster"]),
            )
            .await
            .map_err(remote_err(first.host(), "endpoint health"))?;
        if out.success() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Etcd {
                host: first.host().to_owned(),
                op: "restore",
                reason: format!(
                    "cluster not healthy after restore: {}",
                    out.stderr_lossy().trim()
                ),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_list_formats() {
        let text = "8e9e05c52164694d, started, cp1, https://10.0.0.21:2380, https://10.0.0.21:2379, false\n\
                    91bc3c398fb3c146, unstarted, , https://10.0.0.22:2380, , true\n";
        let m = parse_member_list(text).unwrap();
        assert_eq!(m[0].name, "cp1");
        assert_eq!(m[0].client_urls, ["https://10.0.0.21:2379"]);
        assert!(!m[0].is_learner && m[1].is_learner);
        assert_eq!(m[1].status, "unstarted");
        // etcd 3.3 had no learner column.
        assert_eq!(
            parse_member_list("a, started, x, http://p, http://c").unwrap()[0].name,
            "x"
        );
        assert!(parse_member_list("garbage").is_err());
    }

    #[test]
    fn status_json() {
        let s = parse_snapshot_status(
            "Deprecated: Use `etcdutl snapshot status` instead.\n\n{\"hash\":3787882513,\"revision\":12,\"totalKey\":17,\"totalSize\":25000}\n",
        )
        .unwrap();
        assert_eq!((s.revision, s.total_key), (12, 17));
        assert!(parse_snapshot_status("{}").is_err());
    }

    #[test]
    fn compact_time() {
        assert_eq!(compact_utc(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(
            compact_utc(UNIX_EPOCH + Duration::from_secs(1_709_208_000 + 61)),
            "20240229T120101Z"
        );
    }

    #[test]
    fn restore_command_names_everything() {
        let o = RestoreOptions::kubeadm("restore-1");
        let c = restore_command(
            "cp2",
            "https://10.0.0.22:2380",
            "cp1=https://10.0.0.21:2380,cp2=https://10.0.0.22:2380",
            &o,
        );
        for part in [
            "--name cp2",
            "--initial-cluster cp1=",
            "--initial-cluster-token restore-1",
            "--initial-advertise-peer-urls https://10.0.0.22:2380",
            "--data-dir /var/lib/etcd",
        ] {
            assert!(c.contains(part), "{c}");
        }
    }
}
