//! The host plan: items of desired state, in order.

use core::fmt;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// In a [`Validate`] command, the word replaced by the path of the candidate file (the new
/// content, written next to the live file but not yet in its place).
pub const CANDIDATE_PLACEHOLDER: &str = "%s";

/// The version of the JSON form written by [`HostPlan::to_json`].
const FORMAT: u32 = 1;

fn is_false(b: &bool) -> bool {
    !*b
}

/// A Debian package that must be installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Exact Debian version (`1.33.2-1.1`); `None` accepts whatever is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Hold the package (`apt-mark hold`) so upgrades leave it alone.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hold: bool,
}

impl Package {
    /// A package at any version, not held.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: None,
            hold: false,
        }
    }

    /// Pins an exact version.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Holds the package.
    #[must_use]
    pub fn hold(mut self) -> Self {
        self.hold = true;
        self
    }
}

/// A group that must exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// A system group (`groupadd --system`).
    #[serde(default)]
    pub system: bool,
}

impl Group {
    /// A system group.
    #[must_use]
    pub fn system(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            system: true,
        }
    }
}

/// A user that must exist. An existing user is left as it is (hakube never rewrites accounts it
/// did not create).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// User name.
    pub name: String,
    /// A system user (`useradd --system`, no home directory created, no login shell unless
    /// [`User::shell`] says otherwise).
    #[serde(default)]
    pub system: bool,
    /// Primary group (must exist, e.g. an earlier [`Group`] item); `None` lets `useradd` pick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Home directory (not created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// Login shell; system users default to `/usr/sbin/nologin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
}

impl User {
    /// A system user without a login shell.
    #[must_use]
    pub fn system(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            system: true,
            group: None,
            home: None,
            shell: None,
        }
    }

    /// Sets the primary group.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Sets the home directory (not created).
    #[must_use]
    pub fn home(mut self, home: impl Into<String>) -> Self {
        self.home = Some(home.into());
        self
    }

    /// Sets the login shell.
    #[must_use]
    pub fn shell(mut self, shell: impl Into<String>) -> Self {
        self.shell = Some(shell.into());
        self
    }
}

/// A directory that must exist with a mode and owner. Missing parents are created too (with
/// the system's defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    /// Absolute path.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner (name or numeric id); `None` leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Group (name or numeric id); `None` leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Directory {
    /// A directory with mode `0o755`, owner left alone.
    #[must_use]
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            mode: 0o755,
            owner: None,
            group: None,
        }
    }

    /// Sets the permission bits.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Sets owner and group (names or numeric ids).
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>, group: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self.group = Some(group.into());
        self
    }
}

/// Why [`Validate::judge`] refused a candidate file: its exit status, or what its output said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// A command that checks a candidate file before it replaces the live one (Ansible's
/// `validate:`). [`CANDIDATE_PLACEHOLDER`] in `argv` is replaced by the candidate's path. The
/// file is rejected when the command's exit status is not one of `ok_status` (`[0]` when
/// empty), or when its output (stdout and stderr) contains one of `reject_output`, or, with
/// `quiet`, when it prints any line other than those containing one of `ignore_lines` (for
/// tools such as `keepalived -t` that report problems and still exit 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validate {
    /// Program and arguments, one of them [`CANDIDATE_PLACEHOLDER`].
    pub argv: Vec<String>,
    /// Exit statuses that mean "valid" (a death by signal N counts as 128 + N); `[0]` when
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ok_status: Vec<i32>,
    /// Output fragments that make the check fail even on an accepted status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reject_output: Vec<String>,
    /// A valid file prints nothing: any output line fails the check, except lines containing
    /// one of `ignore_lines`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub quiet: bool,
    /// With `quiet`, output lines that do not count (`NOTICE:` chatter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_lines: Vec<String>,
}

