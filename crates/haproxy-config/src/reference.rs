//! The opinionated builder for hakube's reference design: three (or more) HAProxy nodes
//! sharing one VIP through keepalived, serving the Kubernetes API on 6443 and ingress on
//! 80/443 to Traefik's NodePorts.
//!
//! Input: [`HaInput`]. Entry point: [`HaInput::render`], which validates the whole input and
//! returns one [`LbNodeFiles`] per LB node (`haproxy.cfg`, `keepalived.conf` and the health
//! check script, each with its conventional absolute path and mode).
//!
//! # Decisions, and why
//! - **API (6443)**: `mode tcp` (TLS passes through to the apiservers, client certificates
//!   keep working), `balance roundrobin` (kubeadm's choice; `leastconn` was tried and sends
//!   new connections to a blackholed apiserver, whose connection count looks lowest, until
//!   checks mark it down), an HTTPS health check on `/readyz` (`check-ssl verify none`: a
//!   TCP-only check keeps a not-ready apiserver in rotation), `inter 2s fastinter 500ms fall 2
//!   rise 2 slowstart 10s`, and `timeout client/server/tunnel 1h` so watches and
//!   `kubectl logs -f` are not cut (20 s broke them, kubeadm#2227).
//!   Passive checks too (`observe layer4 error-limit 1 on-error sudden-death`): the first
//!   connection real traffic cannot open switches the server to fast checks, and one more
//!   failed active check takes it out (`mark-down` on a single error was tried: on a
//!   CPU-starved machine one slow connect took every apiserver out at once). `timeout connect 1s`,
//!   `option redispatch 1` and `retries 2`: a connection refused or unanswered by a dead
//!   apiserver is retried on another one before the client's own timeout.
//! - **Ingress (80/443)**: [`IngressTls::Passthrough`] relays TCP to Traefik's NodePorts with
//!   `send-proxy-v2` (Traefik must list the LB addresses in `proxyProtocol.trustedIPs`);
//!   [`IngressTls::Terminate`] terminates TLS here (`bind :443 ssl crt`), drops any
//!   client-supplied `X-Forwarded-For`, sets `X-Forwarded-For/Proto/Port` and sends plain
//!   HTTP to Traefik's web NodePort (Traefik must trust the LB addresses in
//!   `forwardedHeaders.trustedIPs`).
//! - **Stats and metrics** (`/stats`, `/metrics` on port [`STATS_PORT`]) bind to the node's own
//!   address (or [`LbNode::stats_address`]), never `*` or the VIP, and answer only the
//!   [`HaInput::metrics_sources`] (default: every LB, control-plane and worker address, where
//!   Prometheus' scrapes come from) with `http-request deny unless { src ... }`; others get
//!   403. A separate frontend on `127.0.0.1:`[`HEALTH_PORT`] answers `/healthz` from HAProxy
//!   itself (`monitor-uri`): that is what the keepalived check asks.
//! - **Vault API** ([`VAULT_PORT`], when [`HaInput::vault`] names nodes): `mode tcp`, TLS
//!   passes through, so clients verify Vault's own certificate (which must name the VIP) and
//!   HAProxy holds no key. The health check speaks TLS to each node (`check-ssl verify none`)
//!   and asks `/v1/sys/health`: 200 from the active node only (429 from standbys, 501/503 from
//!   uninitialised or sealed nodes), so every request through the VIP reaches the active node.
//!   Standbys are not trusted to forward: on the local twin, OpenBao 2.7.2 standbys answered
//!   404 for a Kubernetes auth role and config written through the active node minutes before,
//!   so a cert-manager login landing on a standby would fail. A standby that becomes active is
//!   checked every 500 ms while down (`downinter`), so it takes the traffic within about 1 s
//!   of its election. Not verifying the check's certificate costs nothing: the check only
//!   steers traffic, and a client's TLS session still ends at a real Vault node or fails; it
//!   spares the LBs the Vault CA.
//! - **keepalived**: unicast peers (works where multicast is filtered), distinct priorities,
//!   every node starts as BACKUP; among the nodes competing in an election the highest
//!   priority wins, so there is exactly one MASTER and a failed MASTER is always replaced by
//!   the highest-priority healthy node. Adverts every 300 ms over VRRPv3
//!   ([`DEFAULT_ADVERT_INTERVAL`]) with real-time scheduling (`max_auto_priority`): a MASTER
//!   that vanishes silently (VM crash) is replaced after about 1.05 s.
//! - **HAProxy dying** is seen at once, not by polling: a `haproxy.service` drop-in
//!   ([`HAPROXY_DROPIN_PATH`]) writes `1` to [`HAPROXY_STATE_FILE`] in `ExecStopPost=` (systemd
//!   runs it whenever the main process ends, crash included) and `0` in `ExecStartPost=`;
//!   keepalived's `track_file` (weight 0, inotify) puts the node in FAULT the moment it reads
//!   `1`: it drops the VIP and sends a priority-0 advert, and the next node takes over after
//!   its skew time (0.15 s). keepalived's `track_process` would do the same without the
//!   drop-in, but it needs the kernel's process-events connector, which only the initial
//!   network namespace has: it cannot be tested on a namespace lab. The `vrrp_script` (HAProxy's
//!   `/healthz`, every 1 s, `fall 2`, no weight) remains for a HAProxy that runs but hangs.
//! - **`nopreempt`** (and state BACKUP everywhere): when a failed MASTER comes back it stays
//!   BACKUP. With preemption the VIP would move a second time, resetting every TCP connection
//!   that was opened through the current MASTER (every watch, every `logs -f`) and adding a
//!   second client-visible gap of up to a second, for no benefit: all LB nodes are equivalent.
//!   With `nopreempt` a node's return costs no outage at all (measured: 0 failed requests).
//!   The price: after a failover the VIP stays on a lower-priority node until that node
//!   fails, and at a cold start the first node to become healthy may keep the VIP even if a
//!   higher-priority node comes up a moment later. Both are intended.
//!   A MASTER whose keepalived crashes keeps the VIP on its interface until keepalived
//!   restarts (which removes it); its HAProxy keeps serving the connections that still reach
//!   it, and the new MASTER's gratuitous ARPs move clients over.
//! - No VRRP `authentication`: it is cleartext and no security boundary.
//!
//! # What an LB node needs besides these files
//! [`LbNodeFiles::host_plan`] returns it as a host plan ([`crate::needs`]):
//! - packages `haproxy`, `keepalived` and `curl` (the check script uses `/usr/bin/curl`);
//! - the system user [`DEFAULT_SCRIPT_USER`] (or [`HaInput::script_user`]):
//!   `useradd --system --no-create-home --shell /usr/sbin/nologin keepalived_script`;
//!   keepalived drops the check without it (and `keepalived -t` still exits 0);
//! - for [`IngressTls::Terminate`], the PEM (chain + key) at `cert_path`, mode 0600, root;
//! - IP protocol 112 (VRRP) allowed between the LB nodes, and the VIP free on the segment;
//! - Traefik configured to trust the LB node addresses (`proxyProtocol.trustedIPs` for
//!   passthrough, `forwardedHeaders.trustedIPs` for termination);
//! - after writing the files: `systemctl daemon-reload` and `restart haproxy` when the drop-in
//!   changed, else `reload haproxy`; `reload keepalived`. `haproxy -c -f` and `keepalived -t -f`
//!   (with no diagnostic in its output) validate a candidate first.

