//! Cross-checks that catch real outages, on the input ([`validate`]) and on rendered or
//! hand-edited files ([`cross_check`]).

mod fixture;
use fixture::example_input;
use hakube_addons::{
    AddonsInput, ClusterFile, Error, Rendered, TraefikWorkload, VaultPlacement, VolumeChoice,
    cross_check, render, validate,
};

fn fields(errors: &[Error]) -> Vec<String> {
    errors
        .iter()
        .map(|e| match e {
            Error::InvalidInput { field, .. } => field.clone(),
            Error::CrossCheck { check, .. } => (*check).to_owned(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn invalid(mutate: impl FnOnce(&mut AddonsInput)) -> Vec<String> {
    let mut input = example_input();
    mutate(&mut input);
    let errors = validate(&input);
    assert!(
        render(&input).is_err(),
        "render refuses what validate refuses"
    );
    fields(&errors)
}

#[test]
fn the_example_is_valid() {
    assert!(validate(&example_input()).is_empty());
}

#[test]
fn calico_pool_outside_pod_subnet_is_refused() {
    let f = invalid(|i| i.calico.pool_cidr = Some("192.168.0.0/16".parse().expect("cidr")));
    assert_eq!(f, ["calico.pool_cidr"]);
    // A sub-range of the pod subnet is fine.
    let mut ok = example_input();
    ok.calico.pool_cidr = Some("10.244.128.0/17".parse().expect("cidr"));
    assert!(validate(&ok).is_empty());
    let out = render(&ok).expect("renders");
    let inst = &out
        .cluster_files
        .iter()
        .find(|f| f.path == "calico/installation.yaml")
        .expect("file")
        .contents;
    assert!(inst.contains("cidr: 10.244.128.0/17"));
}

#[test]
fn calico_block_size_must_fit_the_pool() {
    assert_eq!(invalid(|i| i.calico.block_size = 12), ["calico.block_size"]);
}

#[test]
fn traefik_node_ports_must_equal_haproxy_backends() {
    let f = invalid(|i| i.traefik.web_node_port = 30081);
    assert_eq!(f, ["traefik.web_node_port"]);
    let f = invalid(|i| i.haproxy.https_backend_port = 443);
    assert_eq!(f, ["traefik.websecure_node_port"]);
    let f = invalid(|i| {
        i.traefik.websecure_node_port = 8443;
        i.haproxy.https_backend_port = 8443;
    });
    assert_eq!(
        f,
        ["traefik.websecure_node_port"],
        "outside the NodePort range"
    );
}

#[test]
fn prometheus_loki_and_vault_refuse_nfs_classes() {
    let nfs = || VolumeChoice::StorageClass {
        name: "nfs-prod".into(),
        size: "10Gi".into(),
    };
    let f = invalid(|i| {
        if let Some(m) = i.monitoring.as_mut() {
            m.prometheus_volume = nfs();
        }
    });
    assert_eq!(f, ["monitoring.prometheus_volume"]);
    let f = invalid(|i| {
        if let Some(l) = i.logging.as_mut() {
            l.loki_volume = nfs();
        }
    });
    assert_eq!(f, ["logging.loki_volume"]);
    let f = invalid(|i| {
        if let Some(v) = i.vault.as_mut() {
            v.placement = VaultPlacement::InCluster {
                storage_class: "nfs-nonprod".into(),
            };
        }
    });
    assert_eq!(f, ["vault.placement.storage_class"]);
    // Ephemeral Prometheus is allowed (and renders no PVC).
    let mut ok = example_input();
    if let Some(m) = ok.monitoring.as_mut() {
        m.prometheus_volume = VolumeChoice::Ephemeral;
    }
    let out = render(&ok).expect("renders");
    let p = &out
        .cluster_files
        .iter()
        .find(|f| f.path == "monitoring/prometheus-values.yaml")
        .expect("file")
        .contents;
    assert!(p.contains("persistentVolume:\n    enabled: false"), "{p}");
}

#[test]
fn other_input_problems_name_their_field() {
    assert_eq!(
        invalid(|i| {
            if let Some(VaultPlacement::Vms(n)) = i.vault.as_mut().map(|v| &mut v.placement) {
                n.pop();
            }
        }),
        ["vault.placement"]
    );
    assert_eq!(
        invalid(|i| i.masters[1].name = "Master 2\"".into()),
        ["masters.1.name"]
    );
    assert_eq!(
        invalid(|i| i.haproxy.hosts[0].address = [192, 168, 1, 1].into()),
        ["haproxy.hosts.0.address"]
    );
    assert_eq!(
        invalid(|i| i.network.service_subnet = "10.244.0.0/20".parse().expect("cidr")),
        ["network.pod_subnet"]
    );
    assert_eq!(
        invalid(|i| i.traefik.workload = TraefikWorkload::Deployment { replicas: 0 }),
        ["traefik.workload"]
    );
    assert_eq!(
        invalid(|i| {
            if let Some(b) = i.etcd_backup.as_mut() {
                b.keep = 0;
                b.schedule = "@daily".into();
            }
        }),
        ["etcd_backup.keep", "etcd_backup.schedule"]
    );
    assert_eq!(
        invalid(|i| i.environments[1].namespace = "prod".into()),
        ["environments.1.namespace"]
    );
}

fn edited(path: &str, from: &str, to: &str) -> (AddonsInput, Vec<ClusterFile>) {
    let input = example_input();
    let Rendered {
        mut cluster_files, ..
    } = render(&input).expect("renders");
    let f = cluster_files
        .iter_mut()
        .find(|f| f.path == path)
        .expect("file");
    assert!(f.contents.contains(from), "{path} contains {from:?}");
    f.contents = f.contents.replacen(from, to, 1);
    (input, cluster_files)
}

#[test]
fn cross_check_accepts_the_rendered_tree() {
    let input = example_input();
    let out = render(&input).expect("renders");
    assert!(cross_check(&input, &out.cluster_files).is_empty());
}

#[test]
fn cross_check_catches_hand_edits_that_cause_outages() {
    let cases = [
        (
            "calico/installation.yaml",
            "cidr: 10.244.0.0/16",
            "cidr: 192.168.0.0/16",
            "calico-pool-in-pod-subnet",
        ),
        (
            "traefik/values.yaml",
            "nodePort: 30443",
            "nodePort: 31443",
            "traefik-nodeports-match-haproxy",
        ),
        (
            "traefik/values.yaml",
            "type: NodePort",
            "type: LoadBalancer",
            "traefik-nodeports-match-haproxy",
        ),
        (
            "traefik/values.yaml",
            "- \"10.10.0.12\"",
            "- \"0.0.0.0/0\"",
            "traefik-trusted-ips-are-haproxy",
        ),
        (
            "traefik/values.yaml",
            "externalTrafficPolicy: Local",
            "externalTrafficPolicy: Cluster",
            "traefik-trusted-ips-are-haproxy",
        ),
        (
            "monitoring/prometheus-values.yaml",
            "storageClass: local-path",
            "storageClass: nfs-prod",
            "prometheus-not-on-nfs",
        ),
        (
            "logging/loki-values.yaml",
            "storageClass: local-path",
            "storageClass: nfs-nonprod",
            "loki-not-on-nfs",
        ),
    ];
    for (path, from, to, check) in cases {
        let (input, files) = edited(path, from, to);
        let found = fields(&cross_check(&input, &files));
        assert_eq!(found, [check], "{path}: {from} -> {to}");
    }
}

#[test]
fn without_proxy_protocol_no_proxy_trust_is_rendered() {
    let mut input = example_input();
    input.haproxy.send_proxy = false;
    let out = render(&input).expect("renders");
    let v = &out
        .cluster_files
        .iter()
        .find(|f| f.path == "traefik/values.yaml")
        .expect("file")
        .contents;
    assert!(!v.contains("proxyProtocol"), "{v}");
    assert!(v.contains("forwardedHeaders"), "{v}");
    // Re-adding PROXY trust for the wrong addresses by hand is caught.
    let mut files = out.cluster_files.clone();
    let f = files
        .iter_mut()
        .find(|f| f.path == "traefik/values.yaml")
        .expect("file");
    f.contents = f.contents.replacen(
        "    port: 8000\n",
        "    port: 8000\n    proxyProtocol:\n      trustedIPs:\n      - 10.0.0.0/8\n",
        1,
    );
    assert_eq!(
        fields(&cross_check(&input, &files)),
        ["traefik-trusted-ips-are-haproxy"]
    );
}
