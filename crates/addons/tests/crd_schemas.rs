//! Custom resources we render, validated against reduced CRD schemas (tests/schemas, written
//! by hand from the projects' API references; see the README there).

mod common;

mod fixture;
use common::schema::check;
use fixture::example_input;
use hakube_addons::render;
use serde_json::{Value, json};

fn schema(file: &str) -> Value {
    let path = format!("{}/tests/schemas/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("schema file exists");
    serde_saphyr::from_str(&text).expect("schema is YAML")
}

fn schema_for(api_version: &str, kind: &str) -> Option<Value> {
    let file = match (api_version, kind) {
        ("operator.tigera.io/v1", "Installation") => "installation.operator.tigera.io-v1.yaml",
        ("operator.tigera.io/v1", "APIServer") => "apiserver.operator.tigera.io-v1.yaml",
        ("traefik.io/v1alpha1", "IngressRoute") => "ingressroute.traefik.io-v1alpha1.yaml",
        ("cert-manager.io/v1", "ClusterIssuer") => "clusterissuer.cert-manager.io-v1.yaml",
        ("cert-manager.io/v1", "Certificate") => "certificate.cert-manager.io-v1.yaml",
        _ => return None,
    };
    Some(schema(file))
}

fn custom_resources(input: &hakube_addons::AddonsInput) -> Vec<(String, Value)> {
    let out = render(input).expect("renders");
    let mut crs = Vec::new();
    for f in out
        .cluster_files
        .iter()
        .filter(|f| f.path.ends_with(".yaml"))
    {
        for d in serde_saphyr::from_multiple::<Value>(&f.contents).expect("YAML") {
            let api = d["apiVersion"].as_str().unwrap_or_default();
            let builtin = !api.contains('.') || api.contains(".k8s.io/");
            if !d["kind"].is_null() && !builtin && !api.starts_with("kustomize.config") {
                crs.push((f.path.clone(), d));
            }
        }
    }
    crs
}

#[test]
fn every_rendered_custom_resource_matches_its_crd_schema() {
    let crs = custom_resources(&example_input());
    let mut kinds: Vec<String> = crs
        .iter()
        .map(|(_, d)| d["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "APIServer",
            "Certificate",
            "ClusterIssuer",
            "IngressRoute",
            "Installation"
        ]
    );
    for (path, d) in &crs {
        let api = d["apiVersion"].as_str().unwrap_or_default();
        let kind = d["kind"].as_str().unwrap_or_default();
        let s =
            schema_for(api, kind).unwrap_or_else(|| panic!("{path}: no schema for {api} {kind}"));
        let errors = check(&s, d);
        assert!(errors.is_empty(), "{path} {kind}: {errors:#?}");
    }
}

#[test]
fn every_encapsulation_choice_is_a_valid_installation() {
    use hakube_addons::Encapsulation;
    let s = schema("installation.operator.tigera.io-v1.yaml");
    for enc in [
        Encapsulation::VxlanCrossSubnet,
        Encapsulation::None,
        Encapsulation::Vxlan,
    ] {
        let mut input = example_input();
        input.calico.encapsulation = enc;
        let inst = hakube_addons::calico::installation(&input);
        assert_eq!(check(&s, &inst), Vec::<String>::new(), "{enc:?}");
    }
}

#[test]
fn the_checker_rejects_what_the_api_server_would() {
    let s = schema("installation.operator.tigera.io-v1.yaml");
    let mut bad = hakube_addons::calico::installation(&example_input());
    bad["spec"]["calicoNetwork"]["ipPools"][0]["encapsulation"] = json!("VXLANCrosssubnet");
    bad["spec"]["calicoNetwork"]["ipPools"][0]["blockSize"] = json!("26");
    bad["spec"]["calicoNetwork"]["nodeAddressAutodetection"] = json!({ "cidrs": [] });
    bad["spec"]["calicoNetwork"]["ipPools"][0]
        .as_object_mut()
        .expect("pool")
        .remove("cidr");
    let errors = check(&s, &bad);
    let joined = errors.join("\n");
    assert!(
        joined.contains("ipPools[0].encapsulation: \"VXLANCrosssubnet\" is not one of"),
        "{joined}"
    );
    assert!(
        joined.contains("ipPools[0].blockSize: expected integer, got string"),
        "{joined}"
    );
    assert!(
        joined.contains("unknown field `nodeAddressAutodetection`"),
        "{joined}"
    );
    assert!(joined.contains("missing required field `cidr`"), "{joined}");

    let issuer = schema("clusterissuer.cert-manager.io-v1.yaml");
    // YAML aliases in the schema files resolve (an unresolved alias would check nothing).
    let vault = &issuer["properties"]["spec"]["properties"]["vault"]["properties"];
    assert_eq!(
        vault["auth"]["properties"]["tokenSecretRef"]["required"],
        json!(["name"])
    );
    let pools = &s["properties"]["spec"]["properties"]["calicoNetwork"]["properties"];
    assert_eq!(
        pools["nodeAddressAutodetectionV6"],
        pools["nodeAddressAutodetectionV4"]
    );
    let v = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": { "name": "x" },
        "spec": { "vault": { "server": "https://v:8200", "path": "pki_int/sign/r",
            "auth": { "kubernetes": { "role": "r", "serviceAccountRef": {} } } } },
    });
    let joined = check(&issuer, &v).join("\n");
    assert!(
        joined.contains("serviceAccountRef: missing required field `name`"),
        "{joined}"
    );

    let route = schema("ingressroute.traefik.io-v1alpha1.yaml");
    let mut r = hakube_addons::traefik::example_ingress_route("a", "a.example.org", "svc", 80);
    r["spec"]["routes"][0]["services"][0]["port"] = json!(true);
    let joined = check(&route, &r).join("\n");
    assert!(
        joined.contains("services[0].port: expected integer or string"),
        "{joined}"
    );
}
