//! The crate's own small cluster model: what a kubeadm bootstrap needs to know, nothing more.
//!
//! It does not depend on hakube's topology; the composing layer converts into it.

use core::fmt;
use core::str::FromStr;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hakube_host_state::{is_dns_label, is_dns_name, nets_overlap};
use ipnet::IpNet;

use crate::config::{Taint, TaintEffect};
use crate::error::{Error, Result};

/// Default CRI socket (containerd).
pub const CONTAINERD_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";

/// Everything the configuration renderer needs about one cluster.
///
/// Build it with [`ClusterInput::new`] and set the public fields; [`ClusterInput::validate`]
/// (called by every renderer) checks it and names the offending field.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterInput {
    /// Cluster name (`clusterName`).
    pub cluster_name: String,
    /// The API VIP (or a DNS name of it) held by the load balancers: the host of
    /// `controlPlaneEndpoint`, and the first API certificate SAN.
    pub api_vip: ApiHost,
    /// API port on the VIP and on every control plane (6443).
    pub api_port: u16,
    /// Pinned Kubernetes version.
    pub kubernetes_version: KubernetesVersion,
    /// Pod CIDR; must match the CNI's pool.
    pub pod_subnet: IpNet,
    /// Service CIDR.
    pub service_subnet: IpNet,
    /// Cluster DNS domain.
    pub dns_domain: String,
    /// Control-plane nodes; the first one runs `kubeadm init`.
    pub masters: Vec<MasterInput>,
    /// Worker nodes.
    pub workers: Vec<WorkerInput>,
    /// Extra API certificate SANs (addresses or DNS names): load balancer names and
    /// addresses, further names of the VIP.
    pub cert_sans: Vec<String>,
    /// CRI socket of every node.
    pub cri_socket: String,
    /// kube-proxy mode.
    pub proxy_mode: ProxyMode,
    /// Image registry; `None` keeps kubeadm's `registry.k8s.io`.
    pub image_repository: Option<String>,
}

/// Where clients reach the API: an address, or a DNS name (a DNS-1123 subdomain).
///
/// ```
/// use hakube_kubeadm::ApiHost;
/// let vip: ApiHost = "10.0.0.10".parse()?;
/// assert_eq!(vip, ApiHost::Ip("10.0.0.10".parse()?));
/// let name: ApiHost = "k8s-api.example.lan".parse()?;
/// assert_eq!(name.to_string(), "k8s-api.example.lan");
/// assert!("k8s api".parse::<ApiHost>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ApiHost {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS name.
    Dns(DnsName),
}

/// A DNS name (dot-separated DNS-1123 labels, lower case, at most 253 characters), checked
/// when it is made.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsName(String);

impl DnsName {
    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DnsName {
    type Err = Error;

    /// # Errors
    /// [`Error::InvalidInput`] naming `api_vip` when `s` is not a DNS name.
    fn from_str(s: &str) -> Result<Self> {
        check_dns_subdomain("api_vip", s)?;
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ApiHost {
    type Err = Error;

    /// An address when `s` parses as one, else a DNS name.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `api_vip` when `s` is neither.
    fn from_str(s: &str) -> Result<Self> {
        match s.parse::<IpAddr>() {
            Ok(ip) => Ok(Self::Ip(ip)),
            Err(_) => s.parse().map(Self::Dns),
        }
    }
}

impl fmt::Display for ApiHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Dns(name) => name.fmt(f),
        }
    }
}

impl From<IpAddr> for ApiHost {
    fn from(ip: IpAddr) -> Self {
        Self::Ip(ip)
    }
}

impl From<Ipv4Addr> for ApiHost {
    fn from(ip: Ipv4Addr) -> Self {
        Self::Ip(ip.into())
    }
}

impl From<Ipv6Addr> for ApiHost {
    fn from(ip: Ipv6Addr) -> Self {
        Self::Ip(ip.into())
    }
}

impl From<DnsName> for ApiHost {
    fn from(name: DnsName) -> Self {
        Self::Dns(name)
    }
}

