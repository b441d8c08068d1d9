//! A plan executor: a named list of steps (push a file tree, run a command, run a command only
//! if an earlier push changed something, wait for a TCP port) applied to hosts, with a dry run
//! that reports what would change without changing anything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::fanout::{FailureMode, FanOut, NoProgress, Progress, fan_out};
use crate::{Command, Error, ExitStatus, PushOutcome, RemoteExec, Upload, diff_file, push_file};

/// Files per host: what `hosts/<host>/<absolute path>` in the plan tree holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileTree {
    files: BTreeMap<String, Vec<Upload>>,
}

impl FileTree {
    /// An empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file for a host.
    #[must_use]
    pub fn file(mut self, host: impl Into<String>, upload: Upload) -> Self {
        self.files.entry(host.into()).or_default().push(upload);
        self
    }

    /// Reads `<root>/hosts/<host>/<path>` (the plan tree layout): every regular file under
    /// `hosts/<host>/` becomes an upload to `/<path>` on that host, with the local file's mode.
    /// Owner is left unset. Symlinks are refused (a tree must be self-contained).
    ///
    /// # Errors
    /// [`Error::LocalFile`] when the tree cannot be read or holds something other than
    /// directories and regular files.
    pub fn from_dir(root: &Path) -> Result<Self, Error> {
        let hosts_dir = root.join("hosts");
        let mut tree = Self::new();
        for host in read_dir_sorted(&hosts_dir)? {
            let meta = std::fs::symlink_metadata(&host).map_err(|e| local(&host, &e))?;
            if !meta.is_dir() {
                continue;
            }
            let name = host
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut stack = vec![host.clone()];
            let mut uploads = Vec::new();
            while let Some(dir) = stack.pop() {
                for entry in read_dir_sorted(&dir)? {
                    let meta = std::fs::symlink_metadata(&entry).map_err(|e| local(&entry, &e))?;
                    if meta.is_dir() {
                        stack.push(entry);
                    } else if meta.is_file() {
                        let rel = entry.strip_prefix(&host).map_err(|e| Error::LocalFile {
                            path: entry.clone(),
                            reason: e.to_string(),
                        })?;
                        let content = std::fs::read(&entry).map_err(|e| local(&entry, &e))?;
                        let remote = format!("/{}", rel.to_string_lossy());
                        let mode = {
                            #[cfg(unix)]
                            {
                                std::os::unix::fs::PermissionsExt::mode(&meta.permissions())
                                    & 0o7777
                            }
                            #[cfg(not(unix))]
                            {
                                0o644
                            }
                        };
                        uploads.push(Upload::new(remote, content).mode(mode));
                    } else {
                        return Err(Error::LocalFile {
                            path: entry,
                            reason: "not a regular file or directory (symlinks are refused)".into(),
                        });
                    }
                }
            }
            uploads.sort_by(|a, b| a.path.cmp(&b.path));
            tree.files.insert(name, uploads);
        }
        Ok(tree)
    }

    /// The files for one host (empty if none).
    #[must_use]
    pub fn files_for(&self, host: &str) -> &[Upload] {
        self.files.get(host).map_or(&[], Vec::as_slice)
    }

    /// Host names that have files.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Applies `f` to every upload (for example to set an owner or sudo for all files).
    #[must_use]
    pub fn map_uploads(mut self, f: impl Fn(Upload) -> Upload) -> Self {
        for list in self.files.values_mut() {
            let taken = std::mem::take(list);
            *list = taken.into_iter().map(&f).collect();
        }
        self
    }
}

fn local(path: &Path, e: &std::io::Error) -> Error {
    Error::LocalFile {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<std::path::PathBuf>, Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| local(dir, &e))? {
        out.push(entry.map_err(|e| local(dir, &e))?.path());
    }
    out.sort();
    Ok(out)
}

/// Which hosts a step applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostFilter {
    /// Every host given to the executor.
    All,
    /// Only these host names.
    Only(Vec<String>),
}

impl HostFilter {
    fn includes(&self, host: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.iter().any(|n| n == host),
        }
    }
}

/// What a step does on each host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Pushes each host's files from the tree idempotently (hosts without files do nothing).
    PushTree(FileTree),
    /// Runs a command; a non-zero exit fails the host.
    Run(Command),
    /// Runs a command only on hosts where one of the named earlier push steps changed a file.
    RunIfChanged {
        /// The command.
        command: Command,
        /// Names of earlier `PushTree` steps to watch.
        watch: Vec<String>,
    },
    /// Waits until a TCP port on the host's address accepts connections.
    WaitForPort {
        /// The port.
        port: u16,
        /// How long to wait.
        timeout: Duration,
    },
}

