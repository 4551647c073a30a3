#!/usr/bin/env python3
"""`mftrace exporter` against a real Prometheus, real TLS multifd migrations and bad clients.

Run from the repository root, as root, after `make` (MFTRACE=path/to/mftrace to test
another build):

    python3 tests/integration/test_exporter.py

Prints "PASS name", "FAIL name: why" or "SKIP name: why" per test; exits non-zero on a
failure. Python 3 standard library only.

What runs, all on 127.0.0.1 and stopped by pid:
  - the exporter, under the capability bounding set of deploy/mftrace-exporter.service
    (so the unit's set is proven sufficient), started before any QEMU of this test;
  - Debian's Prometheus 2.42 (its own free port, data in a temp dir), scraping the
    exporter every second and evaluating deploy/mftrace.rules.yml every second;
  - the four scenarios of tests/lib/qemumig.py, once each, with VM names unique to this
    run (so other QEMUs on the host cannot pollute the counts).

Ground truth, none of it from the exporter:
  - a separate `mftrace -p DST -p SRC --json -q` per migration: its migration and
    channel records give the expected verdict, impact (its "severity"), flagged and outcome
    counts, and each destination channel's woken_by for the relaxed-EOF counterfactual;
  - each scenario's definition (tests/lib/qemumig.py: QEMU versions, machine type, -global)
    and the -uuid this test gives: mftrace_target_info's versions, uuid and
    multifd-clean-tls-termination, and which pair MftraceRiskyVersionPair must flag;
  - the harness (QEMU's query-migrate and exit status): one migration per role per
    scenario, and whether the destination failed.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
os.environ.setdefault("MFTRACE", os.path.join(REPO, "build", "mftrace"))

import qemumig  # noqa: E402
from mftrace_run import Tracer  # noqa: E402

MFTRACE = os.environ["MFTRACE"]
DEPLOY = os.path.join(REPO, "deploy")
UNIT = os.path.join(DEPLOY, "mftrace-exporter.service")
RULES = os.path.join(DEPLOY, "mftrace.rules.yml")
RULE_TESTS = os.path.join(DEPLOY, "mftrace.rules.test.yml")
DASHBOARD = os.path.join(DEPLOY, "grafana-dashboard.json")
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
SCENARIOS = os.environ.get("MFTRACE_SCENARIOS", "7.2-7.2 10.0-10.0 7.2-10.0 7.2-10.0-strict").split()
TOKEN = "mftx" + secrets.token_hex(3)   # this run's VM names start with it
HTTP_TIMEOUT = 3    # the exporter's --timeout for these tests (seconds)
MAX_CONN = 32       # its --max-connections (4 per client: a local user, or an address)

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
    """Run fn(); it returns None (pass), a string (failure reason) or ("skip", why)."""
    try:
        r = fn()
    except Exception as e:
        r = f"{type(e).__name__}: {e} | " + traceback.format_exc(limit=3).replace("\n", " | ")
    if isinstance(r, tuple):
        report(None, name, r[1])
    else:
        report(r is None, name, r or "")


def wait_for(fn, timeout: float, step: float = 0.2):
    """fn() until it returns something true, at most timeout seconds; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def free_port() -> int:
    return qemumig.free_port()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def n_sockets(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


# ------------------------------------------------------------------ exposition

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> list[tuple[str, dict, float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise ValueError(f"unparsable line {line!r}")
        labels = {}
        if m.group(2):
            for k, v in LABEL_RE.findall(m.group(2)):
                labels[k] = v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        out.append((m.group(1), labels, float(m.group(3))))
    return out


# ------------------------------------------------------------------ processes

def unit_capabilities() -> list[str]:
    """CapabilityBoundingSet of the systemd unit, as setpriv names."""
    with open(UNIT) as f:
        for line in f:
            if line.startswith("CapabilityBoundingSet="):
                return [c.lower().removeprefix("cap_") for c in line.split("=", 1)[1].split()]
    raise RuntimeError(f"no CapabilityBoundingSet in {UNIT}")


class Exporter:
    def __init__(self, workdir: str):
        self.err_path = os.path.join(workdir, "exporter.err")
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> "Exporter":
        caps = ",".join("+" + c for c in unit_capabilities())
        cmd = ["setpriv", f"--bounding-set=-all,{caps}", "--inh-caps=-all", MFTRACE, "exporter",
               "--listen", "127.0.0.1:0", "--timeout", str(HTTP_TIMEOUT), "--max-connections", str(MAX_CONN)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.err_path, "w"))
        # attaching to every QEMU of a busy host can take a while
        ok = wait_for(lambda: "mftrace: ready" in self.stderr() or self.proc.poll() is not None, 120)
        m = re.search(r"serving metrics on http://127\.0\.0\.1:(\d+)/metrics", self.stderr())
        if not ok or self.proc.poll() is not None or not m:
            raise RuntimeError(f"exporter did not start: {self.stderr().strip()}")
        self.port = int(m.group(1))
        return self

    def stderr(self) -> str:
        with open(self.err_path) as f:
            return f.read()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def get(self, path: str = "/metrics", headers: dict | None = None, method: str = "GET",
            timeout: float = 5) -> tuple[int, dict, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def metrics(self) -> list[tuple[str, dict, float]]:
        st, _, body = self.get()
        if st != 200:
            raise RuntimeError(f"/metrics answered {st}")
        return parse_exposition(body.decode())

    def value(self, name: str, **labels) -> float | None:
        for n, lb, v in self.metrics():
            if n == name and all(lb.get(k) == want for k, want in labels.items()):
                return v
        return None

    def stop(self, timeout: float = 10) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


class Prometheus:
    def __init__(self, workdir: str, target_port: int):
        self.dir = os.path.join(workdir, "prometheus")
        os.makedirs(self.dir)
        self.port = free_port()
        config = {
            "rule_files": [RULES],
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms",
                       "external_labels": {"mftrace_runbooks": "file://" + os.path.join(REPO, "docs", "runbooks")}},
            "scrape_configs": [{"job_name": "mftrace",
                                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
        }
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            json.dump(config, f)          # JSON is YAML
        self.log = os.path.join(self.dir, "prometheus.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Prometheus":
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
             "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))

        def ready():
            if self.proc.poll() is not None:
                return True
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False
        if not wait_for(ready, 30) or self.proc.poll() is not None:
            with open(self.log) as f:
                raise RuntimeError(f"prometheus did not start: {f.read()[-500:]}")
        return self

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:     # 400/422 carry a JSON error body
            return json.load(e)

    def query(self, expr: str) -> list[dict]:
        r = self.api("query", query=expr)
        if r.get("status") != "success":
            raise RuntimeError(f"query {expr!r}: {r.get('errorType')}: {r.get('error')}")
        return r["data"]["result"]

    def vector(self, expr: str, by: tuple[str, ...]) -> dict:
        """{label values tuple: value} for a vector result, zero values left out."""
        out = {}
        for s in self.query(expr):
            v = float(s["value"][1])
            if v:
                out[tuple(s["metric"].get(k, "") for k in by)] = round(v)
        return out

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class NamedMigration(qemumig.Migration):
    """A harness migration whose two QEMUs carry VM names (-name) unique to this run."""

    def __init__(self, scenario: str, workdir: str, **kw):
        super().__init__(scenario, workdir, **kw)
        self.vm = {side: f"{TOKEN}-{scenario}-{side}" for side in ("src", "dst")}
        self.given_uuid = kw.get("uuid")

    def argv(self, side, psk_dir):
        return super().argv(side, psk_dir) + ["-name", self.vm[side]]


# ------------------------------------------------------------------ ground truth

DECIDED = ("clean", "premature", "unread", "reset", "plain", "incomplete")


def expected_clean_tls(scenario: str) -> str:
    """multifd-clean-tls-termination on the destination, from the scenario's definition:
    set with -global, else off on QEMU < 10.0 or a machine type <= 9.2, else on."""
    sc = qemumig.SCENARIOS[scenario]
    for g in sc.dst_globals:
        if g.startswith("migration.multifd-clean-tls-termination="):
            return "on" if g.endswith("=on") else "off"
    if sc.dst == "7.2":
        return "off"
    m = re.fullmatch(r"pc-(?:i440fx|q35)-(\d+)\.(\d+)", sc.machine)
    if m and (int(m.group(1)), int(m.group(2))) <= (9, 2):
        return "off"
    return "on"


def outcome_label(o: str) -> str:
    if o in ("completed", "failed", "cancelled", "destination-failed", "source-failed", "unknown"):
        return o
    if o.startswith("exited("):
        return "exited"
    if o.startswith("killed("):
        return "killed"
    return "other"


class Truth:
    """Expected counter values, from the records of the separate `mftrace --json` runs."""

    def __init__(self):
        self.migrations: dict = {}   # (role, verdict, possible, domain) -> n
        self.channels: dict = {}
        self.premature: dict = {}    # (role, impact, domain)
        self.flagged: dict = {}      # (role, domain)
        self.outcomes: dict = {}     # (role, outcome, domain)
        self.relaxed: dict = {}      # (domain,): premature, tolerated, not woken by its own shutdown
        self.rx_count: dict = {}     # role -> channels
        self.rx_sum: dict = {}       # role -> bytes
        self.fin_read: dict = {}     # role -> channels with a FIN -> final read margin

    @staticmethod
    def _inc(d: dict, key, n=1):
        d[key] = d.get(key, 0) + n

    @staticmethod
    def verdict(v: str) -> tuple[str, str]:
        """The JSON verdict (a decided one, or the set still possible) as the metric's
        closed verdict label and its possible label."""
        if v in DECIDED:
            return v, ""
        return "undecided", v if "|" in v else ""

    def add(self, tracer: Tracer, vm_of_pid: dict, relaxed_dst: bool) -> None:
        for r in tracer.records("migration"):
            vm = vm_of_pid[r["pid"]]
            self._inc(self.migrations, (r["role"], *self.verdict(r["verdict"]), vm))
            self._inc(self.outcomes, (r["role"], outcome_label(r["outcome"]), vm))
            if r["flagged"]:
                self._inc(self.flagged, (r["role"], vm))
        for c in tracer.records("channel"):
            if c["kind"] == "main":
                continue
            vm = vm_of_pid[c["pid"]]
            self._inc(self.channels, (c["role"], *self.verdict(c["verdict"]), vm))
            if c["verdict"] == "premature":
                self._inc(self.premature, (c["role"], c["severity"], vm))
                if (c["role"] == "destination" and relaxed_dst and c["severity"] == "tolerated" and
                        c.get("woken_by") != "local-shutdown"):
                    self._inc(self.relaxed, (vm,))
            self._inc(self.rx_count, c["role"])
            self._inc(self.rx_sum, c["role"], c["rx_bytes"])
            if c["margins_ns"]["fin_to_final_read"] is not None:
                self._inc(self.fin_read, c["role"])

    def dest_share(self) -> tuple[float, int]:
        d = {k: v for k, v in self.channels.items() if k[0] == "destination"}
        total = sum(d.values())
        bad = sum(v for k, v in d.items() if k[1] in ("premature", "unread"))
        return (bad / total if total else 0.0), total


# ------------------------------------------------------------------ the tests

def test_cli(workdir: str) -> None:
    def run(args, **kw):
        return subprocess.run([MFTRACE, "exporter"] + args, capture_output=True, text=True, timeout=20, **kw)

    def bad_input():
        errs = []
        for args, want in ((["--listen", "localhost:80"], "invalid address"),
                           (["--listen", "127.0.0.1"], "invalid listen address"),
                           (["--web.listen-address", "127.0.0.1"], "invalid listen address"),
                           (["--listen", "127.0.0.1:65536"], "invalid port"),
                           (["--listen", "[::1]:x"], "invalid port"),
                           (["--timeout", "0"], "invalid --timeout"),
                           (["--max-connections", "99999999999999999999"], "invalid --max-connections"),
                           (["--mechanism", "magic"], "invalid mechanism"),
                           (["--nope"], "unknown option"),
                           (["--listen"], "needs a value"),
                           (["extra"], "unexpected argument")):
            r = run(args)
            lines = r.stderr.strip().splitlines()
            if r.returncode != 1 or len(lines) != 1 or want not in lines[0]:
                errs.append(f"{args}: exit {r.returncode}, stderr {r.stderr.strip()!r}")
        r = run(["--help"])
        if r.returncode or "--web.listen-address ADDR:PORT" not in r.stdout or "19353" not in r.stdout:
            errs.append(f"--help: exit {r.returncode}")
        return "; ".join(errs) or None
    check("cli: bad options get one line and exit 1; --help teaches", bad_input)

    def port_busy():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            r = run(["--listen", f"127.0.0.1:{s.getsockname()[1]}"])
        if r.returncode != 1 or "cannot listen on 127.0.0.1:" not in r.stderr or len(r.stderr.splitlines()) != 1:
            return f"exit {r.returncode}, stderr {r.stderr.strip()!r}"
        return None
    check("cli: a busy port is one clear line, exit 1", port_busy)

    def unprivileged():
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                            MFTRACE, "exporter", "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 1 or "needs root" not in r.stderr:
            return f"exit {r.returncode}, stderr {r.stderr.strip()!r}"
        return None
    check("cli: without privileges, one clear line, exit 1", unprivileged)


def run_scenarios(exp: Exporter, prom: Prometheus, workdir: str, truth: Truth) -> dict:
    """The migrations, each traced by the exporter and by a separate JSON mftrace."""
    info = {"runs": [], "dst_failed": {}}
    for scenario in SCENARIOS:
        wd = os.path.join(workdir, scenario)
        name = f"scenario {scenario}"
        tracer = None
        try:
            with NamedMigration(scenario, wd, uuid=str(uuidlib.uuid4())) as m:
                m.start()
                vms = m.vm

                def traced():
                    vals = {side: exp.value("mftrace_targets", domain=vms[side]) for side in ("src", "dst")}
                    return all(v == 1 for v in vals.values())
                t0 = time.monotonic()
                if not wait_for(traced, 15):
                    report(False, f"{name}: exporter picks up QEMUs started after it",
                           f"mftrace_targets for {vms} not 1 after 15 s")
                    continue
                report(True, f"{name}: exporter picks up QEMUs started after it "
                             f"({time.monotonic() - t0:.1f} s)")
                # the probes the verdicts need are attached (the unit's capabilities suffice)
                # (each by whichever mechanism of its chain this host gave: doctor says which)
                need = ["gnutls_handshake/uprobe", "gnutls_bye/uprobe", "gnutls_deinit/uprobe",
                        "shutdown/tracepoint", "recv results/tracepoint"]
                alias = {"uprobe_multi": "uprobe", "tp_btf": "tracepoint", "raw_tp": "tracepoint"}

                def unattached():
                    nonlocal probes
                    probes = {lb["probe"] + "/" + alias.get(lb["mechanism"], lb["mechanism"]): v
                              for n, lb, v in exp.metrics() if n == "mftrace_probe_attached"}
                    bad = [p for p in need if probes.get(p) != 1]
                    return bad + [p for p, v in probes.items() if p.startswith("gnutls") and v != 1 and p not in bad]
                probes: dict = {}
                bad = unattached()
                if bad:     # a scrape may fall between the target and its probe statuses
                    time.sleep(1)
                    bad = unattached()
                why = f"not attached: {bad}; all: {probes}"
                early = [line for line in exp.stderr().splitlines() if "no GnuTLS mapped" in line and
                         any(f"({vms[s]}," in line for s in vms)]
                if early:
                    why = ("the exporter picked a QEMU up before its dynamic loader had mapped libgnutls, "
                           "and never attaches the GnuTLS uprobes later (session rescan race): "
                           f"{early}; TLS channels will be judged plain. " + why)
                report(not bad, f"{name}: probes attached under the unit's capabilities", why)
                # Prometheus has the zero series before the first increment
                wait_for(lambda: prom.query(f'mftrace_migrations_total{{domain="{vms["dst"]}"}}'), 10)
                # what the exporter says of each QEMU, against what this test started
                want_clean = expected_clean_tls(scenario)

                def target_info():
                    rows = {lb.get("domain"): lb for n, lb, v in exp.metrics() if n == "mftrace_target_info"}
                    errs = []
                    for side, ver in (("src", m.scenario.src), ("dst", m.scenario.dst)):
                        lb = rows.get(vms[side])
                        if not lb:
                            errs.append(f"{side}: no mftrace_target_info")
                            continue
                        want = {"uuid": m.given_uuid, "machine": m.scenario.machine,
                                "incoming": "defer" if side == "dst" else None,
                                "clean_tls_termination": want_clean if side == "dst" else None}
                        bad = {k: lb.get(k) for k, w in want.items() if lb.get(k) != w}
                        if bad or not lb.get("qemu_version", "").startswith(ver + ".") or not lb.get("gnutls_version"):
                            errs.append(f"{side}: {lb}, wanted {want} and QEMU {ver}")
                    return "; ".join(errs) or None
                why = target_info()
                report(why is None, f"{name}: mftrace_target_info: versions, -uuid, machine, -incoming, "
                       f"clean_tls_termination={want_clean}", why or "")
                tracer = Tracer([m.dst_pid, m.src_pid], wd, "truth", ["-q"]).start()
                res = m.migrate()
                got = tracer.wait_migrations(2, timeout=30)
                tracer.stop()
                if not got:
                    report(False, f"{name}: ground truth", f"the JSON mftrace gave "
                           f"{len(tracer.records('migration'))} migration records, not 2")
                    continue
                truth.add(tracer, {m.dst_pid: vms["dst"], m.src_pid: vms["src"]}, want_clean == "off")
                dst_failed = (res.get("dst_exit_code") not in (None, 0) or
                              (res.get("dst_status") or res.get("dst_last_status")) == "failed")
                info["dst_failed"][vms["dst"]] = dst_failed
                info["runs"].append({"scenario": scenario, "vms": vms, "result": res, "clean_tls": want_clean,
                                     "src_version": m.scenario.src})
                # the exporter has both migrations (one per role) before the QEMUs go
                def counted():
                    return sum(v for n, lb, v in exp.metrics()
                               if n == "mftrace_migrations_total" and lb.get("domain") in vms.values()) >= 2
                if not wait_for(counted, 15):
                    report(False, f"{name}: exporter counts the migration", "no migration counted after 15 s")
            # leaving the block stopped both QEMUs: the exporter forgets them
            t0 = time.monotonic()

            def forgotten():
                return all(exp.value("mftrace_targets", domain=vms[s]) is None for s in ("src", "dst"))
            ok = wait_for(forgotten, 15)
            report(ok, f"{name}: exporter forgets QEMUs that exited ({time.monotonic() - t0:.1f} s)",
                   "mftrace_targets still present 15 s after both QEMUs exited")
        except Exception as e:
            report(False, name, f"{type(e).__name__}: {e} [logs in {wd}] " +
                   traceback.format_exc(limit=3).replace("\n", " | "))
        finally:
            if tracer is not None and tracer.proc and tracer.proc.poll() is None:
                tracer.stop()
    return info


def compare_counters(exp: Exporter, prom: Prometheus, truth: Truth, info: dict) -> None:
    sel = f'domain=~"{TOKEN}-.*"'
    n_runs = len(info["runs"])

    # Prometheus has scraped everything the exporter counted
    def caught_up():
        v = prom.query(f"sum(mftrace_migrations_total{{{sel}}})")
        return v and round(float(v[0]["value"][1])) == 2 * n_runs
    caught = wait_for(caught_up, 20)

    def harness():
        if not n_runs:
            return "no migration ran"
        errs = []
        if not caught:
            errs.append(f"Prometheus never reached {2 * n_runs} migrations: "
                        f"{prom.query(f'sum(mftrace_migrations_total{{{sel}}})')}")
        per = prom.vector(f"sum by (role, domain) (mftrace_migrations_total{{{sel}}})", ("role", "domain"))
        for run in info["runs"]:
            for role, side in (("source", "src"), ("destination", "dst")):
                if per.get((role, run["vms"][side])) != 1:
                    errs.append(f"{run['scenario']}: {role} migrations {per.get((role, run['vms'][side]))}, ran 1")
        failed = prom.vector(f'sum by (domain) (mftrace_migration_outcomes_total{{{sel},role="destination",'
                             f'outcome=~"failed|exited|killed"}})', ("domain",))
        for vm, dst_failed in info["dst_failed"].items():
            if bool(failed.get((vm,))) != dst_failed:
                errs.append(f"{vm}: QEMU says failed={dst_failed}, Prometheus failed outcomes {failed.get((vm,))}")
        return "; ".join(errs) or None
    check(f"prometheus: one migration per role per scenario, failures as QEMU reports them ({n_runs} runs)",
          harness)

    def family(metric: str, by: tuple, want: dict):
        def f():
            got = prom.vector(f"sum by ({', '.join(by)}) ({metric}{{{sel}}})", by)
            if got != want:
                return f"Prometheus {sorted(got.items())} != truth {sorted(want.items())}"
            return None
        return f
    check(f"prometheus: mftrace_migrations_total by role, verdict, possible, domain = JSON truth "
          f"({sum(truth.migrations.values())})",
          family("mftrace_migrations_total", ("role", "verdict", "possible", "domain"), truth.migrations))
    check(f"prometheus: mftrace_channels_total by role, verdict, possible, domain = JSON truth "
          f"({sum(truth.channels.values())})",
          family("mftrace_channels_total", ("role", "verdict", "possible", "domain"), truth.channels))

    def closed_set():
        got = {s["metric"].get("verdict") for s in prom.query(f"mftrace_channels_total{{{sel}}}")}
        got |= {s["metric"].get("verdict") for s in prom.query(f"mftrace_migrations_total{{{sel}}}")}
        extra = got - set(DECIDED) - {"undecided"}
        return f"verdict label values outside the closed set: {extra}" if extra else None
    check("prometheus: the verdict label takes only the six verdicts and undecided", closed_set)
    check(f"prometheus: mftrace_premature_terminations_total by impact = JSON truth "
          f"({sorted(truth.premature.items())})",
          family("mftrace_premature_terminations_total", ("role", "impact", "domain"), truth.premature))
    check(f"prometheus: mftrace_premature_tolerated_by_relaxed_eof_total = JSON truth on the destinations "
          f"that relax EOF ({sorted(truth.relaxed.items())})",
          family("mftrace_premature_tolerated_by_relaxed_eof_total", ("domain",), truth.relaxed))
    check(f"prometheus: mftrace_flagged_migrations_total = JSON truth ({sum(truth.flagged.values())})",
          family("mftrace_flagged_migrations_total", ("role", "domain"), truth.flagged))
    check("prometheus: mftrace_migration_outcomes_total = JSON truth",
          family("mftrace_migration_outcomes_total", ("role", "outcome", "domain"), truth.outcomes))

    def last_versions():
        rows = prom.query(f"mftrace_last_migration_info{{{sel}}}")
        errs = []
        for run in info["runs"]:
            for r in rows:
                mt = r["metric"]
                if mt["domain"] not in run["vms"].values():
                    continue
                sc = qemumig.SCENARIOS[run["scenario"]]
                ver = sc.src if mt["role"] == "source" else sc.dst
                want_clean = run["clean_tls"] if mt["role"] == "destination" else None
                if not mt.get("qemu_version", "").startswith(ver + ".") or mt.get("clean_tls_termination") != want_clean:
                    errs.append(f"{run['scenario']} {mt['role']}: qemu_version {mt.get('qemu_version')!r}, "
                                f"clean_tls_termination {mt.get('clean_tls_termination')!r} (wanted {ver}, {want_clean})")
        return "; ".join(errs) or None
    check("prometheus: mftrace_last_migration_info carries each end's QEMU version and the destination's "
          "clean_tls_termination", last_versions)

    def last_info():
        rows = prom.query(f"mftrace_last_migration_info{{{sel}}}")
        errs = []
        for run in info["runs"]:
            ends = {r["metric"]["role"]: r["metric"].get("endpoint") for r in rows
                    if r["metric"]["domain"] in run["vms"].values()}
            want = f"127.0.0.1:{run['result']['port']}"
            if ends != {"source": want, "destination": want}:
                errs.append(f"{run['scenario']}: endpoints {ends}, migration went to {want}")
        # the join that deploy/README.md shows
        with open(os.path.join(DEPLOY, "README.md")) as f:
            join = re.search(r"```promql\n(.*?)```", f.read(), re.S).group(1)
        pairs = {r["metric"]["domain"]: r["metric"].get("dst_domain") for r in prom.query(join)
                 if r["metric"]["domain"].startswith(TOKEN)}
        want = {run["vms"]["src"]: run["vms"]["dst"] for run in info["runs"]}
        if pairs != want:
            errs.append(f"README join gives {pairs}, migrations went {want}")
        return "; ".join(errs) or None
    check("prometheus: mftrace_last_migration_info joins source and destination (the README's PromQL)",
          last_info)


def compare_histograms(prom: Prometheus, truth: Truth, baseline: dict, exp: Exporter) -> None:
    """Histograms carry no domain label: compare the increase since this test started, exactly
    if no other QEMU on the host migrated meanwhile (else at least)."""
    def f():
        now = histogram_state(exp)
        foreign = now["foreign"] - baseline["foreign"]
        errs = []
        for role in ("source", "destination"):
            for key, want in (("rx_count", truth.rx_count.get(role, 0)), ("rx_sum", truth.rx_sum.get(role, 0)),
                              ("fin_read", truth.fin_read.get(role, 0))):
                got = now[key].get(role, 0) - baseline[key].get(role, 0)
                if got != want and not (foreign and got >= want):
                    errs.append(f"{key} {role}: {got} != {want}")
        # and Prometheus has the same as the exporter (other QEMUs on the host may migrate
        # meanwhile: the next scrape catches up)
        def same():
            pc = prom.vector("sum by (role) (mftrace_channel_received_bytes_count)", ("role",))
            cur = histogram_state(exp)["rx_count"]
            return [f"Prometheus rx count {role} {pc.get((role,))} != exporter {v}"
                    for role, v in cur.items() if v and pc.get((role,)) != v]
        if wait_for(lambda: not same(), 10):
            pass
        else:
            errs += same()
        if errs:
            return "; ".join(errs)
        return None
    check(f"histograms: bytes and FIN->final-read counts and sums = JSON truth "
          f"(rx {truth.rx_count}, fin_to_final_read {truth.fin_read})", f)


def histogram_state(exp: Exporter) -> dict:
    st = {"rx_count": {}, "rx_sum": {}, "fin_read": {}, "foreign": 0}
    for n, lb, v in exp.metrics():
        role = lb.get("role")
        if n == "mftrace_channel_received_bytes_count":
            st["rx_count"][role] = st["rx_count"].get(role, 0) + round(v)
        elif n == "mftrace_channel_received_bytes_sum":
            st["rx_sum"][role] = st["rx_sum"].get(role, 0) + round(v)
        elif n == "mftrace_channel_fin_to_final_read_seconds_count":
            st["fin_read"][role] = st["fin_read"].get(role, 0) + round(v)
        elif n == "mftrace_migrations_total" and not lb.get("domain", "").startswith(TOKEN):
            st["foreign"] += round(v)
    return st


def check_prometheus_side(exp: Exporter, prom: Prometheus, truth: Truth, info: dict) -> None:
    def target_up():
        t = prom.api("targets")["data"]["activeTargets"]
        mine = [x for x in t if x["labels"].get("job") == "mftrace"]
        if len(mine) != 1 or mine[0]["health"] != "up" or mine[0]["lastError"]:
            return f"targets {mine}"
        om = prom.query('sum(mftrace_exporter_scrape_duration_seconds_count{format="openmetrics"})')
        if not om or float(om[0]["value"][1]) < 5:
            return f"Prometheus did not scrape OpenMetrics: {om}"
        lost = prom.query("sum(mftrace_events_lost_total)")
        if not lost or float(lost[0]["value"][1]) != 0:
            return f"events lost: {lost}"
        return None
    check("prometheus: target up, scraped as OpenMetrics, no event lost", target_up)

    def alerts():
        want_fatal = {vm for (role, sev, vm), n in truth.premature.items()
                      if role == "destination" and sev == "fatal" and n}

        def firing():
            a = prom.api("alerts")["data"]["alerts"]
            return {x["labels"].get("domain") for x in a if x["labels"]["alertname"] == "MftraceFatalPrematureTermination"
                    and x["state"] == "firing" and x["labels"].get("domain", "").startswith(TOKEN)}
        got = wait_for(lambda: firing() == want_fatal, 15) and firing()
        if got != want_fatal:
            return f"MftraceFatalPrematureTermination fires for {firing()}, truth has fatal on {want_fatal}"
        share, total = truth.dest_share()
        a = prom.api("alerts")["data"]["alerts"]
        unsafe = [x for x in a if x["labels"]["alertname"] == "MftraceUnsafeChannelEndings"]
        if total >= 8 and share >= 0.6 and not unsafe:
            return f"share {share:.2f} of {total} channels, but MftraceUnsafeChannelEndings is not pending"
        if share <= 0.4 and unsafe and not truth_foreign_possible(prom):
            return f"share {share:.2f} of {total} channels, but MftraceUnsafeChannelEndings is {unsafe}"
        # the runbook_url, with this Prometheus' external label mftrace_runbooks as its base
        for x in a:
            if x["labels"]["alertname"] == "MftraceFatalPrematureTermination":
                url = x["annotations"].get("runbook_url", "")
                if not url.startswith("file://") or not os.path.isfile(url[len("file://"):]):
                    return f"runbook_url {url!r} is not a file of docs/runbooks/"
        return None
    check("alerts: the real rules fire on the real counters (fatal premature termination per domain), "
          "with a runbook_url that exists", alerts)

    def risky():
        # the pairs the scenarios' definitions make risky: a destination with the property on,
        # fed by a source older than 10.0
        want = {run["vms"]["dst"] for run in info["runs"]
                if run["clean_tls"] == "on" and run["src_version"] == "7.2"}

        def firing():
            a = prom.api("alerts")["data"]["alerts"]
            return {x["labels"].get("domain") for x in a if x["labels"]["alertname"] == "MftraceRiskyVersionPair"
                    and x["state"] == "firing" and x["labels"].get("domain", "").startswith(TOKEN)}
        got = wait_for(lambda: firing() == want, 15) and firing()
        if got != want:
            return f"MftraceRiskyVersionPair fires for {firing()}; the scenarios make {want} risky"
        return None
    check("alerts: MftraceRiskyVersionPair flags exactly the 7.2 -> clean-tls-termination=on pairs", risky)

    def dashboard():
        with open(DASHBOARD) as f:
            d = json.load(f)
        exprs = []

        def walk(panels):
            for p in panels:
                walk(p.get("panels", []))
                for t in p.get("targets", []):
                    exprs.append((p["title"], t["expr"]))
        walk(d["panels"])
        subst = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s",
                 "$instance": ".*", "$domain": ".*"}
        errs, empty = [], []
        for title, e in exprs:
            q = e
            for k, v in subst.items():
                q = q.replace(k, v)
            if "$" in q:
                errs.append(f"{title}: unsubstituted variable in {q!r}")
                continue
            try:
                if not prom.query(q):
                    empty.append(title)
            except RuntimeError as ex:
                errs.append(f"{title}: {ex}")
        for v in d["templating"]["list"]:
            if v["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.*), *(\w+)\)", v["definition"])
            sel = m.group(1).replace("$instance", ".*")
            r = prom.api(f"label/{m.group(2)}/values", **{"match[]": sel})
            if r.get("status") != "success" or not r["data"]:
                errs.append(f"variable {v['name']}: {r}")
        must = {"Migrations", "Multifd channels by verdict (destination)", "Last migration per domain and role",
                "QEMUs traced: versions, machine, -incoming, clean-tls-termination", "Exporter CPU and memory",
                "QEMU processes traced", "Bytes received per multifd channel"}
        errs += [f"{t}: no data" for t in sorted(must & set(empty))]
        if errs:
            return "; ".join(errs)
        return None
    check("dashboard: every panel query and variable runs on the real Prometheus; key panels have data",
          dashboard)


def truth_foreign_possible(prom: Prometheus) -> bool:
    r = prom.query(f'sum(mftrace_channels_total{{domain!~"{TOKEN}-.*"}})')
    return bool(r and float(r[0]["value"][1]))


def check_promtool(exp: Exporter) -> None:
    def metrics():
        st, hdr, body = exp.get()
        if st != 200 or not hdr.get("content-type", "").startswith("text/plain; version=0.0.4"):
            return f"status {st}, content-type {hdr.get('content-type')}"
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30)
        if r.returncode:
            return f"promtool: {(r.stdout + r.stderr).decode().strip()[:600]}"
        return None
    check("promtool check metrics on the live exposition (after the migrations)", metrics)

    def openmetrics():
        st, hdr, body = exp.get(headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"})
        text = body.decode()
        if st != 200 or not hdr.get("content-type", "").startswith("application/openmetrics-text; version=1.0.0"):
            return f"status {st}, content-type {hdr.get('content-type')}"
        if not text.endswith("# EOF\n") or text.count("# EOF") != 1:
            return "no single trailing # EOF"
        if "# TYPE mftrace_migrations counter" not in text or "# TYPE mftrace_build info" not in text:
            return "OpenMetrics family names missing"
        st2, hdr2, body2 = exp.get(headers={"Accept": "*/*"})
        if not hdr2.get("content-type", "").startswith("text/plain; version=0.0.4") or b"# EOF" in body2:
            return f"*/* got {hdr2.get('content-type')}"
        return None
    check("content negotiation: OpenMetrics when asked, text 0.0.4 otherwise", openmetrics)

    def build_info():
        v = subprocess.run([MFTRACE, "--version"], capture_output=True, text=True, timeout=10).stdout.split()
        rows = [lb for n, lb, val in exp.metrics() if n == "mftrace_build_info" and val == 1]
        if len(v) != 2 or len(rows) != 1 or rows[0].get("version") != v[1]:
            return f"mftrace --version says {v}, build_info {rows}"
        if rows[0].get("libmicrohttpd", "").count(".") != 2 or not rows[0].get("libbpf"):
            return f"library versions missing: {rows}"
        # the revision the build was made from: a commit of this repository (git describe's
        # form), and HEAD's own when no commit was made since the binary was built
        rev = rows[0].get("revision", "")
        git = ["git", "-C", REPO]
        if subprocess.run(git + ["rev-parse", "--git-dir"], capture_output=True, timeout=10).returncode:
            return None if rev == "unknown" else f"revision {rev!r} outside git"
        base = rev.removesuffix("-dirty")
        if subprocess.run(git + ["rev-parse", "--verify", "--quiet", base + "^{commit}"], capture_output=True,
                          timeout=10).returncode:
            return f"revision {rev!r} names no commit of this repository"
        # built from a clean tree, and nothing committed since: exactly HEAD
        head_time = int(subprocess.run(git + ["log", "-1", "--format=%ct"], capture_output=True, text=True,
                                       timeout=10).stdout.strip() or 0)
        describe = subprocess.run(git + ["describe", "--tags", "--always"], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        if base == rev and head_time + 1 < os.path.getmtime(MFTRACE) and base != describe:
            return f"revision {rev!r}, but HEAD (older than the binary) is {describe!r}"
        return None
    check("mftrace_build_info carries the version mftrace --version prints, and the git revision", build_info)

    def process():
        m = {n: v for n, lb, v in exp.metrics() if n.startswith("process_") or n == "mftrace_bpf_stats_enabled"}
        with open(f"/proc/{exp.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        start = btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
        fds = len(os.listdir(f"/proc/{exp.pid}/fd"))
        rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        with open("/proc/sys/kernel/bpf_stats_enabled") as f:
            stats = int(f.read().strip())
        errs = []
        if abs(m.get("process_start_time_seconds", 0) - start) > 1:
            errs.append(f"start time {m.get('process_start_time_seconds')} vs /proc {start}")
        if abs(m.get("process_open_fds", -100) - fds) > 8:
            errs.append(f"open fds {m.get('process_open_fds')} vs /proc {fds}")
        if not 0.5 * rss <= m.get("process_resident_memory_bytes", 0) <= 2 * rss:
            errs.append(f"RSS {m.get('process_resident_memory_bytes')} vs /proc {rss}")
        if m.get("process_max_fds", 0) < 1024 or m.get("process_cpu_seconds_total", 0) <= 0:
            errs.append(f"max fds {m.get('process_max_fds')}, cpu {m.get('process_cpu_seconds_total')}")
        if m.get("mftrace_bpf_stats_enabled") != stats:
            errs.append(f"mftrace_bpf_stats_enabled {m.get('mftrace_bpf_stats_enabled')}, the sysctl {stats}")
        return "; ".join(errs) or None
    check("process_* against the exporter's /proc; mftrace_bpf_stats_enabled against the sysctl", process)

    def bpf_stats():
        # BPF_ENABLE_STATS: run-time statistics on while this descriptor is open (the
        # sysctl shows it), off again when it closes; nothing global is left changed
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        attr = ctypes.create_string_buffer(8)         # union bpf_attr { __u32 type; } = BPF_STATS_RUN_TIME (0)
        fd = libc.syscall(ctypes.c_long(321), ctypes.c_long(32), attr, ctypes.c_long(8))  # SYS_bpf, BPF_ENABLE_STATS
        if fd < 0:
            return ("skip", f"BPF_ENABLE_STATS failed: errno {ctypes.get_errno()}")
        try:
            def runs():
                return {lb["program"]: v for n, lb, v in exp.metrics() if n == "mftrace_bpf_program_runs_total"}
            # read once a second by the session's loop, which attaching to a new QEMU holds up
            wait_for(lambda: runs(), 15, 0.5)
            first = runs()

            def grown():
                with socket.create_connection(("127.0.0.1", exp.port)) as s:   # traffic of our own
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    s.recv(100)
                now = runs()
                return now if any(now.get(p, 0) > first[p] for p in first) else None
            later = wait_for(grown, 15, 0.5) or runs()
            times = {lb["program"]: v for n, lb, v in exp.metrics() if n == "mftrace_bpf_program_run_time_seconds_total"}
        finally:
            os.close(fd)
        if not first or set(first) != set(times):
            return f"programs {sorted(first)}; with run time {sorted(times)}"
        if not any(later.get(p, 0) > first[p] for p in first) or not any(v > 0 for v in times.values()):
            return f"no program ran: {first} -> {later}"
        print(f"# BPF programs: {len(first)} loaded; runs counted meanwhile: "
              f"{ {p: int(later[p] - first[p]) for p in first if later.get(p, 0) > first[p]} }", flush=True)
        return None
    check("mftrace_bpf_program_{runs,run_time_seconds}_total while kernel.bpf_stats_enabled is on", bpf_stats)

    def rules():
        r = subprocess.run([PROMTOOL, "test", "rules", os.path.basename(RULE_TESTS)], cwd=DEPLOY,
                           capture_output=True, text=True, timeout=60)
        r2 = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True, text=True, timeout=60)
        if r.returncode or r2.returncode:
            return (r.stdout + r.stderr + r2.stdout + r2.stderr).strip()[-800:]
        return None
    check("promtool test rules deploy/mftrace.rules.test.yml", rules)


def raw_exchange(port: int, data: bytes, timeout: float = 5, linger: float = 0) -> bytes:
    """Send bytes, read until the server closes or timeout; what came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        try:
            s.sendall(data)
        except OSError:
            pass               # the server may close before reading everything
        if linger:
            time.sleep(linger)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    return out


def status_of(resp: bytes) -> int | None:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    return int(m.group(1)) if m else None


def check_robustness(exp: Exporter) -> None:
    port = exp.port
    rss0 = rss_kib(exp.pid)

    def serving():
        st, _, body = exp.get(timeout=3)
        return st == 200 and b"mftrace_build_info" in body

    def drained():
        """Only Prometheus' keep-alive connection and this scrape held, as the guard counts
        them (a connection counts until libmicrohttpd has closed it; read once a second)."""
        try:
            v = [val for n, lb, val in exp.metrics()
                 if n == "mftrace_resource_used" and lb.get("resource") == "http_connections"]
        except (OSError, http.client.HTTPException):
            return False
        return bool(v) and v[0] <= 2

    def methods():
        errs = []
        for method, path, want in (("POST", "/metrics", 405), ("PUT", "/metrics", 405), ("DELETE", "/", 405),
                                   ("OPTIONS", "/metrics", 405), ("GET", "/nope", 404),
                                   ("GET", "/metrics/../etc", 404), ("GET", "/", 200), ("HEAD", "/metrics", 200)):
            st, hdr, body = exp.get(path, method=method)
            if st != want:
                errs.append(f"{method} {path}: {st}, wanted {want}")
            if want == 405 and hdr.get("allow") != "GET, HEAD":
                errs.append(f"{method} {path}: Allow {hdr.get('allow')!r}")
            if method == "HEAD" and body:
                errs.append("HEAD returned a body")
        st, hdr, body = exp.get("/")
        if "text/html" not in hdr.get("content-type", "") or b'href="/metrics"' not in body:
            errs.append("index page")
        return "; ".join(errs) or None
    check("http: only GET and HEAD; 405 with Allow, 404 elsewhere, an index on /", methods)

    def malformed():
        cases = {
            "GET with a body": (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", (400,)),
            "huge header (64 KiB)": (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n",
                                     (400, 413, 431, None)),
            "huge URL (32 KiB)": (b"GET /" + b"a" * 32768 + b" HTTP/1.1\r\nHost: x\r\n\r\n", (400, 413, 414, 431, None)),
            "10000 headers": (b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"A: b\r\n" * 10000 + b"\r\n",
                              (400, 413, 431, None)),
            "garbage bytes": (bytes(range(256)) * 16 + b"\r\n\r\n", (400, 505, None)),
            "HTTP/0.9": (b"GET /metrics\r\n\r\n", (400, 505, None)),
            "unknown version": (b"GET /metrics HTTP/7.0\r\nHost: x\r\n\r\n", (400, 505, None)),
            "NUL in request line": (b"GET /met\x00rics HTTP/1.1\r\nHost: x\r\n\r\n", (400, 404, None)),
            "bad chunked body": (b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                                 (400, 405)),
        }
        errs = []
        for what, (data, want) in cases.items():
            resp = raw_exchange(port, data, timeout=HTTP_TIMEOUT + 3)
            st = status_of(resp)
            if st not in want:
                errs.append(f"{what}: status {st} ({resp[:60]!r}), wanted one of {want}")
            if not exp.alive():
                return f"exporter died after {what}: {exp.stderr()[-300:]}"
            if not serving():
                errs.append(f"not serving after {what}")
        return "; ".join(errs) or None
    check("http: malformed requests get 4xx or a closed connection; the exporter keeps serving", malformed)

    def slow_clients():
        # two clients trickle a request one byte every 0.4 s; meanwhile normal scrapes by
        # the same user must stay fast. That user holds at most MAX_CONN / 8 = 4 connections,
        # and Prometheus, running as root like this test, keeps one of them open: 2 slow + 1
        # Prometheus + 1 scrape. (With 3 slow clients the 5th connection is refused, as the
        # share says: exact since Prometheus' keep-alive connection is counted.) Other
        # users' hostile clients: tests/integration/test_exporter_hostile.py
        # the malformed requests' connections gone first (the guard counts a connection until
        # libmicrohttpd has closed it): only Prometheus' and the scrape asking
        wait_for(drained, 10, 0.5)
        req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
        # the scraper keeps its connection alive, as Prometheus does: one connection for
        # all its scrapes (a new one each time would also count the previous one until
        # libmicrohttpd has closed it)
        scraper = None

        def connected():      # the scraper's connection, answered once before the slow clients come
            nonlocal scraper
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
            try:
                c.request("GET", "/metrics")
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    scraper = c
                    return True
            except (OSError, http.client.HTTPException):
                pass
            c.close()
            return False
        if not wait_for(connected, 10, 0.5):
            return "no scrape answered before the slow clients came"
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        worst = 0.0
        try:
            for i in range(6):   # well inside the --timeout deadline
                for s in socks:
                    s.send(req[i:i + 1])
                t = time.monotonic()
                try:
                    scraper.request("GET", "/metrics")
                    r = scraper.getresponse()
                    ok = r.status == 200 and b"mftrace_build_info" in r.read()
                except (OSError, http.client.HTTPException) as e:
                    ok = f"{type(e).__name__}: {e}"
                if ok is not True:
                    return f"scrape {i} failed while {len(socks)} slow clients held connections: {ok}"
                worst = max(worst, time.monotonic() - t)
                time.sleep(0.4)
        finally:
            scraper.close()
            for s in socks:
                s.close()
        if worst > 1.0:
            return f"a scrape took {worst:.2f} s beside slow clients"
        # an idle client is dropped after --timeout. (Closed at once, it was refused for its
        # user's share: the connections just closed are counted until libmicrohttpd has
        # closed them. Then it is tried again, once they are gone.)
        for _ in range(5):
            wait_for(drained, 10, 0.5)
            time.sleep(0.5)
            s = socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT + 5)
            t = time.monotonic()
            try:
                data = s.recv(100)
            except OSError:
                data = b""
            held = time.monotonic() - t
            s.close()
            if data or held >= 0.5:
                break
        if data or not (HTTP_TIMEOUT - 0.5 <= held <= HTTP_TIMEOUT + 3):
            return f"idle connection closed after {held:.1f} s (timeout {HTTP_TIMEOUT}), got {data!r}"
        print(f"# slow clients: worst scrape {worst * 1000:.0f} ms; idle client dropped after {held:.1f} s",
              flush=True)
        return None
    check("http: slow clients do not block scrapes; idle connections time out", slow_clients)

    def parallel():
        n, lock = 300, threading.Lock()
        stats = {"ok": 0, "refused": 0, "other": 0}
        base_socks = n_sockets(exp.pid)
        peak = [base_socks]
        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], n_sockets(exp.pid))
                except OSError:
                    pass
                time.sleep(0.01)

        def client():
            try:
                st, _, body = exp.get(timeout=10)
                key = "ok" if st == 200 and body.endswith(b"\n") else "other"
            except (OSError, http.client.HTTPException):
                key = "refused"
            with lock:
                stats[key] += 1
        smp = threading.Thread(target=sampler)
        smp.start()
        t0 = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        took = time.monotonic() - t0
        stop.set()
        smp.join()
        print(f"# {n} parallel clients: {stats}, {took:.1f} s, peak sockets {peak[0]} (base {base_socks})",
              flush=True)
        if any(t.is_alive() for t in threads) or took > 30:
            return f"clients still hanging after {took:.0f} s"
        if stats["ok"] == 0 or stats["other"]:
            return f"results {stats}"
        if peak[0] > base_socks + MAX_CONN:
            return f"{peak[0]} sockets open at once, limit {MAX_CONN} + {base_socks}"
        if not serving():
            return "not serving afterwards"
        return None
    check(f"http: 300 parallel clients: bounded connections (<= {MAX_CONN}) and time; still serving", parallel)

    def memory():
        wait_for(drained, 10, 0.5)      # the 300 clients' connections closed first
        for _ in range(500):
            st, _, _ = exp.get(headers={"Accept": "application/openmetrics-text"} if _ % 2 else {})
            if st != 200:
                return f"scrape {_} answered {st}"
        rss1 = rss_kib(exp.pid)
        print(f"# exporter RSS {rss0} KiB before the HTTP tests, {rss1} KiB after them and 500 more scrapes",
              flush=True)
        if rss1 - rss0 > 8192:
            return f"RSS grew from {rss0} to {rss1} KiB"
        return None
    check("http: RSS bounded across the HTTP tests and 500 scrapes (+8 MiB at most)", memory)


def main() -> int:
    if os.geteuid() != 0:
        report(None, "exporter", "needs root (eBPF)")
        return 0
    missing = [p for p in (MFTRACE, PROMETHEUS, PROMTOOL, shutil.which("setpriv") or "setpriv") if not os.path.exists(p)]
    if missing:
        report(None, "exporter", f"missing {missing} (run make, scripts/setup.sh)")
        return 0
    workdir = tempfile.mkdtemp(prefix="mft-exporter-")
    exp = prom = None
    keep = False
    try:
        test_cli(workdir)
        exp = Exporter(workdir).start()
        prom = Prometheus(workdir, exp.port).start()
        baseline = histogram_state(exp)
        truth = Truth()
        have10 = os.path.exists(os.path.join(qemumig.qemu10_prefix(), "usr/bin/qemu-system-x86_64"))
        if not have10:
            for s in [s for s in SCENARIOS if "10.0" in s]:
                report(None, f"scenario {s}", "QEMU 10.0.2 not installed (run scripts/setup.sh)")
                SCENARIOS.remove(s)
        info = run_scenarios(exp, prom, workdir, truth)
        compare_counters(exp, prom, truth, info)
        compare_histograms(prom, truth, baseline, exp)
        check_prometheus_side(exp, prom, truth, info)
        check_promtool(exp)
        check_robustness(exp)

        def shutdown():
            # the kernel detaches uprobes one at a time, tens of ms each (seconds on a busy host),
            # for every QEMU of the host this exporter traces
            rc = exp.stop(timeout=300)
            return None if rc == 0 else f"exit status {rc} on SIGTERM: {exp.stderr()[-300:]}"
        check("exporter: SIGTERM stops it, exit 0", shutdown)
    except Exception as e:
        report(False, "exporter", f"{type(e).__name__}: {e} [logs in {workdir}] " +
               traceback.format_exc(limit=3).replace("\n", " | "))
    finally:
        if prom:
            prom.stop()
        if exp:
            exp.stop()
        keep = results["fail"] > 0
        if keep:
            print(f"# logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
