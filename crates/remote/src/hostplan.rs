//! The executor of host plans ([`hakube_host_state::HostPlan`]): facts, diff, then changes.
//!
//! For each item in order it reads the host's current state, decides what (if anything) must
//! change, and (unless in a dry run) changes it:
//!
//! - packages: `dpkg-query` for the whole plan at once; missing ones installed with one
//!   `apt-get install` per run of consecutive package items (after one `apt-get update`),
//!   holds with `apt-mark hold`;
//! - groups and users: `getent`, then `groupadd`/`useradd` (existing accounts are left alone);
//! - directories: `stat`, then `install -d` or `chmod`/`chown`;
//! - files: SHA-256, mode and owner compared ([`crate::diff_file`]); a file with a validation
//!   command is written next to the live one, checked, and only then renamed over it, so a file
//!   that fails its check never goes live;
//! - services: `systemctl daemon-reload` after a unit file changed, then enable/start as
//!   wanted, and restart or reload only when a file they watch changed in this run;
//! - commands: run only when their guard calls for it; checks always run (not in a dry run).
//!
//! A second run of the same plan therefore reports no change and restarts nothing. A failing
//! item stops that host's plan (later items depend on earlier ones) and is named with its
//! cause; other hosts carry on ([`apply_host_plans`] runs hosts in parallel with a bound).
//!
//! ```no_run
//! # async fn demo(lb: std::sync::Arc<dyn hakube_remote::RemoteExec>) {
//! use hakube_host_state::{File, HostPlan, Service, Validate};
//! use hakube_remote::{FanOut, Mode, NoProgress, apply_host_plans};
//!
//! let plan = HostPlan::new("lb-1")
//!     .file(File::new("/etc/haproxy/haproxy.cfg", "global\n")
//!         .validate(Validate::new(["haproxy", "-c", "-f", "%s"])))
//!     .service(Service::new("haproxy").reload_on(["/etc/haproxy/haproxy.cfg"]));
//! let reports = apply_host_plans(&[(lb, plan)], Mode::Apply, &FanOut::new(8), &NoProgress).await;
//! for r in &reports {
//!     println!("{}: {} change(s)", r.host, r.changes.len());
//! }
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hakube_host_state::{Directory, Exec, File, HostPlan, Item, Package, Service, User};

use crate::fanout::{FanOut, Progress, fan_out};
use crate::{Command, Error, Output, RemoteExec, diff_file};

/// How long a package installation may take.
const APT_TIMEOUT: Duration = Duration::from_secs(900);

/// Dry run or real run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read facts and report what would change; change nothing.
    DryRun,
    /// Change what differs.
    Apply,
}

/// One change made (or, in a dry run, due) on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The item, as [`Item`]'s `Display` names it (`file /etc/hosts`, `service haproxy`).
    pub item: String,
    /// What changed: `created`, `content changed`, `installed`, `reloaded`, `ran`, ...
    pub action: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.action)
    }
}

/// What happened on one host.
#[derive(Debug)]
pub struct HostReport {
    /// The host.
    pub host: String,
    /// Changes in order (due changes in a dry run). Empty on a host already as planned.
    pub changes: Vec<Change>,
    /// `Err` names the item that failed ([`Error::ItemFailed`]); the items after it were not
    /// applied.
    pub result: Result<(), Error>,
    /// Wall time on this host.
    pub elapsed: Duration,
}

impl HostReport {
    /// Service restarts and reloads among the changes.
    pub fn restarts(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| {
            c.item.starts_with("service ")
                && (c.action.contains("restart") || c.action.contains("reload"))
        })
    }
}

/// Applies (or dry-runs) one host's plan. Never panics on a host's answer; every failure ends
/// up in [`HostReport::result`].
pub async fn apply_host_plan(
    exec: &dyn RemoteExec,
    plan: &HostPlan,
    mode: Mode,
    progress: &dyn Progress,
) -> HostReport {
    let started = Instant::now();
    let mut run = Run {
        exec,
        mode,
        changes: Vec::new(),
        changed_files: BTreeSet::new(),
        unit_changed: false,
        packages: None,
        apt_updated: false,
    };
    let result = run.all(plan, progress).await;
    HostReport {
        host: plan.host.clone(),
        changes: run.changes,
        result,
        elapsed: started.elapsed(),
    }
}

