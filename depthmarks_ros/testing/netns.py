"""Two test "hosts" on one machine: network namespaces joined by a veth pair.

Each namespace has only its loopback and its end of the veth link, with link-local addresses
(169.254.X.1 and 169.254.X.2 /30) that the harness assigns itself, so DDS traffic between the
two crosses a real network stack (UDP over an Ethernet-like link, no shared loopback) and can
never leave the namespaces. Shared memory still works between them (same /dev/shm): the
shipped network profile keeps SHM for same-host traffic, and Fast DDS only uses it between
participants it considers on the same host; the tests check the veth byte counters to prove
the data crossed the link.

Needs root and iproute2 (``ip netns``); :func:`netns_unavailable` says why not otherwise.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Dict, List, Optional, Sequence


def netns_unavailable() -> Optional[str]:
    """None when two namespaces can be made here, else the reason."""
    if os.geteuid() != 0:
        return 'network namespaces need root'
    if shutil.which('ip') is None:
        return 'iproute2 (ip) is not installed'
    probe = f'dmprobe{os.getpid()}'
    r = subprocess.run(['ip', 'netns', 'add', probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f'ip netns add failed: {r.stderr.strip()}'
    subprocess.run(['ip', 'netns', 'del', probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    r = subprocess.run(['ip', *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f'ip {" ".join(args)}: {r.stderr.strip()}')


class NetnsPair:
    """Hosts ``a`` and ``b``: ``with NetnsPair() as net: net.popen('a', [...])``.

    Attributes: ``names`` (host -> namespace name), ``addresses`` (host -> IPv4 address),
    ``veth`` (host -> interface name inside that namespace).
    """

    def __init__(self, tag: Optional[str] = None):
        tag = tag or str(os.getpid() % 100000)
        subnet = 1 + os.getpid() % 250
        self.names = {'a': f'dm{tag}a', 'b': f'dm{tag}b'}
        self.veth = {'a': f'dm{tag}va', 'b': f'dm{tag}vb'}
        self.addresses = {'a': f'169.254.{subnet}.1', 'b': f'169.254.{subnet}.2'}
        self._up = False

    def __enter__(self) -> 'NetnsPair':
        self.close()
        for h in 'ab':
            _ip('netns', 'add', self.names[h])
        self._up = True
        try:
            _ip('link', 'add', self.veth['a'], 'type', 'veth', 'peer', 'name', self.veth['b'])
            for h in 'ab':
                ns = self.names[h]
                _ip('link', 'set', self.veth[h], 'netns', ns)
                _ip('-n', ns, 'addr', 'add', self.addresses[h] + '/30', 'dev', self.veth[h])
                _ip('-n', ns, 'link', 'set', 'lo', 'up')
                _ip('-n', ns, 'link', 'set', self.veth[h], 'up')
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for h in 'ab':     # deleting a namespace deletes its end of the veth pair, and the pair
            subprocess.run(['ip', 'netns', 'del', self.names[h]], capture_output=True)
        self._up = False

    def wrap(self, host: str) -> List[str]:
        """Command prefix that runs a program inside ``host``'s namespace."""
        return ['ip', 'netns', 'exec', self.names[host]]

    def popen(self, host: str, cmd: Sequence[str], env: Optional[Dict[str, str]] = None,
              **kwargs) -> subprocess.Popen:
        return subprocess.Popen([*self.wrap(host), *cmd], env=env, **kwargs)

    def tx_bytes(self, host: str) -> int:
        """Bytes sent so far on ``host``'s veth interface."""
        out = subprocess.run([*self.wrap(host), 'cat', f'/sys/class/net/{self.veth[host]}/statistics/tx_bytes'],
                             capture_output=True, text=True, check=True).stdout
        return int(out.strip())