use core::fmt;
use core::time::Duration;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use hakube_host_state::File;
use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::haproxy::{
    Balance, Bind, BindTls, Defaults, Global, HaproxyConfig, HttpCheck, HttpRequestRule, Log, Mode,
    Observe, OnError, Proxy, ProxyOption, Server, ServerOptions, Stats, StatsLevel, StatsSocket,
    TimeoutKind, TlsVersion, Verify,
};
use crate::keepalived::{
    GlobalDefs, KeepalivedConfig, ScriptCommand, TrackFile, VirtualAddress, VrrpInstance,
    VrrpScript, VrrpState, VrrpVersion,
};
use crate::value::{AbsPath, Interface, Name, Port, Token, UriPath};

/// Where `haproxy.cfg` lives on an LB node.
pub const HAPROXY_CFG_PATH: &str = "/etc/haproxy/haproxy.cfg";
/// The file mode of `haproxy.cfg` (no secrets inside; certificates live in their own files).
pub const HAPROXY_CFG_MODE: u32 = 0o644;
/// Where `keepalived.conf` lives on an LB node.
pub const KEEPALIVED_CONF_PATH: &str = "/etc/keepalived/keepalived.conf";
/// The file mode of `keepalived.conf` (no secrets inside: no VRRP authentication).
pub const KEEPALIVED_CONF_MODE: u32 = 0o644;
/// Where the HAProxy health check script lives on an LB node. keepalived's
/// `enable_script_security` needs it and every directory above it owned by root and not
/// writable by anyone else.
pub const CHECK_SCRIPT_PATH: &str = "/etc/keepalived/check_haproxy.sh";
/// The file mode of the check script (root-owned, executable, not group/other writable).
pub const CHECK_SCRIPT_MODE: u32 = 0o755;
/// The port of the stats page (`/stats`) and Prometheus metrics (`/metrics`).
pub const STATS_PORT: u16 = 8404;
/// The port of HAProxy's own liveness endpoint (`/healthz`, 127.0.0.1 only).
pub const HEALTH_PORT: u16 = 8405;
/// The name of the VRRP instance in `keepalived.conf`.
pub const VRRP_INSTANCE: &str = "hakube_vip";
/// The name of the `vrrp_script` that checks the local HAProxy.
pub const VRRP_SCRIPT: &str = "chk_haproxy";
/// The name of the `track_file` through which systemd tells keepalived that HAProxy stopped.
pub const TRACK_FILE: &str = "haproxy_down";
/// The file behind [`TRACK_FILE`]: `0` while HAProxy runs, `1` once it stopped or died
/// (written by the [`HAPROXY_DROPIN_PATH`] drop-in; keepalived starts it at `1`).
pub const HAPROXY_STATE_FILE: &str = "/run/keepalived-haproxy.state";
/// Where the systemd drop-in for `haproxy.service` lives that writes [`HAPROXY_STATE_FILE`].
pub const HAPROXY_DROPIN_PATH: &str =
    "/etc/systemd/system/haproxy.service.d/hakube-keepalived.conf";
/// The file mode of the drop-in.
pub const HAPROXY_DROPIN_MODE: u32 = 0o644;
/// The port of the Vault API on the VIP (and on the Vault nodes).
pub const VAULT_PORT: u16 = 8200;
/// The default VRRP advertisement interval: 300 ms, so a MASTER that vanishes without a word
/// (VM crash, cable cut) is replaced after 3 x 0.3 s + the new MASTER's skew time (0.15 s for
/// the second of three nodes) = 1.05 s, inside the 1.5 s goal; 500 ms adverts took 1.7 s and
/// 1 s adverts 3.4 s (see `scripts/measure-failover`).
pub const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_millis(300);
/// The default `script_user`: a dedicated system user the LB node must have
/// (`useradd --system --no-create-home --shell /usr/sbin/nologin keepalived_script`).
pub const DEFAULT_SCRIPT_USER: &str = "keepalived_script";

/// One load-balancer node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbNode {
    /// The node's name (the VM name; becomes keepalived's `router_id`).
    pub name: String,
    /// Its address on the LB network (VRRP unicast source).
    pub address: IpAddr,
    /// The interface that carries that address and will carry the VIP.
    pub interface: String,
    /// Its VRRP priority (1 to 254). `None`: spread evenly from 250 (first node) to 10 (last
    /// node), e.g. 250, 130, 10 for three nodes.
    pub priority: Option<u8>,
    /// Bind stats and metrics to this management address instead of the node's own
    /// `address`.
    pub stats_address: Option<IpAddr>,
}

/// A backend host: a control-plane node or a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name (shown in HAProxy stats).
    pub name: String,
    /// Its address.
    pub address: IpAddr,
}

