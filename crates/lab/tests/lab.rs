//! Integration tests of the lab against the real kernel, iproute2 and OpenSSH.
//! They need root; without it each test prints a SKIP line and returns.

use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hakube_lab::{Error, Lab, require_root};

fn netns_names() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn ssh_banner(addr: std::net::Ipv4Addr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::from((addr, 22)), Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Polls `f` until it returns true or `timeout` passes; returns the last result.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hosts_reach_each_other_and_the_test_process() {
    if !require_root("hosts_reach_each_other_and_the_test_process") {
        return;
    }
    let lab = Lab::builder("reach")
        .hosts(["a1", "a2", "a3"])
        .build()
        .expect("lab");
    let (a1, a2, a3) = (lab.host("a1"), lab.host("a2"), lab.host("a3"));
    assert_eq!(a1.addr(), lab.subnet().hosts().nth(10).expect("addr .11"));
    assert_ne!(a1.addr(), a2.addr());
    assert!(lab.subnet().contains(&lab.gateway()));

    // ICMP between hosts and to the gateway.
    a1.run(&format!("ping -c1 -W2 {}", a2.addr()))
        .expect("a1 pings a2");
    a3.run(&format!("ping -c1 -W2 {}", lab.gateway()))
        .expect("a3 pings the gateway");

    // TCP host to host: a2's sshd banner read by bash in a1.
    let banner = a1
        .run(&format!(
            "bash -c 'exec 3<>/dev/tcp/{}/22; head -c 7 <&3'",
            a2.addr()
        ))
        .expect("tcp a1 -> a2");
    assert_eq!(banner, "SSH-2.0");

    // TCP from the test process to every host, and from a host to a listener of the test.
    for h in lab.hosts() {
        assert_eq!(
            ssh_banner(h.addr()).expect("banner"),
            "SSH-2.0-",
            "{}",
            h.name()
        );
    }
    let listener = std::net::TcpListener::bind((lab.gateway(), 0)).expect("bind on gateway");
    let port = listener.local_addr().expect("addr").port();
    let gw = lab.gateway();
    let t = std::thread::spawn(move || {
        use std::io::Write as _;
        let (mut s, peer) = listener.accept().expect("accept");
        s.write_all(b"hello\n").expect("write");
        peer
    });
    let got = a3
        .run(&format!(
            "bash -c 'exec 3<>/dev/tcp/{gw}/{port}; head -n1 <&3'"
        ))
        .expect("a3 -> test process");
    assert_eq!(got, "hello\n");
    let peer = t.join().expect("thread");
    assert_eq!(peer.ip(), std::net::IpAddr::V4(a3.addr()));

    // Each host has its own hostname and process list.
    assert_eq!(a2.run("hostname").expect("hostname"), "a2\n");
    let ps = a2.run("ps -e -o comm=").expect("ps");
    assert!(ps.lines().any(|l| l == "sshd"), "{ps}");
    assert!(ps.lines().count() < 10, "a2 sees foreign processes: {ps}");
}

#[test]
fn private_dirs_are_private() {
    if !require_root("private_dirs_are_private") {
        return;
    }
    let lab = Lab::builder("priv")
        .hosts(["lb1", "lb2"])
        .private_dir("/opt/hakube-lab-test")
        .without_sshd()
        .build()
        .expect("lab");
    let (lb1, lb2) = (lab.host("lb1"), lab.host("lb2"));

    // Written inside lb1: visible in lb1 and from outside through host_path, not in lb2 and not
    // in the machine's real /etc/haproxy.
    lb1.run(
        "echo one > /etc/haproxy/marker && echo t > /tmp/marker && echo o > /opt/hakube-lab-test/m",
    )
    .expect("write in lb1");
    assert_eq!(
        lb1.read_to_string("/etc/haproxy/marker").expect("read"),
        "one\n"
    );
    let backing = lb1.host_path("/etc/haproxy/marker").expect("host path");
    assert!(backing.starts_with(lab.dir()));
    assert!(backing.exists());
    for (path, what) in [
        ("/etc/haproxy/marker", "haproxy"),
        ("/tmp/marker", "tmp"),
        ("/opt/hakube-lab-test/m", "custom dir"),
    ] {
        let out = lb2.exec(&format!("test -e {path}")).expect("exec");
        assert!(!out.status.success(), "lb2 sees lb1's {what} file");
        assert!(
            !Path::new(path).exists(),
            "the real file system got lb1's {what} file"
        );
    }

    // Written from outside: visible inside, with its mode.
    lb2.write_file("/etc/kubernetes/admin.conf", b"apiVersion: v1\n", 0o600)
        .expect("write_file");
    assert_eq!(
        lb2.run("stat -c %a /etc/kubernetes/admin.conf; cat /etc/kubernetes/admin.conf")
            .expect("stat"),
        "600\napiVersion: v1\n"
    );
    assert!(lb1.read_file("/etc/kubernetes/admin.conf").is_err());

    // Paths outside the private directories are refused.
    assert!(matches!(
        lb1.write_file("/etc/passwd", b"x", 0o644),
        Err(Error::NotPrivate { .. })
    ));
    assert!(matches!(
        lb1.host_path("/etc/haproxy/../passwd"),
        Err(Error::NotPrivate { .. })
    ));

    // No lab mount leaked into the test process's mount namespace.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&lab.dir().to_string_lossy().into_owned()),
        "{mounts}"
    );
}

