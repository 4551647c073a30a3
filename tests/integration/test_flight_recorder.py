#!/usr/bin/env python3
"""The flight recorder keeps the incident: `mftrace record --max-size` snapshots its ring
when a migration is flagged or fails, and on SIGUSR2; the snapshots are capped; files are
never written through a link; `record` without -o writes mftrace.data, `report` without a
file reads it, and `report -i FILE` works.

Run from the repository root, as root, after `make`:

    python3 tests/integration/test_flight_recorder.py

Prints "PASS name", "FAIL name: why" or "SKIP name: why" per test.

Ground truth, none of it from mftrace:
  - 7.2->10.0 with multifd-clean-tls-termination=on (tests/lib/qemumig.py): the
    destination fails, as QEMU itself says (query-migrate, exit status); a snapshot must
    be taken, and it must hold that failed migration;
  - SIGUSR2 sent by this test: one snapshot per signal, the cap honoured, the links this
    test planted on the next names left alone and their target never created.
A 7.2->7.2 run is also checked for consistency: a snapshot exists if and only if the
recording, replayed by `report`, holds a flagged or failed migration.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
os.environ.setdefault("MFTRACE", os.path.join(REPO, "build", "mftrace"))

import qemumig  # noqa: E402

MFTRACE = os.environ["MFTRACE"]
SNAP_RE = re.compile(r"^mftrace\.data\.(\d{8}T\d{6}Z)(?:\.(\d+))?\.snapshot$")
results = {"pass": 0, "fail": 0, "skip": 0}


def report(ok, name, why=""):
    if ok is None:
        print(f"SKIP {name}: {why}", flush=True)
        results["skip"] += 1
    elif ok:
        print(f"PASS {name}", flush=True)
        results["pass"] += 1
    else:
        print(f"FAIL {name}: {why}", flush=True)
        results["fail"] += 1


def wait_for(fn, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


class Recorder:
    """`mftrace record` in cwd, without -o (mftrace.data)."""

    def __init__(self, cwd: str, pids: list[int], *args: str):
        self.cwd = cwd
        self.err = os.path.join(cwd, "record.err")
        cmd = [MFTRACE, "record", "--max-size", "2M", *args]
        for p in pids:
            cmd += ["-p", str(p)]
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.err, "w"))
        if not wait_for(lambda: "mftrace: ready" in self.stderr() or self.proc.poll() is not None, 60):
            raise RuntimeError("record never ready")
        if self.proc.poll() is not None:
            raise RuntimeError(f"record exited: {self.stderr()[-400:]}")

    def stderr(self) -> str:
        with open(self.err) as f:
            return f.read()

    def snapshots_said(self) -> list[tuple[str, str]]:
        return re.findall(r"^mftrace: snapshot \((.*?)\): (\S+)$", self.stderr(), re.M)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def snapshots(d: str) -> list[str]:
    """Regular snapshot files in d, oldest first."""
    out = []
    for n in os.listdir(d):
        m = SNAP_RE.match(n)
        if m and os.path.isfile(os.path.join(d, n)) and not os.path.islink(os.path.join(d, n)):
            out.append((m.group(1), int(m.group(2) or 1), n))
    return [n for _, _, n in sorted(out)]


def report_json(cwd: str, *args: str) -> tuple[int, list[dict], str]:
    r = subprocess.run([MFTRACE, "report", "-f", "json", "-q", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    recs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return r.returncode, recs, r.stderr


def check(name, fn):
    try:
        r = fn()
    except Exception as e:
        r = f"{type(e).__name__}: {e} | " + traceback.format_exc(limit=3).replace("\n", " | ")
    report(r is None, name, r or "")


def failed_migration(workdir: str) -> None:
    """7.2 -> 10.0 strict: QEMU says the destination failed; a snapshot must keep it."""
    d = os.path.join(workdir, "strict")
    os.makedirs(d)
    rec = None
    with qemumig.Migration("7.2-10.0-strict", os.path.join(d, "qemu")) as m:
        m.start()
        rec = Recorder(d, [m.dst_pid, m.src_pid])
        res = m.migrate()
        dst_failed = (res.get("dst_exit_code") not in (None, 0) or
                      (res.get("dst_status") or res.get("dst_last_status")) == "failed")
        dst_pid = m.dst_pid
        said = wait_for(lambda: [s for s in rec.snapshots_said() if f"pid {dst_pid} failed" in s[0]], 30)
    rc = rec.stop()

    def kept():
        if not dst_failed:
            return f"QEMU did not fail the strict migration ({res.get('dst_status')}, exit " \
                   f"{res.get('dst_exit_code')}): the scenario's premise is gone"
        if rc != 0:
            return f"record exited {rc}: {rec.stderr()[-300:]}"
        if not said:
            return f"no snapshot for the failed destination; stderr: {rec.stderr()[-600:]}"
        path = said[0][1]
        if not SNAP_RE.match(os.path.basename(path)) or not os.path.isfile(os.path.join(d, path)):
            return f"snapshot named {path!r}"
        st = os.lstat(os.path.join(d, path))
        if st.st_mode & 0o777 != 0o640:
            return f"snapshot mode {oct(st.st_mode & 0o777)}"
        code, recs, err = report_json(d, "-i", path)
        if "no trailer" in err:
            return f"the snapshot has no trailer: {err.strip()[:300]}"
        migs = [r for r in recs if r.get("type") == "migration" and r.get("pid") == dst_pid]
        if not migs or not any(x["outcome"] in ("failed", "destination-failed") or
                               x["outcome"].startswith(("exited", "killed")) for x in migs):
            return f"the snapshot's report has no failed destination migration: {migs}; {err.strip()[:300]}"
        return None
    check("flight recorder: QEMU fails the strict 7.2->10.0 migration; a snapshot holds the failed migration, "
          "with its trailer, mode 0640", kept)

    def default_names():
        if not os.path.isfile(os.path.join(d, "mftrace.data")):
            return f"no mftrace.data in {os.listdir(d)}"
        code, recs, err = report_json(d)              # no file: mftrace.data
        code_i, recs_i, _ = report_json(d, "-i", "mftrace.data")
        if not recs or recs != recs_i:
            return f"report and report -i mftrace.data differ ({len(recs)} vs {len(recs_i)} records): {err[:300]}"
        if not any(r.get("type") == "migration" and r.get("pid") == dst_pid for r in recs):
            return "the migration is not in mftrace.data"
        return None
    check("record without -o writes mftrace.data; report without a file reads it, as report -i does",
          default_names)


def flagged_consistency(workdir: str) -> None:
    d = os.path.join(workdir, "flagged")
    os.makedirs(d)
    with qemumig.Migration("7.2-7.2", os.path.join(d, "qemu")) as m:
        m.start()
        rec = Recorder(d, [m.dst_pid, m.src_pid])
        m.migrate()
        time.sleep(3)           # the grace period: the migration is judged
    rc = rec.stop()

    def consistent():
        if rc != 0:
            return f"record exited {rc}"
        _, recs, err = report_json(d)
        bad = [r for r in recs if r.get("type") == "migration" and (r.get("flagged") or r.get("outcome") != "completed")]
        said = rec.snapshots_said()
        if bool(bad) != bool(said):
            return f"flagged or failed migrations {[(r['pid'], r['outcome'], r['flagged']) for r in bad]}, " \
                   f"snapshots {said}"
        for why, path in said:
            _, srecs, _ = report_json(d, "-i", path)
            if not any(r.get("type") == "migration" and (r.get("flagged") or r.get("outcome") != "completed")
                       for r in srecs):
                return f"{path} ({why}) holds no flagged or failed migration"
        print(f"# 7.2->7.2: {len(bad)} flagged or failed migration records, snapshots {said}", flush=True)
        return None
    check("flight recorder: 7.2->7.2: a snapshot if and only if a migration was flagged or failed, "
          "and it holds that migration", consistent)


def signals_and_cap(workdir: str) -> None:
    d = os.path.join(workdir, "usr2")
    os.makedirs(d)
    victim = os.path.join(workdir, "victim")
    with qemumig.Migration("7.2-7.2", os.path.join(d, "qemu")) as m:
        m.start()
        rec = Recorder(d, [m.dst_pid], "--max-snapshots", "2")
        # links planted on the names the next seconds would take
        now = time.time()
        planted = []
        for k in range(-1, 4):
            name = time.strftime("mftrace.data.%Y%m%dT%H%M%SZ.snapshot", time.gmtime(now + k))
            os.symlink(victim, os.path.join(d, name))
            planted.append(name)
        rec.proc.send_signal(signal.SIGUSR2)
        first = wait_for(lambda: rec.snapshots_said(), 10)
        for _ in range(3):
            n = len(rec.snapshots_said())
            rec.proc.send_signal(signal.SIGUSR2)
            wait_for(lambda: len(rec.snapshots_said()) > n, 10)
    rc = rec.stop()

    def kept():
        said = rec.snapshots_said()
        if rc != 0 or not first:
            return f"record exit {rc}, snapshots {said}: {rec.stderr()[-300:]}"
        if len(said) != 4 or any(w != "SIGUSR2" for w, _ in said):
            return f"4 signals, snapshots said {said}"
        if os.path.exists(victim):
            return "a snapshot was written through a planted link"
        if said[0][1] in planted or ".snapshot" not in said[0][1]:
            return f"the first snapshot took a planted name: {said[0][1]}"
        for name in planted:
            if not os.path.islink(os.path.join(d, name)):
                return f"the planted link {name} was removed or replaced"
        files = snapshots(d)
        if files != [os.path.basename(p) for _, p in said[-2:]]:
            return f"with --max-snapshots 2, kept {files}; taken {[p for _, p in said]}"
        for f in files:
            code, recs, err = report_json(d, "-i", f)
            if code not in (0, 2) or "no trailer" in err:
                return f"{f}: exit {code}, {err.strip()[:200]}"
        return None
    check("flight recorder: each SIGUSR2 writes a snapshot; --max-snapshots 2 keeps the newest two; "
          "links planted on the names are neither followed nor removed", kept)


def bad_options() -> None:
    errs = []
    for args, want in ((["--max-snapshots", "-1"], "invalid --max-snapshots"),
                       (["--max-snapshots", "x"], "invalid --max-snapshots"),
                       (["--max-snapshots"], "needs a value")):
        r = subprocess.run([MFTRACE, "record", *args], capture_output=True, text=True, timeout=20)
        if r.returncode != 1 or len(r.stderr.strip().splitlines()) != 1 or want not in r.stderr:
            errs.append(f"{args}: exit {r.returncode}, {r.stderr.strip()!r}")
    d = tempfile.mkdtemp(prefix="mft-fr-empty-")
    try:
        r = subprocess.run([MFTRACE, "report"], cwd=d, capture_output=True, text=True, timeout=20)
        if r.returncode != 1 or "mftrace.data" not in r.stderr:
            errs.append(f"report without mftrace.data: exit {r.returncode}, {r.stderr.strip()!r}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    report(not errs, "record/report: bad --max-snapshots, and report without mftrace.data: one line, exit 1",
           "; ".join(errs))


def main() -> int:
    if os.geteuid() != 0:
        report(None, "flight recorder", "needs root (eBPF)")
        return 0
    workdir = tempfile.mkdtemp(prefix="mft-fr-")
    try:
        bad_options()
        signals_and_cap(workdir)
        if os.path.exists(os.path.join(qemumig.qemu10_prefix(), "usr/bin/qemu-system-x86_64")):
            failed_migration(workdir)
        else:
            report(None, "flight recorder: strict 7.2->10.0", "QEMU 10.0.2 not installed (scripts/setup.sh)")
        flagged_consistency(workdir)
    except Exception as e:
        report(False, "flight recorder", f"{type(e).__name__}: {e} [files in {workdir}] " +
               traceback.format_exc(limit=3).replace("\n", " | "))
    finally:
        if results["fail"]:
            print(f"# files kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
