//! The lab's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while building, driving or tearing down a lab.
///
/// Each variant names the host (or `lab` for lab-wide steps) and, for commands, the command line
/// and its stderr, so a failed test says what broke without rerunning it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The machine cannot host a lab (not root, `ip netns` unusable, a tool missing).
    /// Retrying does not help; [`crate::require_root`] turns this into a test skip.
    #[error("the lab cannot run here: {reason}")]
    Unsupported {
        /// What is missing.
        reason: String,
    },

    /// The builder was given a bad value (an invalid or duplicate host name, a bad path).
    /// Retrying with the same input fails the same way.
    #[error("invalid lab setting `{field}`: {reason}")]
    InvalidConfig {
        /// The builder setting at fault, e.g. `hosts` or `private_dir`.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// A command ran and failed (non-zero exit or killed by a signal).
    /// Whether a retry is safe depends on the command; the lab's own commands are idempotent
    /// only where documented.
    #[error("{host}: `{command}` failed ({status}): {stderr}")]
    Command {
        /// The host the command ran in (`lab` for commands in the root or switch namespace).
        host: String,
        /// The command line.
        command: String,
        /// Exit status as text (`exit status: 1`, `signal: 9`).
        status: String,
        /// Its stderr, trimmed.
        stderr: String,
    },

    /// A program could not be started at all (usually: not installed).
    /// Retrying does not help until the program is installed.
    #[error("{host}: cannot start `{command}`")]
    Spawn {
        /// The host the program was meant to run in.
        host: String,
        /// The command line.
        command: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Reading or writing a lab file failed. Safe to retry once the cause is fixed.
    #[error("{host}: I/O on {}", path.display())]
    Io {
        /// The host whose file it was (`lab` for lab-wide files).
        host: String,
        /// The path, as seen from the test process.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Every /24 of the address pool is taken by other labs or by routes on this machine.
    /// Safe to retry after other labs are torn down.
    #[error("no free /24 left in {pool} (other labs or local routes use them all)")]
    NoFreeSubnet {
        /// The pool that was searched.
        pool: String,
    },

    /// Something the lab started did not become ready in time (sshd not listening, an anchor
    /// process that did not start). The lab is torn down; a retry is safe.
    #[error("{host}: {what} not ready after {waited:?}{}", detail_suffix(detail))]
    NotReady {
        /// The host.
        host: String,
        /// What was awaited, e.g. `sshd on 10.88.3.11:22`.
        what: String,
        /// How long the lab waited.
        waited: Duration,
        /// Extra context, e.g. the tail of the daemon's log.
        detail: String,
    },

    /// No host of that name was ever part of the lab. A programming error; do not retry.
    #[error("no host named `{host}` in this lab")]
    UnknownHost {
        /// The name asked for.
        host: String,
    },

    /// The host was removed with [`crate::Lab::remove_host`]; nothing runs there any more.
    /// Do not retry.
    #[error("{host}: host was removed from the lab")]
    HostRemoved {
        /// The removed host.
        host: String,
    },

    /// A file operation targeted a path outside the host's private directories; the lab refuses
    /// to write into the machine's real file system. Do not retry; add a private directory.
    #[error("{host}: {} is not inside one of the host's private directories", path.display())]
    NotPrivate {
        /// The host.
        host: String,
        /// The path as seen inside the host.
        path: PathBuf,
    },

    /// No daemon of that name was started on the host (or it was already killed).
    #[error("{host}: no daemon named `{name}`")]
    UnknownDaemon {
        /// The host.
        host: String,
        /// The daemon name.
        name: String,
    },

    /// A daemon of that name is still running on the host. Kill it first; then a retry is safe.
    #[error("{host}: a daemon named `{name}` is already running")]
    DaemonExists {
        /// The host.
        host: String,
        /// The daemon name.
        name: String,
    },

    /// A command ran longer than its timeout and was killed. Whether a retry is safe depends
    /// on the command.
    #[error("{host}: `{command}` timed out after {after:?}")]
    Timeout {
        /// The host.
        host: String,
        /// The command line.
        command: String,
        /// The timeout.
        after: Duration,
    },

    /// The kernel has no `sch_netem` qdisc, so delay/loss cannot be injected here.
    /// Retrying does not help; tests should skip the netem part when they see this.
    #[error("{host}: netem is not available on this kernel: {stderr}")]
    NetemUnavailable {
        /// The host.
        host: String,
        /// What `tc` said.
        stderr: String,
    },

    /// No cgroup `cpu` controller can be used here (none mounted, or a read-only cgroup file
    /// system in a container), so [`crate::Host::cpu_limit`] cannot confine the host.
    /// Retrying does not help; tests should skip the CPU-budget part when they see this.
    #[error("{host}: CPU budgets are not available here: {reason}")]
    CpuLimitUnavailable {
        /// The host.
        host: String,
        /// Why not.
        reason: String,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// The lab's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
