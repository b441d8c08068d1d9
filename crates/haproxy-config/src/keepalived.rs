//! A typed model of `keepalived.conf` for VRRP: `global_defs`, `vrrp_script` and
//! `vrrp_instance` (unicast peers, virtual addresses, `track_script`, `notify`), rendered
//! through [`Display`].
//!
//! There is deliberately no `authentication` block: VRRP `PASS` authentication is an 8-byte
//! cleartext string, ignored by VRRPv3, and no security boundary. Protect VRRP by keeping it
//! on a private segment (and allowing IP protocol 112 only from the peers).

use core::fmt::{self, Display};
use core::time::Duration;
use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::value::{AbsPath, Directive, Interface, KeepalivedSeconds, Name, Token, check_millis};

const INDENT: &str = "    ";

/// The VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VrrpVersion {
    /// VRRPv2 (RFC 3768): whole-second advertisement intervals; keepalived's default.
    V2,
    /// VRRPv3 (RFC 5798): centisecond advertisement intervals, so sub-second failover.
    V3,
}

/// The `global_defs` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalDefs {
    /// `router_id`: how this node names itself in logs (default: the host name).
    pub router_id: Option<Name>,
    /// `enable_script_security`: refuse scripts writable by non-root users. Required by
    /// [`KeepalivedConfigBuilder::build`] whenever a script or notify hook is configured.
    pub enable_script_security: bool,
    /// `script_user`: the user scripts run as (must exist on the host).
    pub script_user: Option<Name>,
    /// `vrrp_version`.
    pub vrrp_version: Option<VrrpVersion>,
    /// `max_auto_priority`: run the VRRP process with real-time scheduling, so a busy host
    /// does not delay adverts (matters with sub-second `advert_int`).
    pub max_auto_priority: bool,
    /// Further directives, rendered last.
    pub extra: Vec<Directive>,
}

impl Display for GlobalDefs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "global_defs {{")?;
        if let Some(id) = &self.router_id {
            writeln!(f, "{INDENT}router_id {id}")?;
        }
        if self.enable_script_security {
            writeln!(f, "{INDENT}enable_script_security")?;
        }
        if let Some(user) = &self.script_user {
            writeln!(f, "{INDENT}script_user {user}")?;
        }
        match self.vrrp_version {
            Some(VrrpVersion::V2) => writeln!(f, "{INDENT}vrrp_version 2")?,
            Some(VrrpVersion::V3) => writeln!(f, "{INDENT}vrrp_version 3")?,
            None => {}
        }
        if self.max_auto_priority {
            writeln!(f, "{INDENT}max_auto_priority")?;
        }
        for d in &self.extra {
            writeln!(f, "{INDENT}{d}")?;
        }
        writeln!(f, "}}")
    }
}

/// A script keepalived runs: an absolute path and its arguments, rendered in double quotes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScriptCommand {
    /// The executable.
    pub path: AbsPath,
    /// Its arguments.
    pub args: Vec<Token>,
}

impl ScriptCommand {
    /// A command without arguments.
    #[must_use]
    pub fn new(path: AbsPath) -> Self {
        Self {
            path,
            args: Vec::new(),
        }
    }
}

impl Display for ScriptCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}", self.path)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        f.write_str("\"")
    }
}

/// A `vrrp_script` block: a health check whose result an instance tracks.
///
/// Without a `weight`, a failing script puts every instance that tracks it into FAULT: the
/// node releases the VIP at once and stops competing. With a weight, the node's priority
/// moves by that amount instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VrrpScript {
    /// The script's name, referenced by `track_script`.
    pub name: Name,
    /// What to run; exit 0 means healthy.
    pub script: ScriptCommand,
    /// Time between runs (whole seconds, at least 1 s: keepalived's limit).
    pub interval: Duration,
    /// A run that takes longer counts as failed (whole seconds).
    pub timeout: Option<Duration>,
    /// Failed runs in a row before the script counts as failed.
    pub fall: Option<u32>,
    /// Passed runs in a row before it counts as healthy again.
    pub rise: Option<u32>,
    /// Priority adjustment (-253 to 253) instead of FAULT.
    pub weight: Option<i16>,
    /// Run as this user instead of `script_user`.
    pub user: Option<Name>,
}

