//! A typed model of the parts of `haproxy.cfg` a TCP/HTTP load balancer needs, rendered
//! through [`Display`].
//!
//! Leaf types ([`Global`], [`Defaults`], [`Bind`], [`Server`], [`ServerOptions`], ...) are plain
//! structs whose fields are already-validated values, so they cannot carry text that breaks
//! the grammar. Sections whose parts must fit together are built with a builder that checks
//! them in `build()`: [`Proxy::frontend`] / [`Proxy::backend`] / [`Proxy::listen`] and
//! [`HaproxyConfig::builder`].

use core::fmt::{self, Display};
use core::time::Duration;
use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::value::{AbsPath, Directive, HaproxyDuration, Name, Port, Token, UriPath, check_millis};

const INDENT: &str = "    ";

/// The proxy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Layer 4: bytes are relayed, TLS passes through untouched.
    Tcp,
    /// Layer 7: HTTP is parsed, headers can be read and set.
    Http,
}

impl Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Http => "http",
        })
    }
}

/// A `log` line: where HAProxy sends its logs and with which syslog facility.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Log {
    /// `/dev/log`, `stdout`, `127.0.0.1:514`, ...
    pub target: Token,
    /// The syslog facility (`local0`).
    pub facility: Name,
}

/// The privilege level of a stats socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsLevel {
    /// Read-only, no sensitive data.
    User,
    /// Read-only plus a few non-sensitive changes.
    Operator,
    /// Everything, including disabling servers.
    Admin,
}

impl Display for StatsLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::User => "user",
            Self::Operator => "operator",
            Self::Admin => "admin",
        })
    }
}

/// The runtime API socket (`stats socket /run/haproxy/admin.sock mode 660 level admin`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatsSocket {
    /// The UNIX socket path.
    pub path: AbsPath,
    /// The socket's file mode (rendered in octal; `0o660`).
    pub mode: u32,
    /// What a client of the socket may do.
    pub level: StatsLevel,
}

/// The lowest TLS version accepted on `bind ... ssl` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tls12 => "TLSv1.2",
            Self::Tls13 => "TLSv1.3",
        })
    }
}

/// The `global` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Global {
    /// `log` lines.
    pub logs: Vec<Log>,
    /// `chroot` directory for the workers.
    pub chroot: Option<AbsPath>,
    /// The user the workers run as.
    pub user: Option<Name>,
    /// The group the workers run as.
    pub group: Option<Name>,
    /// Fork into the background (not wanted under systemd's `-Ws`).
    pub daemon: bool,
    /// Process-wide connection limit.
    pub maxconn: Option<u32>,
    /// The runtime API socket.
    pub stats_socket: Option<StatsSocket>,
    /// `ssl-default-bind-options ssl-min-ver ...`.
    pub ssl_min_version: Option<TlsVersion>,
    /// Further directives, rendered last.
    pub extra: Vec<Directive>,
}

impl Display for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "global")?;
        for log in &self.logs {
            writeln!(f, "{INDENT}log {} {}", log.target, log.facility)?;
        }
        if let Some(chroot) = &self.chroot {
            writeln!(f, "{INDENT}chroot {chroot}")?;
        }
        if let Some(socket) = &self.stats_socket {
            writeln!(
                f,
                "{INDENT}stats socket {} mode {:o} level {}",
                socket.path, socket.mode, socket.level
            )?;
        }
        if let Some(user) = &self.user {
            writeln!(f, "{INDENT}user {user}")?;
        }
        if let Some(group) = &self.group {
            writeln!(f, "{INDENT}group {group}")?;
        }
        if self.daemon {
            writeln!(f, "{INDENT}daemon")?;
        }
        if let Some(maxconn) = self.maxconn {
            writeln!(f, "{INDENT}maxconn {maxconn}")?;
        }
        if let Some(v) = self.ssl_min_version {
            writeln!(f, "{INDENT}ssl-default-bind-options ssl-min-ver {v}")?;
        }
        for d in &self.extra {
            writeln!(f, "{INDENT}{d}")?;
        }
        Ok(())
    }
}

/// An `option ...` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyOption {
    /// `option tcplog`: TCP log format.
    Tcplog,
    /// `option httplog`: HTTP log format.
    Httplog,
    /// `option dontlognull`: do not log connections that sent nothing (health probes).
    Dontlognull,
    /// `option redispatch [N]`: on connection failure, retry on another server (every `N`th
    /// retry; `None` = the last retry only).
    Redispatch(Option<u32>),
    /// `option http-server-close`.
    HttpServerClose,
    /// `option forwardfor [except NET]`: add `X-Forwarded-For`.
    Forwardfor {
        /// Do not add the header for clients in this network.
        except: Option<IpNet>,
    },
    /// `option log-health-checks`.
    LogHealthChecks,
    /// `option tcpka`: TCP keep-alives on both sides.
    Tcpka,
}

