#!/usr/bin/python3
# hakube-lab: kubeadm (v1.33 behaviour as far as hakube's bootstrap flow depends on it). Both
# modes check the arguments and the v1beta4 config files as kubeadm does, write the files real
# kubeadm writes (a real openssl CA, kubelet.conf, admin.conf) and print output shaped like
# recorded real output; they differ in the cluster behind the control-plane endpoint (API below).
#
# API = "cluster" (the twin's): like real kubeadm it keeps the cluster's state in the cluster: `init` creates a real CA
# (openssl), an API server certificate with the configured SANs, etcd's CA and certificates
# (etcd/ca, etcd/server, etcd/healthcheck-client, apiserver-etcd-client, at kubeadm's paths),
# writes the static Pod manifests of etcd (a real etcd, `--data-dir=/var/lib/etcd`) and of the
# API server (the stand-in kube-apiserver.py, keeping its objects in that etcd) to
# /etc/kubernetes/manifests, starts the kubelet (the twin's runs static Pods), and stores the
# bootstrap token (Secret kube-system/bootstrap-token-<id>), the discovery ConfigMap
# kube-public/cluster-info, the uploaded-certs Secret and the Node. `join` discovers through
# the control-plane endpoint with the bootstrap token, checks the CA pin and (for control-plane
# joins) the certificate key, adds an etcd member (stacked etcd: a real multi-member cluster)
# and writes this master's own manifests, so every master runs etcd and an API server.
# Output is shaped like recorded real output.
# Twin simplifications: etcd's client port is TLS with client certificates as kubeadm sets it
# up, its peer port is plain HTTP; the manifests are shaped like kubeadm v1.32's, without
# probes' effect (the kubelet stand-in restarts a container only when it exits).
#
# API = "operation-log" (flow tests on plain lab hosts, no etcd or kubelet): the cluster is
# operation-log-api.py at the control-plane endpoint (plain HTTP), which keeps what kubeadm
# keeps in the cluster (members, token, uploaded-certs key, CA pin), refuses joins as the real
# cluster would, and logs every operation in order (the tests assert on that log). `init`
# creates the CA and registers it there; `join` gets the CA from it.
import base64, datetime, hashlib, json, os, re, secrets, socket, ssl, subprocess, sys, time
import urllib.error, urllib.request
import yaml

# Set by hakube_lab::stand_ins::kubeadm_script (one line, exactly this shape).
API = "cluster"
PKI = "/etc/kubernetes/pki"
TWIN = "/etc/kubernetes/hakube-twin"
TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def die(msg, code=1):
    print(f"error execution phase: {msg}", file=sys.stderr)
    sys.exit(code)


