//! A multi-host test lab built from Linux network namespaces, each host with its own sshd.
//!
//! Integration tests use it to run real software (OpenSSH, haproxy, keepalived, etcd, an NFS
//! server) on several "hosts" on one machine, without VMs or containers. It is a plain
//! blocking library (no async runtime); use it as a dev-dependency:
//! `hakube-lab = { workspace = true }` under `[dev-dependencies]`.
//!
//! - Every host is a network namespace with one interface, `eth0`, on a bridge in a switch
//!   namespace. The test process is on the bridge too (a veth with the `.1` address,
//!   [`Lab::gateway`]), so tests connect straight to host addresses, and to a VIP
//!   ([`Lab::spare_addr`]) that keepalived moves between hosts.
//! - Every host has its own mount, PID and UTS namespaces: private directories
//!   ([`DEFAULT_PRIVATE_DIRS`]: `/etc/haproxy`, `/etc/keepalived`, `/etc/kubernetes`,
//!   `/var/lib/etcd`, `/srv/nfs`, `/usr/local/bin`, `/root/.ssh`, `/run`, `/tmp`, ...), private
//!   `/etc/hosts` (naming every lab host) and `/etc/resolv.conf` ([`PRIVATE_FILES`]), its own
//!   process list (`ps`, `pkill` only see the host) and its own hostname. Everything else
//!   (binaries, libraries, the rest of `/etc`) is the machine's: treat it as read-only.
//!   The backing directories live in the lab's directory ([`Host::host_path`]), so tests can
//!   also read and write host files from outside ([`Host::write_file`], [`Host::read_file`]).
//! - Every host runs a real OpenSSH `sshd` on port 22 (root login by the lab's ed25519 key
//!   only: [`Lab::ssh_private_key`], [`Lab::known_hosts_file`], [`Lab::ssh_config_file`],
//!   [`Host::ssh_host_public_key`]) whose sessions see that host's private view and PATH
//!   (`/usr/local/bin` first).
//! - Stand-ins ([`Lab::stand_in`], [`Host::stand_in`]) replace commands that cannot run here
//!   (`kubeadm`, `systemctl`, `apt-get`...) and record their calls ([`Host::calls`]). Hosts
//!   share the machine's kernel, so commands that would act on the whole machine (`sysctl`,
//!   `swapoff`, `modprobe`, `reboot`...) are recording no-ops by default
//!   ([`DEFAULT_STAND_INS`]).
//! - Fresh hosts ([`LabBuilder::fresh_hosts`], module [`fresh`]) look like VMs just built from
//!   a Debian 12 cloud image: a copy-on-write `/etc` per host without the packages' users and
//!   groups (real `useradd` works per host), an empty `/run`, an `apt-get` that installs only
//!   packages whose programs exist here (running what their maintainer scripts do: users,
//!   runtime directories, enabled units; [`Host::installed_packages`]), a `dpkg-query` that
//!   answers from that record, and a `systemctl` that really starts, reloads, restarts and
//!   stops haproxy, keepalived, vault/openbao and units with `ExecStart=` in the host
//!   ([`Host::service_pid`], [`Host::kill_service`], logs in [`Host::log`]`("<unit>")`).
//! - Daemons ([`Host::spawn`]) run in the background with their output in a log file
//!   ([`Host::log`]); [`Host::kill`] (SIGKILL, a crash), [`Host::terminate`] (SIGTERM),
//!   [`Host::signal`], [`Host::is_running`].
//! - Faults: [`Host::kill`], [`Host::link_down`] / [`Host::link_up`] (a cable cut),
//!   [`Host::netem`] (delay, loss; [`Error::NetemUnavailable`] where the kernel lacks
//!   `sch_netem`, so the test can skip that part), [`Lab::remove_host`] (power loss),
//!   [`Host::rotate_ssh_host_key`] (a reinstalled host); and a CPU budget per host
//!   ([`Host::cpu_limit`], cgroup `cpu` controller) so hosts that share this machine's cores
//!   can behave like separate machines with their own.
//! - Each lab takes its own /24 from [`DEFAULT_POOL`] and its own name prefix (`hk` + 5 hex
//!   digits: namespaces `<prefix>-<host>`, `<prefix>-sw`, root veth `<prefix>`) under a
//!   machine-wide lock ([`REGISTRY_DIR`]), skipping subnets routed on the machine, so parallel
//!   test binaries never collide. `Drop` tears everything down (also when the test panics):
//!   every process of the lab, its namespaces, veth and directory. Labs left by killed runs
//!   are removed by the next build ([`cleanup_stale_labs`]).
//!
//! Building needs root; [`require_root`] lets a test skip with a clear `SKIP` line otherwise
//! (set [`STRICT_ENV`]`=1` to make that a failure). A 12-host lab with sshd builds in about half
//! a second on an idle 2-core machine (under a second while other builds load it) and tears
//! down in a fraction of a second: `cargo run -p hakube-lab --example build_time -- 12 5`
//! (as root).
//!
//! Environment: [`STRICT_ENV`] (`HAKUBE_LAB_STRICT=1`: no silent skips), [`TRACE_ENV`]
//! (`HAKUBE_LAB_TRACE=1`: build phase timings on stderr), [`POOL_ENV`] (`HAKUBE_LAB_POOL`: the
//! address pool, default [`DEFAULT_POOL`]).
//!
//! What the lab changes outside itself: mount points that are missing on the machine are
//! created as empty directories (e.g. `/etc/kubernetes`, `/srv/nfs`); its veth and route for
//! its own /24 exist while it runs; records under [`REGISTRY_DIR`]. Nothing is ever mounted in
//! the test process's mount namespace.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use hakube_lab::{Lab, require_root};
//!
//! # fn main() -> Result<(), hakube_lab::Error> {
//! if !require_root("doc_example") {
//!     return Ok(());
//! }
//! let lab = Lab::builder("doc").hosts(["lb1", "lb2"]).build()?;
//! let lb1 = lab.host("lb1");
//! println!("lb1 is {} in {}, the test process is {}", lb1.addr(), lab.subnet(), lab.gateway());
//!
//! // Files in private directories are per host, and reachable from outside.
//! lb1.write_file("/etc/haproxy/haproxy.cfg", "global\n", 0o644)?;
//! assert!(lab.host("lb2").read_file("/etc/haproxy/haproxy.cfg").is_err());
//!
//! // Commands run inside the host (`sh -c`); `run` fails on a non-zero exit.
//! assert_eq!(lb1.run("hostname; cat /etc/haproxy/haproxy.cfg")?, "lb1\nglobal\n");
//! let out = lb1.exec_timeout("getent hosts lb2", Duration::from_secs(5))?;
//! assert!(out.status.success());
//!
//! // Daemons run in the background; their output is kept.
//! lb1.spawn("web", "cd /tmp && exec python3 -m http.server 8080")?;
//! lb1.wait_for_port(8080, Duration::from_secs(30))?;
//!
//! // Stand-ins record their calls.
//! lab.stand_in("kubeadm", "#!/bin/sh\necho fake kubeadm\n")?;
//! lb1.run("kubeadm init --v=5 && systemctl reload haproxy")?;
//! assert_eq!(lb1.calls("kubeadm"), vec![vec!["init".to_owned(), "--v=5".to_owned()]]);
//! assert_eq!(lb1.calls("systemctl").len(), 1);
//!
//! // SSH by key, strict host key checking against the lab's known_hosts.
//! let out = lab.host("lb2").ssh("hostname")?;
//! assert_eq!(String::from_utf8_lossy(&out.stdout), "lb2\n");
//!
//! // Faults.
//! lb1.kill("web")?;
//! lb1.link_down()?;
//! lb1.link_up()?;
//! lab.remove_host("lb2")?;
//! # Ok(())
//! # }
//! // Dropping `lab` tears everything down.
//! ```

