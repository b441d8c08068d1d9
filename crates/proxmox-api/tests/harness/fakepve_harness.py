"""Test harness for hakube-proxmox-api: a fakepve on a loopback address, driven over stdin/stdout.

Started by the Rust integration tests (and the benchmark script) as
    python fakepve_harness.py --host 127.0.0.N [--port 0] [--time-scale S]
It prints one JSON line {"url", "ca", "fingerprint", "host", "port"}, then answers one JSON
command per line on stdin with one JSON line on stdout: {"ok": result} or {"error": text}.

On top of fakepve it adds what a provisioner's re-run needs to see its own work:
stateful disk resize, HA resources and HA rules, per-task-type durations, and a guest
agent that reports the address cloud-init configured.
"""

import argparse
import asyncio
import base64
import collections.abc
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import struct
import sys
import tempfile
import time
import urllib.parse

from fakepve import FakePve
from fakepve.certs import make_cert
from fakepve.model import PveError, TaskError
from fakepve.server import USER, ok, params
from fakepve.storage import _is_file

# The (owner VMID, disk number) pairs a volume name gives (`vm-101-disk-0`,
# `base-100-disk-0/vm-101-disk-0`).
OWNER = re.compile(r'(?:^|/)(?:vm|base|subvol|basevol)-(\d+)-disk-(\d+)')