impl VrrpScript {
    fn validate(&self) -> Result<()> {
        let label = format!("vrrp_script {}", self.name);
        for (field, d) in [("interval", Some(self.interval)), ("timeout", self.timeout)] {
            if let Some(d) = d
                && (d.as_secs() == 0 || d.subsec_nanos() != 0)
            {
                return Err(Error::invalid(
                    format!("{label}.{field}"),
                    format!("{d:?}"),
                    "keepalived takes whole seconds here, at least 1 s",
                ));
            }
        }
        for (field, n) in [("fall", self.fall), ("rise", self.rise)] {
            if n == Some(0) {
                return Err(Error::invalid(
                    format!("{label}.{field}"),
                    "0",
                    "must be at least 1",
                ));
            }
        }
        if let Some(w) = self.weight
            && !(-253..=253).contains(&w)
        {
            return Err(Error::invalid(
                format!("{label}.weight"),
                w.to_string(),
                "must be -253 to 253",
            ));
        }
        Ok(())
    }
}

impl Display for VrrpScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "vrrp_script {} {{", self.name)?;
        writeln!(f, "{INDENT}script {}", self.script)?;
        writeln!(f, "{INDENT}interval {}", KeepalivedSeconds(self.interval))?;
        if let Some(t) = self.timeout {
            writeln!(f, "{INDENT}timeout {}", KeepalivedSeconds(t))?;
        }
        if let Some(n) = self.fall {
            writeln!(f, "{INDENT}fall {n}")?;
        }
        if let Some(n) = self.rise {
            writeln!(f, "{INDENT}rise {n}")?;
        }
        if let Some(w) = self.weight {
            writeln!(f, "{INDENT}weight {w}")?;
        }
        if let Some(u) = &self.user {
            writeln!(f, "{INDENT}user {u}")?;
        }
        writeln!(f, "}}")
    }
}

/// A `track_file` block: a file holding a number that keepalived re-reads as soon as it is
/// written (inotify), so another program can take a node out at once. With `weight 0`, any
/// non-zero number puts every instance tracking it in FAULT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackFile {
    /// The name, referenced by an instance's `track_file` list.
    pub name: Name,
    /// The file.
    pub file: AbsPath,
    /// `weight`: 0 (non-zero = FAULT), or the factor the number is multiplied by (-254 to
    /// 254) and added to the priority.
    pub weight: i16,
    /// `init_file VALUE`: the value keepalived writes when the file does not exist at start
    /// (`None`: it leaves a missing file alone).
    pub init_value: Option<i32>,
}

impl TrackFile {
    fn validate(&self) -> Result<()> {
        if !(-254..=254).contains(&self.weight) {
            return Err(Error::invalid(
                format!("track_file {}.weight", self.name),
                self.weight.to_string(),
                "must be -254 to 254",
            ));
        }
        Ok(())
    }
}

impl Display for TrackFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "track_file {} {{", self.name)?;
        writeln!(f, "{INDENT}file \"{}\"", self.file)?;
        writeln!(f, "{INDENT}weight {}", self.weight)?;
        if let Some(v) = self.init_value {
            writeln!(f, "{INDENT}init_file {v}")?;
        }
        writeln!(f, "}}")
    }
}

/// The state an instance starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VrrpState {
    /// Claims the VIP at start (no election delay). Incompatible with `nopreempt`.
    Master,
    /// Waits for an election; the highest priority wins.
    Backup,
}

/// A virtual address: `ADDR/PREFIX [dev IFACE]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VirtualAddress {
    /// The address and its prefix length.
    pub addr: IpNet,
    /// The interface to add it to (default: the instance's interface).
    pub dev: Option<Interface>,
}

