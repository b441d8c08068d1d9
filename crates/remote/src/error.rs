//! The crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

use crate::command::ExitStatus;

/// Everything that can go wrong while talking to a remote host.
///
/// Each variant names the host (and the path, step or field where one applies). Secrets never
/// appear in the message: commands are shown in their redacted form.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection or the SSH handshake failed before anything was sent.
    /// Safe to retry: no command reached the host.
    #[error("{host}: cannot connect to {addr}: {reason}")]
    Connect {
        /// The host's name.
        host: String,
        /// The address that was dialled (`host:port`).
        addr: String,
        /// What failed.
        reason: String,
    },

    /// The host presented a key that no trusted source knows (known_hosts or pinned keys).
    /// Retry is pointless until the key is trusted (add it to known_hosts or pin it).
    #[error(
        "{host}: unknown host key {fingerprint} (not in the trusted keys; refusing to connect)"
    )]
    UnknownHostKey {
        /// The host's name.
        host: String,
        /// SHA256 fingerprint of the presented key, as OpenSSH prints it.
        fingerprint: String,
    },

    /// The host presented a key different from the one recorded for it: possibly a
    /// man-in-the-middle, or a reinstalled host. Retry is pointless until an operator checks.
    #[error(
        "{host}: HOST KEY CHANGED: presented {fingerprint}, but {source_desc} records a different key"
    )]
    HostKeyChanged {
        /// The host's name.
        host: String,
        /// SHA256 fingerprint of the presented key.
        fingerprint: String,
        /// Where the recorded key came from (a known_hosts file and line, or "pinned keys").
        source_desc: String,
    },

    /// A known_hosts file could not be read, parsed or appended to.
    /// Retry is safe once the file is fixed.
    #[error("known_hosts {path}: {reason}")]
    KnownHosts {
        /// The file.
        path: PathBuf,
        /// What is wrong (with a line number for parse errors).
        reason: String,
    },

    /// A key or host key given by the caller could not be parsed or loaded.
    /// Retry is pointless: the input is wrong.
    #[error("invalid key {what}: {reason}")]
    InvalidKey {
        /// Which key (a file path or "pinned key #n").
        what: String,
        /// Why it is invalid.
        reason: String,
    },

    /// The server refused every authentication method we offered.
    /// Retry is pointless until the credentials or the server's authorized_keys change.
    #[error("{host}: authentication as {user} failed: {reason}")]
    Auth {
        /// The host's name.
        host: String,
        /// The login user.
        user: String,
        /// Which methods were tried.
        reason: String,
    },

    /// The SSH connection broke while a command was in flight. The command may or may not have
    /// run on the host: retry only if the command is idempotent.
    #[error("{host}: connection lost during `{command}`: {reason}")]
    ConnectionLost {
        /// The host's name.
        host: String,
        /// The command (redacted).
        command: String,
        /// What the transport reported.
        reason: String,
    },

    /// The command did not finish within its timeout; its channel was closed.
    /// The command may still be running on the host: retry only if it is idempotent.
    #[error("{host}: `{command}` timed out after {timeout:?}")]
    Timeout {
        /// The host's name.
        host: String,
        /// The command (redacted).
        command: String,
        /// The timeout that expired.
        timeout: Duration,
    },

    /// The channel closed without the server sending an exit status or signal.
    /// The command may have run: retry only if it is idempotent.
    #[error("{host}: `{command}` ended without an exit status")]
    NoExitStatus {
        /// The host's name.
        host: String,
        /// The command (redacted).
        command: String,
    },

    /// A command exited unsuccessfully (non-zero code or killed by a signal), where the caller
    /// asked for success. Whether a retry is safe depends on the command.
    #[error("{host}: `{command}` failed with {status}: {stderr}")]
    CommandFailed {
        /// The host's name.
        host: String,
        /// The command (redacted).
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// The tail of its standard error, lossily decoded.
        stderr: String,
    },

    /// A command could not be built: a field is invalid (for example an environment variable
    /// name that is not a shell identifier, or an empty program). Retry is pointless.
    #[error("invalid command field `{field}`: {reason}")]
    InvalidCommand {
        /// The offending field.
        field: String,
        /// Why.
        reason: String,
    },

    /// A remote file operation (read, stat, upload) failed. Retry is safe: uploads are atomic
    /// renames, so the target file is either old or new, never half-written.
    #[error("{host}: {op} {path}: {reason}")]
    RemoteFile {
        /// The host's name.
        host: String,
        /// The operation (`read`, `stat`, `upload`).
        op: &'static str,
        /// The remote path.
        path: String,
        /// What the host reported.
        reason: String,
    },

    /// A local file (a plan tree, a key file) could not be read. Retry once the file is fixed.
    #[error("local file {path}: {reason}")]
    LocalFile {
        /// The local path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// A plan is malformed: an unknown step referenced, a duplicate step name, a relative
    /// remote path. Nothing was applied. Retry is pointless until the plan is fixed.
    #[error("invalid plan {plan}: {reason}")]
    InvalidPlan {
        /// The plan's name.
        plan: String,
        /// What is wrong (naming the step, host or path).
        reason: String,
    },

    /// A TCP port did not open within the wait. Safe to retry.
    #[error("{host}: port {port} did not open within {timeout:?}")]
    PortWait {
        /// The host's name.
        host: String,
        /// The port.
        port: u16,
        /// How long we waited.
        timeout: Duration,
    },

    /// One item of a host plan failed; the items after it were not applied. Whether a retry is
    /// safe follows the source; every item is idempotent, so re-running the plan is.
    #[error("{host}: {item} failed")]
    ItemFailed {
        /// The host's name.
        host: String,
        /// The item (`file /etc/haproxy/haproxy.cfg`, `service haproxy`).
        item: String,
        /// The cause.
        #[source]
        source: Box<Self>,
    },

    /// A file's new content failed its validation command: the live file was left as it was
    /// (the candidate is removed). Retry is pointless until the content is fixed.
    #[error("{host}: new {path} rejected by `{check}` ({reason}); the live file is unchanged{}", if output.is_empty() { String::new() } else { format!(":\n{output}") })]
    Rejected {
        /// The host's name.
        host: String,
        /// The live file's path.
        path: String,
        /// The check (with `%s` for the candidate).
        check: String,
        /// Why it failed (exit status, or the output fragment that rejects it).
        reason: String,
        /// The last lines of the check's output (empty for secret files).
        output: String,
    },

    /// A host plan is malformed. Nothing was applied. Retry is pointless until the plan is
    /// fixed.
    #[error(transparent)]
    HostPlan(#[from] hakube_host_state::Error),

    /// A host was skipped because another host failed and the fan-out is fail-fast.
    /// Nothing was done on this host: safe to retry.
    #[error("{host}: skipped after another host failed")]
    Skipped {
        /// The host's name.
        host: String,
    },
}

impl Error {
    /// The host this error concerns, where there is one.
    #[must_use]
    pub fn host(&self) -> Option<&str> {
        match self {
            Self::Connect { host, .. }
            | Self::UnknownHostKey { host, .. }
            | Self::HostKeyChanged { host, .. }
            | Self::Auth { host, .. }
            | Self::ConnectionLost { host, .. }
            | Self::Timeout { host, .. }
            | Self::NoExitStatus { host, .. }
            | Self::CommandFailed { host, .. }
            | Self::RemoteFile { host, .. }
            | Self::PortWait { host, .. }
            | Self::ItemFailed { host, .. }
            | Self::Rejected { host, .. }
            | Self::Skipped { host } => Some(host),
            Self::KnownHosts { .. }
            | Self::InvalidKey { .. }
            | Self::InvalidCommand { .. }
            | Self::LocalFile { .. }
            | Self::HostPlan(_)
            | Self::InvalidPlan { .. } => None,
        }
    }
}
