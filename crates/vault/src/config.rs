//! The pure part: the cluster model, each node's server config, the systemd units, the raft
//! snapshot schedule and the ACL policies. Nothing here does I/O.

use core::fmt;
use std::net::IpAddr;

use crate::Error;

/// OpenBao's config file on a VM (the path the OpenBao Debian package's `openbao.service` reads).
pub const CONFIG_PATH: &str = "/etc/openbao/openbao.hcl";
/// Raft data directory on a VM.
pub const DATA_DIR: &str = "/opt/openbao/data";
/// TLS directory on a VM: `tls.crt` (the node's chain), `tls.key`, `ca.crt`.
pub const TLS_DIR: &str = "/opt/openbao/tls";
/// The server's systemd unit.
pub const UNIT_PATH: &str = "/etc/systemd/system/openbao.service";
/// The `bao` binary the unit starts.
pub const BAO_BINARY: &str = "/usr/bin/bao";
/// The token file the snapshot job reads (mode 0600, owner root).
pub const SNAPSHOT_TOKEN_PATH: &str = "/etc/openbao/snapshot.token";
/// The snapshot script.
pub const SNAPSHOT_SCRIPT_PATH: &str = "/usr/local/sbin/openbao-snapshot";
/// The snapshot service unit.
pub const SNAPSHOT_SERVICE_PATH: &str = "/etc/systemd/system/openbao-snapshot.service";
/// The snapshot timer unit.
pub const SNAPSHOT_TIMER_PATH: &str = "/etc/systemd/system/openbao-snapshot.timer";
/// The system user the server runs as.
pub const SERVICE_USER: &str = "openbao";
/// Default API port.
pub const API_PORT: u16 = 8200;
/// Default cluster (raft and request forwarding) port.
pub const CLUSTER_PORT: u16 = 8201;

/// A raft node: its name (raft `node_id`, a certificate SAN), address and ports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// Host name, e.g. `vault-1` (letters, digits, `-` and `.`).
    pub name: String,
    /// The address the node's API and cluster port answer on.
    pub address: IpAddr,
    /// API port (8200).
    pub api_port: u16,
    /// Cluster port (8201).
    pub cluster_port: u16,
}

impl Node {
    /// A node on the default ports.
    #[must_use]
    pub fn new(name: impl Into<String>, address: IpAddr) -> Self {
        Self {
            name: name.into(),
            address,
            api_port: API_PORT,
            cluster_port: CLUSTER_PORT,
        }
    }

    /// `https://<address>:<api_port>`.
    #[must_use]
    pub fn api_url(&self) -> String {
        format!("https://{}", sock(self.address, self.api_port))
    }

    /// `https://<address>:<cluster_port>`.
    #[must_use]
    pub fn cluster_url(&self) -> String {
        format!("https://{}", sock(self.address, self.cluster_port))
    }
}

fn sock(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Checks a name that ends up inside HCL strings, unit files and certificate SANs.
pub(crate) fn check_name(field: &str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: field.to_owned(),
            reason: format!(
                "{value:?}: use letters, digits, '-', '.', '_' (starting with a letter or digit)"
            ),
        })
    }
}

/// Checks an absolute path that ends up inside HCL strings and shell scripts.
pub(crate) fn check_path(field: &str, value: &str) -> Result<(), Error> {
    let ok = value.starts_with('/')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: field.to_owned(),
            reason: format!("{value:?}: an absolute path of letters, digits, '/', '-', '_', '.'"),
        })
    }
}

/// The cluster: a name and its nodes (3 or 5 for a raft quorum that survives node loss).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterSpec {
    /// Cluster name (`cluster_name`).
    pub name: String,
    /// The nodes.
    pub nodes: Vec<Node>,
}

