//! Disaster recovery of the control plane's etcd from the snapshots the cluster made (the
//! `etcd-backup` CronJob writes `etcd-snapshot-<time>-<node>.db` and the matching
//! `etcd-pki-<time>-<node>.tar.gz` to the NFS export of the topology's `backup.etcd`).
//!
//! The procedure is etcd's "Disaster recovery" (restore every member from one snapshot into a
//! new data directory, as a new cluster) in kubeadm's shape (stacked etcd as static Pods),
//! over SSH, with the same commands on a real cluster as on the twin:
//! 1. list the snapshots on the NFS VM, newest first, and pick the newest whose trial
//!    `etcdutl snapshot restore` (it checks the SHA-256 `snapshot save` appends) passes on the
//!    first master; the ones that fail are named in the report;
//! 2. copy it (and its PKI archive) to every master, checking the SHA-256;
//! 3. read each master's etcd manifest (`--name`, `--initial-advertise-peer-urls`,
//!    `--data-dir`: the member keeps its identity), then move the etcd and kube-apiserver
//!    manifests out of `/etc/kubernetes/manifests` on every master (the kubelet stops both)
//!    and wait until nothing listens on etcd's and the API server's ports;
//! 4. on each master, `etcdutl snapshot restore` with its own `--name`, the full
//!    `--initial-cluster`, a new `--initial-cluster-token` and its
//!    `--initial-advertise-peer-urls` into a new directory next to the data, then swap the
//!    restored `member` directory in (the old one is kept as `member.before-restore-<time>`,
//!    never deleted; the data directory may be a mount point, so it is not renamed itself);
//! 5. restore `/etc/kubernetes/pki` from the PKI archive, only the files that are missing
//!    (on other masters than the one the archive comes from, only the files control-plane
//!    nodes share, [`SHARED_PKI`]: the others are that node's own);
//! 6. move the manifests back and wait for a healthy cluster of every master
//!    (`etcdctl endpoint health --cluster`, `member list`) and for the API through the VIP.
//!
//! It replaces the cluster's state, so it refuses to run unless [`Options::confirm`] is set.
//! A failure names the host and step; once the manifests were moved aside they are moved
//! back on every master before the error is returned (where the host still answers).
//! Where a host has no `etcdutl` (etcd 3.4, as Debian 12's `etcd-client`), `etcdctl snapshot
//! restore` (the same command before etcd 3.5 moved it) is used.
//!
//! The snapshot passes through this machine (read from the NFS VM, uploaded to each master),
//! so it is held in memory once.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hakube_remote::{Command, File, RemoteExec, SshPool};
use hakube_topology::{Cluster, RoleKind};

use crate::ssh::SshArgs;
use crate::stage::Error;

/// Where the manifests wait while etcd is restored (outside the kubelet's manifest directory).
pub const MANIFESTS_ASIDE: &str = "/etc/kubernetes/manifests.hakube-restore";
/// The kubelet's static Pod directory.
pub const MANIFESTS: &str = "/etc/kubernetes/manifests";
/// The cluster's PKI directory (restored from the archive where files are missing).
pub const PKI_DIR: &str = "/etc/kubernetes/pki";
/// etcdctl's TLS flags with kubeadm's paths.
const ETCDCTL_TLS: &str = "--cacert=/etc/kubernetes/pki/etcd/ca.crt \
     --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
     --key=/etc/kubernetes/pki/etcd/healthcheck-client.key";
/// The static Pods a restore stops and starts.
const PODS: [&str; 2] = ["etcd.yaml", "kube-apiserver.yaml"];

/// How to restore.
#[derive(Debug, Clone)]
pub struct Options {
    /// Must be true: the restore replaces the whole cluster state with the snapshot's.
    pub confirm: bool,
    /// The snapshot directory on the NFS VM (default: the topology's `backup.etcd.export`).
    pub export: Option<String>,
    /// A snapshot file name to restore instead of the newest verified one.
    pub snapshot: Option<String>,
    /// The admin kubeconfig, to check the API through the VIP at the end (skipped when None).
    pub kubeconfig: Option<std::path::PathBuf>,
    /// How long to wait for the kubelet to stop etcd and the API server.
    pub stop_timeout: Duration,
    /// How long to wait for a healthy cluster and the API afterwards.
    pub health_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            confirm: false,
            export: None,
            snapshot: None,
            kubeconfig: None,
            stop_timeout: Duration::from_secs(120),
            health_timeout: Duration::from_secs(180),
        }
    }
}

