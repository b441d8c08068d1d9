//! The effectful part of provisioning: observe the cluster, act, re-observe.

use core::fmt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{Instrument, info, warn};

use super::plan::{ClusterState, ObservedVm, Plan, plan_cluster, plan_vm, validate_specs};
use super::{Action, Event, Phase, ProvisionOptions, VmSpec};
use crate::api::{HaRuleSpec, ResourceType, VmConfig, primary_address};
use crate::wire::{Params, segment};
use crate::{Client, CloneOptions, Error, Retry};

/// What happened to one VM.
#[derive(Debug)]
#[non_exhaustive]
pub struct VmOutcome {
    /// Name.
    pub name: String,
    /// VMID.
    pub vmid: u32,
    /// Node.
    pub node: String,
    /// Steps done, in order.
    pub done: Vec<String>,
    /// The guest agent's address, when waited for.
    pub address: Option<IpAddr>,
    /// The failure, if any.
    pub error: Option<Error>,
    /// Seconds spent on this VM.
    pub seconds: f64,
}

/// The result of [`Provisioner::apply`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Report {
    /// Per VM, in spec order.
    pub vms: Vec<VmOutcome>,
    /// Cluster-level steps done.
    pub cluster: Vec<String>,
    /// Cluster-level failures.
    pub cluster_errors: Vec<Error>,
    /// Owned VMs deleted (pruning).
    pub pruned: Vec<String>,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl Report {
    /// True if every VM and cluster step succeeded.
    pub fn is_success(&self) -> bool {
        self.cluster_errors.is_empty() && self.vms.iter().all(|v| v.error.is_none())
    }

    /// Number of mutating steps done.
    pub fn changes(&self) -> usize {
        self.cluster.len()
            + self.pruned.len()
            + self.vms.iter().map(|v| v.done.len()).sum::<usize>()
    }

    /// `Err(Error::Provision)` listing the failures, or `Ok(self)`.
    pub fn into_result(self) -> Result<Self, Error> {
        if self.is_success() {
            return Ok(self);
        }
        let mut failures: Vec<(String, Error)> = Vec::new();
        let mut me = self;
        for e in me.cluster_errors.drain(..) {
            failures.push(("cluster".into(), e));
        }
        for v in &mut me.vms {
            if let Some(e) = v.error.take() {
                failures.push((v.name.clone(), e));
            }
        }
        Err(Error::Provision { failures })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<20} {:>6} {:<10} {:<7} {:<16} STEPS",
            "VM", "VMID", "NODE", "RESULT", "ADDRESS"
        )?;
        for v in &self.vms {
            let result = if v.error.is_some() {
                "FAILED"
            } else if v.done.is_empty() {
                "ok"
            } else {
                "changed"
            };
            let addr = v.address.map_or_else(|| "-".to_owned(), |a| a.to_string());
            let steps = if v.done.is_empty() {
                "-".to_owned()
            } else {
                v.done.join(", ")
            };
            writeln!(
                f,
                "{:<20} {:>6} {:<10} {:<7} {:<16} {steps}",
                v.name, v.vmid, v.node, result, addr
            )?;
        }
        for c in &self.cluster {
            writeln!(f, "cluster: {c}")?;
        }
        for p in &self.pruned {
            writeln!(f, "pruned: {p}")?;
        }
        for v in &self.vms {
            if let Some(e) = &v.error {
                writeln!(f, "error [{}]: {e}", v.name)?;
            }
        }
        for e in &self.cluster_errors {
            writeln!(f, "error [cluster]: {e}")?;
        }
        writeln!(f, "{} change(s) in {:.2}s", self.changes(), self.seconds)
    }
}

/// A VM's effective config and its active task UPIDs.
type VmDetails = (VmConfig, Vec<String>);

