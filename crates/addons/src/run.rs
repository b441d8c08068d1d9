//! The add-on install runner: every [`InstallStep`] of a plan, in order, against a cluster.
//!
//! [`Runner::run`] takes the plan's `cluster/install-steps.json` (the order of the seed's
//! bootstrap: CNI, NFS provisioner and StorageClasses, Traefik, observability, cert-manager
//! with the Vault issuer, etcd backup) and performs each step:
//!
//! | step | how |
//! |---|---|
//! | [`InstallStep::Apply`] | server-side apply through [`hakube_kube_apply`] (the one applier), the component's field manager |
//! | [`InstallStep::ApplyKustomize`] | `kubectl kustomize DIR` (or `kustomize build DIR`), then the same applier |
//! | [`InstallStep::Helm`] | `helm upgrade --install --atomic --wait --version <pinned> -f <values> --namespace N --create-namespace`, skipped when the deployed release already has that chart version and those values |
//! | [`InstallStep::WaitCrds`], [`InstallStep::WaitRollout`] | polls until Established / rolled out |
//! | [`InstallStep::Secret`] | a Secret from literals, values generated once and kept under the plan's `secrets/`, and files there (Vault's CA) |
//! | [`InstallStep::VaultBootstrap`] | in-cluster Vault: port-forwards to its pods ([`crate::tunnel`]), then `hakube_vault::bootstrap::bootstrap` (init once, keys kept in `secrets/vault/init.json` first, unseal, raft voters, the PKI), the code the configure stage runs for Vault VMs |
//! | [`InstallStep::VaultKubernetesAuth`] | a TokenRequest for the reviewer ServiceAccount, then `hakube_vault::bootstrap::configure_kubernetes_auth` with the root token kept in `secrets/vault/init.json` (through port-forwards when Vault is in the cluster) |
//!
//! Before the first step it checks what every selected step needs (the `helm` binary, a
//! Kustomize builder, the API server's CA for Vault), so a missing tool applies nothing. A
//! failing step ends the run with [`Error::Step`] naming the step; its source names the object
//! and carries the API's answer (or the command's standard error), and no later step runs.
//! Each step reports what it created or changed and how many objects were already as
//! planned: a re-run of the same plan reports no change ([`RunReport::changed`] is 0).
//!
//! A dry run ([`Runner::dry_run`]) sends every object with `dryRun=All` (the API server
//! validates and admits it, nothing is stored), runs `helm upgrade --install --dry-run=server`,
//! waits for nothing, generates no secret on disk and does not contact Vault: its report lists
//! what would change.
//!
//! Secret values are never printed, logged or part of an error: errors name the Secret, the
//! key and the file only.
//!
//! ```no_run
//! # async fn f() -> Result<(), hakube_addons::Error> {
//! use std::sync::Arc;
//! use hakube_addons::run::{Lines, Plan, Runner};
//!
//! let plan = Plan::read("out".as_ref())?;
//! let report = Runner::from_kubeconfig("admin.conf".as_ref())
//!     .await?
//!     .progress(Arc::new(Lines))
//!     .run(&plan)
//!     .await?;
//! println!("{} changed, {} unchanged", report.changed(), report.unchanged());
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hakube_kube_apply as ka;
use k8s_openapi::ByteString;
use serde_json::{Value, json};

use crate::apply::convert;
use crate::steps::vault_secrets;
use crate::tunnel::PodTunnel;
use crate::{
    Component, Error, HelmRelease, InstallStep, VaultBootstrap, VaultKubernetesAuth, VaultPods,
    secret_value_path,
};

/// Vault's TLS CA, as the plan keeps it.
fn vault_ca(plan: &Plan) -> Result<String, Error> {
    let path = plan.secrets_dir.join(vault_secrets::CA_CERT);
    std::fs::read_to_string(&path).map_err(|source| Error::SecretFile {
        secret: "Vault TLS CA".into(),
        key: "ca.crt".into(),
        path,
        source,
    })
}

/// The Vault client's endpoints for port-forwarded pods, named after the pods: the chart sets
/// each pod's raft `node_id` to its name (`server.ha.raft.setNodeId`), and the bootstrap
/// waits for every endpoint's name among the raft voters.
fn pod_endpoints(tunnels: &[PodTunnel]) -> Vec<hakube_vault::client::Endpoint> {
    tunnels
        .iter()
        .map(|t| hakube_vault::client::Endpoint {
            name: t.pod().to_owned(),
            url: t.https_url(),
        })
        .collect()
}

