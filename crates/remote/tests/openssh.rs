//! Integration tests against real OpenSSH servers (sshd on 127.0.0.1, high ports, temp config).
//! They need root to run sshd and skip with a message otherwise; CI runs them.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ClientKey, Sshd, can_run_sshd};
use hakube_remote::{
    Auth, Command, Error, ExitStatus, FanOut, File, HostKey, HostKeyPolicy, NoProgress,
    PushOutcome, RemoteExec, SshConfig, SshPool, SshSession, Target, fan_out, push_file,
};

fn target(sshd: &Sshd) -> Target {
    Target::new(format!("h{}", sshd.port), "127.0.0.1").port(sshd.port)
}

fn known_hosts(dir: &std::path::Path, servers: &[&Sshd]) -> std::path::PathBuf {
    let path = dir.join("known_hosts");
    let text: String = servers.iter().map(|s| s.known_hosts_line()).collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn session(key: &ClientKey, sshd: &Sshd, policy: HostKeyPolicy) -> SshSession {
    SshSession::new(
        target(sshd),
        SshConfig::new(Auth::key_file(key.private()), policy),
    )
}

fn pinned(sshd: &Sshd) -> HostKeyPolicy {
    HostKeyPolicy::Pinned(vec![HostKey::parse_openssh(&sshd.host_key()).unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_signals_stdout_stderr_env_and_stdin() {
    if !can_run_sshd("exit_codes_signals_stdout_stderr_env_and_stdin") {
        return;
    }
    let key = ClientKey::new();
    let sshd = Sshd::start(&key);
    let s = session(&key, &sshd, pinned(&sshd));

    let out = s
        .run(&Command::shell("echo out; echo err >&2; exit 3"))
        .await
        .unwrap();
    assert_eq!(
        (out.stdout_lossy().as_str(), out.stderr_lossy().as_str()),
        ("out\n", "err\n")
    );
    assert_eq!(out.status, ExitStatus::Code(3));
    let err = s.run_ok(&Command::new("false")).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::CommandFailed {
                status: ExitStatus::Code(1),
                ..
            }
        ),
        "{err}"
    );

    let out = s.run(&Command::shell("kill -TERM $$")).await.unwrap();
    assert_eq!(
        out.status,
        ExitStatus::Signal {
            name: "TERM".into(),
            core_dumped: false
        }
    );

    let nasty = [
        "it's",
        "$(id)",
        "a b\tc",
        "new\nline",
        "*",
        "",
        "--",
        "ünï ✓",
        "\\",
    ];
    let out = s
        .run_ok(
            &Command::new("printf")
                .arg("%s\\0")
                .args(nasty)
                .env("V", "x'y $z")
                .stdin("ignored"),
        )
        .await
        .unwrap();
    let words: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .map(|w| String::from_utf8(w.to_vec()).unwrap())
        .collect();
    let mut want: Vec<String> = nasty.iter().map(|s| (*s).to_owned()).collect();
    want.push(String::new());
    assert_eq!(words, want);

    let out = s
        .run_ok(&Command::new("printenv").arg("V").env("V", "x'y $z\nw"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"x'y $z\nw\n");

    let input: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let out = s
        .run_ok(&Command::new("cat").stdin(input.clone()))
        .await
        .unwrap();
    assert_eq!(out.stdout, input);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_outputs_on_both_streams() {
    if !can_run_sshd("large_outputs_on_both_streams") {
        return;
    }
    let key = ClientKey::new();
    let sshd = Sshd::start(&key);
    let s = session(&key, &sshd, pinned(&sshd));
    let out = s
        .run_ok(&Command::shell(
            "head -c 8000000 /dev/zero; head -c 3000000 /dev/zero | tr '\\0' e >&2",
        ))
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 8_000_000);
    assert_eq!(out.stderr.len(), 3_000_000);
    assert!(out.stderr.iter().all(|b| *b == b'e'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_safe_idempotent_push_and_read_back() {
    if !can_run_sshd("binary_safe_idempotent_push_and_read_back") {
        return;
    }
    let key = ClientKey::new();
    let sshd = Sshd::start(&key);
    let s = session(&key, &sshd, pinned(&sshd));
    let remote_dir = tempfile::tempdir().unwrap();
    let path = format!("{}/sub dir/it's.bin", remote_dir.path().display());
    let content: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = File::new(&path, content.clone())
        .mode(0o640)
        .owner("root", "root");

    assert_eq!(
        push_file(&s, &file, false).await.unwrap(),
        PushOutcome::Created
    );
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert_eq!(s.read_file(&path, false).await.unwrap(), content);
    let remote_sum = s
        .run_ok(&Command::new("sha256sum").arg(&path))
        .await
        .unwrap()
        .stdout_lossy();
    assert!(remote_sum.starts_with(&file.sha256()), "{remote_sum}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o7777, 0o640);

    assert_eq!(
        push_file(&s, &file, false).await.unwrap(),
        PushOutcome::Unchanged
    );
    assert_eq!(
        push_file(&s, &file.clone().mode(0o600), false)
            .await
            .unwrap(),
        PushOutcome::MetadataChanged
    );
    let changed = File::new(&path, b"\0\x01\xff\n".to_vec()).mode(0o600);
    assert_eq!(
        push_file(&s, &changed, false).await.unwrap(),
        PushOutcome::ContentChanged
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"\0\x01\xff\n");
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(format!("{}/sub dir", remote_dir.path().display()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["it's.bin".to_owned()]);

    // Small files take the one-round-trip path: same outcomes.
    let small_path = format!("{}/etc/small.cfg", remote_dir.path().display());
    let small = File::new(&small_path, b"bind :6443\n\0\xfe".to_vec())
        .mode(0o644)
        .owner("root", "root");
    assert_eq!(
        push_file(&s, &small, false).await.unwrap(),
        PushOutcome::Created
    );
    assert_eq!(
        push_file(&s, &small, false).await.unwrap(),
        PushOutcome::Unchanged
    );
    let regroup = small.clone().owner("root", "daemon");
    assert_eq!(
        push_file(&s, &regroup, false).await.unwrap(),
        PushOutcome::MetadataChanged
    );
    let state = s.file_state(&small_path, false).await.unwrap().unwrap();
    assert_eq!(
        (state.mode, state.owner.as_str(), state.group.as_str()),
        (0o644, "root", "daemon")
    );
    let edited = File::new(&small_path, b"bind :443\n".to_vec()).mode(0o600);
    assert_eq!(
        push_file(&s, &edited, false).await.unwrap(),
        PushOutcome::ContentChanged
    );
    assert_eq!(std::fs::read(&small_path).unwrap(), b"bind :443\n");
    assert_eq!(
        push_file(&s, &edited, false).await.unwrap(),
        PushOutcome::Unchanged
    );

    // Modes with execute bits take the chmod path.
    let script_path = format!("{}/bin/run.sh", remote_dir.path().display());
    let script = File::new(&script_path, "#!/bin/sh\necho ran\n").mode(0o755);
    assert_eq!(
        push_file(&s, &script, false).await.unwrap(),
        PushOutcome::Created
    );
    assert_eq!(
        s.run_ok(&Command::new(&script_path)).await.unwrap().stdout,
        b"ran\n"
    );
    assert_eq!(
        s.file_state(&script_path, false)
            .await
            .unwrap()
            .unwrap()
            .mode,
        0o755
    );

    let err = s.read_file("/nonexistent/file", false).await.unwrap_err();
    assert!(matches!(err, Error::RemoteFile { op: "read", .. }), "{err}");
    assert!(
        s.file_state("/nonexistent/file", false)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_closes_the_command_and_the_session_stays_usable() {
    if !can_run_sshd("timeout_closes_the_command_and_the_session_stays_usable") {
        return;
    }
    let key = ClientKey::new();
    let sshd = Sshd::start(&key);
    let s = session(&key, &sshd, pinned(&sshd));
    let err = s
        .run(
            &Command::new("sleep")
                .arg("30")
                .timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("`sleep 30` timed out after 300ms"),
        "{err}"
    );
    assert!(s.run_ok(&Command::new("true")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_policies() {
    if !can_run_sshd("host_key_policies") {
        return;
    }
    let key = ClientKey::new();
    let mut sshd = Sshd::start(&key);
    let dir = tempfile::tempdir().unwrap();

    // known_hosts with a [host]:port entry
    let kh = known_hosts(dir.path(), &[&sshd]);
    session(&key, &sshd, HostKeyPolicy::KnownHosts(kh.clone()))
        .connect()
        .await
        .unwrap();

    // the same entry hashed by the real ssh-keygen -H
    let out = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(out.status.success());
    let hashed = std::fs::read_to_string(&kh).unwrap();
    assert!(hashed.starts_with("|1|"), "{hashed}");
    session(&key, &sshd, HostKeyPolicy::KnownHosts(kh.clone()))
        .connect()
        .await
        .unwrap();

    // unknown host: rejected by default
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let err = session(&key, &sshd, HostKeyPolicy::KnownHosts(empty.clone()))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownHostKey { .. }), "{err}");

    // accept-new records, then trusts
    let recorded = dir.path().join("recorded");
    session(&key, &sshd, HostKeyPolicy::AcceptNew(recorded.clone()))
        .connect()
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&recorded).unwrap(),
        sshd.known_hosts_line()
    );
    session(&key, &sshd, HostKeyPolicy::KnownHosts(recorded.clone()))
        .connect()
        .await
        .unwrap();

    // the host is reinstalled with a new key: changed, for every policy that knew it
    let old_pin = pinned(&sshd);
    sshd.restart(true);
    for policy in [
        HostKeyPolicy::KnownHosts(kh.clone()),
        HostKeyPolicy::AcceptNew(recorded.clone()),
        old_pin,
    ] {
        let err = session(&key, &sshd, policy.clone())
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::HostKeyChanged { .. }),
            "{policy:?}: {err}"
        );
        assert!(err.to_string().contains("HOST KEY CHANGED"), "{err}");
    }
    // accept-new did not overwrite the record
    assert_eq!(
        std::fs::read_to_string(&recorded).unwrap().lines().count(),
        1
    );
    session(&key, &sshd, pinned(&sshd)).connect().await.unwrap();
    session(&key, &sshd, HostKeyPolicy::DangerAcceptAny)
        .connect()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_by_agent_and_bad_key() {
    if !can_run_sshd("auth_by_agent_and_bad_key") {
        return;
    }
    let key = ClientKey::new();
    let sshd = Sshd::start(&key);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The socket file appears before the agent accepts on it: retry "connection refused".
    let mut added = None;
    for _ in 0..200 {
        let out = std::process::Command::new("ssh-add")
            .arg(key.private())
            .env("SSH_AUTH_SOCK", &sock)
            .output()
            .unwrap();
        let refused = String::from_utf8_lossy(&out.stderr).contains("Connection refused");
        added = Some(out);
        if !refused {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let added = added.unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let s = SshSession::new(
        target(&sshd),
        SshConfig::new(
            Auth::Agent {
                socket: Some(sock.clone()),
            },
            pinned(&sshd),
        ),
    );
    let out = s.run_ok(&Command::new("id").arg("-u")).await.unwrap();
    assert_eq!(out.stdout, b"0\n");
    let _ = agent.kill();
    let _ = agent.wait();

    let other = ClientKey::new();
    let err = session(&other, &sshd, pinned(&sshd))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_many_hosts_one_goes_away_and_reconnect() {
    if !can_run_sshd("fan_out_many_hosts_one_goes_away_and_reconnect") {
        return;
    }
    let key = ClientKey::new();
    let mut servers: Vec<Sshd> = (0..4).map(|_| Sshd::start(&key)).collect();
    let dir = tempfile::tempdir().unwrap();
    let kh = known_hosts(dir.path(), &servers.iter().collect::<Vec<_>>());
    let pool = SshPool::new(
        SshConfig::new(Auth::key_file(key.private()), HostKeyPolicy::KnownHosts(kh))
            .keepalive(Duration::from_secs(1), 3),
    );
    let hosts: Vec<Arc<dyn RemoteExec>> = servers
        .iter()
        .map(|s| pool.session(&target(s)) as Arc<dyn RemoteExec>)
        .collect();

    // many concurrent channels on one connection per host
    let results = fan_out(
        &hosts,
        "parallel",
        &FanOut::new(4),
        &NoProgress,
        |h| async move {
            let cmds: Vec<Command> = (0..10)
                .map(|i| Command::new("echo").arg(i.to_string()))
                .collect();
            let runs = cmds.iter().map(|c| h.run_ok(c));
            let outs = futures::future::try_join_all(runs).await?;
            Ok(outs.len())
        },
    )
    .await;
    assert!(
        results.iter().all(|r| matches!(r.result, Ok(10))),
        "{results:?}"
    );

    // host 2 goes away mid-step: a clear per-host error, the others finish
    let victim = hosts[2].host().to_owned();
    let four = FanOut::new(4);
    let step = fan_out(&hosts, "slow", &four, &NoProgress, |h| async move {
        h.run_ok(&Command::shell("sleep 1; echo done"))
            .await
            .map(|o| o.stdout_lossy())
    });
    let killer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        servers[2].kill_sessions();
    };
    let (results, ()) = tokio::join!(step, killer);
    for r in &results {
        if r.host == victim {
            let err = r.result.as_ref().unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::ConnectionLost { .. } | Error::NoExitStatus { .. }
                ),
                "{err}"
            );
            assert_eq!(err.host(), Some(victim.as_str()));
        } else {
            assert_eq!(r.result.as_ref().unwrap(), "done\n");
        }
    }

    // the pooled session reconnects on next use
    let again = pool.session(&target(&servers[2]));
    assert_eq!(
        again
            .run_ok(&Command::new("echo").arg("back"))
            .await
            .unwrap()
            .stdout,
        b"back\n"
    );
    // a server that is down entirely: connect error, safe to retry
    servers[3].kill();
    servers[3].kill_sessions();
    let err = hosts[3].run_ok(&Command::new("true")).await.unwrap_err();
    assert!(
        matches!(err, Error::Connect { .. } | Error::ConnectionLost { .. }),
        "{err}"
    );
    pool.close_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_for_non_root_users() {
    use std::os::unix::fs::PermissionsExt as _;
    if !can_run_sshd("sudo_for_non_root_users") {
        return;
    }
    let key = ClientKey::new();
    let mut sshd = Sshd::start(&key);
    // A test user and a `sudo` stand-in (in /usr/local/bin: records its arguments, insists on
    // -n, runs the rest) that exist only in this sshd's mount namespace: the machine is not
    // changed.
    let user = "hakubetest";
    let d = sshd.dir.path().to_owned();
    let d = d.as_path();
    let mut binds = String::new();
    for (file, line) in [
        ("passwd", "hakubetest:x:4242:4242::/tmp:/bin/sh"),
        ("group", "hakubetest:x:4242:"),
        ("shadow", "hakubetest:*:19000:0:99999:7:::"),
    ] {
        let mut text = std::fs::read_to_string(format!("/etc/{file}")).unwrap();
        text.push_str(line);
        text.push('\n');
        std::fs::write(d.join(file), text).unwrap();
        binds.push_str(&format!("{} /etc/{file}\n", d.join(file).display()));
    }
    std::fs::create_dir_all(d.join("bin")).unwrap();
    binds.push_str(&format!("{} /usr/local/bin\n", d.join("bin").display()));
    std::fs::write(d.join("binds"), binds).unwrap();
    sshd.restart(false);
    std::fs::create_dir_all(d.join("bin")).unwrap();
    std::fs::create_dir_all(d.join("out")).unwrap();
    std::fs::write(d.join("sudo.log"), "").unwrap();
    let stand_in = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\n[ \"$1\" = -n ] || exit 97\nshift\n[ \"$1\" = -- ] && shift\nexec \"$@\"\n",
        log = d.join("sudo.log").display()
    );
    std::fs::write(d.join("bin/sudo"), stand_in).unwrap();
    std::fs::set_permissions(d.join("bin/sudo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.join("out"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(d.join("sudo.log"), std::fs::Permissions::from_mode(0o666)).unwrap();

    let s = SshSession::new(
        Target::new("nonroot", "127.0.0.1")
            .port(sshd.port)
            .user(user),
        SshConfig::new(Auth::key_file(key.private()), pinned(&sshd)),
    );
    assert!(!s.is_root());
    let out = s
        .run_ok(
            &Command::new("printf")
                .arg("%s|")
                .args(["a b", "it's"])
                .env("X", "1 2")
                .sudo(true),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, b"a b|it's|");
    let out = s
        .run_ok(&Command::new("printenv").arg("X").env("X", "1 2").sudo(true))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"1 2\n");
    s.run_ok(&Command::new("true")).await.unwrap(); // no sudo asked: none used
    let path = format!("{}/out/f.cfg", d.display());
    let file = File::new(&path, b"x\0y".to_vec()).mode(0o600);
    assert_eq!(
        push_file(&s, &file, true).await.unwrap(),
        PushOutcome::Created
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"x\0y");
    let log = std::fs::read_to_string(d.join("sudo.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert_eq!(lines[0], "-n -- env X=1 2 printf %s| a b it's");
    assert!(lines[2].starts_with("-n -- sh -c "), "{log}");
}

fn mode_of(path: &str) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions())
        & 0o7777
}

fn names_in(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Pushes, reads and uploads without an owner by name (the SFTP path where the server offers
/// it). `large`: also files above the read-back limit (their comparison hashes on the host).
async fn file_round_trips(s: &SshSession, large: bool) {
    let remote_dir = tempfile::tempdir().unwrap();
    let base = remote_dir.path().display().to_string();
    let path = format!("{base}/sub dir/deeper/it's.bin");
    let size = if large { 3_000_000u32 } else { 100_000 };
    let content: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = File::new(&path, content.clone()).mode(0o640);

    // Created with missing parents, byte for byte, with exactly the mode asked for.
    assert_eq!(
        push_file(s, &file, false).await.unwrap(),
        PushOutcome::Created
    );
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert_eq!(mode_of(&path), 0o640);
    assert_eq!(s.read_file(&path, false).await.unwrap(), content);
    assert_eq!(
        push_file(s, &file, false).await.unwrap(),
        PushOutcome::Unchanged
    );
    assert_eq!(
        push_file(s, &file.clone().mode(0o600), false)
            .await
            .unwrap(),
        PushOutcome::MetadataChanged
    );
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(std::fs::read(&path).unwrap(), content);

    // Same size, one byte different: still seen.
    let mut edited = content.clone();
    edited[size as usize / 2] ^= 0xff;
    let edited = File::new(&path, edited).mode(0o600);
    assert_eq!(
        push_file(s, &edited, false).await.unwrap(),
        PushOutcome::ContentChanged
    );
    assert_eq!(std::fs::read(&path).unwrap(), edited.content);

    // The umask does not apply: the mode is exactly what was asked for, with exec bits too.
    let open_path = format!("{base}/open.cfg");
    let open = File::new(&open_path, "x\n").mode(0o666);
    assert_eq!(
        push_file(s, &open, false).await.unwrap(),
        PushOutcome::Created
    );
    assert_eq!(mode_of(&open_path), 0o666);
    let script_path = format!("{base}/bin/run.sh");
    let script = File::new(&script_path, "#!/bin/sh\necho ran\n").mode(0o755);
    assert_eq!(
        push_file(s, &script, false).await.unwrap(),
        PushOutcome::Created
    );
    assert_eq!(mode_of(&script_path), 0o755);

    // upload always writes; an empty file is a file.
    s.upload(&File::new(&open_path, Vec::new()).mode(0o644), false)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&open_path).unwrap(), b"");
    assert_eq!(mode_of(&open_path), 0o644);
    assert_eq!(s.read_file(&open_path, false).await.unwrap(), b"");

    // Failures name the operation and path, and leave no temporary file behind.
    let err = s
        .read_file(&format!("{base}/missing"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RemoteFile { op: "read", path, .. } if path.ends_with("/missing")),
        "{err}"
    );
    let under_a_file = format!("{open_path}/child.cfg");
    let err = push_file(s, &File::new(&under_a_file, "y\n"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RemoteFile { op: "upload", path, .. } if *path == under_a_file),
        "{err}"
    );
    assert_eq!(names_in(&format!("{base}/sub dir/deeper")), ["it's.bin"]);
    assert_eq!(names_in(&base), ["bin", "open.cfg", "sub dir"]);
    assert_eq!(names_in(&format!("{base}/bin")), ["run.sh"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_sftp_and_over_the_shell_behave_the_same() {
    if !can_run_sshd("files_over_sftp_and_over_the_shell_behave_the_same") {
        return;
    }
    let key = ClientKey::new();
    let with_sftp = Sshd::start(&key);
    let without = Sshd::start_without_sftp(&key);
    for sshd in [&with_sftp, &without] {
        let s = session(&key, sshd, pinned(sshd));
        file_round_trips(&s, true).await;
        s.disconnect().await;
        // Reconnecting starts a new SFTP session (or finds none again).
        file_round_trips(&s, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_take_sftp_when_the_server_offers_it() {
    if !can_run_sshd("files_take_sftp_when_the_server_offers_it") {
        return;
    }
    // Every session of this server is an SFTP server: no shell command can run, so the file
    // operations below can only have worked over SFTP.
    let key = ClientKey::new();
    let sshd = Sshd::start_with(&key, "ForceCommand internal-sftp\n");
    let s = session(&key, &sshd, pinned(&sshd));
    let out = s.run(&Command::new("echo").arg("shell")).await.unwrap();
    assert_ne!(
        out.stdout, b"shell\n",
        "the shell ran: the test proves nothing"
    );
    file_round_trips(&s, false).await;
}