/// Which state change a notify hook runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotifyEvent {
    /// `notify`: every change, with `INSTANCE|GROUP NAME STATE PRIORITY` appended.
    Any,
    /// `notify_master`.
    Master,
    /// `notify_backup`.
    Backup,
    /// `notify_fault`.
    Fault,
    /// `notify_stop`.
    Stop,
}

impl Display for NotifyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Any => "notify",
            Self::Master => "notify_master",
            Self::Backup => "notify_backup",
            Self::Fault => "notify_fault",
            Self::Stop => "notify_stop",
        })
    }
}

/// A `vrrp_instance` block, validated by [`VrrpInstanceBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpInstance {
    name: Name,
    state: VrrpState,
    interface: Interface,
    virtual_router_id: u8,
    priority: u8,
    advert_interval: Duration,
    nopreempt: bool,
    preempt_delay: Option<Duration>,
    unicast_src_ip: Option<IpAddr>,
    unicast_peers: Vec<IpAddr>,
    virtual_addresses: Vec<VirtualAddress>,
    track_scripts: Vec<Name>,
    track_files: Vec<Name>,
    notify: Vec<(NotifyEvent, ScriptCommand)>,
    extra: Vec<Directive>,
}

impl VrrpInstance {
    /// Starts an instance.
    pub fn builder(name: impl Into<String>) -> VrrpInstanceBuilder {
        VrrpInstanceBuilder {
            name: name.into(),
            state: VrrpState::Backup,
            interface: None,
            virtual_router_id: None,
            priority: None,
            advert_interval: Duration::from_secs(1),
            nopreempt: false,
            preempt_delay: None,
            unicast_src_ip: None,
            unicast_peers: Vec::new(),
            virtual_addresses: Vec::new(),
            track_scripts: Vec::new(),
            track_files: Vec::new(),
            notify: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// The instance name.
    #[must_use]
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The priority (1 to 254).
    #[must_use]
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The virtual router id (1 to 255).
    #[must_use]
    pub fn virtual_router_id(&self) -> u8 {
        self.virtual_router_id
    }

    /// The advertisement interval.
    #[must_use]
    pub fn advert_interval(&self) -> Duration {
        self.advert_interval
    }

    /// The virtual addresses.
    #[must_use]
    pub fn virtual_addresses(&self) -> &[VirtualAddress] {
        &self.virtual_addresses
    }

    /// The unicast peers.
    #[must_use]
    pub fn unicast_peers(&self) -> &[IpAddr] {
        &self.unicast_peers
    }
}

impl Display for VrrpInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "vrrp_instance {} {{", self.name)?;
        let state = match self.state {
            VrrpState::Master => "MASTER",
            VrrpState::Backup => "BACKUP",
        };
        writeln!(f, "{INDENT}state {state}")?;
        writeln!(f, "{INDENT}interface {}", self.interface)?;
        writeln!(f, "{INDENT}virtual_router_id {}", self.virtual_router_id)?;
        writeln!(f, "{INDENT}priority {}", self.priority)?;
        writeln!(
            f,
            "{INDENT}advert_int {}",
            KeepalivedSeconds(self.advert_interval)
        )?;
        if self.nopreempt {
            writeln!(f, "{INDENT}nopreempt")?;
        }
        if let Some(d) = self.preempt_delay {
            writeln!(f, "{INDENT}preempt_delay {}", KeepalivedSeconds(d))?;
        }
        if let Some(src) = self.unicast_src_ip {
            writeln!(f, "{INDENT}unicast_src_ip {src}")?;
        }
        if !self.unicast_peers.is_empty() {
            writeln!(f, "{INDENT}unicast_peer {{")?;
            for p in &self.unicast_peers {
                writeln!(f, "{INDENT}{INDENT}{p}")?;
            }
            writeln!(f, "{INDENT}}}")?;
        }
        writeln!(f, "{INDENT}virtual_ipaddress {{")?;
        for v in &self.virtual_addresses {
            match &v.dev {
                Some(dev) => writeln!(f, "{INDENT}{INDENT}{} dev {dev}", v.addr)?,
                None => writeln!(f, "{INDENT}{INDENT}{}", v.addr)?,
            }
        }
        writeln!(f, "{INDENT}}}")?;
        if !self.track_scripts.is_empty() {
            writeln!(f, "{INDENT}track_script {{")?;
            for s in &self.track_scripts {
                writeln!(f, "{INDENT}{INDENT}{s}")?;
            }
            writeln!(f, "{INDENT}}}")?;
        }
        if !self.track_files.is_empty() {
            writeln!(f, "{INDENT}track_file {{")?;
            for t in &self.track_files {
                writeln!(f, "{INDENT}{INDENT}{t}")?;
            }
            writeln!(f, "{INDENT}}}")?;
        }
        for (event, cmd) in &self.notify {
            writeln!(f, "{INDENT}{event} {cmd}")?;
        }
        for d in &self.extra {
            writeln!(f, "{INDENT}{d}")?;
        }
        writeln!(f, "}}")
    }
}