impl ProxyOption {
    fn http_only(&self) -> bool {
        matches!(
            self,
            Self::Httplog | Self::HttpServerClose | Self::Forwardfor { .. }
        )
    }
}

impl Display for ProxyOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcplog => f.write_str("option tcplog"),
            Self::Httplog => f.write_str("option httplog"),
            Self::Dontlognull => f.write_str("option dontlognull"),
            Self::Redispatch(None) => f.write_str("option redispatch"),
            Self::Redispatch(Some(n)) => write!(f, "option redispatch {n}"),
            Self::HttpServerClose => f.write_str("option http-server-close"),
            Self::Forwardfor { except: None } => f.write_str("option forwardfor"),
            Self::Forwardfor { except: Some(net) } => write!(f, "option forwardfor except {net}"),
            Self::LogHealthChecks => f.write_str("option log-health-checks"),
            Self::Tcpka => f.write_str("option tcpka"),
        }
    }
}

/// Which `timeout ...` a duration sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// `timeout connect`: establishing a connection to a server.
    Connect,
    /// `timeout client`: client inactivity.
    Client,
    /// `timeout server`: server inactivity.
    Server,
    /// `timeout tunnel`: inactivity of an established bidirectional stream (TCP mode,
    /// WebSocket); supersedes client and server timeouts.
    Tunnel,
    /// `timeout queue`: waiting for a free server slot.
    Queue,
    /// `timeout check`: health check read timeout.
    Check,
    /// `timeout http-request`: receiving a complete HTTP request.
    HttpRequest,
    /// `timeout http-keep-alive`: waiting for the next HTTP request.
    HttpKeepAlive,
    /// `timeout client-fin`.
    ClientFin,
    /// `timeout server-fin`.
    ServerFin,
}

impl Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::Client => "client",
            Self::Server => "server",
            Self::Tunnel => "tunnel",
            Self::Queue => "queue",
            Self::Check => "check",
            Self::HttpRequest => "http-request",
            Self::HttpKeepAlive => "http-keep-alive",
            Self::ClientFin => "client-fin",
            Self::ServerFin => "server-fin",
        })
    }
}

fn check_timeouts(timeouts: &[(TimeoutKind, Duration)]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for (kind, d) in timeouts {
        check_millis(*d).map_err(|e| e.at(format!("timeout {kind}")))?;
        if !seen.insert(*kind) {
            return Err(Error::duplicate("timeouts", format!("timeout {kind}")));
        }
    }
    Ok(())
}

/// The `defaults` section: settings every following proxy inherits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Defaults {
    /// The default mode (HAProxy's own default is TCP).
    pub mode: Option<Mode>,
    /// `log global`: use the global `log` lines.
    pub log_global: bool,
    /// `option ...` lines.
    pub options: Vec<ProxyOption>,
    /// `retries N`: connection attempts to a server after the first failed one.
    pub retries: Option<u32>,
    /// `timeout ...` lines.
    pub timeouts: Vec<(TimeoutKind, Duration)>,
    /// Per-proxy connection limit.
    pub maxconn: Option<u32>,
    /// Further directives, rendered last.
    pub extra: Vec<Directive>,
}

impl Defaults {
    fn validate(&self) -> Result<()> {
        check_timeouts(&self.timeouts).map_err(|e| e.within("defaults"))?;
        if self.mode != Some(Mode::Http)
            && let Some(o) = self.options.iter().find(|o| o.http_only())
        {
            return Err(Error::conflict(
                "defaults.options",
                format!("`{o}` needs `mode http`"),
            ));
        }
        Ok(())
    }
}

impl Display for Defaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "defaults")?;
        if let Some(mode) = self.mode {
            writeln!(f, "{INDENT}mode {mode}")?;
        }
        if self.log_global {
            writeln!(f, "{INDENT}log global")?;
        }
        for o in &self.options {
            writeln!(f, "{INDENT}{o}")?;
        }
        if let Some(r) = self.retries {
            writeln!(f, "{INDENT}retries {r}")?;
        }
        if let Some(m) = self.maxconn {
            writeln!(f, "{INDENT}maxconn {m}")?;
        }
        for (kind, d) in &self.timeouts {
            writeln!(f, "{INDENT}timeout {kind} {}", HaproxyDuration(*d))?;
        }
        for d in &self.extra {
            writeln!(f, "{INDENT}{d}")?;
        }
        Ok(())
    }
}

/// The address part of a `bind` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BindAddr {
    /// Every local IPv4 address (`*`), including a VIP that arrives later, so backup nodes
    /// need no `net.ipv4.ip_nonlocal_bind`.
    Any,
    /// One local address.
    Ip(IpAddr),
}

