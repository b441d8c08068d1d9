//! CPU budgets for lab hosts through the cgroup `cpu` controller (v1 `cpu.cfs_quota_us` or v2
//! `cpu.max`), so a host can behave like a VM with its own small vCPU budget although every
//! host shares the machine's cores.
//!
//! Each confined host gets the cgroup `<cpu mount>/hakube-lab/<netns name>` (the namespace name
//! carries the lab's unique prefix); teardown and the stale-lab cleanup remove it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The directory under the cpu hierarchy's root that holds every lab host's cgroup.
const PARENT: &str = "hakube-lab";

/// The smallest quota the kernel accepts, in microseconds.
const MIN_QUOTA_US: u64 = 1_000;
/// The scheduling period used when the quota allows it: short, so a confined host waits at
/// most a few milliseconds at a time (the kernel default of 100 ms makes latency spiky).
const PERIOD_US: u64 = 10_000;
/// The longest period the kernel accepts, in microseconds.
const MAX_PERIOD_US: u64 = 1_000_000;

/// Which cgroup version carries the cpu controller, and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hierarchy {
    /// cgroup v1 hierarchy with `cpu` among its controllers.
    V1(PathBuf),
    /// cgroup v2 (unified) hierarchy offering `cpu`.
    V2(PathBuf),
}

impl Hierarchy {
    fn root(&self) -> &Path {
        match self {
            Self::V1(p) | Self::V2(p) => p,
        }
    }
}

/// Finds the hierarchy carrying the cpu controller from `/proc/self/mountinfo` text: a v1
/// mount with `cpu` in its super options wins (on hybrid machines v2 then has no cpu), else a
/// v2 mount whose `cgroup.controllers` lists `cpu` (`controllers` reads that file).
pub(crate) fn find_hierarchy(
    mountinfo: &str,
    controllers: impl Fn(&Path) -> Option<String>,
) -> Option<Hierarchy> {
    let mut v2 = None;
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split_whitespace().nth(4) else {
            continue;
        };
        let mut right = right.split_whitespace();
        let (fstype, _source, super_opts) = (right.next(), right.next(), right.next());
        let mount_point = PathBuf::from(unescape_mount_path(mount_point));
        match fstype {
            Some("cgroup") if super_opts.is_some_and(|o| o.split(',').any(|x| x == "cpu")) => {
                return Some(Hierarchy::V1(mount_point));
            }
            Some("cgroup2")
                if v2.is_none()
                    && controllers(&mount_point)
                        .is_some_and(|c| c.split_whitespace().any(|x| x == "cpu")) =>
            {
                v2 = Some(Hierarchy::V2(mount_point));
            }
            _ => {}
        }
    }
    v2
}

/// Mount points in mountinfo escape space, tab, newline and backslash as octal.
fn unescape_mount_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(char::from(v));
            i += 4;
            continue;
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

fn hierarchy() -> std::result::Result<Hierarchy, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    find_hierarchy(&mountinfo, |p| {
        fs::read_to_string(p.join("cgroup.controllers")).ok()
    })
    .ok_or_else(|| "no cgroup hierarchy with the cpu controller is mounted".to_owned())
}