/// Builds a [`VrrpInstance`]; every check runs in [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct VrrpInstanceBuilder {
    name: String,
    state: VrrpState,
    interface: Option<Interface>,
    virtual_router_id: Option<u8>,
    priority: Option<u8>,
    advert_interval: Duration,
    nopreempt: bool,
    preempt_delay: Option<Duration>,
    unicast_src_ip: Option<IpAddr>,
    unicast_peers: Vec<IpAddr>,
    virtual_addresses: Vec<VirtualAddress>,
    track_scripts: Vec<Name>,
    track_files: Vec<Name>,
    notify: Vec<(NotifyEvent, ScriptCommand)>,
    extra: Vec<Directive>,
}

impl VrrpInstanceBuilder {
    /// Sets the start state (default BACKUP).
    pub fn state(mut self, state: VrrpState) -> Self {
        self.state = state;
        self
    }

    /// Sets the interface VRRP runs on (required).
    pub fn interface(mut self, interface: Interface) -> Self {
        self.interface = Some(interface);
        self
    }

    /// Sets `virtual_router_id` (required, 1 to 255, the same on every peer and unique on the
    /// L2 segment).
    pub fn virtual_router_id(mut self, id: u8) -> Self {
        self.virtual_router_id = Some(id);
        self
    }

    /// Sets `priority` (required, 1 to 254; the highest wins the election).
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Sets `advert_int` (default 1 s). Sub-second values need VRRPv3.
    pub fn advert_interval(mut self, interval: Duration) -> Self {
        self.advert_interval = interval;
        self
    }

    /// Sets `nopreempt`: a higher-priority node that comes back does not take the VIP from a
    /// working MASTER. Needs state BACKUP.
    pub fn nopreempt(mut self, nopreempt: bool) -> Self {
        self.nopreempt = nopreempt;
        self
    }

    /// Sets `preempt_delay`: a higher-priority node waits this long after start before it
    /// preempts.
    pub fn preempt_delay(mut self, delay: Duration) -> Self {
        self.preempt_delay = Some(delay);
        self
    }

    /// Sets `unicast_src_ip`: this node's address for unicast adverts.
    pub fn unicast_src_ip(mut self, ip: IpAddr) -> Self {
        self.unicast_src_ip = Some(ip);
        self
    }

    /// Adds a unicast peer (switches the instance from multicast to unicast).
    pub fn unicast_peer(mut self, ip: IpAddr) -> Self {
        self.unicast_peers.push(ip);
        self
    }

    /// Adds a virtual address (at least one is required).
    pub fn virtual_address(mut self, addr: VirtualAddress) -> Self {
        self.virtual_addresses.push(addr);
        self
    }

