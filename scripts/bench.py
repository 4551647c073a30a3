#!/usr/bin/env python3
"""What mftrace costs, measured side by side in one run; prints markdown table rows.

1. Migration time. Each round migrates the same guest (default: 512 MiB of random
   bytes, so every page crosses the wire; TLS-PSK, 4 multifd channels, QEMU 7.2 -> 7.2)
   once per variant, in an order that rotates between rounds:

     none         no tracing
     mftrace-dst  mftrace -p DST (default mode, one end)
     mftrace      mftrace -p DST -p SRC (default mode, both ends)
     tls-records  mftrace -p DST -p SRC --tls-records (every gnutls_record_recv result,
                  probed on the function's tail jump, which the kernel emulates)
     tls-entry    the same with --tls-records=entry (probed on the function's first
                  instruction, as any uprobe tool does: a trap and a single step)
     bpftrace     a bpftrace one-liner with uprobe+uretprobe on gnutls_record_recv in both
                  QEMUs: what people reach for today

   The migration time is QEMU's own `total-time` from query-migrate on the source.
   max-bandwidth is lifted (--bandwidth): QEMU's default of 128 MiB/s holds a 512 MiB
   migration at about 4 s whatever probes slow it down.
   With kernel.bpf_stats_enabled on, the run time and run count of each of mftrace's
   BPF programs are summed over the `mftrace` (both ends) runs: ns per run per program.
   How long mftrace takes to exit (SIGINT to exit: mostly detaching its uprobes) is
   measured on every traced run.

2. Ping-pong: build/tools/pingpong (64-byte round trips over loopback TCP, an unrelated
   process) with and without mftrace tracing one idle QEMU, interleaved rounds. Its BPF
   programs then run only for non-targets: ns per run per program there is the tax every
   other process on the host pays. Each round also runs the ping-pong with a reference
   pair of programs alone on the socket tracepoints (build/tools/bpffloor: an empty
   program, one clock read, one hash lookup that misses): what bpf_stats reports for
   nothing on this machine, against which mftrace's figures read.

3. If scripts/bench-report.py exists (report speed and recording size), its markdown
   table rows are included verbatim: it is run as `bench-report.py --mftrace PATH`.

Medians of interleaved rounds, ratios to the untraced; these 2-core machines are noisy,
so only the ratios of one run mean anything. Timing is never a pass/fail test.

usage: sudo scripts/bench.py [--rounds N] [--mem MIB] [--pingpong-rounds N]
       [--pingpong-secs S] [--mftrace PATH] [--only migration,pingpong,report]
       [--variants a,b] [--scenario S]
"""

import argparse
import json
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
VARIANTS = "none,mftrace-dst,mftrace,tls-records,tls-entry,bpftrace"
TRACED_ARGS = {"mftrace-dst": ["-q"], "mftrace": ["-q"], "tls-records": ["-q", "--tls-records"],
               "tls-entry": ["-q", "--tls-records=entry"]}


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