impl Validate {
    /// A check judged by its exit status.
    #[must_use]
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            ok_status: Vec::new(),
            reject_output: Vec::new(),
            quiet: false,
            ignore_lines: Vec::new(),
        }
    }

    /// Also accepts these exit statuses.
    #[must_use]
    pub fn ok_status(mut self, statuses: impl IntoIterator<Item = i32>) -> Self {
        if self.ok_status.is_empty() {
            self.ok_status.push(0);
        }
        self.ok_status.extend(statuses);
        self
    }

    /// Fails on any output line, except those containing one of `ignore`.
    #[must_use]
    pub fn quiet<I, S>(mut self, ignore: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.quiet = true;
        self.ignore_lines.extend(ignore.into_iter().map(Into::into));
        self
    }

    /// Judges a run of the check: `status` is the exit code (128 + N for signal N), `output`
    /// stdout and stderr together.
    ///
    /// ```
    /// use hakube_host_state::Validate;
    /// let v = Validate::new(["keepalived", "-t", "-f", "%s"]).ok_status([143]).quiet(["NOTICE:"]);
    /// assert!(v.judge(0, "").is_ok());
    /// assert!(v.judge(143, "Terminated? no: NOTICE: x\n").is_ok());
    /// assert!(v.judge(0, "Unable to set default user - removing\n").is_err());
    /// assert!(v.judge(1, "").is_err());
    /// ```
    ///
    /// # Errors
    /// [`Refusal`]: why the candidate is refused (the status, or the output that refuses it).
    pub fn judge(&self, status: i32, output: &str) -> Result<(), Refusal> {
        let ok = if self.ok_status.is_empty() {
            status == 0
        } else {
            self.ok_status.contains(&status)
        };
        if !ok {
            return Err(Refusal(format!("exit status {status}")));
        }
        if let Some(frag) = self
            .reject_output
            .iter()
            .find(|f| output.contains(f.as_str()))
        {
            return Err(Refusal(format!("output contains {frag:?}")));
        }
        if self.quiet {
            let noise: Vec<&str> = output
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty() && !self.ignore_lines.iter().any(|i| l.contains(i.as_str()))
                })
                .collect();
            if !noise.is_empty() {
                return Err(Refusal(format!("it reported: {}", noise.join(" / "))));
            }
        }
        Ok(())
    }

    /// Also fails when the output contains `fragment`.
    #[must_use]
    pub fn reject_output(mut self, fragment: impl Into<String>) -> Self {
        self.reject_output.push(fragment.into());
        self
    }

    /// The command for a candidate at `candidate`.
    #[must_use]
    pub fn argv_for(&self, candidate: &str) -> Vec<String> {
        self.argv
            .iter()
            .map(|w| w.replace(CANDIDATE_PLACEHOLDER, candidate))
            .collect()
    }
}

/// A file with exact content, mode and owner.
///
/// `Debug` never shows the content (only its size and SHA-256), and a `secret` file's content
/// is never shown by an executor either (no diff, no preview).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Absolute path.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner (name or numeric id); `None` leaves it to whoever writes the file (root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Group (name or numeric id); `None` as for `owner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The content is secret (keys, tokens): never shown, and kept 0600 in a plan tree.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    /// A check the new content must pass before it goes live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<Validate>,
    /// The exact bytes. The JSON form holds only their SHA-256; the bytes live in the tree.
    #[serde(skip)]
    pub content: Vec<u8>,
    /// The JSON form's digest, checked and dropped by [`HostPlan::from_json`].
    #[serde(rename = "sha256", default, skip_serializing)]
    pending_sha256: Option<String>,
}

