#!/usr/bin/env python3
"""SYNC landmarks, channel ids and the migration UUID, against QEMU's own -trace log.

Ground truth (not produced by mftrace): the log backend of the same QEMUs, run with
-trace 'multifd_*': multifd_recv (7.2) / multifd_recv_unfill (10.0) lines carry each
packet's channel and flags (0x1 = SYNC), multifd_{send,recv}_sync_main lines are the
sync points, multifd_recv_new_channel gives the channel ids in accept order; and QMP
query-uuid gives the UUID that every MultiFDInit_t carries.

The channel ids and the UUID come from each channel's MultiFDInit_t, and each channel's
SYNC packets from the packet headers its recv thread reads (qio_channel_read_all and
qio_channel_readv_full_all_eof, exported by Debian's QEMU), TLS or not, in every mode;
the sync points from uprobes on the exported sync_main functions.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import qemumig  # noqa: E402
from mftrace_run import Tracer  # noqa: E402

failed = 0
SYNC_TIME_SLACK_US = 5000  # the uprobe fires as the header read returns; QEMU logs right after


def report(ok, name, why=""):
    global failed
    if ok:
        print(f"PASS {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}: {why}", flush=True)


FLAGS_RE = re.compile(r"channel (\d+) .*flags (0x[0-9a-f]+)")


def qemu_view(trace: list[dict]) -> dict:
    syncs = collections.Counter()
    last_us = {}
    new_channels = []
    points = {"multifd_recv_sync_main": 0, "multifd_send_sync_main": 0}
    for e in trace:
        ev = e.get("event")
        if ev in ("multifd_recv", "multifd_recv_unfill"):
            mo = FLAGS_RE.search(e.get("args", ""))
            if mo and int(mo.group(2), 16) & 1:
                syncs[int(mo.group(1))] += 1
                last_us[int(mo.group(1))] = e["time_us"]
        elif ev == "multifd_recv_new_channel":
            new_channels.append(int(e["args"].split()[-1]))
        elif ev in points:
            points[ev] += 1
    return {"syncs": syncs, "last_us": last_us, "new_channels": new_channels, "points": points}


def run(scenario: str, full: bool, tls: bool = True) -> None:
    name = f"{scenario} {'--tls-records' if full else 'default'}{'' if tls else ' no-tls'}"
    wd = tempfile.mkdtemp(prefix=f"mft-sync-{scenario}-")
    errs = []
    try:
        with qemumig.Migration(scenario, wd, tls=tls, uuid=str(uuidlib.uuid4())) as m:
            m.start()
            uuid = m.qmp["dst"].execute("query-uuid")["UUID"]
            args = ["-q"] + (["--tls-records"] if full else [])
            t = Tracer([m.dst_pid, m.src_pid], wd, "mft", args).start()
            res = m.migrate()
            t.wait_migrations(2)
            t.stop()
        dst, src = qemu_view(res["dst_trace"]), qemu_view(res["src_trace"])
        migs = {r["pid"]: r for r in t.records("migration")}
        dm, sm = migs.get(m.dst_pid), migs.get(m.src_pid)
        if not dm or not sm:
            raise AssertionError(f"migration records missing: {list(migs)}")
        if dm["sync_points"] != dst["points"]["multifd_recv_sync_main"]:
            errs.append(f"dst sync points {dm['sync_points']}, QEMU logged "
                        f"{dst['points']['multifd_recv_sync_main']} multifd_recv_sync_main")
        if sm["sync_points"] != src["points"]["multifd_send_sync_main"]:
            errs.append(f"src sync points {sm['sync_points']}, QEMU logged "
                        f"{src['points']['multifd_send_sync_main']} multifd_send_sync_main")
        chans = sorted((r for r in t.records("channel") if r["pid"] == m.dst_pid and r["kind"] == "multifd"),
                       key=lambda r: r["channel"])
        if len(chans) != 4:
            errs.append(f"{len(chans)} destination multifd channels, expected 4")
        # the channel ids and the UUID: from the MultiFDInit_t, in every mode
        if dm["uuid"] != uuid:
            errs.append(f"uuid {dm['uuid']}, QEMU query-uuid {uuid}")
        ids = [r["channel_id"] for r in chans]
        if ids != dst["new_channels"]:
            errs.append(f"channel ids in accept order {ids}, QEMU's multifd_recv_new_channel {dst['new_channels']}")
        # the source's: from the MultiFDInit_t each send thread writes (qio_channel_write_all)
        src_ids = sorted(r["channel_id"] for r in t.records("channel")
                         if r["pid"] == m.src_pid and r["kind"] == "multifd" and r["channel_id"] is not None)
        if src_ids != sorted(dst["new_channels"]) or sm["uuid"] != uuid:
            errs.append(f"source channel ids {src_ids} and uuid {sm['uuid']}, QEMU: {sorted(dst['new_channels'])}, "
                        f"{uuid}")
        # each channel's own SYNC packets: from the packet headers it read, in every mode
        for r in chans:
            want = dst["syncs"].get(r["channel_id"], 0)
            if r["sync_source"] != "channel" or r["syncs"] != want:
                errs.append(f"channel {r['channel_id']}: {r['syncs']} SYNCs ({r['sync_source']}), "
                            f"QEMU logged {want}")
            # the last SYNC's time: QEMU logs it (realtime, us) as it unpacks the header
            logged = dst["last_us"].get(r["channel_id"])
            if logged and (r["last_sync"] is None or abs(r["last_sync"] / 1000 - logged) > SYNC_TIME_SLACK_US):
                errs.append(f"channel {r['channel_id']}: last SYNC at {r['last_sync']} ns, QEMU logged {logged} us")
        if errs:
            report(False, name, "; ".join(errs) + f" [logs in {wd}]")
        else:
            report(True, f"{name}: {dm['sync_points']} sync points, per-channel SYNCs "
                         f"{dict(sorted(dst['syncs'].items()))}")
            shutil.rmtree(wd, ignore_errors=True)
    except Exception as e:
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] "
                            + traceback.format_exc(limit=2).replace("\n", " | "))


def progs() -> list[dict]:
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def prog_runs(before: set[int]) -> dict[str, int]:
    """Run counts of the BPF programs loaded since the ids in before were listed, as the
    kernel counts them (kernel.bpf_stats_enabled): {name: run_cnt}."""
    return {p.get("name", "?"): p.get("run_cnt", 0) for p in progs() if p["id"] not in before}


def source_only() -> None:
    """A QEMU started without -incoming cannot be a destination (QEMU refuses
    migrate-incoming without it): a destination's per-packet probes must not trap in it.
    Ground truth: the kernel's run count of mftrace's uprobe program, against the packets
    the source's QEMU logged (multifd_send). Before, its qemu_sem_post() calls alone ran it
    about 2.5 times per packet."""
    name = "7.2-7.2 source only: no per-packet uprobe hits"
    wd = tempfile.mkdtemp(prefix="mft-sync-src-")
    old = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    try:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("1")
        with qemumig.Migration("7.2-7.2", wd, mem=128, volume=True) as m:
            m.start()
            before = {p["id"] for p in progs()}
            t = Tracer([m.src_pid], wd, "mft", ["-q"]).start()
            res = m.migrate()
            t.wait_migrations(1)
            runs = prog_runs(before)
            t.stop()
        packets = sum(1 for e in res["src_trace"] if e.get("event") == "multifd_send")
        sm = [r for r in t.records("migration") if r["pid"] == m.src_pid]
        up = runs.get("up_dispatch", 0)
        if not sm or sm[0]["sync_points"] != qemu_view(res["src_trace"])["points"]["multifd_send_sync_main"]:
            report(False, name, f"source migration record {sm} [logs in {wd}]")
        elif packets < 64 or up * 2 > packets:
            report(False, name, f"{up} uprobe program runs for {packets} packets sent [logs in {wd}]")
        else:
            report(True, f"{name} ({up} uprobe program runs, {packets} packets sent)")
            shutil.rmtree(wd, ignore_errors=True)
    except Exception as e:
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}]")
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(old)


def main() -> int:
    if os.geteuid() != 0:
        print("SKIP sync: needs root (eBPF)")
        return 0
    for scenario in ("7.2-7.2", "10.0-10.0", "7.2-10.0"):
        run(scenario, full=True)
    run("7.2-7.2", full=False)
    run("10.0-10.0", full=False)
    run("7.2-7.2", full=False, tls=False)
    source_only()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