/// One master's part of the restore.
#[derive(Debug, Clone)]
pub struct MemberReport {
    /// The master.
    pub host: String,
    /// Its etcd member name.
    pub name: String,
    /// Its peer URL.
    pub peer_url: String,
    /// Where its previous data is kept.
    pub kept: String,
    /// PKI files restored from the archive (they were missing).
    pub pki_restored: Vec<String>,
}

/// What the restore did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The snapshot restored (file name on the export).
    pub snapshot: String,
    /// Its revision and key count, from the trial restore's `snapshot status`.
    pub revision: u64,
    /// Newer snapshots that failed the trial restore, with why.
    pub rejected: Vec<(String, String)>,
    /// The PKI archive used (None when the export has none for the snapshot).
    pub pki_archive: Option<String>,
    /// The cluster token of the restored cluster.
    pub cluster_token: String,
    /// Per master.
    pub members: Vec<MemberReport>,
    /// Wall time from the first command to the API answering.
    pub elapsed: Duration,
}

type Host = Arc<dyn RemoteExec>;

fn step_err(host: &str, step: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::stage(format!("{host}: {step}"), e)
}

fn step_msg(host: &str, step: &str, why: impl Into<String>) -> Error {
    Error::Input(format!("{host}: {step}: {}", why.into()))
}

fn sh(script: impl Into<String>, timeout: Duration) -> Command {
    Command::shell(script).sudo(true).timeout(timeout)
}

async fn run_ok(h: &Host, step: &str, script: String, timeout: Duration) -> Result<String, Error> {
    h.run_ok(&sh(script, timeout))
        .await
        .map(|o| o.stdout_lossy())
        .map_err(|e| step_err(h.host(), step, e))
}

/// `etcdutl ARGS` where the host has etcdutl, else `etcdctl` (etcd 3.4 had the same command).
fn etcdutl(args: &str) -> String {
    format!(
        "if command -v etcdutl >/dev/null 2>&1; then etcdutl {args}; \
         else ETCDCTL_API=3 etcdctl {args}; fi"
    )
}

/// A snapshot name's PKI archive: `etcd-snapshot-<ts>-<node>.db` -> `etcd-pki-<ts>-<node>.tar.gz`.
#[must_use]
pub fn pki_archive_for(snapshot: &str) -> Option<String> {
    let rest = snapshot
        .strip_prefix(hakube_addons::etcd_backup::SNAPSHOT_PREFIX)?
        .strip_suffix(".db")?;
    Some(format!(
        "{}{rest}.tar.gz",
        hakube_addons::etcd_backup::PKI_PREFIX
    ))
}

/// Whether `name` is a finished snapshot file name of the backup job (no partial, no path).
fn is_snapshot_name(name: &str) -> bool {
    name.starts_with(hakube_addons::etcd_backup::SNAPSHOT_PREFIX)
        && name.ends_with(".db")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What a master's etcd manifest says about its member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    /// `--name`.
    pub name: String,
    /// `--initial-advertise-peer-urls` (the first).
    pub peer_url: String,
    /// `--data-dir`.
    pub data_dir: String,
}

/// Reads `--name`, `--initial-advertise-peer-urls` and `--data-dir` from an etcd static Pod
/// manifest (kubeadm's `etcd.yaml`).
///
/// # Errors
/// A message naming what is missing or unsafe in a shell command.
pub fn parse_etcd_manifest(text: &str) -> Result<MemberSpec, String> {
    let pod: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let container = pod["spec"]["containers"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["name"] == "etcd")
                .or_else(|| cs.first())
        })
        .ok_or("no containers")?;
    let args: Vec<&str> = container["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(container["args"].as_array().into_iter().flatten())
        .filter_map(serde_json::Value::as_str)
        .collect();
    let flag = |name: &str| {
        let eq = format!("--{name}=");
        args.iter()
            .find_map(|a| a.strip_prefix(eq.as_str()))
            .or_else(|| {
                let bare = format!("--{name}");
                args.windows(2).find(|w| w[0] == bare).map(|w| w[1])
            })
            .map(str::to_owned)
            .ok_or(format!("no --{name} in the etcd command"))
    };
    let spec = MemberSpec {
        name: flag("name")?,
        peer_url: flag("initial-advertise-peer-urls")?
            .split(',')
            .next()
            .unwrap_or_default()
            .to_owned(),
        data_dir: flag("data-dir")?,
    };
    for (what, v) in [
        ("--name", &spec.name),
        ("--initial-advertise-peer-urls", &spec.peer_url),
        ("--data-dir", &spec.data_dir),
    ] {
        let plain = !v.is_empty()
            && v.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '[' | ']')
            });
        if !plain {
            return Err(format!("{what} {v:?} is not a plain name, URL or path"));
        }
    }
    if !spec.data_dir.starts_with('/') || spec.data_dir == "/" {
        return Err(format!(
            "--data-dir {:?} is not an absolute directory",
            spec.data_dir
        ));
    }
    Ok(spec)
}

