//! The local twin: a Proxmox VE (fakepve) whose VMs are lab hosts, so the whole pipeline
//! (provision, configure, bootstrap, add-ons) runs on this machine against real SSH, HAProxy,
//! keepalived, NFS, OpenBao and etcd.
//!
//! [`Twin::start`] builds, from a [`TwinSpec`] (what a topology names: the Proxmox nodes,
//! storage, templates, every VM's planned address):
//! - a lab of fresh hosts ([`crate::LabBuilder::fresh_hosts`]), one per VM, at the VM's
//!   planned address on the topology's own /24 (the machine is `.1`, the gateway the topology
//!   names), with its cable unplugged: a VM that was never started cannot be reached;
//! - fakepve (the PyPI fake of the PVE 9 API, found with the same rules as the tests: the
//!   `HAKUBE_VENV` variable, then a `.venv` above the working directory) with the topology's
//!   nodes, storage and templates. When a VM starts, its lab host's cable is plugged in before
//!   the start task ends, and its guest agent reports the address cloud-init gave it; a VM
//!   that stops loses its cable again;
//! - stand-ins for the Kubernetes node programs this machine lacks (`kubeadm`, `kubectl`,
//!   `kubelet`, `containerd`), installable by the hosts' `apt-get` like the real packages,
//!   and for the downloads node preparation makes (`curl` of the pkgs.k8s.io key, `gpg`).
//!   As with real kubeadm, every master runs etcd and the API server (the stand-in, keeping
//!   its objects in that etcd) as static Pods: kubeadm's stand-in writes their manifests to
//!   `/etc/kubernetes/manifests` and starts the kubelet, whose stand-in runs them (restarts a
//!   container that exits, stops a Pod whose manifest goes, restarts one whose manifest
//!   changes), so the etcd restore procedure (manifests aside, `etcdutl snapshot restore`,
//!   manifests back) works on the twin as on a real cluster.
//!
//! Dropping the twin stops fakepve and tears the lab down.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use ipnet::Ipv4Net;

use crate::error::{Error, Result};
use crate::{Lab, LabBuilder};

mod pod;
pub use pod::{ContainerRun, PodRun};

/// The fakepve server the twin runs (python3 with fakepve importable).
const PVE_PY: &str = include_str!("twin/pve.py");
/// hakube-proxmox-api's fakepve test harness, which the twin's server builds on.
const PVE_HARNESS_PY: &str = include_str!("../../proxmox-api/tests/harness/fakepve_harness.py");
/// `containerd` for twin hosts.
const CONTAINERD_SH: &str = include_str!("twin/containerd.sh");
/// `kubelet` for twin hosts: runs the static Pods of `/etc/kubernetes/manifests`.
const KUBELET_PY: &str = include_str!("twin/kubelet.py");
/// `etcdutl` (etcd 3.5's snapshot tool) on a machine with etcd 3.4, for etcd images' commands.
const ETCDUTL_SH: &str = include_str!("twin/etcdutl.sh");
/// `curl` for twin hosts: the pkgs.k8s.io key, nothing else.
const CURL_SH: &str = include_str!("twin/curl.sh");
/// `gpg` for twin hosts: `--dearmor` only.
const GPG_SH: &str = include_str!("twin/gpg.sh");

/// A Proxmox template the twin's fakepve holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwinTemplate {
    /// Its VMID.
    pub vmid: u32,
    /// The Proxmox node it lives on.
    pub node: String,
    /// Its name.
    pub name: String,
}

/// A VM the twin can run: the lab host its start powers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwinVm {
    /// The VM's name (also the lab host's name).
    pub name: String,
    /// Its planned address (inside [`TwinSpec::subnet`]).
    pub addr: Ipv4Addr,
}

/// What the twin is built from (a topology's Proxmox and network sections).
#[derive(Debug, Clone)]
pub struct TwinSpec {
    /// A short tag for the lab (1-12 characters of `[a-z0-9]`).
    pub tag: String,
    /// The VMs' network, a /24 whose `.1` is the gateway (this machine joins it there).
    pub subnet: Ipv4Net,
    /// The Proxmox node names.
    pub nodes: Vec<String>,
    /// The VM disk storage.
    pub storage: String,
    /// The bridge the templates' NICs use.
    pub bridge: String,
    /// The templates.
    pub templates: Vec<TwinTemplate>,
    /// Every VM the topology plans.
    pub vms: Vec<TwinVm>,
}