/// TLS termination on a `bind` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindTls {
    /// A PEM file (or directory) holding the certificate chain and its key.
    pub cert: AbsPath,
    /// ALPN protocols to offer (`h2`, `http/1.1`).
    pub alpn: Vec<Token>,
}

/// A `bind` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bind {
    /// The address to listen on.
    pub addr: BindAddr,
    /// The port to listen on.
    pub port: Port,
    /// Terminate TLS here.
    pub tls: Option<BindTls>,
}

impl Bind {
    /// `bind *:PORT`.
    #[must_use]
    pub fn any(port: Port) -> Self {
        Self {
            addr: BindAddr::Any,
            port,
            tls: None,
        }
    }

    /// `bind ADDR:PORT`.
    #[must_use]
    pub fn ip(addr: IpAddr, port: Port) -> Self {
        Self {
            addr: BindAddr::Ip(addr),
            port,
            tls: None,
        }
    }
}

struct HostPort(IpAddr, Port);

impl Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

impl Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            BindAddr::Any => write!(f, "bind *:{}", self.port)?,
            BindAddr::Ip(ip) => write!(f, "bind {}", HostPort(ip, self.port))?,
        }
        if let Some(tls) = &self.tls {
            write!(f, " ssl crt {}", tls.cert)?;
            if !tls.alpn.is_empty() {
                let alpn: Vec<&str> = tls.alpn.iter().map(Token::as_str).collect();
                write!(f, " alpn {}", alpn.join(","))?;
            }
        }
        Ok(())
    }
}

/// The load-balancing algorithm of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Balance {
    /// Each server in turn, weighted.
    RoundRobin,
    /// The server with the fewest connections (good for long-lived streams).
    LeastConn,
    /// A hash of the client address.
    Source,
    /// The first server with free slots.
    First,
}

impl Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RoundRobin => "roundrobin",
            Self::LeastConn => "leastconn",
            Self::Source => "source",
            Self::First => "first",
        })
    }
}

/// An HTTP health check: `option httpchk` with `http-check send` / `http-check expect`.
///
/// Whether the check speaks TLS is a server option ([`ServerOptions::check_ssl`]), so one
/// backend can check a TLS API server in TCP mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    /// The request method (`GET`).
    pub method: Name,
    /// The request path (`/readyz`).
    pub uri: UriPath,
    /// The status a healthy server answers.
    pub expect_status: u16,
}

/// Certificate verification for server-side TLS (traffic or checks).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verify {
    /// Verify against this CA bundle.
    Required {
        /// The CA bundle (PEM).
        ca_file: AbsPath,
    },
    /// `verify none`: accept any certificate. Named as the danger it is: use it for health
    /// checks whose answer is not trusted for anything but liveness.
    DangerNone,
}

/// What real traffic a server's passive health check watches (`observe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Observe {
    /// Connection errors (TCP and HTTP mode).
    Layer4,
    /// HTTP errors (HTTP mode only).
    Layer7,
}

/// What HAProxy does when the passive health check counts `error-limit` errors (`on-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnError {
    /// Switch to `fastinter` checks.
    FastInter,
    /// Count it as one failed active check.
    FailCheck,
    /// One more failed check marks the server down.
    SuddenDeath,
    /// Mark the server down at once (active checks bring it back after `rise`).
    MarkDown,
}

/// Options of a `server` line, also usable as a backend's `default-server`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ServerOptions {
    /// `check`: health-check this server.
    pub check: bool,
    /// `check-ssl`: run the health check over TLS.
    pub check_ssl: bool,
    /// `ssl`: speak TLS to the server for traffic (L7 re-encryption).
    pub ssl: bool,
    /// Certificate verification when `ssl` or `check_ssl` is on.
    pub verify: Option<Verify>,
    /// `inter`: interval between checks while the state is stable.
    pub inter: Option<Duration>,
    /// `fastinter`: interval while a state change is being confirmed.
    pub fastinter: Option<Duration>,
    /// `downinter`: interval while the server is down.
    pub downinter: Option<Duration>,
    /// `fall`: failed checks before the server is marked down.
    pub fall: Option<u32>,
    /// `rise`: passed checks before the server is marked up.
    pub rise: Option<u32>,
    /// `slowstart`: ramp the weight up over this time after the server comes up.
    pub slowstart: Option<Duration>,
    /// `maxconn`: concurrent connections to this server.
    pub maxconn: Option<u32>,
    /// `maxqueue`: queued connections for this server.
    pub maxqueue: Option<u32>,
    /// `weight` (0 to 256).
    pub weight: Option<u16>,
    /// `send-proxy-v2`: prefix each connection with a PROXY protocol v2 header.
    pub send_proxy_v2: bool,
    /// `check-send-proxy`: send the PROXY header on health checks too.
    pub check_send_proxy: bool,
    /// `observe`: also judge the server by real traffic (passive health check).
    pub observe: Option<Observe>,
    /// `error-limit`: consecutive errors that trigger `on-error`.
    pub error_limit: Option<u32>,
    /// `on-error`: what to do when `error-limit` is reached.
    pub on_error: Option<OnError>,
}

