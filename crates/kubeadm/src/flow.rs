//! The HA bootstrap flow on top of [`hakube_remote::RemoteExec`].
//!
//! Order (each step waits for the one before):
//! 1. [`BootstrapHooks::load_balancers`]: the LB layer and the VIP come up first.
//! 2. `kubeadm init --config F --upload-certs` on the first master (the endpoint is the VIP).
//! 3. The CA pin is computed from the first master's `/etc/kubernetes/pki/ca.crt`, and the join
//!    configurations are rendered with it.
//! 4. [`BootstrapHooks::cni`]: the CNI is applied.
//! 5. Other masters join one at a time (or all at once with
//!    [`BootstrapOptions::parallel_control_plane_joins`]), through the VIP.
//! 6. Workers join all at once (bounded by [`BootstrapOptions::worker_concurrency`]).
//! 7. The flow waits until every node is Ready, then applies the labels the kubelet may not set.
//!
//! Re-runs: a node with `/etc/kubernetes/kubelet.conf` is skipped. Before joins, the bootstrap
//! token (24 h) and the uploaded certificates (2 h) are checked and renewed with the same
//! pre-generated values (`kubeadm token create <token>`, `kubeadm init phase upload-certs
//! --upload-certs --certificate-key <key>`), so rendered join configurations stay valid.
//! A failed init/join is reset (`kubeadm reset -f`) and retried once; a second failure is
//! reported with the host. A worker's failure does not stop the other workers.
//!
//! Files: the flow renders what each node receives ([`crate::render_node`]); files a plan
//! already holds ([`Bootstrap::planned_files`]) are pushed in place of that render, but for a
//! joining node's kubeadm configuration, which needs the CA pin read after init.

use core::fmt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use hakube_host_state::File;
use hakube_remote::{Command, RemoteExec, Secret, push_file};
use tokio::sync::Semaphore;

use crate::HookError;
use crate::error::{Error, Result};
use crate::input::ClusterInput;
use crate::parse::{parse_get_nodes, parse_token_list, parse_upload_certs_key};
use crate::render::{
    ADMIN_CONF_PATH, CA_CERT_PATH, KUBEADM_CONFIG_PATH, KUBELET_CONF_PATH, NodeRender, NodeRole,
    RESET_CONFIG_PATH, render_node,
};
use crate::secret::{CaCertHash, ClusterSecrets};

/// A shared remote host handle.
pub type Host = Arc<dyn RemoteExec>;

/// Knobs of the flow. `Default` gives the safe choices.
#[derive(Clone, Debug)]
pub struct BootstrapOptions {
    /// Join masters 2..n at the same time (opt-in; etcd admits one learner at a time and
    /// parallel joins have a history of races).
    pub parallel_control_plane_joins: bool,
    /// How many workers join at once.
    pub worker_concurrency: usize,
    /// Timeout of each `kubeadm init`/`join`/`reset`.
    pub kubeadm_timeout: Duration,
    /// Timeout of short commands (`kubectl`, `kubeadm token ...`).
    pub command_timeout: Duration,
    /// How long to wait for every node to be Ready.
    pub ready_timeout: Duration,
    /// Interval between Ready polls.
    pub ready_poll: Duration,
    /// Lifetime of the uploaded certificates (kubeadm deletes them after 2 h).
    pub certificate_key_ttl: Duration,
    /// Renew a token or the uploaded certificates when less than this is left.
    pub renew_margin: Duration,
    /// Paths removed after `kubeadm reset` (it leaves the CNI config and kubeconfigs behind).
    pub reset_cleanup: Vec<String>,
    /// Wait for every node to be Ready at the end. Nodes stay NotReady until a CNI runs, so
    /// turn this off when the CNI is installed later (the report then says Ready was not
    /// awaited).
    pub wait_for_ready: bool,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self {
            parallel_control_plane_joins: false,
            worker_concurrency: 32,
            kubeadm_timeout: Duration::from_secs(15 * 60),
            command_timeout: Duration::from_secs(120),
            ready_timeout: Duration::from_secs(15 * 60),
            ready_poll: Duration::from_secs(5),
            certificate_key_ttl: Duration::from_secs(2 * 3600),
            renew_margin: Duration::from_secs(15 * 60),
            reset_cleanup: vec!["/etc/cni/net.d".into(), "/root/.kube/config".into()],
            wait_for_ready: true,
        }
    }
}

