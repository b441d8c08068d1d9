//! A minimal network-namespace lab: hosts on one bridge (inside a switch namespace), a veth
//! from the test process's namespace into the bridge so the test is a client, and private
//! bind-mounted directories per host. Everything is torn down on drop, even on panic.
//!
//! Written here because the shared `hakube-lab` crate had not landed when this test was
//! written; it follows LAB.md.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use hakube_haproxy_config::LbNodeFiles;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short tag unique to this process and call, for namespace and interface names.
fn unique(kind: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{kind}{}x{n}", std::process::id() % 100_000)
}

pub fn sh(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run sh")
}

fn must(cmd: &str) {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "`{cmd}` failed:\n{}",
        super::output_text(&out)
    );
}

/// One namespace holding a veth named `iface` with `addr/24`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn with_iface(iface: &str, addr: &str) -> Self {
        let name = unique("hkt");
        let outer = unique("hv");
        must(&format!("ip netns add {name}"));
        let ns = Self { name };
        must(&format!(
            "ip link add {outer} type veth peer name {iface} netns {n} && \
             ip -n {n} link set {iface} up && ip -n {n} link set lo up && \
             ip -n {n} addr add {addr}/24 dev {iface}",
            n = ns.name
        ));
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {}", self.name));
    }
}

/// The shell prefix that runs a command in `ns` with `binds` (source dir/file -> target)
/// mounted privately.
fn in_host(ns: &str, binds: &[(PathBuf, &str)], cmd: &str) -> String {
    let mounts: Vec<String> = binds
        .iter()
        .map(|(src, dst)| format!("mount --bind '{}' '{dst}'", src.display()))
        .collect();
    let script = if mounts.is_empty() {
        format!("exec {cmd}")
    } else {
        format!("{} && exec {cmd}", mounts.join(" && "))
    };
    format!(
        "exec ip netns exec {ns} unshare --mount --propagation private sh -c \"{}\"",
        script.replace('"', "\\\"")
    )
}

/// Writes a node's keepalived files into a directory that stands in for /etc/keepalived.
pub fn keepalived_dir(node: &LbNodeFiles, dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in [&node.keepalived_conf, &node.check_script] {
        let name = Path::new(f.path).file_name().unwrap();
        let path = dir.join(name);
        std::fs::write(&path, &f.contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode)).unwrap();
    }
}

/// Runs `keepalived -t` on a node's config inside a fresh namespace whose only interface is
/// `iface`, with the node's files at their real paths and its script user present.
pub fn keepalived_test(node: &LbNodeFiles, iface: &str) -> Output {
    let ns = Netns::with_iface(iface, &node.address.to_string());
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc-keepalived");
    keepalived_dir(node, &etc);
    let (passwd, group) = super::passwd_with(dir.path(), &node.script_user);
    let binds = [
        (etc, "/etc/keepalived"),
        (passwd, "/etc/passwd"),
        (group, "/etc/group"),
    ];
    let out = sh(&in_host(
        &ns.name,
        &binds,
        "keepalived -t -f /etc/keepalived/keepalived.conf",
    ));
    drop(ns);
    out
}

/// A host of the lab.
pub struct Host {
    pub name: String,
    pub ns: String,
    pub addr: Ipv4Addr,
    pub dir: PathBuf,
}