/// The (quota, period) in microseconds that give `cores` of CPU time: a 10 ms period where
/// the quota stays at or above the kernel's 1 ms minimum, a longer period otherwise.
pub(crate) fn quota_period(cores: f64) -> std::result::Result<(u64, u64), String> {
    if !cores.is_finite() || cores <= 0.0 {
        return Err(format!("{cores} is not a positive number of cores"));
    }
    if cores > 1024.0 {
        return Err(format!("{cores} cores is more than any machine has"));
    }
    // Both values are small positive integers after the checks above.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let quota_for = |period: u64| (cores * period as f64).round() as u64;
    if quota_for(PERIOD_US) >= MIN_QUOTA_US {
        return Ok((quota_for(PERIOD_US), PERIOD_US));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let period = (MIN_QUOTA_US as f64 / cores).ceil() as u64;
    if period > MAX_PERIOD_US {
        return Err(format!(
            "{cores} cores is below the smallest budget the kernel can enforce (0.001 cores)"
        ));
    }
    Ok((MIN_QUOTA_US, period))
}

/// A host's cgroup.
#[derive(Debug)]
pub(crate) struct HostCgroup {
    hierarchy: Hierarchy,
    dir: PathBuf,
}

fn io(host: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let (host, path) = (host.to_owned(), path.to_owned());
    move |source| Error::Io { host, path, source }
}

fn write(host: &str, path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(io(host, path))
}

impl HostCgroup {
    /// Creates (or reuses) the cgroup for namespace `netns`.
    pub(crate) fn create(host: &str, netns: &str) -> Result<Self> {
        let hierarchy = hierarchy().map_err(|reason| Error::CpuLimitUnavailable {
            host: host.to_owned(),
            reason,
        })?;
        let parent = hierarchy.root().join(PARENT);
        if let Hierarchy::V2(root) = &hierarchy {
            // The controller must be enabled for the children of the root and of `PARENT`.
            let _ = fs::write(root.join("cgroup.subtree_control"), "+cpu");
        }
        fs::create_dir_all(&parent).map_err(|e| Error::CpuLimitUnavailable {
            host: host.to_owned(),
            reason: format!("cannot create {}: {e}", parent.display()),
        })?;
        if matches!(hierarchy, Hierarchy::V2(_)) {
            let _ = fs::write(parent.join("cgroup.subtree_control"), "+cpu");
        }
        let dir = parent.join(netns);
        if !dir.exists() {
            fs::create_dir(&dir).map_err(io(host, &dir))?;
        }
        Ok(Self { hierarchy, dir })
    }

    /// The file a process writes its PID to, to join the cgroup.
    pub(crate) fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Sets the budget, or lifts it with `None`.
    pub(crate) fn set(&self, host: &str, budget: Option<(u64, u64)>) -> Result<()> {
        match (&self.hierarchy, budget) {
            (Hierarchy::V1(_), Some((quota, period))) => {
                // Lift the quota first: a new period shorter than the old quota is refused.
                write(host, &self.dir.join("cpu.cfs_quota_us"), "-1")?;
                write(
                    host,
                    &self.dir.join("cpu.cfs_period_us"),
                    &period.to_string(),
                )?;
                write(host, &self.dir.join("cpu.cfs_quota_us"), &quota.to_string())
            }
            (Hierarchy::V1(_), None) => write(host, &self.dir.join("cpu.cfs_quota_us"), "-1"),
            (Hierarchy::V2(_), Some((quota, period))) => write(
                host,
                &self.dir.join("cpu.max"),
                &format!("{quota} {period}"),
            ),
            (Hierarchy::V2(_), None) => write(host, &self.dir.join("cpu.max"), "max"),
        }
    }

    /// Moves every process of PID namespace `ns_of` (a process's `/proc/<pid>/ns/pid` link
    /// target) into the cgroup; their later children inherit it. Repeats the scan until no
    /// process is left outside (a process forking during the move), at most a few rounds.
    pub(crate) fn adopt_namespace(&self, host: &str, init_pid: u32) -> Result<usize> {
        let ns_link = |pid: &str| fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        let Some(ns) = ns_link(&init_pid.to_string()) else {
            return Err(Error::HostRemoved {
                host: host.to_owned(),
            });
        };
        let procs = self.dir.join("cgroup.procs");
        let mut moved = std::collections::BTreeSet::new();
        for _ in 0..4 {
            let mut new = 0;
            for entry in fs::read_dir("/proc").map_err(io(host, Path::new("/proc")))? {
                let Ok(entry) = entry else { continue };
                let name = entry.file_name();
                let Some(pid) = name
                    .to_str()
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                else {
                    continue;
                };
                if moved.contains(pid) || ns_link(pid).as_ref() != Some(&ns) {
                    continue;
                }
                // A process that exited in between is fine to miss.
                match fs::write(&procs, pid) {
                    Ok(()) => {
                        moved.insert(pid.to_owned());
                        new += 1;
                    }
                    Err(e) if e.raw_os_error() == Some(3) => {} // ESRCH
                    Err(e) => return Err(io(host, &procs)(e)),
                }
            }
            if new == 0 {
                break;
            }
        }
        Ok(moved.len())
    }
}

/// Removes the cgroups of the given namespaces (their processes must be dying): retries while
/// the kernel still counts exiting processes, for up to `wait`. Best effort.
pub(crate) fn remove(netns: &[&str], wait: Duration) {
    let Ok(h) = hierarchy() else { return };
    let parent = h.root().join(PARENT);
    let deadline = Instant::now() + wait;
    for ns in netns {
        let dir = parent.join(ns);
        while dir.exists() && fs::remove_dir(&dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Removes the cgroups of every host of the lab with name prefix `prefix` (stale-lab cleanup).
pub(crate) fn remove_prefix(prefix: &str) {
    let Ok(h) = hierarchy() else { return };
    let parent = h.root().join(PARENT);
    let Ok(entries) = fs::read_dir(&parent) else {
        return;
    };
    let start = format!("{prefix}-");
    let names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.starts_with(&start))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    remove(&refs, Duration::from_secs(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/cpuset rw,nosuid - cgroup cgroup rw,cpuset
";
    const UNIFIED: &str = "\
29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn v1_cpu_wins_on_hybrid_machines_and_cpuset_is_not_cpu() {
        let h = find_hierarchy(HYBRID, |_| Some(String::new()));
        assert_eq!(h, Some(Hierarchy::V1("/sys/fs/cgroup/cpu,cpuacct".into())));
        let only_cpuset = HYBRID
            .lines()
            .filter(|l| !l.contains("cpuacct"))
            .collect::<Vec<_>>();
        assert_eq!(
            find_hierarchy(&only_cpuset.join("\n"), |_| Some(String::new())),
            None
        );
    }

    #[test]
    fn v2_needs_the_cpu_controller() {
        assert_eq!(
            find_hierarchy(UNIFIED, |_| Some("cpuset cpu io memory pids".into())),
            Some(Hierarchy::V2("/sys/fs/cgroup".into()))
        );
        assert_eq!(
            find_hierarchy(UNIFIED, |_| Some("memory pids".into())),
            None
        );
        assert_eq!(find_hierarchy(UNIFIED, |_| None), None);
    }

    #[test]
    fn escaped_mount_points() {
        assert_eq!(unescape_mount_path(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }

    #[test]
    fn budgets() {
        assert_eq!(quota_period(0.5), Ok((5_000, 10_000)));
        assert_eq!(quota_period(2.0), Ok((20_000, 10_000)));
        assert_eq!(quota_period(0.125), Ok((1_250, 10_000)));
        // Below 0.1 cores the period grows so the quota stays at the 1 ms minimum.
        assert_eq!(quota_period(0.05), Ok((1_000, 20_000)));
        assert!(quota_period(0.0).is_err());
        assert!(quota_period(-1.0).is_err());
        assert!(quota_period(f64::NAN).is_err());
        assert!(quota_period(0.0001).is_err());
        assert!(quota_period(5000.0).is_err());
    }
}
