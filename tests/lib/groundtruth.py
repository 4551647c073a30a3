"""mftrace's records judged against ground truth it did not produce (Python 3.11, stdlib).

Shared by the production-like integration tests (tests/integration/test_addresses.py,
test_others.py, test_attempts.py, test_replaced.py):

  - check_side(): one process's migration and channel records against the bpftrace
    observer (tests/lib/observer.py): the same connections, kinds and verdicts, and no
    channel that the observer did not see on a migration port;
  - fin_wait2_errors(): every FIN that reached a socket in FIN_WAIT2 while its process
    still held it is recorded, and every recorded FIN was really sent by the other end;
  - Exporter: `mftrace exporter` on a free loopback port, its /metrics parsed;
  - records(): JSON lines of an mftrace output file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request

import observer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MFTRACE = os.environ.get("MFTRACE", os.path.join(ROOT, "build", "mftrace"))


def records(text: str, rtype: str | None = None) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            if rtype is None or r.get("type") == rtype:
                out.append(r)
    return out


def conns_of(run: observer.ObservedRun, pid: int, side: str) -> dict:
    """The observer's connection ends of one process: {(lport, rport): Conn}."""
    conns = run.dst_conns if side == "dst" else run.src_conns
    return {k: c for k, c in conns.items() if c.pid == pid}


def truth_of(run: observer.ObservedRun, conn: observer.Conn, tls: bool) -> str:
    dst = conn if conn.side == "dst" else run.peer(conn)
    src = run.peer(dst) if dst is not None else conn
    return observer.truth_verdict(dst, src, {"tls": tls})


ROLE = {"src": "source", "dst": "destination"}


def check_side(recs: list[dict], pid: int, side: str, run: observer.ObservedRun, tls: bool,
               must_decide: bool, n_migrations: int = 1, port: int | None = None) -> list[str]:
    """One process's records as one role (side) against the observer. Every observed
    connection of the process has its channel record with the observer's kind; every
    multifd channel its verdict (decided when must_decide, else the truth among the
    possible ones); no channel record beyond the observed ones; n_migrations records.
    port: only the connections to (src) or on (dst) that migration port, and only the
    migration records whose endpoint is that port."""
    errs = []
    tag = f"{side} pid {pid}" + (f" port {port}" if port else "")
    role = ROLE[side]

    def mine(r: dict) -> bool:
        if r["pid"] != pid or r["role"] != role:
            return False
        if port is None:
            return True
        if r.get("type") == "migration":
            return r["endpoint"].endswith(f":{port}")
        return (r["local_port"] if side == "dst" else r["peer_port"]) == port

    migs = [r for r in recs if r.get("type") == "migration" and mine(r)]
    chans = {(r["local_port"], r["peer_port"]): r for r in recs if r.get("type") == "channel" and mine(r)}
    conns = {k: c for k, c in conns_of(run, pid, side).items()
             if port is None or (c.lport if side == "dst" else c.rport) == port}
    if len(migs) != n_migrations:
        errs.append(f"{tag}: {len(migs)} migration records, expected {n_migrations}")
    if not conns:
        errs.append(f"{tag}: the observer saw no connection of this process")
    for key in chans:
        if key not in conns:
            errs.append(f"{tag} {key}: a channel record for a connection the observer never saw on a migration port")
    for key, conn in conns.items():
        rec = chans.get(key)
        if rec is None:
            errs.append(f"{tag} {key}: no channel record")
            continue
        if conn.role and rec["kind"] != conn.role:
            errs.append(f"{tag} {key}: kind {rec['kind']}, observer says {conn.role}")
        if conn.role != "multifd":
            continue
        want = truth_of(run, conn, tls)
        if must_decide and not rec["decided"]:
            errs.append(f"{tag} {key}: undecided {rec['verdict']}, truth {want}")
        elif rec["decided"] and rec["verdict"] != want:
            errs.append(f"{tag} {key}: verdict {rec['verdict']} ({rec['why']}), truth {want}")
        elif want not in rec["possible"]:
            errs.append(f"{tag} {key}: possible {rec['possible']} excludes truth {want}")
    if len(migs) == 1:
        n = sum(1 for c in conns.values() if c.role == "multifd")
        if migs[0]["multifd_channels"] != n:
            errs.append(f"{tag}: {migs[0]['multifd_channels']} multifd channels, observer {n}")
        truths = [truth_of(run, c, tls) for c in conns.values() if c.role == "multifd"]
        if must_decide and migs[0]["flagged"] != ("premature" in truths):
            errs.append(f"{tag}: flagged={migs[0]['flagged']}, observer truths {sorted(truths)}")
    return errs


