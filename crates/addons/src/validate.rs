//! Input validation and cross-checks between components that catch real outages.

use hakube_host_state::{is_dns_label, is_dns_name};
use std::collections::BTreeSet;

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::model::{AddonsInput, VaultPlacement, VolumeChoice};
use crate::{ClusterFile, Error, calico, observability, traefik, vault};

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    hakube_host_state::nets_overlap(a.into(), b.into())
}

/// Checks the input alone; returns every problem found (empty = valid).
///
/// Among them, the outage-class checks: the Calico pool inside kubeadm's pod subnet (the
/// operator refuses otherwise and nodes stay NotReady), Traefik NodePorts equal to the ports
/// HAProxy's backends target (otherwise every request fails with 503), Prometheus, Loki and
/// in-cluster Vault not on an NFS StorageClass (TSDB/raft corruption).
#[must_use]
pub fn validate(input: &AddonsInput) -> Vec<Error> {
    let mut e = Vec::new();
    let mut bad = |field: &str, reason: String| e.push(Error::invalid(field, reason));
    check_network(input, &mut bad);
    check_hosts(input, &mut bad);
    check_calico(input, &mut bad);
    check_traefik(input, &mut bad);
    check_storage(input, &mut bad);
    check_etcd_backup(input, &mut bad);
    check_local_volumes(input, &mut bad);
    check_taints(input, &mut bad);
    check_environments(input, &mut bad);
    e
}

/// The cluster name and the networks: pod, service and node subnets apart, the VIP on the
/// node subnet.
fn check_network(input: &AddonsInput, bad: &mut impl FnMut(&str, String)) {
    let net = &input.network;

    if !is_dns_label(&input.cluster_name) {
        bad(
            "cluster_name",
            format!("`{}` is not a DNS label", input.cluster_name),
        );
    }
    for (a, an, b, bn) in [
        (
            net.pod_subnet,
            "pod_subnet",
            net.service_subnet,
            "service_subnet",
        ),
        (net.pod_subnet, "pod_subnet", net.node_subnet, "node_subnet"),
        (
            net.service_subnet,
            "service_subnet",
            net.node_subnet,
            "node_subnet",
        ),
    ] {
        if overlaps(a, b) {
            bad(&format!("network.{an}"), format!("{a} overlaps {bn} {b}"));
        }
    }
    if !net.node_subnet.contains(&net.api_vip) {
        bad(
            "network.api_vip",
            format!("{} is outside node_subnet {}", net.api_vip, net.node_subnet),
        );
    }
}

/// Hosts: names are DNS names (they land in configs), addresses on the node network.
fn check_hosts(input: &AddonsInput, bad: &mut impl FnMut(&str, String)) {
    let net = &input.network;
    let mut names = BTreeSet::new();
    let groups = input.worker_groups.iter().flat_map(|g| {
        g.nodes
            .iter()
            .enumerate()
            .map(move |(i, h)| (format!("worker_groups.{}.nodes.{i}", g.name), h))
    });
    let masters = input
        .masters
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("masters.{i}"), h));
    let lbs = input
        .haproxy
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("haproxy.hosts.{i}"), h));
    let vault_vms: Vec<_> = match input.vault.as_ref().map(|v| &v.placement) {
        Some(VaultPlacement::Vms(n)) => n
            .iter()
            .enumerate()
            .map(|(i, h)| (format!("vault.placement.{i}"), h))
            .collect(),
        _ => vec![],
    };
    for (field, h) in masters.chain(lbs).chain(groups).chain(vault_vms) {
        if !is_dns_name(&h.name) {
            bad(
                &format!("{field}.name"),
                format!("`{}` is not a DNS name", h.name),
            );
        }
        if !names.insert(h.name.clone()) {
            bad(
                &format!("{field}.name"),
                format!("host `{}` appears twice", h.name),
            );
        }
        if !net.node_subnet.contains(&h.address) {
            bad(
                &format!("{field}.address"),
                format!(
                    "{} ({}) is outside node_subnet {}",
                    h.address, h.name, net.node_subnet
                ),
            );
        }
    }
    if input.masters.is_empty() {
        bad(
            "masters",
            "at least one control-plane node is required".into(),
        );
    }
    if input.haproxy.hosts.is_empty() {
        bad(
            "haproxy.hosts",
            "at least one HAProxy host is required (Traefik trusts only them)".into(),
        );
    }
    let mut group_names = BTreeSet::new();
    for g in &input.worker_groups {
        if !is_dns_label(&g.name) || !group_names.insert(g.name.as_str()) {
            bad(
                "worker_groups",
                format!("group name `{}` is not a unique DNS label", g.name),
            );
        }
    }
}