/// One named step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Unique name within the plan (shown in reports, logs and progress).
    pub name: String,
    /// The hosts it applies to.
    pub hosts: HostFilter,
    /// What it does.
    pub action: Action,
}

/// A named, validated list of steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    name: String,
    steps: Vec<Step>,
}

/// Builds a [`Plan`]; [`PlanBuilder::build`] validates it.
#[derive(Debug, Clone)]
pub struct PlanBuilder {
    name: String,
    steps: Vec<Step>,
}

impl Plan {
    /// Starts a plan.
    #[must_use]
    pub fn builder(name: impl Into<String>) -> PlanBuilder {
        PlanBuilder {
            name: name.into(),
            steps: Vec::new(),
        }
    }

    /// The plan's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The steps, in order.
    #[must_use]
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

impl PlanBuilder {
    /// Appends a step.
    #[must_use]
    pub fn step(mut self, name: impl Into<String>, hosts: HostFilter, action: Action) -> Self {
        self.steps.push(Step {
            name: name.into(),
            hosts,
            action,
        });
        self
    }

    /// Validates: unique non-empty step names, `RunIfChanged` watching earlier `PushTree` steps,
    /// valid uploads and commands.
    ///
    /// # Errors
    /// [`Error::InvalidPlan`] naming the step (and host/path where relevant).
    pub fn build(self) -> Result<Plan, Error> {
        let invalid = |reason: String| Error::InvalidPlan {
            plan: self.name.clone(),
            reason,
        };
        let mut pushes = HashSet::new();
        let mut seen = HashSet::new();
        for step in &self.steps {
            if step.name.is_empty() {
                return Err(invalid("a step has an empty name".into()));
            }
            if !seen.insert(step.name.as_str()) {
                return Err(invalid(format!("duplicate step name {:?}", step.name)));
            }
            match &step.action {
                Action::PushTree(tree) => {
                    for host in tree.hosts() {
                        for f in tree.files_for(host) {
                            f.validate().map_err(|e| {
                                invalid(format!("step {:?}, host {host}: {e}", step.name))
                            })?;
                        }
                    }
                    pushes.insert(step.name.as_str());
                }
                Action::Run(cmd) => {
                    cmd.to_shell(true)
                        .map_err(|e| invalid(format!("step {:?}: {e}", step.name)))?;
                }
                Action::RunIfChanged { command, watch } => {
                    command
                        .to_shell(true)
                        .map_err(|e| invalid(format!("step {:?}: {e}", step.name)))?;
                    if watch.is_empty() {
                        return Err(invalid(format!("step {:?} watches no step", step.name)));
                    }
                    for w in watch {
                        if !pushes.contains(w.as_str()) {
                            return Err(invalid(format!(
                                "step {:?} watches {w:?}, which is not an earlier push step",
                                step.name
                            )));
                        }
                    }
                }
                Action::WaitForPort { port, .. } => {
                    if *port == 0 {
                        return Err(invalid(format!("step {:?}: port 0", step.name)));
                    }
                }
            }
        }
        Ok(Plan {
            name: self.name,
            steps: self.steps,
        })
    }
}

/// What a step did (or would do) on one host.
#[derive(Debug)]
#[non_exhaustive]
pub enum StepOutcome {
    /// Files pushed (or compared, in a dry run), with what happened to each.
    Pushed(Vec<(String, PushOutcome)>),
    /// The command ran and succeeded.
    Ran(ExitStatus),
    /// Dry run: the command would run (redacted command line).
    WouldRun(String),
    /// `RunIfChanged`: nothing watched changed, so the command did not run.
    NotNeeded,
    /// The port accepted a connection.
    PortOpen,
    /// Dry run: would wait for the port.
    WouldWait(u16),
    /// The step failed on this host.
    Failed(Error),
    /// Not run: the host failed an earlier step, or the plan stopped (fail-fast).
    Skipped,
}

impl StepOutcome {
    /// True if files changed (or would change).
    #[must_use]
    pub fn changed(&self) -> bool {
        match self {
            Self::Pushed(files) => files.iter().any(|(_, o)| o.changed()),
            Self::Ran(_) | Self::WouldRun(_) => true,
            _ => false,
        }
    }
}

impl fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pushed(files) => {
                let changed: Vec<_> = files.iter().filter(|(_, o)| o.changed()).collect();
                if changed.is_empty() {
                    write!(f, "unchanged ({} files)", files.len())
                } else {
                    let list: Vec<String> =
                        changed.iter().map(|(p, o)| format!("{p} ({o})")).collect();
                    write!(
                        f,
                        "{} of {} files changed: {}",
                        changed.len(),
                        files.len(),
                        list.join(", ")
                    )
                }
            }
            Self::Ran(status) => write!(f, "ran ({status})"),
            Self::WouldRun(cmd) => write!(f, "would run `{cmd}`"),
            Self::NotNeeded => f.write_str("not needed (nothing watched changed)"),
            Self::PortOpen => f.write_str("port open"),
            Self::WouldWait(port) => write!(f, "would wait for port {port}"),
            Self::Failed(e) => write!(f, "FAILED: {e}"),
            Self::Skipped => f.write_str("skipped"),
        }
    }
}