#[test]
fn ssh_login_by_key_sees_the_private_view() {
    if !require_root("ssh_login_by_key_sees_the_private_view") {
        return;
    }
    let lab = Lab::builder("ssh")
        .hosts(["n1", "n2"])
        .build()
        .expect("lab");
    let n2 = lab.host("n2");
    n2.write_file("/etc/keepalived/keepalived.conf", "# n2\n", 0o644)
        .expect("write");

    // The plain ssh CLI, as another engineer's test would call it.
    let out = Command::new("ssh")
        .arg("-i")
        .arg(lab.ssh_private_key())
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            lab.known_hosts_file().display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-F",
            "/dev/null",
        ])
        .arg(format!("root@{}", n2.addr()))
        .arg("hostname; cat /etc/keepalived/keepalived.conf; echo $PATH; id -u")
        .output()
        .expect("ssh");
    assert!(
        out.status.success(),
        "ssh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "n2");
    assert_eq!(lines[1], "# n2");
    let path: Vec<&str> = lines[2].split(':').collect();
    let local = path
        .iter()
        .position(|p| *p == "/usr/local/bin")
        .expect("local bin in PATH");
    let usr = path
        .iter()
        .position(|p| *p == "/usr/bin")
        .expect("/usr/bin in PATH");
    assert!(local < usr, "PATH {}", lines[2]);
    assert_eq!(lines[3], "0");
    // SSH sessions get the lab's clean shell startup file, not the machine's.
    if Path::new("/root/.bashrc").is_file() {
        let out = n2.ssh("cat ~/.bashrc").expect("ssh");
        assert!(String::from_utf8_lossy(&out.stdout).contains("hakube-lab"));
    }

    // known_hosts pins each host's own key: n1's key does not authenticate n2.
    let kh = std::fs::read_to_string(lab.known_hosts_file()).expect("known_hosts");
    assert_eq!(kh.lines().count(), 2);
    assert!(kh.contains(&format!("n2,{} ", n2.addr())));
    assert!(n2.ssh_host_public_key().starts_with("ssh-ed25519 "));
    assert_ne!(
        n2.ssh_host_public_key(),
        lab.host("n1").ssh_host_public_key()
    );

    // A wrong key is refused (no password fallback).
    let other = lab.dir().join("other_key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .expect("keygen");
    assert!(st.success());
    let mut cmd = n2.ssh_command();
    cmd.arg("-i").arg(&other);
    let out = Command::new("ssh")
        .arg("-i")
        .arg(&other)
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            lab.known_hosts_file().display()
        ))
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-F",
            "/dev/null",
        ])
        .arg(format!("root@{}", n2.addr()))
        .arg("true")
        .output()
        .expect("ssh");
    assert_eq!(
        out.status.code(),
        Some(255),
        "login with a foreign key must fail"
    );
}

#[test]
fn stand_ins_record_calls() {
    if !require_root("stand_ins_record_calls") {
        return;
    }
    let lab = Lab::builder("stand")
        .hosts(["cp1", "cp2"])
        .build()
        .expect("lab");
    lab.stand_in(
        "kubeadm",
        "#!/bin/sh\necho \"fake kubeadm $1\"\n[ \"$1\" = fail ] && exit 3\nexit 0\n",
    )
    .expect("stand-in");
    lab.record_only(["systemctl", "apt-get", "modprobe"])
        .expect("record_only");
    let cp1 = lab.host("cp1");

    assert_eq!(
        cp1.run("kubeadm init --config '/etc/kubernetes/a b.yaml'")
            .expect("kubeadm"),
        "fake kubeadm init\n"
    );
    // modprobe lives in /usr/sbin and /sbin: the stand-in still wins.
    cp1.run("modprobe br_netfilter && systemctl restart kubelet")
        .expect("record-only");
    let out = cp1.exec("kubeadm fail").expect("exec");
    assert_eq!(out.status.code(), Some(3));
    // Over SSH too.
    let out = cp1.ssh("apt-get install -y nfs-common").expect("ssh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        cp1.calls("kubeadm"),
        vec![
            s(&["init", "--config", "/etc/kubernetes/a b.yaml"]),
            s(&["fail"])
        ]
    );
    assert_eq!(cp1.calls("modprobe"), vec![s(&["br_netfilter"])]);
    assert_eq!(cp1.calls("systemctl"), vec![s(&["restart", "kubelet"])]);
    assert_eq!(
        cp1.calls("apt-get"),
        vec![s(&["install", "-y", "nfs-common"])]
    );
    // Per host: cp2 saw nothing.
    assert!(lab.host("cp2").calls("kubeadm").is_empty());
    cp1.clear_calls("kubeadm");
    assert!(cp1.calls("kubeadm").is_empty());

    assert!(matches!(
        lab.stand_in("../x", "#!/bin/sh\n"),
        Err(Error::InvalidConfig { .. })
    ));
}

