//! The crate's own input model and its validation into an [`NfsSetup`].

use core::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::exports::{
    Client, ExportLine, ExportOptions, ExportPath, ExportsFile, HostName, Squash,
};

/// The image of the NFS subdir external provisioner, pinned (the last release, v4.0.2).
pub const SUBDIR_PROVISIONER_IMAGE: &str =
    "registry.k8s.io/sig-storage/nfs-subdir-external-provisioner:v4.0.2";

/// Everything this crate needs to know: the server, its exports and how the cluster uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsInput {
    /// The NFS server VM.
    pub server: NfsServer,
    /// The network the Kubernetes nodes live in; every client CIDR must lie inside it, and an
    /// export without explicit clients is exported to it.
    pub node_network: IpNet,
    /// The exports, each backing one StorageClass.
    pub exports: Vec<ExportSpec>,
    /// Exports backing no StorageClass (e.g. etcd snapshots): exported and created on the
    /// server like the others, with no provisioner, StorageClass or backup of their own.
    pub plain_exports: Vec<PlainExport>,
    /// Cluster-side choices.
    pub cluster: ClusterOptions,
}

impl NfsInput {
    /// The seed design: `/srv/nfs/k8s-prod` behind `nfs-prod` (retains data) and
    /// `/srv/nfs/k8s-nonprod` behind `nfs-nonprod` (deletes data), both exported to the node
    /// network with the safe default options, no default StorageClass.
    ///
    /// # Errors
    /// Never for the built-in names; kept fallible so the names stay validated in one place.
    pub fn seed(server: NfsServer, node_network: IpNet) -> Result<Self> {
        Ok(Self {
            server,
            node_network,
            exports: vec![
                ExportSpec::new(
                    ExportPath::new("/srv/nfs/k8s-prod")?,
                    K8sName::new("nfs-prod")?,
                )
                .with_policy(DataPolicy::Retain),
                ExportSpec::new(
                    ExportPath::new("/srv/nfs/k8s-nonprod")?,
                    K8sName::new("nfs-nonprod")?,
                )
                .with_policy(DataPolicy::Delete),
            ],
            plain_exports: Vec::new(),
            cluster: ClusterOptions::default(),
        })
    }
}

/// The NFS server VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsServer {
    /// The VM name (the plan tree's `hosts/<name>/` directory).
    pub name: HostName,
    /// The address nodes mount from (becomes `NFS_SERVER` / the `server` parameter).
    pub address: ServerAddress,
}

/// How the nodes reach the NFS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAddress {
    /// An IP address (recommended: no DNS dependency at mount time).
    Ip(IpAddr),
    /// A DNS name the nodes can resolve.
    Host(HostName),
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Host(h) => write!(f, "{h}"),
        }
    }
}

/// What happens to a volume's data when its claim is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPolicy {
    /// `reclaimPolicy: Retain`: the PV and its directory stay; an admin cleans up. For production.
    Retain,
    /// `reclaimPolicy: Delete`, directory renamed to `archived-...` on the server.
    Archive,
    /// `reclaimPolicy: Delete`, directory removed. For non-production.
    Delete,
}

/// Owner and mode of an export's top directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryOwner {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission bits, e.g. `0o755`.
    pub mode: u32,
}

/// The anonymous uid/gid `root_squash` maps root to (`nobody:nogroup` on Debian).
pub const NOBODY: u32 = 65534;

impl DirectoryOwner {
    /// The owner that lets the provisioner (root in its pod, squashed per `squash`) create
    /// volume directories: `nobody:nogroup` under `root_squash`, the anonymous ids under
    /// `all_squash`, `root:root` under `no_root_squash`; mode `0755` in every case.
    #[must_use]
    pub fn for_squash(squash: Squash) -> Self {
        let (uid, gid) = match squash {
            Squash::Root => (NOBODY, NOBODY),
            Squash::None => (0, 0),
            Squash::All { anonuid, anongid } => (anonuid, anongid),
        };
        Self {
            uid,
            gid,
            mode: 0o755,
        }
    }
}