    /// Tracks a `vrrp_script` by name.
    pub fn track_script(mut self, name: Name) -> Self {
        self.track_scripts.push(name);
        self
    }

    /// Tracks a `track_file` by name.
    pub fn track_file(mut self, name: Name) -> Self {
        self.track_files.push(name);
        self
    }

    /// Adds a notify hook.
    pub fn notify(mut self, event: NotifyEvent, command: ScriptCommand) -> Self {
        self.notify.push((event, command));
        self
    }

    /// Adds a directive the model does not cover, rendered last in the block.
    pub fn directive(mut self, directive: Directive) -> Self {
        self.extra.push(directive);
        self
    }

    /// Checks the instance and builds it.
    ///
    /// # Errors
    /// - [`Error::InvalidValue`] for a bad name, router id 0, priority 0 or 255, or a bad
    ///   advertisement interval;
    /// - [`Error::Missing`] for no interface, router id, priority or virtual address;
    /// - [`Error::Duplicate`] for a repeated peer, virtual address, tracked script or hook;
    /// - [`Error::Conflict`] for `nopreempt` with state MASTER, or a peer that is this node
    ///   or of the other address family.
    pub fn build(self) -> Result<VrrpInstance> {
        let name = Name::new(self.name).map_err(|e| e.at("vrrp_instance name"))?;
        let label = format!("vrrp_instance {name}");
        let field = |f: &str| format!("{label}.{f}");
        let interface = self
            .interface
            .ok_or_else(|| Error::missing(field("interface"), "an interface is required"))?;
        let virtual_router_id = self.virtual_router_id.ok_or_else(|| {
            Error::missing(
                field("virtual_router_id"),
                "a virtual_router_id is required",
            )
        })?;
        if virtual_router_id == 0 {
            return Err(Error::invalid(
                field("virtual_router_id"),
                "0",
                "must be 1 to 255",
            ));
        }
        let priority = self
            .priority
            .ok_or_else(|| Error::missing(field("priority"), "a priority is required"))?;
        if !(1..=254).contains(&priority) {
            return Err(Error::invalid(
                field("priority"),
                priority.to_string(),
                "must be 1 to 254 (255 is reserved for the address owner)",
            ));
        }
        check_millis(self.advert_interval).map_err(|e| e.at(field("advert_int")))?;
        let ms = self.advert_interval.as_millis();
        if !ms.is_multiple_of(10) || ms > 40_950 {
            return Err(Error::invalid(
                field("advert_int"),
                format!("{:?}", self.advert_interval),
                "must be a multiple of 10 ms, at most 40.95 s",
            ));
        }
        if self.nopreempt && self.state == VrrpState::Master {
            return Err(Error::conflict(
                field("nopreempt"),
                "nopreempt needs state BACKUP on every node",
            ));
        }
        if let Some(d) = self.preempt_delay {
            check_millis(d).map_err(|e| e.at(field("preempt_delay")))?;
        }
        let mut peers = BTreeSet::new();
        for p in &self.unicast_peers {
            if !peers.insert(*p) {
                return Err(Error::duplicate(field("unicast_peer"), p.to_string()));
            }
            if Some(*p) == self.unicast_src_ip {
                return Err(Error::conflict(
                    field("unicast_peer"),
                    format!("{p} is this node's own unicast_src_ip"),
                ));
            }
            if let Some(src) = self.unicast_src_ip
                && src.is_ipv4() != p.is_ipv4()
            {
                return Err(Error::conflict(
                    field("unicast_peer"),
                    format!("{p} is not of the same address family as {src}"),
                ));
            }
        }
        if self.virtual_addresses.is_empty() {
            return Err(Error::missing(
                field("virtual_ipaddress"),
                "at least one virtual address is required",
            ));
        }
        let mut vips = BTreeSet::new();
        for v in &self.virtual_addresses {
            if !vips.insert(v.addr.addr()) {
                return Err(Error::duplicate(
                    field("virtual_ipaddress"),
                    v.addr.to_string(),
                ));
            }
        }
        let mut scripts = BTreeSet::new();
        for s in &self.track_scripts {
            if !scripts.insert(s) {
                return Err(Error::duplicate(field("track_script"), s.as_str()));
            }
        }
        let mut files = BTreeSet::new();
        for t in &self.track_files {
            if !files.insert(t) {
                return Err(Error::duplicate(field("track_file"), t.as_str()));
            }
        }
        let mut events = BTreeSet::new();
        for (event, _) in &self.notify {
            if !events.insert(*event) {
                return Err(Error::duplicate(field("notify"), event.to_string()));
            }
        }
        Ok(VrrpInstance {
            name,
            state: self.state,
            interface,
            virtual_router_id,
            priority,
            advert_interval: self.advert_interval,
            nopreempt: self.nopreempt,
            preempt_delay: self.preempt_delay,
            unicast_src_ip: self.unicast_src_ip,
            unicast_peers: self.unicast_peers,
            virtual_addresses: self.virtual_addresses,
            track_scripts: self.track_scripts,
            track_files: self.track_files,
            notify: self.notify,
            extra: self.extra,
        })
    }
}