#[test]
fn daemons_start_log_and_die() {
    if !require_root("daemons_start_log_and_die") {
        return;
    }
    let lab = Lab::builder("daemon")
        .hosts(["d1"])
        .without_sshd()
        .build()
        .expect("lab");
    let d1 = lab.host("d1");
    d1.spawn(
        "web",
        "echo starting; exec python3 -m http.server --bind 0.0.0.0 8080",
    )
    .expect("spawn");
    d1.wait_for_port(8080, Duration::from_secs(30))
        .expect("web up");
    assert!(d1.is_running("web"));
    assert!(matches!(
        d1.spawn("web", "true"),
        Err(Error::DaemonExists { .. })
    ));
    assert!(d1.log("web").contains("starting"));

    d1.kill("web").expect("kill");
    assert!(!d1.is_running("web"));
    assert!(
        TcpStream::connect_timeout(
            &SocketAddr::from((d1.addr(), 8080)),
            Duration::from_millis(500)
        )
        .is_err()
    );
    assert!(matches!(d1.kill("web"), Err(Error::UnknownDaemon { .. })));

    // Signals reach the daemon's process group; it stays tracked.
    d1.spawn(
        "hup",
        "trap 'echo got-hup' HUP; echo trap-set; while :; do sleep 0.1; done",
    )
    .expect("spawn");
    // A HUP before the shell set its trap would end it (on a loaded machine it can come first).
    assert!(eventually(Duration::from_secs(15), || d1
        .log("hup")
        .contains("trap-set")));
    assert!(eventually(Duration::from_secs(15), || {
        d1.signal("hup", "HUP").expect("signal");
        d1.log("hup").contains("got-hup")
    }));
    assert!(d1.is_running("hup"));
    d1.kill("hup").expect("kill");

    // A daemon that forks into the background is still confined to the host's PID namespace.
    d1.spawn("sleeper", "sleep 300 & sleep 300").expect("spawn");
    assert!(eventually(Duration::from_secs(15), || {
        d1.run("pgrep -c -x sleep").is_ok_and(|n| n.trim() == "2")
    }));
    d1.terminate("sleeper").expect("terminate");
    assert!(!d1.is_running("sleeper"));
}

/// Set in the child run of [`host_commands_start_with_default_signals`].
const NOHUP_CHILD: &str = "HAKUBE_LAB_TEST_NOHUP_CHILD";

