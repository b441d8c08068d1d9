//! The pure part of provisioning: checks, the desired config, and the diff from an
//! observed cluster state to actions. No I/O here.

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};

use super::{CloneMode, ProvisionOptions, VmSpec};
use crate::api::{HaRule, VmConfig};
use crate::cloudinit::{self, normalize_tags};
use crate::{Error, split_tags};

/// What a run saw of the cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterState {
    /// PVE 9 HA rules are available (else HA groups, PVE 8).
    pub ha_rules_supported: bool,
    /// Node name -> status (`online`, `offline`, `unknown`).
    pub nodes: BTreeMap<String, String>,
    /// Every guest, by VMID.
    pub vms: BTreeMap<u32, ObservedVm>,
    /// Storages marked shared.
    pub shared_storages: BTreeSet<String>,
    /// Existing pools.
    pub pools: BTreeSet<String>,
    /// HA resource ids (`vm:101`).
    pub ha_resources: BTreeSet<String>,
    /// HA rules by id (PVE 9).
    pub ha_rules: BTreeMap<String, HaRule>,
    /// HA groups (PVE 8).
    pub ha_groups: BTreeSet<String>,
}

/// One guest as observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedVm {
    /// VMID.
    pub vmid: u32,
    /// `qemu` or `lxc`.
    pub kind: String,
    /// Node.
    pub node: String,
    /// Name.
    pub name: String,
    /// `running`, `stopped`, ...
    pub status: String,
    /// Template flag.
    pub template: bool,
    /// Config lock.
    pub lock: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Pool.
    pub pool: Option<String>,
    /// The config with pending changes applied (loaded for wanted VMs and templates).
    pub config: Option<VmConfig>,
    /// Tasks still running on this VM (e.g. from a killed run), by UPID.
    pub active_tasks: Vec<String>,
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Create a resource pool.
    CreatePool {
        /// Pool id.
        pool: String,
    },
    /// Clone the template (on `source_node`, to `target` if another node).
    Clone {
        /// Template VMID.
        template: u32,
        /// The template's node.
        source_node: String,
        /// Target node for a cross-node clone.
        target: Option<String>,
        /// Full clone.
        full: bool,
        /// Target storage (full clones).
        storage: Option<String>,
        /// Pool.
        pool: Option<String>,
    },
    /// Wait for a lock (a clone still running, a backup) to go.
    WaitUnlock {
        /// The lock.
        lock: String,
    },
    /// Wait for tasks still running on the VM (left by an earlier, killed run).
    WaitTasks {
        /// Their UPIDs.
        upids: Vec<String>,
    },
    /// Move the (stopped) VM to its node.
    Migrate {
        /// Where it is.
        from: String,
    },
    /// Set config keys.
    Configure {
        /// Keys and values.
        set: BTreeMap<String, String>,
    },
    /// Add the VM to its pool.
    AddToPool {
        /// Pool.
        pool: String,
    },
    /// Grow a disk.
    Resize {
        /// Disk key.
        disk: String,
        /// Size in GiB.
        gib: u32,
    },
    /// Start the VM.
    Start,
    /// Make it an HA resource.
    HaResource {
        /// HA group (PVE 8).
        group: Option<String>,
    },
    /// Create an HA group preferring the VM's node (PVE 8 fallback).
    HaGroup {
        /// Group id.
        group: String,
        /// Nodes.
        nodes: Vec<String>,
    },
    /// Create or update a negative resource-affinity rule (PVE 9).
    HaRule {
        /// Rule id.
        rule: String,
        /// `vm:ID` resources.
        resources: Vec<String>,
        /// Update an existing rule.
        update: bool,
    },
    /// Delete an owned VM that is not wanted (only with pruning).
    Delete {
        /// Its node.
        node: String,
        /// Running (stop it first).
        running: bool,
    },
}

