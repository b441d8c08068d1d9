//! What a Vault VM must look like, as a host plan ([`hakube_host_state::HostPlan`]): the
//! OpenBao package, its system user and group, the raft data and TLS directories with owner
//! and mode, the TLS files (key 0600, secret), the server config, the systemd unit, the
//! service enabled and running, and the raft snapshot schedule. The host-plan executor
//! (`hakube_remote::hostplan`) applies it like any other host's plan: facts first, only what
//! differs, handlers only on change. Pure: nothing here does I/O.
//!
//! # How OpenBao gets onto a VM
//!
//! OpenBao publishes its Debian package (`openbao_<version>_linux_<arch>.deb`: `/usr/bin/bao`,
//! the `openbao` system user, `/etc/openbao`) as a GitHub release artifact; it runs no apt
//! repository. [`Install`] offers the two ways to get it:
//! - [`Install::Apt`] (what `hakube-plan` uses): `apt-get install openbao` from an apt source
//!   the VM already has, e.g. the site's mirror into which the release `.deb` was imported
//!   (`reprepro includedeb`, an Aptly repository), which is how package sources of air-gapped
//!   sites and VM templates are usually run;
//! - [`Install::ReleaseDeb`]: a guarded command downloads the release `.deb` from GitHub over
//!   HTTPS, checks its SHA-256 against the pinned one and installs it with `apt-get install
//!   ./file.deb` (dependencies resolved by apt), unless `dpkg-query` already reports the
//!   package installed; the [`Package`] item after it then checks it is there.
//!
//! # Config validation
//!
//! OpenBao has no check-only mode for a server config. `bao operator diagnose -config=FILE`
//! parses the file but then opens the raft storage it names (creating `vault.db` in the live
//! data directory, whose lock the running server holds) and binds its listeners, even with
//! `-skip=storage -skip=listener` (OpenBao 2.7.2): on a running node it fails or interferes.
//! So the config has no [`Validate`](hakube_host_state::Validate) command; it is rendered from
//! a typed model whose output is checked against the real server in this crate's tests
//! (`tests/server_config.rs`: every field known, the cluster forms).
//!
//! # Handlers
//!
//! A changed config or unit restarts `openbao` (raft and listener settings are read at start
//! only); a restarted node comes back **sealed**, and the configure stage's bootstrap
//! ([`crate::bootstrap::bootstrap`], after the host plans) unseals it. Changed TLS files only
//! reload it (`SIGHUP` makes OpenBao reload its listener certificates), so a certificate
//! rotation keeps every node unsealed.

use hakube_host_state::{Directory, Exec, File, Group, HostPlan, Package, Service, User};

use crate::config::{
    CONFIG_PATH, ClusterSpec, DATA_DIR, SERVICE_USER, SNAPSHOT_SCRIPT_PATH, SNAPSHOT_SERVICE_PATH,
    SNAPSHOT_TIMER_PATH, SNAPSHOT_TOKEN_PATH, ServerConfig, SnapshotSchedule, TLS_DIR, UNIT_PATH,
    server_unit,
};
use crate::{Error, Secret};

/// The Debian package name.
pub const PACKAGE: &str = "openbao";
/// The server's systemd service.
pub const SERVICE: &str = "openbao";
/// The snapshot timer unit's name.
pub const SNAPSHOT_TIMER: &str = "openbao-snapshot.timer";
/// OpenBao's directory under `/etc` (config, snapshot token).
pub const CONFIG_DIR: &str = "/etc/openbao";
/// Where [`Install::ReleaseDeb`] keeps the downloaded package.
pub const DEB_CACHE_DIR: &str = "/var/cache/hakube";

/// One node's TLS material: what goes into [`TLS_DIR`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTls {
    /// The CA certificate (PEM): `ca.crt`, what `retry_join` and clients trust.
    pub ca_cert_pem: String,
    /// The node's certificate (PEM); `tls.crt` holds it followed by the CA.
    pub cert_pem: String,
    /// The node's private key (PEM): `tls.key`, 0600, owner [`SERVICE_USER`].
    pub key: Secret,
}

/// Where the OpenBao package comes from (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Install {
    /// `apt-get install openbao` from an apt source the VM has; `version` pins the exact
    /// Debian version.
    Apt {
        /// Exact version, e.g. `2.7.2`; `None` accepts any.
        version: Option<String>,
    },
    /// The release `.deb` from GitHub, checked against `sha256` before it is installed.
    ReleaseDeb {
        /// The release, e.g. `2.7.2` (no leading `v`).
        version: String,
        /// Debian architecture (`amd64`, `arm64`).
        arch: String,
        /// SHA-256 of the `.deb` (64 hex digits), from the release's checksums file.
        sha256: String,
    },
}

impl Default for Install {
    fn default() -> Self {
        Self::Apt { version: None }
    }
}

