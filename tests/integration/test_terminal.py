#!/usr/bin/env python3
"""Text output as a person meets it: a real terminal (tmux) at 80 and 120 columns.

A real 7.2 -> 7.2 TLS migration is traced twice at once: mftrace in text mode inside a
tmux window of the given width, and mftrace --json to a file. The window's screen is then
read back with capture-pane. Checked:
- no line the program wrote is wider than the terminal (capture-pane -J joins what the
  terminal wrapped, so a joined line longer than the width is a line that did not fit);
- the verdict table keeps what a person needs first at 80 columns (channel, id, kind,
  final read, margin, verdict) and adds peer, shutdown and woken-by at 120;
- each channel's verdict on the screen equals the JSON record's for the same channel;
- colour on a terminal, none with NO_COLOR, none when stdout is not a terminal; --wide
  prints every column.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import qemumig  # noqa: E402
from mftrace_run import MFTRACE, Tracer  # noqa: E402

failed = 0
ESC = "\x1b"
COMPACT = ["CH", "ID", "KIND", "FINAL-READ", "FIN->READ", "VERDICT"]
MEDIUM = ["PEER", "SHUTDOWN", "WOKEN-BY"]
WIDE_ONLY = ["LOCAL", "TLS", "SYNCS/LAST", "BYE", "FIN-IN", "CLOSE"]


def report(ok, name, why=""):
    global failed
    if ok:
        print(f"PASS {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}: {why}", flush=True)


def tmux(*args, check=True):
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=check)


def screen(session: str, escapes: bool = False) -> str:
    args = ["capture-pane", "-p", "-J", "-S", "-", "-t", session]
    if escapes:
        args.insert(1, "-e")
    return tmux(*args).stdout


def table_rows(text: str) -> tuple[list[str], dict[tuple[int, int], str]]:
    """(header columns, {(migration, channel index): verdict}) from the text tables."""
    header, verdicts, mig = [], {}, None
    for line in text.splitlines():
        m = re.match(r"== migration #(\d+):", line)
        if m:
            mig = int(m.group(1))
            continue
        if line.strip().startswith("CH "):
            header = line.split()
            continue
        m = re.match(r"\s+(\d+)\s+(\S+)\s+(main|multifd|unknown)\s+(.*)$", line)
        if m and mig is not None and header:
            # the verdict ends the row: a word or a possible set, and a premature's severity
            v = re.search(r"(\S+(?: \((?:tolerated|fatal|pending)\))?)\s*$", line)
            verdicts[(mig, int(m.group(1)))] = v.group(1) if v else ""
    return header, verdicts


def one_width(width: int) -> None:
    name = f"a {width}-column terminal"
    wd = tempfile.mkdtemp(prefix=f"mft-term{width}-")
    session = f"mft-term-{os.getpid()}-{width}"
    try:
        with qemumig.Migration("7.2-7.2", wd) as m:
            m.start()
            pids = f"-p {m.dst_pid} -p {m.src_pid}"
            done = os.path.join(wd, "done")
            cmd = f"env -u NO_COLOR {MFTRACE} {pids} -q; echo exit=$? > {done}; sleep 600"
            tmux("new-session", "-d", "-s", session, "-x", str(width), "-y", "60", cmd)
            truth = Tracer([m.dst_pid, m.src_pid], wd, "json", ["-q"]).start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "mftrace: ready" not in screen(session):
                time.sleep(0.1)
            res = m.migrate()
            truth.wait_migrations(2)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and screen(session).count("== migration #") < 2:
                time.sleep(0.1)
            truth.stop()
        if res.get("src_status") != "completed":
            raise AssertionError(f"the migration did not complete: {res.get('src_status')}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not os.path.exists(done):
            time.sleep(0.1)  # mftrace ends once both QEMUs are gone
        text, colour = screen(session), screen(session, escapes=True)
        long = [line for line in text.splitlines() if len(line) > width]
        report(not long, f"{name}: every line fits", f"{len(long)} wider lines, e.g. {long[:2]}")
        header, shown = table_rows(text)
        want = COMPACT + (MEDIUM if width >= 120 else [])
        missing = [c for c in want if c not in header]
        extra = [c for c in header if c not in want]
        report(not missing and not extra, f"{name}: the verdict table's columns",
               f"header {header}, missing {missing}, unexpected {extra}")
        chans = {(r["pid"], r["channel"]): r for r in truth.records("channel")}
        migs = {r["migration"]: r["pid"] for r in truth.records("migration")}
        errs = []
        for (mig, idx), verdict in shown.items():
            # live text and the JSON run number migrations apart: match by pid
            pid_line = re.search(rf"== migration #{mig}: pid (\d+)", text)
            rec = chans.get((int(pid_line.group(1)), idx)) if pid_line else None
            if not rec:
                errs.append(f"#{mig} ch {idx}: no JSON record")
                continue
            word = verdict.split(" (")[0]
            if word != rec["verdict"]:
                errs.append(f"pid {rec['pid']} ch {idx}: screen {verdict!r}, json {rec['verdict']!r}")
        report(len(shown) >= 8 and len(migs) == 2 and not errs, f"{name}: verdicts equal the JSON run's",
               f"{len(shown)} rows on screen; {errs}")
        report(ESC + "[" in colour, f"{name}: verdicts in colour on a terminal", "no escape sequence on screen")
    except Exception as e:
        report(False, name, f"{type(e).__name__}: {e} [files in {wd}] "
                            + traceback.format_exc(limit=3).replace("\n", " | "))
    finally:
        tmux("kill-session", "-t", session, check=False)
    if not failed:
        shutil.rmtree(wd, ignore_errors=True)


def not_a_terminal() -> None:
    """Piped output: no colour, 80 columns unless $COLUMNS says otherwise; --wide: all."""
    wd = tempfile.mkdtemp(prefix="mft-term-pipe-")
    try:
        with qemumig.Migration("7.2-7.2", wd, tls=False) as m:
            m.start()
            narrow = Tracer([m.dst_pid], wd, "narrow", ["-q"], json_out=False).start()
            wide = Tracer([m.dst_pid], wd, "wide", ["-q", "--wide"], json_out=False).start()
            m.migrate()
            for t in (narrow, wide):
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and "== migration #" not in t.stdout():
                    time.sleep(0.1)
                t.stop()
        n_out, w_out = narrow.stdout(), wide.stdout()
        report(ESC not in n_out and ESC not in w_out, "piped output has no colour", repr(n_out[:300]))
        n_head, _ = table_rows(n_out)
        w_head, w_rows = table_rows(w_out)
        report(n_head == COMPACT and max(map(len, n_out.splitlines())) <= 80,
               "piped output fits 80 columns by default", f"header {n_head}")
        report(all(c in w_head for c in COMPACT + MEDIUM + WIDE_ONLY) and w_rows,
               "--wide shows every column", f"header {w_head}")
    except Exception as e:
        report(False, "piped output", f"{type(e).__name__}: {e} [files in {wd}] "
                                      + traceback.format_exc(limit=3).replace("\n", " | "))
        return
    shutil.rmtree(wd, ignore_errors=True)


def no_color_env() -> None:
    """NO_COLOR on a terminal: a real migration's table without escape sequences."""
    wd = tempfile.mkdtemp(prefix="mft-term-nocolor-")
    session = f"mft-term-nc-{os.getpid()}"
    try:
        with qemumig.Migration("7.2-7.2", wd) as m:
            m.start()
            tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "60",
                 f"env NO_COLOR=1 {MFTRACE} -p {m.dst_pid} -q; sleep 600")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "mftrace: ready" not in screen(session):
                time.sleep(0.1)
            m.migrate()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "== migration #" not in screen(session):
                time.sleep(0.1)
        text = screen(session, escapes=True)
        report("== migration #" in text and ESC + "[1;31m" not in text and ESC + "[32m" not in text,
               "NO_COLOR on a terminal: no colour", repr(text[-400:]))
    except Exception as e:
        report(False, "NO_COLOR", f"{type(e).__name__}: {e} [files in {wd}]")
    finally:
        tmux("kill-session", "-t", session, check=False)
    shutil.rmtree(wd, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        print("SKIP terminal: needs root (eBPF)")
        return 0
    if not shutil.which("tmux"):
        print("SKIP terminal: tmux is not installed (scripts/setup.sh installs it)")
        return 0
    one_width(80)
    one_width(120)
    not_a_terminal()
    no_color_env()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
