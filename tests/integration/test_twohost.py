#!/usr/bin/env python3
"""Two hosts in network namespaces, each recorded apart, merged by `report` (issue #8).

tests/lib/netns.py makes two namespaces joined by a veth pair (10.231.X.1 and .2); the
source QEMU runs in one, the destination in the other (bare QEMU through
tests/lib/qemumig.py, TLS-PSK multifd, 4 channels, random RAM). Each side is recorded
by its own `mftrace record -p PID`; `mftrace report SRC DST` merges the two files. The
bpftrace observer (tests/lib/observer.bt: kernel tracepoints see every namespace) and
QEMU's own migrate_set_state trace are the truth:

  - a clean run: every channel paired across the two stacks (a source record for each
    destination channel, shutdown -> FIN -> final read in causal order), each verdict
    the observer's, the clocks the same (same boot); with the destination's clock moved
    by 3 s and another boot id, causality still brackets the true offset;
  - faults on the wire, injected with nftables inside a namespace, each with verdicts
    and outcomes equal to the observer's and QEMU's, one migration per side in the
    merged report, and both recorders alive after the fault:
      * an RST mid-stream (the destination rejects the source's segments with a reset),
      * the destination's packets blackholed until the test cancels the migration,
      * a tbf rate limit on the source's link, so that the end of the migration is long.
    netem would give delay and loss, but it is not in this kernel (CONFIG_NET_SCH_NETEM is
    unset); nftables and tbf are what there is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, HERE)

import groundtruth as gt  # noqa: E402
import netns  # noqa: E402
from outcome import FAILED, check, report  # noqa: E402
import observer  # noqa: E402
import qemumig  # noqa: E402
from mftrace_run import MFTRACE  # noqa: E402
from test_record import causal_order, rewrite_clock  # noqa: E402

MEM = int(os.environ.get("MFTRACE_TWOHOST_MEM", "128"))


def wait_active(m: qemumig.Migration, timeout: float = 30.0, min_bytes: int = 8 << 20) -> dict | None:
    """Until the source has sent min_bytes of RAM (mid-stream for sure); its query-migrate."""
    deadline = time.monotonic() + timeout
    info = None
    while time.monotonic() < deadline:
        info = m._query("src")
        if info is None or info.get("status") in qemumig.FINAL_SRC_STATES:
            return info
        if info.get("ram", {}).get("transferred", 0) >= min_bytes:
            return info
        time.sleep(0.05)
    return info


def run_case(n: netns.NetnsPair, case: str, wd: str) -> None:
    wd = os.path.join(wd, case)
    os.makedirs(wd, exist_ok=True)
    port = 47000 + os.getpid() % 1000
    m = qemumig.Migration("7.2-7.2", wd, mem=MEM, volume=True, listen_host=n.addr["b"], port=port,
                          debug_threads=True, wrap={"src": n.wrap("a", []), "dst": n.wrap("b", [])})
    recs = {}
    obs = None
    try:
        m.start()
        obs = observer.Observer(m.dst_pid, m.src_pid, port, wd).start()
        for side, pid in (("src", m.src_pid), ("dst", m.dst_pid)):
            recs[side] = gt.Recorder(wd, side, ["-p", str(pid)])
        for r in recs.values():
            r.wait_ready(timeout=120)
        if case == "tbf":      # the source's link: 400 Mbit/s, a queue of up to 200 ms
            n.tc("a", "qdisc", "add", "dev", n.dev["a"], "root", "tbf", "rate", "400mbit",
                 "burst", "256kb", "latency", "200ms")
        if case in ("rst", "blackhole"):
            m.qmp["src"].execute("migrate-set-parameters", {"max-bandwidth": 32 << 20})
        m.start_migrate()
        fault_info = None
        if case == "rst":
            fault_info = wait_active(m)
            n.nft("b", "table inet fault {\n chain in {\n  type filter hook input priority 0\n"
                       f"  tcp dport {port} reject with tcp reset\n }}\n}}\n")
        elif case == "blackhole":
            fault_info = wait_active(m)
            n.nft("b", "table inet fault {\n chain out {\n  type filter hook output priority 0\n"
                       f"  tcp sport {port} drop\n }}\n}}\n")
            time.sleep(2.0)
            m.cancel()      # its sends are stuck: it stays cancelling while the hole is there
            info = m.wait_source(timeout=3)
            if info and info.get("status") not in qemumig.FINAL_SRC_STATES:
                n.nft_flush("b")
        src_info = m.wait_source(timeout=120)
        # the destination's end: exits on failure (exit-on-error), or completes
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and m.procs["dst"].poll() is None:
            d = m._query("dst")
            if d and d.get("status") in ("completed", "failed"):
                break
            time.sleep(0.05)
        if case in ("rst", "blackhole"):
            n.nft_flush("b")
        time.sleep(0.5)
        alive = {s: r.proc.poll() is None for s, r in recs.items()}
        src_status = src_info.get("status") if src_info else None
        m.stop()
        run = obs.stop()
        obs = None
        codes = {s: r.stop(timeout=120) for s, r in recs.items()}
        states = {s: m.states(s) for s in ("src", "dst")}
        tag = f"twohost {case}"
        mid = ""
        if fault_info is not None:
            mid = f", fault at {fault_info.get('ram', {}).get('transferred', 0) >> 20} MiB sent"
        expect = {"clean": "completed", "tbf": "completed", "rst": "failed", "blackhole": "cancelled"}[case]
        report(src_status == expect and all(alive.values()) and all(c in (0, 2) for c in codes.values()),
               f"{tag}: the source's migration {src_status} (expected {expect}{mid}), both recorders alive "
               f"after it and exit cleanly", f"states {states}, recorders alive {alive}, exit codes {codes}")
        rc, merged, err = gt.report_json([recs["src"].path, recs["dst"].path])
        errs = [] if rc in (0, 2) else [f"report exited {rc}: {err.strip()}"]
        errs += gt.check_side(merged, m.src_pid, "src", run, True, True, 1, port=port)
        errs += gt.check_side(merged, m.dst_pid, "dst", run, True, True, 1, port=port)
        for side, role, pid in (("src", "source", m.src_pid), ("dst", "destination", m.dst_pid)):
            want = gt.attempts(states[side])
            if want:
                errs += gt.outcome_errs(merged, pid, role, want, f"{side}")
            elif any(r["outcome"] == "completed" for r in gt.migs_of(merged, pid, role)):
                errs.append(f"{side}: outcome completed, QEMU's states {states[side]}")
        if case in ("clean", "tbf"):
            errs += causal_order(merged)
        c = {r["file"]: r["clock"] for r in merged if r.get("type") == "recording"}.get(recs["dst"].path, {})
        if c.get("method") != "same-clock" or "VIOLATED" in c.get("text", ""):
            errs.append(f"clock: {c}")
        check(f"{tag}: src and dst recorded apart in two namespaces, merged by report: paired, "
              f"one migration a side, verdicts = observer, outcomes = QEMU's", errs, wd)
        if case == "clean":
            skewed = os.path.join(wd, "dst-skewed.mftrec")
            rewrite_clock(recs["dst"].path, skewed, 3_000_000_000, "11111111-2222-3333-4444-555555555555")
            rc, merged, err = gt.report_json([recs["src"].path, skewed])
            c = {r["file"]: r["clock"] for r in merged if r.get("type") == "recording"}.get(skewed, {})
            lo, hi = c.get("bound_lo_ns"), c.get("bound_hi_ns")
            errs = gt.check_side(merged, m.src_pid, "src", run, True, True, 1, port=port)
            errs += gt.check_side(merged, m.dst_pid, "dst", run, True, True, 1, port=port)
            errs += causal_order(merged, strict=False)
            if c.get("method") != "causality" or lo is None or not lo <= 0 <= (hi if hi is not None else 1 << 62):
                errs.append(f"clock: {c}")
            check(f"{tag}: the destination's clock moved by 3 s (another boot): causality aligns it "
                  f"(offset {c.get('offset_ns')} ns, truth 0, window [{lo}, {hi}]), verdicts hold", errs, wd)
    finally:
        if obs is not None:
            obs.stop(linger=0)
        for r in recs.values():
            r.stop(timeout=60)
        m.stop()
        if case == "tbf":
            n.tc("a", "qdisc", "del", "dev", n.dev["a"], "root")


def main() -> int:
    why = netns.missing()
    if why is None and not os.access(MFTRACE, os.X_OK):
        why = f"{MFTRACE} not built (make)"
    if why:
        report(None, "twohost", why)
        return 0
    wd = tempfile.mkdtemp(prefix="mft-twohost-")
    t0 = time.monotonic()
    try:
        with netns.NetnsPair() as n:
            report(True, f"twohost: namespaces {n.ns['a']} ({n.addr['a']}) and {n.ns['b']} ({n.addr['b']}) "
                         "joined by a veth pair")
            report(None, "twohost netem (delay, loss)", "netem is not in this kernel (CONFIG_NET_SCH_NETEM "
                   "unset): the faults below use nftables and tbf")
            for case in ("clean", "rst", "blackhole", "tbf"):
                try:
                    run_case(n, case, wd)
                except Exception as e:
                    report(False, f"twohost {case}", f"{type(e).__name__}: {e} [files in {wd}] "
                           + traceback.format_exc(limit=3).replace("\n", " | "))
        left = [x for x in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout.split() if x in n.ns.values()]
        report(not left, "twohost: the namespaces are gone after the test", f"left: {left}")
    finally:
        print(f"twohost: {time.monotonic() - t0:.0f}s", flush=True)
        if not FAILED and not os.environ.get("MFTRACE_KEEP_WORKDIR"):
            shutil.rmtree(wd, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
