#!/usr/bin/env python3
"""A Kubernetes API server stand-in for tests (python3 standard library only).

    kube-apiserver.py --listen 127.0.0.1:6443 --cert tls.crt --key tls.key \
        --token-file token --state-dir DIR [--log FILE] [--establish-delay 0.2]
    kube-apiserver.py --advertise-address A --secure-port 6443 --tls-cert-file F \
        --tls-private-key-file F --token-auth-file F --etcd-servers https://127.0.0.1:2379 \
        --etcd-cafile F --etcd-certfile F --etcd-keyfile F   (kube-apiserver's flag names;
        others it does not know are ignored, as kubeadm's static Pod manifest passes many)

HTTPS with the given certificate, bearer-token authentication (401 Status otherwise). Objects
live in DIR/state.json (rewritten atomically after every change), so a restart sees them, or
in etcd with `--etcd-servers` (keys under /registry/, see EtcdState), so API servers on every
master share them. Every request is logged to FILE (default DIR/requests.log; none with etcd
and no --log) as `METHOD PATH?QUERY STATUS MILLISECONDS`; bodies are never logged. /readyz and
/healthz fail (503) while etcd does not answer.

What it serves, shaped like the real API server's answers (kube-apiserver v1.34):
- discovery: /version, /api, /api/v1, /apis, /apis/<group>/<version>, with the resources of
  every CustomResourceDefinition stored;
- GET, LIST (labelSelector with `k=v`, `k!=v`, `k`), DELETE, POST (create, 409 AlreadyExists),
  PUT (resourceVersion checked), and POST serviceaccounts/<name>/token (a TokenRequest);
- server-side apply: PATCH with `application/apply-patch+yaml` (a JSON body), `fieldManager`,
  `force`, `dryRun=All`; managedFields per manager; `resourceVersion` moves only when the
  object changed; a field another manager owns with a different value is a 409 Conflict
  Status with one `FieldManagerConflict` cause per field, unless `force=true`;
- namespaced objects need their Namespace (404 `namespaces "x" not found`);
- pods/<name>/portforward over WebSocket, as the kubelet's streaming server answers it
  (`pkg/kubelet/cri/streaming/portforward/websocket.go`, v1.34): subprotocol
  `v4.channel.k8s.io`, channels 2i (data) and 2i+1 (error) per requested port, each opened
  with the port as two little-endian bytes. A port P is reached at `status.podIP:P`, or at
  the `HOST:PORT` of the Pod's annotation `stand-in.hakube.io/forward-P` (tests running
  several "pods" on one host); a refused connection is written to the error channel;
- CustomResourceDefinitions get `NamesAccepted` and `Established` conditions
  `--establish-delay` seconds after they are first stored; Deployments, DaemonSets and
  StatefulSets are reported rolled out (status for the current generation).

Simplifications: lists are atomic in managedFields (no merge keys), no watch, no admission
beyond the namespace check, one version per group.
"""

import argparse
import base64
import copy
import datetime
import hashlib
import http.client
import http.server
import json
import os
import re
import select
import socket
import struct
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

# (group, version, kind, plural, namespaced)
BUILTIN = [
    ("", "v1", "Namespace", "namespaces", False),
    ("", "v1", "Node", "nodes", False),
    ("", "v1", "PersistentVolume", "persistentvolumes", False),
    ("", "v1", "ServiceAccount", "serviceaccounts", True),
    ("", "v1", "ConfigMap", "configmaps", True),
    ("", "v1", "Secret", "secrets", True),
    ("", "v1", "Service", "services", True),
    ("", "v1", "Endpoints", "endpoints", True),
    ("", "v1", "Pod", "pods", True),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True),
    ("apps", "v1", "Deployment", "deployments", True),
    ("apps", "v1", "DaemonSet", "daemonsets", True),
    ("apps", "v1", "StatefulSet", "statefulsets", True),
    ("batch", "v1", "Job", "jobs", True),
    ("batch", "v1", "CronJob", "cronjobs", True),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ("storage.k8s.io", "v1", "StorageClass", "storageclasses", False),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", True),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False),
    ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
     "validatingwebhookconfigurations", False),
    ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
     "mutatingwebhookconfigurations", False),
    ("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False),
]
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
ROLLOUT_KINDS = {"Deployment", "DaemonSet", "StatefulSet"}
NODES = 3  # DaemonSets are scheduled on this many nodes


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details is not None:
        s["details"] = details
    return s


class ApiError(Exception):
    def __init__(self, body):
        super().__init__(body["message"])
        self.body = body


def not_found(r, name):
    details = {"name": name, "kind": r.plural}
    if r.group:
        details["group"] = r.group
    return ApiError(status(404, "NotFound", f'{r.qualified} "{name}" not found', details))


class Resource:
    def __init__(self, group, version, kind, plural, namespaced):
        self.group, self.version, self.kind = group, version, kind
        self.plural, self.namespaced = plural, namespaced

    @property
    def qualified(self):
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    def discovery(self):
        singular = self.kind.lower()
        return {"name": self.plural, "singularName": singular, "namespaced": self.namespaced,
                "kind": self.kind, "verbs": VERBS}


