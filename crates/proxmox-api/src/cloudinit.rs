//! Cloud-init and tag helpers: values in the exact form PVE wants.

use std::net::IpAddr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::Error;

/// PVE `uri_unescape`s `sshkeys`; a `+` would stay a `+`, so spaces must be `%20`.
const SSHKEYS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// The `sshkeys` value: keys joined by newlines, percent-encoded with `%20` (not `+`).
/// The form encoding then encodes it once more, as PVE expects.
///
/// ```
/// let v = hakube_proxmox_api::cloudinit::sshkeys(&["ssh-ed25519 AAAAC3Nz a@b"])?;
/// assert_eq!(v, "ssh-ed25519%20AAAAC3Nz%20a%40b");
/// # Ok::<(), hakube_proxmox_api::Error>(())
/// ```
pub fn sshkeys<S: AsRef<str>>(keys: &[S]) -> Result<String, Error> {
    let mut lines = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let k = k.as_ref().trim();
        if k.is_empty() {
            return Err(invalid(&format!("sshkeys[{i}]"), "empty key"));
        }
        if k.contains(['\n', '\r']) {
            return Err(invalid(
                &format!("sshkeys[{i}]"),
                "one key per entry: no newlines",
            ));
        }
        if !(k.starts_with("ssh-") || k.starts_with("ecdsa-") || k.starts_with("sk-")) {
            return Err(invalid(
                &format!("sshkeys[{i}]"),
                "not an OpenSSH public key (ssh-ed25519/ssh-rsa/ecdsa-...)",
            ));
        }
        lines.push(k);
    }
    Ok(utf8_percent_encode(&lines.join("\n"), SSHKEYS).to_string())
}

/// Decodes an `sshkeys` value back into keys (for comparing with the wanted ones).
pub fn decode_sshkeys(value: &str) -> Vec<String> {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The address settings of one NIC: an `ipconfigN` value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IpConfig {
    /// `ip=dhcp`.
    Dhcp,
    /// `ip=CIDR[,gw=IP]`.
    Static {
        /// Address with prefix, `10.0.0.5/24`.
        cidr: String,
        /// Default gateway.
        gateway: Option<IpAddr>,
    },
}

impl IpConfig {
    /// A static address; checks the CIDR.
    pub fn static_v4(cidr: &str, gateway: Option<IpAddr>) -> Result<Self, Error> {
        let (ip, len) = cidr
            .split_once('/')
            .ok_or_else(|| invalid("ipconfig", format!("{cidr:?} needs a /prefix")))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| invalid("ipconfig", format!("{ip:?} is not an IP address")))?;
        let len: u8 = len
            .parse()
            .map_err(|_| invalid("ipconfig", format!("bad prefix length in {cidr:?}")))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(invalid("ipconfig", format!("prefix too long in {cidr:?}")));
        }
        if let Some(gw) = gateway
            && gw.is_ipv4() != ip.is_ipv4()
        {
            return Err(invalid(
                "ipconfig",
                "gateway family differs from the address",
            ));
        }
        Ok(Self::Static {
            cidr: cidr.to_owned(),
            gateway,
        })
    }

    /// The `ipconfigN` value.
    pub fn to_value(&self) -> String {
        match self {
            Self::Dhcp => "ip=dhcp".into(),
            Self::Static { cidr, gateway } => {
                let v6 = cidr.contains(':');
                let (ip_key, gw_key) = if v6 { ("ip6", "gw6") } else { ("ip", "gw") };
                match gateway {
                    Some(gw) => format!("{ip_key}={cidr},{gw_key}={gw}"),
                    None => format!("{ip_key}={cidr}"),
                }
            }
        }
    }
}

/// The `nameserver` value: addresses separated by spaces.
pub fn nameservers(servers: &[IpAddr]) -> String {
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a `searchdomain` (DNS names separated by spaces).
pub fn searchdomain(domains: &[&str]) -> Result<String, Error> {
    for d in domains {
        let ok = !d.is_empty()
            && d.len() <= 253
            && d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(invalid("searchdomain", format!("{d:?} is not a DNS name")));
        }
    }
    Ok(domains.join(" "))
}