/// How HTTPS ingress is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressTls {
    /// L4: relay TCP to Traefik's NodePorts with a PROXY v2 header; Traefik terminates TLS.
    Passthrough,
    /// L7: terminate TLS on HAProxy with this PEM (chain + key) and send HTTP with
    /// `X-Forwarded-*` headers to Traefik's web NodePort.
    Terminate {
        /// The absolute path of the PEM on the LB node.
        cert_path: String,
    },
}

/// Ingress on 80/443 to Traefik's NodePorts on the workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingress {
    /// Traefik's `web` (HTTP) NodePort.
    pub http_node_port: u16,
    /// Traefik's `websecure` (HTTPS) NodePort (used by [`IngressTls::Passthrough`]).
    pub https_node_port: u16,
    /// TLS handling.
    pub tls: IngressTls,
}

/// Everything the reference design needs. Build it with [`HaInput::new`] and the setters (or
/// fill the public fields), then call [`HaInput::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaInput {
    /// The LB nodes, in priority order when priorities are not given.
    pub lb_nodes: Vec<LbNode>,
    /// The virtual IP clients use (the cluster's `controlPlaneEndpoint`).
    pub vip: IpAddr,
    /// The LB network. When given, the VIP and every LB address must be inside it and the VIP
    /// gets its prefix length; otherwise the VIP is added as a host address (/32, /128).
    pub lb_subnet: Option<IpNet>,
    /// The control-plane nodes (apiservers).
    pub control_plane: Vec<Member>,
    /// The workers running Traefik's NodePorts.
    pub workers: Vec<Member>,
    /// Ingress on 80/443; `None` renders the API only.
    pub ingress: Option<Ingress>,
    /// The VRRP router id, the same on every LB node and unique on the L2 segment.
    pub virtual_router_id: u8,
    /// The apiserver port, on the VIP and on the control-plane nodes (6443).
    pub api_port: u16,
    /// The apiserver health path (`/readyz`; `/healthz` for old apiservers).
    pub api_health_path: String,
    /// The VRRP advertisement interval ([`DEFAULT_ADVERT_INTERVAL`], 500 ms). A sub-second
    /// value switches to VRRPv3. A MASTER that vanishes silently is replaced after about
    /// 3 intervals.
    pub advert_interval: Duration,
    /// The user keepalived runs the check script as; it must exist on the LB nodes
    /// ([`LbNodeFiles::host_plan`] creates it).
    pub script_user: String,
    /// The Vault (or OpenBao) nodes the LBs front on the VIP, port [`VAULT_PORT`]; empty: no
    /// Vault frontend.
    pub vault: Vec<Member>,
    /// The client networks allowed to read stats and metrics (port [`STATS_PORT`]); empty:
    /// every LB, control-plane and worker address (Prometheus scrapes from a node: pod
    /// traffic leaving the cluster is masqueraded to its node's address).
    pub metrics_sources: Vec<IpNet>,
}

impl HaInput {
    /// An input with the given VIP and router id, no nodes, no ingress, and the defaults:
    /// API port 6443, health path `/readyz`, 500 ms adverts (VRRPv3), script user
    /// `keepalived_script`.
    #[must_use]
    pub fn new(vip: IpAddr, virtual_router_id: u8) -> Self {
        Self {
            lb_nodes: Vec::new(),
            vip,
            lb_subnet: None,
            control_plane: Vec::new(),
            workers: Vec::new(),
            ingress: None,
            virtual_router_id,
            api_port: 6443,
            api_health_path: "/readyz".to_owned(),
            advert_interval: DEFAULT_ADVERT_INTERVAL,
            script_user: DEFAULT_SCRIPT_USER.to_owned(),
            vault: Vec::new(),
            metrics_sources: Vec::new(),
        }
    }

    /// Adds an LB node with the default priority and stats on its own address.
    #[must_use]
    pub fn lb_node(mut self, name: &str, address: IpAddr, interface: &str) -> Self {
        self.lb_nodes.push(LbNode {
            name: name.to_owned(),
            address,
            interface: interface.to_owned(),
            priority: None,
            stats_address: None,
        });
        self
    }

    /// Adds a control-plane node.
    #[must_use]
    pub fn control_plane_node(mut self, name: &str, address: IpAddr) -> Self {
        self.control_plane.push(Member {
            name: name.to_owned(),
            address,
        });
        self
    }

    /// Adds a worker.
    #[must_use]
    pub fn worker(mut self, name: &str, address: IpAddr) -> Self {
        self.workers.push(Member {
            name: name.to_owned(),
            address,
        });
        self
    }

    /// Sets ingress.
    #[must_use]
    pub fn ingress(mut self, http_node_port: u16, https_node_port: u16, tls: IngressTls) -> Self {
        self.ingress = Some(Ingress {
            http_node_port,
            https_node_port,
            tls,
        });
        self
    }

    /// Adds a Vault node behind the VIP's port [`VAULT_PORT`].
    #[must_use]
    pub fn vault_node(mut self, name: &str, address: IpAddr) -> Self {
        self.vault.push(Member {
            name: name.to_owned(),
            address,
        });
        self
    }

    /// Adds a client network allowed to read stats and metrics (replacing the default of
    /// every cluster node's address).
    #[must_use]
    pub fn metrics_source(mut self, net: IpNet) -> Self {
        self.metrics_sources.push(net);
        self
    }

    /// Sets the LB subnet.
    #[must_use]
    pub fn lb_subnet(mut self, subnet: IpNet) -> Self {
        self.lb_subnet = Some(subnet);
        self
    }

    /// Sets the VRRP advertisement interval.
    #[must_use]
    pub fn advert_interval(mut self, interval: Duration) -> Self {
        self.advert_interval = interval;
        self
    }

