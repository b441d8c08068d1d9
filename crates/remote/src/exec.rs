//! The [`RemoteExec`] trait (the seam between orchestration logic and SSH) and the idempotent
//! file push built on it.

use std::fmt;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::{Command, Error, Output};

/// A file to place on a remote host: absolute path, content, mode and optional owner/group.
#[derive(Clone, PartialEq, Eq)]
pub struct Upload {
    /// Absolute path on the host.
    pub path: String,
    /// The exact bytes (binary-safe).
    pub content: Vec<u8>,
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
    /// Owner user name; `None` leaves it to whoever writes the file (the login user, or root
    /// under sudo) and does not compare it in [`push_file`].
    pub owner: Option<String>,
    /// Owner group name; `None` as for `owner`.
    pub group: Option<String>,
    /// Write through `sudo -n` when the login user is not root.
    pub sudo: bool,
}

impl Upload {
    /// A file with mode `0o644`, no owner change, no sudo.
    #[must_use]
    pub fn new(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            content: content.into(),
            mode: 0o644,
            owner: None,
            group: None,
            sudo: false,
        }
    }

    /// Sets the permission bits.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Sets owner and group (`chown owner:group`).
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>, group: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self.group = Some(group.into());
        self
    }

    /// Writes through `sudo -n` for non-root logins.
    #[must_use]
    pub fn sudo(mut self, sudo: bool) -> Self {
        self.sudo = sudo;
        self
    }

    /// Lower-case hex SHA-256 of the content.
    #[must_use]
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.content))
    }

    /// Checks the fields: an absolute path without NUL, `..` or newline, a mode within
    /// `0o7777`, and owner/group names without whitespace or `:`.
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &str, reason: &str| {
            Err(Error::InvalidCommand {
                field: field.into(),
                reason: reason.into(),
            })
        };
        if !self.path.starts_with('/') {
            return bad("path", &format!("{:?} is not absolute", self.path));
        }
        if self.path.ends_with('/') || self.path.contains(['\0', '\n']) {
            return bad("path", &format!("{:?} is not a file path", self.path));
        }
        if self.path.split('/').any(|c| c == "..") {
            return bad("path", &format!("{:?} contains `..`", self.path));
        }
        if self.mode > 0o7777 {
            return bad("mode", &format!("{:o} is more than 7777", self.mode));
        }
        for (field, v) in [("owner", &self.owner), ("group", &self.group)] {
            if let Some(v) = v
                && (v.is_empty()
                    || v.contains(|c: char| c.is_whitespace() || c == ':' || c == '\0'))
            {
                return bad(field, &format!("{v:?} is not a user/group name"));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Content may be a secret (keys, tokens): show only its size and hash.
        f.debug_struct("Upload")
            .field("path", &self.path)
            .field("len", &self.content.len())
            .field("sha256", &self.sha256())
            .field("mode", &format_args!("{:o}", self.mode))
            .field("owner", &self.owner)
            .field("group", &self.group)
            .field("sudo", &self.sudo)
            .finish()
    }
}

/// What a remote file currently is: content hash, mode and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner user name.
    pub owner: String,
    /// Owner group name.
    pub group: String,
}

/// What [`push_file`] did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// The file was missing and was created.
    Created,
    /// The content differed and was replaced.
    ContentChanged,
    /// Only mode or owner differed; they were fixed (the content was re-written atomically).
    MetadataChanged,
    /// Already as wanted: nothing was done.
    Unchanged,
}

impl PushOutcome {
    /// True unless [`PushOutcome::Unchanged`].
    #[must_use]
    pub fn changed(self) -> bool {
        !matches!(self, Self::Unchanged)
    }
}

impl fmt::Display for PushOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::ContentChanged => "content changed",
            Self::MetadataChanged => "mode/owner changed",
            Self::Unchanged => "unchanged",
        })
    }
}

/// Remote execution on one host: the seam between orchestration logic and the transport.
///
/// The SSH implementation is [`crate::SshSession`]; the in-memory recording fake for unit tests
/// is `hakube_remote::testing::FakeHost` (feature `testing`).
///
/// Every method has a timeout (the command's own or the session default). Implementations are
/// shared between tasks (`&self`), so one connection serves concurrent steps.
#[async_trait]
pub trait RemoteExec: Send + Sync {
    /// The host's name, used in errors, logs and results.
    fn host(&self) -> &str;