/// Calico: the IP pool inside kubeadm's pod subnet, a block size the pool can hold.
fn check_calico(input: &AddonsInput, bad: &mut impl FnMut(&str, String)) {
    let net = &input.network;
    let pool = calico::pool_cidr(input);
    if !net.pod_subnet.contains(&pool) {
        bad(
            "calico.pool_cidr",
            format!("{pool} is not inside kubeadm podSubnet {}", net.pod_subnet),
        );
    }
    let bs = input.calico.block_size;
    if !(20..=32).contains(&bs) || bs < pool.prefix_len() {
        bad(
            "calico.block_size",
            format!(
                "{bs} must be in 20..=32 and not shorter than the pool prefix /{}",
                pool.prefix_len()
            ),
        );
    }
}

/// Traefik against HAProxy: the NodePorts HAProxy's backends target, where Traefik runs.
fn check_traefik(input: &AddonsInput, bad: &mut impl FnMut(&str, String)) {
    let group_names = group_names(input);
    let t = &input.traefik;
    for (field, port, backend, bname) in [
        (
            "traefik.web_node_port",
            t.web_node_port,
            input.haproxy.http_backend_port,
            "haproxy.http_backend_port",
        ),
        (
            "traefik.websecure_node_port",
            t.websecure_node_port,
            input.haproxy.https_backend_port,
            "haproxy.https_backend_port",
        ),
    ] {
        if !(30000..=32767).contains(&port) {
            bad(
                field,
                format!("{port} is outside the NodePort range 30000-32767"),
            );
        }
        if port != backend {
            bad(
                field,
                format!(
                    "NodePort {port} differs from {bname} {backend}: HAProxy would send traffic to a closed port"
                ),
            );
        }
    }
    if t.web_node_port == t.websecure_node_port {
        bad(
            "traefik.websecure_node_port",
            "web and websecure NodePorts must differ".into(),
        );
    }
    if let crate::model::TraefikWorkload::Deployment { replicas: 0 } = t.workload {
        bad(
            "traefik.workload",
            "a Deployment needs at least one replica".into(),
        );
    }
    for g in &t.worker_groups {
        if !group_names.contains(g.as_str()) {
            bad(
                "traefik.worker_groups",
                format!("unknown worker group `{g}`"),
            );
        }
    }
    if input.worker_groups.is_empty() {
        bad(
            "worker_groups",
            "Traefik needs at least one worker group".into(),
        );
    }
    if !is_dns_name(&t.apps_domain) {
        bad(
            "traefik.apps_domain",
            format!("`{}` is not a DNS name", t.apps_domain),
        );
    }
    if let Some(s) = &t.default_certificate_secret
        && !is_dns_name(s)
    {
        bad(
            "traefik.default_certificate_secret",
            format!("`{s}` is not a valid Secret name"),
        );
    }
}

