//! The cluster's own CA and each node's server certificate, generated with rcgen.
//!
//! rcgen is the rustls project's certificate generator: maintained next to rustls and webpki
//! (which check these certificates in the client), pure Rust on *ring*, the same crypto
//! provider the rest of the workspace uses, and it can reload a kept CA from PEM (via
//! x509-parser) so re-planning keeps the CA. Keys are ECDSA P-256.
//!
//! [`TlsBundle::reconcile`] is the re-runnable entry point: it keeps the CA and every server
//! certificate that still has the wanted SANs, is signed by the CA and has 30 days left, and
//! reissues only the others.

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::config::{ClusterSpec, check_name};
use crate::fsutil::io;
pub use crate::fsutil::write_file;
use crate::host::NodeTls;
use crate::{Error, Secret};

/// Lifetime of the CA.
pub const CA_DAYS: i64 = 3650;
/// Lifetime of a server certificate.
pub const SERVER_DAYS: i64 = 825;
/// A server certificate with less than this left is reissued.
pub const RENEW_DAYS: i64 = 30;

/// What the certificates must cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSpec {
    /// The nodes (names and addresses become SANs of their own certificate).
    pub cluster: ClusterSpec,
    /// Organisation on the CA.
    pub organisation: String,
    /// Extra IP SANs on every node's certificate: the VIP the load balancers answer on.
    pub vip: Option<IpAddr>,
    /// Extra DNS SANs on every node's certificate: the VIP's DNS name.
    pub vip_dns: Vec<String>,
}

impl TlsSpec {
    /// The SANs of `node`'s certificate, sorted: its name, its address, the VIP and its DNS
    /// names, `localhost` and 127.0.0.1 (the on-host CLI and the snapshot job).
    pub fn sans(&self, node: &str) -> Result<(Vec<String>, Vec<IpAddr>), Error> {
        let n = self.cluster.node(node)?;
        let mut dns = vec![n.name.clone(), "localhost".to_owned()];
        dns.extend(self.vip_dns.iter().cloned());
        let mut ips = vec![n.address, IpAddr::V4(core::net::Ipv4Addr::LOCALHOST)];
        ips.extend(self.vip);
        dns.sort();
        dns.dedup();
        ips.sort();
        ips.dedup();
        Ok((dns, ips))
    }

    fn validate(&self) -> Result<(), Error> {
        self.cluster.validate()?;
        for (i, d) in self.vip_dns.iter().enumerate() {
            check_name(&format!("vip_dns[{i}]"), d)?;
        }
        if self.organisation.is_empty() || self.organisation.contains(['\n', '"']) {
            return Err(Error::Invalid {
                field: "organisation".into(),
                reason: "empty or contains a newline or quote".into(),
            });
        }
        Ok(())
    }
}

/// A node's certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCert {
    /// The leaf certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PKCS#8 PEM).
    pub key: Secret,
}

/// The CA and every node's server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsBundle {
    /// The CA certificate (PEM): what clients and `retry_join` trust.
    pub ca_cert_pem: String,
    /// The CA's private key (PKCS#8 PEM).
    pub ca_key: Secret,
    /// Server certificates by node name.
    pub nodes: BTreeMap<String, ServerCert>,
}

fn err(what: &str, e: impl core::fmt::Display) -> Error {
    Error::Certificate {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn new_ca(org: &str, cluster: &str) -> Result<(String, Secret), Error> {
    let key = KeyPair::generate().map_err(|e| err("CA key", e))?;
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, format!("{cluster} OpenBao TLS CA"));
    p.distinguished_name.push(DnType::OrganizationName, org);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now() - Duration::hours(1);
    p.not_after = now() + Duration::days(CA_DAYS);
    let cert = p.self_signed(&key).map_err(|e| err("CA certificate", e))?;
    Ok((cert.pem(), Secret::new(key.serialize_pem())))
}

fn new_server(
    spec: &TlsSpec,
    node: &str,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<ServerCert, Error> {
    let (dns, ips) = spec.sans(node)?;
    let key = KeyPair::generate().map_err(|e| err(node, e))?;
    let mut p = CertificateParams::new(dns).map_err(|e| err(node, e))?;
    p.subject_alt_names
        .extend(ips.into_iter().map(SanType::IpAddress));
    p.distinguished_name.push(DnType::CommonName, node);
    p.distinguished_name
        .push(DnType::OrganizationName, spec.organisation.as_str());
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Raft and request forwarding use the same certificate in both directions.
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    p.not_before = now() - Duration::hours(1);
    p.not_after = now() + Duration::days(SERVER_DAYS);
    let cert = p.signed_by(&key, issuer).map_err(|e| err(node, e))?;
    Ok(ServerCert {
        cert_pem: cert.pem(),
        key: Secret::new(key.serialize_pem()),
    })
}

fn der_of(what: &str, pem: &str) -> Result<Vec<u8>, Error> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| err(what, e))?;
    Ok(p.contents)
}

