#!/usr/bin/env python3
"""Real TLS multifd migrations (QEMU 7.2 and 10.0.2, 4 channels, loopback), traced by
mftrace, judged against ground truth that mftrace did not produce:

  - an independent bpftrace observer (tests/lib/observer.bt) that records every
    gnutls_record_recv result <= 0, socket EOFs, TCP states, bye and shutdown calls;
  - QEMU's own exit status and query-migrate result (tests/lib/qemumig.py);
  - QEMU's -trace log (multifd_recv_terminate_threads / migrate_set_state).

Each scenario of docs/qemu-behaviour.md §5 runs MFTRACE_RUNS times (default 3) with one
mftrace on the destination and another on the source (default mode), then once with a
single mftrace on both ends in full-fidelity mode (--tls-records). Every multifd
channel's verdict must match the observer's, every run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import observer  # noqa: E402
import qemumig  # noqa: E402
from mftrace_run import Tracer  # noqa: E402

RUNS = int(os.environ.get("MFTRACE_RUNS", "3"))
SCENARIOS = os.environ.get("MFTRACE_SCENARIOS", "7.2-7.2 10.0-10.0 7.2-10.0 7.2-10.0-strict").split()

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


def by_key(records: list[dict]) -> dict:
    return {(r["local_port"], r["peer_port"]): r for r in records}


def check_side(tracer: Tracer, side: str, obs: observer.ObservedRun, truth: dict, qemu: dict,
               must_decide: bool, joined: bool = False, tls_records: bool = False) -> list[str]:
    """Compare one mftrace's channel and migration records with the ground truth."""
    errs = []
    chans = by_key(tracer.records("channel"))
    migs = tracer.records("migration")
    conns = obs.dst_conns if side == "dst" else obs.src_conns
    if len(migs) != 1:
        return [f"{side}: expected 1 migration record, got {len(migs)}"]
    mig = migs[0]
    for key, conn in conns.items():
        rec = chans.get(key)
        if rec is None:
            errs.append(f"{side} {key}: no channel record from mftrace")
            continue
        if conn.role and rec["kind"] != conn.role:
            errs.append(f"{side} {key}: kind {rec['kind']}, observer says {conn.role}")
        if conn.role != "multifd":
            continue
        dst_key = key if side == "dst" else (key[1], key[0])
        want = truth[dst_key]
        if must_decide and not rec["decided"]:
            errs.append(f"{side} {key}: undecided {rec['verdict']}, truth {want}")
        elif rec["decided"] and rec["verdict"] != want:
            errs.append(f"{side} {key}: verdict {rec['verdict']} ({rec['why']}), truth {want}")
        elif want not in rec["possible"]:
            errs.append(f"{side} {key}: possible {rec['possible']} excludes truth {want}")
        if tls_records and side == "dst" and want != "plain":
            # --tls-records: the final read's result is GnuTLS's own answer, as the observer's
            # probe on gnutls_record_recv's entry and return saw it (mftrace probes elsewhere:
            # the function's tail jump, where it has one)
            fr = rec.get("final_read")
            got = fr["ret"] if fr else None
            if got != conn.tls_final:
                errs.append(f"{side} {key}: final read returned {got}, the observer's gnutls_record_recv "
                            f"returned {conn.tls_final}")
            # and no call was missed: the observer counted every call that read the socket
            if conn.record_calls is None:
                errs.append(f"{side} {key}: the observer did not see the socket destroyed (no call count)")
            elif rec.get("tls_record_calls") != conn.record_calls:
                errs.append(f"{side} {key}: mftrace saw {rec.get('tls_record_calls')} gnutls_record_recv "
                            f"calls, the observer {conn.record_calls}")
        if rec["verdict"] == "premature":
            fatal = qemu["dst_failed"]
            if rec["severity"] != ("fatal" if fatal else "tolerated"):
                errs.append(f"{side} {key}: severity {rec['severity']}, destination failed={fatal}")
    n_multifd = sum(1 for c in conns.values() if c.role == "multifd")
    if mig["multifd_channels"] != n_multifd:
        errs.append(f"{side}: migration has {mig['multifd_channels']} multifd channels, observer {n_multifd}")
    any_premature = any(v == "premature" for v in truth.values())
    if must_decide and mig["flagged"] != any_premature:
        errs.append(f"{side}: flagged={mig['flagged']} but observer premature={any_premature}")
    if side == "dst":
        want_outcome = "completed" if not qemu["dst_failed"] else None
        if want_outcome and mig["outcome"] != want_outcome:
            errs.append(f"dst: outcome {mig['outcome']}, QEMU says {qemu['dst_status']}")
        if qemu["dst_failed"] and not (mig["outcome"].startswith("failed") or mig["outcome"].startswith("exited")):
            errs.append(f"dst: outcome {mig['outcome']}, but QEMU failed (exit {qemu['dst_exit']})")
    else:
        # a source traced together with its failed destination reports that failure
        want = "destination-failed" if joined and qemu["dst_failed"] else qemu["src_status"]
        if mig["outcome"] != want:
            errs.append(f"src: outcome {mig['outcome']}, expected {want} (QEMU source says {qemu['src_status']})")
    lost = tracer.lost()
    if lost != 0:
        errs.append(f"{side}: mftrace lost events: {lost}")
    return errs


