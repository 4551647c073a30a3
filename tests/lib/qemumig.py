#!/usr/bin/env python3
"""Run a real TLS-PSK multifd live migration between two local QEMUs on loopback.

Test harness for mftrace (Python 3.11, standard library only).

    from qemumig import Migration
    with Migration("7.2-10.0", workdir) as m:   # __enter__ does not start anything
        m.start()                              # boots both, arms the destination
        ...attach tracers to m.src_pid / m.dst_pid, port m.port...
        res = m.migrate(timeout=120)           # result dict, see Migration.migrate()
    # leaving the block calls m.stop(): SIGTERM, then SIGKILL, to the two QEMUs only

Scenarios (the names are API):

    7.2-7.2          Debian QEMU 7.2 on both sides, machine "pc"
    10.0-10.0        QEMU 10.0.2 on both sides, machine "pc"
    7.2-10.0         7.2 source, 10.0.2 destination, machine "pc-i440fx-7.2" on both
    7.2-10.0-strict  as 7.2-10.0, and the destination gets
                     -global migration.multifd-clean-tls-termination=on

With the QEMU built with USDT probes (version "usdt", see below), the same matrix
with "usdt" standing in for a side:

    usdt-usdt        USDT build on both sides, machine "pc"
    usdt-10.0        USDT build source, 10.0.2 destination, machine "pc"
    10.0-usdt        10.0.2 source, USDT build destination, machine "pc"
    7.2-usdt         7.2 source, USDT build destination, machine "pc-i440fx-7.2"
    7.2-usdt-strict  as 7.2-usdt, with the strict global of 7.2-10.0-strict

QEMU 10.0.2 lives in $MFTRACE_QEMU10_PREFIX (default /opt/mftrace/qemu-10.0), as
unpacked by scripts/setup.sh; 7.2 is /usr/bin/qemu-system-x86_64.  The USDT build
(dtrace+log trace backends, provider "qemu"; Debian's 10.0.2 source, so it behaves as
"10.0" on the wire) lives in $MFTRACE_USDT_PREFIX (default
/var/cache/mftrace/qemu-usdt), as built by scripts/build-usdt-qemu.sh; it ships no
firmware, so it is run with -L pointing at the 10.0.2 data dirs (or, without them, at
Debian 7.2's /usr/share/qemu and /usr/share/seabios).  usdt_available() tells whether
it is built; a "usdt" scenario raises HarnessError at start() when it is not.

Every QEMU writes its trace events (log backend, `-msg timestamp=on`, so lines read
`TID@SEC.USEC:event args`) to WORKDIR/<side>.trace via -D, and its stdout/stderr
(error_report messages) to WORKDIR/<side>.stderr.  Every wait is bounded.

Production-like set-ups (all on loopback, each QEMU started by this harness):

    Migration(..., listen_host="::")            destination on tcp:[::]:PORT (dual-stack),
                                                the source connects to 127.0.0.1
    Migration(..., listen_host="::1")           pure IPv6: tcp:[::1]:PORT on both sides
    m.add_destination("dst2")                   another destination QEMU (same scenario),
    m.migrate(dst="dst2")                       armed on its own port: retry, back-to-back
    m.start_migrate(); m.cancel()               migrate without waiting; migrate_cancel
    m.nbd_server_start("dst", port)             an NBD server over TLS (PSK) on a QEMU,
    nbd_client(m, port, ...)                    exporting a null-co disk (nbd_disk=True),
                                                and qemu-io / qemu-nbd TLS clients of it
    tls_chardev_client(m, port, ...)            gnutls-cli on a QEMU's TLS chardev server
    vnc_tls_viewer(port, ...)                   a VNC viewer over TLS (VeNCrypt X509None)
    Migration(..., extra_args={"dst": [...]})   more QEMU arguments for one side
    Migration(..., env={"src": {...}})          more environment for one side's QEMU
    Migration(..., binary={"src": PATH})        another QEMU binary (a private copy)
    Migration(..., wrap={"dst": [...]})         a command each side's QEMU runs under, which
                                                execs it (ip netns exec NS: tests/lib/netns.py)
    private_copy(version, dir, name)            such a copy; a name without "qemu" keeps
                                                every-QEMU tracers of other tests away
    m.states(side)                              the migrate_set_state states in its -trace log

CLI, for manual checking:
    python3 tests/lib/qemumig.py SCENARIO [--no-tls] [--channels N] [--runs N] ...
prints the result dict(s) as JSON.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

QEMU72_BIN = "/usr/bin/qemu-system-x86_64"
QEMU10_DEFAULT_PREFIX = "/opt/mftrace/qemu-10.0"
USDT_DEFAULT_PREFIX = "/var/cache/mftrace/qemu-usdt"
USDT_STAMP = ".mftrace-usdt-stamp"
VERSIONS = ("7.2", "10.0", "usdt")


def qemu10_prefix() -> str:
    return os.environ.get("MFTRACE_QEMU10_PREFIX") or QEMU10_DEFAULT_PREFIX


def usdt_prefix() -> str:
    return os.environ.get("MFTRACE_USDT_PREFIX") or USDT_DEFAULT_PREFIX


def usdt_binary() -> str:
    return f"{usdt_prefix()}/bin/qemu-system-x86_64"


def usdt_info() -> dict[str, str]:
    """The key=value stamp scripts/build-usdt-qemu.sh writes (debian_version,
    upstream_version, source_kind, configure, ...); {} when there is no build."""
    out: dict[str, str] = {}
    try:
        with open(os.path.join(usdt_prefix(), USDT_STAMP)) as f:
            for line in f:
                k, sep, v = line.rstrip("\n").partition("=")
                if sep:
                    out[k] = v
    except OSError:
        pass
    return out


def usdt_available() -> bool:
    """Is the USDT QEMU built (stamp present, binary executable)?"""
    return bool(usdt_info()) and os.access(usdt_binary(), os.X_OK)


def _usdt_data_dirs() -> list[str]:
    """Firmware/data dirs for the USDT build: those of 10.0.2 when unpacked (same
    firmware as the "10.0" side), else Debian 7.2's."""
    p = qemu10_prefix()
    if os.path.isdir(f"{p}/usr/share/qemu"):
        return [f"{p}/usr/share/qemu", f"{p}/usr/share/seabios"]
    return ["/usr/share/qemu", "/usr/share/seabios"]


