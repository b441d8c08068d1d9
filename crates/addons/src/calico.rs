//! Calico via the tigera operator: chart values, the `Installation` and `APIServer`, and
//! example default-deny NetworkPolicies.
//!
//! Encapsulation: every node sits on one L2 Proxmox network, so the default is
//! `VXLANCrossSubnet` with BGP: between nodes of the same subnet packets are routed natively
//! (no overhead, full MTU, routes learned over BGP 179/tcp), and only traffic crossing a subnet
//! boundary is VXLAN-encapsulated (4789/udp), so adding nodes on another subnet later does not
//! break pod networking. `None` (pure BGP) is accepted but fails silently the day nodes span
//! subnets; `VXLAN` (always) needs no BGP at the cost of 50 bytes MTU.
//!
//! Node addresses are autodetected with `cidrs: [node_subnet]`: the interface address inside
//! the node network, deterministic even on VMs with several NICs.

use serde_json::{Value, json};

use crate::model::{AddonsInput, Encapsulation};
use crate::steps::{Component, HelmRelease, InstallStep, WorkloadKind};
use crate::versions::TIGERA_OPERATOR;
use crate::{ClusterFile, ComponentOutput, Error, yaml};

/// Namespace of the tigera operator.
pub const OPERATOR_NAMESPACE: &str = "tigera-operator";
/// Relative path of the operator chart's values.
pub const VALUES_FILE: &str = "calico/values.yaml";
/// Relative path of the `Installation` + `APIServer` manifest.
pub const INSTALLATION_FILE: &str = "calico/installation.yaml";

/// The pool CIDR actually used: `calico.pool_cidr` or the whole pod subnet.
#[must_use]
pub fn pool_cidr(input: &AddonsInput) -> ipnet::Ipv4Net {
    input.calico.pool_cidr.unwrap_or(input.network.pod_subnet)
}

fn encapsulation_str(e: Encapsulation) -> &'static str {
    match e {
        Encapsulation::VxlanCrossSubnet => "VXLANCrossSubnet",
        Encapsulation::None => "None",
        Encapsulation::Vxlan => "VXLAN",
    }
}

/// The tigera-operator chart values: the chart installs only the operator and its CRDs; the
/// `Installation` is ours (typed, validated, applied with our field manager).
#[must_use]
pub fn chart_values(input: &AddonsInput) -> Value {
    json!({
        "installation": { "enabled": false },
        "apiServer": { "enabled": false },
        // Lets the operator and calico-node reach the API through the VIP before kube-proxy
        // (or instead of it).
        "kubernetesServiceEndpoint": {
            "host": input.network.api_vip.to_string(),
            "port": input.network.api_port.to_string(),
        },
    })
}

/// The `operator.tigera.io/v1` `Installation` named `default`.
#[must_use]
pub fn installation(input: &AddonsInput) -> Value {
    let enc = input.calico.encapsulation;
    let bgp = if enc == Encapsulation::Vxlan {
        "Disabled"
    } else {
        "Enabled"
    };
    json!({
        "apiVersion": "operator.tigera.io/v1",
        "kind": "Installation",
        "metadata": { "name": "default" },
        "spec": {
            "variant": "Calico",
            "calicoNetwork": {
                "bgp": bgp,
                "ipPools": [{
                    "name": "default-ipv4-ippool",
                    "cidr": pool_cidr(input).to_string(),
                    "blockSize": input.calico.block_size,
                    "encapsulation": encapsulation_str(enc),
                    "natOutgoing": "Enabled",
                    "nodeSelector": "all()",
                }],
                "nodeAddressAutodetectionV4": {
                    "cidrs": [input.network.node_subnet.to_string()],
                },
            },
        },
    })
}

/// The `operator.tigera.io/v1` `APIServer` named `default` (serves projectcalico.org/v3).
#[must_use]
pub fn api_server() -> Value {
    json!({
        "apiVersion": "operator.tigera.io/v1",
        "kind": "APIServer",
        "metadata": { "name": "default" },
        "spec": {},
    })
}

/// Example default-deny NetworkPolicies for `namespace`: deny all, then allow DNS to
/// kube-dns, traffic inside the namespace, ingress from Traefik and scraping from monitoring.
#[must_use]
pub fn default_deny_policies(namespace: &str) -> Vec<Value> {
    let ns_selector =
        |name: &str| json!({ "matchLabels": { "kubernetes.io/metadata.name": name } });
    let meta = |name: &str| json!({ "name": name, "namespace": namespace });
    vec![
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("default-deny-all"),
            "spec": { "podSelector": {}, "policyTypes": ["Ingress", "Egress"] },
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("allow-dns-egress"),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{
                        "namespaceSelector": ns_selector("kube-system"),
                        "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
                    }],
                    "ports": [
                        { "protocol": "UDP", "port": 53 },
                        { "protocol": "TCP", "port": 53 },
                    ],
                }],
            },
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("allow-same-namespace"),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{ "from": [{ "podSelector": {} }] }],
                "egress": [{ "to": [{ "podSelector": {} }] }],
            },
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("allow-from-traefik-and-monitoring"),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [
                        { "namespaceSelector": ns_selector(crate::traefik::NAMESPACE) },
                        { "namespaceSelector": ns_selector(crate::observability::MONITORING_NAMESPACE) },
                    ],
                }],
            },
        }),
    ]
}

/// Files and install steps for Calico.
pub(crate) fn render(input: &AddonsInput) -> Result<ComponentOutput, Error> {
    let files = vec![
        ClusterFile::new(
            VALUES_FILE,
            yaml::file(VALUES_FILE, &[chart_values(input)])?,
        ),
        ClusterFile::new(
            INSTALLATION_FILE,
            yaml::file(INSTALLATION_FILE, &[installation(input), api_server()])?,
        ),
    ];
    let helm = HelmRelease {
        component: Component::Calico,
        release: "calico".into(),
        namespace: OPERATOR_NAMESPACE.into(),
        chart: TIGERA_OPERATOR,
        values_file: VALUES_FILE.into(),
    };
    let steps = vec![
        InstallStep::Helm(helm.clone()),
        InstallStep::WaitCrds {
            component: Component::Calico,
            crds: vec![
                "installations.operator.tigera.io".into(),
                "apiservers.operator.tigera.io".into(),
            ],
        },
        InstallStep::Apply {
            component: Component::Calico,
            files: vec![INSTALLATION_FILE.into()],
        },
        InstallStep::WaitRollout {
            component: Component::Calico,
            kind: WorkloadKind::DaemonSet,
            namespace: "calico-system".into(),
            name: "calico-node".into(),
        },
        InstallStep::WaitRollout {
            component: Component::Calico,
            kind: WorkloadKind::Deployment,
            namespace: "calico-system".into(),
            name: "calico-kube-controllers".into(),
        },
    ];
    Ok(ComponentOutput {
        component: Component::Calico,
        files,
        helm: vec![helm],
        resources: vec![INSTALLATION_FILE.into()],
        steps,
    })
}