#[test]
fn host_commands_start_with_default_signals() {
    if !require_root("host_commands_start_with_default_signals") {
        return;
    }
    if std::env::var_os(NOHUP_CHILD).is_none() {
        // Run this test again under `nohup` (SIGHUP ignored, as a runner started that way has it):
        // a host's commands must still start with every signal at its default, as systemd starts
        // a VM's services, or a daemon's `trap ... HUP` never fires.
        let out = Command::new("nohup")
            .arg(std::env::current_exe().expect("test binary"))
            .args(["--exact", "host_commands_start_with_default_signals"])
            .env(NOHUP_CHILD, "1")
            .output()
            .expect("nohup");
        assert!(
            out.status.success(),
            "the run under nohup failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        return;
    }
    let lab = Lab::builder("sigdfl")
        .hosts(["s1"])
        .without_sshd()
        .build()
        .expect("lab");
    let ignored = lab
        .host("s1")
        .run("grep SigIgn /proc/self/status")
        .expect("run");
    let mask = ignored
        .trim()
        .strip_prefix("SigIgn:")
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .expect("SigIgn mask");
    // Signals 1..=31 (bit n-1); glibc keeps its own real-time signals (32, 33) to itself.
    assert_eq!(mask & 0x7fff_ffff, 0, "ignored signals: {mask:#x}");
}

#[test]
fn link_down_cuts_and_link_up_restores() {
    if !require_root("link_down_cuts_and_link_up_restores") {
        return;
    }
    let lab = Lab::builder("link")
        .hosts(["l1", "l2"])
        .build()
        .expect("lab");
    let (l1, l2) = (lab.host("l1"), lab.host("l2"));
    let ping = |from: &hakube_lab::Host, to: std::net::Ipv4Addr| {
        from.exec(&format!("ping -c1 -W1 {to}"))
            .expect("exec")
            .status
            .success()
    };
    assert!(ping(l2, l1.addr()));

    l1.link_down().expect("down");
    assert!(!ping(l2, l1.addr()), "l1 still answers with its link down");
    assert!(ssh_banner(l1.addr()).is_err());

    l1.link_up().expect("up");
    assert!(eventually(Duration::from_secs(15), || ping(l2, l1.addr())));
    assert!(eventually(Duration::from_secs(15), || ssh_banner(
        l1.addr()
    )
    .is_ok()));
    // The default route came back too.
    assert!(
        l1.run("ip route show default")
            .expect("route")
            .contains("via")
    );
}

#[test]
fn netem_adds_delay_or_reports_unavailable() {
    if !require_root("netem_adds_delay_or_reports_unavailable") {
        return;
    }
    let lab = Lab::builder("netem")
        .hosts(["e1", "e2"])
        .without_sshd()
        .build()
        .expect("lab");
    let e1 = lab.host("e1");
    match e1.netem("delay 50ms") {
        Err(Error::NetemUnavailable { stderr, .. }) => {
            eprintln!("SKIP netem part: sch_netem is not available here: {stderr}");
        }
        Err(e) => panic!("netem failed: {e}"),
        Ok(()) => {
            let qdisc = e1.run("tc qdisc show dev eth0").expect("tc");
            assert!(qdisc.contains("netem"), "{qdisc}");
            e1.clear_netem().expect("clear");
            let qdisc = e1.run("tc qdisc show dev eth0").expect("tc");
            assert!(!qdisc.contains("netem"), "{qdisc}");
        }
    }
    // Bad arguments are a plain command error naming the host.
    match e1.netem("frobnicate 3") {
        Err(Error::Command { host, .. } | Error::NetemUnavailable { host, .. }) => {
            assert_eq!(host, "e1");
        }
        other => panic!("unexpected: {other:?}"),
    }
}

#[test]
fn remove_host_is_host_loss() {
    if !require_root("remove_host_is_host_loss") {
        return;
    }
    let lab = Lab::builder("loss")
        .hosts(["r1", "r2"])
        .build()
        .expect("lab");
    let (r1, r2) = (lab.host("r1"), lab.host("r2"));
    r1.spawn("sleeper", "exec sleep 300").expect("spawn");
    let init = r1.init_pid();
    lab.remove_host("r1").expect("remove");

    assert!(r1.is_removed());
    assert!(matches!(r1.exec("true"), Err(Error::HostRemoved { .. })));
    assert!(matches!(
        lab.remove_host("r1"),
        Err(Error::HostRemoved { .. })
    ));
    assert!(matches!(
        lab.remove_host("nope"),
        Err(Error::UnknownHost { .. })
    ));
    assert!(!netns_names().contains(&r1.netns().to_owned()));
    assert!(
        !Path::new(&format!("/proc/{init}")).exists(),
        "r1's init survived"
    );
    assert!(!r1.is_running("sleeper"));
    assert!(
        !r2.exec(&format!("ping -c1 -W1 {}", r1.addr()))
            .expect("exec")
            .status
            .success()
    );
    // The rest of the lab is unaffected.
    assert!(r2.ssh("true").expect("ssh").status.success());
}

#[test]
fn teardown_leaves_nothing_behind() {
    if !require_root("teardown_leaves_nothing_behind") {
        return;
    }
    let lab = Lab::builder("tear")
        .hosts(["t1", "t2"])
        .build()
        .expect("lab");
    lab.host("t1")
        .spawn("sleeper", "sleep 300 & exec sleep 301")
        .expect("spawn");
    let prefix = lab.prefix().to_owned();
    let dir = lab.dir().to_owned();
    let inits: Vec<u32> = lab.hosts().iter().map(hakube_lab::Host::init_pid).collect();
    assert!(netns_names().iter().any(|n| n.starts_with(&prefix)));
    assert!(Path::new("/sys/class/net").join(&prefix).exists());

    lab.teardown();
    assert!(
        !netns_names().iter().any(|n| n.starts_with(&prefix)),
        "{:?}",
        netns_names()
    );
    assert!(
        !Path::new("/sys/class/net").join(&prefix).exists(),
        "root veth left"
    );
    assert!(!dir.exists(), "lab dir left");
    for pid in inits {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "init {pid} left"
        );
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&prefix));
}

#[test]
fn teardown_runs_when_a_test_panics() {
    if !require_root("teardown_runs_when_a_test_panics") {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let lab = Lab::builder("panic")
            .hosts(["p1"])
            .without_sshd()
            .build()
            .expect("lab");
        tx.send(lab.prefix().to_owned()).expect("send");
        panic!("test failure inside a lab");
    })
    .join();
    assert!(result.is_err());
    let prefix = rx.recv().expect("prefix");
    assert!(!netns_names().iter().any(|n| n.starts_with(&prefix)));
}

#[test]
fn two_labs_in_parallel_do_not_collide() {
    if !require_root("two_labs_in_parallel_do_not_collide") {
        return;
    }
    let build = || {
        std::thread::spawn(|| {
            Lab::builder("par")
                .hosts(["x1", "x2"])
                .build()
                .expect("lab")
        })
    };
    let (a, b) = (build(), build());
    let (a, b) = (a.join().expect("lab a"), b.join().expect("lab b"));
    assert_ne!(a.prefix(), b.prefix());
    assert_ne!(a.subnet(), b.subnet());
    for lab in [&a, &b] {
        let (x1, x2) = (lab.host("x1"), lab.host("x2"));
        x1.run(&format!("ping -c1 -W2 {}", x2.addr()))
            .expect("ping within the lab");
        assert!(x2.ssh("hostname").expect("ssh").status.success());
    }
    // Labs are isolated from each other.
    let out = a
        .host("x1")
        .exec(&format!("ping -c1 -W1 {}", b.host("x1").addr()))
        .expect("exec");
    assert!(!out.status.success(), "lab a reached lab b");
}

