//! The generic model on its own: a user-described balancer and VRRP instance, with the
//! model's own checks, rendered and accepted by the real daemons.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use hakube_haproxy_config::haproxy::{
    Balance, Bind, Defaults, Global, HaproxyConfig, HttpCheck, HttpRequestRule, Mode, Proxy,
    ProxyKind, ProxyOption, Server, ServerOptions, Stats, TimeoutKind,
};
use hakube_haproxy_config::keepalived::{
    GlobalDefs, KeepalivedConfig, NotifyEvent, ScriptCommand, VirtualAddress, VrrpInstance,
    VrrpScript, VrrpState, VrrpVersion,
};
use hakube_haproxy_config::{AbsPath, Directive, Interface, Name, Port, Token, UriPath};
use support::{have, ip};

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn port(p: u16) -> Port {
    Port::new(p).unwrap()
}

fn web_backend() -> Proxy {
    Proxy::backend("web")
        .mode(Mode::Http)
        .balance(Balance::RoundRobin)
        .http_check(HttpCheck {
            method: name("GET"),
            uri: UriPath::new("/health").unwrap(),
            expect_status: 200,
        })
        .server(Server {
            name: name("web1"),
            addr: ip("192.0.2.10"),
            port: port(8080),
            options: ServerOptions {
                check: true,
                inter: Some(Duration::from_millis(1500)),
                ..ServerOptions::default()
            },
        })
        .server(Server {
            name: name("web2"),
            addr: ip("2001:db8::10"),
            port: port(8080),
            options: ServerOptions {
                check: true,
                weight: Some(50),
                ..ServerOptions::default()
            },
        })
        .build()
        .unwrap()
}

#[test]
fn a_user_described_http_balancer_passes_haproxy_check() {
    let cfg = HaproxyConfig::builder()
        .global(Global {
            maxconn: Some(1000),
            extra: vec![Directive::new("tune.bufsize", ["32768"]).unwrap()],
            ..Global::default()
        })
        .defaults(Defaults {
            mode: Some(Mode::Http),
            options: vec![
                ProxyOption::Httplog,
                ProxyOption::Forwardfor { except: None },
            ],
            timeouts: vec![
                (TimeoutKind::Connect, Duration::from_secs(5)),
                (TimeoutKind::Client, Duration::from_secs(30)),
                (TimeoutKind::Server, Duration::from_secs(30)),
            ],
            ..Defaults::default()
        })
        .proxy(
            Proxy::frontend("www")
                .bind(Bind::any(port(8081)))
                .http_request(HttpRequestRule::SetHeader {
                    name: name("X-Served-By"),
                    value: Token::new("lb").unwrap(),
                })
                .default_backend(name("web"))
                .build()
                .unwrap(),
        )
        .proxy(web_backend())
        .proxy(
            Proxy::listen("admin")
                .bind(Bind::ip(ip("127.0.0.1"), port(9000)))
                .stats(Stats {
                    uri: UriPath::new("/").unwrap(),
                    refresh: None,
                })
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let text = cfg.to_string();
    assert!(
        text.contains("server web2 [2001:db8::10]:8080 check weight 50"),
        "{text}"
    );
    assert!(cfg.proxy(ProxyKind::Backend, "web").is_some());
    if have(
        "haproxy",
        "a_user_described_http_balancer_passes_haproxy_check",
    ) {
        support::haproxy_check(&text, "user-described balancer");
    }
}

#[test]
fn haproxy_model_refuses_what_does_not_fit() {
    let e = Proxy::frontend("f").build().unwrap_err();
    assert_eq!(e.field(), "frontend f.binds");
    let e = Proxy::frontend("f")
        .bind(Bind::any(port(80)))
        .server(web_backend().servers()[0].clone())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("cannot have servers"), "{e}");
    let e = Proxy::backend("b")
        .bind(Bind::any(port(80)))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("cannot have `bind`"), "{e}");
    let e = Proxy::backend("b\nfrontend x").build().unwrap_err();
    assert_eq!(e.field(), "backend name");
    let dup = web_backend();
    let e = HaproxyConfig::builder()
        .proxy(dup.clone())
        .proxy(dup)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "proxies");
    let f = Proxy::frontend("f")
        .bind(Bind::any(port(80)))
        .default_backend(name("nope"))
        .build()
        .unwrap();
    let e = HaproxyConfig::builder().proxy(f).build().unwrap_err();
    assert_eq!(e.field(), "frontend f.default_backend");
    let tcp_stats = Proxy::listen("s")
        .mode(Mode::Tcp)
        .bind(Bind::any(port(9000)))
        .stats(Stats {
            uri: UriPath::new("/").unwrap(),
            refresh: None,
        })
        .build()
        .unwrap();
    let e = HaproxyConfig::builder()
        .proxy(tcp_stats)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("mode http"), "{e}");
    let e = Proxy::backend("b")
        .timeout(TimeoutKind::Server, Duration::ZERO)
        .server(web_backend().servers()[0].clone())
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "backend b.timeout server");
    let e = HaproxyConfig::builder()
        .comment("two\nlines")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "comment[0]");
}