impl Action {
    /// A short step name.
    pub fn step(&self) -> &'static str {
        match self {
            Self::CreatePool { .. } => "pool",
            Self::Clone { .. } => "clone",
            Self::WaitUnlock { .. } => "wait-unlock",
            Self::WaitTasks { .. } => "wait-tasks",
            Self::Migrate { .. } => "migrate",
            Self::Configure { .. } => "configure",
            Self::AddToPool { .. } => "pool-member",
            Self::Resize { .. } => "resize",
            Self::Start => "start",
            Self::HaResource { .. } => "ha-resource",
            Self::HaGroup { .. } => "ha-group",
            Self::HaRule { .. } => "ha-rule",
            Self::Delete { .. } => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreatePool { pool } => write!(f, "create pool {pool}"),
            Self::Clone {
                template,
                source_node,
                target,
                full,
                storage,
                pool,
            } => {
                write!(
                    f,
                    "{} clone of template {template} on {source_node}",
                    if *full { "full" } else { "linked" }
                )?;
                if let Some(t) = target {
                    write!(f, " to node {t}")?;
                }
                if let Some(s) = storage {
                    write!(f, " onto storage {s}")?;
                }
                if let Some(p) = pool {
                    write!(f, " in pool {p}")?;
                }
                Ok(())
            }
            Self::WaitUnlock { lock } => write!(f, "wait for lock '{lock}' to clear"),
            Self::WaitTasks { upids } => write!(f, "wait for {} running task(s)", upids.len()),
            Self::Migrate { from } => write!(f, "migrate from {from}"),
            Self::Configure { set } => {
                let keys: Vec<&str> = set.keys().map(String::as_str).collect();
                write!(f, "configure {}", keys.join(", "))
            }
            Self::AddToPool { pool } => write!(f, "add to pool {pool}"),
            Self::Resize { disk, gib } => write!(f, "grow {disk} to {gib}G"),
            Self::Start => f.write_str("start"),
            Self::HaResource { group } => match group {
                Some(g) => write!(f, "add HA resource (group {g})"),
                None => f.write_str("add HA resource"),
            },
            Self::HaGroup { group, nodes } => {
                write!(f, "create HA group {group} ({})", nodes.join(","))
            }
            Self::HaRule {
                rule,
                resources,
                update,
            } => write!(
                f,
                "{} HA rule {rule}: keep {} apart",
                if *update { "update" } else { "create" },
                resources.join(",")
            ),
            Self::Delete { node, running } => {
                write!(
                    f,
                    "{}delete (purge) on {node}",
                    if *running { "stop and " } else { "" }
                )
            }
        }
    }
}

/// The actions for one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmPlan {
    /// VM name.
    pub name: String,
    /// VMID.
    pub vmid: u32,
    /// Node.
    pub node: String,
    /// Steps, in order (empty: up to date).
    pub actions: Vec<Action>,
}

/// A whole run's actions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Before the VMs (pools, HA groups).
    pub before: Vec<Action>,
    /// Per VM.
    pub vms: Vec<VmPlan>,
    /// After the VMs (HA rules).
    pub after: Vec<Action>,
    /// Owned VMs to delete (pruning).
    pub prune: Vec<VmPlan>,
}

impl Plan {
    /// True if nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.before.is_empty()
            && self.after.is_empty()
            && self.prune.is_empty()
            && self.vms.iter().all(|v| v.actions.is_empty())
    }

    /// Number of actions.
    pub fn len(&self) -> usize {
        self.before.len()
            + self.after.len()
            + self.prune.iter().map(|v| v.actions.len()).sum::<usize>()
            + self.vms.iter().map(|v| v.actions.len()).sum::<usize>()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "nothing to do: every VM matches its spec");
        }
        for a in &self.before {
            writeln!(f, "cluster: {a}")?;
        }
        for v in &self.vms {
            if v.actions.is_empty() {
                writeln!(f, "{} ({} on {}): up to date", v.name, v.vmid, v.node)?;
            }
            for a in &v.actions {
                writeln!(f, "{} ({} on {}): {a}", v.name, v.vmid, v.node)?;
            }
        }
        for a in &self.after {
            writeln!(f, "cluster: {a}")?;
        }
        for v in &self.prune {
            for a in &v.actions {
                writeln!(f, "{} ({} on {}): {a}", v.name, v.vmid, v.node)?;
            }
        }
        Ok(())
    }
}