SIZE = {'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4}


def parse_size(text):
    m = re.fullmatch(r'(\d+(?:\.\d+)?)([KMGT])?', str(text))
    if not m:
        return None
    return int(float(m.group(1)) * SIZE[m.group(2)]) if m.group(2) else int(float(m.group(1)))


def totp(secret_b32, at, digits=6, step=30):
    """RFC 6238 TOTP (HMAC-SHA1), as PVE's proxmox-tfa computes it for a base32 secret."""
    key = base64.b32decode(secret_b32.upper() + '=' * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack('>Q', int(at) // step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack('>I', mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 10 ** digits
    return '{0:0{1}d}'.format(code, digits)


# RFC 6238 appendix B: the SHA-1 secret '12345678901234567890' at T=59 gives 94287082.
assert totp(base64.b32encode(b'12345678901234567890').decode(), 59, digits=8) == '94287082'


def fmt_size(n):
    for unit in ('T', 'G', 'M', 'K'):
        if n % SIZE[unit] == 0:
            return '{0}{1}'.format(n // SIZE[unit], unit)
    return str(n)


class Volumes(collections.abc.Mapping):
    """FakePve._volumes(name), computed only as far as it is used: looking one volume up
    scans the guest configs that mention it; listing builds fakepve's whole dict.

    fakepve 0.5.0 rebuilds the listing of a storage from every guest config on each lookup,
    and a clone does two (its source volume, a free disk name): with 500 VMs that is 10 ms
    per clone, run inside the event loop, so every other request waits (cProfile of
    scripts/bench-scale: 47 % of the fake's time). PVE looks at one node's LVM volume group.
    """

    def __init__(self, pve, name):
        self.pve, self.name, self.all = pve, name, None

    def _full(self):
        if self.all is None:
            self.all = FakePve._volumes(self.pve, self.name)
        return self.all

    def __iter__(self):
        return iter(self._full())

    def __len__(self):
        return len(self._full())

    def __getitem__(self, volname):
        if self.all is not None:
            return self.all[volname]
        store = self.pve.storages[self.name]
        if volname in store.get('volumes', {}):
            return store['volumes'][volname]
        if volname.startswith('iso/') and volname[4:] in store['files']:
            return {'content': 'iso', 'format': 'iso', 'size': 0, 'ctime': 0}
        # The owners the name gives first (PVE's own rule: the VMID in `vm-<vmid>-disk-<n>`),
        # then every guest that mentions it, so names without an owner are found as before.
        owners = set(int(owner) for owner, _ in OWNER.findall(volname))
        found = FakePve._guest_volumes([g for g in self.pve._guests() if g.vmid in owners], self.name).get(volname)
        if found is None:
            guests = [g for g in self.pve._guests()
                      if any(volname in str(v) for v in getattr(g, 'config', {}).values())]
            found = FakePve._guest_volumes(guests, self.name).get(volname)
        if found is None:
            raise KeyError(volname)
        vmid, content, size = found
        return {'content': content, 'format': self.pve._ext_format(volname), 'size': size, 'vmid': vmid, 'ctime': 0}


class HarnessPve(FakePve):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # fakepve keeps the last 10 000 requests and drops older ones, which shifts the
        # indexes `requests` reads from: scripts/bench-scale counts 20 000 and more.
        self.max_requests = 1000000
        # PVE seconds a task of this type takes (qmclone, qmstart, ...), plus 'config' for config writes.
        self.durations = {}
        self.ha_res = {}
        # vmid -> the error its next start task ends with.
        self.start_errors = {}
        # Task types that end with `WARNINGS: 1` (success with warnings).
        self.warn_types = set()
        # Worker tasks running now and the most seen at once, per node.
        self.running = {}
        self.max_running = {}
        self.ha_groups = {}
        self.ha_rules = {}
        # userid -> base32 TOTP secret: these users log in in two steps (PVE 7+ TFA).
        self.totp_users = {}
        # half-logged-in ticket -> (userid, expiry).
        self.tfa_challenges = {}
        # Per worker task and config write: type, id, node and monotonic times (requested,
        # body started, ended), for scripts/bench-scale's breakdown of a run.
        self.spans = []
        # Second-factor logins refused / accepted.
        self.tfa_refused = 0
        self.tfa_accepted = 0

    # -------------------------------------------------------------- volumes

    def _volumes(self, name):
        return Volumes(self, name)

    def _qm_free_name(self, sid, vmid, fmt):
        """fakepve's _qm_free_name, reading only the volumes vmid owns.

        PVE does the same: `PVE::Storage::Plugin::get_next_vm_diskname` lists the storage's
        images for one VMID (`list_images` with `$vmid`, which keeps the volumes whose name
        gives that owner). A guest's disks are named after it, so its config is the one to read.
        """
        store = self.storages[sid]
        names = ['iso/' + f for f in store['files']] + list(store.get('volumes', {}))
        names += list(FakePve._guest_volumes([g for g in self._guests() if g.vmid == int(vmid)], sid))
        taken = set(int(n) for volname in names for owner, n in OWNER.findall(volname) if int(owner) == int(vmid))
        n = 0
        while n in taken:
            n += 1
        name = 'vm-{0}-disk-{1}'.format(vmid, n)
        return name if not _is_file(store) else '{0}.{1}'.format(name, fmt)

    # ---------------------------------------------------------------- tasks

    async def _task_list(self, request):
        """`GET /nodes/{node}/tasks`, with `source=active` answered as PVE answers it.

        fakepve 0.5.0 ignores `source` (every task, the running ones without a status).
        PVE (pve-manager `PVE/API2/Tasks.pm`, `node_tasks`) lists for `source=active` the
        entries of `/var/log/pve/tasks/active` not yet archived, each running one with
        `status: "RUNNING"`; a task that ended is archived when the daemon that forked it
        reaps it (pve-common `PVE/RESTEnvironment.pm`, `$worker_reaper` ->
        `active_workers`), so it is no longer listed there.
        """
        if request.query.get('source') != 'active':
            return await super()._task_list(request)
        node = request.match_info['node']
        user = request[USER]
        p = self._verify(request, await params(request))
        vmid = p.get('vmid')
        audit = self.allowed(user, '/nodes/' + node, 'Sys.Audit')
        data = []
        for t in self.tasklog:
            if t['node'] != node or t.get('exitstatus') is not None:
                continue
            if (vmid is None or t['id'] == str(vmid)) and (audit or self._task_owner(user, t)):
                entry = self._task_view(t, True)
                entry['status'] = 'RUNNING'
                data.append(entry)
        data.sort(key=lambda t: -t['starttime'])
        start = p.get('start', 0)
        return ok(data[start:start + p.get('limit', 50)])

    # ------------------------------------------------------------ durations

    async def task(self, node, ttype, tid, user, body, vm=None, lock=True, log=()):
        secs = self.durations.get(ttype, 0)
        if secs:
            inner = body

            async def body():
                await self.pause(secs)
                return await inner()
        counted = body

        async def body():
            now = self.running.get(node, 0) + 1
            self.running[node] = now
            self.max_running[node] = max(self.max_running.get(node, 0), now)
            try:
                return await counted()
            finally:
                self.running[node] -= 1
        if ttype in self.warn_types:
            plain = body

            async def body():
                await plain()
                raise TaskError('WARNINGS: 1')
        span = {'type': ttype, 'id': str(tid), 'node': node, 'asked': time.monotonic(), 'start': None, 'end': None}
        self.spans.append(span)
        timed = body

        async def body():
            span['start'] = time.monotonic()
            try:
                return await timed()
            finally:
                span['end'] = time.monotonic()
        return await super().task(node, ttype, tid, user, body, vm=vm, lock=lock, log=log)

    async def _apply_config(self, vm, user, p):
        span = {'type': 'config', 'id': str(vm.vmid), 'node': vm.node, 'asked': time.monotonic()}
        span['start'] = span['asked']
        self.spans.append(span)
        try:
            await self.pause(self.durations.get('config', 0))
            return await super()._apply_config(vm, user, p)
        finally:
            span['end'] = time.monotonic()

    async def _do_start(self, vm, user, p):
        if vm.vmid in self.start_errors:
            vm.start_error = self.start_errors.pop(vm.vmid)
        agent = str(vm.config.get('agent', '0')).split(',')[0].split('=')[-1]
        if agent == '1' and vm.agent is None:
            ip = '192.0.2.{0}'.format(vm.vmid % 250)
            m = re.search(r'ip=([0-9.]+)/(\d+)', str(vm.config.get('ipconfig0', '')))
            if m:
                ip = m.group(1)
            vm.agent = {'interfaces': [
                {'name': 'lo', 'hardware-address': '00:00:00:00:00:00',
                 'ip-addresses': [{'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', 'prefix': 8}]},
                {'name': 'eth0', 'hardware-address': 'bc:24:11:00:00:01',
                 'ip-addresses': [{'ip-address': ip, 'ip-address-type': 'ipv4', 'prefix': 24}]}]}
        return await super()._do_start(vm, user, p)

    # ------------------------------------------------------- TOTP second factor

    async def _ticket(self, request):
        """POST /access/ticket with PVE 7+'s second factor (pve-access-control
        PVE/API2/AccessControl.pm create_ticket, PVE/AccessControl.pm authenticate_user):

        - a valid full ticket as the password renews it, without a second factor;
        - the password of a user with TOTP answers a half-logged-in ticket
          (`PVE:!tfa!...`, `NeedTFA: 1`) and no session;
        - `tfa-challenge` (that ticket) plus `password=totp:CODE` completes the login when
          CODE is the user's TOTP at now +-1 step of 30 s;
        - every refusal is 401 `authentication failure` (PVE says no more).
        """
        p = await params(request)
        user, password = str(p.get('username', '')), str(p.get('password', ''))
        if '@' not in user:
            user += '@pam'
        challenge = p.get('tfa-challenge')
        if challenge is not None:
            pending = self.tfa_challenges.pop(str(challenge), None)
            code = password[len('totp:'):] if password.startswith('totp:') else None
            secret = self.totp_users.get(user)
            now = time.time()
            good = (pending is not None and pending[0] == user and pending[1] >= now and code is not None
                    and secret is not None
                    and any(hmac.compare_digest(code, totp(secret, now + d * 30)) for d in (-1, 0, 1)))
            if not good:
                self.tfa_refused += 1
                raise PveError(401, 'authentication failure')
            self.tfa_accepted += 1
            ticket, csrf = self.issue_ticket(user)
            return ok({'ticket': ticket, 'CSRFPreventionToken': csrf, 'username': user, 'cap': {}})
        session = self.tickets.get(password)
        if session is not None and session['user'] == user and session['expires'] >= time.time():
            ticket, csrf = self.issue_ticket(user)
            return ok({'ticket': ticket, 'CSRFPreventionToken': csrf, 'username': user, 'cap': {}})
        if user in self.totp_users and self.check_password(user, password):
            half = 'PVE:!tfa!{0}:{1:08X}::{2}'.format(urllib.parse.quote(json.dumps({'totp': True}, separators=(',', ':'))),
                                                     int(time.time()), secrets.token_hex(24))
            self.tfa_challenges[half] = (user, time.time() + 120)
            return ok({'ticket': half, 'username': user, 'NeedTFA': 1, 'CSRFPreventionToken': secrets.token_hex(8)})
        return await super()._ticket(request)

    # ------------------------------------------------------- stateful extras

    def _routes_hakube(self):
        return [('PUT', '/nodes/{node}/qemu/{vmid}/resize', self._hk_resize),
                ('GET', '/cluster/ha/resources', self._hk_ha_res_list),
                ('POST', '/cluster/ha/resources', self._hk_ha_res_create),
                ('GET', '/cluster/ha/rules', self._hk_ha_rules_list),
                ('POST', '/cluster/ha/rules', self._hk_ha_rules_create),
                ('POST', '/nodes/{node}/qemu/{vmid}/migrate', self._hk_migrate),
                ('GET', '/cluster/ha/groups', self._hk_groups_list),
                ('POST', '/cluster/ha/groups', self._hk_groups_create)]

    async def _hk_groups_list(self, v, user):
        return [dict(g) for _, g in sorted(self.ha_groups.items())]

    async def _hk_groups_create(self, v, user):
        group = str(v['group'])
        if group in self.ha_groups:
            raise PveError(500, "ha group '{0}' already defined".format(group))
        self.ha_groups[group] = {'group': group, 'nodes': v['nodes'], 'type': 'group', 'digest': 'x' * 40,
                                 'restricted': v.get('restricted', 0)}
        return None

    async def _hk_migrate(self, v, user):
        vm = self.find(v['node'], v['vmid'])
        target = v['target']
        if target not in self.nodes:
            raise PveError(500, "no such cluster node '{0}'".format(target))
        if vm.status == 'running' and not v.get('online'):
            raise PveError(500, "can't migrate running VM without --online")
        return await self.migrate(vm.vmid, target, secs=self.durations.get('qmigrate', 0), user=user)

    async def _hk_resize(self, v, user):
        vm = self.find(v['node'], v['vmid'])
        disk, size = v['disk'], str(v['size'])
        if disk not in vm.config:
            raise PveError(500, "disk '{0}' does not exist".format(disk))
        parts = str(vm.config[disk]).split(',')
        current = 0
        for part in parts[1:]:
            if part.startswith('size='):
                current = parse_size(part[5:]) or 0
        if size.startswith('+'):
            new = current + (parse_size(size[1:]) or 0)
        else:
            new = parse_size(size) or 0
        if new < current:
            raise PveError(500, 'shrinking disks is not supported')

        async def body():
            rest = [p for p in parts[1:] if not p.startswith('size=')]
            vm.config[disk] = ','.join([parts[0]] + rest + ['size=' + fmt_size(new)])
        return await self.task(vm.node, 'resize', vm.vmid, user, body, vm=vm)

    async def _hk_ha_res_list(self, v, user):
        return [dict(r) for _, r in sorted(self.ha_res.items())]

    async def _hk_ha_res_create(self, v, user):
        sid = str(v['sid'])
        if not sid.startswith('vm:'):
            sid = 'vm:' + sid
        if sid in self.ha_res:
            raise PveError(500, "resource ID '{0}' already defined".format(sid))
        vm = self.vm(int(sid[3:]))
        if vm is None:
            raise PveError(500, "unable to find VM '{0}'".format(sid[3:]))
        state = v.get('state') or 'started'
        self.ha_res[sid] = {'sid': sid, 'state': state, 'type': 'vm', 'digest': 'x' * 40}
        if v.get('group'):
            self.ha_res[sid]['group'] = v['group']
        vm.ha_state = state
        return None

    async def _hk_ha_rules_list(self, v, user):
        return [dict(r) for _, r in sorted(self.ha_rules.items())]

    async def _hk_ha_rules_create(self, v, user):
        rule = str(v['rule'])
        if rule in self.ha_rules:
            raise PveError(500, "rule '{0}' already defined".format(rule))
        entry = {'rule': rule, 'type': v['type'], 'resources': v['resources'], 'digest': 'x' * 40}
        for key in ('affinity', 'nodes', 'strict', 'comment', 'disable'):
            if v.get(key) is not None:
                entry[key] = v[key]
        self.ha_rules[rule] = entry
        return None


def vm_view(vm):
    cfg = dict(vm.config)
    return {'vmid': vm.vmid, 'name': vm.name, 'node': vm.node, 'status': vm.status, 'template': bool(vm.template),
            'lock': vm.lock, 'config': {k: str(v) for k, v in cfg.items()}, 'pool': vm.pool,
            'ha_state': vm.ha_state}


async def command(pve, cmd):
    op = cmd.pop('op')
    if op == 'add_node':
        pve.add_node(cmd['name'], online=cmd.get('online', True))
    elif op == 'add_vm':
        cfg = cmd.get('config', {})
        vm = pve.add_vm(cmd['vmid'], cmd['name'], node=cmd.get('node', 'pve1'), status=cmd.get('status', 'stopped'),
                        config=cfg, template=cmd.get('template', False))
        if cmd.get('template'):
            vm.config['template'] = 1
    elif op == 'add_storage':
        pve.storages[cmd['name']] = dict({'active': 1, 'files': set()}, **cmd['options'])
    elif op == 'set_storage':
        pve.storages[cmd['name']].update(cmd['options'])
    elif op == 'set_vm':
        vm = pve.vm(cmd['vmid'])
        for key, val in cmd['attrs'].items():
            setattr(vm, key, val)
    elif op == 'add_pool':
        pve.pools.setdefault(cmd['name'], set())
    elif op == 'add_totp_user':
        # A user with a password and a TOTP second factor; returns the current code.
        pve.users[cmd['user']] = cmd['password']
        pve.totp_users[cmd['user']] = cmd['secret']
        return totp(cmd['secret'], time.time())
    elif op == 'totp_now':
        return totp(pve.totp_users[cmd['user']], time.time())
    elif op == 'totp_wrong':
        # Six digits that are not the user's code at any step from -2 to +2.
        near = {totp(pve.totp_users[cmd['user']], time.time() + d * 30) for d in range(-2, 3)}
        return next('{0:06d}'.format(n) for n in range(1000000) if '{0:06d}'.format(n) not in near)
    elif op == 'tfa_counts':
        return {'accepted': pve.tfa_accepted, 'refused': pve.tfa_refused}
    elif op == 'add_token':
        pve.apitokens[cmd['id']] = cmd['secret']
    elif op == 'time_scale':
        pve.time_scale = cmd['value']
    elif op == 'durations':
        pve.durations = dict(cmd['value'])
    elif op == 'ticket_ttl':
        pve.ticket_ttl = cmd['value']
    elif op == 'revoke_tickets':
        pve.revoke_tickets()
    elif op == 'fail':
        pve.fail(cmd['method'], cmd['suffix'], status=cmd.get('status'), message=cmd.get('message'),
                 error=cmd.get('error'), times=cmd.get('times'))
    elif op == 'clear_failures':
        pve.failures.clear()
    elif op == 'node_offline':
        pve.set_node_offline(cmd['node'], cmd.get('offline', True))
    elif op == 'slow_network':
        pve.slow_network(cmd['latency'], jitter=cmd.get('jitter', 0.0))
    elif op == 'flaky_network':
        pve.flaky_network(drop_rate=cmd.get('drop_rate', 0.0), hang_rate=cmd.get('hang_rate', 0.0),
                          hang_secs=cmd.get('hang_secs', 120), seed=cmd.get('seed'))
        if cmd.get('seed') is not None:
            pve._random.seed(cmd['seed'])
    elif op == 'hold_lock':
        await pve.hold_config_lock(cmd['vmid'], cmd.get('secs'))
    elif op == 'requests':
        since = cmd.get('since', 0)
        return [{'method': m, 'path': p, 'body': b.decode('utf-8', 'replace') if isinstance(b, bytes) else str(b)}
                for m, p, b in pve.requests[since:]]
    elif op == 'spans':
        return pve.spans[cmd.get('since', 0):]
    elif op == 'monotonic':
        return time.monotonic()
    elif op == 'request_count':
        return len(pve.requests)
    elif op == 'vms':
        return [vm_view(vm) for vm in sorted(pve.vms, key=lambda v: v.vmid)]
    elif op == 'ha':
        return {'resources': list(pve.ha_res.values()), 'rules': list(pve.ha_rules.values())}
    elif op == 'tasks':
        return [{k: v for k, v in t.items()} for t in pve.tasklog]
    elif op == 'settle':
        # Wait until no task runs.
        deadline = time.time() + cmd.get('timeout', 30)
        while any(t['status'] == 'running' for t in pve.tasks.values()) and time.time() < deadline:
            await asyncio.sleep(0.01)
    elif op == 'start_error':
        pve.start_errors[cmd['vmid']] = cmd['message']
    elif op == 'max_running':
        return pve.max_running
    elif op == 'warn_types':
        pve.warn_types = set(cmd['value'])
    elif op == 'set_version':
        pve.version, pve.release_version = cmd['version'], cmd['release']
    elif op == 'ping':
        return 'pong'
    else:
        raise ValueError('unknown op ' + op)
    return None


async def main():
    # Dropped connections (flaky_network) are expected: no tracebacks on stderr.
    import logging
    logging.getLogger('aiohttp.server').setLevel(logging.CRITICAL)
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.2')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--time-scale', type=float, default=0.0)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='hakube-fakepve-')
    certfile, keyfile, der = make_cert(tmp, hosts=(args.host,))
    import hashlib
    fp = ':'.join('{0:02X}'.format(b) for b in hashlib.sha256(der).digest())
    pve = HarnessPve(user='root@pam', password='secret', host=args.host, port=args.port)
    pve.time_scale = args.time_scale
    # Only the nodes the test adds.
    pve.nodes = {}
    await pve.start(certfile, keyfile)
    os.remove(keyfile)
    print(json.dumps({'url': pve.url, 'ca': certfile, 'fingerprint': fp, 'host': pve.host, 'port': pve.port}),
          flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        try:
            result = {'ok': await command(pve, json.loads(line))}
        except Exception as e:  # noqa: BLE001 - reported to the test
            result = {'error': '{0}: {1}'.format(type(e).__name__, e)}
        sys.stdout.write(json.dumps(result, default=str) + '\n')
        sys.stdout.flush()
    await pve.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    asyncio.run(main())
