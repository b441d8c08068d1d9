"""The local twin's Proxmox VE: fakepve (PyPI) with the topology's nodes, storage and templates,
whose VMs power lab hosts.

    python3 pve.py SPEC.json

SPEC: {"host", "port", "user", "password", "nodes": [..], "storage", "templates":
[{"vmid", "node", "name"}], "power": {"<vm name>": {"up": [[argv]...], "down": [[argv]...]}}}.
Prints one JSON line {"url", "fingerprint"} once it listens, then serves until stdin closes
or SIGTERM.

A VM that starts runs its "up" commands before the start task ends (the lab host's cable is
plugged in), and its guest agent then reports the address cloud-init gave it (ipconfig0), as a
real VM's agent does once it booted. A VM that stops or is destroyed runs its "down" commands.
"""

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from fakepve.certs import make_cert

# hakube-proxmox-api's test harness (written next to this file by the twin): fakepve plus the
# state a provisioner's re-run must see (disk sizes, HA resources and rules, the agent address).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakepve_harness import HarnessPve  # noqa: E402


class TwinPve(HarnessPve):
    def __init__(self, power, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.power = power
        self.powered = set()

    def _run(self, vm, what):
        for argv in self.power.get(vm.name, {}).get(what, []):
            subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def _do_start(self, vm, user, p):
        result = await super()._do_start(vm, user, p)
        if vm.status == 'running':
            self._run(vm, 'up')
            self.powered.add(vm.name)
        return result

    async def watch_power(self):
        """VMs that stopped or vanished lose their cable."""
        while True:
            running = {vm.name for vm in self.vms if vm.status == 'running'}
            for name in sorted(self.powered - running):
                self.powered.discard(name)
                for argv in self.power.get(name, {}).get('down', []):
                    subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(0.1)


async def main():
    import logging
    logging.getLogger('aiohttp.server').setLevel(logging.CRITICAL)
    spec = json.load(open(sys.argv[1]))
    tmp = tempfile.mkdtemp(prefix='hakube-twin-pve-')
    certfile, keyfile, der = make_cert(tmp, hosts=(spec['host'],))
    fp = ':'.join('{0:02X}'.format(b) for b in hashlib.sha256(der).digest())
    pve = TwinPve(spec.get('power', {}), user=spec['user'], password=spec['password'],
                  host=spec['host'], port=spec.get('port', 0))
    pve.nodes = {}
    for n in spec['nodes']:
        pve.add_node(n)
    storage = spec.get('storage', 'local-lvm')
    if storage not in pve.storages:
        pve.storages[storage] = {'type': 'lvmthin', 'active': 1, 'content': 'images,rootdir',
                                 'vgname': 'pve', 'thinpool': 'data', 'files': set()}
    for t in spec.get('templates', []):
        vmid = t['vmid']
        vm = pve.add_vm(vmid, t['name'], node=t['node'], status='stopped', template=True, config={
            'scsi0': '{0}:base-{1}-disk-0,size=3G'.format(storage, vmid), 'memory': 2048, 'cores': 1,
            'scsihw': 'virtio-scsi-single', 'ide2': '{0}:vm-{1}-cloudinit,media=cdrom'.format(storage, vmid),
            'net0': 'virtio=BC:24:11:00:00:0A,bridge={0}'.format(spec.get('bridge', 'vmbr0')), 'agent': '1'})
        vm.config['template'] = 1
    await pve.start(certfile, keyfile)
    os.remove(keyfile)
    print(json.dumps({'url': pve.url, 'fingerprint': fp}), flush=True)
    watcher = asyncio.ensure_future(pve.watch_power())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def eof():
        while await reader.readline():
            pass
        stop.set()
    asyncio.ensure_future(eof())
    await stop.wait()
    watcher.cancel()
    await pve.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    asyncio.run(main())
