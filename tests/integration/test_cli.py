#!/usr/bin/env python3
"""The command line of mftrace, held to the house rule: bad input gets a clear one-line
error and a non-zero exit, never a crash; good input does what --help says.

Run from the repository root, as root, after `make`:

    python3 tests/integration/test_cli.py [-k PATTERN]

Prints one line per test, "PASS name", "FAIL name: why" or "SKIP name: why", and exits
non-zero if any test failed. Python 3 standard library only.

The real kernel, real QEMU (an idle `-M none -S` instance this script starts and kills by
pid), real privileges: nothing is mocked. The BTF test hides /sys/kernel/btf in a private
mount namespace (unshare -m), so the host's mounts are never touched.
"""

from __future__ import annotations

import ctypes
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MFTRACE = os.path.join(REPO, "build", "mftrace")
MAIN_C = os.path.join(REPO, "user", "commands", "main.c")
VERDICT_C = os.path.join(REPO, "user", "correlate", "verdict.c")
VERSION_H = os.path.join(REPO, "include", "version.h")
MANPAGE = os.path.join(REPO, "docs", "mftrace.8")
QEMU = "/usr/bin/qemu-system-x86_64"
QEMU_ARGV = [QEMU, "-M", "none", "-nodefaults", "-display", "none", "-accel", "tcg", "-S"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
VERDICTS = ("clean", "premature", "unread", "reset", "plain", "incomplete")
PROOF_LINES = ("connect (tcp state)", "accept", "recv result", "shutdown", "FIN received",
               "EOF read", "close", "socket destroyed", "GnuTLS uprobes")
SUMMARY_RE = re.compile(r"^mftrace: \d+ events, \d+ lost\b.*$")


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def check(cond: bool, why: str) -> None:
    if not cond:
        raise Fail(why)


def _die_with_parent() -> None:
    """Children get SIGKILL if this script dies, so nothing outlives a crashed run."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def short(s: str, n: int = 300) -> str:
    s = s.replace("\n", "\\n")
    return s if len(s) <= n else s[:n] + "..."


class Result:
    def __init__(self, argv: list[str], rc: int | None, out: str, err: str, elapsed: float,
                 timed_out: bool):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.elapsed, self.timed_out = elapsed, timed_out

    def __str__(self) -> str:
        return (f"`{' '.join(self.argv)}` -> exit {self.rc}"
                f"{' (timed out)' if self.timed_out else ''}, "
                f"stdout '{short(self.out, 160)}', stderr '{short(self.err)}'")


# How long mftrace may take to exit. Not a speed test: detaching each uprobe waits for an
# RCU grace period under a host-wide kernel mutex, seconds apiece on a busy host. The
# deadline only tells "exits" from "hangs"; make bench measures how long it takes.
EXIT_DEADLINE = 120


def stop_child(p: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGINT (mftrace's own clean stop), then SIGKILL: to this child only, by pid."""
    if p.poll() is not None:
        return
    try:
        os.kill(p.pid, signal.SIGINT)
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    except ProcessLookupError:
        pass


def run(args: list[str], timeout: float = 20.0, prefix: list[str] | None = None) -> Result:
    """Run mftrace ARGS (optionally under a PREFIX command); never hangs."""
    argv = (prefix or []) + [MFTRACE] + args
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, errors="replace",
                         preexec_fn=_die_with_parent)
    timed_out = False
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        stop_child(p)
        out, err = p.communicate()
    return Result(argv, p.returncode, out, err, time.monotonic() - t0, timed_out)


def no_crash(r: Result) -> None:
    check(not r.timed_out, f"did not finish: {r}")
    check(r.rc is not None and r.rc >= 0, f"killed by signal {-(r.rc or 0)} (a crash): {r}")
    for bad in ("Segmentation fault", "Aborted", "AddressSanitizer", "core dumped"):
        check(bad not in r.err, f"crash message '{bad}': {r}")


