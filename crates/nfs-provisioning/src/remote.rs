//! Checking and restoring the NFS server through [`hakube_remote::RemoteExec`] (SSH in
//! production, a lab host in tests). Feature `remote`.
//!
//! The server's desired state is a host plan ([`NfsSetup::server_host_plan`]) applied by the
//! host-plan executor (`hakube_remote::apply_host_plans`); this module adds what a plan cannot
//! express: reading the kernel's export table back and comparing it with the model, and running
//! a restore.

use core::time::Duration;

use hakube_remote::{Command, RemoteExec};
use tracing::info;

use crate::backup::BackupOptions;
use crate::error::{Error, Result};
use crate::exports::{LiveExport, parse_exportfs_verbose, verify_live_exports};
use crate::model::NfsSetup;

fn remote_err(exec: &dyn RemoteExec, what: &str) -> impl FnOnce(hakube_remote::Error) -> Error {
    let host = exec.host().to_owned();
    let what = what.to_owned();
    move |e| Error::RemoteStep {
        host,
        step: what.clone(),
        command: what,
        detail: e.to_string(),
    }
}

/// Reads `exportfs -v` on the server and checks that every export of `setup` is live with the
/// wanted clients and options. Returns the live table.
///
/// # Errors
/// [`Error::RemoteStep`] when the command fails, [`Error::ExportfsOutput`] /
/// [`Error::ExportMismatch`] when the live table differs from the model.
pub async fn verify_exports(exec: &dyn RemoteExec, setup: &NfsSetup) -> Result<Vec<LiveExport>> {
    let out = exec
        .run_ok(&Command::new("exportfs").arg("-v").sudo(true))
        .await
        .map_err(remote_err(exec, "exportfs -v"))?;
    let live = parse_exportfs_verbose(&out.stdout_lossy())?;
    verify_live_exports(&setup.exports_file(), &live)?;
    info!(host = exec.host(), exports = live.len(), "exports verified");
    Ok(live)
}

/// Restores `snapshot` into every export ([`NfsSetup::restore_command`]: checksums first, then
/// the copy and `exportfs -ra`), then verifies the exports. The restore script must be on the
/// server ([`NfsSetup::backup_host_plan`] installs it).
///
/// # Errors
/// [`Error::InvalidValue`] for a bad snapshot name, [`Error::RemoteStep`] when the restore
/// fails (a snapshot that fails its checksums stops it before any copy), and the errors of
/// [`verify_exports`].
pub async fn restore(
    exec: &dyn RemoteExec,
    setup: &NfsSetup,
    options: &BackupOptions,
    snapshot: &str,
    timeout: Duration,
) -> Result<Vec<LiveExport>> {
    let argv = setup.restore_command(options, snapshot)?;
    let (program, args) = argv
        .split_first()
        .map_or(("true", &[][..]), |(p, a)| (p.as_str(), a));
    exec.run_ok(
        &Command::new(program)
            .args(args.iter().cloned())
            .timeout(timeout)
            .sudo(true),
    )
    .await
    .map_err(remote_err(exec, "restore"))?;
    verify_exports(exec, setup).await
}
