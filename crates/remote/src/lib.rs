//! Remote execution over SSH for hakube: commands, idempotent file pushes, fan-out to many
//! hosts and a plan executor with dry run.
//!
//! Everything after the VMs exist happens through the [`RemoteExec`] trait: run a [`Command`]
//! (quoted in one place, with environment, stdin, timeout and `sudo -n`), upload a file
//! atomically, read a file, inspect a file's hash/mode/owner. [`SshSession`] implements it
//! over SSH (russh, whose types never appear in this API); `testing::FakeHost` (feature
//! `testing`) implements it in memory for unit tests of orchestration code.
//!
//! On top of the trait: [`push_file`] uploads only what differs and says whether anything
//! changed, [`fan_out`] runs a step on many hosts with a bound, and [`Executor`] applies a
//! [`Plan`] (push the `hosts/<vm>/...` tree, run commands, run-if-changed, wait for a port)
//! or dry-runs it.
//!
//! Files travel over SFTP on the same connection when the server offers it (one SFTP server
//! process per connection instead of a shell and a few tools per file; still written
//! atomically), and through the shell otherwise, for `sudo` and for owners by name. The SFTP
//! client is `russh-sftp`, made for russh channels; its raw session lets all writes of a file
//! go out in one round trip. The SFTP channel stays open with the connection, so it takes one
//! of sshd's `MaxSessions` (10 by default) slots.
//!
//! Host keys are always verified unless the caller picks [`HostKeyPolicy::DangerAcceptAny`].
//!
//! ```
//! use std::time::Duration;
//! use hakube_remote::{Action, Command, FileTree, HostFilter, Plan, Upload};
//!
//! let tree = FileTree::new().file(
//!     "lb1",
//!     Upload::new("/etc/haproxy/haproxy.cfg", "global\n").mode(0o644),
//! );
//! let plan = Plan::builder("load-balancers")
//!     .step("config", HostFilter::All, Action::PushTree(tree))
//!     .step(
//!         "reload",
//!         HostFilter::All,
//!         Action::RunIfChanged {
//!             command: Command::new("systemctl").args(["reload", "haproxy"]).sudo(true),
//!             watch: vec!["config".into()],
//!         },
//!     )
//!     .step("api", HostFilter::All, Action::WaitForPort { port: 6443, timeout: Duration::from_secs(60) })
//!     .build()
//!     .expect("valid plan");
//! assert_eq!(plan.steps().len(), 3);
//! // Apply with: Executor::new(hosts).apply(&plan).await, or .dry_run(&plan).
//! ```

mod command;
mod error;
mod exec;
mod fanout;
mod hostkey;
pub mod hostplan;
mod plan;
mod sftp;
mod ssh;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use command::{Command, ExitStatus, Output};
pub use error::Error;
pub use exec::{FileState, PushOutcome, RemoteExec, Upload, diff_file, push_file};
pub use fanout::{FailureMode, FanOut, HostResult, NoProgress, Progress, fan_out};
/// The shared secret wrapper and shell quoting (from `hakube-host-state`).
pub use hakube_host_state::{Secret, shell_quote};
pub use hostkey::{HostKey, HostKeyPolicy, KnownHosts, KnownHostsVerdict, known_hosts_name};
pub use hostplan::{Change, HostReport, Mode, apply_host_plan, apply_host_plans};
pub use plan::{
    Action, Executor, FileTree, HostFilter, Plan, PlanBuilder, PlanReport, PortProbe, Step,
    StepOutcome, StepReport, TcpProbe,
};
pub use ssh::{Auth, SshConfig, SshPool, SshSession, Target};