/// The results of one step.
#[derive(Debug)]
pub struct StepReport {
    /// The step's name.
    pub step: String,
    /// (host, outcome) for every host the step applies to, in host order.
    pub hosts: Vec<(String, StepOutcome)>,
}

/// The results of a plan run or dry run.
#[derive(Debug)]
pub struct PlanReport {
    /// The plan's name.
    pub plan: String,
    /// Whether this was a dry run (nothing was changed).
    pub dry_run: bool,
    /// One report per step, in order.
    pub steps: Vec<StepReport>,
}

impl PlanReport {
    /// True when no host failed any step.
    #[must_use]
    pub fn success(&self) -> bool {
        self.failures().next().is_none()
    }

    /// (step, host, error) for every failure.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str, &Error)> {
        self.steps.iter().flat_map(|s| {
            s.hosts.iter().filter_map(move |(h, o)| match o {
                StepOutcome::Failed(e) => Some((s.step.as_str(), h.as_str(), e)),
                _ => None,
            })
        })
    }

    /// The outcome of a step on a host.
    #[must_use]
    pub fn outcome(&self, step: &str, host: &str) -> Option<&StepOutcome> {
        self.steps
            .iter()
            .find(|s| s.step == step)
            .and_then(|s| s.hosts.iter().find(|(h, _)| h == host))
            .map(|(_, o)| o)
    }
}

impl fmt::Display for PlanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan {}{}",
            self.plan,
            if self.dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            }
        )?;
        for s in &self.steps {
            writeln!(f, "step {}", s.step)?;
            for (host, outcome) in &s.hosts {
                writeln!(f, "  {host}: {outcome}")?;
            }
        }
        Ok(())
    }
}

/// Checks whether a TCP port is open (a seam so the executor can be tested without sockets).
#[async_trait]
pub trait PortProbe: Send + Sync {
    /// True if `address:port` accepts a TCP connection now.
    async fn is_open(&self, address: &str, port: u16) -> bool;
}

/// Connects from this machine with a 1 s connect timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpProbe;

#[async_trait]
impl PortProbe for TcpProbe {
    async fn is_open(&self, address: &str, port: u16) -> bool {
        let connect = tokio::net::TcpStream::connect((address, port));
        matches!(
            tokio::time::timeout(Duration::from_secs(1), connect).await,
            Ok(Ok(_))
        )
    }
}

/// Applies plans to a set of hosts.
///
/// A host that fails a step skips the rest of the plan; other hosts go on (or, with
/// [`FanOut::fail_fast`], the whole plan stops after the failing step).
pub struct Executor {
    hosts: Vec<Arc<dyn RemoteExec>>,
    fan_out: FanOut,
    progress: Arc<dyn Progress>,
    probe: Arc<dyn PortProbe>,
    poll: Duration,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<&str> = self.hosts.iter().map(|h| h.host()).collect();
        f.debug_struct("Executor")
            .field("hosts", &hosts)
            .field("fan_out", &self.fan_out)
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// An executor for these hosts, with default fan-out, no progress callback and a TCP probe.
    #[must_use]
    pub fn new(hosts: Vec<Arc<dyn RemoteExec>>) -> Self {
        Self {
            hosts,
            fan_out: FanOut::default(),
            progress: Arc::new(NoProgress),
            probe: Arc::new(TcpProbe),
            poll: Duration::from_millis(200),
        }
    }

    /// Sets concurrency and failure mode.
    #[must_use]
    pub fn fan_out(mut self, fan_out: FanOut) -> Self {
        self.fan_out = fan_out;
        self
    }

    /// Sets the progress receiver.
    #[must_use]
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Replaces the port probe (tests).
    #[must_use]
    pub fn port_probe(mut self, probe: Arc<dyn PortProbe>, poll: Duration) -> Self {
        self.probe = probe;
        self.poll = poll;
        self
    }

    /// Applies the plan.
    pub async fn apply(&self, plan: &Plan) -> PlanReport {
        self.execute(plan, false).await
    }

