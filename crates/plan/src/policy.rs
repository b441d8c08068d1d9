//! The plan's policy: what hakube chooses where the topology says nothing (volume sizes,
//! retention, Secret names, the fallback domain, the Proxmox disk and NIC), in one typed
//! [`PlanOptions`] that [`render_with`](crate::render_with) takes and `plan.json` shows under
//! `"policy"`. Where the topology sets a value itself (`network.search_domain`,
//! `addons.apps_domain`, `addons.local_storage_class`), the topology wins and the option is
//! only the fallback.
//!
//! ```
//! use std::time::Duration;
//! let text = include_str!("../../../examples/seed-cluster.yaml");
//! let cluster = hakube_topology::load(text, "seed-cluster.yaml")?;
//! let mut options = hakube_plan::PlanOptions::default();
//! options.monitoring.prometheus_retention = Duration::from_secs(30 * 86_400);
//! let tree = hakube_plan::render_with(&cluster, &hakube_plan::PlanSecrets::generate(), &options)?;
//! let values = tree.get("cluster/monitoring/prometheus-values.yaml").unwrap();
//! assert!(String::from_utf8_lossy(&values.contents).contains("retention: 30d"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use hakube_host_state::{is_dns_label, is_dns_name};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The Kubernetes API port on the VIP and the masters. Not a policy: hakube-kubeadm's and the
/// HAProxy reference design's port, which the executors dial too.
pub(crate) const API_PORT: u16 = 6443;

/// The port of etcd's plain-HTTP metrics listener on the masters, which Prometheus scrapes.
/// Not a policy: hakube-kubeadm renders `listen-metrics-urls: http://0.0.0.0:2381` (the plan
/// refuses a scrape target nothing binds).
pub(crate) const ETCD_METRICS_PORT: u16 = 2381;

/// What the plan chooses where the topology says nothing. [`Default`] gives hakube's choices;
/// [`crate::render`] uses them, [`crate::render_with`] takes others. `plan.json` shows the
/// options a plan was rendered with under `"policy"` (durations as text such as `15d`), and
/// that JSON reads back (missing fields take their defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PlanOptions {
    /// The DNS domain when the topology sets no `network.search_domain`: the apps domain
    /// (`<apps_label>.<domain>`) and the domains Vault's PKI role issues for derive from it.
    /// Default `example.org`.
    pub fallback_domain: String,
    /// The first label of the apps domain when the topology sets no `addons.apps_domain`
    /// (Traefik's default routes are `*.<apps_label>.<domain>`). Default `apps`.
    pub apps_label: String,
    /// The directory on a worker where Prometheus and Loki keep their data (`<dir>/prometheus`,
    /// `<dir>/loki`) when the topology names no `addons.local_storage_class`. Default
    /// `/var/lib/hakube`.
    pub host_path_dir: String,
    /// Prometheus and Grafana (`addons.monitoring`).
    pub monitoring: MonitoringOptions,
    /// Loki (`addons.logging`).
    pub logging: LoggingOptions,
    /// Traefik.
    pub ingress: IngressOptions,
    /// The VMs' hardware ([`crate::vm_specs_with`]).
    pub proxmox: ProxmoxOptions,
}

/// Prometheus and Grafana.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MonitoringOptions {
    /// Size of Prometheus' TSDB volume, GiB (a PVC of the local-disk class, or the size
    /// recorded for its host directory). Default 20.
    pub prometheus_volume_gib: u32,
    /// How long Prometheus keeps samples (`retention`; whole seconds, rendered in the largest
    /// whole unit, e.g. `15d`). Default 15 days.
    #[serde(with = "prometheus_duration")]
    pub prometheus_retention: Duration,
    /// The Secret (namespace `monitoring`) holding Grafana's admin user and password; the
    /// plan keeps the password at `secrets/monitoring/<name>/admin-password`. Default
    /// `grafana-admin`.
    pub grafana_admin_secret: String,
}

/// Loki.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LoggingOptions {
    /// Size of Loki's volume, GiB. Default 20.
    pub loki_volume_gib: u32,
    /// How long Loki keeps logs (`retention_period`; whole days, since Loki deletes by its
    /// 24 h index period; rendered in hours, e.g. `744h`). Default 31 days (744 h).
    #[serde(with = "hours")]
    pub loki_retention: Duration,
}

/// Traefik.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct IngressOptions {
    /// The TLS Secret (Traefik's namespace) cert-manager fills from Vault and Traefik serves
    /// as its default certificate, when the topology has Vault. Default `default-tls`.
    pub default_certificate_secret: String,
}

