#!/usr/bin/env python3
"""Packages and portability, the way an operator meets them (Makefile: static, btf,
install, deb; packaging/README.md):

  - make static: the portable binary needs no libbpf, libelf, zlib or libmicrohttpd at
    run time. Proven in a chroot that holds only the binary and the shared libraries it
    names (glibc, GnuTLS and GnuTLS's own): --version, --help and a real doctor (with
    /proc and /sys bound in a private mount namespace), whose probes must fire; the
    dynamic build/mftrace, in the same chroot, must fail to start (the control).
  - --btf FILE and the built-in minimal BTF (make btf): /sys/kernel/btf hidden under a
    tmpfs in a private mount namespace (unshare -m, as test_cli.py does), where mftrace
    without them must refuse; with them, doctor's proof passes, and a real TLS multifd
    migration between two QEMU 7.2 is traced live (-p, attached and ready), recorded
    and served by the exporter, with every destination channel's verdict equal to the
    independent bpftrace observer's (tests/lib/observer.py) and QEMU's own outcome.
  - make install into a DESTDIR: every file where packaging/README.md says, the unit
    pointed at the installed binary and default file, an edited default file kept.
  - bash completion: the commands, each command's options and the values it offers are
    ones the real binary accepts.
  - make deb: lintian reports no error and no warning; then a real `dpkg -i` into a
    clean Debian root (mmdebstrap's essential set plus the package's Depends, nothing
    else; cached in /var/cache/mftrace/debroot), the installed binary run in a chroot
    there, `dpkg -L`, `dpkg -r` (the conffile stays), `dpkg -P`.

Run from the repository root, as root, after `make`:

    python3 tests/integration/test_packaging.py [-k PATTERN]

Prints "PASS name", "FAIL name: why" or "SKIP name: why" per check. Everything it makes
lives in one temporary directory (removed at the end, once no mount is left in it); the
mounts live only in the private mount namespaces of the commands that made them; the
QEMUs it starts are stopped by pid.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

import observer  # noqa: E402
import qemumig  # noqa: E402
from mftrace_run import Tracer  # noqa: E402

MFTRACE = os.path.join(REPO, "build", "mftrace")
DEBROOT_CACHE = "/var/cache/mftrace/debroot"
STATIC_LIBS = ("libbpf", "libelf", "libz", "libmicrohttpd")
PROOF_LINES = ("connect (tcp state)", "accept", "recv result", "shutdown", "FIN received",
               "EOF read", "close", "socket destroyed", "GnuTLS uprobes", "events lost")
HIDE_BTF = 'mount -t tmpfs none /sys/kernel/btf && exec "$0" "$@"'
OTHER_RELEASE = "0.0.0-mftrace-test"   # a second kernel for make btf BTF_VMLINUX=DIR

results = {"pass": 0, "fail": 0, "skip": 0}
PATTERN = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv[:-1] else ""


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def check(cond: bool, why: str) -> None:
    if not cond:
        raise Fail(why)


def short(s: str, n: int = 400) -> str:
    s = s.replace("\n", "\\n")
    return s if len(s) <= n else s[:n] + "..."


def run(argv: list[str], timeout: float = 120, cwd: str = REPO, env: dict | None = None,
        input: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=env, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise Fail(f"`{' '.join(argv)}` did not finish in {timeout}s: {short(str(e.stderr or ''))}")


def ok_run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    r = run(argv, **kw)
    check(r.returncode == 0, f"`{' '.join(argv)}` exited {r.returncode}: {short(r.stderr or r.stdout)}")
    return r


def version() -> str:
    with open(os.path.join(REPO, "include", "version.h")) as f:
        return re.search(r'#define MFT_VERSION "([^"]+)"', f.read()).group(1)


def release() -> str:
    return os.uname().release


def need_root() -> None:
    if os.geteuid() != 0:
        raise Skip("needs root (eBPF, chroot, mount namespaces, dpkg --root)")


def need_btf() -> None:
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        raise Skip("this kernel has no BTF to hide or to make a minimal BTF from")


def doctor_ok(r: subprocess.CompletedProcess, what: str) -> None:
    """A doctor run that passed every check, its proof included."""
    check(r.returncode == 0 and "doctor: all checks passed" in r.stdout,
          f"{what}: doctor exited {r.returncode}: {short(r.stdout[-900:])} {short(r.stderr)}")
    for name in PROOF_LINES:
        check(re.search(rf"^\s+\[ok\]\s+{re.escape(name)}\s", r.stdout, re.M) is not None,
              f"{what}: proof line '{name}' is not [ok]: {short(r.stdout[-900:])}")


def ns(script: str, *args: str) -> list[str]:
    """argv running sh SCRIPT ARGS in a private mount namespace: its mounts die with it."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, *args]


