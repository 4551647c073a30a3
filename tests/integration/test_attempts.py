#!/usr/bin/env python3
"""Every migration attempt is its own migration, with its own outcome. One mftrace
traces every QEMU involved:

  - cancel, then retry at once to another destination (same source QEMU);
  - failure (the destination killed mid-migration), then retry;
  - back-to-back: the VM migrated on at once from its new host (a destination becomes
    a source). tests/integration/test_concurrent.py has two migrations at once.

Ground truth, none of it from mftrace: QEMU's own -trace log (the states of each
attempt, migrate_set_state), query-migrate and exit statuses, and the bpftrace
observer (tests/lib/observer.bt) for every connection, its kind and its verdict.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
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


class QemuHung(RuntimeError):
    """QEMU itself hung: the scenario could not be played this time."""


def sync_hang(trace_path: str) -> str | None:
    """QEMU 7.2's migration thread can hang for good in multifd_send_sync_main() when a
    channel fails while it waits there: its -trace log then ends that thread's lines with
    multifd_send_sync_main_wait. What the log says, or None."""
    last = {}
    try:
        with open(trace_path) as f:
            for line in f:
                tid, _, rest = line.partition("@")
                last[tid] = rest.split(":", 1)[-1].split(" ", 1)[0]
    except OSError:
        return None
    hung = [tid for tid, ev in last.items() if ev == "multifd_send_sync_main_wait"]
    return f"thread {hung[0]}'s last event is multifd_send_sync_main_wait" if hung else None


def retry(kind: str) -> None:
    """Plays retry_once(kind) again (up to 3 times) when QEMU hangs, which it does now and
    then on its own; each time is said."""
    for attempt in range(1, 4):
        try:
            retry_once(kind)
            return
        except QemuHung as e:
            print(f"NOTE {kind} then retry at once: {e}; playing it again ({attempt}/3)", flush=True)
    report(False, f"{kind} then retry at once", "QEMU hung in every one of 3 tries")


def retry_once(kind: str) -> None:
    """The source's first attempt to dst is cancelled (kind "cancel") or fails because
    dst is killed (kind "failure"); it is retried at once to dst2."""
    name = f"{kind} then retry at once"
    wd = tempfile.mkdtemp(prefix=f"mft-attempts-{kind}-")
    ok = True
    try:
        with qemumig.Migration("7.2-7.2", wd, volume=True, mem=256) as m:
            m.start()
            m.add_destination("dst2")
            b, b2, p1, p2 = m.dst_pid, m.pid("dst2"), m.ports["dst"], m.ports["dst2"]
            obs = observer.Observer(b, m.src_pid, p1, wd, dst2_pid=b2, port2=p2, ready_timeout=180).start()
            t = Tracer([m.src_pid, b, b2], wd, "live", ["-q"]).start()
            try:
                m.start_migrate()
                deadline = time.monotonic() + 30
                while m.source_status() != "active" and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(1.0)            # channels open and busy
                if kind == "cancel":
                    m.cancel()
                else:
                    m.procs["dst"].send_signal(signal.SIGKILL)
                first = m.wait_source(60)
                # QEMU refuses a new migrate while the failed attempt's yank instance is
                # still registered (its channels are still being torn down), and 7.2 then
                # leaves its state in "setup", refusing every later one: wait until
                # query-yank no longer lists the migration's instance
                retry_by = time.monotonic() + 10
                while any(y.get("type") == "migration" for y in m.qmp["src"].execute("query-yank")):
                    if time.monotonic() > retry_by:
                        why = sync_hang(os.path.join(wd, "src.trace"))
                        if why:
                            raise QemuHung(f"the source QEMU never tore its failed attempt down ({why}, "
                                           f"a QEMU 7.2 hang; logs in {wd})")
                        raise RuntimeError("the failed attempt's yank instance stayed registered for 10 s")
                    time.sleep(0.02)
                res = m.migrate(dst="dst2")
                t.wait_migrations(4, timeout=30)
            finally:
                t.stop(timeout=60)
                run = obs.stop()
            src_states = m.states("src")
        want = gt.attempts(src_states)
        expect_first = "cancelled" if kind == "cancel" else "failed"
        if want != [expect_first, "completed"] or (first or {}).get("status") != expect_first \
                or res["src_status"] != "completed":
            raise RuntimeError(f"QEMU did not do what the test asked: attempts {want}, first "
                               f"{(first or {}).get('status')}, retry {res['src_status']}")
        recs = t.records()
        errs = gt.outcome_errs(recs, m.src_pid, "source", want, "source")
        ok &= check(f"{name}: the source's two attempts are two migrations with QEMU's outcomes {want}", errs, wd)
        errs = gt.check_side(recs, m.src_pid, "src", run, True, must_decide=False, port=p1)
        errs += gt.check_side(recs, m.src_pid, "src", run, True, must_decide=True, port=p2)
        ok &= check(f"{name}: each attempt's channels are its own (the retry's main channel is main), "
                    "verdicts as the observer says", errs, wd)
        dst1 = gt.migs_of(recs, b, "destination")
        code = m.exit_codes.get("dst")
        errs = [] if len(dst1) == 1 and (dst1[0]["outcome"].startswith(("failed", "exited", "killed"))) else \
            [f"first destination: {[r['outcome'] for r in dst1]} (QEMU exit {code})"]
        errs += gt.check_side(recs, b2, "dst", run, True, must_decide=True)
        errs += gt.outcome_errs(recs, b2, "destination", ["completed"], "second destination")
        ok &= check(f"{name}: the first destination failed, the second completed, as QEMU says", errs, wd)
    except QemuHung:
        raise
    except Exception as e:
        ok = False
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] " + traceback.format_exc(limit=3).replace("\n", " | "))
    if ok:
        shutil.rmtree(wd, ignore_errors=True)


def back_to_back() -> None:
    name = "back-to-back: the VM migrated on at once from its new host"
    wd = tempfile.mkdtemp(prefix="mft-attempts-b2b-")
    ok = True
    try:
        with qemumig.Migration("7.2-7.2", wd) as m:
            m.start()
            m.add_destination("dst2")
            a, b, c, pb, pc = m.src_pid, m.dst_pid, m.pid("dst2"), m.ports["dst"], m.ports["dst2"]
            obs = observer.Observer(b, a, pb, wd, dst2_pid=c, port2=pc, ready_timeout=180).start()
            t = Tracer([a, b, c], wd, "live", ["-q"]).start()
            try:
                r1 = m.migrate()
                r2 = m.migrate_between("dst", "dst2")
                t.wait_migrations(4, timeout=30)
            finally:
                t.stop(timeout=60)
                run = obs.stop()
            states = {s: m.states(s) for s in ("src", "dst", "dst2")}
        if r1["src_status"] != "completed" or r2["src_status"] != "completed" or r2["dst_status"] != "completed":
            raise RuntimeError(f"QEMU: first {r1['src_status']}, second {r2}")
        recs = t.records()
        errs = gt.outcome_errs(recs, a, "source", gt.attempts(states["src"]), "first source")
        # the middle QEMU: one incoming and one outgoing attempt, in that order
        errs += gt.outcome_errs(recs, b, "destination", gt.attempts(states["dst"])[:1], "middle QEMU in")
        errs += gt.outcome_errs(recs, b, "source", gt.attempts(states["dst"])[1:], "middle QEMU out")
        errs += gt.outcome_errs(recs, c, "destination", gt.attempts(states["dst2"]), "last destination")
        ok &= check(f"{name}: four migrations, each with its own attempt's outcome", errs, wd)
        errs = gt.check_side(recs, a, "src", run, True, must_decide=True)
        errs += gt.check_side(recs, b, "dst", run, True, must_decide=True)
        errs += gt.check_side(recs, b, "src", run, True, must_decide=True)
        errs += gt.check_side(recs, c, "dst", run, True, must_decide=True)
        ok &= check(f"{name}: every channel of both hops as the observer says, every source decided", errs, wd)
    except Exception as e:
        ok = False
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] " + traceback.format_exc(limit=3).replace("\n", " | "))
    if ok:
        shutil.rmtree(wd, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        report(None, "attempts", "needs root (eBPF)")
        return 0
    retry("cancel")
    retry("failure")
    back_to_back()
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