/// Runs plans against a cluster.
pub struct Provisioner {
    client: Client,
    opts: ProvisionOptions,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// The last `/cluster/resources` listing and when its request was sent; shared by
    /// the VMs' re-observations (see [`Provisioner::resources_since`]).
    listing: tokio::sync::Mutex<Option<(Instant, Arc<Vec<crate::Resource>>)>>,
}

impl fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provisioner")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn observed_from(r: crate::Resource) -> Option<ObservedVm> {
    let vmid = u32::try_from(r.vmid?).ok()?;
    Some(ObservedVm {
        vmid,
        kind: r.kind.clone(),
        node: r.node.clone().unwrap_or_default(),
        name: r.name.clone().unwrap_or_default(),
        status: r.status.clone().unwrap_or_default(),
        template: r.template.unwrap_or(false),
        lock: r.lock.clone().filter(|l| !l.is_empty()),
        tags: r.tag_list(),
        pool: r.pool.clone(),
        config: None,
        active_tasks: Vec::new(),
    })
}

/// Whether the rest of a VM's plan still holds after `action` succeeded, so the next step
/// can follow without observing the VM again.
///
/// These steps change only what they were planned to change, and nothing that planned the
/// steps after them: a config write (synchronous in PVE, pending on a running VM, and the
/// plan reads configs with pending changes applied), joining a pool, growing a disk to the
/// planned size, a start (its task has ended well, or found the VM running) and an HA
/// resource. A clone is not among them: the new VM's config (MAC addresses, disk sizes) is
/// only known once it is read, and the config diff is planned from it. Nor a migration or a
/// wait: they end with state another task made.
fn keeps_plan(action: &Action) -> bool {
    matches!(
        action,
        Action::Configure { .. }
            | Action::AddToPool { .. }
            | Action::Resize { .. }
            | Action::Start
            | Action::HaResource { .. }
    )
}

impl Provisioner {
    /// A provisioner using `client`.
    pub fn new(client: Client, opts: ProvisionOptions) -> Self {
        Self {
            client,
            opts,
            limits: Mutex::new(HashMap::new()),
            listing: tokio::sync::Mutex::new(None),
        }
    }

    /// A `/cluster/resources` listing requested no earlier than `since`. Concurrent
    /// re-observations share one request: who finds a listing fetched after its own
    /// step ended uses it; otherwise it fetches one (others queue behind the lock and
    /// reuse it). 500 VMs re-observing at once cost a few listings, not 500.
    async fn resources_since(&self, since: Instant) -> Result<Arc<Vec<crate::Resource>>, Error> {
        let mut guard = self.listing.lock().await;
        if let Some((at, list)) = guard.as_ref()
            && *at >= since
        {
            return Ok(Arc::clone(list));
        }
        let at = Instant::now();
        let list = Arc::new(
            self.client
                .cluster_resources(Some(ResourceType::Vm))
                .await?,
        );
        *guard = Some((at, Arc::clone(&list)));
        Ok(list)
    }

    fn emit(&self, vm: &str, step: &str, phase: Phase) {
        if let Some(p) = &self.opts.progress {
            p(&Event {
                vm: vm.to_owned(),
                step: step.to_owned(),
                phase,
            });
        }
    }

