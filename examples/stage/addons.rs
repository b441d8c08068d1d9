//! The add-on stage: every install step of a written plan (`<plan>/cluster/install-steps.json`)
//! in order against the cluster of a kubeconfig, through [`hakube_addons::run::Runner`]:
//! server-side apply, Kustomize builds, `helm upgrade --install --atomic --wait` at the pinned
//! versions, CRD and rollout waits, Secrets whose values stay under `<plan>/secrets/`, and
//! Vault's Kubernetes auth for cert-manager. A re-run changes nothing; the first failing step
//! is named with the object and the API's answer, and no later step runs.
//!
//! `--dry-run` sends every object with `dryRun=All` and runs `helm --dry-run=server`: nothing
//! is stored, nothing is waited for, no secret is generated and Vault is not contacted; custom
//! resources whose CRD a chart installs are skipped until that chart ran.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hakube_addons::Component;
use hakube_addons::run::{Plan, Progress, RunReport, Runner};

/// What the stage did: per step, what changed and what was already as planned.
pub type Report = RunReport;

/// The stage's options.
#[derive(Clone)]
pub struct Options {
    /// The plan directory `plan` wrote (`cluster/`, `secrets/`).
    pub plan_dir: PathBuf,
    /// The kubeconfig of the cluster (also given to `helm`).
    pub kubeconfig: PathBuf,
    /// When set, the plan directory must be this topology's current plan (else the stage
    /// refuses a stale plan).
    pub topology: Option<PathBuf>,
    /// Only the steps of these components (`calico`, `nfs`, `traefik`, `monitoring`,
    /// `logging`, `vault`, `cert-manager`, `etcd-backup`, `apps`); empty: all.
    pub only: Vec<String>,
    /// Validate on the server, change nothing.
    pub dry_run: bool,
    /// The `helm` binary (default: on `PATH`).
    pub helm: Option<PathBuf>,
    /// Where progress goes.
    pub progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("plan_dir", &self.plan_dir)
            .field("kubeconfig", &self.kubeconfig)
            .field("topology", &self.topology)
            .field("only", &self.only)
            .field("dry_run", &self.dry_run)
            .field("helm", &self.helm)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Options for `plan_dir` and `kubeconfig`: every component, no dry run, `helm` from
    /// `PATH`, progress in the one view ([`Steps`]).
    #[must_use]
    pub fn new(plan_dir: impl Into<PathBuf>, kubeconfig: impl Into<PathBuf>) -> Self {
        Self {
            plan_dir: plan_dir.into(),
            kubeconfig: kubeconfig.into(),
            topology: None,
            only: Vec::new(),
            dry_run: false,
            helm: None,
            progress: Arc::new(Steps),
        }
    }
}

/// The add-on steps in the one progress view: a line per finished step (as
/// [`hakube_addons::run::Lines`] prints it), and on a terminal each component's current step.
#[derive(Debug, Clone, Copy, Default)]
pub struct Steps;

impl hakube_addons::run::Progress for Steps {
    fn started(&self, number: usize, total: usize, step: &hakube_addons::InstallStep) {
        if crate::progress::bars() {
            crate::progress::host(
                step.component().dir(),
                &format!("[{number}/{total}] {}", step.label()),
                crate::progress::State::Working,
                "",
            );
        }
    }

    fn finished(&self, total: usize, o: &hakube_addons::run::StepOutcome) {
        crate::progress::say(hakube_addons::run::line(total, o));
    }
}

/// Why the stage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plan directory holds no written plan. Run `plan` first.
    #[error(
        "{} holds no plan (no {}): run `cargo run --example plan -- TOPOLOGY --out {}` first",
        dir.display(), hakube_addons::run::STEPS_FILE, dir.display()
    )]
    NoPlan {
        /// The directory.
        dir: PathBuf,
    },
    /// `--only` names no component.
    #[error("--only: unknown component `{name}` (known: {known})")]
    UnknownComponent {
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// The topology cannot be loaded.
    #[error("{0}")]
    Topology(String),
    /// The plan does not render (a bug or a topology the plan refuses).
    #[error("rendering the plan of {}", topology.display())]
    Render {
        /// The topology.
        topology: PathBuf,
        /// Why.
        #[source]
        source: hakube_plan::Error,
    },
    /// The written plan is not the topology's current plan.
    #[error(
        "{} is not the current plan of {} ({path} differs): re-run `plan`",
        dir.display(), topology.display()
    )]
    StalePlan {
        /// The plan directory.
        dir: PathBuf,
        /// The topology.
        topology: PathBuf,
        /// The first file that differs (relative to the plan directory).
        path: String,
    },
    /// The run failed; the source names the step, the object and the API's answer.
    #[error("add-ons")]
    Addons(#[from] hakube_addons::Error),
}

fn components(only: &[String]) -> Result<BTreeSet<Component>, Error> {
    only.iter()
        .map(|name| {
            Component::from_dir(name).ok_or_else(|| Error::UnknownComponent {
                name: name.clone(),
                known: Component::ALL
                    .iter()
                    .map(|c| c.dir())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

/// Fails when `dir` is not the current plan of `topology` (its `cluster/` files differ).
fn check_current(dir: &Path, topology: &Path) -> Result<(), Error> {
    let cluster = crate::load_topology(topology).map_err(Error::Topology)?;
    let secrets = crate::plan_secrets(dir).map_err(Error::Topology)?;
    let tree = hakube_plan::render(&cluster, &secrets).map_err(|source| Error::Render {
        topology: topology.to_owned(),
        source,
    })?;
    for (path, file) in tree.iter().filter(|(p, _)| p.starts_with("cluster/")) {
        if std::fs::read(dir.join(path)).ok().as_deref() != Some(file.contents.as_slice()) {
            return Err(Error::StalePlan {
                dir: dir.to_owned(),
                topology: topology.to_owned(),
                path: path.to_owned(),
            });
        }
    }
    Ok(())
}

/// Runs the add-on stage (see the module docs).
///
/// # Errors
/// [`Error::NoPlan`], [`Error::UnknownComponent`], [`Error::StalePlan`] before anything is
/// sent; [`Error::Addons`] for the run (a missing `helm`, the failing step).
pub async fn run(o: &Options) -> Result<Report, Error> {
    let only = components(&o.only)?;
    if !o.plan_dir.join(hakube_addons::run::STEPS_FILE).is_file() {
        return Err(Error::NoPlan {
            dir: o.plan_dir.clone(),
        });
    }
    if let Some(t) = &o.topology {
        check_current(&o.plan_dir, t)?;
    }
    let mut plan = Plan::read(&o.plan_dir)?;
    if !only.is_empty() {
        plan = plan.only(&only);
    }
    let mut runner = Runner::from_kubeconfig(&o.kubeconfig)
        .await?
        .dry_run(o.dry_run)
        .progress(Arc::clone(&o.progress));
    if let Some(h) = &o.helm {
        runner = runner.helm(h);
    }
    Ok(runner.run(&plan).await?)
}
