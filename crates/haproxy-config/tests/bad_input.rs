//! Bad input to the reference design gets a clear error naming the field, and nothing is
//! rendered.
#![allow(clippy::unwrap_used)]

mod support;

use hakube_haproxy_config::haproxy::{Mode, Proxy};
use hakube_haproxy_config::{Error, HaInput, IngressTls};
use support::{ip, seed_input};

fn err(input: &HaInput) -> Error {
    input.render().expect_err("input should be refused")
}

#[track_caller]
fn assert_field(e: &Error, field: &str, needle: &str) {
    assert_eq!(e.field(), field, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    assert!(!msg.contains('\n'), "message spans lines: {msg:?}");
}

fn seed() -> HaInput {
    seed_input(IngressTls::Passthrough)
}

#[test]
fn invalid_vip() {
    let mut i = seed();
    i.vip = ip("127.0.0.1");
    assert_field(&err(&i), "vip", "unicast");
    i.vip = ip("0.0.0.0");
    assert_field(&err(&i), "vip", "unicast");
    i.vip = ip("10.0.0.11");
    assert_field(&err(&i), "vip", "also the address of LB node lb1");
    i.vip = ip("10.0.0.255");
    assert_field(&err(&i), "vip", "broadcast");
    i.vip = ip("10.0.0.21");
    assert_field(&err(&i), "control_plane[0].address", "is the VIP");
}

#[test]
fn vip_outside_lb_subnet() {
    let mut i = seed();
    i.vip = ip("10.9.0.10");
    assert_field(&err(&i), "vip", "not inside lb_subnet 10.0.0.0/24");
    let mut i = seed();
    i.lb_nodes[2].address = ip("10.1.0.13");
    assert_field(&err(&i), "lb_nodes[2].address", "not inside lb_subnet");
}

#[test]
fn duplicate_priorities() {
    let mut i = seed();
    i.lb_nodes[0].priority = Some(200);
    i.lb_nodes[2].priority = Some(200);
    assert_field(&err(&i), "lb_nodes[2].priority", "200");
    // An explicit priority that collides with a default one is caught too.
    let mut i = seed();
    i.lb_nodes[2].priority = Some(250);
    assert_field(&err(&i), "lb_nodes[2].priority", "250");
    let mut i = seed();
    i.lb_nodes[0].priority = Some(255);
    assert_field(&err(&i), "lb_nodes[0].priority", "1 to 254");
}

#[test]
fn duplicate_names_and_addresses() {
    let mut i = seed();
    i.lb_nodes[1].name = "lb1".into();
    assert_field(&err(&i), "lb_nodes[1].name", "duplicate");
    let mut i = seed();
    i.lb_nodes[1].address = i.lb_nodes[0].address;
    assert_field(&err(&i), "lb_nodes[1].address", "duplicate");
    let mut i = seed();
    i.workers[3].name = "w1".into();
    assert_field(&err(&i), "workers[3].name", "duplicate");
}

#[test]
fn empty_backends() {
    let mut i = seed();
    i.control_plane.clear();
    assert_field(&err(&i), "control_plane", "at least one control-plane node");
    let mut i = seed();
    i.workers.clear();
    assert_field(&err(&i), "workers", "at least one worker");
    let mut i = seed();
    i.lb_nodes.clear();
    assert_field(&err(&i), "lb_nodes", "at least one LB node");
    // The model refuses an empty backend on its own, too.
    let e = Proxy::backend("api").mode(Mode::Tcp).build().unwrap_err();
    assert_field(&e, "backend api.servers", "at least one server");
}

#[test]
fn injection_attempts() {
    let mut i = seed();
    i.lb_nodes[0].name = "lb1\n    server evil 6.6.6.6:6443".into();
    assert_field(&err(&i), "lb_nodes[0].name", "\\n");
    let mut i = seed();
    i.control_plane[1].name = "cp2 # comment".into();
    assert_field(&err(&i), "control_plane[1].name", "whitespace");
    let mut i = seed();
    i.lb_nodes[0].interface = "eth0}\nvrrp_script x {".into();
    assert_field(&err(&i), "lb_nodes[0].interface", "interface");
    let mut i = seed();
    i.api_health_path = "/readyz\nhttp-check expect status 500".into();
    assert_field(&err(&i), "api_health_path", "line break");
    let mut i = seed();
    i.script_user = "root\"\n".into();
    assert_field(&err(&i), "script_user", "\\\"");
    let mut i = seed_input(IngressTls::Terminate {
        cert_path: "/etc/haproxy/a.pem\n    bind *:22".into(),
    });
    i.workers.truncate(1);
    assert_field(&err(&i), "ingress.tls.cert_path", "line break");
    let i = seed_input(IngressTls::Terminate {
        cert_path: "certs/a.pem".into(),
    });
    assert_field(&err(&i), "ingress.tls.cert_path", "absolute");
}

#[test]
fn ports_out_of_range() {
    let mut i = seed();
    i.api_port = 0;
    assert_field(&err(&i), "api_port", "1 to 65535");
    let mut i = seed();
    i.ingress.as_mut().unwrap().http_node_port = 0;
    assert_field(&err(&i), "ingress.http_node_port", "1 to 65535");
    let mut i = seed();
    i.ingress.as_mut().unwrap().https_node_port = 30080;
    assert_field(&err(&i), "ingress.https_node_port", "differ");
    let mut i = seed();
    i.api_port = 8404;
    assert_field(&err(&i), "api_port", "clashes");
}

#[test]
fn other_fields() {
    let mut i = seed();
    i.virtual_router_id = 0;
    assert_field(&err(&i), "virtual_router_id", "1 to 255");
    let mut i = seed();
    i.advert_interval = std::time::Duration::from_millis(1005);
    assert_field(&err(&i), "advert_interval", "10 ms");
    let mut i = seed();
    i.lb_nodes[1].stats_address = Some(ip("0.0.0.0"));
    assert_field(&err(&i), "lb_nodes[1].stats_address", "localhost");
    let mut i = seed();
    i.lb_nodes[1].stats_address = Some(i.vip);
    assert_field(&err(&i), "lb_nodes[1].stats_address", "VIP");
}

#[test]
fn reference_design_invariants() {
    let nodes = seed().render().unwrap();
    // One MASTER by priority: distinct priorities, the first node highest.
    let prios: Vec<u8> = nodes.iter().map(|n| n.priority).collect();
    assert_eq!(prios, [250, 130, 10]);
    for n in &nodes {
        let k = n.keepalived_conf.text();
        assert!(k.contains("state BACKUP") && k.contains("nopreempt"), "{k}");
        assert!(k.contains("enable_script_security") && k.contains("script_user"));
        // Unicast peers are the other nodes, never itself.
        let vi = &n.keepalived.instances()[0];
        assert_eq!(vi.unicast_peers().len(), 2);
        assert!(!vi.unicast_peers().contains(&n.address));
        // Stats and metrics on the node's own address, answering the cluster's nodes only.
        let h = n.haproxy_cfg.text();
        assert!(h.contains(&format!("bind {}:8404", n.address)), "{h}");
        assert!(!h.contains("bind *:8404") && !h.contains("bind 127.0.0.1:8404"));
        assert!(
            h.contains(
                "http-request deny unless { src 10.0.0.11 10.0.0.12 10.0.0.13 10.0.0.21 \
                 10.0.0.22 10.0.0.23 10.0.0.31 10.0.0.32 10.0.0.33 10.0.0.34 10.0.0.35 \
                 10.0.0.36 }\n    http-request use-service prometheus-exporter"
            ),
            "{h}"
        );
        // HAProxy's death reaches keepalived through the drop-in's track file.
        assert!(k.contains("track_file {\n        haproxy_down\n"), "{k}");
        assert!(n.haproxy_dropin.text().contains("ExecStopPost="));
        assert!(h.contains("check-ssl verify none"));
        assert!(h.contains("send-proxy-v2"));
        assert_eq!(n.check_script.mode, 0o755);
    }
    // A management address moves stats there.
    let mut i = seed();
    i.lb_nodes[0].stats_address = Some(ip("192.168.10.11"));
    let n = i.render().unwrap();
    assert!(n[0].haproxy_cfg.text().contains("bind 192.168.10.11:8404"));
    // Sub-second adverts switch to VRRPv3.
    let i = seed().advert_interval(std::time::Duration::from_millis(500));
    let k = i.render().unwrap()[0].keepalived_conf.text().into_owned();
    assert!(
        k.contains("vrrp_version 3") && k.contains("advert_int 0.5"),
        "{k}"
    );
}
