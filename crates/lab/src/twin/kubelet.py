#!/usr/bin/python3
# hakube twin: kubelet, the static Pod part. Every ~0.5 s it reads the manifests in
# /etc/kubernetes/manifests (`*.yaml`, `*.yml`, `*.json`; dot files are skipped, as the real
# kubelet skips them) and, for each Pod, runs its containers' `command` + `args` as host
# processes (Pods there use the host network, as kubeadm's do), with the container's `env`:
# - a container that exits is started again (after 1 s, as with restartPolicy Always);
# - a manifest that changes stops the Pod and starts it from the new manifest;
# - a manifest that goes away stops the Pod (SIGTERM, SIGKILL after 10 s);
# - stopping the kubelet (SIGTERM) stops its Pods (the real kubelet leaves containers to the
#   runtime; the twin has none).
# Images are not pulled: a container's command runs from this machine. The API server image's
# `kube-apiserver` is the stand-in next to this program; everything else (etcd, etcdctl) is the
# real program of that name on PATH, `etcdutl` the twin's etcdutl next to this program when the
# machine has none (etcd 3.4's `etcdctl snapshot` does the same work).
# Container output goes to /var/log/pods/<namespace>_<pod>/<container>.log as the kubelet
# keeps it (here /var/lib/kubelet/pods-log/..., inside the host's private directories, or
# $HAKUBE_KUBELET_LOG_DIR). `--pod-manifest-path=DIR` reads another directory (for tests).
import hashlib, json, os, shutil, signal, subprocess, sys, time
import yaml

MANIFESTS = "/etc/kubernetes/manifests"
LOGS = "/var/lib/kubelet/pods-log"
for a in sys.argv[1:]:
    # The real kubelet's flag for the static Pod directory (its config file's staticPodPath).
    if a.startswith("--pod-manifest-path="):
        MANIFESTS = a.split("=", 1)[1]
LOGS = os.environ.get("HAKUBE_KUBELET_LOG_DIR", LOGS)
HERE = os.path.dirname(os.path.realpath(__file__))
POLL = 0.5


def entrypoint(cmd):
    """The host command line that stands for a container's command."""
    if not cmd:
        return cmd
    prog = os.path.basename(cmd[0])
    if prog == "kube-apiserver":
        return [sys.executable, os.path.join(HERE, "kube-apiserver.py"), *cmd[1:]]
    if prog == "etcdutl" and shutil.which("etcdutl") is None:
        return [os.path.join(HERE, "etcdutl"), *cmd[1:]]
    return cmd


def read_manifests():
    pods = {}
    try:
        names = sorted(os.listdir(MANIFESTS))
    except OSError:
        return pods
    for name in names:
        if name.startswith(".") or not name.endswith((".yaml", ".yml", ".json")):
            continue
        path = os.path.join(MANIFESTS, name)
        try:
            text = open(path, "rb").read()
            pod = yaml.safe_load(text)
        except (OSError, yaml.YAMLError) as e:
            log(f"static pod {path}: {e}")
            continue
        if not isinstance(pod, dict) or pod.get("kind") != "Pod":
            continue
        pods[path] = (hashlib.sha256(text).hexdigest(), pod)
    return pods


def log(msg):
    print(f"kubelet: {msg}", flush=True)


class Container:
    def __init__(self, pod, c):
        md = pod.get("metadata") or {}
        self.pod = f"{md.get('namespace', 'default')}/{md.get('name', '?')}"
        self.name = c.get("name", "?")
        self.argv = entrypoint([str(a) for a in (c.get("command") or []) + (c.get("args") or [])])
        self.env = {**os.environ, **{e["name"]: str(e.get("value", "")) for e in c.get("env") or []
                                     if "name" in e}}
        d = os.path.join(LOGS, f"{md.get('namespace', 'default')}_{md.get('name', '?')}")
        os.makedirs(d, exist_ok=True)
        self.log_path = os.path.join(d, f"{self.name}.log")
        self.proc = None
        self.next_start = 0.0
        self.restarts = -1

    def tick(self):
        if self.proc is not None and self.proc.poll() is None:
            return
        if self.proc is not None:
            log(f"{self.pod} container {self.name} exited with {self.proc.returncode}")
            self.proc = None
            self.next_start = time.time() + 1.0
        if time.time() < self.next_start or not self.argv:
            return
        self.restarts += 1
        out = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            log(f"{self.pod} started container {self.name} (pid {self.proc.pid}, "
                f"restarts {self.restarts})")
        except OSError as e:
            log(f"{self.pod} container {self.name}: {e}")
            self.next_start = time.time() + 1.0
        finally:
            out.close()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        log(f"{self.pod} stopped container {self.name}")


def main():
    running = {}  # manifest path -> (digest, [Container])

    def stop_all(*_):
        for _, cs in running.values():
            for c in cs:
                c.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    log(f"watching {MANIFESTS}")
    while True:
        want = read_manifests()
        for path in list(running):
            if path not in want or want[path][0] != running[path][0]:
                for c in running.pop(path)[1]:
                    c.stop()
        for path, (digest, pod) in want.items():
            if path not in running:
                spec = pod.get("spec") or {}
                running[path] = (digest, [Container(pod, c) for c in spec.get("containers") or []])
        for _, cs in running.values():
            for c in cs:
                c.tick()
        time.sleep(POLL)


if __name__ == "__main__":
    main()
