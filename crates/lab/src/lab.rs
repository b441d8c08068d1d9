//! The lab: builder, construction and teardown.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use crate::error::{Error, Result};
use crate::host::Host;
use crate::private::{DEFAULT_PRIVATE_DIRS, PRIVATE_FILES};
use crate::registry::{self, Reservation};
use crate::util;

/// Commands every host gets as recording no-op stand-ins unless
/// [`LabBuilder::without_default_stand_ins`]: they either cannot work in a lab (systemd, apt)
/// or would act on the whole machine, since lab hosts share its kernel (`sysctl` outside
/// `net.*`, `swapoff`, `modprobe`, `reboot`). Replace one with [`Lab::stand_in`] to give it
/// behaviour; [`Host::calls`] shows how it was called.
pub const DEFAULT_STAND_INS: &[&str] = &[
    "systemctl",
    "apt-get",
    "apt",
    "modprobe",
    "sysctl",
    "swapoff",
    "swapon",
    "reboot",
    "shutdown",
    "poweroff",
    "hostnamectl",
    "timedatectl",
];

/// Environment variable: `1` makes [`LabBuilder::build`] print its phase timings to stderr.
pub const TRACE_ENV: &str = "HAKUBE_LAB_TRACE";

/// Where labs keep their working directories unless [`LabBuilder::base_dir`] says otherwise.
/// Not under `/tmp`, which is private inside the hosts.
pub const DEFAULT_BASE_DIR: &str = "/var/tmp/hakube-lab";

/// The pool each lab takes a free /24 from unless [`LabBuilder::subnet`] fixes one.
pub const DEFAULT_POOL: &str = "10.88.0.0/16";

/// The last octet of the first spare address ([`Lab::spare_addr`]); hosts stay below it.
pub const SPARE_FIRST_OCTET: u8 = 200;

/// Environment variable overriding [`DEFAULT_POOL`], e.g. `HAKUBE_LAB_POOL=172.31.0.0/16`.
pub const POOL_ENV: &str = "HAKUBE_LAB_POOL";

/// The last octet of the first host's address (`.11`, then `.12`, ...).
pub const FIRST_HOST_OCTET: u8 = 11;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Paths that may never be made private (hiding them would break the host or the machine).
const FORBIDDEN_PRIVATE: &[&str] = &[
    "/",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/usr",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/etc",
    "/var",
    "/proc",
    "/sys",
    "/dev",
    "/root",
    "/home",
];

/// Configures a [`Lab`]; obtained from [`Lab::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct LabBuilder {
    tag: String,
    hosts: Vec<String>,
    private_dirs: Vec<PathBuf>,
    sshd: bool,
    default_stand_ins: bool,
    base_dir: PathBuf,
    subnet: Option<Ipv4Net>,
    pool: Option<Ipv4Net>,
    fresh: bool,
    programs: Vec<(String, PathBuf)>,
    /// Host name -> the last octet it was given with [`LabBuilder::host_at`].
    octets: BTreeMap<String, u8>,
}