    /// Validates the input and renders the three files for every LB node.
    ///
    /// Nothing is returned unless the whole input is valid.
    ///
    /// # Errors
    /// An [`Error`] naming the field: an invalid VIP (unspecified, loopback, multicast, equal
    /// to a node's address, outside `lb_subnet`), duplicate node names, addresses or
    /// priorities, no LB node, no control-plane node, no worker while ingress is on (an empty
    /// backend), a name or path that would break the config grammar, port 0 or clashing
    /// ports.
    pub fn render(&self) -> Result<Vec<LbNodeFiles>> {
        let v = Validated::new(self)?;
        v.nodes
            .iter()
            .map(|node| {
                let haproxy = v.haproxy(node)?;
                let keepalived = v.keepalived(node)?;
                Ok(LbNodeFiles {
                    node: node.name.as_str().to_owned(),
                    address: node.address,
                    priority: node.priority,
                    haproxy_cfg: File::new(HAPROXY_CFG_PATH, haproxy.to_string())
                        .mode(HAPROXY_CFG_MODE)
                        .validate(crate::needs::haproxy_check()),
                    keepalived_conf: File::new(KEEPALIVED_CONF_PATH, keepalived.to_string())
                        .mode(KEEPALIVED_CONF_MODE)
                        .validate(crate::needs::keepalived_check()),
                    check_script: File::new(CHECK_SCRIPT_PATH, check_script(&v.script_user))
                        .mode(CHECK_SCRIPT_MODE),
                    haproxy_dropin: File::new(HAPROXY_DROPIN_PATH, haproxy_dropin())
                        .mode(HAPROXY_DROPIN_MODE),
                    script_user: v.script_user.as_str().to_owned(),
                    haproxy,
                    keepalived,
                })
            })
            .collect()
    }
}

/// The default priority of the `i`-th of `n` LB nodes: spread evenly from 250 down to 10, so
/// after a priority-0 advert the backups' skew times (`(256 - priority) / 256 x advert_int`)
/// differ by as much as possible and the highest-priority survivor reliably wins the race
/// (250/130/10 for three nodes: 234 ms apart at 500 ms adverts; 150/140/130 would be 20 ms).
fn default_priority(i: usize, n: usize) -> u8 {
    if n <= 1 {
        return 250;
    }
    let step = 240 / (n - 1);
    u8::try_from(250 - (i * step).min(240)).unwrap_or(10)
}

/// What one LB node receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbNodeFiles {
    /// The node's name.
    pub node: String,
    /// The node's LB address.
    pub address: IpAddr,
    /// The node's VRRP priority.
    pub priority: u8,
    /// `/etc/haproxy/haproxy.cfg`, checked by [`crate::needs::haproxy_check`] before it goes
    /// live.
    pub haproxy_cfg: File,
    /// `/etc/keepalived/keepalived.conf`, checked by [`crate::needs::keepalived_check`].
    pub keepalived_conf: File,
    /// `/etc/keepalived/check_haproxy.sh`.
    pub check_script: File,
    /// The `haproxy.service` drop-in that tells keepalived when HAProxy stops
    /// ([`HAPROXY_DROPIN_PATH`]).
    pub haproxy_dropin: File,
    /// The system user that must exist for the check script to run.
    pub script_user: String,
    /// The typed HAProxy config behind `haproxy_cfg`.
    pub haproxy: HaproxyConfig,
    /// The typed keepalived config behind `keepalived_conf`.
    pub keepalived: KeepalivedConfig,
}

impl LbNodeFiles {
    /// The four files, in install order (the check script before `keepalived.conf`, whose
    /// `keepalived -t` checks the script's path and owner).
    #[must_use]
    pub fn files(&self) -> [&File; 4] {
        [
            &self.haproxy_cfg,
            &self.haproxy_dropin,
            &self.check_script,
            &self.keepalived_conf,
        ]
    }
}

struct Node {
    name: Name,
    address: IpAddr,
    interface: Interface,
    priority: u8,
    stats_address: IpAddr,
}

struct Backend {
    name: Name,
    address: IpAddr,
}

enum Tls {
    Passthrough,
    Terminate(AbsPath),
}

struct IngressV {
    http: Port,
    https: Port,
    tls: Tls,
}

struct Validated {
    nodes: Vec<Node>,
    vip: IpNet,
    control_plane: Vec<Backend>,
    workers: Vec<Backend>,
    ingress: Option<IngressV>,
    vrid: u8,
    api_port: Port,
    health_path: UriPath,
    advert: Duration,
    script_user: Name,
    vault: Vec<Backend>,
    metrics_sources: Vec<IpNet>,
}

fn members(list: &[Member], field: &str) -> Result<Vec<Backend>> {
    let mut names = BTreeSet::new();
    let mut addrs = BTreeSet::new();
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let at = |f: &str| format!("{field}[{i}].{f}");
            let name = Name::new(m.name.clone()).map_err(|e| e.at(at("name")))?;
            if !names.insert(m.name.clone()) {
                return Err(Error::duplicate(at("name"), &m.name));
            }
            check_unicast(m.address, &at("address"))?;
            if !addrs.insert(m.address) {
                return Err(Error::duplicate(at("address"), m.address.to_string()));
            }
            Ok(Backend {
                name,
                address: m.address,
            })
        })
        .collect()
}

fn check_unicast(ip: IpAddr, field: &str) -> Result<()> {
    let bad = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if bad {
        return Err(Error::invalid(
            field,
            ip.to_string(),
            "must be a unicast address (not unspecified, loopback, multicast or broadcast)",
        ));
    }
    Ok(())
}

/// The VIP: unicast, inside the LB subnet and neither its network nor broadcast address. Returns
/// it with the subnet's prefix (the form keepalived's `virtual_ipaddress` takes).
fn check_vip(input: &HaInput) -> Result<IpNet> {
    check_unicast(input.vip, "vip")?;
    if let Some(subnet) = input.lb_subnet {
        if !subnet.contains(&input.vip) {
            return Err(Error::conflict(
                "vip",
                format!("{} is not inside lb_subnet {subnet}", input.vip),
            ));
        }
        if subnet.prefix_len() < subnet.max_prefix_len() - 1
            && (input.vip == subnet.network() || input.vip == subnet.broadcast())
        {
            return Err(Error::invalid(
                "vip",
                input.vip.to_string(),
                format!("is the network or broadcast address of lb_subnet {subnet}"),
            ));
        }
    }
    let prefix = input
        .lb_subnet
        .map_or(if input.vip.is_ipv4() { 32 } else { 128 }, |s| {
            s.prefix_len()
        });
    IpNet::new(input.vip, prefix)
        .map_err(|_| Error::invalid("lb_subnet", format!("{prefix}"), "bad prefix length"))
}