/// Checks a cloud-init user name (`ciuser`).
pub fn ciuser(user: &str) -> Result<String, Error> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && user
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if ok {
        Ok(user.to_owned())
    } else {
        Err(invalid(
            "ciuser",
            format!("{user:?} is not a valid user name"),
        ))
    }
}

/// Normalises tags as PVE stores them: lowercased, checked against
/// `[a-z0-9_][a-z0-9_\-+.]*`, sorted, without duplicates.
///
/// ```
/// let t = hakube_proxmox_api::cloudinit::normalize_tags(["K8s", "hakube-demo", "k8s"])?;
/// assert_eq!(t, ["hakube-demo", "k8s"]);
/// # Ok::<(), hakube_proxmox_api::Error>(())
/// ```
pub fn normalize_tags<I, S>(tags: I) -> Result<Vec<String>, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.as_ref().trim().to_ascii_lowercase();
        let mut chars = t.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '+' | '.')
            });
        if !ok {
            return Err(invalid("tags", format!("{t:?} is not a valid PVE tag")));
        }
        out.push(t);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Params;

    #[test]
    fn sshkeys_double_encoding() {
        let v = sshkeys(&[
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI+x/y= ops@hakube",
            "ssh-rsa AAAAB3Nza== ci",
        ])
        .unwrap();
        assert!(!v.contains('+') && !v.contains(' '));
        assert_eq!(
            v,
            "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAI%2Bx%2Fy%3D%20ops%40hakube%0Assh-rsa%20AAAAB3Nza%3D%3D%20ci"
        );
        // On the wire the form encoding escapes the % once more.
        let form = Params::new().set("sshkeys", v.as_str()).encode();
        assert!(form.starts_with("sshkeys=ssh-ed25519%2520AAAA"));
        assert_eq!(decode_sshkeys(&v).len(), 2);
        assert_eq!(decode_sshkeys(&v)[1], "ssh-rsa AAAAB3Nza== ci");
        assert!(sshkeys(&["not a key"]).is_err());
        assert!(sshkeys(&["ssh-rsa a\nssh-rsa b"]).is_err());
    }

    #[test]
    fn ipconfig_values() {
        let c = IpConfig::static_v4("10.0.0.5/24", Some("10.0.0.1".parse().unwrap())).unwrap();
        assert_eq!(c.to_value(), "ip=10.0.0.5/24,gw=10.0.0.1");
        assert_eq!(IpConfig::Dhcp.to_value(), "ip=dhcp");
        let c6 = IpConfig::static_v4("fd00::5/64", None).unwrap();
        assert_eq!(c6.to_value(), "ip6=fd00::5/64");
        assert!(IpConfig::static_v4("10.0.0.5", None).is_err());
        assert!(IpConfig::static_v4("10.0.0.5/33", None).is_err());
        assert!(IpConfig::static_v4("10.0.0.5/24", Some("fd00::1".parse().unwrap())).is_err());
    }

    #[test]
    fn dns_and_user() {
        assert_eq!(
            nameservers(&["1.1.1.1".parse().unwrap(), "9.9.9.9".parse().unwrap()]),
            "1.1.1.1 9.9.9.9"
        );
        assert_eq!(
            searchdomain(&["lab.example", "example"]).unwrap(),
            "lab.example example"
        );
        assert!(searchdomain(&["bad domain"]).is_err());
        assert!(ciuser("ubuntu").is_ok());
        assert!(ciuser("Root;rm").is_err());
    }

    #[test]
    fn tags() {
        assert_eq!(
            normalize_tags(["Role.Master", "hakube-c1", "role.master"]).unwrap(),
            ["hakube-c1", "role.master"]
        );
        assert!(normalize_tags(["-x"]).is_err());
        assert!(normalize_tags(["a b"]).is_err());
        assert!(normalize_tags([""]).is_err());
    }
}