impl LabBuilder {
    /// Adds hosts, in order: the first gets `.11`, the next `.12`, and so on.
    /// Names: 1-32 characters of `[a-z0-9-]`, starting with a letter or digit, unique.
    pub fn hosts<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hosts.extend(names.into_iter().map(Into::into));
        self
    }

    /// Adds one host (see [`LabBuilder::hosts`]).
    pub fn host(mut self, name: impl Into<String>) -> Self {
        self.hosts.push(name.into());
        self
    }

    /// Adds one host at a chosen last octet of the lab's /24 instead of the next free one
    /// (e.g. the address a topology planned for a VM; use it with [`LabBuilder::subnet`]).
    /// The octet must lie between [`FIRST_HOST_OCTET`] and the spare addresses
    /// ([`SPARE_FIRST_OCTET`]) and be used once.
    pub fn host_at(mut self, name: impl Into<String>, octet: u8) -> Self {
        let name = name.into();
        self.octets.insert(name.clone(), octet);
        self.hosts.push(name);
        self
    }

    /// Makes one more directory private to each host (in addition to the current list).
    pub fn private_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.private_dirs.push(dir.into());
        self
    }

    /// Replaces the list of private directories (default: [`DEFAULT_PRIVATE_DIRS`]). sshd
    /// needs `/run` private (or a real `/run/sshd`); stand-ins need `/usr/local/bin`.
    pub fn private_dirs<I, P>(mut self, dirs: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.private_dirs = dirs.into_iter().map(Into::into).collect();
        self
    }

    /// Builds the hosts without sshd (faster, when a test needs no SSH).
    pub fn without_sshd(mut self) -> Self {
        self.sshd = false;
        self
    }

    /// Leaves out the [`DEFAULT_STAND_INS`] (then a `sysctl -w vm.x=1` in a host changes the
    /// real machine).
    pub fn without_default_stand_ins(mut self) -> Self {
        self.default_stand_ins = false;
        self
    }

    /// Makes every host look like a VM freshly built from a Debian 12 cloud image (see
    /// [`crate::fresh`]): a copy-on-write `/etc` per host whose `/etc/passwd`, `/etc/group`,
    /// `/etc/shadow`, `/etc/gshadow` lack the packages' users and groups (real `useradd`
    /// works per host), an empty private `/run`, and stand-ins for `apt-get`/`apt`
    /// (installs only packages whose programs exist here, running what their maintainer
    /// scripts do), `dpkg-query`/`dpkg`, and `systemctl` (really runs haproxy, keepalived,
    /// vault/openbao and units with `ExecStart=` in the host). Needs `/run` and
    /// `/usr/local/bin` among the private directories (the default).
    pub fn fresh_hosts(mut self) -> Self {
        self.fresh = true;
        self
    }

    /// Tells fresh hosts' `apt-get` where a package's program is on this machine when it is
    /// not at its Debian path or on `PATH`: `program` is the Debian path or the bare name
    /// (`"/usr/bin/bao"` or `"bao"`), e.g. `.program("vault", "/opt/bao/bin/bao")` to install
    /// `vault` as OpenBao. Installing links it into the host's `/usr/local/bin`.
    pub fn program(mut self, program: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.programs.push((program.into(), path.into()));
        self
    }

    /// Uses this /24 instead of a free one from [`DEFAULT_POOL`]; the build fails if another
    /// lab or a local route uses it.
    pub fn subnet(mut self, subnet: Ipv4Net) -> Self {
        self.subnet = Some(subnet);
        self
    }

    /// Takes the lab's /24 from `pool` instead of [`POOL_ENV`] or [`DEFAULT_POOL`] (for machines
    /// whose own network uses 10.88.0.0/16).
    pub fn pool(mut self, pool: Ipv4Net) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Puts the lab's working directory under `dir` (default [`DEFAULT_BASE_DIR`]). It must
    /// not be inside a private directory.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    fn validate(&self) -> Result<Vec<PathBuf>> {
        let bad = |field, reason: String| Err(Error::InvalidConfig { field, reason });
        if self.tag.is_empty()
            || self.tag.len() > 12
            || !self
                .tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return bad(
                "tag",
                format!("{:?} must be 1-12 characters of [a-z0-9]", self.tag),
            );
        }
        if self.hosts.is_empty() {
            return bad("hosts", "a lab needs at least one host".into());
        }
        // Hosts take .11 to .199; .200 and up stay free for VIPs (`spare_addr`).
        let max = usize::from(SPARE_FIRST_OCTET - FIRST_HOST_OCTET);
        if self.hosts.len() > max {
            return bad(
                "hosts",
                format!("at most {max} hosts fit below the spare addresses"),
            );
        }
        let mut seen = HashSet::new();
        for h in &self.hosts {
            let ok = !h.is_empty()
                && h.len() <= 32
                && !h.starts_with('-')
                && h.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return bad(
                    "hosts",
                    format!("{h:?} must be 1-32 characters of [a-z0-9-]"),
                );
            }
            if h == "sw" {
                return bad("hosts", "\"sw\" is reserved for the lab's switch".into());
            }
            if !seen.insert(h) {
                return bad("hosts", format!("{h:?} appears twice"));
            }
        }
        let mut taken = BTreeMap::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let octet = self.octets.get(h).copied().unwrap_or_else(|| {
                FIRST_HOST_OCTET.saturating_add(u8::try_from(i).unwrap_or(u8::MAX))
            });
            if !(FIRST_HOST_OCTET..SPARE_FIRST_OCTET).contains(&octet) {
                return bad(
                    "host_at",
                    format!(
                        "{h}: .{octet} is outside .{FIRST_HOST_OCTET}-.{}",
                        SPARE_FIRST_OCTET - 1
                    ),
                );
            }
            if let Some(other) = taken.insert(octet, h) {
                return bad("host_at", format!("{h} and {other} both want .{octet}"));
            }
        }
        if self.fresh {
            for need in ["/run", "/usr/local/bin"] {
                if !self.private_dirs.iter().any(|d| d == Path::new(need)) {
                    return bad(
                        "fresh_hosts",
                        format!("fresh hosts need {need} among the private directories"),
                    );
                }
            }
            for (program, path) in &self.programs {
                if !path.is_file() {
                    return bad(
                        "program",
                        format!("{program}: {} is not a file", path.display()),
                    );
                }
            }
        }
        if let Some(net) = self.subnet
            && net.prefix_len() != 24
        {
            return bad("subnet", format!("{net} must be a /24"));
        }
        if !self.base_dir.is_absolute() {
            return bad(
                "base_dir",
                format!("{} must be absolute", self.base_dir.display()),
            );
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        for d in &self.private_dirs {
            let normal = d.is_absolute()
                && d.components()
                    .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
            if !normal {
                return bad(
                    "private_dir",
                    format!("{} must be an absolute path without `..`", d.display()),
                );
            }
            if d.exists() && !d.is_dir() {
                return bad(
                    "private_dir",
                    format!("{} exists and is not a directory", d.display()),
                );
            }
            if FORBIDDEN_PRIVATE.iter().any(|f| Path::new(f) == d) {
                return bad(
                    "private_dir",
                    format!("{} cannot be private (hosts need it)", d.display()),
                );
            }
            if self.base_dir.starts_with(d) {
                return bad(
                    "private_dir",
                    format!(
                        "{} would hide the lab's own directory {}",
                        d.display(),
                        self.base_dir.display()
                    ),
                );
            }
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        // Parents before children, so nested private dirs mount in order.
        dirs.sort_by_key(|d| d.components().count());
        Ok(dirs)
    }

    /// Builds the lab: namespaces, bridge, addresses, private directories, stand-in plumbing,
    /// keys, known_hosts and a listening sshd per host. Removes stale labs of dead processes
    /// first. On failure everything built so far is torn down.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when not root, [`Error::InvalidConfig`] for bad settings,
    /// [`Error::NoFreeSubnet`], and [`Error::Command`] / [`Error::Spawn`] /
    /// [`Error::NotReady`] naming the host and step that failed.
    pub fn build(self) -> Result<Lab> {
        let private_dirs: Arc<[PathBuf]> = self.validate()?.into();
        if util::effective_uid() != Some(0) {
            return Err(Error::Unsupported {
                reason: "building a lab needs root (network namespaces)".into(),
            });
        }
        let pool = match self.pool {
            Some(pool) => pool,
            None => {
                let text = std::env::var(POOL_ENV).unwrap_or_else(|_| DEFAULT_POOL.to_owned());
                text.trim().parse().map_err(|_| Error::InvalidConfig {
                    field: "pool",
                    reason: format!("{POOL_ENV}={text:?} is not an IPv4 network"),
                })?
            }
        };
        if pool.prefix_len() > 24 {
            return Err(Error::InvalidConfig {
                field: "pool",
                reason: format!("{pool} holds no /24"),
            });
        }
        let res = registry::reserve(&self.tag, pool, self.subnet, &self.base_dir)?;
        let lab = Lab::new(&self, res, private_dirs);
        lab.construct(self.sshd, self.fresh)?;
        // Stand-ins need a private /usr/local/bin; without one there are none.
        if self.default_stand_ins
            && lab.hosts.first().is_some_and(|h| {
                h.private_dirs
                    .iter()
                    .any(|d| d == Path::new("/usr/local/bin"))
            })
        {
            lab.record_only(DEFAULT_STAND_INS)?;
        }
        if self.fresh {
            let shared = crate::fresh::shared_prelude(&self.programs);
            per_host(&lab.hosts, |h| {
                for (cmd, script) in crate::fresh::stand_ins(&h.dir, &shared) {
                    h.stand_in(cmd, &script)?;
                }
                Ok(())
            })?;
        }
        Ok(lab)
    }
}

