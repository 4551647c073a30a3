#!/usr/bin/env python3
"""A hostile "QEMU": nothing a traced process supplies is ever run by mftrace.

An unprivileged user (nobody) runs a binary named qemu-system-x86_64 that carries QEMU's
version banner and migration symbols, with a fake libgnutls.so.30 preloaded. Both have
constructors, and the library a gnutls_check_version(), that append a line (what ran, uid,
pid) to a marker file. Once the process runs, both paths on disk are replaced by FIFOs:
a tool that reopens them by name instead of through the process's own mappings hangs.

Then record (host-wide, which finds it by itself), doctor -p, live mode -p and the
exporter each meet it. Ground truth is the marker file, written by the hostile code
itself: every line in it must come from the fake's own pid and uid. Each command must end
within its deadline, and say what it refused (the library has no gnutls_handshake, so its
TLS channels could not be judged).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from mftrace_run import MFTRACE  # noqa: E402

NOBODY = 65534
failed = 0

FAKE_COMMON = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void mark(const char *what)
{
	char line[256];
	int fd = open(MARK, O_WRONLY | O_APPEND | O_CREAT, 0666);
	if (fd < 0)
		return;
	int n = snprintf(line, sizeof(line), "%s uid=%u pid=%d\n", what, (unsigned)getuid(), (int)getpid());
	write(fd, line, (size_t)n);
	close(fd);
}
"""

FAKE_QEMU = FAKE_COMMON + r"""
#include <stdlib.h>
const char banner[] = "QEMU emulator version 99.0.0 (hostile)\n";
__attribute__((constructor)) static void ctor(void) { mark("binary-constructor"); }
void migrate_set_state(void *s, int a, int b) { (void)s; (void)a; (void)b; mark("migrate_set_state"); }
void multifd_recv_sync_main(void) { mark("multifd_recv_sync_main"); }
void MigrationStatus_lookup(void) { mark("lookup"); }
int main(int argc, char **argv)
{
	(void)argc; (void)argv;
	if (getenv("MFT_HOSTILE_VERSION"))
		puts(banner);
	for (;;)
		pause();
}
"""

FAKE_GNUTLS = FAKE_COMMON + r"""
const char banner[] = "Enabled GnuTLS 6.6.6\x1b[2J$(touch /tmp/pwned) logging...\n";
__attribute__((constructor)) static void ctor(void) { mark("library-constructor"); }
const char *gnutls_check_version(const char *v) { (void)v; mark("gnutls_check_version"); return "6.6.6"; }
int gnutls_bye(void *s, int how) { (void)s; (void)how; mark("gnutls_bye"); return 0; }
"""


def report(ok, name, why=""):
    global failed
    if ok:
        print(f"PASS {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}: {why}", flush=True)


def build(wd: str, mark: str) -> tuple[str, str]:
    qsrc, gsrc = os.path.join(wd, "fake_qemu.c"), os.path.join(wd, "fake_gnutls.c")
    open(qsrc, "w").write(FAKE_QEMU)
    open(gsrc, "w").write(FAKE_GNUTLS)
    qemu, lib = os.path.join(wd, "qemu-system-x86_64"), os.path.join(wd, "libgnutls.so.30")
    cc = ["cc", "-O1", "-w", f'-DMARK="{mark}"']
    subprocess.run(cc + ["-rdynamic", qsrc, "-o", qemu], check=True)
    subprocess.run(cc + ["-shared", "-fPIC", gsrc, "-o", lib], check=True)
    return qemu, lib


def markers(mark: str) -> list[str]:
    try:
        return open(mark).read().splitlines()
    except FileNotFoundError:
        return []


def foreign(mark: str, pid: int) -> list[str]:
    """Marker lines written by anything but the fake process itself."""
    return [m for m in markers(mark) if f"pid={pid}" not in m or f"uid={NOBODY}" not in m]


