#!/usr/bin/env python3
"""Post-mortem on real TLS multifd migrations (QEMU 7.2 and 10.0.2, loopback):

  - `mftrace record` beside live `mftrace --json -q` on the same migration: the report of
    the recording gives the verdicts live mode printed (a separate session: verdicts exact,
    times within 1 ms), and `record --show` prints byte for byte what `report` prints;
  - the source and the destination recorded by two record processes, merged by `report`:
    the verdicts equal live's, every channel's shutdown -> FIN -> final read is in causal
    order, and with the destination's realtime clock falsified by 3 s the causality bounds
    still contain the true offset and the order still holds;
  - a flight recorder (--max-size), a recorder killed with SIGKILL, every QEMU on the host;
  - Chrome Trace Event JSON: parses, a track per channel end, a flow per final read;
  - the HTML in headless Chromium (--dump-dom, --screenshot): every lane and verdict, a
    screenshot, and no network request beyond what Chromium makes for about:blank;
  - bad files through the CLI; the reader's libFuzzer target for a few seconds.

Honours MFTRACE (default build/mftrace). Needs root (eBPF) and QEMU 10.0.2 for the strict run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import qemumig  # noqa: E402
from mftrace_run import MFTRACE, ROOT, Tracer  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  # Chromium's own background requests (update checks, network time, accounts)
                  # still start: keep them on this host, where nothing answers
                  "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9"]
TIME_TOL_NS = 1_000_000  # two sessions stamp the same kernel event separately

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


def check(name: str, errs: list[str], wd: str | None = None) -> bool:
    report(not errs, name, "; ".join(errs[:6]) + (f" (+{len(errs) - 6} more)" if len(errs) > 6 else "")
           + (f" [files in {wd}]" if wd and errs else ""))
    return not errs


# ------------------------------------------------------------------ running mftrace

class Recorder:
    """`mftrace record ...` in the background; stdout/stderr to files."""

    def __init__(self, wd: str, name: str, args: list[str]):
        self.name, self.wd = name, wd
        self.path = os.path.join(wd, f"{name}.mftrec")
        self.out = os.path.join(wd, f"{name}.record.out")
        self.err = os.path.join(wd, f"{name}.record.err")
        self.proc = subprocess.Popen([MFTRACE, "record", "-o", self.path] + args, stdin=subprocess.DEVNULL,
                                     stdout=open(self.out, "w"), stderr=open(self.err, "w"))

    def stderr(self) -> str:
        with open(self.err) as f:
            return f.read()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "mftrace: ready" in self.stderr():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"record {self.name} exited {self.proc.returncode}: {self.stderr().strip()}")
            time.sleep(0.05)
        raise RuntimeError(f"record {self.name} not ready: {self.stderr().strip()}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def mftrace_report(files: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MFTRACE, "report", *files, *args], capture_output=True, text=True, timeout=60)


def json_records(text: str, rtype: str | None = None) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            if rtype is None or r.get("type") == rtype:
                out.append(r)
    return out


def chan_key(r: dict) -> tuple:
    return (r["pid"], r["role"], r["local_port"], r["peer_port"])


VERDICT_FIELDS = ("kind", "channel", "tls", "verdict", "possible", "decided", "severity", "woken_by", "rx_bytes",
                  "tx_bytes", "reads")
MIG_FIELDS = ("role", "endpoint", "outcome", "verdict", "possible", "severity", "flagged", "survived_by_luck",
              "multifd_channels", "undecided", "counts")


def near(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TIME_TOL_NS


PEER_MARGINS = ("peer_shutdown_to_final_read",)  # known only when the other end is in the same report


def compare(live: list[dict], got: list[dict], pids: set[int] | None = None, one_end: bool = False) -> list[str]:
    """Channel and migration records of a report against live mode's, for these pids. one_end:
    the report holds one end of connections that live traced at both."""
    errs = []
    want = {chan_key(r): r for r in live if r["type"] == "channel" and (pids is None or r["pid"] in pids)}
    have = {chan_key(r): r for r in got if r["type"] == "channel" and (pids is None or r["pid"] in pids)}
    if set(want) != set(have):
        errs.append(f"channels differ: live only {sorted(set(want) - set(have))}, report only "
                    f"{sorted(set(have) - set(want))}")
    # A channel's number is its place in creation order, as its tracer timed it. Two
    # tracers time the same connect() apart by up to TIME_TOL_NS (as every time below), so
    # two channels created closer than that may be numbered in either order.
    created = {(r["pid"], r["migration"], r["channel"]): r["times"]["created"]
               for r in got if r["type"] == "channel"}

    def swapped_in_a_tie(a: dict, b: dict) -> bool:
        other = created.get((b["pid"], b["migration"], a["channel"]))
        return other is not None and near(other, b["times"]["created"])

    for k in sorted(set(want) & set(have)):
        a, b = want[k], have[k]
        for f in VERDICT_FIELDS:
            if f == "channel" and a.get(f) != b.get(f) and swapped_in_a_tie(a, b):
                continue
            if a.get(f) != b.get(f):
                errs.append(f"{k} {f}: live {a.get(f)!r}, report {b.get(f)!r}")
        fa, fb = a.get("final_read"), b.get("final_read")
        if (fa is None) != (fb is None) or (fa and (fa["ret"] != fb["ret"] or fa["tid"] != fb["tid"]
                                                    or not near(fa["time_ns"], fb["time_ns"]))):
            errs.append(f"{k} final_read: live {fa}, report {fb}")
        for t, v in a["times"].items():
            if not near(v, b["times"].get(t)):
                errs.append(f"{k} times.{t}: live {v}, report {b['times'].get(t)}")
        for m, v in a["margins_ns"].items():
            if one_end and m in PEER_MARGINS:
                continue
            if not near(v, b["margins_ns"].get(m)):
                errs.append(f"{k} margins.{m}: live {v}, report {b['margins_ns'].get(m)}")
    wm = {(r["pid"], r["endpoint"]): r for r in live if r["type"] == "migration" and (pids is None or r["pid"] in pids)}
    hm = {(r["pid"], r["endpoint"]): r for r in got if r["type"] == "migration" and (pids is None or r["pid"] in pids)}
    if set(wm) != set(hm):
        errs.append(f"migrations differ: live {sorted(wm)}, report {sorted(hm)}")
    for k in set(wm) & set(hm):
        for f in MIG_FIELDS:
            if wm[k].get(f) != hm[k].get(f):
                errs.append(f"migration {k} {f}: live {wm[k].get(f)!r}, report {hm[k].get(f)!r}")
    return errs


def causal_order(recs: list[dict], strict: bool = True) -> list[str]:
    """Per connection traced at both ends: source shutdown -> FIN at the destination -> its final read."""
    errs, n = [], 0
    chans = [r for r in recs if r["type"] == "channel"]
    for d in chans:
        if d["role"] != "destination" or d["kind"] != "multifd":
            continue
        src = [s for s in chans if s["role"] == "source" and s["local_port"] == d["peer_port"]
               and s["peer_port"] == d["local_port"]]
        if not src:
            errs.append(f"dst {d['local_port']}<-{d['peer_port']}: no source record")
            continue
        s, n = src[0], n + 1
        sh, fin = s["times"]["shutdown"], d["times"]["fin_received"]
        if sh is None or fin is None:
            errs.append(f"channel {d['channel']}: shutdown {sh}, fin_received {fin}")
            continue
        if not (sh < fin if strict else sh <= fin):
            errs.append(f"channel {d['channel']}: source shutdown {sh} not before destination FIN {fin} "
                        f"({(fin - sh) / 1e3:.1f} us)")
        fr = d["final_read"]
        if fr and d["woken_by"] == "peer-fin" and not fin <= fr["time_ns"]:
            errs.append(f"channel {d['channel']}: final read {fr['time_ns']} before the FIN {fin}")
    if not n:
        errs.append("no connection traced at both ends")
    return errs


# ------------------------------------------------------------------ the recording format, independently

def rewrite_clock(src: str, dst: str, skew_ns: int, boot_id: str) -> None:
    """Copy a plain recording with its CLOCK_REALTIME snapshots moved by skew_ns and another boot
    id: a host whose clock was wrong. Follows docs/recording-format.md, not the C reader."""
    b = open(src, "rb").read()
    if b[:8] != b"\x89MFT\r\n\x1a\n":
        raise ValueError("not a recording")
    out, pos, seq = bytearray(b[:64]), 64, 0
    while pos + 16 <= len(b):
        sync, typ, flags, ln, _crc = struct.unpack_from("<4sHHII", b, pos)
        if sync != b"MFR\xa5" or pos + 16 + ln > len(b):
            break
        p = b[pos + 16:pos + 16 + ln]
        pos += 16 + ln
        if typ == 1:                                   # SEGMENT
            seq = struct.unpack_from("<Q", p)[0]
        elif typ == 3:                                 # CLOCK
            mono, real, err = struct.unpack_from("<QqQ", p)
            p = struct.pack("<QqQ", mono, real + skew_ns, err) + p[24:]
        elif typ == 2:                                 # HOST: tag 4 is the boot id
            q, i = bytearray(), 0
            while i + 4 <= len(p):
                tag, n = struct.unpack_from("<HH", p, i)
                v = boot_id.encode() if tag == 4 else p[i + 4:i + 4 + n]
                q += struct.pack("<HH", tag, len(v)) + v
                i += 4 + n
            p = bytes(q)
        hdr = struct.pack("<HHI", typ, flags, len(p))
        out += b"MFR\xa5" + hdr + struct.pack("<I", zlib.crc32(struct.pack("<Q", seq) + hdr + p)) + p
    with open(dst, "wb") as f:
        f.write(out)


# ------------------------------------------------------------------ renderers

def check_chrome(path: str, recs: list[dict]) -> list[str]:
    errs = []
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        return [f"does not parse: {e}"]
    ev = doc.get("traceEvents", [])
    tracks = {}
    for e in ev:
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e["tid"] % 1000:
            tracks[(e["pid"], e["tid"])] = e["args"]["name"]
    chans = [r for r in recs if r["type"] == "channel"]
    if len(tracks) != len(chans):
        errs.append(f"{len(tracks)} channel tracks for {len(chans)} channel records")
    for r in chans:
        label = f"#{r['migration']}.{r['channel']} "
        if not any(pid == r["pid"] and name.startswith(label) and r["verdict"] in name
                   for (pid, _), name in tracks.items()):
            errs.append(f"no track {label} ({r['verdict']}) in pid {r['pid']}")
    starts = {e["id"]: e for e in ev if e.get("ph") == "s"}
    ends = {e["id"]: e for e in ev if e.get("ph") == "f"}
    if set(starts) != set(ends):
        errs.append(f"unpaired flows: {set(starts) ^ set(ends)}")
    by_port = {(r["role"], r["local_port"]): r for r in chans}
    want = 0
    for d in chans:
        s = by_port.get(("source", d["peer_port"]))
        if d["role"] == "destination" and d["final_read"] and s and s["times"]["shutdown"]:
            want += 1
    if len(starts) != want:
        errs.append(f"{len(starts)} flows, expected {want} (destination final reads with a traced source)")
    slices = {(e["pid"], e["tid"], e["ts"], e.get("cat")): e["name"] for e in ev if e.get("ph") == "X"}
    for i, s in starts.items():
        f = ends.get(i)
        if not f:
            continue
        if f.get("bp") != "e" or " -> " not in tracks.get((s["pid"], s["tid"]), "") or \
                " <- " not in tracks.get((f["pid"], f["tid"]), ""):
            errs.append(f"flow {i} does not go from a source track to a destination track: {s} {f}")
        # each end sits on a slice of its category, pid, tid and time (how viewers bind flows)
        if slices.get((s["pid"], s["tid"], s["ts"], s["cat"])) != "shutdown":
            errs.append(f"flow {i} starts on no shutdown slice")
        if not (slices.get((f["pid"], f["tid"], f["ts"], f["cat"])) or "").startswith("final read"):
            errs.append(f"flow {i} ends on no final-read slice")
    return errs


def chromium(args: list[str], wd: str, tag: str, timeout: float = 90.0) -> tuple[subprocess.CompletedProcess, set]:
    """Chromium headless with a fresh profile; the URLs it requested (from its net log)."""
    netlog = os.path.join(wd, f"{tag}.netlog.json")
    cp = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={os.path.join(wd, tag + '.profile')}",
                         f"--log-net-log={netlog}", *args], capture_output=True, timeout=timeout)
    urls = set()
    try:
        with open(netlog, errors="replace") as f:
            urls = {u.split("?")[0] for u in re.findall(r'"url":"([^"]*)"', f.read())}
    except OSError:
        pass
    return cp, urls


def check_html(path: str, recs: list[dict], wd: str) -> list[str]:
    errs = []
    html = open(path).read()
    for bad in ("<script", "<link", "@import", "src=", "http://", "https://"):
        if bad in html:
            errs.append(f"the page contains {bad!r}")
    if re.search(r"url\((?!#)", html):
        errs.append("the page references a url() outside itself")
    _, base = chromium(["--dump-dom", "about:blank"], wd, "blank")
    cp, urls = chromium(["--dump-dom", "file://" + path], wd, "dom")
    dom = cp.stdout.decode(errors="replace")
    extra = {u for u in urls - base if not u.startswith("file://")}
    if extra:
        errs.append(f"loading the page requested {sorted(extra)}")
    lanes = re.findall(r'<g class="lane[^"]*" ([^>]*)>', dom)
    attrs = [dict(re.findall(r'data-([a-z-]+)="([^"]*)"', a)) for a in lanes]
    chans = [r for r in recs if r["type"] == "channel"]
    if len(attrs) != len(chans):
        errs.append(f"{len(attrs)} lanes in the rendered DOM for {len(chans)} channels")
    for r in chans:
        want = r["verdict"] if r["decided"] else "undecided"
        if not any(a.get("pid") == str(r["pid"]) and a.get("channel") == str(r["channel"])
                   and a.get("role") == r["role"] and a.get("verdict") == want for a in attrs):
            errs.append(f"no lane pid {r['pid']} #{r['migration']}.{r['channel']} {r['role']} {want}")
    for r in json_records_of(recs, "migration"):
        if f'data-migration="{r["migration"]}"' not in dom:
            errs.append(f"migration #{r['migration']} missing")
    if any(r["verdict"] == "premature" for r in chans if r["role"] == "destination") and \
            'class="race-window"' not in dom:
        errs.append("a premature channel but no race marked")
    png = os.path.join(wd, "report.png")
    cp, _ = chromium(["--window-size=1280,1600", f"--screenshot={png}", "file://" + path], wd, "shot")
    if not os.path.exists(png) or os.path.getsize(png) < 10000:
        errs.append(f"no screenshot: {cp.stderr.decode(errors='replace')[-300:]}")
    else:
        with open(png, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                errs.append("the screenshot is not a PNG")
    return errs


def json_records_of(recs: list[dict], rtype: str) -> list[dict]:
    return [r for r in recs if r["type"] == rtype]


# ------------------------------------------------------------------ scenarios

def scenario_72(wd: str) -> None:
    """7.2 -> 7.2: live, a joined recording with --show, source and destination recorded
    separately (the destination as a flight recorder)."""
    name = "7.2-7.2"
    with qemumig.Migration(name, wd) as m:
        m.start()
        pids = ["-p", str(m.dst_pid), "-p", str(m.src_pid)]
        live = Tracer([m.dst_pid, m.src_pid], wd, "live", ["-q"])
        recs = [Recorder(wd, "both", pids + ["--show", "-j", "-q"]),
                Recorder(wd, "src", ["-p", str(m.src_pid)]),
                Recorder(wd, "dst", ["-p", str(m.dst_pid), "--max-size", "1M"])]
        try:
            live.start()
            for r in recs:
                r.wait_ready()
            m.migrate()
            if not live.wait_migrations(2):
                raise RuntimeError(f"live printed {len(live.records('migration'))} migrations")
            time.sleep(0.5)
        finally:
            live.stop()
            codes = [r.stop() for r in recs]
    if codes != [0, 0, 0]:
        report(False, f"{name} record", f"exit codes {codes}: " + " | ".join(r.stderr()[-200:] for r in recs))
        return
    both, src, dst = (r.path for r in recs)
    live_recs = live.records()
    truth = ",".join(sorted(r["verdict"] for r in live_recs if r["type"] == "channel"
                            and r["role"] == "destination" and r["kind"] == "multifd"))

    rep = mftrace_report([both], "--format", "json", "-q")
    shown = [l for l in open(recs[0].out).read().splitlines() if l.startswith("{")]
    got = [l for l in rep.stdout.splitlines() if l.startswith("{") and '"type":"recording"' not in l]
    check(f"{name} report of a recording prints what record --show printed live (byte for byte)",
          [] if got == shown and got else [f"{len(got)} lines vs {len(shown)} shown; first difference: "
                                           f"{next((a, b) for a, b in zip(got + [''], shown + ['']) if a != b)}"],
          wd)
    errs = compare(live_recs, json_records(rep.stdout))
    recording = json_records(rep.stdout, "recording")[0]
    if not recording["clean_end"] or any(recording["lost"].values()):
        errs.append(f"recording: clean_end {recording['clean_end']}, lost {recording['lost']}")
    errs += header_errors(recording, {m.src_pid: "7.2", m.dst_pid: "7.2"}, m.dst_pid)
    check(f"{name} report equals live mode's verdicts and timings [{truth}]", errs, wd)

    rep = mftrace_report([dst], "--format", "json", "-q")
    recording = json_records(rep.stdout, "recording")[0]
    errs = compare(live_recs, json_records(rep.stdout), {m.dst_pid}, one_end=True)
    if not recording["flight_recorder"]:
        errs.append("not a flight recorder file")
    check(f"{name} flight recorder (--max-size 1M) of the destination equals live", errs, wd)

    merged_checks(name, wd, src, dst, live_recs, m)
    # one more format: text, for people
    txt = mftrace_report([src, dst], "-q")
    errs = [] if txt.returncode in (0, 2) and "== migration #" in txt.stdout and "clock:" in txt.stdout \
        else [f"exit {txt.returncode}: {txt.stderr[-300:]}"]
    check(f"{name} text report", errs, wd)
    renderers(name, wd, [src, dst])


def header_errors(rec: dict, versions: dict, dst_pid: int) -> list[str]:
    """What the recording says about the host, the targets and the probes."""
    errs = []
    targets = {t["pid"]: t for t in rec["targets"]}
    for pid, ver in versions.items():
        t = targets.get(pid)
        if not t or not t["qemu_version"].startswith(ver) or not t["gnutls_version"] or \
                "qemu-system-x86_64" not in t["cmdline"] or (("-incoming" in t["cmdline"]) != (pid == dst_pid)):
            errs.append(f"target {pid}: {t}")
    # each by whichever mechanism of its chain this host gave (tp_btf/raw_tp/tracepoint,
    # uprobe_multi/uprobe)
    alias = {"uprobe_multi": "uprobe", "tp_btf": "tracepoint", "raw_tp": "tracepoint"}
    probes = {(p["pid"], p["what"], alias.get(p["mechanism"], p["mechanism"])): p["attached"]
              for p in rec["probes"]}
    for want in [(0, "shutdown", "tracepoint"), (0, "recv results", "tracepoint")] + \
            [(pid, "gnutls_handshake", "uprobe") for pid in versions]:
        if not probes.get(want):
            errs.append(f"probe {want} not recorded as attached")
    if not rec["host"] or not rec["kernel"] or len(rec["boot_id"]) != 36:
        errs.append(f"host {rec['host']!r}, kernel {rec['kernel']!r}, boot id {rec['boot_id']!r}")
    return errs


def merged_checks(name: str, wd: str, src: str, dst: str, live_recs: list[dict], m) -> None:
    rep = mftrace_report([src, dst], "--format", "json", "-q")
    recs = json_records(rep.stdout)
    clocks = {r["file"]: r["clock"] for r in json_records(rep.stdout, "recording")}
    errs = compare(live_recs, recs) + causal_order(recs)
    c = clocks.get(dst, {})
    if c.get("method") != "same-clock" or "VIOLATED" in c.get("text", ""):
        errs.append(f"clock: {c}")
    if c.get("bound_lo_ns") is None or not c["bound_lo_ns"] <= 0 <= (c.get("bound_hi_ns") or 1 << 62):
        errs.append(f"the causality bounds exclude the true offset 0: {c}")
    check(f"{name} source and destination recorded apart, merged: verdicts equal live, causal order "
          f"({c.get('connections')} connections, bounds [{c.get('bound_lo_ns')}, {c.get('bound_hi_ns')}] ns)", errs, wd)

    skewed = os.path.join(wd, "dst-skewed.mftrec")
    rewrite_clock(dst, skewed, 3_000_000_000, "11111111-2222-3333-4444-555555555555")
    rep = mftrace_report([src, skewed], "--format", "json", "-q")
    recs = json_records(rep.stdout)
    c = {r["file"]: r["clock"] for r in json_records(rep.stdout, "recording")}.get(skewed, {})
    errs = compare(live_recs, recs) + causal_order(recs, strict=False)
    lo, hi = c.get("bound_lo_ns"), c.get("bound_hi_ns")
    if c.get("method") != "causality" or lo is None or not lo <= 0 <= (hi if hi is not None else 1 << 62):
        errs.append(f"clock: {c}")
    elif hi is not None and abs(c["offset_ns"]) > (hi - lo) / 2 + 1:
        errs.append(f"offset {c['offset_ns']} ns is further from the truth (0) than its stated uncertainty")
    check(f"{name} destination clock falsified by +3 s: causality finds the offset "
          f"({c.get('offset_ns')} ns, truth 0, window [{lo}, {hi}]) and the verdicts stand", errs, wd)


def renderers(name: str, wd: str, files: list[str]) -> None:
    js = json_records(mftrace_report(files, "--format", "json", "-q").stdout)
    chrome = os.path.join(wd, "report.trace.json")
    rep = mftrace_report(files, "--format", "chrome", "-o", chrome)
    errs = [f"exit {rep.returncode}: {rep.stderr[-200:]}"] if rep.returncode not in (0, 2) else []
    check(f"{name} Chrome Trace Event JSON: tracks and flows", errs + check_chrome(chrome, js), wd)
    html = os.path.join(wd, "report.html")
    rep = mftrace_report(files, "--format", "html", "-o", html)
    if not os.path.exists(CHROMIUM):
        report(None, f"{name} HTML in headless Chromium", "chromium not installed")
        return
    errs = [f"exit {rep.returncode}: {rep.stderr[-200:]}"] if rep.returncode not in (0, 2) else []
    check(f"{name} HTML in headless Chromium: every lane and verdict, a screenshot, no network",
          errs + check_html(html, js, wd), wd)


def scenario_strict(wd: str) -> None:
    """7.2 -> 10.0 strict (the destination fails): source and destination recorded apart,
    and a recorder of every QEMU on the host, killed with SIGKILL."""
    name = "7.2-10.0-strict"
    with qemumig.Migration(name, wd) as m:
        m.start()
        live = Tracer([m.dst_pid, m.src_pid], wd, "live", ["-q"])
        recs = [Recorder(wd, "src", ["-p", str(m.src_pid)]),
                Recorder(wd, "dst", ["-p", str(m.dst_pid)]),
                Recorder(wd, "all", [])]
        try:
            live.start()
            for r in recs:
                r.wait_ready()
            all_err = recs[2].stderr()
            for p in (m.src_pid, m.dst_pid):
                if f"tracing pid {p} " not in all_err:
                    raise RuntimeError(f"the every-QEMU recorder does not trace pid {p}: {all_err[-300:]}")
            res = m.migrate()
            if not live.wait_migrations(2):
                raise RuntimeError(f"live printed {len(live.records('migration'))} migrations")
            time.sleep(0.5)
        finally:
            live.stop()
            killed = recs[2].stop(signal.SIGKILL)
            codes = [r.stop() for r in recs[:2]]
    if codes != [0, 0] or killed != -signal.SIGKILL:
        report(False, f"{name} record", f"exit codes {codes}, killed {killed}")
        return
    live_recs = live.records()
    truth = ",".join(sorted(r["verdict"] for r in live_recs if r["type"] == "channel"
                            and r["role"] == "destination" and r["kind"] == "multifd"))
    src, dst, allq = (r.path for r in recs)
    rep = mftrace_report([allq], "--format", "json", "-q")
    recording = json_records(rep.stdout, "recording")[0]
    errs = compare(live_recs, json_records(rep.stdout), {m.src_pid, m.dst_pid})
    errs += header_errors(recording, {m.src_pid: "7.2", m.dst_pid: "10.0"}, m.dst_pid)
    if recording["clean_end"] or "no trailer" not in recording["stopped"] or "no trailer" not in rep.stderr:
        errs.append(f"a killed recorder's file: clean_end {recording['clean_end']}, {recording['stopped']!r}")
    check(f"{name} recorder of every QEMU, killed with SIGKILL: read to its last record, equals live "
          f"[{truth}; destination exit {res.get('dst_exit_code')}]", errs, wd)
    merged_checks(name, wd, src, dst, live_recs, m)
    renderers(name, wd, [src, dst])


def bad_files(wd: str, good: str) -> None:
    """The CLI on damaged files: one clear line each, and what could be read."""
    errs = []
    data = open(good, "rb").read()
    full = json_records(mftrace_report([good], "-f", "json", "-q").stdout, "recording")[0]["events"]
    cases = {
        "magic": b"GIF89a" + data[6:],
        "newer": None,
        "cut": data[:len(data) * 2 // 3],
        "corrupt": data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xff]) + data[len(data) // 2 + 1:],
        "empty": b"",
    }
    pre = bytearray(data[:64])
    pre[8:10] = struct.pack("<H", 9)
    pre[60:64] = struct.pack("<I", zlib.crc32(bytes(pre[:60])))
    cases["newer"] = bytes(pre) + data[64:]
    for tag, blob in cases.items():
        p = os.path.join(wd, f"bad-{tag}.mftrec")
        with open(p, "wb") as f:
            f.write(blob)
        r = mftrace_report([p], "-f", "json", "-q")
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        if "Traceback" in r.stderr or r.returncode < 0:
            errs.append(f"{tag}: crashed ({r.returncode})")
            continue
        if tag in ("magic", "newer", "empty"):
            want = {"magic": "not an mftrace recording", "newer": "newer than this mftrace", "empty": "wrong magic"}
            if r.returncode != 1 or len(lines) != 2 or want[tag] not in lines[0]:
                errs.append(f"{tag}: exit {r.returncode}, stderr {lines}")
            continue
        recs = json_records(r.stdout, "recording")
        if r.returncode not in (0, 2) or not recs:
            errs.append(f"{tag}: exit {r.returncode}, {r.stderr[-200:]}")
            continue
        n = recs[0]["events"]
        if tag == "cut" and not (0 < n < full and "cut short" in r.stderr):
            errs.append(f"cut: {n} of {full} events, stderr {lines}")
        if tag == "corrupt" and not (n >= full - 1 and "damaged" in r.stderr and recs[0]["lost"]["damaged_records"]):
            errs.append(f"corrupt: {n} of {full} events, stderr {lines}")
    # without -o the recording is mftrace.data in the current folder (test_flight_recorder.py
    # records one); a bad target is refused before anything is created
    r = subprocess.run([MFTRACE, "record", "-p", "1"], capture_output=True, text=True, cwd=wd)
    if (r.returncode != 1 or len(r.stderr.strip().splitlines()) != 1 or
            os.path.exists(os.path.join(wd, "mftrace.data"))):
        errs.append(f"record -p 1 without -o: {r.returncode} {r.stderr!r}, mftrace.data created: "
                    f"{os.path.exists(os.path.join(wd, 'mftrace.data'))}")
    r = subprocess.run([MFTRACE, "record", "-o", os.path.join(wd, "x"), "--max-size", "10K"], capture_output=True,
                       text=True)
    if r.returncode != 1 or "at least 512K" not in r.stderr:
        errs.append(f"--max-size 10K: {r.returncode} {r.stderr!r}")
    check("report on bad files: one line each, what could be read, no crash", errs, wd)


def main() -> int:
    if os.geteuid() != 0:
        report(None, "record", "needs root (eBPF)")
        return 0
    if not os.access(MFTRACE, os.X_OK):
        report(False, "record", f"{MFTRACE} not built")
        return 1
    have10 = os.path.exists(os.path.join(qemumig.qemu10_prefix(), "usr/bin/qemu-system-x86_64"))
    for name, fn, needs10 in (("7.2-7.2", scenario_72, False), ("7.2-10.0-strict", scenario_strict, True)):
        if needs10 and not have10:
            report(None, name, "QEMU 10.0.2 not installed (run scripts/setup.sh)")
            continue
        wd = tempfile.mkdtemp(prefix=f"mft-record-{name}-")
        before = results["fail"]
        try:
            fn(wd)
            if name == "7.2-7.2":
                bad_files(wd, os.path.join(wd, "src.mftrec"))
        except Exception as e:  # a harness failure is a test failure, with its reason
            report(False, name, f"{type(e).__name__}: {e} [files in {wd}] "
                   + traceback.format_exc(limit=3).replace("\n", " | "))
        if results["fail"] == before:
            shutil.rmtree(wd, ignore_errors=True)
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
