//! Vault's rendered configs parsed by a real HCL parser (hcl-rs): per-VM files and the
//! in-cluster raft config, with the structure Vault expects (raft storage with a retry_join
//! for every peer, api_addr/cluster_addr on the node's own address, a TLS listener).

mod fixture;
use fixture::example_input;
use std::collections::BTreeMap;

use hakube_addons::{VaultPlacement, render, vault};
use hcl::{Body, Expression};

fn attrs(body: &Body) -> BTreeMap<String, String> {
    body.attributes()
        .map(|a| {
            let v = match a.expr() {
                Expression::String(s) => s.clone(),
                Expression::Bool(b) => b.to_string(),
                other => format!("{other:?}"),
            };
            (a.key().to_owned(), v)
        })
        .collect()
}

fn block<'a>(body: &'a Body, id: &str, label: Option<&str>) -> Vec<&'a Body> {
    body.blocks()
        .filter(|b| b.identifier() == id && b.labels().first().map(|l| l.as_str()) == label)
        .map(|b| b.body())
        .collect()
}

#[test]
fn vm_configs_parse_and_join_every_peer() {
    let input = example_input();
    let out = render(&input).expect("renders");
    let Some(VaultPlacement::Vms(nodes)) = input.vault.as_ref().map(|v| &v.placement) else {
        panic!("example places Vault on VMs");
    };
    assert!(
        !out.cluster_files.iter().any(|f| f.path.ends_with(".hcl")),
        "VM configs are host files, never in the GitOps tree"
    );
    for me in nodes {
        let contents = vault::vm_config(&input, nodes, me).expect("config");
        let body = hcl::parse(&contents).unwrap_or_else(|e| panic!("{}: {e}", me.name));
        let top = attrs(&body);
        assert_eq!(top["api_addr"], format!("https://{}:8200", me.address));
        assert_eq!(top["cluster_addr"], format!("https://{}:8201", me.address));

        let listener = block(&body, "listener", Some("tcp"));
        assert_eq!(listener.len(), 1);
        let l = attrs(listener[0]);
        assert_eq!(l["tls_cert_file"], "/opt/openbao/tls/tls.crt");
        assert!(!l.contains_key("tls_disable"), "TLS stays on");

        let raft = block(&body, "storage", Some("raft"));
        assert_eq!(raft.len(), 1);
        let r = attrs(raft[0]);
        assert_eq!(r["node_id"], me.name);
        assert_eq!(r["path"], vault::VM_DATA_DIR);
        let mut joins: Vec<String> = block(raft[0], "retry_join", None)
            .into_iter()
            .map(|j| attrs(j)["leader_api_addr"].clone())
            .collect();
        joins.sort();
        let mut peers: Vec<String> = nodes
            .iter()
            .filter(|n| n.name != me.name)
            .map(|n| format!("https://{}:8200", n.address))
            .collect();
        peers.sort();
        assert_eq!(joins, peers, "{}", me.name);
    }
}

#[test]
fn in_cluster_raft_config_parses() {
    let mut input = example_input();
    if let Some(v) = input.vault.as_mut() {
        v.placement = VaultPlacement::InCluster {
            storage_class: "local-path".into(),
        };
    }
    let out = render(&input).expect("renders");
    let values = &out
        .cluster_files
        .iter()
        .find(|f| f.path == vault::VALUES_FILE)
        .expect("values")
        .contents;
    let v: serde_json::Value = serde_saphyr::from_str(values).expect("YAML");
    let config = v["server"]["ha"]["raft"]["config"]
        .as_str()
        .expect("raft config");
    let body = hcl::parse(config).expect("HCL");
    let raft = block(&body, "storage", Some("raft"));
    assert_eq!(block(raft[0], "retry_join", None).len(), 3);
    assert_eq!(
        block(&body, "service_registration", Some("kubernetes")).len(),
        1
    );
    assert_eq!(v["server"]["ha"]["replicas"], 3);
}

#[test]
fn the_policy_parses_and_grants_only_signing() {
    let input = example_input();
    let v = input.vault.as_ref().expect("vault");
    let body = hcl::parse(&vault::cert_manager_policy(v)).expect("HCL");
    let paths: Vec<String> = body
        .blocks()
        .map(|b| {
            b.labels()
                .first()
                .map(|l| l.as_str().to_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(paths, ["pki_int/sign/hakube", "pki_int/issue/hakube"]);
}
