//! Vault's TLS bundle with either placement, and the Vault VMs (`vault.placement: vms`): each VM's host plan from `hakube_vault::host`
//! (OpenBao's package, user, directories, TLS files, server config, unit, service, snapshot
//! timer), and the TLS bundle (the cluster's own CA and a server certificate per node) kept
//! under [`VAULT_TLS_DIR`] with the plan's other secrets, outside the GitOps tree.
//!
//! The bundle is an input ([`PlanSecrets::vault_tls`]) reconciled on every render
//! (`TlsBundle::reconcile`): the CA is kept, a node certificate is kept while it still has the
//! wanted names and 30 days left, and only the rest is issued, so re-planning gives the same
//! tree. Without a kept bundle a new CA is generated.

use hakube_addons::vault::{CERT_MANAGER_ROLE, INT_MOUNT, ROOT_MOUNT};
use hakube_topology::{Cluster, RoleKind, VaultPlacement};
use hakube_vault::certs::{TlsBundle, TlsSpec};
use hakube_vault::config::{ClusterSpec, Node, SnapshotSchedule};
use hakube_vault::host::{Install, node_plan};

use crate::secrets::{PlanSecrets, VAULT_TLS_DIR};
use crate::{Error, PlanOptions, PlanTree};

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Component {
        component: "vault",
        source: e.into(),
    }
}

/// What the configure stage needs to bootstrap the Vault VMs: the raft cluster, the URL
/// clients use (the VIP), and the PKI the add-ons' cert-manager issuer signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultSetup {
    /// The raft cluster: the Vault VMs, in topology order.
    pub cluster: ClusterSpec,
    /// The URL every client uses, `https://<VIP>:8200` (the load balancers front the nodes).
    pub server_url: String,
    /// Organisation on the PKI's CAs.
    pub organisation: String,
    /// Mount of the root CA.
    pub root_mount: String,
    /// Mount of the intermediate CA.
    pub int_mount: String,
    /// The role cert-manager's issuer signs with (`<int_mount>/sign/<role>`).
    pub pki_role: String,
    /// The domains the role issues for.
    pub allowed_domains: Vec<String>,
    /// The ACL policy allowing `sign`/`issue` with the role.
    pub signer_policy: String,
}

/// The Vault VMs' setup with hakube's policy ([`PlanOptions::default`]), `None` unless the
/// topology places Vault on VMs; see [`vault_setup_with`].
///
/// # Errors
/// As [`vault_setup_with`].
pub fn vault_setup(cluster: &Cluster) -> Result<Option<VaultSetup>, Error> {
    vault_setup_with(cluster, &PlanOptions::default())
}

/// The Vault VMs' setup as [`crate::render_with`] plans it with `options` (the PKI role's
/// domains fall back to [`PlanOptions::fallback_domain`]), `None` unless the topology places
/// Vault on VMs.
///
/// # Errors
/// [`Error::BadOption`] for an unusable option, [`Error::Component`] when the add-ons refuse
/// the cluster.
pub fn vault_setup_with(
    cluster: &Cluster,
    options: &PlanOptions,
) -> Result<Option<VaultSetup>, Error> {
    options.validate()?;
    let Some(spec) = cluster_spec(cluster) else {
        return Ok(None);
    };
    let input = crate::addons::input(cluster, options);
    let Some(v) = input.vault.as_ref() else {
        return Ok(None);
    };
    Ok(Some(VaultSetup {
        cluster: spec,
        server_url: hakube_addons::vault::server_url(&input, v),
        organisation: v.organisation.clone(),
        root_mount: ROOT_MOUNT.to_owned(),
        int_mount: INT_MOUNT.to_owned(),
        pki_role: v.pki_role.clone(),
        allowed_domains: v.allowed_domains.clone(),
        signer_policy: CERT_MANAGER_ROLE.to_owned(),
    }))
}

/// The Vault VMs' raft snapshot schedule (where each node's snapshot timer writes
/// `raft-<host>-<UTC timestamp>.snap`, how many it keeps): OpenBao's defaults for every
/// cluster so far. Executors use it to find the snapshots.
#[must_use]
pub fn snapshot_schedule(_cluster: &Cluster) -> SnapshotSchedule {
    SnapshotSchedule::default()
}