impl ServerOptions {
    fn validate(&self) -> Result<()> {
        for (field, d) in [
            ("inter", self.inter),
            ("fastinter", self.fastinter),
            ("downinter", self.downinter),
            ("slowstart", self.slowstart),
        ] {
            if let Some(d) = d {
                check_millis(d).map_err(|e| e.at(field))?;
            }
        }
        for (field, n) in [("fall", self.fall), ("rise", self.rise)] {
            if n == Some(0) {
                return Err(Error::invalid(field, "0", "must be at least 1"));
            }
        }
        if let Some(w) = self.weight
            && w > 256
        {
            return Err(Error::invalid("weight", w.to_string(), "must be 0 to 256"));
        }
        if self.error_limit == Some(0) {
            return Err(Error::invalid("error-limit", "0", "must be at least 1"));
        }
        if (self.error_limit.is_some() || self.on_error.is_some()) && self.observe.is_none() {
            return Err(Error::conflict(
                "observe",
                "error-limit / on-error need `observe`",
            ));
        }
        if (self.check_ssl || self.check_send_proxy) && !self.check {
            return Err(Error::conflict(
                "check",
                "check-ssl / check-send-proxy need `check` on",
            ));
        }
        Ok(())
    }
}

impl Display for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = Vec::new();
        if self.check {
            words.push("check".into());
        }
        if self.check_ssl {
            words.push("check-ssl".into());
        }
        if self.ssl {
            words.push("ssl".into());
        }
        match &self.verify {
            Some(Verify::DangerNone) => words.push("verify none".into()),
            Some(Verify::Required { ca_file }) => {
                words.push(format!("verify required ca-file {ca_file}"));
            }
            None => {}
        }
        for (key, d) in [
            ("inter", self.inter),
            ("fastinter", self.fastinter),
            ("downinter", self.downinter),
        ] {
            if let Some(d) = d {
                words.push(format!("{key} {}", HaproxyDuration(d)));
            }
        }
        if let Some(n) = self.fall {
            words.push(format!("fall {n}"));
        }
        if let Some(n) = self.rise {
            words.push(format!("rise {n}"));
        }
        if let Some(d) = self.slowstart {
            words.push(format!("slowstart {}", HaproxyDuration(d)));
        }
        if let Some(n) = self.maxconn {
            words.push(format!("maxconn {n}"));
        }
        if let Some(n) = self.maxqueue {
            words.push(format!("maxqueue {n}"));
        }
        if let Some(n) = self.weight {
            words.push(format!("weight {n}"));
        }
        if self.send_proxy_v2 {
            words.push("send-proxy-v2".into());
        }
        if self.check_send_proxy {
            words.push("check-send-proxy".into());
        }
        match self.observe {
            Some(Observe::Layer4) => words.push("observe layer4".into()),
            Some(Observe::Layer7) => words.push("observe layer7".into()),
            None => {}
        }
        if let Some(n) = self.error_limit {
            words.push(format!("error-limit {n}"));
        }
        match self.on_error {
            Some(OnError::FastInter) => words.push("on-error fastinter".into()),
            Some(OnError::FailCheck) => words.push("on-error fail-check".into()),
            Some(OnError::SuddenDeath) => words.push("on-error sudden-death".into()),
            Some(OnError::MarkDown) => words.push("on-error mark-down".into()),
            None => {}
        }
        f.write_str(&words.join(" "))
    }
}

/// A `server` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Server {
    /// The server's name (shown in stats and logs).
    pub name: Name,
    /// Its address.
    pub addr: IpAddr,
    /// Its port.
    pub port: Port,
    /// Its options (on top of the backend's `default-server`).
    pub options: ServerOptions,
}

impl Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server {} {}", self.name, HostPort(self.addr, self.port))?;
        let opts = self.options.to_string();
        if !opts.is_empty() {
            write!(f, " {opts}")?;
        }
        Ok(())
    }
}

