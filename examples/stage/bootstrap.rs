//! The bootstrap stage: node preparation from the plan's host plans, then kubeadm's HA flow
//! (init on the first master against the VIP, control-plane joins, worker joins), and the
//! admin kubeconfig fetched next to the plan's secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hakube_host_state::File;
use hakube_kubeadm::flow::{
    Bootstrap, BootstrapHooks, BootstrapOptions, BootstrapProgress, BootstrapReport, Host,
    NodeOutcome, ProgressEvent,
};
use hakube_kubeadm::{ClusterInput, HookError, KUBEADM_CONFIG_DIR};
use hakube_remote::{Command, Mode, RemoteExec, SshPool, push_file};
use hakube_topology::{Cluster, RoleKind};

use super::Error;
use crate::progress::State;
use crate::ssh::{SshArgs, apply_plans, plans_from_dir, plans_from_tree};

/// Where the admin kubeconfig is kept, under the plan directory (mode 0600).
pub const ADMIN_KUBECONFIG: &str = "secrets/kubernetes/admin.conf";

/// Where CNI manifests are copied on the first master.
const CNI_DIR: &str = "/etc/kubernetes/hakube/cni";
/// Where kubeadm writes the admin kubeconfig on a master.
const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";

/// How to bootstrap.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Apply the nodes' host plans first (swap, modules, sysctls, containerd, the pinned
    /// kubelet/kubeadm/kubectl, the NFS client).
    pub prepare: bool,
    /// Join the extra control-plane nodes at the same time.
    pub parallel_control_plane: bool,
    /// CNI manifests applied on the first master right after init (in order).
    pub cni_manifests: Vec<PathBuf>,
    /// The plan directory: host plans and kubeadm configurations are read from it (else
    /// rendered in memory) and the admin kubeconfig is kept in it ([`ADMIN_KUBECONFIG`]).
    pub plan_dir: PathBuf,
}

/// What the stage did.
#[derive(Debug)]
pub struct Report {
    /// Changes node preparation made (0 on a re-run).
    pub prepared: usize,
    /// Workers whose preparation failed (name, cause): the flow ran without them.
    pub unprepared: Vec<(String, String)>,
    /// The kubeadm flow's report (per node: what ran, what was skipped).
    pub flow: BootstrapReport,
    /// Where the admin kubeconfig was written.
    pub kubeconfig: PathBuf,
}

impl Report {
    /// Every node that failed, preparation or kubeadm, with its cause (empty when all joined).
    #[must_use]
    pub fn failures(&self) -> Vec<(&str, &str)> {
        self.unprepared
            .iter()
            .map(|(n, why)| (n.as_str(), why.as_str()))
            .chain(self.flow.failures())
            .collect()
    }

    /// Steps that changed something: preparation changes plus kubeadm steps that ran.
    #[must_use]
    pub fn changes(&self) -> usize {
        self.prepared
            + self
                .flow
                .nodes
                .iter()
                .filter(|n| matches!(n.outcome, NodeOutcome::Initialized | NodeOutcome::Joined))
                .count()
    }
}

/// Applies the operator's CNI manifests on the first master with the admin kubeconfig.
struct CniManifests(Vec<(String, Vec<u8>)>);

#[async_trait::async_trait]
impl BootstrapHooks for CniManifests {
    async fn cni(&self, first_master: &dyn RemoteExec) -> Result<(), HookError> {
        for (name, contents) in &self.0 {
            let path = format!("{CNI_DIR}/{name}");
            push_file(
                first_master,
                &File::new(path.clone(), contents.clone()).mode(0o600),
                true,
            )
            .await?;
            first_master
                .run_ok(
                    &Command::new("kubectl")
                        .args(["--kubeconfig", ADMIN_CONF, "apply"])
                        .args(["--server-side", "--force-conflicts", "-f", &path])
                        .sudo(true),
                )
                .await?;
        }
        Ok(())
    }

    fn applies_cni(&self) -> bool {
        !self.0.is_empty()
    }
}

