//! The crate's error.

/// Why a host plan (or a value checked by a helper here) was refused. None of these is
/// retryable: they describe bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One field of one item is not acceptable.
    #[error("host {host}: {item}: {field}: {reason}")]
    Invalid {
        /// The host the plan is for.
        host: String,
        /// The item (`file /etc/hosts`, `service haproxy`, ...).
        item: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Two items want the same thing (two files at one path, two services of one name).
    #[error("host {host}: {item} is declared twice")]
    Duplicate {
        /// The host the plan is for.
        host: String,
        /// The item.
        item: String,
    },
    /// The JSON form could not be read.
    #[error("host plan JSON: {reason}")]
    Json {
        /// What serde said (never file contents).
        reason: String,
    },
    /// A file named by the JSON form is missing from the tree, or its bytes do not match the
    /// digest the JSON recorded.
    #[error("host {host}: file {path}: {reason}")]
    Content {
        /// The host.
        host: String,
        /// The file's absolute path on the host.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A name that must be a DNS label (RFC 1123) is not one.
    #[error("{value:?} is not a DNS label: {reason}")]
    DnsLabel {
        /// The value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
}