/// The twin's `kubelet` stand-in (python3 with PyYAML): runs the static Pods of
/// `--pod-manifest-path=DIR` (default `/etc/kubernetes/manifests`), see the script's docs.
#[must_use]
pub fn kubelet_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/twin/kubelet.py")
}

/// A running twin; dropping it tears everything down.
#[derive(Debug)]
pub struct Twin {
    lab: Lab,
    pve: Child,
    pve_stdin: Option<ChildStdin>,
    url: String,
    fingerprint: String,
    password: String,
    bin: PathBuf,
    /// Held while the twin lives (see [`Twin::start`]); declared last, so it is released
    /// after the lab is torn down.
    _subnet: std::fs::File,
}

/// The Proxmox login the twin's fakepve accepts.
pub const TWIN_USER: &str = "root@pam";

impl Twin {
    /// Builds the lab and starts fakepve (see the module docs).
    ///
    /// Twins of one topology share its subnet, so a second twin on the same subnet (another
    /// test, another `up --lab`) waits, saying so, until the first is gone.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a spec the lab cannot build (not a /24, an address outside
    /// it or taken twice, `.1` for a VM), [`Error::Unsupported`] without root or without a
    /// python with fakepve, and the lab's build errors.
    pub fn start(spec: &TwinSpec) -> Result<Self> {
        let bad = |field, reason: String| Error::InvalidConfig { field, reason };
        if spec.subnet.prefix_len() != 24 {
            return Err(bad(
                "subnet",
                format!("{}: the twin needs a /24", spec.subnet),
            ));
        }
        let python = python_with_fakepve()?;
        let subnet = lock_subnet(spec.subnet)?;
        // Outside the hosts' private /tmp, so the programs linked into their /usr/local/bin resolve.
        let bin = PathBuf::from(format!("/var/tmp/hakube-twin-{}", std::process::id()));
        std::fs::create_dir_all(&bin).map_err(|e| io(&bin, e))?;
        let kubeadm = crate::stand_ins::kubeadm_script(crate::stand_ins::ClusterApi::Cluster);
        let kubectl = crate::stand_ins::kubectl_script(crate::stand_ins::ClusterApi::Cluster);
        let programs = [
            ("kubeadm", kubeadm.as_str()),
            ("kubectl", kubectl.as_str()),
            ("containerd", CONTAINERD_SH),
            ("kubelet", KUBELET_PY),
        ];
        for (name, text) in programs {
            write_exec(&bin.join(name), text)?;
        }
        // The kubelet's stand-in runs what an etcd image's `etcdutl` names from its directory.
        write_exec(&bin.join("etcdutl"), ETCDUTL_SH)?;
        // The kubelet's stand-in runs the API stand-in from its own directory.
        std::fs::copy(
            crate::stand_ins::kube_apiserver(),
            bin.join("kube-apiserver.py"),
        )
        .map_err(|e| io(&bin.join("kube-apiserver.py"), e))?;
        // Beyond the lab's defaults, what the host plans write outside them: NFS state, OpenBao's
        // directory, /usr/local/sbin (scripts the timers run).
        let mut builder: LabBuilder = Lab::builder(&spec.tag)
            .fresh_hosts()
            .subnet(spec.subnet)
            .private_dir("/var/lib/nfs")
            .private_dir("/opt/openbao")
            .private_dir("/usr/local/sbin");
        for (name, _) in programs {
            builder = builder.program(format!("/usr/bin/{name}"), bin.join(name));
        }
        for vm in &spec.vms {
            if !spec.subnet.contains(&vm.addr) {
                return Err(bad(
                    "vms",
                    format!("{}: {} is outside {}", vm.name, vm.addr, spec.subnet),
                ));
            }
            builder = builder.host_at(vm.name.clone(), vm.addr.octets()[3]);
        }
        let lab = builder.build()?;
        lab.stand_in("curl", CURL_SH)?;
        lab.stand_in("gpg", GPG_SH)?;
        for h in lab.hosts() {
            h.link_down()?;
        }
        let password = random_hex(16)?;
        let power: serde_json::Map<String, serde_json::Value> = lab
            .hosts()
            .iter()
            .map(|h| {
                let ns = h.netns().to_owned();
                let gw = lab.gateway().to_string();
                let up = serde_json::json!([
                    ["ip", "-n", ns, "link", "set", "eth0", "up"],
                    ["ip", "-n", ns, "route", "replace", "default", "via", gw],
                ]);
                let down = serde_json::json!([["ip", "-n", ns, "link", "set", "eth0", "down"]]);
                (
                    h.name().to_owned(),
                    serde_json::json!({"up": up, "down": down}),
                )
            })
            .collect();
        let pve_spec = serde_json::json!({
            "host": "127.0.0.1",
            "port": 0,
            "user": TWIN_USER,
            "password": password,
            "nodes": spec.nodes,
            "storage": spec.storage,
            "bridge": spec.bridge,
            "templates": spec.templates.iter().map(|t| serde_json::json!({
                "vmid": t.vmid, "node": t.node, "name": t.name,
            })).collect::<Vec<_>>(),
            "power": power,
        });
        let spec_path = bin.join("pve.json");
        let script = bin.join("pve.py");
        std::fs::write(&script, PVE_PY).map_err(|e| io(&script, e))?;
        let harness = bin.join("fakepve_harness.py");
        std::fs::write(&harness, PVE_HARNESS_PY).map_err(|e| io(&harness, e))?;
        write_private(&spec_path, &pve_spec.to_string())?;
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(&spec_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| Error::Spawn {
                host: "twin".into(),
                command: format!("{} {}", python.display(), script.display()),
                source,
            })?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let _ = std::fs::remove_file(&spec_path);
        let hello: serde_json::Value =
            serde_json::from_str(&line).map_err(|_| Error::Unsupported {
                reason: format!("the twin's fakepve did not start (it said {line:?})"),
            })?;
        let field = |k: &str| hello[k].as_str().unwrap_or_default().to_owned();
        Ok(Self {
            url: field("url"),
            fingerprint: field("fingerprint"),
            lab,
            pve: child,
            pve_stdin: stdin,
            password,
            bin,
            _subnet: subnet,
        })
    }

