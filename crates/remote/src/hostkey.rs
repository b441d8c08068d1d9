//! Host key verification: public keys, known_hosts files (plain, hashed `|1|`, `[host]:port`,
//! wildcards, `@revoked`) and the policy enum.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

use crate::Error;

/// An SSH public key in OpenSSH form: algorithm name and the key blob.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HostKey {
    algorithm: String,
    blob: Vec<u8>,
}

impl HostKey {
    /// Parses `ALGORITHM BASE64 [COMMENT]` (a `.pub` file or the key part of a known_hosts line).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the text is not such a key, or the blob's embedded algorithm
    /// disagrees with the named one.
    pub fn parse_openssh(text: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidKey {
            what: "public key".into(),
            reason: reason.into(),
        };
        let mut it = text.split_whitespace();
        let algorithm = it.next().ok_or_else(|| invalid("empty"))?;
        let b64 = it
            .next()
            .ok_or_else(|| invalid("missing base64 key data"))?;
        let blob = STANDARD
            .decode(b64)
            .map_err(|e| invalid(&format!("bad base64: {e}")))?;
        Self::from_blob(algorithm, blob)
            .map_err(|_| invalid("key data does not match the algorithm name"))
    }

    /// Builds a key from its wire blob (the blob starts with the algorithm name).
    pub(crate) fn from_blob(algorithm: &str, blob: Vec<u8>) -> Result<Self, ()> {
        let inner = blob
            .get(..4)
            .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
            .and_then(|n| blob.get(4..4 + n))
            .ok_or(())?;
        if inner != algorithm.as_bytes() {
            return Err(());
        }
        Ok(Self {
            algorithm: algorithm.to_owned(),
            blob,
        })
    }

    /// The algorithm name (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ...).
    #[must_use]
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The fingerprint as OpenSSH prints it: `SHA256:` + unpadded base64 of the blob's SHA-256.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        format!(
            "SHA256:{}",
            STANDARD_NO_PAD.encode(Sha256::digest(&self.blob))
        )
    }

    /// `ALGORITHM BASE64`, as in a `.pub` file without comment.
    #[must_use]
    pub fn to_openssh(&self) -> String {
        format!("{} {}", self.algorithm, STANDARD.encode(&self.blob))
    }
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostKey({} {})", self.algorithm, self.fingerprint())
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_openssh())
    }
}

/// How the server's host key is verified. Secure by default: there is no `Default`, and the
/// only policy that accepts unknown keys silently is named `DangerAcceptAny`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostKeyPolicy {
    /// Accept only keys listed for the host in this known_hosts file (OpenSSH format, hashed
    /// and `[host]:port` entries included). Unknown keys are [`Error::UnknownHostKey`], a
    /// different key for a known host is [`Error::HostKeyChanged`].
    KnownHosts(PathBuf),
    /// Accept only these keys (for example the host keys injected through cloud-init).
    /// Any other key is [`Error::HostKeyChanged`].
    Pinned(Vec<HostKey>),
    /// Like `KnownHosts`, but a host with no entry at all is accepted and its key appended to
    /// the file (OpenSSH's `StrictHostKeyChecking=accept-new`). A changed key is still refused.
    AcceptNew(PathBuf),
    /// Accept any key. Only for throwaway labs; it defeats SSH's protection against
    /// man-in-the-middle attacks.
    DangerAcceptAny,
}

/// What a known_hosts file says about a host and a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KnownHostsVerdict {
    /// A line lists the host with this very key.
    Match {
        /// 1-based line number.
        line: usize,
    },
    /// The key is marked `@revoked`.
    Revoked {
        /// 1-based line number.
        line: usize,
    },
    /// The host is listed, but only with other keys.
    Mismatch {
        /// 1-based line number of the first entry for the host.
        line: usize,
    },
    /// The host is not listed at all.
    Unknown,
}