def qemu_truth(res: dict) -> dict:
    dst_exit = res.get("dst_exit_code")
    dst_status = res.get("dst_status") or res.get("dst_last_status")
    return {
        "src_status": res.get("src_status"),
        "dst_status": dst_status,
        "dst_exit": dst_exit,
        "dst_failed": (dst_exit not in (None, 0)) or dst_status == "failed",
    }


def run_one(scenario: str, run: int, joined: bool, tls: bool = True) -> None:
    mode = "joined --tls-records" if joined else "dst and src default"
    name = f"{scenario}{'' if tls else ' no-tls'} run {run} ({mode})"
    wd = tempfile.mkdtemp(prefix=f"mft-{scenario}-")
    errs: list[str] = []
    tracers: list[tuple[str, Tracer]] = []
    try:
        with qemumig.Migration(scenario, wd, tls=tls) as m:
            m.start()
            obs = observer.Observer(m.dst_pid, m.src_pid, m.port, wd)
            obs.start()
            try:
                if joined:
                    tracers.append(("both", Tracer([m.dst_pid, m.src_pid], wd, "both",
                                                   ["-q", "--tls-records"]).start()))
                else:
                    tracers.append(("dst", Tracer([m.dst_pid], wd, "dst", ["-q"]).start()))
                    tracers.append(("src", Tracer([m.src_pid], wd, "src", ["-q"]).start()))
                res = m.migrate()
                for _, t in tracers:
                    t.wait_migrations(2 if joined else 1)
            finally:
                for _, t in tracers:
                    t.stop()
                run_obs = obs.stop()
        qemu = qemu_truth(res)
        truth = {k: observer.truth_verdict(c, run_obs.peer(c), {"tls": tls})
                 for k, c in run_obs.dst_conns.items() if c.role == "multifd"}
        if len(truth) != 4:
            errs.append(f"observer saw {len(truth)} multifd channels, expected 4")
        # QEMU's own view: a recv thread that hit an error logs
        # multifd_recv_terminate_threads(1), and mftrace must have flagged it. The strict
        # destination dies of that error, unless it landed after the main stream's end
        # was checked: then its own trace says completed (docs/qemu-behaviour.md), and
        # mftrace's outcome must say so too (check_side)
        recv_errors = [e for e in res.get("dst_trace") or []
                       if e.get("event") == "multifd_recv_terminate_threads" and "error 1" in e.get("args", "")]
        dst_completed = any(e.get("event") == "migrate_set_state" and "completed" in e.get("args", "")
                            for e in res.get("dst_trace") or [])
        if scenario.endswith("strict") and qemu["dst_exit"] != 1 and not (recv_errors and dst_completed):
            errs.append(f"strict scenario: destination exit {qemu['dst_exit']}, expected 1 "
                        "(or a recv error and completed in its trace)")
        for side, t in tracers:
            if side == "both":
                # one mftrace, two processes: split its records by pid
                for s, pid in (("dst", m.dst_pid), ("src", m.src_pid)):
                    sub = SplitTracer(t, pid)
                    errs += check_side(sub, s, run_obs, truth, qemu, must_decide=True, joined=True,
                                       tls_records=True)
            else:
                errs += check_side(t, side, run_obs, truth, qemu, must_decide=(side == "dst"))
            if side in ("dst", "both") and recv_errors:
                migs = [r for r in t.records("migration") if r["pid"] == m.dst_pid]
                if not any(r["flagged"] or r["counts"]["reset"] for r in migs):
                    errs.append("QEMU's trace shows a recv thread error; mftrace flagged nothing")
        summary = ",".join(sorted(truth.values()))
        if errs:
            report(False, name, "; ".join(errs) + f" [truth {summary}; logs in {wd}]")
        else:
            report(True, f"{name}: {summary}")
            shutil.rmtree(wd, ignore_errors=True)
    except Exception as e:  # a harness failure is a test failure, with its reason
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] " + traceback.format_exc(limit=2).replace("\n", " | "))


class SplitTracer:
    """The records of one pid out of a Tracer that traced several."""

    def __init__(self, tracer: Tracer, pid: int):
        self.t, self.pid = tracer, pid

    def records(self, rtype=None):
        return [r for r in self.t.records(rtype) if r.get("pid") == self.pid]

    def lost(self):
        return self.t.lost()


def main() -> int:
    if os.geteuid() != 0:
        report(None, "scenarios", "needs root (eBPF)")
        return 0
    have10 = os.path.exists(os.path.join(qemumig.qemu10_prefix(), "usr/bin/qemu-system-x86_64"))
    for scenario in SCENARIOS:
        if "10.0" in scenario and not have10:
            report(None, scenario, "QEMU 10.0.2 not installed (run scripts/setup.sh)")
            continue
        for run in range(1, RUNS + 1):
            run_one(scenario, run, joined=False)
        run_one(scenario, 1, joined=True)
    if "7.2-7.2" in SCENARIOS:
        run_one("7.2-7.2", 1, joined=True, tls=False)
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