/// Restores etcd on every master from the newest verified snapshot on the backup export (see
/// the module docs for the procedure).
///
/// # Errors
/// [`Error::Input`] without [`Options::confirm`], for a topology without masters, an NFS VM
/// or `backup.etcd`, when no snapshot passes the trial restore, or for a manifest it cannot
/// read; [`Error::Stage`] naming the host and step of a command that failed or a cluster that
/// did not become healthy in time.
pub async fn run(
    cluster: &Cluster,
    ssh: &SshArgs,
    pool: &SshPool,
    opts: &Options,
) -> Result<Report, Error> {
    if !opts.confirm {
        return Err(Error::Input(
            "restoring etcd replaces the whole cluster state with the snapshot's: confirm it \
             explicitly (Options::confirm)"
                .into(),
        ));
    }
    let t0 = Instant::now();
    let export = export_dir(cluster, opts)?;
    let masters: Vec<Host> = ssh.sessions(
        pool,
        cluster,
        cluster
            .vms
            .iter()
            .filter(|v| v.role == RoleKind::ControlPlane),
    );
    let nfs: Host = ssh
        .sessions(
            pool,
            cluster,
            cluster.vms.iter().filter(|v| v.role == RoleKind::Nfs),
        )
        .into_iter()
        .next()
        .ok_or_else(|| Error::Input("the topology has no NFS VM".into()))?;
    let first = masters
        .first()
        .cloned()
        .ok_or_else(|| Error::Input("the topology has no control-plane VMs".into()))?;
    let stamp = hakube_kubeadm::etcd::compact_utc(SystemTime::now());

    // 1. The newest snapshot on the export that restores. The data directory comes from the
    // first master's manifest (or the aside copy of an interrupted run).
    let specs = read_specs(&masters).await?;
    let picked = pick_snapshot(
        &nfs,
        &first,
        &export,
        opts.snapshot.as_deref(),
        &staging(&specs[0].data_dir, &stamp),
    )
    .await?;
    // 2. The snapshot and its PKI archive on every master.
    let archive = match pki_archive_for(&picked.name) {
        Some(a) if picked.listing.iter().any(|l| l == &a) => {
            let data = nfs
                .read_file(&format!("{export}/{a}"), true)
                .await
                .map_err(|e| step_err(nfs.host(), &format!("read {a}"), e))?;
            Some((a, data))
        }
        _ => None,
    };
    for (h, spec) in masters.iter().zip(&specs) {
        let dir = staging(&spec.data_dir, &stamp);
        upload(h, &format!("{dir}/{}", picked.name), &picked.bytes).await?;
        if let Some((a, data)) = &archive {
            upload(h, &format!("{dir}/{a}"), data).await?;
        }
    }
    let job = Members {
        snapshot: &picked.name,
        archive: archive.as_ref().map(|(a, _)| a.as_str()),
        initial_cluster: specs
            .iter()
            .map(|s| format!("{}={}", s.name, s.peer_url))
            .collect::<Vec<_>>()
            .join(","),
        cluster_token: format!("hakube-restore-{}", stamp.to_lowercase()),
        stamp: &stamp,
    };

    // 3-5, with the manifests put back whatever happens once they were moved.
    let result = async {
        stop_control_plane(&masters, opts.stop_timeout).await?;
        let mut members = Vec::new();
        for (h, spec) in masters.iter().zip(&specs) {
            members.push(job.restore(h, spec).await?);
        }
        Ok::<_, Error>(members)
    }
    .await;
    let back = start_control_plane(&masters).await;
    let members = result?;
    back?;
    for (h, spec) in masters.iter().zip(&specs) {
        let dir = staging(&spec.data_dir, &stamp);
        let _ = h.run(&sh(format!("rm -rf {dir}"), SHORT)).await;
    }

    // 6. A healthy cluster of every master, and the API through the VIP.
    wait_healthy(&first, &specs, opts.health_timeout).await?;
    if let Some(kc) = &opts.kubeconfig {
        wait_api(kc, cluster, opts.health_timeout).await?;
    }
    Ok(Report {
        snapshot: picked.name.clone(),
        revision: picked.status.revision,
        rejected: picked.rejected,
        pki_archive: job.archive.map(str::to_owned),
        cluster_token: job.cluster_token,
        members,
        elapsed: t0.elapsed(),
    })
}

