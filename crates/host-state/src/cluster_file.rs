//! A file of the GitOps tree: what renderers of cluster objects emit, as [`crate::File`] is
//! what host renderers emit.

/// A file of the GitOps tree, its path relative to the plan's `cluster/` directory
/// (`traefik/values.yaml`, `nfs/kustomization.yaml`). Text, and never a secret: secrets stay
/// out of the GitOps tree.
///
/// ```
/// use hakube_host_state::ClusterFile;
/// let f = ClusterFile::new("nfs/kustomization.yaml", "kind: Kustomization\n");
/// assert_eq!(f.file_name(), "kustomization.yaml");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClusterFile {
    /// Relative path with `/` separators, e.g. `traefik/values.yaml`.
    pub path: String,
    /// File contents (UTF-8 text).
    pub contents: String,
}

impl ClusterFile {
    /// A file at `path` (relative to `cluster/`).
    #[must_use]
    pub fn new(path: impl Into<String>, contents: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            contents: contents.into(),
        }
    }

    /// The last component of the path (`kustomization.yaml`).
    #[must_use]
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}