    /// The lab of VM hosts.
    #[must_use]
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The fakepve URL (`https://127.0.0.1:PORT`).
    #[must_use]
    pub fn pve_url(&self) -> &str {
        &self.url
    }

    /// The SHA-256 fingerprint of fakepve's certificate (`AA:BB:...`), to pin.
    #[must_use]
    pub fn pve_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The password of [`TWIN_USER`] (random per twin; never printed by the twin).
    #[must_use]
    pub fn pve_password(&self) -> &str {
        &self.password
    }
}

impl Drop for Twin {
    fn drop(&mut self) {
        // Closing stdin stops fakepve; the lab tears itself down when it drops.
        drop(self.pve_stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if matches!(self.pve.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.pve.kill();
        let _ = self.pve.wait();
        let _ = std::fs::remove_dir_all(&self.bin);
    }
}

/// Takes the machine-wide lock of `subnet` for a twin, waiting while another twin holds it.
fn lock_subnet(subnet: Ipv4Net) -> Result<std::fs::File> {
    let dir = Path::new(crate::registry::REGISTRY_DIR);
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let path = dir.join(format!("twin-{}.lock", subnet.network()));
    let file = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!("twin: another twin uses {subnet}; waiting until it is gone");
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&path, e)),
    }
    file.lock().map_err(|e| io(&path, e))?;
    Ok(file)
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        host: "twin".into(),
        path: path.to_owned(),
        source,
    }
}

fn write_exec(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).map_err(|e| io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|e| io(path, e))
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| io(path, e))
}

fn random_hex(bytes: usize) -> Result<String> {
    use std::io::Read as _;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| io(Path::new("/dev/urandom"), e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A python3 that imports fakepve: `$HAKUBE_VENV/bin/python3`, a `.venv/bin/python3` in the
/// working directory or above, or `python3` on `PATH`.
fn python_with_fakepve() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(v) = std::env::var_os("HAKUBE_VENV") {
        candidates.push(PathBuf::from(v).join("bin/python3"));
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(|a| a.join(".venv/bin/python3")));
    }
    candidates.push(PathBuf::from("python3"));
    for c in candidates {
        let ok = Command::new(&c)
            .args(["-c", "import fakepve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(c);
        }
    }
    Err(Error::Unsupported {
        reason: "no python3 with fakepve: run scripts/install-test-deps (it installs fakepve \
                 into .venv) or set HAKUBE_VENV"
            .into(),
    })
}
