//! Rendering: snapshots of every file, determinism, and the example input's shape.

mod fixture;
use fixture::example_input;
use hakube_addons::{Rendered, render};

fn rendered() -> Rendered {
    render(&example_input()).expect("example input renders")
}

#[test]
fn every_cluster_file_matches_its_snapshot() {
    let out = rendered();
    assert!(out.cluster_files.len() > 10);
    for f in &out.cluster_files {
        insta::assert_snapshot!(
            format!("cluster__{}", f.path.replace('/', "__")),
            f.contents
        );
    }
}

#[test]
fn every_vault_vm_config_matches_its_snapshot() {
    // The Vault VMs' host plans (package, TLS, unit, timer) are hakube-vault's and
    // hakube-plan's; the server config they carry is this crate's vm_config.
    let input = example_input();
    let Some(hakube_addons::VaultPlacement::Vms(nodes)) =
        input.vault.as_ref().map(|v| &v.placement)
    else {
        panic!("example places Vault on VMs");
    };
    assert_eq!(nodes.len(), 3);
    for me in nodes {
        let cfg = hakube_addons::vault::vm_config(&input, nodes, me).expect("config");
        insta::assert_snapshot!(format!("host__{}", me.name), cfg);
    }
}

#[test]
fn install_steps_match_snapshot() {
    let out = rendered();
    let text: String = out
        .steps
        .iter()
        .map(|s| {
            let cmds: Vec<String> = s.commands("cluster").iter().map(|c| c.join(" ")).collect();
            format!("[{}] {}\n", s.component().dir(), cmds.join("\n    "))
        })
        .collect();
    insta::assert_snapshot!("install_steps", text);
}

#[test]
fn rendering_twice_is_byte_identical() {
    let a = rendered();
    let b = rendered();
    assert_eq!(a, b);
    let paths: Vec<&str> = a.cluster_files.iter().map(|f| f.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        paths, sorted,
        "files are sorted by path, without duplicates"
    );
}

#[test]
fn install_steps_follow_the_bootstrap_order() {
    let out = rendered();
    let order: Vec<hakube_addons::Component> = out.steps.iter().map(|s| s.component()).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(
        order, sorted,
        "Calico, Traefik, monitoring, logging, Vault, cert-manager, etcd backup, apps"
    );
    assert_eq!(order.first(), Some(&hakube_addons::Component::Calico));
}

/// The other choices: Vault in-cluster, Promtail, Traefik as a Deployment on one group,
/// kubelet-csr-approver, no serverTLSBootstrap, VXLAN always, no default certificate.
#[test]
fn alternative_choices_match_their_snapshots() {
    use hakube_addons::{
        Encapsulation, KubeletCsrApproval, LogAgent, TraefikWorkload, VaultPlacement,
    };
    let mut input = example_input();
    input.calico.encapsulation = Encapsulation::Vxlan;
    input.traefik.workload = TraefikWorkload::Deployment { replicas: 2 };
    input.traefik.worker_groups = vec!["edge".into()];
    input.traefik.default_certificate_secret = None;
    if let Some(m) = input.monitoring.as_mut() {
        m.csr_approval = KubeletCsrApproval::Approver {
            chart_version: "1.2.3".into(),
        };
    }
    if let Some(l) = input.logging.as_mut() {
        l.agent = LogAgent::Promtail;
    }
    if let Some(v) = input.vault.as_mut() {
        v.placement = VaultPlacement::InCluster {
            storage_class: "local-path".into(),
        };
    }
    let out = render(&input).expect("renders");
    assert!(
        !out.cluster_files
            .iter()
            .any(|f| f.path == "cert-manager/default-certificate.yaml")
    );
    for p in [
        "calico/installation.yaml",
        "traefik/values.yaml",
        "monitoring/kubelet-csr-approver-values.yaml",
        "monitoring/kustomization.yaml",
        "logging/agent-values.yaml",
        "vault/values.yaml",
        "vault/kustomization.yaml",
        "cert-manager/vault-issuer.yaml",
    ] {
        let f = out
            .cluster_files
            .iter()
            .find(|f| f.path == p)
            .unwrap_or_else(|| panic!("{p} rendered"));
        insta::assert_snapshot!(format!("alt__{}", p.replace('/', "__")), f.contents);
    }

    let mut insecure = example_input();
    insecure.network.kubelet_server_tls_bootstrap = false;
    let out = render(&insecure).expect("renders");
    let ms = &out
        .cluster_files
        .iter()
        .find(|f| f.path == "monitoring/metrics-server-values.yaml")
        .expect("file")
        .contents;
    assert!(ms.contains("--kubelet-insecure-tls"), "{ms}");
    assert!(
        !out.steps.iter().any(
            |s| matches!(s, hakube_addons::InstallStep::Helm(h) if h.release == "kubelet-csr-approver")
        ),
        "no approver without kubelet serving certificates"
    );
}

#[test]
fn install_steps_serialize_for_the_plan() {
    let out = rendered();
    let json = serde_json::to_value(&out.steps).expect("serializes");
    assert_eq!(json[0]["step"], "helm");
    assert_eq!(json[0]["component"], "calico");
    assert_eq!(json[0]["chart"]["version"], "v3.32.1");
    let last = &json[json.as_array().expect("array").len() - 1];
    assert_eq!(last["step"], "apply-kustomize");
    assert_eq!(last["dir"], "apps/overlays/nonprod");
}

#[test]
fn kubelet_serving_certificates_are_approved_without_monitoring_too() {
    let mut input = example_input();
    input.monitoring = None;
    let out = render(&input).expect("renders");
    let approver = out
        .steps
        .iter()
        .find_map(|s| match s {
            hakube_addons::InstallStep::Helm(h) if h.release == "kubelet-csr-approver" => Some(h),
            _ => None,
        })
        .expect("an approver without monitoring");
    assert_eq!(
        approver.chart.version,
        hakube_addons::versions::KUBELET_CSR_APPROVER_VERSION
    );
    assert!(
        out.cluster_files
            .iter()
            .any(|f| f.path == approver.values_file)
    );
}
