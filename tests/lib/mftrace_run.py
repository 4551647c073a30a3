"""Run build/mftrace as a subprocess for the integration tests and the demo."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/lib -> repo
MFTRACE = os.environ.get("MFTRACE", os.path.join(ROOT, "build", "mftrace"))


class TracerError(RuntimeError):
    pass


class Tracer:
    """mftrace attached to some pids; stdout (JSON lines or text) and stderr go to files."""

    def __init__(self, pids, workdir: str, name: str, args=(), json_out: bool = True,
                 prefix=(), binary: str | None = None):
        """prefix: a command mftrace runs under (e.g. unshare); binary: another mftrace."""
        self.pids = list(pids)
        self.args = list(args)
        self.prefix = list(prefix)
        self.binary = binary or MFTRACE
        self.json = json_out
        self.out_path = os.path.join(workdir, f"{name}.out")
        self.err_path = os.path.join(workdir, f"{name}.err")
        self.proc = None
        self.rc = None

    def start(self, timeout: float = 30.0) -> "Tracer":
        cmd = self.prefix + [self.binary]
        for p in self.pids:
            cmd += ["-p", str(p)]
        if self.json:
            cmd += ["--json"]
        cmd += self.args
        self.proc = subprocess.Popen(cmd, stdout=open(self.out_path, "w"), stderr=open(self.err_path, "w"),
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "mftrace: ready" in self.stderr():
                return self
            if self.proc.poll() is not None:
                raise TracerError(f"mftrace exited with {self.proc.returncode}: {self.stderr().strip()}")
            time.sleep(0.05)
        self.stop()
        raise TracerError(f"mftrace not ready after {timeout}s: {self.stderr().strip()}")

    def stderr(self) -> str:
        with open(self.err_path) as f:
            return f.read()

    def stdout(self) -> str:
        with open(self.out_path) as f:
            return f.read()

    def records(self, rtype: str | None = None) -> list[dict]:
        out = []
        for line in self.stdout().splitlines():
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if rtype is None or rec.get("type") == rtype:
                out.append(rec)
        return out

    def wait_migrations(self, n: int, timeout: float = 20.0) -> bool:
        """Wait until n migration records are out (or mftrace exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.records("migration")) >= n or self.proc.poll() is not None:
                return len(self.records("migration")) >= n
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 120.0) -> int:
        """SIGINT, then wait for the exit (generous: uprobe detaching is slow on a busy
        host; the deadline only tells an exit from a hang)."""
        if self.proc is None:
            return -1
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.rc = self.proc.returncode
        return self.rc

    def lost(self) -> int | None:
        """Events lost, from the summary line mftrace prints on exit."""
        for line in self.stderr().splitlines():
            m = re.match(r"mftrace: \d+ events, (\d+) lost\b", line)
            if m:
                return int(m.group(1))
        return None