/// An `http-request` rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpRequestRule {
    /// `http-request set-header NAME VALUE`.
    SetHeader {
        /// The header name.
        name: Name,
        /// The value (may use sample fetches such as `%[src]`).
        value: Token,
    },
    /// `http-request del-header NAME` (drop a client-supplied header such as
    /// `X-Forwarded-For` before `option forwardfor` adds the real one).
    DelHeader {
        /// The header name.
        name: Name,
    },
    /// `http-request redirect scheme https unless { ssl_fc }`.
    RedirectToHttps,
    /// `http-request use-service prometheus-exporter if { path PATH }`: HAProxy's built-in
    /// Prometheus exporter (HAProxy 2.0+ built with PROMEX, as Debian's is).
    PrometheusExporter {
        /// The path that serves the metrics (`/metrics`).
        path: UriPath,
    },
    /// `http-request deny unless { src NET ... }`: only these client networks get an answer
    /// other than 403 (an anonymous ACL on the source address).
    DenyUnlessSource {
        /// The allowed client networks (at least one; checked by [`ProxyBuilder::build`]).
        sources: Vec<IpNet>,
    },
}

impl Display for HttpRequestRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SetHeader { name, value } => write!(f, "http-request set-header {name} {value}"),
            Self::DelHeader { name } => write!(f, "http-request del-header {name}"),
            Self::RedirectToHttps => {
                f.write_str("http-request redirect scheme https unless { ssl_fc }")
            }
            Self::PrometheusExporter { path } => write!(
                f,
                "http-request use-service prometheus-exporter if {{ path {path} }}"
            ),
            Self::DenyUnlessSource { sources } => {
                f.write_str("http-request deny unless { src")?;
                for net in sources {
                    if net.prefix_len() == net.max_prefix_len() {
                        write!(f, " {}", net.addr())?;
                    } else {
                        write!(f, " {net}")?;
                    }
                }
                f.write_str(" }")
            }
        }
    }
}

/// The built-in statistics page (`stats enable`, `stats uri`, `stats refresh`). Read-only:
/// this model has no admin switch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stats {
    /// The page's path (`/stats`).
    pub uri: UriPath,
    /// The page's auto-refresh interval.
    pub refresh: Option<Duration>,
}

/// Which kind of proxy section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// Accepts client connections (`bind`) and hands them to a backend.
    Frontend,
    /// A pool of servers.
    Backend,
    /// A frontend and a backend in one section.
    Listen,
}

impl Display for ProxyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Frontend => "frontend",
            Self::Backend => "backend",
            Self::Listen => "listen",
        })
    }
}

/// A `frontend`, `backend` or `listen` section, validated by [`ProxyBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    name: Name,
    mode: Option<Mode>,
    log_global: bool,
    binds: Vec<Bind>,
    options: Vec<ProxyOption>,
    timeouts: Vec<(TimeoutKind, Duration)>,
    retries: Option<u32>,
    maxconn: Option<u32>,
    balance: Option<Balance>,
    http_check: Option<HttpCheck>,
    monitor_uri: Option<UriPath>,
    http_request: Vec<HttpRequestRule>,
    stats: Option<Stats>,
    default_backend: Option<Name>,
    default_server: Option<ServerOptions>,
    servers: Vec<Server>,
    extra: Vec<Directive>,
}

impl Proxy {
    /// Starts a `frontend` section.
    pub fn frontend(name: impl Into<String>) -> ProxyBuilder {
        ProxyBuilder::new(ProxyKind::Frontend, name.into())
    }

    /// Starts a `backend` section.
    pub fn backend(name: impl Into<String>) -> ProxyBuilder {
        ProxyBuilder::new(ProxyKind::Backend, name.into())
    }

    /// Starts a `listen` section.
    pub fn listen(name: impl Into<String>) -> ProxyBuilder {
        ProxyBuilder::new(ProxyKind::Listen, name.into())
    }

    /// The section kind.
    #[must_use]
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The section name.
    #[must_use]
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The `bind` lines.
    #[must_use]
    pub fn binds(&self) -> &[Bind] {
        &self.binds
    }