/// Storage: NFS is refused for Prometheus, Loki and Vault raft.
fn check_storage(input: &AddonsInput, bad: &mut impl FnMut(&str, String)) {
    let nfs = |c: &str| input.storage.nfs_classes.iter().any(|n| n == c);
    if let Some(m) = &input.monitoring {
        if let VolumeChoice::StorageClass { name, .. } = &m.prometheus_volume
            && nfs(name)
        {
            bad(
                "monitoring.prometheus_volume",
                format!("`{name}` is an NFS class: Prometheus does not support NFS for its TSDB"),
            );
        }
        if !is_dns_name(&m.grafana_admin_secret) {
            bad(
                "monitoring.grafana_admin_secret",
                format!("`{}` is not a valid Secret name", m.grafana_admin_secret),
            );
        }
    }
    if let Some(l) = &input.logging
        && let VolumeChoice::StorageClass { name, .. } = &l.loki_volume
        && nfs(name)
    {
        bad(
            "logging.loki_volume",
            format!("`{name}` is an NFS class: Loki needs a local disk"),
        );
    }
    if let Some(v) = &input.vault {
        match &v.placement {
            VaultPlacement::Vms(nodes) => {
                if nodes.len() < 3 || nodes.len() % 2 == 0 {
                    bad(
                        "vault.placement",
                        format!(
                            "{} Vault nodes: raft needs an odd number, at least 3",
                            nodes.len()
                        ),
                    );
                }
            }
            VaultPlacement::InCluster { storage_class } => {
                if nfs(storage_class) {
                    bad(
                        "vault.placement.storage_class",
                        format!("`{storage_class}` is an NFS class: Vault raft needs a local disk"),
                    );
                }
            }
        }
        if !is_dns_label(&v.pki_role) {
            bad(
                "vault.pki_role",
                format!("`{}` is not a DNS label", v.pki_role),
            );
        }
        if v.allowed_domains.is_empty() || v.allowed_domains.iter().any(|d| !is_dns_name(d)) {
            bad(
                "vault.allowed_domains",
                "needs at least one valid DNS name".into(),
            );
        }
        if v.organisation.is_empty() || v.organisation.chars().any(|c| c.is_control() || c == '"') {
            bad(
                "vault.organisation",
                "must be non-empty, without quotes or control characters".into(),
            );
        }
        if let Some(url) = &v.server_url
            && (!url.starts_with("https://") || url.chars().any(char::is_whitespace))
        {
            bad(
                "vault.server_url",
                format!("`{url}` must be an https:// URL"),
            );
        }
    }
}

/// The etcd backup: export path, snapshots kept, schedule and image.
fn check_etcd_backup(input: &AddonsInput, bad: &mut impl FnMut(&str, String)) {
    if let Some(b) = &input.etcd_backup {
        if !b.export_path.starts_with('/')
            || b.export_path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            bad(
                "etcd_backup.export_path",
                format!(
                    "`{}` must be an absolute path without spaces",
                    b.export_path
                ),
            );
        }
        if b.keep == 0 {
            bad("etcd_backup.keep", "keep at least one snapshot".into());
        }
        if b.schedule.split_whitespace().count() != 5 {
            bad(
                "etcd_backup.schedule",
                format!("`{}` is not a 5-field cron schedule", b.schedule),
            );
        }
        if b.etcd_image.is_empty() || b.etcd_image.chars().any(char::is_whitespace) {
            bad(
                "etcd_backup.etcd_image",
                "must be an image reference".into(),
            );
        }
    }
}

/// Node-local volumes: on a known node the pod can be scheduled to (it follows its data).
fn check_local_volumes(input: &AddonsInput, bad: &mut impl FnMut(&str, String)) {
    let mut volumes = Vec::new();
    if let Some(m) = &input.monitoring {
        volumes.push(("monitoring.prometheus_volume", &m.prometheus_volume));
    }
    if let Some(l) = &input.logging {
        volumes.push(("logging.loki_volume", &l.loki_volume));
    }
    for (field, v) in volumes {
        if let VolumeChoice::HostPath { node, path, size } = v {
            match input.taints_of(node) {
                None => bad(
                    field,
                    format!("node `{node}` is neither a master nor a worker"),
                ),
                Some(taints) => {
                    if let Some(t) = taints
                        .iter()
                        .find(|t| t.effect != crate::model::TaintEffect::PreferNoSchedule)
                    {
                        bad(
                            field,
                            format!(
                                "node `{node}` carries the taint {t}: the pod bound to its volume would stay Pending"
                            ),
                        );
                    }
                }
            }
            if !path.starts_with('/')
                || path == "/"
                || path.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                bad(
                    field,
                    format!("`{path}` must be an absolute directory without spaces"),
                );
            }
            if size.is_empty() || size.chars().any(char::is_whitespace) {
                bad(field, format!("`{size}` is not a quantity"));
            }
        }
    }
}

