#!/usr/bin/python3
# hakube-lab: kubectl, the verbs hakube's bootstrap uses on a master, against the API the
# kubeconfig names. Like the kubeadm stand-in it has two modes (API below):
# - "cluster" (the twin's): the Kubernetes API (token and CA from the kubeconfig); `get nodes`,
#   `label node`. Nodes are Ready once a CNI is in the cluster (a calico-node DaemonSet or
#   Calico's operator Installation), as real nodes become Ready when their CNI runs.
# - "operation-log": operation-log-api.py at the kubeconfig's endpoint (plain HTTP); `get
#   nodes`, `label node`, and `apply` of any file, which the log records as the CNI (nodes are
#   Ready from then on).
import base64, json, ssl, sys, urllib.error, urllib.request
import yaml

# Set by hakube_lab::stand_ins::kubectl_script (one line, exactly this shape).
API = "cluster"

args = sys.argv[1:]
cfg_path = "/etc/kubernetes/admin.conf"
if "--kubeconfig" in args:
    i = args.index("--kubeconfig")
    cfg_path = args[i + 1]
    del args[i:i + 2]
try:
    cfg = yaml.safe_load(open(cfg_path))
except OSError:
    print(f"error: stat {cfg_path}: no such file or directory", file=sys.stderr)
    sys.exit(1)
c = cfg["clusters"][0]["cluster"]
server = c["server"]


def oplog(op, body=None):
    """An operation on operation-log-api.py at the kubeconfig's endpoint (plain HTTP)."""
    ep = server.removeprefix("https://")
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://{ep}/{op}", data=data), timeout=10) as r:
            return r.read().decode()
    except OSError as e:
        print(f"The connection to the server {ep} was refused: {e}", file=sys.stderr)
        sys.exit(1)


if API == "operation-log":
    if args[:2] == ["get", "nodes"]:
        sys.stdout.write(oplog("nodes"))
    elif args[:1] == ["apply"]:
        oplog("cni", {})
        print("daemonset.apps/calico-node created")
    elif args[:2] == ["label", "node"] and len(args) > 2:
        labels = dict(a.split("=", 1) for a in args[3:] if "=" in a)
        oplog("label", {"node": args[2], "labels": labels})
        print(f"node/{args[2]} labeled")
    else:
        print(f"hakube-lab kubectl: unsupported {args}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)

token = cfg["users"][0]["user"]["token"]
ctx = ssl.create_default_context(cadata=base64.b64decode(c["certificate-authority-data"]).decode())
ctx.check_hostname = False


def call(method, path, body=None, ctype="application/json", ok404=False):
    req = urllib.request.Request(server + path, data=None if body is None else json.dumps(body).encode(), method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        if e.code == 404 and ok404:
            return None
        msg = e.read().decode(errors="replace")
        try:
            msg = json.loads(msg).get("message", msg)
        except ValueError:
            pass
        print(f"Error from server: {msg}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"The connection to the server {server} was refused - did you specify the right host or port? ({e})", file=sys.stderr)
        sys.exit(1)


def cni_running():
    ds = call("GET", "/apis/apps/v1/daemonsets", ok404=True) or {}
    if any(d["metadata"]["name"] == "calico-node" for d in ds.get("items", [])):
        return True
    inst = call("GET", "/apis/operator.tigera.io/v1/installations", ok404=True) or {}
    return bool(inst.get("items"))


if args[:2] == ["get", "nodes"]:
    ready = "Ready" if cni_running() else "NotReady"
    rows = ["NAME   STATUS   ROLES   AGE   VERSION"]
    for n in call("GET", "/api/v1/nodes").get("items", []):
        labels = n["metadata"].get("labels", {})
        role = "control-plane" if "node-role.kubernetes.io/control-plane" in labels else "<none>"
        rows.append(f"{n['metadata']['name']}   {ready}   {role}   1m   v1.33.2")
    print("\n".join(rows))
elif args[:2] == ["label", "node"]:
    name = args[2]
    labels = {}
    for a in args[3:]:
        if a.endswith("-") and "=" not in a:
            labels[a[:-1]] = None
        elif "=" in a:
            k, v = a.split("=", 1)
            labels[k] = v
    if any(v is None for v in labels.values()):
        print("hakube twin kubectl: removing labels is not supported", file=sys.stderr)
        sys.exit(1)
    call("PATCH", f"/api/v1/nodes/{name}?fieldManager=kubectl-label&force=true",
         {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}},
         "application/apply-patch+yaml")
    print(f"node/{name} labeled")
else:
    print(f"hakube-lab kubectl: unsupported {args}", file=sys.stderr)
    sys.exit(1)
