//! Typed calls for what provisioning needs. Everything else goes through
//! [`Client::get`]/[`Client::post`]/[`Client::put`]/[`Client::delete`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[cfg(feature = "client")]
use crate::wire::segment;
use crate::wire::{Params, de};
#[cfg(feature = "client")]
use crate::{Client, Error, Upid};

/// `GET /version`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionInfo {
    /// Full version (`9.1.3`).
    pub version: String,
    /// Release (`9.1`).
    #[serde(default)]
    pub release: String,
    /// Repository id.
    #[serde(default)]
    pub repoid: String,
}

impl VersionInfo {
    /// The major version (8, 9, ...); 0 if unparsable.
    pub fn major(&self) -> u32 {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    /// True when HA rules (resource-affinity, node-affinity) exist: PVE 9 and later.
    pub fn has_ha_rules(&self) -> bool {
        self.major() >= 9
    }
}

/// An entry of `GET /nodes`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct NodeInfo {
    /// Node name.
    pub node: String,
    /// `online`, `offline` or `unknown`.
    #[serde(default)]
    pub status: String,
    /// SHA-256 fingerprint of the node's certificate, `AA:BB:...`.
    #[serde(default)]
    pub ssl_fingerprint: Option<String>,
    /// CPU usage (0..1).
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// CPUs.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxcpu: Option<u64>,
    /// Used memory, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
    /// Memory, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
}

impl NodeInfo {
    /// True if the node is online.
    pub fn is_online(&self) -> bool {
        self.status == "online"
    }
}

/// An entry of `GET /cluster/status` (the cluster itself or a node).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct ClusterStatusEntry {
    /// `cluster` or `node`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `cluster` or `node/<name>`.
    #[serde(default)]
    pub id: String,
    /// Cluster or node name.
    #[serde(default)]
    pub name: String,
    /// Node online (nodes).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub online: Option<bool>,
    /// Quorate (cluster).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub quorate: Option<bool>,
    /// Node address.
    #[serde(default)]
    pub ip: Option<String>,
    /// The node answering.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub local: Option<bool>,
}

/// The `type` filter of `GET /cluster/resources`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceType {
    /// Guests (qemu and lxc).
    Vm,
    /// Storages.
    Storage,
    /// Nodes.
    Node,
}

/// An entry of `GET /cluster/resources`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Resource {
    /// `qemu/100`, `node/pve1`, `storage/pve1/local`.
    pub id: String,
    /// `qemu`, `lxc`, `node`, `storage`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The node.
    #[serde(default)]
    pub node: Option<String>,
    /// Guest id.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub vmid: Option<u64>,
    /// Guest name.
    #[serde(default)]
    pub name: Option<String>,
    /// `running`, `stopped`, `online`, `available`, `unknown`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// Template flag.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub template: Option<bool>,
    /// `;`-joined tags.
    #[serde(default)]
    pub tags: Option<String>,
    /// Config lock (`clone`, `create`, `backup`, ...).
    #[serde(default)]
    pub lock: Option<String>,
    /// Pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// HA state when HA-managed.
    #[serde(default)]
    pub hastate: Option<String>,
    /// Storage id (storage entries).
    #[serde(default)]
    pub storage: Option<String>,
    /// Max disk, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxdisk: Option<u64>,
    /// Max memory, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// CPUs.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub maxcpu: Option<f64>,
}

impl Resource {
    /// The tags as a list.
    pub fn tag_list(&self) -> Vec<String> {
        split_tags(self.tags.as_deref().unwrap_or(""))
    }
}

/// Splits PVE's tag text (`;`, `,` or space separated).
pub fn split_tags(s: &str) -> Vec<String> {
    s.split([';', ',', ' '])
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An entry of `GET /nodes/{node}/qemu`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct QemuListEntry {
    /// VMID (PVE 6.2 sends it as a string).
    #[serde(deserialize_with = "de::u32")]
    pub vmid: u32,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// `running` or `stopped`.
    #[serde(default)]
    pub status: String,
    /// Template flag (`""` in PVE 6.2).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub template: Option<bool>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<String>,
    /// Lock.
    #[serde(default)]
    pub lock: Option<String>,
}

/// `GET /nodes/{node}/qemu/{vmid}/status/current`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct VmStatus {
    /// `running` or `stopped`.
    pub status: String,
    /// QMP status (`running`, `paused`, ...).
    #[serde(default)]
    pub qmpstatus: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Guest agent enabled in the config.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub agent: Option<bool>,
    /// Lock.
    #[serde(default)]
    pub lock: Option<String>,
    /// Template flag.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub template: Option<bool>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<String>,
    /// HA state, for every VM (`managed: 0` when not HA-managed).
    #[serde(default)]
    pub ha: Option<VmHa>,
}

