//! The exports(5) model: export paths, allowed clients, options, and the `exportfs -v` parser.
//!
//! Every value is validated when it is built, so a rendered exports line can never carry an
//! injected option, client or second line: paths and host names reject whitespace, newlines,
//! `#`, quotes, parentheses and commas; options are a typed struct, not free text.

use core::fmt;
use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::error::{Error, Result};

/// Characters no value of an exports line may contain.
fn forbidden_char(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '(' | ')' | ',' | '#' | '"' | '\'' | '\\' | '$' | '`' | ';' | '&' | '|'
        )
}

/// An absolute, normalised directory path on the NFS server, e.g. `/srv/nfs/k8s-prod`.
///
/// Rejects relative paths, `/` itself, `.`/`..` components, empty components (`//`), a trailing
/// slash and any whitespace or exports metacharacter (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExportPath(String);

impl ExportPath {
    /// Validates `path`.
    ///
    /// # Errors
    /// [`Error::RelativeExportPath`] when it does not start with `/`, [`Error::InvalidValue`]
    /// for any other defect.
    pub fn new(path: impl Into<String>) -> Result<Self> {
        let path = path.into();
        let bad = |reason| Error::InvalidValue {
            field: "export path",
            value: path.clone(),
            reason,
        };
        if !path.starts_with('/') {
            return Err(Error::RelativeExportPath { path });
        }
        if path.chars().any(forbidden_char) {
            return Err(bad(
                "whitespace, control characters and ()#,\"'\\$`;&| are not allowed",
            ));
        }
        if path == "/" {
            return Err(bad("exporting the root file system is not allowed"));
        }
        if path.ends_with('/') {
            return Err(bad("no trailing '/'"));
        }
        if path.len() > 1024 {
            return Err(bad("longer than 1024 bytes"));
        }
        for component in path[1..].split('/') {
            match component {
                "" => return Err(bad("empty path component ('//')")),
                "." | ".." => return Err(bad("'.' and '..' components are not allowed")),
                _ => {}
            }
        }
        Ok(Self(path))
    }

    /// The path as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is `other` or a directory above it (component-wise, so `/srv/a` does not
    /// contain `/srv/ab`).
    #[must_use]
    pub fn contains(&self, other: &Self) -> bool {
        other.0 == self.0
            || (other.0.starts_with(&self.0) && other.0.as_bytes().get(self.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for ExportPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client allowed to mount an export: a network (CIDR, a single address is a /32 or /128) or a
/// host name (with the `*`/`?` wildcards exports(5) allows).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Client {
    /// An IPv4 or IPv6 network, rendered as `10.0.0.0/24`.
    Network(IpNet),
    /// A host name or wildcard, e.g. `node1.lab` or `*.lab`.
    Host(HostName),
}

impl Client {
    /// Parses a client: a CIDR, a bare IP address (becomes a host network) or a host name.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] naming the client when it is neither.
    pub fn parse(s: &str) -> Result<Self> {
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Self::Network(net.trunc()));
        }
        if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            return Ok(Self::Network(IpNet::from(ip)));
        }
        if s.contains('/') || s.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(Error::InvalidValue {
                field: "export client",
                value: s.to_owned(),
                reason: "not a valid CIDR or IP address",
            });
        }
        HostName::new(s).map(Self::Host)
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network(net) => write!(f, "{net}"),
            Self::Host(h) => write!(f, "{h}"),
        }
    }
}

/// A DNS host name (RFC 1123 labels), optionally with exports(5) wildcards `*` and `?`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostName(String);

impl HostName {
    /// Validates a host name.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when a label is empty, longer than 63 bytes, starts or ends with
    /// `-`, or holds anything but ASCII letters, digits, `-`, `*` and `?`.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        let bad = |reason| Error::InvalidValue {
            field: "host name",
            value: s.clone(),
            reason,
        };
        if s.is_empty() || s.len() > 253 {
            return Err(bad("must be 1 to 253 bytes"));
        }
        for label in s.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(bad("each dot-separated label must be 1 to 63 bytes"));
            }
            if !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '*' | '?'))
            {
                return Err(bad(
                    "only ASCII letters, digits, '-' and the wildcards '*' '?' are allowed",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("a label must not start or end with '-'"));
            }
        }
        Ok(Self(s))
    }

    /// The name as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the server maps client user ids (exports(5) "User ID Mapping").