/// Commands that answer at once.
const SHORT: Duration = Duration::from_secs(60);
/// Commands that copy or restore a snapshot.
const LONG: Duration = Duration::from_secs(600);

/// The snapshot directory: the option's, else the topology's `backup.etcd.export`, a plain path.
fn export_dir(cluster: &Cluster, opts: &Options) -> Result<String, Error> {
    let export = opts
        .export
        .clone()
        .or_else(|| {
            cluster
                .topology
                .backup
                .as_ref()
                .and_then(|b| b.etcd.as_ref())
                .map(|e| e.export.clone())
        })
        .ok_or_else(|| {
            Error::Input("the topology has no backup.etcd export to restore from".into())
        })?;
    if export.contains(|c: char| c.is_whitespace() || "'\"$`;&|\\".contains(c)) {
        return Err(Error::Input(format!(
            "backup.etcd.export {export:?} is not a plain path"
        )));
    }
    Ok(export)
}

/// Where a master keeps this restore's files, inside its etcd data directory.
fn staging(data_dir: &str, stamp: &str) -> String {
    format!("{data_dir}/hakube-restore-{stamp}")
}

/// The snapshot [`pick_snapshot`] chose.
struct Picked {
    name: String,
    bytes: Vec<u8>,
    status: hakube_kubeadm::etcd::SnapshotStatus,
    /// Newer snapshots that failed the trial restore, with why.
    rejected: Vec<(String, String)>,
    /// Every file name on the export.
    listing: Vec<String>,
}