/// The VMs' hardware, as the Proxmox provisioner sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ProxmoxOptions {
    /// The template's disk that is grown to the VM's size. Default `scsi0`.
    pub disk: String,
    /// The first NIC's model. Default `virtio`.
    pub nic_model: String,
}

const DAY: u64 = 86_400;

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            fallback_domain: "example.org".to_owned(),
            apps_label: "apps".to_owned(),
            host_path_dir: "/var/lib/hakube".to_owned(),
            monitoring: MonitoringOptions::default(),
            logging: LoggingOptions::default(),
            ingress: IngressOptions::default(),
            proxmox: ProxmoxOptions::default(),
        }
    }
}

impl Default for MonitoringOptions {
    fn default() -> Self {
        Self {
            prometheus_volume_gib: 20,
            prometheus_retention: Duration::from_secs(15 * DAY),
            grafana_admin_secret: "grafana-admin".to_owned(),
        }
    }
}

impl Default for LoggingOptions {
    fn default() -> Self {
        Self {
            loki_volume_gib: 20,
            loki_retention: Duration::from_secs(31 * DAY),
        }
    }
}

impl Default for IngressOptions {
    fn default() -> Self {
        Self {
            default_certificate_secret: "default-tls".to_owned(),
        }
    }
}

impl Default for ProxmoxOptions {
    fn default() -> Self {
        Self {
            disk: "scsi0".to_owned(),
            nic_model: "virtio".to_owned(),
        }
    }
}

impl PlanOptions {
    /// Checks every field: names are DNS names or labels, sizes and retention are positive
    /// (Loki's in whole days), the data directory is absolute.
    ///
    /// # Errors
    /// [`Error::BadOption`] naming the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: String| Err(Error::BadOption { field, reason });
        if !is_dns_name(&self.fallback_domain) {
            return bad(
                "fallback_domain",
                format!("`{}` is not a DNS name", self.fallback_domain),
            );
        }
        if !is_dns_label(&self.apps_label) {
            return bad(
                "apps_label",
                format!("`{}` is not a DNS label", self.apps_label),
            );
        }
        let dir = &self.host_path_dir;
        if !dir.starts_with('/')
            || dir == "/"
            || dir.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return bad(
                "host_path_dir",
                format!("`{dir}` is not an absolute directory without spaces"),
            );
        }
        self.monitoring.validate()?;
        self.logging.validate()?;
        if !is_dns_name(&self.ingress.default_certificate_secret) {
            return bad(
                "ingress.default_certificate_secret",
                format!(
                    "`{}` is not a Secret name",
                    self.ingress.default_certificate_secret
                ),
            );
        }
        self.proxmox.validate()
    }
}

impl MonitoringOptions {
    fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: String| Err(Error::BadOption { field, reason });
        if self.prometheus_volume_gib == 0 {
            return bad(
                "monitoring.prometheus_volume_gib",
                "must be at least 1".into(),
            );
        }
        let r = self.prometheus_retention;
        if r.is_zero() || r.subsec_nanos() != 0 {
            return bad(
                "monitoring.prometheus_retention",
                format!("{r:?} is not a positive number of seconds"),
            );
        }
        if !is_dns_name(&self.grafana_admin_secret) {
            return bad(
                "monitoring.grafana_admin_secret",
                format!("`{}` is not a Secret name", self.grafana_admin_secret),
            );
        }
        Ok(())
    }

    /// The Prometheus volume's size as a Kubernetes quantity (`20Gi`).
    pub(crate) fn volume_size(&self) -> String {
        format!("{}Gi", self.prometheus_volume_gib)
    }

    /// The retention as Prometheus reads it (`15d`).
    pub(crate) fn retention_text(&self) -> String {
        prometheus_duration::text(self.prometheus_retention)
    }
}

impl LoggingOptions {
    fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: String| Err(Error::BadOption { field, reason });
        if self.loki_volume_gib == 0 {
            return bad("logging.loki_volume_gib", "must be at least 1".into());
        }
        let r = self.loki_retention;
        if r.is_zero() || r.subsec_nanos() != 0 || !r.as_secs().is_multiple_of(DAY) {
            return bad(
                "logging.loki_retention",
                format!("{r:?} is not a positive number of days (Loki's index period is 24h)"),
            );
        }
        Ok(())
    }

    /// The Loki volume's size as a Kubernetes quantity (`20Gi`).
    pub(crate) fn volume_size(&self) -> String {
        format!("{}Gi", self.loki_volume_gib)
    }

    /// The retention as Loki reads it (`744h`).
    pub(crate) fn retention_text(&self) -> String {
        hours::text(self.loki_retention)
    }
}