def expect_error(r: Result, pattern: str, rc: int = 1, stdout_empty: bool = True) -> None:
    """Exit status rc, stderr exactly one line 'mftrace: ...' matching pattern."""
    no_crash(r)
    check(r.rc == rc, f"exit status {r.rc}, expected {rc}: {r}")
    lines = r.err.splitlines()
    check(len(lines) == 1 and r.err.endswith("\n"),
          f"stderr has {len(lines)} lines, expected exactly one: {r}")
    check(lines[0].startswith("mftrace: "), f"error line does not start with 'mftrace: ': {r}")
    check(re.search(pattern, lines[0]) is not None,
          f"error line does not match /{pattern}/: {r}")
    if stdout_empty:
        check(r.out == "", f"stdout not empty on an error: {r}")


# ---------------------------------------------------------------- processes we own

class Owned:
    """Processes this script started (and only those): killed by pid at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self._qemu: subprocess.Popen | None = None
        self._sleep: subprocess.Popen | None = None

    def spawn(self, argv: list[str]) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.procs.append(p)
        return p

    def new_qemu(self) -> int:
        if not os.access(QEMU, os.X_OK):
            raise Skip(f"{QEMU} is not installed")
        p = self.spawn(QEMU_ARGV)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise Fail(f"{' '.join(QEMU_ARGV)} exited at once with status {p.returncode}")
            try:
                with open(f"/proc/{p.pid}/maps") as f:
                    maps = f.read()
                if os.readlink(f"/proc/{p.pid}/exe") == QEMU and ".so" in maps:
                    time.sleep(0.3)  # let it finish initialising
                    return p.pid
            except OSError:
                pass
            time.sleep(0.05)
        raise Fail("the test QEMU did not start within 20 s")

    def qemu(self) -> int:
        if self._qemu is None or self._qemu.poll() is not None:
            pid = self.new_qemu()
            self._qemu = self.procs[-1]
            assert self._qemu.pid == pid
        return self._qemu.pid

    def sleeper(self) -> int:
        if self._sleep is None or self._sleep.poll() is not None:
            self._sleep = self.spawn(["sleep", "60"])
            time.sleep(0.1)
        return self._sleep.pid

    def kill(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
            except ProcessLookupError:
                pass

    def cleanup(self) -> None:
        for p in self.procs:
            self.kill(p)


OWN = Owned()


def need_root() -> None:
    if os.geteuid() != 0:
        raise Skip("needs root (BPF programs are loaded)")


def free_pid() -> int:
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
    except OSError:
        pid_max = 32768
    for pid in range(pid_max - 1, 300, -1):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    raise Skip("no free pid found")


def read_source(path: str) -> str:
    with open(path) as f:
        return f.read()


def longopts() -> list[tuple[str, str]]:
    """(long name, short char or '') for every option main.c's getopt_long accepts."""
    src = read_source(MAIN_C)
    m = re.search(r"longopts\[\]\s*=\s*\{(.*?)\n\s*\};", src, re.S)
    check(m is not None, "cannot find longopts[] in user/commands/main.c")
    # the shared option tables are macros in cli.h: expand the ones main.c uses
    table = m.group(1)
    cli_h = read_source(os.path.join(REPO, "user", "commands", "cli.h"))
    for macro, body in re.findall(r"#define (MFT_CLI_\w+_LONGOPTS)\s*\\\n(.*?)(?<!\\)\n", cli_h, re.S):
        table = table.replace(macro, body.replace("\\\n", "\n"))
    shorts = re.search(r'mft_cli_next_opt\(NULL, argc, argv, "([^"]*)"', src)
    check(shorts is not None, "cannot find the option string in user/commands/main.c")
    optstring = shorts.group(1)
    opts = []
    for name, val in re.findall(r'\{\s*"([a-z0-9-]+)"\s*,\s*\w+\s*,\s*NULL\s*,\s*\'(.)\'\s*\}', table):
        opts.append((name, val if val in optstring.replace(":", "") else ""))
    check(len(opts) >= 5, f"parsed only {len(opts)} options from longopts[]: {opts}")
    return opts


