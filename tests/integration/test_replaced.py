#!/usr/bin/env python3
"""Libraries and binaries replaced on disk while QEMU runs are still traced.

A production host takes GnuTLS security updates while its VMs run for months: the
running QEMUs keep the old libgnutls mapped, and its maps line reads "(deleted)" or
names a file that is another one now. Both QEMUs here run from private copies of their
binary and load a private copy of the real libgnutls (LD_LIBRARY_PATH). Once they run,
the library file is replaced by another file (renamed over it), or deleted, and the
QEMU binaries are deleted. Only then does mftrace attach, to both ends.

Ground truth: the bpftrace observer, its GnuTLS probes on the very library file the
QEMUs map (a hard link made before it was replaced: the same inode), QEMU's
query-migrate, and the test's own knowledge of what it did to the files. mftrace must
trace both ends with every channel judged as the observer says, and `mftrace doctor`
must say that the library was replaced.
"""

from __future__ import annotations

import os
import shutil
import subprocess
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


def maps_line(pid: int, what: str) -> str:
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            if what in line:
                return line.strip()
    return ""


def run(scenario: str, how: str) -> None:
    name = f"{scenario}, libgnutls {how} and the QEMU binaries deleted while QEMU runs"
    wd = tempfile.mkdtemp(prefix=f"mft-replaced-{how}-")
    ok = True
    try:
        lib = os.path.join(wd, "lib")
        os.makedirs(lib)
        gnutls = os.path.join(lib, "libgnutls.so.30")
        shutil.copy2(os.path.realpath(observer.SYSTEM_GNUTLS), gnutls)
        seen_by_observer = os.path.join(wd, "observer-libgnutls.so.30")
        os.link(gnutls, seen_by_observer)         # the same inode, whatever happens to the name
        version = scenario.split("-")[0]
        binary = {s: qemumig.private_copy(version, os.path.join(wd, f"bin-{s}")) for s in ("src", "dst")}
        env = {s: {"LD_LIBRARY_PATH": lib} for s in ("src", "dst")}
        with qemumig.Migration(scenario, wd, env=env, binary=binary) as m:
            m.start()
            for s in ("src", "dst"):
                if gnutls not in maps_line(m.pid(s), "libgnutls"):
                    raise RuntimeError(f"{s} QEMU does not map the private libgnutls: {maps_line(m.pid(s), 'libgnutls')}")
            # the package upgrade: a new file where the library was, or none
            if how == "replaced":
                new = os.path.join(lib, ".new")
                with open(new, "wb") as f:
                    f.write(b"\x7fELF not the library QEMU mapped\n")
                os.rename(new, gnutls)
            else:
                os.unlink(gnutls)
            for s in ("src", "dst"):
                os.unlink(binary[s])
            errs = []
            for s in ("src", "dst"):
                line = maps_line(m.pid(s), "libgnutls")
                if "(deleted)" not in line:
                    errs.append(f"{s}: maps says {line!r}, expected the library deleted from under it")
                if not os.readlink(f"/proc/{m.pid(s)}/exe").endswith("(deleted)"):
                    errs.append(f"{s}: /proc/PID/exe does not say deleted")
            if errs:
                raise RuntimeError("; ".join(errs))
            doc = subprocess.run([gt.MFTRACE, "doctor", "-p", str(m.dst_pid)], capture_output=True, text=True,
                                 timeout=120)
            obs = observer.Observer(m.dst_pid, m.src_pid, m.port, wd, gnutls=seen_by_observer,
                                    ready_timeout=180).start()
            t = Tracer([m.dst_pid, m.src_pid], wd, "live", ["-q"]).start()
            try:
                res = m.migrate()
                t.wait_migrations(2)
            finally:
                t.stop(timeout=60)
                run_obs = obs.stop()
        if res["src_status"] != "completed":
            raise RuntimeError(f"the migration did not complete: {res['src_status']}")
        errs = [] if "replaced since the process mapped it" in doc.stdout else \
            [f"doctor (exit {doc.returncode}) says nothing of the replaced library: {doc.stdout[-400:]} {doc.stderr[-200:]}"]
        ok &= check(f"{name}: doctor says the library was replaced", errs, wd)
        recs = t.records()
        errs = gt.check_side(recs, m.dst_pid, "dst", run_obs, True, must_decide=True)
        errs += gt.check_side(recs, m.src_pid, "src", run_obs, True, must_decide=True)
        tls = [r for r in recs if r.get("type") == "channel" and not r["tls"]]
        if tls:
            errs.append(f"{len(tls)} channels without TLS: the GnuTLS probes missed the mapped library")
        if not any(c.tls_final is not None for c in run_obs.dst_conns.values()):
            errs.append("the observer saw no gnutls_record_recv result: its probes missed the library")
        ok &= check(f"{name}: both ends traced, every channel as the observer says", errs, wd)
    except Exception as e:
        ok = False
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] " + traceback.format_exc(limit=3).replace("\n", " | "))
    if ok:
        shutil.rmtree(wd, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        report(None, "replaced", "needs root (eBPF)")
        return 0
    run("7.2-7.2", "replaced")
    if os.path.exists(os.path.join(qemumig.qemu10_prefix(), "usr/bin/qemu-system-x86_64")):
        run("10.0-10.0", "deleted")
    else:
        report(None, "10.0-10.0 deleted", "QEMU 10.0.2 not installed (run scripts/setup.sh)")
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