/// Applies (or dry-runs) the plans of many hosts in parallel, at most `fan.concurrency` at a
/// time; one host failing does not stop the others. Reports come back in input order.
pub async fn apply_host_plans(
    hosts: &[(Arc<dyn RemoteExec>, HostPlan)],
    mode: Mode,
    fan: &FanOut,
    progress: &dyn Progress,
) -> Vec<HostReport> {
    let execs: Vec<Arc<dyn RemoteExec>> = hosts.iter().map(|(e, _)| Arc::clone(e)).collect();
    let plans: BTreeMap<&str, &HostPlan> = hosts
        .iter()
        .map(|(e, p)| (e.host(), p))
        .collect::<BTreeMap<_, _>>();
    // Reports travel through the fan-out's Ok side; fan_out never fails a host on its own
    // (it only skips hosts in fail-fast mode, which we do not use).
    let fan = FanOut::new(fan.concurrency);
    let results = fan_out(&execs, "host-plan", &fan, progress, |exec| {
        let plan = plans.get(exec.host()).copied();
        async move {
            let Some(plan) = plan else {
                return Err(Error::InvalidPlan {
                    plan: "host-plan".into(),
                    reason: format!("no plan for host {}", exec.host()),
                });
            };
            Ok(apply_host_plan(exec.as_ref(), plan, mode, progress).await)
        }
    })
    .await;
    results
        .into_iter()
        .map(|r| match r.result {
            Ok(report) => report,
            Err(e) => HostReport {
                host: r.host,
                changes: Vec::new(),
                result: Err(e),
                elapsed: Duration::ZERO,
            },
        })
        .collect()
}

struct Run<'a> {
    exec: &'a dyn RemoteExec,
    mode: Mode,
    changes: Vec<Change>,
    changed_files: BTreeSet<String>,
    /// A systemd unit file changed and `daemon-reload` has not run since.
    unit_changed: bool,
    /// Package name -> (version, installed), read once for the whole plan.
    packages: Option<BTreeMap<String, (String, bool)>>,
    apt_updated: bool,
}

fn cmd(argv: &[String]) -> Command {
    let (program, args) = argv
        .split_first()
        .map_or(("true", &[][..]), |(p, a)| (p.as_str(), a));
    Command::new(program).args(args.iter().cloned()).sudo(true)
}

fn words<const N: usize>(w: [&str; N]) -> Vec<String> {
    w.iter().map(|s| (*s).to_owned()).collect()
}