/// Steps the flow does not own: the load balancers before init and the CNI after it.
#[async_trait]
pub trait BootstrapHooks: Send + Sync {
    /// Bring the load balancers and the VIP up. Called first, on every run.
    ///
    /// # Errors
    /// Any error; the flow stops with [`Error::Hook`], whose source it is.
    async fn load_balancers(&self) -> core::result::Result<(), HookError> {
        Ok(())
    }

    /// Apply the CNI, e.g. `kubectl apply` on the first master. Called after init, on every run.
    ///
    /// # Errors
    /// Any error; the flow stops with [`Error::Hook`], whose source it is.
    async fn cni(&self, first_master: &dyn RemoteExec) -> core::result::Result<(), HookError> {
        let _ = first_master;
        Ok(())
    }

    /// Whether [`BootstrapHooks::cni`] applies a CNI. When false the flow reports the CNI
    /// step as skipped instead of done.
    fn applies_cni(&self) -> bool {
        true
    }
}

/// Hooks that do nothing (the load balancers and the CNI are handled elsewhere).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl BootstrapHooks for NoHooks {
    fn applies_cni(&self) -> bool {
        false
    }
}

/// A source of wall-clock time (swappable in tests to exercise expiry).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// What happened on one node in one step, for progress output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A step started.
    Started,
    /// A step finished.
    Done,
    /// A step was skipped (with the reason).
    Skipped(String),
    /// A step failed and will be retried after a reset.
    Retrying(String),
    /// A step failed for good.
    Failed(String),
}

/// Receives per-node progress. Implementations must be cheap and must not block.
pub trait BootstrapProgress: Send + Sync {
    /// `node` is in `step` (`init`, `join`, `ready`, ...).
    fn event(&self, node: &str, step: &'static str, event: &ProgressEvent);
}

/// Progress that goes to `tracing` only.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingProgress;

impl BootstrapProgress for TracingProgress {
    fn event(&self, node: &str, step: &'static str, event: &ProgressEvent) {
        tracing::info!(node, step, ?event, "bootstrap");
    }
}

/// How a node ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeOutcome {
    /// `kubeadm init` ran here.
    Initialized,
    /// `kubeadm join` ran here.
    Joined,
    /// The node had joined before; nothing was done.
    AlreadyMember,
    /// The node failed (message names the host and the last error).
    Failed(String),
    /// Not attempted because an earlier control-plane join failed.
    NotAttempted,
}

/// One node's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReport {
    /// Node name.
    pub node: String,
    /// Role.
    pub role: NodeRole,
    /// Outcome.
    pub outcome: NodeOutcome,
    /// Attempts of init/join made in this run (0 when skipped).
    pub attempts: u32,
    /// Time spent in init/join (including a reset and retry).
    pub duration: Duration,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct BootstrapReport {
    /// Per node, masters first.
    pub nodes: Vec<NodeReport>,
    /// Renewals done before joins (`token`, `certificate-key`).
    pub renewed: Vec<&'static str>,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Init + the control-plane joins in sequence + the slowest worker join: the shortest the
    /// run could take with this ordering, if everything else were free.
    pub critical_path: Duration,
    /// Every node of the cluster joined and was Ready at the end (false when any node failed
    /// or was not attempted, and when Ready was not awaited).
    pub all_ready: bool,
    /// Every node that is a member (initialised, joined, or already one) was Ready at the end.
    pub members_ready: bool,
    /// Whether the run waited for Ready ([`BootstrapOptions::wait_for_ready`]).
    pub ready_awaited: bool,
}

impl BootstrapReport {
    /// The report of a run from its node reports (masters first) and what the run saw.
    fn summarise(
        nodes: Vec<NodeReport>,
        renewed: Vec<&'static str>,
        wall: Duration,
        cp_failed: bool,
        members_ready: bool,
        ready_awaited: bool,
    ) -> Self {
        let cp: Duration = nodes
            .iter()
            .filter(|r| r.role.is_control_plane())
            .map(|r| r.duration)
            .sum();
        let slowest_worker = nodes
            .iter()
            .filter(|r| r.role == NodeRole::Worker)
            .map(|r| r.duration)
            .max()
            .unwrap_or_default();
        let every_node_joined = !cp_failed
            && nodes.iter().all(|r| {
                !matches!(
                    r.outcome,
                    NodeOutcome::Failed(_) | NodeOutcome::NotAttempted
                )
            });
        Self {
            nodes,
            renewed,
            wall,
            critical_path: cp + slowest_worker,
            all_ready: members_ready && every_node_joined,
            members_ready,
            ready_awaited,
        }
    }