mod cgroup;
mod error;
pub mod fresh;
mod host;
mod lab;
mod private;
mod registry;
pub mod stand_ins;
pub mod twin;
mod util;

pub use error::{Error, Result};
pub use host::{Host, TERMINATE_GRACE};
pub use lab::{
    DEFAULT_BASE_DIR, DEFAULT_POOL, DEFAULT_STAND_INS, FIRST_HOST_OCTET, Lab, LabBuilder, POOL_ENV,
    SPARE_FIRST_OCTET, TRACE_ENV,
};
pub use private::{DEFAULT_PRIVATE_DIRS, PRIVATE_FILES};
pub use registry::{REGISTRY_DIR, cleanup_stale_labs};

/// Environment variable: when set to `1`, [`require_root`] panics instead of skipping, so a CI
/// job that must run the lab tests cannot silently skip them.
pub const STRICT_ENV: &str = "HAKUBE_LAB_STRICT";

/// Whether lab tests can run here (root, and `ip netns`, `nsenter`, `unshare` usable).
/// Otherwise prints `SKIP <test_name>: <reason>` to stderr and returns false, so a test can
/// `return` early (or panics when [`STRICT_ENV`] is `1`).
#[must_use]
pub fn require_root(test_name: &str) -> bool {
    match lab_support() {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var(STRICT_ENV).as_deref() == Ok("1") {
                panic!("{test_name}: the lab cannot run here ({STRICT_ENV}=1): {reason}");
            }
            eprintln!("SKIP {test_name}: {reason}");
            false
        }
    }
}

/// Checks what [`require_root`] checks (once per process; the answer is cached): root, the
/// tools (`ip`, `nsenter`, `unshare`), and that this kernel and sandbox let us create network,
/// mount, PID and UTS namespaces (`unshare --net --mount --pid --uts --fork true`).
///
/// # Errors
/// [`Unsupported`], saying what is missing.
pub fn lab_support() -> Result<(), Unsupported> {
    static SUPPORT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    SUPPORT
        .get_or_init(probe_support)
        .clone()
        .map_err(Unsupported)
}

/// Why labs cannot run on this machine ([`lab_support`]): not root, a missing tool, or
/// namespaces refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

fn probe_support() -> Result<(), String> {
    if util::effective_uid() != Some(0) {
        return Err("needs root for network namespaces (CI runs as root)".into());
    }
    for (tool, args, hint) in [
        ("ip", &["-V"][..], "install iproute2"),
        ("nsenter", &["--version"][..], "install util-linux"),
        (
            "unshare",
            &["--net", "--mount", "--pid", "--uts", "--fork", "true"][..],
            "namespaces are not permitted here (a container without CAP_SYS_ADMIN?)",
        ),
    ] {
        let ok = std::process::Command::new(tool)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("`{tool} {}` failed: {hint}", args.join(" ")));
        }
    }
    Ok(())
}
