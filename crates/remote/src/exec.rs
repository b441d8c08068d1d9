//! The [`RemoteExec`] trait (the seam between orchestration logic and SSH) and the idempotent
//! file push built on it.

use std::fmt;

use async_trait::async_trait;

use hakube_host_state::File;

use crate::{Command, Error, Output};

/// Checks a file's fields before it goes to a host: an absolute path without NUL, `..` or
/// newline, a mode within `0o7777`, and owner/group names without whitespace or `:`.
///
/// # Errors
/// [`Error::InvalidCommand`] naming the field.
pub(crate) fn check_file(file: &File) -> Result<(), Error> {
    let bad = |field: &str, reason: &str| {
        Err(Error::InvalidCommand {
            field: field.into(),
            reason: reason.into(),
        })
    };
    if !file.path.starts_with('/') {
        return bad("path", &format!("{:?} is not absolute", file.path));
    }
    if file.path.ends_with('/') || file.path.contains(['\0', '\n']) {
        return bad("path", &format!("{:?} is not a file path", file.path));
    }
    if file.path.split('/').any(|c| c == "..") {
        return bad("path", &format!("{:?} contains `..`", file.path));
    }
    if file.mode > 0o7777 {
        return bad("mode", &format!("{:o} is more than 7777", file.mode));
    }
    for (field, v) in [("owner", &file.owner), ("group", &file.group)] {
        if let Some(v) = v
            && (v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == ':' || c == '\0'))
        {
            return bad(field, &format!("{v:?} is not a user/group name"));
        }
    }
    Ok(())
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
    /// parent directories, then sets mode and owner. `sudo` writes through `sudo -n` for
    /// non-root logins. Always writes; see [`push_file`] for the idempotent version.
    ///
    /// # Errors
    /// [`Error::RemoteFile`] when the host refuses, plus transport errors.
    async fn upload(&self, file: &File, sudo: bool) -> Result<(), Error>;

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
    async fn push(&self, file: &File, sudo: bool) -> Result<PushOutcome, Error> {
        let outcome = diff_file(self, file, sudo).await?;
        if outcome.changed() {
            self.upload(file, sudo).await?;
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
    file: &File,
    sudo: bool,
) -> Result<PushOutcome, Error> {
    check_file(file)?;
    let Some(state) = exec.file_state(&file.path, sudo).await? else {
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
    file: &File,
    sudo: bool,
) -> Result<PushOutcome, Error> {
    let outcome = exec.push(file, sudo).await?;
    tracing::debug!(host = exec.host(), path = %file.path, %outcome, "push");
    Ok(outcome)
}
