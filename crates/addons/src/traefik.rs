//! Traefik behind HAProxy: chart values and an example `IngressRoute`.
//!
//! The Service is a NodePort whose ports are exactly the ones HAProxy's backends target, with
//! `externalTrafficPolicy: Local` so the source address Traefik sees is the HAProxy host itself
//! (with `Cluster`, kube-proxy would SNAT to a node address and trusting only HAProxy would
//! break). PROXY protocol and `X-Forwarded-*` headers are trusted from the HAProxy addresses
//! only. The dashboard is not exposed (no IngressRoute, internal port not in the Service):
//! reach it with `kubectl -n traefik port-forward ds/traefik 8080:8080`.
//!
//! Traefik runs on exactly [`AddonsInput::ingress_nodes`], the nodes HAProxy sends ingress to:
//! node affinity on their worker groups and a toleration for each of their taints. With
//! `externalTrafficPolicy: Local` a node without a Traefik pod refuses the NodePort, so any
//! difference between the two sets is an ingress backend that is always DOWN.
//!
//! The values follow the chart's `values.schema.json` at the pinned version (41.x renamed
//! `logs` to `log`/`accessLog`, moved entry point TLS to `ports.<p>.http.tls` and the Service
//! type to `service.spec.type`); [`crate::chart_schema`] checks them.

use serde_json::{Value, json};

use crate::model::{AddonsInput, TraefikWorkload};
use crate::steps::{Component, HelmRelease, InstallStep};
use crate::versions::TRAEFIK;
use crate::{ClusterFile, ComponentOutput, Error, yaml};

/// Traefik's namespace.
pub const NAMESPACE: &str = "traefik";
/// Relative path of the chart values.
pub const VALUES_FILE: &str = "traefik/values.yaml";
/// Node label carrying a worker's group.
pub const WORKER_GROUP_LABEL: &str = "hakube.io/worker-group";

/// The addresses Traefik trusts for PROXY protocol and forwarded headers: the HAProxy hosts.
#[must_use]
pub fn trusted_ips(input: &AddonsInput) -> Vec<String> {
    input
        .haproxy
        .hosts
        .iter()
        .map(|h| h.address.to_string())
        .collect()
}

fn entry_point(input: &AddonsInput, port: u16, exposed: u16, node_port: u16) -> Value {
    let trusted = trusted_ips(input);
    let mut ep = json!({
        "port": port,
        "exposedPort": exposed,
        "nodePort": node_port,
        "expose": { "default": true },
        "forwardedHeaders": { "trustedIPs": trusted },
    });
    if input.haproxy.send_proxy {
        ep["proxyProtocol"] = json!({ "trustedIPs": trusted });
    }
    ep
}

/// The Traefik chart values.
#[must_use]
pub fn chart_values(input: &AddonsInput) -> Value {
    let t = &input.traefik;
    let deployment = match t.workload {
        TraefikWorkload::DaemonSet => json!({ "kind": "DaemonSet" }),
        TraefikWorkload::Deployment { replicas } => {
            json!({ "kind": "Deployment", "replicas": replicas })
        }
    };
    let groups: Vec<String> = input
        .ingress_groups()
        .iter()
        .map(|g| g.name.clone())
        .collect();
    let mut taints: Vec<crate::model::Taint> = input
        .ingress_groups()
        .iter()
        .flat_map(|g| g.taints.iter().cloned())
        .collect();
    taints.sort();
    taints.dedup();
    let tolerations: Vec<Value> = taints.iter().map(crate::model::Taint::toleration).collect();
    let mut websecure = entry_point(input, 8443, 443, t.websecure_node_port);
    websecure["http"] = json!({ "tls": { "enabled": true } });
    let mut values = json!({
        "deployment": deployment,
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{
                        "matchExpressions": [{
                            "key": WORKER_GROUP_LABEL,
                            "operator": "In",
                            "values": groups,
                        }],
                    }],
                },
            },
        },
        "tolerations": tolerations,
        "service": {
            "spec": { "type": "NodePort", "externalTrafficPolicy": "Local" },
        },
        "ports": {
            "web": entry_point(input, 8000, 80, t.web_node_port),
            "websecure": websecure,
            "traefik": { "expose": { "default": false } },
            "metrics": { "expose": { "default": false } },
        },
        "ingressRoute": { "dashboard": { "enabled": false } },
        "providers": {
            "kubernetesCRD": { "enabled": true, "allowCrossNamespace": false },
            "kubernetesIngress": { "enabled": true },
        },
        "accessLog": { "enabled": true },
        "metrics": { "prometheus": { "entryPoint": "metrics" } },
    });
    if let Some(secret) = &t.default_certificate_secret {
        values["tlsStore"] =
            json!({ "default": { "defaultCertificate": { "secretName": secret } } });
    }
    values
}

/// An example `traefik.io/v1alpha1` `IngressRoute` on `websecure` (TLS from the default store).
#[must_use]
pub fn example_ingress_route(name: &str, host: &str, service: &str, port: u16) -> Value {
    json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": { "name": name },
        "spec": {
            "entryPoints": ["websecure"],
            "routes": [{
                "match": format!("Host(`{host}`)"),
                "kind": "Rule",
                "services": [{ "name": service, "port": port }],
            }],
            "tls": {},
        },
    })
}

/// Files and install steps for Traefik.
pub(crate) fn render(input: &AddonsInput) -> Result<ComponentOutput, Error> {
    let files = vec![ClusterFile::new(
        VALUES_FILE,
        yaml::file(VALUES_FILE, &[chart_values(input)])?,
    )];
    let helm = HelmRelease {
        component: Component::Traefik,
        release: "traefik".into(),
        namespace: NAMESPACE.into(),
        chart: TRAEFIK,
        values_file: VALUES_FILE.into(),
    };
    Ok(ComponentOutput {
        component: Component::Traefik,
        files,
        helm: vec![helm.clone()],
        resources: vec![],
        steps: vec![InstallStep::Helm(helm)],
    })
}