    /// The `server` lines.
    #[must_use]
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// The mode set on this section, if any.
    #[must_use]
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    fn label(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

impl Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {}", self.kind, self.name)?;
        if let Some(mode) = self.mode {
            writeln!(f, "{INDENT}mode {mode}")?;
        }
        if self.log_global {
            writeln!(f, "{INDENT}log global")?;
        }
        for b in &self.binds {
            writeln!(f, "{INDENT}{b}")?;
        }
        for o in &self.options {
            writeln!(f, "{INDENT}{o}")?;
        }
        if let Some(r) = self.retries {
            writeln!(f, "{INDENT}retries {r}")?;
        }
        if let Some(m) = self.maxconn {
            writeln!(f, "{INDENT}maxconn {m}")?;
        }
        for (kind, d) in &self.timeouts {
            writeln!(f, "{INDENT}timeout {kind} {}", HaproxyDuration(*d))?;
        }
        if let Some(uri) = &self.monitor_uri {
            writeln!(f, "{INDENT}monitor-uri {uri}")?;
        }
        for r in &self.http_request {
            writeln!(f, "{INDENT}{r}")?;
        }
        if let Some(stats) = &self.stats {
            writeln!(f, "{INDENT}stats enable")?;
            writeln!(f, "{INDENT}stats uri {}", stats.uri)?;
            if let Some(d) = stats.refresh {
                writeln!(f, "{INDENT}stats refresh {}", HaproxyDuration(d))?;
            }
        }
        if let Some(b) = &self.default_backend {
            writeln!(f, "{INDENT}default_backend {b}")?;
        }
        if let Some(balance) = self.balance {
            writeln!(f, "{INDENT}balance {balance}")?;
        }
        if let Some(check) = &self.http_check {
            writeln!(f, "{INDENT}option httpchk")?;
            writeln!(
                f,
                "{INDENT}http-check send meth {} uri {}",
                check.method, check.uri
            )?;
            writeln!(
                f,
                "{INDENT}http-check expect status {}",
                check.expect_status
            )?;
        }
        if let Some(ds) = &self.default_server {
            let opts = ds.to_string();
            if !opts.is_empty() {
                writeln!(f, "{INDENT}default-server {opts}")?;
            }
        }
        for s in &self.servers {
            writeln!(f, "{INDENT}{s}")?;
        }
        for d in &self.extra {
            writeln!(f, "{INDENT}{d}")?;
        }
        Ok(())
    }
}

/// Builds a [`Proxy`]; every check runs in [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct ProxyBuilder {
    kind: ProxyKind,
    name: String,
    mode: Option<Mode>,
    log_global: bool,
    binds: Vec<Bind>,
    options: Vec<ProxyOption>,
    timeouts: Vec<(TimeoutKind, Duration)>,
    retries: Option<u32>,
    maxconn: Option<u32>,
    balance: Option<Balance>,
    http_check: Option<HttpCheck>,
    monitor_uri: Option<UriPath>,
    http_request: Vec<HttpRequestRule>,
    stats: Option<Stats>,
    default_backend: Option<Name>,
    default_server: Option<ServerOptions>,
    servers: Vec<Server>,
    extra: Vec<Directive>,
}

