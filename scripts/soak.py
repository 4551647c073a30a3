#!/usr/bin/env python3
"""The long soak of `mftrace exporter` (as root, after `make`): N real TLS multifd
migrations in a row (default 200), with pid churn; see tests/lib/soak.py for what runs
and what is checked. Prints a line per round, then the figures (RSS after the warm-up and
at the end, descriptors, BPF map entries, the verdicts the exporter counted and the ones
the observer saw), writes them to WORKDIR/soak.json, and exits 1 if a check failed.

    python3 scripts/soak.py [N] [--workdir DIR]       # about 5 s a round here (200: 17 min)
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))

from soak import Soak  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=None, help="rounds before the reference snapshot (default n/10)")
    ap.add_argument("--workdir", default=None, help="keep the files here (default: a temp dir, removed on success)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("scripts/soak.py: run as root", file=sys.stderr)
        return 1
    wd = a.workdir or tempfile.mkdtemp(prefix="mft-soak-")
    t0 = time.monotonic()
    res = Soak(n=a.n, workdir=wd, warmup=a.warmup).run()
    res["seconds"] = round(time.monotonic() - t0)
    with open(os.path.join(wd, "soak.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    w, e = res.get("after_warmup", {}), res["end"]
    print(f"soak: {a.n} migrations in {res['seconds']} s")
    print(f"  verdicts (destination multifd channels): exporter {res['verdicts_exporter']}, "
          f"observer {res['verdicts_observer']}; migrations counted {res['migrations']}")
    print(f"  RSS: {w.get('rss_kib')} KiB after {res['warmup']} rounds, {e['rss_kib']} KiB at the end")
    print(f"  descriptors after the warm-up {w.get('fds')}, at the end {e['fds']}; probe links of the soak's "
          f"QEMUs left {e['links_ours']}")
    print(f"  BPF map entries after the warm-up {w.get('map_entries')}, at the end {e['map_entries']}; "
          f"the soak's sockets {e['socks_ours']}, targets {e['targets_ours']}, orphaned TLS sessions "
          f"{e['sessions_orphaned']}, per-thread entries of dead threads {e['per_thread_dead']}")
    print(f"  exporter exit status {res['exporter_exit']}")
    for x in res["errors"]:
        print(f"  FAILED: {x}")
    print(f"  details: {wd}/soak.json")
    if not res["errors"] and not a.workdir:
        shutil.rmtree(wd, ignore_errors=True)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