def stop_bpftrace(p):
    """SIGINT, as a user would; bpftrace has been seen to miss it (asleep in epoll_wait
    with its handler installed), so SIGTERM, then SIGKILL, each after 15 s."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        p.send_signal(sig)
        try:
            p.wait(15)
            return
        except subprocess.TimeoutExpired:
            print(f"bench: bpftrace ignored signal {sig.name}", file=sys.stderr)


def prog_table(owner=None):
    """{id: (name, run_time_ns, run_cnt)} for the BPF programs loaded on the host (only
    those of pid owner, where bpftool says which process holds each)."""
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True).stdout
    try:
        progs = json.loads(out or "[]")
    except ValueError:
        return {}
    return {p["id"]: (p.get("name", "?"), p.get("run_time_ns", 0), p.get("run_cnt", 0)) for p in progs
            if owner is None or "pids" not in p or any(x.get("pid") == owner for x in p["pids"])}


class ProgStats:
    """Per-program run time and count, summed over several mftrace runs (by program name)."""

    def __init__(self):
        self.ns = {}
        self.cnt = {}

    def add(self, before_ids, now):
        for pid, (name, ns, cnt) in now.items():
            if pid in before_ids:
                continue  # not mftrace's: there before it started
            self.ns[name] = self.ns.get(name, 0) + ns
            self.cnt[name] = self.cnt.get(name, 0) + cnt

    def per_run(self, name):
        return self.ns[name] / self.cnt[name] if self.cnt.get(name) else None

    def total(self):
        n = sum(self.cnt.values())
        return (sum(self.ns.values()) / n if n else None), n


class Traced:
    """mftrace on some pids, with its programs' stats collected on stop, and its exit time."""

    def __init__(self, binary, pids, wd, args, stats: ProgStats | None):
        self.stats = stats
        self.before = set(prog_table()) if stats is not None else set()
        self.t = Tracer(pids, wd, "mft", args, binary=binary).start(timeout=120)

    def stop(self):
        if self.stats is not None:
            self.stats.add(self.before, prog_table(self.t.proc.pid))
        t0 = time.monotonic()
        rc = self.t.stop(timeout=600)
        if rc not in (0, 2):  # 2: a migration was flagged (7.2 -> 7.2 ends prematurely)
            raise RuntimeError(f"mftrace exited with {rc}: {self.t.stderr().strip()[-300:]}")
        return time.monotonic() - t0


def one_migration(variant, args, stats, exits):
    wd = tempfile.mkdtemp(prefix="mftrace-bench-")
    tracer = bt = None
    try:
        with qemumig.Migration(args.scenario, wd, mem=args.mem, volume=True,
                               max_bandwidth=args.bandwidth << 20 if args.bandwidth else None) as m:
            m.start()
            if variant in TRACED_ARGS:
                pids = [m.dst_pid] if variant == "mftrace-dst" else [m.dst_pid, m.src_pid]
                tracer = Traced(args.mftrace, pids, wd, TRACED_ARGS[variant],
                                stats if variant == "mftrace" else None)
            elif variant == "bpftrace":
                bt = start_bpftrace(m, wd)
            res = m.migrate(timeout=600)
            total_ms = m.qmp["src"].execute("query-migrate").get("total-time")
            if tracer:
                exits.append(tracer.stop())
            if bt:
                stop_bpftrace(bt)
        if res.get("src_status") != "completed":
            raise RuntimeError(f"migration did not complete: {res.get('src_status')}")
        return total_ms / 1000 if total_ms else res["timings"]["migrate_s"]
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def pingpong(secs):
    out = subprocess.run([os.path.join(ROOT, "build", "tools", "pingpong"), str(secs)],
                         capture_output=True, text=True, timeout=secs + 30)
    if out.returncode != 0:
        raise RuntimeError(f"pingpong failed: {out.stderr.strip()}")
    return float(out.stdout.strip())


FLOOR_KINDS = {"empty": "an empty program", "clock": "one clock read (bpf_ktime_get_ns)",
               "lookup": "one hash-map lookup that misses"}