class Work:
    """The temporary directory of this run, and what was built into it."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="mft-pkg-")
        self.btf_dir = os.path.join(self.dir, "btf")
        self.static = os.path.join(self.dir, "mftrace-static")
        self.deb: str | None = None
        self.destdir = os.path.join(self.dir, "inst")

    def path(self, *p: str) -> str:
        return os.path.join(self.dir, *p)

    def min_btf(self) -> str:
        return os.path.join(self.btf_dir, release() + ".btf")

    # what several checks need, made once: the make targets under test
    def built_static(self) -> str:
        """make btf for this kernel and, as for a fleet, for a list of kernels
        (BTF_VMLINUX=DIR: here this kernel's BTF under a second release name), then
        make static with all of them built in."""
        if not os.path.exists(self.static):
            ok_run(["make", "-s", "btf", f"BTF_DIR={self.btf_dir}"])
            fleet = self.path("vmlinux-btfs")
            os.makedirs(fleet)
            shutil.copyfile("/sys/kernel/btf/vmlinux", os.path.join(fleet, OTHER_RELEASE + ".btf"))
            ok_run(["make", "-s", "btf", f"BTF_DIR={self.btf_dir}", f"BTF_VMLINUX={fleet}"])
            ok_run(["make", "-s", "static", f"BTF_DIR={self.btf_dir}", f"STATIC_BIN={self.static}"])
        return self.static

    def built_deb(self) -> str:
        if self.deb is None:
            ok_run(["make", "-s", "deb"], timeout=300)
            debs = glob.glob(os.path.join(REPO, "build", f"mftrace_{version()}_*.deb"))
            check(len(debs) == 1, f"make deb made {debs}")
            self.deb = debs[0]
        return self.deb

    def installed(self) -> str:
        if not os.path.isdir(self.destdir):
            ok_run(["make", "-s", "install", f"DESTDIR={self.destdir}", "PREFIX=/usr/local"])
        return self.destdir

    def mounts_inside(self) -> list[str]:
        with open("/proc/self/mountinfo") as f:
            return [ln.split()[4] for ln in f if ln.split()[4].startswith(self.dir)]

    def cleanup(self) -> None:
        left = self.mounts_inside()
        if left:
            print(f"FAIL cleanup: mounts left under {self.dir}: {left} (not removed)", flush=True)
            results["fail"] += 1
            return
        if results["fail"]:  # what the failures name stays, without the bulky roots
            for bulky in ("debroot", "static-root", "debx"):
                shutil.rmtree(self.path(bulky), ignore_errors=True)
            print(f"packaging: logs kept in {self.dir}", flush=True)
            return
        shutil.rmtree(self.dir, ignore_errors=True)


W: Work


# ------------------------------------------------------------------ make static, make btf

def test_static_build() -> str:
    need_root()
    need_btf()
    W.built_static()
    check(os.path.getsize(W.min_btf()) < 64 * 1024,
          f"minimal BTF {W.min_btf()} is {os.path.getsize(W.min_btf())} bytes")
    with open(os.path.join(W.btf_dir, "embedded.c")) as f:
        table = re.findall(r'^\t\{ "([^"]+)", btf_\d+, sizeof', f.read(), re.M)
    check(sorted(table) == sorted([release(), OTHER_RELEASE]),
          f"the built-in BTF table names {table}, expected {release()} and {OTHER_RELEASE}")
    dyn = ok_run(["readelf", "-d", MFTRACE]).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", ok_run(["readelf", "-d", W.static]).stdout)
    check(needed, "readelf found no NEEDED entry at all")
    for lib in STATIC_LIBS:
        check(not any(n.startswith(lib + ".so") for n in needed),
              f"{W.static} still needs {lib}: NEEDED {needed}")
    check("libbpf.so" in dyn, "control: build/mftrace does not need libbpf.so (is it static already?)")
    syms = ok_run(["objdump", "-T", W.static]).stdout
    glibc = max((tuple(int(x) for x in v.split(".")) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", syms)),
                default=(0,))
    return (f"NEEDED {' '.join(needed)}; glibc >= {'.'.join(map(str, glibc))}; "
            f"{os.path.getsize(W.static)} bytes; built-in BTFs for {' and '.join(table)} "
            f"({os.path.getsize(W.min_btf())} bytes each)")


def make_static_root() -> tuple[str, list[str]]:
    """A root with only the static binary, the loader and the libraries ldd names."""
    root = W.path("static-root")
    os.makedirs(os.path.join(root, "usr", "sbin"))
    for d in ("proc", "sys", "tmp"):
        os.makedirs(os.path.join(root, d))
    shutil.copy2(W.static, os.path.join(root, "usr", "sbin", "mftrace"))
    shutil.copy2(MFTRACE, os.path.join(root, "usr", "sbin", "mftrace-dynamic"))
    libs = []
    for line in ok_run(["ldd", W.static]).stdout.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if not m:
            continue
        src = m.group(1)
        dst = os.path.join(root, src.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.realpath(src), dst)
        libs.append(os.path.basename(src))
    return root, libs


def test_static_chroot() -> str:
    need_root()
    need_btf()
    W.built_static()
    root, libs = make_static_root()
    present = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    for lib in STATIC_LIBS:
        bad = [p for p in present if os.path.basename(p).startswith(lib + ".") or
               os.path.basename(p).startswith(lib + "-")]
        check(not bad, f"the clean root holds {bad}")
    chroot = 'mount --rbind /proc "$0/proc" && mount --rbind /sys "$0/sys" && exec chroot "$0" "$@"'
    r = ok_run(ns(chroot, root, "/usr/sbin/mftrace", "--version"))
    check(r.stdout.strip() == f"mftrace {version()}", f"--version printed '{r.stdout.strip()}'")
    r = ok_run(ns(chroot, root, "/usr/sbin/mftrace", "--help"))
    check(r.stdout.startswith("Usage: mftrace") and "--btf FILE" in r.stdout, f"--help: {short(r.stdout)}")
    r = run(ns(chroot, root, "/usr/sbin/mftrace", "doctor"), timeout=90)
    doctor_ok(r, "static binary in the chroot")
    # the control: the dynamic build cannot even start there
    r = run(ns(chroot, root, "/usr/sbin/mftrace-dynamic", "--version"))
    check(r.returncode != 0 and "libbpf.so" in r.stderr,
          f"control: build/mftrace in the clean root exited {r.returncode}: {short(r.stderr)}")
    # kernel BTF hidden inside the chroot too: the built-in minimal BTF takes over
    hidden = ('mount --rbind /proc "$0/proc" && mount --rbind /sys "$0/sys" && '
              'mount -t tmpfs none "$0/sys/kernel/btf" && exec chroot "$0" "$@"')
    r = run(ns(hidden, root, "/usr/sbin/mftrace", "doctor"), timeout=90)
    check(re.search(rf"^\s+\[ok\]\s+BTF\s+built-in minimal BTF for {re.escape(release())}", r.stdout, re.M)
          is not None, f"no '[ok] BTF built-in minimal BTF' line: {short(r.stdout[:700])}")
    doctor_ok(r, "static binary, kernel BTF hidden")
    return f"the root holds the binary and {' '.join(sorted(libs))}; doctor passed, with and without kernel BTF"


# ------------------------------------------------------------------ --btf

def test_btf_bad_file() -> None:
    need_root()
    for arg, pat in (("/etc/passwd", r"--btf /etc/passwd: not a BTF file"),
                     ("/nonexistent.btf", r"--btf /nonexistent.btf: No such file")):
        for cmd in (["doctor"], ["-p", "1"], ["record", "-o", W.path("x.rec")], ["exporter"]):
            r = run([MFTRACE, *cmd, "--btf", arg], timeout=20)
            lines = r.stderr.splitlines()
            check(r.returncode == 1 and len(lines) == 1 and re.search(pat, lines[0]) and r.stdout == "",
                  f"`mftrace {' '.join(cmd)} --btf {arg}`: exit {r.returncode}, stdout '{short(r.stdout)}', "
                  f"stderr '{short(r.stderr)}'")
    check(not os.path.exists(W.path("x.rec")), "record created its output despite a bad --btf")


def test_btf_doctor_hidden() -> str:
    need_root()
    need_btf()
    W.built_static()
    r = run(ns(HIDE_BTF, MFTRACE, "doctor"), timeout=60)
    check(r.returncode == 1 and re.search(r"^\s+\[FAIL\]\s+BTF\s+this kernel has no BTF.*--btf FILE", r.stdout, re.M),
          f"control: without --btf, doctor exited {r.returncode}: {short(r.stdout[:600])}")
    r = run(ns(HIDE_BTF, MFTRACE, "doctor", "--btf", W.min_btf()), timeout=60)
    m = re.search(r"^\s+\[ok\]\s+BTF\s+(.*--btf, (\d+) types.*)$", r.stdout, re.M)
    check(m is not None, f"no '[ok] BTF ... (--btf, N types)' line: {short(r.stdout[:600])}")
    doctor_ok(r, "doctor --btf, kernel BTF hidden")
    return f"{m.group(2)} types in the minimal BTF; proof passed"


class NamedMigration(qemumig.Migration):
    """A harness migration whose destination carries a VM name unique to this run, so that
    the exporter's series of this test are told from those of other QEMUs on the host."""

    def __init__(self, scenario: str, workdir: str, **kw):
        super().__init__(scenario, workdir, **kw)
        self.dst_name = f"mftpkg{os.getpid()}-dst"

    def argv(self, side, psk_dir):
        return super().argv(side, psk_dir) + (["-name", self.dst_name] if side == "dst" else [])


def test_btf_live_migration() -> str:
    """A real TLS multifd migration 7.2 -> 7.2, kernel BTF hidden from every mftrace."""
    need_root()
    need_btf()
    W.built_static()
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c", HIDE_BTF]
    wd = W.path("migration")
    os.makedirs(wd)
    rec = os.path.join(wd, "dst.mftrec")
    procs: list[subprocess.Popen] = []
    files = []
    errs: list[str] = []
    with NamedMigration("7.2-7.2", wd) as m:
        m.start()
        obs = observer.Observer(m.dst_pid, m.src_pid, m.port, wd).start()
        tracer = None
        try:
            tracer = Tracer([m.dst_pid, m.src_pid], wd, "live", ["-q", "--btf", W.min_btf()], prefix=prefix)
            tracer.start()  # raises unless "mftrace: ready"
            for name, argv in (("record", [MFTRACE, "record", "-o", rec, "-p", str(m.dst_pid), "--btf", W.min_btf()]),
                               ("exporter", [MFTRACE, "exporter", "--listen", "127.0.0.1:0", "--btf", W.min_btf()])):
                files.append(open(os.path.join(wd, name + ".err"), "w"))
                procs.append(subprocess.Popen(prefix + argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=files[-1]))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                texts = [open(os.path.join(wd, n + ".err")).read() for n in ("record", "exporter")]
                if all("mftrace: ready" in t for t in texts) or any(p.poll() is not None for p in procs):
                    break
                time.sleep(0.1)
            for n, t, p in zip(("record", "exporter"), texts, procs):
                check("mftrace: ready" in t, f"{n} --btf not ready (exit {p.poll()}): {short(t)}")
            port = re.search(r"serving metrics on http://127\.0\.0\.1:(\d+)/metrics", texts[1])
            check(port is not None, f"exporter printed no address: {short(texts[1])}")
            res = m.migrate()
            tracer.wait_migrations(2)
            time.sleep(1.5)  # the exporter and the recorder see the same end
            with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics", timeout=10) as resp:
                metrics = resp.read().decode()
        finally:
            # every mftrace stops at once (SIGINT: detaching takes a while), the observer
            # meanwhile; the migration is over by now
            for p in procs + ([tracer.proc] if tracer and tracer.proc else []):
                if p.poll() is None:
                    p.send_signal(2)
            run_obs = obs.stop()
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for f in files:
                f.close()
            if tracer is not None:
                tracer.stop(30)
    check(res.get("src_status") == "completed", f"QEMU's migration did not complete: {res.get('src_status')}")
    truth = {k: observer.truth_verdict(c, run_obs.peer(c), {"tls": True})
             for k, c in run_obs.dst_conns.items() if c.role == "multifd"}
    check(len(truth) == 4, f"the observer saw {len(truth)} multifd channels, expected 4")
    live = {(r["local_port"], r["peer_port"]): r for r in tracer.records("channel") if r["pid"] == m.dst_pid}
    migs = [r for r in tracer.records("migration") if r["pid"] == m.dst_pid]
    if len(migs) != 1 or migs[0]["outcome"] != "completed":
        errs.append(f"live: destination migration records {[(r['outcome']) for r in migs]}, expected one completed")
    for key, want in truth.items():
        got = live.get(key)
        if got is None or not got["decided"] or got["verdict"] != want:
            errs.append(f"live {key}: {got and (got['verdict'], got['decided'])}, observer {want}")
    lost = tracer.lost()
    if lost != 0:
        errs.append(f"live: {lost} events lost")
    # the recording, replayed: the same verdicts
    r = run([MFTRACE, "report", rec, "--format", "json", "-q"], timeout=60)
    replay = {}
    for line in r.stdout.splitlines():
        if line.startswith("{") and '"channel"' in line:
            c = json.loads(line)
            if c.get("type") == "channel" and c.get("pid") == m.dst_pid:
                replay[(c["local_port"], c["peer_port"])] = c["verdict"]
    for key, want in truth.items():
        if replay.get(key) != want:
            errs.append(f"record --btf {key}: report says {replay.get(key)}, observer {want}")
    # the exporter counted those channels (the VM's label is named vm or domain)
    n = sum(float(v) for lb, v in re.findall(r'^mftrace_channels_total\{([^}]*)\} (\S+)$', metrics, re.M)
            if 'role="destination"' in lb and f'="{m.dst_name}"' in lb)
    if n != len(truth):
        errs.append(f"exporter --btf: {n} destination channels counted, expected {len(truth)}")
    check(not errs, "; ".join(errs) + f" [logs in {wd}]")
    return "verdicts " + ",".join(sorted(truth.values())) + " (live, record+report, exporter)"


# ------------------------------------------------------------------ make install

INSTALLED = {
    "sbin/mftrace": 0o755,
    "share/man/man8/mftrace.8": 0o644,
    "lib/systemd/system/mftrace-exporter.service": 0o644,
    "share/mftrace/mftrace.rules.yml": 0o644,
    "share/mftrace/mftrace.rules.test.yml": 0o644,
    "share/mftrace/grafana-dashboard.json": 0o644,
    "share/bash-completion/completions/mftrace": 0o644,
}


def unit_lines(path: str) -> dict[str, str]:
    out = {}
    with open(path) as f:
        for ln in f:
            if "=" in ln and not ln.startswith("#"):
                k, v = ln.rstrip("\n").split("=", 1)
                out[k] = v
    return out


def test_make_install() -> str:
    d = W.installed()
    for rel, mode in INSTALLED.items():
        p = os.path.join(d, "usr/local", rel)
        check(os.path.isfile(p), f"make install did not install {p}")
        check(os.stat(p).st_mode & 0o777 == mode, f"{p}: mode {oct(os.stat(p).st_mode & 0o777)}, expected {oct(mode)}")
    default = os.path.join(d, "etc/default/mftrace")
    check(os.path.isfile(default), "no /etc/default/mftrace")
    with open(default) as f:
        check(re.search(r"^ARGS=", f.read(), re.M) is not None, "/etc/default/mftrace sets no ARGS")
    u = unit_lines(os.path.join(d, "usr/local/lib/systemd/system/mftrace-exporter.service"))
    check(u.get("ExecStart") == "/usr/local/sbin/mftrace exporter $ARGS", f"ExecStart={u.get('ExecStart')}")
    check(u.get("EnvironmentFile") == "-/etc/default/mftrace", f"EnvironmentFile={u.get('EnvironmentFile')}")
    r = run(["cmp", os.path.join(d, "usr/local/sbin/mftrace"), MFTRACE])
    check(r.returncode == 0, "the installed binary is not build/mftrace")
    # the administrator's edit survives a second install
    with open(default, "a") as f:
        f.write('ARGS="--listen 127.0.0.1:29353"\n')
    ok_run(["make", "-s", "install", f"DESTDIR={d}", "PREFIX=/usr/local"])
    with open(default) as f:
        check("29353" in f.read(), "a second make install overwrote the edited /etc/default/mftrace")
    # another prefix and configuration directory: the unit follows them
    d2 = W.path("inst2")
    ok_run(["make", "-s", "install", f"DESTDIR={d2}", "PREFIX=/opt/mft", "SYSCONFDIR=/opt/mft/etc"])
    u = unit_lines(os.path.join(d2, "opt/mft/lib/systemd/system/mftrace-exporter.service"))
    check(u.get("ExecStart") == "/opt/mft/sbin/mftrace exporter $ARGS" and
          u.get("EnvironmentFile") == "-/opt/mft/etc/default/mftrace",
          f"PREFIX=/opt/mft: ExecStart={u.get('ExecStart')} EnvironmentFile={u.get('EnvironmentFile')}")
    check(os.path.isfile(os.path.join(d2, "opt/mft/etc/default/mftrace")), "SYSCONFDIR not honoured")
    files = sorted(os.path.relpath(os.path.join(p, f), d) for p, _, fs in os.walk(d) for f in fs)
    return f"{len(files)} files under DESTDIR: " + " ".join(files)


def test_bash_completion() -> str:
    comp = os.path.join(W.installed(), "usr/local/share/bash-completion/completions/mftrace")
    check(os.path.isfile(comp), f"make install installed no {comp}")
    lib = "/usr/share/bash-completion/bash_completion"
    if not os.path.exists(lib):
        raise Skip("bash-completion is not installed (scripts/setup.sh installs it)")
    script = f"""
source {lib}
source {comp}
complete -p mftrace >/dev/null || exit 3
c() {{ COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}};
      COMPREPLY=(); _mftrace; printf '%s\\t%s\\n' "$*" "${{COMPREPLY[*]}}"; }}
c mftrace ''
for cmd in '' record report exporter doctor; do c mftrace $cmd -; done
c mftrace --mechanism ''
c mftrace report -f ''
"""
    env = dict(os.environ, PATH=os.path.dirname(MFTRACE) + ":" + os.environ.get("PATH", ""))
    r = ok_run(["bash", "-c", script], env=env)
    got = dict(ln.split("\t", 1) for ln in r.stdout.splitlines() if "\t" in ln)
    cmds = set(got.get("mftrace ", "").split())
    check({"record", "report", "exporter", "doctor"} <= cmds, f"mftrace <TAB> offers {sorted(cmds)}")
    # Is each offered option one the binary knows? `mftrace CMD OPT -h` as nobody, in an
    # empty directory: a flag is followed by the help; an option that takes a value takes
    # "-h" and the command fails at once without privileges; an unknown one is refused.
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
    cwd = W.path("nobody")
    os.makedirs(cwd, exist_ok=True)
    os.chmod(cwd, 0o777)

    def refused(*argv: str, why: str = r"unknown option") -> str | None:
        r = run(nobody + [MFTRACE, *argv, "-h"], timeout=15, cwd=cwd)
        return r.stderr if r.returncode != 0 and re.search(why, r.stderr) else None
    n = 0
    for cmd in ("", "record", "report", "exporter", "doctor"):
        key = "mftrace " + (cmd + " " if cmd else "") + "-"
        opts = got.get(key, "").split()
        check("--help" in opts and len(opts) >= 3, f"'{key}<TAB>' offers {opts}")
        for o in opts:
            why = refused(*([cmd] if cmd else []), o)
            check(why is None, f"'{key}<TAB>' offers {o}, which the binary refuses: {short(why or '')}")
            n += 1
    for m in got.get("mftrace --mechanism ", "").split():
        why = refused("--mechanism", m, why="invalid mechanism")
        check(why is None, f"--mechanism {m} is offered but refused: {short(why or '')}")
    for f in got.get("mftrace report -f ", "").split():
        why = refused("report", "-f", f, why="invalid format")
        check(why is None, f"report -f {f} is offered but refused: {short(why or '')}")
    check(refused("record", "--no-such-option") is not None, "control: an unknown option was not refused")
    check(not os.listdir(cwd), f"the option checks left files: {os.listdir(cwd)}")
    return f"{len(cmds)} commands, {n} options, each accepted by the binary"


# ------------------------------------------------------------------ make deb

DEB_FILES = ("usr/sbin/mftrace", "usr/share/man/man8/mftrace.8.gz", "lib/systemd/system/mftrace-exporter.service",
             "etc/default/mftrace", "usr/share/mftrace/mftrace.rules.yml", "usr/share/mftrace/grafana-dashboard.json",
             "usr/share/bash-completion/completions/mftrace", "usr/share/doc/mftrace/copyright",
             "usr/share/doc/mftrace/changelog.gz")


def test_deb_build() -> str:
    W.built_deb()
    ctl = ok_run(["dpkg-deb", "-f", W.deb]).stdout
    fields = dict(re.findall(r"^(\S+): (.*)$", ctl, re.M))
    check(fields.get("Version") == version(), f"Version: {fields.get('Version')}")
    deps = fields.get("Depends", "")
    for d in ("libc6", "libelf1", "libmicrohttpd12"):
        check(re.search(rf"\b{d}\b", deps) is not None, f"Depends lacks {d}: {deps}")
    # libbpf is linked from its archive (uprobe_multi needs libbpf >= 1.3, which a Debian
    # 12 host has only from backports): the package must not ask for the host's libbpf1
    check(re.search(r"\blibbpf1\b", deps) is None, f"Depends names libbpf1: {deps}")
    listing = ok_run(["dpkg-deb", "-c", W.deb]).stdout
    for f in DEB_FILES:
        check(f"./{f}\n" in listing, f"the package has no /{f}")
    info = W.path("debinfo")
    ok_run(["dpkg-deb", "-e", W.deb, info])
    with open(os.path.join(info, "conffiles")) as f:
        check(f.read().split() == ["/etc/default/mftrace"], "conffiles is not /etc/default/mftrace")
    x = W.path("debx")
    ok_run(["dpkg-deb", "-x", W.deb, x])
    with gzip.open(os.path.join(x, "usr/share/man/man8/mftrace.8.gz"), "rt") as f:
        check(r"\-\-btf" in f.read(), "the packaged man page does not document --btf")
    u = unit_lines(os.path.join(x, "lib/systemd/system/mftrace-exporter.service"))
    check(u.get("ExecStart") == "/usr/sbin/mftrace exporter $ARGS", f"packaged ExecStart={u.get('ExecStart')}")
    if shutil.which("systemd-analyze"):
        # the packaged unit, its binary where the package unpacked it
        unit = W.path("mftrace-exporter.service")
        with open(os.path.join(x, "lib/systemd/system/mftrace-exporter.service")) as f, open(unit, "w") as g:
            g.write(f.read().replace("/usr/sbin/mftrace", os.path.join(x, "usr/sbin/mftrace")))
        r = run(["systemd-analyze", "verify", "--man=no", unit])
        check(r.returncode == 0 and not (r.stderr + r.stdout).strip(),
              f"systemd-analyze verify: {short(r.stderr + r.stdout)}")
    return f"{os.path.basename(W.deb)}: Depends: {deps}"


def test_lintian() -> str:
    W.built_deb()
    if not shutil.which("lintian"):
        raise Skip("lintian is not installed (scripts/setup.sh installs it)")
    r = run(["lintian", "--display-info", "--pedantic", W.deb], timeout=180)
    tags = [ln for ln in r.stdout.splitlines() if re.match(r"^[EWIPX]: ", ln)]
    bad = [t for t in tags if t[0] in "EW"]
    check(r.returncode == 0 and not bad, f"lintian: {bad or short(r.stderr)}")
    return "no error, no warning" + (f"; {len(tags)} info/pedantic: " + " | ".join(tags) if tags else "")


def debroot_tar(depends: list[str]) -> str:
    """mmdebstrap's essential set plus depends: made once, cached, replaced when they change."""
    if not shutil.which("mmdebstrap"):
        raise Skip("mmdebstrap is not installed (scripts/setup.sh installs it)")
    suite = "bookworm"
    with open("/etc/os-release") as f:
        m = re.search(r"^VERSION_CODENAME=(\w+)", f.read(), re.M)
        suite = m.group(1) if m else suite
    name = f"{suite}-essential+{'+'.join(sorted(depends))}.tar"
    tar = os.path.join(DEBROOT_CACHE, name)
    if os.path.isfile(tar):
        return tar
    os.makedirs(DEBROOT_CACHE, exist_ok=True)
    for old in glob.glob(os.path.join(DEBROOT_CACHE, "*.tar")):
        if os.path.isfile(old):
            os.unlink(old)
    tmp = tar[:-len(".tar")] + ".part.tar"  # mmdebstrap picks the format by the extension
    r = run(["mmdebstrap", "--quiet", "--mode=root", "--variant=essential", "--include=" + ",".join(depends),
             suite, tmp], timeout=600)
    if r.returncode != 0:
        if os.path.isfile(tmp):
            os.unlink(tmp)
        raise Skip(f"cannot make a clean {suite} root with mmdebstrap: {short(r.stderr)}")
    os.rename(tmp, tar)
    return tar


def test_deb_clean_root() -> str:
    need_root()
    W.built_deb()
    deps = ok_run(["dpkg-deb", "-f", W.deb, "Depends"]).stdout
    names = sorted({d.strip().split()[0] for d in deps.split(",")})
    tar = debroot_tar(names)
    root = W.path("debroot")
    os.makedirs(root)
    ok_run(["tar", "-C", root, "-xf", tar], timeout=180)
    for lib in ("libelf.so.1", "libmicrohttpd.so.12"):
        check(glob.glob(os.path.join(root, "usr/lib/*", lib)), f"the clean root lacks {lib}: Depends not installed?")
    check(not os.path.exists(os.path.join(root, "usr/sbin/mftrace")), "mftrace is in the clean root already")
    shutil.copy2(W.deb, os.path.join(root, "tmp", "mftrace.deb"))
    r = ok_run(["dpkg", f"--root={root}", "-i", os.path.join(root, "tmp", "mftrace.deb")])
    st = ok_run(["dpkg", f"--root={root}", "-s", "mftrace"]).stdout
    check("Status: install ok installed" in st, f"dpkg -s: {short(st)}")
    listed = [ln for ln in ok_run(["dpkg", f"--root={root}", "-L", "mftrace"]).stdout.splitlines() if ln]
    for f in DEB_FILES:
        check("/" + f in listed, f"dpkg -L does not list /{f}")
    for p in listed:
        check(os.path.lexists(os.path.join(root, p.lstrip("/"))), f"dpkg -L lists {p}, absent from the root")
    chroot = 'mount --rbind /proc "$0/proc" && mount --rbind /sys "$0/sys" && exec chroot "$0" "$@"'
    r = ok_run(ns(chroot, root, "/usr/sbin/mftrace", "--version"))
    check(r.stdout.strip() == f"mftrace {version()}", f"installed --version: {r.stdout.strip()}")
    r = ok_run(ns(chroot, root, "/usr/sbin/mftrace", "exporter", "--help"))
    check("Usage: mftrace exporter" in r.stdout, f"installed exporter --help: {short(r.stdout)}")
    r = run(ns(chroot, root, "/usr/sbin/mftrace", "doctor"), timeout=90)
    doctor_ok(r, "installed package in the clean root")
    ok_run(["dpkg", f"--root={root}", "-r", "mftrace"])
    left = [p for p in listed if os.path.isfile(os.path.join(root, p.lstrip("/")))]
    check(left == ["/etc/default/mftrace"], f"after dpkg -r, left: {left} (only the conffile should stay)")
    st = run(["dpkg", f"--root={root}", "-s", "mftrace"]).stdout
    check("Status: deinstall ok config-files" in st, f"after dpkg -r: {short(st)}")
    ok_run(["dpkg", f"--root={root}", "-P", "mftrace"])
    check(not os.path.exists(os.path.join(root, "etc/default/mftrace")), "dpkg -P left /etc/default/mftrace")
    check(run(["dpkg", f"--root={root}", "-s", "mftrace"]).returncode != 0, "dpkg -P: mftrace still known")
    return f"installed into essential+{','.join(names)}, {len(listed)} paths, doctor passed in the chroot; removed, purged"


# ------------------------------------------------------------------ main

TESTS = [
    ("static build", test_static_build),
    ("static binary in a clean chroot", test_static_chroot),
    ("--btf bad file", test_btf_bad_file),
    ("--btf doctor, kernel BTF hidden", test_btf_doctor_hidden),
    ("--btf live migration, kernel BTF hidden", test_btf_live_migration),
    ("make install DESTDIR", test_make_install),
    ("bash completion", test_bash_completion),
    ("make deb", test_deb_build),
    ("lintian", test_lintian),
    ("dpkg -i into a clean root", test_deb_clean_root),
]


def main() -> int:
    global W
    if not os.path.exists(MFTRACE):
        print("FAIL packaging: build/mftrace missing; run make first")
        return 1
    W = Work()
    try:
        for name, fn in TESTS:
            if PATTERN and PATTERN not in name:
                continue
            t0 = time.monotonic()
            try:
                note = fn()
                print(f"PASS {name}{': ' + note if note else ''} ({time.monotonic() - t0:.1f}s)", flush=True)
                results["pass"] += 1
            except Skip as e:
                print(f"SKIP {name}: {e}", flush=True)
                results["skip"] += 1
            except Fail as e:
                print(f"FAIL {name}: {e}", flush=True)
                results["fail"] += 1
            except Exception as e:  # a harness failure is a failure, with its reason
                print(f"FAIL {name}: {type(e).__name__}: {e} | "
                      + traceback.format_exc(limit=3).replace("\n", " | "), flush=True)
                results["fail"] += 1
    finally:
        W.cleanup()
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
