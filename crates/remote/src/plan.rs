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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::testing::{Call, FakeHost};

    fn hosts(fakes: &[Arc<FakeHost>]) -> Vec<Arc<dyn RemoteExec>> {
        fakes
            .iter()
            .map(|f| Arc::clone(f) as Arc<dyn RemoteExec>)
            .collect()
    }

    fn lb_plan(cfg1: &str, cfg2: &str) -> Plan {
        let tree = FileTree::new()
            .file("lb1", Upload::new("/etc/haproxy/haproxy.cfg", cfg1))
            .file("lb2", Upload::new("/etc/haproxy/haproxy.cfg", cfg2))
            .file(
                "lb2",
                Upload::new("/etc/keepalived/keepalived.conf", "vrrp").mode(0o600),
            );
        Plan::builder("lb")
            .step("config", HostFilter::All, Action::PushTree(tree))
            .step(
                "reload",
                HostFilter::All,
                Action::RunIfChanged {
                    command: Command::new("systemctl")
                        .args(["reload", "haproxy"])
                        .sudo(true),
                    watch: vec!["config".into()],
                },
            )
            .step(
                "check",
                HostFilter::Only(vec!["lb1".into()]),
                Action::Run(Command::new("haproxy").arg("-v")),
            )
            .build()
            .expect("valid")
    }

    #[tokio::test]
    async fn apply_pushes_and_reloads_only_where_changed() {
        let lb1 = Arc::new(FakeHost::new("lb1"));
        let lb2 = Arc::new(FakeHost::new("lb2").non_root());
        lb1.put_file("/etc/haproxy/haproxy.cfg", "same", 0o644);
        let exec = Executor::new(hosts(&[Arc::clone(&lb1), Arc::clone(&lb2)]));

        let report = exec.apply(&lb_plan("same", "new")).await;
        assert!(report.success(), "{report}");
        assert!(!report.outcome("config", "lb1").expect("lb1").changed());
        assert!(report.outcome("config", "lb2").expect("lb2").changed());
        assert!(matches!(
            report.outcome("reload", "lb1"),
            Some(StepOutcome::NotNeeded)
        ));
        assert!(matches!(
            report.outcome("reload", "lb2"),
            Some(StepOutcome::Ran(_))
        ));
        assert!(report.outcome("check", "lb2").is_none(), "filtered out");
        assert_eq!(lb1.commands(), vec!["haproxy -v".to_owned()]);
        assert_eq!(
            lb2.commands(),
            vec!["sudo -n -- systemctl reload haproxy".to_owned()]
        );
        assert_eq!(
            lb2.file("/etc/haproxy/haproxy.cfg").expect("pushed"),
            b"new"
        );
        assert_eq!(
            lb2.file_meta("/etc/keepalived/keepalived.conf")
                .expect("pushed")
                .mode,
            0o600
        );
        assert!(
            !lb1.calls().iter().any(|c| matches!(c, Call::Upload(_))),
            "unchanged file not uploaded"
        );

        // Second run: nothing changes, nothing reloads.
        let report = exec.apply(&lb_plan("same", "new")).await;
        assert!(report.success());
        assert!(matches!(
            report.outcome("reload", "lb2"),
            Some(StepOutcome::NotNeeded)
        ));
        assert_eq!(lb2.commands().len(), 1);
        let text = report.to_string();
        assert!(text.contains("lb2: unchanged (2 files)"), "{text}");
    }

    #[tokio::test]
    async fn dry_run_reports_and_changes_nothing() {
        let lb1 = Arc::new(FakeHost::new("lb1"));
        let lb2 = Arc::new(FakeHost::new("lb2"));
        lb1.put_file("/etc/haproxy/haproxy.cfg", "old", 0o644);
        lb2.put_file("/etc/haproxy/haproxy.cfg", "same2", 0o644);
        lb2.put_file("/etc/keepalived/keepalived.conf", "vrrp", 0o644); // mode differs
        let exec = Executor::new(hosts(&[Arc::clone(&lb1), Arc::clone(&lb2)]));
        let report = exec.dry_run(&lb_plan("new", "same2")).await;
        assert!(report.dry_run && report.success());
        let text = report.to_string();
        assert_eq!(
            text,
            "plan lb (dry run: nothing changed)\n\
             step config\n\
             \x20 lb1: 1 of 1 files changed: /etc/haproxy/haproxy.cfg (content changed)\n\
             \x20 lb2: 1 of 2 files changed: /etc/keepalived/keepalived.conf (mode/owner changed)\n\
             step reload\n\
             \x20 lb1: would run `systemctl reload haproxy`\n\
             \x20 lb2: would run `systemctl reload haproxy`\n\
             step check\n\
             \x20 lb1: would run `haproxy -v`\n"
        );
        for h in [&lb1, &lb2] {
            assert!(
                h.calls().iter().all(|c| matches!(c, Call::Stat(_))),
                "{:?}",
                h.calls()
            );
        }
        assert_eq!(lb1.file("/etc/haproxy/haproxy.cfg").expect("kept"), b"old");
    }

    #[tokio::test]
    async fn failed_host_skips_later_steps_others_finish() {
        let a = Arc::new(FakeHost::new("a"));
        let b = Arc::new(FakeHost::new("b"));
        let c = Arc::new(FakeHost::new("c"));
        b.fail("prepare", 2, "disk full");
        let plan = Plan::builder("p")
            .step(
                "prepare",
                HostFilter::All,
                Action::Run(Command::new("prepare")),
            )
            .step("after", HostFilter::All, Action::Run(Command::new("after")))
            .build()
            .expect("valid");
        let report = Executor::new(hosts(&[Arc::clone(&a), Arc::clone(&b), Arc::clone(&c)]))
            .apply(&plan)
            .await;
        assert!(!report.success());
        let failures: Vec<_> = report
            .failures()
            .map(|(s, h, e)| (s.to_owned(), h.to_owned(), e.to_string()))
            .collect();
        assert_eq!(
            failures,
            vec![(
                "prepare".into(),
                "b".into(),
                "b: `prepare` failed with exit code 2: disk full".into()
            )]
        );
        assert!(matches!(
            report.outcome("after", "b"),
            Some(StepOutcome::Skipped)
        ));
        assert_eq!(a.commands(), vec!["prepare", "after"]);
        assert_eq!(c.commands(), vec!["prepare", "after"]);
        assert_eq!(b.commands(), vec!["prepare"]);
    }

    #[tokio::test]
    async fn fail_fast_stops_the_plan() {
        let a = Arc::new(FakeHost::new("a"));
        let b = Arc::new(FakeHost::new("b"));
        a.set_down(true);
        let plan = Plan::builder("p")
            .step("one", HostFilter::All, Action::Run(Command::new("one")))
            .step("two", HostFilter::All, Action::Run(Command::new("two")))
            .build()
            .expect("valid");
        let exec = Executor::new(hosts(&[Arc::clone(&a), Arc::clone(&b)]))
            .fan_out(FanOut::new(1).fail_fast());
        let report = exec.apply(&plan).await;
        assert!(matches!(
            report.outcome("one", "a"),
            Some(StepOutcome::Failed(Error::ConnectionLost { .. }))
        ));
        // concurrency 1: b had not started when a failed
        assert!(matches!(
            report.outcome("one", "b"),
            Some(StepOutcome::Skipped)
        ));
        assert!(matches!(
            report.outcome("two", "b"),
            Some(StepOutcome::Skipped)
        ));
        assert!(b.commands().is_empty());
    }

    /// A host that records how many calls run at once.
    struct Slow {
        name: String,
        now: Arc<AtomicUsize>,
        max: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl RemoteExec for Slow {
        fn host(&self) -> &str {
            &self.name
        }
        fn address(&self) -> &str {
            &self.name
        }
        fn is_root(&self) -> bool {
            true
        }
        async fn run(&self, _: &Command) -> Result<crate::Output, Error> {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(crate::Output::ok(""))
        }
        async fn upload(&self, _: &Upload) -> Result<(), Error> {
            Ok(())
        }
        async fn read_file(&self, _: &str, _: bool) -> Result<Vec<u8>, Error> {
            Ok(Vec::new())
        }
        async fn file_state(&self, _: &str, _: bool) -> Result<Option<crate::FileState>, Error> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn fan_out_respects_the_bound_and_keeps_order() {
        let now = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let hosts: Vec<Arc<dyn RemoteExec>> = (0..10)
            .map(|i| {
                Arc::new(Slow {
                    name: format!("h{i}"),
                    now: Arc::clone(&now),
                    max: Arc::clone(&max),
                }) as Arc<dyn RemoteExec>
            })
            .collect();
        #[derive(Default)]
        struct Record(Mutex<Vec<String>>);
        impl Progress for Record {
            fn started(&self, step: &str, host: &str) {
                self.0
                    .lock()
                    .expect("lock")
                    .push(format!("start {step} {host}"));
            }
            fn finished(&self, step: &str, host: &str, error: Option<&Error>) {
                self.0
                    .lock()
                    .expect("lock")
                    .push(format!("end {step} {host} {}", error.is_none()));
            }
        }
        let progress = Record::default();
        let results = fan_out(&hosts, "s", &FanOut::new(3), &progress, |h| async move {
            h.run(&Command::new("x")).await.map(|_| h.host().to_owned())
        })
        .await;
        let names: Vec<_> = results.iter().map(|r| r.host.clone()).collect();
        assert_eq!(names, (0..10).map(|i| format!("h{i}")).collect::<Vec<_>>());
        assert!(
            results
                .iter()
                .all(|r| r.result.as_ref().is_ok_and(|n| *n == r.host))
        );
        assert_eq!(max.load(Ordering::SeqCst), 3);
        let events = progress.0.lock().expect("lock").clone();
        assert_eq!(events.len(), 20);
        assert!(events.contains(&"end s h9 true".to_owned()));
    }

    struct OpensAfter(AtomicUsize);

    #[async_trait]
    impl PortProbe for OpensAfter {
        async fn is_open(&self, _: &str, port: u16) -> bool {
            port == 6443 && self.0.fetch_sub(1, Ordering::SeqCst) <= 1
        }
    }

    #[tokio::test]
    async fn wait_for_port_polls_until_open_or_times_out() {
        let h = Arc::new(FakeHost::new("cp1"));
        let plan = Plan::builder("p")
            .step(
                "api",
                HostFilter::All,
                Action::WaitForPort {
                    port: 6443,
                    timeout: Duration::from_secs(5),
                },
            )
            .step(
                "other",
                HostFilter::All,
                Action::WaitForPort {
                    port: 1,
                    timeout: Duration::from_millis(30),
                },
            )
            .build()
            .expect("valid");
        let exec = Executor::new(hosts(&[h])).port_probe(
            Arc::new(OpensAfter(AtomicUsize::new(3))),
            Duration::from_millis(1),
        );
        let report = exec.apply(&plan).await;
        assert!(matches!(
            report.outcome("api", "cp1"),
            Some(StepOutcome::PortOpen)
        ));
        let Some(StepOutcome::Failed(e)) = report.outcome("other", "cp1") else {
            panic!("{report}")
        };
        assert_eq!(e.to_string(), "cp1: port 1 did not open within 30ms");
    }

    #[test]
    fn plan_validation_names_the_problem() {
        let run = || Action::Run(Command::new("x"));
        let err = Plan::builder("p")
            .step("a", HostFilter::All, run())
            .step("a", HostFilter::All, run())
            .build();
        assert!(
            err.expect_err("dup")
                .to_string()
                .contains("duplicate step name \"a\"")
        );
        let err = Plan::builder("p")
            .step(
                "r",
                HostFilter::All,
                Action::RunIfChanged {
                    command: Command::new("x"),
                    watch: vec!["cfg".into()],
                },
            )
            .build();
        assert!(
            err.expect_err("watch")
                .to_string()
                .contains("watches \"cfg\"")
        );
        let tree = FileTree::new().file("lb1", Upload::new("etc/relative", "x"));
        let err = Plan::builder("p")
            .step("cfg", HostFilter::All, Action::PushTree(tree))
            .build();
        let msg = err.expect_err("relative").to_string();
        assert!(
            msg.contains("host lb1") && msg.contains("not absolute"),
            "{msg}"
        );
        let err = Plan::builder("p")
            .step(
                "e",
                HostFilter::All,
                Action::Run(Command::new("x").env("A-B", "1")),
            )
            .build();
        assert!(err.expect_err("env").to_string().contains("env.A-B"));
    }

    #[test]
    fn file_tree_from_plan_directory() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let cfg = root.join("hosts/lb1/etc/haproxy/haproxy.cfg");
        std::fs::create_dir_all(cfg.parent().expect("parent")).expect("mkdir");
        std::fs::write(&cfg, b"global\n").expect("write");
        let key = root.join("hosts/lb1/etc/keepalived/secret.key");
        std::fs::create_dir_all(key.parent().expect("parent")).expect("mkdir");
        std::fs::write(&key, [0u8, 255, 10]).expect("write");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::create_dir_all(root.join("hosts/cp1/etc")).expect("mkdir");
        let tree = FileTree::from_dir(root).expect("reads");
        let lb1 = tree.files_for("lb1");
        assert_eq!(lb1.len(), 2);
        assert_eq!(lb1[0].path, "/etc/haproxy/haproxy.cfg");
        assert_eq!(lb1[1].path, "/etc/keepalived/secret.key");
        assert_eq!(
            (lb1[1].mode, lb1[1].content.as_slice()),
            (0o600, &[0u8, 255, 10][..])
        );
        assert!(tree.files_for("cp1").is_empty());
        std::os::unix::fs::symlink("/etc/passwd", root.join("hosts/cp1/etc/passwd"))
            .expect("symlink");
        let err = FileTree::from_dir(root).expect_err("symlink refused");
        assert!(err.to_string().contains("symlinks are refused"), "{err}");
    }
}