impl File {
    /// A root-owned file with mode `0o644`.
    #[must_use]
    pub fn new(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            mode: 0o644,
            owner: None,
            group: None,
            secret: false,
            validate: None,
            content: content.into(),
            pending_sha256: None,
        }
    }

    /// A secret file: mode `0o600`, content never shown.
    #[must_use]
    pub fn secret(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        let mut f = Self::new(path, content);
        f.mode = 0o600;
        f.secret = true;
        f
    }

    /// Sets the permission bits.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Sets owner and group (names or numeric ids).
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>, group: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self.group = Some(group.into());
        self
    }

    /// Checks new content with `check` before it replaces the live file.
    #[must_use]
    pub fn validate(mut self, check: Validate) -> Self {
        self.validate = Some(check);
        self
    }

    /// Lower-case hex SHA-256 of the content.
    #[must_use]
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.content))
    }

    /// The content as text (invalid UTF-8 replaced), e.g. to search a rendered config.
    #[must_use]
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.content)
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("owner", &self.owner)
            .field("group", &self.group)
            .field("secret", &self.secret)
            .field("validate", &self.validate)
            .field("len", &self.content.len())
            .field("sha256", &self.sha256())
            .finish()
    }
}

/// A systemd service: enabled and running (or left alone), reloaded or restarted when a file it
/// reads changed in the same run. A unit file under `/etc/systemd/` that changed makes the
/// executor run `systemctl daemon-reload` first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Unit name (`haproxy`, `hakube-backup.timer`).
    pub name: String,
    /// Wanted `is-enabled` state; `None` leaves it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Wanted `is-active` state; `None` leaves it alone (e.g. the kubelet, which kubeadm starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<bool>,
    /// Restart when one of these files (earlier items of the plan) changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_on: Vec<String>,
    /// Reload when one of these files changed (and no restart is due).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reload_on: Vec<String>,
}

impl Service {
    /// A service that must be enabled and running.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            enabled: Some(true),
            running: Some(true),
            restart_on: Vec::new(),
            reload_on: Vec::new(),
        }
    }

    /// Enabled, but its running state is left to something else.
    #[must_use]
    pub fn enabled_only(name: impl Into<String>) -> Self {
        let mut s = Self::new(name);
        s.running = None;
        s
    }

    /// Restarts when one of `paths` changed.
    #[must_use]
    pub fn restart_on<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.restart_on.extend(paths.into_iter().map(Into::into));
        self
    }

    /// Reloads when one of `paths` changed.
    #[must_use]
    pub fn reload_on<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.reload_on.extend(paths.into_iter().map(Into::into));
        self
    }
}

/// A command with a guard, so that running the plan twice runs it at most once:
/// - `unless`: run only when this command exits non-zero;
/// - `creates`: run only when this path does not exist;
/// - `on_change`: run only when one of these files (earlier items) changed in this run;
///
/// or a read-only `check` that runs every time, never counts as a change, and fails the host
/// when it fails. Guards combine: every one given must call for the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// Stable name, shown in progress and errors (`exportfs`, `containerd-config`).
    pub name: String,
    /// Program and arguments (use `["sh", "-c", script]` for a pipeline).
    pub argv: Vec<String>,
    /// Skip when this command succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<Vec<String>>,
    /// Skip when this path exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creates: Option<String>,
    /// Run only when one of these files changed in this run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_change: Vec<String>,
    /// A read-only check (verification): always runs, never a change.
    #[serde(default, skip_serializing_if = "is_false")]
    pub check: bool,
}