/// The LB nodes: at least one; names, addresses and priorities unique; addresses unicast, in
/// the VIP's family and subnet and not the VIP.
fn lb_nodes(input: &HaInput) -> Result<Vec<Node>> {
    if input.lb_nodes.is_empty() {
        return Err(Error::missing(
            "lb_nodes",
            "at least one LB node is required",
        ));
    }
    let mut names = BTreeSet::new();
    let mut addrs = BTreeSet::new();
    let mut priorities = BTreeSet::new();
    let mut nodes = Vec::new();
    for (i, n) in input.lb_nodes.iter().enumerate() {
        let at = |f: &str| format!("lb_nodes[{i}].{f}");
        let name = Name::new(n.name.clone()).map_err(|e| e.at(at("name")))?;
        if !names.insert(n.name.clone()) {
            return Err(Error::duplicate(at("name"), &n.name));
        }
        check_unicast(n.address, &at("address"))?;
        if !addrs.insert(n.address) {
            return Err(Error::duplicate(at("address"), n.address.to_string()));
        }
        check_lb_address(input, n, &at("address"))?;
        let interface = Interface::new(n.interface.clone()).map_err(|e| e.at(at("interface")))?;
        let priority = n
            .priority
            .unwrap_or_else(|| default_priority(i, input.lb_nodes.len()));
        if !(1..=254).contains(&priority) {
            return Err(Error::invalid(
                at("priority"),
                priority.to_string(),
                "must be 1 to 254",
            ));
        }
        if !priorities.insert(priority) {
            return Err(Error::duplicate(at("priority"), priority.to_string()));
        }
        let stats_address = stats_address(input, n, &at("stats_address"))?;
        nodes.push(Node {
            name,
            address: n.address,
            interface,
            priority,
            stats_address,
        });
    }
    Ok(nodes)
}

/// One LB node's address: not the VIP, in the VIP's family and inside the LB subnet.
fn check_lb_address(input: &HaInput, n: &LbNode, field: &str) -> Result<()> {
    if n.address == input.vip {
        return Err(Error::conflict(
            "vip",
            format!("{} is also the address of LB node {}", input.vip, n.name),
        ));
    }
    if n.address.is_ipv4() != input.vip.is_ipv4() {
        return Err(Error::conflict(
            field,
            format!(
                "{} and the VIP {} differ in address family",
                n.address, input.vip
            ),
        ));
    }
    if let Some(subnet) = input.lb_subnet
        && !subnet.contains(&n.address)
    {
        return Err(Error::conflict(
            field,
            format!("{} is not inside lb_subnet {subnet}", n.address),
        ));
    }
    Ok(())
}

/// Where an LB node serves stats: its own address unless set; never `*`, multicast or the VIP.
fn stats_address(input: &HaInput, n: &LbNode, field: &str) -> Result<IpAddr> {
    match n.stats_address {
        None => Ok(n.address),
        Some(a) if a.is_unspecified() || a.is_multicast() => Err(Error::invalid(
            field,
            a.to_string(),
            "stats must bind to localhost or one management address",
        )),
        Some(a) if a == input.vip => Err(Error::conflict(
            field,
            "stats must not be served on the VIP",
        )),
        Some(a) => Ok(a),
    }
}

/// The control-plane nodes (at least one) and the workers, neither on the VIP.
fn cluster_backends(input: &HaInput) -> Result<(Vec<Backend>, Vec<Backend>)> {
    if input.control_plane.is_empty() {
        return Err(Error::missing(
            "control_plane",
            "the apiserver backend needs at least one control-plane node",
        ));
    }
    let control_plane = members(&input.control_plane, "control_plane")?;
    let workers = members(&input.workers, "workers")?;
    not_the_vip(input, "control_plane", &input.control_plane)?;
    not_the_vip(input, "workers", &input.workers)?;
    Ok((control_plane, workers))
}

/// No member of `list` has the VIP's address.
fn not_the_vip(input: &HaInput, field: &str, list: &[Member]) -> Result<()> {
    match list
        .iter()
        .enumerate()
        .find(|(_, m)| m.address == input.vip)
    {
        Some((i, m)) => Err(Error::conflict(
            format!("{field}[{i}].address"),
            format!("{} is the VIP", m.address),
        )),
        None => Ok(()),
    }
}

/// Who may read the metrics: the input's networks (none open to every address), or by default
/// every LB, control-plane and worker address.
fn metrics_sources(
    input: &HaInput,
    nodes: &[Node],
    control_plane: &[Backend],
    workers: &[Backend],
) -> Result<Vec<IpNet>> {
    if input.metrics_sources.is_empty() {
        return Ok(nodes
            .iter()
            .map(|n| n.address)
            .chain(control_plane.iter().map(|m| m.address))
            .chain(workers.iter().map(|m| m.address))
            .map(IpNet::from)
            .collect());
    }
    for (i, net) in input.metrics_sources.iter().enumerate() {
        if net.prefix_len() == 0 {
            return Err(Error::invalid(
                format!("metrics_sources[{i}]"),
                net.to_string(),
                "would open the metrics to every address",
            ));
        }
    }
    Ok(input.metrics_sources.clone())
}

