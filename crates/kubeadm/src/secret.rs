//! Secrets the bootstrap needs, generated here rather than parsed out of `kubeadm` output.
//!
//! [`BootstrapToken`] and [`CertificateKey`] are secret newtypes: their `Debug` and `Display`
//! print `***` so they never reach logs or error messages; [`BootstrapToken::expose`] and
//! [`CertificateKey::expose`] give the value to code that must write it (a 0600 config file).
//! [`CaCertHash`] is a public-key pin, not a secret, and prints normally.

use core::fmt;

use rand::RngExt as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}` (id `.` secret).
///
/// ```
/// use hakube_kubeadm::BootstrapToken;
/// let t: BootstrapToken = "abcdef.0123456789abcdef".parse()?;
/// assert_eq!(t.id(), "abcdef");
/// assert_eq!(format!("{t} {t:?}"), "*** ***");
/// assert!("ABCDEF.0123456789abcdef".parse::<BootstrapToken>().is_err());
/// # Ok::<(), hakube_kubeadm::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken(String);

impl BootstrapToken {
    /// A fresh random token from the thread-local CSPRNG.
    #[must_use]
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut pick = |n: usize| -> String {
            (0..n)
                .map(|_| char::from(TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())]))
                .collect()
        };
        let id = pick(6);
        let secret = pick(16);
        Self(format!("{id}.{secret}"))
    }

    /// The public token id (the six characters before the dot), safe to log.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.0[..6]
    }

    /// The whole token, for writing it into a 0600 file or a command line.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl core::str::FromStr for BootstrapToken {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason| Error::MalformedSecret {
            what: "bootstrap token",
            reason,
        };
        let (id, secret) = s.split_once('.').ok_or_else(|| bad("no '.' separator"))?;
        let ok = |p: &str, n: usize| {
            p.len() == n
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        if !ok(id, 6) {
            return Err(bad("id must be 6 characters of [a-z0-9]"));
        }
        if !ok(secret, 16) {
            return Err(bad("secret must be 16 characters of [a-z0-9]"));
        }
        Ok(Self(s.to_owned()))
    }
}

/// A kubeadm certificate key: 32 bytes, hex-encoded (64 characters), the AES-256 key that
/// encrypts the `kubeadm-certs` Secret.
///
/// ```
/// use hakube_kubeadm::CertificateKey;
/// let k = CertificateKey::generate();
/// assert_eq!(k.expose().len(), 64);
/// assert_eq!(format!("{k:?}"), "***");
/// # Ok::<(), hakube_kubeadm::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateKey(String);

impl CertificateKey {
    /// A fresh random key from the thread-local CSPRNG.
    #[must_use]
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::rng().random();
        Self(hex::encode(bytes))
    }

    /// The hex key, for writing it into a 0600 file or a command line.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl core::str::FromStr for CertificateKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::MalformedSecret {
                what: "certificate key",
                reason: "must be 64 hex characters (32 bytes)",
            });
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}

/// The discovery pin of a cluster CA: `sha256:` + hex SHA-256 of the DER SubjectPublicKeyInfo of
/// the CA certificate (kubeadm's `pubkeypin.Hash`). Public, so it prints in full.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CaCertHash([u8; 32]);

impl CaCertHash {
    /// The pin of the first certificate in a PEM bundle (e.g. `/etc/kubernetes/pki/ca.crt`).
    ///
    /// # Errors
    /// [`Error::Certificate`] when the PEM or the certificate inside it cannot be parsed.
    pub fn from_ca_pem(pem: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::Certificate {
            what: "CA PEM".into(),
            reason,
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| bad(e.to_string()))?;
        if pem.label != "CERTIFICATE" {
            return Err(bad(format!(
                "PEM block is {:?}, not CERTIFICATE",
                pem.label
            )));
        }
        Self::from_ca_der(&pem.contents)
    }