fn script() -> VrrpScript {
    VrrpScript {
        name: name("chk"),
        script: ScriptCommand::new(AbsPath::new("/etc/keepalived/check_haproxy.sh").unwrap()),
        interval: Duration::from_secs(2),
        timeout: None,
        fall: Some(3),
        rise: Some(1),
        weight: Some(-20),
        user: None,
    }
}

fn instance() -> hakube_haproxy_config::keepalived::VrrpInstanceBuilder {
    VrrpInstance::builder("VI_1")
        .interface(Interface::new("eth0").unwrap())
        .virtual_router_id(77)
        .priority(100)
        .unicast_src_ip(ip("10.1.0.2"))
        .unicast_peer(ip("10.1.0.3"))
        .virtual_address(VirtualAddress {
            addr: "10.1.0.100/24".parse().unwrap(),
            dev: None,
        })
}

#[test]
fn a_user_described_vrrp_instance_renders() {
    let conf = KeepalivedConfig::builder()
        .global_defs(GlobalDefs {
            enable_script_security: true,
            script_user: Some(name("keepalived_script")),
            vrrp_version: Some(VrrpVersion::V2),
            ..GlobalDefs::default()
        })
        .script(script())
        .instance(
            instance()
                .state(VrrpState::Master)
                .preempt_delay(Duration::from_secs(30))
                .track_script(name("chk"))
                .notify(
                    NotifyEvent::Master,
                    ScriptCommand {
                        path: AbsPath::new("/usr/local/bin/notify").unwrap(),
                        args: vec![Token::new("master").unwrap()],
                    },
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let text = conf.to_string();
    assert!(text.contains("    weight -20\n"), "{text}");
    assert!(text.contains("    state MASTER\n"), "{text}");
    assert!(text.contains("    preempt_delay 30\n"), "{text}");
    assert!(
        text.contains("    notify_master \"/usr/local/bin/notify master\"\n"),
        "{text}"
    );
}

#[test]
fn keepalived_model_refuses_what_does_not_fit() {
    let e = instance()
        .state(VrrpState::Master)
        .nopreempt(true)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "vrrp_instance VI_1.nopreempt");
    let e = instance().priority(255).build().unwrap_err();
    assert_eq!(e.field(), "vrrp_instance VI_1.priority");
    let e = instance().virtual_router_id(0).build().unwrap_err();
    assert_eq!(e.field(), "vrrp_instance VI_1.virtual_router_id");
    let e = instance().unicast_peer(ip("10.1.0.2")).build().unwrap_err();
    assert!(e.to_string().contains("own unicast_src_ip"), "{e}");
    let e = instance().unicast_peer(ip("fd00::1")).build().unwrap_err();
    assert!(e.to_string().contains("address family"), "{e}");
    let e = VrrpInstance::builder("VI_1")
        .interface(Interface::new("eth0").unwrap())
        .virtual_router_id(1)
        .priority(1)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "vrrp_instance VI_1.virtual_ipaddress");
    // A script without enable_script_security.
    let e = KeepalivedConfig::builder()
        .script(script())
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "global_defs.enable_script_security");
    let secure = GlobalDefs {
        enable_script_security: true,
        ..GlobalDefs::default()
    };
    // keepalived takes whole seconds for script intervals.
    let mut half = script();
    half.interval = Duration::from_millis(500);
    let e = KeepalivedConfig::builder()
        .global_defs(secure.clone())
        .script(half)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "vrrp_script chk.interval");
    // Tracking a script that does not exist.
    let e = KeepalivedConfig::builder()
        .global_defs(secure.clone())
        .instance(instance().track_script(name("nope")).build().unwrap())
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "vrrp_instance VI_1.track_script");
    // Sub-second adverts need VRRPv3.
    let e = KeepalivedConfig::builder()
        .global_defs(secure)
        .instance(
            instance()
                .advert_interval(Duration::from_millis(300))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "vrrp_instance VI_1.advert_int");
}