/// Taints: keys and values land in tolerations.
fn check_taints(input: &AddonsInput, bad: &mut impl FnMut(&str, String)) {
    for g in &input.worker_groups {
        for t in &g.taints {
            if t.key.is_empty() || t.key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bad(
                    &format!("worker_groups.{}.taints", g.name),
                    format!("`{}` is not a taint key", t.key),
                );
            }
        }
    }
}

/// Environments: unique names and namespaces, known worker groups.
fn check_environments(input: &AddonsInput, bad: &mut impl FnMut(&str, String)) {
    let group_names = group_names(input);
    let mut env_names = BTreeSet::new();
    let mut env_ns = BTreeSet::new();
    for (i, env) in input.environments.iter().enumerate() {
        if !is_dns_label(&env.name) || !env_names.insert(env.name.as_str()) {
            bad(
                &format!("environments.{i}.name"),
                format!("`{}` is not a unique DNS label", env.name),
            );
        }
        if !is_dns_label(&env.namespace) || !env_ns.insert(env.namespace.as_str()) {
            bad(
                &format!("environments.{i}.namespace"),
                format!("`{}` is not a unique DNS label", env.namespace),
            );
        }
        if let Some(g) = &env.worker_group
            && !group_names.contains(g.as_str())
        {
            bad(
                &format!("environments.{i}.worker_group"),
                format!("unknown worker group `{g}`"),
            );
        }
    }
}

/// The worker groups' names that are DNS labels (the others are reported by the hosts check).
fn group_names(input: &AddonsInput) -> BTreeSet<&str> {
    input
        .worker_groups
        .iter()
        .map(|g| g.name.as_str())
        .filter(|n| is_dns_label(n))
        .collect()
}

fn docs(files: &[ClusterFile], path: &str) -> Result<Option<Vec<Value>>, Error> {
    let Some(f) = files.iter().find(|f| f.path == path) else {
        return Ok(None);
    };
    serde_saphyr::from_multiple::<Value>(&f.contents)
        .map(Some)
        .map_err(|err| Error::Manifest {
            path: path.into(),
            index: 0,
            reason: err.to_string(),
        })
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn agent_chart(input: &AddonsInput) -> std::borrow::Cow<'static, str> {
    match input.logging.as_ref().map(|l| l.agent) {
        Some(crate::model::LogAgent::Promtail) => crate::versions::PROMTAIL.name,
        _ => crate::versions::ALLOY.name,
    }
}

/// Cross-checks rendered (or hand-edited) files of the GitOps tree against the input; returns
/// every mismatch found (empty = consistent). Files that are absent are not checked.
#[must_use]
pub fn cross_check(input: &AddonsInput, files: &[ClusterFile]) -> Vec<Error> {
    let mut e = Vec::new();
    let mut fail =
        |check: &'static str, reason: String| e.push(Error::CrossCheck { check, reason });
    cross_check_calico_and_ingress(input, files, &mut fail);
    cross_check_chart_values(input, files, &mut fail);
    cross_check_tolerations(input, files, &mut fail);
    cross_check_traefik_nodes(input, files, &mut fail);
    cross_check_not_on_nfs(input, files, &mut fail);
    e
}

