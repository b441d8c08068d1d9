//! One lab host: a network namespace plus a private mount, PID and UTS namespace.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::util;

/// How long [`Host::terminate`] waits after SIGTERM before it sends SIGKILL.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(5);

/// A host of a [`crate::Lab`]: its own network namespace (one interface, `eth0`, on the lab
/// bridge), and its own mount, PID and UTS namespaces (private directories, its own `ps` view,
/// its own hostname). Obtained from [`crate::Lab::host`]; lives as long as the lab.
///
/// Commands run with `PATH` = `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
/// `HOME=/root`, as root, in `/`.
#[derive(Debug)]
pub struct Host {
    pub(crate) name: String,
    pub(crate) addr: Ipv4Addr,
    pub(crate) gateway: Ipv4Addr,
    pub(crate) prefix_len: u8,
    pub(crate) netns: String,
    pub(crate) port: String,
    pub(crate) dir: PathBuf,
    pub(crate) private_dirs: Arc<[PathBuf]>,
    pub(crate) client_key: PathBuf,
    pub(crate) known_hosts: PathBuf,
    pub(crate) init_pid: AtomicU32,
    pub(crate) anchor: Mutex<Option<Child>>,
    pub(crate) daemons: Mutex<BTreeMap<String, Child>>,
    pub(crate) removed: AtomicBool,
    pub(crate) host_public_key: Mutex<String>,
    /// The host's cgroup once [`Host::cpu_limit`] was called.
    pub(crate) cgroup: Mutex<Option<crate::cgroup::HostCgroup>>,
    /// Built by [`crate::LabBuilder::fresh_hosts`] (copy-on-write `/etc`).
    pub(crate) fresh: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Host {
    /// The host's name, as given to [`crate::LabBuilder::hosts`]; also its hostname inside.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's address on the lab bridge, reachable from the test process.
    #[must_use]
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The host's network namespace name (for `ip netns exec`, if a test needs it).
    #[must_use]
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The pid (in the test process's view) of the host's init process; the target for
    /// `nsenter --target PID --mount --net --pid --uts`.
    #[must_use]
    pub fn init_pid(&self) -> u32 {
        self.init_pid.load(Ordering::SeqCst)
    }

    /// Whether [`crate::Lab::remove_host`] removed this host.
    #[must_use]
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    /// The host's directory in the lab's working directory (logs, sshd files, call records,
    /// and `root/`, which holds the backing directories of the private paths).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directories that are private to this host.
    #[must_use]
    pub fn private_dirs(&self) -> &[PathBuf] {
        &self.private_dirs
    }

    fn alive(&self) -> Result<u32> {
        if self.is_removed() {
            return Err(Error::HostRemoved {
                host: self.name.clone(),
            });
        }
        Ok(self.init_pid())
    }

    /// A `Command` that runs `sh -c script` inside the host. Spawn it yourself for streaming
    /// I/O; [`Host::exec`] and [`Host::run`] cover the common cases.
    ///
    /// # Errors
    /// [`Error::HostRemoved`] after [`crate::Lab::remove_host`].
    pub fn command(&self, script: &str) -> Result<Command> {
        let pid = self.alive()?;
        // On a CPU-limited host the command first joins the host's cgroup: a shell outside
        // the host writes its PID (the host's /sys has no cgroup mounts), then becomes nsenter.
        let mut cmd = match lock(&self.cgroup).as_ref() {
            Some(cg) => {
                let mut c = Command::new("sh");
                c.args(["-c", "echo $$ > \"$0\" && exec \"$@\""])
                    .arg(cg.procs_file())
                    .arg("nsenter");
                c
            }
            None => Command::new("nsenter"),
        };
        cmd.arg("--target")
            .arg(pid.to_string())
            // Every signal at its default, as systemd starts a VM's services: a runner started
            // with SIGHUP ignored (`nohup`) would otherwise pass that on, and a shell cannot trap
            // a signal ignored on entry.
            .args([
                "--mount",
                "--net",
                "--pid",
                "--uts",
                "--",
                "env",
                "--default-signal",
                "sh",
                "-c",
                script,
            ])
            .current_dir("/")
            .env_clear()
            .env("PATH", util::PATH)
            .env("HOME", "/root")
            .env("USER", "root")
            .env("LOGNAME", "root")
            .env("LANG", "C.UTF-8");
        Ok(cmd)
    }

    /// Runs `sh -c script` inside the host (its network, mount, PID and UTS namespaces) and
    /// returns its output whatever the exit status. Stdin is closed.
    ///
    /// # Errors
    /// [`Error::HostRemoved`], or [`Error::Spawn`] when `nsenter` cannot start.
    pub fn exec(&self, script: &str) -> Result<Output> {
        let mut cmd = self.command(script)?;
        util::output(&self.name, &mut cmd)
    }

    /// Like [`Host::exec`], with `input` fed to the script's stdin (binary-safe).
    ///
    /// # Errors
    /// [`Error::HostRemoved`], [`Error::Spawn`].
    pub fn exec_with_input(&self, script: &str, input: &[u8]) -> Result<Output> {
        use std::io::Write as _;
        let mut cmd = self.command(script)?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn_err = |source| Error::Spawn {
            host: self.name.clone(),
            command: script.to_owned(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let writer = child.stdin.take().map(|mut stdin| {
            let input = input.to_owned();
            // A script that stops reading early closes the pipe; that is not an error here.
            std::thread::spawn(move || drop(stdin.write_all(&input)))
        });
        let out = child.wait_with_output().map_err(|source| Error::Spawn {
            host: self.name.clone(),
            command: script.to_owned(),
            source,
        })?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        Ok(out)
    }

    /// Like [`Host::exec`], but kills the script (its whole process group) when it runs longer
    /// than `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::HostRemoved`], [`Error::Spawn`].
    pub fn exec_timeout(&self, script: &str, timeout: Duration) -> Result<Output> {
        use std::io::Read as _;
        let mut cmd = self.command(script)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            host: self.name.clone(),
            command: script.to_owned(),
            source,
        })?;
        let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
        let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
        let finished = util::wait_timeout(&mut child, timeout);
        if !finished {
            util::signal_group(child.id(), "KILL");
        }
        let status = child.wait().map_err(|source| Error::Spawn {
            host: self.name.clone(),
            command: script.to_owned(),
            source,
        })?;
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if finished {
            Ok(Output {
                status,
                stdout,
                stderr,
            })
        } else {
            Err(Error::Timeout {
                host: self.name.clone(),
                command: script.to_owned(),
                after: timeout,
            })
        }
    }

    /// Like [`Host::exec`] but fails unless the script exits 0; returns stdout as text.
    ///
    /// # Errors
    /// [`Error::Command`] with the script and its stderr when it exits non-zero.
    pub fn run(&self, script: &str) -> Result<String> {
        let out = self.exec(script)?;
        let out = util::check(&self.name, script, out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The path, in the test process's view, that backs `path` inside the host. Use it to
    /// inspect or prepare host files from outside.
    ///
    /// On a fresh host ([`crate::LabBuilder::fresh_hosts`]) paths under `/etc` outside the
    /// private directories are reached through the host's mount namespace
    /// (`/proc/<init pid>/root/etc/...`, its copy-on-write `/etc`).
    ///
    /// # Errors
    /// [`Error::NotPrivate`] when `path` is relative, contains `..`, or is neither inside one of
    /// the host's private directories nor one of [`crate::PRIVATE_FILES`] (the lab never writes to the machine's real files).
    pub fn host_path(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref();
        let not_private = || Error::NotPrivate {
            host: self.name.clone(),
            path: path.to_owned(),
        };
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(not_private());
        }
        let private = self.private_dirs.iter().any(|d| path.starts_with(d))
            || crate::private::PRIVATE_FILES
                .iter()
                .any(|f| path == Path::new(f));
        if !private {
            if self.fresh && path.starts_with("/etc") && path != Path::new("/etc") {
                let rel = path.strip_prefix("/").map_err(|_| not_private())?;
                return Ok(PathBuf::from(format!("/proc/{}/root", self.alive()?)).join(rel));
            }
            return Err(not_private());
        }
        let rel = path.strip_prefix("/").map_err(|_| not_private())?;
        Ok(self.dir.join("root").join(rel))
    }

    /// Writes `contents` to `path` inside the host (creating parent directories) with `mode`.
    ///
    /// # Errors
    /// [`Error::NotPrivate`] for paths outside the private directories, [`Error::Io`] on
    /// write failures.
    pub fn write_file(
        &self,
        path: impl AsRef<Path>,
        contents: impl AsRef<[u8]>,
        mode: u32,
    ) -> Result<()> {
        self.alive()?;
        let real = self.host_path(path)?;
        let io = |source| Error::Io {
            host: self.name.clone(),
            path: real.clone(),
            source,
        };
        if let Some(parent) = real.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        fs::write(&real, contents).map_err(io)?;
        fs::set_permissions(&real, fs::Permissions::from_mode(mode)).map_err(io)
    }

    /// Reads `path` inside the host (a private directory's file).
    ///
    /// # Errors
    /// [`Error::NotPrivate`], or [`Error::Io`] (e.g. the file does not exist).
    pub fn read_file(&self, path: impl AsRef<Path>) -> Result<Vec<u8>> {
        let real = self.host_path(path)?;
        fs::read(&real).map_err(|source| Error::Io {
            host: self.name.clone(),
            path: real.clone(),
            source,
        })
    }

    /// [`Host::read_file`] as (lossy) UTF-8 text.
    ///
    /// # Errors
    /// As [`Host::read_file`].
    pub fn read_to_string(&self, path: impl AsRef<Path>) -> Result<String> {
        self.read_file(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    // ---- daemons ----

    /// The log file (stdout and stderr) of daemon `name`, in the test process's view.
    #[must_use]
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// The log (stdout and stderr) of daemon `name` so far; empty if it logged nothing.
    #[must_use]
    pub fn log(&self, name: &str) -> String {
        fs::read(self.log_path(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Starts `sh -c script` in the background inside the host, under `name` (one daemon per
    /// name per host). Stdout and stderr are appended to [`Host::log_path`]. The daemon runs in
    /// its own process group; run daemons in the foreground (`haproxy -db`, `keepalived -n`,
    /// `sshd -D`) so [`Host::kill`] and [`Host::is_running`] track them. Whatever it forks is
    /// still killed at teardown (the host's PID namespace ends).
    ///
    /// # Errors
    /// [`Error::DaemonExists`] while a daemon of that name runs, [`Error::InvalidConfig`] for a
    /// name that is not a plain file name, [`Error::Spawn`], [`Error::Io`].
    pub fn spawn(&self, name: &str, script: &str) -> Result<()> {
        check_name("daemon name", name)?;
        let mut daemons = lock(&self.daemons);
        if let Some(child) = daemons.get_mut(name)
            && matches!(child.try_wait(), Ok(None))
        {
            return Err(Error::DaemonExists {
                host: self.name.clone(),
                name: name.to_owned(),
            });
        }
        let log = self.log_path(name);
        let io = |source| Error::Io {
            host: self.name.clone(),
            path: log.clone(),
            source,
        };
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io)?;
        let file2 = file.try_clone().map_err(io)?;
        let mut cmd = self.command(script)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file2))
            .process_group(0);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            host: self.name.clone(),
            command: script.to_owned(),
            source,
        })?;
        daemons.insert(name.to_owned(), child);
        Ok(())
    }

    /// Whether daemon `name` is still running (false if it exited, was killed or never started).
    #[must_use]
    pub fn is_running(&self, name: &str) -> bool {
        lock(&self.daemons)
            .get_mut(name)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends `signal` (e.g. `"HUP"`, `"USR2"`) to daemon `name`'s processes (its process
    /// group, minus the `nsenter` that tracks it); the daemon stays tracked.
    ///
    /// # Errors
    /// [`Error::UnknownDaemon`].
    pub fn signal(&self, name: &str, signal: &str) -> Result<()> {
        let daemons = lock(&self.daemons);
        let child = daemons.get(name).ok_or_else(|| Error::UnknownDaemon {
            host: self.name.clone(),
            name: name.to_owned(),
        })?;
        let leader = child.id();
        let members: Vec<u32> = util::group_members(leader)
            .into_iter()
            .filter(|&p| p != leader)
            .collect();
        util::signal_pids(&members, signal);
        Ok(())
    }

    /// Kills daemon `name` (SIGKILL to its process group: a crash) and reaps it.
    ///
    /// # Errors
    /// [`Error::UnknownDaemon`].
    pub fn kill(&self, name: &str) -> Result<()> {
        self.stop(name, "KILL", Duration::ZERO)
    }

    /// Stops daemon `name` gracefully: SIGTERM to its process group, then SIGKILL after
    /// [`TERMINATE_GRACE`].
    ///
    /// # Errors
    /// [`Error::UnknownDaemon`].
    pub fn terminate(&self, name: &str) -> Result<()> {
        self.stop(name, "TERM", TERMINATE_GRACE)
    }

    fn stop(&self, name: &str, signal: &str, grace: Duration) -> Result<()> {
        let mut child = lock(&self.daemons)
            .remove(name)
            .ok_or_else(|| Error::UnknownDaemon {
                host: self.name.clone(),
                name: name.to_owned(),
            })?;
        let pgid = child.id();
        util::signal_group(pgid, signal);
        let deadline = Instant::now() + grace.max(Duration::from_secs(2));
        let exited = util::wait_timeout(&mut child, grace.max(Duration::from_secs(2)));
        // The daemon's own processes may outlive the tracked nsenter by a moment: wait until
        // the whole group is gone, so its ports are closed when this returns.
        while exited && util::group_alive(pgid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !exited || util::group_alive(pgid) {
            util::signal_group(pgid, "KILL");
            let _ = child.wait();
            let hard = Instant::now() + Duration::from_secs(2);
            while util::group_alive(pgid) && Instant::now() < hard {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }

    /// Waits until something accepts TCP connections on `port` of this host, seen from the
    /// test process.
    ///
    /// # Errors
    /// [`Error::NotReady`] after `timeout`.
    pub fn wait_for_port(&self, port: u16, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let sa = std::net::SocketAddr::from((self.addr, port));
        loop {
            if std::net::TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(Error::NotReady {
                    host: self.name.clone(),
                    what: format!("TCP port {sa}"),
                    waited: timeout,
                    detail: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // ---- faults ----

    fn ip(&self, args: &[&str]) -> Result<()> {
        self.alive()?;
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.netns]).args(args);
        util::run(&self.name, &mut cmd).map(drop)
    }

    /// Cuts the host's cable: `ip link set eth0 down` inside the host.
    ///
    /// # Errors
    /// [`Error::Command`], [`Error::HostRemoved`].
    pub fn link_down(&self) -> Result<()> {
        self.ip(&["link", "set", "eth0", "down"])
    }

    /// Reconnects the host's cable and restores its default route.
    ///
    /// # Errors
    /// [`Error::Command`], [`Error::HostRemoved`].
    pub fn link_up(&self) -> Result<()> {
        self.ip(&["link", "set", "eth0", "up"])?;
        self.ip(&[
            "route",
            "replace",
            "default",
            "via",
            &self.gateway.to_string(),
        ])
    }

    /// Adds (or replaces) a netem qdisc on the host's `eth0`, e.g. `"delay 100ms loss 5%"`.
    ///
    /// # Errors
    /// [`Error::NetemUnavailable`] when the kernel lacks `sch_netem` (skip the test part),
    /// [`Error::Command`] for other `tc` failures (e.g. bad arguments).
    pub fn netem(&self, spec: &str) -> Result<()> {
        self.alive()?;
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.netns,
            "tc",
            "qdisc",
            "replace",
            "dev",
            "eth0",
        ])
        .args(["root", "netem"])
        .args(spec.split_whitespace());
        match util::run(&self.name, &mut cmd) {
            Err(Error::Command { stderr, .. })
                if stderr.contains("qdisc kind is unknown") || stderr.contains("Unknown qdisc") =>
            {
                Err(Error::NetemUnavailable {
                    host: self.name.clone(),
                    stderr,
                })
            }
            other => other.map(drop),
        }
    }

    /// Removes the netem qdisc added by [`Host::netem`] (a no-op when there is none).
    ///
    /// # Errors
    /// [`Error::HostRemoved`], [`Error::Spawn`].
    pub fn clear_netem(&self) -> Result<()> {
        self.alive()?;
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.netns,
            "tc",
            "qdisc",
            "del",
            "dev",
            "eth0",
            "root",
        ]);
        // Fails harmlessly when no root qdisc is set.
        util::output(&self.name, &mut cmd).map(drop)
    }

    // ---- CPU budget ----

    /// Confines the host to `cores` of CPU time (`0.25` = a quarter of one core), like a VM
    /// with a small vCPU budget: every process running in the host now, everything they start
    /// (sshd's sessions), and every later [`Host::exec`] / [`Host::spawn`] / restarted sshd.
    /// Calling it again changes the budget.
    ///
    /// All lab hosts share this machine's cores, so N busy hosts slow each other down; giving
    /// each host a fixed budget makes one host as fast alone as among N (as separate machines
    /// would be), e.g. to measure how a client scales out. Uses the cgroup `cpu` controller (v1
    /// `cpu.cfs_quota_us` or v2 `cpu.max`, 10 ms period); the cgroup goes at teardown.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] (field `cpu_limit`) for a budget that is not positive or
    /// below the kernel's 0.001 cores, [`Error::CpuLimitUnavailable`] where no cgroup cpu
    /// controller is usable (skip that part of a test), [`Error::HostRemoved`], [`Error::Io`].
    pub fn cpu_limit(&self, cores: f64) -> Result<()> {
        let budget = crate::cgroup::quota_period(cores).map_err(|reason| Error::InvalidConfig {
            field: "cpu_limit",
            reason,
        })?;
        let pid = self.alive()?;
        let mut slot = lock(&self.cgroup);
        if slot.is_none() {
            *slot = Some(crate::cgroup::HostCgroup::create(&self.name, &self.netns)?);
        }
        let cg = slot.as_ref().ok_or_else(|| Error::HostRemoved {
            host: self.name.clone(),
        })?;
        cg.set(&self.name, Some(budget))?;
        cg.adopt_namespace(&self.name, pid)?;
        Ok(())
    }

    /// Lifts the budget set by [`Host::cpu_limit`] (a no-op when none was set).
    ///
    /// # Errors
    /// [`Error::Io`] when the cgroup cannot be written.
    pub fn clear_cpu_limit(&self) -> Result<()> {
        match lock(&self.cgroup).as_ref() {
            Some(cg) => cg.set(&self.name, None),
            None => Ok(()),
        }
    }

    // ---- stand-ins ----

    /// Installs a stand-in for command `cmd` on this host: `/usr/local/bin/<cmd>` records its
    /// argv (see [`Host::calls`]) and then runs `script` (a complete executable file, usually
    /// starting with `#!/bin/sh`) with the same arguments.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a `cmd` that is not a plain file name,
    /// [`Error::NotPrivate`] when `/usr/local/bin` is not a private directory, [`Error::Io`].
    pub fn stand_in(&self, cmd: &str, script: &str) -> Result<()> {
        check_name("stand-in command", cmd)?;
        self.alive()?;
        let implementation = self.dir.join("stand-ins").join(cmd);
        let calls = self.calls_path(cmd);
        let io = |path: &Path| {
            let path = path.to_owned();
            let host = self.name.clone();
            move |source| Error::Io { host, path, source }
        };
        fs::write(&implementation, script).map_err(io(&implementation))?;
        fs::set_permissions(&implementation, fs::Permissions::from_mode(0o755))
            .map_err(io(&implementation))?;
        let wrapper = format!(
            "#!/bin/sh\n\
             # hakube-lab stand-in for `{cmd}`: records the call, then runs the lab's script.\n\
             {{ /usr/bin/flock 9; printf '%s\\0' \"$#\" \"$@\" >&9; }} 9>>{calls}\n\
             exec {implementation} \"$@\"\n",
            calls = util::sh_quote(&calls.to_string_lossy()),
            implementation = util::sh_quote(&implementation.to_string_lossy()),
        );
        self.write_file(Path::new("/usr/local/bin").join(cmd), wrapper, 0o755)
    }

    fn calls_path(&self, cmd: &str) -> PathBuf {
        self.dir.join("calls").join(cmd)
    }

    /// The recorded calls of stand-in `cmd` on this host, oldest first; each call is its
    /// argument list (without the command name). Empty when it was never called.
    #[must_use]
    pub fn calls(&self, cmd: &str) -> Vec<Vec<String>> {
        fs::read(self.calls_path(cmd))
            .map(|b| parse_calls(&b))
            .unwrap_or_default()
    }

    /// Forgets the recorded calls of stand-in `cmd` on this host.
    pub fn clear_calls(&self, cmd: &str) {
        let _ = fs::remove_file(self.calls_path(cmd));
    }

    // ---- fresh hosts ----

    /// The packages installed on this host by its `apt-get` stand-in
    /// ([`crate::LabBuilder::fresh_hosts`]), in install order; not the base packages.
    #[must_use]
    pub fn installed_packages(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("packages/installed"))
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// The main pid (as the host sees it) of `unit` (`haproxy` or `haproxy.service`) when
    /// the fresh hosts' `systemctl` runs it; `None` when it does not run.
    #[must_use]
    pub fn service_pid(&self, unit: &str) -> Option<u32> {
        let unit = service_unit(unit);
        let pid_file = format!("/run/hakube-lab/units/{unit}.pid");
        let text = self.read_to_string(&pid_file).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        let alive = self
            .exec(&format!("kill -0 {pid}"))
            .is_ok_and(|o| o.status.success());
        alive.then_some(pid)
    }

    /// Crashes `unit` run by the fresh hosts' `systemctl`: SIGKILL to its main process and
    /// that process's children (HAProxy's master and workers), as a crash would. The unit's
    /// `ExecStopPost=` then runs, as under systemd.
    ///
    /// # Errors
    /// [`Error::UnknownDaemon`] when the unit does not run, [`Error::Command`].
    pub fn kill_service(&self, unit: &str) -> Result<()> {
        let pid = self.service_pid(unit).ok_or_else(|| Error::UnknownDaemon {
            host: self.name.clone(),
            name: service_unit(unit),
        })?;
        // One kill for the process and its children, so none outlives the others (a
        // HAProxy master exits on its own when its workers die).
        self.run(&format!(
            "kill -KILL {pid} $(pgrep -P {pid}) 2>/dev/null; true"
        ))
        .map(drop)
    }

    // ---- ssh ----

    /// The host's current SSH public key line (`ssh-ed25519 AAAA... <host>`). Empty when the
    /// lab was built without sshd.
    #[must_use]
    pub fn ssh_host_public_key(&self) -> String {
        lock(&self.host_public_key).clone()
    }

    pub(crate) fn load_host_public_key(&self) -> Result<()> {
        let path = self.dir.join("sshd/ssh_host_ed25519_key.pub");
        let key = fs::read_to_string(&path).map_err(|source| Error::Io {
            host: self.name.clone(),
            path,
            source,
        })?;
        *lock(&self.host_public_key) = key.trim().to_owned();
        Ok(())
    }

    pub(crate) fn spawn_sshd(&self) -> Result<()> {
        let cfg = self.dir.join("sshd/sshd_config");
        self.spawn(
            "sshd",
            &format!(
                "exec /usr/sbin/sshd -D -e -f {}",
                util::sh_quote(&cfg.to_string_lossy())
            ),
        )
    }

    pub(crate) fn wait_for_sshd(&self) -> Result<()> {
        self.wait_for_port(22, Duration::from_secs(30))
            .map_err(|e| match e {
                Error::NotReady { host, waited, .. } => Error::NotReady {
                    host,
                    what: format!("sshd on {}:22", self.addr),
                    waited,
                    detail: self.log("sshd").trim().to_owned(),
                },
                other => other,
            })
    }

    /// Restarts the host's sshd (SIGTERM, then start again and wait until it listens). Open
    /// sessions are cut.
    ///
    /// # Errors
    /// [`Error::UnknownDaemon`] when the lab runs without sshd, [`Error::NotReady`].
    pub fn restart_sshd(&self) -> Result<()> {
        self.alive()?;
        self.terminate("sshd")?;
        // Open sessions are separate sshd processes that outlive the listener: end them too,
        // so clients see the restart.
        let _ = self.exec("pkill -KILL -x sshd");
        self.spawn_sshd()?;
        self.wait_for_sshd()
    }

    /// Gives the host a new SSH host key and restarts sshd with it, like a reinstalled
    /// machine. The lab's known_hosts file keeps the old key (so a client sees a changed key)
    /// until [`crate::Lab::refresh_known_hosts`]. Returns the new public key line.
    ///
    /// # Errors
    /// As [`Host::restart_sshd`], plus [`Error::Command`] when `ssh-keygen` fails.
    pub fn rotate_ssh_host_key(&self) -> Result<String> {
        self.alive()?;
        let key = self.dir.join("sshd/ssh_host_ed25519_key");
        let _ = fs::remove_file(&key);
        let _ = fs::remove_file(key.with_extension("pub"));
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", &self.name, "-f"])
            .arg(&key);
        util::run(&self.name, &mut cmd)?;
        self.load_host_public_key()?;
        self.restart_sshd()?;
        Ok(self.ssh_host_public_key())
    }

    /// The `ssh` CLI as root to this host, with the lab's key and known_hosts, strict host key
    /// checking, `BatchMode`: append a remote command and run it.
    #[must_use]
    pub fn ssh_command(&self) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-i")
            .arg(&self.client_key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "LogLevel=ERROR",
                "-F",
                "/dev/null",
            ])
            .arg(format!("root@{}", self.addr));
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `script` on the host over SSH with the `ssh` CLI (see [`Host::ssh_command`]).
    ///
    /// # Errors
    /// [`Error::Spawn`] when `ssh` is not installed; a failed login shows in the output's
    /// status (255) and stderr.
    pub fn ssh(&self, script: &str) -> Result<Output> {
        let mut cmd = self.ssh_command();
        cmd.arg(script);
        util::output(&self.name, &mut cmd)
    }
}

/// `haproxy` -> `haproxy.service`; names with a unit suffix stay.
fn service_unit(unit: &str) -> String {
    if unit.contains('.') {
        unit.to_owned()
    } else {
        format!("{unit}.service")
    }
}

/// Rejects names that are not plain file names (used for daemon and stand-in names).
pub(crate) fn check_name(field: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            field,
            reason: format!("{name:?} must be 1-64 characters of [A-Za-z0-9._+-]"),
        })
    }
}

/// Parses the stand-in call log: per call, `argc\0arg1\0...argN\0`.
pub(crate) fn parse_calls(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut fields = bytes
        .split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut calls = Vec::new();
    while let Some(count) = fields.next() {
        let Ok(n) = count.parse::<usize>() else { break };
        let args: Vec<String> = fields.by_ref().take(n).collect();
        if args.len() < n {
            break;
        }
        calls.push(args);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_parse() {
        let log = b"2\0init\0--config=a b\0\x30\0";
        assert_eq!(
            parse_calls(log),
            vec![vec!["init".to_owned(), "--config=a b".to_owned()], vec![]]
        );
        // A truncated record (a call still being written) is ignored.
        assert_eq!(parse_calls(b"3\0a\0"), Vec::<Vec<String>>::new());
    }

    #[test]
    fn names() {
        assert!(check_name("x", "kubeadm").is_ok());
        assert!(check_name("x", "apt-get").is_ok());
        assert!(check_name("x", "a/b").is_err());
        assert!(check_name("x", "..").is_err());
        assert!(check_name("x", "").is_err());
    }
}