def write(path, text, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def sh(cmd):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"{cmd.split()[0]}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


KINDS = {("kubeadm.k8s.io/v1beta4", k) for k in ("InitConfiguration", "ClusterConfiguration", "JoinConfiguration",
                                                 "ResetConfiguration", "UpgradeConfiguration")}
KINDS |= {("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"),
          ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration")}


def load(path):
    try:
        docs = [d for d in yaml.safe_load_all(open(path)) if d]
    except (OSError, yaml.YAMLError) as e:
        die(f"config {path}: {e}")
    for d in docs:
        if (d.get("apiVersion"), d.get("kind")) not in KINDS:
            die(f"config {path}: unsupported apiVersion/kind {d.get('apiVersion')}/{d.get('kind')}")
    return {d.get("kind"): d for d in docs}


def arg(args, flag):
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


class Api:
    """The cluster's API at `endpoint` (HTTPS), as a bearer token."""

    def __init__(self, endpoint, token, ca_pem=None):
        self.endpoint, self.token = endpoint, token
        self.ctx = ssl.create_default_context()
        if ca_pem is None:
            self.ctx.check_hostname = False
            self.ctx.verify_mode = ssl.CERT_NONE
        else:
            self.ctx.load_verify_locations(cadata=ca_pem)
            self.ctx.check_hostname = False

    def call(self, method, path, body=None, ctype="application/json", ok404=False, attempts=60):
        data = None if body is None else json.dumps(body).encode()
        last = None
        for _ in range(attempts):
            req = urllib.request.Request(f"https://{self.endpoint}{path}", data=data, method=method)
            req.add_header("Authorization", f"Bearer {self.token}")
            if data is not None:
                req.add_header("Content-Type", ctype)
            try:
                with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
                    return json.loads(r.read() or b"{}")
            except urllib.error.HTTPError as e:
                if e.code == 404 and ok404:
                    return None
                if e.code in (502, 503):
                    last = f"{e.code}"
                    time.sleep(0.5)
                    continue
                die(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}")
            except (OSError, ssl.SSLError) as e:
                last = e
                time.sleep(0.5)
        die(f"couldn't reach the API at {self.endpoint}: {last}")

    def apply(self, path, obj):
        return self.call("PATCH", path + "?fieldManager=kubeadm&force=true", obj, "application/apply-patch+yaml")


def oplog(endpoint, op, body=None):
    """An operation on operation-log-api.py at `endpoint` (plain HTTP)."""
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://{endpoint}/{op}", data=data), timeout=10) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        die(f"{op}: {e.read().decode(errors='replace')}")
    except OSError as e:
        die(f"{op}: cannot reach the API at {endpoint}: {e}")


def admin_endpoint(paths=("/etc/kubernetes/admin.conf",)):
    """The API endpoint (host:port) of the first kubeconfig in `paths` that exists."""
    for p in paths:
        try:
            text = open(p).read()
        except OSError:
            continue
        return re.search(r"server: https://(\S+)", text).group(1)
    die(f"couldn't read {paths[0]}")


def kubeconfig(endpoint, ca_pem, user, token):
    ca = base64.b64encode(ca_pem.encode()).decode()
    return (f"apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n"
            f"    server: https://{endpoint}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n"
            f"    user: {user}\n  name: {user}@kubernetes\ncurrent-context: {user}@kubernetes\n"
            f"users:\n- name: {user}\n  user:\n    token: {token}\n")


def ca_hash(pem_path=f"{PKI}/ca.crt"):
    der = subprocess.run(f"openssl x509 -pubkey -noout -in {pem_path} | openssl pkey -pubin -outform der",
                         shell=True, capture_output=True, check=True).stdout
    return "sha256:" + hashlib.sha256(der).hexdigest()


def my_addr():
    out = sh("ip -o -4 addr show dev eth0")
    return re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out).group(1)


MANIFESTS = "/etc/kubernetes/manifests"
ETCD_IMAGE = "registry.k8s.io/etcd:3.5.16-0"
ETCDCTL_TLS = ["--cacert", f"{PKI}/etcd/ca.crt", "--cert", f"{PKI}/etcd/healthcheck-client.crt",
               "--key", f"{PKI}/etcd/healthcheck-client.key"]


def etcdctl(*args, endpoints="https://127.0.0.1:2379"):
    return subprocess.run(["etcdctl", "--endpoints", endpoints, *ETCDCTL_TLS, *args],
                          capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})


def host_path_volume(name, path, kind="DirectoryOrCreate"):
    return {"hostPath": {"path": path, "type": kind}, "name": name}


def static_pod(name, component, image, command, mounts, volumes, annotations, probe_port, probe_path,
               probe_scheme, requests):
    """A static Pod manifest as kubeadm v1.32 writes it."""
    probe = lambda path, threshold: {
        "failureThreshold": threshold,
        "httpGet": {"host": "127.0.0.1", "path": path, "port": probe_port, "scheme": probe_scheme},
        "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 15}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"annotations": annotations, "creationTimestamp": None,
                     "labels": {"component": component, "tier": "control-plane"},
                     "name": name, "namespace": "kube-system"},
        "spec": {"containers": [{
            "command": command, "image": image, "imagePullPolicy": "IfNotPresent",
            "livenessProbe": probe(probe_path[0], 8), "name": component,
            "readinessProbe": probe(probe_path[1], 3),
            "resources": {"requests": requests},
            "startupProbe": probe(probe_path[0], 24),
            "volumeMounts": mounts}],
            "hostNetwork": True, "priority": 2000001000,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": volumes},
        "status": {}}


