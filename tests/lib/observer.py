#!/usr/bin/env python3
"""Ground-truth observer for the mftrace tests: runs observer.bt under bpftrace.

Independent of mftrace by design (shares no code with bpf/, user/, include/): the
tests compare mftrace's per-channel verdicts against truth_verdict() below, which is
computed from this observer's raw kernel/uprobe evidence alone.

    obs = Observer(dst_pid, src_pid, port, workdir)   # workdir gets observer.out/.err
    obs.start()              # bpftrace attached (READY seen) or ObserverError
    ...run the migration...
    res = obs.stop()         # SIGINT, collect, parse -> ObservedRun
    for key, dst in res.dst_conns.items():            # key = (lport, rport) on dst
        src = res.peer(dst)                          # the source's end, or None
        print(key, dst.role, truth_verdict(dst, src, outcome))

Connections are keyed by the TCP 4-tuple from each side's point of view, on
loopback (IPv4 or IPv6): (local port, peer port).  On the destination every migration
connection is (PORT, ephemeral); on the source it is (ephemeral, PORT).  A second pair
of QEMUs and a second port (two migrations at once, a retry to another destination)
are watched with Observer(..., dst2_pid=, src2_pid=, port2=); each Conn says its pid.
A destination whose pid is not known in advance (libvirt starts it moments before the
migration) is watched with adopt=True: whoever accepts on the port is traced from then
on (dst_pid may be 0); each Conn says its pid.
A QEMU that maps a private libgnutls is watched with gnutls=PATH (a path to the very
file it maps: a hard link stays valid when the library is replaced or deleted).

CLI (measurement driver, uses qemumig.py):
    python3 tests/lib/observer.py SCENARIO [--runs N] [--no-tls] [--channels N]
            [--volume] [--verbose] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
BT_SCRIPT = os.path.join(HERE, "observer.bt")
BPFTRACE = os.environ.get("MFTRACE_BPFTRACE", "/usr/bin/bpftrace")
SYSTEM_GNUTLS = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30"  # as observer.bt names it

MAGIC_MAIN = 0x5145564D       # "QEVM": QEMU_VM_FILE_MAGIC, first bytes of the main channel
MAGIC_MULTIFD = 0x11223344    # MultiFDInit_t.magic, first bytes of a multifd channel

GNUTLS_E_AGAIN = -28
GNUTLS_E_INTERRUPTED = -52
GNUTLS_E_PREMATURE_TERMINATION = -110

TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1",
              5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT",
              9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV"}
TCP_ESTABLISHED, TCP_CLOSE, TCP_CLOSE_WAIT = 1, 7, 8

VERDICTS = ("clean", "premature", "unread", "reset", "plain", "incomplete")


class ObserverError(RuntimeError):
    pass


# ------------------------------------------------------------------ records

@dataclass
class Conn:
    """One end of one migration TCP connection, as the observer saw it.
    Times are bpf ktime ns (CLOCK_MONOTONIC); see ObservedRun.mono_to_wall()."""
    side: str                         # "dst" or "src"
    lport: int
    rport: int
    pid: int | None = None            # the process that accepted (dst) / connected (src) it
    sk: str | None = None             # struct sock address (hex)
    role: str | None = None           # "main" / "multifd" / None
    role_by: str | None = None        # "magic" (first plaintext bytes) or "order"
    magic: str | None = None
    open_seq: int | None = None       # 0-based order of ACCEPT (dst) / CONNECT (src)
    opened: int | None = None         # ACCEPT / CONNECT time
    established: int | None = None    # -> ESTABLISHED
    tls: bool = False                 # a TLS record was read/sent on it
    tls_final: int | None = None      # last gnutls_record_recv <= 0 (not AGAIN/INTERRUPTED)
    record_calls: int | None = None   # gnutls_record_recv calls that read it (at its destroy)
    tls_final_ts: int | None = None
    tls_final_tid: int | None = None
    tls_le0: list = field(default_factory=list)   # every (ts, ret, tid) <= 0
    eof_read: int | None = None       # time of a recvmsg that returned 0
    eof_tid: int | None = None
    recv_errors: list = field(default_factory=list)   # (ts, ret)
    fin_rcvd: int | None = None       # time of ESTABLISHED -> CLOSE_WAIT (peer FIN)
    rst: int | None = None            # first reset seen (rx or tx)
    rst_kind: str | None = None
    states: list = field(default_factory=list)        # (ts, old, new) names
    shutdown: list = field(default_factory=list)      # (ts, how, tid)
    closed_fd: int | None = None      # close(2) time
    tcp_close: int | None = None      # -> TCP_CLOSE time
    destroyed: int | None = None
    bye: int | None = None            # gnutls_bye whose alert went to this socket (src)
    bye_ret: int | None = None
    bye_send_ret: int | None = None
    bye_tid: int | None = None
    last_recvs: list = field(default_factory=list)    # (seq, ret, ts), oldest first
    recvs: list = field(default_factory=list)         # verbose only: (ts, ret)
    sends: list = field(default_factory=list)         # verbose only: (ts, ret)

    @property
    def key(self) -> tuple[int, int]:
        return (self.lport, self.rport)

    @property
    def ended(self) -> bool:
        return any(x is not None for x in (self.closed_fd, self.tcp_close, self.destroyed))

    def first_shutdown(self) -> int | None:
        return min((s[0] for s in self.shutdown), default=None)


@dataclass
class ObservedRun:
    dst_pid: int
    src_pid: int
    port: int                         # the first port (see ports)
    events: list                      # parsed lines: dicts with "kind" and fields
    dst_conns: dict                   # (lport, rport) -> Conn, destination side
    src_conns: dict                   # (lport, rport) -> Conn, source side
    byes: list                        # every gnutls_bye: dict ts, pid, tid, how, ret, sends
    lost_events: int = 0
    startup_s: float | None = None
    wall_minus_mono_ns: int = 0       # add to a ts to get wall-clock ns
    stderr: str = ""
    ports: tuple = ()                 # every migration port watched

    def peer(self, conn: Conn) -> Conn | None:
        other = self.src_conns if conn.side == "dst" else self.dst_conns
        return other.get((conn.rport, conn.lport))

    def mono_to_wall(self, ts: int | None) -> float | None:
        return None if ts is None else (ts + self.wall_minus_mono_ns) / 1e9

    def multifd(self, side: str = "dst") -> list[Conn]:
        conns = self.dst_conns if side == "dst" else self.src_conns
        return sorted((c for c in conns.values() if c.role == "multifd"),
                      key=lambda c: (c.open_seq if c.open_seq is not None else 1 << 30, c.lport, c.rport))

    def main(self, side: str = "dst") -> Conn | None:
        conns = self.dst_conns if side == "dst" else self.src_conns
        return next((c for c in conns.values() if c.role == "main"), None)


# ------------------------------------------------------------------ parsing

LINE_RE = re.compile(r"^([A-Z][A-Z0-9_]*) (.*)$")
KV_RE = re.compile(r"(\w+)=(\S+)")
MAPLINE_RE = re.compile(r"^@(rn|rr|rt)\[(\d+)(?:, (\d+))?\]: (-?\d+)$")
LOST_RE = re.compile(r"Lost (\d+) events")
HEX_FIELDS = {"sk", "magic"}


def parse_lines(text: str) -> tuple[list[dict], dict]:
    """observer.bt output -> (events, end_maps).  Numeric fields become ints except
    sk (hex string, normalised) and magic (hex string)."""
    events: list[dict] = []
    maps: dict = {"rn": {}, "rr": {}, "rt": {}}
    for line in text.splitlines():
        line = line.strip()
        m = MAPLINE_RE.match(line)
        if m:
            name, k1, k2, val = m.groups()
            sk = f"{int(k1):x}"
            key = sk if k2 is None else (sk, int(k2))
            maps[name][key] = int(val)
            continue
        m = LINE_RE.match(line)
        if not m:
            continue
        ev: dict = {"kind": m.group(1)}
        for k, v in KV_RE.findall(m.group(2)):
            if k in HEX_FIELDS:
                ev[k] = v.lower().lstrip("0") or "0"
            else:
                try:
                    ev[k] = int(v)
                except ValueError:
                    ev[k] = v
        events.append(ev)
    return events, maps


def build_run(text: str, dst_pid: int, src_pid: int, port: int, port2: int = 0) -> ObservedRun:
    """Fold the event stream into per-connection records for both sides."""
    events, maps = parse_lines(text)
    conns: dict[str, dict[tuple[int, int], Conn]] = {"dst": {}, "src": {}}
    by_sk: dict[str, Conn] = {}
    byes: list[dict] = []
    ports = {p for p in (port, port2) if p}
    open_count: dict = {}             # (side, pid, migration port) -> connections opened

    def side_for_ports(lport: int, rport: int) -> str | None:
        # loopback: the destination end has local port PORT, the source end peer port PORT
        if lport in ports:
            return "dst"
        if rport in ports:
            return "src"
        return None

    def conn_for(ev: dict) -> Conn | None:
        # The 4-tuple decides when the event carries a complete one; the sk address
        # only fills in for events without ports (or before the port is bound:
        # CLOSE -> SYN_SENT has lport 0), so a recycled sk cannot merge two connections.
        sk = ev.get("sk")
        lport, rport = ev.get("lport"), ev.get("rport")
        if not lport or not rport:
            return by_sk.get(sk) if sk else None       # listener / unbound / unresolved
        side = side_for_ports(lport, rport)
        if side is None:
            return by_sk.get(sk) if sk else None
        c = conns[side].get((lport, rport))
        if c is None:
            c = Conn(side=side, lport=lport, rport=rport, sk=sk)
            conns[side][(lport, rport)] = c
        if sk and c.sk is None:
            c.sk = sk
        if sk:
            by_sk[sk] = c
        return c

    cur_bye: dict[int, dict] = {}
    for ev in events:
        kind, ts = ev["kind"], ev.get("ts")
        if kind in ("READY", "END", "EXIT", "ADOPT"):
            continue
        if kind in ("BYE", "BYESEND", "BYERET"):
            tid = ev["tid"]
            if kind == "BYE":
                cur_bye[tid] = {"ts": ts, "pid": ev["pid"], "tid": tid, "how": ev.get("how"),
                                "ret": None, "sends": []}
                byes.append(cur_bye[tid])
            elif kind == "BYESEND":
                b = cur_bye.get(tid)
                if b is not None:
                    b["sends"].append({"ts": ts, "sk": ev["sk"], "lport": ev["lport"],
                                       "rport": ev["rport"], "ret": ev["ret"]})
                c = conn_for(ev)
                if c is not None and c.bye is None:
                    c.bye, c.bye_send_ret, c.bye_tid = (b or {}).get("ts", ts), ev["ret"], tid
            else:
                b = cur_bye.pop(tid, None)
                if b is not None:
                    b["ret"] = ev["ret"]
                    for s in b["sends"]:
                        c = by_sk.get(s["sk"])
                        if c is not None:
                            c.bye_ret = ev["ret"]
            continue
        if kind == "RECS":
            c = by_sk.get(ev["sk"])
            if c is not None:
                c.record_calls = ev["n"]
            continue
        if kind == "RING":
            c = by_sk.get(ev["sk"])
            if c is not None:
                c.last_recvs.append((ev["seq"], ev["ret"], ev["rts"]))
            continue
        c = conn_for(ev)
        if c is None:
            continue
        if kind == "ACCEPT" or kind == "CONNECT":
            c.pid = ev.get("pid")
            if c.opened is None:
                c.opened = ts
                # the order within one process's connections to one migration port
                group = (c.side, c.pid, c.lport if c.side == "dst" else c.rport)
                c.open_seq = open_count.get(group, 0)
                open_count[group] = c.open_seq + 1
        elif kind == "STATE":
            old, new = ev["old"], ev["new"]
            c.states.append((ts, TCP_STATES.get(old, old), TCP_STATES.get(new, new)))
            if new == TCP_ESTABLISHED and c.established is None:
                c.established = ts
            if old == TCP_ESTABLISHED and new == TCP_CLOSE_WAIT and c.fin_rcvd is None:
                c.fin_rcvd = ts
            if new == TCP_CLOSE and c.tcp_close is None:
                c.tcp_close = ts
        elif kind == "RECV0":
            if c.eof_read is None:
                c.eof_read, c.eof_tid = ts, ev["tid"]
        elif kind == "RECVERR":
            c.recv_errors.append((ts, ev["ret"]))
        elif kind == "RECV":
            c.recvs.append((ts, ev["ret"]))
        elif kind == "SEND":
            c.sends.append((ts, ev["ret"]))
        elif kind == "TLSRECV":
            ret = ev["ret"]
            c.tls = True
            c.tls_le0.append((ts, ret, ev["tid"]))
            if ret not in (GNUTLS_E_AGAIN, GNUTLS_E_INTERRUPTED):
                c.tls_final, c.tls_final_ts, c.tls_final_tid = ret, ts, ev["tid"]
        elif kind in ("TLSFIRST", "TLSFIRSTSEND"):
            c.tls = True
            if c.role_by == "magic":    # the source's first record says; the destination's
                continue                # first send on the main channel is the return path
            c.magic = ev["magic"]
            mv = int(ev["magic"], 16)
            c.role = "main" if mv == MAGIC_MAIN else "multifd" if mv == MAGIC_MULTIFD else "unknown"
            c.role_by = "magic"
        elif kind == "SHUTDOWN":
            c.shutdown.append((ts, ev["how"], ev["tid"]))
        elif kind == "CLOSE":
            if c.closed_fd is None:
                c.closed_fd = ts
        elif kind in ("RST_RX", "RST_TX"):
            if c.rst is None:
                c.rst, c.rst_kind = ts, kind
        elif kind == "DESTROY":
            if c.destroyed is None:
                c.destroyed = ts
            # the kernel may reuse a destroyed sk's address for another socket: events
            # without a 4-tuple (an RST sent from an unbound socket) must not land here
            if ev.get("sk") and by_sk.get(ev["sk"]) is c:
                del by_sk[ev["sk"]]

    # rings of sockets that never reached TCP_CLOSE (printed by END)
    for sk, n in maps["rn"].items():
        c = by_sk.get(sk)
        if c is None or c.last_recvs:
            continue
        for seq in range(max(0, n - 8), n):
            ret = maps["rr"].get((sk, seq % 8))
            if ret is not None:
                c.last_recvs.append((seq, ret, maps["rt"].get((sk, seq % 8))))

    # no plaintext (no TLS): classify by order, first opened = main (QEMU 7.2 rule). The
    # source's connect() order is the one QEMU makes; the destination's accepts of
    # channels opened within microseconds of each other can come in either order, so a
    # destination connection takes the role of its source end when that was seen.
    for side in ("src", "dst"):
        for (lport, rport), c in conns[side].items():
            if c.role is not None or c.open_seq is None:
                continue
            src = conns["src"].get((rport, lport)) if side == "dst" else None
            if src is not None and src.role_by == "order":
                c.role = src.role
            else:
                c.role = "main" if c.open_seq == 0 else "multifd"
            c.role_by = "order"
    lost = sum(int(x) for x in LOST_RE.findall(text))
    return ObservedRun(dst_pid=dst_pid, src_pid=src_pid, port=port, events=events,
                       dst_conns=conns["dst"], src_conns=conns["src"], byes=byes,
                       lost_events=lost, ports=tuple(sorted(ports)))


# ------------------------------------------------------------------ verdict

def truth_verdict(dst_conn: Conn | None, src_conn: Conn | None = None,
                  migration_outcome: dict | None = None) -> str:
    """The expected mftrace verdict for one destination connection, from observer
    evidence alone (the rules of docs/verdicts.md).  Checked in this order:

      incomplete  no record, or the connection's start (accept/ESTABLISHED) was not
                  seen, or it had not ended (close/TCP_CLOSE) and showed no final
                  read when tracing stopped
      reset       an RST on either end, before the final read (the recv that returned
                  EOF, or else the final TLS read's return; or with none); the
                  source's RST only if it came before the destination's own
                  shutdown(2) or close(2)
      plain       no TLS on the connection (no gnutls record seen on it, or the
                  outcome says tls=False)
      clean       the final gnutls_record_recv returned 0: close_notify read before EOF
      premature   the final gnutls_record_recv returned < 0: -110 (EOF without
                  close_notify) or another error code (-9 EOF inside a record, -54
                  pull error without a reset)
      unread      no final TLS read, and the peer's FIN arrived (CLOSE_WAIT) or the
                  destination shut the socket down itself (a shutdown(2) it made)
      incomplete  anything else (ended with neither FIN, own shutdown nor a final read)

    "The final TLS read" ignores GNUTLS_E_AGAIN/INTERRUPTED (retried, never final).
    Meant for multifd connections; the main channel is never read after its FIN,
    so it comes out "unread" (or "reset" when a failed destination closes it with
    unread data).
    migration_outcome (a qemumig result dict) is only used for its "tls" flag.
    """
    d = dst_conn
    if d is None or (d.established is None and d.opened is None):
        return "incomplete"
    if not d.ended and d.tls_final is None and d.eof_read is None:
        return "incomplete"
    # The source's RST counts unless the destination had already shut the socket down or
    # closed it: then the RST is the destination's kernel answering late data (the
    # source's close_notify) on a socket it had given up, not a reset before its final
    # read (docs/verdicts.md, the reset rules).
    src_rst = src_conn.rst if src_conn else None
    own_end = [t for t in (d.first_shutdown(), d.closed_fd) if t is not None]
    if src_rst is not None and own_end and src_rst >= min(own_end):
        src_rst = None
    rsts = [r for r in (d.rst, src_rst) if r is not None]
    # the final read is the kernel recv that returned EOF, if one did, or else the final
    # TLS read's return (which comes later: GnuTLS returns -110 after that recv of 0)
    finals = [t for t in (d.eof_read, d.tls_final_ts) if t is not None]
    if rsts and (not finals or min(rsts) <= min(finals)):
        return "reset"
    tls_off = migration_outcome is not None and migration_outcome.get("tls") is False
    if tls_off or not d.tls:
        return "plain"
    if d.tls_final == 0:
        return "clean"
    if d.tls_final is not None:
        return "premature"
    if d.fin_rcvd is not None or d.first_shutdown() is not None:
        return "unread"
    return "incomplete"


def truth_detail(dst: Conn, src: Conn | None) -> dict:
    """Timing facts behind a verdict (all ns deltas on the destination's clock):
    woken_by: what the final read met first - "peer" (source FIN/close_notify
    before the destination's own shutdown of the socket) or "own_shutdown";
    fin_to_final_ns, own_shutdown_to_final_ns; src bye/shutdown order."""
    own = dst.first_shutdown()
    final = dst.tls_final_ts if dst.tls_final_ts is not None else dst.eof_read
    woken = None
    if final is not None:
        woken = "own_shutdown" if own is not None and own < final and \
            (dst.fin_rcvd is None or own < dst.fin_rcvd) else "peer"
    return {
        "final_ts": final,
        "woken_by": woken,
        "fin_to_final_ns": (final - dst.fin_rcvd) if final is not None and dst.fin_rcvd else None,
        "own_shutdown_to_final_ns": (final - own) if final is not None and own else None,
        "src_bye": src.bye if src else None,
        "src_shutdown": src.first_shutdown() if src else None,
        "src_bye_before_shutdown": (src.bye is not None and src.first_shutdown() is not None
                                    and src.bye < src.first_shutdown()) if src else None,
    }


# ------------------------------------------------------------------ process

class Observer:
    """bpftrace running observer.bt against two pids; output goes to files in workdir."""

    def __init__(self, dst_pid: int, src_pid: int, port: int, workdir: str,
                 verbose: bool = False, script: str = BT_SCRIPT, ready_timeout: float = 60.0,
                 dst2_pid: int = 0, src2_pid: int = 0, port2: int = 0, gnutls: str | None = None,
                 adopt: bool = False):
        self.dst_pid, self.src_pid, self.port = int(dst_pid), int(src_pid), int(port)
        self.adopt = adopt
        self.dst2_pid, self.src2_pid, self.port2 = int(dst2_pid or 0), int(src2_pid or 0), int(port2 or 0)
        if gnutls:
            # the same script, its GnuTLS probes on the library file these QEMUs map
            with open(script) as f:
                text = f.read().replace(SYSTEM_GNUTLS, gnutls)
            script = os.path.join(workdir, "observer-gnutls.bt")
            os.makedirs(workdir, exist_ok=True)
            with open(script, "w") as f:
                f.write(text)
        self.workdir = workdir
        self.verbose = verbose
        self.script = script
        self.ready_timeout = ready_timeout
        self.out_path = os.path.join(workdir, "observer.out")
        self.err_path = os.path.join(workdir, "observer.err")
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None
        self.wall_minus_mono_ns = 0
        self.result: ObservedRun | None = None

    def start(self) -> "Observer":
        os.makedirs(self.workdir, exist_ok=True)
        argv = [BPFTRACE, "-B", "none", self.script, str(self.dst_pid), str(self.src_pid),
                str(self.port), "1" if self.verbose else "0", str(self.dst2_pid), str(self.src2_pid),
                str(self.port2), "1" if self.adopt else "0"]
        env = dict(os.environ)
        if self.verbose:
            env.setdefault("BPFTRACE_PERF_RB_PAGES", "1024")
        self.wall_minus_mono_ns = time.time_ns() - time.monotonic_ns()
        t0 = time.monotonic()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=env)
        deadline = t0 + self.ready_timeout
        while time.monotonic() < deadline:
            if self._read(self.out_path).find("\nREADY ") >= 0 or \
                    self._read(self.out_path).startswith("READY "):
                self.startup_s = time.monotonic() - t0
                return self
            if self.proc.poll() is not None:
                raise ObserverError(f"bpftrace exited ({self.proc.returncode}): "
                                    f"{self._read(self.err_path)[-2000:]}")
            time.sleep(0.02)
        self._terminate()
        raise ObserverError(f"bpftrace not READY after {self.ready_timeout}s: "
                            f"{self._read(self.err_path)[-2000:]}")

    @staticmethod
    def _read(path: str) -> str:
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _terminate(self, timeout: float = 60.0) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGINT)          # bpftrace runs END and prints maps
        try:                                  # detaching uprobes is slow on a loaded host
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=60)

    def stop(self, linger: float = 0.3) -> ObservedRun:
        """SIGINT bpftrace (after `linger` s for in-flight events), parse its output."""
        if self.result is not None:
            return self.result
        time.sleep(linger)
        self._terminate()
        text = self._read(self.out_path)
        self.result = build_run(text, self.dst_pid, self.src_pid, self.port, self.port2)
        self.result.startup_s = self.startup_s
        self.result.wall_minus_mono_ns = self.wall_minus_mono_ns
        self.result.stderr = self._read(self.err_path)
        self.result.lost_events += sum(int(x) for x in LOST_RE.findall(self.result.stderr))
        return self.result

    def __enter__(self) -> "Observer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(linger=0)


# ------------------------------------------------------------------ CLI

def summarize(run: ObservedRun, outcome: dict | None) -> dict:
    """JSON-friendly per-connection summary with verdicts (destination view)."""
    rows = []
    for d in sorted(run.dst_conns.values(), key=lambda c: (c.open_seq is None, c.open_seq, c.rport)):
        s = run.peer(d)
        t0 = d.established or d.opened or 0
        rel = lambda x: None if x is None else round((x - t0) / 1e6, 3)   # ms since established
        rows.append({
            "dst": list(d.key), "role": d.role, "role_by": d.role_by,
            "accept_seq": d.open_seq, "connect_seq": s.open_seq if s else None,
            "verdict": truth_verdict(d, s, outcome),
            "tls_final": d.tls_final, "tls_le0": [r for _, r, _ in d.tls_le0][-4:],
            "eof_read_ms": rel(d.eof_read), "fin_rcvd_ms": rel(d.fin_rcvd),
            "final_ms": rel(d.tls_final_ts), "own_shutdown_ms": rel(d.first_shutdown()),
            "rst": d.rst is not None or (s is not None and s.rst is not None),
            "last_recvs": [r for _, r, _ in d.last_recvs],
            "src_bye_ms": rel(s.bye) if s else None, "src_bye_ret": s.bye_ret if s else None,
            "src_bye_send": s.bye_send_ret if s else None,
            "src_shutdown_ms": rel(s.first_shutdown()) if s else None,
            "src_close_ms": rel(s.closed_fd) if s else None,
            "woken_by": truth_detail(d, s)["woken_by"],
        })
    return {"lost_events": run.lost_events, "startup_s": run.startup_s,
            "byes": len(run.byes), "conns": rows}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, HERE)
    import qemumig                                    # test harness, not mftrace

    ap = argparse.ArgumentParser(description="Run migrations with the observer attached.")
    ap.add_argument("scenario", choices=sorted(qemumig.SCENARIOS))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-tls", action="store_true")
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--mem", type=int, default=512)
    ap.add_argument("--volume", action="store_true")
    ap.add_argument("--no-exit-on-error", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="record every recv/send")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    base = a.workdir or tempfile.mkdtemp(prefix="observer-")
    out = []
    for i in range(a.runs):
        wd = os.path.join(base, f"{a.scenario}-{i}")
        t0 = time.monotonic()
        with qemumig.Migration(a.scenario, wd, tls=not a.no_tls, channels=a.channels,
                               mem=a.mem, volume=a.volume,
                               exit_on_error=not a.no_exit_on_error) as m:
            m.start()
            obs = Observer(m.dst_pid, m.src_pid, m.port, wd, verbose=a.verbose)
            try:
                obs.start()
                res = m.migrate()
            finally:
                m.stop()
                run = obs.stop()
        summ = summarize(run, res)
        rec = {"run": i, "workdir": wd, "src_status": res["src_status"],
               "dst_status": res["dst_status"], "dst_last_status": res["dst_last_status"],
               "dst_exit_code": res["dst_exit_code"],
               "dst_errors": res["dst_errors"], "src_errors": res["src_errors"],
               "dst_error_desc": res["dst_error_desc"],
               "timings": res["timings"], "wall_s": round(time.monotonic() - t0, 2), **summ}
        out.append(rec)
        if not a.json:
            print(f"== {a.scenario} run {i}: src={rec['src_status']} dst={rec['dst_status']} "
                  f"(last {rec['dst_last_status']}) exit={rec['dst_exit_code']} "
                  f"migrate={res['timings']['migrate_s']}s bpftrace_ready={run.startup_s:.2f}s "
                  f"lost={run.lost_events} wd={wd}")
            for e in rec["dst_errors"]:
                print(f"   dst stderr: {e}")
            for e in rec["src_errors"]:
                print(f"   src stderr: {e}")
            if rec["dst_error_desc"]:
                print(f"   dst error-desc: {rec['dst_error_desc']}")
            for r in rec["conns"]:
                print("   " + json.dumps(r))
    if a.json:
        json.dump(out, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