/// The `ha` member of a VM's status.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct VmHa {
    /// True when an HA resource manages the VM.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub managed: Option<bool>,
    /// The HA manager's state of it (`started`, `stopped`, `migrate`, `error`, ...).
    #[serde(default)]
    pub state: Option<String>,
}

/// A VM configuration (`GET .../config`): keys to values, as PVE sends them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct VmConfig(pub BTreeMap<String, Value>);

impl VmConfig {
    /// A key's value as text (numbers rendered), or `None`.
    pub fn get_str(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// A key's value as an integer.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get_str(key)?.trim().parse().ok()
    }

    /// The config digest (to pass back and detect concurrent changes).
    pub fn digest(&self) -> Option<String> {
        self.get_str("digest")
    }

    /// The size of a disk (`scsi0: local-lvm:vm-100-disk-0,size=32G`), in bytes.
    pub fn disk_size(&self, disk: &str) -> Option<u64> {
        let v = self.get_str(disk)?;
        v.split(',')
            .find_map(|p| p.strip_prefix("size="))
            .and_then(parse_size)
    }

    /// The tags as a list.
    pub fn tags(&self) -> Vec<String> {
        split_tags(&self.get_str("tags").unwrap_or_default())
    }
}

/// Parses a PVE size (`32G`, `512M`, `1T`, `2147483648`) into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        'T' | 't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    (n >= 0.0).then(|| (n * mul as f64).round() as u64)
}

/// An entry of `GET /nodes/{node}/qemu/{vmid}/pending`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct PendingEntry {
    /// Config key.
    pub key: String,
    /// Current value.
    #[serde(default)]
    pub value: Option<Value>,
    /// Value after the next start.
    #[serde(default)]
    pub pending: Option<Value>,
    /// Pending removal.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub delete: Option<bool>,
}

/// One interface of the guest agent's `network-get-interfaces`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuestInterface {
    /// Interface name.
    pub name: String,
    /// MAC address.
    #[serde(rename = "hardware-address", default)]
    pub hardware_address: Option<String>,
    /// Addresses.
    #[serde(rename = "ip-addresses", default)]
    pub ip_addresses: Vec<GuestAddress>,
}

/// An address reported by the guest agent.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuestAddress {
    /// `ipv4` or `ipv6`.
    #[serde(rename = "ip-address-type")]
    pub kind: String,
    /// The address.
    #[serde(rename = "ip-address")]
    pub address: String,
    /// Prefix length.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub prefix: Option<u64>,
}

/// The first global unicast address (not loopback, not link-local) of the guest.
pub fn primary_address(ifaces: &[GuestInterface]) -> Option<std::net::IpAddr> {
    let mut v6 = None;
    for i in ifaces.iter().filter(|i| i.name != "lo") {
        for a in &i.ip_addresses {
            let Ok(ip) = a.address.parse::<std::net::IpAddr>() else {
                continue;
            };
            match ip {
                std::net::IpAddr::V4(v4)
                    if !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified() =>
                {
                    return Some(ip);
                }
                std::net::IpAddr::V6(a6)
                    if !a6.is_loopback()
                        && (a6.segments()[0] & 0xffc0) != 0xfe80
                        && !a6.is_unspecified() =>
                {
                    v6.get_or_insert(ip);
                }
                _ => {}
            }
        }
    }
    v6
}

/// An entry of `GET /storage` (cluster storage config).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct StorageInfo {
    /// Storage id.
    pub storage: String,
    /// Type (`dir`, `lvmthin`, `rbd`, `nfs`, ...).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Content types (`images,rootdir`).
    #[serde(default)]
    pub content: Option<String>,
    /// Shared between nodes.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub shared: Option<bool>,
    /// Active on the node (node listing).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub active: Option<bool>,
    /// Enabled (node listing).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enabled: Option<bool>,
    /// Free bytes (node listing).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub avail: Option<u64>,
    /// Total bytes (node listing).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub total: Option<u64>,
}