/// A plan's install steps and where its files are.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The GitOps tree (`<plan>/cluster`): manifests, values files, kustomizations.
    pub cluster_dir: PathBuf,
    /// The plan's secrets (`<plan>/secrets`, mode 0700, outside the GitOps tree).
    pub secrets_dir: PathBuf,
    /// The steps, in order.
    pub steps: Vec<InstallStep>,
}

/// Where a plan keeps its install steps, relative to the plan directory.
pub const STEPS_FILE: &str = "cluster/install-steps.json";

impl Plan {
    /// Reads the steps of the plan written to `dir` (`dir/cluster/install-steps.json`).
    ///
    /// # Errors
    /// [`Error::PlanFile`] when the file cannot be read, [`Error::PlanSteps`] when it is not a
    /// list of install steps.
    pub fn read(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(STEPS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::PlanFile {
            path: path.clone(),
            source,
        })?;
        let steps = serde_json::from_str(&text).map_err(|e| Error::PlanSteps {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            cluster_dir: dir.join("cluster"),
            secrets_dir: dir.join(crate::SECRETS_DIR),
            steps,
        })
    }

    /// Keeps only the steps of `components`.
    #[must_use]
    pub fn only(mut self, components: &BTreeSet<Component>) -> Self {
        self.steps.retain(|s| components.contains(&s.component()));
        self
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// 1-based position among the steps run.
    pub number: usize,
    /// The step's component.
    pub component: Component,
    /// [`InstallStep::label`].
    pub label: String,
    /// Objects (or releases, or Vault settings) created or changed, in a dry run those that
    /// would be; never a secret value.
    pub changed: Vec<String>,
    /// Objects already as planned.
    pub unchanged: usize,
    /// Why the step did nothing, when it did nothing on purpose (a wait in a dry run).
    pub skipped: Option<String>,
    /// Wall time of the step.
    pub wall: Duration,
    /// Of which inside API calls, `helm`, Kustomize and Vault (the rest is the runner's own).
    pub external: Duration,
}

/// What a run did, step by step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Every step run, in order.
    pub steps: Vec<StepOutcome>,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// Wall time of the whole run (checks included).
    pub wall: Duration,
}

impl RunReport {
    /// Objects created or changed over all steps.
    #[must_use]
    pub fn changed(&self) -> usize {
        self.steps.iter().map(|s| s.changed.len()).sum()
    }

    /// Objects already as planned over all steps.
    #[must_use]
    pub fn unchanged(&self) -> usize {
        self.steps.iter().map(|s| s.unchanged).sum()
    }

    /// Time spent inside API calls, `helm`, Kustomize and Vault.
    #[must_use]
    pub fn external(&self) -> Duration {
        self.steps.iter().map(|s| s.external).sum()
    }
}

/// Progress of a run, one call per step start and end (from the task running the steps).
pub trait Progress: Send + Sync {
    /// Step `number` of `total` starts.
    fn started(&self, number: usize, total: usize, step: &InstallStep) {
        let _ = (number, total, step);
    }
    /// Step `outcome.number` of `total` is done.
    fn finished(&self, total: usize, outcome: &StepOutcome) {
        let _ = (total, outcome);
    }
}

/// No progress output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}

/// One plain line per finished step on standard output, e.g.
/// `[ 3/38] traefik      apply traefik/namespace.yaml: 1 changed, 0 unchanged (0.04 s)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lines;

impl Progress for Lines {
    fn finished(&self, total: usize, o: &StepOutcome) {
        println!("{}", line(total, o));
    }
}

/// The line [`Lines`] prints for a step.
#[must_use]
pub fn line(total: usize, o: &StepOutcome) -> String {
    let width = total.to_string().len();
    let what = match &o.skipped {
        Some(why) => format!("skipped ({why})"),
        None if o.changed.is_empty() => format!("unchanged ({})", o.unchanged),
        None => format!(
            "{} changed, {} unchanged: {}",
            o.changed.len(),
            o.unchanged,
            o.changed.join(", ")
        ),
    };
    format!(
        "[{:>width$}/{total}] {:<12} {}: {what} ({:.2} s)",
        o.number,
        o.component.dir(),
        o.label,
        o.wall.as_secs_f64()
    )
}

