//! The crate's error type.

/// What went wrong. Secrets never appear in messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input field is unusable. Not retryable: fix the input.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field (path).
        field: String,
        /// Why.
        reason: String,
    },
    /// A certificate or key could not be generated or read. Not retryable.
    #[error("certificate {what}: {reason}")]
    Certificate {
        /// Which certificate or key.
        what: String,
        /// Why.
        reason: String,
    },
    /// A local file could not be read or written. Retry after fixing the file system.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The node could not be reached (connect, TLS, timeout): the request may not have been
    /// processed for a connect error, may have been for a timeout. Safe to retry: every
    /// operation of the client is idempotent.
    #[error("{node}: {op}: cannot reach the API: {reason}")]
    Unreachable {
        /// The node (or URL).
        node: String,
        /// The operation.
        op: String,
        /// Why (no secrets).
        reason: String,
    },
    /// The API answered with an error status. Retry only if the status says so (5xx while
    /// sealed or electing a leader).
    #[error("{node}: {op}: HTTP {status}: {message}")]
    Api {
        /// The node.
        node: String,
        /// The operation.
        op: String,
        /// HTTP status.
        status: u16,
        /// The API's `errors`.
        message: String,
    },
    /// The cluster was initialised by someone else (no stored keys match it). Nothing was
    /// changed. Not retryable: find the keys or wipe the cluster.
    #[error(
        "{node}: already initialised, but not with the keys kept at {store}: refusing to touch it"
    )]
    NotOurs {
        /// The node found initialised.
        node: String,
        /// Where the keys were looked for.
        store: String,
    },
    /// The node is initialised by an earlier run of ours that was stopped before the answer to
    /// `sys/init` (the only copy of the keys) was kept: nobody holds its keys, so it was never
    /// unsealed and holds nothing. Wipe its data (every node's) and initialise again.
    #[error(
        "{node}: initialised by an earlier run that was stopped before it kept the keys (the \
         mark next to {store} says so): nobody can unseal it; wipe its data and initialise again"
    )]
    InitAnswerLost {
        /// The node found initialised.
        node: String,
        /// Where the keys were looked for.
        store: String,
    },
    /// The cluster did not reach the wanted state in time (e.g. no active node). Retryable.
    #[error("{what}: not ready after {secs} s")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        secs: u64,
    },
    /// An answer could not be understood. Not retryable.
    #[error("{node}: {op}: unexpected answer: {reason}")]
    Protocol {
        /// The node.
        node: String,
        /// The operation.
        op: String,
        /// Why.
        reason: String,
    },
}