/// A running lab: hosts on one bridge, reachable from the test process. Dropping it tears
/// everything down (processes, namespaces, veths, directories), also when a test panics.
#[derive(Debug)]
pub struct Lab {
    tag: String,
    res: Reservation,
    gateway: Ipv4Addr,
    switch_ns: String,
    hosts: Vec<Host>,
    client_key: PathBuf,
    known_hosts: PathBuf,
    torn_down: AtomicBool,
}

impl Lab {
    /// Starts configuring a lab. `tag` (1-12 characters of `[a-z0-9]`) names it in namespace
    /// names (`hk<id>-<host>`) and messages; use the test's area, e.g. `"hapx"`.
    pub fn builder(tag: &str) -> LabBuilder {
        LabBuilder {
            tag: tag.to_owned(),
            hosts: Vec::new(),
            private_dirs: DEFAULT_PRIVATE_DIRS.iter().map(PathBuf::from).collect(),
            sshd: true,
            default_stand_ins: true,
            base_dir: PathBuf::from(DEFAULT_BASE_DIR),
            subnet: None,
            pool: None,
            fresh: false,
            programs: Vec::new(),
            octets: BTreeMap::new(),
        }
    }

    fn new(b: &LabBuilder, res: Reservation, private_dirs: Arc<[PathBuf]>) -> Self {
        let net = res.subnet;
        let base = u32::from(net.network());
        let gateway = Ipv4Addr::from(base + 1);
        let client_key = res.dir.join("client").join("id_ed25519");
        let known_hosts = res.dir.join("client").join("known_hosts");
        let hosts = b
            .hosts
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let octet = b.octets.get(name).map_or_else(
                    || u32::from(FIRST_HOST_OCTET) + u32::try_from(i).unwrap_or(0),
                    |o| u32::from(*o),
                );
                Host {
                    name: name.clone(),
                    addr: Ipv4Addr::from(base + octet),
                    gateway,
                    prefix_len: net.prefix_len(),
                    netns: format!("{}-{name}", res.prefix),
                    port: format!("p{i}"),
                    dir: res.dir.join("hosts").join(name),
                    private_dirs: Arc::clone(&private_dirs),
                    client_key: client_key.clone(),
                    known_hosts: known_hosts.clone(),
                    init_pid: AtomicU32::new(0),
                    anchor: Mutex::new(None),
                    daemons: Mutex::new(BTreeMap::new()),
                    removed: AtomicBool::new(false),
                    host_public_key: Mutex::new(String::new()),
                    cgroup: Mutex::new(None),
                    fresh: b.fresh,
                }
            })
            .collect();
        Self {
            tag: b.tag.clone(),
            switch_ns: format!("{}-sw", res.prefix),
            gateway,
            hosts,
            client_key,
            known_hosts,
            res,
            torn_down: AtomicBool::new(false),
        }
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            host: "lab".into(),
            path: path.to_owned(),
            source,
        }
    }

    fn construct(&self, sshd: bool, fresh: bool) -> Result<()> {
        // HAKUBE_LAB_TRACE=1 prints how long each build phase took.
        let trace = std::env::var(TRACE_ENV).as_deref() == Ok("1");
        let start = Instant::now();
        let phase = |what: &str| {
            if trace {
                eprintln!("hakube-lab {}: {what} at {:?}", self.tag, start.elapsed());
            }
        };
        self.make_dirs()?;
        if fresh {
            self.make_fresh_etc()?;
        }
        phase("directories");
        // Key generation runs while the network is set up.
        let keygens = if sshd {
            self.start_keygen()?
        } else {
            Vec::new()
        };
        self.make_network()?;
        phase("network");
        self.start_anchors()?;
        phase("namespaces");
        self.mount_private_dirs()?;
        phase("mounts");
        if sshd {
            wait_all(keygens)?;
            phase("keys");
            self.start_sshd()?;
            phase("sshd listening");
        }
        Ok(())
    }

    fn make_dirs(&self) -> Result<()> {
        let mk = |p: &Path| fs::create_dir_all(p).map_err(Self::io(p));
        mk(&self.res.dir.join("client"))?;
        let etc_hosts = self.etc_hosts();
        // One thread per host: this is latency-bound file system work.
        per_host(&self.hosts, |h| {
            for sub in ["logs", "sshd", "calls", "stand-ins"] {
                mk(&h.dir.join(sub))?;
            }
            for d in h.private_dirs.iter() {
                let backing = h.dir.join("root").join(d.strip_prefix("/").unwrap_or(d));
                mk(&backing)?;
                let mode = match d.to_str() {
                    Some("/tmp" | "/var/tmp") => 0o1777,
                    Some("/root/.ssh") => 0o700,
                    _ => 0o755,
                };
                fs::set_permissions(&backing, fs::Permissions::from_mode(mode))
                    .map_err(Self::io(&backing))?;
            }
            if h.private_dirs.iter().any(|d| d == Path::new("/run")) {
                mk(&h.dir.join("root/run/sshd"))?;
            }
            for f in PRIVATE_FILES {
                let content = match *f {
                    "/etc/hosts" => etc_hosts.clone(),
                    "/etc/resolv.conf" => {
                        "# hakube-lab: no DNS inside the lab, lookups fail fast\n\
                         nameserver 127.0.0.1\n"
                            .to_owned()
                    }
                    _ => "# hakube-lab: a clean shell startup file\n".to_owned(),
                };
                let backing = h.dir.join("root").join(f.trim_start_matches('/'));
                if let Some(parent) = backing.parent() {
                    mk(parent)?;
                }
                fs::write(&backing, content).map_err(Self::io(&backing))?;
            }
            Ok(())
        })?;
        // Mount points must exist in the real file system: an empty directory is created where
        // one is missing (e.g. /etc/kubernetes on a machine without Kubernetes). Nothing else
        // in the real file system is touched.
        if let Some(h) = self.hosts.first() {
            for d in h.private_dirs.iter() {
                if !d.is_dir() {
                    mk(d)?;
                }
            }
            if !h.private_dirs.iter().any(|d| d == Path::new("/run")) {
                mk(Path::new("/run/sshd"))?;
            }
        }
        Ok(())
    }

    /// The upper layer of each fresh host's `/etc`: the account databases without the
    /// packages' users and groups, with the machine's modes and owners.
    fn make_fresh_etc(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        let read = |p: &str| -> Result<(String, fs::Metadata)> {
            let path = Path::new(p);
            let text = fs::read_to_string(path).map_err(Self::io(path))?;
            let meta = fs::metadata(path).map_err(Self::io(path))?;
            Ok((text, meta))
        };
        let (passwd, passwd_m) = read("/etc/passwd")?;
        let (group, group_m) = read("/etc/group")?;
        let (passwd, users) = crate::fresh::filter_db(&passwd, crate::fresh::BASE_USERS, None);
        let (group, groups) = crate::fresh::filter_db(&group, crate::fresh::BASE_GROUPS, None);
        let group = crate::fresh::prune_members(&group, &users);
        let mut files = vec![
            ("etc/passwd", passwd, passwd_m),
            ("etc/group", group, group_m),
        ];
        for (path, keep) in [("/etc/shadow", &users), ("/etc/gshadow", &groups)] {
            if Path::new(path).exists() {
                let (text, meta) = read(path)?;
                let (mut text, _) = crate::fresh::filter_db(&text, &[], Some(keep));
                if path == "/etc/gshadow" {
                    text = crate::fresh::prune_members(&text, &users);
                }
                files.push((&path[1..], text, meta));
            }
        }
        per_host(&self.hosts, |h| {
            let upper = h.dir.join("etc-upper");
            let mk = |p: &Path| fs::create_dir_all(p).map_err(Self::io(p));
            mk(&upper)?;
            mk(&h.dir.join("etc-work"))?;
            for (rel, text, meta) in &files {
                let path = upper.join(rel.trim_start_matches("etc/"));
                fs::write(&path, text).map_err(Self::io(&path))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode() & 0o7777))
                    .map_err(Self::io(&path))?;
                std::os::unix::fs::chown(&path, Some(meta.uid()), Some(meta.gid()))
                    .map_err(Self::io(&path))?;
            }
            Ok(())
        })
    }

    fn etc_hosts(&self) -> String {
        let mut s = String::from(
            "# hakube-lab hosts\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        );
        s.push_str(&format!("{}\tlab-gateway\n", self.gateway));
        for h in &self.hosts {
            s.push_str(&format!("{}\t{}\n", h.addr, h.name));
        }
        s
    }

    fn start_keygen(&self) -> Result<Vec<Pending>> {
        let mut jobs = Vec::new();
        let mut keygen = |host: &str, path: &Path, comment: &str| -> Result<()> {
            let mut cmd = Command::new("ssh-keygen");
            cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(path);
            jobs.push(Pending::spawn(host, cmd)?);
            Ok(())
        };
        keygen("lab", &self.client_key, "hakube-lab-client")?;
        for h in &self.hosts {
            keygen(&h.name, &h.dir.join("sshd/ssh_host_ed25519_key"), &h.name)?;
        }
        Ok(jobs)
    }

    fn make_network(&self) -> Result<()> {
        let p = &self.res.prefix;
        let sw = &self.switch_ns;
        let mut lines = vec![format!("netns add {sw}")];
        lines.extend(self.hosts.iter().map(|h| format!("netns add {}", h.netns)));
        {
            // Under the lab lock: the first `ip netns add` on a machine sets up the /run/netns
            // mount, which races when two labs do it at once.
            let _lock = registry::lock()?;
            util::ip_batch("lab", None, &lines)?;
        }

        util::ip_batch(
            "lab",
            None,
            &[
                format!("link add {p} type veth peer name gw netns {sw}"),
                format!(
                    "addr add {}/{} dev {p}",
                    self.gateway,
                    self.res.subnet.prefix_len()
                ),
                format!("link set {p} up"),
            ],
        )?;

        let mut lines = vec![
            "link add br0 type bridge".to_owned(),
            "link set br0 up".to_owned(),
            "link set gw master br0".to_owned(),
            "link set gw up".to_owned(),
        ];
        for (i, h) in self.hosts.iter().enumerate() {
            let p = &h.port;
            debug_assert_eq!(*p, format!("p{i}"));
            lines.push(format!(
                "link add {p} type veth peer name eth0 netns {}",
                h.netns
            ));
            lines.push(format!("link set {p} master br0"));
            lines.push(format!("link set {p} up"));
        }
        util::ip_batch("lab", Some(sw), &lines)?;

        std::thread::scope(|s| {
            let jobs: Vec<_> = self
                .hosts
                .iter()
                .map(|h| {
                    s.spawn(move || {
                        util::ip_batch(
                            &h.name,
                            Some(&h.netns),
                            &[
                                "link set lo up".to_owned(),
                                format!("addr add {}/{} dev eth0", h.addr, h.prefix_len),
                                "link set eth0 up".to_owned(),
                                format!("route add default via {}", h.gateway),
                            ],
                        )
                    })
                })
                .collect();
            jobs.into_iter().try_for_each(|j| {
                j.join().unwrap_or_else(|_| {
                    Err(Error::Command {
                        host: "lab".into(),
                        command: "ip -batch (host addresses)".into(),
                        status: "panicked".into(),
                        stderr: String::new(),
                    })
                })
            })
        })
    }

    fn start_anchors(&self) -> Result<()> {
        for h in &self.hosts {
            let log = h.dir.join("logs").join("init.log");
            let file = fs::File::create(&log).map_err(Self::io(&log))?;
            let file2 = file.try_clone().map_err(Self::io(&log))?;
            let mut cmd = Command::new("ip");
            cmd.args([
                "netns",
                "exec",
                &h.netns,
                "unshare",
                "--mount",
                "--propagation",
            ])
            .args(["private", "--uts", "--pid", "--fork", "--mount-proc", "--"])
            // PID 1 of the host: reaps orphans (daemons that fork), never exits on its own.
            .args(["perl", "-e", "while (1) { sleep 1 if waitpid(-1, 0) < 0 }"])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file2);
            let child = cmd.spawn().map_err(|source| Error::Spawn {
                host: h.name.clone(),
                command: util::describe(&cmd),
                source,
            })?;
            *h.anchor
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(child);
        }
        let start = Instant::now();
        for h in &self.hosts {
            let unshare_pid = h
                .anchor
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
                .map_or(0, Child::id);
            loop {
                // unshare --fork: its only child is the host's PID 1.
                if let Some(&pid) = util::children_of(unshare_pid).first() {
                    // Wait until the child has left unshare for perl (namespaces complete).
                    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                    if exe
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("perl"))
                    {
                        h.init_pid.store(pid, Ordering::SeqCst);
                        break;
                    }
                }
                if start.elapsed() > READY_TIMEOUT {
                    return Err(Error::NotReady {
                        host: h.name.clone(),
                        what: "namespace init process".into(),
                        waited: READY_TIMEOUT,
                        detail: h.log("init"),
                    });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    }

    fn mount_private_dirs(&self) -> Result<()> {
        let mut jobs = Vec::new();
        // A test's working tree under a private directory (a checkout in /tmp, say) must stay
        // visible in the hosts, since tests run scripts from it: stash it before the private
        // mounts hide it, then bind it back at the same path.
        let cwd = std::env::current_dir().ok();
        for h in &self.hosts {
            let mut script = String::from("set -e\n");
            let keep = cwd
                .as_deref()
                .and_then(|cwd| kept_tree(cwd, &h.private_dirs));
            let stash = h.dir.join("keep");
            if let Some(top) = &keep {
                fs::create_dir_all(&stash).map_err(Self::io(&stash))?;
                script.push_str(&format!(
                    "mount --bind {} {}\n",
                    util::sh_quote(&top.to_string_lossy()),
                    util::sh_quote(&stash.to_string_lossy())
                ));
            }
            if h.fresh {
                // Copy-on-write /etc: first, so the private directories under it bind on top.
                script.push_str(&format!(
                    "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc\n",
                    util::sh_quote(&h.dir.join("etc-upper").to_string_lossy()),
                    util::sh_quote(&h.dir.join("etc-work").to_string_lossy())
                ));
            }
            for d in h.private_dirs.iter() {
                let backing = h.dir.join("root").join(d.strip_prefix("/").unwrap_or(d));
                script.push_str(&format!(
                    "mount --bind {} {}\n",
                    util::sh_quote(&backing.to_string_lossy()),
                    util::sh_quote(&d.to_string_lossy())
                ));
            }
            for f in PRIVATE_FILES {
                let backing = h.dir.join("root").join(f.trim_start_matches('/'));
                if h.fresh && f.starts_with("/etc/") {
                    // Into the host's own /etc (the overlay), as a plain file: replacing it by
                    // rename (what every atomic writer does) works, as on a VM; a bind-mounted
                    // file would refuse that with EBUSY.
                    script.push_str(&format!(
                        "cat {} > {f}\n",
                        util::sh_quote(&backing.to_string_lossy())
                    ));
                } else if Path::new(f).is_file() {
                    script.push_str(&format!(
                        "mount --bind {} {f}\n",
                        util::sh_quote(&backing.to_string_lossy())
                    ));
                }
            }
            if let Some(top) = &keep {
                let top = util::sh_quote(&top.to_string_lossy());
                script.push_str(&format!(
                    "mkdir -p {top}\nmount --bind {} {top}\n",
                    util::sh_quote(&stash.to_string_lossy())
                ));
            }
            script.push_str(&format!("hostname {}\n", h.name));
            let mut cmd = Command::new("nsenter");
            cmd.arg("--target")
                .arg(h.init_pid().to_string())
                .args(["--mount", "--uts", "--", "sh", "-c", &script]);
            jobs.push(Pending::spawn(&h.name, cmd)?);
        }
        wait_all(jobs)
    }

    fn start_sshd(&self) -> Result<()> {
        let client_pub = self.client_key.with_extension("pub");
        let client_pub = fs::read_to_string(&client_pub).map_err(Self::io(&client_pub))?;
        let sftp = Path::new("/usr/lib/openssh/sftp-server");
        for h in &self.hosts {
            let sshd = h.dir.join("sshd");
            let auth = sshd.join("authorized_keys");
            fs::write(&auth, &client_pub).map_err(Self::io(&auth))?;
            h.load_host_public_key()?;
            let mut cfg = format!(
                "# sshd for lab host {name}, written by hakube-lab\n\
                 Port 22\n\
                 ListenAddress {addr}\n\
                 HostKey {key}\n\
                 PidFile {pid}\n\
                 AuthorizedKeysFile .ssh/authorized_keys {auth}\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 UseDNS no\n\
                 PrintMotd no\n\
                 PrintLastLog no\n\
                 MaxStartups 200\n\
                 MaxSessions 200\n\
                 AcceptEnv LANG LC_*\n\
                 SetEnv PATH={path}\n",
                name = h.name,
                addr = h.addr,
                key = sshd.join("ssh_host_ed25519_key").display(),
                pid = sshd.join("sshd.pid").display(),
                auth = auth.display(),
                path = util::PATH,
            );
            if sftp.exists() {
                cfg.push_str(&format!("Subsystem sftp {}\n", sftp.display()));
            }
            let cfg_path = sshd.join("sshd_config");
            fs::write(&cfg_path, cfg).map_err(Self::io(&cfg_path))?;
        }
        self.refresh_known_hosts()?;
        self.write_ssh_config()?;
        for h in &self.hosts {
            h.spawn_sshd()?;
        }
        for h in &self.hosts {
            h.wait_for_sshd()?;
        }
        Ok(())
    }

    fn write_ssh_config(&self) -> Result<()> {
        let mut cfg =
            String::from("# ssh_config for a hakube lab: `ssh -F THIS_FILE <host name>`\n");
        for h in &self.hosts {
            cfg.push_str(&format!(
                "Host {name} {addr}\n  HostName {addr}\n  User root\n  IdentityFile {key}\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  \
                 StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n  LogLevel ERROR\n",
                name = h.name,
                addr = h.addr,
                key = self.client_key.display(),
                kh = self.known_hosts.display(),
            ));
        }
        let path = self.ssh_config_file();
        fs::write(&path, cfg).map_err(Self::io(&path))
    }

    /// Rewrites [`Lab::known_hosts_file`] from the hosts' current keys (after
    /// [`Host::rotate_ssh_host_key`], when the test wants the new key trusted).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn refresh_known_hosts(&self) -> Result<()> {
        let mut known = String::new();
        for h in self.hosts.iter().filter(|h| !h.is_removed()) {
            let pubkey = h.ssh_host_public_key();
            let mut parts = pubkey.split_whitespace();
            if let (Some(kind), Some(key)) = (parts.next(), parts.next()) {
                known.push_str(&format!("{},{} {kind} {key}\n", h.name, h.addr));
            }
        }
        fs::write(&self.known_hosts, known).map_err(Self::io(&self.known_hosts))
    }

    /// An `ssh_config` naming every host (`ssh -F <this> lb1` logs in as root with the lab's
    /// key and known_hosts, strict checking, batch mode).
    #[must_use]
    pub fn ssh_config_file(&self) -> PathBuf {
        self.res.dir.join("client").join("ssh_config")
    }

    /// The lab's tag, as given to [`Lab::builder`].
    #[must_use]
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The lab's unique name prefix (`hk` and five hex digits): namespaces are
    /// `<prefix>-<host>` and `<prefix>-sw`, the test process's veth is `<prefix>`.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.res.prefix
    }

    /// The lab's /24.
    #[must_use]
    pub fn subnet(&self) -> Ipv4Net {
        self.res.subnet
    }

    /// The test process's own address on the lab bridge (`.1`); hosts' default route.
    #[must_use]
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// A free address in the lab's subnet that no host uses, e.g. for a VIP: `.200 + n`.
    /// Returns `None` for `n >= 50`.
    #[must_use]
    pub fn spare_addr(&self, n: u8) -> Option<Ipv4Addr> {
        (n < 50).then(|| {
            Ipv4Addr::from(
                u32::from(self.res.subnet.network()) + u32::from(SPARE_FIRST_OCTET) + u32::from(n),
            )
        })
    }

    /// The lab's working directory (keys, logs, the hosts' backing directories).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.res.dir
    }

    /// The host named `name`.
    ///
    /// # Panics
    /// When the lab has no such host (a bug in the test); see [`Lab::try_host`].
    #[must_use]
    pub fn host(&self, name: &str) -> &Host {
        match self.try_host(name) {
            Some(h) => h,
            None => panic!("lab {}: no host named {name:?}", self.tag),
        }
    }

    /// The host named `name`, if the lab has one (removed hosts included).
    #[must_use]
    pub fn try_host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// All hosts, in the order given to the builder (removed hosts included).
    #[must_use]
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The client private key (ed25519, no passphrase) every host's root accepts.
    #[must_use]
    pub fn ssh_private_key(&self) -> &Path {
        &self.client_key
    }

    /// The client public key file (`.pub` next to [`Lab::ssh_private_key`]).
    #[must_use]
    pub fn ssh_public_key(&self) -> PathBuf {
        self.client_key.with_extension("pub")
    }

    /// A known_hosts file with every host's key, under both its name and its address.
    #[must_use]
    pub fn known_hosts_file(&self) -> &Path {
        &self.known_hosts
    }

    /// Installs stand-in `cmd` on every live host (see [`Host::stand_in`]).
    ///
    /// # Errors
    /// As [`Host::stand_in`].
    pub fn stand_in(&self, cmd: &str, script: &str) -> Result<()> {
        per_host(&self.hosts, |h| {
            if h.is_removed() {
                Ok(())
            } else {
                h.stand_in(cmd, script)
            }
        })
    }

    /// Installs recording stand-ins that succeed and do nothing, on every live host: for
    /// commands that cannot run in a lab, e.g. `["systemctl", "apt-get", "modprobe"]`.
    ///
    /// # Errors
    /// As [`Host::stand_in`].
    pub fn record_only<I, S>(&self, cmds: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let cmds: Vec<String> = cmds.into_iter().map(|c| c.as_ref().to_owned()).collect();
        per_host(&self.hosts, |h| {
            if h.is_removed() {
                return Ok(());
            }
            cmds.iter()
                .try_for_each(|c| h.stand_in(c, "#!/bin/sh\nexit 0\n"))
        })
    }

    /// Removes host `name` as if it lost power: kills all its processes and deletes its
    /// namespaces (its address stops answering). Its files stay readable until teardown.
    ///
    /// # Errors
    /// [`Error::UnknownHost`], [`Error::HostRemoved`] when already removed.
    pub fn remove_host(&self, name: &str) -> Result<()> {
        let h = self.try_host(name).ok_or_else(|| Error::UnknownHost {
            host: name.to_owned(),
        })?;
        if h.removed.swap(true, Ordering::SeqCst) {
            return Err(Error::HostRemoved {
                host: name.to_owned(),
            });
        }
        destroy_hosts(&self.switch_ns, &[h], true);
        Ok(())
    }

    /// Tears the lab down now (what `Drop` does): kills every process started in it, deletes
    /// its namespaces and veth, removes its directory and its registry record.
    pub fn teardown(self) {
        drop(self);
    }

    fn teardown_inner(&self) {
        if self.torn_down.swap(true, Ordering::SeqCst) {
            return;
        }
        // The root veth first: deleting links waits for the kernel's asynchronous cleanup of
        // deleted namespaces, so it is fastest before any namespace goes.
        util::delete_root_link(&self.res.prefix);
        let live: Vec<&Host> = self
            .hosts
            .iter()
            .filter(|h| !h.removed.swap(true, Ordering::SeqCst))
            .collect();
        destroy_hosts(&self.switch_ns, &live, false);
        util::destroy_netns(&self.switch_ns);
        let _ = fs::remove_dir_all(&self.res.dir);
        let ns_prefix = format!("{}-", self.res.prefix);
        let left: Vec<String> = util::netns_list()
            .into_iter()
            .filter(|n| n.starts_with(&ns_prefix))
            .collect();
        if left.is_empty() {
            registry::release(&self.res);
        } else {
            // Keep the record: the next build's stale-lab cleanup retries.
            eprintln!(
                "hakube-lab {}: teardown left namespaces {left:?}; the next lab build retries",
                self.tag
            );
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown_inner();
    }
}