/// One export and the StorageClass backed by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    /// The directory on the server.
    pub path: ExportPath,
    /// The StorageClass name (also names the provisioner Deployment).
    pub storage_class: K8sName,
    /// Allowed clients; empty means the whole node network.
    pub clients: Vec<Client>,
    /// Options for every client of this export.
    pub options: ExportOptions,
    /// What happens to data when a claim is deleted.
    pub data_policy: DataPolicy,
    /// Owner and mode of the export directory; `None` derives it from the squash mode.
    pub directory: Option<DirectoryOwner>,
}

impl ExportSpec {
    /// An export to the node network with the default options, retaining data.
    #[must_use]
    pub fn new(path: ExportPath, storage_class: K8sName) -> Self {
        Self {
            path,
            storage_class,
            clients: Vec::new(),
            options: ExportOptions::default(),
            data_policy: DataPolicy::Retain,
            directory: None,
        }
    }

    /// Sets the data policy.
    #[must_use]
    pub fn with_policy(mut self, policy: DataPolicy) -> Self {
        self.data_policy = policy;
        self
    }

    /// Sets the allowed clients.
    #[must_use]
    pub fn with_clients(mut self, clients: Vec<Client>) -> Self {
        self.clients = clients;
        self
    }

    /// Sets the export options.
    #[must_use]
    pub fn with_options(mut self, options: ExportOptions) -> Self {
        self.options = options;
        self
    }

    /// The owner and mode the export directory gets.
    #[must_use]
    pub fn directory_owner(&self) -> DirectoryOwner {
        self.directory
            .unwrap_or_else(|| DirectoryOwner::for_squash(self.options.squash))
    }
}

/// An export that backs no StorageClass: a line in the exports file and a directory on the
/// server, nothing in the cluster. For data written by something other than a provisioner,
/// such as etcd snapshots from a CronJob ([`PlainExport::root_writer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainExport {
    /// The directory on the server.
    pub path: ExportPath,
    /// Allowed clients; empty means the whole node network.
    pub clients: Vec<Client>,
    /// Options for every client of this export.
    pub options: ExportOptions,
    /// Owner and mode of the export directory; `None` derives it from the squash mode.
    pub directory: Option<DirectoryOwner>,
}

impl PlainExport {
    /// An export to the node network with the default options (`root_squash`).
    #[must_use]
    pub fn new(path: ExportPath) -> Self {
        Self {
            path,
            clients: Vec::new(),
            options: ExportOptions::default(),
            directory: None,
        }
    }

    /// An export only `clients` may mount, written by root on them: `no_root_squash`, the
    /// directory `root:root` mode `0700`. For a job running as root that writes sensitive data,
    /// e.g. etcd snapshots (which hold every Secret of a cluster) from the control-plane nodes.
    ///
    /// `no_root_squash` makes root on every listed client root on the export (see the
    /// trade-off on [`Squash`]), so list only the hosts that write, never a network of
    /// workload nodes.
    #[must_use]
    pub fn root_writer(path: ExportPath, clients: Vec<Client>) -> Self {
        Self {
            path,
            clients,
            options: ExportOptions {
                squash: Squash::None,
                ..ExportOptions::default()
            },
            directory: Some(DirectoryOwner {
                uid: 0,
                gid: 0,
                mode: 0o700,
            }),
        }
    }

    /// Sets the allowed clients.
    #[must_use]
    pub fn with_clients(mut self, clients: Vec<Client>) -> Self {
        self.clients = clients;
        self
    }

    /// Sets the export options.
    #[must_use]
    pub fn with_options(mut self, options: ExportOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the owner and mode of the export directory.
    #[must_use]
    pub fn with_directory(mut self, directory: DirectoryOwner) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The owner and mode the export directory gets.
    #[must_use]
    pub fn directory_owner(&self) -> DirectoryOwner {
        self.directory
            .unwrap_or_else(|| DirectoryOwner::for_squash(self.options.squash))
    }
}

/// Which provisioner creates volumes on the exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// kubernetes-sigs nfs-subdir-external-provisioner: one Deployment per export, rendered and
    /// applied by this crate. Simple, but unmaintained since 2021.
    #[default]
    SubdirProvisioner,
    /// kubernetes-csi csi-driver-nfs (`nfs.csi.k8s.io`), maintained. This crate renders only the
    /// StorageClasses; the driver itself is installed by its Helm chart.
    CsiDriverNfs,
}