    /// Reports what applying the plan would do, changing nothing: which files differ (compared
    /// by SHA-256, mode and owner on the host), which commands would run.
    pub async fn dry_run(&self, plan: &Plan) -> PlanReport {
        self.execute(plan, true).await
    }

    async fn execute(&self, plan: &Plan, dry_run: bool) -> PlanReport {
        let span = tracing::info_span!("plan", plan = %plan.name, dry_run);
        let _enter = span.enter();
        let mut report = PlanReport {
            plan: plan.name.clone(),
            dry_run,
            steps: Vec::new(),
        };
        let mut dead: HashSet<String> = HashSet::new();
        // (step, host) -> files changed
        let mut changed: HashMap<(String, String), bool> = HashMap::new();
        let mut stop = false;
        for step in &plan.steps {
            let selected: Vec<Arc<dyn RemoteExec>> = self
                .hosts
                .iter()
                .filter(|h| step.hosts.includes(h.host()))
                .cloned()
                .collect();
            let mut outcomes: Vec<(String, StepOutcome)> = Vec::new();
            if stop {
                outcomes = selected
                    .iter()
                    .map(|h| (h.host().to_owned(), StepOutcome::Skipped))
                    .collect();
                report.steps.push(StepReport {
                    step: step.name.clone(),
                    hosts: outcomes,
                });
                continue;
            }
            let live: Vec<Arc<dyn RemoteExec>> = selected
                .iter()
                .filter(|h| !dead.contains(h.host()))
                .cloned()
                .collect();
            let changed_ref = &changed;
            let results = fan_out(
                &live,
                &step.name,
                &self.fan_out,
                self.progress.as_ref(),
                |h| async move { self.run_step(step, h.as_ref(), dry_run, changed_ref).await },
            )
            .await;
            let mut by_host: HashMap<String, StepOutcome> = HashMap::new();
            for r in results {
                let outcome = match r.result {
                    Ok(o) => o,
                    Err(Error::Skipped { .. }) => StepOutcome::Skipped,
                    Err(e) => StepOutcome::Failed(e),
                };
                if matches!(outcome, StepOutcome::Failed(_) | StepOutcome::Skipped) {
                    dead.insert(r.host.clone());
                    if self.fan_out.failure == FailureMode::FailFast {
                        stop = true;
                    }
                }
                if let StepOutcome::Pushed(files) = &outcome {
                    changed.insert(
                        (step.name.clone(), r.host.clone()),
                        files.iter().any(|(_, o)| o.changed()),
                    );
                }
                by_host.insert(r.host, outcome);
            }
            for h in &selected {
                let o = by_host.remove(h.host()).unwrap_or(StepOutcome::Skipped);
                outcomes.push((h.host().to_owned(), o));
            }
            report.steps.push(StepReport {
                step: step.name.clone(),
                hosts: outcomes,
            });
        }
        report
    }

    async fn run_step(
        &self,
        step: &Step,
        host: &dyn RemoteExec,
        dry_run: bool,
        changed: &HashMap<(String, String), bool>,
    ) -> Result<StepOutcome, Error> {
        match &step.action {
            Action::PushTree(tree) => {
                let mut files = Vec::new();
                for f in tree.files_for(host.host()) {
                    let outcome = if dry_run {
                        diff_file(host, f).await?
                    } else {
                        push_file(host, f).await?
                    };
                    files.push((f.path.clone(), outcome));
                }
                Ok(StepOutcome::Pushed(files))
            }
            Action::Run(cmd) => {
                if dry_run {
                    return Ok(StepOutcome::WouldRun(cmd.redacted()));
                }
                Ok(StepOutcome::Ran(host.run_ok(cmd).await?.status))
            }
            Action::RunIfChanged { command, watch } => {
                let any = watch.iter().any(|w| {
                    changed
                        .get(&(w.clone(), host.host().to_owned()))
                        .copied()
                        .unwrap_or(false)
                });
                if !any {
                    return Ok(StepOutcome::NotNeeded);
                }
                if dry_run {
                    return Ok(StepOutcome::WouldRun(command.redacted()));
                }
                Ok(StepOutcome::Ran(host.run_ok(command).await?.status))
            }
            Action::WaitForPort { port, timeout } => {
                if dry_run {
                    return Ok(StepOutcome::WouldWait(*port));
                }
                let deadline = tokio::time::Instant::now() + *timeout;
                loop {
                    if self.probe.is_open(host.address(), *port).await {
                        return Ok(StepOutcome::PortOpen);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::PortWait {
                            host: host.host().to_owned(),
                            port: *port,
                            timeout: *timeout,
                        });
                    }
                    tokio::time::sleep(self.poll).await;
                }
            }
        }
    }
}