class Reference:
    """A pair of reference programs (build/tools/bpffloor KIND) attached for one round."""

    def __init__(self, kind, stats: ProgStats):
        self.stats = stats
        self.before = set(prog_table())
        self.p = subprocess.Popen([os.path.join(ROOT, "build", "tools", "bpffloor"), kind],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if "READY" not in self.p.stdout.readline():
            self.p.stdin.close()
            raise RuntimeError(f"bpffloor {kind} did not attach (exit {self.p.wait(10)})")

    def stop(self):
        self.stats.add(self.before, prog_table(self.p.pid))
        self.p.stdin.close()
        self.p.wait(30)


def bench_pingpong(args, stats, floor, exits, log):
    """Round trips/s untraced and with mftrace tracing one idle QEMU; and in the same
    rounds, the ping-pong with each pair of reference programs alone on the socket
    hooks (their run times go to floor). Interleaved, the order rotating."""
    wd = tempfile.mkdtemp(prefix="mftrace-bench-pp-")
    variants = ["none", "traced"] + list(FLOOR_KINDS)
    rates = {v: [] for v in variants}
    try:
        with qemumig.Migration(args.scenario, wd, mem=64) as m:
            m.start()
            for r in range(args.pingpong_rounds):
                for v in variants[r % len(variants):] + variants[:r % len(variants)]:
                    if v == "traced":
                        tracer = Traced(args.mftrace, [m.dst_pid], wd, ["-q"], stats)
                    elif v != "none":
                        tracer = Reference(v, floor)
                    else:
                        tracer = None
                    rate = pingpong(args.pingpong_secs)
                    if v == "traced":
                        exits.append(tracer.stop())
                    elif tracer:
                        tracer.stop()
                    rates[v].append(rate)
                    log(f"pingpong round {r + 1} {v:8s} {rate:10.0f} round trips/s")
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    return rates


def fmt_ns(v):
    return f"{v:.0f} ns" if v is not None else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="migration rounds (default 5)")
    ap.add_argument("--mem", type=int, default=512, help="guest RAM in MiB (default 512)")
    ap.add_argument("--bandwidth", type=int, default=65536,
                    help="QEMU's max-bandwidth in MiB/s (default 65536: no cap on loopback; "
                         "0 keeps QEMU's 128 MiB/s, which makes every variant take the same time)")
    ap.add_argument("--scenario", default="7.2-7.2")
    ap.add_argument("--variants", default=VARIANTS)
    ap.add_argument("--pingpong-rounds", type=int, default=7)
    ap.add_argument("--pingpong-secs", type=float, default=2.0)
    ap.add_argument("--mftrace", default=os.path.join(ROOT, "build", "mftrace"),
                    help="the mftrace binary to measure (default build/mftrace)")
    ap.add_argument("--only", default="migration,pingpong,report",
                    help="which parts to run (default all: migration,pingpong,report)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench: must run as root", file=sys.stderr)
        return 1
    args.mftrace = os.path.abspath(args.mftrace)
    if not os.access(args.mftrace, os.X_OK):
        print(f"bench: {args.mftrace}: not an executable", file=sys.stderr)
        return 1
    parts = set(args.only.split(","))
    variants = args.variants.split(",")
    if "tls-entry" in variants and "--tls-records[=" not in subprocess.run(
            [args.mftrace, "--help"], capture_output=True, text=True).stdout:
        print(f"bench: SKIP tls-entry variant: {args.mftrace} has no --tls-records=entry", file=sys.stderr)
        variants.remove("tls-entry")
    if "bpftrace" in variants and not shutil.which("bpftrace"):
        print("bench: SKIP bpftrace variant: bpftrace not installed", file=sys.stderr)
        variants.remove("bpftrace")

    def log(s):
        print(s, file=sys.stderr, flush=True)

    subprocess.run(["sysctl", "-q", "kernel.bpf_stats_enabled=1"], check=False)
    mig_stats, pp_stats = ProgStats(), ProgStats()
    exits = []
    rows = []
    t_begin = time.monotonic()
    try:
        if "migration" in parts:
            times = {v: [] for v in variants}
            for r in range(args.rounds):
                order = variants[r % len(variants):] + variants[:r % len(variants)]
                for v in order:
                    t = one_migration(v, args, mig_stats, exits)
                    times[v].append(t)
                    log(f"round {r + 1} {v:12s} {t:7.2f} s")
            base = statistics.median(times[variants[0]])
            names = {"none": "no tracing", "mftrace-dst": "mftrace, destination only (default mode)",
                     "mftrace": "mftrace, both ends (default mode)",
                     "tls-records": "mftrace --tls-records, both ends",
                     "tls-entry": "mftrace --tls-records=entry, both ends",
                     "bpftrace": "bpftrace uprobe+uretprobe one-liner on gnutls_record_recv, both ends"}
            for v in variants:
                med = statistics.median(times[v])
                rows.append((f"migration time: {names.get(v, v)}",
                             f"{med:.2f} s ×{med / base:.3f} (range {min(times[v]):.2f}–{max(times[v]):.2f} s)"))
            avg, n = mig_stats.total()
            if n:
                rows.append(("BPF run time over the `mftrace` (both ends) migrations, all programs",
                             f"{fmt_ns(avg)} per run ({n} runs)"))
        if "pingpong" in parts:
            floor = ProgStats()
            rates = bench_pingpong(args, pp_stats, floor, exits, log)
            base = statistics.median(rates["none"])
            ratios = sorted(t / n for t, n in zip(rates["traced"], rates["none"]))
            rows.append(("unrelated loopback TCP ping-pong while mftrace traces one idle QEMU",
                         f"×{statistics.median(rates['traced']) / base:.3f} of untraced "
                         f"({base:.0f} round trips/s untraced; per-round ratios "
                         f"{ratios[0]:.3f}–{ratios[-1]:.3f}; {len(ratios)} rounds)"))
            avg, n = pp_stats.total()
            if n:
                rows.append(("BPF run time on non-targets (during the ping-pong), all programs",
                             f"{fmt_ns(avg)} per run ({n} runs)"))
                # the same tax from bpf_stats, which the ping-pong's noise does not blur
                bpf_us = avg * n / (sum(rates["traced"]) * args.pingpong_secs) / 1000
                trip_us = 1e6 / statistics.median(rates["traced"])
                rows.append(("BPF run time per ping-pong round trip (all programs, bpf_stats), against "
                             "the round trip's own time",
                             f"{bpf_us:.2f} µs of {trip_us:.1f} µs ({100 * bpf_us / trip_us:.1f}%)"))
            for kind, what in FLOOR_KINDS.items():
                rows.append((f"reference, in the same ping-pong rounds: {what}, alone on `sock_recv_length` / "
                             f"`sock_send_length` (`tests/tools/bpffloor.bpf.c`)",
                             f"{fmt_ns(floor.per_run(f'{kind}_recv'))} / {fmt_ns(floor.per_run(f'{kind}_send'))} "
                             f"per run; ping-pong ×{statistics.median(rates[kind]) / base:.3f} of untraced"))
            mine = [pp_stats.per_run(f"btf_sock_{d}_length") for d in ("recv", "send")]
            empty = [floor.per_run(f"empty_{d}") for d in ("recv", "send")]
            if None not in mine + empty:
                rows.append(("mftrace on non-targets above the empty program: `sock_recv_length` / "
                             "`sock_send_length`",
                             f"{fmt_ns(mine[0] - empty[0])} / {fmt_ns(mine[1] - empty[1])} per run"))
        if exits:
            rows.append(("mftrace exit time (SIGINT to exit, detaching)",
                         f"median {statistics.median(exits):.2f} s, max {max(exits):.2f} s "
                         f"({len(exits)} exits)"))
    finally:
        subprocess.run(["sysctl", "-q", "kernel.bpf_stats_enabled=0"], check=False)

    report_rows = []
    helper = os.path.join(ROOT, "scripts", "bench-report.py")
    if "report" in parts and os.path.exists(helper):
        out = subprocess.run([sys.executable, helper, "--mftrace", args.mftrace], capture_output=True, text=True)
        report_rows = [ln for ln in out.stdout.splitlines() if ln.startswith("|")
                       and not ln.startswith("| what") and not ln.startswith("| ---")]
        if out.returncode != 0:
            log(f"bench: bench-report.py exited with {out.returncode}: {out.stderr.strip()[-300:]}")

    print(f"\n{args.mftrace}; {args.scenario}, {args.mem} MiB random RAM, TLS, 4 multifd channels; "
          f"{args.rounds} migration rounds, {args.pingpong_rounds} ping-pong rounds of "
          f"{args.pingpong_secs:g} s (medians, interleaved); {time.monotonic() - t_begin:.0f} s\n")
    print("| what | measured |")
    print("| --- | --- |")
    for what, val in rows:
        print(f"| {what} | {val} |")
    for ln in report_rows:
        print(ln)
    names = sorted(set(mig_stats.cnt) | set(pp_stats.cnt))
    if names:
        print("\n| BPF program | runs, migrations | ns per run | runs, ping-pong (non-targets) | ns per run |")
        print("| --- | --- | --- | --- | --- |")
        for nm in names:
            print(f"| {nm} | {mig_stats.cnt.get(nm, 0)} | {fmt_ns(mig_stats.per_run(nm))} | "
                  f"{pp_stats.cnt.get(nm, 0)} | {fmt_ns(pp_stats.per_run(nm))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