fn invalid(field: String, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Checks the specs on their own (no cluster needed).
pub(crate) fn validate_specs(specs: &[VmSpec], opts: &ProvisionOptions) -> Result<(), Error> {
    normalize_tags([&opts.owner_tag]).map_err(|e| invalid("owner_tag".into(), e.to_string()))?;
    let mut names = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (i, s) in specs.iter().enumerate() {
        let at = |f: &str| format!("vms[{i}] ({}).{f}", s.name);
        if !hakube_host_state::is_dns_label(&s.name) {
            return Err(invalid(at("name"), "must be a DNS label (a-z, 0-9, -)"));
        }
        if !names.insert(&s.name) {
            return Err(invalid(at("name"), "duplicate VM name"));
        }
        if !(100..=999_999_999).contains(&s.vmid) {
            return Err(invalid(at("vmid"), "must be within 100..=999999999"));
        }
        if !ids.insert(s.vmid) {
            return Err(invalid(at("vmid"), format!("VMID {} used twice", s.vmid)));
        }
        if s.template == s.vmid {
            return Err(invalid(at("template"), "a VM cannot be its own template"));
        }
        if s.node.is_empty() {
            return Err(invalid(at("node"), "empty"));
        }
        if s.cores == 0 || s.cores > 512 {
            return Err(invalid(at("cores"), "must be 1..=512"));
        }
        if s.memory_mib < 16 {
            return Err(invalid(at("memory_mib"), "must be at least 16"));
        }
        if let Some((disk, gib)) = &s.disk {
            let bus_ok = ["scsi", "virtio", "sata", "ide"].iter().any(|b| {
                disk.strip_prefix(b)
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            });
            if !bus_ok {
                return Err(invalid(at("disk"), format!("{disk:?} is not a disk key")));
            }
            if *gib == 0 {
                return Err(invalid(at("disk"), "size must be at least 1 GiB"));
            }
        }
        if s.storage.is_some() && s.clone_mode == CloneMode::Linked {
            return Err(invalid(
                at("storage"),
                "a target storage needs a full clone (PVE refuses it for linked clones)",
            ));
        }
        normalize_tags(&s.tags).map_err(|e| invalid(at("tags"), e.to_string()))?;
        if let Some(ci) = &s.cloud_init {
            if let Some(u) = &ci.user {
                cloudinit::ciuser(u).map_err(|e| invalid(at("cloud_init.user"), e.to_string()))?;
            }
            cloudinit::sshkeys(&ci.ssh_keys)
                .map_err(|e| invalid(at("cloud_init.ssh_keys"), e.to_string()))?;
            let d: Vec<&str> = ci.search_domains.iter().map(String::as_str).collect();
            cloudinit::searchdomain(&d)
                .map_err(|e| invalid(at("cloud_init.search_domains"), e.to_string()))?;
        }
        if let Some(r) = &s.role
            && !hakube_host_state::is_dns_label(r)
        {
            return Err(invalid(at("role"), "must be a DNS label"));
        }
    }
    Ok(())
}

/// The config keys a spec wants, as PVE spells them.
pub fn desired_config(spec: &VmSpec, opts: &ProvisionOptions) -> BTreeMap<String, String> {
    let mut c = BTreeMap::new();
    c.insert("name".into(), spec.name.clone());
    c.insert("cores".into(), spec.cores.to_string());
    c.insert("memory".into(), spec.memory_mib.to_string());
    c.insert("description".into(), opts.owner_marker());
    let mut tags = spec.tags.clone();
    tags.push(opts.owner_tag.clone());
    if let Ok(t) = normalize_tags(&tags) {
        c.insert("tags".into(), t.join(";"));
    }
    c.insert("onboot".into(), if spec.start { "1" } else { "0" }.into());
    if spec.agent {
        c.insert("agent".into(), "1".into());
    }
    if let Some(n) = &spec.network {
        let mut v = format!("{},bridge={}", n.model, n.bridge);
        if let Some(t) = n.vlan {
            v.push_str(&format!(",tag={t}"));
        }
        c.insert("net0".into(), v);
    }
    if let Some(ci) = &spec.cloud_init {
        if let Some(u) = &ci.user {
            c.insert("ciuser".into(), u.clone());
        }
        if !ci.ssh_keys.is_empty()
            && let Ok(k) = cloudinit::sshkeys(&ci.ssh_keys)
        {
            c.insert("sshkeys".into(), k);
        }
        if let Some(ip) = &ci.ip {
            c.insert("ipconfig0".into(), ip.to_value());
        }
        if !ci.nameservers.is_empty() {
            c.insert("nameserver".into(), cloudinit::nameservers(&ci.nameservers));
        }
        if !ci.search_domains.is_empty() {
            c.insert("searchdomain".into(), ci.search_domains.join(" "));
        }
    }
    c
}

fn split_props(v: &str) -> (String, BTreeMap<String, String>) {
    let mut parts = v.split(',');
    let head = parts.next().unwrap_or("").to_owned();
    let props = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (head, props)
}

fn truthy(v: &str) -> bool {
    let first = v.split(',').next().unwrap_or("");
    let val = first.strip_prefix("enabled=").unwrap_or(first);
    matches!(val, "1" | "true" | "on" | "yes")
}

/// The value to send for `key`, or None if `actual` already satisfies `want`.
fn config_change(key: &str, want: &str, actual: Option<&str>) -> Option<String> {
    let Some(actual) = actual else {
        return Some(want.to_owned());
    };
    let same = match key {
        "memory" => actual.trim_start_matches("current=").split(',').next() == Some(want),
        "cores" => actual.trim() == want,
        "onboot" | "agent" => truthy(actual) == truthy(want),
        "description" => actual.contains(want),
        "tags" => {
            let a: BTreeSet<String> = split_tags(actual)
                .into_iter()
                .map(|t| t.to_ascii_lowercase())
                .collect();
            let w: BTreeSet<String> = split_tags(want).into_iter().collect();
            a == w
        }
        "sshkeys" => cloudinit::decode_sshkeys(actual) == cloudinit::decode_sshkeys(want),
        "ipconfig0" => {
            let a: BTreeSet<&str> = actual.split(',').collect();
            let w: BTreeSet<&str> = want.split(',').collect();
            a == w
        }
        "net0" => {
            let (ah, ap) = split_props(actual);
            let (wh, wp) = split_props(want);
            let (amodel, mac) = ah
                .split_once('=')
                .map_or((ah.as_str(), None), |(m, mac)| (m, Some(mac)));
            let same = amodel == wh
                && ap.get("bridge") == wp.get("bridge")
                && ap.get("tag") == wp.get("tag");
            if !same {
                // Keep the MAC the clone got, so the guest's network identity is stable.
                return Some(match mac {
                    Some(mac) if amodel == wh => want.replacen(&wh, &format!("{wh}={mac}"), 1),
                    _ => want.to_owned(),
                });
            }
            true
        }
        _ => actual == want,
    };
    (!same).then(|| want.to_owned())
}

/// The config keys to set so that `actual` matches the spec.
pub(crate) fn config_changes(
    spec: &VmSpec,
    opts: &ProvisionOptions,
    actual: &VmConfig,
) -> BTreeMap<String, String> {
    desired_config(spec, opts)
        .into_iter()
        .filter_map(|(k, want)| {
            config_change(&k, &want, actual.get_str(&k).as_deref()).map(|v| (k, v))
        })
        .collect()
}

/// True if this tool owns the VM: it carries the tag, or the marker its clone call wrote.
pub(crate) fn is_owned(vm: &ObservedVm, opts: &ProvisionOptions) -> bool {
    vm.tags
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&opts.owner_tag))
        || vm
            .config
            .as_ref()
            .and_then(|c| c.get_str("description"))
            .is_some_and(|d| d.contains(&opts.owner_marker()))
}

