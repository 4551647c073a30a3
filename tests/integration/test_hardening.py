#!/usr/bin/env python3
"""Hostile names, secrets and output paths, with real QEMUs (tests/lib/qemumig.py).

Run from the repository root, as root, after `make`:

    python3 tests/integration/test_hardening.py

- Output files: `record -o` and `report -o` never follow a symbolic link, never replace
  an existing file unless --force (which replaces the link itself, never its target), and
  create mode 0640.
- Secrets: a QEMU started with `-object secret,...,data=TOKEN`, a password and a URL with
  a password: the recording's bytes never hold them, the report shows `<redacted>`.
- Names: two QEMUs named with terminal escape sequences (`-name guest=ESC[31m...`) migrate
  over TLS. Live mode, `record --show`, `report` and `doctor` print text with no control
  character but the newline (the name shows with '?' in their place), while JSON keeps the
  name exactly (escaped). Ground truth: the bytes mftrace wrote, and the name QEMU was given.
- PROBE records: a recorder of every QEMU keeps writing the attach points of a QEMU that
  starts after another one exited (they were lost when the status array was compacted).
- Limits: a session's summary names every bounded table with its use and capacity.
Prints "PASS name", "FAIL name: why" or "SKIP name: why" per test.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import qemumig  # noqa: E402
from mftrace_run import MFTRACE, Tracer  # noqa: E402

TOKEN = secrets.token_hex(4)
EVIL = f"\x1b[31mvm{TOKEN}\x1b]0;pwned\x07\u009b2J\x7f"  # SGR, OSC title, BEL, C1 CSI, DEL
SAFE = f"?[31mvm{TOKEN}?]0;pwned??2J?"                 # what mft_sanitize makes of it
SECRET = f"TOPSECRET{TOKEN}"
PASSWORD = f"hunter{TOKEN}"
BAD = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")  # controls but \n, C1 in UTF-8

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


def check(name: str, fn) -> None:
    try:
        r = fn()
    except Exception as e:
        r = f"{type(e).__name__}: {e} | " + traceback.format_exc(limit=3).replace("\n", " | ")
    if isinstance(r, tuple):
        report(None, name, r[1])
    else:
        report(r is None, name, r or "")


def run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([MFTRACE] + args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def controls(data: bytes) -> list[str]:
    """The control characters in data, with some context."""
    return [repr(data[max(0, m.start() - 20):m.end() + 20]) for m in BAD.finditer(data)][:3]


def qemu(wd: str, name: str, *extra: str) -> subprocess.Popen:
    """A paused QEMU 7.2 with no machine: enough for a process mftrace traces."""
    return subprocess.Popen(["/usr/bin/qemu-system-x86_64", "-M", "none", "-nodefaults", "-display", "none",
                             "-accel", "tcg", "-S", "-name", f"guest={name}", *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(wd, f"qemu-{name[-8:]}.err"), "wb"))


def wait_text(path: str, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in open(path, errors="replace").read():
            return True
        time.sleep(0.1)
    return False


# ------------------------------------------------------------------ output files

def output_files(wd: str, rec: str) -> None:
    victim = os.path.join(wd, "victim")
    with open(victim, "w") as f:
        f.write("precious\n")
    os.chmod(victim, 0o600)

    def one(cmd: list[str], flag_pos_args: list[str]) -> list[str]:
        errs = []
        out = os.path.join(wd, f"out-{cmd[0]}")
        link = os.path.join(wd, f"link-{cmd[0]}")
        os.symlink(victim, link)
        # an existing file: refused, left alone
        with open(out, "w") as f:
            f.write("old\n")
        r = run(cmd + ["-o", out] + flag_pos_args)
        lines = r.stderr.decode().strip().splitlines()
        if r.returncode != 1 or not any("already exists (--force replaces it)" in l for l in lines) or \
                open(out).read() != "old\n":
            errs.append(f"{cmd[0]} over an existing file: exit {r.returncode}, {lines[-2:]}")
        # a link: never followed
        r = run(cmd + ["-o", link] + flag_pos_args)
        if r.returncode != 1 or open(victim).read() != "precious\n" or not os.path.islink(link):
            errs.append(f"{cmd[0]} through a link: exit {r.returncode}, victim {open(victim).read()!r}")
        # --force: the link itself is replaced by a new file, 0640
        r = run(cmd + ["-o", link, "--force"] + flag_pos_args)
        st = os.lstat(link)
        if r.returncode not in (0, 2) or not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o640 or \
                open(victim).read() != "precious\n" or os.path.getsize(link) == 0:
            errs.append(f"{cmd[0]} --force over a link: exit {r.returncode} {r.stderr[-200:]!r}, "
                        f"mode {oct(st.st_mode)}, victim {open(victim).read()!r}")
        # a new file: 0640
        new = os.path.join(wd, f"new-{cmd[0]}")
        r = run(cmd + ["-o", new] + flag_pos_args)
        if r.returncode not in (0, 2) or stat.S_IMODE(os.stat(new).st_mode) != 0o640:
            errs.append(f"{cmd[0]} new file: exit {r.returncode}, mode {oct(os.stat(new).st_mode)}")
        return errs

    check("report -o and record -o: no clobbering (--force), never through a link, mode 0640",
          lambda: "; ".join(one(["report", rec], []) + one(["record", "--duration", "1"], [])) or None)


# ------------------------------------------------------------------ secrets and the PROBE records

def secrets_and_probes(wd: str) -> str:
    """record (every QEMU) across two QEMUs, the first exiting before the second starts."""
    rec = os.path.join(wd, "host.mftrec")
    err = os.path.join(wd, "record.err")
    r = subprocess.Popen([MFTRACE, "record", "-o", rec], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(err, "w"))
    a = b = None
    try:
        if not wait_text(err, "mftrace: ready", 30):
            raise RuntimeError(f"record not ready: {open(err).read()[-300:]}")
        a = qemu(wd, f"first{TOKEN}", "-object", f"secret,id=sec0,data={SECRET},format=raw",
                 "-iscsi", f"user=me,password={PASSWORD}")
        if not wait_text(err, f"tracing pid {a.pid} ", 15):
            raise RuntimeError(f"pid {a.pid} not traced: {open(err).read()[-500:]}")
        a.kill()
        a.wait()
        if not wait_text(err, f"pid {a.pid} exited", 10):
            raise RuntimeError("no exit seen")
        time.sleep(4)           # forgotten 3 s after its exit: its statuses are removed
        b = qemu(wd, f"second{TOKEN}", "-smbios", f"type=1,serial=http://alice:{PASSWORD}@127.0.0.1:1/x")
        if not wait_text(err, f"tracing pid {b.pid} ", 15):
            raise RuntimeError(f"pid {b.pid} not traced: {open(err).read()[-500:]}")
        time.sleep(1.5)         # the recorder writes new statuses at its next turn
    finally:
        for q in (a, b):
            if q and q.poll() is None:
                q.kill()
                q.wait()
        r.send_signal(signal.SIGINT)
        r.wait(300)   # stopping detaches the probes of every QEMU on the host: slow when it is busy
    data = open(rec, "rb").read()
    rep = run(["report", rec, "--format", "json", "-q"])
    recs = [json.loads(l) for l in rep.stdout.decode().splitlines() if l.startswith("{")]
    recording = next(x for x in recs if x["type"] == "recording")
    targets = {t["pid"]: t for t in recording["targets"]}
    probes = {(p["pid"], p["what"]) for p in recording["probes"]}
    record_err = open(err).read()

    def redacted():
        errs = []
        for s in (SECRET, PASSWORD):
            if s.encode() in data:
                errs.append(f"{s} is in the recording's bytes")
            if s in rep.stdout.decode():
                errs.append(f"{s} is in the report")
        ca = targets.get(a.pid, {}).get("cmdline", "")
        cb = targets.get(b.pid, {}).get("cmdline", "")
        if "data=<redacted>,format=raw" not in ca or "password=<redacted>" not in ca:
            errs.append(f"first QEMU's command line: {ca!r}")
        if f"http://alice:<redacted>@127.0.0.1:1/x" not in cb:
            errs.append(f"second QEMU's command line: {cb!r}")
        return "; ".join(errs) or None
    check("secrets: data=, password= and a URL's password are redacted in the recording and the report",
          redacted)

    def probes_after_exit():
        missing = [(pid, w) for pid in (a.pid, b.pid) for w in ("migrate_set_state", "multifd_recv_new_channel")
                   if (pid, w) not in probes]
        return f"no PROBE record for {missing}" if missing else None
    check("record: the attach points of a QEMU that starts after another exited are recorded", probes_after_exit)

    def limits_line():
        # wrapped to 80 columns: continuation lines start "mftrace:  "
        text = re.sub(r"\nmftrace:  ", "", record_err)
        m = re.search(r"mftrace: limits \(in use/capacity\): targets \d+/1024, attach_statuses \d+/\d+, "
                      r"socket_map \d+/32768, tls_session_map \d+/32768, call_maps \d+/32768, "
                      r"thread_map \d+/16384", text)
        return None if m else f"no limits line in: {record_err[-600:]!r}"
    check("limits: the end-of-run summary names every bounded table, in use and capacity", limits_line)
    return rec


# ------------------------------------------------------------------ names

class EvilMigration(qemumig.Migration):
    def argv(self, side, psk_dir):
        return super().argv(side, psk_dir) + ["-name", f"guest={EVIL}-{side},debug-threads=on"]


def names(wd: str) -> None:
    with EvilMigration("7.2-7.2", wd) as m:
        m.start()
        live = Tracer([m.dst_pid, m.src_pid], wd, "live", json_out=False).start()
        js = Tracer([m.dst_pid, m.src_pid], wd, "json", ["-q"]).start()
        rec = os.path.join(wd, "evil.mftrec")
        show = os.path.join(wd, "show.out")
        recorder = subprocess.Popen([MFTRACE, "record", "-p", str(m.dst_pid), "-o", rec, "--show"],
                                    stdin=subprocess.DEVNULL, stdout=open(show, "wb"),
                                    stderr=open(os.path.join(wd, "show.err"), "wb"))
        try:
            if not wait_text(os.path.join(wd, "show.err"), "mftrace: ready", 30):
                raise RuntimeError("record --show not ready")
            doctor = run(["doctor", "-p", str(m.dst_pid)])
            res = m.migrate()
            live.wait_migrations(2, timeout=30)
            js.wait_migrations(2, timeout=30)
            time.sleep(0.5)
        finally:
            live.stop()
            js.stop()
            recorder.send_signal(signal.SIGINT)
            recorder.wait(300)
    texts = {
        "live mode (events and tables)": open(live.out_path, "rb").read() + open(live.err_path, "rb").read(),
        "record --show": open(show, "rb").read(),
        "report (text)": run(["report", rec]).stdout + run(["report", rec]).stderr,
        "doctor -p": doctor.stdout + doctor.stderr,
    }

    def text_safe():
        errs = []
        if res.get("src_status") != "completed":
            errs.append(f"the migration did not complete: {res.get('src_status')}")
        for what, data in texts.items():
            bad = controls(data)
            if bad:
                errs.append(f"{what}: control characters {bad}")
            if f"{SAFE}-dst".encode() not in data:
                errs.append(f"{what}: the name does not show as {SAFE!r}-dst")
        return "; ".join(errs) or None
    check("names: text output (live, record --show, report, doctor) carries no control character of a "
          "VM's -name", text_safe)

    def json_exact():
        names = {r["name"] for r in js.records("migration")}
        want = {f"{EVIL}-src", f"{EVIL}-dst"}
        rep = [json.loads(l) for l in run(["report", rec, "-f", "json", "-q"]).stdout.decode().splitlines()]
        from_file = {r["name"] for r in rep if r["type"] == "migration"}
        if names != want or from_file != {f"{EVIL}-dst"}:
            return f"JSON names {names!r} live, {from_file!r} from the recording; want {want!r}"
        return None
    check("names: JSON (live, and report of a recording) keeps the name exactly, escaped", json_exact)


def main() -> int:
    if os.geteuid() != 0:
        report(None, "hardening", "needs root (eBPF)")
        return 0
    if not os.access(MFTRACE, os.X_OK):
        report(False, "hardening", f"{MFTRACE} not built")
        return 1
    wd = tempfile.mkdtemp(prefix="mft-hardening-")
    try:
        rec = secrets_and_probes(wd)
        output_files(wd, rec)
        names(os.path.join(wd, "names"))
    except Exception as e:
        report(False, "hardening", f"{type(e).__name__}: {e} [files in {wd}] "
               + traceback.format_exc(limit=4).replace("\n", " | "))
    if results["fail"]:
        print(f"# files kept in {wd}", flush=True)
    else:
        shutil.rmtree(wd, ignore_errors=True)
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
