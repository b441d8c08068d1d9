//! The crate's one error type.

/// Why a model or a reference design could not be built.
///
/// Every variant names the offending field (a path such as `lb_nodes[1].name` or
/// `backend apiserver: server cp1`), so a caller can point the user at it. Values that were
/// rejected are shown escaped (`{:?}`), never raw, so a newline in a bad name cannot forge
/// lines in a log. Nothing in this crate performs I/O: no error is transient, and retrying
/// the same input always fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value breaks the config grammar or is out of range (a newline or `#` in a name, port
    /// 0, a path that is not absolute, ...). Not retryable: fix the input.
    #[error("{field}: invalid value {value:?}: {reason}")]
    InvalidValue {
        /// The field, as a path into the input.
        field: String,
        /// The rejected value, shown escaped.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A required value was not given (an empty backend, no LB nodes, no VIP address).
    /// Not retryable: fix the input.
    #[error("{field}: missing: {reason}")]
    Missing {
        /// The field, as a path into the input.
        field: String,
        /// What is needed.
        reason: String,
    },
    /// Two entries that must differ are equal (node names, priorities, addresses, proxy or
    /// server names). Not retryable: fix the input.
    #[error("{field}: duplicate value {value:?}")]
    Duplicate {
        /// The field of the second occurrence, as a path into the input.
        field: String,
        /// The repeated value, shown escaped.
        value: String,
    },
    /// Values that are each valid do not fit together (a `default_backend` naming no backend,
    /// a server in a frontend, the VIP outside the LB subnet). Not retryable: fix the input.
    #[error("{field}: {reason}")]
    Conflict {
        /// The field, as a path into the input.
        field: String,
        /// What does not fit.
        reason: String,
    },
}

impl Error {
    pub(crate) fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidValue {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn missing(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Missing {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Duplicate {
            field: field.into(),
            value: value.into(),
        }
    }

    pub(crate) fn conflict(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Conflict {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field the error is about, as a path into the input.
    #[must_use]
    pub fn field(&self) -> &str {
        match self {
            Self::InvalidValue { field, .. }
            | Self::Missing { field, .. }
            | Self::Duplicate { field, .. }
            | Self::Conflict { field, .. } => field,
        }
    }

    /// Replaces the field path with `field`.
    pub(crate) fn at(mut self, new: impl Into<String>) -> Self {
        let field = match &mut self {
            Self::InvalidValue { field, .. }
            | Self::Missing { field, .. }
            | Self::Duplicate { field, .. }
            | Self::Conflict { field, .. } => field,
        };
        *field = new.into();
        self
    }

    /// Prefixes the field path with `outer` (`lb_nodes[0]` + `name` -> `lb_nodes[0].name`).
    pub(crate) fn within(mut self, outer: &str) -> Self {
        let field = match &mut self {
            Self::InvalidValue { field, .. }
            | Self::Missing { field, .. }
            | Self::Duplicate { field, .. }
            | Self::Conflict { field, .. } => field,
        };
        *field = if field.is_empty() {
            outer.to_owned()
        } else {
            format!("{outer}.{field}")
        };
        self
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;
