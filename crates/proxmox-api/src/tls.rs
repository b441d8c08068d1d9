//! How the client decides to trust the server's certificate.

use core::fmt;
use core::str::FromStr;

use sha2::{Digest, Sha256};

use crate::Error;

#[cfg(feature = "client")]
mod config;
#[cfg(feature = "client")]
pub(crate) use config::client_config;

/// Which server certificates the client accepts. Verification is on by default
/// ([`TlsTrust::SystemRoots`]); turning it off needs the explicitly named
/// [`TlsTrust::DangerAcceptInvalidCerts`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsTrust {
    /// The operating system's trust store (a PVE with an ACME certificate).
    #[default]
    SystemRoots,
    /// Certificates signed by this CA (PEM text, e.g. the cluster's `/etc/pve/pve-root-ca.pem`);
    /// the host name is checked too.
    CaPem(String),
    /// Exactly the certificate with this SHA-256 fingerprint (as `GET /nodes` reports it in
    /// `ssl_fingerprint`); any other is refused, whatever signed it. The host name is not checked.
    Fingerprint(Fingerprint),
    /// Accept any certificate. Anyone on the network path can read the credentials.
    /// Only for throwaway labs.
    DangerAcceptInvalidCerts,
}

/// A SHA-256 certificate fingerprint, written `AA:BB:...` (32 bytes).
///
/// ```
/// use hakube_proxmox_api::Fingerprint;
/// let text = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
/// let fp: Fingerprint = text.to_lowercase().parse()?;
/// assert_eq!(fp.to_string(), text);
/// # Ok::<(), hakube_proxmox_api::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Config {
            field: "fingerprint",
            reason: reason.to_owned(),
        };
        let hex: String = s.trim().chars().filter(|c| *c != ':').collect();
        // Non-ASCII text would make the byte slicing below cut inside a character.
        if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad("not hexadecimal"));
        }
        if hex.len() != 64 {
            return Err(bad("expected 32 hex bytes (SHA-256), as AA:BB:..."));
        }
        let mut out = [0u8; 32];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| bad("not hexadecimal"))?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_forms() {
        let upper = "AB:".repeat(31) + "AB";
        let fp: Fingerprint = upper.parse().unwrap();
        assert_eq!(fp.to_string(), upper);
        let bare: Fingerprint = "ab".repeat(32).parse().unwrap();
        assert_eq!(bare, fp);
        assert!("AB:CD".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
        // Found by the decoder property test: 64 bytes of non-ASCII text panicked.
        assert!("é".repeat(32).parse::<Fingerprint>().is_err());
        assert!("p\u{FFFD}y".repeat(8).parse::<Fingerprint>().is_err());
        assert_eq!(
            Fingerprint::of_der(b"").to_string(),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }

    #[cfg(feature = "client")]
    #[test]
    fn bad_ca_is_a_config_error() {
        let e = client_config(&TlsTrust::CaPem("not pem".into())).unwrap_err();
        assert!(matches!(e, Error::Config { field: "ca", .. }), "{e}");
        assert!(client_config(&TlsTrust::DangerAcceptInvalidCerts).is_ok());
    }
}