/// Ingress: workers to send it to, two distinct NodePorts, an API port off 80/443, the TLS mode.
fn ingress(ing: &Ingress, workers: &[Backend], api_port: Port) -> Result<IngressV> {
    if workers.is_empty() {
        return Err(Error::missing(
            "workers",
            "ingress is on, so its backends need at least one worker",
        ));
    }
    let http = Port::new(ing.http_node_port).map_err(|e| e.at("ingress.http_node_port"))?;
    let https = Port::new(ing.https_node_port).map_err(|e| e.at("ingress.https_node_port"))?;
    if http == https {
        return Err(Error::conflict(
            "ingress.https_node_port",
            "must differ from ingress.http_node_port",
        ));
    }
    if [80, 443].contains(&api_port.get()) {
        return Err(Error::conflict(
            "api_port",
            "clashes with the ingress ports 80/443",
        ));
    }
    let tls = match &ing.tls {
        IngressTls::Passthrough => Tls::Passthrough,
        IngressTls::Terminate { cert_path } => Tls::Terminate(
            AbsPath::new(cert_path.clone()).map_err(|e| e.at("ingress.tls.cert_path"))?,
        ),
    };
    Ok(IngressV { http, https, tls })
}

/// keepalived's `advert_int`: 10 ms steps, from 10 ms to 40.95 s.
fn check_advert_interval(interval: Duration) -> Result<()> {
    let ms = interval.as_millis();
    if ms == 0
        || !ms.is_multiple_of(10)
        || ms > 40_950
        || !interval.subsec_nanos().is_multiple_of(1_000_000)
    {
        return Err(Error::invalid(
            "advert_interval",
            format!("{interval:?}"),
            "must be a multiple of 10 ms between 10 ms and 40.95 s",
        ));
    }
    Ok(())
}

/// Client, server and tunnel timeouts of long-lived streams (watches, `kubectl logs -f`).
const LONG_TIMEOUT: Duration = Duration::from_secs(3600);

fn haproxy_global() -> Result<Global> {
    Ok(Global {
        logs: vec![Log {
            target: Token::new("/dev/log")?,
            facility: Name::new("local0")?,
        }],
        chroot: Some(AbsPath::new("/var/lib/haproxy")?),
        user: Some(Name::new("haproxy")?),
        group: Some(Name::new("haproxy")?),
        daemon: false,
        // Needs about 2 x maxconn file descriptors; 8000 stays below the 20000 hard limit
        // some hosts and containers set, and is ample for the API plus ingress of a
        // Proxmox-sized cluster.
        maxconn: Some(8_000),
        stats_socket: Some(StatsSocket {
            path: AbsPath::new("/run/haproxy/admin.sock")?,
            mode: 0o660,
            level: StatsLevel::Admin,
        }),
        ssl_min_version: Some(TlsVersion::Tls12),
        extra: Vec::new(),
    })
}

fn haproxy_defaults() -> Defaults {
    let secs = Duration::from_secs;
    Defaults {
        mode: Some(Mode::Tcp),
        log_global: true,
        options: vec![ProxyOption::Dontlognull, ProxyOption::Redispatch(Some(1))],
        retries: Some(2),
        timeouts: vec![
            // A LAN connect takes well under a millisecond; after 1 s the server is
            // treated as dead and the connection redispatched to another one, before a
            // client's own timeout fires.
            (TimeoutKind::Connect, secs(1)),
            (TimeoutKind::Client, secs(60)),
            (TimeoutKind::Server, secs(60)),
            (TimeoutKind::Queue, secs(20)),
            // Read timeout of a health check (its connect timeout is `timeout connect`):
            // a slow /readyz gets 2 s, a blackholed host fails after 1 s.
            (TimeoutKind::Check, secs(2)),
        ],
        maxconn: None,
        extra: Vec::new(),
    }
}

/// The `default-server` every backend shares: active checks (fast once a server fails), and
/// passive ones that take a server out after one more failed check.
fn checked_server(send_proxy_v2: bool) -> ServerOptions {
    ServerOptions {
        check: true,
        inter: Some(Duration::from_secs(2)),
        fastinter: Some(Duration::from_millis(500)),
        downinter: Some(Duration::from_secs(2)),
        fall: Some(2),
        rise: Some(2),
        send_proxy_v2,
        observe: Some(Observe::Layer4),
        error_limit: Some(1),
        on_error: Some(OnError::SuddenDeath),
        ..ServerOptions::default()
    }
}

/// An L7 ingress frontend (TLS ended here): drops the client's `X-Forwarded-For`, sets
/// `X-Forwarded-For/Proto/Port`, sends to Traefik's web backend.
fn http_frontend(name: &str, bind: Bind, proto: &str, port: &str) -> Result<Proxy> {
    let header = |name: &str, value: &str| -> Result<HttpRequestRule> {
        Ok(HttpRequestRule::SetHeader {
            name: Name::new(name)?,
            value: Token::new(value)?,
        })
    };
    Proxy::frontend(name)
        .mode(Mode::Http)
        .bind(bind)
        .option(ProxyOption::Httplog)
        .option(ProxyOption::Forwardfor { except: None })
        .timeout(TimeoutKind::HttpRequest, Duration::from_secs(10))
        .timeout(TimeoutKind::HttpKeepAlive, Duration::from_secs(10))
        .http_request(HttpRequestRule::DelHeader {
            name: Name::new("X-Forwarded-For")?,
        })
        .http_request(header("X-Forwarded-Proto", proto)?)
        .http_request(header("X-Forwarded-Port", port)?)
        .default_backend(Name::new("ingress_web")?)
        .build()
}