///
/// # The `no_root_squash` trade-off
/// With [`Squash::Root`] (the default) uid 0 from a client becomes the anonymous user
/// (`nobody`, 65534), so a compromised or careless pod running as root cannot create root-owned
/// or setuid files on the server or read files only root may read. The cost: images whose entry
/// point `chown`s its data directory as root fail with `EPERM`, and the provisioner itself works as
/// `nobody` (which is why the export directories default to being owned by 65534:65534).
/// [`Squash::None`] (`no_root_squash`) makes such images work, but root in *any* pod on *any*
/// allowed client is root on the export: every tenant's volume on that export is readable and
/// writable by every other. Prefer [`Squash::All`] for single-purpose exports whose workloads run
/// as one known uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Squash {
    /// `root_squash`: uid/gid 0 map to the anonymous ids (65534).
    #[default]
    Root,
    /// `no_root_squash`: root on a client is root on the export. See the trade-off above.
    None,
    /// `all_squash,anonuid=..,anongid=..`: every client uid maps to one owner.
    All {
        /// The uid all clients map to.
        anonuid: u32,
        /// The gid all clients map to.
        anongid: u32,
    },
}

/// The options of one client on one export. [`ExportOptions::default`] is
/// `rw,sync,no_subtree_check,root_squash`.
///
/// A struct rather than a list of strings, so contradictory (`rw,ro`) or injected options cannot
/// be expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// `ro` when true, `rw` otherwise.
    pub read_only: bool,
    /// `async` when true (faster, loses acknowledged writes on a server crash), `sync` otherwise.
    pub async_writes: bool,
    /// `subtree_check` when true, `no_subtree_check` otherwise (the recommended default).
    pub subtree_check: bool,
    /// Root / all squashing.
    pub squash: Squash,
    /// `fsid=N`: a stable file system id, so clients keep their handles when the server's device
    /// numbering changes (after a restart or a disk move). Unique per export.
    pub fsid: Option<u32>,
    /// `insecure`: accept requests from source ports above 1023. Off by default.
    pub insecure: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            read_only: false,
            async_writes: false,
            subtree_check: false,
            squash: Squash::Root,
            fsid: None,
            insecure: false,
        }
    }
}

impl fmt::Display for ExportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.read_only { "ro" } else { "rw" })?;
        f.write_str(if self.async_writes { ",async" } else { ",sync" })?;
        f.write_str(if self.subtree_check {
            ",subtree_check"
        } else {
            ",no_subtree_check"
        })?;
        match self.squash {
            Squash::Root => f.write_str(",root_squash")?,
            Squash::None => f.write_str(",no_root_squash")?,
            Squash::All { anonuid, anongid } => {
                write!(f, ",all_squash,anonuid={anonuid},anongid={anongid}")?;
            }
        }
        if let Some(fsid) = self.fsid {
            write!(f, ",fsid={fsid}")?;
        }
        if self.insecure {
            f.write_str(",insecure")?;
        }
        Ok(())
    }
}

/// One line of an exports file: a path and its clients, each with options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportLine {
    /// The exported directory.
    pub path: ExportPath,
    /// The clients and their options, in order.
    pub clients: Vec<(Client, ExportOptions)>,
}

impl fmt::Display for ExportLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path.as_str())?;
        for (client, options) in &self.clients {
            write!(f, " {client}({options})")?;
        }
        Ok(())
    }
}

/// An exports file (exports(5)): a header comment and one line per export.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportsFile {
    /// The export lines in order.
    pub lines: Vec<ExportLine>,
}

impl fmt::Display for ExportsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "# Managed by hakube (hakube-nfs-provisioning). Local edits are overwritten."
        )?;
        writeln!(f, "# Re-export after a change with: exportfs -ra")?;
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// One export as the kernel holds it, parsed from `exportfs -v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveExport {
    /// The exported directory.
    pub path: String,
    /// The client as exportfs prints it (`10.0.0.0/24`, a host name, `<world>` for `*`).
    pub client: String,
    /// The flags in the order printed (`sync`, `rw`, `root_squash`, ...).
    pub flags: Vec<String>,
    /// The `key=value` options (`sec=sys`, `fsid=7`, `anonuid=1000`, ...).
    pub values: BTreeMap<String, String>,
}