#[derive(Debug, Clone)]
enum HostPattern {
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    Plain { patterns: Vec<(bool, String)> },
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    revoked: bool,
    hosts: HostPattern,
    key: HostKey,
}

/// A parsed OpenSSH known_hosts file.
///
/// Supports plain host lists (`a,b,10.0.0.1`), `[host]:port` for non-22 ports, hashed entries
/// (`|1|salt|hmac`), `*`/`?` wildcards, `!` negation and `@revoked`. `@cert-authority` lines
/// are ignored (certificates are not supported). Comments and blank lines are skipped; lines
/// with a key that cannot be parsed are skipped too (OpenSSH does the same).
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// The name under which OpenSSH records `host` at `port`: `host` for 22, else `[host]:port`.
#[must_use]
pub fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

#[cfg(test)]
fn hmac_sha1(salt: &[u8], msg: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
    ring::hmac::sign(&key, msg).as_ref().to_vec()
}

/// Glob match with `*` and `?` (OpenSSH `match_pattern`), case-insensitive as host names are.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, trest)| t.eq_ignore_ascii_case(c) && glob(rest, trest)),
    }
}

impl HostPattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Hashed { salt, hash } => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
                ring::hmac::verify(&key, name.as_bytes(), hash).is_ok()
            }
            Self::Plain { patterns } => {
                let mut any = false;
                for (negated, p) in patterns {
                    if glob(p.as_bytes(), name.as_bytes()) {
                        if *negated {
                            return false;
                        }
                        any = true;
                    }
                }
                any
            }
        }
    }
}