def run(cmd, timeout):
    """(rc, stdout, stderr); rc None when it had to be killed at the deadline."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return None, out, err


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main() -> int:
    if os.geteuid() != 0:
        print("SKIP hostile target: needs root (runs the fake as nobody, loads eBPF)")
        return 0
    wd = tempfile.mkdtemp(prefix="mft-hostile-")
    os.chmod(wd, 0o755)
    mark = os.path.join(wd, "marks")
    open(mark, "w").close()
    os.chmod(mark, 0o666)
    qemu, lib = build(wd, mark)
    fake = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                             "env", f"LD_PRELOAD={lib}", qemu, "-name", "guest=hostile,debug-threads=on"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(markers(mark)) < 2:
            time.sleep(0.05)
        pid = fake.pid
        # setpriv and env exec, so the pid is the fake's own
        base = markers(mark)
        report(len(base) == 2 and not foreign(mark, pid), "the fake QEMU runs as nobody with its library preloaded",
               f"markers: {base}")
        maps = open(f"/proc/{pid}/maps").read()
        report(lib in maps, "the fake libgnutls is mapped", "not in /proc/PID/maps")
        # both names now lead to FIFOs: whoever reopens them by path blocks forever
        for path in (qemu, lib):
            os.unlink(path)
            os.mkfifo(path, 0o644)

        rc, out, err = run([MFTRACE, "doctor", "-p", str(pid)], 60)
        bad = foreign(mark, pid)
        report(rc is not None and not bad and "no gnutls_handshake" in out and "99.0.0 (hostile)" in out,
               "doctor -p reads the hostile target as data and says what it would refuse",
               f"rc={rc} foreign markers={bad} out={out[-1500:]!r} err={err[-500:]!r}")
        report("6.6.6" in out and "\x1b" not in out.split("proof that")[0],
               "doctor shows the library's version text with nothing but version characters",
               f"out={out[:1500]!r}")

        rc, out, err = run([MFTRACE, "-p", str(pid), "--duration", "2"], 30)
        bad = foreign(mark, pid)
        report(rc not in (None, 0) and not bad and len(err.strip().splitlines()) == 1 and
               re.search(r"refusing the target: the libgnutls it maps \(.*\) has no gnutls_handshake", err),
               "live mode -p refuses it with one line, running nothing",
               f"rc={rc} foreign markers={bad} err={err!r}")

        rec = os.path.join(wd, "host.mftrec")
        rc, out, err = run([MFTRACE, "record", "-o", rec, "--duration", "3"], 30)
        bad = foreign(mark, pid)
        report(rc == 0 and not bad and f"pid {pid}" in err and "no gnutls_handshake" in err,
               "record (host-wide) finds it, runs nothing, and says what it refused",
               f"rc={rc} foreign markers={bad} err={err[-1500:]!r}")

        port = free_port()
        exp = subprocess.Popen([MFTRACE, "exporter", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        body = ""
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and exp.poll() is None:
                try:
                    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                    if "mftrace_build_info" in body:
                        time.sleep(2.5)  # at least two rescans
                        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                        break
                except OSError:
                    time.sleep(0.2)
        finally:
            exp.send_signal(signal.SIGTERM)
            try:
                _, eerr = exp.communicate(timeout=120)  # uprobe detaching is slow on a busy host
            except subprocess.TimeoutExpired:
                exp.kill()
                _, eerr = exp.communicate()
        bad = foreign(mark, pid)
        report(exp.returncode == 0 and "mftrace_build_info" in body and not bad and "no gnutls_handshake" in eerr,
               "the exporter keeps serving beside it, runs nothing, and says what it refused",
               f"rc={exp.returncode} foreign markers={bad} served={'mftrace_build_info' in body} err={eerr[-1500:]!r}")
        refusals = eerr.count("no gnutls_handshake")
        report(refusals == 1, "the exporter says it once, not at every rescan", f"said {refusals} times: {eerr[-800:]!r}")
    finally:
        fake.kill()
        fake.wait()
        if not failed:
            shutil.rmtree(wd, ignore_errors=True)
        else:
            print(f"   (hostile test files kept in {wd})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