def private_copy(version: str, directory: str, name: str = "vm-system-x86_64") -> str:
    """A copy of one installed QEMU's binary in directory (it finds its firmware through
    the -L arguments of qemu_argv, or its built-in data path). Returns its path. A QEMU
    run from a name without "qemu" is not picked up by tracers that watch every QEMU on
    the host (mftrace exporter/record of other tests): only what a test attaches itself
    sees it."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    shutil.copy2(qemu_argv(version)[0], path)
    return path


def module_dir(version: str) -> str:
    """Where that QEMU's loadable modules (accel-tcg, ...) are: beside its binary's prefix."""
    return os.path.normpath(os.path.join(os.path.dirname(qemu_argv(version)[0]), "..", "lib",
                                         "x86_64-linux-gnu", "qemu"))


def qemu_argv(version: str) -> list[str]:
    """Binary plus firmware search path for one of the two installed QEMUs."""
    if version == "7.2":
        return [QEMU72_BIN]
    if version == "10.0":
        p = qemu10_prefix()
        return [f"{p}/usr/bin/qemu-system-x86_64",
                "-L", f"{p}/usr/share/qemu", "-L", f"{p}/usr/share/seabios"]
    if version == "usdt":
        if not usdt_available():
            raise HarnessError(f"the USDT QEMU is not built in {usdt_prefix()}: "
                               "run scripts/build-usdt-qemu.sh (as root) first")
        a = [usdt_binary()]
        for d in _usdt_data_dirs():
            a += ["-L", d]
        return a
    raise ValueError(f"unknown QEMU version {version!r}")


@dataclass(frozen=True)
class Scenario:
    name: str
    src: str              # "7.2", "10.0" or "usdt"
    dst: str
    machine: str
    dst_globals: tuple[str, ...] = ()


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("7.2-7.2", "7.2", "7.2", "pc"),
    Scenario("10.0-10.0", "10.0", "10.0", "pc"),
    Scenario("7.2-10.0", "7.2", "10.0", "pc-i440fx-7.2"),
    Scenario("7.2-10.0-strict", "7.2", "10.0", "pc-i440fx-7.2",
             ("migration.multifd-clean-tls-termination=on",)),
    # the USDT build (10.0.2 source) in place of one or both sides
    Scenario("usdt-usdt", "usdt", "usdt", "pc"),
    Scenario("usdt-10.0", "usdt", "10.0", "pc"),
    Scenario("10.0-usdt", "10.0", "usdt", "pc"),
    Scenario("7.2-usdt", "7.2", "usdt", "pc-i440fx-7.2"),
    Scenario("7.2-usdt-strict", "7.2", "usdt", "pc-i440fx-7.2",
             ("migration.multifd-clean-tls-termination=on",)),
)}

TRACE_PATTERNS = ("multifd_*", "qio_channel_tls_*", "migrate_set_state")
FINAL_SRC_STATES = {"completed", "failed", "cancelled"}
FINAL_DST_STATES = {"completed", "failed"}


# --------------------------------------------------------------------------- QMP

class QMPError(Exception):
    """QMP answered a command with an error."""

    def __init__(self, cmd: str, error: dict):
        self.cmd = cmd
        self.error = error
        super().__init__(f"{cmd}: {error.get('class')}: {error.get('desc')}")


class QMPClosed(ConnectionError):
    """The QMP connection closed (QEMU exited) or timed out."""


class QMP:
    """Minimal synchronous QMP client over a unix socket.

    Asynchronous events are never returned by execute(); they are appended to
    self.events (each the decoded JSON object, plus a local "_recv_time")."""

    def __init__(self, path: str, timeout: float = 10.0, proc: subprocess.Popen | None = None):
        self.path = path
        self.events: list[dict] = []
        self.greeting: dict | None = None
        self._buf = b""
        self._id = 0
        self.sock: socket.socket | None = None
        deadline = time.monotonic() + timeout
        last_err: Exception | None = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise QMPClosed(f"QEMU exited (code {proc.returncode}) before QMP came up")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(1.0)
                s.connect(path)
                self.sock = s
                break
            except OSError as e:
                last_err = e
                s.close()
                time.sleep(0.02)
        if self.sock is None:
            raise QMPClosed(f"cannot connect to QMP socket {path}: {last_err}")
        self.greeting = self._read_msg(deadline)
        if "QMP" not in self.greeting:
            raise QMPClosed(f"unexpected QMP greeting: {self.greeting}")
        self.execute("qmp_capabilities", timeout=max(1.0, deadline - time.monotonic()))

    def _read_msg(self, deadline: float) -> dict:
        assert self.sock is not None
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPClosed(f"QMP timeout on {self.path}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise QMPClosed(f"QMP timeout on {self.path}") from None
            except OSError as e:
                raise QMPClosed(f"QMP connection error on {self.path}: {e}") from None
            if not chunk:
                raise QMPClosed(f"QMP connection closed on {self.path}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd: str, args: dict | None = None, timeout: float = 10.0):
        """Run one command; return its "return" value, raise QMPError / QMPClosed."""
        if self.sock is None:
            raise QMPClosed("QMP connection already closed")
        self._id += 1
        req: dict = {"execute": cmd, "id": self._id}
        if args:
            req["arguments"] = args
        deadline = time.monotonic() + timeout
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(json.dumps(req).encode() + b"\n")
        except OSError as e:
            raise QMPClosed(f"QMP send failed on {self.path}: {e}") from None
        while True:
            msg = self._read_msg(deadline)
            if "event" in msg:
                msg["_recv_time"] = time.time()
                self.events.append(msg)
                continue
            if msg.get("id") != self._id:
                continue            # stale answer to a command that timed out earlier
            if "error" in msg:
                raise QMPError(cmd, msg["error"])
            return msg.get("return")

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


# ----------------------------------------------------------------- log parsing

# `-msg timestamp=on` with the log trace backend: "TID@SEC.USEC:event args"
TRACE_RE = re.compile(r"^(\d+)@(\d+)\.(\d+):([A-Za-z0-9_]+)(?: (.*))?$")
# error_report() with -msg timestamp=on: "2025-01-01T00:00:00.000000Z qemu-system-x86_64: msg"
STDERR_PREFIX_RE = re.compile(r"^(?:\d{4}-\d\d-\d\dT[\d:.]+Z )?(?:[\w./-]*qemu-system-[\w]+: )?")


def parse_trace_log(path: str) -> list[dict]:
    """Trace events of one QEMU, in file order: dicts tid, time (float s),
    time_us (int, exact), event, args (string, may be empty)."""
    out: list[dict] = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = TRACE_RE.match(line.rstrip("\n"))
                if not m:
                    continue
                usec = int(m.group(3).ljust(6, "0")[:6])
                t_us = int(m.group(2)) * 1_000_000 + usec
                out.append({"tid": int(m.group(1)), "time": t_us / 1e6, "time_us": t_us,
                            "event": m.group(4), "args": m.group(5) or ""})
    except FileNotFoundError:
        pass
    return out


def parse_stderr(path: str) -> list[str]:
    """QEMU's stderr messages with the timestamp and program prefix removed.
    "terminating on signal N from pid <this harness>" (our own stop()) is dropped."""
    own = re.compile(rf"^terminating on signal \d+ from pid {os.getpid()}\b")
    out: list[str] = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.strip():
                    msg = STDERR_PREFIX_RE.sub("", line, count=1)
                    if not own.match(msg):
                        out.append(msg)
    except FileNotFoundError:
        pass
    return out


# --------------------------------------------------------------------- helpers

def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on host (IPv4 or IPv6 literal) that was free a moment ago."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tcp_uri(host: str, port: int) -> str:
    """QEMU's tcp: URI of host and port; an IPv6 literal goes in brackets."""
    return f"tcp:[{host}]:{port}" if ":" in host else f"tcp:{host}:{port}"


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL the child if the harness dies, so no QEMU is orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)       # PR_SET_PDEATHSIG
    except Exception:
        pass


