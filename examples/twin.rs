//! The local twin of a topology for `up --lab`: fakepve with the topology's Proxmox nodes and
//! templates whose VM starts power lab hosts at the planned addresses ([`hakube_lab::twin`]),
//! and a `helm` stand-in that creates what the charts would (needs root).

use std::path::{Path, PathBuf};

use hakube_lab::twin::{Twin, TwinSpec, TwinTemplate, TwinVm};
use hakube_topology::Cluster;

// The objects the charts would create, derived from the plan the same way the runner's tests
// derive them (the helm stand-in cannot render charts).
#[path = "../crates/addons/tests/support/mod.rs"]
mod chart_support;

/// What the twin is built from: the topology's Proxmox nodes, storage, templates and VMs.
///
/// # Errors
/// A message when the topology's network is not a /24 whose `.1` is the gateway (the twin's
/// machine takes `.1`).
pub fn spec(cluster: &Cluster) -> Result<TwinSpec, String> {
    let t = &cluster.topology;
    let net = t.network.cidr;
    let first = u32::from(net.network()) + 1;
    if net.prefix_len() != 24 || u32::from(t.network.gateway) != first {
        return Err(format!(
            "network: the local twin needs a /24 whose .1 is the gateway (this machine), not {net} via {}",
            t.network.gateway
        ));
    }
    let mut templates: Vec<TwinTemplate> = t
        .proxmox
        .nodes
        .iter()
        .filter_map(|n| {
            n.template.map(|vmid| TwinTemplate {
                vmid,
                node: n.name.clone(),
                name: format!("template-{vmid}"),
            })
        })
        .collect();
    if let Some(s) = &t.proxmox.template {
        templates.push(TwinTemplate {
            vmid: s.vmid,
            node: s.node.clone(),
            name: format!("template-{}", s.vmid),
        });
    }
    Ok(TwinSpec {
        tag: "twin".into(),
        subnet: net,
        nodes: t.proxmox.nodes.iter().map(|n| n.name.clone()).collect(),
        storage: t.proxmox.storage.clone(),
        bridge: t.proxmox.bridge.clone(),
        templates,
        vms: cluster
            .vms
            .iter()
            .map(|v| TwinVm {
                name: v.name.clone(),
                addr: v.address,
            })
            .collect(),
    })
}

/// Builds the twin of `cluster`.
///
/// # Errors
/// A message naming what is wrong (the network, root, fakepve).
pub fn start(cluster: &Cluster) -> Result<Twin, String> {
    let spec = spec(cluster)?;
    Twin::start(&spec).map_err(|e| format!("local twin: {}", crate::error_chain(&e)))
}

/// A `helm` stand-in for the plan in `plan_dir` (its log and the chart objects under `dir`).
///
/// # Errors
/// A message when the plan's steps cannot be read.
pub fn helm(plan_dir: &Path, dir: &Path) -> Result<PathBuf, String> {
    let plan = hakube_addons::run::Plan::read(plan_dir)
        .map_err(|e| format!("{}: {}", plan_dir.display(), crate::error_chain(&e)))?;
    let objects = chart_support::chart_objects(&plan, dir);
    Ok(chart_support::helm_wrapper(dir, &objects).0)
}

/// Runs the etcd backup CronJob's Job once on the master `node`, as the kubelet would run the
/// Pod the CronJob's schedule creates ([`Twin::run_pod`]): the CronJob is read from the
/// cluster's API (what `addons` applied), its Pod's init containers (`etcdctl snapshot save`,
/// the trial `etcdutl snapshot restore`) and container (the PKI archive, final names,
/// retention) run on the master with the `nfs` volume being the NFS VM's export. Nothing
/// here writes a snapshot itself: what lands on the export is what the CronJob's commands wrote.
///
/// # Errors
/// A message when the CronJob cannot be read or a container fails (naming it, with its output).
pub async fn run_etcd_backup(
    twin: &Twin,
    kubeconfig: &Path,
    node: &str,
) -> Result<hakube_lab::twin::PodRun, String> {
    let client = crate::kube_client(kubeconfig).await?;
    let api: kube::Api<k8s_openapi::api::batch::v1::CronJob> =
        kube::Api::namespaced(client, hakube_addons::etcd_backup::NAMESPACE);
    let cronjob = api
        .get("etcd-backup")
        .await
        .map_err(|e| format!("reading CronJob kube-system/etcd-backup: {e}"))?;
    let cronjob = serde_json::to_value(&cronjob).map_err(|e| e.to_string())?;
    let job = &cronjob["spec"]["jobTemplate"]["spec"];
    let mut pod = job["template"]["spec"].clone();
    if let Some(d) = job.get("activeDeadlineSeconds") {
        pod["activeDeadlineSeconds"] = d.clone();
    }
    let run = twin
        .run_pod(node, &pod)
        .map_err(|e| format!("etcd-backup job on {node}: {}", crate::error_chain(&e)))?;
    if !run.succeeded() {
        let last = run.containers.last();
        return Err(format!(
            "etcd-backup job on {node}: container {} exited {}: {}",
            last.map_or("?", |c| c.name.as_str()),
            last.map_or(-1, |c| c.status),
            last.map_or("", |c| c.output.trim())
        ));
    }
    Ok(run)
}

/// Where a running twin describes itself, under the plan directory's state.
#[must_use]
pub fn kept_path(out: &Path) -> PathBuf {
    out.join(hakube_plan::STATE_DIR).join("twin.json")
}