/// Kills everything of the given hosts and deletes their network namespaces, with a handful of
/// commands for all of them together. With `unplug`, their cables are pulled first, so they
/// vanish from the network at once (host loss); a full teardown skips that. Best effort,
/// idempotent.
fn destroy_hosts(switch_ns: &str, hosts: &[&Host], unplug: bool) {
    if hosts.is_empty() {
        return;
    }
    if unplug {
        // Deleting a veth is synchronous, while a deleted namespace's interfaces linger until
        // the kernel's asynchronous cleanup runs.
        let lines: Vec<String> = hosts
            .iter()
            .map(|h| format!("link del {}", h.port))
            .collect();
        util::ip_batch_force(Some(switch_ns), &lines);
    }

    // SIGKILL to each host's PID 1: the kernel kills every process in its PID namespace.
    let inits: Vec<u32> = hosts
        .iter()
        .map(|h| h.init_pid())
        .filter(|&p| p != 0)
        .collect();
    util::signal_pids(&inits, "KILL");

    // The daemons' nsenter parents (outside the PID namespace) reap their dead children and
    // exit; reaping them here keeps orphans away from the machine's init, which may be slow.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut daemons: Vec<Child> = Vec::new();
    for h in hosts {
        let map = std::mem::take(
            &mut *h
                .daemons
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        daemons.extend(map.into_values());
    }
    let mut stuck: Vec<String> = Vec::new();
    for child in &mut daemons {
        if !util::wait_timeout(child, deadline.saturating_duration_since(Instant::now())) {
            stuck.push(format!("-{}", child.id()));
        }
    }
    util::signal_targets(&stuck, "KILL");
    for mut child in daemons {
        let _ = child.wait();
    }

    // unshare reaps the host's PID 1 and exits; force it after the deadline.
    for h in hosts {
        let anchor = h
            .anchor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut anchor) = anchor
            && !util::wait_timeout(
                &mut anchor,
                deadline.saturating_duration_since(Instant::now()),
            )
        {
            let _ = anchor.kill();
            let _ = anchor.wait();
        }
    }
    // Anything else that entered the network namespaces (ip netns exec, a test's nsenter).
    let names: Vec<&str> = hosts.iter().map(|h| h.netns.as_str()).collect();
    util::destroy_netns_all(&names);
    // CPU-limited hosts' cgroups (empty now that every process is gone).
    let limited: Vec<&str> = hosts
        .iter()
        .filter(|h| {
            h.cgroup
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .is_some()
        })
        .map(|h| h.netns.as_str())
        .collect();
    crate::cgroup::remove(&limited, Duration::from_secs(2));
}