impl ClusterSpec {
    /// Checks the names, that node names and API endpoints are unique, and that there are
    /// at least one node.
    pub fn validate(&self) -> Result<(), Error> {
        check_name("cluster.name", &self.name)?;
        if self.nodes.is_empty() {
            return Err(Error::Invalid {
                field: "cluster.nodes".into(),
                reason: "no node".into(),
            });
        }
        for (i, n) in self.nodes.iter().enumerate() {
            check_name(&format!("cluster.nodes[{i}].name"), &n.name)?;
            for m in &self.nodes[..i] {
                if m.name == n.name {
                    return Err(Error::Invalid {
                        field: format!("cluster.nodes[{i}].name"),
                        reason: format!("{} appears twice", n.name),
                    });
                }
                if m.address == n.address
                    && (m.api_port == n.api_port
                        || m.cluster_port == n.cluster_port
                        || m.api_port == n.cluster_port
                        || m.cluster_port == n.api_port)
                {
                    return Err(Error::Invalid {
                        field: format!("cluster.nodes[{i}]"),
                        reason: format!(
                            "{} shares a port with {} on {}",
                            n.name, m.name, n.address
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<&Node, Error> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::Invalid {
                field: "node".into(),
                reason: format!("{name} is not a node of {}", self.name),
            })
    }
}

/// Where a node keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Raft data directory.
    pub data_dir: String,
    /// Directory with `tls.crt`, `tls.key`, `ca.crt`.
    pub tls_dir: String,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            data_dir: DATA_DIR.into(),
            tls_dir: TLS_DIR.into(),
        }
    }
}

/// One node's server config (OpenBao's HCL), rendered by `Display`.
///
/// What a 3-node raft cluster with TLS needs, and why each line is there:
/// - `storage "raft"` with the node's own `node_id` and a `retry_join` per peer that names the
///   peer's API address and the CA (`leader_ca_cert_file`): a fresh node finds the leader by
///   itself and checks its certificate, so no node ever joins over unchecked TLS;
/// - `api_addr` and `cluster_addr` on the node's own address (never the VIP): standbys forward
///   requests to the active node there, and raft talks on the cluster port;
/// - a TLS `listener` on both ports (`tls_min_version = "tls12"`);
/// - `performance_multiplier = 1` (raft's production timing): with the default (5) a dead
///   leader is noticed only after 15 s, after 3 s with 1;
/// - no `disable_mlock`: OpenBao 2.x dropped mlock and warns about the field;
/// - telemetry without host names so the metrics of the three nodes line up.
#[derive(Debug, Clone)]
pub struct ServerConfig<'a> {
    cluster: &'a ClusterSpec,
    me: &'a Node,
    bind: Option<IpAddr>,
    paths: Paths,
    ui: bool,
}

impl<'a> ServerConfig<'a> {
    /// The config of node `me` of `cluster`. The listener binds every address (`0.0.0.0`) by
    /// default, so the on-host CLI and the snapshot job reach it on 127.0.0.1.
    pub fn new(cluster: &'a ClusterSpec, me: &str) -> Result<Self, Error> {
        cluster.validate()?;
        Ok(Self {
            me: cluster.node(me)?,
            cluster,
            bind: None,
            paths: Paths::default(),
            ui: true,
        })
    }

