//! Benchmark: hakube-remote against Ansible on the same hosts and the same steps.
//!
//! Steps per host: upload 3 files, run 10 short commands, read a file back. Measured on N
//! hosts and on 1 host, cold (connections set up inside the measurement) for both tools.
//! Ansible runs with forks=N, pipelining on, no fact gathering, SSH ControlPersist (its
//! defaults for multiplexing) with a fresh control directory per run.
//!
//! Hosts are real OpenSSH servers started by this program (root needed): one sshd per host
//! on 127.0.0.1, each with its own host key, port and temp dir.
//!
//! Run through `crates/remote/scripts/bench-vs-ansible`, or directly:
//! `cargo run -p hakube-remote --release --example bench_fanout -- --hosts 12 --ansible-playbook PATH`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{ClientKey, Sshd};
use hakube_remote::{
    Auth, Command, FanOut, HostKeyPolicy, NoProgress, RemoteExec, SshConfig, SshPool, Target,
    Upload, fan_out, push_file,
};

struct Args {
    hosts: usize,
    ansible: Option<PathBuf>,
    runs: usize,
    ansible_runs: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        hosts: 12,
        ansible: None,
        runs: 7,
        ansible_runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--hosts" => args.hosts = val().parse().unwrap(),
            "--ansible-playbook" => args.ansible = Some(PathBuf::from(val())),
            "--runs" => args.runs = val().parse().unwrap(),
            "--ansible-runs" => args.ansible_runs = val().parse().unwrap(),
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

/// Where the "remote" files go (all test hosts share this machine's file system).
static BASE: OnceLock<String> = OnceLock::new();

fn base() -> &'static str {
    BASE.get().map_or("/tmp/hakube-bench", String::as_str)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The hakube side: fresh pool (cold connections), all hosts concurrently, steps in order per host.
async fn hakube_run(
    servers: &[&Sshd],
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
    let hosts: Vec<Arc<dyn RemoteExec>> = servers
        .iter()
        .map(|s| {
            pool.session(&Target::new(format!("h{}", s.port), "127.0.0.1").port(s.port))
                as Arc<dyn RemoteExec>
        })
        .collect();
    let results = fan_out(
        &hosts,
        "bench",
        &FanOut::new(hosts.len()),
        &NoProgress,
        |h| async move {
            let dir = format!("{}/{run_id}/hakube/{}", base(), h.host());
            for (name, content) in files {
                push_file(
                    h.as_ref(),
                    &Upload::new(format!("{dir}/{name}"), content.clone()).mode(0o644),
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
        },
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
    servers: &[&Sshd],
    run_id: &str,
    files: &[(&str, Vec<u8>)],
) -> Duration {
    let hosts: Vec<Arc<dyn RemoteExec>> = servers
        .iter()
        .map(|s| {
            pool.session(&Target::new(format!("h{}", s.port), "127.0.0.1").port(s.port))
                as Arc<dyn RemoteExec>
        })
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
        |h| async move {
            let dir = format!("{}/{run_id}/warm/{}", base(), h.host());
            for (name, content) in files {
                push_file(
                    h.as_ref(),
                    &Upload::new(format!("{dir}/{name}"), content.clone()).mode(0o644),
                )
                .await?;
            }
            for i in 0..10 {
                h.run_ok(&Command::new("echo").arg(format!("step {i}")))
                    .await?;
            }
            h.read_file(&format!("{dir}/{}", files[0].0), false)
                .await
                .map(|_| ())
        },
    )
    .await;
    assert!(results.iter().all(|r| r.result.is_ok()));
    started.elapsed()
}

fn write_ansible_project(
    dir: &Path,
    servers: &[&Sshd],
    key: &Path,
    known_hosts: &Path,
    files_dir: &Path,
    names: &[&str],
) {
    let mut inv = String::from("[bench]\n");
    for s in servers {
        inv.push_str(&format!(
            "h{port} ansible_host=127.0.0.1 ansible_port={port} ansible_user=root\n",
            port = s.port
        ));
    }
    inv.push_str(&format!(
        "\n[bench:vars]\nansible_python_interpreter=/usr/bin/python3\nansible_ssh_private_key_file={}\n",
        key.display()
    ));
    std::fs::write(dir.join("inventory.ini"), inv).unwrap();
    let cfg = format!(
        "[defaults]\nforks = {forks}\nhost_key_checking = True\ngathering = explicit\nretry_files_enabled = False\n\
         interpreter_python = /usr/bin/python3\nstdout_callback = default\n\
         [ssh_connection]\npipelining = True\n\
         ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={kh} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes\n",
        forks = servers.len().max(1),
        kh = known_hosts.display()
    );
    std::fs::write(dir.join("ansible.cfg"), cfg).unwrap();
    let mut play = String::from("- hosts: bench\n  gather_facts: false\n  tasks:\n");
    for name in names {
        play.push_str(&format!(
            "    - copy:\n        src: {src}\n        dest: \"{base}/{{{{ run_id }}}}/ansible/{{{{ inventory_hostname }}}}/{name}\"\n        mode: \"0644\"\n",
            src = files_dir.join(name).display(),
            base = base()
        ));
    }
    for i in 0..10 {
        play.push_str(&format!("    - command: echo step {i}\n"));
    }
    play.push_str(&format!(
        "    - slurp:\n        src: \"{}/{{{{ run_id }}}}/ansible/{{{{ inventory_hostname }}}}/{}\"\n",
        base(),
        names[0]
    ));
    std::fs::write(dir.join("play.yml"), play).unwrap();
}

fn ansible_run(
    playbook: &Path,
    dir: &Path,
    run_id: &str,
    limit: &str,
    servers: &[&Sshd],
) -> Duration {
    // `copy` does not create parent directories; make them (outside the measurement).
    for s in servers {
        std::fs::create_dir_all(format!("{}/{run_id}/ansible/h{}", base(), s.port)).unwrap();
    }
    let control = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = std::process::Command::new(playbook)
        .arg("-i")
        .arg(dir.join("inventory.ini"))
        .arg(dir.join("play.yml"))
        .args(["--limit", limit, "-e", &format!("run_id={run_id}")])
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

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    if !common::can_run_sshd("bench_fanout") {
        std::process::exit(1);
    }
    let key = ClientKey::new();
    let servers: Vec<Sshd> = (0..args.hosts).map(|_| Sshd::start(&key)).collect();
    let all: Vec<&Sshd> = servers.iter().collect();
    let one: Vec<&Sshd> = servers.iter().take(1).collect();
    let work = tempfile::tempdir().unwrap();
    let kh = work.path().join("known_hosts");
    BASE.set(work.path().join("remote").display().to_string())
        .unwrap();
    std::fs::write(
        &kh,
        servers
            .iter()
            .map(Sshd::known_hosts_line)
            .collect::<String>(),
    )
    .unwrap();
    let files = payloads();
    let files_dir = work.path().join("files");
    std::fs::create_dir_all(&files_dir).unwrap();
    for (name, content) in &files {
        std::fs::write(files_dir.join(name), content).unwrap();
    }
    let bench_id = format!("{}", std::process::id());
    let mut counter = 0;
    let mut next_id = || {
        counter += 1;
        format!("{bench_id}-{counter}")
    };

    println!(
        "steps per host: upload 3 files ({} bytes), 10 commands, read 1 file back; {} hosts (real sshd on 127.0.0.1)",
        files.iter().map(|(_, c)| c.len()).sum::<usize>(),
        args.hosts
    );
    // warm-up (page cache, binaries)
    hakube_run(&all, &key.private(), &kh, &next_id(), &files).await;

    let mut h1 = Vec::new();
    let mut hn = Vec::new();
    let (mut own, mut busy, mut total) = (0, 0, 0);
    for _ in 0..args.runs {
        h1.push(hakube_run(&one, &key.private(), &kh, &next_id(), &files).await);
        let before = cpu_ticks();
        hn.push(hakube_run(&all, &key.private(), &kh, &next_id(), &files).await);
        let after = cpu_ticks();
        own += after.0 - before.0;
        busy += after.1 - before.1;
        total += after.2 - before.2;
    }
    let hn_sum: f64 = hn.iter().map(Duration::as_secs_f64).sum();
    let (h1, hn) = (median(h1), median(hn));

    let pool = SshPool::new(SshConfig::new(
        Auth::key_file(key.private()),
        HostKeyPolicy::KnownHosts(kh.clone()),
    ));
    let mut w1 = Vec::new();
    let mut wn = Vec::new();
    for _ in 0..args.runs {
        w1.push(hakube_warm(&pool, &one, &next_id(), &files).await);
        wn.push(hakube_warm(&pool, &all, &next_id(), &files).await);
    }
    let (w1, wn) = (median(w1), median(wn));
    pool.close_all().await;

    println!("\nhakube-remote (median of {} runs)", args.runs);
    println!("  cold, 1 host:       {}", secs(h1));
    println!(
        "  cold, {:>2} hosts:     {}   ({:.2}x the 1-host time; goal <= 1.5x)",
        args.hosts,
        secs(hn),
        hn.as_secs_f64() / h1.as_secs_f64()
    );
    println!(
        "  during the {}-host runs: machine CPU {:.0}% busy ({} cores), hakube client process {:.0}% of one core",
        args.hosts,
        100.0 * busy as f64 / total.max(1) as f64,
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        100.0 * (own as f64 / 100.0) / hn_sum.max(1e-9)
    );
    println!("  warm pool, 1 host:  {}", secs(w1));
    println!(
        "  warm pool, {:>2} hosts:{}   ({:.2}x the 1-host time)",
        args.hosts,
        secs(wn),
        wn.as_secs_f64() / w1.as_secs_f64()
    );

    let Some(playbook) = args.ansible else {
        println!("\n(no --ansible-playbook given: Ansible not measured)");
        return;
    };
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    write_ansible_project(work.path(), &all, &key.private(), &kh, &files_dir, &names);
    let first = format!("h{}", servers[0].port);
    ansible_run(&playbook, work.path(), &next_id(), "all", &all); // warm-up
    let mut a1 = Vec::new();
    let mut an = Vec::new();
    for _ in 0..args.ansible_runs {
        a1.push(ansible_run(
            &playbook,
            work.path(),
            &next_id(),
            &first,
            &all,
        ));
        an.push(ansible_run(&playbook, work.path(), &next_id(), "all", &all));
    }
    let (a1, an) = (median(a1), median(an));
    println!(
        "\nansible-playbook (forks={}, pipelining, median of {} runs)",
        args.hosts, args.ansible_runs
    );
    println!("  1 host:   {}", secs(a1));
    println!(
        "  {:>2} hosts: {}   ({:.2}x the 1-host time)",
        args.hosts,
        secs(an),
        an.as_secs_f64() / a1.as_secs_f64()
    );
    println!(
        "\nspeed-up of hakube-remote (cold) over Ansible: 1 host {:.1}x, {} hosts {:.1}x (goal >= 10x)",
        a1.as_secs_f64() / h1.as_secs_f64(),
        args.hosts,
        an.as_secs_f64() / hn.as_secs_f64()
    );
}
