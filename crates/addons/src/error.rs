//! The crate's one error type.

/// Everything that can go wrong while validating input, rendering or applying add-ons.
///
/// Rendering is pure: its errors (`Invalid*`, `Render`) are deterministic, so retrying the same
/// input never helps. Apply errors say per variant whether a retry is safe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field of the input is invalid. Not retryable: fix the input.
    #[error("invalid input at `{field}`: {reason}")]
    InvalidInput {
        /// Dotted path of the offending field, e.g. `calico.pool_cidr`.
        field: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// A cross-check between components failed (a setting that would cause an outage).
    /// Not retryable: fix the input or the rendered file named.
    #[error("cross-check `{check}` failed: {reason}")]
    CrossCheck {
        /// Name of the check, e.g. `traefik-nodeports-match-haproxy`.
        check: &'static str,
        /// What does not match.
        reason: String,
    },
    /// Serialising a rendered object failed (a bug). Not retryable.
    #[error("cannot render `{path}`")]
    Render {
        /// The rendered file's relative path.
        path: String,
        /// The serializer's error.
        #[source]
        source: serde_saphyr::SerializeError,
    },
    /// A manifest handed to the applier is not valid YAML for a Kubernetes object. Not retryable.
    #[error("manifest `{path}` document {index} is not a Kubernetes object: {reason}")]
    Manifest {
        /// The manifest file's relative path (or a caller-chosen label).
        path: String,
        /// Zero-based index of the YAML document in the file.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Server-side apply was refused because another field manager owns fields we set.
    /// Retrying the same request fails again: resolve ownership (or apply with force deliberately).
    #[error(
        "server-side apply conflict on {kind} `{name}` for field manager `{field_manager}`: {message}"
    )]
    ApplyConflict {
        /// Component being installed.
        component: String,
        /// Kind of the object.
        kind: String,
        /// `namespace/name` or `name` of the object.
        name: String,
        /// Our field manager.
        field_manager: String,
        /// The API server's message (names the conflicting managers and fields).
        message: String,
    },
    /// A CustomResourceDefinition did not become Established in time.
    /// Safe to retry: apply is idempotent.
    #[error("CRD `{name}` not Established after {waited_secs}s")]
    CrdNotEstablished {
        /// CRD name, e.g. `installations.operator.tigera.io`.
        name: String,
        /// How long we waited.
        waited_secs: u64,
    },
    /// A workload did not finish rolling out in time (or does not exist yet).
    /// Safe to retry: waiting has no side effects.
    #[error("{kind} `{namespace}/{name}` not rolled out after {waited_secs}s: {state}")]
    RolloutTimeout {
        /// Workload kind.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Seconds waited.
        waited_secs: u64,
        /// The last state seen, e.g. `2/3 available` or `not found`.
        state: String,
    },
    /// A pod a step talks to (in-cluster Vault's) is not running in time (or does not exist).
    /// Safe to retry: waiting has no side effects.
    #[error("pod `{namespace}/{name}` not running after {waited_secs}s: {state}")]
    PodNotRunning {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Seconds waited.
        waited_secs: u64,
        /// The last state seen, e.g. `phase Pending` or `not found`.
        state: String,
    },
    /// The API server does not serve the kind of an object (not installed, or discovery stale).
    /// Safe to retry after the CRD is installed.
    #[error("API server does not serve {api_version} {kind} (object `{name}`)")]
    UnknownKind {
        /// `group/version` of the object.
        api_version: String,
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
    },
    #[cfg(feature = "apply")]
    /// Any other Kubernetes API failure. Safe to retry: server-side apply is idempotent.
    #[error("Kubernetes API call `{action}` failed")]
    Kube {
        /// What we were doing, e.g. `apply ConfigMap kube-system/x`.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A file of the plan could not be read (or a generated secret not kept). Retry after
    /// fixing the file (re-run `plan`).
    #[error("plan file {path}")]
    PlanFile {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The plan's install steps do not read back. Not retryable: re-run `plan`.
    #[error("{path} is not a list of install steps: {reason}")]
    PlanSteps {
        /// The file.
        path: std::path::PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A Secret's value comes from a file of the plan's `secrets/` that cannot be read (an
    /// earlier stage writes it). Retry after that stage ran.
    #[error("Secret `{secret}` key `{key}`: cannot read {path}")]
    SecretFile {
        /// `namespace/name` (or what the value is for).
        secret: String,
        /// The key.
        key: String,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No `helm` binary. Retry after installing it.
    #[error(
        "no helm binary ({looked_for}): install Helm 3 (the static binary from \
         https://get.helm.sh, see https://helm.sh/docs/intro/install/) or give its path"
    )]
    HelmNotFound {
        /// Where we looked.
        looked_for: String,
    },
    /// No Kustomize builder. Retry after installing kubectl or kustomize.
    #[error(
        "no Kustomize builder ({looked_for}): install kubectl (`kubectl kustomize`) or \
         kustomize, or give its path"
    )]
    KustomizeNotFound {
        /// Where we looked.
        looked_for: String,
    },
    /// A command could not be started. Retry after fixing the binary.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A command (helm, Kustomize) failed. `helm upgrade --install --atomic` rolled its own
    /// changes back; safe to retry once the cause is fixed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line (no secret is ever on it).
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard error.
        stderr: String,
    },
    /// The kubeconfig file cannot be used. Retry after fixing it.
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Vault is not initialised (no kept init secrets). Retry after the configure stage
    /// bootstrapped Vault.
    #[error("Vault has no kept init secrets at {path}: bootstrap Vault (configure stage) first")]
    VaultNotInitialised {
        /// Where they were looked for.
        path: std::path::PathBuf,
    },
    #[cfg(feature = "apply")]
    /// A Vault call failed. Safe to retry: the Kubernetes auth is written only where it differs.
    #[error("Vault: {action}")]
    Vault {
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: hakube_vault::Error,
    },
    /// An install step failed; later steps did not run. The source names the object and the
    /// API's answer (or the command's error). Retry once the cause is fixed: every step is
    /// idempotent.
    #[error("install step {number} ({step}) failed")]
    Step {
        /// 1-based position among the steps run.
        number: usize,
        /// The step ([`crate::InstallStep::label`]).
        step: String,
        /// What failed.
        #[source]
        source: Box<Self>,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
