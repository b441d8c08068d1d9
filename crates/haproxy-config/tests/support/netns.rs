//! `keepalived -t` needs the interface the config names, and the reference design lets the
//! user pick any name (`ens18`, `vmbr0.20`), while `hakube-lab` hosts always have `eth0`. So
//! the config test runs in a throwaway namespace with exactly that interface, and the node's
//! files at their real paths through a private mount namespace.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
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
        let name = Path::new(&f.path).file_name().unwrap();
        let path = dir.join(name);
        std::fs::write(&path, &f.content).unwrap();
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