impl Install {
    /// The release `.deb` URL of [`Install::ReleaseDeb`].
    #[must_use]
    pub fn release_url(version: &str, arch: &str) -> String {
        format!(
            "https://github.com/openbao/openbao/releases/download/v{version}/openbao_{version}_linux_{arch}.deb"
        )
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |field: &str, reason: String| Error::Invalid {
            field: format!("install.{field}"),
            reason,
        };
        let word = |field: &str, v: &str| {
            if v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-+~".contains(c))
            {
                return Err(bad(
                    field,
                    format!("{v:?}: letters, digits, '.', '-', '+', '~'"),
                ));
            }
            Ok(())
        };
        match self {
            Self::Apt { version } => {
                if let Some(v) = version {
                    word("version", v)?;
                }
            }
            Self::ReleaseDeb {
                version,
                arch,
                sha256,
            } => {
                word("version", version)?;
                word("arch", arch)?;
                if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(bad("sha256", "not 64 hex digits".into()));
                }
            }
        }
        Ok(())
    }

    fn items(&self, plan: HostPlan) -> HostPlan {
        match self {
            Self::Apt { version } => {
                let mut p = Package::new(PACKAGE);
                if let Some(v) = version {
                    p = p.version(v.clone());
                }
                plan.package(p)
            }
            Self::ReleaseDeb {
                version,
                arch,
                sha256,
            } => {
                let file = format!("{DEB_CACHE_DIR}/openbao_{version}_linux_{arch}.deb");
                let url = Self::release_url(version, arch);
                let script = format!(
                    "set -eu\n\
                     mkdir -p {DEB_CACHE_DIR}\n\
                     curl -fsSL --proto =https --retry 3 -o '{file}.part' '{url}'\n\
                     echo '{sha256}  {file}.part' | sha256sum -c --quiet\n\
                     mv -f '{file}.part' '{file}'\n\
                     DEBIAN_FRONTEND=noninteractive apt-get install -y '{file}'\n"
                );
                plan.exec(Exec::unless(
                    "openbao-release-deb",
                    ["sh", "-c", script.as_str()],
                    [
                        "sh",
                        "-c",
                        "dpkg-query -W -f='${Status}' openbao 2>/dev/null | grep -q 'ok installed'",
                    ],
                ))
                .package(Package::new(PACKAGE).version(version.clone()))
            }
        }
    }
}

/// Node `me`'s host plan: package, user and group, directories, TLS files, server config,
/// unit, service, and the snapshot script, service and timer (the snapshot token comes later,
/// from the bootstrap: [`snapshot_token_plan`]).
///
/// # Errors
/// [`Error::Invalid`] naming the field: an unknown node, a bad schedule or install source.
pub fn node_plan(
    cluster: &ClusterSpec,
    me: &str,
    schedule: &SnapshotSchedule,
    tls: &NodeTls,
    install: &Install,
) -> Result<HostPlan, Error> {
    schedule.validate()?;
    install.validate()?;
    let cfg = ServerConfig::new(cluster, me)?;
    let node = cluster.node(me)?;
    let u = SERVICE_USER;
    let tls_file = |name: &str| format!("{TLS_DIR}/{name}");
    let (ca, crt, key) = (tls_file("ca.crt"), tls_file("tls.crt"), tls_file("tls.key"));
    let owned = |f: File| f.owner(u, u);
    let plan = install
        .items(HostPlan::new(me))
        .group(Group::system(u))
        .user(
            User::system(u)
                .group(u)
                .home(CONFIG_DIR)
                .shell("/usr/sbin/nologin"),
        )
        .directory(Directory::new(CONFIG_DIR).mode(0o750).owner("root", u))
        .directory(parent(DATA_DIR))
        .directory(Directory::new(DATA_DIR).mode(0o700).owner(u, u))
        .directory(Directory::new(TLS_DIR).mode(0o750).owner("root", u))
        .file(owned(File::new(ca.clone(), tls.ca_cert_pem.clone())))
        .file(owned(File::new(
            crt.clone(),
            format!("{}{}", tls.cert_pem, tls.ca_cert_pem),
        )))
        .file(owned(File::secret(key.clone(), tls.key.expose())))
        .file(
            File::new(CONFIG_PATH, cfg.to_string())
                .mode(0o640)
                .owner("root", u),
        )
        .file(File::new(UNIT_PATH, server_unit()))
        .service(
            Service::new(SERVICE)
                .restart_on([CONFIG_PATH, UNIT_PATH])
                .reload_on([ca, crt, key]),
        )
        .directory(
            Directory::new(schedule.dir.clone())
                .mode(0o700)
                .owner("root", "root"),
        )
        .file(
            File::new(
                SNAPSHOT_SCRIPT_PATH,
                schedule.script(node.api_port, TLS_DIR, SNAPSHOT_TOKEN_PATH),
            )
            .mode(0o755),
        )
        .file(File::new(SNAPSHOT_SERVICE_PATH, schedule.service()))
        .file(File::new(SNAPSHOT_TIMER_PATH, schedule.timer()))
        .service(Service::new(SNAPSHOT_TIMER).restart_on([SNAPSHOT_TIMER_PATH]));
    plan.validate().map_err(|e| Error::Invalid {
        field: format!("host plan of {me}"),
        reason: e.to_string(),
    })?;
    Ok(plan)
}