impl Validated {
    /// Checks the whole input, field by field in the order users most often get them wrong;
    /// the first problem is returned.
    fn new(input: &HaInput) -> Result<Self> {
        let vip = check_vip(input)?;
        let nodes = lb_nodes(input)?;
        let (control_plane, workers) = cluster_backends(input)?;
        let api_port = Port::new(input.api_port).map_err(|e| e.at("api_port"))?;
        if [STATS_PORT, HEALTH_PORT, VAULT_PORT].contains(&api_port.get()) {
            return Err(Error::conflict(
                "api_port",
                format!(
                    "clashes with the stats ({STATS_PORT}), health ({HEALTH_PORT}) or Vault \
                     ({VAULT_PORT}) port"
                ),
            ));
        }
        let vault = members(&input.vault, "vault")?;
        not_the_vip(input, "vault", &input.vault)?;
        let metrics_sources = metrics_sources(input, &nodes, &control_plane, &workers)?;
        let ingress = match &input.ingress {
            None => None,
            Some(ing) => Some(ingress(ing, &workers, api_port)?),
        };
        if input.virtual_router_id == 0 {
            return Err(Error::invalid("virtual_router_id", "0", "must be 1 to 255"));
        }
        let health_path =
            UriPath::new(input.api_health_path.clone()).map_err(|e| e.at("api_health_path"))?;
        let script_user = Name::new(input.script_user.clone()).map_err(|e| e.at("script_user"))?;
        check_advert_interval(input.advert_interval)?;
        Ok(Self {
            nodes,
            vip,
            control_plane,
            workers,
            ingress,
            vrid: input.virtual_router_id,
            api_port,
            health_path,
            advert: input.advert_interval,
            script_user,
            vault,
            metrics_sources,
        })
    }

    fn haproxy(&self, node: &Node) -> Result<HaproxyConfig> {
        let mut cfg = HaproxyConfig::builder()
            .comment(format!(
                "Rendered by hakube-haproxy-config for LB node {}. Do not edit by hand.",
                node.name
            ))
            .global(haproxy_global()?)
            .defaults(haproxy_defaults());
        let mut proxies = self.api_proxies()?;
        if let Some(ing) = &self.ingress {
            proxies.extend(self.ingress_proxies(ing)?);
        }
        if !self.vault.is_empty() {
            proxies.extend(self.vault_proxies()?);
        }
        proxies.extend(self.stats_proxies(node)?);
        for p in proxies {
            cfg = cfg.proxy(p);
        }
        cfg.build()
    }

    /// The Kubernetes API: a TCP frontend on the API port and the control-plane backend with
    /// its HTTPS `/readyz` check.
    fn api_proxies(&self) -> Result<Vec<Proxy>> {
        let long = LONG_TIMEOUT;
        let frontend = Proxy::frontend("apiserver")
            .mode(Mode::Tcp)
            .bind(Bind::any(self.api_port))
            .option(ProxyOption::Tcplog)
            .timeout(TimeoutKind::Client, long)
            .default_backend(Name::new("apiserver")?)
            .build()?;
        let mut api = Proxy::backend("apiserver")
            .mode(Mode::Tcp)
            .balance(Balance::RoundRobin)
            .timeout(TimeoutKind::Server, long)
            .timeout(TimeoutKind::Tunnel, long)
            .http_check(HttpCheck {
                method: Name::new("GET")?,
                uri: self.health_path.clone(),
                expect_status: 200,
            })
            .default_server(ServerOptions {
                check_ssl: true,
                verify: Some(Verify::DangerNone),
                slowstart: Some(Duration::from_secs(10)),
                ..checked_server(false)
            });
        for cp in &self.control_plane {
            api = api.server(Server {
                name: cp.name.clone(),
                addr: cp.address,
                port: self.api_port,
                options: ServerOptions::default(),
            });
        }
        Ok(vec![frontend, api.build()?])
    }

    /// The workers' backend for one ingress NodePort.
    fn ingress_backend(
        &self,
        backend: &str,
        node_port: Port,
        send_proxy: bool,
        mode: Mode,
    ) -> Result<Proxy> {
        let mut b = Proxy::backend(backend)
            .mode(mode)
            .balance(Balance::RoundRobin)
            .default_server(checked_server(send_proxy))
            .timeout(TimeoutKind::Tunnel, LONG_TIMEOUT);
        for w in &self.workers {
            b = b.server(Server {
                name: w.name.clone(),
                addr: w.address,
                port: node_port,
                options: ServerOptions::default(),
            });
        }
        b.build()
    }

    /// Ingress on 80/443: TCP relayed with PROXY v2 (passthrough), or TLS ended here and HTTP
    /// sent to Traefik's web NodePort (terminate).
    fn ingress_proxies(&self, ing: &IngressV) -> Result<Vec<Proxy>> {
        let mut proxies = Vec::new();
        match &ing.tls {
            Tls::Passthrough => {
                for (name, listen, node_port) in [
                    ("ingress_http", 80_u16, ing.http),
                    ("ingress_https", 443, ing.https),
                ] {
                    proxies.push(
                        Proxy::frontend(name)
                            .mode(Mode::Tcp)
                            .bind(Bind::any(Port::new(listen)?))
                            .option(ProxyOption::Tcplog)
                            .default_backend(Name::new(name)?)
                            .build()?,
                    );
                    proxies.push(self.ingress_backend(name, node_port, true, Mode::Tcp)?);
                }
            }
            Tls::Terminate(cert) => {
                let mut https_bind = Bind::any(Port::new(443_u16)?);
                https_bind.tls = Some(BindTls {
                    cert: cert.clone(),
                    alpn: vec![Token::new("h2")?, Token::new("http/1.1")?],
                });
                proxies.push(http_frontend(
                    "ingress_http",
                    Bind::any(Port::new(80_u16)?),
                    "http",
                    "80",
                )?);
                proxies.push(http_frontend("ingress_https", https_bind, "https", "443")?);
                proxies.push(self.ingress_backend("ingress_web", ing.http, false, Mode::Http)?);
            }
        }
        Ok(proxies)
    }

    /// Vault API: TLS passes through to the Vault nodes (clients verify Vault's own
    /// certificate, which must name the VIP); the health check speaks TLS to each node.
    fn vault_proxies(&self) -> Result<Vec<Proxy>> {
        let port = Port::new(VAULT_PORT)?;
        let frontend = Proxy::frontend("vault")
            .mode(Mode::Tcp)
            .bind(Bind::any(port))
            .option(ProxyOption::Tcplog)
            .default_backend(Name::new("vault")?)
            .build()?;
        let mut b = Proxy::backend("vault")
            .mode(Mode::Tcp)
            .balance(Balance::RoundRobin)
            .http_check(HttpCheck {
                method: Name::new("GET")?,
                uri: UriPath::new("/v1/sys/health")?,
                expect_status: 200,
            })
            .default_server(ServerOptions {
                check_ssl: true,
                verify: Some(Verify::DangerNone),
                // Standbys are down here by design: a new active node is found quickly.
                downinter: Some(Duration::from_millis(500)),
                ..checked_server(false)
            });
        for v in &self.vault {
            b = b.server(Server {
                name: v.name.clone(),
                addr: v.address,
                port,
                options: ServerOptions::default(),
            });
        }
        Ok(vec![frontend, b.build()?])
    }