/// Runs `f` for every host, one thread each; the first error wins.
fn per_host<F>(hosts: &[Host], f: F) -> Result<()>
where
    F: Fn(&Host) -> Result<()> + Sync,
{
    std::thread::scope(|s| {
        let jobs: Vec<_> = hosts.iter().map(|h| s.spawn(|| f(h))).collect();
        jobs.into_iter().try_for_each(|j| {
            j.join().unwrap_or_else(|_| {
                Err(Error::InvalidConfig {
                    field: "lab",
                    reason: "a lab worker thread panicked".into(),
                })
            })
        })
    })
}

/// A started helper process whose success is checked later.
struct Pending {
    host: String,
    command: String,
    child: Child,
}

impl Pending {
    fn spawn(host: &str, mut cmd: Command) -> Result<Self> {
        let command = util::describe(&cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            host: host.to_owned(),
            command: command.clone(),
            source,
        })?;
        Ok(Self {
            host: host.to_owned(),
            command,
            child,
        })
    }
}

fn wait_all(jobs: Vec<Pending>) -> Result<()> {
    let mut first_err = None;
    for job in jobs {
        let result = job
            .child
            .wait_with_output()
            .map_err(|source| Error::Spawn {
                host: job.host.clone(),
                command: job.command.clone(),
                source,
            })
            .and_then(|out| util::check(&job.host, &job.command, out));
        if let Err(e) = result {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The directory to keep visible in hosts when `cwd` lies under one of the private
/// directories: the first path component below that directory (`/tmp/ci-run` for
/// `/tmp/ci-run/crates/x`).
fn kept_tree(cwd: &Path, private: &[PathBuf]) -> Option<PathBuf> {
    private.iter().find_map(|d| {
        let rest = cwd.strip_prefix(d).ok()?;
        let first = rest.components().next()?;
        Some(d.join(first))
    })
}

#[cfg(test)]
mod kept_tree_tests {
    use super::*;

    #[test]
    fn a_checkout_under_a_private_dir_is_kept() {
        let private = [PathBuf::from("/run"), PathBuf::from("/tmp")];
        assert_eq!(
            kept_tree(Path::new("/tmp/ci-run/crates/x"), &private),
            Some(PathBuf::from("/tmp/ci-run"))
        );
        assert_eq!(kept_tree(Path::new("/work/main/crates/x"), &private), None);
        assert_eq!(kept_tree(Path::new("/tmp"), &private), None);
    }
}