/// The parent directory of `path`, 0755 root (e.g. `/opt/openbao` for the data directory).
fn parent(path: &str) -> Directory {
    let p = path.rsplit_once('/').map_or("/", |(p, _)| p);
    Directory::new(if p.is_empty() { "/" } else { p })
        .mode(0o755)
        .owner("root", "root")
}

/// The snapshot job's token on `host` ([`SNAPSHOT_TOKEN_PATH`], 0600 root, secret), as a plan
/// of its own: the token exists only after the bootstrap created it.
#[must_use]
pub fn snapshot_token_plan(host: &str, token: &Secret) -> HostPlan {
    HostPlan::new(host).file(
        File::secret(SNAPSHOT_TOKEN_PATH, format!("{}\n", token.expose())).owner("root", "root"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Node;
    use hakube_host_state::Item;

    fn cluster() -> ClusterSpec {
        ClusterSpec {
            name: "lab".into(),
            nodes: (1..=3)
                .map(|i| {
                    Node::new(
                        format!("vault-{i}"),
                        format!("10.0.0.{i}").parse().expect("ip"),
                    )
                })
                .collect(),
        }
    }

    fn tls() -> NodeTls {
        NodeTls {
            ca_cert_pem: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".into(),
            cert_pem: "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n".into(),
            key: Secret::new("-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----\n"),
        }
    }

    #[test]
    fn node_plan_snapshot() {
        let plan = node_plan(
            &cluster(),
            "vault-1",
            &SnapshotSchedule::default(),
            &tls(),
            &Install::default(),
        )
        .expect("plan");
        let mut s = plan.to_json();
        for f in plan.files().filter(|f| !f.secret) {
            s.push_str(&format!(
                "=== {}\n{}",
                f.path,
                String::from_utf8_lossy(&f.content)
            ));
        }
        assert!(!s.contains("hunter2"), "the key is never in the JSON form");
        insta::assert_snapshot!(s);
    }

    #[test]
    fn the_key_is_a_secret_file_of_the_service_user() {
        let plan = node_plan(
            &cluster(),
            "vault-2",
            &SnapshotSchedule::default(),
            &tls(),
            &Install::default(),
        )
        .expect("plan");
        let key = plan
            .files()
            .find(|f| f.path.ends_with("/tls.key"))
            .expect("key");
        assert!(key.secret);
        assert_eq!(key.mode, 0o600);
        assert_eq!(key.owner.as_deref(), Some(SERVICE_USER));
        assert!(!format!("{plan:?}").contains("hunter2"));
        let data = plan
            .items
            .iter()
            .find_map(|i| match i {
                Item::Directory(d) if d.path == DATA_DIR => Some(d),
                _ => None,
            })
            .expect("data dir");
        assert_eq!((data.mode, data.owner.as_deref()), (0o700, Some("openbao")));
        let token = snapshot_token_plan("vault-2", &Secret::new("s.tok"));
        token.validate().expect("valid");
        assert!(!token.to_json().contains("s.tok"));
    }

    #[test]
    fn release_deb_is_guarded_and_checked() {
        let install = Install::ReleaseDeb {
            version: "2.7.2".into(),
            arch: "amd64".into(),
            sha256: "a".repeat(64),
        };
        let plan = node_plan(
            &cluster(),
            "vault-3",
            &SnapshotSchedule::default(),
            &tls(),
            &install,
        )
        .expect("plan");
        let Item::Exec(e) = &plan.items[0] else {
            panic!("first item: {}", plan.items[0]);
        };
        assert!(e.unless.is_some(), "runs only when the package is missing");
        assert!(e.argv[2].contains("sha256sum -c"), "{:?}", e.argv);
        assert!(e.argv[2].contains(&Install::release_url("2.7.2", "amd64")));
        let bad = Install::ReleaseDeb {
            version: "2.7.2; rm -rf /".into(),
            arch: "amd64".into(),
            sha256: "a".repeat(64),
        };
        let err = node_plan(
            &cluster(),
            "vault-3",
            &SnapshotSchedule::default(),
            &tls(),
            &bad,
        )
        .expect_err("refused");
        assert!(err.to_string().contains("install.version"), "{err}");
        let err = node_plan(
            &cluster(),
            "vault-9",
            &SnapshotSchedule::default(),
            &tls(),
            &Install::default(),
        )
        .expect_err("unknown node");
        assert!(err.to_string().contains("vault-9"), "{err}");
    }
}
