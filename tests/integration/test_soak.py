#!/usr/bin/env python3
"""A short soak of `mftrace exporter` (tests/lib/soak.py): MFTRACE_SOAK_ROUNDS real TLS
multifd migrations in a row (default 8: a few minutes), with pid churn, judged against
the independent bpftrace observer, then memory, descriptors and BPF maps compared with
their state after the warm-up. scripts/soak.py runs the long one (200 migrations).

Run from the repository root, as root, after `make`:

    python3 tests/integration/test_soak.py

Prints "PASS name", "FAIL name: why" or "SKIP name: why" per test.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from soak import Soak  # noqa: E402

ROUNDS = int(os.environ.get("MFTRACE_SOAK_ROUNDS", "8"))


def main() -> int:
    if os.geteuid() != 0:
        print("SKIP soak: needs root (eBPF, bpftrace, bpftool)")
        return 0
    if not shutil.which("bpftool") or not os.path.exists("/usr/bin/bpftrace"):
        print("SKIP soak: bpftool or bpftrace missing (run scripts/setup.sh)")
        return 0
    wd = tempfile.mkdtemp(prefix="mft-soak-")
    failed = 0
    try:
        res = Soak(n=ROUNDS, workdir=wd, warmup=max(3, ROUNDS // 3)).run()
    except Exception as e:
        print(f"FAIL soak: {type(e).__name__}: {e} [files in {wd}] " +
              traceback.format_exc(limit=4).replace("\n", " | "), flush=True)
        return 1
    errs = res["errors"]
    w, e = res.get("after_warmup", {}), res.get("end", {})
    print(f"# soak: {ROUNDS} migrations; verdicts exporter {res.get('verdicts_exporter')}, observer "
          f"{res.get('verdicts_observer')}; RSS {w.get('rss_kib')} KiB after the warm-up, {e.get('rss_kib')} KiB at "
          f"the end; map entries {e.get('map_entries')}", flush=True)

    def verdict(name: str, words: tuple[str, ...]) -> None:
        nonlocal failed
        mine = [x for x in errs if any(w in x for w in words)]
        if mine:
            failed += 1
            print(f"FAIL {name}: {'; '.join(mine)} [files in {wd}]", flush=True)
        else:
            print(f"PASS {name}", flush=True)
    verdict(f"soak: the exporter's destination channel counters equal the observer's verdicts "
            f"({sum(res.get('verdicts_observer', {}).values())} channels), one migration per role per round",
            ("verdicts", "migrations counted", "observer lost"))
    verdict("soak: RSS within 10 % of its value after the warm-up", ("RSS",))
    verdict("soak: no descriptor leaked (probe links of exited QEMUs, sockets, maps, files)",
            ("descriptors", "probe links", "perf event"))
    verdict("soak: BPF maps back to baseline (sockets, targets, TLS sessions, per-thread entries)", ("BPF maps",))
    other = [x for x in errs if not any(w in x for w in ("verdicts", "migrations counted", "observer lost", "RSS",
                                                            "descriptors", "probe links", "perf event", "BPF maps"))]
    if other or res.get("exporter_exit") != 0:
        failed += 1
        print(f"FAIL soak: exporter exit {res.get('exporter_exit')}; {other} [files in {wd}]", flush=True)
    else:
        print("PASS soak: the exporter stops with exit 0 after it", flush=True)
    if not failed:
        shutil.rmtree(wd, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