    /// Binds the listener to this address only (tests run three nodes on 127.0.0.1).
    #[must_use]
    pub fn bind(mut self, addr: IpAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Other data and TLS directories.
    pub fn paths(mut self, paths: Paths) -> Result<Self, Error> {
        check_path("paths.data_dir", &paths.data_dir)?;
        check_path("paths.tls_dir", &paths.tls_dir)?;
        self.paths = paths;
        Ok(self)
    }

    /// Switches the web UI on or off (on by default).
    #[must_use]
    pub fn ui(mut self, on: bool) -> Self {
        self.ui = on;
        self
    }
}

impl fmt::Display for ServerConfig<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let me = self.me;
        let bind = self
            .bind
            .unwrap_or(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED));
        let tls = &self.paths.tls_dir;
        writeln!(
            f,
            "# Rendered by hakube-vault for {}: change the input, not this file.",
            me.name
        )?;
        writeln!(f, "cluster_name  = \"{}\"", self.cluster.name)?;
        writeln!(f, "ui            = {}", self.ui)?;
        writeln!(f, "api_addr      = \"{}\"", me.api_url())?;
        writeln!(f, "cluster_addr  = \"{}\"", me.cluster_url())?;
        writeln!(f)?;
        writeln!(f, "listener \"tcp\" {{")?;
        writeln!(f, "  address         = \"{}\"", sock(bind, me.api_port))?;
        writeln!(f, "  cluster_address = \"{}\"", sock(bind, me.cluster_port))?;
        writeln!(f, "  tls_cert_file   = \"{tls}/tls.crt\"")?;
        writeln!(f, "  tls_key_file    = \"{tls}/tls.key\"")?;
        writeln!(f, "  tls_min_version = \"tls12\"")?;
        writeln!(f, "}}")?;
        writeln!(f)?;
        writeln!(f, "storage \"raft\" {{")?;
        writeln!(f, "  path    = \"{}\"", self.paths.data_dir)?;
        writeln!(f, "  node_id = \"{}\"", me.name)?;
        writeln!(f, "  performance_multiplier = 1")?;
        for peer in self.cluster.nodes.iter().filter(|n| n.name != me.name) {
            writeln!(f)?;
            writeln!(f, "  retry_join {{")?;
            writeln!(f, "    leader_api_addr     = \"{}\"", peer.api_url())?;
            writeln!(f, "    leader_ca_cert_file = \"{tls}/ca.crt\"")?;
            writeln!(f, "  }}")?;
        }
        writeln!(f, "}}")?;
        writeln!(f)?;
        writeln!(f, "telemetry {{")?;
        writeln!(f, "  prometheus_retention_time = \"30s\"")?;
        writeln!(f, "  disable_hostname          = true")?;
        writeln!(f, "}}")
    }
}

/// The server's systemd unit: runs `bao server` as [`SERVICE_USER`], reloads on `HUP`, stops
/// with `SIGINT` (a clean raft shutdown), restarts on failure.
#[must_use]
pub fn server_unit() -> String {
    format!(
        "# Rendered by hakube-vault.\n\
         [Unit]\n\
         Description=OpenBao server (Vault API), raft storage\n\
         Documentation=https://openbao.org/docs/\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         ConditionFileNotEmpty={CONFIG_PATH}\n\
         \n\
         [Service]\n\
         User={SERVICE_USER}\n\
         Group={SERVICE_USER}\n\
         ExecStart={BAO_BINARY} server -config={CONFIG_PATH}\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         KillMode=process\n\
         KillSignal=SIGINT\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         TimeoutStopSec=30\n\
         LimitNOFILE=65536\n\
         ProtectSystem=full\n\
         ProtectHome=read-only\n\
         PrivateTmp=yes\n\
         NoNewPrivileges=yes\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The raft snapshot schedule: a script, a oneshot service and a timer on every node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotSchedule {
    /// systemd `OnCalendar=` expression, e.g. `*-*-* 02:30:00` or `hourly`.
    pub on_calendar: String,
    /// Directory the snapshots go to (e.g. an NFS mount of the backup target).
    pub dir: String,
    /// Snapshots kept per node (older ones are pruned after a verified save).
    pub keep: u16,
}

impl Default for SnapshotSchedule {
    fn default() -> Self {
        Self {
            on_calendar: "*-*-* 02:30:00".into(),
            dir: "/var/backups/openbao".into(),
            keep: 14,
        }
    }
}

impl SnapshotSchedule {
    /// Checks the fields (they end up in a shell script and unit files).
    pub fn validate(&self) -> Result<(), Error> {
        check_path("snapshot.dir", &self.dir)?;
        if self.keep == 0 {
            return Err(Error::Invalid {
                field: "snapshot.keep".into(),
                reason: "keep at least one snapshot".into(),
            });
        }
        let ok = !self.on_calendar.is_empty()
            && self
                .on_calendar
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " *-:/,.~".contains(c));
        if !ok {
            return Err(Error::Invalid {
                field: "snapshot.on_calendar".into(),
                reason: format!(
                    "{:?} is not a systemd calendar expression",
                    self.on_calendar
                ),
            });
        }
        Ok(())
    }

    /// The snapshot script for a node whose API listens on `api_port`: renews its periodic
    /// token, saves a snapshot through the local API to a `.part` file, checks it is a complete
    /// archive (gzip + tar listing `state.bin`), renames it, and prunes to `keep` snapshots of
    /// this host. `tls_dir` holds `ca.crt`.
    #[must_use]
    pub fn script(&self, api_port: u16, tls_dir: &str, token_path: &str) -> String {
        format!(
            "#!/bin/sh\n\
             # Rendered by hakube-vault: a verified raft snapshot of OpenBao, pruned to {keep}.\n\
             set -eu\n\
             BAO_ADDR=https://127.0.0.1:{api_port}\n\
             BAO_CACERT={tls_dir}/ca.crt\n\
             BAO_TOKEN=$(cat {token_path})\n\
             export BAO_ADDR BAO_CACERT BAO_TOKEN\n\
             dir={dir}\n\
             host=$(hostname -s)\n\
             mkdir -p \"$dir\"\n\
             bao token renew >/dev/null\n\
             f=\"$dir/raft-$host-$(date -u +%Y%m%dT%H%M%SZ).snap\"\n\
             trap 'rm -f \"$f.part\"' EXIT\n\
             bao operator raft snapshot save \"$f.part\"\n\
             tar -tzf \"$f.part\" | grep -qx 'state.bin'\n\
             mv \"$f.part\" \"$f\"\n\
             trap - EXIT\n\
             ls -1 \"$dir\"/raft-\"$host\"-*.snap | sort -r | tail -n +{next} | while read -r old; do rm -f -- \"$old\"; done\n\
             echo \"openbao-snapshot: saved $f\"\n",
            keep = self.keep,
            next = u32::from(self.keep) + 1,
            dir = self.dir,
        )
    }

    /// The oneshot service running the script.
    #[must_use]
    pub fn service(&self) -> String {
        format!(
            "# Rendered by hakube-vault.\n\
             [Unit]\n\
             Description=OpenBao raft snapshot\n\
             After=openbao.service network-online.target\n\
             Wants=network-online.target\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             User=root\n\
             Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
             ExecStart={SNAPSHOT_SCRIPT_PATH}\n"
        )
    }

    /// The timer (persistent: a missed run happens at boot).
    #[must_use]
    pub fn timer(&self) -> String {
        format!(
            "# Rendered by hakube-vault.\n\
             [Unit]\n\
             Description=OpenBao raft snapshot schedule\n\
             \n\
             [Timer]\n\
             OnCalendar={}\n\
             RandomizedDelaySec=5min\n\
             Persistent=true\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n",
            self.on_calendar
        )
    }
}

