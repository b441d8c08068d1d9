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
//! changed, [`fan_out`] runs a step on many hosts with a bound, and the [`hostplan`] executor
//! applies a host's desired state ([`hakube_host_state::HostPlan`]: packages, users,
//! directories, files validated before they go live, services reloaded only on change, guarded
//! commands), with a dry run that lists what would change.
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
//! ```no_run
//! # async fn demo() -> Result<(), hakube_remote::Error> {
//! use hakube_host_state::{File, HostPlan, Service, Validate};
//! use hakube_remote::{Auth, HostKeyPolicy, Mode, NoProgress, SshConfig, SshSession, Target};
//!
//! let lb = SshSession::new(
//!     Target::new("lb-1", "10.0.0.11"),
//!     SshConfig::new(Auth::key_file("id_ed25519"), HostKeyPolicy::KnownHosts("known_hosts".into())),
//! );
//! let plan = HostPlan::new("lb-1")
//!     .file(File::new("/etc/haproxy/haproxy.cfg", "global\n")
//!         .validate(Validate::new(["haproxy", "-c", "-f", "%s"])))
//!     .service(Service::new("haproxy").reload_on(["/etc/haproxy/haproxy.cfg"]));
//! let report = hakube_remote::apply_host_plan(&lb, &plan, Mode::Apply, &NoProgress).await;
//! report.result?;
//! for change in &report.changes {
//!     println!("{}: {change}", report.host);
//! }
//! # Ok(()) }
//! ```

mod command;
mod error;
mod exec;
mod fanout;
mod hostkey;
pub mod hostplan;
mod sftp;
mod ssh;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use command::{Command, ExitStatus, Output};
pub use error::Error;
pub use exec::{FileState, PushOutcome, RemoteExec, diff_file, push_file};
pub use fanout::{FailureMode, FanOut, HostResult, NoProgress, Progress, fan_out};
/// The shared file type, secret wrapper and shell quoting (from `hakube-host-state`).
pub use hakube_host_state::{File, Secret, shell_quote};
pub use hostkey::{HostKey, HostKeyPolicy, KnownHosts, KnownHostsVerdict, known_hosts_name};
pub use hostplan::{Change, HostReport, Mode, apply_host_plan, apply_host_plans};
pub use ssh::{Auth, SshConfig, SshPool, SshSession, Target};
