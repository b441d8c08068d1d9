//! The crate's error type.

use std::collections::BTreeMap;

use crate::Upid;

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to Proxmox VE or provisioning on it.
///
/// Each variant says whether a retry is safe. [`Error::retry`] gives the same answer as data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration is invalid (URL, CA PEM, fingerprint, credentials).
    /// Not retryable: fix the configuration.
    #[error("invalid client configuration: {field}: {reason}")]
    Config {
        /// The setting at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The request never reached the server (DNS, refused, unreachable).
    /// Safe to retry: nothing was processed.
    #[error("cannot connect to {host}")]
    Connect {
        /// Host and port.
        host: String,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },

    /// The server's TLS certificate was refused (wrong fingerprint, untrusted CA,
    /// wrong name). Not retryable: check the trust settings.
    #[error("TLS certificate of {host} refused: {reason}")]
    Tls {
        /// Host and port.
        host: String,
        /// Why the certificate was refused.
        reason: String,
    },

    /// The request was sent but no complete answer arrived (timeout, reset).
    /// A GET is safe to retry; a write may have been processed: re-observe first.
    #[error("{method} {path}: no complete answer from the server")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// API path.
        path: String,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },

    /// The API answered with an error status.
    /// Retry safety depends on the error: see [`Error::retry`] (lock timeouts are safe,
    /// other failed writes need re-observation).
    #[error("{method} {path}: HTTP {status}: {message}{}", fmt_errors(errors))]
    Api {
        /// HTTP method.
        method: &'static str,
        /// API path.
        path: String,
        /// HTTP status code.
        status: u16,
        /// The HTTP reason phrase as sent (PVE puts the first line of the message there).
        reason: String,
        /// The full message.
        message: String,
        /// Per-parameter errors (`400 Parameter verification failed.`).
        errors: BTreeMap<String, String>,
    },

    /// Logging in failed (bad user, password or token). Not retryable.
    #[error("authentication as {user} failed: {message}")]
    Auth {
        /// The user or token id (never the secret).
        user: String,
        /// The server's message.
        message: String,
        /// The HTTP status of the refusal, when there was one (401 for a refused token).
        status: Option<u16>,
    },

    /// A success answer did not have the expected shape. Not retryable.
    #[error("{method} {path}: unexpected answer")]
    Decode {
        /// HTTP method.
        method: &'static str,
        /// API path.
        path: String,
        /// The decoding failure.
        #[source]
        source: serde_json::Error,
    },

    /// A task ended with an error. Whether the operation can be repeated depends on
    /// the task; the provisioner re-observes the VM before trying again.
    #[error("task {upid} failed: {exitstatus}{}", fmt_tail(log_tail))]
    Task {
        /// The task.
        upid: Box<Upid>,
        /// Its exit status text.
        exitstatus: String,
        /// The last lines of the task log.
        log_tail: Vec<String>,
    },

    /// A wait (task, guest agent) exceeded its deadline. The operation may still
    /// complete: re-observe before repeating it.
    #[error("timed out after {seconds:.1}s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// Seconds waited.
        seconds: f64,
    },

    /// A string that should be a UPID is not one. Not retryable.
    #[error("invalid UPID {value:?}: {reason}")]
    InvalidUpid {
        /// The text.
        value: String,
        /// What is wrong.
        reason: String,
    },

    /// An input value is invalid (tag, ssh key, VM spec field). Not retryable: fix the input.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, as a path (`vms[3].disk_gb`).
        field: String,
        /// What is wrong.
        reason: String,
    },

    /// The wanted VMID is held by a VM this tool does not own. Not retryable:
    /// free the VMID or change the spec; the foreign VM is never touched.
    #[error(
        "VMID {vmid} is taken by VM {name:?} on node {node}, which is not owned by this cluster (missing tag {tag:?})"
    )]
    ForeignVm {
        /// The VMID.
        vmid: u32,
        /// The foreign VM's name.
        name: String,
        /// The node it lives on.
        node: String,
        /// The ownership tag that was expected.
        tag: String,
    },

    /// An HA resource went into a state it does not leave by itself (`error`): the HA
    /// manager gave up on the request. Re-observe; fix the cause, then clear the state.
    #[error("HA resource {sid} is in state {state}")]
    HaState {
        /// `vm:ID`.
        sid: String,
        /// The HA state.
        state: String,
    },

    /// The VMIDs tried were all taken (by other tools allocating at the same time, or
    /// by existing guests). Safe to retry with a wider range.
    #[error("no free VMID in {first}..={last}")]
    NoFreeVmid {
        /// First VMID tried.
        first: u32,
        /// Last VMID allowed.
        last: u32,
    },

    /// A node the plan needs is offline or unknown. Retry once the node is back.
    #[error("Proxmox node {node} is {state}; needed for {needed_by}")]
    NodeUnavailable {
        /// The node.
        node: String,
        /// `offline`, `unknown`, ...
        state: String,
        /// The VMs or templates that need it.
        needed_by: String,
    },

    /// Provisioning failed for some VMs; the others were completed. Safe to re-run:
    /// the next run finishes what is missing.
    #[error("provisioning failed for {} VM(s): {}", failures.len(), fmt_failures(failures))]
    Provision {
        /// (VM name, error) for each failed VM.
        failures: Vec<(String, Self)>,
    },
}

