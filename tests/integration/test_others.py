#!/usr/bin/env python3
"""Other TLS connections of a traced QEMU never become migrations.

  - NBD over TLS during a real TLS multifd migration: the destination serves NBD (what a
    storage migration does beside the multifd channels) to two overlapping qemu-io
    clients and a qemu-nbd --list, while mftrace traces both QEMUs;
  - a QEMU that is not migrating at all, serving NBD over TLS (overlapping qemu-io
    clients, qemu-nbd --list) and a serial console on a TLS chardev (gnutls-cli
    clients), traced by live mode and the recorder (then report); and one with TLS
    serial console clients and two overlapping VNC viewers over TLS (x509) under the
    exporter.

No migration or channel record, metric, or exit status 2 may come from these
connections; -v must list them as other connections (the positive control: they were
traced, with TLS). Ground truth: the bpftrace observer on the migration port (every
migration connection and its verdict), QEMU's query-migrate, and the test itself,
which knows which connections it made. And the traced QEMUs must survive: NBD
coroutines yield inside functions that a uretprobe must not watch (SIGILL).

The QEMUs serving NBD run from private copies of the binary under a name without
"qemu": tracers of other tests that watch every QEMU on this shared host (exporters
built from older trees) must not attach to them. The exporter is checked on a QEMU of
its own, run from the installed binary, with TLS chardev connections.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import groundtruth as gt  # noqa: E402
import observer  # noqa: E402
import qemumig  # noqa: E402
import vncclient  # noqa: E402
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


def others_at(recs: list[dict], pid: int, port: int) -> list[dict]:
    return [r for r in recs if r.get("type") == "other" and r["pid"] == pid and r["endpoint"].endswith(f":{port}")]


def nbd_during_migration() -> None:
    name = "NBD over TLS on the destination during a migration"
    wd = tempfile.mkdtemp(prefix="mft-others-nbd-")
    ok = True
    try:
        hidden = {s: qemumig.private_copy("7.2", os.path.join(wd, "bin")) for s in ("src", "dst")}
        with qemumig.Migration("7.2-7.2", wd, volume=True, nbd_disk=True, binary=hidden) as m:
            m.start()
            nport = qemumig.free_port()
            m.nbd_server_start("dst", nport)
            obs = observer.Observer(m.dst_pid, m.src_pid, m.port, wd, ready_timeout=180).start()
            t = Tracer([m.dst_pid, m.src_pid], wd, "live", ["-q", "-v"]).start()
            try:
                clients = [qemumig.nbd_client(m, nport, wd, "io1", hold_ms=3000),
                           qemumig.nbd_client(m, nport, wd, "io2", hold_ms=2000)]
                time.sleep(0.5)
                clients.append(qemumig.nbd_client(m, nport, wd, "list", tool="qemu-nbd"))
                res = m.migrate()
                codes = [c.wait(30) for c in clients]
                t.wait_migrations(2)
            finally:
                rc = t.stop(timeout=60)   # detaching uprobes on a loaded host takes a while
                run = obs.stop()
        errs = []
        if res["src_status"] != "completed" or res["dst_exit_code"] is not None:
            errs.append(f"the migration: source {res['src_status']}, destination exit {res['dst_exit_code']} "
                        f"(-4: SIGILL)")
        if codes != [0, 0, 0]:
            errs.append(f"NBD clients exited {codes}: see {wd}/io1.out, io2.out, list.out")
        ok &= check(f"{name}: the traced QEMUs survive and serve NBD over TLS, the migration completes", errs, wd)
        if errs:
            return
        recs = t.records()
        errs = gt.check_side(recs, m.dst_pid, "dst", run, True, must_decide=True)
        errs += gt.check_side(recs, m.src_pid, "src", run, True, must_decide=True)
        ok &= check(f"{name}: one migration per side, its channels exactly the observer's, verdicts as observed",
                    errs, wd)
        truths = [gt.truth_of(run, c, True) for c in gt.conns_of(run, m.dst_pid, "dst").values()
                  if c.role == "multifd"]
        want_rc = 2 if "premature" in truths else 0
        ok &= check(f"{name}: exit status as the migration alone says ({want_rc})",
                    [] if rc == want_rc else [f"exit status {rc}, observer truths {truths}"], wd)
        oth = others_at(recs, m.dst_pid, nport)
        n = sum(r["connections"] for r in oth)
        tls = sum(r["tls"] for r in oth)
        ok &= check(f"{name}: -v lists the NBD connections as other connections, with TLS",
                    [] if n >= 3 and tls >= 3 else [f"other records {oth}: expected 3 NBD connections with TLS"], wd)
    except Exception as e:
        ok = False
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] " + traceback.format_exc(limit=3).replace("\n", " | "))
    if ok:
        shutil.rmtree(wd, ignore_errors=True)


def idle_nbd() -> None:
    name = "NBD and chardev TLS connections on a QEMU that is not migrating"
    wd = tempfile.mkdtemp(prefix="mft-others-idle-")
    cport = qemumig.free_port()
    ok = True
    try:
        args = {"src": ["-chardev", f"socket,id=tc0,host=127.0.0.1,port={cport},server=on,wait=off,"
                                    "tls-creds=tlssrv", "-serial", "chardev:tc0"]}
        hidden = {"src": qemumig.private_copy("7.2", os.path.join(wd, "bin"))}
        with qemumig.Migration("7.2-7.2", wd, nbd_disk=True, mem=128, extra_args=args, binary=hidden) as m:
            m.start()
            pid = m.src_pid
            nport = qemumig.free_port()
            m.nbd_server_start("src", nport)
            tools = []
            try:
                t = Tracer([pid], wd, "live", ["-v"]).start()
                tools.append(t)
                rec = gt.Recorder(wd, "idle", ["-p", str(pid)]).wait_ready()
                tools.append(rec)
                # two TLS serial console clients, one after the other (a chardev takes
                # one at a time), then overlapping NBD clients
                for i in (1, 2):
                    qemumig.tls_chardev_client(m, cport, wd, f"tc{i}", hold_s=0.5).wait(30)
                nb = [qemumig.nbd_client(m, nport, wd, "io1", hold_ms=1500)]
                time.sleep(0.3)
                nb.append(qemumig.nbd_client(m, nport, wd, "io2", hold_ms=300))
                nb.append(qemumig.nbd_client(m, nport, wd, "list", tool="qemu-nbd"))
                codes = [c.wait(30) for c in nb]
                time.sleep(3)   # past the correlator's grace period: the groups end
                alive = m.procs["src"].poll()
            finally:
                for x in tools:
                    x.stop(timeout=60)
            state = m.source_status()
        errs = []
        if alive is not None or codes != [0, 0, 0]:
            errs.append(f"QEMU exit {alive} (-4: SIGILL), NBD clients exited {codes}: see {wd}/io1.out")
        ok &= check(f"{name}: the traced QEMU survives and serves NBD over TLS", errs, wd)
        recs = t.records()
        mig = [r for r in recs if r.get("type") in ("migration", "channel")]
        errs = [f"{len(mig)} migration/channel records (QEMU says its migration state is {state!r})"] if mig else []
        if t.rc != 0:
            errs.append(f"exit status {t.rc}")
        ok &= check(f"{name}: live mode reports no migration and exits 0", errs, wd)
        nbd, chd = others_at(recs, pid, nport), others_at(recs, pid, cport)
        errs = []
        if sum(r["connections"] for r in nbd) < 3 or sum(r["tls"] for r in nbd) < 2:
            errs.append(f"NBD other records {nbd}: expected 3 connections, TLS on the qemu-io ones")
        if sum(r["connections"] for r in chd) < 2 or sum(r["tls"] for r in chd) < 2:
            errs.append(f"chardev other records {chd}: expected 2 TLS connections")
        ok &= check(f"{name}: -v lists them as other connections, with TLS (they were traced)", errs, wd)
        rc, rep, err = gt.report_json([rec.path])
        errs = [] if rc == 0 else [f"report exited {rc}: {err.strip()[-300:]}"]
        errs += [f"report: {r['type']} record {r}" for r in rep if r.get("type") in ("migration", "channel")]
        ok &= check(f"{name}: report of its recording finds no migration and exits 0", errs, wd)
    except Exception as e:
        ok = False
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] " + traceback.format_exc(limit=3).replace("\n", " | "))
    if ok:
        shutil.rmtree(wd, ignore_errors=True)


def idle_exporter() -> None:
    name = "the exporter and VNC and chardev TLS connections on a QEMU that is not migrating"
    wd = tempfile.mkdtemp(prefix="mft-others-exp-")
    vm = f"mftidle-{secrets.token_hex(4)}"
    cport, vport = qemumig.free_port(), qemumig.free_port()
    ok = True
    try:
        x509 = vncclient.x509_creds(os.path.join(wd, "x509"))
        args = {"src": ["-name", vm, "-chardev",
                        f"socket,id=tc0,host=127.0.0.1,port={cport},server=on,wait=off,tls-creds=tlssrv",
                        "-serial", "chardev:tc0",
                        "-object", f"tls-creds-x509,id=tlsvnc,dir={x509},endpoint=server,verify-peer=off",
                        "-vnc", f"127.0.0.1:{vport - 5900},tls-creds=tlsvnc"]}
        with qemumig.Migration("7.2-7.2", wd, mem=128, extra_args=args) as m:
            m.start()
            exp = gt.Exporter(wd, ["-v"]).start()
            try:
                if not gt.wait_for(lambda: exp.tracing(m.src_pid), 15):
                    raise RuntimeError("the exporter did not pick the QEMU up")
                for i in range(2):   # two overlapping VNC viewers over TLS, twice
                    v = [qemumig.vnc_tls_viewer(vport, wd, f"vnc{i}a", hold_s=1.0)]
                    time.sleep(0.3)
                    v.append(qemumig.vnc_tls_viewer(vport, wd, f"vnc{i}b", hold_s=0.3))
                    codes = [c.wait(30) for c in v]
                    if codes != [0, 0]:
                        raise RuntimeError(f"VNC viewers exited {codes}: see {wd}/vnc{i}a.out")
                for i in range(2):   # TLS serial console clients, one after the other
                    qemumig.tls_chardev_client(m, cport, wd, f"tc{i}", hold_s=0.3).wait(30)
                time.sleep(5)   # well past the correlator's grace period (2 s): the groups end
                metrics = {f: exp.sum(f, domain=vm) for f in ("mftrace_migrations_total", "mftrace_channels_total",
                                                          "mftrace_flagged_migrations_total",
                                                          "mftrace_premature_terminations_total")}
                targets = exp.sum("mftrace_targets", domain=vm)
            finally:
                exp.stop()
        errs = [] if targets == 1 else [f"mftrace_targets{{domain={vm}}} = {targets}: the QEMU was not traced"]
        bad = {k: v for k, v in metrics.items() if v}
        if bad:
            errs.append(f"metrics {bad}")
        ok &= check(f"{name}: it counts no migration, channel or premature termination", errs, wd)
    except Exception as e:
        ok = False
        report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] " + traceback.format_exc(limit=3).replace("\n", " | "))
    if ok:
        shutil.rmtree(wd, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        report(None, "others", "needs root (eBPF)")
        return 0
    for tool in (qemumig.QEMU_IO, qemumig.QEMU_NBD, "/usr/bin/gnutls-cli", "/usr/bin/openssl"):
        if not os.access(tool, os.X_OK):
            report(None, "others", f"{tool} is not installed (run scripts/setup.sh)")
            return 0
    nbd_during_migration()
    idle_nbd()
    idle_exporter()
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