impl ProxyBuilder {
    fn new(kind: ProxyKind, name: String) -> Self {
        Self {
            kind,
            name,
            mode: None,
            log_global: false,
            binds: Vec::new(),
            options: Vec::new(),
            timeouts: Vec::new(),
            retries: None,
            maxconn: None,
            balance: None,
            http_check: None,
            monitor_uri: None,
            http_request: Vec::new(),
            stats: None,
            default_backend: None,
            default_server: None,
            servers: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Sets `mode`.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Adds `log global`.
    pub fn log_global(mut self) -> Self {
        self.log_global = true;
        self
    }

    /// Adds a `bind` line (frontend, listen).
    pub fn bind(mut self, bind: Bind) -> Self {
        self.binds.push(bind);
        self
    }

    /// Adds an `option` line.
    pub fn option(mut self, option: ProxyOption) -> Self {
        self.options.push(option);
        self
    }

    /// Adds a `timeout` line.
    pub fn timeout(mut self, kind: TimeoutKind, duration: Duration) -> Self {
        self.timeouts.push((kind, duration));
        self
    }

    /// Sets `retries`.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// Sets `maxconn`.
    pub fn maxconn(mut self, maxconn: u32) -> Self {
        self.maxconn = Some(maxconn);
        self
    }

    /// Sets `balance` (backend, listen).
    pub fn balance(mut self, balance: Balance) -> Self {
        self.balance = Some(balance);
        self
    }

    /// Sets the HTTP health check (backend, listen).
    pub fn http_check(mut self, check: HttpCheck) -> Self {
        self.http_check = Some(check);
        self
    }

    /// Sets `monitor-uri`: HAProxy itself answers 200 on this path, a liveness probe of the
    /// load balancer (frontend, listen; HTTP mode).
    pub fn monitor_uri(mut self, uri: UriPath) -> Self {
        self.monitor_uri = Some(uri);
        self
    }

    /// Adds an `http-request` rule (HTTP mode).
    pub fn http_request(mut self, rule: HttpRequestRule) -> Self {
        self.http_request.push(rule);
        self
    }

    /// Enables the statistics page (HTTP mode).
    pub fn stats(mut self, stats: Stats) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Sets `default_backend` (frontend, listen).
    pub fn default_backend(mut self, backend: Name) -> Self {
        self.default_backend = Some(backend);
        self
    }

    /// Sets `default-server` (backend, listen).
    pub fn default_server(mut self, options: ServerOptions) -> Self {
        self.default_server = Some(options);
        self
    }

    /// Adds a `server` line (backend, listen).
    pub fn server(mut self, server: Server) -> Self {
        self.servers.push(server);
        self
    }

    /// Adds a directive the model does not cover, rendered last.
    pub fn directive(mut self, directive: Directive) -> Self {
        self.extra.push(directive);
        self
    }

    /// Checks the section and builds it.
    ///
    /// # Errors
    /// - [`Error::InvalidValue`] for a bad name or duration;
    /// - [`Error::Missing`] for a frontend/listen without `bind` or a backend without servers;
    /// - [`Error::Duplicate`] for repeated server names or timeouts;
    /// - [`Error::Conflict`] for a directive the section kind does not take.
    pub fn build(self) -> Result<Proxy> {
        let name = Name::new(self.name.clone()).map_err(|e| e.at(format!("{} name", self.kind)))?;
        let label = format!("{} {name}", self.kind);
        let fail = |e: Error| e.within(&label);
        let conflict = |what: &str| {
            Err(Error::conflict(
                label.clone(),
                format!("a {} section cannot have {what}", self.kind),
            ))
        };
        match self.kind {
            ProxyKind::Frontend => {
                if !self.servers.is_empty() || self.default_server.is_some() {
                    return conflict("servers");
                }
                if self.balance.is_some() || self.http_check.is_some() {
                    return conflict("`balance` or a health check");
                }
            }
            ProxyKind::Backend => {
                if !self.binds.is_empty() {
                    return conflict("`bind` lines");
                }
                if self.default_backend.is_some() || self.monitor_uri.is_some() {
                    return conflict("`default_backend` or `monitor-uri`");
                }
            }
            ProxyKind::Listen => {}
        }
        if self.kind != ProxyKind::Backend && self.binds.is_empty() {
            return Err(Error::missing(
                format!("{label}.binds"),
                "a frontend or listen section needs at least one `bind`",
            ));
        }
        if self.kind == ProxyKind::Backend && self.servers.is_empty() {
            return Err(Error::missing(
                format!("{label}.servers"),
                "a backend needs at least one server",
            ));
        }
        check_timeouts(&self.timeouts).map_err(fail)?;
        if self.http_request.iter().any(
            |r| matches!(r, HttpRequestRule::DenyUnlessSource { sources } if sources.is_empty()),
        ) {
            return Err(Error::missing(
                format!("{label}.http_request"),
                "`deny unless { src ... }` needs at least one allowed network",
            ));
        }
        let mut seen = BTreeSet::new();
        for s in &self.servers {
            if !seen.insert(s.name.as_str()) {
                return Err(Error::duplicate(
                    format!("{label}.servers"),
                    s.name.as_str(),
                ));
            }
            s.options
                .validate()
                .map_err(|e| e.within(&format!("{label}: server {}", s.name)))?;
        }
        if let Some(ds) = &self.default_server {
            ds.validate()
                .map_err(|e| e.within(&format!("{label}.default-server")))?;
        }
        let mut seen_binds = BTreeSet::new();
        for b in &self.binds {
            if !seen_binds.insert((b.addr, b.port)) {
                return Err(Error::duplicate(format!("{label}.binds"), b.to_string()));
            }
        }
        if let Some(check) = &self.http_check
            && !(100..=599).contains(&check.expect_status)
        {
            return Err(Error::invalid(
                format!("{label}.http_check.expect_status"),
                check.expect_status.to_string(),
                "an HTTP status is 100 to 599",
            ));
        }
        if let Some(d) = self.stats.as_ref().and_then(|s| s.refresh) {
            check_millis(d).map_err(|e| e.at(format!("{label}.stats.refresh")))?;
        }
        Ok(Proxy {
            kind: self.kind,
            name,
            mode: self.mode,
            log_global: self.log_global,
            binds: self.binds,
            options: self.options,
            timeouts: self.timeouts,
            retries: self.retries,
            maxconn: self.maxconn,
            balance: self.balance,
            http_check: self.http_check,
            monitor_uri: self.monitor_uri,
            http_request: self.http_request,
            stats: self.stats,
            default_backend: self.default_backend,
            default_server: self.default_server,
            servers: self.servers,
            extra: self.extra,
        })
    }
}

/// A whole `haproxy.cfg`, validated by [`HaproxyConfigBuilder::build`].
///
/// ```
/// use hakube_haproxy_config::haproxy::*;
/// use hakube_haproxy_config::{Name, Port};
/// use std::net::{IpAddr, Ipv4Addr};
///
/// let backend = Proxy::backend("web")
///     .mode(Mode::Tcp)
///     .balance(Balance::RoundRobin)
///     .server(Server {
///         name: Name::new("web1")?,
///         addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 21)),
///         port: Port::new(8080u16)?,
///         options: ServerOptions { check: true, ..ServerOptions::default() },
///     })
///     .build()?;
/// let frontend = Proxy::frontend("web")
///     .mode(Mode::Tcp)
///     .bind(Bind::any(Port::new(80u16)?))
///     .default_backend(Name::new("web")?)
///     .build()?;
/// let cfg = HaproxyConfig::builder().proxy(frontend).proxy(backend).build()?;
/// let text = cfg.to_string();
/// assert!(text.contains("    server web1 10.0.0.21:8080 check\n"));
/// # Ok::<(), hakube_haproxy_config::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyConfig {
    header: Vec<String>,
    global: Global,
    defaults: Option<Defaults>,
    proxies: Vec<Proxy>,
}

impl HaproxyConfig {
    /// Starts an empty config (an empty `global` section, no `defaults`, no proxies).
    pub fn builder() -> HaproxyConfigBuilder {
        HaproxyConfigBuilder::default()
    }