const DISK_PREFIXES: [&str; 6] = ["scsi", "virtio", "sata", "ide", "efidisk", "tpmstate"];

/// The storages a template's disks live on.
fn disk_storages(config: &VmConfig) -> BTreeSet<String> {
    config
        .0
        .keys()
        .filter(|k| {
            DISK_PREFIXES.iter().any(|p| {
                k.strip_prefix(p)
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            })
        })
        .filter_map(|k| config.get_str(k))
        .filter(|v| !v.contains("media=cdrom") && !v.starts_with("none"))
        .filter_map(|v| v.split_once(':').map(|(s, _)| s.to_owned()))
        .collect()
}

/// Where and how to clone: (source node, target node).
fn clone_route(
    spec: &VmSpec,
    i: usize,
    state: &ClusterState,
) -> Result<(String, Option<String>), Error> {
    let field = format!("vms[{i}] ({}).template", spec.name);
    let t = state.vms.get(&spec.template).ok_or_else(|| {
        invalid(
            field.clone(),
            format!("template VMID {} does not exist", spec.template),
        )
    })?;
    if !t.template {
        return Err(invalid(
            field,
            format!("VM {} ({}) is not a template", t.vmid, t.name),
        ));
    }
    if t.node == spec.node {
        return Ok((t.node.clone(), None));
    }
    let storages = t.config.as_ref().map(disk_storages).unwrap_or_default();
    let local: Vec<&String> = storages
        .iter()
        .filter(|s| !state.shared_storages.contains(*s))
        .collect();
    if storages.is_empty() || !local.is_empty() {
        return Err(invalid(
            field,
            format!(
                "template {} is on node {} with disks on local storage ({}); VM wants node {}: \
                 give each node its own template, or keep the template on shared storage",
                t.vmid,
                t.node,
                local
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                spec.node
            ),
        ));
    }
    Ok((t.node.clone(), Some(spec.node.clone())))
}