class Streamed:
    """mftrace running in the background with stderr read line by line."""

    def __init__(self, args: list[str]):
        self.argv = [MFTRACE] + args
        self.p = subprocess.Popen(self.argv, cwd=REPO, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  preexec_fn=_die_with_parent)
        self.err = b""
        self.out = b""
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.p.stderr, selectors.EVENT_READ, "err")
        self.sel.register(self.p.stdout, selectors.EVENT_READ, "out")

    def pump(self, deadline: float) -> bool:
        """Read what is there until deadline; False once both pipes are closed."""
        while self.sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            for key, _ in self.sel.select(timeout=left):
                data = os.read(key.fileobj.fileno(), 65536)
                if not data:
                    self.sel.unregister(key.fileobj)
                elif key.data == "err":
                    self.err += data
                else:
                    self.out += data
            return True
        return False

    def pump_for(self, seconds: float) -> bool:
        """Read for that long; True if the process is still running at the end."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.pump(end):
            pass
        try:
            self.p.wait(timeout=max(0.0, end - time.monotonic()))
            return False
        except subprocess.TimeoutExpired:
            return True

    def wait_for(self, pattern: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.err.decode(errors="replace"), re.M):
                return True
            if not self.pump(min(deadline, time.monotonic() + 0.2)) and self.p.poll() is not None:
                break
        return re.search(pattern, self.err.decode(errors="replace"), re.M) is not None

    def finish(self, timeout: float) -> Result:
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        while self.pump(deadline) and time.monotonic() < deadline:
            pass
        timed_out = False
        try:
            self.p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            stop_child(self.p)
        while self.pump(time.monotonic() + 0.5):
            pass
        self.sel.close()
        self.p.stdout.close()
        self.p.stderr.close()
        return Result(self.argv, self.p.returncode, self.out.decode(errors="replace"),
                      self.err.decode(errors="replace"), time.monotonic() - t0, timed_out)

    def kill(self) -> None:
        stop_child(self.p, grace=2)


def expect_traced_ok(r: Result, pid: int) -> None:
    """A trace session that ended normally: exit 0, ready line, summary last."""
    no_crash(r)
    check(r.rc == 0, f"exit status {r.rc}, expected 0: {r}")
    lines = r.err.splitlines()
    check(any(re.match(rf"^mftrace: tracing pid {pid}\b", l) for l in lines),
          f"no 'mftrace: tracing pid {pid}' line: {r}")
    check(any(l.startswith("mftrace: ready") for l in lines), f"no 'ready' line on stderr: {r}")
    check(lines and SUMMARY_RE.match(lines[-1]) is not None,
          f"last stderr line is not the 'N events, N lost' summary: {r}")
    check(not any(l.startswith("libbpf:") for l in lines), f"libbpf noise on stderr: {r}")


# ---------------------------------------------------------------- tests: parsing

def test_no_arguments() -> None:
    r = run([])
    expect_error(r, r"^mftrace: no target: give -p PID\b.*mftrace --help")


def test_help() -> None:
    for flag in ("--help", "-h"):
        r = run([flag])
        no_crash(r)
        check(r.rc == 0, f"exit status {r.rc}, expected 0: {r}")
        check(r.err == "", f"stderr not empty: {r}")
        check(r.out.startswith("Usage: mftrace -p PID"), f"stdout does not start with Usage: {r}")
        check("mftrace doctor" in r.out, f"help does not mention 'mftrace doctor': {r}")
        for cmd in ("doctor", "exporter", "record", "report"):
            check(re.search(rf"^  {cmd}\s+\S", r.out, re.M) is not None, f"help does not list the command {cmd}")
    # the options of live mode: the part before the list of other commands
    text = r.out.split("\nCommands:\n")[0]
    for name, s in longopts():
        check(re.search(rf"(^|[\s,])--{re.escape(name)}\b", text, re.M) is not None,
              f"--help does not list --{name}")
        if s:
            check(re.search(rf"^\s+-{re.escape(s)}, --{re.escape(name)}\b", text, re.M) is not None,
                  f"--help does not list '-{s}, --{name}'")
    accepted = {n for n, _ in longopts()}
    for name in set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]+)", text)):
        check(name in accepted, f"--help mentions --{name}, which main.c does not accept")
    for v in VERDICTS:
        check(re.search(rf"^\s+{v}\s+\S", text, re.M) is not None,
              f"--help does not explain the verdict '{v}'")
    src = read_source(VERDICT_C)
    for v in re.findall(r'\[MFT_V_\w+\]\s*=\s*"(\w+)"', src):
        check(v in VERDICTS, f"verdict.c has a verdict '{v}' the test (and maybe --help) does not know")


def test_version() -> None:
    want = re.search(r'#define MFT_VERSION "([^"]+)"', read_source(VERSION_H))
    check(want is not None, "no MFT_VERSION in include/version.h")
    for flag in ("-V", "--version"):
        r = run([flag])
        no_crash(r)
        check(r.rc == 0, f"exit status {r.rc}, expected 0: {r}")
        check(r.out == f"mftrace {want.group(1)}\n", f"expected 'mftrace {want.group(1)}': {r}")
        check(r.err == "", f"stderr not empty: {r}")


def test_unknown_option() -> None:
    for args, opt, hint in ((["--bogus"], "bogus", "mftrace --help"), (["-x"], "x", "mftrace --help"),
                            (["doctor", "--bogus"], "bogus", "mftrace doctor --help"),
                            (["record", "--bogus"], "bogus", "mftrace record --help"),
                            (["report", "--bogus"], "bogus", "mftrace report --help"),
                            (["exporter", "--bogus"], "bogus", "mftrace exporter --help")):
        r = run(args)
        expect_error(r, rf"{re.escape(opt)}.*{re.escape(hint)}")


def test_each_command_has_its_own_help() -> None:
    for cmd in ("doctor", "exporter", "record", "report"):
        r = run([cmd, "--help"])
        check(r.rc == 0 and r.out.startswith(f"Usage: mftrace {cmd}"),
              f"`mftrace {cmd} --help` does not print its own usage: {r}")


def test_missing_option_argument() -> None:
    for args, opt in ((["-p"], "p"), (["--duration"], "duration"), (["--mechanism"], "mechanism")):
        r = run(args)
        expect_error(r, rf"{re.escape(opt)}.*mftrace --help")


def test_stray_argument() -> None:
    expect_error(run(["stray"]), r"^mftrace: unexpected argument 'stray'\. Try 'mftrace --help'\.$")
    expect_error(run(["-p", "1", "extra"]), r"^mftrace: unexpected argument 'extra'")
    expect_error(run(["doctor", "stray"]), r"^mftrace: unexpected argument 'stray'")


def test_invalid_pid() -> None:
    for bad in ("abc", "0", "-5", "99999999", "", "12x", "4194305"):
        expect_error(run(["-p", bad]), rf"^mftrace: invalid pid '{re.escape(bad)}'$")
    expect_error(run(["--pid=abc"]), r"^mftrace: invalid pid 'abc'$")


def test_too_many_pids() -> None:
    args = []
    for _ in range(65):
        args += ["-p", "1"]
    expect_error(run(args), r"^mftrace: at most 64 -p options$")


def test_pid_does_not_exist() -> None:
    need_root()
    pid = free_pid()
    expect_error(run(["-p", str(pid)]), rf"^mftrace: no such process: pid {pid}$")


def test_pid_not_qemu() -> None:
    need_root()
    pid = OWN.sleeper()
    expect_error(run(["-p", str(pid)]), rf"^mftrace: pid {pid} \(sleep, .*\) is not a QEMU process$")
    # one good pid does not excuse a bad one, whatever the order
    q = OWN.qemu()
    expect_error(run(["-p", str(q), "-p", str(pid), "-d", "1"]),
                 rf"^mftrace: pid {pid} \(sleep, .*\) is not a QEMU process$")


def test_pid_kernel_thread() -> None:
    need_root()
    try:
        with open("/proc/2/comm") as f:
            comm = f.read().strip()
    except OSError:
        comm = ""
    if comm != "kthreadd":
        raise Skip("pid 2 is not kthreadd here (a PID namespace?)")
    expect_error(run(["-p", "2"]), r"^mftrace: cannot read /proc/2/exe: .*kernel thread")


def test_invalid_duration() -> None:
    # a real target, so that an accepted duration would show up as a wrong message
    pid = OWN.sleeper()
    for bad in ("abc", "0", "-1", "", "1s", "nan", "inf", "-inf"):
        r = run(["-p", str(pid), "--duration", bad], timeout=10)
        expect_error(r, rf"^mftrace: invalid duration '{re.escape(bad)}' \(seconds, > 0 and at most \d+\)$")


def test_invalid_mechanism() -> None:
    for bad in ("bogus", "", "FENTRY"):
        expect_error(run(["--mechanism", bad]),
                     rf"^mftrace: invalid mechanism '{bad}' \(auto, fentry, kprobe, tracepoint\)$")


# ---------------------------------------------------------------- tests: the host

def test_no_privileges() -> None:
    need_root()
    if not shutil.which("setpriv"):
        raise Skip("setpriv (util-linux) is not installed")
    q = OWN.qemu()
    r = run(["-p", str(q)], prefix=NOBODY)
    expect_error(r, r"^mftrace: needs root, or CAP_SYS_ADMIN \(for uprobes\)")
    r = run(["doctor"], prefix=NOBODY)
    no_crash(r)
    check(r.rc == 1, f"doctor as nobody: exit status {r.rc}, expected 1: {r}")
    check(re.search(r"^\s+\[FAIL\]\s+privileges\s+needs root", r.out, re.M) is not None,
          f"doctor as nobody: no '[FAIL] privileges' line: {r}")
    check(r.err == "", f"doctor as nobody: stderr not empty: {r}")


def _no_btf_prefix() -> list[str]:
    need_root()
    if not shutil.which("unshare"):
        raise Skip("unshare (util-linux) is not installed")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        raise Skip("this kernel has no BTF to hide")
    return ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /sys/kernel/btf && exec "$0" "$@"']


def test_missing_btf() -> None:
    prefix = _no_btf_prefix()
    q = OWN.qemu()
    r = run(["-p", str(q)], prefix=prefix, timeout=15)
    check(os.path.exists("/sys/kernel/btf/vmlinux"), "the host lost /sys/kernel/btf/vmlinux!")
    expect_error(r, r"^mftrace: this kernel has no BTF \(/sys/kernel/btf/vmlinux missing\)")


def test_doctor_missing_btf() -> None:
    prefix = _no_btf_prefix()
    r = run(["doctor"], prefix=prefix, timeout=60)
    no_crash(r)
    check(r.rc == 1, f"exit status {r.rc}, expected 1: {r}")
    check(re.search(r"^\s+\[FAIL\]\s+BTF\s+this kernel has no BTF", r.out, re.M) is not None,
          f"no '[FAIL] BTF' line: {r}")
    check("doctor: some checks FAILED" in r.out, f"no 'some checks FAILED': {r}")
    check(r.err == "", f"stderr not empty (the report is on stdout): {r}")


def test_trace_duration() -> None:
    need_root()
    q = OWN.qemu()
    r = run(["-p", str(q), "--duration", "1"], timeout=30)
    expect_traced_ok(r, q)
    check(r.elapsed >= 1.0, f"returned after {r.elapsed:.2f}s, before --duration 1 was up: {r}")


def test_duration_huge() -> None:
    """--duration 1e300 must be refused or mean 'a very long time', not 'stop at once'."""
    need_root()
    q = OWN.qemu()
    s = Streamed(["-p", str(q), "--duration", "1e300"])
    try:
        s.wait_for(r"^mftrace: (ready|invalid duration)", 20)
        early = not s.pump_for(3)
        s.kill()
        r = s.finish(10)
    finally:
        s.kill()
    if "invalid duration" in r.err:
        expect_error(r, r"^mftrace: invalid duration '1e300'")
        return
    check(not early, f"--duration 1e300 stopped tracing at once (within 3 s): {r}")
    expect_traced_ok(r, q)


def test_mechanism_fentry() -> None:
    need_root()
    q = OWN.qemu()
    d = run(["doctor"], timeout=60)
    m = re.search(r"^\s+\[\w+\]\s+shutdown\s+(.*)$", d.out, re.M)
    check(m is not None, f"cannot tell from doctor whether fentry works here: {d}")
    r = run(["--mechanism", "fentry", "-p", str(q), "--duration", "1"], timeout=30)
    if "fentry unusable" not in m.group(1):
        expect_traced_ok(r, q)  # fentry works on this host: it must simply be used
        return
    expect_error(r, r"\bfentry\b.*(unusable|cannot|fail)")
    check("shutdown" in r.err, f"the error does not say what could not be probed: {r}")


def test_mechanism_tracepoint() -> None:
    need_root()
    q = OWN.qemu()
    r = run(["--mechanism", "tracepoint", "-p", str(q), "--duration", "1"], timeout=30)
    expect_traced_ok(r, q)


def test_sigint() -> None:
    need_root()
    q = OWN.qemu()
    for sig in (signal.SIGINT, signal.SIGTERM):
        s = Streamed(["-p", str(q)])
        try:
            ready = s.wait_for(r"^mftrace: ready", 20)
            if ready and s.p.poll() is None:
                os.kill(s.p.pid, sig)
            r = s.finish(EXIT_DEADLINE)
        finally:
            s.kill()
        check(ready, f"no 'ready' line within 20 s: {r}")
        check(not r.timed_out, f"did not exit within {EXIT_DEADLINE} s of {sig.name}: {r}")
        expect_traced_ok(r, q)


def test_target_exits() -> None:
    need_root()
    p = OWN.new_qemu()
    proc = OWN.procs[-1]
    s = Streamed(["-p", str(p)])
    try:
        ready = s.wait_for(r"^mftrace: ready", 20)
        OWN.kill(proc)
        r = s.finish(EXIT_DEADLINE)
    finally:
        s.kill()
    check(ready, f"no 'ready' line within 20 s: {r}")
    check(not r.timed_out, f"mftrace kept running after its only target exited: {r}")
    expect_traced_ok(r, p)
    check(re.search(rf"^mftrace: pid {p} exited\b", r.err, re.M) is not None, f"no 'pid {p} exited': {r}")
    check("mftrace: every traced process has exited" in r.err, f"no 'every traced process has exited': {r}")


# ---------------------------------------------------------------- tests: doctor

def test_doctor() -> None:
    need_root()
    r = run(["doctor"], timeout=60)
    no_crash(r)
    check(r.rc == 0, f"exit status {r.rc}, expected 0: {r}")
    check(r.err == "", f"stderr not empty: {r}")
    parts = r.out.split("proof that the probes fire", 1)
    check(len(parts) == 2, f"no 'proof that the probes fire' section: {r}")
    proof = parts[1]
    for name in PROOF_LINES:
        m = re.search(rf"^\s+(\[[^\]]*\])\s+{re.escape(name)}\s+(.*)$", proof, re.M)
        check(m is not None, f"no proof line for '{name}': {r}")
        check(m.group(1) == "[ok]", f"proof line '{name}' is {m.group(1)} {m.group(2)}, expected [ok]")
    check(re.search(r"^\s+\[ok\]\s+events lost\s+0$", proof, re.M) is not None, f"events were lost: {r}")
    check(r.out.rstrip().endswith("doctor: all checks passed"), f"no 'doctor: all checks passed': {r}")
    check("[FAIL]" not in r.out, f"a [FAIL] line, yet exit 0: {r}")


def test_doctor_pid() -> None:
    need_root()
    q = OWN.qemu()
    r = run(["doctor", "-p", str(q)], timeout=60)
    no_crash(r)
    check(r.rc == 0, f"exit status {r.rc}, expected 0: {r}")
    parts = r.out.split(f"target pid {q}:", 1)
    check(len(parts) == 2, f"no 'target pid {q}:' section: {r}")
    sect = parts[1].split("proof that the probes fire", 1)[0]
    exe = os.readlink(f"/proc/{q}/exe")
    check(re.search(rf"^\s+\[ok\]\s+binary\s+{re.escape(exe)} ", sect, re.M) is not None,
          f"no '[ok] binary {exe}' line: {r}")
    v = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    mv = re.search(r"QEMU emulator version (.*)", v.stdout)
    if mv:
        check(re.search(rf"^\s+\[info\]\s+QEMU version\s+{re.escape(mv.group(1).strip())}$", sect, re.M)
              is not None, f"no '[info] QEMU version {mv.group(1).strip()}' line: {r}")
    check(re.search(r"^\s+\[info\]\s+USDT probes \(qemu\)\s+\d+", sect, re.M) is not None,
          f"no 'USDT probes (qemu) N' line: {r}")
    m = re.search(r"^\s+(\[ok\]|\[--\])\s+migrate_set_state\s+(.*)$", sect, re.M)
    check(m is not None, f"no migrate_set_state line: {r}")
    check((m.group(1) == "[ok]") == (m.group(2) == "exported (uprobe-able)"),
          f"migrate_set_state line contradicts itself: {m.group(0)}")
    with open(f"/proc/{q}/maps") as f:
        libs = re.findall(r"(/\S*/libgnutls\.so\S*)", f.read())
    if libs:
        check(re.search(rf"^\s+\[ok\]\s+libgnutls\s+{re.escape(libs[0])}\b", sect, re.M) is not None,
              f"QEMU maps {libs[0]}, but no '[ok] libgnutls {libs[0]}' line: {r}")
    else:
        check(re.search(r"^\s+\[--\]\s+libgnutls\s+not mapped", sect, re.M) is not None,
              f"QEMU maps no libgnutls, but no '[--] libgnutls not mapped' line: {r}")


def test_doctor_invalid_pid() -> None:
    expect_error(run(["doctor", "-p", "999999999"]), r"^mftrace: invalid pid '999999999'$")
    expect_error(run(["doctor", "-p", "abc"]), r"^mftrace: invalid pid 'abc'$")


def test_doctor_not_qemu() -> None:
    need_root()
    pid = OWN.sleeper()
    r = run(["doctor", "-p", str(pid)], timeout=60)
    no_crash(r)
    check(r.rc == 1, f"exit status {r.rc}, expected 1: {r}")
    check(re.search(r"^\s+\[FAIL\]\s+binary\s+.*not a QEMU", r.out, re.M) is not None,
          f"no '[FAIL] binary ... not a QEMU' line: {r}")
    gone = free_pid()
    r = run(["doctor", "-p", str(gone)], timeout=60)
    no_crash(r)
    check(r.rc == 1, f"doctor -p {gone} (no such process): exit status {r.rc}, expected 1: {r}")
    check(re.search(rf"^\s+\[FAIL\]\s+process\s+no such process: pid {gone}$", r.out, re.M) is not None,
          f"no '[FAIL] process no such process' line: {r}")


# ---------------------------------------------------------------- tests: the man page

def test_manpage() -> None:
    if not os.path.exists(MANPAGE):
        raise Fail("docs/mftrace.8 is missing")
    text = read_source(MANPAGE)
    plain = text.replace("\\-", "-").replace("\\fB", "").replace("\\fI", "").replace("\\fR", "")
    for name, s in longopts():
        check(f"--{name}" in plain, f"docs/mftrace.8 does not document --{name}")
        if s:
            check(re.search(rf"-{re.escape(s)}\b", plain) is not None, f"docs/mftrace.8 does not document -{s}")
    for v in VERDICTS:
        check(re.search(rf"^\.TP\n\.B {v}$", text, re.M) is not None,
              f"docs/mftrace.8 has no VERDICTS entry for '{v}'")
    if not shutil.which("groff"):
        raise Skip("groff is not installed: rendering not checked")
    g = subprocess.run(["groff", "-man", "-ww", "-z", MANPAGE], capture_output=True, text=True, timeout=30)
    check(g.returncode == 0 and g.stderr == "", f"groff -man -ww -z warns: {short(g.stderr)}")


TESTS = [(name[5:], fn) for name, fn in list(globals().items())
         if name.startswith("test_") and callable(fn)]


def main() -> int:
    pattern = None
    if len(sys.argv) >= 3 and sys.argv[1] == "-k":
        pattern = sys.argv[2]
    if not os.access(MFTRACE, os.X_OK):
        print(f"FAIL build: {MFTRACE} is missing; run make")
        return 1
    failed = 0
    try:
        for name, fn in TESTS:
            if pattern and pattern not in name:
                continue
            try:
                fn()
                print(f"PASS {name}", flush=True)
            except Skip as e:
                print(f"SKIP {name}: {e}", flush=True)
            except Fail as e:
                failed += 1
                print(f"FAIL {name}: {e}", flush=True)
            except Exception as e:  # a bug in the test itself is a failure too
                failed += 1
                print(f"FAIL {name}: test error {type(e).__name__}: {e}", flush=True)
    finally:
        OWN.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