def fin_wait2_errors(recs: list[dict], run: observer.ObservedRun, pids: set) -> tuple[list[str], int]:
    """FIN_WAIT2 -> CLOSE of a socket its process had not closed yet is the peer's FIN
    arriving (the observer's STATE and CLOSE lines): mftrace must have recorded it. And
    a FIN mftrace recorded must have been sent: the other end went to FIN_WAIT1 or
    LAST_ACK. Returns the errors and how many FINs in FIN_WAIT2 were checked."""
    errs, n = [], 0
    chans = {(r["pid"], r["local_port"], r["peer_port"]): r for r in recs if r.get("type") == "channel"}
    for conns in (run.dst_conns, run.src_conns):
        for key, c in conns.items():
            if c.pid not in pids:
                continue
            rec = chans.get((c.pid, c.lport, c.rport))
            peer = run.peer(c)
            if rec is None:
                continue
            fw2 = [ts for ts, old, new in c.states if old == "FIN_WAIT2" and new == "CLOSE"]
            rst = c.rst is not None or (peer is not None and peer.rst is not None)
            if fw2 and not rst and (c.closed_fd is None or c.closed_fd > fw2[0]):
                n += 1
                if rec["times"]["fin_received"] is None:
                    errs.append(f"pid {c.pid} {key}: the peer's FIN reached it in FIN_WAIT2 (still open), "
                                "mftrace recorded no fin_received")
            if rec["times"]["fin_received"] is not None and peer is not None:
                sent = any(new in ("FIN_WAIT1", "LAST_ACK", "CLOSING") for _, _, new in peer.states)
                if not sent:
                    errs.append(f"pid {c.pid} {key}: mftrace recorded a FIN that the other end never sent")
    return errs, n


class Exporter:
    """`mftrace exporter --listen 127.0.0.1:0`; stderr to a file; /metrics parsed."""

    SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)')
    LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

    def __init__(self, workdir: str, args=()):
        self.err_path = os.path.join(workdir, "exporter.err")
        self.args = list(args)
        self.proc = None
        self.port = 0

    def start(self, timeout: float = 30.0) -> "Exporter":
        self.proc = subprocess.Popen([MFTRACE, "exporter", "--listen", "127.0.0.1:0", *self.args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.err_path, "w"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"serving metrics on http://127\.0\.0\.1:(\d+)/metrics", self.stderr())
            if m and "mftrace: ready" in self.stderr():
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"exporter did not start: {self.stderr().strip()}")

    def stderr(self) -> str:
        with open(self.err_path) as f:
            return f.read()

    def tracing(self, pid: int) -> bool:
        return f"tracing pid {pid} " in self.stderr()

    def metrics(self) -> list[tuple[str, dict, float]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = self.SAMPLE_RE.match(line)
            if m:
                labels = {k: v for k, v in self.LABEL_RE.findall(m.group(2) or "")}
                out.append((m.group(1), labels, float(m.group(3))))
        return out

    def sum(self, name: str, **labels) -> float:
        return sum(v for n, lb, v in self.metrics() if n == name and all(lb.get(k) == w for k, w in labels.items()))

    def series(self, name: str, **labels) -> list[tuple[dict, float]]:
        return [(lb, v) for n, lb, v in self.metrics() if n == name and all(lb.get(k) == w for k, w in labels.items())]

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


FINAL = ("completed", "failed", "cancelled")


def attempts(states: list) -> list:
    """QEMU's migrate_set_state states (qemumig's Migration.states()), one attempt per run
    from a first state to a final one: the final state of each."""
    out, running = [], False
    for st in states:
        if st in FINAL:
            if running:
                out.append(st)
            running = False
        else:
            running = True
    return out


def migs_of(recs: list, pid: int, role: str) -> list:
    """A process's migration records in one role, in the order they began."""
    return sorted((r for r in recs if r.get("type") == "migration" and r["pid"] == pid and r["role"] == role),
                  key=lambda r: r["first_channel"] or 0)


def outcome_errs(recs: list, pid: int, role: str, want: list, tag: str) -> list:
    got = [r["outcome"] for r in migs_of(recs, pid, role)]
    return [] if got == want else [f"{tag}: outcomes {got}, QEMU's attempts {want}"]


def wait_for(fn, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(step)
    return bool(fn())


class Recorder:
    """`mftrace record -o WORKDIR/NAME.mftrec ARGS...` in the background."""

    def __init__(self, workdir: str, name: str, args: list):
        self.name = name
        self.path = os.path.join(workdir, f"{name}.mftrec")
        self.err = os.path.join(workdir, f"{name}.record.err")
        self.proc = subprocess.Popen([MFTRACE, "record", "-o", self.path, *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.err, "w"))

    def stderr(self) -> str:
        with open(self.err) as f:
            return f.read()

    def wait_ready(self, timeout: float = 30.0) -> "Recorder":
        if not wait_for(lambda: "mftrace: ready" in self.stderr() or self.proc.poll() is not None, timeout) \
                or self.proc.poll() is not None:
            raise RuntimeError(f"record {self.name} not ready: {self.stderr().strip()}")
        return self

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def report_json(files: list) -> tuple[int, list[dict], str]:
    """`mftrace report FILES --format json -q`: exit status, records, stderr."""
    r = subprocess.run([MFTRACE, "report", *files, "--format", "json", "-q"], capture_output=True, text=True, timeout=120)
    return r.returncode, records(r.stdout), r.stderr
