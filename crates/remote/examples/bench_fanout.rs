//! Benchmark: hakube-remote against Ansible on the same lab hosts and the same steps.
//!
//! Steps per host: upload 3 files, run 10 short commands, read a file back. Measured on N
//! hosts and on 1 host, cold (connections set up inside the measurement) for both tools.
//! Ansible runs with forks=N, pipelining on, no fact gathering, SSH ControlPersist (its
//! defaults for multiplexing) with a fresh control directory per run.
//!
//! Hosts are a `hakube-lab` (root needed): N network namespaces on one bridge, each with its
//! own address, its own real OpenSSH sshd on port 22 and a private `/tmp` where the files go.
//!
//! Besides wall times it reports CPU: all hosts share this machine's cores, so the N sshds
//! compete for them. The "CPU floor" is the machine CPU a run used (sshd, the remote shells
//! and commands, the kernel, the client) divided by the number of cores: no client can finish
//! the N-host run faster than that on this machine, whatever its concurrency.
//!
//! Run through `crates/remote/scripts/bench-vs-ansible`, or directly:
//! `cargo run -p hakube-remote --release --example bench_fanout -- --hosts 12 --ansible-playbook PATH`
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::cast_precision_loss)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hakube_lab::Lab;
use hakube_remote::{
    Auth, Command, FanOut, File, HostKeyPolicy, NoProgress, RemoteExec, SshConfig, SshPool, Target,
    fan_out, push_file,
};

struct Args {
    hosts: usize,
    ansible: Option<PathBuf>,
    runs: usize,
    ansible_runs: usize,
    /// CPU budget of each host in the second round, in cores; `None`: (cores - 0.5) / hosts.
    cpu_per_host: Option<f64>,
}

