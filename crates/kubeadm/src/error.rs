//! The crate's one error type.

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
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
