//! The provision stage: the topology's VMs on Proxmox VE, from the PVE flags every binary
//! that talks to Proxmox shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hakube_proxmox_api::provision::{Event, Phase, Plan, ProvisionOptions, Provisioner, Report};
use hakube_proxmox_api::{Client, ClientBuilder, Secret, TlsTrust};
use hakube_topology::Cluster;

use super::Error;
use crate::progress::State;

/// The Proxmox flags (`provision`, `up`). Secrets are best given in the environment.
#[derive(clap::Args, Clone, Default)]
pub struct PveArgs {
    /// The PVE API URL (env PVE_URL; default: the topology's proxmox.api_url).
    #[arg(long)]
    pub pve_url: Option<String>,
    /// API token id, user@realm!tokenid (env PVE_TOKEN_ID).
    #[arg(long)]
    pub token_id: Option<String>,
    /// API token secret (env PVE_TOKEN_SECRET; prefer the environment to the command line).
    #[arg(long)]
    pub token_secret: Option<String>,
    /// User for ticket login, user@realm (env PVE_USER).
    #[arg(long = "pve-user")]
    pub pve_user: Option<String>,
    /// Password (env PVE_PASSWORD; prefer the environment to the command line).
    #[arg(long)]
    pub password: Option<String>,
    /// Pin the server certificate's SHA-256 fingerprint (AA:BB:...).
    #[arg(long, group = "trust")]
    pub fingerprint: Option<String>,
    /// Trust this CA (PEM), e.g. the cluster's /etc/pve/pve-root-ca.pem.
    #[arg(long, group = "trust")]
    pub ca: Option<PathBuf>,
    /// Accept any certificate. Insecure: for throwaway labs only.
    #[arg(long, group = "trust")]
    pub danger_accept_invalid_certs: bool,
    /// Worker tasks in flight per Proxmox node.
    #[arg(long, default_value_t = 3)]
    pub tasks_per_node: usize,
}

impl std::fmt::Debug for PveArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PveArgs")
            .field("pve_url", &self.pve_url)
            .field("token_id", &self.token_id)
            .field("pve_user", &self.pve_user)
            .field("fingerprint", &self.fingerprint)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

fn env_or(flag: Option<&String>, var: &str) -> Option<String> {
    flag.cloned()
        .or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
}

impl PveArgs {
    /// The URL: the flag, `PVE_URL`, or the topology's.
    #[must_use]
    pub fn url(&self, cluster: &Cluster) -> String {
        env_or(self.pve_url.as_ref(), "PVE_URL")
            .unwrap_or_else(|| cluster.topology.proxmox.api_url.clone())
    }

    /// A client with the chosen credentials and trust. Nothing is sent yet.
    ///
    /// # Errors
    /// [`Error::Input`] naming the flag that is missing or malformed.
    pub fn client(&self, cluster: &Cluster) -> Result<Client, Error> {
        let mut builder = ClientBuilder::new(self.url(cluster));
        if let Some(id) = env_or(self.token_id.as_ref(), "PVE_TOKEN_ID") {
            let secret =
                env_or(self.token_secret.as_ref(), "PVE_TOKEN_SECRET").ok_or_else(|| {
                    Error::Input("--token-id needs --token-secret or PVE_TOKEN_SECRET".into())
                })?;
            builder = builder.token(id, Secret::new(secret));
        } else if let Some(user) = env_or(self.pve_user.as_ref(), "PVE_USER") {
            let pw = env_or(self.password.as_ref(), "PVE_PASSWORD").ok_or_else(|| {
                Error::Input("--pve-user needs --password or PVE_PASSWORD".into())
            })?;
            builder = builder.password(user, Secret::new(pw));
        } else {
            return Err(Error::Input(
                "give --token-id/--token-secret or --pve-user/--password (or the PVE_* variables)"
                    .into(),
            ));
        }
        let trust = if let Some(fp) = &self.fingerprint {
            TlsTrust::Fingerprint(
                fp.parse()
                    .map_err(|e| Error::Input(format!("--fingerprint: {e}")))?,
            )
        } else if let Some(ca) = &self.ca {
            TlsTrust::CaPem(
                std::fs::read_to_string(ca)
                    .map_err(|e| Error::Input(format!("--ca {}: {e}", ca.display())))?,
            )
        } else if self.danger_accept_invalid_certs {
            eprintln!("warning: certificate verification is OFF (--danger-accept-invalid-certs)");
            TlsTrust::DangerAcceptInvalidCerts
        } else {
            TlsTrust::SystemRoots
        };
        builder
            .trust(trust)
            .node_concurrency(self.tasks_per_node.max(1))
            .build()
            .map_err(|e| Error::stage("proxmox client", e))
    }
}

