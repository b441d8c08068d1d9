//! A real OpenSSH server on 127.0.0.1 with a temporary configuration, for integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when the tests can start sshd (root, and the binary present); prints why not otherwise.
pub fn can_run_sshd(test: &str) -> bool {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if uid.ok().as_deref() != Some("0") {
        eprintln!("SKIP {test}: needs root to run sshd (CI runs as root)");
        return false;
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        eprintln!(
            "SKIP {test}: /usr/sbin/sshd missing (scripts/install-test-deps installs openssh-server)"
        );
        return false;
    }
    true
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Generates an ed25519 key pair at `path` (+ `.pub`).
pub fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "hakube-test", "-f"])
        .arg(path));
}

/// A client key shared by servers of one test.
pub struct ClientKey {
    pub dir: tempfile::TempDir,
}

impl ClientKey {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        keygen(&dir.path().join("id"));
        Self { dir }
    }
    pub fn private(&self) -> PathBuf {
        self.dir.path().join("id")
    }
    pub fn public(&self) -> PathBuf {
        self.dir.path().join("id.pub")
    }
}

/// One sshd process listening on 127.0.0.1:port.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    extra: String,
    sftp: bool,
    child: Option<Child>,
}

/// Every descendant of `root` (children first found, grandchildren after).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        let Some(ppid) = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        parent_of.push((pid, ppid));
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (child, _) in parent_of.iter().filter(|(_, pp)| *pp == p) {
            out.push(*child);
            frontier.push(*child);
        }
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// Starts a server trusting `client`'s public key for root.
    pub fn start(client: &ClientKey) -> Self {
        Self::start_with(client, "")
    }

    /// Starts a server with extra sshd_config lines (`{dir}` is replaced by its directory).
    /// The directory and authorized_keys are world-readable so non-root users can log in.
    pub fn start_with(client: &ClientKey, extra: &str) -> Self {
        Self::start_inner(client, extra, true)
    }

    /// Starts a server without an SFTP subsystem (clients must use the shell for files).
    pub fn start_without_sftp(client: &ClientKey) -> Self {
        Self::start_inner(client, "", false)
    }

    fn start_inner(client: &ClientKey, extra: &str, sftp: bool) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        keygen(&dir.path().join("host_ed25519"));
        std::fs::copy(client.public(), dir.path().join("authorized_keys")).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            dir.path().join("authorized_keys"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let extra = extra.replace("{dir}", &dir.path().display().to_string());
        let mut s = Self {
            dir,
            port: free_port(),
            extra,
            sftp,
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        // HOME points at the server's temp dir so sessions do not source root's ~/.bashrc
        // (on dev machines it may run slow or locking tools such as `pyenv init`).
        let cfg = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nMaxSessions 200\nMaxStartups 200\n\
             LogLevel ERROR\nSetEnv HOME={d}\n{sftp}",
            port = self.port,
            d = d.display(),
            sftp = if self.sftp {
                "Subsystem sftp internal-sftp\n"
            } else {
                ""
            },
        );
        std::fs::write(d.join("sshd_config"), cfg + &self.extra).unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        // `{dir}/binds` lists "SOURCE TARGET" lines: bind mounts (e.g. a passwd with a test
        // user) in a private mount namespace that only this sshd and its sessions see.
        let binds = std::fs::read_to_string(d.join("binds")).unwrap_or_default();
        let mut cmd = if binds.trim().is_empty() {
            let mut c = Command::new("/usr/sbin/sshd");
            c.args(["-D", "-e", "-f"]).arg(d.join("sshd_config"));
            c
        } else {
            let mut script = String::new();
            for line in binds.lines() {
                let (src, dst) = line.split_once(' ').unwrap();
                script.push_str(&format!("mount --bind '{src}' '{dst}' && "));
            }
            script.push_str(&format!(
                "exec /usr/sbin/sshd -D -e -f '{}'",
                d.join("sshd_config").display()
            ));
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
            c
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The host's public key line (`ssh-ed25519 AAAA...`).
    pub fn host_key(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("host_ed25519.pub")).unwrap();
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_key())
    }

    /// Kills the server and every process it forked (sessions call setsid, so walk /proc).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let mut pids = descendants(c.id());
            pids.push(c.id());
            for pid in pids {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = c.wait();
        }
    }

    /// Kills only the per-connection processes (the listener stays): established connections drop.
    pub fn kill_sessions(&self) {
        if let Some(c) = &self.child {
            for pid in descendants(c.id()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    /// Restarts on the same port, optionally with a fresh host key.
    pub fn restart(&mut self, new_host_key: bool) {
        self.kill();
        if new_host_key {
            let d = self.dir.path();
            std::fs::remove_file(d.join("host_ed25519")).unwrap();
            std::fs::remove_file(d.join("host_ed25519.pub")).unwrap();
            keygen(&d.join("host_ed25519"));
        }
        self.spawn();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}
