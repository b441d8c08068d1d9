//! What the binaries that work on VMs over SSH share: the SSH flags, the sessions, and
//! applying host plans with progress and a summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hakube_host_state::HostPlan;
use hakube_plan::PlanTree;
use hakube_remote::{
    Auth, FanOut, HostKeyPolicy, HostReport, Mode, Progress, RemoteExec, SshConfig, SshPool,
    Target, apply_host_plans,
};
use hakube_topology::{Cluster, Vm};

use crate::progress::State;

/// The SSH flags every binary that talks to VMs takes.
#[derive(clap::Args, Debug, Clone)]
pub struct SshArgs {
    /// Private key for SSH (unencrypted OpenSSH key).
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// Login user (default: the topology's ssh.user); non-root users need passwordless sudo.
    #[arg(long)]
    pub user: Option<String>,
    /// Verify host keys against this known_hosts file (default ~/.ssh/known_hosts).
    #[arg(long, conflicts_with = "danger_accept_any")]
    pub known_hosts: Option<PathBuf>,
    /// Accept and record (in the known_hosts file) keys of hosts not yet there; a changed key
    /// is still refused.
    #[arg(long, group = "hostkeys")]
    pub accept_new: bool,
    /// Accept any host key. Insecure: for throwaway labs only.
    #[arg(long, group = "hostkeys")]
    pub danger_accept_any: bool,
}

impl SshArgs {
    /// A connection pool with the chosen key and host key policy.
    ///
    /// # Errors
    /// A message when `--ssh-key` is missing.
    pub fn pool(&self) -> Result<SshPool, String> {
        let Some(key) = self.ssh_key.clone() else {
            return Err("--ssh-key is required".into());
        };
        let known_hosts = self.known_hosts.clone().unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".ssh/known_hosts")
        });
        let policy = if self.danger_accept_any {
            eprintln!("warning: --danger-accept-any: host keys are NOT verified");
            HostKeyPolicy::DangerAcceptAny
        } else if self.accept_new {
            HostKeyPolicy::AcceptNew(known_hosts)
        } else {
            HostKeyPolicy::KnownHosts(known_hosts)
        };
        Ok(SshPool::new(
            SshConfig::new(Auth::key_file(key), policy)
                .connect_timeout(Duration::from_secs(15))
                .command_timeout(Duration::from_secs(300)),
        ))
    }

    /// The login user: `--user`, else the topology's.
    #[must_use]
    pub fn user(&self, cluster: &Cluster) -> String {
        self.user
            .clone()
            .unwrap_or_else(|| cluster.topology.ssh.user.clone())
    }

    /// A session per VM, by the VM's planned address.
    #[must_use]
    pub fn sessions<'a>(
        &self,
        pool: &SshPool,
        cluster: &Cluster,
        vms: impl IntoIterator<Item = &'a Vm>,
    ) -> Vec<Arc<dyn RemoteExec>> {
        let user = self.user(cluster);
        vms.into_iter()
            .map(|vm| {
                let target =
                    Target::new(vm.name.clone(), vm.address.to_string()).user(user.clone());
                pool.session(&target) as Arc<dyn RemoteExec>
            })
            .collect()
    }
}

/// Shows each host as it starts its plan (and, on a terminal, as it finishes).
struct HostStarted(Instant);

impl Progress for HostStarted {
    fn started(&self, step: &str, host: &str) {
        if step == "host-plan" {
            let line = format!(
                "[{:>6.1}s] {host:<18} started",
                self.0.elapsed().as_secs_f64()
            );
            crate::progress::host(host, "applying its host plan", State::Working, line);
        }
    }

    fn finished(&self, step: &str, host: &str, error: Option<&hakube_remote::Error>) {
        // The plain view prints each host's changes and result when all are done.
        if step == "host-plan" && crate::progress::bars() {
            match error {
                None => crate::progress::host(host, "host plan", State::Done, ""),
                Some(e) => crate::progress::host(
                    host,
                    "host plan",
                    State::Failed,
                    format!("{host}: {}", crate::error_chain(e)),
                ),
            }
        }
    }
}

/// A host and the plan to apply to it.
pub type HostWork = (Arc<dyn RemoteExec>, HostPlan);

/// Pairs each host with its plan from `tree`.
///
/// # Errors
/// A message naming a host the tree has no plan for.
pub fn plans_from_tree(
    tree: &PlanTree,
    hosts: Vec<Arc<dyn RemoteExec>>,
) -> Result<Vec<HostWork>, String> {
    hosts
        .into_iter()
        .map(|h| {
            let plan = tree
                .host_plan(h.host())
                .cloned()
                .ok_or_else(|| format!("the plan has no host plan for {}", h.host()))?;
            Ok((h, plan))
        })
        .collect()
}

/// Pairs each host with its plan read from a written plan directory
/// (`DIR/hosts/<vm>/host-plan.json` and its files).
///
/// # Errors
/// A message naming the host whose plan cannot be read.
pub fn plans_from_dir(
    dir: &Path,
    hosts: Vec<Arc<dyn RemoteExec>>,
) -> Result<Vec<HostWork>, String> {
    hosts
        .into_iter()
        .map(|h| {
            let plan = hakube_plan::read_host_plan(dir, h.host())
                .map_err(|e| format!("{}: {}", dir.display(), crate::error_chain(&e)))?;
            Ok((h, plan))
        })
        .collect()
}

/// Applies (or dry-runs) the host plans, hosts in parallel (at most `concurrency`), printing
/// each host's changes as it finishes and a summary at the end. Returns the reports, in input
/// order.
pub async fn apply_plans(work: &[HostWork], mode: Mode, concurrency: usize) -> Vec<HostReport> {
    let started = Instant::now();
    let reports =
        apply_host_plans(work, mode, &FanOut::new(concurrency), &HostStarted(started)).await;
    let mut out = String::new();
    for r in &reports {
        for c in &r.changes {
            let _ = writeln!(out, "  {:<18} {c}", r.host);
        }
        if let Err(e) = &r.result {
            let _ = writeln!(out, "  {:<18} FAILED: {}", r.host, crate::error_chain(e));
        }
    }
    let _ = writeln!(
        out,
        "\n{:<18} {:>7} {:>8}  RESULT",
        "HOST", "CHANGES", "TIME"
    );
    for r in &reports {
        let result = match &r.result {
            Ok(()) if mode == Mode::DryRun => "ok (dry run)".to_owned(),
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("FAILED ({e})"),
        };
        let _ = writeln!(
            out,
            "{:<18} {:>7} {:>7.1}s  {result}",
            r.host,
            r.changes.len(),
            r.elapsed.as_secs_f64()
        );
    }
    let total: usize = reports.iter().map(|r| r.changes.len()).sum();
    let failed = reports.iter().filter(|r| r.result.is_err()).count();
    let _ = writeln!(
        out,
        "{} host(s), {total} change(s){}, {failed} failed, {:.1}s",
        reports.len(),
        if mode == Mode::DryRun { " due" } else { "" },
        started.elapsed().as_secs_f64()
    );
    crate::progress::say(out.trim_end());
    reports
}