/// An entry of `GET /pools`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct PoolInfo {
    /// Pool id.
    pub poolid: String,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// An entry of `GET /cluster/ha/resources`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct HaResource {
    /// `vm:100`.
    pub sid: String,
    /// Requested state.
    #[serde(default)]
    pub state: Option<String>,
    /// HA group (PVE 8).
    #[serde(default)]
    pub group: Option<String>,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// An entry of `GET /cluster/ha/rules` (PVE 9).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct HaRule {
    /// Rule id.
    pub rule: String,
    /// `resource-affinity` or `node-affinity`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `vm:100,vm:101`.
    #[serde(default)]
    pub resources: String,
    /// `positive` or `negative` (resource-affinity).
    #[serde(default)]
    pub affinity: Option<String>,
    /// Nodes (node-affinity).
    #[serde(default)]
    pub nodes: Option<String>,
    /// Strict (node-affinity).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub strict: Option<bool>,
    /// Disabled.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub disable: Option<bool>,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// An entry of `GET /cluster/ha/groups` (PVE 8).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct HaGroup {
    /// Group id.
    pub group: String,
    /// Nodes.
    #[serde(default)]
    pub nodes: Option<String>,
    /// Restricted.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub restricted: Option<bool>,
}

/// A new HA rule (PVE 9).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HaRuleSpec {
    /// Keep resources together (`positive`) or apart (`negative`).
    ResourceAffinity {
        /// Rule id.
        rule: String,
        /// `vm:ID` list.
        resources: Vec<String>,
        /// True for negative (keep apart).
        negative: bool,
        /// Comment.
        comment: Option<String>,
    },
    /// Keep resources on some nodes.
    NodeAffinity {
        /// Rule id.
        rule: String,
        /// `vm:ID` list.
        resources: Vec<String>,
        /// Node names, optionally `name:priority`.
        nodes: Vec<String>,
        /// Only those nodes.
        strict: bool,
        /// Comment.
        comment: Option<String>,
    },
}

/// Options of `DELETE /nodes/{node}/qemu/{vmid}`; `None` leaves the server's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeleteOptions {
    /// `purge`: also remove the VM from HA, backup jobs and replication (needed for an
    /// HA-managed VM). Server default: off.
    pub purge: Option<bool>,
    /// `destroy-unreferenced-disks`: also destroy disks on enabled storages that carry the
    /// VMID but are not in the config. Server default: off.
    pub destroy_unreferenced_disks: Option<bool>,
    /// `skiplock` (root only). Server default: off.
    pub skiplock: Option<bool>,
}

impl DeleteOptions {
    /// Sets `purge`.
    #[must_use]
    pub fn purge(mut self, on: bool) -> Self {
        self.purge = Some(on);
        self
    }

    /// Sets `destroy-unreferenced-disks`.
    #[must_use]
    pub fn destroy_unreferenced_disks(mut self, on: bool) -> Self {
        self.destroy_unreferenced_disks = Some(on);
        self
    }

    /// Sets `skiplock`.
    #[must_use]
    pub fn skiplock(mut self, on: bool) -> Self {
        self.skiplock = Some(on);
        self
    }

    /// The query parameters.
    pub fn to_params(&self) -> Params {
        Params::new()
            .opt("purge", self.purge)
            .opt(
                "destroy-unreferenced-disks",
                self.destroy_unreferenced_disks,
            )
            .opt("skiplock", self.skiplock)
    }
}

/// Options of a clone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloneOptions {
    /// Name of the new VM.
    pub name: Option<String>,
    /// Full (true) or linked (false) clone; PVE's default: linked for templates.
    pub full: Option<bool>,
    /// Target storage (full clones).
    pub storage: Option<String>,
    /// Target node (only with shared storage).
    pub target: Option<String>,
    /// Pool to add the VM to.
    pub pool: Option<String>,
    /// Description.
    pub description: Option<String>,
}

impl CloneOptions {
    /// The request parameters for `newid`.
    pub fn to_params(&self, newid: u32) -> Params {
        Params::new()
            .set("newid", newid)
            .opt("name", self.name.as_deref())
            .opt("full", self.full)
            .opt("storage", self.storage.as_deref())
            .opt("target", self.target.as_deref())
            .opt("pool", self.pool.as_deref())
            .opt("description", self.description.as_deref())
    }
}

