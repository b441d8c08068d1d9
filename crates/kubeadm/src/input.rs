//! The crate's own small cluster model: what a kubeadm bootstrap needs to know, nothing more.
//!
//! It does not depend on hakube's topology; the composing layer converts into it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

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
    /// The API VIP (or DNS name) held by the load balancers.
    pub api_vip: String,
    /// API port on the VIP and on every control plane (6443).
    pub api_port: u16,
    /// Pinned Kubernetes version, `v1.MINOR.PATCH`.
    pub kubernetes_version: String,
    /// Pod CIDR; must match the CNI's pool.
    pub pod_subnet: String,
    /// Service CIDR.
    pub service_subnet: String,
    /// Cluster DNS domain.
    pub dns_domain: String,
    /// Control-plane nodes; the first one runs `kubeadm init`.
    pub masters: Vec<MasterInput>,
    /// Worker nodes.
    pub workers: Vec<WorkerInput>,
    /// Extra API certificate SANs: load balancer names and addresses, a DNS name of the VIP.
    pub cert_sans: Vec<String>,
    /// CRI socket of every node.
    pub cri_socket: String,
    /// kube-proxy mode (`iptables`, `ipvs`, `nftables`).
    pub proxy_mode: String,
    /// Image registry; `None` keeps kubeadm's `registry.k8s.io`.
    pub image_repository: Option<String>,
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
        api_vip: impl Into<String>,
        kubernetes_version: impl Into<String>,
        pod_subnet: impl Into<String>,
    ) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            api_vip: api_vip.into(),
            api_port: 6443,
            kubernetes_version: kubernetes_version.into(),
            pod_subnet: pod_subnet.into(),
            service_subnet: "10.96.0.0/12".into(),
            dns_domain: "cluster.local".into(),
            masters: Vec::new(),
            workers: Vec::new(),
            cert_sans: Vec::new(),
            cri_socket: CONTAINERD_SOCKET.into(),
            proxy_mode: "iptables".into(),
            image_repository: None,
        }
    }

    /// `controlPlaneEndpoint`: the VIP and port (IPv6 VIPs bracketed).
    #[must_use]
    pub fn control_plane_endpoint(&self) -> String {
        match self.api_vip.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]:{}", self.api_port),
            _ => format!("{}:{}", self.api_vip, self.api_port),
        }
    }

    /// The minor version, `1.33` for `v1.33.2` (the pkgs.k8s.io repository is per minor).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `kubernetes_version` when it is not `v1.MINOR.PATCH`.
    pub fn kubernetes_minor(&self) -> Result<String> {
        parse_version(&self.kubernetes_version).map(|(maj, min, _)| format!("{maj}.{min}"))
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
        check_dns_label_ish("cluster_name", &self.cluster_name)?;
        check_host("api_vip", &self.api_vip)?;
        if self.api_port == 0 {
            return Err(Error::invalid("api_port", "must not be 0"));
        }
        parse_version(&self.kubernetes_version)?;
        let pods = parse_cidr("pod_subnet", &self.pod_subnet)?;
        let services = parse_cidr("service_subnet", &self.service_subnet)?;
        if pods.overlaps(&services) {
            return Err(Error::invalid(
                "service_subnet",
                format!(
                    "{} overlaps pod_subnet {}",
                    self.service_subnet, self.pod_subnet
                ),
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
        if !matches!(self.proxy_mode.as_str(), "iptables" | "ipvs" | "nftables") {
            return Err(Error::invalid(
                "proxy_mode",
                format!("{:?} is not iptables, ipvs or nftables", self.proxy_mode),
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
            if pods.contains(m.address) || services.contains(m.address) {
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

pub(crate) fn parse_version(v: &str) -> Result<(u32, u32, u32)> {
    let bad = || Error::invalid("kubernetes_version", format!("{v:?} is not v1.MINOR.PATCH"));
    let rest = v.strip_prefix('v').ok_or_else(bad)?;
    let mut parts = rest.split('.');
    let mut num = || -> Result<u32> {
        let p = parts.next().ok_or_else(bad)?;
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        p.parse().map_err(|_| bad())
    };
    let (a, b, c) = (num()?, num()?, num()?);
    if parts.next().is_some() || a != 1 {
        return Err(bad());
    }
    Ok((a, b, c))
}

#[derive(Clone, Copy, Debug)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn bits(a: IpAddr) -> (u128, u8) {
        match a {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    }
    fn mask(&self) -> u128 {
        let (_, width) = Self::bits(self.addr);
        if self.prefix == 0 {
            0
        } else {
            (u128::MAX << (width - self.prefix))
                & if width == 32 {
                    u128::from(u32::MAX)
                } else {
                    u128::MAX
                }
        }
    }
    fn contains(&self, a: IpAddr) -> bool {
        let (mine, w1) = Self::bits(self.addr);
        let (other, w2) = Self::bits(a);
        w1 == w2 && (mine & self.mask()) == (other & self.mask())
    }
    fn overlaps(&self, o: &Self) -> bool {
        let (_, w1) = Self::bits(self.addr);
        let (_, w2) = Self::bits(o.addr);
        if w1 != w2 {
            return false;
        }
        let wider = if self.prefix <= o.prefix { self } else { o };
        let narrower = if self.prefix <= o.prefix { o } else { self };
        wider.contains(narrower.addr)
    }
}

fn parse_cidr(field: &str, s: &str) -> Result<Cidr> {
    let bad = || Error::invalid(field, format!("{s:?} is not an address/prefix CIDR"));
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = a.parse().map_err(|_| bad())?;
    let prefix: u8 = p.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    let c = Cidr { addr, prefix };
    let (bits, _) = Cidr::bits(addr);
    if bits
        & !c.mask()
        & if max == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        }
        != 0
    {
        return Err(Error::invalid(field, format!("{s:?} has host bits set")));
    }
    Ok(c)
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

fn check_dns_label_ish(field: &str, s: &str) -> Result<()> {
    if s.is_empty()
        || s.len() > 63
        || !s.bytes().all(is_label_char)
        || s.starts_with('-')
        || s.ends_with('-')
    {
        return Err(Error::invalid(
            field,
            format!("{s:?} must be a DNS-1123 label ([a-z0-9-], at most 63)"),
        ));
    }
    Ok(())
}

fn check_dns_subdomain(field: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 253 {
        return Err(Error::invalid(
            field,
            format!("{s:?} must be 1..=253 characters"),
        ));
    }
    for part in s.split('.') {
        if part.is_empty()
            || !part.bytes().all(is_label_char)
            || part.starts_with('-')
            || part.ends_with('-')
        {
            return Err(Error::invalid(
                field,
                format!("{s:?} must be a DNS-1123 subdomain (lower-case)"),
            ));
        }
    }
    Ok(())
}

fn check_host(field: &str, s: &str) -> Result<()> {
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    check_dns_subdomain(field, s)
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
        let mut c = ClusterInput::new("prod", "10.0.0.10", "v1.33.2", "10.244.0.0/16");
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

    #[test]
    fn valid_input_passes_and_derives() {
        let c = ok_input();
        c.validate().unwrap();
        assert_eq!(c.control_plane_endpoint(), "10.0.0.10:6443");
        assert_eq!(c.kubernetes_minor().unwrap(), "1.33");
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = ok_input();
        c.kubernetes_version = "1.33".into();
        assert_eq!(field_of(&c), "kubernetes_version");
        let mut c = ok_input();
        c.service_subnet = "10.244.0.0/12".into();
        assert_eq!(field_of(&c), "service_subnet");
        let mut c = ok_input();
        c.service_subnet = "10.240.0.0/12".into();
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
        c.pod_subnet = "10.244.0.1/16".into();
        assert_eq!(field_of(&c), "pod_subnet");
    }

    #[test]
    fn ipv6_endpoint_is_bracketed() {
        let mut c = ok_input();
        c.api_vip = "fd00::10".into();
        assert_eq!(c.control_plane_endpoint(), "[fd00::10]:6443");
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