    /// The `global` section.
    #[must_use]
    pub fn global(&self) -> &Global {
        &self.global
    }

    /// The `defaults` section.
    #[must_use]
    pub fn defaults(&self) -> Option<&Defaults> {
        self.defaults.as_ref()
    }

    /// The proxies in file order.
    #[must_use]
    pub fn proxies(&self) -> &[Proxy] {
        &self.proxies
    }

    /// The proxy of this kind and name.
    #[must_use]
    pub fn proxy(&self, kind: ProxyKind, name: &str) -> Option<&Proxy> {
        self.proxies
            .iter()
            .find(|p| p.kind == kind && p.name.as_str() == name)
    }
}

impl Display for HaproxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.header {
            writeln!(f, "# {line}")?;
        }
        if !self.header.is_empty() {
            writeln!(f)?;
        }
        write!(f, "{}", self.global)?;
        if let Some(d) = &self.defaults {
            write!(f, "\n{d}")?;
        }
        for p in &self.proxies {
            write!(f, "\n{p}")?;
        }
        Ok(())
    }
}

/// Builds a [`HaproxyConfig`]; cross-section checks run in [`build`](Self::build).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct HaproxyConfigBuilder {
    header: Vec<String>,
    global: Global,
    defaults: Option<Defaults>,
    proxies: Vec<Proxy>,
}

impl HaproxyConfigBuilder {
    /// Adds a comment line at the top of the file (one line; checked in `build`).
    pub fn comment(mut self, line: impl Into<String>) -> Self {
        self.header.push(line.into());
        self
    }

    /// Sets the `global` section.
    pub fn global(mut self, global: Global) -> Self {
        self.global = global;
        self
    }

    /// Sets the `defaults` section.
    pub fn defaults(mut self, defaults: Defaults) -> Self {
        self.defaults = Some(defaults);
        self
    }

    /// Appends a proxy section.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxies.push(proxy);
        self
    }

    /// Checks that the sections fit together and builds the config.
    ///
    /// # Errors
    /// - [`Error::Duplicate`] for two frontends (or two backends) with one name;
    /// - [`Error::Conflict`] for a `default_backend` that names no backend, or HTTP-only
    ///   directives in a TCP-mode section;
    /// - [`Error::InvalidValue`] for a comment line with a line break, or a bad duration in
    ///   `defaults`.
    pub fn build(self) -> Result<HaproxyConfig> {
        crate::value::check_comments(&self.header)?;
        if let Some(d) = &self.defaults {
            d.validate()?;
        }
        let default_mode = self
            .defaults
            .as_ref()
            .and_then(|d| d.mode)
            .unwrap_or(Mode::Tcp);
        let mut fronts = BTreeSet::new();
        let mut backs = BTreeSet::new();
        for p in &self.proxies {
            let name = p.name.as_str();
            let front = matches!(p.kind, ProxyKind::Frontend | ProxyKind::Listen);
            let back = matches!(p.kind, ProxyKind::Backend | ProxyKind::Listen);
            if (front && !fronts.insert(name)) || (back && !backs.insert(name)) {
                return Err(Error::duplicate("proxies", p.label()));
            }
            let mode = p.mode.unwrap_or(default_mode);
            if mode == Mode::Tcp {
                let http_only = p.stats.is_some()
                    || p.monitor_uri.is_some()
                    || !p.http_request.is_empty()
                    || p.options.iter().any(ProxyOption::http_only);
                if http_only {
                    return Err(Error::conflict(
                        p.label(),
                        "stats, monitor-uri, http-request rules and HTTP options need `mode http`",
                    ));
                }
            }
        }
        for p in &self.proxies {
            if let Some(b) = &p.default_backend
                && !backs.contains(b.as_str())
            {
                return Err(Error::conflict(
                    format!("{}.default_backend", p.label()),
                    format!("no backend or listen section is named {b}"),
                ));
            }
        }
        Ok(HaproxyConfig {
            header: self.header,
            global: self.global,
            defaults: self.defaults,
            proxies: self.proxies,
        })
    }
}