impl Host {
    /// Runs a shell command inside the host (network namespace only).
    pub fn exec(&self, cmd: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "sh", "-c", cmd])
            .output()
            .expect("run ip netns exec")
    }

    /// Starts a daemon in the host with private bind mounts; its output goes to
    /// `<host dir>/<log>.log`. The returned child is the daemon itself (exec all the way).
    pub fn spawn(&self, binds: &[(PathBuf, &str)], cmd: &str, log: &str) -> Child {
        let logfile = std::fs::File::create(self.dir.join(format!("{log}.log"))).unwrap();
        let err = logfile.try_clone().unwrap();
        Command::new("sh")
            .arg("-c")
            .arg(in_host(&self.ns, binds, cmd))
            .stdin(Stdio::null())
            .stdout(logfile)
            .stderr(err)
            .spawn()
            .expect("spawn daemon")
    }

    pub fn log(&self, log: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{log}.log"))).unwrap_or_default()
    }

    pub fn link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        must(&format!("ip -n {} link set eth0 {state}", self.ns));
    }

    /// Whether `ip` is configured on this host's eth0.
    pub fn has_addr(&self, ip: Ipv4Addr) -> bool {
        let out = sh(&format!("ip -n {} -o -4 addr show dev eth0", self.ns));
        String::from_utf8_lossy(&out.stdout).contains(&format!(" {ip}/"))
    }
}

/// Hosts `.11`, `.12`, ... on one bridge in a /24 of their own; the test process is `.1`.
pub struct Lab {
    pub hosts: Vec<Host>,
    pub net: [u8; 3],
    sw: String,
    _dir: tempfile::TempDir,
    children: Mutex<Vec<Child>>,
}

impl Lab {
    /// Builds the lab. `hosts` are `(name, last octet)`.
    pub fn new(hosts: &[(&str, u8)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A /24 unlikely to be in use: 10.251.X.0/24 with X from the pid, skipping used ones.
        let routes = String::from_utf8_lossy(&sh("ip -4 route; ip -4 addr").stdout).into_owned();
        let mut x = u8::try_from(std::process::id() % 200).unwrap() + 20;
        while routes.contains(&format!("10.251.{x}.")) {
            x = x.wrapping_add(1).max(20);
        }
        let net = [10, 251, x];
        let sw = unique("hks");
        let client = unique("hkc");
        must(&format!(
            "ip netns add {sw} && ip -n {sw} link add br0 type bridge && \
             ip -n {sw} link set br0 up && \
             ip link add {client} type veth peer name up0 netns {sw} && \
             ip -n {sw} link set up0 master br0 up && \
             ip addr add 10.251.{x}.1/24 dev {client} && ip link set {client} up"
        ));
        let mut lab = Self {
            hosts: Vec::new(),
            net,
            sw,
            _dir: dir,
            children: Mutex::new(Vec::new()),
        };
        for (name, octet) in hosts {
            let ns = unique("hkh");
            let port = unique("hp");
            let hdir = lab._dir.path().join(name);
            std::fs::create_dir_all(&hdir).unwrap();
            must(&format!(
                "ip netns add {ns} && \
                 ip -n {sw} link add {port} type veth peer name eth0 netns {ns} && \
                 ip -n {sw} link set {port} master br0 up && \
                 ip -n {ns} link set lo up && ip -n {ns} link set eth0 up && \
                 ip -n {ns} addr add 10.251.{x}.{octet}/24 dev eth0",
                sw = lab.sw
            ));
            lab.hosts.push(Host {
                name: (*name).to_owned(),
                ns,
                addr: Ipv4Addr::new(10, 251, x, *octet),
                dir: hdir,
            });
        }
        lab
    }

    pub fn ip(&self, octet: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], octet)
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }

    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Keeps a child so it is killed on drop; returns its pid.
    pub fn adopt(&self, child: Child) -> u32 {
        let pid = child.id();
        self.children.lock().unwrap().push(child);
        pid
    }

    /// Reaps a child the test killed.
    pub fn reap(&self, pid: u32) {
        let mut children = self.children.lock().unwrap();
        if let Some(i) = children.iter().position(|c| c.id() == pid) {
            let mut c = children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.children.lock().unwrap().iter_mut() {
            // Children keepalived forked exit with their parent or with the namespace.
            for child in child_pids(c.id()) {
                let _ = sh(&format!("kill -9 {child}"));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for h in &self.hosts {
            let _ = sh(&format!("ip netns del {}", h.ns));
        }
        let _ = sh(&format!("ip netns del {}", self.sw));
    }
}

/// The direct children of a process.
pub fn child_pids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
