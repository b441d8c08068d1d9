//! The load balancers: `haproxy.cfg`, `keepalived.conf` and the health-check script per LB VM.

use std::net::IpAddr;

use hakube_haproxy_config::reference::{HaInput, IngressTls};
use hakube_topology::{Cluster, RoleKind, TlsMode};

use crate::{Error, PlanTree};

/// The reference design's input, from the topology.
pub(crate) fn input(cluster: &Cluster) -> HaInput {
    let t = &cluster.topology;
    let mut ha = HaInput::new(IpAddr::V4(t.network.vip), t.network.virtual_router_id)
        .lb_subnet(t.network.cidr.into());
    for vm in cluster.vms_with_role(RoleKind::LoadBalancer) {
        ha = ha.lb_node(&vm.name, IpAddr::V4(vm.address), &t.network.interface);
    }
    // Prometheus scrapes each LB's exporter at the LB's own address: bind it there (the
    // default, 127.0.0.1, is unreachable from the cluster).
    for n in &mut ha.lb_nodes {
        n.stats_address = Some(n.address);
    }
    for vm in cluster.vms_with_role(RoleKind::ControlPlane) {
        ha = ha.control_plane_node(&vm.name, IpAddr::V4(vm.address));
    }
    for vm in cluster.ingress_workers() {
        ha = ha.worker(&vm.name, IpAddr::V4(vm.address));
    }
    // Vault on VMs is fronted on the VIP too (8200), so no client names a single Vault node.
    for vm in cluster.vms_with_role(RoleKind::Vault) {
        ha = ha.vault_node(&vm.name, IpAddr::V4(vm.address));
    }
    let tls = match t.ingress.tls {
        TlsMode::Passthrough => IngressTls::Passthrough,
        TlsMode::Terminate => IngressTls::Terminate {
            cert_path: t.ingress.certificate.clone().unwrap_or_default(),
        },
    };
    ha.ingress(t.ingress.http_node_port, t.ingress.https_node_port, tls)
}

pub(crate) fn render(cluster: &Cluster, tree: &mut PlanTree) -> Result<(), Error> {
    let files = input(cluster).render().map_err(|e| Error::Component {
        component: "haproxy",
        source: e.into(),
    })?;
    for lb in files {
        tree.host_items(lb.host_plan())?;
    }
    Ok(())
}