/// Cluster-side choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Namespace of the provisioner Deployments and ServiceAccount.
    pub namespace: K8sName,
    /// Which provisioner.
    pub backend: Backend,
    /// The StorageClass marked default, if any.
    pub default_class: Option<K8sName>,
    /// Mount options copied onto every PV.
    pub mount_options: Vec<MountOption>,
    /// The provisioner image (subdir backend).
    pub image: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            namespace: K8sName(String::from("nfs-provisioner")),
            backend: Backend::SubdirProvisioner,
            default_class: None,
            mount_options: ["nfsvers=4.1", "hard", "noatime"]
                .into_iter()
                .map(|o| MountOption(o.to_owned()))
                .collect(),
            image: SUBDIR_PROVISIONER_IMAGE.to_owned(),
        }
    }
}

/// A Kubernetes object name usable as a DNS-1123 label: lower-case letters, digits and `-`,
/// starting and ending alphanumeric, at most 50 characters (so derived names such as
/// `<name>-provisioner` stay within 63).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct K8sName(String);

impl K8sName {
    /// Validates a name.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when it breaks the rules above.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        let bad = |reason| Error::InvalidValue {
            field: "Kubernetes name",
            value: s.clone(),
            reason,
        };
        if s.is_empty() || s.len() > 50 {
            return Err(bad("must be 1 to 50 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("only lower-case letters, digits and '-' are allowed"));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(bad("must start and end with a letter or digit"));
        }
        Ok(Self(s))
    }

    /// The name as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for K8sName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One NFS mount option, e.g. `nfsvers=4.1` or `hard`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOption(String);

impl MountOption {
    /// Validates an option: ASCII letters, digits and `=._-:` only (no commas: one option each).
    ///
    /// # Errors
    /// [`Error::InvalidValue`] otherwise.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        if s.is_empty()
            || s.len() > 64
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '.' | '_' | '-' | ':'))
        {
            return Err(Error::InvalidValue {
                field: "mount option",
                value: s,
                reason: "1 to 64 of ASCII letters, digits and =._-: (one option per entry)",
            });
        }
        Ok(Self(s))
    }

    /// The option as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated [`NfsInput`]: the entry point to every renderer of this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsSetup {
    input: NfsInput,
}