#[test]
fn stale_labs_of_dead_processes_are_cleaned() {
    if !require_root("stale_labs_of_dead_processes_are_cleaned") {
        return;
    }
    // Fake what a killed run leaves: a namespace with the lab prefix, a record whose owner is
    // gone, a working directory.
    let prefix = format!("hkt{:04x}", std::process::id() & 0xffff);
    let ns = format!("{prefix}-ghost");
    let dir = std::env::temp_dir().join(format!("hakube-lab-stale-{prefix}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let st = Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .expect("ip");
    assert!(st.success());
    let mut dead = Command::new("true").spawn().expect("true");
    let dead_pid = dead.id();
    dead.wait().expect("wait");
    std::fs::create_dir_all(Path::new(hakube_lab::REGISTRY_DIR).join("labs")).expect("registry");
    std::fs::write(
        Path::new(hakube_lab::REGISTRY_DIR).join(format!("labs/{prefix}.lab")),
        format!(
            "pid={dead_pid}\nstart=1\nsubnet=10.88.254.0/24\ndir={}\n",
            dir.display()
        ),
    )
    .expect("record");

    // Any concurrent lab build may do the cleanup first (it calls the same function), so the
    // returned count is not checked: what matters is that nothing is left.
    hakube_lab::cleanup_stale_labs().expect("cleanup");
    assert!(!netns_names().contains(&ns), "stale namespace left");
    assert!(!dir.exists(), "stale dir left");
}

#[test]
fn bad_settings_are_rejected() {
    // Settings are checked before anything else, so this runs without root too.
    let err = |b: hakube_lab::LabBuilder| match b.build() {
        Err(Error::InvalidConfig { field, .. }) => field,
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    assert_eq!(err(Lab::builder("x").hosts(["a", "a"])), "hosts");
    assert_eq!(err(Lab::builder("x").hosts(["A_1"])), "hosts");
    assert_eq!(err(Lab::builder("x")), "hosts");
    assert_eq!(err(Lab::builder("Bad!").hosts(["a"])), "tag");
    assert_eq!(
        err(Lab::builder("x").hosts(["a"]).private_dir("/etc")),
        "private_dir"
    );
    assert_eq!(
        err(Lab::builder("x").hosts(["a"]).private_dir("/var/tmp")),
        "private_dir"
    );
    assert_eq!(
        err(Lab::builder("x").hosts(["a"]).private_dir("relative")),
        "private_dir"
    );
    assert_eq!(
        err(Lab::builder("x").hosts(["a"]).private_dir("/etc/passwd")),
        "private_dir"
    );
    let many: Vec<String> = (0..190).map(|i| format!("h{i}")).collect();
    assert_eq!(err(Lab::builder("x").hosts(many)), "hosts");
}

#[test]
fn hosts_resolve_each_other_and_dangerous_commands_are_stood_in() {
    if !require_root("hosts_resolve_each_other_and_dangerous_commands_are_stood_in") {
        return;
    }
    let real_hosts = std::fs::read_to_string("/etc/hosts").expect("/etc/hosts");
    let lab = Lab::builder("names")
        .hosts(["cp1", "wk1"])
        .build()
        .expect("lab");
    let (cp1, wk1) = (lab.host("cp1"), lab.host("wk1"));
    let got = cp1.run("getent hosts wk1").expect("getent");
    assert_eq!(
        got.split_whitespace().next(),
        Some(wk1.addr().to_string().as_str())
    );
    // DNS fails fast instead of hanging on an unreachable resolver.
    let out = cp1
        .exec_timeout("getent hosts example.invalid", Duration::from_secs(8))
        .expect("no DNS hang");
    assert!(!out.status.success());
    // Per-host copy, and the machine's own /etc/hosts is untouched.
    cp1.write_file("/etc/hosts", "127.0.0.1 localhost\n", 0o644)
        .expect("write");
    assert!(wk1.run("getent hosts cp1").is_ok());
    assert_eq!(
        std::fs::read_to_string("/etc/hosts").expect("/etc/hosts"),
        real_hosts
    );

    // Shared-kernel commands never reach the machine: sysctl, swapoff, modprobe are stand-ins,
    // also over SSH.
    let before = std::fs::read_to_string("/proc/sys/vm/swappiness").expect("swappiness");
    let out = wk1
        .ssh("sysctl -w vm.swappiness=7 && swapoff -a && modprobe overlay")
        .expect("ssh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/vm/swappiness").expect("swappiness"),
        before
    );
    assert_eq!(
        wk1.calls("sysctl"),
        vec![vec!["-w".to_owned(), "vm.swappiness=7".to_owned()]]
    );
    assert_eq!(wk1.calls("swapoff"), vec![vec!["-a".to_owned()]]);
    assert_eq!(wk1.calls("modprobe"), vec![vec!["overlay".to_owned()]]);
}

#[test]
fn exec_timeout_kills_the_script() {
    if !require_root("exec_timeout_kills_the_script") {
        return;
    }
    let lab = Lab::builder("tmo")
        .hosts(["t1"])
        .without_sshd()
        .build()
        .expect("lab");
    let t1 = lab.host("t1");
    let out = t1
        .exec_timeout("echo out; echo err >&2; exit 4", Duration::from_secs(30))
        .expect("quick");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    // Binary-safe stdin.
    let input: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let out = t1
        .exec_with_input("cat > /tmp/blob && sha256sum < /tmp/blob", &input)
        .expect("stdin");
    assert!(out.status.success());
    assert_eq!(t1.read_file("/tmp/blob").expect("blob"), input);
    match t1.exec_timeout("sleep 600", Duration::from_millis(300)) {
        Err(Error::Timeout { host, command, .. }) => {
            assert_eq!(host, "t1");
            assert_eq!(command, "sleep 600");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(eventually(Duration::from_secs(15), || {
        t1.exec("pgrep -x sleep").expect("pgrep").stdout.is_empty()
    }));
}

#[test]
fn changed_host_key_is_detected_until_known_hosts_is_refreshed() {
    if !require_root("changed_host_key_is_detected_until_known_hosts_is_refreshed") {
        return;
    }
    let lab = Lab::builder("hkey").hosts(["k1"]).build().expect("lab");
    let k1 = lab.host("k1");
    let ssh_by_name = || {
        Command::new("ssh")
            .arg("-F")
            .arg(lab.ssh_config_file())
            .args(["k1", "hostname"])
            .output()
            .expect("ssh")
    };
    let out = ssh_by_name();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"k1\n");

    let old = k1.ssh_host_public_key();
    let new = k1.rotate_ssh_host_key().expect("rotate");
    assert_ne!(old, new);
    let out = ssh_by_name();
    assert_eq!(out.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    lab.refresh_known_hosts().expect("refresh");
    let out = ssh_by_name();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn three_member_etcd_cluster_runs_in_the_lab() {
    if !require_root("three_member_etcd_cluster_runs_in_the_lab") {
        return;
    }
    if !Path::new("/usr/bin/etcd").exists() {
        eprintln!("SKIP three_member_etcd_cluster_runs_in_the_lab: etcd-server not installed");
        return;
    }
    let names = ["etcd1", "etcd2", "etcd3"];
    let lab = Lab::builder("etcd")
        .hosts(names)
        .without_sshd()
        .build()
        .expect("lab");
    let cluster = names
        .iter()
        .map(|n| format!("{n}=http://{}:2380", lab.host(n).addr()))
        .collect::<Vec<_>>()
        .join(",");
    for n in names {
        let a = lab.host(n).addr();
        lab.host(n)
            .spawn(
                "etcd",
                &format!(
                    "exec etcd --name {n} --data-dir /var/lib/etcd/data \
                     --listen-peer-urls http://{a}:2380 --initial-advertise-peer-urls http://{a}:2380 \
                     --listen-client-urls http://{a}:2379,http://127.0.0.1:2379 \
                     --advertise-client-urls http://{a}:2379 \
                     --initial-cluster {cluster} --initial-cluster-state new \
                     --initial-cluster-token {}",
                    lab.prefix()
                ),
            )
            .expect("spawn etcd");
    }
    let endpoints = names
        .iter()
        .map(|n| format!("http://{}:2379", lab.host(n).addr()))
        .collect::<Vec<_>>()
        .join(",");
    let etcdctl = |args: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ETCDCTL_API=3 etcdctl --endpoints={endpoints} --command-timeout=3s {args}"
            ))
            .output()
            .expect("etcdctl")
    };
    let healthy = eventually(Duration::from_secs(30), || {
        etcdctl("endpoint health").status.success()
    });
    assert!(
        healthy,
        "etcd not healthy: {}\n{}",
        String::from_utf8_lossy(&etcdctl("endpoint health").stderr),
        lab.host("etcd1").log("etcd")
    );
    // Each member keeps its data in its own private /var/lib/etcd.
    for n in names {
        assert!(
            lab.host(n)
                .host_path("/var/lib/etcd/data/member")
                .expect("path")
                .is_dir()
        );
    }
    assert!(etcdctl("put /hakube/lab ok").status.success());
    // Kill a member: the other two keep quorum and serve the key.
    lab.host("etcd1").kill("etcd").expect("kill");
    let e2 = format!("http://{}:2379", lab.host("etcd2").addr());
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &e2,
            "--command-timeout=5s",
            "get",
            "/hakube/lab",
            "--print-value-only",
        ])
        .output()
        .expect("etcdctl get");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The child half of `stale_lab_of_a_killed_run_is_cleaned`: builds a lab, prints its prefix,
/// and waits to be killed. A no-op unless the parent test runs it.
#[test]
fn child_builds_a_lab_and_waits_to_be_killed() {
    if std::env::var("HAKUBE_LAB_TEST_CHILD").as_deref() != Ok("1") {
        return;
    }
    let lab = Lab::builder("killed")
        .hosts(["z1", "z2"])
        .build()
        .expect("lab");
    // A sleep length unique to the parent test process, so it can look for exactly these.
    let secs = std::env::var("HAKUBE_LAB_TEST_SLEEP").unwrap_or_else(|_| "600".into());
    lab.host("z1")
        .spawn("sleeper", &format!("sleep {secs} & exec sleep {secs}"))
        .expect("spawn");
    println!("PREFIX={} DIR={}", lab.prefix(), lab.dir().display());
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn stale_lab_of_a_killed_run_is_cleaned() {
    use std::io::BufRead as _;
    if !require_root("stale_lab_of_a_killed_run_is_cleaned") {
        return;
    }
    let sleep_secs = (100_000 + std::process::id()).to_string();
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_builds_a_lab_and_waits_to_be_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HAKUBE_LAB_TEST_CHILD", "1")
        .env("HAKUBE_LAB_TEST_SLEEP", &sleep_secs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child test");
    // Kills the child if this test fails before it does.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let mut child = KillOnDrop(child);
    // libtest prints `test NAME ... ` before the test's own output, on the same line.
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.find("PREFIX=").map(|i| l[i..].to_owned()))
        .expect("child printed its lab");
    let mut words = line.split_whitespace();
    let prefix = words
        .next()
        .and_then(|w| w.strip_prefix("PREFIX="))
        .expect("prefix")
        .to_owned();
    let dir = words
        .next()
        .and_then(|w| w.strip_prefix("DIR="))
        .expect("dir")
        .to_owned();
    assert!(netns_names().iter().any(|n| n.starts_with(&prefix)));

    // Hold the lab lock while checking what the kill left behind: a lab build running in
    // parallel would otherwise clean it up first.
    let lock = std::fs::File::options()
        .write(true)
        .open(Path::new(hakube_lab::REGISTRY_DIR).join("lock"))
        .expect("lab lock file");
    lock.lock().expect("lab lock");
    // SIGKILL: no Drop runs, the lab is left behind.
    child.0.kill().expect("kill child");
    child.0.wait().expect("wait child");
    assert!(
        netns_names().iter().any(|n| n.starts_with(&prefix)),
        "nothing was left to clean"
    );
    drop(lock);

    hakube_lab::cleanup_stale_labs().expect("cleanup");
    assert!(
        !netns_names().iter().any(|n| n.starts_with(&prefix)),
        "{:?}",
        netns_names()
    );
    assert!(!Path::new("/sys/class/net").join(&prefix).exists());
    assert!(!Path::new(&dir).exists());
    assert!(
        eventually(Duration::from_secs(15), || {
            Command::new("pgrep")
                .args(["-x", "-f", &format!("sleep {sleep_secs}")])
                .output()
                .expect("pgrep")
                .stdout
                .is_empty()
        }),
        "the killed lab's daemons survived"
    );
}

/// Sends `GET /who` to `addr:8080` and returns the body, or None when nothing answers.
fn http_who(addr: std::net::Ipv4Addr) -> Option<String> {
    use std::io::Write as _;
    let mut s =
        TcpStream::connect_timeout(&SocketAddr::from((addr, 8080)), Duration::from_millis(500))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /who HTTP/1.0\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    resp.split("\r\n\r\n").nth(1).map(|b| b.trim().to_owned())
}

#[test]
fn keepalived_vip_moves_and_the_test_process_follows_it() {
    if !require_root("keepalived_vip_moves_and_the_test_process_follows_it") {
        return;
    }
    if !Path::new("/usr/sbin/keepalived").exists() {
        eprintln!(
            "SKIP keepalived_vip_moves_and_the_test_process_follows_it: keepalived not installed"
        );
        return;
    }
    let lab = Lab::builder("vip")
        .hosts(["lb1", "lb2"])
        .without_sshd()
        .build()
        .expect("lab");
    let vip = lab.spare_addr(0).expect("vip");
    assert!(lab.hosts().iter().all(|h| h.addr() != vip));
    for (me, peer, prio) in [("lb1", "lb2", 150), ("lb2", "lb1", 100)] {
        let h = lab.host(me);
        let conf = format!(
            "global_defs {{\n  router_id {me}\n  script_user root\n}}\n\
             vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
             priority {prio}\n  advert_int 1\n  unicast_src_ip {src}\n  unicast_peer {{\n    {peer_addr}\n  }}\n  \
             virtual_ipaddress {{\n    {vip}/24 dev eth0\n  }}\n}}\n",
            src = h.addr(),
            peer_addr = lab.host(peer).addr(),
        );
        h.write_file("/etc/keepalived/keepalived.conf", conf, 0o644)
            .expect("conf");
        h.write_file("/tmp/www/who", format!("{me}\n"), 0o644)
            .expect("who");
        h.spawn("web", "cd /tmp/www && exec python3 -m http.server 8080")
            .expect("web");
        h.spawn(
            "keepalived",
            "exec keepalived -n -l -D -f /etc/keepalived/keepalived.conf \
             -p /run/keepalived.pid -r /run/vrrp.pid",
        )
        .expect("keepalived");
    }
    let served_by = |who: &str| {
        eventually(Duration::from_secs(20), || {
            http_who(vip).as_deref() == Some(who)
        })
    };
    assert!(
        served_by("lb1"),
        "VIP never reached lb1: {}\n{}",
        lab.host("lb1").log("keepalived"),
        lab.host("lb2").log("keepalived")
    );
    // The higher-priority node dies: the VIP moves to lb2, and the test process follows it
    // (keepalived's gratuitous ARP reaches the test process through the bridge).
    lab.host("lb1").kill("keepalived").expect("kill");
    assert!(
        served_by("lb2"),
        "VIP never moved to lb2: {}",
        lab.host("lb2").log("keepalived")
    );
    // (A SIGKILLed keepalived leaves the VIP on lb1's eth0, as on a real crash; the lab
    // does not hide that. Cut lb1's cable: the VIP still answers, from lb2.)
    lab.host("lb1").link_down().expect("down");
    assert_eq!(http_who(vip).as_deref(), Some("lb2"));
}

