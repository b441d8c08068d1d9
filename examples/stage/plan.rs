//! The plan stage: validate and place the topology, render every file, write the plan tree.

use std::path::Path;

use hakube_topology::Cluster;

use super::Error;

/// What the stage wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Files in the plan.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Files that are new or differ from the plan that was in the directory.
    pub changed: usize,
}

/// Renders the plan of `cluster` with the secrets kept in `out` (fresh ones the first time)
/// and writes it to `out`, replacing the previous plan as a whole.
///
/// # Errors
/// [`Error::Input`] when kept secrets cannot be read, [`Error::Stage`] when rendering or
/// writing fails (the previous plan then stays as it was).
pub fn run(cluster: &Cluster, out: &Path) -> Result<Report, Error> {
    let secrets = crate::plan_secrets(out).map_err(Error::Input)?;
    let tree = hakube_plan::render(cluster, &secrets).map_err(|e| Error::stage("plan", e))?;
    let changed = tree
        .iter()
        .filter(|(rel, file)| {
            std::fs::read(out.join(rel)).ok().as_deref() != Some(&file.contents[..])
        })
        .count();
    let s = tree
        .write_to(out)
        .map_err(|e| Error::stage(format!("writing the plan to {}", out.display()), e))?;
    Ok(Report {
        files: s.files,
        bytes: s.bytes,
        changed,
    })
}
