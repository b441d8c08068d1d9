//! Running the server-side steps on the NFS VM through [`hakube_remote::RemoteExec`] (SSH in
//! production, a lab host in tests). Feature `remote`.
//!
//! Each [`Step`] pushes its files idempotently (only what differs is written), then runs its
//! commands in order, stopping at the first failure with [`Error::RemoteStep`] naming the host,
//! step and command. A [`StepKind::VerifyExports`] step parses `exportfs -v` and checks it
//! against the rendered exports ([`crate::exports::verify_live_exports`]). Every step is
//! idempotent, so a failed run can simply be repeated.

use core::time::Duration;

use hakube_remote::{Command as RemoteCommand, RemoteExec, Upload, push_file};
use tracing::{Instrument, info, info_span};

use crate::error::{Error, Result};
use crate::exports::{ExportsFile, LiveExport, parse_exportfs_verbose, verify_live_exports};
use crate::server::{Command, ServerPlan, Step, StepKind};

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunReport {
    /// Names of the steps run, in order.
    pub steps: Vec<&'static str>,
    /// Paths of files that were created or changed.
    pub changed_files: Vec<String>,
    /// The exports seen live by the verification step, if one ran.
    pub live_exports: Vec<LiveExport>,
}

/// Runs the whole server plan on `exec`, each command with `timeout`.
///
/// # Errors
/// [`Error::RemoteStep`] for a failed upload or command, [`Error::ExportfsOutput`] /
/// [`Error::ExportMismatch`] when verification fails.
pub async fn run_server_plan<E: RemoteExec + ?Sized>(
    exec: &E,
    plan: &ServerPlan,
    timeout: Duration,
) -> Result<RunReport> {
    run_steps(exec, &plan.steps, &plan.exports, timeout).await
}

/// Runs `steps` on `exec` (a server plan's, or a backup / restore plan's); verification steps
/// check against `exports`.
///
/// # Errors
/// As [`run_server_plan`].
pub async fn run_steps<E: RemoteExec + ?Sized>(
    exec: &E,
    steps: &[Step],
    exports: &ExportsFile,
    timeout: Duration,
) -> Result<RunReport> {
    let mut report = RunReport::default();
    for step in steps {
        run_step(exec, step, exports, timeout, &mut report)
            .instrument(info_span!("nfs-step", host = exec.host(), step = step.name))
            .await?;
        report.steps.push(step.name);
    }
    Ok(report)
}

async fn run_step<E: RemoteExec + ?Sized>(
    exec: &E,
    step: &Step,
    exports: &ExportsFile,
    timeout: Duration,
    report: &mut RunReport,
) -> Result<()> {
    let fail = |command: String, detail: String| Error::RemoteStep {
        host: exec.host().to_owned(),
        step: step.name.to_owned(),
        command,
        detail,
    };
    for file in &step.files {
        let upload = Upload::new(file.path.clone(), file.contents.clone())
            .mode(file.mode)
            .sudo(true);
        let outcome = push_file(exec, &upload)
            .await
            .map_err(|e| fail(format!("upload {}", file.path), e.to_string()))?;
        if outcome.changed() {
            report.changed_files.push(file.path.clone());
        }
    }
    for command in &step.commands {
        let shell = command.to_shell();
        let out = exec
            .run(&remote_command(command, timeout))
            .await
            .map_err(|e| fail(shell.clone(), e.to_string()))?;
        if !out.success() {
            return Err(fail(
                shell,
                format!("{:?}: {}", out.status, out.stderr_lossy().trim()),
            ));
        }
        if step.kind == StepKind::VerifyExports {
            let live = parse_exportfs_verbose(&out.stdout_lossy())?;
            verify_live_exports(exports, &live)?;
            info!(host = exec.host(), exports = live.len(), "exports verified");
            report.live_exports = live;
        }
    }
    Ok(())
}

fn remote_command(command: &Command, timeout: Duration) -> RemoteCommand {
    let (program, args) = command
        .argv
        .split_first()
        .map_or(("true", &[][..]), |(p, a)| (p.as_str(), a));
    RemoteCommand::new(program)
        .args(args.iter().cloned())
        .timeout(timeout)
        .sudo(true)
}
