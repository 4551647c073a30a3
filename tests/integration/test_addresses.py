#!/usr/bin/env python3
"""Both ends of real TLS multifd migrations traced, with the destination listening as a
production host does: on [::] (dual-stack, libvirt's default: its sockets carry
::ffff:127.0.0.1 while the source's carry 127.0.0.1), and on [::1] (pure IPv6). Every
source channel must be decided by its destination's view, in live mode, in the
exporter, and in `report` of the two hosts' recordings (one pairing rule, addresses
normalised).

Ground truth, none of it from mftrace:
  - the bpftrace observer (tests/lib/observer.bt, which watches IPv4 and IPv6): every
    connection, its kind (from the first plaintext bytes) and its verdict;
  - QEMU's query-migrate;
  - the observer's TCP states and close(2) calls for the FINs that reached a socket in
    FIN_WAIT2 while QEMU still held it (mftrace must record them).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import groundtruth as gt  # noqa: E402
import observer  # noqa: E402
import qemumig  # noqa: E402
from mftrace_run import Tracer  # noqa: E402

results = {"pass": 0, "fail": 0, "skip": 0}
fin_wait2_checked = 0


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


def check(name: str, errs: list[str], wd: str) -> None:
    report(not errs, name, "; ".join(errs[:8]) + f" [logs in {wd}]")


def run(scenario: str, listen: str, exporter: bool, recorders: bool) -> None:
    global fin_wait2_checked
    name = f"{scenario} destination on [{listen}]"
    wd = tempfile.mkdtemp(prefix=f"mft-addr-{scenario}-")
    token = secrets.token_hex(4)
    vm = {"src": f"mftaddr-{token}-src", "dst": f"mftaddr-{token}-dst"}
    keep = False
    try:
        with qemumig.Migration(scenario, wd, listen_host=listen,
                               extra_args={s: ["-name", vm[s]] for s in vm}) as m:
            m.start()
            obs = observer.Observer(m.dst_pid, m.src_pid, m.port, wd).start()
            tools = []
            try:
                live = Tracer([m.dst_pid, m.src_pid], wd, "live", ["-q"]).start()
                tools.append(live)
                if recorders:
                    recs = [gt.Recorder(wd, side, ["-p", str(pid)]).wait_ready()
                            for side, pid in (("src", m.src_pid), ("dst", m.dst_pid))]
                    tools += recs
                if exporter:
                    exp = gt.Exporter(wd).start()
                    tools.append(exp)
                    if not gt.wait_for(lambda: exp.tracing(m.src_pid) and exp.tracing(m.dst_pid), 15):
                        raise RuntimeError(f"the exporter did not pick both QEMUs up: {exp.stderr()[-300:]}")
                res = m.migrate()
                live.wait_migrations(2)
                if exporter:
                    gt.wait_for(lambda: exp.sum("mftrace_migrations_total", domain=vm["src"]) >= 1
                                and exp.sum("mftrace_migrations_total", domain=vm["dst"]) >= 1, 20)
                    metrics = {s: exp.series("mftrace_channels_total", domain=vm[s]) for s in vm}
            finally:
                for t in tools:
                    t.stop()
                run_obs = obs.stop()
        if res["src_status"] != "completed":
            raise RuntimeError(f"the migration did not complete: {res['src_status']}")
        recs = live.records()
        errs = gt.check_side(recs, m.dst_pid, "dst", run_obs, True, must_decide=True)
        errs += gt.check_side(recs, m.src_pid, "src", run_obs, True, must_decide=True)
        for r in gt.records(live.stdout(), "channel"):
            if "ffff" in r["local"] or "ffff" in r["peer"]:
                errs.append(f"pid {r['pid']}: address {r['local']} / {r['peer']} not normalised")
            if listen == "::1" and not r["local"].startswith("[::1]:"):
                errs.append(f"pid {r['pid']}: IPv6 channel shown as {r['local']}")
        check(f"{name}: live, both ends traced, every channel as the observer says, every source channel decided",
              errs, wd)
        keep |= bool(errs)
        ferrs, n = gt.fin_wait2_errors(recs, run_obs, {m.dst_pid, m.src_pid})
        fin_wait2_checked += n
        check(f"{name}: FINs in FIN_WAIT2 recorded ({n} seen by the observer), none invented", ferrs, wd)
        keep |= bool(ferrs)
        if recorders:
            rc, rep, err = gt.report_json([os.path.join(wd, "src.mftrec"),
                                           os.path.join(wd, "dst.mftrec")])
            errs = [] if rc in (0, 2) else [f"report exited {rc}: {err.strip()[-300:]}"]
            errs += gt.check_side(rep, m.dst_pid, "dst", run_obs, True, must_decide=True)
            errs += gt.check_side(rep, m.src_pid, "src", run_obs, True, must_decide=True)
            check(f"{name}: report of the two hosts' recordings pairs every channel, as live", errs, wd)
            keep |= bool(errs)
        if exporter:
            errs = []
            truth = {}
            for c in gt.conns_of(run_obs, m.dst_pid, "dst").values():
                if c.role == "multifd":
                    v = gt.truth_of(run_obs, c, True)
                    truth[v] = truth.get(v, 0) + 1
            for side in ("src", "dst"):
                got = {lb["verdict"]: int(v) for lb, v in metrics[side] if v}
                if got != truth:
                    errs.append(f"exporter {side} channels by verdict {got}, observer {truth}")
            check(f"{name}: the exporter counts every channel of both ends by its decided verdict", errs, wd)
            keep |= bool(errs)
    except Exception as e:
        keep = True
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] " + traceback.format_exc(limit=3).replace("\n", " | "))
    if not keep:
        shutil.rmtree(wd, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        report(None, "addresses", "needs root (eBPF)")
        return 0
    have10 = os.path.exists(os.path.join(qemumig.qemu10_prefix(), "usr/bin/qemu-system-x86_64"))
    run("7.2-7.2", "::", exporter=True, recorders=True)
    if have10:
        run("10.0-10.0", "::1", exporter=False, recorders=True)
        run("7.2-10.0", "::", exporter=False, recorders=False)
    else:
        report(None, "10.0 scenarios", "QEMU 10.0.2 not installed (run scripts/setup.sh)")
    if fin_wait2_checked == 0:
        report(None, "FIN in FIN_WAIT2", "no run had a FIN reach a socket in FIN_WAIT2 while QEMU held it")
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
