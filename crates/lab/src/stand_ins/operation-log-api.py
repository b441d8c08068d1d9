#!/usr/bin/python3
# hakube-lab: the cluster as the kubeadm and kubectl stand-ins see it in their "operation-log"
# mode: `operation-log-api.py ADDR PORT` (plain HTTP, e.g. on the VIP:6443). It keeps the state
# real kubeadm keeps in the cluster: members, the bootstrap token, the uploaded-certs key, the
# CA pin, whether a CNI was applied, node labels; and logs every operation in order with the
# node and the Host it was sent to (GET /state returns all of it, for tests to assert on).
# Joins are refused with the error real kubeadm would hit when the token, CA pin or certificate
# key do not match. A node named in /etc/kubernetes/fake-api-fail fails every join.
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
S = {"members": {}, "token": None, "token_exp": 0, "cert_key": None, "ca_hash": None,
     "ca_pem": None, "cni": False, "log": [], "labels": {}}

def failing():
    try:
        with open("/etc/kubernetes/fake-api-fail") as f:
            return set(f.read().split())
    except OSError:
        return set()

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body):
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            if self.path == "/nodes":
                rows = ["NAME   STATUS   ROLES   AGE   VERSION"]
                for n, m in sorted(S["members"].items()):
                    st = "Ready" if S["cni"] else "NotReady"
                    rows.append(f"{n}   {st}   {'control-plane' if m['cp'] else '<none>'}   1m   v1.33.2")
                return self.reply(200, "\n".join(rows) + "\n")
            if self.path == "/tokens":
                rows = ["TOKEN                     TTL   EXPIRES                USAGES                   DESCRIPTION   EXTRA GROUPS"]
                if S["token"]:
                    exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(S["token_exp"]))
                    rows.append(f"{S['token']}   23h   {exp}   authentication,signing   <none>   system:bootstrappers:kubeadm:default-node-token")
                return self.reply(200, "\n".join(rows) + "\n")
            if self.path == "/state":
                return self.reply(200, S)
        self.reply(404, "not found")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        op = self.path.strip("/")
        with LOCK:
            S["log"].append({"op": op, "node": body.get("node"), "t": time.time(),
                             "via": self.headers.get("Host")})
            if op == "init":
                if S["members"]:
                    return self.reply(409, "cluster already initialised")
                S.update(token=body["token"], token_exp=time.time() + 86400,
                         cert_key=body["cert_key"], ca_hash=body["ca_hash"], ca_pem=body["ca_pem"])
                S["members"][body["node"]] = {"cp": True}
                return self.reply(200, {})
            if op == "join":
                n = body["node"]
                if n in failing():
                    return self.reply(500, f"injected failure for {n}")
                if body["token"] != S["token"] or time.time() > S["token_exp"]:
                    return self.reply(403, "couldn't validate the identity of the API Server: token not found")
                if S["ca_hash"] not in body["ca_hashes"]:
                    return self.reply(403, "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys match")
                if body["control_plane"] and body.get("cert_key") != S["cert_key"]:
                    return self.reply(403, "error downloading certs: error decoding certificate key")
                S["members"][n] = {"cp": body["control_plane"]}
                return self.reply(200, {"ca_pem": S["ca_pem"]})
            if op == "reset":
                S["members"].pop(body["node"], None)
                return self.reply(200, {})
            if op == "token-create":
                S.update(token=body["token"], token_exp=time.time() + 86400)
                return self.reply(200, {})
            if op == "token-delete":
                if S["token"] and S["token"].startswith(body["id"] + "."):
                    S["token"] = None
                return self.reply(200, {})
            if op == "upload-certs":
                S["cert_key"] = body["cert_key"]
                return self.reply(200, {})
            if op == "cni":
                S["cni"] = True
                return self.reply(200, {})
            if op == "label":
                S["labels"].setdefault(body["node"], {}).update(body["labels"])
                return self.reply(200, {})
        self.reply(404, "unknown op")

addr, port = sys.argv[1], int(sys.argv[2])
ThreadingHTTPServer((addr, port), H).serve_forever()
