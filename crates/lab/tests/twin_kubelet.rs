//! The twin's kubelet stand-in runs static Pods as the kubelet does: a manifest's container
//! starts, one that exits is started again, a changed manifest restarts the Pod with the new
//! command, a removed manifest stops it, dot files are skipped. Runs the script on this machine
//! against a temporary manifest directory (no root, no lab); needs python3 with PyYAML.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A static Pod whose container writes its pid and `tag` to `dir/<tag>.pid`, then sleeps.
fn manifest(dir: &Path, tag: &str) -> String {
    let script = format!("echo $$ > {}/{tag}.pid; exec sleep 600", dir.display());
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "sleeper", "namespace": "kube-system" },
        "spec": { "containers": [{ "name": "sleeper", "image": "busybox",
                                   "command": ["/bin/sh", "-c", script] }] },
    })
    .to_string()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pid(dir: &Path, tag: &str) -> Option<i32> {
    std::fs::read_to_string(dir.join(format!("{tag}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    // Not a zombie: the kubelet reaps what it stops.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

#[test]
fn static_pods_start_restart_change_and_stop() {
    // The twin runs it as /usr/bin/python3 (its shebang); a venv's python3 may lack PyYAML.
    let Some(python) = ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import yaml"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }) else {
        eprintln!("SKIP: python3 with PyYAML is needed (scripts/install-test-deps)");
        return;
    };
    let tmp = std::env::temp_dir().join(format!("hakube-twin-kubelet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let manifests = tmp.join("manifests");
    let out = tmp.join("out");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(manifests.join(".hidden.yaml"), manifest(&out, "hidden")).unwrap();
    std::fs::write(manifests.join("sleeper.yaml"), manifest(&out, "a")).unwrap();
    let kubelet = Kill(
        Command::new(python)
            .arg(hakube_lab::twin::kubelet_script())
            .arg(format!("--pod-manifest-path={}", manifests.display()))
            .env("HAKUBE_KUBELET_LOG_DIR", tmp.join("logs"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the Pod runs", || pid(&out, "a").is_some_and(alive));
    let first = pid(&out, "a").unwrap();
    // A container that dies is started again.
    std::fs::remove_file(out.join("a.pid")).unwrap();
    Command::new("kill")
        .arg("-9")
        .arg(first.to_string())
        .status()
        .unwrap();
    wait_for("the container restarts", || {
        pid(&out, "a").is_some_and(|p| p != first && alive(p))
    });
    let second = pid(&out, "a").unwrap();
    // A changed manifest: the old container stops, the new command runs.
    std::fs::write(manifests.join("sleeper.yaml"), manifest(&out, "b")).unwrap();
    wait_for("the new manifest runs", || {
        pid(&out, "b").is_some_and(alive)
    });
    wait_for("the old container stopped", || !alive(second));
    // A removed manifest: the Pod stops.
    let third = pid(&out, "b").unwrap();
    std::fs::rename(manifests.join("sleeper.yaml"), tmp.join("aside.yaml")).unwrap();
    wait_for("the Pod stopped", || !alive(third));
    assert!(
        pid(&out, "hidden").is_none(),
        "dot files are not static Pods"
    );
    drop(kubelet);
    let _ = std::fs::remove_dir_all(&tmp);
}
