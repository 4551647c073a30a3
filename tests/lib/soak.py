#!/usr/bin/env python3
"""A soak of `mftrace exporter`: many real migrations in a row, with pid churn.

    from soak import Soak
    res = Soak(n=20, workdir=wd).run()      # a dict; res["errors"] lists what failed

One exporter (every QEMU on the host) runs throughout. Each round starts two fresh QEMUs
(tests/lib/qemumig.py; the scenarios of docs/qemu-behaviour.md in turn, TLS, 4 channels) named
with this soak's two VM names, waits until the exporter traces both, attaches the
independent bpftrace observer (tests/lib/observer.py) and migrates. A churn QEMU is also
started and SIGKILLed in every round, some before the exporter even sees them.

What is checked at the end, none of it from mftrace's word about itself:
  - counters: the exporter's mftrace_channels_total{role="destination"} of this soak's
    destination VM, by verdict, equal the observer's verdicts of every destination multifd
    channel (observer.truth_verdict); one migration per role per round;
  - memory: VmRSS after the last round within 10 % of VmRSS after the warm-up rounds;
  - descriptors: no probe link left for any QEMU of the soak (the kernel names each uprobe
    link's file, /proc/PID/..., in its fdinfo), and every other descriptor (sockets, maps,
    programs, files, tracepoint links) as after the warm-up;
  - BPF maps (bpftool map dump of the exporter's own maps): no socket, target or TLS session
    entry left of a QEMU of the soak, no per-thread entry of a thread that is gone.
Other engineers' QEMUs on the host are traced too: they are told apart by pid and name.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import observer  # noqa: E402
import qemumig  # noqa: E402
from mftrace_run import MFTRACE  # noqa: E402

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
PER_THREAD_MAPS = ("tls_calls", "record_calls", "newchan_calls", "init_reads", "hdr_reads", "state_calls",
                   "thread_sock")


def alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def fds(pid: int) -> dict:
    """The exporter's descriptors: probe links by the pid their file names, and the rest by kind."""
    links_by_pid: collections.Counter = collections.Counter()
    kinds: collections.Counter = collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target == "anon_inode:bpf_link":
            try:
                info = open(f"/proc/{pid}/fdinfo/{fd}").read()
            except OSError:
                continue
            # a uprobe link names its process: a perf-event link by its /proc/PID/ path, a
            # uprobe_multi link by its pid filter; the rest are the host-wide tracepoints
            m = (re.search(r"^name:\s+/proc/(\d+)/", info, re.M) or
                 re.search(r"^link_type:\s+u(?:ret)?probe_multi$.*?^pid:\s+(\d+)$", info, re.M | re.S))
            if m:
                links_by_pid[int(m.group(1))] += 1
            else:
                kinds["kernel link"] += 1
            if re.search(r"^link_type:\s+perf$", info, re.M):
                kinds["perf link"] += 1   # each holds one perf event descriptor
        elif target == "anon_inode:[perf_event]":
            kinds["perf event"] += 1    # one per link: checked against the links
        elif target.startswith("socket:"):
            kinds["socket"] += 1
        elif target.startswith("anon_inode:"):
            kinds[target] += 1
        else:
            kinds["file"] += 1
    return {"links_by_pid": links_by_pid, "kinds": kinds}