/// Lists the snapshots on the export (newest first; only `want` when given) and returns the
/// first that a trial `etcdutl snapshot restore` on `first` (in `first_staging`) accepts.
async fn pick_snapshot(
    nfs: &Host,
    first: &Host,
    export: &str,
    want: Option<&str>,
    first_staging: &str,
) -> Result<Picked, Error> {
    let listing: Vec<String> = run_ok(nfs, "list snapshots", format!("ls -1 {export}/"), SHORT)
        .await?
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    let mut names: Vec<String> = listing
        .iter()
        .filter(|n| is_snapshot_name(n))
        .cloned()
        .collect();
    names.sort_by(|a, b| snapshot_time(b).cmp(snapshot_time(a)).then(b.cmp(a)));
    if let Some(want) = want {
        names.retain(|n| n == want);
        if names.is_empty() {
            return Err(step_msg(
                nfs.host(),
                "pick snapshot",
                format!("{want} is not in {export}"),
            ));
        }
    }
    if names.is_empty() {
        return Err(step_msg(
            nfs.host(),
            "list snapshots",
            format!("no snapshots in {export}"),
        ));
    }
    let mut rejected = Vec::new();
    for name in &names {
        let bytes = nfs
            .read_file(&format!("{export}/{name}"), true)
            .await
            .map_err(|e| step_err(nfs.host(), &format!("read {name}"), e))?;
        let snap = format!("{first_staging}/{name}");
        upload(first, &snap, &bytes).await?;
        let check = format!("{first_staging}/check");
        let out = first
            .run(&sh(
                format!(
                    "rm -rf {check} && {} && {}; rc=$?; rm -rf {check}; exit $rc",
                    etcdutl(&format!("snapshot restore {snap} --data-dir {check}")),
                    etcdutl(&format!("snapshot status {snap} -w json"))
                ),
                LONG,
            ))
            .await
            .map_err(|e| step_err(first.host(), "trial restore", e))?;
        if out.success() {
            let status = hakube_kubeadm::etcd::parse_snapshot_status(&out.stdout_lossy())
                .map_err(|e| step_err(first.host(), "snapshot status", e))?;
            return Ok(Picked {
                name: name.clone(),
                bytes,
                status,
                rejected,
                listing,
            });
        }
        let why = out.stderr_lossy();
        let why = why
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        rejected.push((name.clone(), why.trim().to_owned()));
        let _ = first.run(&sh(format!("rm -f {snap}"), SHORT)).await;
    }
    let _ = first
        .run(&sh(format!("rm -rf {first_staging}"), SHORT))
        .await;
    Err(step_msg(
        first.host(),
        "trial restore",
        format!(
            "no snapshot in {export} restores: {}",
            rejected
                .iter()
                .map(|(n, w)| format!("{n} ({w})"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    ))
}

/// What every master's restore shares (steps 3-5).
struct Members<'a> {
    snapshot: &'a str,
    archive: Option<&'a str>,
    initial_cluster: String,
    cluster_token: String,
    stamp: &'a str,
}

impl Members<'_> {
    /// On one master whose etcd is stopped: `etcdutl snapshot restore` as its member, the
    /// restored data swapped in (the old kept), missing PKI files from the archive.
    async fn restore(&self, h: &Host, spec: &MemberSpec) -> Result<MemberReport, Error> {
        let dir = staging(&spec.data_dir, self.stamp);
        let restore = hakube_kubeadm::etcd::restore_command(
            &spec.name,
            &spec.peer_url,
            &self.initial_cluster,
            &hakube_kubeadm::etcd::RestoreOptions {
                data_dir: format!("{dir}/data"),
                snapshot_path: format!("{dir}/{}", self.snapshot),
                ..hakube_kubeadm::etcd::RestoreOptions::kubeadm(self.cluster_token.clone())
            },
        );
        run_ok(
            h,
            "etcdutl snapshot restore",
            format!("rm -rf {dir}/data && {restore}"),
            LONG,
        )
        .await?;
        let kept = format!("{}/member.before-restore-{}", spec.data_dir, self.stamp);
        run_ok(
            h,
            "swap the restored data in",
            format!(
                "set -e; d={d}; if [ -e $d/member ]; then mv $d/member {kept}; fi; \
                 mv {dir}/data/member $d/member; chmod 700 $d; rm -rf {dir}/data",
                d = spec.data_dir
            ),
            SHORT,
        )
        .await?;
        let pki_restored = match self.archive {
            Some(a) => {
                // The archive's node-specific certificates are its node's: elsewhere only the
                // files every control-plane node shares come from it.
                let own = snapshot_node(self.snapshot) == Some(h.host());
                let only = if own { None } else { Some(SHARED_PKI) };
                restore_missing_pki(h, &format!("{dir}/{a}"), only).await?
            }
            None => Vec::new(),
        };
        Ok(MemberReport {
            host: h.host().to_owned(),
            name: spec.name.clone(),
            peer_url: spec.peer_url.clone(),
            kept,
            pki_restored,
        })
    }
}

/// The `<time>` of `etcd-snapshot-<time>-<node>.db` (for ordering across nodes).
/// The `<node>` of `etcd-snapshot-<time>-<node>.db`.
fn snapshot_node(name: &str) -> Option<&str> {
    name.strip_prefix(hakube_addons::etcd_backup::SNAPSHOT_PREFIX)?
        .strip_suffix(".db")?
        .split_once('-')
        .map(|(_, node)| node)
}

fn snapshot_time(name: &str) -> &str {
    name.strip_prefix(hakube_addons::etcd_backup::SNAPSHOT_PREFIX)
        .and_then(|r| r.split('-').next())
        .unwrap_or(name)
}

async fn upload(h: &Host, path: &str, data: &[u8]) -> Result<(), Error> {
    h.upload(&File::secret(path, data.to_vec()), true)
        .await
        .map_err(|e| step_err(h.host(), &format!("upload {path}"), e))?;
    let want = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(data))
    };
    let got = run_ok(
        h,
        "sha256sum",
        format!("sha256sum {path}"),
        Duration::from_secs(120),
    )
    .await?;
    if got.split_whitespace().next() != Some(want.as_str()) {
        return Err(step_msg(
            h.host(),
            &format!("upload {path}"),
            "the copy's SHA-256 differs from the backup's",
        ));
    }
    Ok(())
}