/// Whether `cert_pem` has exactly the wanted SANs, was issued by the CA whose DER is `ca_der`,
/// and is valid for [`RENEW_DAYS`] more.
fn still_good(cert_pem: &str, ca_der: &[u8], dns: &[String], ips: &[IpAddr]) -> bool {
    let Ok(der) = der_of("server", cert_pem) else {
        return false;
    };
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(&der),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    if cert.issuer().as_raw() != ca.subject().as_raw()
        || cert.verify_signature(Some(ca.public_key())).is_err()
    {
        return false;
    }
    let left = cert.validity().not_after.timestamp() - now().unix_timestamp();
    if left < RENEW_DAYS * 86_400 {
        return false;
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let mut got_dns = Vec::new();
    let mut got_ips = Vec::new();
    for n in &san.value.general_names {
        match n {
            GeneralName::DNSName(d) => got_dns.push((*d).to_owned()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => got_ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                16 => got_ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                _ => return false,
            },
            _ => return false,
        }
    }
    got_dns.sort();
    got_ips.sort();
    got_dns == dns && got_ips == ips
}

impl TlsBundle {
    /// A new CA and a certificate for every node.
    pub fn generate(spec: &TlsSpec) -> Result<Self, Error> {
        Ok(Self::reconcile(None, spec)?.0)
    }

    /// Keeps what still fits `spec` from `existing` (the CA always, when there is one) and
    /// issues the rest; the flag says whether anything was (re)issued or dropped.
    pub fn reconcile(existing: Option<&Self>, spec: &TlsSpec) -> Result<(Self, bool), Error> {
        spec.validate()?;
        let (ca_cert_pem, ca_key, mut changed) = match existing {
            Some(b) => (b.ca_cert_pem.clone(), b.ca_key.clone(), false),
            None => {
                let (c, k) = new_ca(&spec.organisation, &spec.cluster.name)?;
                (c, k, true)
            }
        };
        let ca_der = der_of("CA", &ca_cert_pem)?;
        let ca_keypair = KeyPair::from_pem(ca_key.expose()).map_err(|e| err("CA key", e))?;
        let issuer =
            Issuer::from_ca_cert_pem(&ca_cert_pem, ca_keypair).map_err(|e| err("CA", e))?;
        let mut nodes = BTreeMap::new();
        for n in &spec.cluster.nodes {
            let (dns, ips) = spec.sans(&n.name)?;
            let kept = existing
                .and_then(|b| b.nodes.get(&n.name))
                .filter(|c| still_good(&c.cert_pem, &ca_der, &dns, &ips));
            let cert = match kept {
                Some(c) => c.clone(),
                None => {
                    changed = true;
                    new_server(spec, &n.name, &issuer)?
                }
            };
            nodes.insert(n.name.clone(), cert);
        }
        if let Some(b) = existing {
            changed |= b.nodes.keys().any(|k| !nodes.contains_key(k));
        }
        Ok((
            Self {
                ca_cert_pem,
                ca_key,
                nodes,
            },
            changed,
        ))
    }

    /// Node `node`'s TLS material for its host plan ([`crate::host::node_plan`]).
    pub fn node_tls(&self, node: &str) -> Result<NodeTls, Error> {
        let c = self.nodes.get(node).ok_or_else(|| Error::Invalid {
            field: "node".into(),
            reason: format!("no certificate for {node}"),
        })?;
        Ok(NodeTls {
            ca_cert_pem: self.ca_cert_pem.clone(),
            cert_pem: c.cert_pem.clone(),
            key: c.key.clone(),
        })
    }

    /// Writes the bundle under `dir` (created 0700): `ca.crt`, `ca.key`, `<node>.crt`,
    /// `<node>.key`; keys 0600, each file replaced atomically.
    pub fn write_dir(&self, dir: &Path) -> Result<(), Error> {
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| io(dir, e))?;
        write_file(&dir.join("ca.crt"), self.ca_cert_pem.as_bytes(), 0o644)?;
        write_file(&dir.join("ca.key"), self.ca_key.expose().as_bytes(), 0o600)?;
        for (name, c) in &self.nodes {
            write_file(
                &dir.join(format!("{name}.crt")),
                c.cert_pem.as_bytes(),
                0o644,
            )?;
            write_file(
                &dir.join(format!("{name}.key")),
                c.key.expose().as_bytes(),
                0o600,
            )?;
        }
        Ok(())
    }

    /// Reads a bundle written by [`write_dir`](Self::write_dir): the CA and every
    /// `<node>.crt` with its `<node>.key`; `None` when `dir` has no CA. A certificate without
    /// its key is left out (and so reissued by [`reconcile`](Self::reconcile)).
    pub fn read_dir(dir: &Path) -> Result<Option<Self>, Error> {
        let ca = dir.join("ca.crt");
        if !ca.exists() {
            return Ok(None);
        }
        let read = |p: &Path| fs::read_to_string(p).map_err(|e| io(p, e));
        let mut nodes = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".crt"))
                .filter(|n| *n != "ca")
            else {
                continue;
            };
            let key = dir.join(format!("{name}.key"));
            if key.exists() {
                nodes.insert(
                    name.to_owned(),
                    ServerCert {
                        cert_pem: read(&path)?,
                        key: Secret::new(read(&key)?),
                    },
                );
            }
        }
        Ok(Some(Self {
            ca_cert_pem: read(&ca)?,
            ca_key: Secret::new(read(&dir.join("ca.key"))?),
            nodes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Node;

    fn spec() -> TlsSpec {
        TlsSpec {
            cluster: ClusterSpec {
                name: "lab".into(),
                nodes: (1..=3)
                    .map(|i| {
                        Node::new(
                            format!("vault-{i}"),
                            format!("10.0.0.{i}").parse().expect("ip"),
                        )
                    })
                    .collect(),
            },
            organisation: "Lab".into(),
            vip: Some("10.0.0.100".parse().expect("ip")),
            vip_dns: vec!["vault.lab.example".into()],
        }
    }

    #[test]
    fn reconcile_keeps_what_fits_and_reissues_the_rest() {
        let s = spec();
        let a = TlsBundle::generate(&s).expect("generates");
        let ca_der = der_of("CA", &a.ca_cert_pem).expect("pem");
        for n in &s.cluster.nodes {
            let (dns, ips) = s.sans(&n.name).expect("sans");
            assert!(still_good(&a.nodes[&n.name].cert_pem, &ca_der, &dns, &ips));
            assert!(dns.contains(&"vault.lab.example".to_owned()), "{dns:?}");
        }
        let (b, changed) = TlsBundle::reconcile(Some(&a), &s).expect("ok");
        assert!(!changed);
        assert_eq!(a, b);

        // A new VIP: same CA, every server certificate reissued.
        let mut s2 = s.clone();
        s2.vip = Some("10.0.0.101".parse().expect("ip"));
        let (c, changed) = TlsBundle::reconcile(Some(&a), &s2).expect("ok");
        assert!(changed);
        assert_eq!(c.ca_cert_pem, a.ca_cert_pem);
        assert_ne!(c.nodes["vault-1"].cert_pem, a.nodes["vault-1"].cert_pem);

        // A certificate from another CA is replaced.
        let other = TlsBundle::generate(&s).expect("generates");
        let mut mixed = a.clone();
        mixed
            .nodes
            .insert("vault-2".into(), other.nodes["vault-2"].clone());
        let (d, changed) = TlsBundle::reconcile(Some(&mixed), &s).expect("ok");
        assert!(changed);
        assert_eq!(d.nodes["vault-1"], a.nodes["vault-1"]);
        assert_ne!(d.nodes["vault-2"], other.nodes["vault-2"]);
    }

    #[test]
    fn dir_round_trip_with_private_modes() {
        let s = spec();
        let a = TlsBundle::generate(&s).expect("generates");
        let t = tempfile::tempdir().expect("tmp");
        let dir = t.path().join("tls");
        a.write_dir(&dir).expect("writes");
        let b = TlsBundle::read_dir(&dir).expect("reads").expect("some");
        assert_eq!(a, b);
        for f in ["ca.key", "vault-1.key"] {
            let m = fs::metadata(dir.join(f))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(m, 0o600, "{f}");
        }
        assert!(format!("{a:?}").contains("***"));
        assert!(!format!("{a:?}").contains("PRIVATE KEY"));
        let node = a.node_tls("vault-1").expect("node");
        assert!(!format!("{node:?}").contains("PRIVATE KEY"));
        assert!(
            TlsBundle::read_dir(&t.path().join("none"))
                .expect("ok")
                .is_none()
        );
    }
}