/// A pinned Kubernetes version, `v1.MINOR.PATCH` (kubeadm's `kubernetesVersion`).
///
/// ```
/// use hakube_kubeadm::KubernetesVersion;
/// let v: KubernetesVersion = "v1.34.2".parse()?;
/// assert_eq!((v.minor(), v.patch()), (34, 2));
/// assert_eq!(v.to_string(), "v1.34.2");
/// assert_eq!(v, KubernetesVersion::new(34, 2));
/// let err = "1.34".parse::<KubernetesVersion>().unwrap_err();
/// assert!(err.to_string().contains("kubernetes_version"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubernetesVersion {
    minor: u32,
    patch: u32,
}

impl KubernetesVersion {
    /// Version `v1.<minor>.<patch>`.
    #[must_use]
    pub const fn new(minor: u32, patch: u32) -> Self {
        Self { minor, patch }
    }

    /// The major version: always 1.
    #[must_use]
    pub const fn major(self) -> u32 {
        1
    }

    /// The minor version (`33` for `v1.33.2`; the pkgs.k8s.io repository is per minor).
    #[must_use]
    pub const fn minor(self) -> u32 {
        self.minor
    }

    /// The patch version.
    #[must_use]
    pub const fn patch(self) -> u32 {
        self.patch
    }
}

impl FromStr for KubernetesVersion {
    type Err = Error;

    /// # Errors
    /// [`Error::InvalidInput`] naming `kubernetes_version` when `s` is not `v1.MINOR.PATCH`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("kubernetes_version", format!("{s:?} is not v1.MINOR.PATCH"));
        let rest = s.strip_prefix("v1.").ok_or_else(bad)?;
        let (minor, patch) = rest.split_once('.').ok_or_else(bad)?;
        let num = |p: &str| -> Result<u32> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        Ok(Self::new(num(minor)?, num(patch)?))
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v1.{}.{}", self.minor, self.patch)
    }
}

/// kube-proxy's mode; serialised as kube-proxy spells it (`iptables`, `ipvs`, `nftables`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// `iptables` (kube-proxy's default on Linux).
    #[default]
    Iptables,
    /// `ipvs`.
    Ipvs,
    /// `nftables`.
    Nftables,
}

impl ProxyMode {
    /// The mode as kube-proxy spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Iptables => "iptables",
            Self::Ipvs => "ipvs",
            Self::Nftables => "nftables",
        }
    }
}

impl FromStr for ProxyMode {
    type Err = Error;

    /// # Errors
    /// [`Error::InvalidInput`] naming `proxy_mode` for anything but the three modes.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "iptables" => Ok(Self::Iptables),
            "ipvs" => Ok(Self::Ipvs),
            "nftables" => Ok(Self::Nftables),
            _ => Err(Error::invalid(
                "proxy_mode",
                format!("{s:?} is not iptables, ipvs or nftables"),
            )),
        }
    }
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One control-plane node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterInput {
    /// Node name (DNS-1123 subdomain).
    pub name: String,
    /// Node address; the API server advertises it.
    pub address: IpAddr,
}

/// One worker node.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WorkerInput {
    /// Node name (DNS-1123 subdomain).
    pub name: String,
    /// Node address (`node-ip`).
    pub address: Option<IpAddr>,
    /// Node labels (a worker group's labels).
    pub labels: BTreeMap<String, String>,
    /// Node taints, set at registration.
    pub taints: Vec<Taint>,
}

impl MasterInput {
    /// A control-plane node.
    #[must_use]
    pub fn new(name: impl Into<String>, address: IpAddr) -> Self {
        Self {
            name: name.into(),
            address,
        }
    }
}

impl WorkerInput {
    /// A worker without labels or taints.
    #[must_use]
    pub fn new(name: impl Into<String>, address: IpAddr) -> Self {
        Self {
            name: name.into(),
            address: Some(address),
            ..Self::default()
        }
    }

    /// Adds a label.
    #[must_use]
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a taint.
    #[must_use]
    pub fn taint(
        mut self,
        key: impl Into<String>,
        value: Option<&str>,
        effect: TaintEffect,
    ) -> Self {
        self.taints.push(Taint {
            key: key.into(),
            value: value.map(str::to_owned),
            effect,
        });
        self
    }
}