/// Each master's member, from its etcd manifest (in place, or aside after an interrupted run).
async fn read_specs(masters: &[Host]) -> Result<Vec<MemberSpec>, Error> {
    let mut specs = Vec::new();
    for h in masters {
        let text = run_ok(
            h,
            "read the etcd manifest",
            format!(
                "if [ -f {MANIFESTS}/etcd.yaml ]; then cat {MANIFESTS}/etcd.yaml; \
                 elif [ -f {MANIFESTS_ASIDE}/etcd.yaml ]; then cat {MANIFESTS_ASIDE}/etcd.yaml; \
                 else echo 'no etcd.yaml in {MANIFESTS} or {MANIFESTS_ASIDE}' >&2; exit 1; fi"
            ),
            Duration::from_secs(30),
        )
        .await?;
        specs.push(
            parse_etcd_manifest(&text)
                .map_err(|e| step_msg(h.host(), "read the etcd manifest", e))?,
        );
    }
    Ok(specs)
}

/// Moves the etcd and API server manifests aside on every master, then waits until the
/// kubelet stopped them (nothing listens on 2379, 2380 or 6443).
async fn stop_control_plane(masters: &[Host], timeout: Duration) -> Result<(), Error> {
    for h in masters {
        let mv: Vec<String> = PODS
            .iter()
            .map(|f| {
                format!(
                    "if [ -f {MANIFESTS}/{f} ]; then mv {MANIFESTS}/{f} {MANIFESTS_ASIDE}/{f}; fi"
                )
            })
            .collect();
        run_ok(
            h,
            "move the etcd and kube-apiserver manifests aside",
            format!(
                "set -e; mkdir -p -m 700 {MANIFESTS_ASIDE}; {}",
                mv.join("; ")
            ),
            Duration::from_secs(30),
        )
        .await?;
    }
    let secs = timeout.as_secs().max(1);
    for h in masters {
        run_ok(
            h,
            "wait until etcd and the API server stopped",
            format!(
                "i=0; while ss -Hltn | grep -Eq ':(2379|2380|6443)[[:space:]]'; do \
                 i=$((i+1)); if [ $i -gt {n} ]; then ss -Hltnp | grep -E ':(2379|2380|6443)[[:space:]]' >&2; \
                 echo 'still listening after {secs}s' >&2; exit 1; fi; sleep 0.5; done",
                n = secs * 2
            ),
            timeout + Duration::from_secs(30),
        )
        .await?;
    }
    Ok(())
}