/// Reads the CNI manifests, named `NN-<file name>` on the master so they apply in order.
fn read_manifests(paths: &[PathBuf]) -> Result<Vec<(String, Vec<u8>)>, Error> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let contents = std::fs::read(p)
                .map_err(|e| Error::Input(format!("--cni-manifest {}: {e}", p.display())))?;
            let base = p.file_name().map_or_else(
                || "cni.yaml".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
            Ok((format!("{i:02}-{base}"), contents))
        })
        .collect()
}

/// Prints each node's progress with the time since the start.
struct Printer(Instant);

impl BootstrapProgress for Printer {
    fn event(&self, node: &str, step: &'static str, event: &ProgressEvent) {
        let what = match event {
            ProgressEvent::Started => "started".to_owned(),
            ProgressEvent::Done => "done".to_owned(),
            ProgressEvent::Skipped(why) => format!("skipped ({why})"),
            ProgressEvent::Retrying(why) => format!("failed, resetting and retrying: {why}"),
            ProgressEvent::Failed(why) => format!("FAILED: {why}"),
        };
        // A node is done when it initialised, joined or was a member already.
        let last = matches!(step, "init" | "join");
        let state = match event {
            ProgressEvent::Failed(_) => State::Failed,
            ProgressEvent::Done | ProgressEvent::Skipped(_) if last => State::Done,
            _ => State::Working,
        };
        crate::progress::host(
            node,
            &format!("{step} {what}"),
            state,
            format!(
                "[{:>7.1}s] {node:<18} {step:<13} {what}",
                self.0.elapsed().as_secs_f64()
            ),
        );
    }
}

/// Bootstraps Kubernetes on the topology's masters and workers over SSH (see the module docs).
/// Safe to re-run: nodes that joined are skipped, and node preparation changes nothing twice.
///
/// Nodes whose preparation, init or join failed are in the report ([`Report::failures`]), the
/// others joined: a worker that cannot be prepared (unreachable, a package that fails) is left
/// out of the flow and named.
///
/// # Errors
/// [`Error::Input`] for unreadable manifests or secrets, [`Error::Failed`] naming each master
/// that failed preparation (the flow does not start without all of them), [`Error::Kubeadm`]
/// when the flow stops.
pub async fn run(
    cluster: &Cluster,
    ssh: &SshArgs,
    pool: &SshPool,
    opts: &Options,
) -> Result<Report, Error> {
    let manifests = read_manifests(&opts.cni_manifests)?;
    let secrets_path = opts.plan_dir.join(hakube_plan::SECRETS_PATH);
    let plan_secrets = crate::load_or_create_secrets(&secrets_path).map_err(Error::Input)?;
    let nodes: Vec<Host> = ssh.sessions(
        pool,
        cluster,
        cluster
            .vms
            .iter()
            .filter(|vm| matches!(vm.role, RoleKind::ControlPlane | RoleKind::Worker)),
    );
    let mut prepared = 0;
    let mut input =
        hakube_plan::kubeadm_input(cluster).map_err(|e| Error::stage("kubeadm input", e))?;
    let mut unprepared = Vec::new();
    if opts.prepare {
        let work = if opts.plan_dir.join("plan.json").is_file() {
            plans_from_dir(&opts.plan_dir, nodes.clone()).map_err(Error::Input)?
        } else {
            let tree =
                hakube_plan::render(cluster, &plan_secrets).map_err(|e| Error::stage("plan", e))?;
            plans_from_tree(&tree, nodes.clone()).map_err(Error::Input)?
        };
        crate::progress::say(format!("preparing {} node(s)", nodes.len()));
        let reports = apply_plans(&work, Mode::Apply, 16).await;
        for r in &reports {
            if let Err(e) = &r.result {
                let why = format!("preparation: {}", crate::error_chain(e));
                crate::progress::say(format!("{:<18} FAILED: {why}", r.host));
                unprepared.push((r.host.clone(), why));
            }
        }
        // A master that is not prepared stops the flow (the control plane needs all three);
        // a worker that is not prepared is left out, and named, while the others join.
        let masters: Vec<String> = unprepared
            .iter()
            .filter(|(n, _)| input.masters.iter().any(|m| &m.name == n))
            .map(|(n, why)| format!("{n}: {why}"))
            .collect();
        if !masters.is_empty() {
            return Err(Error::Failed(masters));
        }
        input
            .workers
            .retain(|w| !unprepared.iter().any(|(n, _)| n == &w.name));
        prepared = reports
            .iter()
            .filter(|r| r.result.is_ok())
            .map(|r| r.changes.len())
            .sum();
    }
    let hosts: BTreeMap<String, Host> = nodes
        .iter()
        .map(|h| (h.host().to_owned(), Arc::clone(h)))
        .collect();
    crate::progress::say(format!(
        "bootstrapping {} ({} masters, {} workers) behind {}",
        input.cluster_name,
        input.masters.len(),
        input.workers.len(),
        input.control_plane_endpoint()
    ));
    let first_master = input.masters.first().map(|m| m.name.clone());
    let wait_for_ready = !manifests.is_empty();
    let planned = planned_kubeadm_files(&opts.plan_dir, &input)?;
    let flow = Bootstrap::new(input, plan_secrets.kubeadm.clone(), hosts.clone())?
        .planned_files(planned)
        .options(BootstrapOptions {
            parallel_control_plane_joins: opts.parallel_control_plane,
            wait_for_ready,
            ..BootstrapOptions::default()
        })
        .hooks(Arc::new(CniManifests(manifests)))
        .progress(Arc::new(Printer(Instant::now())))
        .run()
        .await?;
    let kubeconfig = opts.plan_dir.join(ADMIN_KUBECONFIG);
    let first_ok = first_master.as_ref().is_some_and(|m| {
        flow.nodes.iter().any(|n| {
            &n.node == m
                && matches!(
                    n.outcome,
                    NodeOutcome::Initialized | NodeOutcome::AlreadyMember
                )
        })
    });
    if first_ok && let Some(first) = first_master.and_then(|m| hosts.get(&m).cloned()) {
        fetch_kubeconfig(first.as_ref(), &kubeconfig).await?;
    }
    Ok(Report {
        prepared,
        unprepared,
        flow,
        kubeconfig,
    })
}

