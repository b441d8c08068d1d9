//! Running a Pod's containers on a twin host, as the kubelet would run a Job's Pod there: the
//! twin has no container runtime and nothing runs CronJobs, so a test that needs what a Job
//! does (the etcd backup CronJob's snapshot on the NFS export) runs the Pod's own commands
//! through [`Twin::run_pod`].

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::Twin;
use crate::error::{Error, Result};

/// One container's run.
#[derive(Debug, Clone)]
pub struct ContainerRun {
    /// The container's name.
    pub name: String,
    /// Whether it is an init container.
    pub init: bool,
    /// Its exit status (-1 when killed by a signal or the deadline).
    pub status: i32,
    /// Its output (stdout then stderr).
    pub output: String,
}

/// What [`Twin::run_pod`] did: the containers that ran, in order (a failed one is the last).
#[derive(Debug, Clone)]
pub struct PodRun {
    /// The node (lab host) it ran on.
    pub node: String,
    /// The containers that ran.
    pub containers: Vec<ContainerRun>,
}

impl PodRun {
    /// Whether every container exited 0 (the Pod succeeded).
    #[must_use]
    pub fn succeeded(&self) -> bool {
        !self.containers.is_empty() && self.containers.iter().all(|c| c.status == 0)
    }
}

impl Twin {
    /// Runs the Pod spec `pod` (a `PodSpec` as JSON, e.g. a CronJob's
    /// `spec.jobTemplate.spec.template.spec`) on the lab host `node` the way the kubelet runs a
    /// Job's Pod with `restartPolicy: OnFailure` once: its init containers in order, each to
    /// completion (the first failure stops the Pod), then its containers (one after the
    /// other). Each container's `command` + `args` run as a process in the host (host network,
    /// as `hostNetwork: true` Pods), with its `env` (`value`, and `fieldRef` to
    /// `spec.nodeName` or `metadata.name`) and `$(VAR)` references expanded as the kubelet
    /// expands them.
    ///
    /// Volumes: a container's paths are those of its `volumeMounts`, mapped (in its command and
    /// env) to where the volume is on the host, since the twin has no per-container mount
    /// namespace: a `hostPath` volume is its path; an `emptyDir` a fresh directory under
    /// `/var/lib/kubelet/pods/<pod>/volumes` (removed afterwards); an `nfs` volume the export
    /// directory of the lab host at `server` (its private `/srv/nfs/...`, reached from the node
    /// through the lab's backing directory: what the NFS mount would show). `readOnly` is not
    /// enforced. Images are not pulled: commands run from the machine, an etcd image's
    /// `etcdutl` from the twin's when the machine has none (etcd 3.4).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field of a spec it cannot run (no containers, an
    /// unknown node or NFS server, a volume or env source it does not support), and the
    /// host's exec errors.
    pub fn run_pod(&self, node: &str, pod: &Value) -> Result<PodRun> {
        let bad = |field: &'static str, reason: String| Error::InvalidConfig { field, reason };
        let host = self
            .lab
            .hosts()
            .iter()
            .find(|h| h.name() == node)
            .ok_or_else(|| bad("node", format!("{node}: no such twin host")))?;
        let pod_name = format!("hakube-twin-pod-{}", super::random_hex(4)?);
        let pod_dir = format!("/var/lib/kubelet/pods/{pod_name}");
        let mut volumes: Vec<(String, String)> = Vec::new();
        for v in pod["volumes"].as_array().into_iter().flatten() {
            let name = v["name"].as_str().unwrap_or_default().to_owned();
            let path = if let Some(p) = v["hostPath"]["path"].as_str() {
                p.to_owned()
            } else if v.get("emptyDir").is_some() {
                format!("{pod_dir}/volumes/kubernetes.io~empty-dir/{name}")
            } else if let Some(server) = v["nfs"]["server"].as_str() {
                let export = v["nfs"]["path"].as_str().unwrap_or_default();
                let nfs = self
                    .lab
                    .hosts()
                    .iter()
                    .find(|h| h.addr().to_string() == server)
                    .ok_or_else(|| {
                        bad(
                            "volumes",
                            format!("{name}: no twin host at NFS server {server}"),
                        )
                    })?;
                let dir: PathBuf = nfs.host_path(export)?;
                if !dir.is_dir() {
                    return Err(bad(
                        "volumes",
                        format!("{name}: {} exports no {export}", nfs.name()),
                    ));
                }
                dir.display().to_string()
            } else {
                return Err(bad(
                    "volumes",
                    format!("{name}: only hostPath, emptyDir and nfs volumes run on the twin"),
                ));
            };
            volumes.push((name, path));
        }
        let mut script = format!("set -e; mkdir -p {pod_dir}");
        for (_, path) in &volumes {
            if path.starts_with(&pod_dir) {
                let _ = write!(script, " {path}");
            }
        }
        host.run(&script)?;
        let timeout = Duration::from_secs(pod["activeDeadlineSeconds"].as_u64().unwrap_or(900));
        let mut run = PodRun {
            node: node.to_owned(),
            containers: Vec::new(),
        };
        let groups = [("initContainers", true), ("containers", false)];
        let result = (|| {
            for (key, init) in groups {
                for c in pod[key].as_array().into_iter().flatten() {
                    let line = self.container_line(c, node, &pod_name, &volumes)?;
                    let out = host.exec_timeout(&line, timeout)?;
                    let status = out.status.code().unwrap_or(-1);
                    run.containers.push(ContainerRun {
                        name: c["name"].as_str().unwrap_or_default().to_owned(),
                        init,
                        status,
                        output: format!(
                            "{}{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        ),
                    });
                    if status != 0 {
                        return Ok(());
                    }
                }
            }
            Ok(())
        })();
        let _ = host.exec(&format!("rm -rf {pod_dir}"));
        result.map(|()| run)
    }

    /// The shell line that runs container `c` on the host.
    fn container_line(
        &self,
        c: &Value,
        node: &str,
        pod_name: &str,
        volumes: &[(String, String)],
    ) -> Result<String> {
        let bad = |reason: String| Error::InvalidConfig {
            field: "containers",
            reason,
        };
        let name = c["name"].as_str().unwrap_or("?");
        // mountPath -> where the volume is on the host.
        let mut mounts: Vec<(String, String)> = Vec::new();
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let vol = m["name"].as_str().unwrap_or_default();
            let at = m["mountPath"].as_str().unwrap_or_default();
            let src = volumes
                .iter()
                .find(|(n, _)| n == vol)
                .map(|(_, p)| p.clone())
                .ok_or_else(|| bad(format!("{name}: volumeMount {vol} names no volume")))?;
            mounts.push((at.to_owned(), src));
        }
        // Longest mount path first, so /a/b maps before /a.
        mounts.sort_by_key(|(at, _)| std::cmp::Reverse(at.len()));
        let map = |s: &str| map_paths(s, &mounts);
        let mut env: Vec<(String, String)> = Vec::new();
        for e in c["env"].as_array().into_iter().flatten() {
            let key = e["name"].as_str().unwrap_or_default().to_owned();
            let value = if let Some(v) = e["value"].as_str() {
                map(v)
            } else {
                match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("spec.nodeName") => node.to_owned(),
                    Some("metadata.name") => pod_name.to_owned(),
                    _ => {
                        return Err(bad(format!(
                            "{name}: env {key}: only value and fieldRef spec.nodeName/metadata.name run on the twin"
                        )));
                    }
                }
            };
            env.push((key, value));
        }
        let mut argv: Vec<String> = c["command"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(c["args"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .map(|a| map(&expand(a, &env)))
            .collect();
        if argv.is_empty() {
            return Err(bad(format!(
                "{name}: no command (the image's entrypoint cannot run on the twin)"
            )));
        }
        if argv[0] == "etcdutl" {
            let twin_etcdutl = self.bin.join("etcdutl").display().to_string();
            argv[0] = format!("$(command -v etcdutl || echo {twin_etcdutl})");
        }
        let mut line = String::from("exec env");
        for (k, v) in &env {
            let _ = write!(line, " {}", quote(&format!("{k}={v}")));
        }
        for (i, a) in argv.iter().enumerate() {
            if i == 0 && a.starts_with("$(") {
                let _ = write!(line, " \"{a}\"");
            } else {
                let _ = write!(line, " {}", quote(a));
            }
        }
        Ok(line)
    }
}

/// `s` with each mount path (at the start of a path in it) replaced by the volume's host path.
fn map_paths(s: &str, mounts: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    'outer: while i < s.len() {
        let prev_ok = i == 0
            || !s[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
        if prev_ok {
            for (at, src) in mounts {
                if at.is_empty() || !s[i..].starts_with(at.as_str()) {
                    continue;
                }
                let next = s[i + at.len()..].chars().next();
                if next.is_none_or(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
                {
                    out.push_str(src);
                    i += at.len();
                    continue 'outer;
                }
            }
        }
        let c = s[i..].chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// `$(VAR)` references to `env` expanded, as the kubelet expands them in command and args.
fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = s.to_owned();
    for (k, v) in env {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_at_path_starts_only() {
        let m = vec![
            ("/backup".to_owned(), "/x/b".to_owned()),
            ("/scratch".to_owned(), "/x/s".to_owned()),
        ];
        assert_eq!(
            map_paths("ls -1 /backup/etcd-*.db; ls -l /backup\n", &m),
            "ls -1 /x/b/etcd-*.db; ls -l /x/b\n"
        );
        assert_eq!(
            map_paths("--data-dir=/scratch/restore-check", &m),
            "--data-dir=/x/s/restore-check"
        );
        assert_eq!(map_paths("/backups /a/backup", &m), "/backups /a/backup");
        assert_eq!(
            map_paths("\"/backup/.partial-${NODE_NAME}.db\"", &m),
            "\"/x/b/.partial-${NODE_NAME}.db\""
        );
    }

    #[test]
    fn kubelet_expansion() {
        let env = vec![("NODE_NAME".to_owned(), "master-1".to_owned())];
        assert_eq!(
            expand("/backup/.partial-$(NODE_NAME).db", &env),
            "/backup/.partial-master-1.db"
        );
        assert_eq!(quote("a'b"), "'a'\\''b'");
    }
}