/// Moves the manifests back on every master (each one it can; the first failure is returned).
async fn start_control_plane(masters: &[Host]) -> Result<(), Error> {
    let mut first_err = None;
    for h in masters {
        let mv: Vec<String> = PODS
            .iter()
            .map(|f| format!("if [ -f {MANIFESTS_ASIDE}/{f} ]; then mv {MANIFESTS_ASIDE}/{f} {MANIFESTS}/{f}; fi"))
            .collect();
        let r = run_ok(
            h,
            "move the etcd and kube-apiserver manifests back",
            format!(
                "set -e; {}; rmdir {MANIFESTS_ASIDE} 2>/dev/null || true",
                mv.join("; ")
            ),
            Duration::from_secs(30),
        )
        .await;
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The PKI files every control-plane node has the same copy of (kubeadm's "certificates
/// shared between control-plane nodes"); the others are per node.
pub const SHARED_PKI: &[&str] = &[
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
];

/// Extracts the files of the PKI archive that are missing under [`PKI_DIR`] (of `only`, when
/// given); their names.
async fn restore_missing_pki(
    h: &Host,
    archive: &str,
    only: Option<&[&str]>,
) -> Result<Vec<String>, Error> {
    let filter = only.map_or_else(String::new, |names| {
        format!(
            "case \"${{f#./}}\" in {}) ;; *) continue ;; esac; ",
            names.join("|")
        )
    });
    let out = run_ok(
        h,
        "restore missing PKI files",
        format!(
            "set -e; mkdir -p -m 755 {PKI_DIR}; tar -tzf {archive} | while IFS= read -r f; do \
             case \"$f\" in */) continue ;; esac; {filter}\
             [ -e \"{PKI_DIR}/$f\" ] || echo \"$f\"; done > {archive}.missing; \
             if [ -s {archive}.missing ]; then \
             tar -xzf {archive} -C {PKI_DIR} --skip-old-files -T {archive}.missing; fi; \
             cat {archive}.missing; rm -f {archive}.missing"
        ),
        Duration::from_secs(60),
    )
    .await?;
    Ok(out
        .lines()
        .map(|l| l.trim_start_matches("./").to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

/// Waits until every member of `specs` is started and healthy.
async fn wait_healthy(first: &Host, specs: &[MemberSpec], timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let script = format!(
        "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 {ETCDCTL_TLS} \
         --command-timeout=5s endpoint health --cluster && \
         ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 {ETCDCTL_TLS} \
         --command-timeout=5s member list"
    );
    loop {
        let out = first
            .run(&sh(script.clone(), Duration::from_secs(60)))
            .await
            .map_err(|e| step_err(first.host(), "etcd health", e))?;
        let why = if out.success() {
            let members = hakube_kubeadm::etcd::parse_member_list(
                out.stdout_lossy()
                    .lines()
                    .filter(|l| l.matches(", ").count() >= 4)
                    .collect::<Vec<_>>()
                    .join("\n")
                    .as_str(),
            )
            .map_err(|e| step_err(first.host(), "etcd member list", e))?;
            let started = |name: &str| {
                members
                    .iter()
                    .any(|m| m.name == name && m.status == "started" && !m.is_learner)
            };
            let missing: Vec<&str> = specs
                .iter()
                .map(|s| s.name.as_str())
                .filter(|n| !started(n))
                .collect();
            if missing.is_empty() && members.len() == specs.len() {
                return Ok(());
            }
            format!("members {members:?}, not started: {missing:?}")
        } else {
            out.stderr_lossy().trim().to_owned()
        };
        if Instant::now() >= deadline {
            return Err(step_msg(
                first.host(),
                "wait for a healthy etcd cluster",
                format!("not healthy after {}s: {why}", timeout.as_secs()),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until the API answers through the VIP (a namespace list: it reads from etcd).
async fn wait_api(
    kubeconfig: &std::path::Path,
    cluster: &Cluster,
    timeout: Duration,
) -> Result<(), Error> {
    let vip = cluster.topology.network.vip;
    let step = format!("{vip}:6443");
    let client = crate::kube_client(kubeconfig).await.map_err(Error::Input)?;
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    let deadline = Instant::now() + timeout;
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            api.list(&kube::api::ListParams::default().limit(1)),
        )
        .await;
        match r {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if Instant::now() >= deadline => {
                return Err(step_err(&step, "the API through the VIP", e));
            }
            Err(_) if Instant::now() >= deadline => {
                return Err(step_msg(&step, "the API through the VIP", "no answer"));
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r"apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.20.0.21:2379
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://10.20.0.21:2380
    - --initial-cluster=master-1=https://10.20.0.21:2380
    - --name=master-1
    name: etcd
";

    #[test]
    fn manifest_names_the_member() {
        let s = parse_etcd_manifest(MANIFEST).unwrap();
        assert_eq!(
            s,
            MemberSpec {
                name: "master-1".into(),
                peer_url: "https://10.20.0.21:2380".into(),
                data_dir: "/var/lib/etcd".into(),
            }
        );
        let bad = MANIFEST.replace("--name=master-1", "--name=a;rm");
        assert!(parse_etcd_manifest(&bad).unwrap_err().contains("--name"));
        let none = MANIFEST.replace("    - --data-dir=/var/lib/etcd\n", "");
        assert!(
            parse_etcd_manifest(&none)
                .unwrap_err()
                .contains("--data-dir")
        );
    }

    #[test]
    fn archive_and_order() {
        assert_eq!(
            pki_archive_for("etcd-snapshot-20261206T090000Z-master-2.db").as_deref(),
            Some("etcd-pki-20261206T090000Z-master-2.tar.gz")
        );
        assert!(pki_archive_for(".partial-master-1.db").is_none());
        assert!(is_snapshot_name(
            "etcd-snapshot-20261206T090000Z-master-2.db"
        ));
        assert!(!is_snapshot_name("etcd-snapshot-x;y.db"));
        assert_eq!(
            snapshot_time("etcd-snapshot-20261206T090000Z-master-2.db"),
            "20261206T090000Z"
        );
        assert_eq!(
            snapshot_node("etcd-snapshot-20261206T090000Z-master-2.db"),
            Some("master-2")
        );
    }
}