/// The kubeadm files (under [`KUBEADM_CONFIG_DIR`]) the written plan in `plan_dir` holds for
/// each node, so the flow pushes what the plan shows instead of rendering it again (joining
/// nodes' kubeadm configurations excepted: they need the CA pin, known after init). Empty
/// when `plan_dir` holds no written plan: the flow then renders every file.
fn planned_kubeadm_files(
    plan_dir: &Path,
    input: &ClusterInput,
) -> Result<BTreeMap<String, Vec<File>>, Error> {
    if !plan_dir.join("plan.json").is_file() {
        return Ok(BTreeMap::new());
    }
    let dir = format!("{KUBEADM_CONFIG_DIR}/");
    input
        .node_names()
        .map(|node| {
            let plan = hakube_plan::read_host_plan(plan_dir, node).map_err(|e| {
                Error::stage(
                    format!("reading {node}'s host plan in {}", plan_dir.display()),
                    e,
                )
            })?;
            let files = plan
                .files()
                .filter(|f| f.path.starts_with(&dir))
                .cloned()
                .collect();
            Ok((node.to_owned(), files))
        })
        .collect()
}

/// Copies the first master's admin kubeconfig to `to` (0600, replaced atomically).
async fn fetch_kubeconfig(master: &dyn RemoteExec, to: &Path) -> Result<(), Error> {
    let out = master
        .run_ok(&Command::new("cat").arg(ADMIN_CONF).sudo(true))
        .await
        .map_err(|e| Error::stage(format!("reading {ADMIN_CONF} on {}", master.host()), e))?;
    crate::write_private_atomic(to, &out.stdout)
        .map_err(|e| Error::Input(format!("{}: {e}", to.display())))
}
