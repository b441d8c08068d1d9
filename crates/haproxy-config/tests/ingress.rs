//! Ingress through the rendered HAProxy, with real traffic on a lab: L4 passthrough must
//! deliver a PROXY v2 header carrying the client's address (plain HTTP and TLS untouched to
//! the worker), and L7 termination must terminate TLS with the configured certificate, drop a
//! client-supplied `X-Forwarded-For` and set `X-Forwarded-For/Proto/Port`.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hakube_haproxy_config::{HAPROXY_CFG_PATH, HaInput, IngressTls};
use hakube_lab::Lab;

const CERT: &str = "/etc/haproxy/certs/ingress.pem";

fn curl(args: &[&str]) -> String {
    // Retried for a few seconds: HAProxy may still be starting.
    let start = Instant::now();
    loop {
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "3"])
            .args(args)
            .output()
            .unwrap();
        if out.status.success() || start.elapsed() > Duration::from_secs(10) {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ingress_passthrough_and_termination() {
    let name = "ingress_passthrough_and_termination";
    if !hakube_lab::require_root(name)
        || !support::have("haproxy", name)
        || !support::have("curl", name)
        || !support::have("python3", name)
    {
        return;
    }
    let lab = Lab::builder("hapxin")
        .hosts(["lb1", "w1"])
        .without_sshd()
        .build()
        .expect("build the lab");
    let (lb, w) = (lab.host("lb1"), lab.host("w1"));
    let gateway = lab.gateway();

    // The worker: a stand-in Traefik on the NodePorts.
    let pem = support::self_signed_pem(lab.dir());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/ingress_worker.py");
    w.spawn(
        "traefik",
        &format!(
            "exec python3 {} {} 30080 30443 {}",
            script.display(),
            w.addr(),
            pem.display()
        ),
    )
    .unwrap();
    w.wait_for_port(30080, Duration::from_secs(10)).unwrap();

    let render = |tls: IngressTls| {
        HaInput::new(IpAddr::V4(lab.spare_addr(0).unwrap()), 51)
            .lb_node("lb1", IpAddr::V4(lb.addr()), "eth0")
            // No apiserver runs here: the API backend is simply down.
            .control_plane_node("cp1", IpAddr::V4(lab.spare_addr(1).unwrap()))
            .worker("w1", IpAddr::V4(w.addr()))
            .ingress(30080, 30443, tls)
            .render()
            .unwrap()
            .remove(0)
    };
    let lb_addr = lb.addr();

    // L4 passthrough.
    let node = render(IngressTls::Passthrough);
    lb.write_file(HAPROXY_CFG_PATH, &node.haproxy_cfg.content, 0o644)
        .unwrap();
    lb.run("mkdir -p /run/haproxy").unwrap();
    lb.spawn("haproxy", "exec haproxy -db -f /etc/haproxy/haproxy.cfg")
        .unwrap();
    let http = curl(&[&format!("http://{lb_addr}/")]);
    let https = curl(&[&format!("https://{lb_addr}/")]);
    lb.kill("haproxy").unwrap();
    println!("passthrough http:  {http}passthrough https: {https}");
    assert!(
        http.contains(&format!("proxy-src={gateway} tls=0")),
        "passthrough HTTP must carry a PROXY v2 header with the client address: {http:?}\n{}",
        lb.log("haproxy")
    );
    assert!(
        https.contains(&format!("proxy-src={gateway} tls=1")),
        "passthrough HTTPS must reach the worker's TLS with a PROXY v2 header: {https:?}"
    );

    // L7 termination at the conventional certificate path.
    let node = render(IngressTls::Terminate {
        cert_path: CERT.to_owned(),
    });
    lb.write_file(CERT, std::fs::read(&pem).unwrap(), 0o600)
        .unwrap();
    lb.write_file(HAPROXY_CFG_PATH, &node.haproxy_cfg.content, 0o644)
        .unwrap();
    lb.spawn("haproxy", "exec haproxy -db -f /etc/haproxy/haproxy.cfg")
        .unwrap();
    let https = curl(&[
        "-H",
        "X-Forwarded-For: 6.6.6.6",
        &format!("https://{lb_addr}/"),
    ]);
    let http = curl(&[&format!("http://{lb_addr}/")]);
    lb.kill("haproxy").unwrap();
    println!("terminate https: {https}terminate http:  {http}");
    assert_eq!(
        https.trim(),
        format!("proxy-src=- tls=0 xff={gateway} proto=https port=443"),
        "{}",
        lb.log("haproxy")
    );
    assert_eq!(
        http.trim(),
        format!("proxy-src=- tls=0 xff={gateway} proto=http port=80")
    );
}
