#!/usr/bin/env python3
"""Two VMs migrating at the same time between the same pair of QEMU versions, one host
sending both migrations to two destinations: one mftrace traces the four QEMUs, and
each migration must have its own channels, verdicts and outcome.

Ground truth, none of it from mftrace: QEMU's own -trace log (the states of each
attempt, migrate_set_state), query-migrate and exit statuses, and the bpftrace
observer (tests/lib/observer.bt) for every connection, its kind and its verdict.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import groundtruth as gt  # noqa: E402
import observer  # noqa: E402
import qemumig  # noqa: E402
from mftrace_run import Tracer  # noqa: E402

results = {"pass": 0, "fail": 0, "skip": 0}


def report(ok: bool | None, name: str, why: str = "") -> None:
    if ok is None:
        print(f"SKIP {name}: {why}", flush=True)
        results["skip"] += 1
    elif ok:
        print(f"PASS {name}", flush=True)
        results["pass"] += 1
    else:
        print(f"FAIL {name}: {why}", flush=True)
        results["fail"] += 1


def check(name: str, errs: list[str], wd: str) -> bool:
    report(not errs, name, "; ".join(errs[:8]) + f" [logs in {wd}]")
    return not errs


def concurrent(scenario: str) -> None:
    name = f"two {scenario} migrations at once, one host sending both"
    wd = tempfile.mkdtemp(prefix="mft-attempts-two-")
    ok = True
    try:
        with qemumig.Migration(scenario, os.path.join(wd, "one"), volume=True, mem=256) as m1, \
                qemumig.Migration(scenario, os.path.join(wd, "two"), volume=True, mem=256) as m2:
            m1.start()
            m2.start()
            obs = observer.Observer(m1.dst_pid, m1.src_pid, m1.port, wd, dst2_pid=m2.dst_pid, src2_pid=m2.src_pid,
                                    port2=m2.port, ready_timeout=180).start()
            pids = [m1.src_pid, m1.dst_pid, m2.src_pid, m2.dst_pid]
            t = Tracer(pids, wd, "live", ["-q"]).start()
            res = {}
            try:
                th = [threading.Thread(target=lambda k=k, m=m: res.update({k: m.migrate()})) for k, m in
                      (("one", m1), ("two", m2))]
                for x in th:
                    x.start()
                for x in th:
                    x.join(180)
                t.wait_migrations(4, timeout=30)
            finally:
                t.stop(timeout=60)
                run = obs.stop()
        if any(res.get(k, {}).get("src_status") != "completed" for k in ("one", "two")):
            raise RuntimeError(f"QEMU: {[res.get(k, {}).get('src_status') for k in ('one', 'two')]}")
        recs = t.records()
        errs = []
        for m in (m1, m2):
            errs += gt.check_side(recs, m.src_pid, "src", run, True, must_decide=True)
            errs += gt.check_side(recs, m.dst_pid, "dst", run, True, must_decide=True)
            errs += gt.outcome_errs(recs, m.src_pid, "source", ["completed"], f"source {m.src_pid}")
            errs += gt.outcome_errs(recs, m.dst_pid, "destination", ["completed"], f"destination {m.dst_pid}")
        ok &= check(f"{name}: four migrations, each with its own channels, verdicts and outcome", errs, wd)
    except Exception as e:
        ok = False
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] " + traceback.format_exc(limit=3).replace("\n", " | "))
    if ok:
        shutil.rmtree(wd, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        report(None, "concurrent", "needs root (eBPF)")
        return 0
    concurrent("7.2-7.2")
    if os.path.exists(os.path.join(qemumig.qemu10_prefix(), "usr/bin/qemu-system-x86_64")):
        concurrent("10.0-10.0")
    else:
        report(None, "two 10.0-10.0 migrations at once", "QEMU 10.0.2 not installed (run scripts/setup.sh)")
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
