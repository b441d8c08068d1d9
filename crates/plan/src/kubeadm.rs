//! kubeadm configs per node under `hosts/<vm>/etc/kubernetes/kubeadm/`, node preparation, and
//! the cluster's bootstrap secrets kept in the plan ([`SECRETS_PATH`], 0600, beside the GitOps
//! tree `cluster/` and never inside it) so re-planning gives the same files.

use hakube_kubeadm::config::TaintEffect;
use hakube_kubeadm::prep::{PrepInput, node_prep_plan};
use hakube_kubeadm::{ClusterInput, KubernetesVersion, MasterInput, WorkerInput};
use hakube_topology::{Cluster, RoleKind};

use crate::secrets::{PlanSecrets, SECRETS_PATH};
use crate::{Error, PlanTree};

/// The label every worker carries with its group name (Traefik and the GitOps overlays select on it).
pub const WORKER_GROUP_LABEL: &str = "hakube.io/worker-group";

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Component {
        component: "kubeadm",
        source: e.into(),
    }
}

/// The kubeadm crate's input for a placed cluster.
///
/// # Errors
/// [`Error::Component`] (`kubeadm`) when the cluster's Kubernetes version is not
/// `MAJOR.MINOR.PATCH` of Kubernetes 1 (the topology accepts it with or without the `v`).
pub fn kubeadm_input(cluster: &Cluster) -> Result<ClusterInput, Error> {
    let t = &cluster.topology;
    let k = &t.kubernetes;
    let version: KubernetesVersion =
        format!("v{}", cluster.kubernetes_version.trim_start_matches('v'))
            .parse()
            .map_err(err)?;
    let mut input = ClusterInput::new(
        t.cluster.name.clone(),
        t.network.vip,
        version,
        k.pod_cidr.into(),
    );
    input.service_subnet = k.service_cidr.into();
    input.dns_domain = k.dns_domain.clone();
    for vm in cluster.vms_with_role(RoleKind::ControlPlane) {
        input
            .masters
            .push(MasterInput::new(vm.name.clone(), vm.address.into()));
    }
    for vm in cluster.vms_with_role(RoleKind::Worker) {
        let mut w = WorkerInput::new(vm.name.clone(), vm.address.into());
        w.labels = vm.labels.clone();
        if let Some(g) = &vm.group {
            w.labels.insert(WORKER_GROUP_LABEL.to_owned(), g.clone());
        }
        for taint in &vm.taints {
            let effect = match taint.effect {
                hakube_topology::TaintEffect::NoSchedule => TaintEffect::NoSchedule,
                hakube_topology::TaintEffect::PreferNoSchedule => TaintEffect::PreferNoSchedule,
                hakube_topology::TaintEffect::NoExecute => TaintEffect::NoExecute,
            };
            w = w.taint(taint.key.clone(), taint.value.as_deref(), effect);
        }
        input.workers.push(w);
    }
    // The names every host's /etc/hosts gives the VIP: a client that dials the API by that
    // name must find it in the certificate.
    input.cert_sans.extend(crate::base::api_names(cluster));
    for lb in cluster.vms_with_role(RoleKind::LoadBalancer) {
        input.cert_sans.push(lb.name.clone());
        if let Some(fqdn) = cluster.fqdn(lb) {
            input.cert_sans.push(fqdn);
        }
    }
    Ok(input)
}

pub(crate) fn render(
    cluster: &Cluster,
    secrets: &PlanSecrets,
    tree: &mut PlanTree,
) -> Result<(), Error> {
    let input = kubeadm_input(cluster)?;
    let rendered = hakube_kubeadm::render_cluster(&input, &secrets.kubeadm).map_err(err)?;
    // Node preparation first: the kubeadm configs below need nothing of it, but a node's plan
    // reads best in the order it is applied.
    let masters: Vec<&str> = input.masters.iter().map(|m| m.name.as_str()).collect();
    for node in input.node_names() {
        let mut prep = PrepInput::new(input.kubernetes_version, masters.contains(&node));
        prep.cri_socket.clone_from(&input.cri_socket);
        prep.image_repository.clone_from(&input.image_repository);
        tree.host_items(node_prep_plan(node, &prep))?;
    }
    for node in rendered.nodes {
        tree.host_items(node.files.into_iter().fold(
            hakube_host_state::HostPlan::new(node.name.clone()),
            hakube_host_state::HostPlan::file,
        ))?;
    }
    tree.insert(SECRETS_PATH.to_owned(), secrets.to_env(), 0o600)?;
    Ok(())
}