impl ClusterInput {
    /// A cluster with kubeadm's usual defaults: port 6443, service subnet `10.96.0.0/12`,
    /// `cluster.local`, containerd, iptables kube-proxy, no nodes yet.
    #[must_use]
    pub fn new(
        cluster_name: impl Into<String>,
        api_vip: impl Into<ApiHost>,
        kubernetes_version: KubernetesVersion,
        pod_subnet: IpNet,
    ) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            api_vip: api_vip.into(),
            api_port: 6443,
            kubernetes_version,
            pod_subnet,
            service_subnet: IpNet::V4(ipnet::Ipv4Net::new_assert(Ipv4Addr::new(10, 96, 0, 0), 12)),
            dns_domain: "cluster.local".into(),
            masters: Vec::new(),
            workers: Vec::new(),
            cert_sans: Vec::new(),
            cri_socket: CONTAINERD_SOCKET.into(),
            proxy_mode: ProxyMode::Iptables,
            image_repository: None,
        }
    }

    /// `controlPlaneEndpoint`: the VIP and port (IPv6 VIPs bracketed).
    #[must_use]
    pub fn control_plane_endpoint(&self) -> String {
        match &self.api_vip {
            ApiHost::Ip(IpAddr::V6(v6)) => format!("[{v6}]:{}", self.api_port),
            host => format!("{host}:{}", self.api_port),
        }
    }

    /// Every node's name, masters first.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.masters
            .iter()
            .map(|m| m.name.as_str())
            .chain(self.workers.iter().map(|w| w.name.as_str()))
    }

    /// Checks the whole input.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first offending field.
    pub fn validate(&self) -> Result<()> {
        check_dns_label("cluster_name", &self.cluster_name)?;
        if self.api_port == 0 {
            return Err(Error::invalid("api_port", "must not be 0"));
        }
        let (pods, services) = (self.pod_subnet, self.service_subnet);
        check_subnet("pod_subnet", pods)?;
        check_subnet("service_subnet", services)?;
        if nets_overlap(pods, services) {
            return Err(Error::invalid(
                "service_subnet",
                format!("{services} overlaps pod_subnet {pods}"),
            ));
        }
        check_dns_subdomain("dns_domain", &self.dns_domain)?;
        if self.masters.is_empty() {
            return Err(Error::invalid(
                "masters",
                "at least one control-plane node is needed",
            ));
        }
        if !self.cri_socket.starts_with("unix://") || self.cri_socket.contains(char::is_whitespace)
        {
            return Err(Error::invalid(
                "cri_socket",
                "must be a unix:// URL without spaces",
            ));
        }
        if let Some(repo) = &self.image_repository
            && (repo.is_empty() || repo.contains(|c: char| c.is_whitespace() || c == '#'))
        {
            return Err(Error::invalid(
                "image_repository",
                "must be a registry path",
            ));
        }
        for (i, san) in self.cert_sans.iter().enumerate() {
            check_host(&format!("cert_sans[{i}]"), san)?;
        }
        let mut names = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for (i, m) in self.masters.iter().enumerate() {
            let field = format!("masters[{i}]");
            check_dns_subdomain(&format!("{field}.name"), &m.name)?;
            if !names.insert(m.name.as_str()) {
                return Err(Error::invalid(
                    format!("{field}.name"),
                    format!("duplicate node name {:?}", m.name),
                ));
            }
            if !addrs.insert(m.address) {
                return Err(Error::invalid(
                    format!("{field}.address"),
                    format!("duplicate address {}", m.address),
                ));
            }
            if pods.contains(&m.address) || services.contains(&m.address) {
                return Err(Error::invalid(
                    format!("{field}.address"),
                    format!("{} lies inside the pod or service subnet", m.address),
                ));
            }
        }
        for (i, w) in self.workers.iter().enumerate() {
            let field = format!("workers[{i}]");
            check_dns_subdomain(&format!("{field}.name"), &w.name)?;
            if !names.insert(w.name.as_str()) {
                return Err(Error::invalid(
                    format!("{field}.name"),
                    format!("duplicate node name {:?}", w.name),
                ));
            }
            if let Some(a) = w.address
                && !addrs.insert(a)
            {
                return Err(Error::invalid(
                    format!("{field}.address"),
                    format!("duplicate address {a}"),
                ));
            }
            for (k, v) in &w.labels {
                check_label(&format!("{field}.labels[{k:?}]"), k, v)?;
            }
            for (j, t) in w.taints.iter().enumerate() {
                check_label(
                    &format!("{field}.taints[{j}]"),
                    &t.key,
                    t.value.as_deref().unwrap_or(""),
                )?;
            }
        }
        Ok(())
    }
}

