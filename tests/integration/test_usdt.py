#!/usr/bin/env python3
"""A QEMU built with the dtrace trace backend (scripts/build-usdt-qemu.sh): mftrace
attaches its USDT probes and, in default mode (no --tls-records), reports each channel's
SYNC packets and QEMU channel id.

Ground truth: the same QEMUs' log backend (-trace 'multifd_*'): multifd_send_fill /
multifd_recv_unfill (multifd_send / multifd_recv on 7.2) lines with flags & 1, per
channel, and multifd_recv_new_channel in accept order; and, for the verdicts, the
independent bpftrace observer (tests/lib/observer.bt), as in test_scenarios.py.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)

import observer  # noqa: E402
import qemumig  # noqa: E402
from mftrace_run import MFTRACE, Tracer  # noqa: E402
from test_scenarios import check_side, qemu_truth  # noqa: E402

failed = 0
FLAGS_RE = re.compile(r"channel (\d+) .*flags (0x[0-9a-f]+)")
SEND = ("multifd_send_fill", "multifd_send")
RECV = ("multifd_recv_unfill", "multifd_recv")


def report(ok, name, why=""):
    global failed
    if ok is None:
        print(f"SKIP {name}: {why}", flush=True)
    elif ok:
        print(f"PASS {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}: {why}", flush=True)


def sync_counts(trace, names):
    c = collections.Counter()
    for e in trace:
        if e.get("event") in names:
            mo = FLAGS_RE.search(e.get("args", ""))
            if mo and int(mo.group(2), 16) & 1:
                c[int(mo.group(1))] += 1
    return c


def doctor(wd):
    with qemumig.Migration("usdt-usdt", wd) as m:
        m.start()
        r = subprocess.run([MFTRACE, "doctor", "-p", str(m.dst_pid)], capture_output=True, text=True, timeout=60)
    mo = re.search(r"USDT probes \(qemu\)\s+(\d+)", r.stdout)
    ok = r.returncode == 0 and mo and int(mo.group(1)) > 1000 and "per-channel SYNC packets and channel ids from USDT" in r.stdout
    report(bool(ok), "doctor sees the USDT probes", f"rc {r.returncode}: {r.stdout[-600:]}")


def run(scenario: str) -> None:
    name = f"{scenario} (default mode, USDT)"
    wd = tempfile.mkdtemp(prefix=f"mft-usdt-{scenario}-")
    errs = []
    facts = ""
    try:
        with qemumig.Migration(scenario, wd) as m:
            m.start()
            obs = observer.Observer(m.dst_pid, m.src_pid, m.port, wd).start()
            try:
                t = Tracer([m.dst_pid, m.src_pid], wd, "mft", []).start()
                res = m.migrate()
                t.wait_migrations(2)
                t.stop()
            finally:
                run_obs = obs.stop()
        qemu = qemu_truth(res)
        truth = {k: observer.truth_verdict(c, run_obs.peer(c), {"tls": True})
                 for k, c in run_obs.dst_conns.items() if c.role == "multifd"}
        for side, pid in (("dst", m.dst_pid), ("src", m.src_pid)):
            sub = type("Split", (), {"records": lambda self, rt=None, p=pid: [r for r in t.records(rt) if r["pid"] == p],
                                     "lost": lambda self: t.lost()})()
            errs += check_side(sub, side, run_obs, truth, qemu, must_decide=True, joined=True)
        for side, pid, names, is_usdt in (("dst", m.dst_pid, RECV, scenario.split("-")[1] == "usdt"),
                                          ("src", m.src_pid, SEND, scenario.split("-")[0] == "usdt")):
            want = sync_counts(res[f"{side}_trace"], names)
            chans = [r for r in t.records("channel") if r["pid"] == pid and r["kind"] == "multifd"]
            for r in chans:
                if not is_usdt:
                    # a Debian QEMU: per-channel SYNCs come from uprobes on a destination only
                    if r["sync_source"] == "channel" and r["syncs"] != want.get(r["channel_id"], 0):
                        errs.append(f"{side} channel id {r['channel_id']}: {r['syncs']} SYNCs (uprobes), "
                                    f"QEMU logged {want.get(r['channel_id'], 0)}")
                    continue
                if r["channel_id"] is None or r["sync_source"] != "channel":
                    errs.append(f"{side} channel {r['channel']}: id {r['channel_id']}, syncs from {r['sync_source']}")
                elif r["syncs"] != want.get(r["channel_id"], 0):
                    errs.append(f"{side} channel id {r['channel_id']}: {r['syncs']} SYNCs, QEMU logged "
                                f"{want.get(r['channel_id'], 0)}")
        # terminate_threads(error=1): a recv thread hit an error; QEMU's log says how often
        if scenario.split("-")[1] == "usdt":
            logged_err = sum(1 for e in res["dst_trace"] if e.get("event") == "multifd_recv_terminate_threads"
                             and e.get("args", "").strip() == "error 1")
            seen_err = sum(1 for r in t.records("event") if r["pid"] == m.dst_pid
                           and r["event"] == "terminate-threads" and r["detail"].endswith("error=1"))
            if seen_err != logged_err:
                errs.append(f"terminate_threads(error=1): mftrace saw {seen_err}, QEMU logged {logged_err}")
            ends = [r for r in t.records("channel") if r["pid"] == m.dst_pid and r["kind"] == "multifd"
                    and r["times"]["thread_end"] is not None]
            logged_ends = sum(1 for e in res["dst_trace"] if e.get("event") == "multifd_recv_thread_end")
            if len(ends) != logged_ends:
                errs.append(f"recv thread ends on {len(ends)} channels, QEMU logged {logged_ends}")
            facts = f"; recv errors {seen_err}, thread ends {len(ends)}"
        for side, pid, ev in (("dst", m.dst_pid, "multifd_recv_sync_main"), ("src", m.src_pid, "multifd_send_sync_main")):
            mig = [r for r in t.records("migration") if r["pid"] == pid]
            logged_pts = sum(1 for e in res[f"{side}_trace"] if e.get("event") == ev)
            if not mig or mig[0]["sync_points"] != logged_pts:
                errs.append(f"{side} sync points {mig[0]['sync_points'] if mig else None}, QEMU logged {logged_pts} {ev}")
        dst_ids = [r["channel_id"] for r in sorted((r for r in t.records("channel")
                                                     if r["pid"] == m.dst_pid and r["kind"] == "multifd"),
                                                    key=lambda r: r["channel"])]
        logged = [int(e["args"].split()[-1]) for e in res["dst_trace"] if e.get("event") == "multifd_recv_new_channel"]
        if scenario.split("-")[1] == "usdt" and dst_ids != logged:
            errs.append(f"destination channel ids {dst_ids}, QEMU's multifd_recv_new_channel {logged}")
        if errs:
            report(False, name, "; ".join(errs) + f" [logs in {wd}]")
        else:
            report(True, f"{name}: {','.join(sorted(truth.values()))}{facts}")
            shutil.rmtree(wd, ignore_errors=True)
    except Exception as e:
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] "
                            + traceback.format_exc(limit=2).replace("\n", " | "))


def main() -> int:
    if os.geteuid() != 0:
        report(None, "usdt", "needs root (eBPF)")
        return 0
    if not qemumig.usdt_available():
        report(None, "usdt", f"no USDT QEMU in {qemumig.usdt_prefix()}: scripts/build-usdt-qemu.sh could not build it here")
        return 0
    wd = tempfile.mkdtemp(prefix="mft-usdt-doctor-")
    try:
        doctor(wd)
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    for scenario in ("usdt-usdt", "7.2-usdt", "usdt-10.0", "7.2-usdt-strict"):
        run(scenario)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