def write_manifest(name, pod):
    os.makedirs(MANIFESTS, exist_ok=True)
    write(f"{MANIFESTS}/{name}.yaml", yaml.safe_dump(pod, sort_keys=False), 0o600)


def etcd_manifest(name, addr, initial_cluster, state):
    cmd = ["etcd", f"--advertise-client-urls=https://{addr}:2379", f"--cert-file={PKI}/etcd/server.crt",
           "--client-cert-auth=true", "--data-dir=/var/lib/etcd",
           "--experimental-initial-corrupt-check=true",
           "--experimental-watch-progress-notify-interval=5s",
           f"--initial-advertise-peer-urls=http://{addr}:2380", f"--initial-cluster={initial_cluster}"]
    if state == "existing":
        cmd.append("--initial-cluster-state=existing")
    cmd += [f"--key-file={PKI}/etcd/server.key",
            f"--listen-client-urls=https://127.0.0.1:2379,https://{addr}:2379",
            "--listen-metrics-urls=http://127.0.0.1:2381", f"--listen-peer-urls=http://{addr}:2380",
            f"--name={name}", "--snapshot-count=10000", f"--trusted-ca-file={PKI}/etcd/ca.crt"]
    write_manifest("etcd", static_pod(
        "etcd", "etcd", ETCD_IMAGE, cmd,
        [{"mountPath": "/var/lib/etcd", "name": "etcd-data"},
         {"mountPath": f"{PKI}/etcd", "name": "etcd-certs"}],
        [host_path_volume("etcd-certs", f"{PKI}/etcd"), host_path_volume("etcd-data", "/var/lib/etcd")],
        {"kubeadm.kubernetes.io/etcd.advertise-client-urls": f"https://{addr}:2379"},
        2381, ("/livez", "/readyz"), "HTTP", {"cpu": "100m", "memory": "100Mi"}))