/// The Calico pool and Traefik's Service as HAProxy needs them (pool in the pod subnet, NodePorts, trusted IPs, `externalTrafficPolicy: Local`).
fn cross_check_calico_and_ingress(
    input: &AddonsInput,
    files: &[ClusterFile],
    fail: &mut impl FnMut(&'static str, String),
) {
    let load = |path: &str| docs(files, path);
    match load(calico::INSTALLATION_FILE) {
        Err(err) => fail("calico-pool-in-pod-subnet", err.to_string()),
        Ok(None) => {}
        Ok(Some(ds)) => {
            for d in ds.iter().filter(|d| d["kind"] == "Installation") {
                let pools = d["spec"]["calicoNetwork"]["ipPools"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for p in pools {
                    let cidr = p["cidr"].as_str().unwrap_or_default();
                    match cidr.parse::<Ipv4Net>() {
                        Ok(net) if input.network.pod_subnet.contains(&net) => {}
                        _ => fail(
                            "calico-pool-in-pod-subnet",
                            format!(
                                "{}: IP pool `{cidr}` is not inside podSubnet {}",
                                calico::INSTALLATION_FILE,
                                input.network.pod_subnet
                            ),
                        ),
                    }
                }
            }
        }
    }

    match load(traefik::VALUES_FILE) {
        Err(err) => fail("traefik-values", err.to_string()),
        Ok(None) => {}
        Ok(Some(ds)) => {
            let v = ds.first().cloned().unwrap_or(Value::Null);
            let want: BTreeSet<String> = traefik::trusted_ips(input).into_iter().collect();
            if v["service"]["spec"]["type"] != "NodePort" {
                fail(
                    "traefik-nodeports-match-haproxy",
                    "service.spec.type is not NodePort".into(),
                );
            }
            for (port, backend) in [
                ("web", input.haproxy.http_backend_port),
                ("websecure", input.haproxy.https_backend_port),
            ] {
                let p = &v["ports"][port];
                if p["nodePort"].as_u64() != Some(u64::from(backend)) {
                    fail(
                        "traefik-nodeports-match-haproxy",
                        format!(
                            "ports.{port}.nodePort is {} but HAProxy targets {backend}",
                            p["nodePort"]
                        ),
                    );
                }
                let fwd = strings(&p["forwardedHeaders"]["trustedIPs"]);
                if fwd != want {
                    fail(
                        "traefik-trusted-ips-are-haproxy",
                        format!(
                            "ports.{port}.forwardedHeaders.trustedIPs {fwd:?} != HAProxy addresses {want:?}"
                        ),
                    );
                }
                let pp = &p["proxyProtocol"];
                if input.haproxy.send_proxy || !pp.is_null() {
                    let got = strings(&pp["trustedIPs"]);
                    if got != want {
                        fail(
                            "traefik-trusted-ips-are-haproxy",
                            format!(
                                "ports.{port}.proxyProtocol.trustedIPs {got:?} != HAProxy addresses {want:?}"
                            ),
                        );
                    }
                }
            }
            if v["service"]["spec"]["externalTrafficPolicy"] != "Local" {
                fail("traefik-trusted-ips-are-haproxy", "service externalTrafficPolicy must be Local: with Cluster, Traefik sees node addresses, not HAProxy's".into());
            }
        }
    }
}

/// Chart values against what the chart accepts at the pinned version.
fn cross_check_chart_values(
    input: &AddonsInput,
    files: &[ClusterFile],
    fail: &mut impl FnMut(&'static str, String),
) {
    let load = |path: &str| docs(files, path);
    for (path, chart) in [
        (traefik::VALUES_FILE, crate::versions::TRAEFIK.name),
        (
            observability::PROMETHEUS_VALUES,
            crate::versions::PROMETHEUS.name,
        ),
        (observability::GRAFANA_VALUES, crate::versions::GRAFANA.name),
        (observability::LOKI_VALUES, crate::versions::LOKI.name),
        (
            observability::METRICS_SERVER_VALUES,
            crate::versions::METRICS_SERVER.name,
        ),
        (calico::VALUES_FILE, crate::versions::TIGERA_OPERATOR.name),
        (observability::AGENT_VALUES, agent_chart(input)),
        (
            observability::CSR_APPROVER_VALUES,
            "kubelet-csr-approver".into(),
        ),
        (
            crate::certmanager::VALUES_FILE,
            crate::versions::CERT_MANAGER.name,
        ),
        (crate::vault::VALUES_FILE, crate::versions::VAULT.name),
    ] {
        let Some(rules) = crate::chart_schema::rules_for(&chart) else {
            continue;
        };
        match load(path) {
            Err(err) => fail("chart-values-schema", err.to_string()),
            Ok(None) => {}
            Ok(Some(ds)) => {
                let v = ds.first().cloned().unwrap_or(Value::Null);
                for p in crate::chart_schema::check(rules, &v) {
                    fail(
                        "chart-values-schema",
                        format!(
                            "{path}: {p} (chart {} {}, {})",
                            rules.chart, rules.version, rules.source
                        ),
                    );
                }
            }
        }
    }
}

/// Workloads that must run on every node tolerate every taint of the cluster.
fn cross_check_tolerations(
    input: &AddonsInput,
    files: &[ClusterFile],
    fail: &mut impl FnMut(&'static str, String),
) {
    let load = |path: &str| docs(files, path);
    let agent_pointer = match input.logging.as_ref().map(|l| l.agent) {
        Some(crate::model::LogAgent::Promtail) => "/tolerations",
        _ => "/controller/tolerations",
    };
    for (path, pointer, what) in [
        (
            observability::AGENT_VALUES,
            agent_pointer,
            "the log agent DaemonSet",
        ),
        (
            observability::PROMETHEUS_VALUES,
            "/prometheus-node-exporter/tolerations",
            "node-exporter",
        ),
    ] {
        match load(path) {
            Err(err) => fail("every-node-tolerates-every-taint", err.to_string()),
            Ok(None) => {}
            Ok(Some(ds)) => {
                let tols = ds
                    .first()
                    .and_then(|d| d.pointer(pointer))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for t in input.every_taint() {
                    if !tols.iter().any(|x| t.tolerated_by(x)) {
                        fail(
                            "every-node-tolerates-every-taint",
                            format!(
                                "{path}: {what} must run on every node but {pointer} does not tolerate the taint {t}"
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Traefik runs on exactly the nodes HAProxy sends ingress to.
fn cross_check_traefik_nodes(
    input: &AddonsInput,
    files: &[ClusterFile],
    fail: &mut impl FnMut(&'static str, String),
) {
    let load = |path: &str| docs(files, path);
    if let Ok(Some(ds)) = load(traefik::VALUES_FILE) {
        let v = ds.first().cloned().unwrap_or(Value::Null);
        let want: BTreeSet<String> = input
            .ingress_groups()
            .iter()
            .map(|g| g.name.clone())
            .collect();
        let terms = v
            .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let selected: Option<BTreeSet<String>> = match terms.as_slice() {
            [term] => match term["matchExpressions"].as_array().map(Vec::as_slice) {
                Some([expr])
                    if expr["key"] == traefik::WORKER_GROUP_LABEL && expr["operator"] == "In" =>
                {
                    Some(strings(&expr["values"]))
                }
                _ => None,
            },
            _ => None,
        };
        if selected.as_ref() != Some(&want) {
            fail(
                "traefik-on-ingress-nodes",
                format!(
                    "{}: Traefik's node affinity selects {selected:?}, HAProxy sends ingress to the groups {want:?}",
                    traefik::VALUES_FILE
                ),
            );
        }
        let tols = v["tolerations"].as_array().cloned().unwrap_or_default();
        for g in input.ingress_groups() {
            for t in &g.taints {
                if !tols.iter().any(|x| t.tolerated_by(x)) {
                    fail(
                        "traefik-on-ingress-nodes",
                        format!(
                            "{}: HAProxy sends ingress to group `{}` but Traefik does not tolerate its taint {t}: those backends would always be DOWN",
                            traefik::VALUES_FILE,
                            g.name
                        ),
                    );
                }
            }
        }
    }
}

/// Prometheus, Loki and in-cluster Vault keep their data off the NFS classes.
fn cross_check_not_on_nfs(
    input: &AddonsInput,
    files: &[ClusterFile],
    fail: &mut impl FnMut(&'static str, String),
) {
    let load = |path: &str| docs(files, path);
    let nfs = |c: &str| input.storage.nfs_classes.iter().any(|n| n == c);
    for (path, pointer, check) in [
        (
            observability::PROMETHEUS_VALUES,
            "/server/persistentVolume/storageClass",
            "prometheus-not-on-nfs",
        ),
        (
            observability::LOKI_VALUES,
            "/singleBinary/persistence/storageClass",
            "loki-not-on-nfs",
        ),
        (
            vault::VALUES_FILE,
            "/server/dataStorage/storageClass",
            "vault-not-on-nfs",
        ),
    ] {
        match load(path) {
            Err(err) => fail(check, err.to_string()),
            Ok(None) => {}
            Ok(Some(ds)) => {
                if let Some(class) = ds
                    .first()
                    .and_then(|d| d.pointer(pointer))
                    .and_then(Value::as_str)
                    && nfs(class)
                {
                    fail(
                        check,
                        format!("{path}: {pointer} is the NFS class `{class}`"),
                    );
                }
            }
        }
    }
}

/// Namespaces every cluster has before anything is installed.
const BUILTIN_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Checks that every namespaced object comes after its namespace in the install order: a
/// Namespace exists once an earlier step (or an earlier document of the same step) applied it,
/// or a Helm step created it (`--create-namespace`). Objects inside a Kustomize folder count
/// their folder's `namespace:` and the Namespaces among its resources (Kustomize applies
/// Namespaces first). `files` are the GitOps tree's files (paths relative to `cluster/`); a file
/// a step names that is not among them is reported too. Returns every problem (empty = fine).
#[must_use]
pub fn check_install_order(steps: &[crate::InstallStep], files: &[ClusterFile]) -> Vec<Error> {
    use crate::InstallStep;
    let mut known: BTreeSet<String> = BUILTIN_NAMESPACES.iter().map(|s| (*s).to_owned()).collect();
    let mut e = Vec::new();
    let mut fail = |reason: String| {
        e.push(Error::CrossCheck {
            check: "namespace-before-its-objects",
            reason,
        });
    };
    let load = |path: &str| -> Result<Vec<Value>, String> {
        match docs(files, path) {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(format!("{path}: named by an install step but not rendered")),
            Err(err) => Err(err.to_string()),
        }
    };
    for (i, step) in steps.iter().enumerate() {
        let n = i + 1;
        match step {
            InstallStep::Helm(h) => {
                known.insert(h.namespace.clone());
            }
            InstallStep::Apply { files: paths, .. } => {
                for path in paths {
                    let ds = match load(path) {
                        Ok(ds) => ds,
                        Err(reason) => {
                            fail(format!("step {n}: {reason}"));
                            continue;
                        }
                    };
                    for d in ds {
                        if d["kind"] == "Namespace" {
                            if let Some(name) = d["metadata"]["name"].as_str() {
                                known.insert(name.to_owned());
                            }
                        } else if let Some(ns) = d["metadata"]["namespace"].as_str()
                            && !known.contains(ns)
                        {
                            fail(format!(
                                "step {n}: {path}: {} `{}` is created in namespace `{ns}` before anything creates that namespace",
                                d["kind"].as_str().unwrap_or("object"),
                                d["metadata"]["name"].as_str().unwrap_or("?"),
                            ));
                        }
                    }
                }
            }
            InstallStep::ApplyKustomize { dir, .. } => {
                let kpath = format!("{dir}/kustomization.yaml");
                let k = match load(&kpath) {
                    Ok(ds) => ds.into_iter().next().unwrap_or(Value::Null),
                    Err(reason) => {
                        fail(format!("step {n}: {reason}"));
                        continue;
                    }
                };
                let mut created = BTreeSet::new();
                for r in k["resources"].as_array().into_iter().flatten() {
                    let Some(r) = r.as_str() else { continue };
                    if let Ok(Some(ds)) = docs(files, &format!("{dir}/{r}")) {
                        for d in ds.iter().filter(|d| d["kind"] == "Namespace") {
                            if let Some(name) = d["metadata"]["name"].as_str() {
                                created.insert(name.to_owned());
                            }
                        }
                    }
                }
                if let Some(ns) = k["namespace"].as_str()
                    && !known.contains(ns)
                    && !created.contains(ns)
                {
                    fail(format!(
                        "step {n}: {kpath} puts its objects in namespace `{ns}`, which neither an earlier step nor the folder creates"
                    ));
                }
                known.extend(created);
            }
            InstallStep::Secret {
                namespace, name, ..
            } => {
                if !known.contains(namespace) {
                    fail(format!(
                        "step {n}: Secret `{name}` is created in namespace `{namespace}` before anything creates that namespace"
                    ));
                }
            }
            // Its pods come from an earlier Helm release in their namespace.
            InstallStep::VaultBootstrap(v) => {
                if !known.contains(&v.pods.namespace) {
                    fail(format!(
                        "step {n}: Vault's pods are looked for in namespace `{}` before anything creates it",
                        v.pods.namespace
                    ));
                }
            }
            // Waits create nothing (an operator may create the namespace it waits in).
            InstallStep::WaitRollout { .. }
            | InstallStep::WaitCrds { .. }
            | InstallStep::VaultKubernetesAuth(_) => {}
        }
    }
    e
}