    /// The address used to reach the host (DNS name or IP), for port checks.
    fn address(&self) -> &str;

    /// Whether the login user is root (then `sudo` is not used).
    fn is_root(&self) -> bool;

    /// Runs a command and returns its output whatever its exit status.
    ///
    /// # Errors
    /// Transport failures ([`Error::Connect`], [`Error::ConnectionLost`], host key and auth
    /// errors), [`Error::Timeout`], [`Error::NoExitStatus`], [`Error::InvalidCommand`].
    /// A non-zero exit is NOT an error here; see [`RemoteExec::run_ok`].
    async fn run(&self, command: &Command) -> Result<Output, Error>;

    /// Writes a file atomically (temporary file in the same directory, then rename), creating
    /// parent directories, then sets mode and owner. Always writes; see [`push_file`] for the
    /// idempotent version.
    ///
    /// # Errors
    /// [`Error::RemoteFile`] when the host refuses, plus transport errors.
    async fn upload(&self, file: &Upload) -> Result<(), Error>;

    /// Reads a whole file (binary-safe). `sudo` reads through `sudo -n` for non-root logins.
    ///
    /// # Errors
    /// [`Error::RemoteFile`] when the file is missing or unreadable, plus transport errors.
    async fn read_file(&self, path: &str, sudo: bool) -> Result<Vec<u8>, Error>;

    /// The current hash, mode and owner of a file, or `None` if it does not exist.
    ///
    /// # Errors
    /// [`Error::RemoteFile`] when the file exists but cannot be inspected, plus transport errors.
    async fn file_state(&self, path: &str, sudo: bool) -> Result<Option<FileState>, Error>;

    /// Idempotent push: uploads only when content, mode or owner differ, and says what
    /// changed. The default compares with [`RemoteExec::file_state`] then calls
    /// [`RemoteExec::upload`]; the SSH implementation does both in one round trip for small
    /// files. Prefer the free function [`push_file`], which also logs.
    ///
    /// # Errors
    /// Invalid upload fields, [`Error::RemoteFile`], transport errors.
    async fn push(&self, file: &Upload) -> Result<PushOutcome, Error> {
        let outcome = diff_file(self, file).await?;
        if outcome.changed() {
            self.upload(file).await?;
        }
        Ok(outcome)
    }

    /// Runs a command and requires exit code 0.
    ///
    /// # Errors
    /// As [`RemoteExec::run`], plus [`Error::CommandFailed`] for a non-zero exit or a signal.
    async fn run_ok(&self, command: &Command) -> Result<Output, Error> {
        self.run(command).await?.check(self.host(), command)
    }
}

/// Compares the wanted file with the remote one and tells what a push would do, without
/// changing anything (the dry-run half of [`push_file`]).
///
/// # Errors
/// Invalid upload fields, and the errors of [`RemoteExec::file_state`].
pub async fn diff_file<E: RemoteExec + ?Sized>(
    exec: &E,
    file: &Upload,
) -> Result<PushOutcome, Error> {
    file.validate()?;
    let Some(state) = exec.file_state(&file.path, file.sudo).await? else {
        return Ok(PushOutcome::Created);
    };
    if state.sha256 != file.sha256() {
        return Ok(PushOutcome::ContentChanged);
    }
    let owner_differs = file.owner.as_ref().is_some_and(|o| *o != state.owner)
        || file.group.as_ref().is_some_and(|g| *g != state.group);
    if state.mode != file.mode || owner_differs {
        return Ok(PushOutcome::MetadataChanged);
    }
    Ok(PushOutcome::Unchanged)
}

/// Uploads a file only when its content, mode or owner differ from what is on the host, and
/// reports what changed, so that follow-up steps ("reload haproxy") run only when needed.
///
/// # Errors
/// Invalid upload fields, and the errors of [`RemoteExec::file_state`] and
/// [`RemoteExec::upload`].
pub async fn push_file<E: RemoteExec + ?Sized>(
    exec: &E,
    file: &Upload,
) -> Result<PushOutcome, Error> {
    let outcome = exec.push(file).await?;
    tracing::debug!(host = exec.host(), path = %file.path, %outcome, "push");
    Ok(outcome)
}