/// Runs install steps against one cluster.
#[derive(Clone)]
pub struct Runner {
    client: kube::Client,
    kubeconfig: Option<PathBuf>,
    helm: Option<PathBuf>,
    kustomize: Option<PathBuf>,
    api_ca_pem: Option<String>,
    dry_run: bool,
    call_timeout: Duration,
    crd_timeout: Duration,
    rollout_timeout: Duration,
    poll_interval: Duration,
    helm_timeout: Duration,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("kubeconfig", &self.kubeconfig)
            .field("helm", &self.helm)
            .field("kustomize", &self.kustomize)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// Runs `f`, adding its duration to `external`.
async fn timed<T>(external: &mut Duration, f: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let r = f.await;
    *external += start.elapsed();
    r
}

/// `name` on `PATH`, if there is an executable file of that name.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A random value for a generated Secret key: 32 letters and digits from the thread-local
/// CSPRNG (190 bits).
fn random_value() -> String {
    use rand::RngExt as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Writes `value` to `path` (0600, created exclusively; its directories 0700).
fn keep_secret(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(value.as_bytes())?;
    f.sync_all()
}

/// The API server's CA (PEM) of the current context of a kubeconfig file, if it names one.
///
/// # Errors
/// [`Error::Kubeconfig`] when the file cannot be read or names no usable cluster.
pub async fn api_ca_from_kubeconfig(path: &Path) -> Result<Option<String>, Error> {
    use base64::Engine as _;
    let config = kube_config(path).await?;
    Ok(config.root_cert.map(|certs| {
        certs
            .iter()
            .map(|der| {
                let b64 = base64::engine::general_purpose::STANDARD.encode(der);
                let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
                for chunk in b64.as_bytes().chunks(64) {
                    pem.push_str(&String::from_utf8_lossy(chunk));
                    pem.push('\n');
                }
                pem.push_str("-----END CERTIFICATE-----\n");
                pem
            })
            .collect()
    }))
}

async fn kube_config(path: &Path) -> Result<kube::Config, Error> {
    let bad = |reason: String| Error::Kubeconfig {
        path: path.to_owned(),
        reason,
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))
}

/// The output of a finished command, or an error naming it.
struct Output {
    stdout: String,
}

impl Runner {
    /// A runner with defaults: 30 s per API call, CRDs Established within 60 s, rollouts within
    /// 10 min (polled every 500 ms), `helm --timeout 10m`, `helm` and Kustomize from `PATH`,
    /// no progress output.
    #[must_use]
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            kubeconfig: None,
            helm: None,
            kustomize: None,
            api_ca_pem: None,
            dry_run: false,
            call_timeout: Duration::from_secs(30),
            crd_timeout: Duration::from_secs(60),
            rollout_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_millis(500),
            helm_timeout: Duration::from_secs(600),
            progress: Arc::new(Silent),
        }
    }

    /// A runner for the cluster of a kubeconfig file's current context: the API client, the
    /// file passed to `helm --kubeconfig`, and the API server's CA (for Vault's Kubernetes
    /// auth) from it.
    ///
    /// # Errors
    /// [`Error::Kubeconfig`] when the file cannot be read or gives no usable client.
    pub async fn from_kubeconfig(path: &Path) -> Result<Self, Error> {
        let config = kube_config(path).await?;
        let client = kube::Client::try_from(config).map_err(|e| Error::Kubeconfig {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let ca = api_ca_from_kubeconfig(path).await?;
        let mut r = Self::new(client).kubeconfig(path);
        r.api_ca_pem = ca;
        Ok(r)
    }

    /// The kubeconfig file `helm` gets (`--kubeconfig`); without one helm uses its default.
    #[must_use]
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// The `helm` binary (default: `helm` on `PATH`).
    #[must_use]
    pub fn helm(mut self, path: impl Into<PathBuf>) -> Self {
        self.helm = Some(path.into());
        self
    }

    /// The Kustomize builder: a `kustomize` binary (`kustomize build DIR`) or `kubectl`
    /// (`kubectl kustomize DIR`); default `kubectl`, else `kustomize`, on `PATH`.
    #[must_use]
    pub fn kustomize(mut self, path: impl Into<PathBuf>) -> Self {
        self.kustomize = Some(path.into());
        self
    }

    /// The API server's CA (PEM) that Vault's Kubernetes auth verifies the API server with.
    #[must_use]
    pub fn api_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.api_ca_pem = Some(pem.into());
        self
    }

    /// Validate everything on the server and change nothing (see the module docs).
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Timeout of each API call.
    #[must_use]
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }

    /// How long to wait for a CRD to become Established.
    #[must_use]
    pub fn crd_timeout(mut self, d: Duration) -> Self {
        self.crd_timeout = d;
        self
    }

    /// How long to wait for a workload to roll out.
    #[must_use]
    pub fn rollout_timeout(mut self, d: Duration) -> Self {
        self.rollout_timeout = d;
        self
    }

    /// Pause between status polls.
    #[must_use]
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    /// `helm --timeout` of each release.
    #[must_use]
    pub fn helm_timeout(mut self, d: Duration) -> Self {
        self.helm_timeout = d;
        self
    }

    /// Where progress goes (default: nowhere; [`Lines`] prints a line per step).
    #[must_use]
    pub fn progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = p;
        self
    }

    fn applier(&self, component: Component) -> ka::Applier {
        ka::Applier::new(self.client.clone(), component.field_manager())
            .dry_run(self.dry_run)
            .track_changes(true)
            .call_timeout(self.call_timeout)
            .crd_timeout(self.crd_timeout)
            .rollout_timeout(self.rollout_timeout)
            .poll_interval(self.poll_interval)
    }

    fn helm_binary(&self) -> Result<PathBuf, Error> {
        match &self.helm {
            Some(p) if p.is_file() => Ok(p.clone()),
            Some(p) => Err(Error::HelmNotFound {
                looked_for: p.display().to_string(),
            }),
            None => on_path("helm").ok_or_else(|| Error::HelmNotFound {
                looked_for: "helm on PATH".into(),
            }),
        }
    }

    fn kustomize_binary(&self) -> Result<PathBuf, Error> {
        match &self.kustomize {
            Some(p) if p.is_file() => Ok(p.clone()),
            Some(p) => Err(Error::KustomizeNotFound {
                looked_for: p.display().to_string(),
            }),
            None => on_path("kubectl")
                .or_else(|| on_path("kustomize"))
                .ok_or_else(|| Error::KustomizeNotFound {
                    looked_for: "kubectl or kustomize on PATH".into(),
                }),
        }
    }

    /// Runs every step of `plan` in order (see the module docs).
    ///
    /// # Errors
    /// Before any step: [`Error::HelmNotFound`], [`Error::KustomizeNotFound`],
    /// [`Error::InvalidInput`] (no API server CA for Vault). Then [`Error::Step`] for the
    /// first failing step, whose source says what failed; later steps do not run.
    pub async fn run(&self, plan: &Plan) -> Result<RunReport, Error> {
        let start = Instant::now();
        let needs = |f: fn(&InstallStep) -> bool| plan.steps.iter().any(f);
        let helm = if needs(|s| matches!(s, InstallStep::Helm(_))) {
            Some(self.helm_binary()?)
        } else {
            None
        };
        let kustomize = if needs(|s| matches!(s, InstallStep::ApplyKustomize { .. })) {
            Some(self.kustomize_binary()?)
        } else {
            None
        };
        if needs(|s| matches!(s, InstallStep::VaultKubernetesAuth(_)))
            && self.api_ca_pem.is_none()
            && !self.dry_run
        {
            return Err(Error::invalid(
                "kubeconfig",
                "Vault's Kubernetes auth needs the API server's CA: the kubeconfig names none \
                 (give it with certificate-authority or Runner::api_ca_pem)",
            ));
        }
        if needs(|s| matches!(s, InstallStep::VaultBootstrap(_))) {
            // In-cluster Vault's TLS comes with the plan: without it nothing can talk to the pods.
            vault_ca(plan)?;
        }
        let total = plan.steps.len();
        let mut report = RunReport {
            dry_run: self.dry_run,
            ..RunReport::default()
        };
        for (i, step) in plan.steps.iter().enumerate() {
            let number = i + 1;
            self.progress.started(number, total, step);
            let step_start = Instant::now();
            let mut o = StepOutcome {
                number,
                component: step.component(),
                label: step.label(),
                changed: vec![],
                unchanged: 0,
                skipped: None,
                wall: Duration::ZERO,
                external: Duration::ZERO,
            };
            let result = self
                .step(plan, step, helm.as_deref(), kustomize.as_deref(), &mut o)
                .await;
            o.wall = step_start.elapsed();
            tracing::info!(
                step = number,
                component = step.component().dir(),
                changed = o.changed.len(),
                unchanged = o.unchanged,
                ok = result.is_ok(),
                "install step"
            );
            if let Err(source) = result {
                return Err(Error::Step {
                    number,
                    step: o.label,
                    source: Box::new(source),
                });
            }
            self.progress.finished(total, &o);
            report.steps.push(o);
        }
        report.wall = start.elapsed();
        Ok(report)
    }

    async fn step(
        &self,
        plan: &Plan,
        step: &InstallStep,
        helm: Option<&Path>,
        kustomize: Option<&Path>,
        o: &mut StepOutcome,
    ) -> Result<(), Error> {
        match step {
            InstallStep::Apply { component, files } => {
                let mut manifests = Vec::new();
                for f in files {
                    let path = plan.cluster_dir.join(f);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|source| Error::PlanFile { path, source })?;
                    manifests.extend(
                        ka::Manifest::parse_yaml(f, &text).map_err(|e| convert(*component, e))?,
                    );
                }
                self.apply(*component, &manifests, o).await
            }
            InstallStep::ApplyKustomize { component, dir } => {
                let builder = kustomize.ok_or_else(|| Error::KustomizeNotFound {
                    looked_for: "kubectl or kustomize".into(),
                })?;
                let path = plan.cluster_dir.join(dir);
                let is_kubectl = builder
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("kubectl"));
                let sub = if is_kubectl { "kustomize" } else { "build" };
                let args = vec![sub.to_owned(), path.display().to_string()];
                let out = timed(&mut o.external, self.command(builder, &args)).await?;
                let manifests = ka::Manifest::parse_yaml(dir, &out.stdout)
                    .map_err(|e| convert(*component, e))?;
                self.apply(*component, &manifests, o).await
            }
            InstallStep::Helm(h) => {
                let helm = helm.ok_or_else(|| Error::HelmNotFound {
                    looked_for: "helm".into(),
                })?;
                self.helm_release(plan, h, helm, o).await
            }
            InstallStep::WaitCrds { component, crds } => {
                if self.dry_run {
                    o.skipped = Some("dry run".into());
                    return Ok(());
                }
                let applier = self.applier(*component);
                for name in crds {
                    timed(&mut o.external, applier.wait_established(name))
                        .await
                        .map_err(|e| convert(*component, e))?;
                }
                Ok(())
            }
            InstallStep::WaitRollout {
                component,
                kind,
                namespace,
                name,
            } => {
                if self.dry_run {
                    o.skipped = Some("dry run".into());
                    return Ok(());
                }
                let w = crate::apply::workload(*kind);
                timed(
                    &mut o.external,
                    self.applier(*component).wait_rollout(w, namespace, name),
                )
                .await
                .map_err(|e| convert(*component, e))
            }
            InstallStep::Secret {
                component,
                namespace,
                name,
                literals,
                generated,
                from_files,
            } => {
                let mut data: BTreeMap<String, ByteString> = literals
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                    .collect();
                for key in generated {
                    let path = plan
                        .secrets_dir
                        .join(secret_value_path(namespace, name, key));
                    let value = match std::fs::read(&path) {
                        Ok(v) => v,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            let v = random_value();
                            if !self.dry_run {
                                keep_secret(&path, &v)
                                    .map_err(|source| Error::PlanFile { path, source })?;
                            }
                            v.into_bytes()
                        }
                        Err(source) => return Err(Error::PlanFile { path, source }),
                    };
                    data.insert(key.clone(), ByteString(value));
                }
                for (key, rel) in from_files {
                    let path = plan.secrets_dir.join(rel);
                    let value = std::fs::read(&path).map_err(|source| Error::SecretFile {
                        secret: format!("{namespace}/{name}"),
                        key: key.clone(),
                        path,
                        source,
                    })?;
                    data.insert(key.clone(), ByteString(value));
                }
                let secret = k8s_openapi::api::core::v1::Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(namespace.clone()),
                        labels: Some(
                            [(
                                "app.kubernetes.io/managed-by".to_owned(),
                                "hakube".to_owned(),
                            )]
                            .into(),
                        ),
                        ..Default::default()
                    },
                    type_: Some("Opaque".into()),
                    data: Some(data),
                    ..Default::default()
                };
                let mut body = serde_json::to_value(&secret).unwrap_or_default();
                body["apiVersion"] = json!("v1");
                body["kind"] = json!("Secret");
                let m = ka::Manifest::new(format!("secret {namespace}/{name}"), 0, body);
                self.apply(*component, &[m], o).await
            }
            InstallStep::VaultKubernetesAuth(v) => self.vault_auth(plan, v, o).await,
            InstallStep::VaultBootstrap(v) => self.vault_bootstrap(plan, v, o).await,
        }
    }

    async fn apply(
        &self,
        component: Component,
        manifests: &[ka::Manifest],
        o: &mut StepOutcome,
    ) -> Result<(), Error> {
        let r = match timed(&mut o.external, self.applier(component).apply(manifests)).await {
            Ok(r) => r,
            // In a dry run, a kind whose CRD an earlier step (a chart) installs is not served
            // yet: nothing of the step can be checked.
            Err(ka::Error::UnknownKind {
                api_version, kind, ..
            }) if self.dry_run => {
                o.skipped = Some(format!(
                    "dry run: {api_version} {kind} not served yet (its CRD comes from an earlier step)"
                ));
                return Ok(());
            }
            // Likewise a namespace an earlier step (or chart) creates.
            Err(ka::Error::Kube {
                source: kube::Error::Api(s),
                ..
            }) if self.dry_run
                && s.code == 404
                && s.details.as_ref().is_some_and(|d| d.kind == "namespaces") =>
            {
                o.skipped = Some(format!(
                    "dry run: {} (an earlier step creates it)",
                    s.message
                ));
                return Ok(());
            }
            Err(e) => return Err(convert(component, e)),
        };
        o.unchanged += r.unchanged();
        o.changed.extend(r.changed);
        Ok(())
    }

    /// Runs a command to completion; a non-zero exit is [`Error::Command`] with its standard
    /// error.
    async fn command(&self, program: &Path, args: &[String]) -> Result<Output, Error> {
        let shown = format!("{} {}", program.display(), args.join(" "));
        tracing::debug!(command = %shown, "running");
        let out = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| Error::Spawn {
                program: program.to_owned(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Command {
                command: shown,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
    }

    fn kubeconfig_args(&self) -> Vec<String> {
        self.kubeconfig
            .iter()
            .flat_map(|k| ["--kubeconfig".to_owned(), k.display().to_string()])
            .collect()
    }

    /// Whether release `h` is deployed with the pinned chart and exactly `values`.
    async fn release_current(
        &self,
        h: &HelmRelease,
        helm: &Path,
        values: &Value,
        o: &mut StepOutcome,
    ) -> Result<bool, Error> {
        let mut args: Vec<String> = [
            "list",
            "--namespace",
            &h.namespace,
            "--filter",
            &format!("^{}$", h.release),
            "--output",
            "json",
        ]
        .map(str::to_owned)
        .into();
        args.extend(self.kubeconfig_args());
        let out = timed(&mut o.external, self.command(helm, &args)).await?;
        let list: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
        let chart = format!("{}-{}", h.chart.name, h.chart.version);
        let deployed = list.as_array().is_some_and(|l| {
            l.iter().any(|r| {
                r["name"] == h.release.as_str()
                    && r["status"] == "deployed"
                    && r["chart"] == chart.as_str()
            })
        });
        if !deployed {
            return Ok(false);
        }
        let mut args: Vec<String> = [
            "get",
            "values",
            &h.release,
            "--namespace",
            &h.namespace,
            "--output",
            "json",
        ]
        .map(str::to_owned)
        .into();
        args.extend(self.kubeconfig_args());
        let out = timed(&mut o.external, self.command(helm, &args)).await?;
        let mut have: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
        if have.is_null() {
            have = json!({});
        }
        Ok(&have == values)
    }

    async fn helm_release(
        &self,
        plan: &Plan,
        h: &HelmRelease,
        helm: &Path,
        o: &mut StepOutcome,
    ) -> Result<(), Error> {
        let path = plan.cluster_dir.join(&h.values_file);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::PlanFile {
            path: path.clone(),
            source,
        })?;
        let mut values: Value = serde_saphyr::from_str(&text).map_err(|e| Error::Manifest {
            path: h.values_file.clone(),
            index: 0,
            reason: e.to_string(),
        })?;
        if values.is_null() {
            values = json!({});
        }
        let what = format!("release {}/{}", h.namespace, h.release);
        if self.release_current(h, helm, &values, o).await? {
            o.unchanged += 1;
            return Ok(());
        }
        let cluster_dir = plan.cluster_dir.display().to_string();
        let mut args: Vec<String> = h.argv(&cluster_dir).into_iter().skip(1).collect();
        if self.dry_run {
            args.retain(|a| a != "--atomic" && a != "--wait");
            args.push("--dry-run=server".into());
        }
        if let Some(t) = args.iter().position(|a| a == "--timeout")
            && let Some(v) = args.get_mut(t + 1)
        {
            *v = format!("{}s", self.helm_timeout.as_secs());
        }
        args.extend(self.kubeconfig_args());
        timed(&mut o.external, self.command(helm, &args)).await?;
        o.changed.push(what);
        Ok(())
    }

    async fn vault_auth(
        &self,
        plan: &Plan,
        v: &VaultKubernetesAuth,
        o: &mut StepOutcome,
    ) -> Result<(), Error> {
        use hakube_vault::bootstrap::{KeyStore as _, KubernetesAuthSpec};
        let vault_ca = vault_ca(plan)?;
        let store =
            hakube_vault::bootstrap::FileKeyStore::new(plan.secrets_dir.join(vault_secrets::INIT));
        let init = store.load().map_err(|source| Error::Vault {
            action: format!("read {}", store.describe()),
            source,
        })?;
        if self.dry_run {
            // In-cluster Vault is initialised by an earlier step of the same run, which a dry
            // run does not perform.
            o.skipped = Some("dry run: Vault not contacted".into());
            return Ok(());
        }
        let init = init.ok_or_else(|| Error::VaultNotInitialised {
            path: store.path().to_owned(),
        })?;
        let api_ca = self.api_ca_pem.clone().unwrap_or_default();
        let sa: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
            kube::Api::namespaced(self.client.clone(), &v.reviewer_namespace);
        let request = k8s_openapi::api::authentication::v1::TokenRequest {
            spec: Some(k8s_openapi::api::authentication::v1::TokenRequestSpec {
                expiration_seconds: Some(v.reviewer_token_seconds),
                ..Default::default()
            }),
            ..Default::default()
        };
        let object = format!(
            "ServiceAccount {}/{}",
            v.reviewer_namespace, v.reviewer_service_account
        );
        let answer = timed(
            &mut o.external,
            tokio::time::timeout(
                self.call_timeout,
                sa.create_token_request(
                    &v.reviewer_service_account,
                    &kube::api::PostParams::default(),
                    &request,
                ),
            ),
        )
        .await
        .map_err(|_| Error::Kube {
            action: format!("create token for {object}"),
            source: kube::Error::Service("no answer in time".into()),
        })?
        .map_err(|source| Error::Kube {
            action: format!("create token for {object}"),
            source,
        })?;
        let jwt = answer
            .status
            .and_then(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Kube {
                action: format!("create token for {object}"),
                source: kube::Error::Service("the TokenRequest answer holds no token".into()),
            })?;
        let (_tunnels, endpoints) = match &v.pods {
            Some(pods) => {
                let tunnels = timed(&mut o.external, self.tunnels(pods)).await?;
                let endpoints = pod_endpoints(&tunnels);
                (tunnels, endpoints)
            }
            None => (
                Vec::new(),
                vec![hakube_vault::client::Endpoint {
                    name: "vault".into(),
                    url: v.vault_url.clone(),
                }],
            ),
        };
        let client = hakube_vault::client::Client::new(endpoints, &vault_ca, self.call_timeout)
            .map_err(|source| Error::Vault {
                action: format!("connect to {}", v.vault_url),
                source,
            })?;
        let spec = KubernetesAuthSpec {
            mount: v.mount.clone(),
            host: v.kubernetes_host.clone(),
            ca_pem: api_ca,
            reviewer_jwt: hakube_host_state::Secret::new(jwt),
            role: v.role.clone(),
            service_accounts: v.service_accounts.clone(),
            namespaces: v.namespaces.clone(),
            audience: v.audience.clone(),
            policies: v.policies.clone(),
            ttl: v.ttl.clone(),
        };
        let mut changes = hakube_vault::bootstrap::Report::default();
        timed(
            &mut o.external,
            hakube_vault::bootstrap::configure_kubernetes_auth(
                &client,
                &init.root_token,
                &spec,
                false,
                &mut changes,
            ),
        )
        .await
        .map_err(|source| Error::Vault {
            action: format!("configure Kubernetes auth at {}", v.vault_url),
            source,
        })?;
        if changes.changes.is_empty() {
            o.unchanged += 3; // the mount, its config, the role
        }
        o.changed
            .extend(changes.changes.iter().map(|c| format!("vault: {c}")));
        Ok(())
    }

    /// Port-forwards to every pod of `pods`, in order, each once it runs (the StatefulSet's
    /// pods may still be starting when `helm --wait` returns; a sealed Vault pod runs but is
    /// never Ready, so running is what is waited for).
    async fn tunnels(&self, pods: &VaultPods) -> Result<Vec<PodTunnel>, Error> {
        let mut tunnels = Vec::with_capacity(pods.pods.len());
        for pod in &pods.pods {
            self.wait_running(&pods.namespace, pod).await?;
            tunnels
                .push(PodTunnel::open(self.client.clone(), &pods.namespace, pod, pods.port).await?);
        }
        Ok(tunnels)
    }

    /// Waits until `namespace/name` is in phase Running.
    async fn wait_running(&self, namespace: &str, name: &str) -> Result<(), Error> {
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(self.client.clone(), namespace);
        let start = Instant::now();
        loop {
            let pod = api.get_opt(name).await.map_err(|source| Error::Kube {
                action: format!("get pod {namespace}/{name}"),
                source,
            })?;
            let phase = pod
                .as_ref()
                .and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.clone());
            if phase.as_deref() == Some("Running") {
                return Ok(());
            }
            if start.elapsed() >= self.rollout_timeout {
                return Err(Error::PodNotRunning {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    waited_secs: start.elapsed().as_secs(),
                    state: match (pod, phase) {
                        (None, _) => "not found".into(),
                        (Some(_), Some(p)) => format!("phase {p}"),
                        (Some(_), None) => "no status yet".into(),
                    },
                });
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// In-cluster Vault: `hakube_vault::bootstrap::bootstrap` (init once, keys kept before
    /// anything else, unseal every sealed pod, wait for raft voters, the PKI) over
    /// port-forwards to the pods.
    async fn vault_bootstrap(
        &self,
        plan: &Plan,
        v: &VaultBootstrap,
        o: &mut StepOutcome,
    ) -> Result<(), Error> {
        use hakube_vault::bootstrap::{BootstrapSpec, FileKeyStore, PkiSpec, bootstrap};
        let vault_ca = vault_ca(plan)?;
        if self.dry_run {
            o.skipped = Some("dry run: Vault not contacted".into());
            return Ok(());
        }
        let dir = plan.secrets_dir.join("vault");
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|source| Error::PlanFile {
                path: dir.clone(),
                source,
            })?;
        let store = FileKeyStore::new(plan.secrets_dir.join(vault_secrets::INIT));
        let tunnels = timed(&mut o.external, self.tunnels(&v.pods)).await?;
        let client = hakube_vault::client::Client::new(
            pod_endpoints(&tunnels),
            &vault_ca,
            self.call_timeout,
        )
        .map_err(|source| Error::Vault {
            action: "connect to the Vault pods".into(),
            source,
        })?;
        let pki = PkiSpec::new(
            &v.organisation,
            &v.urls_base,
            &v.pki_role,
            v.allowed_domains.clone(),
        )
        .named(&v.root_mount, &v.int_mount, &v.signer_policy);
        let spec = BootstrapSpec {
            // No raft snapshot job runs in the cluster to use it.
            snapshot_token: false,
            ..BootstrapSpec::new(Some(pki))
        };
        let report = timed(&mut o.external, bootstrap(&client, &store, &spec))
            .await
            .map_err(|source| Error::Vault {
                action: format!(
                    "bootstrap pods {}/{}",
                    v.pods.namespace,
                    v.pods.pods.join(",")
                ),
                source,
            })?;
        if report.is_empty() {
            // Every pod unsealed and a voter; the two PKI mounts, the role, the policy.
            o.unchanged += v.pods.pods.len() + 4;
        }
        o.changed
            .extend(report.changes.iter().map(|c| format!("vault: {c}")));
        Ok(())
    }
}