/// The HA rule id of a role.
pub(crate) fn rule_id(owner: &str, role: &str) -> String {
    let raw = format!("{owner}-{role}-apart");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The HA group of a VM (PVE 8 fallback).
pub(crate) fn group_id(owner: &str, vm: &str) -> String {
    rule_id(owner, vm).trim_end_matches("-apart").to_owned()
}

/// The steps for one VM, from what is observed now.
pub(crate) fn plan_vm(
    spec: &VmSpec,
    i: usize,
    state: &ClusterState,
    opts: &ProvisionOptions,
) -> Result<Vec<Action>, Error> {
    let mut out = Vec::new();
    let ha_group = (!state.ha_rules_supported).then(|| group_id(&opts.owner_tag, &spec.name));
    let Some(vm) = state.vms.get(&spec.vmid) else {
        let (source_node, target) = clone_route(spec, i, state)?;
        out.push(Action::Clone {
            template: spec.template,
            source_node,
            target,
            full: spec.clone_mode == CloneMode::Full,
            storage: spec.storage.clone(),
            pool: spec.pool.clone(),
        });
        let set = desired_config(spec, opts)
            .into_iter()
            .filter(|(k, _)| k != "name" && k != "description")
            .collect();
        out.push(Action::Configure { set });
        if let Some((disk, gib)) = &spec.disk {
            let template_size = state
                .vms
                .get(&spec.template)
                .and_then(|t| t.config.as_ref())
                .and_then(|c| c.disk_size(disk))
                .unwrap_or(0);
            if u64::from(*gib) << 30 > template_size {
                out.push(Action::Resize {
                    disk: disk.clone(),
                    gib: *gib,
                });
            }
        }
        if spec.start {
            out.push(Action::Start);
        }
        if spec.ha {
            out.push(Action::HaResource { group: ha_group });
        }
        return Ok(out);
    };
    if !is_owned(vm, opts) {
        return Err(Error::ForeignVm {
            vmid: vm.vmid,
            name: vm.name.clone(),
            node: vm.node.clone(),
            tag: opts.owner_tag.clone(),
        });
    }
    if vm.kind != "qemu" || vm.template {
        return Err(invalid(
            format!("vms[{i}] ({}).vmid", spec.name),
            format!(
                "VMID {} is a {}{}, not a VM",
                vm.vmid,
                vm.kind,
                if vm.template { " template" } else { "" }
            ),
        ));
    }
    if let Some(lock) = &vm.lock {
        out.push(Action::WaitUnlock { lock: lock.clone() });
        return Ok(out);
    }
    if !vm.active_tasks.is_empty() {
        out.push(Action::WaitTasks {
            upids: vm.active_tasks.clone(),
        });
        return Ok(out);
    }
    if vm.node != spec.node {
        out.push(Action::Migrate {
            from: vm.node.clone(),
        });
        return Ok(out);
    }
    let actual = vm.config.clone().unwrap_or_default();
    let set = config_changes(spec, opts, &actual);
    if !set.is_empty() {
        out.push(Action::Configure { set });
    }
    if let Some(pool) = &spec.pool
        && vm.pool.as_ref() != Some(pool)
    {
        out.push(Action::AddToPool { pool: pool.clone() });
    }
    if let Some((disk, gib)) = &spec.disk {
        let have = actual.disk_size(disk).unwrap_or(0);
        if have < u64::from(*gib) << 30 {
            out.push(Action::Resize {
                disk: disk.clone(),
                gib: *gib,
            });
        }
    }
    if spec.start && vm.status != "running" {
        out.push(Action::Start);
    }
    if spec.ha && !state.ha_resources.contains(&format!("vm:{}", spec.vmid)) {
        out.push(Action::HaResource { group: ha_group });
    }
    Ok(out)
}

/// Checks the cluster can take the specs (nodes online, templates usable, no foreign
/// VMs), then plans every action. Errors here mean nothing was, or will be, changed.
pub fn plan_cluster(
    specs: &[VmSpec],
    state: &ClusterState,
    opts: &ProvisionOptions,
) -> Result<Plan, Error> {
    validate_specs(specs, opts)?;
    // Nodes: the VM's node and its template's node must be online.
    let mut need: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in specs {
        need.entry(s.node.as_str()).or_default().push(&s.name);
        if let Some(t) = state.vms.get(&s.template)
            && !state.vms.contains_key(&s.vmid)
        {
            need.entry(t.node.as_str()).or_default().push(&s.name);
        }
    }
    for (node, vms) in &need {
        let status = state
            .nodes
            .get(*node)
            .map_or("unknown (not in the cluster)", String::as_str);
        if status != "online" {
            let mut vms = vms.clone();
            vms.dedup();
            return Err(Error::NodeUnavailable {
                node: (*node).to_owned(),
                state: status.to_owned(),
                needed_by: vms.join(", "),
            });
        }
    }
    let mut plan = Plan::default();
    let mut pools: BTreeSet<&String> = BTreeSet::new();
    for s in specs {
        if let Some(p) = &s.pool
            && !state.pools.contains(p)
            && pools.insert(p)
        {
            plan.before.push(Action::CreatePool { pool: p.clone() });
        }
    }
    let mut failures = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        match plan_vm(s, i, state, opts) {
            Ok(actions) => plan.vms.push(VmPlan {
                name: s.name.clone(),
                vmid: s.vmid,
                node: s.node.clone(),
                actions,
            }),
            Err(e) => failures.push(e),
        }
    }
    if let Some(e) = failures.into_iter().next() {
        return Err(e);
    }
    // HA: PVE 9 rules per role; PVE 8 a group per VM preferring its node.
    if state.ha_rules_supported {
        let mut roles: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for s in specs.iter().filter(|s| s.ha) {
            if let Some(r) = &s.role {
                roles.entry(r).or_default().push(format!("vm:{}", s.vmid));
            }
        }
        for (role, mut resources) in roles {
            if resources.len() < 2 {
                continue;
            }
            resources.sort();
            let rule = rule_id(&opts.owner_tag, role);
            match state.ha_rules.get(&rule) {
                None => plan.after.push(Action::HaRule {
                    rule,
                    resources,
                    update: false,
                }),
                Some(have) => {
                    let mut got: Vec<String> = have
                        .resources
                        .split(',')
                        .map(|r| r.trim().to_owned())
                        .filter(|r| !r.is_empty())
                        .collect();
                    got.sort();
                    if got != resources || have.affinity.as_deref() != Some("negative") {
                        plan.after.push(Action::HaRule {
                            rule,
                            resources,
                            update: true,
                        });
                    }
                }
            }
        }
    } else {
        for s in specs.iter().filter(|s| s.ha) {
            let group = group_id(&opts.owner_tag, &s.name);
            if !state.ha_groups.contains(&group) {
                plan.before.push(Action::HaGroup {
                    group,
                    nodes: vec![s.node.clone()],
                });
            }
        }
    }
    if opts.prune {
        let wanted: BTreeSet<u32> = specs.iter().map(|s| s.vmid).collect();
        for vm in state.vms.values() {
            if !wanted.contains(&vm.vmid)
                && !vm.template
                && vm.kind == "qemu"
                && vm
                    .tags
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&opts.owner_tag))
            {
                plan.prune.push(VmPlan {
                    name: vm.name.clone(),
                    vmid: vm.vmid,
                    node: vm.node.clone(),
                    actions: vec![Action::Delete {
                        node: vm.node.clone(),
                        running: vm.status == "running",
                    }],
                });
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudinit::IpConfig;
    use crate::provision::{CloudInit, NetSpec};

    fn opts() -> ProvisionOptions {
        ProvisionOptions::new("hakube-demo")
    }

    fn spec(name: &str, node: &str, vmid: u32, template: u32) -> VmSpec {
        let mut s = VmSpec::new(name, node, vmid, template);
        s.cores = 2;
        s.memory_mib = 4096;
        s.disk = Some(("scsi0".into(), 32));
        s.network = Some(NetSpec {
            model: "virtio".into(),
            bridge: "vmbr0".into(),
            vlan: Some(20),
        });
        s.cloud_init = Some(CloudInit {
            user: Some("ubuntu".into()),
            ssh_keys: vec!["ssh-ed25519 AAAAC3 ops@x".into()],
            ip: Some(
                IpConfig::static_v4("10.0.0.11/24", Some("10.0.0.1".parse().unwrap())).unwrap(),
            ),
            nameservers: vec!["10.0.0.1".parse().unwrap()],
            search_domains: vec!["lab.example".into()],
        });
        s.role = Some("control-plane".into());
        s.ha = true;
        s
    }

    fn template(vmid: u32, node: &str, storage: &str) -> ObservedVm {
        ObservedVm {
            vmid,
            kind: "qemu".into(),
            node: node.into(),
            name: format!("tmpl-{node}"),
            status: "stopped".into(),
            template: true,
            config: Some(VmConfig(
                [(
                    "scsi0".to_owned(),
                    serde_json::Value::String(format!("{storage}:base-{vmid}-disk-0,size=10G")),
                )]
                .into_iter()
                .collect(),
            )),
            ..ObservedVm::default()
        }
    }

    fn state() -> ClusterState {
        let mut s = ClusterState {
            ha_rules_supported: true,
            ..ClusterState::default()
        };
        for n in ["pve1", "pve2"] {
            s.nodes.insert(n.into(), "online".into());
        }
        s.vms.insert(9000, template(9000, "pve1", "local-lvm"));
        s.vms.insert(9001, template(9001, "pve2", "local-lvm"));
        s.vms.insert(9100, template(9100, "pve1", "ceph"));
        s.shared_storages.insert("ceph".into());
        s
    }

    /// What the VM looks like after the plan ran (as PVE would store it).
    fn converged(sp: &VmSpec, o: &ProvisionOptions) -> ObservedVm {
        let mut cfg: BTreeMap<String, serde_json::Value> = desired_config(sp, o)
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        cfg.insert(
            "net0".into(),
            "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,tag=20".into(),
        );
        cfg.insert("memory".into(), serde_json::json!(4096));
        cfg.insert("scsi0".into(), "local-lvm:vm-201-disk-0,size=32G".into());
        ObservedVm {
            vmid: sp.vmid,
            kind: "qemu".into(),
            node: sp.node.clone(),
            name: sp.name.clone(),
            status: "running".into(),
            tags: vec!["hakube-demo".into()],
            config: Some(VmConfig(cfg)),
            ..ObservedVm::default()
        }
    }

    #[test]
    fn fresh_cluster_plans_everything() {
        let specs = [
            spec("m1", "pve1", 201, 9000),
            spec("m2", "pve2", 202, 9001),
            spec("m3", "pve2", 203, 9100),
        ];
        let plan = plan_cluster(&specs, &state(), &opts()).unwrap();
        let steps: Vec<&str> = plan.vms[0].actions.iter().map(Action::step).collect();
        assert_eq!(
            steps,
            ["clone", "configure", "resize", "start", "ha-resource"]
        );
        // Shared-storage template on another node: cloned with target.
        assert!(
            matches!(&plan.vms[2].actions[0], Action::Clone { target: Some(t), source_node, .. } if t == "pve2" && source_node == "pve1")
        );
        assert_eq!(plan.after.len(), 1);
        let text = plan.to_string();
        assert!(
            text.contains(
                "create HA rule hakube-demo-control-plane-apart: keep vm:201,vm:202,vm:203 apart"
            ),
            "{text}"
        );
    }

    #[test]
    fn converged_vm_needs_nothing() {
        let o = opts();
        let sp = spec("m1", "pve1", 201, 9000);
        let mut st = state();
        st.vms.insert(201, converged(&sp, &o));
        st.ha_resources.insert("vm:201".into());
        let plan = plan_cluster(&[sp], &st, &o).unwrap();
        assert!(plan.is_empty(), "{plan}");
    }

    #[test]
    fn half_configured_vm_is_completed() {
        let o = opts();
        let sp = spec("m1", "pve1", 201, 9000);
        let mut vm = converged(&sp, &o);
        // Killed after the clone: template config, no tags, stopped, disk not grown.
        vm.tags.clear();
        vm.status = "stopped".into();
        if let Some(c) = vm.config.as_mut() {
            c.0.remove("tags");
            c.0.insert("cores".into(), serde_json::json!(1));
            c.0.insert("scsi0".into(), "local-lvm:vm-201-disk-0,size=10G".into());
        }
        let mut st = state();
        st.vms.insert(201, vm);
        let plan = plan_cluster(&[sp], &st, &o).unwrap();
        let a = &plan.vms[0].actions;
        let Action::Configure { set } = &a[0] else {
            panic!("{a:?}")
        };
        assert_eq!(set.keys().collect::<Vec<_>>(), ["cores", "tags"]);
        assert_eq!(
            a[1],
            Action::Resize {
                disk: "scsi0".into(),
                gib: 32
            }
        );
        assert_eq!(a[2], Action::Start);
    }

    #[test]
    fn foreign_vm_is_refused() {
        let sp = spec("m1", "pve1", 201, 9000);
        let mut st = state();
        st.vms.insert(
            201,
            ObservedVm {
                vmid: 201,
                kind: "qemu".into(),
                node: "pve1".into(),
                name: "payroll-db".into(),
                status: "running".into(),
                config: Some(VmConfig::default()),
                ..ObservedVm::default()
            },
        );
        let e = plan_cluster(&[sp], &st, &opts()).unwrap_err();
        assert!(matches!(e, Error::ForeignVm { vmid: 201, .. }), "{e}");
        assert!(e.to_string().contains("payroll-db"), "{e}");
    }

    #[test]
    fn offline_node_is_named() {
        let mut st = state();
        st.nodes.insert("pve2".into(), "offline".into());
        let e = plan_cluster(&[spec("m2", "pve2", 202, 9001)], &st, &opts()).unwrap_err();
        assert_eq!(e.to_string(), "Proxmox node pve2 is offline; needed for m2");
    }

    #[test]
    fn local_template_on_other_node_is_refused() {
        let e = plan_cluster(&[spec("m2", "pve2", 202, 9000)], &state(), &opts()).unwrap_err();
        assert!(e.to_string().contains("own template"), "{e}");
    }

    #[test]
    fn locked_vm_waits_and_clone_marker_adopts() {
        let o = opts();
        let sp = spec("m1", "pve1", 201, 9000);
        let mut st = state();
        st.vms.insert(
            201,
            ObservedVm {
                vmid: 201,
                kind: "qemu".into(),
                node: "pve1".into(),
                name: "m1".into(),
                lock: Some("clone".into()),
                config: Some(VmConfig(
                    [(
                        "description".to_owned(),
                        serde_json::Value::String(o.owner_marker()),
                    )]
                    .into_iter()
                    .collect(),
                )),
                ..ObservedVm::default()
            },
        );
        let plan = plan_cluster(&[sp], &st, &o).unwrap();
        assert_eq!(
            plan.vms[0].actions,
            [Action::WaitUnlock {
                lock: "clone".into()
            }]
        );
    }

    #[test]
    fn bad_specs_name_the_field() {
        let mut s = spec("M1", "pve1", 201, 9000);
        let e = plan_cluster(&[s.clone()], &state(), &opts()).unwrap_err();
        assert!(e.to_string().contains("vms[0] (M1).name"), "{e}");
        s.name = "m1".into();
        s.storage = Some("x".into());
        let e = plan_cluster(&[s.clone()], &state(), &opts()).unwrap_err();
        assert!(e.to_string().contains(".storage"), "{e}");
        let e = plan_cluster(
            &[spec("a", "pve1", 201, 9000), spec("b", "pve1", 201, 9000)],
            &state(),
            &opts(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("used twice"), "{e}");
    }

    #[test]
    fn prune_only_owned() {
        let mut o = opts();
        o.prune = true;
        let mut st = state();
        let mut old = converged(&spec("w9", "pve1", 299, 9000), &o);
        old.status = "stopped".into();
        st.vms.insert(299, old);
        st.vms.insert(
            300,
            ObservedVm {
                vmid: 300,
                kind: "qemu".into(),
                node: "pve1".into(),
                name: "other".into(),
                ..ObservedVm::default()
            },
        );
        let plan = plan_cluster(&[], &st, &o).unwrap();
        assert_eq!(plan.prune.len(), 1);
        assert_eq!(plan.prune[0].vmid, 299);
        o.prune = false;
        assert!(plan_cluster(&[], &st, &o).unwrap().is_empty());
    }

    #[test]
    fn config_equivalences() {
        assert_eq!(config_change("memory", "4096", Some("current=4096")), None);
        assert_eq!(
            config_change("agent", "1", Some("enabled=1,fstrim_cloned_disks=1")),
            None
        );
        assert_eq!(
            config_change("tags", "a;hakube-demo", Some("hakube-demo;a")),
            None
        );
        assert_eq!(
            config_change(
                "net0",
                "virtio,bridge=vmbr1",
                Some("virtio=BC:24:11:00:00:01,bridge=vmbr0")
            ),
            Some("virtio=BC:24:11:00:00:01,bridge=vmbr1".into())
        );
        assert_eq!(
            config_change(
                "net0",
                "virtio,bridge=vmbr0",
                Some("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1")
            ),
            None
        );
        assert_eq!(config_change("cores", "2", None), Some("2".into()));
    }
}
