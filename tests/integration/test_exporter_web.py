#!/usr/bin/env python3
"""`mftrace exporter --web.*`: the exporter toolkit's flags and --web.config.file, met the
way a user meets them.

Run from the repository root, as root, after `make`:

    python3 tests/integration/test_exporter_web.py

Prints "PASS name", "FAIL name: why" or "SKIP name: why" per test.

What runs, all on loopback and stopped by pid; everything in one temp dir:
  - a CA, a server certificate for 127.0.0.1 and a client certificate, made here with
    certtool (gnutls-bin); a bcrypt hash made with libxcrypt (Python's crypt module);
  - the exporter on two listen addresses at once, with TLS and basic authentication;
  - Debian's real Prometheus scraping it over HTTPS (tls_config ca_file) with basic_auth,
    and a second job with a wrong password (its target must be down with a 401);
  - curl: 401 without or with wrong credentials, 200 with them; an HTTP client on the
    HTTPS port gets no HTTP answer; a client certificate required, then given;
  - bad configuration files: one line on stderr naming the key and line, exit 1.
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
import urllib.parse
import urllib.request
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MFTRACE = os.environ.get("MFTRACE", os.path.join(REPO, "build", "mftrace"))
PROMETHEUS = "/usr/bin/prometheus"
CERTTOOL = shutil.which("certtool") or "/usr/bin/certtool"
CURL = shutil.which("curl") or "/usr/bin/curl"
PASSWORD = "correct horse battery staple"

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


def check(name, fn):
    try:
        r = fn()
    except Exception as e:
        r = f"{type(e).__name__}: {e} | " + traceback.format_exc(limit=3).replace("\n", " | ")
    report(r is None, name, r or "")


def wait_for(fn, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bcrypt(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024))


def make_certs(d: str) -> None:
    tmpl = {
        "ca": 'cn = "mftrace test CA"\nca\ncert_signing_key\nexpiration_days = 2\n',
        "srv": 'cn = "127.0.0.1"\nip_address = "127.0.0.1"\nip_address = "::1"\ntls_www_server\n'
               'encryption_key\nsigning_key\nexpiration_days = 2\n',
        "cli": 'cn = "prometheus"\ntls_www_client\nsigning_key\nexpiration_days = 2\n',
    }
    for name, t in tmpl.items():
        with open(os.path.join(d, name + ".tmpl"), "w") as f:
            f.write(t)

    def run(*args):
        subprocess.run([CERTTOOL, *args], cwd=d, check=True, capture_output=True, timeout=60)
    for name in ("ca", "srv", "cli"):
        run("--generate-privkey", "--key-type=ecdsa", "--outfile", name + ".key")
    run("--generate-self-signed", "--load-privkey", "ca.key", "--template", "ca.tmpl", "--outfile", "ca.pem")
    for name in ("srv", "cli"):
        run("--generate-certificate", "--load-privkey", name + ".key", "--load-ca-certificate", "ca.pem",
            "--load-ca-privkey", "ca.key", "--template", name + ".tmpl", "--outfile", name + ".pem")


class Exporter:
    def __init__(self, d: str, args: list[str], tag: str):
        self.err = os.path.join(d, f"exporter-{tag}.err")
        self.proc = subprocess.Popen([MFTRACE, "exporter", *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.err, "w"))
        # attaching to every QEMU of a busy host can take a while
        ok = wait_for(lambda: "mftrace: ready" in self.stderr() or self.proc.poll() is not None, 120)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError(f"exporter did not start: {self.stderr().strip()[-400:]}")
        self.urls = re.findall(r"serving metrics on (\S+)", self.stderr())

    def stderr(self) -> str:
        with open(self.err) as f:
            return f.read()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def curl(url: str, *args: str) -> tuple[int, str, int]:
    """(HTTP status or 0, body, curl's exit status)"""
    r = subprocess.run([CURL, "-sS", "-m", "10", "-o", "-", "-w", "\n%{http_code}", *args, url],
                       capture_output=True, text=True, timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body, r.returncode


def test_https(d: str) -> None:
    make_certs(d)
    with open(os.path.join(d, "web.yml"), "w") as f:
        f.write("# the exporter toolkit's format\ntls_server_config:\n  cert_file: srv.pem\n  key_file: srv.key\n"
                f"  min_version: TLS12\nbasic_auth_users:\n  prometheus: {bcrypt(PASSWORD)}\n"
                f"  other: '{bcrypt('another one')}'\n")
    exp = Exporter(d, ["--web.listen-address", "127.0.0.1:0", "--web.listen-address", "[::1]:0",
                       "--web.telemetry-path", "/mftrace/metrics", "--web.config.file", os.path.join(d, "web.yml")],
                   "https")
    prom = None
    try:
        def listening():
            want = [r"https://127\.0\.0\.1:\d+/mftrace/metrics", r"https://\[::1\]:\d+/mftrace/metrics"]
            if len(exp.urls) != 2 or not all(re.fullmatch(w, u) for w, u in zip(want, exp.urls)):
                return f"serving on {exp.urls}"
            return None
        check("web: --web.listen-address twice serves on both, at --web.telemetry-path, over https", listening)
        url4, url6 = exp.urls[0], exp.urls[1]
        port4 = int(re.search(r":(\d+)/", url4).group(1))
        ca = ["--cacert", os.path.join(d, "ca.pem")]

        def refused():
            errs = []
            for what, args, want in (("no credentials", [], 401), ("wrong password", ["-u", "prometheus:nope"], 401),
                                     ("unknown user", ["-u", "nobody:" + PASSWORD], 401),
                                     ("another user's password", ["-u", "other:" + PASSWORD], 401),
                                     ("the index page without credentials", [], 401)):
                u = url4 if "index" not in what else url4.rsplit("/mftrace/", 1)[0] + "/"
                st, body, rc = curl(u, *ca, *args, "-D", "-")
                if st != want or "mftrace_build_info" in body:
                    errs.append(f"{what}: status {st} (curl {rc})")
                elif 'WWW-Authenticate: Basic realm="mftrace"' not in body:
                    errs.append(f"{what}: no Basic challenge in {body[:200]!r}")
            return "; ".join(errs) or None
        check("web: curl without credentials, or with wrong ones, gets 401 and a Basic challenge", refused)

        def accepted():
            for u in (url4, url6):
                st, body, rc = curl(u, *ca, "-u", "prometheus:" + PASSWORD)
                if st != 200 or "mftrace_build_info{" not in body or "process_open_fds" not in body:
                    return f"{u}: status {st} (curl {rc}), {body[:120]!r}"
            st, _, _ = curl(url4, *ca, "-u", "other:another one")
            if st != 200:
                return f"second user: {st}"
            st, _, _ = curl(url4.replace("/mftrace/metrics", "/metrics"), *ca, "-u", "prometheus:" + PASSWORD)
            return None if st == 404 else f"/metrics answered {st} though the path is /mftrace/metrics"
        check("web: with the right credentials, 200 on both addresses; the old path is 404", accepted)

        def plain_http_on_https():
            st, body, rc = curl(url4.replace("https://", "http://"), "-u", "prometheus:" + PASSWORD)
            if st != 0 or "mftrace_" in body or rc == 0:
                return f"an HTTP client got status {st}, curl exit {rc}"
            st, _, rc = curl(url4)      # no CA: the certificate is not trusted
            return None if rc != 0 and st == 0 else f"untrusted certificate accepted: {st}"
        check("web: an HTTP client on the HTTPS port gets no answer; an unknown CA is refused by curl",
              plain_http_on_https)

        # a real Prometheus: one job with the right credentials, one with a wrong password
        prom_dir = os.path.join(d, "prometheus")
        os.makedirs(prom_dir)
        prom_port = free_port()
        job = {"scheme": "https", "metrics_path": "/mftrace/metrics",
               "tls_config": {"ca_file": os.path.join(d, "ca.pem")},
               "static_configs": [{"targets": [f"127.0.0.1:{port4}"]}]}
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
                  "scrape_configs": [dict(job, job_name="mftrace",
                                          basic_auth={"username": "prometheus", "password": PASSWORD}),
                                     dict(job, job_name="wrong",
                                          basic_auth={"username": "prometheus", "password": "guess"})]}
        with open(os.path.join(prom_dir, "prometheus.yml"), "w") as f:
            json.dump(config, f)
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={prom_dir}/prometheus.yml",
                                 f"--storage.tsdb.path={prom_dir}/data", f"--web.listen-address=127.0.0.1:{prom_port}",
                                 "--log.level=warn"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(prom_dir, "log"), "w"))

        def api(path, **params):
            q = f"http://127.0.0.1:{prom_port}/api/v1/{path}"
            if params:
                q += "?" + urllib.parse.urlencode(params)
            try:
                with urllib.request.urlopen(q, timeout=5) as r:
                    return json.load(r)
            except OSError:
                return {}

        def targets():
            t = api("targets").get("data", {}).get("activeTargets", [])
            got = {x["labels"]["job"]: x for x in t}
            if got.get("mftrace", {}).get("health") == "up" and got.get("wrong", {}).get("lastError"):
                return got
            return None

        def prometheus():
            got = wait_for(targets, 30, 0.5)
            if not got:
                return f"targets never settled: {api('targets')}"
            if "401" not in got["wrong"]["lastError"] or got["wrong"]["health"] != "down":
                return f"the wrong password's job: {got['wrong']['health']}, {got['wrong']['lastError']!r}"
            r = api("query", query='mftrace_build_info{job="mftrace"}')
            rows = r.get("data", {}).get("result", [])
            if len(rows) != 1 or not rows[0]["metric"].get("revision"):
                return f"mftrace_build_info through Prometheus: {rows}"
            r = api("query", query='process_start_time_seconds{job="mftrace"}')
            rows = r.get("data", {}).get("result", [])
            if len(rows) != 1 or abs(float(rows[0]["value"][1]) - time.time()) > 3600:
                return f"process_start_time_seconds {rows}"
            return None
        check("web: a real Prometheus scrapes over HTTPS (tls_config ca_file) with basic_auth; "
              "a wrong password's job is down with 401", prometheus)
    finally:
        if prom and prom.poll() is None:
            prom.send_signal(signal.SIGTERM)
            try:
                prom.wait(15)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        rc = exp.stop()
    report(rc == 0, "web: SIGTERM stops the HTTPS exporter, exit 0", f"exit {rc}: {exp.stderr()[-300:]}")

    # client certificates: RequireAndVerifyClientCert
    with open(os.path.join(d, "mtls.yml"), "w") as f:
        f.write(f"tls_server_config:\n  cert_file: {d}/srv.pem\n  key_file: {d}/srv.key\n"
                f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {d}/ca.pem\n")
    exp = Exporter(d, ["--listen", "127.0.0.1:0", "--web.config.file", os.path.join(d, "mtls.yml")], "mtls")
    try:
        def mtls():
            u = exp.urls[0]
            ca = ["--cacert", os.path.join(d, "ca.pem")]
            st, _, _ = curl(u, *ca)
            if st != 403:
                return f"without a client certificate: {st}"
            st, body, rc = curl(u, *ca, "--cert", os.path.join(d, "cli.pem"), "--key", os.path.join(d, "cli.key"))
            if st != 200 or "mftrace_build_info" not in body:
                return f"with the client certificate: {st} (curl {rc})"
            return None
        check("web: client_auth_type RequireAndVerifyClientCert: 403 without a client certificate, 200 with one", mtls)
    finally:
        exp.stop()


def test_bad_configs(d: str) -> None:
    cases = (
        ("tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
         "bad.yml:4: unknown or unsupported key 'cipher_suites' in tls_server_config"),
        ("http_server_config:\n  http2: true\n", "bad.yml:1: unknown or unsupported key 'http_server_config'"),
        ("basic_auth_users:\n  alice: hunter2\n", "bad.yml:2: user 'alice': not a bcrypt hash"),
        ("tls_server_config:\n  cert_file: a.pem\n", "tls_server_config needs cert_file and key_file"),
        ("tls_server_config:\n  cert_file: nonexistent.pem\n  key_file: nonexistent.key\n",
         "cannot read " + d + "/nonexistent.pem"),
        ("tls_server_config: [\n", "bad.yml:2: not valid YAML"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequestClientCert\n",
         "client_auth_type 'RequestClientCert' is not supported"),
    )
    errs = []
    path = os.path.join(d, "bad.yml")
    for text, want in cases:
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([MFTRACE, "exporter", "--listen", "127.0.0.1:0", "--web.config.file", path],
                           capture_output=True, text=True, timeout=20)
        lines = r.stderr.strip().splitlines()
        if r.returncode != 1 or len(lines) != 1 or want not in lines[0]:
            errs.append(f"{text!r}: exit {r.returncode}, stderr {r.stderr.strip()!r}")
    for args, want in ((["--web.telemetry-path", "metrics"], "invalid --web.telemetry-path"),
                       (["--web.telemetry-path", "/a<b>"], "invalid --web.telemetry-path"),
                       (["--web.listen-address", "localhost:1"], "invalid address"),
                       (["--web.config.file"], "needs a value")):
        r = subprocess.run([MFTRACE, "exporter", *args], capture_output=True, text=True, timeout=20)
        lines = r.stderr.strip().splitlines()
        if r.returncode != 1 or len(lines) != 1 or want not in lines[0]:
            errs.append(f"{args}: exit {r.returncode}, stderr {r.stderr.strip()!r}")
    report(not errs, "web: bad --web.config.file and --web.* values: one line naming the key and line, exit 1",
           "; ".join(errs))


def main() -> int:
    if os.geteuid() != 0:
        report(None, "exporter web", "needs root (eBPF)")
        return 0
    missing = [p for p in (MFTRACE, PROMETHEUS, CERTTOOL, CURL) if not os.path.exists(p)]
    if missing:
        report(None, "exporter web", f"missing {missing} (run make, scripts/setup.sh)")
        return 0
    d = tempfile.mkdtemp(prefix="mft-web-")
    try:
        test_bad_configs(d)
        test_https(d)
    except Exception as e:
        report(False, "exporter web", f"{type(e).__name__}: {e} [files in {d}] " +
               traceback.format_exc(limit=3).replace("\n", " | "))
    finally:
        if results["fail"]:
            print(f"# files kept in {d}", flush=True)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