#[cfg(feature = "client")]
fn vm_path(node: &str, vmid: u32) -> String {
    format!("/nodes/{}/qemu/{vmid}", segment(node))
}

/// An answer that is a UPID on new PVE and `null` on old ones.
#[cfg(feature = "client")]
#[derive(Deserialize)]
#[serde(untagged)]
enum MaybeUpid {
    Upid(Upid),
    Null(#[allow(dead_code, reason = "only matches null")] Option<()>),
}

#[cfg(feature = "client")]
impl From<MaybeUpid> for Option<Upid> {
    fn from(m: MaybeUpid) -> Self {
        match m {
            MaybeUpid::Upid(u) => Some(u),
            MaybeUpid::Null(_) => None,
        }
    }
}

#[cfg(feature = "client")]
impl Client {
    /// `GET /version`.
    pub async fn version(&self) -> Result<VersionInfo, Error> {
        let v: VersionInfo = self.get("/version", &Params::new()).await?;
        *self.inner.version.lock().await = Some(v.clone());
        Ok(v)
    }

    /// The version, asked once and remembered.
    pub async fn cached_version(&self) -> Result<VersionInfo, Error> {
        if let Some(v) = self.inner.version.lock().await.clone() {
            return Ok(v);
        }
        self.version().await
    }

    /// `GET /nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        self.get("/nodes", &Params::new()).await
    }

    /// `GET /nodes/{node}/status` (free-form: memory, cpuinfo, pveversion, ...).
    pub async fn node_status(&self, node: &str) -> Result<Value, Error> {
        self.get(&format!("/nodes/{}/status", segment(node)), &Params::new())
            .await
    }

    /// `GET /cluster/status`.
    pub async fn cluster_status(&self) -> Result<Vec<ClusterStatusEntry>, Error> {
        self.get("/cluster/status", &Params::new()).await
    }

    /// `GET /cluster/resources`, optionally filtered by type.
    pub async fn cluster_resources(
        &self,
        kind: Option<ResourceType>,
    ) -> Result<Vec<Resource>, Error> {
        let t = kind.map(|k| match k {
            ResourceType::Vm => "vm",
            ResourceType::Storage => "storage",
            ResourceType::Node => "node",
        });
        self.get("/cluster/resources", &Params::new().opt("type", t))
            .await
    }