impl Exec {
    fn with(name: impl Into<String>, argv: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            name: name.into(),
            argv: argv.into_iter().map(Into::into).collect(),
            unless: None,
            creates: None,
            on_change: Vec::new(),
            check: false,
        }
    }

    /// A command that runs unless `guard` succeeds.
    #[must_use]
    pub fn unless<I, S, J, T>(name: impl Into<String>, argv: I, guard: J) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        J: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let mut e = Self::with(name, argv);
        e.unless = Some(guard.into_iter().map(Into::into).collect());
        e
    }

    /// A command that runs when `path` does not exist.
    #[must_use]
    pub fn creates<I, S>(name: impl Into<String>, argv: I, path: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut e = Self::with(name, argv);
        e.creates = Some(path.into());
        e
    }

    /// A command that runs when one of `paths` changed in this run.
    #[must_use]
    pub fn on_change<I, S, J, T>(name: impl Into<String>, argv: I, paths: J) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        J: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let mut e = Self::with(name, argv);
        e.on_change = paths.into_iter().map(Into::into).collect();
        e
    }

    /// A read-only check.
    #[must_use]
    pub fn check<I, S>(name: impl Into<String>, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut e = Self::with(name, argv);
        e.check = true;
        e
    }

    /// Adds an `unless` guard to a command built otherwise.
    #[must_use]
    pub fn and_unless<J, T>(mut self, guard: J) -> Self
    where
        J: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.unless = Some(guard.into_iter().map(Into::into).collect());
        self
    }
}

/// One piece of a host's desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Item {
    /// See [`Package`].
    Package(Package),
    /// See [`Group`].
    Group(Group),
    /// See [`User`].
    User(User),
    /// See [`Directory`].
    Directory(Directory),
    /// See [`File`].
    File(File),
    /// See [`Service`].
    Service(Service),
    /// See [`Exec`].
    Exec(Exec),
}

impl fmt::Display for Item {
    /// `kind name`, as progress and errors show it: `file /etc/hosts`, `service haproxy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Package(p) => write!(f, "package {}", p.name),
            Self::Group(g) => write!(f, "group {}", g.name),
            Self::User(u) => write!(f, "user {}", u.name),
            Self::Directory(d) => write!(f, "directory {}", d.path),
            Self::File(x) => write!(f, "file {}", x.path),
            Self::Service(s) => write!(f, "service {}", s.name),
            Self::Exec(e) => write!(f, "exec {}", e.name),
        }
    }
}

/// A host's desired state: items applied in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPlan {
    /// The host (VM name).
    pub host: String,
    /// The items, in the order they are applied.
    pub items: Vec<Item>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format: u32,
    host: String,
    items: Vec<Item>,
}