class HarnessError(RuntimeError):
    pass


class UnsupportedOption(HarnessError):
    """A requested option is not supported by the QEMU version of this scenario."""


# ------------------------------------------------------------------- migration

class Migration:
    """One source QEMU and one destination QEMU, and one migration between them.

    Options: tls (PSK, default True), channels (multifd-channels, default 4),
    mem (MiB, default 512), volume (source RAM backed by a /dev/shm file of random
    bytes, so every page is really sent), exit_on_error (destination; False passes
    exit-on-error=false to migrate-incoming, which QEMU 7.2 lacks: start() then
    raises UnsupportedOption), port (default: a free one), debug_threads (adds
    -name ...,debug-threads=on so 7.2 names its threads too), qmp_timeout, boot_timeout,
    listen_host (the destination's listening address: "127.0.0.1", "::" dual-stack,
    "::1"), connect_host (what the source connects to; default the listening address,
    or 127.0.0.1 for "::"), nbd_disk (a 64 MiB null-co block node "disk0" on every
    QEMU, to export over NBD), extra_args / env / binary (per side, see the module doc),
    max_bandwidth (bytes/s for migrate-set-parameters; default QEMU's own, 128 MiB/s in
    7.2 and 10.0, which caps a 512 MiB migration at about 4 s).
    """

    def __init__(self, scenario: str, workdir: str, *, tls: bool = True, channels: int = 4,
                 mem: int = 512, volume: bool = False, exit_on_error: bool = True,
                 port: int | None = None, debug_threads: bool = False,
                 boot_timeout: float = 20.0, qmp_timeout: float = 10.0, uuid: str | None = None,
                 listen_host: str = "127.0.0.1", connect_host: str | None = None,
                 nbd_disk: bool = False, extra_args: dict | None = None, env: dict | None = None,
                 binary: dict | None = None, wrap: dict | None = None,
                 max_bandwidth: int | None = None):
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; one of {sorted(SCENARIOS)}")
        self.scenario = SCENARIOS[scenario]
        self.workdir = os.path.abspath(workdir)
        self.tls = tls
        self.channels = int(channels)
        self.mem = int(mem)
        self.volume = volume
        self.exit_on_error = exit_on_error
        self.listen_host = listen_host
        self.connect_host = connect_host or ("127.0.0.1" if listen_host in ("::", "0.0.0.0") else listen_host)
        self.port = port or free_port("::1" if ":" in self.connect_host else "127.0.0.1")
        self.ports: dict[str, int] = {"dst": self.port}   # each destination's port
        self.nbd_disk = nbd_disk
        self.max_bandwidth = max_bandwidth
        self.extra_args = dict(extra_args or {})
        self.env = dict(env or {})
        self.binary = dict(binary or {})
        self.wrap = dict(wrap or {})
        self.psk_dir: str | None = None
        self.debug_threads = debug_threads
        self.uuid = uuid  # -uuid on both sides (every MultiFDInit_t carries it)
        self.boot_timeout = boot_timeout
        self.qmp_timeout = qmp_timeout
        self.procs: dict[str, subprocess.Popen] = {}
        self.qmp: dict[str, QMP] = {}
        self.exit_codes: dict[str, int | None] = {"src": None, "dst": None}
        self.dst_sides = ["dst"]
        self.volume_file: str | None = None
        self.result: dict | None = None
        self.started = False
        self.stopped = False
        self.t_start = self.t_ready = None
        os.makedirs(self.workdir, exist_ok=True)

    # -- paths and pids
    def path(self, side: str, what: str) -> str:
        return os.path.join(self.workdir, f"{side}.{what}")

    @property
    def src_pid(self) -> int | None:
        p = self.procs.get("src")
        return p.pid if p else None

    @property
    def dst_pid(self) -> int | None:
        p = self.procs.get("dst")
        return p.pid if p else None

    def pid(self, side: str) -> int | None:
        p = self.procs.get(side)
        return p.pid if p else None

    @property
    def uri(self) -> str:
        """Where the source connects (the first destination)."""
        return tcp_uri(self.connect_host, self.port)

    def uri_of(self, dst: str) -> str:
        return tcp_uri(self.connect_host, self.ports[dst])

    def incoming_uri(self, dst: str = "dst") -> str:
        return tcp_uri(self.listen_host, self.ports[dst])

    # -- command lines
    def _write_psk(self) -> str:
        d = os.path.join(self.workdir, "psk")
        os.makedirs(d, exist_ok=True)
        f = os.path.join(d, "keys.psk")
        with open(f, "w") as fh:
            fh.write(f"qemu:{secrets.token_hex(32)}\n")
        os.chmod(f, 0o600)
        return d

    def _make_volume_file(self) -> str:
        fd, path = tempfile.mkstemp(prefix="qemumig-ram-", dir="/dev/shm")
        left = self.mem << 20
        with os.fdopen(fd, "wb") as fh:
            while left > 0:
                n = min(left, 8 << 20)
                fh.write(os.urandom(n))
                left -= n
        return path

    def argv(self, side: str, psk_dir: str | None) -> list[str]:
        version = self.scenario.src if side == "src" else self.scenario.dst
        base = qemu_argv(version)
        if side in self.binary:     # a copy elsewhere: its firmware where the original's is
            base = [self.binary[side]] + base[1:]
            if version == "7.2":
                base += ["-L", "/usr/share/qemu", "-L", "/usr/share/seabios"]
        a = base + [
            "-M", self.scenario.machine, "-m", str(self.mem),
            "-nodefaults", "-display", "none", "-accel", "tcg",
            "-qmp", f"unix:{self.path(side, 'qmp')},server=on,wait=off",
            "-msg", "timestamp=on", "-D", self.path(side, "trace"),
        ]
        if self.debug_threads:
            a += ["-name", f"qemumig-{side},debug-threads=on"]
        if self.uuid:
            a += ["-uuid", self.uuid]
        for t in TRACE_PATTERNS:
            a += ["-trace", t]
        if psk_dir:
            endpoint = "client" if side == "src" else "server"
            a += ["-object", f"tls-creds-psk,id=tls0,endpoint={endpoint},dir={psk_dir}"]
            if side != "src":   # to migrate on from here (migrate_between)
                a += ["-object", f"tls-creds-psk,id=tlsout,endpoint=client,dir={psk_dir}"]
            else:               # to serve TLS (NBD, chardevs) from the source too
                a += ["-object", f"tls-creds-psk,id=tlssrv,endpoint=server,dir={psk_dir}"]
        if self.nbd_disk:
            a += ["-blockdev", "driver=null-co,node-name=disk0,size=67108864,read-zeroes=on"]
        if self.volume:
            if side == "src":
                a += ["-object", f"memory-backend-file,id=m0,size={self.mem}M,"
                                 f"mem-path={self.volume_file},share=on"]
            else:
                a += ["-object", f"memory-backend-ram,id=m0,size={self.mem}M"]
            a += ["-machine", "memory-backend=m0"]
        if side != "src":
            for g in self.scenario.dst_globals:
                a += ["-global", g]
            a += ["-incoming", "defer"]
        a += list(self.extra_args.get(side, []))
        return a

    def _spawn(self, side: str, argv: list[str]) -> None:
        for what in ("qmp", "trace", "stderr"):
            try:
                os.unlink(self.path(side, what))
            except FileNotFoundError:
                pass
        with open(self.path(side, "cmdline"), "w") as fh:
            fh.write(" ".join(argv) + "\n")
        err = open(self.path(side, "stderr"), "wb")
        env = None
        if side in self.env or side in self.binary:
            env = dict(os.environ)
            if side in self.binary:  # a copy elsewhere: its modules where the original's are
                version = self.scenario.src if side == "src" else self.scenario.dst
                env["QEMU_MODULE_DIR"] = module_dir(version)
            env.update(self.env.get(side, {}))
        try:
            self.procs[side] = subprocess.Popen(
                list(self.wrap.get(side, [])) + argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                cwd=self.workdir, preexec_fn=_die_with_parent)
        finally:
            err.close()

    # -- lifecycle
    def start(self) -> "Migration":
        """Boot both QEMUs, configure multifd (+TLS), arm the destination."""
        if self.started:
            raise HarnessError("already started")
        self.started = True
        self.t_start = time.monotonic()
        psk_dir = self.psk_dir = self._write_psk() if self.tls else None
        if self.volume:
            self.volume_file = self._make_volume_file()
        try:
            for side in ("dst", "src"):
                self._spawn(side, self.argv(side, psk_dir))
            for side in ("dst", "src"):
                try:
                    self.qmp[side] = QMP(self.path(side, "qmp"), timeout=self.boot_timeout,
                                         proc=self.procs[side])
                except QMPClosed as e:
                    raise HarnessError(f"{side} QEMU did not come up: {e}; stderr: "
                                       f"{parse_stderr(self.path(side, 'stderr'))}") from None
            incoming_args: dict = {"uri": self.incoming_uri("dst")}
            if not self.exit_on_error:
                if not self.supports_exit_on_error("dst"):
                    raise UnsupportedOption(
                        f"destination QEMU {self.scenario.dst} has no exit-on-error "
                        "argument on migrate-incoming (added in QEMU 9.1)")
                incoming_args["exit-on-error"] = False
            for side in ("src", "dst"):
                self._configure(side)
            self.qmp["dst"].execute("migrate-incoming", incoming_args, timeout=self.qmp_timeout)
        except BaseException:
            self.stop()
            raise
        self.t_ready = time.monotonic()
        return self

    def supports_exit_on_error(self, side: str = "dst") -> bool:
        """Does this QEMU's migrate-incoming take exit-on-error? (QMP introspection)"""
        schema = self.qmp[side].execute("query-qmp-schema", timeout=self.qmp_timeout)
        by_name = {e.get("name"): e for e in schema}
        cmd = by_name.get("migrate-incoming")
        if not cmd:
            return False
        argt = by_name.get(cmd.get("arg-type"), {})
        return any(m.get("name") == "exit-on-error" for m in argt.get("members", []))

    def _configure(self, side: str) -> None:
        params: dict = {"multifd-channels": self.channels}
        if self.max_bandwidth:
            params["max-bandwidth"] = int(self.max_bandwidth)
        if self.tls:
            params["tls-creds"] = "tls0"
        q = self.qmp[side]
        q.execute("migrate-set-capabilities",
                  {"capabilities": [{"capability": "multifd", "state": True}]},
                  timeout=self.qmp_timeout)
        q.execute("migrate-set-parameters", params, timeout=self.qmp_timeout)

    def add_destination(self, side: str, port: int | None = None) -> str:
        """Boot another destination QEMU (this scenario's destination version), configure
        it like the first and arm it on its own port (or `port`). Returns side."""
        if not self.started or self.stopped:
            raise HarnessError("start() first")
        if side in self.procs:
            raise HarnessError(f"{side} exists")
        self.ports[side] = port or free_port("::1" if ":" in self.connect_host else "127.0.0.1")
        self.exit_codes[side] = None
        self.dst_sides.append(side)
        self._spawn(side, self.argv(side, self.psk_dir))
        try:
            self.qmp[side] = QMP(self.path(side, "qmp"), timeout=self.boot_timeout, proc=self.procs[side])
        except QMPClosed as e:
            raise HarnessError(f"{side} QEMU did not come up: {e}; stderr: "
                               f"{parse_stderr(self.path(side, 'stderr'))}") from None
        self._configure(side)
        self.qmp[side].execute("migrate-incoming", {"uri": self.incoming_uri(side)}, timeout=self.qmp_timeout)
        return side

    def start_migrate(self, dst: str = "dst") -> None:
        """Issue migrate to dst and return at once (see cancel(), wait_source())."""
        self.qmp["src"].execute("migrate", {"uri": self.uri_of(dst)}, timeout=self.qmp_timeout)

    def migrate_between(self, src: str, dst: str, timeout: float = 120.0, settle_timeout: float = 15.0) -> dict:
        """Migrate the VM on side src (a destination earlier, say) to side dst: the same
        VM on the move again. Returns {src_status, dst_status, dst_exit_code}."""
        if self.tls and src != "src":
            self.qmp[src].execute("migrate-set-parameters", {"tls-creds": "tlsout"}, timeout=self.qmp_timeout)
        self.qmp[src].execute("migrate", {"uri": self.uri_of(dst)}, timeout=self.qmp_timeout)
        deadline = time.monotonic() + timeout
        info = None
        while time.monotonic() < deadline:
            info = self._query(src)
            if info is None or info.get("status") in FINAL_SRC_STATES:
                break
            time.sleep(0.02)
        dst_status = None
        deadline = time.monotonic() + settle_timeout
        while time.monotonic() < deadline and self._alive(dst):
            d = self._query(dst)
            dst_status = d.get("status") if d else None
            if dst_status in FINAL_DST_STATES:
                break
            time.sleep(0.02)
        return {"src_status": info.get("status") if info else None, "dst_status": dst_status,
                "dst_exit_code": self.procs[dst].poll()}

    def cancel(self) -> None:
        self.qmp["src"].execute("migrate_cancel", timeout=self.qmp_timeout)

    def wait_source(self, timeout: float = 60.0, poll_interval: float = 0.02) -> dict | None:
        """Poll the source's query-migrate until it is final (or timeout); its last answer."""
        deadline = time.monotonic() + timeout
        info = None
        while time.monotonic() < deadline:
            info = self._query("src")
            if info is None or info.get("status") in FINAL_SRC_STATES:
                return info
            time.sleep(poll_interval)
        return info

    def source_status(self) -> str | None:
        info = self._query("src")
        return info.get("status") if info else None

    def states(self, side: str) -> list[str]:
        """The states QEMU's own -trace log shows for side (migrate_set_state), in order."""
        return [e["args"].rsplit(" ", 1)[-1] for e in parse_trace_log(self.path(side, "trace"))
                if e["event"] == "migrate_set_state"]

    def nbd_server_start(self, side: str, port: int, tls: bool = True, export: str = "disk0") -> None:
        """An NBD server on side's QEMU (TLS with the migration's PSK credentials unless
        tls=False) exporting the null-co node disk0 (needs nbd_disk=True)."""
        args: dict = {"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": str(port)}}}
        if tls:
            args["tls-creds"] = "tlssrv" if side == "src" else "tls0"
        q = self.qmp[side]
        q.execute("nbd-server-start", args, timeout=self.qmp_timeout)
        q.execute("block-export-add", {"type": "nbd", "id": f"exp-{export}", "node-name": "disk0",
                                       "name": export}, timeout=self.qmp_timeout)

    def _query(self, side: str) -> dict | None:
        try:
            return self.qmp[side].execute("query-migrate", timeout=self.qmp_timeout)
        except QMPClosed:
            return None

    def _alive(self, side: str) -> bool:
        return self.procs[side].poll() is None

    def migrate(self, timeout: float = 120.0, settle_timeout: float = 15.0,
                poll_interval: float = 0.02, dst: str = "dst") -> dict:
        """Migrate src -> dst and return the result dict (also kept in self.result).

        Polls the source's query-migrate until completed/failed/cancelled (or
        `timeout`), then waits at most `settle_timeout` for the destination to reach
        completed/failed or to exit (a destination that reports failed while
        exit_on_error is on is given that time to exit).

        Keys: scenario, src_version, dst_version, machine, tls, channels, mem, volume,
        port, src_pid, dst_pid, src_status, dst_status (None if the destination
        process has exited), dst_last_status (last status seen over QMP),
        dst_exit_code (None if alive), src_error_desc / dst_error_desc (query-migrate
        error-desc), src_errors / dst_errors (stderr messages, prefix stripped),
        src_trace / dst_trace (parsed trace events), src_events / dst_events (QMP
        events), timed_out, timings {boot_s, migrate_s, settle_s, total_s}, files.
        stop() refreshes errors, traces and exit codes in this same dict.
        """
        if not self.started or self.stopped:
            raise HarnessError("start() first")
        t0 = time.monotonic()
        src_info: dict | None = None
        timed_out = False
        self.qmp["src"].execute("migrate", {"uri": self.uri_of(dst)}, timeout=self.qmp_timeout)
        deadline = t0 + timeout
        while True:
            src_info = self._query("src")
            if src_info is None or src_info.get("status") in FINAL_SRC_STATES:
                break
            if time.monotonic() >= deadline:
                timed_out = True
                break
            time.sleep(poll_interval)
        t_src = time.monotonic()

        dst_info: dict | None = None
        dst_last: dict | None = None
        settle_deadline = t_src + settle_timeout
        while time.monotonic() < settle_deadline:
            if not self._alive(dst):
                break
            info = self._query(dst)
            if info is None:                     # QMP closed: the process is exiting
                try:
                    self.procs[dst].wait(timeout=max(0.0, settle_deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                break
            dst_last = info
            st = info.get("status")
            if st == "completed":
                break
            if st == "failed":
                if not self.exit_on_error:
                    break
                try:        # exit-on-error: it is about to exit; wait for the code
                    self.procs[dst].wait(timeout=max(0.0, min(5.0, settle_deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    pass
                break
            time.sleep(poll_interval)
        t_dst = time.monotonic()
        dst_code = self.procs[dst].poll()
        if dst_code is None:
            dst_info = dst_last
        time.sleep(0.2)             # let late trace lines (thread ends) reach the log

        sc = self.scenario
        self.result = {
            "scenario": sc.name, "src_version": sc.src, "dst_version": sc.dst,
            "machine": sc.machine, "dst_globals": list(sc.dst_globals),
            "tls": self.tls, "channels": self.channels, "mem": self.mem,
            "volume": self.volume, "exit_on_error": self.exit_on_error,
            "port": self.ports[dst], "src_pid": self.src_pid, "dst_pid": self.pid(dst), "dst_side": dst,
            "src_status": src_info.get("status") if src_info else None,
            "dst_status": dst_info.get("status") if dst_info else None,
            "dst_last_status": dst_last.get("status") if dst_last else None,
            "dst_exit_code": dst_code,
            "src_error_desc": src_info.get("error-desc") if src_info else None,
            "dst_error_desc": dst_last.get("error-desc") if dst_last else None,
            "src_exit_code": self.procs["src"].poll(),
            "timed_out": timed_out,
            "timings": {"boot_s": round(self.t_ready - self.t_start, 3),
                        "migrate_s": round(t_src - t0, 3),
                        "settle_s": round(t_dst - t_src, 3),
                        "total_s": round(t_dst - t0, 3)},
            "src_query": src_info, "dst_query": dst_last,
            "files": {f"{s}_{w}": self.path(s if s == "src" else dst, w) for s in ("src", "dst")
                      for w in ("trace", "stderr", "cmdline")},
        }
        self._refresh_logs()
        return self.result

    def _refresh_logs(self) -> None:
        if self.result is None:
            return
        for key, side in (("src", "src"), ("dst", self.result.get("dst_side", "dst"))):
            self.result[f"{key}_errors"] = parse_stderr(self.path(side, "stderr"))
            self.result[f"{key}_trace"] = parse_trace_log(self.path(side, "trace"))
            q = self.qmp.get(side)
            self.result[f"{key}_events"] = list(q.events) if q else []

    def stop(self, timeout: float = 10.0) -> dict[str, int | None]:
        """Terminate the two QEMUs this object started (SIGTERM, then SIGKILL after
        `timeout`), wait for them and record their exit codes. Idempotent."""
        if self.stopped:
            return self.exit_codes
        self.stopped = True
        for q in self.qmp.values():
            q.close()
        for side, p in self.procs.items():
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for side, p in self.procs.items():
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            self.exit_codes[side] = p.returncode
        if self.volume_file:
            try:
                os.unlink(self.volume_file)
            except FileNotFoundError:
                pass
            self.volume_file = None
        if self.result is not None:
            self.result["final_exit_codes"] = dict(self.exit_codes)
            self._refresh_logs()
        return self.exit_codes

    def __enter__(self) -> "Migration":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ------------------------------------------------------------------------ clients

QEMU_IO = "/usr/bin/qemu-io"
QEMU_NBD = "/usr/bin/qemu-nbd"


def nbd_client(m: Migration, port: int, workdir: str, name: str, hold_ms: int = 0,
               tls: bool = True, tool: str = "qemu-io", export: str = "disk0") -> subprocess.Popen:
    """A TLS (PSK, the migration's key) NBD client of the server on 127.0.0.1:port:
    qemu-io reading the export (then holding the connection hold_ms), or qemu-nbd
    --list. Output in WORKDIR/NAME.out; the caller waits for it (bounded)."""
    obj = f"tls-creds-psk,id=tls0,endpoint=client,dir={m.psk_dir},username=qemu"
    if tool == "qemu-io":
        opts = f"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={port},export={export}"
        if tls:
            opts += ",tls-creds=tls0"
        argv = [QEMU_IO, "-r", "--object", obj, "--image-opts", opts, "-c", "read 0 64k"]
        if hold_ms:
            argv += ["-c", f"sleep {hold_ms}", "-c", "read 64k 64k"]
    elif tool == "qemu-nbd":
        argv = [QEMU_NBD, "--list", "--object", obj, "-b", "127.0.0.1", "-p", str(port)]
        if tls:
            argv += ["--tls-creds", "tls0"]
    else:
        raise ValueError(tool)
    out = open(os.path.join(workdir, f"{name}.out"), "wb")
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                preexec_fn=_die_with_parent)
    finally:
        out.close()


def psk_key(m: Migration) -> str:
    """The hex key of the PSK credentials (user "qemu") the harness wrote."""
    with open(os.path.join(m.psk_dir, "keys.psk")) as f:
        return f.read().strip().split(":", 1)[1]


def tls_chardev_client(m: Migration, port: int, workdir: str, name: str, hold_s: float = 1.0) -> subprocess.Popen:
    """gnutls-cli as a TLS-PSK client of a QEMU chardev socket server on 127.0.0.1:port,
    holding the connection hold_s seconds (then its stdin ends and it says goodbye)."""
    argv = ["sh", "-c", f"sleep {hold_s} | exec gnutls-cli --pskusername=qemu --pskkey={psk_key(m)} "
            f"--priority=NORMAL:-KX-ALL:+PSK:+DHE-PSK:+ECDHE-PSK -p {port} 127.0.0.1"]
    out = open(os.path.join(workdir, f"{name}.out"), "wb")
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                preexec_fn=_die_with_parent)
    finally:
        out.close()


def vnc_tls_viewer(port: int, workdir: str, name: str, hold_s: float = 1.0) -> subprocess.Popen:
    """A VNC viewer over TLS (tests/lib/vncclient.py) of 127.0.0.1:port, holding the
    session hold_s seconds; a QEMU serves it with vncclient.x509_creds() credentials."""
    client = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vncclient.py")
    out = open(os.path.join(workdir, f"{name}.out"), "wb")
    try:
        return subprocess.Popen([sys.executable, client, "127.0.0.1", str(port), str(hold_s)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, preexec_fn=_die_with_parent)
    finally:
        out.close()


# ------------------------------------------------------------------------- CLI

def run_once(scenario: str, workdir: str, timeout: float, **opts) -> dict:
    with Migration(scenario, workdir, **opts) as m:
        m.start()
        res = m.migrate(timeout=timeout)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--no-tls", action="store_true")
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--mem", type=int, default=512, help="guest RAM in MiB")
    ap.add_argument("--volume", action="store_true", help="random-filled source RAM")
    ap.add_argument("--no-exit-on-error", action="store_true",
                    help="migrate-incoming exit-on-error=false (QEMU >= 9.1 destination)")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--workdir", help="keep run directories here (default: a temp dir, removed)")
    ap.add_argument("--no-trace", action="store_true", help="omit parsed trace events")
    a = ap.parse_args(argv)

    base = a.workdir or tempfile.mkdtemp(prefix="qemumig-")
    results = []
    try:
        for i in range(a.runs):
            wd = os.path.join(base, f"run{i}")
            res = run_once(a.scenario, wd, a.timeout, tls=not a.no_tls, channels=a.channels,
                           mem=a.mem, volume=a.volume, exit_on_error=not a.no_exit_on_error)
            if a.no_trace:
                res.pop("src_trace", None)
                res.pop("dst_trace", None)
            results.append(res)
    finally:
        if not a.workdir:
            shutil.rmtree(base, ignore_errors=True)
    json.dump(results[0] if a.runs == 1 else results, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