def map_ids(pid: int) -> list[int]:
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            m = re.search(r"^map_id:\s+(\d+)", open(f"/proc/{pid}/fdinfo/{fd}").read(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    return sorted(ids)


def bpf_maps(pid: int) -> dict:
    """{map name: [entries]} of the exporter's hash maps, as bpftool dumps them."""
    out = {}
    for mid in map_ids(pid):
        show = json.loads(subprocess.run(["bpftool", "map", "show", "id", str(mid), "-j"], capture_output=True,
                                         text=True, timeout=30).stdout or "{}")
        if show.get("type") not in ("hash", "lru_hash"):
            continue
        dump = subprocess.run(["bpftool", "map", "dump", "id", str(mid), "-j"], capture_output=True, text=True,
                              timeout=120)
        try:
            out[show.get("name", str(mid))] = json.loads(dump.stdout or "[]")
        except json.JSONDecodeError:
            out[show.get("name", str(mid))] = []
    return out


def key_int(entry: dict) -> int:
    f = entry.get("formatted")
    if f and isinstance(f.get("key"), int):
        return f["key"]
    return int.from_bytes(bytes(int(b, 16) for b in entry["key"]), "little")


def value_int(entry: dict) -> int:
    f = entry.get("formatted")
    if f and isinstance(f.get("value"), int):
        return f["value"]
    return int.from_bytes(bytes(int(b, 16) for b in entry["value"]), "little")


def value_field(entry: dict, name: str):
    f = entry.get("formatted", {}).get("value")
    return f.get(name) if isinstance(f, dict) else f


def parse(text: str) -> list[tuple[str, dict, float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if m:
            out.append((m.group(1), dict(LABEL_RE.findall(m.group(2) or "")), float(m.group(3))))
    return out


class NamedMigration(qemumig.Migration):
    def __init__(self, scenario: str, workdir: str, vm: dict, **kw):
        super().__init__(scenario, workdir, **kw)
        self.vm = vm

    def argv(self, side, psk_dir):
        return super().argv(side, psk_dir) + ["-name", self.vm[side]]


class Soak:
    def __init__(self, n: int, workdir: str, warmup: int | None = None, log=print, token: str | None = None):
        self.n = n
        self.wd = workdir
        self.warmup = warmup if warmup is not None else max(3, n // 10)
        self.log = log
        self.token = token or f"soak{os.getpid()}"
        self.vm = {"src": f"{self.token}-src", "dst": f"{self.token}-dst"}
        have10 = os.path.exists(os.path.join(qemumig.qemu10_prefix(), "usr/bin/qemu-system-x86_64"))
        self.scenarios = ["7.2-7.2", "10.0-10.0", "7.2-10.0", "7.2-10.0-strict"] if have10 else ["7.2-7.2"]
        self.exp = None
        self.port = 0
        self.err_path = os.path.join(workdir, "exporter.err")
        self.our_pids: set[int] = set()
        self.errors: list[str] = []

    # -- the exporter
    def start_exporter(self) -> None:
        self.exp = subprocess.Popen([MFTRACE, "exporter", "--listen", "127.0.0.1:0"], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=open(self.err_path, "w"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = re.search(r"serving metrics on http://127\.0\.0\.1:(\d+)/", self.stderr())
            if m and "mftrace: ready" in self.stderr():
                self.port = int(m.group(1))
                return
            if self.exp.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"exporter did not start: {self.stderr()[-500:]}")

    def stderr(self) -> str:
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def metrics(self) -> list[tuple[str, dict, float]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            return parse(r.read().decode())

    def wait_traced(self, pids, timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            err = self.stderr()
            if all(f"tracing pid {p} " in err for p in pids):
                return True
            time.sleep(0.1)
        return False

    def wait_forgotten(self, timeout: float = 30) -> bool:
        """No probe link left for a QEMU of the soak (forgotten 3 s after it exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(p in self.our_pids for p in fds(self.exp.pid)["links_by_pid"]):
                return True
            time.sleep(0.25)
        return False

    # -- one round
    def churn(self) -> subprocess.Popen:
        """A QEMU that does nothing: started with a round, SIGKILLed at its end (or at once)."""
        q = subprocess.Popen(["/usr/bin/qemu-system-x86_64", "-M", "none", "-nodefaults", "-display", "none",
                              "-accel", "tcg", "-S", "-name", f"{self.token}-churn"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.our_pids.add(q.pid)
        return q

    def round(self, i: int, expected: collections.Counter) -> dict:
        scenario = self.scenarios[i % len(self.scenarios)]
        wd = os.path.join(self.wd, f"m{i:03d}-{scenario}")
        t0 = time.monotonic()
        churn = self.churn()
        if i % 3 == 0:                  # one in three dies before the exporter can see it
            churn.send_signal(signal.SIGKILL)
        steps = {}
        with NamedMigration(scenario, wd, self.vm) as m:
            m.start()
            steps["boot"] = round(time.monotonic() - t0, 1)
            self.our_pids.update((m.src_pid, m.dst_pid))
            obs = observer.Observer(m.dst_pid, m.src_pid, m.port, wd, ready_timeout=300)
            failed: list = []

            def start_observer():
                try:
                    obs.start()
                except observer.ObserverError as e:
                    failed.append(str(e))
            starter = threading.Thread(target=start_observer)
            starter.start()         # bpftrace compiles while the exporter picks the QEMUs up
            traced = self.wait_traced([m.src_pid, m.dst_pid], 120)  # the host may be busy
            steps["traced"] = round(time.monotonic() - t0, 1)
            starter.join()
            steps["observer"] = round(time.monotonic() - t0, 1)
            if not traced or failed:
                # no ground truth (or no tracing) for this one: the QEMUs go without migrating,
                # which the exporter counts as nothing; the round is run again
                obs.stop()
                why = failed[0][:200] if failed else f"the exporter does not trace {m.src_pid}, {m.dst_pid}"
                churn.send_signal(signal.SIGKILL)
                churn.wait()
                return {"round": i, "skipped": why, "seconds": round(time.monotonic() - t0, 1)}
            try:
                res = m.migrate()
                steps["migrated"] = round(time.monotonic() - t0, 1)
            finally:
                run = obs.stop()
                steps["observed"] = round(time.monotonic() - t0, 1)
        steps["stopped"] = round(time.monotonic() - t0, 1)
        churn.send_signal(signal.SIGKILL)
        churn.wait()
        verdicts = collections.Counter()
        for d in run.multifd("dst"):
            verdicts[observer.truth_verdict(d, run.peer(d), res)] += 1
        expected.update(verdicts)
        if not verdicts:
            self.errors.append(f"round {i}: the observer saw no multifd channel ({wd})")
        if run.lost_events:
            self.errors.append(f"round {i}: the observer lost {run.lost_events} events")
        return {"round": i, "scenario": scenario, "src": res.get("src_status"), "dst_exit": res.get("dst_exit_code"),
                "verdicts": dict(verdicts), "seconds": round(time.monotonic() - t0, 1), "steps": steps}

    # -- the whole soak
    def snapshot(self) -> dict:
        time.sleep(0.5)                 # our own last scrape's connection is closed
        kinds = None
        for _ in range(5):              # /proc scans open files for a moment: keep the fewest
            f = fds(self.exp.pid)
            perf = f["kinds"].pop("perf event", 0)
            unlinked = perf - f["kinds"].pop("perf link", 0)
            kinds = dict(f["kinds"]) if kinds is None else \
                {k: min(kinds.get(k, 0), f["kinds"].get(k, 0)) for k in set(kinds) | set(f["kinds"])}
            time.sleep(0.3)
        maps = bpf_maps(self.exp.pid)
        live_threads = {int(t) for p in os.listdir("/proc") if p.isdigit()
                        for t in (os.listdir(f"/proc/{p}/task") if os.path.isdir(f"/proc/{p}/task") else [])}
        socks_pids = collections.Counter(value_field(e, "tgid") for e in maps.get("socks", []))
        sock_keys = {key_int(e) for e in maps.get("socks", [])}
        return {
            "rss_kib": rss_kib(self.exp.pid),
            "fds": {k: v for k, v in sorted(kinds.items()) if v},
            "perf_events_unlinked": unlinked,
            "links_total": sum(f["links_by_pid"].values()),
            "links_ours": sum(n for p, n in f["links_by_pid"].items() if p in self.our_pids),
            "map_entries": {k: len(v) for k, v in maps.items()},
            "socks_ours": sum(n for p, n in socks_pids.items() if p in self.our_pids),
            "targets_ours": sum(1 for e in maps.get("targets", []) if key_int(e) in self.our_pids),
            "sessions_orphaned": sum(1 for e in maps.get("sessions", []) if value_int(e) not in sock_keys),
            "per_thread_dead": {m: sum(1 for e in maps.get(m, []) if key_int(e) not in live_threads)
                                for m in PER_THREAD_MAPS},
        }

    def run(self) -> dict:
        os.makedirs(self.wd, exist_ok=True)
        expected: collections.Counter = collections.Counter()
        rounds = []
        res = {"n": self.n, "warmup": self.warmup, "errors": self.errors, "rounds": rounds}
        self.start_exporter()
        try:
            before = self.counters()
            i, attempts = 0, 0
            while i < self.n:
                attempts += 1
                if attempts > 2 * self.n + 10:
                    raise RuntimeError(f"too many rounds skipped: {[r for r in rounds if 'skipped' in r][-3:]}")
                r = self.round(i, expected)
                rounds.append(r)
                if "skipped" in r:
                    self.log(f"# soak round {i + 1}/{self.n} skipped, run again: {r['skipped']}")
                    continue
                self.log(f"# soak round {i + 1}/{self.n}: {r['scenario']} {r['src']} "
                         f"{r['verdicts']} ({r['seconds']} s: {r['steps']}), exporter RSS {rss_kib(self.exp.pid)} KiB")
                i += 1
                if i == self.warmup:
                    if not self.wait_forgotten():
                        self.errors.append("after the warm-up, probe links of exited QEMUs remain")
                    res["after_warmup"] = self.snapshot()
                if not alive(self.exp.pid):
                    raise RuntimeError(f"the exporter died: {self.stderr()[-500:]}")
            if not self.wait_forgotten():
                self.errors.append("probe links of exited QEMUs remain 30 s after the last round")
            time.sleep(2)               # the per-thread sweep runs every second
            res["end"] = self.snapshot()
            after = self.counters()
            self.compare(before, after, expected, res)
        finally:
            if self.exp.poll() is None:
                self.exp.send_signal(signal.SIGTERM)
                try:
                    self.exp.wait(600)
                except subprocess.TimeoutExpired:
                    self.exp.kill()
                    self.exp.wait()
            res["exporter_exit"] = self.exp.returncode
        return res

    def counters(self) -> dict:
        out = {"channels": collections.Counter(), "migrations": collections.Counter()}
        for name, lb, v in self.metrics():
            if name == "mftrace_channels_total" and lb.get("domain") == self.vm["dst"] and lb.get("role") == "destination":
                out["channels"][lb["verdict"]] += int(v)
            if name == "mftrace_migrations_total" and lb.get("domain") in self.vm.values():
                out["migrations"][lb["role"]] += int(v)
        return out

    def compare(self, before: dict, after: dict, expected: collections.Counter, res: dict) -> None:
        got = after["channels"] - before["channels"]
        migs = after["migrations"] - before["migrations"]
        res["verdicts_exporter"] = dict(got)
        res["verdicts_observer"] = dict(expected)
        res["migrations"] = dict(migs)
        if dict(got) != dict(expected):
            self.errors.append(f"destination channel verdicts: exporter {dict(got)}, observer {dict(expected)}")
        if migs.get("source") != self.n or migs.get("destination") != self.n:
            self.errors.append(f"migrations counted {dict(migs)}, ran {self.n} per role")
        w, e = res.get("after_warmup"), res["end"]
        if w:
            if abs(e["rss_kib"] - w["rss_kib"]) > 0.1 * w["rss_kib"]:
                self.errors.append(f"RSS {w['rss_kib']} KiB after the warm-up, {e['rss_kib']} KiB at the end (>10 %)")
            if e["fds"] != w["fds"]:
                self.errors.append(f"descriptors other than uprobe links: {w['fds']} after the warm-up, "
                                   f"{e['fds']} at the end")
        if e["links_ours"]:
            self.errors.append(f"{e['links_ours']} probe links left for QEMUs of the soak")
        if e["perf_events_unlinked"]:
            self.errors.append(f"{e['perf_events_unlinked']} perf event descriptors without their link")
        for k in ("socks_ours", "targets_ours", "sessions_orphaned"):
            if e[k]:
                self.errors.append(f"BPF maps: {k} = {e[k]} at the end")
        dead = {m: n for m, n in e["per_thread_dead"].items() if n}
        if dead:
            self.errors.append(f"BPF maps: entries of threads that are gone: {dead}")