class State:
    """Every object, keyed `group|plural|namespace|name`, kept in state.json."""

    def __init__(self, state_dir, establish_delay):
        self.path = os.path.join(state_dir, "state.json")
        self.establish_delay = establish_delay
        self.lock = threading.Lock()
        self.objects = {}
        self.rv = 1
        self.established_at = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                saved = json.load(f)
            self.objects = saved["objects"]
            self.rv = saved["resourceVersion"]
            self.established_at = saved.get("establishedAt", {})
        else:
            for ns in FRESH_NAMESPACES:
                self.objects[f"|namespaces||{ns}"] = fresh_namespace(ns, self.next_rv())

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"objects": self.objects, "resourceVersion": self.rv,
                       "establishedAt": self.established_at}, f)
        os.replace(tmp, self.path)

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def get(self, key):
        return self.objects.get(key)

    def put(self, key, obj, live):
        """Stores `obj` (`live` is what the caller read) and returns it as stored."""
        obj["metadata"]["resourceVersion"] = self.next_rv()
        self.objects[key] = obj
        self.save()
        return obj

    def delete(self, key):
        obj = self.objects.pop(key, None)
        if obj is not None:
            self.save()
        return obj

    def scan(self, r, namespace):
        """(objects of `r`, in `namespace` if given, sorted by key; the list's resourceVersion)."""
        out = []
        for key in sorted(self.objects):
            g, p, ns, _ = key.split("|", 3)
            if g == r.group and p == r.plural and (not namespace or ns == namespace):
                out.append(self.objects[key])
        return out, str(self.rv)

    def crds(self):
        return [o for k, o in self.objects.items()
                if k.startswith("apiextensions.k8s.io|customresourcedefinitions|")]

    def ready(self):
        return None

    def resources(self):
        out = [Resource(*r) for r in BUILTIN]
        for crd in self.crds():
            spec = crd.get("spec", {})
            names = spec.get("names", {})
            for v in spec.get("versions", []):
                if v.get("served", True):
                    out.append(Resource(spec.get("group", ""), v.get("name", "v1"),
                                        names.get("kind", ""), names.get("plural", ""),
                                        spec.get("scope") == "Namespaced"))
        return out

    def resource(self, group, version, plural):
        for r in self.resources():
            if r.group == group and r.version == version and r.plural == plural:
                return r
        return None

    @staticmethod
    def key(r, namespace, name):
        return f"{r.group}|{r.plural}|{namespace or ''}|{name}"

    def decorate(self, r, obj):
        """The object as a reader sees it (CRD conditions appear after the delay)."""
        if r.kind == "CustomResourceDefinition":
            name = obj["metadata"]["name"]
            at = self.established_at.get(name, 0)
            names = obj.get("spec", {}).get("names", {})
            conds = [{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                      "message": "no conflicts found", "lastTransitionTime": now_rfc3339()}]
            if time.time() >= at:
                conds.append({"type": "Established", "status": "True",
                              "reason": "InitialNamesAccepted",
                              "message": "the initial names have been accepted",
                              "lastTransitionTime": now_rfc3339()})
            obj = copy.deepcopy(obj)
            obj["status"] = {"conditions": conds, "acceptedNames": names,
                             "storedVersions": [v["name"] for v in
                                                obj.get("spec", {}).get("versions", [])
                                                if v.get("storage")]}
        return obj