#[test]
fn labs_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Lab>();
    assert_send_sync::<hakube_lab::Host>();
    assert_send_sync::<Error>();
}

#[test]
fn a_custom_pool_is_used() {
    if !require_root("a_custom_pool_is_used") {
        return;
    }
    let pool: ipnet::Ipv4Net = "10.89.0.0/16".parse().expect("pool");
    let lab = Lab::builder("pool")
        .hosts(["q1"])
        .pool(pool)
        .without_sshd()
        .build()
        .expect("lab");
    assert!(pool.contains(&lab.subnet().network()));
    assert!(lab.subnet().contains(&lab.host("q1").addr()));
    let bad: ipnet::Ipv4Net = "10.89.0.0/25".parse().expect("net");
    assert!(matches!(
        Lab::builder("pool").hosts(["q1"]).pool(bad).build(),
        Err(Error::InvalidConfig { field: "pool", .. })
    ));
}

/// Where the cgroup of a process lives, from `/proc/<pid>/cgroup` text: the `cpu` line's path.
fn cpu_cgroup(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        // v1: `4:cpu,cpuacct:/x` or `1:cpu:/x`; v2: `0::/x`.
        (controllers.split(',').any(|c| c == "cpu") || controllers.is_empty())
            .then(|| path.to_owned())
    })
}