impl ProxmoxOptions {
    fn validate(&self) -> Result<(), Error> {
        let word = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        if !word(&self.disk) || !self.disk.ends_with(|c: char| c.is_ascii_digit()) {
            return Err(Error::BadOption {
                field: "proxmox.disk",
                reason: format!("`{}` is not a Proxmox disk key such as scsi0", self.disk),
            });
        }
        if !word(&self.nic_model) {
            return Err(Error::BadOption {
                field: "proxmox.nic_model",
                reason: format!(
                    "`{}` is not a Proxmox NIC model such as virtio",
                    self.nic_model
                ),
            });
        }
        Ok(())
    }
}

/// Reads `<whole number><unit>` with unit `s`, `m`, `h`, `d` or `w`.
fn parse_duration(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let n: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => DAY,
        'w' => 7 * DAY,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

/// A duration's text in the largest of `units` that divides it (seconds otherwise).
fn duration_text(d: Duration, units: &[(u64, char)]) -> String {
    let secs = d.as_secs();
    units
        .iter()
        .find(|(n, _)| secs.is_multiple_of(*n))
        .map_or_else(|| format!("{secs}s"), |(n, u)| format!("{}{u}", secs / n))
}

fn deserialize_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration such as 15d, 744h or 90m"
        ))
    })
}

/// Durations as Prometheus writes them: the largest whole unit of d, h, m, s.
mod prometheus_duration {
    use std::time::Duration;

    pub(super) use super::deserialize_duration as deserialize;

    pub(super) fn text(d: Duration) -> String {
        super::duration_text(d, &[(super::DAY, 'd'), (3600, 'h'), (60, 'm')])
    }

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&text(*d))
    }
}

/// Durations in hours (or minutes, seconds when not whole), as Loki's examples write them.
mod hours {
    use std::time::Duration;

    pub(super) use super::deserialize_duration as deserialize;

    pub(super) fn text(d: Duration) -> String {
        super::duration_text(d, &[(3600, 'h'), (60, 'm')])
    }

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&text(*d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_read_as_todays_values() {
        let o = PlanOptions::default();
        o.validate().unwrap();
        assert_eq!(o.monitoring.retention_text(), "15d");
        assert_eq!(o.logging.retention_text(), "744h");
        assert_eq!(o.monitoring.volume_size(), "20Gi");
    }

    #[test]
    fn options_round_trip_through_json_and_fill_defaults() {
        let mut o = PlanOptions::default();
        o.monitoring.prometheus_retention = Duration::from_secs(36 * 3600);
        o.logging.loki_retention = Duration::from_secs(7 * DAY);
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(json["monitoring"]["prometheus_retention"], "36h");
        assert_eq!(json["logging"]["loki_retention"], "168h");
        let back: PlanOptions = serde_json::from_value(json).unwrap();
        assert_eq!(back, o);
        let partial: PlanOptions =
            serde_json::from_str(r#"{"logging": {"loki_retention": "2w"}}"#).unwrap();
        assert_eq!(
            partial.logging.loki_retention,
            Duration::from_secs(14 * DAY)
        );
        assert_eq!(partial.monitoring, MonitoringOptions::default());
        assert!(
            serde_json::from_str::<PlanOptions>(r#"{"logging": {"loki_retention": "2x"}}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<PlanOptions>(r#"{"retention": "2d"}"#).is_err());
    }

    #[test]
    fn bad_options_are_refused_naming_the_field() {
        let field = |o: &PlanOptions| match o.validate() {
            Err(Error::BadOption { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut o = PlanOptions::default();
        o.logging.loki_retention = Duration::from_secs(36 * 3600);
        assert_eq!(field(&o), "logging.loki_retention");
        let mut o = PlanOptions::default();
        o.monitoring.prometheus_retention = Duration::ZERO;
        assert_eq!(field(&o), "monitoring.prometheus_retention");
        let o = PlanOptions {
            host_path_dir: "var/lib".into(),
            ..PlanOptions::default()
        };
        assert_eq!(field(&o), "host_path_dir");
        let o = PlanOptions {
            fallback_domain: "a..b".into(),
            ..PlanOptions::default()
        };
        assert_eq!(field(&o), "fallback_domain");
        let mut o = PlanOptions::default();
        o.proxmox.disk = "scsi0,cache=none".into();
        assert_eq!(field(&o), "proxmox.disk");
    }
}