/// ACL policy letting a Kubernetes-auth login sign (and issue) with `role` of `mount`.
#[must_use]
pub fn signer_policy(mount: &str, role: &str) -> String {
    format!(
        "path \"{mount}/sign/{role}\" {{\n  capabilities = [\"create\", \"update\"]\n}}\n\n\
         path \"{mount}/issue/{role}\" {{\n  capabilities = [\"create\", \"update\"]\n}}\n"
    )
}

/// ACL policy of the snapshot job's token: read a raft snapshot, renew itself.
#[must_use]
pub fn snapshot_policy() -> String {
    "path \"sys/storage/raft/snapshot\" {\n  capabilities = [\"read\"]\n}\n\n\
     path \"auth/token/renew-self\" {\n  capabilities = [\"update\"]\n}\n"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn rejects_injection_and_duplicates() {
        let mut c = cluster();
        c.nodes[1].name = "a\"\nui = false".into();
        let e = c.validate().expect_err("refused");
        assert!(e.to_string().contains("cluster.nodes[1].name"), "{e}");
        let mut c = cluster();
        c.nodes[2].name = "vault-1".into();
        assert!(c.validate().is_err());
        let mut c = cluster();
        c.nodes[2].address = c.nodes[0].address;
        assert!(c.validate().is_err());
        let s = SnapshotSchedule {
            dir: "/x; rm -rf /".into(),
            ..SnapshotSchedule::default()
        };
        assert!(s.validate().is_err());
    }

    #[test]
    fn node_config_snapshot() {
        let c = cluster();
        let cfg = ServerConfig::new(&c, "vault-2").expect("valid");
        insta::assert_snapshot!(cfg.to_string());
    }
}