/// A twin running in its own process (`up --lab`): how to reach it. Written 0600 to
/// [`kept_path`] by that process once the twin is built, removed when it tears the twin down.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Running {
    /// The process holding the twin.
    pub pid: u32,
    /// Whether it outlives the `up` that started it (`--keep`).
    pub keep: bool,
    /// fakepve's URL.
    pub pve_url: String,
    /// fakepve's certificate fingerprint.
    pub pve_fingerprint: String,
    /// fakepve's password for [`hakube_lab::twin::TWIN_USER`].
    pub pve_password: String,
    /// The private key every VM's sshd accepts for root.
    pub ssh_key: PathBuf,
    /// A known_hosts file with every VM's host key.
    pub known_hosts: PathBuf,
    /// Every VM: name, address, network namespace.
    pub hosts: Vec<(String, std::net::Ipv4Addr, String)>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("pid", &self.pid)
            .field("keep", &self.keep)
            .field("pve_url", &self.pve_url)
            .field("pve_password", &"<redacted>")
            .field("hosts", &self.hosts.len())
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Reads the description of the twin running for `out`, if its process is alive (a stale
    /// description, left by a process that was killed, is removed).
    ///
    /// # Errors
    /// A message when the file cannot be read or parsed.
    pub fn find(out: &Path) -> Result<Option<Self>, String> {
        let path = kept_path(out);
        let body = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let r: Self =
            serde_json::from_slice(&body).map_err(|e| format!("{}: {e}", path.display()))?;
        if r.alive() {
            Ok(Some(r))
        } else {
            let _ = std::fs::remove_file(&path);
            Ok(None)
        }
    }

    /// Whether the process holding the twin still runs.
    #[must_use]
    pub fn alive(&self) -> bool {
        // A process that ended but was not reaped yet (a zombie) is not alive.
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
    }

    /// Asks the process holding the twin to tear it down, and waits (up to 60 s) until it did.
    ///
    /// # Errors
    /// A message when the process cannot be signalled or outlives the wait.
    pub fn stop(&self) -> Result<(), String> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if !sent.success() && self.alive() {
            return Err(format!("could not signal the twin's process {}", self.pid));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.alive() {
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "the twin's process {} is still tearing down after 60 s",
                    self.pid
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    /// How to reach each host and the VIP, for the operator.
    #[must_use]
    pub fn access(&self, vip: std::net::Ipv4Addr) -> String {
        use std::fmt::Write as _;
        let mut s = format!(
            "the twin stays up (process {}); remove it with `up --lab-down` (same --out)\n\
             API  https://{vip}:6443   Vault  https://{vip}:8200   Proxmox VE  {}\n",
            self.pid, self.pve_url
        );
        for (name, addr, ns) in &self.hosts {
            let _ = writeln!(
                s,
                "  {name:<18} ssh -i {} -o UserKnownHostsFile={} root@{addr}   (ip netns exec {ns} ...)",
                self.ssh_key.display(),
                self.known_hosts.display()
            );
        }
        s
    }
}

/// Runs the twin of `cluster` in this process until told to stop: builds it, describes it in
/// [`kept_path`], then waits for SIGTERM, SIGINT or SIGHUP (or, unless `keep`, for the parent
/// process to end: a killed `up` leaves nothing behind) and tears it down.
///
/// # Errors
/// A message when the twin cannot be built or described.
pub async fn serve(cluster: &Cluster, out: &Path, keep: bool) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let parent = std::os::unix::process::parent_id();
    let c = cluster.clone();
    let twin = tokio::task::spawn_blocking(move || start(&c))
        .await
        .map_err(|e| e.to_string())??;
    let running = Running {
        pid: std::process::id(),
        keep,
        pve_url: twin.pve_url().to_owned(),
        pve_fingerprint: twin.pve_fingerprint().to_owned(),
        pve_password: twin.pve_password().to_owned(),
        ssh_key: twin.lab().ssh_private_key().to_owned(),
        known_hosts: twin.lab().known_hosts_file().to_owned(),
        hosts: twin
            .lab()
            .hosts()
            .iter()
            .map(|h| (h.name().to_owned(), h.addr(), h.netns().to_owned()))
            .collect(),
    };
    let path = kept_path(out);
    let body = serde_json::to_vec_pretty(&running).map_err(|e| e.to_string())?;
    crate::write_private_atomic(&path, &body).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let orphaned = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            if !keep && std::os::unix::process::parent_id() != parent {
                return;
            }
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = hup.recv() => {}
        () = orphaned => {}
    }
    let _ = std::fs::remove_file(&path);
    tokio::task::spawn_blocking(move || drop(twin))
        .await
        .map_err(|e| e.to_string())
}

/// Starts [`serve`] in a new process (this binary with `--twin-daemon`, in its own process
/// group so a Ctrl-C to `up` does not reach it) and waits until the twin is built.
///
/// # Errors
/// A message with the end of the process's log when it stops before the twin is up.
pub fn spawn(topology: &Path, out: &Path, keep: bool) -> Result<Running, String> {
    use std::os::unix::process::CommandExt as _;
    let path = kept_path(out);
    let _ = std::fs::remove_file(&path);
    let log_path = out.join(hakube_plan::STATE_DIR).join("twin.log");
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--twin-daemon")
        .arg("--out")
        .arg(out)
        .arg(topology)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    if keep {
        cmd.arg("--keep");
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting the twin's process: {e}"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        if let Some(r) = Running::find(out)?
            && r.pid == child.id()
        {
            // The child is reaped by the process that outlives it (init), not by us.
            std::mem::forget(child);
            return Ok(r);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "the twin's process ended ({status}) before the twin was up:\n{}",
                tail.join("\n")
            ));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "the twin was not up after 180 s (log: {})",
                log_path.display()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
