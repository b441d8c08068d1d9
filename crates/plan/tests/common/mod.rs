//! The seed cluster's plan, rendered with fixed secrets so that runs compare.
#![allow(dead_code, clippy::unwrap_used)]

use hakube_plan::{PlanSecrets, PlanTree, render};
use hakube_topology::Cluster;

/// The seed topology file.
pub const SEED: &str = include_str!("../../../../examples/seed-cluster.yaml");
/// The fixed bootstrap token.
pub const TOKEN: &str = "abcdef.0123456789abcdef";
/// The fixed certificate key.
pub const CERT_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The fixed Grafana admin password.
pub const GRAFANA_PASSWORD: &str = "GrafanaAdminPassword0123456789ab";

/// Fixed secrets, so snapshots are stable and renders compare: the kubeadm secrets and Grafana
/// password above and one Vault TLS bundle per test process (kept, as a re-plan keeps it).
pub fn secrets() -> PlanSecrets {
    static TLS: std::sync::LazyLock<hakube_vault::certs::TlsBundle> =
        std::sync::LazyLock::new(|| {
            let dir = tempfile::tempdir().unwrap();
            let first = render(&cluster(), &PlanSecrets::generate()).unwrap();
            first.write_to(&dir.path().join("out")).unwrap();
            PlanSecrets::load(&dir.path().join("out"))
                .unwrap()
                .vault_tls
                .unwrap()
        });
    let mut s = PlanSecrets::parse(&format!(
        "TOKEN={TOKEN}\nCERTIFICATE_KEY={CERT_KEY}\nGRAFANA_ADMIN_PASSWORD={GRAFANA_PASSWORD}\n"
    ))
    .unwrap();
    s.vault_tls = Some(TLS.clone());
    s
}

/// The placed seed cluster.
pub fn cluster() -> Cluster {
    hakube_topology::load(SEED, "seed-cluster.yaml").unwrap()
}

/// The seed's plan tree.
pub fn seed() -> PlanTree {
    render(&cluster(), &secrets()).unwrap()
}

/// A file of the tree as text.
pub fn text<'a>(tree: &'a PlanTree, path: &str) -> &'a str {
    std::str::from_utf8(
        &tree
            .get(path)
            .unwrap_or_else(|| panic!("no {path}"))
            .contents,
    )
    .unwrap()
}