/// Labels under these prefixes cannot be set by the kubelet itself (NodeRestriction), so the
/// renderer leaves them out of `node-labels` and the flow applies them with `kubectl label`.
///
/// A label is kubelet-settable when it is outside `kubernetes.io`/`k8s.io`, or under one of
/// `kubelet.kubernetes.io/`, `node.kubernetes.io/`, or a well-known topology/instance key.
#[must_use]
pub fn kubelet_may_set_label(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return true;
    };
    let restricted = prefix == "kubernetes.io"
        || prefix.ends_with(".kubernetes.io")
        || prefix == "k8s.io"
        || prefix.ends_with(".k8s.io");
    if !restricted {
        return true;
    }
    prefix == "kubelet.kubernetes.io"
        || prefix == "node.kubernetes.io"
        || prefix.ends_with(".kubelet.kubernetes.io")
        || prefix.ends_with(".node.kubernetes.io")
        || matches!(
            key,
            "kubernetes.io/hostname"
                | "kubernetes.io/arch"
                | "kubernetes.io/os"
                | "beta.kubernetes.io/instance-type"
                | "node.kubernetes.io/instance-type"
                | "failure-domain.beta.kubernetes.io/region"
                | "failure-domain.beta.kubernetes.io/zone"
                | "topology.kubernetes.io/region"
                | "topology.kubernetes.io/zone"
        )
}

fn check_dns_label(field: &str, s: &str) -> Result<()> {
    if !is_dns_label(s) {
        return Err(Error::invalid(
            field,
            format!("{s:?} must be a DNS-1123 label ([a-z0-9-], at most 63)"),
        ));
    }
    Ok(())
}

fn check_dns_subdomain(field: &str, s: &str) -> Result<()> {
    if !is_dns_name(s) {
        return Err(Error::invalid(
            field,
            format!("{s:?} must be a DNS-1123 subdomain (lower-case, at most 253)"),
        ));
    }
    Ok(())
}

fn check_host(field: &str, s: &str) -> Result<()> {
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    check_dns_subdomain(field, s)
}

/// A subnet given with host bits set (`10.244.0.1/16`) is a typo kubeadm would reject later.
fn check_subnet(field: &str, net: IpNet) -> Result<()> {
    if net.trunc() != net {
        return Err(Error::invalid(
            field,
            format!("{net} has host bits set (the network is {})", net.trunc()),
        ));
    }
    Ok(())
}