    /// `GET /cluster/nextid`: a free VMID (not reserved: two callers may get the same),
    /// or checks that `vmid` is free (an [`Error::Api`] 400 if not).
    pub async fn next_id(&self, vmid: Option<u32>) -> Result<u32, Error> {
        #[derive(Deserialize)]
        struct Id(#[serde(deserialize_with = "de::u32")] u32);
        let Id(id) = self
            .get("/cluster/nextid", &Params::new().opt("vmid", vmid))
            .await?;
        Ok(id)
    }

    /// `GET /nodes/{node}/qemu`.
    pub async fn qemu_list(&self, node: &str) -> Result<Vec<QemuListEntry>, Error> {
        self.get(&format!("/nodes/{}/qemu", segment(node)), &Params::new())
            .await
    }

    /// `POST /nodes/{node}/qemu`: create a VM (`params` carries `vmid` and the config).
    pub async fn qemu_create(&self, node: &str, params: &Params) -> Result<Upid, Error> {
        self.post(&format!("/nodes/{}/qemu", segment(node)), params)
            .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/clone`: on the source's node.
    pub async fn qemu_clone(
        &self,
        node: &str,
        vmid: u32,
        newid: u32,
        opts: &CloneOptions,
    ) -> Result<Upid, Error> {
        self.post(
            &format!("{}/clone", vm_path(node, vmid)),
            &opts.to_params(newid),
        )
        .await
    }

    /// `GET /nodes/{node}/qemu/{vmid}/config` (current values).
    pub async fn qemu_config(&self, node: &str, vmid: u32) -> Result<VmConfig, Error> {
        self.get(&format!("{}/config", vm_path(node, vmid)), &Params::new())
            .await
    }

    /// `PUT /nodes/{node}/qemu/{vmid}/config`: the synchronous form.
    pub async fn qemu_set_config(
        &self,
        node: &str,
        vmid: u32,
        params: &Params,
    ) -> Result<(), Error> {
        let _: Value = self
            .put(&format!("{}/config", vm_path(node, vmid)), params)
            .await?;
        Ok(())
    }

    /// `POST /nodes/{node}/qemu/{vmid}/config`: the asynchronous form (a `qmconfig` task).
    pub async fn qemu_set_config_async(
        &self,
        node: &str,
        vmid: u32,
        params: &Params,
    ) -> Result<Option<Upid>, Error> {
        let m: MaybeUpid = self
            .post(&format!("{}/config", vm_path(node, vmid)), params)
            .await?;
        Ok(m.into())
    }

    /// `GET /nodes/{node}/qemu/{vmid}/pending`.
    pub async fn qemu_pending(&self, node: &str, vmid: u32) -> Result<Vec<PendingEntry>, Error> {
        self.get(&format!("{}/pending", vm_path(node, vmid)), &Params::new())
            .await
    }

    /// `PUT /nodes/{node}/qemu/{vmid}/resize`: `size` like `32G` or `+10G`.
    /// A UPID since PVE 8.0, `None` before (done synchronously).
    pub async fn qemu_resize(
        &self,
        node: &str,
        vmid: u32,
        disk: &str,
        size: &str,
    ) -> Result<Option<Upid>, Error> {
        let m: MaybeUpid = self
            .put(
                &format!("{}/resize", vm_path(node, vmid)),
                &Params::new().set("disk", disk).set("size", size),
            )
            .await?;
        Ok(m.into())
    }

    /// `POST /nodes/{node}/qemu/{vmid}/template`. `None` when the server answers `null`.
    pub async fn qemu_template(&self, node: &str, vmid: u32) -> Result<Option<Upid>, Error> {
        let m: MaybeUpid = self
            .post(&format!("{}/template", vm_path(node, vmid)), &Params::new())
            .await?;
        Ok(m.into())
    }

    /// `DELETE /nodes/{node}/qemu/{vmid}`. Only the options set are sent, so the
    /// server's defaults apply to the rest (`destroy-unreferenced-disks` is 0 on PVE).
    pub async fn qemu_delete(
        &self,
        node: &str,
        vmid: u32,
        opts: &DeleteOptions,
    ) -> Result<Upid, Error> {
        self.delete(&vm_path(node, vmid), &opts.to_params()).await
    }

    /// `GET /nodes/{node}/qemu/{vmid}/status/current`.
    pub async fn qemu_status(&self, node: &str, vmid: u32) -> Result<VmStatus, Error> {
        self.get(
            &format!("{}/status/current", vm_path(node, vmid)),
            &Params::new(),
        )
        .await
    }

    async fn power(&self, node: &str, vmid: u32, action: &str, p: &Params) -> Result<Upid, Error> {
        self.post(&format!("{}/status/{action}", vm_path(node, vmid)), p)
            .await
    }

    /// `POST .../status/start`.
    pub async fn qemu_start(&self, node: &str, vmid: u32) -> Result<Upid, Error> {
        self.power(node, vmid, "start", &Params::new()).await
    }

    /// `POST .../status/stop` (hard stop).
    pub async fn qemu_stop(&self, node: &str, vmid: u32) -> Result<Upid, Error> {
        self.power(node, vmid, "stop", &Params::new()).await
    }

    /// `POST .../status/shutdown` (ACPI), stopping hard after `timeout` seconds if `force`.
    pub async fn qemu_shutdown(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<u32>,
        force: bool,
    ) -> Result<Upid, Error> {
        let p = Params::new()
            .opt("timeout", timeout)
            .opt("forceStop", force.then_some(true));
        self.power(node, vmid, "shutdown", &p).await
    }

    /// `POST .../status/reboot`.
    pub async fn qemu_reboot(&self, node: &str, vmid: u32) -> Result<Upid, Error> {
        self.power(node, vmid, "reboot", &Params::new()).await
    }

    /// `POST .../migrate` to `target`.
    pub async fn qemu_migrate(
        &self,
        node: &str,
        vmid: u32,
        target: &str,
        online: bool,
        with_local_disks: bool,
    ) -> Result<Upid, Error> {
        self.post(
            &format!("{}/migrate", vm_path(node, vmid)),
            &Params::new()
                .set("target", target)
                .set("online", online)
                .set("with-local-disks", with_local_disks),
        )
        .await
    }

    /// `POST .../agent/ping`: Ok when the guest agent answers.
    pub async fn agent_ping(&self, node: &str, vmid: u32) -> Result<(), Error> {
        let _: Value = self
            .post(
                &format!("{}/agent/ping", vm_path(node, vmid)),
                &Params::new(),
            )
            .await?;
        Ok(())
    }

    /// `GET .../agent/network-get-interfaces`.
    pub async fn agent_network_interfaces(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<Vec<GuestInterface>, Error> {
        #[derive(Deserialize)]
        struct R {
            #[serde(default)]
            result: Vec<GuestInterface>,
        }
        let r: R = self
            .get(
                &format!("{}/agent/network-get-interfaces", vm_path(node, vmid)),
                &Params::new(),
            )
            .await?;
        Ok(r.result)
    }

    /// `GET /storage` (cluster-wide storage config).
    pub async fn storages(&self) -> Result<Vec<StorageInfo>, Error> {
        self.get("/storage", &Params::new()).await
    }

    /// `GET /nodes/{node}/storage` (with usage and status).
    pub async fn node_storages(&self, node: &str) -> Result<Vec<StorageInfo>, Error> {
        self.get(&format!("/nodes/{}/storage", segment(node)), &Params::new())
            .await
    }

    /// `GET /pools`.
    pub async fn pools(&self) -> Result<Vec<PoolInfo>, Error> {
        self.get("/pools", &Params::new()).await
    }

    /// `POST /pools`.
    pub async fn create_pool(&self, poolid: &str, comment: Option<&str>) -> Result<(), Error> {
        let _: Value = self
            .post(
                "/pools",
                &Params::new().set("poolid", poolid).opt("comment", comment),
            )
            .await?;
        Ok(())
    }

    /// `GET /cluster/ha/resources`.
    pub async fn ha_resources(&self) -> Result<Vec<HaResource>, Error> {
        self.get("/cluster/ha/resources", &Params::new()).await
    }

    /// `POST /cluster/ha/resources` for `vm:ID`, with `state` (`started`) and, on PVE 8, a group.
    pub async fn create_ha_resource(
        &self,
        sid: &str,
        state: &str,
        group: Option<&str>,
    ) -> Result<(), Error> {
        let _: Value = self
            .post(
                "/cluster/ha/resources",
                &Params::new()
                    .set("sid", sid)
                    .set("state", state)
                    .opt("group", group),
            )
            .await?;
        Ok(())
    }

    /// `GET /cluster/ha/rules` (PVE 9).
    pub async fn ha_rules(&self) -> Result<Vec<HaRule>, Error> {
        self.get("/cluster/ha/rules", &Params::new()).await
    }

    /// `POST /cluster/ha/rules` (PVE 9).
    pub async fn create_ha_rule(&self, spec: &HaRuleSpec) -> Result<(), Error> {
        let p = match spec {
            HaRuleSpec::ResourceAffinity {
                rule,
                resources,
                negative,
                comment,
            } => Params::new()
                .set("rule", rule.as_str())
                .set("type", "resource-affinity")
                .set("resources", resources.join(","))
                .set("affinity", if *negative { "negative" } else { "positive" })
                .opt("comment", comment.as_deref()),
            HaRuleSpec::NodeAffinity {
                rule,
                resources,
                nodes,
                strict,
                comment,
            } => Params::new()
                .set("rule", rule.as_str())
                .set("type", "node-affinity")
                .set("resources", resources.join(","))
                .set("nodes", nodes.join(","))
                .set("strict", *strict)
                .opt("comment", comment.as_deref()),
        };
        let _: Value = self.post("/cluster/ha/rules", &p).await?;
        Ok(())
    }

    /// `GET /cluster/ha/groups` (PVE 8; removed in 9).
    pub async fn ha_groups(&self) -> Result<Vec<HaGroup>, Error> {
        self.get("/cluster/ha/groups", &Params::new()).await
    }

    /// `POST /cluster/ha/groups` (PVE 8).
    pub async fn create_ha_group(
        &self,
        group: &str,
        nodes: &[String],
        restricted: bool,
    ) -> Result<(), Error> {
        let _: Value = self
            .post(
                "/cluster/ha/groups",
                &Params::new()
                    .set("group", group)
                    .set("nodes", nodes.join(","))
                    .set("restricted", restricted),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_list_shapes() {
        // PVE 6.2 qemu list: vmid and pid as strings, template "".
        let l: Vec<QemuListEntry> = serde_json::from_str(
            r#"[{"vmid":"100","name":"test","status":"stopped","template":"","pid":null,"maxdisk":"8589934592","cpus":1}]"#,
        )
        .unwrap();
        assert_eq!(l[0].vmid, 100);
        assert_eq!(l[0].template, None);
        // cluster/resources with tags, lock and a node entry.
        let r: Vec<Resource> = serde_json::from_str(
            r#"[{"id":"qemu/101","type":"qemu","node":"pve1","vmid":101,"name":"m1","status":"running",
                "template":0,"tags":"hakube-demo;k8s","lock":"clone","maxdisk":3.4359738368e10,"maxcpu":2},
               {"id":"node/pve1","type":"node","node":"pve1","status":"online","maxcpu":4}]"#,
        )
        .unwrap();
        assert_eq!(r[0].tag_list(), ["hakube-demo", "k8s"]);
        assert_eq!(r[0].maxdisk, Some(34_359_738_368));
        assert_eq!(r[1].vmid, None);
        let v: VersionInfo =
            serde_json::from_str(r#"{"version":"8.4.1","release":"8.4","repoid":"abc"}"#).unwrap();
        assert!(!v.has_ha_rules());
        let n: Vec<NodeInfo> = serde_json::from_str(
            r#"[{"node":"pve","status":"online","ssl_fingerprint":"AA:BB","maxmem":"8345612288","cpu":0.0123,"level":""}]"#,
        )
        .unwrap();
        assert!(n[0].is_online());
        assert_eq!(n[0].maxmem, Some(8_345_612_288));
    }

    #[test]
    fn config_helpers() {
        let c: VmConfig = serde_json::from_str(
            r#"{"scsi0":"local-lvm:vm-100-disk-0,size=32G","memory":"2048","cores":2,"tags":"a;b","digest":"abc"}"#,
        )
        .unwrap();
        assert_eq!(c.disk_size("scsi0"), Some(32 << 30));
        assert_eq!(c.get_u64("memory"), Some(2048));
        assert_eq!(c.get_u64("cores"), Some(2));
        assert_eq!(c.tags(), ["a", "b"]);
        assert_eq!(parse_size("1.5G"), Some(1_610_612_736));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn guest_agent_addresses() {
        let ifs: Vec<GuestInterface> = serde_json::from_str(
            r#"[{"name":"lo","ip-addresses":[{"ip-address-type":"ipv4","ip-address":"127.0.0.1","prefix":8}]},
                {"name":"eth0","hardware-address":"aa:bb","ip-addresses":[
                    {"ip-address-type":"ipv6","ip-address":"fe80::1","prefix":64},
                    {"ip-address-type":"ipv4","ip-address":"10.0.0.5","prefix":24}]}]"#,
        )
        .unwrap();
        assert_eq!(primary_address(&ifs), Some("10.0.0.5".parse().unwrap()));
        assert_eq!(primary_address(&ifs[..1]), None);
    }

    #[cfg(feature = "client")]
    #[test]
    fn upid_or_null() {
        // Resize answers null before PVE 8.0 and a UPID since.
        let m: MaybeUpid = serde_json::from_str("null").unwrap();
        assert_eq!(Option::<Upid>::from(m), None);
        let m: MaybeUpid =
            serde_json::from_str(r#""UPID:pve:0000A1B2:00C0FFEE:5FBE5A32:resize:100:root@pam:""#)
                .unwrap();
        assert_eq!(Option::<Upid>::from(m).unwrap().task_type(), "resize");
        assert!(serde_json::from_str::<MaybeUpid>(r#""not a upid""#).is_err());
    }

    #[test]
    fn clone_params() {
        let o = CloneOptions {
            name: Some("m1".into()),
            full: Some(false),
            target: Some("pve2".into()),
            ..CloneOptions::default()
        };
        assert_eq!(
            o.to_params(101).encode(),
            "newid=101&name=m1&full=0&target=pve2"
        );
    }
}