/// A whole `keepalived.conf`, validated by [`KeepalivedConfigBuilder::build`].
///
/// ```
/// use hakube_haproxy_config::keepalived::*;
/// use hakube_haproxy_config::{Interface, Name};
/// use std::net::IpAddr;
///
/// let vi = VrrpInstance::builder("VI_1")
///     .interface(Interface::new("eth0")?)
///     .virtual_router_id(51)
///     .priority(100)
///     .unicast_src_ip("10.0.0.11".parse::<IpAddr>().unwrap())
///     .unicast_peer("10.0.0.12".parse::<IpAddr>().unwrap())
///     .virtual_address(VirtualAddress { addr: "10.0.0.10/24".parse().unwrap(), dev: None })
///     .build()?;
/// let conf = KeepalivedConfig::builder().instance(vi).build()?;
/// assert!(conf.to_string().contains("    unicast_peer {\n        10.0.0.12\n    }\n"));
/// # Ok::<(), hakube_haproxy_config::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepalivedConfig {
    header: Vec<String>,
    global_defs: GlobalDefs,
    scripts: Vec<VrrpScript>,
    track_files: Vec<TrackFile>,
    instances: Vec<VrrpInstance>,
}

impl KeepalivedConfig {
    /// Starts an empty config.
    pub fn builder() -> KeepalivedConfigBuilder {
        KeepalivedConfigBuilder::default()
    }

    /// The `global_defs` block.
    #[must_use]
    pub fn global_defs(&self) -> &GlobalDefs {
        &self.global_defs
    }

    /// The `vrrp_script` blocks.
    #[must_use]
    pub fn scripts(&self) -> &[VrrpScript] {
        &self.scripts
    }

    /// The `track_file` blocks.
    #[must_use]
    pub fn track_files(&self) -> &[TrackFile] {
        &self.track_files
    }

    /// The `vrrp_instance` blocks.
    #[must_use]
    pub fn instances(&self) -> &[VrrpInstance] {
        &self.instances
    }
}

impl Display for KeepalivedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.header {
            writeln!(f, "! {line}")?;
        }
        write!(f, "{}", self.global_defs)?;
        for s in &self.scripts {
            write!(f, "\n{s}")?;
        }
        for t in &self.track_files {
            write!(f, "\n{t}")?;
        }
        for i in &self.instances {
            write!(f, "\n{i}")?;
        }
        Ok(())
    }
}

/// Builds a [`KeepalivedConfig`]; cross-block checks run in [`build`](Self::build).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct KeepalivedConfigBuilder {
    header: Vec<String>,
    global_defs: GlobalDefs,
    scripts: Vec<VrrpScript>,
    track_files: Vec<TrackFile>,
    instances: Vec<VrrpInstance>,
}