    /// Nodes that failed, with their messages.
    #[must_use]
    pub fn failures(&self) -> Vec<(&str, &str)> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.outcome {
                NodeOutcome::Failed(m) => Some((n.node.as_str(), m.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Whether anything was changed (init or join ran somewhere, or a secret was renewed).
    #[must_use]
    pub fn changed(&self) -> bool {
        !self.renewed.is_empty()
            || self
                .nodes
                .iter()
                .any(|n| matches!(n.outcome, NodeOutcome::Initialized | NodeOutcome::Joined))
    }
}

impl fmt::Display for BootstrapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.nodes {
            let what = match &n.outcome {
                NodeOutcome::Initialized => "initialized".to_owned(),
                NodeOutcome::Joined => "joined".to_owned(),
                NodeOutcome::AlreadyMember => "already a member".to_owned(),
                NodeOutcome::NotAttempted => "not attempted".to_owned(),
                NodeOutcome::Failed(m) => format!("FAILED: {m}"),
            };
            writeln!(
                f,
                "{:<16} {:<12} {:>7.1}s  {what}",
                n.node,
                format!("{:?}", n.role),
                n.duration.as_secs_f64()
            )?;
        }
        if !self.renewed.is_empty() {
            writeln!(f, "renewed: {}", self.renewed.join(", "))?;
        }
        write!(
            f,
            "wall {:.1}s, critical path {:.1}s, all Ready: {}",
            self.wall.as_secs_f64(),
            self.critical_path.as_secs_f64(),
            if self.ready_awaited {
                if self.all_ready { "yes" } else { "no" }
            } else {
                "not awaited"
            }
        )
    }
}

/// The bootstrap of one cluster. Build with [`Bootstrap::new`], adjust, then [`Bootstrap::run`].
pub struct Bootstrap {
    input: ClusterInput,
    secrets: ClusterSecrets,
    hosts: BTreeMap<String, Host>,
    options: BootstrapOptions,
    hooks: Arc<dyn BootstrapHooks>,
    planned: BTreeMap<String, Vec<File>>,
    clock: Arc<dyn Clock>,
    progress: Arc<dyn BootstrapProgress>,
}

impl fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bootstrap")
            .field("cluster", &self.input.cluster_name)
            .field("hosts", &self.hosts.keys().collect::<Vec<_>>())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The first master: where init runs, and where later commands (tokens, uploaded
/// certificates, Ready, labels) go.
struct First {
    name: String,
    host: Host,
}

/// What the steps after init share.
struct Shared {
    /// When certificates were last uploaded with our key, by this run.
    certs_uploaded_at: Mutex<Option<SystemTime>>,
    renewed: Mutex<Vec<&'static str>>,
    secrets: ClusterSecrets,
}

impl Bootstrap {
    /// A bootstrap of `input` with `secrets` on `hosts` (node name -> remote host).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the input does not validate, [`Error::MissingHost`] when a
    /// node has no host.
    pub fn new(
        input: ClusterInput,
        secrets: ClusterSecrets,
        hosts: BTreeMap<String, Host>,
    ) -> Result<Self> {
        input.validate()?;
        for n in input.node_names() {
            if !hosts.contains_key(n) {
                return Err(Error::MissingHost { node: n.to_owned() });
            }
        }
        Ok(Self {
            input,
            secrets,
            hosts,
            options: BootstrapOptions::default(),
            hooks: Arc::new(NoHooks),
            planned: BTreeMap::new(),
            clock: Arc::new(SystemClock),
            progress: Arc::new(TracingProgress),
        })
    }

    /// Sets the options.
    #[must_use]
    pub fn options(mut self, options: BootstrapOptions) -> Self {
        self.options = options;
        self
    }

    /// Files a plan already holds for the nodes (node name -> its files, e.g. a host plan's
    /// files read back from the plan tree). For every file the flow pushes to a node, the
    /// plan's file at the same path is pushed instead of the flow's own render, except a
    /// joining node's kubeadm configuration ([`KUBEADM_CONFIG_PATH`]): it carries the CA pin
    /// read in this run, which no plan can hold before init. Files at other paths are
    /// ignored; nodes without files here get the flow's render.
    #[must_use]
    pub fn planned_files(mut self, files: BTreeMap<String, Vec<File>>) -> Self {
        self.planned = files;
        self
    }

    /// Sets the hooks.
    #[must_use]
    pub fn hooks(mut self, hooks: Arc<dyn BootstrapHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Sets the clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the progress sink.
    #[must_use]
    pub fn progress(mut self, progress: Arc<dyn BootstrapProgress>) -> Self {
        self.progress = progress;
        self
    }

    fn host(&self, node: &str) -> &Host {
        // Checked in `new`.
        &self.hosts[node]
    }

    /// What `node` receives: the flow's render, with the plan's files in place of the
    /// rendered ones where [`Bootstrap::planned_files`] gave them.
    fn node_render(&self, node: &str, secrets: &ClusterSecrets) -> Result<NodeRender> {
        let mut render = render_node(&self.input, secrets, node)?;
        let Some(planned) = self.planned.get(node) else {
            return Ok(render);
        };
        for f in &mut render.files {
            if render.role != NodeRole::InitMaster && f.path == KUBEADM_CONFIG_PATH {
                continue;
            }
            let Some(p) = planned.iter().find(|p| p.path == f.path) else {
                continue;
            };
            f.clone_from(p);
        }
        Ok(render)
    }

    fn cmd(&self, program: &str, long: bool) -> Command {
        Command::new(program).sudo(true).timeout(if long {
            self.options.kubeadm_timeout
        } else {
            self.options.command_timeout
        })
    }

    /// Runs the flow. Node failures are in the report; the error is for failures that stop
    /// the whole flow (hooks, the first master, transport failures on the first master).
    ///
    /// # Errors
    /// [`Error::Hook`], [`Error::NodeFailed`] for the first master, [`Error::Remote`],
    /// [`Error::CaMismatch`], [`Error::CertificateKeyMismatch`].
    pub async fn run(&self) -> Result<BootstrapReport> {
        let started = Instant::now();
        let name = self.input.masters[0].name.clone();
        let first = First {
            host: Arc::clone(self.host(&name)),
            name,
        };
        self.load_balancers().await?;
        let (init_report, certs_uploaded_at) = self.init_first(&first).await?;
        let shared = Shared {
            certs_uploaded_at: Mutex::new(certs_uploaded_at),
            renewed: Mutex::new(Vec::new()),
            secrets: self.pin_ca(&first).await?,
        };
        self.apply_cni(&first).await?;
        let mut reports = vec![init_report];
        let cp_failed = if self.options.parallel_control_plane_joins {
            self.join_masters_parallel(&first, &shared, &mut reports)
                .await?
        } else {
            self.join_masters_serial(&first, &shared, &mut reports)
                .await?
        };
        self.join_workers(&first, &shared, &mut reports).await?;
        self.finish(started, &first, &shared, reports, cp_failed)
            .await
    }

    /// Step 1: the load balancers and the VIP, through the hook.
    async fn load_balancers(&self) -> Result<()> {
        self.progress
            .event("load-balancers", "hooks", &ProgressEvent::Started);
        self.hooks
            .load_balancers()
            .await
            .map_err(|source| Error::Hook {
                hook: "load_balancers",
                source,
            })?;
        self.progress
            .event("load-balancers", "hooks", &ProgressEvent::Done);
        Ok(())
    }

    /// Step 2: `kubeadm init` on the first master (skipped when it is a member). Returns its
    /// report and, when init ran, when the certificates were uploaded.
    async fn init_first(&self, first: &First) -> Result<(NodeReport, Option<SystemTime>)> {
        let render = self.node_render(&first.name, &self.secrets)?;
        let report = self
            .init_or_join(&first.name, &first.host, &render, true)
            .await;
        match &report.outcome {
            NodeOutcome::Failed(last) => Err(Error::NodeFailed {
                host: first.name.clone(),
                action: "init",
                attempts: report.attempts,
                last: last.clone(),
            }),
            NodeOutcome::Initialized => Ok((report, Some(self.clock.now()))),
            _ => Ok((report, None)),
        }
    }

    /// Step 3: the CA pin, from the first master's CA certificate, checked against the one
    /// the caller expects (if any). Returns the secrets with the pin.
    async fn pin_ca(&self, first: &First) -> Result<ClusterSecrets> {
        let ca = first
            .host
            .read_file(CA_CERT_PATH, true)
            .await
            .map_err(Error::remote(&first.name, "read CA"))?;
        let hash = CaCertHash::from_ca_pem(&ca)?;
        if let Some(expected) = &self.secrets.ca_cert_hash
            && *expected != hash
        {
            return Err(Error::CaMismatch {
                host: first.name.clone(),
                found: hash.to_string(),
                expected: expected.to_string(),
            });
        }
        Ok(self.secrets.clone().with_ca_cert_hash(hash))
    }

    /// Step 4: the CNI, through the hook (reported as skipped when the hooks apply none).
    async fn apply_cni(&self, first: &First) -> Result<()> {
        if !self.hooks.applies_cni() {
            self.progress.event(
                &first.name,
                "cni",
                &ProgressEvent::Skipped("no CNI given: nodes stay NotReady until one runs".into()),
            );
            return Ok(());
        }
        self.progress
            .event(&first.name, "cni", &ProgressEvent::Started);
        self.hooks
            .cni(first.host.as_ref())
            .await
            .map_err(|source| Error::Hook {
                hook: "cni",
                source,
            })?;
        self.progress
            .event(&first.name, "cni", &ProgressEvent::Done);
        Ok(())
    }

    /// The masters after the first, in input order.
    fn other_masters(&self) -> Vec<String> {
        self.input.masters[1..]
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }

    /// Step 5 (opt-in): the other masters join at once. Returns whether one failed.
    async fn join_masters_parallel(
        &self,
        first: &First,
        shared: &Shared,
        reports: &mut Vec<NodeReport>,
    ) -> Result<bool> {
        let masters = self.other_masters();
        let pending = self.pending(&masters).await?;
        if !pending.is_empty() {
            self.ensure_token(&first.name, &first.host, shared).await?;
            self.ensure_certs(&first.name, &first.host, shared).await?;
        }
        let joins = masters.iter().map(|m| self.join_node(m, &pending, shared));
        let mut failed = false;
        for r in futures::future::join_all(joins).await {
            let r = r?;
            failed |= matches!(r.outcome, NodeOutcome::Failed(_));
            reports.push(r);
        }
        Ok(failed)
    }

    /// Step 5: the other masters join one at a time; after a failure the rest are not
    /// attempted. The token and the uploaded certificates are renewed before each join that
    /// needs them. Returns whether one failed.
    async fn join_masters_serial(
        &self,
        first: &First,
        shared: &Shared,
        reports: &mut Vec<NodeReport>,
    ) -> Result<bool> {
        let mut failed = false;
        for m in self.other_masters() {
            if failed {
                self.progress.event(
                    &m,
                    "join",
                    &ProgressEvent::Skipped("an earlier control-plane join failed".into()),
                );
                reports.push(NodeReport {
                    node: m,
                    role: NodeRole::JoinMaster,
                    outcome: NodeOutcome::NotAttempted,
                    attempts: 0,
                    duration: Duration::ZERO,
                });
                continue;
            }
            let pending = self.pending(std::slice::from_ref(&m)).await?;
            if !pending.is_empty() {
                self.ensure_token(&first.name, &first.host, shared).await?;
                self.ensure_certs(&first.name, &first.host, shared).await?;
            }
            let r = self.join_node(&m, &pending, shared).await?;
            failed |= matches!(r.outcome, NodeOutcome::Failed(_));
            reports.push(r);
        }
        Ok(failed)
    }

    /// Step 6: the workers join at once, at most [`BootstrapOptions::worker_concurrency`] at
    /// a time; a worker's failure is in its report.
    async fn join_workers(
        &self,
        first: &First,
        shared: &Shared,
        reports: &mut Vec<NodeReport>,
    ) -> Result<()> {
        let workers: Vec<String> = self.input.workers.iter().map(|w| w.name.clone()).collect();
        let pending = self.pending(&workers).await?;
        if !pending.is_empty() {
            self.ensure_token(&first.name, &first.host, shared).await?;
        }
        let sem = Semaphore::new(self.options.worker_concurrency.max(1));
        let joins = workers.iter().map(|w| {
            let sem = &sem;
            let pending = &pending;
            async move {
                let _permit = sem.acquire().await;
                self.join_node(w, pending, shared).await
            }
        });
        for r in futures::future::join_all(joins).await {
            reports.push(r?);
        }
        Ok(())
    }

    /// Step 7: Ready (when awaited), the labels the kubelet may not set, then the report.
    async fn finish(
        &self,
        started: Instant,
        first: &First,
        shared: &Shared,
        nodes: Vec<NodeReport>,
        cp_failed: bool,
    ) -> Result<BootstrapReport> {
        let members: Vec<String> = nodes
            .iter()
            .filter(|r| {
                matches!(
                    r.outcome,
                    NodeOutcome::Initialized | NodeOutcome::Joined | NodeOutcome::AlreadyMember
                )
            })
            .map(|r| r.node.clone())
            .collect();
        let members_ready = if self.options.wait_for_ready {
            self.wait_ready(&first.name, &first.host, &members).await?
        } else {
            for n in &members {
                self.progress
                    .event(n, "ready", &ProgressEvent::Skipped("not awaited".into()));
            }
            false
        };
        self.apply_labels(&first.name, &first.host, &shared.secrets, &members)
            .await?;
        Ok(BootstrapReport::summarise(
            nodes,
            lock(&shared.renewed).clone(),
            started.elapsed(),
            cp_failed,
            members_ready,
            self.options.wait_for_ready,
        ))
    }

    /// Nodes among `nodes` that have not joined yet (no kubelet.conf).
    async fn pending(&self, nodes: &[String]) -> Result<Vec<String>> {
        // Checked concurrently: this is also where first connections to the nodes are made.
        let checks = nodes.iter().map(|n| self.is_member(n));
        let members = futures::future::join_all(checks).await;
        let mut out = Vec::new();
        for (n, m) in nodes.iter().zip(members) {
            if !m? {
                out.push(n.clone());
            }
        }
        Ok(out)
    }

    async fn is_member(&self, node: &str) -> Result<bool> {
        let st = self
            .host(node)
            .file_state(KUBELET_CONF_PATH, true)
            .await
            .map_err(Error::remote(node, "check kubelet.conf"))?;
        Ok(st.is_some())
    }

    async fn join_node(
        &self,
        node: &str,
        pending: &[String],
        shared: &Shared,
    ) -> Result<NodeReport> {
        let render = self.node_render(node, &shared.secrets)?;
        if !pending.iter().any(|p| p == node) {
            self.progress.event(
                node,
                "join",
                &ProgressEvent::Skipped("already joined".into()),
            );
            return Ok(NodeReport {
                node: node.to_owned(),
                role: render.role,
                outcome: NodeOutcome::AlreadyMember,
                attempts: 0,
                duration: Duration::ZERO,
            });
        }
        let host = Arc::clone(self.host(node));
        Ok(self.init_or_join(node, &host, &render, false).await)
    }

    /// Pushes the node's files and runs init or join, with one reset-and-retry.
    async fn init_or_join(
        &self,
        node: &str,
        host: &Host,
        render: &NodeRender,
        is_init: bool,
    ) -> NodeReport {
        let step = if is_init { "init" } else { "join" };
        let started = Instant::now();
        let report = |outcome, attempts| NodeReport {
            node: node.to_owned(),
            role: render.role,
            outcome,
            attempts,
            duration: started.elapsed(),
        };
        if is_init {
            match self.is_member(node).await {
                Ok(true) => {
                    self.progress.event(
                        node,
                        step,
                        &ProgressEvent::Skipped("already initialised".into()),
                    );
                    return report(NodeOutcome::AlreadyMember, 0);
                }
                Ok(false) => {}
                Err(e) => return report(NodeOutcome::Failed(Error::chain_text(&e)), 0),
            }
        }
        self.progress.event(node, step, &ProgressEvent::Started);
        for f in &render.files {
            if let Err(e) = push_file(host.as_ref(), f, true).await {
                let msg = Error::chain_text(&e);
                self.progress
                    .event(node, step, &ProgressEvent::Failed(msg.clone()));
                return report(NodeOutcome::Failed(msg), 0);
            }
        }
        let mut cmd = self.cmd("kubeadm", true).arg(step);
        cmd = cmd.args(["--config", KUBEADM_CONFIG_PATH]);
        if is_init {
            cmd = cmd.arg("--upload-certs");
        }
        let mut last = String::new();
        for attempt in 1..=2u32 {
            match host.run_ok(&cmd).await {
                Ok(_) => {
                    self.progress.event(node, step, &ProgressEvent::Done);
                    let outcome = if is_init {
                        NodeOutcome::Initialized
                    } else {
                        NodeOutcome::Joined
                    };
                    return report(outcome, attempt);
                }
                Err(e) => {
                    last = Error::chain_text(&e);
                    if attempt == 1 {
                        self.progress
                            .event(node, step, &ProgressEvent::Retrying(last.clone()));
                    }
                    // Leave the node clean either way: a half-joined node must not stay.
                    if let Err(e) = self.reset(host).await {
                        last = format!("{last}; reset also failed: {e}");
                        break;
                    }
                }
            }
        }
        let msg = format!("{node}: kubeadm {step} failed twice (reset after each); last: {last}");
        self.progress
            .event(node, step, &ProgressEvent::Failed(msg.clone()));
        report(NodeOutcome::Failed(msg), 2)
    }

    async fn reset(&self, host: &Host) -> core::result::Result<(), hakube_remote::Error> {
        host.run_ok(&self.cmd("kubeadm", true).args([
            "reset",
            "-f",
            "--config",
            RESET_CONFIG_PATH,
        ]))
        .await?;
        if !self.options.reset_cleanup.is_empty() {
            host.run_ok(
                &self
                    .cmd("rm", false)
                    .arg("-rf")
                    .arg("--")
                    .args(self.options.reset_cleanup.iter().cloned()),
            )
            .await?;
        }
        Ok(())
    }

    /// Makes sure our bootstrap token exists and lives long enough; re-creates it otherwise.
    async fn ensure_token(&self, first: &str, host: &Host, shared: &Shared) -> Result<()> {
        let remote = |step| Error::remote(first, step);
        let out = host
            .run_ok(&self.cmd("kubeadm", false).args(["token", "list"]))
            .await
            .map_err(remote("token list"))?;
        let tokens = parse_token_list(&out.stdout_lossy())?;
        let ours = tokens.iter().find(|t| t.token == shared.secrets.token);
        let now = self.clock.now();
        if ours.is_some_and(|t| t.valid_for(now, self.options.renew_margin)) {
            return Ok(());
        }
        self.progress
            .event(first, "renew-token", &ProgressEvent::Started);
        let token = Secret::new(shared.secrets.token.expose());
        if ours.is_some() {
            host.run_ok(
                &self
                    .cmd("kubeadm", false)
                    .args(["token", "delete"])
                    .arg(shared.secrets.token.id()),
            )
            .await
            .map_err(remote("token delete"))?;
        }
        host.run_ok(
            &self
                .cmd("kubeadm", false)
                .args(["token", "create"])
                .secret_arg(&token)
                .args(["--ttl", crate::render::BOOTSTRAP_TOKEN_TTL]),
        )
        .await
        .map_err(remote("token create"))?;
        lock(&shared.renewed).push("token");
        self.progress
            .event(first, "renew-token", &ProgressEvent::Done);
        Ok(())
    }

    /// Re-uploads the control-plane certificates with our key unless this run uploaded them
    /// recently enough.
    async fn ensure_certs(&self, first: &str, host: &Host, shared: &Shared) -> Result<()> {
        let now = self.clock.now();
        let fresh = lock(&shared.certs_uploaded_at).is_some_and(|at| {
            now.duration_since(at).unwrap_or_default() + self.options.renew_margin
                < self.options.certificate_key_ttl
        });
        if fresh {
            return Ok(());
        }
        self.progress
            .event(first, "upload-certs", &ProgressEvent::Started);
        let key = Secret::new(shared.secrets.certificate_key.expose());
        let out = host
            .run_ok(
                &self
                    .cmd("kubeadm", true)
                    .args(["init", "phase", "upload-certs", "--upload-certs"])
                    .arg("--certificate-key")
                    .secret_arg(&key),
            )
            .await
            .map_err(Error::remote(first, "upload-certs"))?;
        let printed = parse_upload_certs_key(&out.stdout_lossy())?;
        if printed != shared.secrets.certificate_key {
            return Err(Error::CertificateKeyMismatch {
                host: first.to_owned(),
            });
        }
        *lock(&shared.certs_uploaded_at) = Some(self.clock.now());
        lock(&shared.renewed).push("certificate-key");
        self.progress
            .event(first, "upload-certs", &ProgressEvent::Done);
        Ok(())
    }

    fn kubectl(&self) -> Command {
        self.cmd("kubectl", false)
            .args(["--kubeconfig", ADMIN_CONF_PATH])
    }

    /// Polls `kubectl get nodes` until every node in `nodes` is Ready. Returns whether they
    /// all were before the timeout (a timeout is reported, not raised).
    async fn wait_ready(&self, first: &str, host: &Host, nodes: &[String]) -> Result<bool> {
        let deadline = Instant::now() + self.options.ready_timeout;
        for n in nodes {
            self.progress.event(n, "ready", &ProgressEvent::Started);
        }
        let mut reported: Vec<&str> = Vec::new();
        loop {
            let out = host
                .run(&self.kubectl().args(["get", "nodes"]))
                .await
                .map_err(Error::remote(first, "kubectl get nodes"))?;
            let ready: Vec<String> = if out.success() {
                parse_get_nodes(&out.stdout_lossy())
                    .map(|v| v.into_iter().filter(|n| n.ready).map(|n| n.name).collect())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            for n in nodes {
                if ready.contains(n) && !reported.contains(&n.as_str()) {
                    reported.push(n);
                    self.progress.event(n, "ready", &ProgressEvent::Done);
                }
            }
            if nodes.iter().all(|n| ready.contains(n)) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                for n in nodes.iter().filter(|n| !ready.contains(n)) {
                    self.progress.event(
                        n,
                        "ready",
                        &ProgressEvent::Failed("not Ready in time".into()),
                    );
                }
                return Ok(false);
            }
            tokio::time::sleep(self.options.ready_poll).await;
        }
    }

    async fn apply_labels(
        &self,
        first: &str,
        host: &Host,
        secrets: &ClusterSecrets,
        members: &[String],
    ) -> Result<()> {
        for n in members {
            let render = self.node_render(n, secrets)?;
            if render.post_join_labels.is_empty() {
                continue;
            }
            let cmd = self
                .kubectl()
                .args(["label", "node", n.as_str(), "--overwrite"])
                .args(
                    render
                        .post_join_labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}")),
                );
            host.run_ok(&cmd)
                .await
                .map_err(Error::remote(first, "kubectl label"))?;
        }
        Ok(())
    }

    /// Removes a control-plane node: `kubeadm reset` on it (its own etcd member goes with the
    /// `remove-etcd-member` phase when etcd is reachable), then, from `via` (another master),
    /// removes any etcd member still carrying its name and deletes the Node object.
    ///
    /// # Errors
    /// [`Error::Remote`] for failed commands on `via`, [`Error::Etcd`] when the member list
    /// cannot be read. A failed reset on the removed node itself (e.g. it is gone) is ignored.
    pub async fn remove_control_plane_node(&self, node: &str, via: &str) -> Result<()> {
        let target = self.host(node);
        if let Err(e) = self.reset(target).await {
            tracing::warn!(node, error = %e, "reset of the removed node failed; continuing");
        }
        let via_host = self.host(via);
        let etcdctl = |args: &[&str]| {
            self.kubectl()
                .args([
                    "-n",
                    "kube-system",
                    "exec",
                    &format!("etcd-{via}"),
                    "--",
                    "etcdctl",
                ])
                .args(crate::etcd::ETCDCTL_TLS_ARGS)
                .args(["--endpoints", "https://127.0.0.1:2379"])
                .args(args.iter().copied())
        };
        let out = via_host
            .run_ok(&etcdctl(&["member", "list"]))
            .await
            .map_err(Error::remote(via, "etcd member list"))?;
        for m in crate::etcd::parse_member_list(&out.stdout_lossy())? {
            if m.name == node {
                via_host
                    .run_ok(&etcdctl(&["member", "remove", &m.id]))
                    .await
                    .map_err(Error::remote(via, "etcd member remove"))?;
            }
        }
        via_host
            .run_ok(
                &self
                    .kubectl()
                    .args(["delete", "node", node, "--ignore-not-found"]),
            )
            .await
            .map_err(Error::remote(via, "kubectl delete node"))?;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
