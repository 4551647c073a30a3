#!/usr/bin/env python3
"""How fast `mftrace report` reads a long recording, in how much memory, and how many
bytes a recorded event costs. Prints two markdown table rows (no header):

  | mftrace report on a generated recording of N events | X M events/s, Y MiB peak RSS | >= 10 M events/s, <= 64 MiB |
  | recording size | Z bytes per event | <= 48 |

The recording comes from build/tools/genrec (tests/tools/genrec.c: the real writer; by
default 1000 migrations x 4 channels x 2500 SYNCs). The time is the wall time of
`mftrace report -q FILE` (the verdicts; -q leaves out a text line per
event, which is a benchmark of printf) with its output thrown away (the best of --runs), the peak RSS the
child's own (wait4). No root needed. With --mftrace PATH an older binary is measured
on the same events; one that cannot read the current format gets them in format 1.0.

usage: scripts/bench-report.py [--mftrace PATH] [--genrec PATH] [-n MIGRATIONS] [--syncs S]
                               [--runs N] [--keep FILE]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generate(genrec, path, args, fmt=None):
    cmd = [genrec, "-n", str(args.n), "-s", str(args.syncs), "-o", path]
    if fmt:
        cmd += ["--format", str(fmt)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def run_report(mftrace, path):
    """Wall seconds, the child's own peak RSS (KiB), its exit status and stderr."""
    with open(os.devnull, "w") as null, tempfile.TemporaryFile(mode="w+") as err:
        t0 = time.monotonic()
        p = subprocess.Popen([mftrace, "report", "-q", path], stdout=null, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return secs, ru.ru_maxrss, p.returncode, err.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mftrace", default=os.path.join(ROOT, "build", "mftrace"))
    ap.add_argument("--genrec", default=os.path.join(ROOT, "build", "tools", "genrec"))
    ap.add_argument("-n", type=int, default=1000, help="migrations (default 1000)")
    ap.add_argument("--syncs", type=int, default=2500, help="SYNCs per channel (default 2500)")
    ap.add_argument("--runs", type=int, default=1, help="report runs, the best is shown (default 1)")
    ap.add_argument("--keep", help="keep the generated recording here")
    args = ap.parse_args()
    for exe in (args.mftrace, args.genrec):
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench-report: {exe} is not built (make all)")
    wd = tempfile.mkdtemp(prefix="mftrace-bench-report-")
    path = args.keep or os.path.join(wd, "gen.mftrec")
    try:
        events = generate(args.genrec, path, args)
        best = None
        for _ in range(args.runs):
            secs, rss, rc, err = run_report(args.mftrace, path)
            if rc not in (0, 2) and "newer than this mftrace reads" in err:
                # an older mftrace: the same events in the format it reads
                events = generate(args.genrec, path, args, fmt=1)
                secs, rss, rc, err = run_report(args.mftrace, path)
            if rc not in (0, 2):
                sys.exit(f"bench-report: {args.mftrace} report failed ({rc}): {err.strip()[:300]}")
            if best is None or secs < best[0]:
                best = (secs, rss)
        secs, rss = best
        print(f"| mftrace report on a generated recording of {events} events "
              f"| {events / secs / 1e6:.2f} M events/s, {rss / 1024:.0f} MiB peak RSS "
              f"| >= 10 M events/s, <= 64 MiB |")
        print(f"| recording size | {os.path.getsize(path) / events:.1f} bytes per event | <= 48 |")
    finally:
        if not args.keep and os.path.exists(path):
            os.unlink(path)
        os.rmdir(wd) if os.path.isdir(wd) and not os.listdir(wd) else None


if __name__ == "__main__":
    main()
