//! Every rendered config passes the real daemons' own checks: `haproxy -c -f` and
//! `keepalived -t` inside a network namespace that has the named interface.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{IpAddr, Ipv4Addr};

use hakube_haproxy_config::{HaInput, IngressTls, LbNode, LbNodeFiles, Member};
use proptest::prelude::*;
use support::{haproxy_check, have, netns, seed_input, self_signed_pem};

fn check_all_haproxy(nodes: &[LbNodeFiles], what: &str) {
    for n in nodes {
        haproxy_check(&n.haproxy_cfg.text(), &format!("{what} {}", n.node));
    }
}

#[test]
fn seed_configs_pass_haproxy_check() {
    if !have("haproxy", "seed_configs_pass_haproxy_check") {
        return;
    }
    check_all_haproxy(
        &seed_input(IngressTls::Passthrough).render().unwrap(),
        "passthrough",
    );
    // Terminate mode: the same input with the certificate at a path that exists here.
    let dir = tempfile::tempdir().unwrap();
    let pem = self_signed_pem(dir.path());
    let tls = IngressTls::Terminate {
        cert_path: pem.to_str().unwrap().to_owned(),
    };
    check_all_haproxy(&seed_input(tls).render().unwrap(), "terminate");
}

#[test]
fn haproxy_check_is_not_vacuous() {
    if !have("haproxy", "haproxy_check_is_not_vacuous") {
        return;
    }
    // A terminate-mode config whose certificate does not exist must be refused.
    let tls = IngressTls::Terminate {
        cert_path: "/nonexistent/hakube/ingress.pem".to_owned(),
    };
    let cfg = seed_input(tls)
        .render()
        .unwrap()
        .remove(0)
        .haproxy_cfg
        .text()
        .into_owned();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", support::output_text(&out));
}

#[test]
fn seed_configs_pass_keepalived_test() {
    if !have("keepalived", "seed_configs_pass_keepalived_test")
        || !support::require_root("seed_configs_pass_keepalived_test")
    {
        return;
    }
    let nodes = seed_input(IngressTls::Passthrough).render().unwrap();
    for n in &nodes {
        let out = netns::keepalived_test(n, "eth0");
        assert!(
            support::keepalived_test_ok(&out),
            "keepalived -t refused {}:\n{}\n--- config ---\n{}",
            n.node,
            support::output_text(&out),
            n.keepalived_conf.text()
        );
    }
}

#[test]
fn keepalived_test_is_not_vacuous() {
    if !have("keepalived", "keepalived_test_is_not_vacuous")
        || !support::require_root("keepalived_test_is_not_vacuous")
    {
        return;
    }
    // The config names eth0 but the namespace only has eth7: keepalived must complain.
    let nodes = seed_input(IngressTls::Passthrough).render().unwrap();
    let out = netns::keepalived_test(&nodes[0], "eth7");
    assert!(
        !support::keepalived_test_ok(&out),
        "{}",
        support::output_text(&out)
    );
}

fn arb_input() -> impl Strategy<Value = HaInput> {
    (
        1usize..=4,
        1usize..=5,
        0usize..=6,
        1u8..=255,
        prop_oneof![Just(None), Just(Some(false)), Just(Some(true))],
        30000u16..=32767,
        prop::bool::ANY,
        "[a-z][a-z0-9-]{0,8}",
        prop::sample::select(vec!["eth0", "ens18", "vmbr0.20"]),
        prop::sample::select(vec![1000u64, 500, 2000]),
    )
        .prop_map(
            |(lbs, cps, workers, vrid, ingress, port, stats_mgmt, prefix, iface, advert)| {
                let net =
                    |host: usize| IpAddr::V4(Ipv4Addr::new(10, 20, 0, u8::try_from(host).unwrap()));
                let mut input = HaInput::new(net(10), vrid);
                input.lb_subnet = Some("10.20.0.0/24".parse().unwrap());
                input.advert_interval = std::time::Duration::from_millis(advert);
                for i in 0..lbs {
                    input.lb_nodes.push(LbNode {
                        name: format!("{prefix}-lb{i}"),
                        address: net(11 + i),
                        interface: iface.to_owned(),
                        priority: None,
                        stats_address: stats_mgmt.then(|| net(11 + i)),
                    });
                }
                for i in 0..cps {
                    input.control_plane.push(Member {
                        name: format!("{prefix}-cp{i}"),
                        address: net(21 + i),
                    });
                }
                for i in 0..workers {
                    input.workers.push(Member {
                        name: format!("{prefix}.w{i}"),
                        address: net(31 + i),
                    });
                }
                if let (Some(terminate), true) = (ingress, workers > 0) {
                    let tls = if terminate {
                        IngressTls::Terminate {
                            cert_path: "CERT".to_owned(),
                        }
                    } else {
                        IngressTls::Passthrough
                    };
                    input = input.ingress(port, port + 1, tls);
                }
                input
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn generated_configs_pass_real_checks(input in arb_input()) {
        if !have("haproxy", "generated_configs_pass_real_checks") {
            return Ok(());
        }
        let dir = tempfile::tempdir().unwrap();
        let mut input = input;
        if let Some(ing) = &mut input.ingress
            && let IngressTls::Terminate { cert_path } = &mut ing.tls
        {
            *cert_path = self_signed_pem(dir.path()).to_str().unwrap().to_owned();
        }
        let nodes = input.render().unwrap();
        prop_assert_eq!(nodes.len(), input.lb_nodes.len());
        check_all_haproxy(&nodes, "generated");
        if support::is_root() && have("keepalived", "generated_configs_pass_real_checks") {
            let n = &nodes[nodes.len() - 1];
            let out = netns::keepalived_test(n, &input.lb_nodes[0].interface);
            prop_assert!(
                support::keepalived_test_ok(&out),
                "keepalived -t refused {}:\n{}\n{}",
                n.node,
                support::output_text(&out),
                n.keepalived_conf.text()
            );
        }
    }
}