    /// Stats and metrics on the node's stats address, then the liveness endpoint keepalived
    /// checks on localhost.
    fn stats_proxies(&self, node: &Node) -> Result<Vec<Proxy>> {
        let stats = Proxy::frontend("stats")
            .mode(Mode::Http)
            .bind(Bind::ip(node.stats_address, Port::new(STATS_PORT)?))
            .http_request(HttpRequestRule::DenyUnlessSource {
                sources: self.metrics_sources.clone(),
            })
            .http_request(HttpRequestRule::PrometheusExporter {
                path: UriPath::new("/metrics")?,
            })
            .stats(Stats {
                uri: UriPath::new("/stats")?,
                refresh: Some(Duration::from_secs(10)),
            })
            .build()?;
        let healthz = Proxy::frontend("healthz")
            .mode(Mode::Http)
            .bind(Bind::ip(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                Port::new(HEALTH_PORT)?,
            ))
            .monitor_uri(UriPath::new("/healthz")?)
            .build()?;
        Ok(vec![stats, healthz])
    }

    fn keepalived(&self, node: &Node) -> Result<KeepalivedConfig> {
        let sub_second = !self.advert.as_millis().is_multiple_of(1000);
        let global_defs = GlobalDefs {
            router_id: Some(node.name.clone()),
            enable_script_security: true,
            script_user: Some(self.script_user.clone()),
            vrrp_version: sub_second.then_some(VrrpVersion::V3),
            // Real-time scheduling for the VRRP process, so load on the LB node cannot delay
            // sub-second adverts into a spurious failover.
            max_auto_priority: true,
            extra: Vec::new(),
        };
        let script = VrrpScript {
            name: Name::new(VRRP_SCRIPT)?,
            script: ScriptCommand::new(AbsPath::new(CHECK_SCRIPT_PATH)?),
            interval: Duration::from_secs(1),
            // A crashed HAProxy refuses at once, so this only bounds a hung one; generous
            // so a busy node does not fail its own check (every node in FAULT = no VIP).
            timeout: Some(Duration::from_secs(3)),
            fall: Some(2),
            rise: Some(2),
            weight: None,
            user: None,
        };
        let track = TrackFile {
            name: Name::new(TRACK_FILE)?,
            file: AbsPath::new(HAPROXY_STATE_FILE)?,
            weight: 0,
            // Down until HAProxy's ExecStartPost says it runs (after a reboot /run is empty).
            init_value: Some(1),
        };
        let mut instance = VrrpInstance::builder(VRRP_INSTANCE)
            .state(VrrpState::Backup)
            .nopreempt(true)
            .interface(node.interface.clone())
            .virtual_router_id(self.vrid)
            .priority(node.priority)
            .advert_interval(self.advert)
            .unicast_src_ip(node.address)
            .virtual_address(VirtualAddress {
                addr: self.vip,
                dev: Some(node.interface.clone()),
            })
            .track_script(Name::new(VRRP_SCRIPT)?)
            .track_file(Name::new(TRACK_FILE)?);
        for peer in self.nodes.iter().filter(|p| p.name != node.name) {
            instance = instance.unicast_peer(peer.address);
        }
        KeepalivedConfig::builder()
            .comment(format!(
                "Rendered by hakube-haproxy-config for LB node {}. Do not edit by hand.",
                node.name
            ))
            .global_defs(global_defs)
            .script(script)
            .track_file(track)
            .instance(instance.build()?)
            .build()
    }
}

/// The `haproxy.service` drop-in: systemd runs `ExecStopPost=` whenever HAProxy's main
/// process ends (stop, crash, OOM kill), so keepalived learns it at once through the track
/// file; `ExecStartPost=` runs once HAProxy reported ready (Type=notify).
fn haproxy_dropin() -> String {
    format!(
        "# Rendered by hakube-haproxy-config. Do not edit by hand.\n\
         # Tells keepalived (track_file {TRACK_FILE}) the moment HAProxy stops or dies, so this\n\
         # node leaves the VIP within one VRRP skew time; a hung HAProxy is caught by the\n\
         # {VRRP_SCRIPT} check instead. After changing this file: systemctl daemon-reload and\n\
         # restart haproxy.\n\
         [Service]\n\
         ExecStartPost=/bin/sh -c 'echo 0 > {HAPROXY_STATE_FILE}'\n\
         ExecStopPost=/bin/sh -c 'echo 1 > {HAPROXY_STATE_FILE}'\n"
    )
}

/// The health check script keepalived runs (exit 0: this node's HAProxy answers).
fn check_script(user: &Name) -> String {
    format!(
        "#!/bin/sh\n\
         # Rendered by hakube-haproxy-config. Do not edit by hand.\n\
         # keepalived (vrrp_script {VRRP_SCRIPT}) runs this as {user} every second. Two failures\n\
         # in a row put this node's VRRP instance in FAULT: it drops the VIP and a peer takes it.\n\
         # It asks HAProxy's own monitor endpoint, which answers while HAProxy runs, whatever\n\
         # the state of the apiservers behind it (so losing the control plane does not also\n\
         # take the VIP away).\n\
         exec /usr/bin/curl --silent --fail --max-time 2 --output /dev/null \\\n    \
         http://127.0.0.1:{HEALTH_PORT}/healthz\n"
    )
}

impl fmt::Display for LbNodeFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for file in self.files() {
            writeln!(f, "==> {} (mode {:o}) <==", file.path, file.mode)?;
            f.write_str(&file.text())?;
        }
        Ok(())
    }
}
