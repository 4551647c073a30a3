#!/usr/bin/env python3
"""Tracing that starts, or stops, in the middle of a migration: every channel is
'incomplete', and the sockets found mid-life still form one migration with the right role.

Ground truth: the test itself decides when mftrace attaches or detaches, relative to a
migration it knows is running (a 512 MiB guest of random bytes takes several seconds
over TLS here), and QEMU's query-migrate says when it ended.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import qemumig  # noqa: E402
from mftrace_run import Tracer  # noqa: E402

failed = 0
SLOW = 24 << 20     # bytes/s: 512 MiB take about 20 s
FAST = 16 << 30


def report(ok, name, why=""):
    global failed
    if ok:
        print(f"PASS {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}: {why}", flush=True)


def check(tracer, pid, role, name, wd, extra=""):
    migs = [r for r in tracer.records("migration") if r["pid"] == pid]
    chans = [r for r in tracer.records("channel") if r["pid"] == pid]
    errs = []
    if len(migs) != 1:
        errs.append(f"{len(migs)} migration records for pid {pid}, expected 1")
    else:
        if migs[0]["role"] != role:
            errs.append(f"role {migs[0]['role']}, expected {role}")
        if migs[0]["verdict"] != "incomplete":
            errs.append(f"migration verdict {migs[0]['verdict']}")
    if len(chans) != 5:
        errs.append(f"{len(chans)} channels, expected 5 (main + 4 multifd)")
    bad = [(c["channel"], c["verdict"]) for c in chans if c["verdict"] != "incomplete"]
    if bad:
        errs.append(f"channels not incomplete: {bad}")
    if errs:
        report(False, name, "; ".join(errs) + f" {extra}[logs in {wd}]")
    else:
        report(True, name)
        shutil.rmtree(wd, ignore_errors=True)


def attached_late(side: str) -> None:
    name = f"attached mid-migration to the {side}"
    wd = tempfile.mkdtemp(prefix="mft-midlife-")
    try:
        # a second QMP socket on the source: the harness's own is busy polling query-migrate
        qmp2 = os.path.join(wd, "src.qmp2")
        with qemumig.Migration("7.2-7.2", wd, volume=True,
                               extra_args={"src": ["-qmp", f"unix:{qmp2},server=on,wait=off"]}) as m:
            m.start()
            q2 = qemumig.QMP(qmp2)
            # slow enough that mftrace surely attaches mid-way (starting it can take
            # seconds on a busy host), then full speed once it is ready
            q2.execute("migrate-set-parameters", {"max-bandwidth": SLOW})
            result = {}
            th = threading.Thread(target=lambda: result.update(m.migrate(timeout=120)))
            th.start()
            time.sleep(1.5)
            pid = m.dst_pid if side == "destination" else m.src_pid
            t = Tracer([pid], wd, "late", ["-q"]).start(timeout=60)
            still = q2.execute("query-migrate").get("status")
            q2.execute("migrate-set-parameters", {"max-bandwidth": FAST})
            q2.close()
            th.join(150)
            t.wait_migrations(1, timeout=15)
            t.stop()
        if result.get("src_status") != "completed":
            raise AssertionError(f"migration did not complete: {result.get('src_status')}")
        if still != "active":
            report(False, name, f"the migration was {still!r} when mftrace was ready: not attached mid-way")
            return
        secs = result.get("timings", {}).get("migrate_s", 0)
        if secs < 2.5:
            report(False, name, f"the migration took only {secs}s: mftrace may not have attached mid-way")
            return
        check(t, pid, side, name, wd, f"(migration took {secs}s) ")
    except Exception as e:
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] "
                            + traceback.format_exc(limit=2).replace("\n", " | "))


def stopped_early() -> None:
    name = "tracing stopped mid-migration (--duration)"
    wd = tempfile.mkdtemp(prefix="mft-midlife-")
    try:
        with qemumig.Migration("7.2-7.2", wd, volume=True) as m:
            m.start()
            t = Tracer([m.dst_pid], wd, "early", ["-q", "--duration", "2"]).start()
            res = m.migrate(timeout=120)
            t.stop()
        secs = res.get("timings", {}).get("migrate_s", 0)
        if res.get("src_status") != "completed" or secs < 3:
            raise AssertionError(f"need a completed migration longer than the 2 s trace: {res.get('src_status')}, {secs}s")
        check(t, m.dst_pid, "destination", name, wd, f"(migration took {secs}s) ")
    except Exception as e:
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] "
                            + traceback.format_exc(limit=2).replace("\n", " | "))


def main() -> int:
    if os.geteuid() != 0:
        print("SKIP midlife: needs root (eBPF)")
        return 0
    attached_late("destination")
    attached_late("source")
    stopped_early()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
