#!/usr/bin/env python3
"""mftrace on libvirt-driven migrations, the way operators run them (issue #8).

Two libvirt 9.0 session daemons under two local users (tests/lib/libvirt.py), each with
its own host_uuid and certificates made here; a TCG domain whose RAM the guest fills
with random bytes; `virsh migrate --live --tls --parallel --parallel-connections 4`.
libvirt's destination listens on [::] (its sockets carry ::ffff:127.0.0.1), runs QEMU
as its own user with -name guest=DOM,debug-threads=on, and ends the migration in its
own order. Every mode of mftrace on those QEMUs, each channel's verdict against the
independent bpftrace observer (tests/lib/observer.bt, which adopts the destination QEMU
libvirt starts when it accepts on the migration port), each outcome against QEMU's own
migrate_set_state trace (passed with <qemu:commandline>, read from libvirt's QEMU log):

  - `mftrace record` host-wide (no -p), started before any QEMU exists, and
    `mftrace exporter`, also started first: both must pick up the destination QEMU
    that libvirt starts moments before each migration. The recording's report and the
    exporter's counters (by domain, the VM name from -name guest=) equal the observer;
  - `mftrace -p SRC` started before the migration (the source alone: the truth among
    its possible verdicts), and `mftrace -p SRC -p DST` once libvirt has started the
    destination (decided verdicts). So that DST is known before its sockets exist, the
    migration's SYNs are held back by an nftables rule on loopback (its own table, this
    one port) until that tracer is ready: libvirt and QEMU simply retry the connect;
  - the matrix: QEMU 7.2 -> 7.2 and back, 10.0.2 -> 10.0.2 and back, 7.2 -> 10.0.2
    (machine pc-i440fx-7.2; 10.0.2 through <emulator>, from its private prefix);
  - --copy-storage-all with a disk: NBD over TLS beside the multifd channels, and no
    phantom migration from it;
  - `virsh domjobabort` mid-way: the source's attempt cancelled, as QEMU says.

Sizes: 192 MiB of random RAM per domain (about 2 s per migration here), so the whole
file stays within a few minutes on 2 cores.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

import groundtruth as gt  # noqa: E402
import libvirt as lvlib  # noqa: E402
from outcome import FAILED, check, report  # noqa: E402
import observer  # noqa: E402
from mftrace_run import MFTRACE, Tracer, TracerError  # noqa: E402

MEM_MIB = int(os.environ.get("MFTRACE_LIBVIRT_MEM", "192"))
NFT = "/usr/sbin/nft"
KEEP = os.environ.get("MFTRACE_KEEP_WORKDIR")


class Gate:
    """Hold back new connections to one port on loopback: an nftables table of our own
    dropping SYNs to it (the connecting kernel retransmits them: 1 s, 3 s, 7 s...)."""

    def __init__(self, port: int):
        self.table = f"mftrace_gate_{os.getpid()}_{port}"
        self.port = port
        self.closed = False

    def close(self) -> None:
        rules = (f"table inet {self.table} {{\n chain out {{\n  type filter hook output priority 0\n"
                 f"  tcp dport {self.port} tcp flags syn drop\n }}\n}}\n")
        subprocess.run([NFT, "-f", "-"], input=rules, text=True, check=True, capture_output=True, timeout=20)
        self.closed = True

    def open(self) -> None:
        if self.closed:
            subprocess.run([NFT, "delete", "table", "inet", self.table], capture_output=True, timeout=20)
            self.closed = False


def log_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def qemu_states(log_path: str, offset: int, newest_start: bool = False) -> list[str]:
    """migrate_set_state states (-trace, to stderr, which is libvirt's QEMU log; the line
    starts with a thread id, not the pid) of one step: written after offset (a source
    QEMU's log, which grows across its migrations), or with newest_start after libvirt's
    last "starting up" header (a destination QEMU: libvirt starts its log anew)."""
    out = []
    try:
        with open(log_path, "rb") as f:
            if not newest_start:
                f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return out
    if newest_start:
        text = text[text.rfind("starting up libvirt"):]
    for line in text.splitlines():
        m = re.match(r"^\d+@[\d.]+:migrate_set_state new state (\S+)", line)
        if m:
            out.append(m.group(1))
    return out


class Step:
    """One virsh migrate, observed."""

    def __init__(self, name: str, dom: str, src: str, dst: str, port: int):
        self.name, self.dom, self.src, self.dst, self.port = name, dom, src, dst, port
        self.src_pid = self.dst_pid = 0
        self.rc = None
        self.stderr = ""
        self.run: observer.ObservedRun | None = None
        self.live: list[dict] = []       # -p SRC -p DST records
        self.src_only: list[dict] = []   # -p SRC (started first) records
        self.errs: list[str] = []
        self.wd = ""
        self.log_off: dict = {}


def migrate_step(lv: lvlib.LibvirtPair, step: Step, wd: str, ptrace: bool = False,
                 xml: str | None = None, extra: tuple = (), abort_after: float | None = None) -> Step:
    step.wd = os.path.join(wd, step.name)
    os.makedirs(step.wd, exist_ok=True)
    step.src_pid = lv.pid(step.src, step.dom) or 0
    step.log_off = {s: log_size(lv.d[s].qemu_log(step.dom)) for s in (step.src, step.dst)}
    obs = observer.Observer(0, step.src_pid, step.port, step.wd, adopt=True).start()
    tracers: list[Tracer] = []
    gate = Gate(step.port) if ptrace else None
    t_src = t_both = None
    try:
        if ptrace:
            t_src = Tracer([step.src_pid], step.wd, "p-src", ["-q"]).start(timeout=120)
            tracers.append(t_src)
            gate.close()
        proc = lv.migrate(step.src, step.dst, step.dom, step.port, xml=xml, extra=extra, background=True)
        if ptrace or abort_after is not None:
            deadline = time.monotonic() + 60
            while not lv.pid(step.dst, step.dom) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            step.dst_pid = lv.pid(step.dst, step.dom) or 0
            if ptrace:
                if not step.dst_pid:
                    step.errs.append("libvirt started no destination QEMU")
                else:
                    t_both = Tracer([step.src_pid, step.dst_pid], step.wd, "p-both", ["-q"]).start(timeout=120)
                    tracers.append(t_both)
                gate.open()
        if abort_after is not None:
            time.sleep(abort_after)
            r = lv.virsh(step.src, "domjobabort", step.dom, check=False)
            if r.returncode != 0:
                step.errs.append(f"domjobabort: {r.stderr.strip()}")
        out, err = proc.communicate(timeout=300)
        step.rc, step.stderr = proc.returncode, err.strip()
        if not step.dst_pid:
            step.dst_pid = lv.pid(step.dst, step.dom) or 0
        time.sleep(0.5)             # the last events (closes, exits of threads)
    finally:
        if gate:
            gate.open()
        step.run = obs.stop()
        for t in tracers:
            t.stop()
    if t_both is not None:
        step.live = t_both.records()
    if t_src is not None:
        step.src_only = t_src.records()
    adopted = [e["pid"] for e in step.run.events if e["kind"] == "ADOPT"]
    if step.dst_pid and step.dst_pid not in adopted and abort_after is None:
        step.errs.append(f"the observer adopted {adopted}, not the destination {step.dst_pid}")
    if step.run.lost_events:
        step.errs.append(f"the observer lost {step.run.lost_events} events")
    return step


def side_errs(recs: list[dict], step: Step, must_decide: bool, sides=("src", "dst")) -> list[str]:
    errs = []
    for side in sides:
        pid = step.src_pid if side == "src" else step.dst_pid
        errs += gt.check_side(recs, pid, side, step.run, True, must_decide, 1, port=step.port)
    return errs


def outcome_checks(lv: lvlib.LibvirtPair, recs: list[dict], step: Step, tag: str) -> list[str]:
    """Each side's migration outcome against QEMU's own states for that process."""
    errs = []
    for side, role, pid in (("src", "source", step.src_pid), ("dst", "destination", step.dst_pid)):
        host = step.src if side == "src" else step.dst
        states = qemu_states(lv.d[host].qemu_log(step.dom), step.log_off.get(host, 0), True)
        want = gt.attempts(states)
        got = [r["outcome"] for r in gt.migs_of(recs, pid, role) if r["endpoint"].endswith(f":{step.port}")]
        if want and got != want[-1:]:
            errs.append(f"{tag} {role} outcome {got}, QEMU's states {states}")
        elif not want and any(o == "completed" for o in got):
            errs.append(f"{tag} {role} outcome {got}, but QEMU never completed (states {states})")
    return errs


def truth_counts(steps: list[Step], dom: str) -> dict:
    """{(role, verdict): n} of the multifd channels of a domain's migrations (observer)."""
    out: dict = {}
    for s in steps:
        if s.dom != dom or s.run is None:
            continue
        for pid, side, role in ((s.dst_pid, "dst", "destination"), (s.src_pid, "src", "source")):
            for c in gt.conns_of(s.run, pid, side).values():
                if c.role == "multifd" and (c.lport if side == "dst" else c.rport) == s.port:
                    v = gt.truth_of(s.run, c, True)
                    out[(role, v)] = out.get((role, v), 0) + 1
    return out


def main() -> int:
    why = lvlib.missing()
    if why is None and not os.access(MFTRACE, os.X_OK):
        why = f"{MFTRACE} not built (make)"
    if why is None and not os.path.exists(NFT):
        why = f"{NFT} missing (nftables; scripts/setup.sh installs it)"
    if why:
        report(None, "libvirt", why)
        return 0
    wd = tempfile.mkdtemp(prefix="mft-libvirt-")
    t0 = time.monotonic()
    steps: list[Step] = []
    rec = exp = None
    try:
        with lvlib.LibvirtPair(os.path.join(wd, "lv")) as lv:
            report(True, f"libvirt: two session daemons (users {', '.join(lvlib.USERS)}, host_uuids "
                         f"{lv.d['a'].host_uuid[:8]}/{lv.d['b'].host_uuid[:8]}), CA and certificates by certtool "
                         f"({time.monotonic() - t0:.1f}s)")
            rec = gt.Recorder(wd, "hostwide", []).wait_ready(timeout=120)
            exp = gt.Exporter(wd).start(timeout=120)
            port = 49152 + (os.getpid() % 400) * 2 + 1000
            pairs = [("7.2", "7.2"), ("10.0", "10.0"), ("7.2", "10.0")]
            for sv, dv in pairs:
                tag = f"{sv}->{dv}"
                if "10.0" in (sv, dv) and not lvlib.qemu10_available():
                    report(None, f"libvirt {tag}", f"QEMU 10.0.2 not in {lvlib.QEMU10_PREFIX} (scripts/setup.sh)")
                    continue
                machine = "pc" if sv == dv else "pc-i440fx-7.2"
                dom = f"mft-lv-{sv.replace('.', '')}-{dv.replace('.', '')}"
                lv.define("a", lvlib.domain_xml(lv, dom, sv, MEM_MIB, machine), dom)
                try:
                    lv.start("a", dom)
                except lvlib.LibvirtError as e:
                    report(False, f"libvirt {tag} domain start", str(e))
                    continue
                dxml = lvlib.domain_xml(lv, dom, dv, MEM_MIB, machine) if dv != sv else None
                # forward: host-wide record + exporter + -p SRC first, -p SRC -p DST once libvirt starts DST
                port += 1
                s = migrate_step(lv, Step(f"{dom}-fwd", dom, "a", "b", port), wd, ptrace=True, xml=dxml)
                steps.append(s)
                ok = s.rc == 0 and lv.state("b", dom) == "running"
                report(ok and not s.errs, f"libvirt {tag}: virsh migrate --live --tls --parallel "
                       f"--parallel-connections 4 completes (destination running)",
                       f"rc {s.rc}: {s.stderr} {s.errs}")
                if not ok:
                    continue
                errs = side_errs(s.live, s, True) + outcome_checks(lv, s.live, s, "-p SRC -p DST")
                check(f"libvirt {tag}: mftrace -p SRC -p DST (destination attached as libvirt starts it): "
                      f"every channel's verdict = observer", errs, s.wd)
                errs = side_errs(s.src_only, s, False, sides=("src",))
                check(f"libvirt {tag}: mftrace -p SRC alone, started first: the truth among its possible verdicts",
                      errs, s.wd)
                if sv == dv:   # and back: from user b's QEMU to a new one of user a, ungated
                    port += 1
                    s = migrate_step(lv, Step(f"{dom}-back", dom, "b", "a", port), wd)
                    steps.append(s)
                    report(s.rc == 0 and lv.state("a", dom) == "running" and not s.errs,
                           f"libvirt {tag}: and back (b -> a)", f"rc {s.rc}: {s.stderr} {s.errs}")
                lv.destroy("a", dom)
                lv.destroy("b", dom)

            # --copy-storage-all: a disk, NBD over TLS beside the multifd channels
            dom = "mft-lv-storage"
            disks = {}
            for side in ("a", "b"):
                disks[side] = os.path.join(lv.d[side].home, f"{dom}.img")
                with open(disks[side], "wb") as f:
                    f.truncate(32 << 20)
                os.chown(disks[side], lv.d[side].uid, lv.d[side].gid)
            with open(disks["a"], "r+b") as f:        # some data to copy
                f.write(os.urandom(4 << 20))
            lv.define("a", lvlib.domain_xml(lv, dom, "7.2", MEM_MIB, disk=disks["a"]), dom)
            lv.start("a", dom)
            port += 1
            s = migrate_step(lv, Step(f"{dom}", dom, "a", "b", port), wd,
                             xml=lvlib.domain_xml(lv, dom, "7.2", MEM_MIB, disk=disks["b"]),
                             # libvirt 9.0 gives the NBD client an empty tls-hostname unless told
                             extra=("--copy-storage-all", "--tls-destination", "localhost"))
            steps.append(s)
            nbd = [c for c in observer.parse_lines(open(os.path.join(s.wd, "observer.out")).read())[0]
                   if c["kind"] == "ACCEPT"]
            report(s.rc == 0 and lv.state("b", dom) == "running" and not s.errs,
                   "libvirt --copy-storage-all (NBD over TLS beside multifd) completes",
                   f"rc {s.rc}: {s.stderr} {s.errs}")
            with open(disks["a"], "rb") as fa, open(disks["b"], "rb") as fb:
                same = fa.read(4 << 20) == fb.read(4 << 20)
            report(same, "libvirt --copy-storage-all: the disk arrived (NBD really ran)",
                   "the destination disk differs from the source's")
            lv.destroy("a", dom)
            lv.destroy("b", dom)

            # domjobabort mid-way (a bandwidth cap makes it last)
            dom = "mft-lv-abort"
            lv.define("a", lvlib.domain_xml(lv, dom, "7.2", MEM_MIB), dom)
            lv.start("a", dom)
            port += 1
            s = migrate_step(lv, Step(f"{dom}", dom, "a", "b", port), wd, extra=("--bandwidth", "16"),
                             abort_after=2.0)
            steps.append(s)
            ok = s.rc != 0 and lv.state("a", dom) == "running" and lv.state("b", dom) in ("absent", "shut off")
            report(ok and not s.errs, "libvirt virsh domjobabort mid-way: the migration is aborted, "
                   "the domain runs on at the source", f"rc {s.rc}: {s.stderr} state a={lv.state('a', dom)} "
                   f"b={lv.state('b', dom)} {s.errs}")
            lv.destroy("a", dom)
            lv.destroy("b", dom)

            # the host-wide recording and the exporter, over every step
            rec_rc = rec.stop(timeout=120)
            rc, recs, err = gt.report_json([rec.path])
            for s in steps:
                if s.run is None:
                    continue
                aborted = s.name == "mft-lv-abort"
                errs = [] if rec_rc in (0, 2) else [f"record exited {rec_rc}"]
                errs += side_errs(recs, s, True) if not aborted else side_errs(recs, s, False)
                errs += outcome_checks(lv, recs, s, "record")
                if s.dom == "mft-lv-storage":   # NBD over TLS beside it: no phantom migration
                    for pid, role in ((s.src_pid, "source"), (s.dst_pid, "destination")):
                        n = len(gt.migs_of(recs, pid, role))
                        if n != 1:
                            errs.append(f"{role} pid {pid}: {n} migration records (any port), QEMU made 1")
                check(f"libvirt {s.name}: host-wide record (started before any QEMU): every channel's "
                      f"verdict = observer, outcomes = QEMU's", errs, s.wd)
            errs = []
            for s in steps:
                if s.dst_pid and not exp.tracing(s.dst_pid):
                    errs.append(f"{s.name}: destination {s.dst_pid} never traced")
            doms = sorted({s.dom for s in steps})
            for dom in doms:
                want = truth_counts(steps, dom)
                got = {}
                for lb, v in exp.series("mftrace_channels_total", domain=dom):
                    if v:
                        got[(lb["role"], lb["verdict"])] = got.get((lb["role"], lb["verdict"]), 0) + int(v)
                if dom == "mft-lv-abort":       # an aborted run's channels need not all be decided
                    continue
                if got != want:
                    errs.append(f"{dom}: exporter {sorted(got.items())}, observer {sorted(want.items())}")
            alive = exp.proc.poll() is None
            check(f"libvirt exporter: picked up every destination libvirt started, channel counters by "
                  f"domain (-name guest=) = observer [{', '.join(doms)}]",
                  errs + ([] if alive else ["the exporter exited"]), wd)
    except Exception as e:          # the harness broke: say so, never pass
        report(False, "libvirt harness", f"{type(e).__name__}: {e} [files in {wd}]")
    finally:
        if rec is not None:
            rec.stop()
        if exp is not None:
            exp.stop()
        print(f"libvirt: {len(steps)} migrations in {time.monotonic() - t0:.0f}s", flush=True)
        if not KEEP and not FAILED:
            shutil.rmtree(wd, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
