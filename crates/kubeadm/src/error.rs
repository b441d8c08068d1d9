//! The crate's one error type.

/// What a bootstrap hook (`flow::BootstrapHooks`, feature `remote`) returns when it fails:
/// any error, its source chain kept.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong while rendering, parsing or running a bootstrap.
///
/// Each variant says whether retrying the same call is safe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field of the input model is invalid. Retry: no, fix the input first.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Dotted path of the offending field, e.g. `workers[2].name`.
        field: String,
        /// What is wrong with it (never contains a secret).
        reason: String,
    },
    /// A document could not be serialised to YAML. Retry: no, this is a bug or a bad value.
    #[error("cannot render {kind} as YAML: {reason}")]
    Render {
        /// Kind of the document (`InitConfiguration`, ...).
        kind: &'static str,
        /// Serializer message.
        reason: String,
    },
    /// A YAML stream could not be parsed into typed documents. Retry: no, fix the YAML.
    #[error("cannot parse document {index} ({kind}): {reason}")]
    Parse {
        /// Zero-based index of the document in the stream.
        index: usize,
        /// Kind of the document, or `?` when it has none.
        kind: String,
        /// Parser message, with the field path when known.
        reason: String,
    },
    /// A document's `apiVersion`/`kind` pair is not one this crate knows. Retry: no.
    #[error("document {index} has unsupported apiVersion {api_version:?} / kind {kind:?}")]
    UnknownDocument {
        /// Zero-based index of the document in the stream.
        index: usize,
        /// The `apiVersion` found.
        api_version: String,
        /// The `kind` found.
        kind: String,
    },
    /// A secret value has the wrong format. Retry: no. The value itself is never shown.
    #[error("malformed {what}: {reason}")]
    MalformedSecret {
        /// Which secret (`bootstrap token`, `certificate key`, `CA cert hash`).
        what: &'static str,
        /// What is wrong, without the value.
        reason: &'static str,
    },
    /// A join configuration needs the CA certificate hash, which only exists after `kubeadm init`.
    /// Retry: yes, once the CA exists and its hash is passed in.
    #[error("node {node}: the join configuration needs the CA cert hash (known only after init)")]
    MissingCaCertHash {
        /// The node whose join configuration was requested.
        node: String,
    },
    /// A certificate could not be read. Retry: no, unless the file was still being written.
    #[error("cannot read certificate {what}: {reason}")]
    Certificate {
        /// Where the certificate came from (path or description).
        what: String,
        /// Parser message.
        reason: String,
    },
    /// Command output did not have the expected shape. Retry: no; the tool's output changed.
    #[error("cannot parse the output of {command}: {reason}")]
    OutputParse {
        /// The command whose output was parsed, e.g. `kubeadm token list`.
        command: &'static str,
        /// What was missing or malformed (never contains a secret).
        reason: String,
    },
    /// A remote call failed (transport, timeout, or a command that must succeed did not).
    /// Retry: the flow is safe to re-run as a whole; finished nodes are skipped.
    #[cfg(feature = "remote")]
    #[error("{host}: {step}")]
    Remote {
        /// Node name.
        host: String,
        /// Flow step (`init`, `join`, `upload config`, ...).
        step: &'static str,
        /// The transport's error (names the command in redacted form).
        #[source]
        source: Box<hakube_remote::Error>,
    },
    /// `kubeadm init` or `join` failed on a node, was reset and retried, and failed again.
    /// Retry: yes after fixing the cause; the node has been reset.
    #[error("{host}: kubeadm {action} failed {attempts} times; last error: {last}")]
    NodeFailed {
        /// Node name.
        host: String,
        /// `init` or `join`.
        action: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure (redacted command and stderr tail).
        last: String,
    },
    /// No remote host was given for a node of the input. Retry: no, pass every node's host.
    #[error("no remote host for node {node}")]
    MissingHost {
        /// Node name.
        node: String,
    },
    /// A bootstrap hook (load balancers, CNI) failed. Retry: yes, the flow is re-runnable.
    #[error("hook {hook} failed")]
    Hook {
        /// Which hook.
        hook: &'static str,
        /// What the hook returned.
        #[source]
        source: crate::HookError,
    },
    /// `kubeadm init phase upload-certs` printed a different key than the one configured.
    /// Retry: no; the joins would fail to decrypt the certificates.
    #[error("{host}: uploaded certificates use a different certificate key than configured")]
    CertificateKeyMismatch {
        /// The first master.
        host: String,
    },
    /// The cluster CA on the first master does not match the pin the caller supplied.
    /// Retry: no; this may be a different cluster.
    #[error("{host}: CA pin {found} differs from the expected {expected}")]
    CaMismatch {
        /// The first master.
        host: String,
        /// Pin of the CA found on the node.
        found: String,
        /// Pin the caller supplied.
        expected: String,
    },
    /// Nodes did not become Ready in time. Retry: yes (waiting longer may be enough).
    #[error("nodes not Ready after {waited_secs}s: {nodes:?}")]
    NotReady {
        /// Nodes still not Ready.
        nodes: Vec<String>,
        /// How long the flow waited.
        waited_secs: u64,
    },
    /// An etcd operation failed its check. Retry: depends on the message.
    #[error("{host}: etcd {op}: {reason}")]
    Etcd {
        /// Node name.
        host: String,
        /// Operation (`snapshot save`, `snapshot status`, `restore`, `member remove`).
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    #[cfg(feature = "remote")]
    /// A `map_err` adapter for remote failures of `step` on `host`.
    pub(crate) fn remote(
        host: impl Into<String>,
        step: &'static str,
    ) -> impl FnOnce(hakube_remote::Error) -> Self {
        let host = host.into();
        move |source| Self::Remote {
            host,
            step,
            source: Box::new(source),
        }
    }

    /// The error and all its causes on one line (`a: b: c`), for reports that keep text.
    #[cfg(feature = "remote")]
    pub(crate) fn chain_text(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let part = s.to_string();
            // Some errors repeat their cause in their own message; say it once.
            if !text.ends_with(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            source = s.source();
        }
        text
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