impl KeepalivedConfigBuilder {
    /// Adds a comment line at the top of the file (one line; checked in `build`).
    pub fn comment(mut self, line: impl Into<String>) -> Self {
        self.header.push(line.into());
        self
    }

    /// Sets `global_defs`.
    pub fn global_defs(mut self, global_defs: GlobalDefs) -> Self {
        self.global_defs = global_defs;
        self
    }

    /// Adds a `vrrp_script`.
    pub fn script(mut self, script: VrrpScript) -> Self {
        self.scripts.push(script);
        self
    }

    /// Adds a `track_file`.
    pub fn track_file(mut self, track_file: TrackFile) -> Self {
        self.track_files.push(track_file);
        self
    }

    /// Adds a `vrrp_instance`.
    pub fn instance(mut self, instance: VrrpInstance) -> Self {
        self.instances.push(instance);
        self
    }

    /// Checks that the blocks fit together and builds the config.
    ///
    /// # Errors
    /// - [`Error::Duplicate`] for two scripts or instances with one name, or two instances
    ///   with one `virtual_router_id` on one interface;
    /// - [`Error::Conflict`] for a `track_script` or `track_file` naming no block, scripts or hooks without
    ///   `enable_script_security`, or a sub-second `advert_int` without VRRPv3;
    /// - [`Error::InvalidValue`] for a bad script interval or a comment with a line break.
    pub fn build(self) -> Result<KeepalivedConfig> {
        crate::value::check_comments(&self.header)?;
        let mut script_names = BTreeSet::new();
        for s in &self.scripts {
            s.validate()?;
            if !script_names.insert(s.name.as_str()) {
                return Err(Error::duplicate("vrrp_script", s.name.as_str()));
            }
        }
        let mut file_names = BTreeSet::new();
        for t in &self.track_files {
            t.validate()?;
            if !file_names.insert(t.name.as_str()) {
                return Err(Error::duplicate("track_file", t.name.as_str()));
            }
        }
        let uses_scripts =
            !self.scripts.is_empty() || self.instances.iter().any(|i| !i.notify.is_empty());
        if uses_scripts && !self.global_defs.enable_script_security {
            return Err(Error::conflict(
                "global_defs.enable_script_security",
                "scripts or notify hooks are configured: enable_script_security must be on",
            ));
        }
        let mut names = BTreeSet::new();
        let mut vrids = BTreeSet::new();
        for i in &self.instances {
            let label = format!("vrrp_instance {}", i.name);
            if !names.insert(i.name.as_str()) {
                return Err(Error::duplicate("vrrp_instance", i.name.as_str()));
            }
            if !vrids.insert((i.interface.as_str(), i.virtual_router_id)) {
                return Err(Error::duplicate(
                    format!("{label}.virtual_router_id"),
                    i.virtual_router_id.to_string(),
                ));
            }
            for s in &i.track_scripts {
                if !script_names.contains(s.as_str()) {
                    return Err(Error::conflict(
                        format!("{label}.track_script"),
                        format!("no vrrp_script is named {s}"),
                    ));
                }
            }
            for t in &i.track_files {
                if !file_names.contains(t.as_str()) {
                    return Err(Error::conflict(
                        format!("{label}.track_file"),
                        format!("no track_file is named {t}"),
                    ));
                }
            }
            let whole_seconds = i.advert_interval.as_millis() % 1000 == 0;
            if !whole_seconds && self.global_defs.vrrp_version != Some(VrrpVersion::V3) {
                return Err(Error::conflict(
                    format!("{label}.advert_int"),
                    "a sub-second advert_int needs global_defs.vrrp_version 3",
                ));
            }
        }
        Ok(KeepalivedConfig {
            header: self.header,
            global_defs: self.global_defs,
            scripts: self.scripts,
            track_files: self.track_files,
            instances: self.instances,
        })
    }
}