/// How to provision.
#[derive(Debug, Clone)]
pub struct Options {
    /// Plan only: GET requests, no change.
    pub dry_run: bool,
    /// Delete VMs carrying this cluster's tag that the topology no longer has.
    pub prune: bool,
    /// Make the anti-affine roles' VMs HA resources.
    pub ha: bool,
    /// Worker tasks in flight per Proxmox node.
    pub tasks_per_node: usize,
    /// How long to wait for each VM's guest agent address (`None`: do not wait).
    pub agent_timeout: Option<Duration>,
    /// Print one line per VM step.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            dry_run: false,
            prune: false,
            ha: false,
            tasks_per_node: 3,
            agent_timeout: Some(Duration::from_secs(300)),
            verbose: true,
        }
    }
}

/// What the stage did.
#[derive(Debug)]
pub enum Outcome {
    /// `dry_run`: the actions a run would take.
    Planned(Plan),
    /// The run's report (per VM: what was done, its address; errors by VM).
    Applied(Report),
}

impl Outcome {
    /// How many changes were made (or, for a dry run, planned).
    #[must_use]
    pub fn changes(&self) -> usize {
        match self {
            Self::Planned(p) => p.len(),
            Self::Applied(r) => r.changes(),
        }
    }
}

/// Provisions the topology's VMs (clone, configure, grow, start, guest agent address).
/// A run makes no mutating call when everything is in place, and finishes what a killed run
/// left.
///
/// # Errors
/// [`Error::Stage`] when the specs cannot be built or the API fails as a whole; a report
/// whose VMs failed is returned as [`Error::Failed`] naming each VM and its cause.
pub async fn run(cluster: &Cluster, client: Client, opts: &Options) -> Result<Outcome, Error> {
    let specs = hakube_plan::vm_specs(cluster, opts.ha).map_err(|e| Error::stage("VM specs", e))?;
    let mut popts = ProvisionOptions::new(format!("hakube-{}", cluster.topology.cluster.name));
    popts.prune = opts.prune;
    popts.tasks_per_node = opts.tasks_per_node.max(1);
    popts.agent_timeout = opts.agent_timeout;
    if opts.verbose || crate::progress::bars() {
        let started = Instant::now();
        let lines = opts.verbose;
        popts.progress = Some(Arc::new(move |e: &Event| {
            let t = started.elapsed().as_secs_f64();
            let (state, what, line) = match &e.phase {
                Phase::Started => (
                    State::Working,
                    format!("{} ...", e.step),
                    format!("[{t:7.2}s] {:<20} {:<12} ...", e.vm, e.step),
                ),
                Phase::Done => (
                    State::Working,
                    format!("{} done", e.step),
                    format!("[{t:7.2}s] {:<20} {:<12} done", e.vm, e.step),
                ),
                Phase::Retrying(m) => (
                    State::Working,
                    format!("{} retrying: {m}", e.step),
                    format!("[{t:7.2}s] {:<20} {:<12} retrying: {m}", e.vm, e.step),
                ),
                Phase::Failed(m) => (
                    State::Failed,
                    format!("{}: {m}", e.step),
                    format!("[{t:7.2}s] {:<20} {:<12} FAILED: {m}", e.vm, e.step),
                ),
                _ => return,
            };
            if lines || crate::progress::bars() {
                crate::progress::host(&e.vm, &what, state, line);
            }
        }));
    }
    let p = Provisioner::new(client, popts);
    if opts.dry_run {
        return p
            .plan(&specs)
            .await
            .map(Outcome::Planned)
            .map_err(Error::from);
    }
    let report = p.apply(&specs).await?;
    if !report.is_success() {
        let mut failed: Vec<String> = report
            .vms
            .iter()
            .filter_map(|v| {
                v.error
                    .as_ref()
                    .map(|e| format!("{}: {}", v.name, crate::error_chain(e)))
            })
            .collect();
        failed.extend(
            report
                .cluster_errors
                .iter()
                .map(|e| format!("cluster: {}", crate::error_chain(e))),
        );
        return Err(Error::Failed(failed));
    }
    Ok(Outcome::Applied(report))
}