FRESH_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def fresh_namespace(ns, rv=None):
    """A Namespace as a fresh cluster has it."""
    md = {"name": ns, "uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339(),
          "labels": {"kubernetes.io/metadata.name": ns}}
    if rv is not None:
        md["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": md,
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


# etcd key prefixes the real API server uses where they are not the resource's plural.
REGISTRY_PREFIX = {"nodes": "minions", "services": "services/specs",
                   "endpoints": "services/endpoints"}
BUILTIN_GROUPS = {g for g, *_ in BUILTIN} - {"apiextensions.k8s.io"}


def b64e(b):
    return base64.b64encode(b).decode()


def prefix_end(prefix):
    """etcd's range end for every key starting with `prefix` (bytes)."""
    b = bytearray(prefix)
    while b and b[-1] == 0xFF:
        b.pop()
    b[-1] += 1
    return bytes(b)


class Etcd:
    """An etcd v3 client over etcd's JSON gateway (`/v3/kv/...`), HTTP or HTTPS with a client
    certificate, on one kept-alive connection."""

    def __init__(self, url, cafile=None, certfile=None, keyfile=None, timeout=5):
        u = urllib.parse.urlsplit(url)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or 2379
        self.timeout = timeout
        self.ctx = None
        if self.https:
            self.ctx = ssl.create_default_context(cafile=cafile)
            self.ctx.check_hostname = False
            if certfile:
                self.ctx.load_cert_chain(certfile, keyfile)
        self.conn = None
        self.lock = threading.Lock()

    def call(self, path, body):
        data = json.dumps(body).encode()
        with self.lock:
            for attempt in (0, 1):
                if self.conn is None:
                    if self.https:
                        self.conn = http.client.HTTPSConnection(
                            self.host, self.port, timeout=self.timeout, context=self.ctx)
                    else:
                        self.conn = http.client.HTTPConnection(self.host, self.port,
                                                               timeout=self.timeout)
                try:
                    self.conn.request("POST", path, data, {"Content-Type": "application/json"})
                    resp = self.conn.getresponse()
                    text = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    self.conn.close()
                    self.conn = None
                    if attempt:
                        raise ApiError(status(503, "ServiceUnavailable",
                                              f"etcd {self.host}:{self.port}: {e}"))
                    continue
                out = json.loads(text or b"{}")
                if resp.status != 200:
                    raise ApiError(status(503 if resp.status >= 500 else 500, "InternalError",
                                          f"etcd {path}: {out.get('error') or out.get('message') or resp.status}"))
                return out

    def range(self, key, end=None):
        body = {"key": b64e(key)}
        if end is not None:
            body["range_end"] = b64e(end)
        out = self.call("/v3/kv/range", body)
        kvs = [(base64.b64decode(kv["key"]), base64.b64decode(kv.get("value", "")),
                int(kv.get("mod_revision", 0))) for kv in out.get("kvs", [])]
        return kvs, int(out.get("header", {}).get("revision", 0))

    def put_if(self, key, value, mod_revision):
        """Puts `value` if the key's mod revision is `mod_revision` (0: the key is absent);
        the new revision, or None when the compare failed."""
        k = b64e(key)
        cmp = {"key": k, "result": "EQUAL"}
        if mod_revision:
            cmp.update(target="MOD", mod_revision=str(mod_revision))
        else:
            cmp.update(target="CREATE", create_revision="0")
        out = self.call("/v3/kv/txn", {"compare": [cmp],
                                       "success": [{"request_put": {"key": k, "value": b64e(value)}}]})
        if not out.get("succeeded"):
            return None
        return int(out["header"]["revision"])

    def delete(self, key):
        out = self.call("/v3/kv/deleterange", {"key": b64e(key), "prev_kv": True})
        prev = out.get("prev_kvs") or []
        return base64.b64decode(prev[0]["value"]) if prev else None


class EtcdState(State):
    """Every object in etcd under `/registry/...`, as the real API server keeps them (as JSON,
    where the real one writes protobuf for built-in kinds); an object's resourceVersion is its
    key's mod revision, a list's the store's revision, and a write is a transaction on the
    revision the writer read, so API servers sharing the store never lose an update (a stale
    one gets 409 Conflict, as from the real server). When CRDs become established is kept in
    memory (another server's CRD counts as established)."""

    def __init__(self, etcd, establish_delay):
        self.etcd = etcd
        self.establish_delay = establish_delay
        self.lock = threading.Lock()
        self.established_at = {}
        deadline = time.time() + 60
        while True:
            try:
                for ns in FRESH_NAMESPACES:
                    key = self.etcd_key(f"|namespaces||{ns}")
                    self.etcd.put_if(key, json.dumps(fresh_namespace(ns)).encode(), 0)
                break
            except ApiError as e:
                if time.time() > deadline:
                    raise SystemExit(f"kube-apiserver: {e}")
                time.sleep(0.5)

    def save(self):
        pass

    @staticmethod
    def resource_prefix(group, plural):
        if group in BUILTIN_GROUPS:
            return "/registry/" + REGISTRY_PREFIX.get(plural, plural)
        return f"/registry/{group}/{plural}"

    def etcd_key(self, key):
        group, plural, ns, name = key.split("|", 3)
        base = self.resource_prefix(group, plural)
        return (f"{base}/{ns}/{name}" if ns else f"{base}/{name}").encode()

    @staticmethod
    def decode(value, rev):
        obj = json.loads(value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
        return obj

    def get(self, key):
        kvs, _ = self.etcd.range(self.etcd_key(key))
        return self.decode(kvs[0][1], kvs[0][2]) if kvs else None

    def put(self, key, obj, live):
        want = int(live["metadata"]["resourceVersion"]) if live else 0
        stored = copy.deepcopy(obj)
        stored["metadata"].pop("resourceVersion", None)
        rev = self.etcd.put_if(self.etcd_key(key), json.dumps(stored).encode(), want)
        if rev is None:
            md = obj["metadata"]
            raise ApiError(status(409, "Conflict",
                                  f'Operation cannot be fulfilled on {key.split("|")[1]} '
                                  f'"{md.get("name")}": the object has been modified; please '
                                  "apply your changes to the latest version and try again"))
        obj["metadata"]["resourceVersion"] = str(rev)
        return obj

    def delete(self, key):
        value = self.etcd.delete(self.etcd_key(key))
        return None if value is None else json.loads(value)

    def scan(self, r, namespace):
        prefix = self.resource_prefix(r.group, r.plural) + "/"
        if r.namespaced and namespace:
            prefix += namespace + "/"
        p = prefix.encode()
        kvs, rev = self.etcd.range(p, prefix_end(p))
        # A namespaced resource's prefix must not catch another's (services/specs vs services/endpoints).
        want = 2 if r.namespaced and not namespace else 1
        out = [self.decode(v, mr) for k, v, mr in kvs if k[len(p):].count(b"/") == want - 1]
        return out, str(rev)

    def crds(self):
        p = b"/registry/apiextensions.k8s.io/customresourcedefinitions/"
        kvs, _ = self.etcd.range(p, prefix_end(p))
        return [self.decode(v, mr) for _, v, mr in kvs]

    def ready(self):
        """Why the server is not ready (its store does not answer), or None."""
        try:
            self.etcd.range(b"/registry/health")
            return None
        except ApiError as e:
            return e.body["message"]


def rolled_out_status(obj):
    kind = obj["kind"]
    gen = obj["metadata"].get("generation", 1)
    spec = obj.get("spec", {})
    if kind == "DaemonSet":
        return {"observedGeneration": gen, "currentNumberScheduled": NODES,
                "desiredNumberScheduled": NODES, "numberAvailable": NODES,
                "numberMisscheduled": 0, "numberReady": NODES,
                "updatedNumberScheduled": NODES}
    n = spec.get("replicas", 1)
    st = {"observedGeneration": gen, "replicas": n, "updatedReplicas": n,
          "readyReplicas": n, "availableReplicas": n}
    if kind == "Deployment":
        st["conditions"] = [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability."},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": f'ReplicaSet "{obj["metadata"]["name"]}" has successfully progressed.'},
        ]
    else:
        st["currentReplicas"] = n
    return st


# --- server-side apply -------------------------------------------------------------------

IGNORED_TOP = {"apiVersion", "kind", "status"}


def leaf_paths(value, prefix=()):
    """Field paths set by an applied configuration (lists are atomic)."""
    out = set()
    if isinstance(value, dict) and value:
        for k, v in value.items():
            if not prefix and k in IGNORED_TOP:
                continue
            if prefix == ("metadata",) and k in ("name", "namespace"):
                continue
            out |= leaf_paths(v, prefix + (k,))
    elif prefix:
        out.add(prefix)
    return out


def get_path(obj, path):
    for k in path:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def set_path(obj, path, value):
    for k in path[:-1]:
        if not isinstance(obj.get(k), dict):
            obj[k] = {}
        obj = obj[k]
    obj[path[-1]] = copy.deepcopy(value)


def del_path(obj, path):
    parents = []
    for k in path[:-1]:
        if not isinstance(obj, dict) or k not in obj:
            return
        parents.append((obj, k))
        obj = obj[k]
    if isinstance(obj, dict):
        obj.pop(path[-1], None)
    for parent, k in reversed(parents):
        if parent[k] == {}:
            del parent[k]
        else:
            break


def fields_v1(paths):
    tree = {}
    for p in sorted(paths):
        node = tree
        for k in p:
            node = node.setdefault(f"f:{k}", {})
    return tree


def paths_of(fields, prefix=()):
    out = set()
    for k, v in fields.items():
        if not k.startswith("f:"):
            continue
        p = prefix + (k[2:],)
        if v:
            out |= paths_of(v, p)
        else:
            out.add(p)
    return out


def field_name(path):
    return "." + ".".join(path)


def without_volatile(obj):
    o = copy.deepcopy(obj)
    md = o.get("metadata", {})
    for k in ("managedFields", "resourceVersion", "generation"):
        md.pop(k, None)
    return o


def server_side_apply(live, applied, manager, force, api_version):
    """(new object, conflicts) for `applied` by `manager` over `live` (None: create)."""
    new_paths = leaf_paths(applied)
    managers = copy.deepcopy(live["metadata"].get("managedFields", [])) if live else []
    conflicts = []
    for entry in managers:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        owned = paths_of(entry.get("fieldsV1", {}))
        for p in sorted(new_paths & owned):
            if get_path(live, p) != get_path(applied, p):
                conflicts.append((entry.get("manager"), p))
    if conflicts and not force:
        return None, conflicts
    obj = copy.deepcopy(live) if live else {"metadata": {}}
    mine = [e for e in managers if e.get("manager") == manager and e.get("operation") == "Apply"]
    old_paths = paths_of(mine[0].get("fieldsV1", {})) if mine else set()
    others = [e for e in managers
              if not (e.get("manager") == manager and e.get("operation") == "Apply")]
    if force:
        for e in others:
            kept = paths_of(e.get("fieldsV1", {})) - new_paths
            e["fieldsV1"] = fields_v1(kept)
        others = [e for e in others if e["fieldsV1"]]
    owned_by_others = set()
    for e in others:
        owned_by_others |= paths_of(e.get("fieldsV1", {}))
    for p in old_paths - new_paths - owned_by_others:
        del_path(obj, p)
    for p in sorted(new_paths):
        set_path(obj, p, get_path(applied, p))
    obj["apiVersion"] = applied["apiVersion"]
    obj["kind"] = applied["kind"]
    obj["metadata"]["name"] = applied["metadata"]["name"]
    if applied["metadata"].get("namespace"):
        obj["metadata"]["namespace"] = applied["metadata"]["namespace"]
    entry = {"manager": manager, "operation": "Apply", "apiVersion": api_version,
             "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": fields_v1(new_paths)}
    if mine and paths_of(mine[0].get("fieldsV1", {})) == new_paths:
        entry["time"] = mine[0].get("time", entry["time"])
    obj["metadata"]["managedFields"] = others + [entry]
    return obj, []


# --- HTTP ----------------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-stand-in"

    def log_message(self, fmt, *args):  # the request log is ours
        pass

    def setup(self):
        super().setup()
        # Headers and body go out as separate writes: without this, Nagle's algorithm and
        # the client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            return data
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        start = time.time()
        if (self.command == "GET" and
                "websocket" in self.headers.get("Upgrade", "").lower()):
            return self.websocket(start)
        raw = self.body()
        try:
            path = urllib.parse.urlsplit(self.path).path
            if self.command == "GET" and path in ("/readyz", "/livez", "/healthz"):
                # Health endpoints answer anonymous requests, as the real server's do; readyz
                # and healthz fail while the store does not answer.
                why = None if path == "/livez" else self.server.state.ready()
                code, body = (200, "ok") if why is None else (503, f"[-]etcd failed: {why}")
            elif not self.authorized():
                code, body = 401, status(401, "Unauthorized", "Unauthorized")
            else:
                code, body = self.route(raw)
        except ApiError as e:
            code, body = e.body["code"], e.body
        except Exception as e:  # a bug of the stand-in: a 500 like the real one's
            code, body = 500, status(500, "InternalError",
                                     f"Internal error occurred: {type(e).__name__}: {e}")
        # Logged before the answer goes out, so the log's order is the order clients saw.
        ms = (time.time() - start) * 1000
        if self.server.log_path:
            with self.server.log_lock, open(self.server.log_path, "a") as f:
                f.write(f"{self.command} {self.path} {code} {ms:.2f}\n")
        self.send_json(code, body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    def log_request_line(self, start, code):
        ms = (time.time() - start) * 1000
        if self.server.log_path:
            with self.server.log_lock, open(self.server.log_path, "a") as f:
                f.write(f"{self.command} {self.path} {code} {ms:.2f}\n")

    def websocket(self, start):
        """pods/<name>/portforward: the upgrade, then the streams until either side closes.
        Anything else asked as a WebSocket is answered as the real server answers a plain
        request it cannot upgrade (400)."""
        url = urllib.parse.urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        q = urllib.parse.parse_qs(url.query)
        try:
            if not self.authorized():
                raise ApiError(status(401, "Unauthorized", "Unauthorized"))
            if not (len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"]
                    and parts[4] == "pods" and parts[6] == "portforward"):
                raise ApiError(status(400, "BadRequest",
                                      "the stand-in upgrades only pods/<name>/portforward"))
            ns, pod = parts[3], parts[5]
            with self.server.state.lock:
                obj = self.server.state.get(f"|pods|{ns}|{pod}")
            if obj is None:
                raise ApiError(status(404, "NotFound", f'pods "{pod}" not found',
                                      {"name": pod, "kind": "pods"}))
            ports = [int(p) for v in q.get("ports", []) for p in v.split(",") if p]
            if not ports:
                raise ApiError(status(400, "BadRequest", "query parameter \"ports\" is required"))
            offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
            if "v4.channel.k8s.io" not in offered:
                raise ApiError(status(400, "BadRequest",
                                      "no supported WebSocket subprotocol (v4.channel.k8s.io)"))
            targets = []
            annotations = obj.get("metadata", {}).get("annotations") or {}
            for port in ports:
                fwd = annotations.get(f"stand-in.hakube.io/forward-{port}")
                if fwd:
                    h, p = fwd.rsplit(":", 1)
                    targets.append((h.strip("[]"), int(p)))
                else:
                    targets.append(((obj.get("status") or {}).get("podIP") or "", port))
        except ApiError as e:
            self.close_connection = True
            self.log_request_line(start, e.body["code"])
            self.send_json(e.body["code"], e.body)
            return
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        self.log_request_line(start, 101)
        PortForward(self.connection, ports, targets).run()

    def authorized(self):
        """The server's token, or a bootstrap token (`<id>.<secret>`) whose Secret
        `kube-system/bootstrap-token-<id>` holds that secret and has not expired, as the
        real server's bootstrap token authenticator accepts."""
        got = self.headers.get("Authorization") or ""
        if got == f"Bearer {self.server.token}":
            return True
        m = re.fullmatch(r"Bearer ([a-z0-9]{6})\.([a-z0-9]{16})", got)
        if not m:
            return False
        st = self.server.state
        with st.lock:
            sec = st.get(f"|secrets|kube-system|bootstrap-token-{m.group(1)}")
        if not sec or sec.get("type") != "bootstrap.kubernetes.io/token":
            return False
        data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (sec.get("data") or {}).items()}
        if data.get("token-secret") != m.group(2) or data.get("usage-bootstrap-authentication") != "true":
            return False
        exp = data.get("expiration")
        return not exp or exp > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def route(self, raw):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        parts = [p for p in url.path.split("/") if p]
        st = self.server.state
        with st.lock:
            if url.path == "/version":
                return 200, {"major": "1", "minor": "34", "gitVersion": "v1.34.1",
                             "gitCommit": "stand-in", "gitTreeState": "clean",
                             "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
                             "compiler": "gc", "platform": "linux/amd64"}
            if url.path == "/api":
                return 200, {"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [
                                 {"clientCIDR": "0.0.0.0/0",
                                  "serverAddress": self.server.listen}]}
            if url.path == "/apis":
                groups = {}
                for r in st.resources():
                    if r.group:
                        groups.setdefault(r.group, [])
                        if r.version not in groups[r.group]:
                            groups[r.group].append(r.version)
                return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                    {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}
                                             for v in vs],
                     "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                    for g, vs in sorted(groups.items())]}
            if parts[:1] == ["api"] and len(parts) >= 2:
                group, version, rest = "", parts[1], parts[2:]
            elif parts[:1] == ["apis"] and len(parts) >= 3:
                group, version, rest = parts[1], parts[2], parts[3:]
            elif parts[:1] == ["apis"] and len(parts) == 2:
                vs = sorted({r.version for r in st.resources() if r.group == parts[1]})
                if not vs:
                    raise ApiError(status(404, "NotFound", "the server could not find the "
                                          "requested resource"))
                return 200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1],
                             "versions": [{"groupVersion": f"{parts[1]}/{v}", "version": v}
                                          for v in vs],
                             "preferredVersion": {"groupVersion": f"{parts[1]}/{vs[0]}",
                                                  "version": vs[0]}}
            else:
                raise ApiError(status(404, "NotFound",
                                      "the server could not find the requested resource"))
            if not rest:
                rs = [r for r in st.resources() if r.group == group and r.version == version]
                if not rs:
                    raise ApiError(status(404, "NotFound",
                                          "the server could not find the requested resource"))
                resources = []
                for r in rs:
                    resources.append(r.discovery())
                    if r.kind in ROLLOUT_KINDS or r.kind == "CustomResourceDefinition":
                        resources.append({"name": f"{r.plural}/status", "singularName": "",
                                          "namespaced": r.namespaced, "kind": r.kind,
                                          "verbs": ["get", "patch", "update"]})
                    if r.kind == "ServiceAccount":
                        resources.append({"name": "serviceaccounts/token", "singularName": "",
                                          "namespaced": True, "group": "authentication.k8s.io",
                                          "version": "v1", "kind": "TokenRequest",
                                          "verbs": ["create"]})
                return 200, {"kind": "APIResourceList", "apiVersion": "v1",
                             "groupVersion": f"{group}/{version}" if group else version,
                             "resources": resources}
            namespace = None
            if len(rest) >= 3 and rest[0] == "namespaces":
                namespace, rest = rest[1], rest[2:]
            plural, name = rest[0], (rest[1] if len(rest) > 1 else None)
            sub = rest[2] if len(rest) > 2 else None
            r = st.resource(group, version, plural)
            if r is None:
                raise ApiError(status(404, "NotFound",
                                      "the server could not find the requested resource"))
            return self.serve(st, r, namespace, name, sub, q, raw)

    def serve(self, st, r, namespace, name, sub, q, raw):
        method = self.command
        if r.namespaced and namespace is None and name is not None:
            raise ApiError(status(404, "NotFound",
                                  "the server could not find the requested resource"))
        if name is None:
            if method == "GET":
                return 200, self.list(st, r, namespace, q)
            if method == "POST":
                body = self.parse(raw)
                return self.create(st, r, namespace, body, q)
            raise ApiError(status(405, "MethodNotAllowed",
                                  "the server does not allow this method on the requested resource"))
        key = st.key(r, namespace, name)
        if sub == "token" and r.kind == "ServiceAccount" and method == "POST":
            if st.get(key) is None:
                raise not_found(r, name)
            req = self.parse(raw)
            secs = req.get("spec", {}).get("expirationSeconds") or 3600
            exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=secs)
            claims = {"aud": req.get("spec", {}).get("audiences") or
                      ["https://kubernetes.default.svc.cluster.local"],
                      "sub": f"system:serviceaccount:{namespace}:{name}",
                      "exp": int(exp.timestamp()), "jti": str(uuid.uuid4())}
            b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
            token = f'{b64({"alg": "RS256", "kid": "stand-in"})}.{b64(claims)}.c3RhbmQtaW4'
            return 201, {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                         "metadata": {"name": name, "namespace": namespace,
                                      "creationTimestamp": None},
                         "spec": {"audiences": claims["aud"], "expirationSeconds": secs,
                                  "boundObjectRef": None},
                         "status": {"token": token,
                                    "expirationTimestamp": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}}
        if sub not in (None, "status"):
            raise ApiError(status(404, "NotFound",
                                  "the server could not find the requested resource"))
        if method == "GET":
            obj = st.get(key)
            if obj is None:
                raise not_found(r, name)
            return 200, st.decorate(r, obj)
        if method == "DELETE":
            obj = st.delete(key)
            if obj is None:
                raise not_found(r, name)
            return 200, obj
        if method == "PUT":
            body = self.parse(raw)
            return self.update(st, r, namespace, name, body, q)
        if method == "PATCH":
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
            if ctype != "application/apply-patch+yaml":
                raise ApiError(status(415, "UnsupportedMediaType",
                                      f"the body of the request was in an unknown format - "
                                      f"accepted media types include: "
                                      f"application/apply-patch+yaml"))
            body = self.parse(raw)
            return self.apply(st, r, namespace, name, body, q)
        raise ApiError(status(405, "MethodNotAllowed",
                              "the server does not allow this method on the requested resource"))

    def parse(self, raw):
        try:
            body = json.loads(raw or b"{}")
        except ValueError as e:
            raise ApiError(status(400, "BadRequest",
                                  f"error decoding patch: the stand-in reads JSON bodies: {e}"))
        if not isinstance(body, dict):
            raise ApiError(status(400, "BadRequest", "the body is not an object"))
        return body

    def list(self, st, r, namespace, q):
        sel = [s for s in q.get("labelSelector", "").split(",") if s]
        items = []
        objects, rv = st.scan(r, namespace)
        for obj in objects:
            labels = obj["metadata"].get("labels", {})
            ok = True
            for s in sel:
                if "!=" in s:
                    k, v = s.split("!=", 1)
                    ok &= labels.get(k) != v
                elif "=" in s:
                    k, v = s.split("=", 1)
                    ok &= labels.get(k.rstrip("=")) == v
                else:
                    ok &= s in labels
            if ok:
                items.append(st.decorate(r, obj))
        return {"kind": f"{r.kind}List", "apiVersion": r.api_version,
                "metadata": {"resourceVersion": rv}, "items": items}

    def check(self, st, r, namespace, name, body):
        if body.get("apiVersion") != r.api_version or body.get("kind") != r.kind:
            raise ApiError(status(400, "BadRequest",
                                  f"the API version in the data ({body.get('apiVersion')}) does "
                                  f"not match the expected API version ({r.api_version})"
                                  if body.get("apiVersion") != r.api_version else
                                  f"the kind in the data ({body.get('kind')}) does not match "
                                  f"the expected kind ({r.kind})"))
        md = body.setdefault("metadata", {})
        if name is not None and md.get("name") not in (None, name):
            raise ApiError(status(400, "BadRequest",
                                  f"the name of the object ({md.get('name')}) does not match "
                                  f"the name on the URL ({name})"))
        if md.get("namespace") not in (None, namespace or None):
            raise ApiError(status(400, "BadRequest",
                                  "the namespace of the provided object does not match the "
                                  "namespace sent on the request"))
        if r.namespaced:
            ns_key = "|namespaces||" + namespace
            if st.get(ns_key) is None:
                raise ApiError(status(404, "NotFound", f'namespaces "{namespace}" not found',
                                      {"name": namespace, "kind": "namespaces"}))

    def store(self, st, r, key, obj, live, dry_run):
        md = obj["metadata"]
        if live is None:
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now_rfc3339()
            md["generation"] = 1
        else:
            md["uid"] = live["metadata"]["uid"]
            md["creationTimestamp"] = live["metadata"]["creationTimestamp"]
            gen = live["metadata"].get("generation", 1)
            if obj.get("spec") != live.get("spec"):
                gen += 1
            md["generation"] = gen
        if r.kind in ROLLOUT_KINDS:
            obj["status"] = rolled_out_status(obj)
        if r.kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        if live is not None and without_volatile(obj) == without_volatile(live) and \
                md.get("managedFields") == live["metadata"].get("managedFields"):
            return live  # no change: the resourceVersion stays
        if dry_run:
            md["resourceVersion"] = live["metadata"]["resourceVersion"] if live else ""
            return obj
        obj = st.put(key, obj, live)
        if r.kind == "CustomResourceDefinition" and md["name"] not in st.established_at:
            st.established_at[md["name"]] = time.time() + st.establish_delay
            st.save()
        return obj

    def create(self, st, r, namespace, body, q):
        self.check(st, r, namespace, None, body)
        name = body["metadata"].get("name")
        if not name:
            raise ApiError(status(422, "Invalid", f"{r.kind} \"\" is invalid: metadata.name: "
                                  "Required value: name or generateName is required",
                                  {"kind": r.kind, "causes": [{"reason": "FieldValueRequired",
                                   "message": "Required value: name or generateName is required",
                                   "field": "metadata.name"}]}))
        key = st.key(r, namespace, name)
        if st.get(key) is not None:
            raise ApiError(status(409, "AlreadyExists",
                                  f'{r.qualified} "{name}" already exists',
                                  {"name": name, "kind": r.plural}))
        manager = q.get("fieldManager", "unknown")
        body["metadata"]["managedFields"] = [
            {"manager": manager, "operation": "Update", "apiVersion": r.api_version,
             "time": now_rfc3339(), "fieldsType": "FieldsV1",
             "fieldsV1": fields_v1(leaf_paths(body))}]
        obj = self.store(st, r, key, body, None, q.get("dryRun") == "All")
        return 201, st.decorate(r, obj)

    def update(self, st, r, namespace, name, body, q):
        self.check(st, r, namespace, name, body)
        key = st.key(r, namespace, name)
        live = st.get(key)
        if live is None:
            raise not_found(r, name)
        want = body["metadata"].get("resourceVersion")
        if want and want != live["metadata"]["resourceVersion"]:
            raise ApiError(status(409, "Conflict",
                                  f'Operation cannot be fulfilled on {r.qualified} "{name}": '
                                  "the object has been modified; please apply your changes to "
                                  "the latest version and try again",
                                  {"name": name, "kind": r.plural}))
        manager = q.get("fieldManager", "unknown")
        others = [e for e in live["metadata"].get("managedFields", [])
                  if e.get("manager") != manager]
        body["metadata"]["managedFields"] = others + [
            {"manager": manager, "operation": "Update", "apiVersion": r.api_version,
             "time": now_rfc3339(), "fieldsType": "FieldsV1",
             "fieldsV1": fields_v1(leaf_paths(body))}]
        obj = self.store(st, r, key, body, live, q.get("dryRun") == "All")
        return 200, st.decorate(r, obj)

    def apply(self, st, r, namespace, name, body, q):
        manager = q.get("fieldManager")
        if not manager:
            raise ApiError(status(400, "BadRequest", "PATCH /apply requires fieldManager "
                                  "to be set"))
        self.check(st, r, namespace, name, body)
        key = st.key(r, namespace, name)
        live = st.get(key)
        force = q.get("force") == "true"
        obj, conflicts = server_side_apply(live, body, manager, force, r.api_version)
        if conflicts:
            n = len(conflicts)
            msg = (f"Apply failed with {n} conflict{'s' if n > 1 else ''}: " +
                   "; ".join(f'conflict with "{m}": {field_name(p)}' for m, p in conflicts))
            raise ApiError(status(409, "Conflict", msg, {
                "name": name, "group": r.group, "kind": r.plural,
                "causes": [{"reason": "FieldManagerConflict",
                            "message": f'conflict with "{m}"', "field": field_name(p)}
                           for m, p in conflicts]}))
        stored = self.store(st, r, key, obj, live, q.get("dryRun") == "All")
        return (201 if live is None else 200), st.decorate(r, stored)


