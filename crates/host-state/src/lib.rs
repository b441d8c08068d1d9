//! What a host should look like, as data, and the small helpers every hakube crate shares.
//!
//! Every hakube renderer that targets a VM (the load balancers, the NFS server, the Vault
//! nodes, kubeadm's node preparation) describes its work as a [`HostPlan`]: an ordered list of
//! [`Item`]s, each a piece of desired state, never a script:
//!
//! | item | desired state | how an executor checks it |
//! |---|---|---|
//! | [`Package`] | installed (at a version, held) | `dpkg-query` |
//! | [`Group`], [`User`] | system group / user exists | `getent` |
//! | [`Directory`] | exists with mode and owner | `stat` |
//! | [`File`] | exact bytes, mode, owner; optionally validated before it goes live | SHA-256 + `stat` |
//! | [`Service`] | enabled, running; reloaded or restarted when a file it reads changed | `systemctl is-enabled/is-active` |
//! | [`Exec`] | a command guarded by `unless`, `creates` or `on_change`, or a read-only check | the guard |
//!
//! The executor (`hakube_remote::hostplan`) reads the host's facts, computes the changes, shows
//! them in a dry run, and applies them: handlers (reload/restart) run only when a file they
//! watch changed, and a file with a [`Validate`] command never replaces the live one unless the
//! command accepts it. A second run therefore changes nothing and restarts nothing.
//!
//! In a plan tree a host plan is stored as `hosts/<vm>/host-plan.json` (every item, files
//! without their bytes) plus the files themselves at `hosts/<vm>/<absolute path>`;
//! [`HostPlan::to_json`] and [`HostPlan::from_json`] convert without loss.
//!
//! The crate also holds the helpers that used to be copied from crate to crate: [`Secret`],
//! [`shell_quote`], [`check_dns_label`] and [`nets_overlap`].
//!
//! ```
//! use hakube_host_state::{Exec, File, HostPlan, Package, Service, Validate};
//!
//! let plan = HostPlan::new("lb-1")
//!     .package(Package::new("haproxy"))
//!     .file(
//!         File::new("/etc/haproxy/haproxy.cfg", "global\n")
//!             .validate(Validate::new(["haproxy", "-c", "-f", "%s"])),
//!     )
//!     .service(Service::new("haproxy").reload_on(["/etc/haproxy/haproxy.cfg"]))
//!     .exec(Exec::check("haproxy-answers", ["sh", "-c", "test -S /run/haproxy/admin.sock"]));
//! plan.validate()?;
//! let json = plan.to_json();
//! let back = HostPlan::from_json(&json, |path| plan.file_content(path).map(<[u8]>::to_vec))?;
//! assert_eq!(back, plan);
//! # Ok::<(), hakube_host_state::Error>(())
//! ```
//!
//! Dependencies: serde for the JSON form, `sha2`/`hex` for content digests (shown instead of
//! secret bytes), `ipnet` for network overlap, `thiserror` for [`Error`]. No I/O, no async.

mod cluster_file;
mod error;
mod net;
mod plan;
mod secret;
mod shell;

pub use cluster_file::ClusterFile;
pub use error::Error;
pub use net::nets_overlap;
pub use plan::{
    CANDIDATE_PLACEHOLDER, Directory, Exec, File, Group, HostPlan, Item, Package, Refusal, Service,
    User, Validate,
};
pub use secret::Secret;
pub use shell::{check_dns_label, is_dns_label, is_dns_name, shell_join, shell_quote};