fn fmt_errors(errors: &BTreeMap<String, String>) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!(" ({})", parts.join("; "))
}

fn fmt_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        return String::new();
    }
    format!("\n  task log tail:\n    {}", tail.join("\n    "))
}

fn fmt_failures(failures: &[(String, Error)]) -> String {
    failures
        .iter()
        .map(|(vm, e)| format!("[{vm}] {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether repeating the failed operation is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retry {
    /// Nothing was processed (or the operation is a read): repeat it.
    Safe,
    /// The server may have processed a write: observe the state, then decide.
    AfterObserve,
    /// Repeating cannot help.
    Never,
}

impl Error {
    /// True for a config or storage lock timeout (`can't lock file ... got timeout`,
    /// `cfs-lock ... timeout`); the server did not do the work.
    pub fn is_lock_timeout(&self) -> bool {
        let text = match self {
            Self::Api { message, .. } => message.as_str(),
            Self::Task { exitstatus, .. } => exitstatus.as_str(),
            _ => return false,
        };
        is_lock_timeout_text(text)
    }

    /// True for PVE's "not found" (usually a 500 `Configuration file ... does not exist`).
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Api {
                status, message, ..
            } => {
                *status == 404
                    || message.contains("does not exist")
                    || message.contains("no such")
                    || message.starts_with("unable to parse worker upid")
            }
            _ => false,
        }
    }

    /// The HTTP status of an API error or of a refused login or token.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::Auth { status, .. } => *status,
            _ => None,
        }
    }

    /// Whether repeating the failed operation is safe, for a request of `method`.
    pub fn retry(&self) -> Retry {
        match self {
            Self::Connect { .. } => Retry::Safe,
            Self::Transport { method, .. } => {
                if *method == "GET" {
                    Retry::Safe
                } else {
                    Retry::AfterObserve
                }
            }
            Self::Api { method, status, .. } => {
                if self.is_lock_timeout() {
                    Retry::Safe
                } else if matches!(status, 500 | 502 | 503 | 504 | 595 | 596) {
                    if *method == "GET" {
                        Retry::Safe
                    } else {
                        Retry::AfterObserve
                    }
                } else {
                    Retry::Never
                }
            }
            Self::Task { .. }
            | Self::Timeout { .. }
            | Self::Provision { .. }
            | Self::HaState { .. } => Retry::AfterObserve,
            Self::NoFreeVmid { .. } => Retry::Safe,
            Self::NodeUnavailable { .. } => Retry::Safe,
            _ => Retry::Never,
        }
    }
}

/// True if the message is a config or storage lock timeout.
pub(crate) fn is_lock_timeout_text(text: &str) -> bool {
    (text.contains("can't lock file") && text.contains("timeout"))
        || (text.contains("cfs-lock") && text.contains("timeout"))
        || text.contains("got lock request timeout")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(method: &'static str, status: u16, message: &str) -> Error {
        Error::Api {
            method,
            path: "/x".into(),
            status,
            reason: message.into(),
            message: message.into(),
            errors: BTreeMap::new(),
        }
    }

    #[test]
    fn classifies_retries() {
        let lock = api(
            "POST",
            500,
            "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout",
        );
        assert!(lock.is_lock_timeout());
        assert_eq!(lock.retry(), Retry::Safe);
        let cfs = api(
            "POST",
            500,
            "clone failed: cfs-lock 'storage-local-lvm' error: got lock request timeout",
        );
        assert_eq!(cfs.retry(), Retry::Safe);
        assert_eq!(api("POST", 500, "boom").retry(), Retry::AfterObserve);
        assert_eq!(api("GET", 596, "Broken pipe").retry(), Retry::Safe);
        assert_eq!(
            api("POST", 400, "Parameter verification failed.").retry(),
            Retry::Never
        );
        let nf = api(
            "GET",
            500,
            "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist",
        );
        assert!(nf.is_not_found());
    }

    #[test]
    fn messages_carry_context() {
        let mut e = api("POST", 400, "Parameter verification failed.");
        if let Error::Api { errors, .. } = &mut e {
            errors.insert("sshkeys".into(), "invalid urlencoded string".into());
        }
        assert_eq!(
            e.to_string(),
            "POST /x: HTTP 400: Parameter verification failed. (sshkeys: invalid urlencoded string)"
        );
    }
}