impl KnownHosts {
    /// Parses known_hosts text. `path` is only used in error messages.
    ///
    /// # Errors
    /// [`Error::KnownHosts`] for a malformed hashed entry (bad base64), naming the line.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let mut entries = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace().peekable();
            let mut revoked = false;
            if let Some(marker) = fields.peek().filter(|f| f.starts_with('@')) {
                match *marker {
                    "@revoked" => revoked = true,
                    _ => continue, // @cert-authority and unknown markers
                }
                fields.next();
            }
            let (Some(hosts), Some(alg), Some(b64)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Ok(key) = HostKey::parse_openssh(&format!("{alg} {b64}")) else {
                continue;
            };
            let hosts = if let Some(rest) = hosts.strip_prefix("|1|") {
                let bad = |what: &str| Error::KnownHosts {
                    path: path.to_owned(),
                    reason: format!("line {line_no}: hashed entry has a bad {what}"),
                };
                let (salt, hash) = rest.split_once('|').ok_or_else(|| bad("layout"))?;
                HostPattern::Hashed {
                    salt: STANDARD.decode(salt).map_err(|_| bad("salt"))?,
                    hash: STANDARD.decode(hash).map_err(|_| bad("hash"))?,
                }
            } else {
                HostPattern::Plain {
                    patterns: hosts
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| match p.strip_prefix('!') {
                            Some(p) => (true, p.to_owned()),
                            None => (false, p.to_owned()),
                        })
                        .collect(),
                }
            };
            entries.push(Entry {
                line: line_no,
                revoked,
                hosts,
                key,
            });
        }
        Ok(Self { entries })
    }

    /// Reads and parses a file; a missing file is an empty list.
    ///
    /// # Errors
    /// [`Error::KnownHosts`] when the file exists but cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::KnownHosts {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// What the file says about `key` presented by `host` at `port`.
    #[must_use]
    pub fn check(&self, host: &str, port: u16, key: &HostKey) -> KnownHostsVerdict {
        let name = known_hosts_name(host, port);
        let mut first_for_host = None;
        let mut matched = None;
        for e in &self.entries {
            if e.revoked {
                if e.key == *key {
                    return KnownHostsVerdict::Revoked { line: e.line };
                }
                continue;
            }
            if !e.hosts.matches(&name) {
                continue;
            }
            first_for_host.get_or_insert(e.line);
            if e.key == *key {
                matched.get_or_insert(e.line);
            }
        }
        match (matched, first_for_host) {
            (Some(line), _) => KnownHostsVerdict::Match { line },
            (None, Some(line)) => KnownHostsVerdict::Mismatch { line },
            (None, None) => KnownHostsVerdict::Unknown,
        }
    }

    /// Key algorithms recorded for the host, in file order (used to ask the server for a key
    /// of a type we know, as OpenSSH does).
    #[must_use]
    pub fn algorithms_for(&self, host: &str, port: u16) -> Vec<String> {
        let name = known_hosts_name(host, port);
        let mut out: Vec<String> = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| !e.revoked && e.hosts.matches(&name))
        {
            if !out.iter().any(|a| a == e.key.algorithm()) {
                out.push(e.key.algorithm().to_owned());
            }
        }
        out
    }

    /// Appends a plain `name key` line for `host`/`port` to the file (creating it with mode
    /// 0600 if needed), as accept-new does.
    ///
    /// # Errors
    /// [`Error::KnownHosts`] when the file cannot be written.
    pub fn append(path: &Path, host: &str, port: u16, key: &HostKey) -> Result<(), Error> {
        let err = |e: std::io::Error| Error::KnownHosts {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(err)?;
        // Make sure the new entry starts on its own line.
        let needs_newline = std::fs::read(path)
            .map(|b| !b.is_empty() && !b.ends_with(b"\n"))
            .unwrap_or(false);
        let line = format!(
            "{}{} {}\n",
            if needs_newline { "\n" } else { "" },
            known_hosts_name(host, port),
            key.to_openssh()
        );
        f.write_all(line.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real OpenSSH key blobs (generated with ssh-keygen for these tests).
    const ED1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBpTwnU9luMLbR63ho92KJoWRgqn3lonNZcivFnROAxf";
    const ED2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICWmA4mb41rqyRTTmfKYqAF4J5P/VkYsrg00IosGQifu";

    fn key(s: &str) -> HostKey {
        HostKey::parse_openssh(s).expect("valid key")
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        format!(
            "|1|{}|{}",
            STANDARD.encode(salt),
            STANDARD.encode(hmac_sha1(salt, name.as_bytes()))
        )
    }

    #[test]
    fn parses_and_fingerprints_keys() {
        let k = key(&format!("{ED1} root@host"));
        assert_eq!(k.algorithm(), "ssh-ed25519");
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert_eq!(k.to_openssh(), ED1);
        assert!(HostKey::parse_openssh("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIG8h").is_err());
        assert!(HostKey::parse_openssh("ssh-ed25519").is_err());
        assert!(HostKey::parse_openssh("ssh-ed25519 !!!").is_err());
    }

    #[test]
    fn plain_entries_and_ports() {
        let text = format!("# comment\n\nlb1,10.0.0.11 {ED1}\n[10.0.0.12]:2222 {ED2}\n");
        let kh = KnownHosts::parse(&text, Path::new("kh")).expect("parses");
        assert_eq!(
            kh.check("lb1", 22, &key(ED1)),
            KnownHostsVerdict::Match { line: 3 }
        );
        assert_eq!(
            kh.check("10.0.0.11", 22, &key(ED1)),
            KnownHostsVerdict::Match { line: 3 }
        );
        // the same host on another port is a different entry
        assert_eq!(
            kh.check("10.0.0.11", 2222, &key(ED1)),
            KnownHostsVerdict::Unknown
        );
        assert_eq!(
            kh.check("10.0.0.12", 2222, &key(ED2)),
            KnownHostsVerdict::Match { line: 4 }
        );
        assert_eq!(
            kh.check("10.0.0.12", 22, &key(ED2)),
            KnownHostsVerdict::Unknown
        );
        assert_eq!(
            kh.check("lb1", 22, &key(ED2)),
            KnownHostsVerdict::Mismatch { line: 3 }
        );
        assert_eq!(kh.algorithms_for("lb1", 22), vec!["ssh-ed25519".to_owned()]);
    }

    #[test]
    fn hashed_entries() {
        let text = format!(
            "{} {ED1}\n{} {ED2}\n",
            hashed("lb1", b"0123456789abcdef0123"),
            hashed("[10.0.0.12]:2222", b"saltsaltsaltsaltsalt")
        );
        let kh = KnownHosts::parse(&text, Path::new("kh")).expect("parses");
        assert_eq!(
            kh.check("lb1", 22, &key(ED1)),
            KnownHostsVerdict::Match { line: 1 }
        );
        assert_eq!(
            kh.check("lb1", 22, &key(ED2)),
            KnownHostsVerdict::Mismatch { line: 1 }
        );
        assert_eq!(kh.check("lb2", 22, &key(ED1)), KnownHostsVerdict::Unknown);
        assert_eq!(
            kh.check("10.0.0.12", 2222, &key(ED2)),
            KnownHostsVerdict::Match { line: 2 }
        );
        assert_eq!(
            kh.check("10.0.0.12", 22, &key(ED2)),
            KnownHostsVerdict::Unknown
        );
        let err = KnownHosts::parse(&format!("|1|!!|x {ED1}\n"), Path::new("kh")).expect_err("bad");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn hashed_entry_from_ssh_keygen_format() {
        // `ssh-keygen -H` output shape: |1|base64(20-byte salt)|base64(20-byte HMAC-SHA1).
        let line = hashed("example.org", &[7u8; 20]);
        assert_eq!(line.len(), 3 + 28 + 1 + 28);
        let kh = KnownHosts::parse(&format!("{line} {ED1}"), Path::new("kh")).expect("parses");
        assert!(matches!(
            kh.check("EXAMPLE.ORG", 22, &key(ED1)),
            KnownHostsVerdict::Unknown
        ));
        assert!(matches!(
            kh.check("example.org", 22, &key(ED1)),
            KnownHostsVerdict::Match { .. }
        ));
    }

    #[test]
    fn wildcards_negation_markers() {
        let text = format!(
            "*.lab,!bad.lab {ED1}\n@revoked * {ED2}\n@cert-authority *.lab {ED2}\n10.0.0.? {ED1}\njunk line\n"
        );
        let kh = KnownHosts::parse(&text, Path::new("kh")).expect("parses");
        assert_eq!(
            kh.check("cp1.lab", 22, &key(ED1)),
            KnownHostsVerdict::Match { line: 1 }
        );
        assert_eq!(
            kh.check("CP1.LAB", 22, &key(ED1)),
            KnownHostsVerdict::Match { line: 1 }
        );
        assert_eq!(
            kh.check("bad.lab", 22, &key(ED1)),
            KnownHostsVerdict::Unknown
        );
        assert_eq!(
            kh.check("cp1.lab", 22, &key(ED2)),
            KnownHostsVerdict::Revoked { line: 2 }
        );
        assert_eq!(
            kh.check("10.0.0.7", 22, &key(ED1)),
            KnownHostsVerdict::Match { line: 4 }
        );
        assert_eq!(
            kh.check("10.0.0.17", 22, &key(ED1)),
            KnownHostsVerdict::Unknown
        );
    }

    #[test]
    fn append_records_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, format!("lb1 {ED1}")).expect("write"); // no trailing newline
        KnownHosts::append(&path, "10.0.0.12", 2222, &key(ED2)).expect("append");
        let kh = KnownHosts::load(&path).expect("load");
        assert_eq!(
            kh.check("lb1", 22, &key(ED1)),
            KnownHostsVerdict::Match { line: 1 }
        );
        assert_eq!(
            kh.check("10.0.0.12", 2222, &key(ED2)),
            KnownHostsVerdict::Match { line: 2 }
        );
        assert!(KnownHosts::load(&dir.path().join("missing")).is_ok());
    }
}
