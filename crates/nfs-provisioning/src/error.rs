//! The crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in this crate.
///
/// Input errors name the field, export or StorageClass at fault; cluster errors name the object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value failed validation (injection characters, bad syntax, out of range).
    ///
    /// Not retryable: fix the input.
    #[error("invalid {field}: {reason} (got {value:?})")]
    InvalidValue {
        /// The field or type being validated, e.g. `export path`.
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An export path is not absolute.
    ///
    /// Not retryable: fix the input.
    #[error("export path {path:?} is not absolute (it must start with '/')")]
    RelativeExportPath {
        /// The path as given.
        path: String,
    },

    /// Two exports are the same directory or one is nested inside the other.
    ///
    /// Nested exports confuse NFSv4's pseudo file system and let a client of the inner export reach
    /// data of the outer one. Not retryable: fix the input.
    #[error("export {inner} overlaps export {outer} (the same directory or nested inside it)")]
    OverlappingExports {
        /// The enclosing (or equal) export path.
        outer: String,
        /// The nested (or duplicate) export path.
        inner: String,
    },

    /// An allowed client network lies (partly) outside the node network.
    ///
    /// Not retryable: fix the input.
    #[error("export {export}: client {client} is not inside the node network {node_network}")]
    ClientOutsideNodeNetwork {
        /// The export path.
        export: String,
        /// The client as written.
        client: String,
        /// The node network it must fall into.
        node_network: String,
    },

    /// Two exports want the same StorageClass name.
    ///
    /// Not retryable: fix the input.
    #[error("StorageClass name {name:?} is used by two exports ({first} and {second})")]
    DuplicateStorageClass {
        /// The duplicated StorageClass name.
        name: String,
        /// The first export that uses it.
        first: String,
        /// The second export that uses it.
        second: String,
    },

    /// The default StorageClass names no class of this input.
    ///
    /// Not retryable: fix the input.
    #[error("default StorageClass {name:?} is not one of the exports' StorageClasses")]
    UnknownDefaultClass {
        /// The name given as default.
        name: String,
    },

    /// The input has no export at all.
    ///
    /// Not retryable: fix the input.
    #[error("the NFS input has no exports")]
    NoExports,

    /// A line of `exportfs -v` output could not be parsed.
    ///
    /// Not retryable: the output is not in the documented format.
    #[error("cannot parse exportfs output line {line_no} ({line:?}): {reason}")]
    ExportfsOutput {
        /// 1-based line number in the output.
        line_no: usize,
        /// The offending line.
        line: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The live exports (from `exportfs -v`) do not match the rendered model.
    ///
    /// Retry is safe (re-run the export steps), but the mismatch usually means another
    /// exports file or a failed `exportfs -ra` on the server.
    #[error("export {path} for client {client}: {detail}")]
    ExportMismatch {
        /// The export path.
        path: String,
        /// The client.
        client: String,
        /// What differs.
        detail: String,
    },

    /// A rendered object could not be serialised to YAML.
    ///
    /// Not retryable: a bug in this crate.
    #[error("cannot render {file} as YAML")]
    Yaml {
        /// The relative file name being rendered.
        file: String,
        /// The serialiser error.
        #[source]
        source: serde_saphyr::SerializeError,
    },

    /// Another field manager owns fields this apply wants to change (HTTP 409 from server-side apply).
    ///
    /// Retry will fail the same way: resolve the ownership (or apply with `force`).
    #[error(
        "{kind} {name}: server-side apply conflict with field manager(s) {managers:?} on {fields:?}; \
         hakube-nfs will not take these fields over unless forced"
    )]
    FieldManagerConflict {
        /// The object kind, e.g. `Deployment`.
        kind: &'static str,
        /// The object name (namespace/name for namespaced objects).
        name: String,
        /// The other field managers named by the API server.
        managers: Vec<String>,
        /// The conflicting field paths.
        fields: Vec<String>,
    },

    /// The Kubernetes API refused or failed a request.
    ///
    /// Retry is safe: server-side apply is idempotent, and nothing is applied after a failure.
    #[cfg(feature = "apply")]
    #[error("{action} {kind} {name}")]
    Kube {
        /// What was being done, e.g. `apply`.
        action: &'static str,
        /// The object kind.
        kind: &'static str,
        /// The object name (namespace/name for namespaced objects).
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },

    /// A Kubernetes API request did not answer in time.
    ///
    /// Retry is safe: server-side apply is idempotent.
    #[error("{action} {kind} {name}: no answer within {after:?}")]
    Timeout {
        /// What was being done.
        action: &'static str,
        /// The object kind.
        kind: &'static str,
        /// The object name.
        name: String,
        /// The timeout.
        after: Duration,
    },

    /// A Deployment did not become available in time.
    ///
    /// Retry is safe; look at the Deployment's pods (image pull, NFS mount errors) first.
    #[error("Deployment {namespace}/{name} not available after {waited:?}: {last_state}")]
    DeploymentNotAvailable {
        /// The namespace.
        namespace: String,
        /// The Deployment name.
        name: String,
        /// How long we waited.
        waited: Duration,
        /// The last observed state, e.g. `0/1 available`.
        last_state: String,
    },

    /// A remote step failed on the NFS server.
    ///
    /// Retry is safe: every server step is idempotent.
    #[error("step {step} on {host}: command {command:?} failed: {detail}")]
    RemoteStep {
        /// The NFS server host.
        host: String,
        /// The step name.
        step: String,
        /// The command line that failed.
        command: String,
        /// Exit status and stderr, or the transport error.
        detail: String,
    },

    /// A file could not be written by the local step runner.
    ///
    /// Retry is safe.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// This crate's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;