    /// The pin of a DER-encoded certificate.
    ///
    /// # Errors
    /// [`Error::Certificate`] when the DER is not an X.509 certificate.
    pub fn from_ca_der(der: &[u8]) -> Result<Self> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| Error::Certificate {
                what: "CA DER".into(),
                reason: e.to_string(),
            })?;
        Ok(Self::from_spki_der(cert.tbs_certificate.subject_pki.raw))
    }

    /// The pin of a DER-encoded SubjectPublicKeyInfo.
    #[must_use]
    pub fn from_spki_der(spki: &[u8]) -> Self {
        Self(Sha256::digest(spki).into())
    }

    /// The hex digest without the `sha256:` prefix.
    #[must_use]
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for CaCertHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for CaCertHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::str::FromStr for CaCertHash {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason| Error::MalformedSecret {
            what: "CA cert hash",
            reason,
        };
        let h = s
            .strip_prefix("sha256:")
            .ok_or_else(|| bad("must start with 'sha256:'"))?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(h, &mut out).map_err(|_| bad("must be 64 hex characters"))?;
        Ok(Self(out))
    }
}

macro_rules! redacted_and_serde {
    ($t:ty) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("***")
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("***")
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
redacted_and_serde!(BootstrapToken);
redacted_and_serde!(CertificateKey);

impl Serialize for CaCertHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for CaCertHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The secrets of one cluster bootstrap.
///
/// The token and the certificate key are generated before `kubeadm init` and written into its
/// configuration; the CA hash is computed from `/etc/kubernetes/pki/ca.crt` once it exists.
#[derive(Clone, Debug)]
pub struct ClusterSecrets {
    /// The bootstrap token every join uses.
    pub token: BootstrapToken,
    /// The key of the uploaded control-plane certificates.
    pub certificate_key: CertificateKey,
    /// The CA pin joins verify discovery against; `None` until the CA exists.
    pub ca_cert_hash: Option<CaCertHash>,
}

impl ClusterSecrets {
    /// Fresh token and certificate key, no CA hash yet.
    #[must_use]
    pub fn generate() -> Self {
        Self {
            token: BootstrapToken::generate(),
            certificate_key: CertificateKey::generate(),
            ca_cert_hash: None,
        }
    }

    /// The same secrets with the CA hash set.
    #[must_use]
    pub fn with_ca_cert_hash(mut self, hash: CaCertHash) -> Self {
        self.ca_cert_hash = Some(hash);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_token_has_the_kubeadm_format() {
        for _ in 0..200 {
            let t = BootstrapToken::generate();
            let again: BootstrapToken = t.expose().parse().unwrap();
            assert_eq!(again, t);
        }
        assert_ne!(BootstrapToken::generate(), BootstrapToken::generate());
    }

    #[test]
    fn token_rejects_bad_shapes_without_echoing_them() {
        for bad in [
            "",
            "abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdeF",
            "abc-ef.0123456789abcdef",
            "abcdef.0123456789abcdef.x",
        ] {
            let err = bad.parse::<BootstrapToken>().unwrap_err().to_string();
            assert!(err.contains("bootstrap token"), "{err}");
            if !bad.is_empty() {
                assert!(!err.contains(bad), "error echoes the secret: {err}");
            }
        }
    }

    #[test]
    fn certificate_key_is_64_hex() {
        let k = CertificateKey::generate();
        assert_eq!(k.expose().len(), 64);
        assert!(k.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(k.expose().parse::<CertificateKey>().unwrap(), k);
        assert!("zz".repeat(32).parse::<CertificateKey>().is_err());
        assert!("ab".repeat(31).parse::<CertificateKey>().is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = ClusterSecrets::generate();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(s.token.expose()), "{dbg}");
        assert!(!dbg.contains(s.certificate_key.expose()), "{dbg}");
        assert!(dbg.contains("***"));
    }

    #[test]
    fn ca_hash_round_trips_and_prints() {
        let h: CaCertHash = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(h.to_string(), format!("sha256:{}", "ab".repeat(32)));
        assert!("ab".repeat(32).parse::<CaCertHash>().is_err());
        assert!("sha256:abc".parse::<CaCertHash>().is_err());
    }
}