fn parse_args() -> Args {
    let mut args = Args {
        hosts: 12,
        ansible: None,
        runs: 7,
        ansible_runs: 3,
        cpu_per_host: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--hosts" => args.hosts = val().parse().unwrap(),
            "--ansible-playbook" => args.ansible = Some(PathBuf::from(val())),
            "--runs" => args.runs = val().parse().unwrap(),
            "--ansible-runs" => args.ansible_runs = val().parse().unwrap(),
            "--cpu-per-host" => args.cpu_per_host = Some(val().parse().unwrap()),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn payloads() -> Vec<(&'static str, Vec<u8>)> {
    let config: Vec<u8> = (0..40)
        .flat_map(|i| {
            format!("    server cp{i} 10.0.0.{i}:6443 check inter 2s fall 3 rise 2\n").into_bytes()
        })
        .collect();
    let script: Vec<u8> = b"#!/bin/sh\nset -eu\n"
        .iter()
        .copied()
        .chain((0..16_000u32).map(|i| b"abcdefgh\n"[(i % 9) as usize]))
        .collect();
    let binary: Vec<u8> = (0..128 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    vec![
        ("haproxy.cfg", config),
        ("setup.sh", script),
        ("blob.bin", binary),
    ]
}

/// Where the files go on every host (each lab host has a private `/tmp`).
const BASE: &str = "/tmp/hakube-bench";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The steps on one host: upload the files into `dir`, run 10 short commands, read the first
/// file back (and check it).
async fn steps(
    h: Arc<dyn RemoteExec>,
    dir: String,
    files: &[(&str, Vec<u8>)],
) -> Result<(), hakube_remote::Error> {
    for (name, content) in files {
        push_file(
            h.as_ref(),
            &File::new(format!("{dir}/{name}"), content.clone()).mode(0o644),
            false,
        )
        .await?;
    }
    for i in 0..10 {
        h.run_ok(&Command::new("echo").arg(format!("step {i}")))
            .await?;
    }
    let back = h.read_file(&format!("{dir}/{}", files[0].0), false).await?;
    assert_eq!(back, files[0].1);
    Ok(())
}

/// The hakube side: fresh pool (cold connections), all hosts concurrently, steps in order per host.
async fn hakube_run(
    targets: &[Target],
    key: &Path,
    known_hosts: &Path,
    run_id: &str,
    files: &[(&str, Vec<u8>)],
) -> Duration {
    let started = Instant::now();
    let pool = SshPool::new(SshConfig::new(
        Auth::key_file(key),
        HostKeyPolicy::KnownHosts(known_hosts.to_owned()),
    ));
    let hosts: Vec<Arc<dyn RemoteExec>> = targets
        .iter()
        .map(|t| pool.session(t) as Arc<dyn RemoteExec>)
        .collect();
    let results = fan_out(
        &hosts,
        "bench",
        &FanOut::new(hosts.len()),
        &NoProgress,
        |h| steps(h, format!("{BASE}/{run_id}/hakube"), files),
    )
    .await;
    for r in &results {
        if let Err(e) = &r.result {
            panic!("hakube run failed on {}: {e}", r.host);
        }
    }
    let elapsed = started.elapsed();
    pool.close_all().await;
    elapsed
}

/// Same steps, pool already connected (connections reused across steps, as in a plan).
async fn hakube_warm(
    pool: &SshPool,
    targets: &[Target],
    run_id: &str,
    files: &[(&str, Vec<u8>)],
) -> Duration {
    let hosts: Vec<Arc<dyn RemoteExec>> = targets
        .iter()
        .map(|t| pool.session(t) as Arc<dyn RemoteExec>)
        .collect();
    for h in &hosts {
        h.run_ok(&Command::new("true")).await.unwrap();
    }
    let started = Instant::now();
    let results = fan_out(
        &hosts,
        "bench",
        &FanOut::new(hosts.len()),
        &NoProgress,
        |h| steps(h, format!("{BASE}/{run_id}/warm"), files),
    )
    .await;
    assert!(results.iter().all(|r| r.result.is_ok()));
    started.elapsed()
}

fn write_ansible_project(lab: &Lab, hosts: usize, files_dir: &Path, names: &[&str]) {
    let dir = lab.dir().join("ansible");
    std::fs::create_dir_all(&dir).unwrap();
    let mut inv = String::from("[bench]\n");
    for h in lab.hosts().iter().take(hosts) {
        inv.push_str(&format!(
            "{} ansible_host={} ansible_user=root\n",
            h.name(),
            h.addr()
        ));
    }
    inv.push_str(&format!(
        "\n[bench:vars]\nansible_python_interpreter=/usr/bin/python3\nansible_ssh_private_key_file={}\n",
        lab.ssh_private_key().display()
    ));
    std::fs::write(dir.join("inventory.ini"), inv).unwrap();
    let cfg = format!(
        "[defaults]\nforks = {forks}\nhost_key_checking = True\ngathering = explicit\nretry_files_enabled = False\n\
         interpreter_python = /usr/bin/python3\nstdout_callback = default\n\
         [ssh_connection]\npipelining = True\n\
         ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={kh} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes\n",
        forks = hosts.max(1),
        kh = lab.known_hosts_file().display()
    );
    std::fs::write(dir.join("ansible.cfg"), cfg).unwrap();
    let mut play = String::from("- hosts: bench\n  gather_facts: false\n  tasks:\n");
    for name in names {
        play.push_str(&format!(
            "    - copy:\n        src: {src}\n        dest: \"{BASE}/{{{{ run_id }}}}/ansible/{name}\"\n        mode: \"0644\"\n",
            src = files_dir.join(name).display(),
        ));
    }
    for i in 0..10 {
        play.push_str(&format!("    - command: echo step {i}\n"));
    }
    play.push_str(&format!(
        "    - slurp:\n        src: \"{BASE}/{{{{ run_id }}}}/ansible/{}\"\n",
        names[0]
    ));
    std::fs::write(dir.join("play.yml"), play).unwrap();
}

fn ansible_run(playbook: &Path, lab: &Lab, run_id: &str, hosts: usize) -> Duration {
    let dir = lab.dir().join("ansible");
    // `copy` does not create parent directories; make them (outside the measurement).
    for h in lab.hosts().iter().take(hosts) {
        h.run(&format!("mkdir -p {BASE}/{run_id}/ansible")).unwrap();
    }
    let limit = if hosts == 1 {
        lab.hosts()[0].name().to_owned()
    } else {
        "all".to_owned()
    };
    let control = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = std::process::Command::new(playbook)
        .arg("-i")
        .arg(dir.join("inventory.ini"))
        .arg(dir.join("play.yml"))
        .args(["--limit", &limit, "-e", &format!("run_id={run_id}")])
        .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
        .env("ANSIBLE_SSH_CONTROL_PATH_DIR", control.path())
        .env("ANSIBLE_LOCAL_TEMP", control.path())
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "ansible-playbook failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Stop the ControlPersist masters of this run (they would otherwise linger 60 s).
    for entry in std::fs::read_dir(control.path())
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::process::Command::new("ssh")
            .args(["-O", "exit", "-o"])
            .arg(format!("ControlPath={}", entry.path().display()))
            .arg("dummy")
            .stderr(std::process::Stdio::null())
            .status();
    }
    elapsed
}

/// (this process's user+system CPU ticks, machine busy ticks, machine total ticks).
fn cpu_ticks() -> (u64, u64, u64) {
    let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = own.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // fields after ")": state(0) ppid(1) ... utime(11) stime(12)
    let own_ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let total: u64 = cpu.iter().sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    (own_ticks, total - idle, total)
}

/// CPU used while measuring: this process, and the whole machine.
#[derive(Default, Clone, Copy)]
struct Cpu {
    /// This process (the client), in clock ticks.
    own: u64,
    /// Every core's non-idle time, in clock ticks.
    busy: u64,
    /// Every core's time, in clock ticks.
    total: u64,
    /// Wall time, summed over the runs.
    wall: f64,
    runs: u32,
}

impl Cpu {
    /// Runs `f`, adding its CPU and wall time.
    async fn measure<F: Future<Output = Duration>>(&mut self, f: F) -> Duration {
        let before = cpu_ticks();
        let d = f.await;
        let after = cpu_ticks();
        self.own += after.0 - before.0;
        self.busy += after.1 - before.1;
        self.total += after.2 - before.2;
        self.wall += d.as_secs_f64();
        self.runs += 1;
        d
    }

    /// Machine CPU per run, in seconds (clock ticks are 1/100 s on Linux).
    fn busy_per_run(&self) -> f64 {
        self.busy as f64 / 100.0 / f64::from(self.runs.max(1))
    }

    /// Client CPU per run, in seconds.
    fn own_per_run(&self) -> f64 {
        self.own as f64 / 100.0 / f64::from(self.runs.max(1))
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// What one round measured (medians, and CPU over the cold runs).
struct Round {
    cold1: Duration,
    coldn: Duration,
    warm1: Duration,
    warmn: Duration,
    cpu1: Cpu,
    cpun: Cpu,
}

async fn hakube_round(
    targets: &[Target],
    key: &Path,
    kh: &Path,
    runs: usize,
    next_id: &mut impl FnMut() -> String,
    files: &[(&str, Vec<u8>)],
) -> Round {
    let all = targets;
    let one = &targets[..1];
    // warm-up (page cache, binaries)
    hakube_run(all, key, kh, &next_id(), files).await;
    let (mut h1, mut hn) = (Vec::new(), Vec::new());
    let (mut cpu1, mut cpun) = (Cpu::default(), Cpu::default());
    for _ in 0..runs {
        h1.push(
            cpu1.measure(hakube_run(one, key, kh, &next_id(), files))
                .await,
        );
        hn.push(
            cpun.measure(hakube_run(all, key, kh, &next_id(), files))
                .await,
        );
    }
    let pool = SshPool::new(SshConfig::new(
        Auth::key_file(key),
        HostKeyPolicy::KnownHosts(kh.to_owned()),
    ));
    let (mut w1, mut wn) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        w1.push(hakube_warm(&pool, one, &next_id(), files).await);
        wn.push(hakube_warm(&pool, all, &next_id(), files).await);
    }
    pool.close_all().await;
    Round {
        cold1: median(h1),
        coldn: median(hn),
        warm1: median(w1),
        warmn: median(wn),
        cpu1,
        cpun,
    }
}

fn print_round(r: &Round, hosts: usize, runs: usize, cores: usize, shared: bool) {
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("  hakube-remote (median of {runs} runs)");
    println!("    cold, 1 host:        {}", secs(r.cold1));
    println!(
        "    cold, {hosts:>2} hosts:      {}   ({:.2}x the 1-host time; goal <= 1.5x)",
        secs(r.coldn),
        ratio(r.coldn, r.cold1)
    );
    println!("    warm pool, 1 host:   {}", secs(r.warm1));
    println!(
        "    warm pool, {hosts:>2} hosts: {}   ({:.2}x the 1-host time)",
        secs(r.warmn),
        ratio(r.warmn, r.warm1)
    );
    let n = hosts as f64;
    let hosts1 = r.cpu1.busy_per_run() - r.cpu1.own_per_run();
    let hostsn = r.cpun.busy_per_run() - r.cpun.own_per_run();
    println!(
        "    CPU per cold run: 1 host: hosts' side {:.0} ms, client {:.0} ms; {hosts} hosts: \
         hosts' side {:.0} ms per host, client {:.0} ms in all, machine {:.0}% busy",
        hosts1 * 1e3,
        r.cpu1.own_per_run() * 1e3,
        hostsn / n * 1e3,
        r.cpun.own_per_run() * 1e3,
        100.0 * r.cpun.busy as f64 / r.cpun.total.max(1) as f64
    );
    if shared {
        // No client can finish before the machine has done the hosts' share of the work.
        let floor = hostsn / cores as f64;
        println!(
            "    CPU floor of the {hosts}-host run (hosts' side / {cores} cores): {:.0} ms = \
             {:.2}x the 1-host time, for any client",
            floor * 1e3,
            floor / r.cold1.as_secs_f64()
        );
    }
}

fn ansible_round(
    playbook: &Path,
    lab: &Lab,
    hosts: usize,
    runs: usize,
    next_id: &mut impl FnMut() -> String,
) -> (Duration, Duration) {
    ansible_run(playbook, lab, &next_id(), hosts); // warm-up
    let (mut a1, mut an) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        a1.push(ansible_run(playbook, lab, &next_id(), 1));
        an.push(ansible_run(playbook, lab, &next_id(), hosts));
    }
    let (a1, an) = (median(a1), median(an));
    println!("  ansible-playbook (forks={hosts}, pipelining, median of {runs} runs)");
    println!("    1 host:    {}", secs(a1));
    println!(
        "    {hosts:>2} hosts:  {}   ({:.2}x the 1-host time)",
        secs(an),
        an.as_secs_f64() / a1.as_secs_f64()
    );
    (a1, an)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    if !hakube_lab::require_root("bench_fanout") {
        std::process::exit(1);
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let budget = args
        .cpu_per_host
        .unwrap_or((cores as f64 - 0.5).max(0.5) / args.hosts as f64);
    let names: Vec<String> = (1..=args.hosts).map(|i| format!("h{i}")).collect();
    let built = Instant::now();
    let lab = Lab::builder("bench").hosts(&names).build().unwrap();
    eprintln!(
        "lab of {} hosts built in {}",
        args.hosts,
        secs(built.elapsed())
    );
    let targets: Vec<Target> = lab
        .hosts()
        .iter()
        .map(|h| Target::new(h.name(), h.addr().to_string()))
        .collect();
    let key = lab.ssh_private_key().to_owned();
    let kh = lab.known_hosts_file().to_owned();
    let files = payloads();
    let files_dir = lab.dir().join("bench-files");
    std::fs::create_dir_all(&files_dir).unwrap();
    for (name, content) in &files {
        std::fs::write(files_dir.join(name), content).unwrap();
    }
    let file_names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    write_ansible_project(&lab, args.hosts, &files_dir, &file_names);
    let mut counter = 0;
    let mut next_id = || {
        counter += 1;
        format!("run{counter}")
    };

    println!(
        "steps per host: upload 3 files ({} bytes), 10 commands, read 1 file back, on 1 and on {} \
         hosts of a hakube-lab (network namespaces, a real OpenSSH sshd each), {cores} cores",
        files.iter().map(|(_, c)| c.len()).sum::<usize>(),
        args.hosts
    );

    println!(
        "\n1. shared CPU: all {} hosts' sshds, shells and commands share the {cores} cores",
        args.hosts
    );
    let shared = hakube_round(&targets, &key, &kh, args.runs, &mut next_id, &files).await;
    print_round(&shared, args.hosts, args.runs, cores, true);
    let ans_shared = args
        .ansible
        .as_deref()
        .map(|p| ansible_round(p, &lab, args.hosts, args.ansible_runs, &mut next_id));

    println!(
        "\n2. own CPU per host: each host confined to {budget:.3} cores (cgroup cpu quota, \
         hakube-lab Host::cpu_limit), alone or among {}, like separate machines; the client \
         keeps the rest",
        args.hosts
    );
    let mut confined = None;
    let limited = lab.hosts().iter().try_for_each(|h| h.cpu_limit(budget));
    match limited {
        Err(hakube_lab::Error::CpuLimitUnavailable { reason, .. }) => {
            println!("  skipped: {reason}");
        }
        other => {
            other.unwrap();
            let r = hakube_round(&targets, &key, &kh, args.runs, &mut next_id, &files).await;
            print_round(&r, args.hosts, args.runs, cores, false);
            let a = args
                .ansible
                .as_deref()
                .map(|p| ansible_round(p, &lab, args.hosts, args.ansible_runs, &mut next_id));
            confined = Some((r, a));
        }
    }

    println!("\nsummary");
    let speedup = |a: (Duration, Duration), r: &Round| {
        (
            a.0.as_secs_f64() / r.cold1.as_secs_f64(),
            a.1.as_secs_f64() / r.coldn.as_secs_f64(),
        )
    };
    println!(
        "  {} hosts / 1 host, cold: shared CPU {:.2}x{}",
        args.hosts,
        shared.coldn.as_secs_f64() / shared.cold1.as_secs_f64(),
        confined.as_ref().map_or(String::new(), |(r, _)| format!(
            ", own CPU per host {:.2}x (goal <= 1.5x)",
            r.coldn.as_secs_f64() / r.cold1.as_secs_f64()
        ))
    );
    if let Some(a) = ans_shared {
        let (s1, sn) = speedup(a, &shared);
        println!(
            "  speed-up over Ansible (goal >= 10x), shared CPU: 1 host {s1:.1}x, {} hosts {sn:.1}x",
            args.hosts
        );
    } else {
        println!("  (no --ansible-playbook given: Ansible not measured)");
    }
    if let Some((r, Some(a))) = &confined {
        let (s1, sn) = speedup(*a, r);
        println!(
            "  speed-up over Ansible, own CPU per host: 1 host {s1:.1}x, {} hosts {sn:.1}x",
            args.hosts
        );
    }
    drop(lab);
}