    async fn permit(&self, node: &str) -> OwnedSemaphorePermit {
        let sem = {
            let mut map = self
                .limits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(
                map.entry(node.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.opts.tasks_per_node.max(1)))),
            )
        };
        #[allow(clippy::expect_used, reason = "the semaphore is never closed")]
        sem.acquire_owned().await.expect("semaphore never closed")
    }

    /// The VM's config with pending changes applied (what the next start uses).
    async fn effective_config(&self, node: &str, vmid: u32) -> Result<VmConfig, Error> {
        let pending = self.client.qemu_pending(node, vmid).await?;
        let mut map = BTreeMap::new();
        for e in pending {
            if e.delete == Some(true) {
                continue;
            }
            if let Some(v) = e.pending.or(e.value).filter(|v| !v.is_null()) {
                map.insert(e.key, v);
            }
        }
        Ok(VmConfig(map))
    }

    /// The effective config and (for wanted VMs) the active tasks of a VM, the tasks from
    /// a listing of the node's active tasks requested no earlier than `since` and shared
    /// with the other VMs of the node that look at about the same time.
    async fn vm_details(
        &self,
        node: &str,
        vmid: u32,
        tasks: bool,
        since: Instant,
    ) -> Result<(VmConfig, Vec<String>), Error> {
        if !tasks {
            return Ok((self.effective_config(node, vmid).await?, Vec::new()));
        }
        // Both at once: the config and the node's shared task listing.
        tokio::try_join!(
            self.effective_config(node, vmid),
            self.client
                .guest_active_tasks_since(node, vmid, tokio::time::Instant::from_std(since)),
        )
    }

    /// Reads everything a plan needs (GET requests only).
    pub async fn observe(&self, specs: &[VmSpec]) -> Result<ClusterState, Error> {
        let c = &self.client;
        let version = c.cached_version().await?;
        let mut state = ClusterState {
            ha_rules_supported: version.has_ha_rules(),
            ..ClusterState::default()
        };
        for n in c.nodes().await? {
            state.nodes.insert(n.node.clone(), n.status.clone());
        }
        for r in c.cluster_resources(Some(ResourceType::Vm)).await? {
            if let Some(vm) = observed_from(r) {
                state.vms.insert(vm.vmid, vm);
            }
        }
        // Configs: wanted VMs that exist, and templates still to be cloned from.
        let mut want: BTreeSet<u32> = BTreeSet::new();
        for s in specs {
            if state.vms.contains_key(&s.vmid) {
                want.insert(s.vmid);
            } else {
                want.insert(s.template);
            }
        }
        let targets: Vec<(u32, String)> = want
            .into_iter()
            .filter_map(|id| {
                state
                    .vms
                    .get(&id)
                    .filter(|v| v.kind == "qemu")
                    .map(|v| (id, v.node.clone()))
            })
            .filter(|(_, node)| state.nodes.get(node).is_some_and(|s| s == "online"))
            .collect();
        let wanted: BTreeSet<u32> = specs.iter().map(|s| s.vmid).collect();
        let since = Instant::now();
        let configs: Vec<(u32, Result<VmDetails, Error>)> = futures::stream::iter(targets)
            .map(|(id, node)| {
                let wanted = wanted.contains(&id);
                async move { (id, self.vm_details(&node, id, wanted, since).await) }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (id, cfg) in configs {
            match cfg {
                Ok((cfg, tasks)) => {
                    if let Some(v) = state.vms.get_mut(&id) {
                        v.config = Some(cfg);
                        v.active_tasks = tasks;
                    }
                }
                // Gone meanwhile (a failed clone cleaned up): forget it.
                Err(e) if e.is_not_found() => {
                    state.vms.remove(&id);
                }
                Err(e) => return Err(e),
            }
        }
        if specs.iter().any(|s| !state.vms.contains_key(&s.vmid)) {
            for s in c.storages().await? {
                if s.shared == Some(true) {
                    state.shared_storages.insert(s.storage);
                }
            }
        }
        if specs.iter().any(|s| s.pool.is_some()) {
            state.pools = c.pools().await?.into_iter().map(|p| p.poolid).collect();
        }
        if specs.iter().any(|s| s.ha) {
            state.ha_resources = c.ha_resources().await?.into_iter().map(|r| r.sid).collect();
            if state.ha_rules_supported {
                state.ha_rules = c
                    .ha_rules()
                    .await?
                    .into_iter()
                    .map(|r| (r.rule.clone(), r))
                    .collect();
            } else {
                state.ha_groups = c.ha_groups().await?.into_iter().map(|g| g.group).collect();
            }
        }
        Ok(state)
    }

    /// The plan for `specs`: what [`Provisioner::apply`] would do now. Makes GET requests only.
    pub async fn plan(&self, specs: &[VmSpec]) -> Result<Plan, Error> {
        validate_specs(specs, &self.opts)?;
        let state = self.observe(specs).await?;
        plan_cluster(specs, &state, &self.opts)
    }

    /// Re-observes one VM.
    async fn observe_vm(&self, vmid: u32) -> Result<Option<ObservedVm>, Error> {
        self.observe_vm_on(vmid, None).await
    }

    /// Re-observes one VM expected on `node`: the cluster listing and the VM's details on
    /// that node are read at once (one round trip instead of two); when the listing puts
    /// the VM elsewhere the details are read again there.
    async fn observe_vm_on(
        &self,
        vmid: u32,
        node: Option<&str>,
    ) -> Result<Option<ObservedVm>, Error> {
        let since = Instant::now();
        let find = |list: &[crate::Resource]| {
            list.iter()
                .find(|r| r.vmid == Some(u64::from(vmid)))
                .cloned()
                .and_then(observed_from)
        };
        let (found, guessed) = match node {
            Some(node) => {
                let (list, details) = tokio::join!(
                    self.resources_since(since),
                    self.vm_details(node, vmid, true, since)
                );
                (find(&list?), Some((node, details)))
            }
            None => (find(&self.resources_since(since).await?), None),
        };
        let Some(mut vm) = found else { return Ok(None) };
        if vm.kind == "qemu" {
            let details = match guessed {
                Some((node, details)) if node == vm.node => details,
                _ => self.vm_details(&vm.node, vmid, true, since).await,
            };
            match details {
                Ok((c, t)) => {
                    vm.config = Some(c);
                    vm.active_tasks = t;
                }
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(vm))
    }

    /// Makes the cluster match `specs`. Checks everything first (a bad spec, an offline
    /// node, a missing template or a foreign VM on a wanted VMID is an error before any
    /// change); then drives each VM, in parallel within the per-node task limit, and
    /// re-observes it after each step whose outcome the plan could not foresee (a clone,
    /// a migration, a wait for someone else's task or lock, any failure). Per-VM failures
    /// are in the [`Report`].
    pub async fn apply(&self, specs: &[VmSpec]) -> Result<Report, Error> {
        let started = Instant::now();
        validate_specs(specs, &self.opts)?;
        let state = self.observe(specs).await?;
        let plan = plan_cluster(specs, &state, &self.opts)?;
        let mut report = Report::default();
        for a in &plan.before {
            self.emit("cluster", a.step(), Phase::Started);
            match self.cluster_action_observed(a).await {
                Ok(()) => {
                    self.emit("cluster", a.step(), Phase::Done);
                    report.cluster.push(a.to_string());
                }
                Err(e) => {
                    self.emit("cluster", a.step(), Phase::Failed(e.to_string()));
                    report.cluster_errors.push(e);
                }
            }
        }
        if !report.cluster_errors.is_empty() {
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        let state = Arc::new(state);
        let runs = specs
            .iter()
            .enumerate()
            .zip(plan.vms.iter())
            .map(|((i, spec), vp)| {
                let state = Arc::clone(&state);
                let span = tracing::info_span!("vm", name = %spec.name, vmid = spec.vmid, node = %spec.node);
                async move { self.reconcile_vm(spec, i, &state, vp.actions.clone()).await }
                    .instrument(span)
            });
        report.vms = futures::future::join_all(runs).await;
        if report.vms.iter().all(|v| v.error.is_none()) {
            for a in &plan.after {
                self.emit("cluster", a.step(), Phase::Started);
                match self.cluster_action_observed(a).await {
                    Ok(()) => {
                        self.emit("cluster", a.step(), Phase::Done);
                        report.cluster.push(a.to_string());
                    }
                    Err(e) => {
                        self.emit("cluster", a.step(), Phase::Failed(e.to_string()));
                        report.cluster_errors.push(e);
                    }
                }
            }
            for p in &plan.prune {
                match self.prune(p.vmid, &p.actions).await {
                    Ok(()) => report.pruned.push(format!("{} ({})", p.name, p.vmid)),
                    Err(e) => report.cluster_errors.push(e),
                }
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// A cluster action; after a failure that may not have been final (a lost answer, a
    /// transient error) the state is read again and the action repeated only if not done.
    async fn cluster_action_observed(&self, a: &Action) -> Result<(), Error> {
        let max = self.opts.step_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.cluster_action(a).await {
                Ok(()) => return Ok(()),
                Err(e) if e.retry() != Retry::Never && attempt < max => {
                    warn!(action = %a, error = %e, "cluster step failed; re-observing");
                    self.emit("cluster", a.step(), Phase::Retrying(e.to_string()));
                    if self.cluster_action_done(a).await.unwrap_or(false) {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// True if the cluster already shows the action's result.
    async fn cluster_action_done(&self, a: &Action) -> Result<bool, Error> {
        let c = &self.client;
        Ok(match a {
            Action::CreatePool { pool } => c.pools().await?.iter().any(|p| &p.poolid == pool),
            Action::HaGroup { group, .. } => c.ha_groups().await?.iter().any(|g| &g.group == group),
            Action::HaRule {
                rule, resources, ..
            } => c.ha_rules().await?.iter().any(|r| {
                let mut got: Vec<&str> = r.resources.split(',').map(str::trim).collect();
                got.sort_unstable();
                &r.rule == rule
                    && r.affinity.as_deref() == Some("negative")
                    && got == resources.iter().map(String::as_str).collect::<Vec<_>>()
            }),
            _ => false,
        })
    }

    async fn cluster_action(&self, a: &Action) -> Result<(), Error> {
        let c = &self.client;
        match a {
            Action::CreatePool { pool } => match c.create_pool(pool, Some("hakube")).await {
                Err(e) if e.to_string().contains("already exists") => Ok(()),
                r => r,
            },
            Action::HaGroup { group, nodes } => c.create_ha_group(group, nodes, false).await,
            Action::HaRule {
                rule,
                resources,
                update: false,
            } => {
                c.create_ha_rule(&HaRuleSpec::ResourceAffinity {
                    rule: rule.clone(),
                    resources: resources.clone(),
                    negative: true,
                    comment: Some(format!("hakube {}: keep apart", self.opts.owner_tag)),
                })
                .await
            }
            Action::HaRule {
                rule,
                resources,
                update: true,
            } => {
                let _: Value = c
                    .put(
                        &format!("/cluster/ha/rules/{}", segment(rule)),
                        &Params::new()
                            .set("type", "resource-affinity")
                            .set("resources", resources.join(","))
                            .set("affinity", "negative"),
                    )
                    .await?;
                Ok(())
            }
            other => Err(Error::Invalid {
                field: "plan".into(),
                reason: format!("not a cluster action: {other}"),
            }),
        }
    }

    async fn prune(&self, vmid: u32, actions: &[Action]) -> Result<(), Error> {
        for a in actions {
            if let Action::Delete { node, running } = a {
                let _p = self.permit(node).await;
                if *running {
                    let upid = self.client.qemu_stop(node, vmid).await?;
                    self.client
                        .wait_task_timeout(&upid, self.opts.task_timeout)
                        .await?;
                }
                // The provisioner's VMs are its own: their stray disks go with them.
                let opts = crate::DeleteOptions::default()
                    .purge(true)
                    .destroy_unreferenced_disks(true);
                let upid = self.client.qemu_delete(node, vmid, &opts).await?;
                self.client
                    .wait_task_timeout(&upid, self.opts.task_timeout)
                    .await?;
            }
        }
        Ok(())
    }

    async fn reconcile_vm(
        &self,
        spec: &VmSpec,
        i: usize,
        state: &ClusterState,
        first: Vec<Action>,
    ) -> VmOutcome {
        let started = Instant::now();
        let mut out = VmOutcome {
            name: spec.name.clone(),
            vmid: spec.vmid,
            node: spec.node.clone(),
            done: Vec::new(),
            address: None,
            error: None,
            seconds: 0.0,
        };
        let mut actions = first;
        let mut local = state.clone();
        let mut attempts: BTreeMap<&'static str, u32> = BTreeMap::new();
        // The first plan comes from the run's observation; afterwards the VM is observed
        // again unless the step just done left the rest of the plan as it was.
        let mut observe = false;
        let result: Result<(), Error> = async {
            for _round in 0..32 {
                if observe {
                    match self.observe_vm_on(spec.vmid, Some(&spec.node)).await? {
                        Some(vm) => {
                            local.vms.insert(spec.vmid, vm);
                        }
                        None => {
                            local.vms.remove(&spec.vmid);
                        }
                    }
                    actions = plan_vm(spec, i, &local, &self.opts)?;
                }
                observe = true;
                let Some(action) = actions.first().cloned() else {
                    return Ok(());
                };
                let step = action.step();
                let n = attempts.entry(step).or_insert(0);
                *n += 1;
                if *n
                    > self.opts.step_attempts.max(1)
                        + u32::from(matches!(step, "wait-unlock" | "wait-tasks")) * 1000
                {
                    return Err(Error::Invalid {
                        field: format!("{} step {step}", spec.name),
                        reason: format!("still needed after {} attempts", self.opts.step_attempts),
                    });
                }
                self.emit(&spec.name, step, Phase::Started);
                match self.vm_action(spec, &action).await {
                    Ok(()) => {
                        self.emit(&spec.name, step, Phase::Done);
                        if !matches!(action, Action::WaitUnlock { .. } | Action::WaitTasks { .. }) {
                            out.done.push(step.to_owned());
                        }
                        if let Action::HaResource { .. } = action {
                            local.ha_resources.insert(format!("vm:{}", spec.vmid));
                        }
                        if keeps_plan(&action) {
                            actions.remove(0);
                            if actions.is_empty() {
                                return Ok(());
                            }
                            observe = false;
                        }
                    }
                    Err(e) => {
                        let again = match e.retry() {
                            Retry::Safe | Retry::AfterObserve => {
                                e.is_lock_timeout() || !matches!(e, Error::Task { .. })
                            }
                            Retry::Never => false,
                        };
                        if again && *attempts.get(step).unwrap_or(&0) < self.opts.step_attempts {
                            warn!(vm = %spec.name, step, error = %e, "step failed; re-observing");
                            self.emit(&spec.name, step, Phase::Retrying(e.to_string()));
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                        self.emit(&spec.name, step, Phase::Failed(e.to_string()));
                        return Err(e);
                    }
                }
            }
            Err(Error::Invalid {
                field: spec.name.clone(),
                reason: "did not converge in 32 steps".into(),
            })
        }
        .await;
        if let Err(e) = result {
            out.error = Some(e);
        } else if spec.agent
            && spec.start
            && let Some(timeout) = self.opts.agent_timeout
        {
            self.emit(&spec.name, "agent", Phase::Started);
            match self.wait_agent(spec, timeout).await {
                Ok(a) => {
                    out.address = Some(a);
                    self.emit(&spec.name, "agent", Phase::Done);
                }
                Err(e) => {
                    self.emit(&spec.name, "agent", Phase::Failed(e.to_string()));
                    out.error = Some(e);
                }
            }
        }
        out.seconds = started.elapsed().as_secs_f64();
        info!(vm = %spec.name, steps = ?out.done, ok = out.error.is_none(), "vm reconciled");
        out
    }

    async fn wait_agent(&self, spec: &VmSpec, timeout: Duration) -> Result<IpAddr, Error> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            if let Ok(ifs) = self
                .client
                .agent_network_interfaces(&spec.node, spec.vmid)
                .await
                && let Some(a) = primary_address(&ifs)
            {
                return Ok(a);
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: format!("guest agent address of {} ({})", spec.name, spec.vmid),
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(Duration::from_secs(3));
        }
    }

    async fn vm_action(&self, spec: &VmSpec, a: &Action) -> Result<(), Error> {
        let c = &self.client;
        let vmid = spec.vmid;
        let node = spec.node.as_str();
        let wait = |upid| async move {
            c.wait_task_timeout(&upid, self.opts.task_timeout)
                .await
                .map(|_| ())
        };
        match a {
            Action::Clone {
                template,
                source_node,
                target,
                full,
                storage,
                pool,
            } => {
                let _p = self.permit(source_node).await;
                let opts = CloneOptions {
                    name: Some(spec.name.clone()),
                    full: Some(*full),
                    storage: storage.clone(),
                    target: target.clone(),
                    pool: pool.clone(),
                    // The ownership marker, written by the same call that creates the VM.
                    description: Some(self.opts.owner_marker()),
                };
                let upid = c.qemu_clone(source_node, *template, vmid, &opts).await?;
                wait(upid).await
            }
            Action::WaitUnlock { lock } => {
                let started = Instant::now();
                let mut delay = Duration::from_millis(50);
                loop {
                    match self.observe_vm(vmid).await? {
                        Some(vm) if vm.lock.is_some() => {}
                        _ => return Ok(()),
                    }
                    if started.elapsed() > self.opts.task_timeout {
                        return Err(Error::Timeout {
                            what: format!("lock '{lock}' on VM {vmid} ({})", spec.name),
                            seconds: started.elapsed().as_secs_f64(),
                        });
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 3 / 2).min(Duration::from_secs(2));
                }
            }
            Action::WaitTasks { upids } => {
                for u in upids {
                    let Ok(upid) = u.parse::<crate::Upid>() else {
                        continue;
                    };
                    // Its outcome does not matter here: the VM is observed again next.
                    if let Err(e) = c.wait_task_timeout(&upid, self.opts.task_timeout).await {
                        warn!(vm = %spec.name, upid = %upid, error = %e, "earlier task ended badly");
                    }
                }
                Ok(())
            }
            Action::Migrate { from } => {
                let _p = self.permit(from).await;
                let running = self
                    .observe_vm(vmid)
                    .await?
                    .is_some_and(|v| v.status == "running");
                let upid = c.qemu_migrate(from, vmid, node, running, true).await?;
                wait(upid).await
            }
            Action::Configure { set } => {
                let _p = self.permit(node).await;
                let mut p = Params::new();
                for (k, v) in set {
                    p.insert(k, v.as_str());
                }
                c.qemu_set_config(node, vmid, &p).await
            }
            Action::AddToPool { pool } => {
                let _: Value = c
                    .put(
                        &format!("/pools/{}", segment(pool)),
                        &Params::new().set("vms", vmid),
                    )
                    .await?;
                Ok(())
            }
            Action::Resize { disk, gib } => {
                let _p = self.permit(node).await;
                match c.qemu_resize(node, vmid, disk, &format!("{gib}G")).await? {
                    Some(upid) => wait(upid).await,
                    None => Ok(()),
                }
            }
            Action::Start => {
                let _p = self.permit(node).await;
                let upid = c.qemu_start(node, vmid).await?;
                match wait(upid).await {
                    // Started meanwhile (by a task of an earlier run): the goal is met.
                    Err(Error::Task { exitstatus, .. })
                        if exitstatus.contains("already running") =>
                    {
                        Ok(())
                    }
                    r => r,
                }
            }
            Action::HaResource { group } => {
                match c
                    .create_ha_resource(&format!("vm:{vmid}"), "started", group.as_deref())
                    .await
                {
                    Err(e) if e.to_string().contains("already defined") => Ok(()),
                    r => r,
                }
            }
            other => Err(Error::Invalid {
                field: "plan".into(),
                reason: format!("not a VM action: {other}"),
            }),
        }
    }
}