impl HostPlan {
    /// An empty plan for `host`.
    #[must_use]
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            items: Vec::new(),
        }
    }

    /// Appends an item.
    #[must_use]
    pub fn item(mut self, item: Item) -> Self {
        self.items.push(item);
        self
    }

    /// Appends a package.
    #[must_use]
    pub fn package(self, p: Package) -> Self {
        self.item(Item::Package(p))
    }

    /// Appends a group.
    #[must_use]
    pub fn group(self, g: Group) -> Self {
        self.item(Item::Group(g))
    }

    /// Appends a user.
    #[must_use]
    pub fn user(self, u: User) -> Self {
        self.item(Item::User(u))
    }

    /// Appends a directory.
    #[must_use]
    pub fn directory(self, d: Directory) -> Self {
        self.item(Item::Directory(d))
    }

    /// Appends a file.
    #[must_use]
    pub fn file(self, f: File) -> Self {
        self.item(Item::File(f))
    }

    /// Appends a service.
    #[must_use]
    pub fn service(self, s: Service) -> Self {
        self.item(Item::Service(s))
    }

    /// Appends a command.
    #[must_use]
    pub fn exec(self, e: Exec) -> Self {
        self.item(Item::Exec(e))
    }

    /// Appends every item of `other` (a plan for the same host from another component).
    #[must_use]
    pub fn extend(mut self, other: Self) -> Self {
        self.items.extend(other.items);
        self
    }

    /// The files, in order.
    pub fn files(&self) -> impl Iterator<Item = &File> {
        self.items.iter().filter_map(|i| match i {
            Item::File(f) => Some(f),
            _ => None,
        })
    }

    /// The content of the file at `path`, if the plan has one.
    #[must_use]
    pub fn file_content(&self, path: &str) -> Option<&[u8]> {
        self.files()
            .find(|f| f.path == path)
            .map(|f| f.content.as_slice())
    }

    /// Checks every item: absolute paths without `..`, NUL or newlines; modes within `0o7777`;
    /// names without whitespace; no item declared twice; guards on every command that changes
    /// something; handlers and `on_change` naming files declared earlier; validation commands
    /// that name the candidate.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the host, item and field; [`Error::Duplicate`].
    pub fn validate(&self) -> Result<(), Error> {
        let host = &self.host;
        let mut seen = BTreeSet::new();
        let mut files_so_far = BTreeSet::new();
        for item in &self.items {
            let id = item.to_string();
            let bad = |field: &'static str, reason: String| Error::Invalid {
                host: host.clone(),
                item: id.clone(),
                field,
                reason,
            };
            if !seen.insert(id.clone()) {
                return Err(Error::Duplicate {
                    host: host.clone(),
                    item: id,
                });
            }
            match item {
                Item::Package(p) => {
                    check_word(&p.name).map_err(|r| bad("name", r))?;
                    if let Some(v) = &p.version {
                        check_word(v).map_err(|r| bad("version", r))?;
                    }
                }
                Item::Group(g) => check_word(&g.name).map_err(|r| bad("name", r))?,
                Item::User(u) => {
                    check_word(&u.name).map_err(|r| bad("name", r))?;
                    if let Some(g) = &u.group {
                        check_word(g).map_err(|r| bad("group", r))?;
                    }
                    for (field, p) in [("home", &u.home), ("shell", &u.shell)] {
                        if let Some(p) = p {
                            check_path(p).map_err(|r| bad(field, r))?;
                        }
                    }
                }
                Item::Directory(d) => {
                    check_path(&d.path).map_err(|r| bad("path", r))?;
                    check_mode(d.mode).map_err(|r| bad("mode", r))?;
                    check_owner(&d.owner, &d.group).map_err(|(f, r)| bad(f, r))?;
                }
                Item::File(f) => {
                    check_path(&f.path).map_err(|r| bad("path", r))?;
                    check_mode(f.mode).map_err(|r| bad("mode", r))?;
                    check_owner(&f.owner, &f.group).map_err(|(fl, r)| bad(fl, r))?;
                    if f.secret && f.mode & 0o077 != 0 {
                        return Err(bad(
                            "mode",
                            format!("{:o} lets others read a secret file", f.mode),
                        ));
                    }
                    if let Some(v) = &f.validate {
                        if v.argv.is_empty() {
                            return Err(bad("validate", "empty command".into()));
                        }
                        if !v.argv.iter().any(|w| w.contains(CANDIDATE_PLACEHOLDER)) {
                            return Err(bad(
                                "validate",
                                format!(
                                    "no argument names the candidate ({CANDIDATE_PLACEHOLDER})"
                                ),
                            ));
                        }
                    }
                    files_so_far.insert(f.path.as_str());
                }
                Item::Service(s) => {
                    check_word(&s.name).map_err(|r| bad("name", r))?;
                    for (field, list) in
                        [("restart_on", &s.restart_on), ("reload_on", &s.reload_on)]
                    {
                        check_watched(list, &files_so_far).map_err(|r| bad(field, r))?;
                    }
                }
                Item::Exec(e) => {
                    check_word(&e.name).map_err(|r| bad("name", r))?;
                    if e.argv.is_empty() {
                        return Err(bad("argv", "empty command".into()));
                    }
                    if e.unless.as_ref().is_some_and(Vec::is_empty) {
                        return Err(bad("unless", "empty command".into()));
                    }
                    if let Some(p) = &e.creates {
                        check_path(p).map_err(|r| bad("creates", r))?;
                    }
                    check_watched(&e.on_change, &files_so_far).map_err(|r| bad("on_change", r))?;
                    let guarded =
                        e.unless.is_some() || e.creates.is_some() || !e.on_change.is_empty();
                    if e.check && guarded {
                        return Err(bad(
                            "check",
                            "a check runs every time: it takes no guard".into(),
                        ));
                    }
                    if !e.check && !guarded {
                        return Err(bad(
                            "argv",
                            "a command that changes the host needs a guard (unless, creates or on_change), or it would run on every pass".into(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The JSON form stored at `hosts/<vm>/host-plan.json`: every item, files with their
    /// SHA-256 instead of their bytes.
    #[must_use]
    pub fn to_json(&self) -> String {
        let stored = Stored {
            format: FORMAT,
            host: self.host.clone(),
            items: self.items.clone(),
        };
        let mut value = serde_json::to_value(&stored).unwrap_or_default();
        // Files carry their digest, so a tree whose bytes were edited is noticed on reading.
        if let Some(items) = value.get_mut("items").and_then(|v| v.as_array_mut()) {
            for (item, json) in self.items.iter().zip(items.iter_mut()) {
                if let (Item::File(f), Some(obj)) = (item, json.as_object_mut()) {
                    obj.insert("sha256".into(), f.sha256().into());
                }
            }
        }
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads the JSON form back; `read(path)` returns the bytes of the file the host receives at
    /// `path` (from `hosts/<vm>/<path>` of the tree).
    ///
    /// # Errors
    /// [`Error::Json`] for malformed JSON or an unknown format, [`Error::Content`] when a file is
    /// missing or its bytes do not match the recorded digest, and what [`HostPlan::validate`]
    /// finds.
    pub fn from_json(
        text: &str,
        mut read: impl FnMut(&str) -> Option<Vec<u8>>,
    ) -> Result<Self, Error> {
        let stored: Stored = serde_json::from_str(text).map_err(|e| Error::Json {
            reason: e.to_string(),
        })?;
        if stored.format != FORMAT {
            return Err(Error::Json {
                reason: format!(
                    "format {} is not the one this version reads ({FORMAT})",
                    stored.format
                ),
            });
        }
        let mut plan = Self {
            host: stored.host,
            items: stored.items,
        };
        for item in &mut plan.items {
            if let Item::File(f) = item {
                let content = |reason| Error::Content {
                    host: plan.host.clone(),
                    path: f.path.clone(),
                    reason,
                };
                let expected = f
                    .pending_sha256
                    .take()
                    .ok_or_else(|| content("no sha256 recorded"))?;
                f.content = read(&f.path).ok_or_else(|| content("missing from the tree"))?;
                if f.sha256() != expected {
                    return Err(content("its bytes differ from the recorded sha256"));
                }
            }
        }
        plan.validate()?;
        Ok(plan)
    }
}

fn check_word(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\'')
    {
        return Err(format!(
            "{s:?} contains whitespace, a quote or a control character"
        ));
    }
    if s.starts_with('-') {
        return Err(format!("{s:?} starts with '-'"));
    }
    Ok(())
}

fn check_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} is not absolute"));
    }
    if p.len() > 1 && p.ends_with('/') {
        return Err(format!("{p:?} ends with '/'"));
    }
    if p.contains(['\0', '\n']) {
        return Err(format!("{p:?} contains NUL or a newline"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("{p:?} contains `..`"));
    }
    Ok(())
}

fn check_mode(mode: u32) -> Result<(), String> {
    if mode > 0o7777 {
        return Err(format!("{mode:o} is more than 7777"));
    }
    Ok(())
}

fn check_owner(
    owner: &Option<String>,
    group: &Option<String>,
) -> Result<(), (&'static str, String)> {
    for (field, v) in [("owner", owner), ("group", group)] {
        if let Some(v) = v {
            check_word(v).map_err(|r| (field, r))?;
            if v.contains(':') {
                return Err((field, format!("{v:?} contains ':'")));
            }
        }
    }
    Ok(())
}

fn check_watched(list: &[String], files: &BTreeSet<&str>) -> Result<(), String> {
    for p in list {
        if !files.contains(p.as_str()) {
            return Err(format!(
                "{p} is not a file declared earlier in the plan, so it can never trigger this"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HostPlan {
        HostPlan::new("lb-1")
            .package(Package::new("haproxy"))
            .package(Package::new("kubeadm").version("1.33.2-1.1").hold())
            .group(Group::system("keepalived_script"))
            .user(User::system("keepalived_script").group("keepalived_script"))
            .directory(
                Directory::new("/run/haproxy")
                    .mode(0o2775)
                    .owner("haproxy", "haproxy"),
            )
            .file(
                File::new("/etc/haproxy/haproxy.cfg", "global\n")
                    .validate(Validate::new(["haproxy", "-c", "-f", "%s"])),
            )
            .file(File::secret("/etc/haproxy/tls.pem", "KEY"))
            .service(Service::new("haproxy").reload_on(["/etc/haproxy/haproxy.cfg"]))
            .exec(Exec::on_change(
                "exportfs",
                ["exportfs", "-ra"],
                ["/etc/haproxy/tls.pem"],
            ))
            .exec(Exec::check("verify", ["exportfs", "-v"]))
    }

    #[test]
    fn json_round_trip_is_lossless() {
        let plan = sample();
        plan.validate().unwrap();
        let json = plan.to_json();
        assert!(!json.contains("KEY"), "bytes never in the JSON form");
        let back =
            HostPlan::from_json(&json, |p| plan.file_content(p).map(<[u8]>::to_vec)).unwrap();
        assert_eq!(back, plan);
        assert_eq!(back.to_json(), json);
    }

    #[test]
    fn edited_or_missing_bytes_are_noticed() {
        let plan = sample();
        let json = plan.to_json();
        let err = HostPlan::from_json(&json, |p| {
            (p != "/etc/haproxy/tls.pem").then(|| plan.file_content(p).unwrap_or_default().to_vec())
        })
        .unwrap_err();
        assert!(err.to_string().contains("tls.pem: missing"), "{err}");
        let err = HostPlan::from_json(&json, |_| Some(b"other".to_vec())).unwrap_err();
        assert!(err.to_string().contains("differ"), "{err}");
        assert!(
            HostPlan::from_json("{\"format\":9,\"host\":\"a\",\"items\":[]}", |_| None).is_err()
        );
    }

    #[test]
    fn debug_never_shows_content() {
        let f = File::secret("/k", "hunter2");
        assert!(!format!("{f:?}").contains("hunter2"));
    }

    #[test]
    fn rules_name_host_item_and_field() {
        let cases: Vec<(HostPlan, &str)> = vec![
            (
                HostPlan::new("h").file(File::new("etc/x", "")),
                "file etc/x: path",
            ),
            (
                HostPlan::new("h").file(File::new("/x", "").mode(0o10000)),
                "mode",
            ),
            (
                HostPlan::new("h").file(File::secret("/k", "").mode(0o644)),
                "secret",
            ),
            (
                HostPlan::new("h").service(Service::new("a").reload_on(["/nowhere"])),
                "service a: reload_on",
            ),
            (
                HostPlan::new("h").exec(Exec {
                    check: false,
                    ..Exec::check("x", ["true"])
                }),
                "needs a guard",
            ),
            (
                HostPlan::new("h").file(File::new("/x", "").validate(Validate::new(["true"]))),
                "candidate",
            ),
            (
                HostPlan::new("h")
                    .package(Package::new("a"))
                    .package(Package::new("a")),
                "declared twice",
            ),
            (
                HostPlan::new("h").user(User::system("a b")),
                "user a b: name",
            ),
            (
                HostPlan::new("h").directory(Directory::new("/d").owner("x:y", "g")),
                "owner",
            ),
        ];
        for (plan, want) in cases {
            let err = plan.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err} lacks {want}");
            assert!(err.starts_with("host h:"), "{err}");
        }
    }
}
