//! Shared helpers for the hakube example binaries: loading a topology file with errors an
//! operator can act on, the summary table, and (module [`ssh`]) the SSH flags and host-plan
//! application the binaries that work on VMs share.

pub mod progress;
pub mod ssh;
pub mod stage;
pub mod twin;

use std::path::{Path, PathBuf};

use hakube_topology::Cluster;

/// The built-in default topology: the seed cluster next to this file.
#[must_use]
pub fn default_topology() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seed-cluster.yaml")
}

/// Reads, validates and places a topology file; the error text names the file, line, field and rule.
///
/// # Errors
/// A printable message when the file cannot be read or is invalid.
pub fn load_topology(path: &Path) -> Result<Cluster, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    hakube_topology::load(&text, &path.display().to_string()).map_err(|e| e.to_string())
}

/// Loads the secrets `plan` keeps at `path`, or generates them and writes the file (mode 0600,
/// created exclusively, so two runs never write different secrets).
///
/// # Errors
/// A message naming the file when it cannot be read, parsed or written (never a secret).
pub fn load_or_create_secrets(path: &Path) -> Result<hakube_plan::PlanSecrets, String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return hakube_plan::PlanSecrets::parse(&text)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    let s = hakube_plan::PlanSecrets::generate();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_private(path, &s.to_env()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(s)
}

/// Writes `body` to `path` with mode 0600, replaced atomically (a temporary file next to it,
/// renamed): a reader never sees half a file, and a crash leaves the old one.
///
/// # Errors
/// The I/O error.
pub fn write_private_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn write_private(path: &Path, body: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(body.as_bytes())
}

/// A Kubernetes client from a kubeconfig file (its current context), as `kubectl
/// --kubeconfig FILE` would use it.
///
/// # Errors
/// A message naming the file when it cannot be read or its context cannot be used.
pub async fn kube_client(kubeconfig: &Path) -> Result<kube::Client, String> {
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", kubeconfig.display());
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| at(&e))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| at(&e))?;
    kube::Client::try_from(config).map_err(|e| at(&e))
}

/// An error with its chain of causes, on one line (`outer: inner: root cause`).
#[must_use]
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// The per-VM and per-Proxmox-node summary, as printed by `plan`.
#[must_use]
pub fn summary(cluster: &Cluster) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let t = &cluster.topology;
    let _ = writeln!(
        s,
        "cluster {}: Kubernetes {}, VIP {}, {} VMs on {} Proxmox nodes\n",
        t.cluster.name,
        cluster.kubernetes_version,
        t.network.vip,
        cluster.vms.len(),
        t.proxmox.nodes.len()
    );
    let _ = writeln!(
        s,
        "{:<20} {:<14} {:<10} {:>6}  {:<15} {:>5} {:>9} {:>8}",
        "VM", "ROLE", "NODE", "VMID", "ADDRESS", "CORES", "MEMORY", "DISK"
    );
    for vm in &cluster.vms {
        let role = vm
            .group
            .as_ref()
            .map_or_else(|| vm.role.to_string(), |g| format!("{}/{g}", vm.role));
        let _ = writeln!(
            s,
            "{:<20} {:<14} {:<10} {:>6}  {:<15} {:>5} {:>6}MiB {:>5}GiB",
            vm.name,
            role,
            vm.proxmox_node,
            vm.vmid,
            vm.address,
            vm.size.cores,
            vm.size.memory_mib,
            vm.size.disk_gib
        );
    }
    let _ = writeln!(
        s,
        "\n{:<10} {:>4} {:>6} {:>10} {:>9}",
        "NODE", "VMS", "CORES", "MEMORY", "DISK"
    );
    for n in cluster.node_totals() {
        let _ = writeln!(
            s,
            "{:<10} {:>4} {:>6} {:>7}MiB {:>6}GiB",
            n.node, n.vms, n.cores, n.memory_mib, n.disk_gib
        );
    }
    for w in &cluster.warnings {
        let _ = writeln!(s, "\nwarning: {w}");
    }
    s
}

/// The plan's secrets: those kept in an earlier plan in `out` (kubeadm's, the Vault TLS
/// bundle), or fresh ones.
///
/// # Errors
/// A printable message when a kept secrets file exists but cannot be read or parsed.
pub fn plan_secrets(out: &Path) -> Result<hakube_plan::PlanSecrets, String> {
    hakube_plan::PlanSecrets::load(out)
        .map_err(|e| format!("{}: {}", out.display(), error_chain(&e)))
}