impl LiveExport {
    /// Whether a bare flag such as `rw` or `no_root_squash` is set.
    #[must_use]
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Compares with the options the model asked for; returns the first difference.
    fn differs_from(&self, want: &ExportOptions) -> Option<String> {
        let check = |flag: &str| (!self.has(flag)).then(|| format!("missing {flag}"));
        check(if want.read_only { "ro" } else { "rw" })
            .or_else(|| check(if want.async_writes { "async" } else { "sync" }))
            .or_else(|| match want.squash {
                Squash::Root => check("root_squash").or_else(|| check("no_all_squash")),
                Squash::None => check("no_root_squash"),
                Squash::All { anonuid, anongid } => check("all_squash")
                    .or_else(|| self.value_differs("anonuid", anonuid))
                    .or_else(|| self.value_differs("anongid", anongid)),
            })
            .or_else(|| {
                if want.subtree_check {
                    self.has("no_subtree_check")
                        .then(|| "subtree_check expected".to_owned())
                } else {
                    check("no_subtree_check")
                }
            })
            .or_else(|| want.fsid.and_then(|id| self.value_differs("fsid", id)))
    }

    fn value_differs(&self, key: &str, want: u32) -> Option<String> {
        let have = self.values.get(key);
        (have.map(String::as_str) != Some(want.to_string().as_str()))
            .then(|| format!("{key} is {have:?}, want {want}"))
    }
}

/// Parses the output of `exportfs -v` (nfs-utils `exportfs.c` `dump()`).
///
/// The format: each export/client pair is `PATH<pad>\tCLIENT(opt,opt,...)` where PATH is padded
/// to 14 columns; a path longer than 14 characters is printed alone and the client follows on the
/// next line after two tabs. `*` prints as `<world>`.
///
/// # Errors
/// [`Error::ExportfsOutput`] naming the line when it does not fit that format.
pub fn parse_exportfs_verbose(output: &str) -> Result<Vec<LiveExport>> {
    let mut exports = Vec::new();
    let mut pending_path: Option<(usize, String)> = None;
    for (idx, raw) in output.lines().enumerate() {
        let line_no = idx + 1;
        let err = |reason| Error::ExportfsOutput {
            line_no,
            line: raw.to_owned(),
            reason,
        };
        if raw.trim().is_empty() {
            continue;
        }
        let (path, rest) = if raw.starts_with('\t') || raw.starts_with(' ') {
            let (_, path) = pending_path
                .take()
                .ok_or_else(|| err("client line without a preceding path line"))?;
            (path, raw.trim())
        } else {
            if let Some((n, p)) = pending_path.take() {
                return Err(Error::ExportfsOutput {
                    line_no: n,
                    line: p,
                    reason: "path line without a client line",
                });
            }
            match raw.split_once('\t') {
                Some((path, rest)) => (path.trim_end().to_owned(), rest.trim()),
                None => {
                    if raw.contains('(') {
                        return Err(err("expected a tab between path and client"));
                    }
                    pending_path = Some((line_no, raw.trim_end().to_owned()));
                    continue;
                }
            }
        };
        if !path.starts_with('/') {
            return Err(err("export path is not absolute"));
        }
        let open = rest
            .find('(')
            .ok_or_else(|| err("missing '(' after client"))?;
        let opts = rest[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| err("options not closed by ')'"))?;
        let client = rest[..open].to_owned();
        if client.is_empty() {
            return Err(err("empty client"));
        }
        let mut flags = Vec::new();
        let mut values = BTreeMap::new();
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                Some((k, v)) => {
                    values.insert(k.to_owned(), v.to_owned());
                }
                None => flags.push(opt.to_owned()),
            }
        }
        exports.push(LiveExport {
            path,
            client,
            flags,
            values,
        });
    }
    if let Some((line_no, line)) = pending_path {
        return Err(Error::ExportfsOutput {
            line_no,
            line,
            reason: "path line without a client line",
        });
    }
    Ok(exports)
}

