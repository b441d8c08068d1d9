//! Small helpers: running commands with error context, signals, /proc lookups, shell quoting.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The PATH every lab command and session gets: /usr/local/bin (stand-ins) before the system.
pub(crate) const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A printable command line for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, stdin closed, output captured. Fails on spawn errors only.
pub(crate) fn output(host: &str, cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null());
    cmd.output().map_err(|source| Error::Spawn {
        host: host.to_owned(),
        command: describe(cmd),
        source,
    })
}

/// Runs `cmd` and fails unless it exits 0.
pub(crate) fn run(host: &str, cmd: &mut Command) -> Result<Output> {
    let out = output(host, cmd)?;
    check(host, &describe(cmd), out)
}

/// Turns a finished command's output into an error unless it exited 0.
pub(crate) fn check(host: &str, command: &str, out: Output) -> Result<Output> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            host: host.to_owned(),
            command: command.to_owned(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs `ip -batch -` (optionally inside network namespace `ns`) with the given lines.
pub(crate) fn ip_batch(host: &str, ns: Option<&str>, lines: &[String]) -> Result<()> {
    use std::io::Write as _;
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let command = format!("{} <<< {}", describe(&cmd), lines.join("; "));
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        host: host.to_owned(),
        command: command.clone(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let text = lines.join("\n") + "\n";
        // A write error surfaces as a failed exit below.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| Error::Spawn {
        host: host.to_owned(),
        command: command.clone(),
        source,
    })?;
    check(host, &command, out).map(drop)
}

/// Runs `ip -force -batch -` (optionally in namespace `ns`), ignoring failures: for teardown.
pub(crate) fn ip_batch_force(ns: Option<&str>, lines: &[String]) {
    use std::io::Write as _;
    if lines.is_empty() {
        return;
    }
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Ok(mut child) = cmd.spawn() {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all((lines.join("\n") + "\n").as_bytes());
        }
        let _ = child.wait();
    }
}

/// Sends `signal` to every target (`PID` or `-PGID`) with one `kill`. Ignores missing ones.
pub(crate) fn signal_targets(targets: &[String], signal: &str) {
    if targets.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-s", signal, "--"])
        .args(targets)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Sends `signal` (a name such as `KILL`, `TERM`, `HUP`) to a process group. Ignores groups
/// that are already gone.
pub(crate) fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The live (not zombie) processes in process group `pgid`.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            // Fields after the name: state, ppid, pgrp.
            let mut f = rest.split_whitespace();
            let state = f.next();
            let pgrp = f.nth(1).and_then(|p| p.parse::<u32>().ok());
            state != Some("Z") && pgrp == Some(pgid)
        })
        .collect()
}

/// Whether any live (not zombie) process is in process group `pgid`.
pub(crate) fn group_alive(pgid: u32) -> bool {
    !group_members(pgid).is_empty()
}

/// Sends `signal` to each pid. Ignores pids that are already gone.
pub(crate) fn signal_pids(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let mut cmd = Command::new("kill");
    cmd.args(["-s", signal, "--"]);
    cmd.args(pids.iter().map(u32::to_string));
    let _ = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` up to `timeout`; returns whether it exited.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if start.elapsed() >= timeout => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// The start time of a process (field 22 of /proc/PID/stat), to tell a live owner from a
/// recycled pid.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts with " state ...": state is field 3, starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The pids listed in /proc/PID/task/PID/children.
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The pids whose network namespace is one of `names` (what `ip netns pids` does, for many
/// namespaces in one pass over /proc).
pub(crate) fn netns_pids(names: &[&str]) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let ids: Vec<(u64, u64)> = names
        .iter()
        .filter_map(|n| std::fs::metadata(Path::new("/run/netns").join(n)).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| ids.contains(&(m.dev(), m.ino())))
        })
        .collect()
}

/// The names of all network namespaces on the machine.
pub(crate) fn netns_list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills everything in network namespace `ns`, then deletes it. Best effort.
pub(crate) fn destroy_netns(ns: &str) {
    destroy_netns_all(&[ns]);
}

/// Kills everything in the network namespaces `names`, then deletes them. Best effort.
pub(crate) fn destroy_netns_all(names: &[&str]) {
    for _ in 0..5 {
        let pids = netns_pids(names);
        if pids.is_empty() {
            break;
        }
        signal_pids(&pids, "KILL");
        std::thread::sleep(Duration::from_millis(10));
    }
    let lines: Vec<String> = names.iter().map(|n| format!("netns del {n}")).collect();
    ip_batch_force(None, &lines);
}

/// Deletes a link in the root namespace if it exists. Best effort.
pub(crate) fn delete_root_link(name: &str) {
    if Path::new("/sys/class/net").join(name).exists() {
        let _ = Command::new("ip")
            .args(["link", "del", name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Quotes `s` for POSIX sh (the one quoting function, `hakube-host-state`'s).
pub(crate) use hakube_host_state::shell_quote as sh_quote;

/// The effective uid of this process, from /proc/self/status.
pub(crate) fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("abc/d.e"), "abc/d.e");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(process_start_time(std::process::id()).is_some());
    }
}
