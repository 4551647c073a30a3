#!/usr/bin/env python3
"""Two "hosts" on one machine: two network namespaces joined by a veth pair.

Test harness for mftrace (Python 3.11, standard library; iproute2 and nftables from
scripts/setup.sh). Used by tests/integration/test_twohost.py.

    from netns import NetnsPair
    with NetnsPair() as n:                      # makes both; removes both on leaving
        n.addr["a"], n.addr["b"]                # 10.231.X.1 and 10.231.X.2 (/24)
        argv = n.wrap("a", ["qemu-system-x86_64", ...])   # runs inside namespace a
        n.nft("b", RULES)                       # an nftables ruleset inside namespace b
        n.tc("a", "qdisc", "add", "dev", n.dev["a"], "root", "tbf", ...)

Only the two addresses this module gives out are ever addressed: the tests talk to the
hosts they created and to nothing else. Each namespace has its own loopback, routing
table, nftables and qdiscs; the kernel (and so every eBPF tracepoint) is shared, which
is what lets one machine stand for two hosts in a test of the two-host timeline.

netem is not in this kernel (CONFIG_NET_SCH_NETEM is unset): delay and loss come from
nftables (drop, reject with tcp reset) and rate from tbf.

Cleanup always: leaving the block, an exception, or the next run (namespaces named
mft-<pid>-a/b whose pid is gone are removed by cleanup_stale()).
"""

from __future__ import annotations

import atexit
import os
import re
import subprocess

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "/sbin/ip"
NFT = "/usr/sbin/nft"
TC = "/usr/sbin/tc" if os.path.exists("/usr/sbin/tc") else "/sbin/tc"
NAME_RE = re.compile(r"^mft-(\d+)-[ab]$")


class NetnsError(RuntimeError):
    pass


def _run(argv: list[str], input_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def missing() -> str | None:
    """Why this machine cannot make the namespaces, or None."""
    for path, pkg in ((IP, "iproute2"), (NFT, "nftables"), (TC, "iproute2")):
        if not os.path.exists(path):
            return f"{path} is missing (Debian package {pkg}; scripts/setup.sh installs it)"
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    return None


def cleanup_stale() -> None:
    """Remove the namespaces of test runs whose process is gone."""
    r = _run([IP, "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = NAME_RE.match(name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _run([IP, "netns", "del", name], check=False)


class NetnsPair:
    """Namespaces "a" and "b", veth va (in a) <-> vb (in b), 10.231.X.1/.2, lo up."""

    def __init__(self, subnet: int | None = None):
        pid = os.getpid()
        self.ns = {"a": f"mft-{pid}-a", "b": f"mft-{pid}-b"}
        self.dev = {"a": "va", "b": "vb"}
        x = subnet if subnet is not None else pid % 250 + 1
        self.addr = {"a": f"10.231.{x}.1", "b": f"10.231.{x}.2"}
        self.made: list[str] = []

    def start(self) -> "NetnsPair":
        cleanup_stale()
        atexit.register(self.stop)
        try:
            for s in ("a", "b"):
                _run([IP, "netns", "add", self.ns[s]])
                self.made.append(self.ns[s])
            _run([IP, "link", "add", self.dev["a"], "netns", self.ns["a"], "type", "veth",
                  "peer", "name", self.dev["b"], "netns", self.ns["b"]])
            for s in ("a", "b"):
                _run([IP, "-n", self.ns[s], "link", "set", "lo", "up"])
                _run([IP, "-n", self.ns[s], "addr", "add", f"{self.addr[s]}/24", "dev", self.dev[s]])
                _run([IP, "-n", self.ns[s], "link", "set", self.dev[s], "up"])
        except BaseException:
            self.stop()
            raise
        return self

    def wrap(self, side: str, argv: list[str]) -> list[str]:
        """argv run inside the namespace (ip netns exec execs it: the pid is argv's)."""
        return [IP, "netns", "exec", self.ns[side], *argv]

    def nft(self, side: str, ruleset: str) -> None:
        """Load an nftables ruleset (nft -f syntax) inside the namespace."""
        _run(self.wrap(side, [NFT, "-f", "-"]), input_text=ruleset)

    def nft_flush(self, side: str) -> None:
        _run(self.wrap(side, [NFT, "flush", "ruleset"]))

    def tc(self, side: str, *args: str) -> None:
        _run([TC, "-n", self.ns[side], *args])

    def ss(self, side: str, *args: str) -> str:
        return _run(self.wrap(side, ["ss", "-tanoi", *args]), check=False).stdout

    def stop(self) -> None:
        for name in reversed(self.made):
            _run([IP, "netns", "del", name], check=False)
        self.made.clear()

    def __enter__(self) -> "NetnsPair":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
