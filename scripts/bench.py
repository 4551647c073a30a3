#!/usr/bin/env python3
"""What mftrace costs a migration, measured side by side in one run.

Each round migrates the same guest (default: 512 MiB of random bytes, so every page
crosses the wire; TLS-PSK, 4 multifd channels, QEMU 7.2 -> 7.2) once per variant, in
an order that rotates between rounds:

  none         no tracing
  mftrace      mftrace -p DST -p SRC (default mode: kernel events + rare GnuTLS calls)
  tls-records  mftrace -p DST -p SRC --tls-records (every gnutls_record_recv result)
  bpftrace     a bpftrace one-liner with uprobe+uretprobe on gnutls_record_recv in both
               QEMUs: what people reach for today

The migration time is QEMU's own `total-time` from query-migrate on the source. The
medians and the ratios to `none` are printed; these 2-core machines are noisy, so only
the ratios of one run mean anything.

usage: sudo scripts/bench.py [--rounds N] [--mem MIB] [--scenario S] [--variants a,b]
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import shutil
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

import qemumig  # noqa: E402
from mftrace_run import Tracer  # noqa: E402

BPFTRACE_ONELINER = (
    'uprobe:{lib}:gnutls_record_recv /pid == {a} || pid == {b}/ {{ @s[tid] = nsecs; }} '
    'uretprobe:{lib}:gnutls_record_recv /@s[tid]/ {{ @r[retval <= 0 ? retval : 1] = count(); delete(@s[tid]); }}'
)
GNUTLS = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30"


def start_bpftrace(m, wd):
    prog = BPFTRACE_ONELINER.format(lib=GNUTLS, a=m.dst_pid, b=m.src_pid)
    p = subprocess.Popen(["bpftrace", "-B", "none", "-e", prog + ' BEGIN { printf("READY\\n"); }'],
                         stdout=subprocess.PIPE, stderr=open(os.path.join(wd, "bt.err"), "w"), text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if "READY" in line:
            return p
        if not line and p.poll() is not None:
            break
    p.kill()
    raise RuntimeError("bpftrace did not start")


def one(variant, args):
    wd = tempfile.mkdtemp(prefix="mftrace-bench-")
    tracer = bt = None
    try:
        with qemumig.Migration(args.scenario, wd, mem=args.mem, volume=True) as m:
            m.start()
            if variant == "mftrace":
                tracer = Tracer([m.dst_pid, m.src_pid], wd, "mft", ["-q"]).start()
            elif variant == "tls-records":
                tracer = Tracer([m.dst_pid, m.src_pid], wd, "mft", ["-q", "--tls-records"]).start()
            elif variant == "bpftrace":
                bt = start_bpftrace(m, wd)
            res = m.migrate(timeout=600)
            total_ms = m.qmp["src"].execute("query-migrate").get("total-time")
            if tracer:
                tracer.stop()
            if bt:
                bt.send_signal(signal.SIGINT)
                bt.wait(30)
        if res.get("src_status") != "completed":
            raise RuntimeError(f"migration did not complete: {res.get('src_status')}")
        secs = total_ms / 1000 if total_ms else res["timings"]["migrate_s"]
        return secs
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mem", type=int, default=512)
    ap.add_argument("--scenario", default="7.2-7.2")
    ap.add_argument("--variants", default="none,mftrace,tls-records,bpftrace")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench: must run as root", file=sys.stderr)
        return 1
    variants = args.variants.split(",")
    times = {v: [] for v in variants}
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            t = one(v, args)
            times[v].append(t)
            print(f"round {r + 1} {v:12s} {t:7.2f} s", flush=True)
    base = statistics.median(times[variants[0]])
    print(f"\n{args.scenario}, {args.mem} MiB random RAM, TLS, 4 multifd channels, "
          f"{args.rounds} interleaved rounds (median):")
    for v in variants:
        med = statistics.median(times[v])
        print(f"  {v:12s} {med:7.2f} s   x{med / base:5.2f} of {variants[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
