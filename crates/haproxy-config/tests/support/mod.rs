//! Shared test support: seed-like inputs, the real `haproxy -c` / `keepalived -t` checks, and
//! a minimal network-namespace lab.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc
)]

pub mod netns;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hakube_haproxy_config::{HaInput, IngressTls};

/// Where terminate-mode snapshots expect the ingress certificate.
pub const SEED_CERT_PATH: &str = "/etc/haproxy/certs/ingress.pem";

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The seed-like design: 3 LBs, 3 masters, 6 workers, 3 Vault nodes on 10.0.0.0/24.
pub fn seed_input(tls: IngressTls) -> HaInput {
    let mut input = HaInput::new(ip("10.0.0.10"), 51)
        .lb_subnet("10.0.0.0/24".parse().unwrap())
        .ingress(30080, 30443, tls);
    for i in 1..=3 {
        input = input.lb_node(&format!("lb{i}"), ip(&format!("10.0.0.1{i}")), "eth0");
    }
    for i in 1..=3 {
        input = input.control_plane_node(&format!("cp{i}"), ip(&format!("10.0.0.2{i}")));
    }
    for i in 1..=6 {
        input = input.worker(&format!("w{i}"), ip(&format!("10.0.0.3{i}")));
    }
    for i in 1..=3 {
        input = input.vault_node(&format!("vault{i}"), ip(&format!("10.0.0.4{i}")));
    }
    input
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether a daemon binary is installed. In CI (`CI` set) a missing binary fails the test;
/// elsewhere the test prints SKIP and returns.
pub fn have(binary: &str, test: &str) -> bool {
    let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(binary).exists());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: `{binary}` is not installed (run scripts/install-test-deps)"
        );
        eprintln!("SKIP {test}: `{binary}` is not installed (run scripts/install-test-deps)");
    }
    found
}

/// Skips (with a message) unless root, which network namespaces need.
pub fn require_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP {test}: needs root for network namespaces (CI runs as root)");
    }
    is_root()
}

pub fn output_text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A throwaway self-signed certificate + key in one PEM, for terminate mode.
pub fn self_signed_pem(dir: &Path) -> PathBuf {
    let key = dir.join("key.pem");
    let crt = dir.join("crt.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
        ])
        .arg("/CN=hakube-test")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {}", output_text(&out));
    let pem = dir.join("ingress.pem");
    let mut both = std::fs::read(&crt).unwrap();
    both.extend(std::fs::read(&key).unwrap());
    std::fs::write(&pem, both).unwrap();
    pem
}

/// Runs `haproxy -c -f` on a config; panics with HAProxy's output when it is refused.
pub fn haproxy_check(cfg: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("run haproxy");
    assert!(
        out.status.success(),
        "haproxy -c refused {what}:\n{}\n--- config ---\n{cfg}",
        output_text(&out)
    );
}

/// A passwd/group pair with `user` added (if missing), to bind-mount over /etc/passwd and
/// /etc/group in a private mount namespace: keepalived refuses a `script_user` that does not
/// exist, and tests must not add users to the machine.
pub fn passwd_with(dir: &Path, user: &str) -> (PathBuf, PathBuf) {
    let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let mut group = std::fs::read_to_string("/etc/group").unwrap();
    if !passwd.lines().any(|l| l.starts_with(&format!("{user}:"))) {
        passwd.push_str(&format!(
            "{user}:x:64999:64999::/nonexistent:/usr/sbin/nologin\n"
        ));
        group.push_str(&format!("{user}:x:64999:\n"));
    }
    let (p, g) = (dir.join("passwd"), dir.join("group"));
    std::fs::write(&p, passwd).unwrap();
    std::fs::write(&g, group).unwrap();
    (p, g)
}

/// Judges `keepalived -t`. Exit 0 is valid. keepalived 2.2.7 (Debian 12) kills itself with
/// SIGTERM at the end of every config test when `enable_script_security`/`script_user` is set
/// (acassen/keepalived#2587, #2617, fixed in 2.2.8), so exit 143 with no diagnostics printed
/// also counts as valid; any diagnostic line or any other status is a failure.
pub fn keepalived_test_ok(out: &Output) -> bool {
    let quiet = out.stdout.is_empty()
        && String::from_utf8_lossy(&out.stderr)
            .lines()
            .all(|l| l.trim().is_empty() || l.trim() == "Terminated");
    match out.status.code() {
        Some(0) => quiet,
        Some(143) => quiet,
        None => {
            use std::os::unix::process::ExitStatusExt;
            out.status.signal() == Some(15) && quiet
        }
        Some(_) => false,
    }
}

/// Applies `plan` to a lab host over SSH with the host-plan executor (as `configure` does).
pub fn apply(
    lab: &hakube_lab::Lab,
    host: &hakube_lab::Host,
    plan: &hakube_host_state::HostPlan,
) -> hakube_remote::HostReport {
    use hakube_remote::{Auth, HostKeyPolicy, Mode, NoProgress, SshConfig, SshSession, Target};
    let session = SshSession::new(
        Target::new(host.name(), host.addr().to_string()),
        SshConfig::new(
            Auth::key_file(lab.ssh_private_key()),
            HostKeyPolicy::KnownHosts(lab.known_hosts_file().to_owned()),
        ),
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(hakube_remote::apply_host_plan(
            &session,
            plan,
            Mode::Apply,
            &NoProgress,
        ))
}