impl Run<'_> {
    fn host(&self) -> &str {
        self.exec.host()
    }

    fn dry(&self) -> bool {
        self.mode == Mode::DryRun
    }

    fn change(&mut self, item: &Item, action: impl Into<String>) {
        let action = action.into();
        let action = if self.dry() {
            format!("would be {action}")
        } else {
            action
        };
        tracing::info!(host = self.host(), item = %item, %action, "change");
        self.changes.push(Change {
            item: item.to_string(),
            action,
        });
    }

    async fn run(&self, argv: &[String]) -> Result<Output, Error> {
        self.exec.run(&cmd(argv)).await
    }

    async fn run_ok(&self, argv: &[String]) -> Result<Output, Error> {
        self.exec.run_ok(&cmd(argv)).await
    }

    async fn all(&mut self, plan: &HostPlan, progress: &dyn Progress) -> Result<(), Error> {
        if plan.host != self.host() {
            return Err(Error::InvalidPlan {
                plan: "host-plan".into(),
                reason: format!("plan for {} given to host {}", plan.host, self.host()),
            });
        }
        plan.validate()?;
        let mut i = 0;
        while i < plan.items.len() {
            // Consecutive packages go to apt together.
            let end = if matches!(plan.items[i], Item::Package(_)) {
                i + plan.items[i..]
                    .iter()
                    .take_while(|it| matches!(it, Item::Package(_)))
                    .count()
            } else {
                i + 1
            };
            let label = plan.items[i].to_string();
            progress.started(&label, self.host());
            let result = self.items(plan, &plan.items[i..end]).await;
            progress.finished(&label, self.host(), result.as_ref().err());
            result?;
            i = end;
        }
        Ok(())
    }

    async fn items(&mut self, plan: &HostPlan, items: &[Item]) -> Result<(), Error> {
        let fail = |item: &Item, source: Error| Error::ItemFailed {
            host: plan.host.clone(),
            item: item.to_string(),
            source: Box::new(source),
        };
        if let Some(Item::Package(_)) = items.first() {
            let pkgs: Vec<&Package> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Package(p) => Some(p),
                    _ => None,
                })
                .collect();
            return self
                .packages(plan, &pkgs)
                .await
                .map_err(|e| fail(&items[0], e));
        }
        let item = &items[0];
        let result = match item {
            Item::Group(g) => {
                let getent = words(["getent", "group", &g.name]);
                let mut add = words(["groupadd"]);
                if g.system {
                    add.push("--system".into());
                }
                add.push(g.name.clone());
                self.account(item, getent, add).await
            }
            Item::User(u) => {
                let getent = words(["getent", "passwd", &u.name]);
                self.account(item, getent, useradd(u)).await
            }
            Item::Directory(d) => self.directory(item, d).await,
            Item::File(f) => self.file(item, f).await,
            Item::Service(s) => self.service(item, s).await,
            Item::Exec(e) => self.exec_item(item, e).await,
            Item::Package(_) => Ok(()),
            _ => Err(Error::InvalidPlan {
                plan: "host-plan".into(),
                reason: format!("{item}: an item this executor does not know"),
            }),
        };
        result.map_err(|e| fail(item, e))
    }

    async fn package_facts(&mut self, plan: &HostPlan) -> Result<(), Error> {
        if self.packages.is_some() {
            return Ok(());
        }
        let mut argv = words([
            "dpkg-query",
            "-W",
            "-f=${Package}\\t${Version}\\t${Status}\\n",
        ]);
        argv.extend(plan.items.iter().filter_map(|i| match i {
            Item::Package(p) => Some(p.name.clone()),
            _ => None,
        }));
        // Exit 1 when some package is unknown to dpkg: what it printed is still the truth.
        let out = self.run(&argv).await?;
        let mut facts = BTreeMap::new();
        for line in out.stdout_lossy().lines() {
            let mut f = line.split('\t');
            if let (Some(name), Some(version), Some(status)) = (f.next(), f.next(), f.next()) {
                let name = name.split(':').next().unwrap_or(name);
                facts.insert(
                    name.to_owned(),
                    (version.to_owned(), status.ends_with(" installed")),
                );
            }
        }
        self.packages = Some(facts);
        Ok(())
    }

    async fn packages(&mut self, plan: &HostPlan, pkgs: &[&Package]) -> Result<(), Error> {
        self.package_facts(plan).await?;
        let facts = self.packages.clone().unwrap_or_default();
        let missing: Vec<&Package> = pkgs
            .iter()
            .copied()
            .filter(|p| match facts.get(&p.name) {
                Some((version, true)) => p.version.as_ref().is_some_and(|v| v != version),
                _ => true,
            })
            .collect();
        if !missing.is_empty() {
            if !self.dry() {
                if !self.apt_updated {
                    self.exec
                        .run_ok(
                            &cmd(&words(["apt-get", "update", "-q"]))
                                .env("DEBIAN_FRONTEND", "noninteractive")
                                .timeout(APT_TIMEOUT),
                        )
                        .await?;
                    self.apt_updated = true;
                }
                let mut argv = words([
                    "apt-get",
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    "--allow-change-held-packages",
                ]);
                argv.extend(missing.iter().map(|p| match &p.version {
                    Some(v) => format!("{}={v}", p.name),
                    None => p.name.clone(),
                }));
                self.exec
                    .run_ok(
                        &cmd(&argv)
                            .env("DEBIAN_FRONTEND", "noninteractive")
                            .timeout(APT_TIMEOUT),
                    )
                    .await?;
            }
            for p in &missing {
                let action = match &p.version {
                    Some(v) => format!("installed {v}"),
                    None => "installed".to_owned(),
                };
                self.change(&Item::Package((*p).clone()), action);
                if let Some(f) = self.packages.as_mut() {
                    f.insert(
                        p.name.clone(),
                        (p.version.clone().unwrap_or_default(), true),
                    );
                }
            }
        }
        let held: Vec<&Package> = pkgs.iter().copied().filter(|p| p.hold).collect();
        if !held.is_empty() {
            let out = self.run_ok(&words(["apt-mark", "showhold"])).await?;
            let shown = out.stdout_lossy();
            let on_hold: BTreeSet<&str> = shown.lines().map(str::trim).collect();
            let to_hold: Vec<&Package> = held
                .into_iter()
                .filter(|p| !on_hold.contains(p.name.as_str()))
                .collect();
            if !to_hold.is_empty() {
                if !self.dry() {
                    let mut argv = words(["apt-mark", "hold"]);
                    argv.extend(to_hold.iter().map(|p| p.name.clone()));
                    self.run_ok(&argv).await?;
                }
                for p in to_hold {
                    self.change(&Item::Package(p.clone()), "held");
                }
            }
        }
        Ok(())
    }

    async fn account(
        &mut self,
        item: &Item,
        getent: Vec<String>,
        add: Vec<String>,
    ) -> Result<(), Error> {
        let out = self.run(&getent).await?;
        if out.success() {
            return Ok(());
        }
        if !self.dry() {
            self.run_ok(&add).await?;
        }
        self.change(item, "created");
        Ok(())
    }

    async fn directory(&mut self, item: &Item, d: &Directory) -> Result<(), Error> {
        let out = self
            .run(&words(["stat", "-c", "%a %u %g %U %G", "--", &d.path]))
            .await?;
        let owner = d.owner.as_deref();
        let group = d.group.as_deref();
        let chown = || {
            let spec = match (owner, group) {
                (Some(o), Some(g)) => format!("{o}:{g}"),
                (Some(o), None) => o.to_owned(),
                (None, Some(g)) => format!(":{g}"),
                (None, None) => String::new(),
            };
            (!spec.is_empty()).then(|| words(["chown", &spec, "--", &d.path]))
        };
        if !out.success() {
            if !self.dry() {
                let mut argv = words(["install", "-d", "-m", &format!("{:o}", d.mode)]);
                argv.push(d.path.clone());
                self.run_ok(&argv).await?;
                if let Some(c) = chown() {
                    self.run_ok(&c).await?;
                }
            }
            self.change(item, "created");
            return Ok(());
        }
        let stdout = out.stdout_lossy();
        let f: Vec<&str> = stdout.split_whitespace().collect();
        let [mode, uid, gid, user, grp] = f[..] else {
            return Err(Error::RemoteFile {
                host: self.host().to_owned(),
                op: "stat",
                path: d.path.clone(),
                reason: format!("unexpected answer {stdout:?}"),
            });
        };
        let mode_ok = u32::from_str_radix(mode, 8).is_ok_and(|m| m == d.mode);
        let owner_ok = owner.is_none_or(|o| o == uid || o == user)
            && group.is_none_or(|g| g == gid || g == grp);
        if !mode_ok {
            if !self.dry() {
                self.run_ok(&words(["chmod", &format!("{:o}", d.mode), "--", &d.path]))
                    .await?;
            }
            self.change(item, format!("mode {mode} -> {:o}", d.mode));
        }
        if !owner_ok {
            if !self.dry()
                && let Some(c) = chown()
            {
                self.run_ok(&c).await?;
            }
            self.change(item, format!("owner {user}:{grp} changed"));
        }
        Ok(())
    }

    async fn file(&mut self, item: &Item, f: &File) -> Result<(), Error> {
        let outcome = diff_file(self.exec, f, true).await?;
        if !outcome.changed() {
            return Ok(());
        }
        let content_changed = outcome != crate::PushOutcome::MetadataChanged;
        if !self.dry() {
            match (&f.validate, content_changed) {
                (Some(check), true) => self.validated_upload(f, check).await?,
                _ => self.exec.upload(f, true).await?,
            }
        }
        self.changed_files.insert(f.path.clone());
        if is_unit_file(&f.path) {
            self.unit_changed = true;
        }
        self.change(item, outcome.to_string());
        Ok(())
    }

    /// Writes the candidate next to the live file, checks it, then renames it into place.
    async fn validated_upload(
        &mut self,
        f: &File,
        check: &hakube_host_state::Validate,
    ) -> Result<(), Error> {
        let (dir, name) = f.path.rsplit_once('/').unwrap_or(("", &f.path));
        let candidate = format!("{dir}/.{name}.hakube-new");
        let mut staged = f.clone();
        staged.path.clone_from(&candidate);
        self.exec.upload(&staged, true).await?;
        let out = self.run(&check.argv_for(&candidate)).await;
        let verdict = match &out {
            Ok(o) => {
                let status = match &o.status {
                    crate::ExitStatus::Code(c) => i32::try_from(*c).unwrap_or(255),
                    crate::ExitStatus::Signal { name, .. } => 128 + signal_number(name),
                };
                let text = format!("{}{}", o.stdout_lossy(), o.stderr_lossy());
                check.judge(status, &text).err().map(|r| r.to_string())
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = verdict {
            let _ = self.run(&words(["rm", "-f", "--", &candidate])).await;
            let output = match (&out, f.secret) {
                (Ok(o), false) => tail(&format!("{}{}", o.stdout_lossy(), o.stderr_lossy())),
                _ => String::new(),
            };
            return Err(Error::Rejected {
                host: self.host().to_owned(),
                path: f.path.clone(),
                check: check.argv.join(" "),
                reason: why,
                output,
            });
        }
        self.run_ok(&words(["mv", "-f", "--", &candidate, &f.path]))
            .await?;
        Ok(())
    }

    async fn service(&mut self, item: &Item, s: &Service) -> Result<(), Error> {
        if self.unit_changed {
            if !self.dry() {
                self.run_ok(&words(["systemctl", "daemon-reload"])).await?;
            }
            self.unit_changed = false;
        }
        let name = s.name.as_str();
        if let Some(want) = s.enabled {
            let now = self
                .run(&words(["systemctl", "is-enabled", "--quiet", name]))
                .await?
                .success();
            if now != want {
                let verb = if want { "enable" } else { "disable" };
                if !self.dry() {
                    self.run_ok(&words(["systemctl", verb, name])).await?;
                }
                self.change(item, format!("{verb}d"));
            }
        }
        let active = self
            .run(&words(["systemctl", "is-active", "--quiet", name]))
            .await?
            .success();
        match s.running {
            Some(true) if !active => {
                if !self.dry() {
                    self.run_ok(&words(["systemctl", "start", name])).await?;
                }
                self.change(item, "started");
                return Ok(());
            }
            Some(false) if active => {
                if !self.dry() {
                    self.run_ok(&words(["systemctl", "stop", name])).await?;
                }
                self.change(item, "stopped");
                return Ok(());
            }
            _ if !active => return Ok(()),
            _ => {}
        }
        let touched = |list: &[String]| list.iter().any(|p| self.changed_files.contains(p));
        let verb = if touched(&s.restart_on) {
            "restart"
        } else if touched(&s.reload_on) {
            "reload"
        } else {
            return Ok(());
        };
        if !self.dry() {
            self.run_ok(&words(["systemctl", verb, name])).await?;
        }
        self.change(item, format!("{verb}ed"));
        Ok(())
    }

    async fn exec_item(&mut self, item: &Item, e: &Exec) -> Result<(), Error> {
        if e.check {
            if !self.dry() {
                self.run_ok(&e.argv).await?;
            }
            return Ok(());
        }
        if !e.on_change.is_empty() && !e.on_change.iter().any(|p| self.changed_files.contains(p)) {
            return Ok(());
        }
        if let Some(path) = &e.creates
            && self.run(&words(["test", "-e", path])).await?.success()
        {
            return Ok(());
        }
        if let Some(guard) = &e.unless
            && self.run(guard).await?.success()
        {
            return Ok(());
        }
        if !self.dry() {
            self.run_ok(&e.argv).await?;
        }
        self.change(item, "ran");
        Ok(())
    }
}

fn useradd(u: &User) -> Vec<String> {
    let mut argv = words(["useradd"]);
    if u.system {
        argv.extend(words(["--system", "--no-create-home"]));
    }
    if let Some(g) = &u.group {
        argv.extend(words(["--gid", g]));
    }
    if let Some(h) = &u.home {
        argv.extend(words(["--home-dir", h]));
    }
    let shell = u
        .shell
        .clone()
        .or_else(|| u.system.then(|| "/usr/sbin/nologin".to_owned()));
    if let Some(s) = shell {
        argv.extend(words(["--shell", &s]));
    }
    argv.push(u.name.clone());
    argv
}

fn is_unit_file(path: &str) -> bool {
    path.starts_with("/etc/systemd/") || path.starts_with("/lib/systemd/system/")
}

/// The number of a signal by its name, as shells report deaths (128 + N).
fn signal_number(name: &str) -> i32 {
    match name.trim_start_matches("SIG") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ABRT" => 6,
        "KILL" => 9,
        "SEGV" => 11,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 127,
    }
}

/// The last lines of a check's output, for the error.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}
