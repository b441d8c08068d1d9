//! Invariants over generated inputs: the outage checks agree with the rendered output.

mod fixture;
use fixture::example_input;
use std::net::Ipv4Addr;

use hakube_addons::{Error, Host, cross_check, render, validate};
use ipnet::Ipv4Net;
use proptest::prelude::*;

fn fields(errors: &[Error]) -> Vec<String> {
    errors
        .iter()
        .filter_map(|e| match e {
            Error::InvalidInput { field, .. } => Some(field.clone()),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The pool is accepted exactly when it lies inside the pod subnet, and then the rendered
    /// Installation carries it and passes the cross-check.
    #[test]
    fn calico_pool_accepted_iff_inside_pod_subnet(a in prop_oneof![Just(244u8), 0u8..=255], b in 0u8..=255, len in 8u8..=26) {
        let pool = Ipv4Net::new(Ipv4Addr::new(10, a, b, 0), len).expect("prefix").trunc();
        let mut input = example_input();
        input.calico.pool_cidr = Some(pool);
        let inside = input.network.pod_subnet.contains(&pool);
        let flagged = fields(&validate(&input)).contains(&"calico.pool_cidr".to_owned());
        prop_assert_eq!(flagged, !inside);
        if inside && validate(&input).is_empty() {
            let out = render(&input).expect("valid input renders");
            prop_assert!(cross_check(&input, &out.cluster_files).is_empty());
            let inst = &out.cluster_files.iter().find(|f| f.path == "calico/installation.yaml").expect("file").contents;
            let needle = format!("cidr: {pool}");
            prop_assert!(inst.contains(&needle));
        }
    }

    /// Whatever the HAProxy tier looks like, Traefik's NodePorts are its backend ports and
    /// Traefik trusts exactly its addresses.
    #[test]
    fn traefik_follows_haproxy(web in 30000u16..=32767, secure in 30000u16..=32767, n in 1usize..=4, first in 100u8..=200) {
        prop_assume!(web != secure);
        let mut input = example_input();
        input.haproxy.http_backend_port = web;
        input.haproxy.https_backend_port = secure;
        input.traefik.web_node_port = web;
        input.traefik.websecure_node_port = secure;
        input.haproxy.hosts = (0..n)
            .map(|i| Host::new(format!("lb-{i}"), Ipv4Addr::new(10, 10, 0, first + u8::try_from(i).expect("small"))))
            .collect();
        prop_assert!(validate(&input).is_empty(), "{:?}", validate(&input));
        let out = render(&input).expect("renders");
        prop_assert!(cross_check(&input, &out.cluster_files).is_empty());
        let v = &out.cluster_files.iter().find(|f| f.path == "traefik/values.yaml").expect("file").contents;
        let web_port = format!("nodePort: {web}");
        let secure_port = format!("nodePort: {secure}");
        prop_assert!(v.contains(&web_port));
        prop_assert!(v.contains(&secure_port));
        // 2 entry points x (proxyProtocol + forwardedHeaders) list every HAProxy address.
        for h in &input.haproxy.hosts {
            let quoted = format!("- \"{}\"", h.address);
            prop_assert_eq!(v.matches(&quoted).count(), 4);
        }
        // Any mismatch between the two sides is refused.
        let mut off = input.clone();
        off.traefik.web_node_port = if web == 32767 { 30000 } else { web + 1 };
        prop_assume!(off.traefik.web_node_port != secure);
        prop_assert!(fields(&validate(&off)).contains(&"traefik.web_node_port".to_owned()));
    }
}