fn check_label(field: &str, key: &str, value: &str) -> Result<()> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            check_dns_subdomain(field, prefix)?;
            name
        }
        None => key,
    };
    let ok_name = |n: &str, allow_empty: bool| {
        (allow_empty && n.is_empty())
            || (n.len() <= 63
                && !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && n.as_bytes()[0].is_ascii_alphanumeric()
                && n.as_bytes()[n.len() - 1].is_ascii_alphanumeric())
    };
    if !ok_name(name, false) {
        return Err(Error::invalid(
            field,
            format!("key {key:?} is not a valid label key"),
        ));
    }
    if !ok_name(value, true) {
        return Err(Error::invalid(
            field,
            format!("value {value:?} is not a valid label value"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_input() -> ClusterInput {
        let mut c = ClusterInput::new(
            "prod",
            "10.0.0.10".parse::<IpAddr>().unwrap(),
            KubernetesVersion::new(33, 2),
            "10.244.0.0/16".parse().unwrap(),
        );
        c.masters
            .push(MasterInput::new("cp1", "10.0.0.21".parse().unwrap()));
        c.workers
            .push(WorkerInput::new("w1", "10.0.0.31".parse().unwrap()).label("env", "prod"));
        c
    }

    fn field_of(c: &ClusterInput) -> String {
        match c.validate().unwrap_err() {
            Error::InvalidInput { field, .. } => field,
            e => panic!("unexpected {e}"),
        }
    }

    fn field_of_err(e: Error) -> String {
        match e {
            Error::InvalidInput { field, .. } => field,
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn valid_input_passes_and_derives() {
        let c = ok_input();
        c.validate().unwrap();
        assert_eq!(c.control_plane_endpoint(), "10.0.0.10:6443");
        assert_eq!(c.kubernetes_version.minor(), 33);
        assert_eq!(c.service_subnet.to_string(), "10.96.0.0/12");
        assert_eq!(c.proxy_mode.to_string(), "iptables");
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = ok_input();
        c.service_subnet = "10.244.0.0/12".parse().unwrap();
        assert_eq!(field_of(&c), "service_subnet");
        let mut c = ok_input();
        c.service_subnet = "10.240.0.0/12".parse().unwrap();
        assert_eq!(field_of(&c), "service_subnet", "overlap with 10.244/16");
        let mut c = ok_input();
        c.workers
            .push(WorkerInput::new("cp1", "10.0.0.32".parse().unwrap()));
        assert_eq!(field_of(&c), "workers[1].name");
        let mut c = ok_input();
        c.workers[0].name = "W1".into();
        assert_eq!(field_of(&c), "workers[0].name");
        let mut c = ok_input();
        c.workers[0].labels.insert("env".into(), "a b".into());
        assert_eq!(field_of(&c), "workers[0].labels[\"env\"]");
        let mut c = ok_input();
        c.masters.clear();
        assert_eq!(field_of(&c), "masters");
        let mut c = ok_input();
        c.cert_sans.push("lb 1".into());
        assert_eq!(field_of(&c), "cert_sans[0]");
        let mut c = ok_input();
        c.masters
            .push(MasterInput::new("cp2", "10.0.0.21".parse().unwrap()));
        assert_eq!(field_of(&c), "masters[1].address");
        let mut c = ok_input();
        c.masters
            .push(MasterInput::new("cp2", "10.244.3.4".parse().unwrap()));
        assert_eq!(field_of(&c), "masters[1].address", "inside the pod subnet");
        let mut c = ok_input();
        c.pod_subnet = "10.244.0.1/16".parse().unwrap();
        assert_eq!(field_of(&c), "pod_subnet");
        let mut c = ok_input();
        c.cluster_name = "Prod".into();
        assert_eq!(field_of(&c), "cluster_name");
    }

    #[test]
    fn typed_fields_parse_with_the_field_named() {
        for bad in [
            "1.33.2",
            "v1.33",
            "v2.33.2",
            "v1.33.2.1",
            "v1.x.2",
            "v1..2",
            "v1.33.-2",
        ] {
            let e = bad.parse::<KubernetesVersion>().unwrap_err();
            assert_eq!(field_of_err(e), "kubernetes_version", "{bad}");
        }
        let v: KubernetesVersion = "v1.34.12".parse().unwrap();
        assert_eq!((v.major(), v.minor(), v.patch()), (1, 34, 12));
        assert_eq!(v.to_string(), "v1.34.12");
        assert!(KubernetesVersion::new(33, 9) < KubernetesVersion::new(34, 0));

        for bad in ["k8s api", "API.example", "a..b", ""] {
            let e = bad.parse::<ApiHost>().unwrap_err();
            assert_eq!(field_of_err(e), "api_vip", "{bad:?}");
        }
        assert!(matches!("fd00::10".parse::<ApiHost>(), Ok(ApiHost::Ip(_))));
        assert!(matches!("api.lan".parse::<ApiHost>(), Ok(ApiHost::Dns(_))));

        for (text, mode) in [
            ("iptables", ProxyMode::Iptables),
            ("ipvs", ProxyMode::Ipvs),
            ("nftables", ProxyMode::Nftables),
        ] {
            assert_eq!(text.parse::<ProxyMode>().unwrap(), mode);
            assert_eq!(mode.to_string(), text);
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{text}\""));
        }
        let e = "userspace".parse::<ProxyMode>().unwrap_err();
        assert_eq!(field_of_err(e), "proxy_mode");
    }

    #[test]
    fn endpoints_of_every_host_kind() {
        let mut c = ok_input();
        c.api_vip = "fd00::10".parse().unwrap();
        assert_eq!(c.control_plane_endpoint(), "[fd00::10]:6443");
        c.api_vip = "k8s-api.example.lan".parse().unwrap();
        assert_eq!(c.control_plane_endpoint(), "k8s-api.example.lan:6443");
    }

    #[test]
    fn restricted_labels_are_recognised() {
        assert!(kubelet_may_set_label("env"));
        assert!(kubelet_may_set_label("example.com/tier"));
        assert!(kubelet_may_set_label("node.kubernetes.io/pool"));
        assert!(kubelet_may_set_label("topology.kubernetes.io/zone"));
        assert!(!kubelet_may_set_label("node-role.kubernetes.io/worker"));
        assert!(!kubelet_may_set_label("foo.k8s.io/x"));
    }
}
