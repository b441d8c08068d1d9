//! A multi-host test lab built from Linux network namespaces, each host with its own sshd.
//!
//! Integration tests use it to run real software (OpenSSH, haproxy, keepalived, etcd, an NFS
//! server) on several "hosts" on one machine, without VMs or containers:
//!
//! - every host is a network namespace with one interface, `eth0`, on a bridge that lives in a
//!   switch namespace; the test process is on the bridge too (a veth with the `.1` address), so
//!   tests connect straight to host addresses (SSH, HTTP, a VIP);
//! - every host has its own mount, PID and UTS namespaces: private directories
//!   ([`DEFAULT_PRIVATE_DIRS`]: `/etc/haproxy`, `/etc/kubernetes`, `/var/lib/etcd`, `/run`,
//!   `/tmp`, `/usr/local/bin`, ...), its own process list and its own hostname. Everything
//!   else (binaries, libraries) is the machine's, read-only by convention;
//! - every host runs a real OpenSSH `sshd` (root login by the lab's ed25519 key) whose sessions
//!   see that host's private view;
//! - stand-ins replace commands that cannot run here (`systemctl`, `apt-get`, `kubeadm`...)
//!   and record how they were called;
//! - faults: kill a daemon, cut a host's link, add delay or loss (netem), remove a host;
//! - every lab takes its own /24 from `10.88.0.0/16` and its own name prefix under a
//!   machine-wide lock, so parallel test binaries do not collide, and tears itself down on
//!   `Drop` (also when the test panics). Labs left by killed runs are removed by the next
//!   build ([`cleanup_stale_labs`]).
//!
//! Building needs root; [`require_root`] lets a test skip with a clear message otherwise.
//! A 12-host lab with sshd builds in well under a second on a 2-core machine (see the
//! `build_time` example).
//!
//! # Example
//!
//! ```
//! use hakube_lab::{Lab, require_root};
//!
//! # fn main() -> Result<(), hakube_lab::Error> {
//! if !require_root("doc_example") {
//!     return Ok(());
//! }
//! let lab = Lab::builder("doc").hosts(["lb1", "lb2"]).build()?;
//! let lb1 = lab.host("lb1");
//!
//! // Files in private directories are per host, and visible from outside.
//! lb1.write_file("/etc/haproxy/haproxy.cfg", "global\n", 0o644)?;
//! assert!(lab.host("lb2").read_file("/etc/haproxy/haproxy.cfg").is_err());
//!
//! // Commands run inside the host; so do daemons, whose logs are kept.
//! let out = lb1.run("hostname; cat /etc/haproxy/haproxy.cfg")?;
//! assert_eq!(out, "lb1\nglobal\n");
//! lb1.spawn("web", "exec python3 -m http.server 8080")?;
//! lb1.wait_for_port(8080, std::time::Duration::from_secs(5))?;
//!
//! // Stand-ins record their calls.
//! lab.record_only(["systemctl"])?;
//! lb1.run("systemctl reload haproxy")?;
//! assert_eq!(lb1.calls("systemctl"), vec![vec!["reload".to_owned(), "haproxy".to_owned()]]);
//!
//! // SSH by key, strict host key checking against the lab's known_hosts.
//! let out = lab.host("lb2").ssh("hostname")?;
//! assert_eq!(String::from_utf8_lossy(&out.stdout), "lb2\n");
//! println!("key {} known_hosts {}", lab.ssh_private_key().display(),
//!          lab.known_hosts_file().display());
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

mod error;
mod host;
mod lab;
mod registry;
mod util;

pub use error::{Error, Result};
pub use host::{Host, TERMINATE_GRACE};
pub use lab::{
    DEFAULT_BASE_DIR, DEFAULT_POOL, DEFAULT_PRIVATE_DIRS, DEFAULT_STAND_INS, FIRST_HOST_OCTET, Lab,
    LabBuilder, PRIVATE_FILES,
};
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

/// Checks what [`require_root`] checks, returning the reason when the lab cannot run.
///
/// # Errors
/// A human-readable reason.
pub fn lab_support() -> Result<(), String> {
    if util::effective_uid() != Some(0) {
        return Err("needs root for network namespaces (CI runs as root)".into());
    }
    for (tool, args) in [
        ("ip", &["netns", "list"][..]),
        ("nsenter", &["--version"][..]),
        ("unshare", &["--version"][..]),
    ] {
        let ok = std::process::Command::new(tool)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "`{tool} {}` does not work here (install iproute2 and util-linux)",
                args.join(" ")
            ));
        }
    }
    Ok(())
}
