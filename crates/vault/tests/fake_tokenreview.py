"""A Kubernetes API server stand-in for TokenReview only, applying the API server's rules:

- the caller authenticates with a bearer token whose audiences include the API server's own
  (`https://kubernetes.default.svc.cluster.local`), else 401 (kube-apiserver's token
  authenticator with the default --api-audiences);
- `spec.token` is authenticated for `spec.audiences` (the API server's audience when empty):
  it must carry at least one of them, and `status.audiences` is the intersection
  (k8s.io/api authentication/v1 TokenReviewSpec/TokenReviewStatus docs).

Tokens are JWTs whose payload this stand-in reads without a signature check (it issued them).
Every review is appended to the log file as one JSON line.

usage: fake_tokenreview.py CERT KEY PORT_FILE LOG_FILE
"""
import base64
import http.server
import json
import ssl
import sys

API_AUD = "https://kubernetes.default.svc.cluster.local"


def claims(token):
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload))
    except Exception:
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
            return self.reply(404, {"kind": "Status", "code": 404})
        auth = self.headers.get("Authorization", "")
        caller = claims(auth[7:]) if auth.startswith("Bearer ") else None
        caller_ok = caller is not None and API_AUD in caller.get("aud", [])
        spec = body.get("spec", {})
        wanted = spec.get("audiences") or [API_AUD]
        entry = {
            "caller_sub": (caller or {}).get("sub"),
            "caller_authenticated": caller_ok,
            "spec_audiences": spec.get("audiences"),
        }
        if not caller_ok:
            entry["result"] = "401"
            with open(sys.argv[4], "a") as f:
                f.write(json.dumps(entry) + "\n")
            return self.reply(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        t = claims(spec.get("token", "")) or {}
        common = [a for a in t.get("aud", []) if a in wanted]
        k = t.get("kubernetes.io", {})
        if common:
            status = {
                "authenticated": True,
                "audiences": common,
                "user": {
                    "username": "system:serviceaccount:%s:%s" % (k.get("namespace"), k.get("serviceaccount", {}).get("name")),
                    "uid": k.get("serviceaccount", {}).get("uid"),
                    "groups": ["system:serviceaccounts", "system:serviceaccounts:%s" % k.get("namespace"), "system:authenticated"],
                },
            }
        else:
            status = {"authenticated": False, "error": "[invalid bearer token, token audiences %s is invalid for the target audiences %s]" % (t.get("aud"), wanted)}
        entry["result"] = "authenticated" if common else "refused"
        entry["token_sub"] = t.get("sub")
        with open(sys.argv[4], "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.reply(201, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                         "spec": spec, "status": status})


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(sys.argv[3] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
server.serve_forever()
