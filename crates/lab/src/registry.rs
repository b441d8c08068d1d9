//! The machine-wide registry of labs: unique name prefixes, unique subnets, stale-lab cleanup.
//!
//! Every lab writes a record `/run/hakube-lab/labs/<prefix>.lab` (owner pid and start time,
//! subnet, directory) while holding the lock file `/run/hakube-lab/lock`. Another test binary
//! choosing a subnet under the same lock skips subnets of live labs and of local routes. A record
//! whose owner process is gone marks a stale lab (a killed run): its namespaces, veth and
//! directory are removed.

use std::collections::HashSet;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::error::{Error, Result};
use crate::util;

/// Where lab records and the allocation lock live (tmpfs: gone after a reboot, like the labs).
pub const REGISTRY_DIR: &str = "/run/hakube-lab";

/// What a lab reserved for itself.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// Short unique name prefix, e.g. `hk3f9a1`: namespaces are `<prefix>-...`, the root-side
    /// veth is `<prefix>`.
    pub prefix: String,
    /// The lab's /24.
    pub subnet: Ipv4Net,
    /// The record file, removed at teardown.
    pub record: PathBuf,
    /// The lab's working directory (backing dirs, keys, logs).
    pub dir: PathBuf,
}

struct Record {
    pid: u32,
    start: u64,
    subnet: Option<Ipv4Net>,
    dir: Option<PathBuf>,
}

fn parse_record(text: &str) -> Option<Record> {
    let mut pid = None;
    let mut start = None;
    let mut subnet = None;
    let mut dir = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("pid", v)) => pid = v.parse().ok(),
            Some(("start", v)) => start = v.parse().ok(),
            Some(("subnet", v)) => subnet = v.parse().ok(),
            Some(("dir", v)) => dir = Some(PathBuf::from(v)),
            _ => {}
        }
    }
    Some(Record {
        pid: pid?,
        start: start?,
        subnet,
        dir,
    })
}

/// Takes the machine-wide lab lock (released when the file is dropped).
pub(crate) fn lock() -> Result<File> {
    let io = |path: &Path, source| Error::Io {
        host: "lab".into(),
        path: path.to_owned(),
        source,
    };
    let labs = Path::new(REGISTRY_DIR).join("labs");
    fs::create_dir_all(&labs).map_err(|e| io(&labs, e))?;
    let path = Path::new(REGISTRY_DIR).join("lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    file.lock().map_err(|e| io(&path, e))?;
    Ok(file)
}

fn records() -> Vec<(String, PathBuf, Option<Record>)> {
    let dir = Path::new(REGISTRY_DIR).join("labs");
    let Ok(rd) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let prefix = name.strip_suffix(".lab")?.to_owned();
            let text = fs::read_to_string(e.path()).unwrap_or_default();
            Some((prefix, e.path(), parse_record(&text)))
        })
        .collect()
}

fn alive(r: &Record) -> bool {
    util::process_start_time(r.pid) == Some(r.start)
}

fn cleanup(prefix: &str, record: &Path, dir: Option<&Path>) {
    let ns_prefix = format!("{prefix}-");
    // Hosts first so their processes die before the switch goes.
    let spaces: Vec<String> = util::netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&ns_prefix))
        .collect();
    util::delete_root_link(prefix);
    let (switch, hosts): (Vec<&str>, Vec<&str>) = spaces
        .iter()
        .map(String::as_str)
        .partition(|n| n.ends_with("-sw"));
    util::destroy_netns_all(&hosts);
    util::destroy_netns_all(&switch);
    crate::cgroup::remove_prefix(prefix);
    if let Some(dir) = dir {
        let _ = fs::remove_dir_all(dir);
    }
    let _ = fs::remove_file(record);
}

fn cleanup_stale_locked() -> usize {
    let mut n = 0;
    for (prefix, path, record) in records() {
        let stale = match &record {
            Some(r) => !alive(r),
            // An unreadable record is either being written (we hold the lock, so no) or junk.
            None => true,
        };
        if stale {
            cleanup(
                &prefix,
                &path,
                record.as_ref().and_then(|r| r.dir.as_deref()),
            );
            n += 1;
        }
    }
    n
}

/// Removes labs left behind by test processes that no longer run (killed runs, crashes that
/// skipped `Drop`): their namespaces, processes, veth and directories. Labs of live processes
/// are left alone. [`crate::LabBuilder::build`] calls this first, so a crashed run never
/// breaks the next one. Returns how many stale labs were removed.
///
/// # Errors
/// [`Error::Io`] when the registry under [`REGISTRY_DIR`] cannot be created or locked.
pub fn cleanup_stale_labs() -> Result<usize> {
    let _lock = lock()?;
    Ok(cleanup_stale_locked())
}

