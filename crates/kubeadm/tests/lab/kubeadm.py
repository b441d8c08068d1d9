#!/usr/bin/python3
# Stand-in for kubeadm (v1.33 behaviour as far as the bootstrap flow depends on it): checks its
# arguments and the v1beta4 config file, talks to the fake API at the configured endpoint, writes
# the files real kubeadm writes (a real openssl CA on init, kubelet.conf, admin.conf) and prints
# output shaped like recorded real output.
import hashlib, json, os, re, subprocess, sys, time, urllib.request
import yaml

def die(msg, code=1):
    print(f"error execution phase: {msg}", file=sys.stderr)
    sys.exit(code)

def api(endpoint, op, body=None):
    url = f"http://{endpoint}/{op}"
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
            raw = r.read().decode()
    except urllib.error.HTTPError as e:
        die(f"{op}: {e.read().decode()}")
    except OSError as e:
        die(f"{op}: cannot reach the API at {endpoint}: {e}")
    return raw

def endpoint_from_kubeconfig(path="/etc/kubernetes/admin.conf"):
    try:
        text = open(path).read()
    except OSError:
        die(f"couldn't read {path}")
    return re.search(r"server: https://(\S+)", text).group(1)

def write(path, text, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)

def kubeconfig(endpoint, user):
    return f"apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://{endpoint}\n  name: kubernetes\nusers:\n- name: {user}\n"

def load(path):
    try:
        docs = [d for d in yaml.safe_load_all(open(path)) if d]
    except (OSError, yaml.YAMLError) as e:
        die(f"config {path}: {e}")
    for d in docs:
        ok = {("kubeadm.k8s.io/v1beta4", k) for k in ("InitConfiguration", "ClusterConfiguration", "JoinConfiguration", "ResetConfiguration", "UpgradeConfiguration")}
        ok |= {("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"), ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration")}
        if (d.get("apiVersion"), d.get("kind")) not in ok:
            die(f"config {path}: unsupported apiVersion/kind {d.get('apiVersion')}/{d.get('kind')}")
    return {d["kind"]: d for d in docs}

TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")

def arg(args, flag):
    if flag in args:
        return args[args.index(flag) + 1]
    return None

def ca_hash():
    pub = subprocess.run("openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der",
                         shell=True, capture_output=True, check=True).stdout
    return "sha256:" + hashlib.sha256(pub).hexdigest()

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
        die("[preflight] /etc/kubernetes/kubelet.conf already exists")
    os.makedirs("/etc/kubernetes/pki", exist_ok=True)
    subprocess.run("openssl req -x509 -newkey rsa:2048 -nodes -keyout /etc/kubernetes/pki/ca.key "
                   "-subj /CN=kubernetes -days 3650 -out /etc/kubernetes/pki/ca.crt 2>/dev/null",
                   shell=True, check=True)
    time.sleep(0.4)
    api(ep, "init", {"node": name, "token": token, "cert_key": key, "ca_hash": ca_hash(),
                     "ca_pem": open("/etc/kubernetes/pki/ca.crt").read()})
    write("/etc/kubernetes/admin.conf", kubeconfig(ep, "kubernetes-admin"))
    write("/etc/kubernetes/kubelet.conf", kubeconfig(ep, f"system:node:{name}"))
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

def join(args):
    cfg = arg(args, "--config") or die("--config is required here")
    jc = load(cfg).get("JoinConfiguration") or die("no JoinConfiguration")
    bt = jc["discovery"]["bootstrapToken"]
    ep = bt["apiServerEndpoint"]
    if not TOKEN.match(bt["token"]):
        die("malformed token")
    name = jc["nodeRegistration"]["name"]
    cp = jc.get("controlPlane")
    if os.path.exists("/etc/kubernetes/kubelet.conf"):
        die("[preflight] /etc/kubernetes/kubelet.conf already exists")
    time.sleep(0.25)
    r = json.loads(api(ep, "join", {"node": name, "token": bt["token"], "ca_hashes": bt.get("caCertHashes", []),
                                    "control_plane": cp is not None,
                                    "cert_key": (cp or {}).get("certificateKey"),
                                    "advertise": ((cp or {}).get("localAPIEndpoint") or {}).get("advertiseAddress")}))
    write("/etc/kubernetes/pki/ca.crt", r["ca_pem"], 0o644)
    write("/etc/kubernetes/kubelet.conf", kubeconfig(ep, f"system:node:{name}"))
    if cp is not None:
        write("/etc/kubernetes/admin.conf", kubeconfig(ep, "kubernetes-admin"))
        print("This node has joined the cluster and a new control plane instance was created:")
    else:
        print("This node has joined the cluster:")
    print("* Certificate signing request was sent to apiserver and a response was received.")

def reset(args):
    if "-f" not in args and "--force" not in args:
        die("reset needs -f in automation")
    ep = None
    for p in ("/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf"):
        if os.path.exists(p):
            ep = endpoint_from_kubeconfig(p)
    if ep:
        api(ep, "reset", {"node": os.uname().nodename})
    for p in ("/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf"):
        if os.path.exists(p):
            os.remove(p)
    subprocess.run("rm -rf /etc/kubernetes/pki /etc/kubernetes/manifests", shell=True)
    print("[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]")

def main(args):
    if args[:1] == ["init"] and args[1:3] == ["phase", "upload-certs"]:
        key = arg(args, "--certificate-key")
        if "--upload-certs" not in args or not key or not HEX64.match(key):
            die("upload-certs needs --upload-certs and a 64-hex --certificate-key")
        api(endpoint_from_kubeconfig(), "upload-certs", {"cert_key": key})
        print('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')
        print(f"[upload-certs] Using certificate key:\n{key}")
    elif args[:1] == ["init"]:
        init(args[1:])
    elif args[:1] == ["join"]:
        join(args[1:])
    elif args[:1] == ["reset"]:
        reset(args[1:])
    elif args[:2] == ["token", "list"]:
        sys.stdout.write(api(endpoint_from_kubeconfig(), "tokens"))
    elif args[:2] == ["token", "create"]:
        if len(args) < 3 or not TOKEN.match(args[2]):
            die("token create needs a well-formed token")
        api(endpoint_from_kubeconfig(), "token-create", {"token": args[2]})
        print(args[2])
    elif args[:2] == ["token", "delete"]:
        api(endpoint_from_kubeconfig(), "token-delete", {"id": args[2]})
    else:
        die(f"stand-in kubeadm: unsupported {args}")

main(sys.argv[1:])