fn cluster_spec(cluster: &Cluster) -> Option<ClusterSpec> {
    let v = cluster.topology.vault.as_ref()?;
    if v.placement != VaultPlacement::Vms {
        return None;
    }
    let nodes: Vec<Node> = cluster
        .vms_with_role(RoleKind::Vault)
        .map(|vm| Node::new(vm.name.clone(), vm.address.into()))
        .collect();
    (!nodes.is_empty()).then(|| ClusterSpec {
        name: cluster.topology.cluster.name.clone(),
        nodes,
    })
}

/// What the Vault VMs' certificates must cover: their names and addresses, the VIP and the
/// VIP's names (clients reach Vault through the load balancers).
fn tls_spec(cluster: &Cluster, spec: ClusterSpec) -> TlsSpec {
    TlsSpec {
        cluster: spec,
        organisation: cluster.topology.cluster.name.clone(),
        vip: Some(cluster.topology.network.vip.into()),
        vip_dns: crate::base::api_names(cluster),
    }
}

/// In-cluster Vault's TLS: one certificate, `vault`, which every pod serves (the chart mounts
/// one Secret, `vault-tls`): the Services' and the pods' in-cluster names
/// (`hakube_addons::vault::in_cluster_tls_names`) and 127.0.0.1, where the runner's
/// port-forwards end. The add-on stage puts it in the Secret; it stays under
/// [`VAULT_TLS_DIR`] as `vault.crt`/`vault.key`.
fn in_cluster_tls_spec(cluster: &Cluster) -> TlsSpec {
    TlsSpec {
        cluster: ClusterSpec {
            name: cluster.topology.cluster.name.clone(),
            nodes: vec![Node::new(
                hakube_addons::vault::RELEASE.to_owned(),
                std::net::Ipv4Addr::LOCALHOST.into(),
            )],
        },
        organisation: cluster.topology.cluster.name.clone(),
        vip: None,
        vip_dns: hakube_addons::vault::in_cluster_tls_names(),
    }
}

/// Adds the Vault VMs' host plans and the TLS bundle to `tree` (with Vault in the cluster,
/// only the bundle); the bundle used (for the
/// no-secret-in-GitOps rule), `None` without Vault VMs.
pub(crate) fn render(
    cluster: &Cluster,
    secrets: &PlanSecrets,
    tree: &mut PlanTree,
) -> Result<Option<TlsBundle>, Error> {
    let tls = match cluster.topology.vault.as_ref().map(|v| v.placement) {
        None => return Ok(None),
        Some(VaultPlacement::InCluster) => {
            TlsBundle::reconcile(secrets.vault_tls.as_ref(), &in_cluster_tls_spec(cluster))
                .map_err(err)?
                .0
        }
        Some(VaultPlacement::Vms) => {
            let Some(spec) = cluster_spec(cluster) else {
                return Ok(None);
            };
            let (tls, _) =
                TlsBundle::reconcile(secrets.vault_tls.as_ref(), &tls_spec(cluster, spec.clone()))
                    .map_err(err)?;
            let schedule = snapshot_schedule(cluster);
            for n in &spec.nodes {
                let node_tls = tls.node_tls(&n.name).map_err(err)?;
                let plan = node_plan(&spec, &n.name, &schedule, &node_tls, &Install::default())
                    .map_err(err)?;
                tree.host_items(plan)?;
            }
            tls
        }
    };
    tree.insert(
        format!("{VAULT_TLS_DIR}/ca.crt"),
        tls.ca_cert_pem.clone(),
        0o644,
    )?;
    tree.insert(
        format!("{VAULT_TLS_DIR}/ca.key"),
        tls.ca_key.expose(),
        0o600,
    )?;
    for (name, c) in &tls.nodes {
        tree.insert(
            format!("{VAULT_TLS_DIR}/{name}.crt"),
            c.cert_pem.clone(),
            0o644,
        )?;
        tree.insert(format!("{VAULT_TLS_DIR}/{name}.key"), c.key.expose(), 0o600)?;
    }
    Ok(Some(tls))
}