/// IPv4 prefixes routed on this machine (all tables), default routes excluded.
fn local_prefixes() -> Vec<Ipv4Net> {
    let Ok(out) = Command::new("ip")
        .args(["-4", "-o", "route", "show", "table", "all"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    const TYPES: &[&str] = &[
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "anycast",
        "unreachable",
        "blackhole",
        "prohibit",
        "throw",
        "nat",
    ];
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let mut w = words.next()?;
            if TYPES.contains(&w) {
                w = words.next()?;
            }
            if w == "default" {
                return None;
            }
            w.parse::<Ipv4Net>()
                .ok()
                .or_else(|| w.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))
        })
        .collect()
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    hakube_host_state::nets_overlap((*a).into(), (*b).into())
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// Reserves a prefix and a /24 (from `pool`, or exactly `fixed`), writing the lab's record.
pub(crate) fn reserve(
    tag: &str,
    pool: Ipv4Net,
    fixed: Option<Ipv4Net>,
    base: &Path,
) -> Result<Reservation> {
    let _lock = lock()?;
    cleanup_stale_locked();

    let existing = records();
    let taken_prefixes: HashSet<String> = existing.iter().map(|(p, _, _)| p.clone()).collect();
    let mut taken: Vec<Ipv4Net> = existing
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().and_then(|r| r.subnet))
        .collect();
    taken.extend(local_prefixes());

    let spaces = util::netns_list();
    let mut seed = random_u64();
    let prefix = loop {
        let p = format!("hk{:05x}", seed & 0xf_ffff);
        let ns_prefix = format!("{p}-");
        if !taken_prefixes.contains(&p)
            && !spaces.iter().any(|n| n.starts_with(&ns_prefix))
            && !Path::new("/sys/class/net").join(&p).exists()
        {
            break p;
        }
        seed = seed.rotate_left(7).wrapping_add(0x9e37_79b9);
    };

    let subnet = match fixed {
        Some(net) => {
            if let Some(t) = taken.iter().find(|t| overlaps(t, &net)) {
                return Err(Error::InvalidConfig {
                    field: "subnet",
                    reason: format!("{net} overlaps {t}, in use on this machine"),
                });
            }
            net
        }
        None => {
            let candidates: Vec<Ipv4Net> =
                pool.subnets(24).map(|s| s.collect()).unwrap_or_default();
            if candidates.is_empty() {
                return Err(Error::NoFreeSubnet {
                    pool: pool.to_string(),
                });
            }
            let start = usize::try_from(seed % candidates.len() as u64).unwrap_or(0);
            (0..candidates.len())
                .map(|i| candidates[(start + i) % candidates.len()])
                .find(|c| !taken.iter().any(|t| overlaps(t, c)))
                .ok_or_else(|| Error::NoFreeSubnet {
                    pool: pool.to_string(),
                })?
        }
    };

    let dir = base.join(&prefix);
    let record = Path::new(REGISTRY_DIR)
        .join("labs")
        .join(format!("{prefix}.lab"));
    let pid = std::process::id();
    let start = util::process_start_time(pid).unwrap_or(0);
    let text = format!(
        "pid={pid}\nstart={start}\nsubnet={subnet}\ndir={}\ntag={tag}\n",
        dir.display()
    );
    fs::write(&record, text).map_err(|source| Error::Io {
        host: "lab".into(),
        path: record.clone(),
        source,
    })?;
    Ok(Reservation {
        prefix,
        subnet,
        record,
        dir,
    })
}

/// Releases a reservation: removes the record. The caller has already torn the lab down.
pub(crate) fn release(res: &Reservation) {
    let _ = fs::remove_file(&res.record);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = parse_record("pid=12\nstart=34\nsubnet=10.88.3.0/24\ndir=/var/tmp/x\n");
        let r = r.expect("parses");
        assert_eq!((r.pid, r.start), (12, 34));
        assert_eq!(r.subnet, Some("10.88.3.0/24".parse().expect("net")));
        assert_eq!(r.dir.as_deref(), Some(Path::new("/var/tmp/x")));
        assert!(parse_record("subnet=10.0.0.0/24").is_none());
    }

    #[test]
    fn overlap_both_ways() {
        let a: Ipv4Net = "10.88.3.0/24".parse().expect("net");
        let b: Ipv4Net = "10.88.0.0/16".parse().expect("net");
        let c: Ipv4Net = "10.88.4.0/24".parse().expect("net");
        assert!(overlaps(&a, &b) && overlaps(&b, &a));
        assert!(!overlaps(&a, &c));
    }
}