/// Runs a CPU-bound shell loop in the host; returns (wall time, CPU time the loop used).
fn busy_loop(host: &hakube_lab::Host, iterations: u32) -> (Duration, Duration) {
    let start = Instant::now();
    // `times` prints the shell's user and system time (first line) as `0m0.123s 0m0.004s`.
    let out = host
        .run(&format!(
            "i=0; while [ $i -lt {iterations} ]; do i=$((i+1)); done; times"
        ))
        .expect("busy loop");
    let wall = start.elapsed();
    let secs = |w: &str| -> f64 {
        let (m, s) = w.trim_end_matches('s').split_once('m').expect("NmS.SSSs");
        m.parse::<f64>().expect("minutes") * 60.0 + s.parse::<f64>().expect("seconds")
    };
    let first = out.lines().next().expect("times output");
    let cpu: f64 = first.split_whitespace().map(secs).sum();
    (wall, Duration::from_secs_f64(cpu))
}

#[test]
fn cpu_limit_confines_the_host_and_its_sessions() {
    if !require_root("cpu_limit_confines_the_host_and_its_sessions") {
        return;
    }
    let lab = Lab::builder("cpu")
        .hosts(["c1", "c2"])
        .build()
        .expect("lab");
    let (c1, c2) = (lab.host("c1"), lab.host("c2"));

    // Bad budgets name the setting.
    for bad in [0.0, -1.0, f64::NAN, 0.000_01] {
        match c1.cpu_limit(bad) {
            Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "cpu_limit"),
            other => panic!("cpu_limit({bad}) gave {other:?}"),
        }
    }

    match c1.cpu_limit(0.05) {
        Err(Error::CpuLimitUnavailable { reason, .. }) => {
            eprintln!("SKIP cpu_limit part: {reason}");
            return;
        }
        other => other.expect("cpu_limit"),
    }
    // The running sshd, its sessions and later lab commands are in c1's cgroup; c2 is not.
    let group = cpu_cgroup(&c1.run("cat /proc/self/cgroup").expect("exec")).expect("cpu line");
    assert!(
        group.ends_with(&format!("/hakube-lab/{}", c1.netns())),
        "{group}"
    );
    let via_ssh = c1.ssh("cat /proc/self/cgroup").expect("ssh");
    assert!(via_ssh.status.success());
    assert_eq!(
        cpu_cgroup(&String::from_utf8_lossy(&via_ssh.stdout)).as_deref(),
        Some(group.as_str())
    );
    let other = cpu_cgroup(&c2.run("cat /proc/self/cgroup").expect("exec")).expect("cpu line");
    assert!(!other.contains("hakube-lab"), "{other}");

    // With 5% of a core, a CPU-bound loop needs many times its CPU time in wall time (20x
    // in theory; a loaded machine only makes the wall time longer).
    let (wall, cpu) = busy_loop(c1, 60_000);
    assert!(
        cpu > Duration::from_millis(20) && wall > cpu * 5,
        "confined: wall {wall:?} for cpu {cpu:?}"
    );
    // Lifted, the same loop finishes far sooner.
    c1.clear_cpu_limit().expect("clear");
    let (wall_free, cpu_free) = busy_loop(c1, 60_000);
    assert!(
        wall_free < wall / 2,
        "lifted: wall {wall_free:?} (cpu {cpu_free:?}) against {wall:?} confined"
    );

    // Teardown removes the cgroup.
    let mount = [
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/cpu,cpuacct",
        "/sys/fs/cgroup",
    ]
    .iter()
    .map(Path::new)
    .find(|m| m.join(group.trim_start_matches('/')).exists())
    .expect("the cgroup directory exists while the lab runs");
    let dir = mount.join(group.trim_start_matches('/'));
    lab.teardown();
    assert!(!dir.exists(), "{} left behind", dir.display());
}