def apiserver_manifest(addr, cc):
    version = cc.get("kubernetesVersion", "v1.32.0")
    cmd = ["kube-apiserver", f"--advertise-address={addr}", "--allow-privileged=true",
           "--authorization-mode=Node,RBAC", f"--client-ca-file={PKI}/ca.crt",
           "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
           f"--etcd-cafile={PKI}/etcd/ca.crt", f"--etcd-certfile={PKI}/apiserver-etcd-client.crt",
           f"--etcd-keyfile={PKI}/apiserver-etcd-client.key", "--etcd-servers=https://127.0.0.1:2379",
           "--secure-port=6443",
           f"--service-cluster-ip-range={(cc.get('networking') or {}).get('serviceSubnet', '10.96.0.0/12')}",
           f"--tls-cert-file={PKI}/apiserver.crt", f"--tls-private-key-file={PKI}/apiserver.key",
           # The twin's admin credential is a token (real kubeadm issues client certificates).
           f"--token-auth-file={TWIN}/tokens"]
    write_manifest("kube-apiserver", static_pod(
        "kube-apiserver", "kube-apiserver", f"registry.k8s.io/kube-apiserver:{version}", cmd,
        [{"mountPath": "/etc/kubernetes/pki", "name": "k8s-certs", "readOnly": True},
         {"mountPath": TWIN, "name": "hakube-twin", "readOnly": True}],
        [host_path_volume("k8s-certs", PKI), host_path_volume("hakube-twin", TWIN)],
        {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": f"{addr}:6443"},
        6443, ("/livez", "/readyz"), "HTTPS", {"cpu": "250m"}))


def start_kubelet():
    print("[kubelet-start] Starting the kubelet")
    sh("systemctl restart kubelet")


def wait_local(port, path=None, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((my_addr(), port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    die(f"nothing listens on :{port} after {timeout}s")


def sign(ca, name, cn, ext, org=None):
    """A key and certificate `name` signed by the CA `ca` (paths under PKI, without suffix)."""
    subj = f"/CN={cn}" + (f"/O={org}" if org else "")
    sh(f"openssl req -newkey rsa:2048 -nodes -keyout {PKI}/{name}.key -subj {subj} "
       f"-out {PKI}/{name}.csr 2>/dev/null")
    write(f"{PKI}/{name}.ext", ext + "\n", 0o644)
    sh(f"openssl x509 -req -in {PKI}/{name}.csr -CA {PKI}/{ca}.crt -CAkey {PKI}/{ca}.key -CAcreateserial "
       f"-days 365 -extfile {PKI}/{name}.ext -out {PKI}/{name}.crt 2>/dev/null")
    os.remove(f"{PKI}/{name}.csr")


def etcd_certs(name, addr):
    """etcd's server and client certificates under the etcd CA, at kubeadm's paths."""
    sign("etcd/ca", "etcd/server", name,
         f"subjectAltName=DNS:localhost,DNS:{name},IP:{addr},IP:127.0.0.1\n"
         "extendedKeyUsage=serverAuth,clientAuth")
    sign("etcd/ca", "etcd/healthcheck-client", "kube-etcd-healthcheck-client",
         "extendedKeyUsage=clientAuth")
    sign("etcd/ca", "apiserver-etcd-client", "kube-apiserver-etcd-client",
         "extendedKeyUsage=clientAuth")


def server_cert(addr, cc, ic):
    sans = {"kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost", addr, "127.0.0.1",
            ic["nodeRegistration"]["name"]}
    ep = cc.get("controlPlaneEndpoint", "")
    sans.add(ep.rsplit(":", 1)[0])
    sans.update(str(s) for s in (cc.get("apiServer") or {}).get("certSANs") or [])
    ext = ",".join(("IP:" if re.match(r"^\d+\.\d+\.\d+\.\d+$", s) else "DNS:") + s for s in sorted(sans))
    sh(f"openssl req -newkey rsa:2048 -nodes -keyout {PKI}/apiserver.key -subj /CN=kube-apiserver "
       f"-out {PKI}/apiserver.csr 2>/dev/null")
    write(f"{PKI}/apiserver.ext", f"subjectAltName={ext}\n", 0o644)
    sh(f"openssl x509 -req -in {PKI}/apiserver.csr -CA {PKI}/ca.crt -CAkey {PKI}/ca.key -CAcreateserial "
       f"-days 365 -extfile {PKI}/apiserver.ext -out {PKI}/apiserver.crt 2>/dev/null")


def token_secret(token, ttl_hours=24):
    tid, tsec = TOKEN.match(token).groups()
    exp = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=ttl_hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    enc = lambda s: base64.b64encode(s.encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{tid}", "namespace": "kube-system"},
            "data": {"token-id": enc(tid), "token-secret": enc(tsec), "expiration": enc(exp),
                     "usage-bootstrap-authentication": enc("true"), "usage-bootstrap-signing": enc("true"),
                     "auth-extra-groups": enc("system:bootstrappers:kubeadm:default-node-token")}}


def certs_secret(key, admin_token):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kubeadm-certs", "namespace": "kube-system"},
            "data": {"certificate-key-sha256": base64.b64encode(hashlib.sha256(key.encode()).hexdigest().encode()).decode(),
                     "ca.crt": base64.b64encode(open(f"{PKI}/ca.crt", "rb").read()).decode(),
                     "ca.key": base64.b64encode(open(f"{PKI}/ca.key", "rb").read()).decode(),
                     "etcd-ca.crt": base64.b64encode(open(f"{PKI}/etcd/ca.crt", "rb").read()).decode(),
                     "etcd-ca.key": base64.b64encode(open(f"{PKI}/etcd/ca.key", "rb").read()).decode(),
                     "admin-token": base64.b64encode(admin_token.encode()).decode()}}


def node_obj(name, cp, labels=None):
    lab = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if cp:
        lab["node-role.kubernetes.io/control-plane"] = ""
    lab.update(labels or {})
    o = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": lab}}
    if cp:
        o["spec"] = {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}
    return o


def admin_api():
    try:
        cfg = yaml.safe_load(open("/etc/kubernetes/admin.conf"))
    except OSError:
        die("couldn't read /etc/kubernetes/admin.conf")
    c = cfg["clusters"][0]["cluster"]
    return Api(c["server"].removeprefix("https://"), cfg["users"][0]["user"]["token"],
               base64.b64decode(c["certificate-authority-data"]).decode())


def init(args):
    cfg = arg(args, "--config") or die("--config is required here")
    if "--upload-certs" not in args:
        die("the HA flow needs --upload-certs")
    docs = load(cfg)
    ic, cc = docs.get("InitConfiguration") or die("no InitConfiguration"), docs.get("ClusterConfiguration") or die("no ClusterConfiguration")
    if docs.get("KubeletConfiguration", {}).get("cgroupDriver") != "systemd":
        die("KubeletConfiguration.cgroupDriver must be systemd")
    if not re.match(r"^v1\.\d+\.\d+$", str(cc.get("kubernetesVersion", ""))):
        die("kubernetesVersion must be pinned")
    ep = cc.get("controlPlaneEndpoint") or die("controlPlaneEndpoint is required for HA")
    token = ic["bootstrapTokens"][0]["token"]
    key = str(ic.get("certificateKey", ""))
    if not TOKEN.match(token) or not HEX64.match(key):
        die("malformed bootstrap token or certificate key")
    name = ic["nodeRegistration"]["name"]
    if os.path.exists("/etc/kubernetes/kubelet.conf"):
        die("[preflight] Some fatal errors occurred:\n\t[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists")
    if API == "operation-log":
        init_oplog(ep, name, token, key)
    else:
        init_cluster(ep, name, token, key, ic, cc)
    h = ca_hash()
    print(f"[init] Using Kubernetes version: {cc['kubernetesVersion']}")
    print('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')
    print(f"[upload-certs] Using certificate key:\n{key}")
    print(f"[bootstrap-token] Using token: {token}\n")
    print("Your Kubernetes control-plane has initialized successfully!\n")
    print("You can now join any number of control-plane nodes running the following command on each as root:\n")
    print(f"  kubeadm join {ep} --token {token} \\\n\t--discovery-token-ca-cert-hash {h} \\\n\t--control-plane --certificate-key {key}\n")
    print("Then you can join any number of worker nodes by running the following on each as root:\n")
    print(f"kubeadm join {ep} --token {token} \\\n\t--discovery-token-ca-cert-hash {h} ")


def init_oplog(ep, name, token, key):
    """The CA, then the cluster registers this first member (and the CA pin) at `ep`."""
    os.makedirs(PKI, exist_ok=True)
    sh(f"openssl req -x509 -newkey rsa:2048 -nodes -keyout {PKI}/ca.key -subj /CN=kubernetes -days 3650 -out {PKI}/ca.crt 2>/dev/null")
    time.sleep(0.4)
    ca_pem = open(f"{PKI}/ca.crt").read()
    oplog(ep, "init", {"node": name, "token": token, "cert_key": key, "ca_hash": ca_hash(), "ca_pem": ca_pem})
    write("/etc/kubernetes/admin.conf", kubeconfig(ep, ca_pem, "kubernetes-admin", ""))
    write("/etc/kubernetes/kubelet.conf", kubeconfig(ep, ca_pem, f"system:node:{name}", ""))


def init_cluster(ep, name, token, key, ic, cc):
    """The PKI, etcd and the API server as static Pods, and the cluster's objects in them."""
    addr = my_addr()
    os.makedirs(f"{PKI}/etcd", exist_ok=True)
    sh(f"openssl req -x509 -newkey rsa:2048 -nodes -keyout {PKI}/ca.key -subj /CN=kubernetes -days 3650 -out {PKI}/ca.crt 2>/dev/null")
    sh(f"openssl req -x509 -newkey rsa:2048 -nodes -keyout {PKI}/etcd/ca.key -subj /CN=etcd-ca -days 3650 -out {PKI}/etcd/ca.crt 2>/dev/null")
    server_cert(addr, cc, ic)
    etcd_certs(name, addr)
    ca_pem = open(f"{PKI}/ca.crt").read()
    admin_token = secrets.token_hex(24)
    write(f"{TWIN}/tokens", admin_token + "\n")
    print(f'[etcd] Creating static Pod manifest for local etcd in "{MANIFESTS}"')
    etcd_manifest(name, addr, f"{name}=http://{addr}:2380", "new")
    print(f'[control-plane] Using manifest folder "{MANIFESTS}"')
    apiserver_manifest(addr, cc)
    start_kubelet()
    print(f'[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory "{MANIFESTS}"')
    wait_local(6443)
    api = Api(ep, admin_token, ca_pem)
    api.call("GET", "/readyz", attempts=120)
    for ns in ("kube-system", "kube-public", "kube-node-lease", "default"):
        api.apply(f"/api/v1/namespaces/{ns}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    api.apply("/api/v1/namespaces/kube-public/configmaps/cluster-info", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": kubeconfig(ep, ca_pem, "", "").split("contexts:")[0]}})
    api.apply("/api/v1/namespaces/kube-system/configmaps/hakube-twin-etcd", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hakube-twin-etcd", "namespace": "kube-system"},
        "data": {"endpoints": f"https://{addr}:2379"}})
    print('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace')
    api.apply("/api/v1/namespaces/kube-system/configmaps/kubeadm-config", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": yaml.safe_dump(cc, sort_keys=False)}})
    tid = TOKEN.match(token).group(1)
    api.apply(f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{tid}", token_secret(token))
    api.apply("/api/v1/namespaces/kube-system/secrets/kubeadm-certs", certs_secret(key, admin_token))
    api.apply(f"/api/v1/nodes/{name}", node_obj(name, True))
    write("/etc/kubernetes/admin.conf", kubeconfig(ep, ca_pem, "kubernetes-admin", admin_token))
    write("/etc/kubernetes/kubelet.conf", kubeconfig(ep, ca_pem, f"system:node:{name}", admin_token))


def join(args):
    cfg = arg(args, "--config") or die("--config is required here")
    jc = load(cfg).get("JoinConfiguration") or die("no JoinConfiguration")
    bt = jc["discovery"]["bootstrapToken"]
    ep, token = bt["apiServerEndpoint"], bt["token"]
    if not TOKEN.match(token):
        die("malformed token")
    name = jc["nodeRegistration"]["name"]
    cp = jc.get("controlPlane")
    if os.path.exists("/etc/kubernetes/kubelet.conf"):
        die("[preflight] Some fatal errors occurred:\n\t[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists")
    if API == "operation-log":
        join_oplog(ep, token, name, bt, cp)
    else:
        join_cluster(ep, token, name, bt, cp, jc)
    if cp is not None:
        print("This node has joined the cluster and a new control plane instance was created:")
    else:
        print("This node has joined the cluster:")
    print("* Certificate signing request was sent to apiserver and a response was received.")


def join_oplog(ep, token, name, bt, cp):
    """The cluster at `ep` checks the token, the CA pin and the certificate key."""
    time.sleep(0.25)
    r = json.loads(oplog(ep, "join", {"node": name, "token": token, "ca_hashes": bt.get("caCertHashes", []),
                                      "control_plane": cp is not None,
                                      "cert_key": (cp or {}).get("certificateKey"),
                                      "advertise": ((cp or {}).get("localAPIEndpoint") or {}).get("advertiseAddress")}))
    write(f"{PKI}/ca.crt", r["ca_pem"], 0o644)
    write("/etc/kubernetes/kubelet.conf", kubeconfig(ep, r["ca_pem"], f"system:node:{name}", token))
    if cp is not None:
        write("/etc/kubernetes/admin.conf", kubeconfig(ep, r["ca_pem"], "kubernetes-admin", ""))


def join_cluster(ep, token, name, bt, cp, jc):
    """Discovery, the CA pin, and for a control plane its certificates, etcd member and Pods."""
    # Discovery: cluster-info through the endpoint, then the CA pin.
    api = Api(ep, token)
    info = api.call("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
    ca_pem = base64.b64decode(re.search(r"certificate-authority-data: (\S+)", info["data"]["kubeconfig"]).group(1)).decode()
    write(f"{PKI}/ca.crt", ca_pem, 0o644)
    pins = bt.get("caCertHashes") or []
    if not pins and not bt.get("unsafeSkipCAVerification"):
        die("discovery: none of caCertHashes or unsafeSkipCAVerification is set")
    if pins and ca_hash() not in pins:
        os.remove(f"{PKI}/ca.crt")
        die(f"couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{ca_hash()}\" are pinned")
    api = Api(ep, token, ca_pem)
    if cp is not None:
        key = str(cp.get("certificateKey", ""))
        certs = api.call("GET", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs", ok404=True)
        if certs is None:
            die("[download-certs] Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one")
        want = base64.b64decode(certs["data"]["certificate-key-sha256"]).decode()
        if hashlib.sha256(key.encode()).hexdigest() != want:
            die("[download-certs] error decoding certificate key: cipher: message authentication failed")
        write(f"{PKI}/ca.key", base64.b64decode(certs["data"]["ca.key"]).decode())
        os.makedirs(f"{PKI}/etcd", exist_ok=True)
        write(f"{PKI}/etcd/ca.crt", base64.b64decode(certs["data"]["etcd-ca.crt"]).decode(), 0o644)
        write(f"{PKI}/etcd/ca.key", base64.b64decode(certs["data"]["etcd-ca.key"]).decode())
        admin_token = base64.b64decode(certs["data"]["admin-token"]).decode()
        write(f"{TWIN}/tokens", admin_token + "\n")
        addr = (cp.get("localAPIEndpoint") or {}).get("advertiseAddress") or my_addr()
        # The cluster's configuration, as kubeadm reads it back from the cluster.
        kc = api.call("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config", ok404=True)
        cc = yaml.safe_load(kc["data"]["ClusterConfiguration"]) if kc else {"controlPlaneEndpoint": ep}
        server_cert(addr, cc, jc)
        etcd_certs(name, addr)
        etcd = api.call("GET", "/api/v1/namespaces/kube-system/configmaps/hakube-twin-etcd")
        eps = etcd["data"]["endpoints"]
        # etcd refuses a new member while the last one added has not caught up
        # ("unhealthy cluster"); kubeadm retries, as here.
        for _ in range(120):
            out = etcdctl("member", "add", name, f"--peer-urls=http://{addr}:2380", endpoints=eps)
            if out.returncode == 0 or "unhealthy cluster" not in out.stderr:
                break
            time.sleep(0.5)
        if out.returncode != 0:
            die(f"[etcd] adding member {name}: {out.stderr.strip().splitlines()[-1]}")
        print("[etcd] Announced new etcd member joining to the existing etcd cluster")
        initial = re.search(r'ETCD_INITIAL_CLUSTER="([^"]*)"', out.stdout).group(1)
        print('[etcd] Creating static Pod manifest for "etcd"')
        etcd_manifest(name, addr, initial, "existing")
        apiserver_manifest(addr, cc)
        start_kubelet()
        print("[etcd] Waiting for the new etcd member to join the cluster. This can take up to 40s")
        for _ in range(80):
            ok = etcdctl("endpoint", "health")
            if ok.returncode == 0:
                break
            time.sleep(0.5)
        else:
            die(f"[etcd] the new member {name} did not become healthy: {ok.stderr.strip()}")
        wait_local(6443)
        api.apply("/api/v1/namespaces/kube-system/configmaps/hakube-twin-etcd", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hakube-twin-etcd", "namespace": "kube-system"},
            "data": {"endpoints": eps + f",https://{addr}:2379"}})
    api.apply(f"/api/v1/nodes/{name}", node_obj(name, cp is not None))
    write("/etc/kubernetes/kubelet.conf", kubeconfig(ep, ca_pem, f"system:node:{name}", token))
    if cp is not None:
        write("/etc/kubernetes/admin.conf", kubeconfig(ep, ca_pem, "kubernetes-admin", admin_token))


def reset(args):
    if "-f" not in args and "--force" not in args:
        die("reset needs -f in automation")
    if API == "operation-log":
        confs = [p for p in ("/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf") if os.path.exists(p)]
        if confs:
            oplog(admin_endpoint(confs), "reset", {"node": os.uname().nodename})
        for p in confs:
            os.remove(p)
        subprocess.run("rm -rf /etc/kubernetes/pki /etc/kubernetes/manifests", shell=True)
        print("[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]")
        return
    # The kubelet stops the static Pods whose manifests go; etcd's data goes with them.
    subprocess.run(f"rm -rf {MANIFESTS}; sleep 1; systemctl stop kubelet", shell=True)
    for p in ("/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf"):
        if os.path.exists(p):
            os.remove(p)
    subprocess.run("rm -rf /etc/kubernetes/pki /etc/kubernetes/manifests; "
                   "find /var/lib/etcd -mindepth 1 -maxdepth 1 -exec rm -rf {} +", shell=True)
    print("[reset] Deleting contents of directories: [/var/lib/etcd /etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]")


def tokens():
    if API == "operation-log":
        sys.stdout.write(oplog(admin_endpoint(), "tokens"))
        return
    api = admin_api()
    rows = ["TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION   EXTRA GROUPS"]
    lst = api.call("GET", "/api/v1/namespaces/kube-system/secrets")
    for s in lst.get("items", []):
        if s.get("type") != "bootstrap.kubernetes.io/token":
            continue
        d = {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()}
        rows.append(f"{d['token-id']}.{d['token-secret']}   23h         {d.get('expiration', '<forever>')}   "
                    f"authentication,signing   <none>        {d.get('auth-extra-groups', '<none>')}")
    print("\n".join(rows))


def main(args):
    if args[:1] == ["init"] and args[1:3] == ["phase", "upload-certs"]:
        key = arg(args, "--certificate-key")
        if "--upload-certs" not in args or not key or not HEX64.match(key):
            die("upload-certs needs --upload-certs and a 64-hex --certificate-key")
        if API == "operation-log":
            oplog(admin_endpoint(), "upload-certs", {"cert_key": key})
        else:
            api = admin_api()
            api.apply("/api/v1/namespaces/kube-system/secrets/kubeadm-certs", certs_secret(key, api.token))
        print('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')
        print(f"[upload-certs] Using certificate key:\n{key}")
    elif args[:1] == ["init"]:
        init(args[1:])
    elif args[:1] == ["join"]:
        join(args[1:])
    elif args[:1] == ["reset"]:
        reset(args[1:])
    elif args[:2] == ["token", "list"]:
        tokens()
    elif args[:2] == ["token", "create"]:
        if len(args) < 3 or not TOKEN.match(args[2]):
            die("token create needs a well-formed token")
        tid = TOKEN.match(args[2]).group(1)
        if API == "operation-log":
            oplog(admin_endpoint(), "token-create", {"token": args[2]})
        else:
            admin_api().apply(f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{tid}", token_secret(args[2]))
        print(args[2])
    elif args[:2] == ["token", "delete"] and len(args) > 2:
        tid = args[2].split(".")[0]
        if API == "operation-log":
            oplog(admin_endpoint(), "token-delete", {"id": tid})
        else:
            admin_api().call("DELETE", f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{tid}", ok404=True)
        print(f'bootstrap token "{args[2]}" deleted')
    elif args[:3] == ["config", "images", "pull"]:
        v = arg(args, "--kubernetes-version") or "v1.33.2"
        for img in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
            print(f"[config/images] Pulled registry.k8s.io/{img}:{v}")
        print("[config/images] Pulled registry.k8s.io/coredns/coredns:v1.12.0")
        print("[config/images] Pulled registry.k8s.io/pause:3.10")
        print("[config/images] Pulled registry.k8s.io/etcd:3.5.21-0")
    elif args[:1] == ["version"]:
        print('kubeadm version: &version.Info{Major:"1", Minor:"33", GitVersion:"v1.33.2"}')
    else:
        die(f"hakube-lab kubeadm: unsupported {args}")


main(sys.argv[1:])