/// Checks that every (path, client) of `file` is live with the wanted options.
///
/// Extra live exports (from other files) are allowed. Host-name clients are compared by name as
/// written; exportfs drops host names it cannot resolve, which shows here as a missing export.
///
/// # Errors
/// [`Error::ExportMismatch`] for the first export that is missing or has other options.
pub fn verify_live_exports(file: &ExportsFile, live: &[LiveExport]) -> Result<()> {
    for line in &file.lines {
        for (client, want) in &line.clients {
            let client_str = client.to_string();
            let found = live
                .iter()
                .find(|l| l.path == line.path.as_str() && l.client == client_str)
                .ok_or_else(|| Error::ExportMismatch {
                    path: line.path.to_string(),
                    client: client_str.clone(),
                    detail:
                        "not exported (is the file in /etc/exports.d and was exportfs -ra run?)"
                            .to_owned(),
                })?;
            if let Some(detail) = found.differs_from(want) {
                return Err(Error::ExportMismatch {
                    path: line.path.to_string(),
                    client: client_str,
                    detail,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_validated() {
        assert!(ExportPath::new("/srv/nfs/k8s-prod").is_ok());
        assert!(matches!(
            ExportPath::new("srv/nfs"),
            Err(Error::RelativeExportPath { .. })
        ));
        for bad in [
            "/",
            "/srv/",
            "/srv//a",
            "/srv/../etc",
            "/srv/./a",
            "/srv a",
            "/srv\n/x",
            "/srv(rw)",
            "/srv#x",
            "/srv,x",
            "/srv\t",
        ] {
            assert!(
                matches!(ExportPath::new(bad), Err(Error::InvalidValue { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn containment_is_by_component() {
        let a = ExportPath::new("/srv/nfs").expect("valid");
        let b = ExportPath::new("/srv/nfs/k8s").expect("valid");
        let c = ExportPath::new("/srv/nfsx").expect("valid");
        assert!(a.contains(&b));
        assert!(a.contains(&a));
        assert!(!b.contains(&a));
        assert!(!a.contains(&c));
    }

    #[test]
    fn clients_parse() {
        assert_eq!(
            Client::parse("10.0.0.7/24").expect("cidr").to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(
            Client::parse("10.0.0.7").expect("ip").to_string(),
            "10.0.0.7/32"
        );
        assert_eq!(
            Client::parse("*.lab").expect("wildcard").to_string(),
            "*.lab"
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0.300",
            "node1(rw)",
            "a b",
            "node\n1",
            "",
            "-x",
            "a..b",
        ] {
            assert!(Client::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn options_render_default_and_variants() {
        assert_eq!(
            ExportOptions::default().to_string(),
            "rw,sync,no_subtree_check,root_squash"
        );
        let o = ExportOptions {
            read_only: true,
            async_writes: true,
            subtree_check: true,
            squash: Squash::All {
                anonuid: 1000,
                anongid: 1001,
            },
            fsid: Some(7),
            insecure: true,
        };
        assert_eq!(
            o.to_string(),
            "ro,async,subtree_check,all_squash,anonuid=1000,anongid=1001,fsid=7,insecure"
        );
    }

    #[test]
    fn exportfs_verbose_long_and_short_paths() {
        let out = "/tmp/nfsx/s   \t192.168.1.5(async,wdelay,hide,sec=sys,ro,no_root_squash,no_all_squash)\n\
                   /srv/nfs/k8s-nonprod\n\t\t10.0.0.0/24(sync,wdelay,hide,no_subtree_check,fsid=8,sec=sys,rw,root_squash,no_all_squash)\n";
        let live = parse_exportfs_verbose(out).expect("parses");
        assert_eq!(live.len(), 2);
        assert_eq!(live[0].path, "/tmp/nfsx/s");
        assert_eq!(live[0].client, "192.168.1.5");
        assert!(live[0].has("ro"));
        assert_eq!(live[1].path, "/srv/nfs/k8s-nonprod");
        assert_eq!(live[1].values.get("fsid").map(String::as_str), Some("8"));
    }

    #[test]
    fn exportfs_verbose_rejects_garbage() {
        for bad in [
            "/srv/a\n",
            "\t\t10.0.0.0/24(rw)\n",
            "/srv/a\t10.0.0.0/24 rw\n",
            "/srv/a\t10.0.0.0/24(rw\n",
            "relative\t10.0.0.0/24(rw)\n",
        ] {
            assert!(
                matches!(
                    parse_exportfs_verbose(bad),
                    Err(Error::ExportfsOutput { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }
}
