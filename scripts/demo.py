#!/usr/bin/env python3
"""mftrace demo: real TLS-PSK multifd migrations on loopback, traced live.

For each scenario, two local QEMUs (Debian's 7.2 and/or 10.0.2 from bookworm-backports)
migrate a 512 MiB guest over 4 TLS multifd channels while one mftrace watches both
ends. mftrace prints its verdict table per side; QEMU's own view of the outcome is
printed below it, so the two can be compared.

usage: scripts/demo.py [SCENARIO ...] [--events] [--json]
scenarios: 7.2-7.2 10.0-10.0 7.2-10.0 7.2-10.0-strict (default: all four)
"""

import argparse
import os
import sys
import tempfile
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

import qemumig  # noqa: E402
from mftrace_run import Tracer, TracerError  # noqa: E402

TITLES = {
    "7.2-7.2": "QEMU 7.2 -> 7.2: no gnutls_bye; whether a channel reads once more is a race",
    "10.0-10.0": "QEMU 10.0 -> 10.0: the source sends close_notify (gnutls_bye) first",
    "7.2-10.0": "QEMU 7.2 -> 10.0 (pc-i440fx-7.2): -110 is tolerated only by the compat setting",
    "7.2-10.0-strict": "QEMU 7.2 -> 10.0 with multifd-clean-tls-termination=on: the destination fails",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", default=list(TITLES))
    ap.add_argument("--events", action="store_true", help="also print mftrace's live event lines")
    ap.add_argument("--json", action="store_true", help="mftrace's JSON lines instead of text")
    args = ap.parse_args()
    for s in args.scenarios:
        if s not in TITLES:
            print(f"demo: unknown scenario {s!r}; choose from {' '.join(TITLES)}", file=sys.stderr)
            return 1
    if os.geteuid() != 0:
        print("demo: must run as root (eBPF)", file=sys.stderr)
        return 1
    rc = 0
    for scenario in args.scenarios:
        print(f"\n###### {TITLES[scenario]}", flush=True)
        wd = tempfile.mkdtemp(prefix=f"mftrace-demo-{scenario}-")
        try:
            with qemumig.Migration(scenario, wd) as m:
                m.start()
                print(f"source pid {m.src_pid}, destination pid {m.dst_pid}, migrating over "
                      f"tcp:127.0.0.1:{m.port} (TLS-PSK, 4 multifd channels)", flush=True)
                extra = [] if args.events else ["-q"]
                tracer = Tracer([m.dst_pid, m.src_pid], wd, "mftrace", extra, json_out=args.json)
                tracer.start()
                res = m.migrate()
                tracer.wait_migrations(2) if args.json else wait_text(tracer)
                tracer.stop()
            sys.stdout.write(tracer.stdout())
            print(f"\nQEMU says: source {res.get('src_status')}; destination "
                  f"{res.get('dst_status') or res.get('dst_last_status') or 'gone'}"
                  + (f", exited with status {res['dst_exit_code']}" if res.get("dst_exit_code") is not None else ""))
            for line in res.get("dst_errors") or []:
                print(f"  destination stderr: {line}")
            lost = tracer.lost()
            print(f"mftrace: {'no events lost' if lost == 0 else f'{lost} events lost'}", flush=True)
        except (TracerError, qemumig.HarnessError) as e:
            print(f"demo: {scenario}: {e} (logs in {wd})", file=sys.stderr)
            rc = 1
            continue
        shutil.rmtree(wd, ignore_errors=True)
    return rc


def wait_text(tracer: Tracer, timeout: float = 20.0) -> None:
    """Text mode: wait until both verdict tables are out."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and tracer.stdout().count("== migration #") < 2:
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