class PortForward:
    """One port-forward WebSocket (RFC 6455 frames; the client masks, we do not) carrying
    the `v4.channel.k8s.io` streams of `ports`, each to its `(host, port)` target."""

    def __init__(self, conn, ports, targets):
        self.conn = conn
        self.ports, self.targets = ports, targets
        self.socks = {}  # data channel -> socket
        self.buf = b""

    def send(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack(">H", n)
        else:
            head += bytes([127]) + struct.pack(">Q", n)
        self.conn.sendall(head + payload)

    def frame(self):
        """The next whole frame in the buffer as (opcode, payload), or None."""
        b = self.buf
        if len(b) < 2:
            return None
        opcode, n, at = b[0] & 0x0F, b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, at = struct.unpack(">H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, at = struct.unpack(">Q", b[2:10])[0], 10
        masked = b[1] & 0x80
        if len(b) < at + (4 if masked else 0) + n:
            return None
        mask = b[at:at + 4] if masked else b"\0\0\0\0"
        at += 4 if masked else 0
        data = bytearray(b[at:at + n])
        for i in range(n):
            data[i] ^= mask[i % 4]
        self.buf = b[at + n:]
        return opcode, bytes(data)

    def run(self):
        for i, (port, (host, tport)) in enumerate(zip(self.ports, self.targets)):
            for ch in (2 * i, 2 * i + 1):
                self.send(2, bytes([ch]) + struct.pack("<H", port))
            try:
                self.socks[2 * i] = socket.create_connection((host, tport), timeout=5)
                self.socks[2 * i].settimeout(None)
            except OSError as e:
                msg = (f"an error occurred forwarding {port} -> pod: dial tcp "
                       f"{host}:{tport}: connect: {e.strerror or e}")
                self.send(2, bytes([2 * i + 1]) + msg.encode())
        try:
            self.pump()
        finally:
            for s in self.socks.values():
                s.close()
            try:
                self.send(8, struct.pack(">H", 1000))
            except OSError:
                pass

    def pump(self):
        by_sock = {s: ch for ch, s in self.socks.items()}
        while by_sock:
            f = self.frame()
            if f is not None:
                opcode, data = f
                if opcode == 8:
                    return
                if opcode == 9:
                    self.send(10, data)
                elif opcode == 2 and len(data) > 1 and data[0] in self.socks:
                    self.socks[data[0]].sendall(data[1:])
                continue
            # Bytes the TLS layer already decrypted count as readable.
            ready = [self.conn] if self.conn.pending() else \
                select.select([self.conn, *by_sock], [], [])[0]
            for r in ready:
                if r is self.conn:
                    chunk = self.conn.recv(65536)
                    if not chunk:
                        return
                    self.buf += chunk
                    continue
                chunk = r.recv(65536)
                if not chunk:
                    del by_sock[r]
                    continue
                self.send(2, bytes([by_sock[r]]) + chunk)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", help="ADDRESS:PORT")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--token-file", help="a file holding the token (or kube-apiserver's "
                    "token CSV: token,user,uid[,groups])")
    ap.add_argument("--state-dir", help="keep the objects in DIR/state.json")
    ap.add_argument("--log")
    ap.add_argument("--establish-delay", type=float, default=0.2)
    # kube-apiserver's own names, as kubeadm's static Pod manifest passes them.
    ap.add_argument("--advertise-address")
    ap.add_argument("--bind-address")
    ap.add_argument("--secure-port", type=int, default=6443)
    ap.add_argument("--tls-cert-file")
    ap.add_argument("--tls-private-key-file")
    ap.add_argument("--token-auth-file")
    ap.add_argument("--etcd-servers", help="keep the objects in etcd (the first URL)")
    ap.add_argument("--etcd-cafile")
    ap.add_argument("--etcd-certfile")
    ap.add_argument("--etcd-keyfile")
    a, _ignored = ap.parse_known_args()
    listen = a.listen or f"{a.advertise_address or a.bind_address or '0.0.0.0'}:{a.secure_port}"
    cert, key = a.cert or a.tls_cert_file, a.key or a.tls_private_key_file
    token_file = a.token_file or a.token_auth_file
    if not (cert and key and token_file) or not (a.state_dir or a.etcd_servers):
        ap.error("needs --cert/--tls-cert-file, --key/--tls-private-key-file, "
                 "--token-file/--token-auth-file and --state-dir or --etcd-servers")
    host, port = listen.rsplit(":", 1)
    srv = Server((host.strip("[]"), int(port)), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(token_file) as f:
        srv.token = f.read().strip().split(",")[0]
    if a.etcd_servers:
        etcd = Etcd(a.etcd_servers.split(",")[0], a.etcd_cafile, a.etcd_certfile, a.etcd_keyfile)
        srv.state = EtcdState(etcd, a.establish_delay)
    else:
        os.makedirs(a.state_dir, exist_ok=True)
        srv.state = State(a.state_dir, a.establish_delay)
    srv.listen = listen
    srv.log_path = a.log or (os.path.join(a.state_dir, "requests.log") if a.state_dir else None)
    srv.log_lock = threading.Lock()
    print(f"listening on {listen}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
