//! A typed, async Proxmox VE API client and an idempotent VM provisioner.
//!
//! The client handles what PVE's wire format and behaviour demand, once: the
//! `{"data": ...}` envelope (including `null` success), errors with their status,
//! reason, message and per-parameter `errors`, loosely typed numbers and booleans,
//! form encoding with `1`/`0` booleans, API-token and ticket auth (CSRF, renewal),
//! strict TLS trust settings, task waiting, classified bounded retries and a
//! per-node concurrency limit. The [`provision`] module turns a list of desired
//! VMs into the calls that make them exist, and makes none when they already do.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `client` | yes | [`Client`]: reqwest over rustls, tokio; waits, uploads, VMID allocation |
//! | `provision` | yes | the [`provision`] planner (pure); its `Provisioner` also needs `client` |
//!
//! Without features the crate is the wire format ([`Params`], [`parse_envelope`],
//! [`parse_error`], [`de`]), the answer types and the [`transport::Transport`] seam, with
//! no HTTP stack, TLS or async runtime.
//!
//! ```no_run
//! # #[cfg(feature = "client")]
//! # mod demo {
//! use hakube_proxmox_api::{ClientBuilder, CloneOptions, Secret, TlsTrust};
//!
//! # async fn demo() -> Result<(), hakube_proxmox_api::Error> {
//! let client = ClientBuilder::new("https://pve1.lab:8006")
//!     .password("root@pam", Secret::new("secret"))
//!     .trust(TlsTrust::CaPem(std::fs::read_to_string("pve-root-ca.pem").unwrap_or_default()))
//!     .build()?;
//! let upid = client
//!     .qemu_clone("pve1", 9000, 101, &CloneOptions { name: Some("m1".into()), ..Default::default() })
//!     .await?;
//! let done = client.wait_task(&upid).await?;
//! println!("{} {}", done.upid, done.exitstatus);
//! # Ok(()) }
//! # }
//! ```

mod api;
#[cfg(feature = "client")]
mod client;
pub mod cloudinit;
mod error;
pub mod generated;
mod ops;
pub mod property_string;
#[cfg(feature = "provision")]
pub mod provision;
mod tasks;
mod tls;
pub mod transport;
mod upid;
#[cfg(feature = "client")]
mod waits;
mod wire;

pub use api::{
    CloneOptions, ClusterStatusEntry, DeleteOptions, GuestAddress, GuestInterface, HaGroup,
    HaResource, HaRule, HaRuleSpec, NodeInfo, PendingEntry, PoolInfo, QemuListEntry, Resource,
    ResourceType, StorageInfo, VersionInfo, VmConfig, VmHa, VmStatus, parse_size, primary_address,
    split_tags,
};
#[cfg(feature = "client")]
pub use client::{
    Client, ClientBuilder, Credentials, DEFAULT_NODE_CONCURRENCY, RetryPolicy, TICKET_RENEW_AFTER,
    TaskPoll, TotpSource,
};
pub use error::{Error, Retry};
/// The secret wrapper every hakube crate shares (`Debug` and `Display` print `***`).
pub use hakube_host_state::Secret;
pub use ops::{ExecStatus, UploadContent, is_vmid_taken, multipart};
pub use tasks::{TaskListEntry, TaskLogLine, TaskLogPage, TaskOutcome, TaskStatus};
pub use tls::{Fingerprint, TlsTrust};
pub use upid::Upid;
pub use wire::{
    Envelope, ErrorBody, ParamValue, Params, de, decode, parse_envelope, parse_error, segment,
    unwrap_envelope,
};