impl NfsSetup {
    /// Validates the input as a whole.
    ///
    /// # Errors
    /// - [`Error::NoExports`] when there is none (of either kind),
    /// - [`Error::OverlappingExports`] when two paths (of either kind) are equal or nested,
    /// - [`Error::ClientOutsideNodeNetwork`] for a client CIDR not inside `node_network`,
    /// - [`Error::DuplicateStorageClass`] when two exports name the same class,
    /// - [`Error::UnknownDefaultClass`] when the default class is none of them,
    /// - [`Error::InvalidValue`] for a reused `fsid` or a bad image reference.
    pub fn new(input: NfsInput) -> Result<Self> {
        if input.exports.is_empty() && input.plain_exports.is_empty() {
            return Err(Error::NoExports);
        }
        // Every export line, of either kind: paths, clients and fsids are one namespace.
        let all: Vec<(&ExportPath, &[Client], &ExportOptions)> = input
            .exports
            .iter()
            .map(|e| (&e.path, e.clients.as_slice(), &e.options))
            .chain(
                input
                    .plain_exports
                    .iter()
                    .map(|e| (&e.path, e.clients.as_slice(), &e.options)),
            )
            .collect();
        for (i, (a_path, a_clients, a_options)) in all.iter().enumerate() {
            for (b_path, _, b_options) in &all[i + 1..] {
                if a_path.contains(b_path) {
                    return Err(Error::OverlappingExports {
                        outer: a_path.to_string(),
                        inner: b_path.to_string(),
                    });
                }
                if b_path.contains(a_path) {
                    return Err(Error::OverlappingExports {
                        outer: b_path.to_string(),
                        inner: a_path.to_string(),
                    });
                }
                if a_options.fsid.is_some() && a_options.fsid == b_options.fsid {
                    return Err(Error::InvalidValue {
                        field: "fsid",
                        value: format!("{} ({a_path} and {b_path})", a_options.fsid.unwrap_or(0),),
                        reason: "each export needs its own fsid",
                    });
                }
            }
            for client in *a_clients {
                if let Client::Network(net) = client
                    && !input.node_network.contains(net)
                {
                    return Err(Error::ClientOutsideNodeNetwork {
                        export: a_path.to_string(),
                        client: client.to_string(),
                        node_network: input.node_network.to_string(),
                    });
                }
            }
        }
        for (i, a) in input.exports.iter().enumerate() {
            for b in &input.exports[i + 1..] {
                if a.storage_class == b.storage_class {
                    return Err(Error::DuplicateStorageClass {
                        name: a.storage_class.to_string(),
                        first: a.path.to_string(),
                        second: b.path.to_string(),
                    });
                }
            }
        }
        if let Some(default) = &input.cluster.default_class
            && !input.exports.iter().any(|e| &e.storage_class == default)
        {
            return Err(Error::UnknownDefaultClass {
                name: default.to_string(),
            });
        }
        let image = &input.cluster.image;
        if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::InvalidValue {
                field: "provisioner image",
                value: image.clone(),
                reason: "must be a non-empty image reference without whitespace",
            });
        }
        Ok(Self { input })
    }

    /// The validated input.
    #[must_use]
    pub fn input(&self) -> &NfsInput {
        &self.input
    }

    /// The exports file for the server (see [`crate::server::EXPORTS_FILE`]): the StorageClass
    /// exports, then the plain exports, each in input order.
    #[must_use]
    pub fn exports_file(&self) -> ExportsFile {
        let line = |path: &ExportPath, clients: &[Client], options: ExportOptions| {
            let clients = if clients.is_empty() {
                vec![Client::Network(self.input.node_network.trunc())]
            } else {
                clients.to_vec()
            };
            ExportLine {
                path: path.clone(),
                clients: clients.into_iter().map(|c| (c, options)).collect(),
            }
        };
        ExportsFile {
            lines: self
                .input
                .exports
                .iter()
                .map(|e| line(&e.path, &e.clients, e.options))
                .chain(
                    self.input
                        .plain_exports
                        .iter()
                        .map(|e| line(&e.path, &e.clients, e.options)),
                )
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> NfsServer {
        NfsServer {
            name: HostName::new("nfs1").expect("valid"),
            address: ServerAddress::Ip("10.20.0.50".parse().expect("ip")),
        }
    }

    fn seed() -> NfsInput {
        NfsInput::seed(server(), "10.20.0.0/24".parse().expect("net")).expect("seed")
    }

    #[test]
    fn seed_is_valid() {
        let setup = NfsSetup::new(seed()).expect("valid");
        assert_eq!(
            setup.exports_file().lines[0].to_string(),
            "/srv/nfs/k8s-prod 10.20.0.0/24(rw,sync,no_subtree_check,root_squash)"
        );
    }

    #[test]
    fn nested_exports_are_rejected() {
        let mut input = seed();
        input.exports[1].path = ExportPath::new("/srv/nfs/k8s-prod/inner").expect("valid");
        let err = NfsSetup::new(input).expect_err("nested");
        assert!(matches!(err, Error::OverlappingExports { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "export /srv/nfs/k8s-prod/inner overlaps export /srv/nfs/k8s-prod (the same directory or nested inside it)"
        );
        let mut input = seed();
        input.exports[0].path = ExportPath::new("/srv/nfs/k8s-nonprod").expect("valid");
        assert!(matches!(
            NfsSetup::new(input),
            Err(Error::OverlappingExports { .. })
        ));
    }

    #[test]
    fn client_outside_node_network_is_rejected() {
        let mut input = seed();
        input.exports[0].clients = vec![
            Client::parse("10.20.0.0/25").expect("ok"),
            Client::parse("10.30.0.0/24").expect("ok"),
        ];
        let err = NfsSetup::new(input).expect_err("outside");
        assert_eq!(
            err.to_string(),
            "export /srv/nfs/k8s-prod: client 10.30.0.0/24 is not inside the node network 10.20.0.0/24"
        );
        let mut input = seed();
        input.exports[0].clients = vec![Client::parse("10.20.0.0/16").expect("ok")];
        assert!(matches!(
            NfsSetup::new(input),
            Err(Error::ClientOutsideNodeNetwork { .. })
        ));
    }

    #[test]
    fn duplicate_storage_class_is_rejected() {
        let mut input = seed();
        input.exports[1].storage_class = K8sName::new("nfs-prod").expect("valid");
        let err = NfsSetup::new(input).expect_err("dup");
        assert_eq!(
            err.to_string(),
            "StorageClass name \"nfs-prod\" is used by two exports (/srv/nfs/k8s-prod and /srv/nfs/k8s-nonprod)"
        );
    }

    #[test]
    fn unknown_default_and_empty_are_rejected() {
        let mut input = seed();
        input.cluster.default_class = Some(K8sName::new("nfs-fast").expect("valid"));
        assert!(matches!(
            NfsSetup::new(input),
            Err(Error::UnknownDefaultClass { .. })
        ));
        let mut input = seed();
        input.exports.clear();
        assert!(matches!(NfsSetup::new(input), Err(Error::NoExports)));
    }

    fn backup_export() -> PlainExport {
        PlainExport::root_writer(
            ExportPath::new("/srv/nfs/etcd-backup").expect("valid"),
            vec![Client::parse("10.20.0.14").expect("ip")],
        )
    }

    #[test]
    fn plain_exports_share_paths_clients_and_fsids_with_the_others() {
        let mut input = seed();
        input.plain_exports.push(backup_export());
        NfsSetup::new(input.clone()).expect("valid");

        let mut nested = input.clone();
        nested.plain_exports[0].path = ExportPath::new("/srv/nfs/k8s-prod/etcd").expect("valid");
        let err = NfsSetup::new(nested).expect_err("nested");
        assert_eq!(
            err.to_string(),
            "export /srv/nfs/k8s-prod/etcd overlaps export /srv/nfs/k8s-prod (the same directory or nested inside it)"
        );

        let mut outside = input.clone();
        outside.plain_exports[0].clients = vec![Client::parse("10.30.0.5").expect("ip")];
        let err = NfsSetup::new(outside).expect_err("outside");
        assert_eq!(
            err.to_string(),
            "export /srv/nfs/etcd-backup: client 10.30.0.5/32 is not inside the node network 10.20.0.0/24"
        );

        let mut fsid = input;
        fsid.exports[1].options.fsid = Some(9);
        fsid.plain_exports[0].options.fsid = Some(9);
        let err = NfsSetup::new(fsid).expect_err("fsid");
        assert!(
            err.to_string()
                .contains("(/srv/nfs/k8s-nonprod and /srv/nfs/etcd-backup)"),
            "{err}"
        );
    }

    #[test]
    fn only_plain_exports_is_a_server_without_cluster_objects() {
        let mut input = seed();
        input.exports.clear();
        input.plain_exports.push(backup_export());
        let setup = NfsSetup::new(input).expect("valid");
        assert_eq!(
            setup.exports_file().lines[0].to_string(),
            "/srv/nfs/etcd-backup 10.20.0.14/32(rw,sync,no_subtree_check,no_root_squash)"
        );
        assert!(setup.cluster_objects().is_empty());
        // A plain export without clients goes to the node network, root squashed.
        let plain = PlainExport::new(ExportPath::new("/srv/nfs/iso").expect("valid"));
        assert_eq!(
            plain.directory_owner(),
            DirectoryOwner::for_squash(Squash::Root)
        );
        let mut input = seed();
        input.plain_exports.push(plain);
        assert_eq!(
            NfsSetup::new(input).expect("valid").exports_file().lines[2].to_string(),
            "/srv/nfs/iso 10.20.0.0/24(rw,sync,no_subtree_check,root_squash)"
        );
    }

    #[test]
    fn names_and_mount_options_are_validated() {
        for bad in [
            "",
            "Nfs",
            "nfs_prod",
            "-nfs",
            "nfs-",
            "a b",
            &"x".repeat(51),
        ] {
            assert!(K8sName::new(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "a,b", "a b", "x\n", "vers=4;rm"] {
            assert!(MountOption::new(bad).is_err(), "{bad:?}");
        }
        assert!(MountOption::new("nfsvers=4.1").is_ok());
    }
}
