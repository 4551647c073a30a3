#!/usr/bin/env python3
"""Two libvirt session daemons on one machine, driven the way operators drive them.

Test harness for mftrace (Python 3.11, standard library only; Debian's libvirt 9.0,
installed by scripts/setup.sh). Used by tests/integration/test_libvirt.py.

    from libvirt import LibvirtPair, domain_xml
    with LibvirtPair(workdir) as lv:          # two users, CA + certs, two libvirtd
        lv.define("a", domain_xml(lv, "mft-lv-1", "7.2", mem_mib=256))
        pid = lv.start("a", "mft-lv-1")        # boots; RAM filled with random bytes
        lv.migrate("a", "b", "mft-lv-1", port) # virsh migrate --live --tls --parallel ...
    # leaving the block: every domain destroyed, daemons stopped, users removed

What it makes, all of it its own and removed at the end:
  - two local users (mftlv-a, mftlv-b) with homes in WORKDIR, each with its own
    XDG_RUNTIME_DIR (/run/user/UID) and a distinct host_uuid in
    ~/.config/libvirt/libvirtd.conf (libvirt refuses to migrate to the same host);
  - a CA and one certificate (server and client use, for localhost, this host's name,
    127.0.0.1, ::1 and the addresses given) made with certtool, in each user's migrate_tls_x509_cert_dir;
  - `libvirtd` in session mode under each user (no systemd), reached by root's virsh
    over qemu+unix:///session?socket=/run/user/UID/libvirt/libvirt-sock;
  - QEMU 10.0.2 (the private prefix of scripts/setup.sh) through a small wrapper that
    passes its firmware path (-L) and module directory: libvirt's <emulator> is that
    wrapper, which execs the real binary, so the QEMU process is QEMU 10.0.2 itself.

The guest: a multiboot image (tests/lib/fillguest.S, assembled here with as/ld from
binutils) that QEMU loads with -kernel. It fills all RAM above 2 MiB with xorshift32
bytes seeded from the TSC, writes "FILL" at physical 0x500 and halts. So the migration
really moves every page, and the RAM stays still while it does (it converges).
start() waits for the marker, read over libvirt's monitor passthrough (xp).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
FILL_SRC = os.path.join(HERE, "fillguest.S")
QEMU72 = "/usr/bin/qemu-system-x86_64"
QEMU10_PREFIX = os.environ.get("MFTRACE_QEMU10_PREFIX") or "/opt/mftrace/qemu-10.0"
LIBVIRTD = "/usr/sbin/libvirtd"
VIRSH = "/usr/bin/virsh"
CERTTOOL = "/usr/bin/certtool"
USERS = ("mftlv-a", "mftlv-b")
FILL_MAGIC = "0x4c4c4946"          # "FILL", little-endian, at guest physical 0x500


class LibvirtError(RuntimeError):
    pass


def missing() -> str | None:
    """Why this machine cannot run the harness, or None."""
    for path, pkg in ((LIBVIRTD, "libvirt-daemon"), (VIRSH, "libvirt-clients"),
                      ("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so",
                       "libvirt-daemon-driver-qemu"),
                      (CERTTOOL, "gnutls-bin"), ("/usr/sbin/useradd", "passwd"),
                      ("/usr/bin/as", "binutils"), (QEMU72, "qemu-system-x86")):
        if not os.path.exists(path):
            return f"{path} is missing (Debian package {pkg}; scripts/setup.sh installs it)"
    if os.geteuid() != 0:
        return "needs root (makes local users, starts their libvirtd)"
    return None


def qemu10_available() -> bool:
    return os.access(f"{QEMU10_PREFIX}/usr/bin/qemu-system-x86_64", os.X_OK)


def _run(argv: list[str], timeout: float = 60.0, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if check and r.returncode != 0:
        raise LibvirtError(f"{' '.join(argv[:4])}...: exit {r.returncode}: {(r.stderr or r.stdout).strip()[-600:]}")
    return r


def build_fill_guest(workdir: str) -> str:
    """Assemble and link the RAM-filling multiboot guest; returns its path."""
    obj = os.path.join(workdir, "fillguest.o")
    elf = os.path.join(workdir, "fillguest.elf")
    _run(["as", "--32", "-o", obj, FILL_SRC])
    _run(["ld", "-m", "elf_i386", "-Ttext=0x100000", "-z", "max-page-size=0x1000", "-o", elf, obj])
    os.chmod(elf, 0o644)
    return elf


def make_certs(directory: str, addresses: tuple[str, ...] = ()) -> None:
    """A CA and one key/certificate pair usable as TLS server and client, with the
    file names libvirt wants in migrate_tls_x509_cert_dir. RSA: QEMU 10 insists on the
    key encipherment usage, which an ECDSA certificate cannot have."""
    os.makedirs(directory, exist_ok=True)

    def tmpl(name: str, lines: list[str]) -> str:
        p = os.path.join(directory, name)
        with open(p, "w") as f:
            f.write("\n".join(lines) + "\n")
        return p

    ca_key = os.path.join(directory, "ca-key.pem")
    ca_cert = os.path.join(directory, "ca-cert.pem")
    key = os.path.join(directory, "server-key.pem")
    cert = os.path.join(directory, "server-cert.pem")
    _run([CERTTOOL, "--generate-privkey", "--key-type", "rsa", "--bits", "2048", "--outfile", ca_key])
    _run([CERTTOOL, "--generate-self-signed", "--load-privkey", ca_key, "--outfile", ca_cert,
          "--template", tmpl("ca.info", ["cn = mftrace test CA", "ca", "cert_signing_key",
                                         "expiration_days = 2"])])
    _run([CERTTOOL, "--generate-privkey", "--key-type", "rsa", "--bits", "2048", "--outfile", key])
    ips = ["127.0.0.1", "::1", *addresses]
    _run([CERTTOOL, "--generate-certificate", "--load-privkey", key, "--load-ca-certificate", ca_cert,
          "--load-ca-privkey", ca_key, "--outfile", cert,
          "--template", tmpl("host.info", ["cn = localhost", "dns_name = localhost",
                                           # libvirt's NBD (--copy-storage-all) connects to
                                           # the destination's host name
                                           f"dns_name = {socket.gethostname()}",
                                           *[f"ip_address = {a}" for a in ips],
                                           "tls_www_server", "tls_www_client", "signing_key",
                                           "encryption_key", "expiration_days = 2"])])
    shutil.copy(key, os.path.join(directory, "client-key.pem"))
    shutil.copy(cert, os.path.join(directory, "client-cert.pem"))


def qemu10_wrapper(workdir: str) -> str:
    """An executable that runs QEMU 10.0.2 with its own firmware and modules."""
    p = os.path.join(workdir, "qemu10-system-x86_64")
    with open(p, "w") as f:
        f.write("#!/bin/sh\n"
                "# QEMU 10.0.2 from the private prefix, with its own firmware and modules\n"
                f"QEMU_MODULE_DIR={QEMU10_PREFIX}/usr/lib/x86_64-linux-gnu/qemu\n"
                "export QEMU_MODULE_DIR\n"
                f"exec {QEMU10_PREFIX}/usr/bin/qemu-system-x86_64 -L {QEMU10_PREFIX}/usr/share/qemu "
                f"-L {QEMU10_PREFIX}/usr/share/seabios \"$@\"\n")
    os.chmod(p, 0o755)
    return p


def emulator(lv: "LibvirtPair", version: str) -> str:
    if version == "7.2":
        return QEMU72
    if version == "10.0":
        return lv.qemu10
    raise ValueError(version)


def domain_xml(lv: "LibvirtPair", name: str, version: str, mem_mib: int = 256,
               machine: str = "pc", disk: str | None = None) -> str:
    """A small TCG domain: no devices but what migration needs, the fill guest as its
    kernel; with disk, a raw virtio disk at that path (for --copy-storage-all). QEMU's
    migrate_set_state trace events go to its stderr, which is libvirt's QEMU log
    (Daemon.qemu_log): the ground truth of each attempt's outcome."""
    disk_xml = ""
    if disk:
        disk_xml = (f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                    f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>")
    return f"""<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <uuid>{uuidlib.uuid5(uuidlib.NAMESPACE_DNS, name + '.mftrace.test')}</uuid>
  <memory unit='MiB'>{mem_mib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='{machine}'>hvm</type><kernel>{lv.fill_guest}</kernel></os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>{emulator(lv, version)}</emulator>
    {disk_xml}
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline><qemu:arg value='-trace'/><qemu:arg value='migrate_set_state'/></qemu:commandline>
</domain>
"""


class Daemon:
    """One user's session libvirtd."""

    def __init__(self, side: str, user: str, workdir: str):
        self.side = side
        self.user = user
        self.home = os.path.join(workdir, f"home-{side}")
        self.proc: subprocess.Popen | None = None
        self.uid = self.gid = -1
        self.host_uuid = str(uuidlib.uuid4())

    @property
    def runtime(self) -> str:
        return f"/run/user/{self.uid}"

    @property
    def uri(self) -> str:
        return f"qemu+unix:///session?socket={self.runtime}/libvirt/libvirt-sock"

    @property
    def cert_dir(self) -> str:
        return os.path.join(self.home, "pki")

    @property
    def log(self) -> str:
        return os.path.join(self.home, "libvirtd.log")

    def qemu_log(self, dom: str) -> str:
        return os.path.join(self.home, ".cache", "libvirt", "qemu", "log", f"{dom}.log")

    def env(self) -> dict:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.home, "USER": self.user,
                "LOGNAME": self.user, "XDG_RUNTIME_DIR": self.runtime,
                "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
                "XDG_CACHE_HOME": os.path.join(self.home, ".cache"), "LC_ALL": "C",
                # to debug libvirt itself: LIBVIRT_LOG_FILTERS="1:qemu" (into libvirtd.log)
                **({"LIBVIRT_LOG_FILTERS": os.environ["LIBVIRT_LOG_FILTERS"],
                    "LIBVIRT_LOG_OUTPUTS": f"1:file:{self.log}"} if os.environ.get("LIBVIRT_LOG_FILTERS") else {})}


def _remove_user(user: str) -> None:
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return
    # a previous run's processes of this user (its libvirtd, QEMUs): only that uid
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    os.kill(int(d), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
    _run(["userdel", user], check=False)
    shutil.rmtree(f"/run/user/{uid}", ignore_errors=True)


class LibvirtPair:
    """Two users, two session daemons ("a" and "b"), certificates, the fill guest."""

    def __init__(self, workdir: str, cert_addresses: tuple[str, ...] = ()):
        self.workdir = os.path.abspath(workdir)
        self.cert_addresses = cert_addresses
        self.d = {s: Daemon(s, u, self.workdir) for s, u in zip(("a", "b"), USERS)}
        self.fill_guest = ""
        self.qemu10 = ""
        self.domains: set[tuple[str, str]] = set()

    # -- set-up
    def start_daemons(self, timeout: float = 60.0) -> "LibvirtPair":
        os.makedirs(self.workdir, exist_ok=True)
        p = self.workdir
        while p != "/":                     # the users reach the guest image, the wrapper
            os.chmod(p, os.stat(p).st_mode | 0o011)
            p = os.path.dirname(p)
        self.fill_guest = build_fill_guest(self.workdir)
        self.qemu10 = qemu10_wrapper(self.workdir)
        certs = os.path.join(self.workdir, "certs")
        make_certs(certs, self.cert_addresses)
        for d in self.d.values():
            _remove_user(d.user)
            _run(["useradd", "--system", "--no-create-home", "--home-dir", d.home,
                  "--shell", "/usr/sbin/nologin", d.user])
            pw = pwd.getpwnam(d.user)
            d.uid, d.gid = pw.pw_uid, pw.pw_gid
            cfg = os.path.join(d.home, ".config", "libvirt")
            os.makedirs(cfg, exist_ok=True)
            os.makedirs(d.cert_dir, exist_ok=True)
            for f in ("ca-cert.pem", "server-cert.pem", "server-key.pem", "client-cert.pem", "client-key.pem"):
                shutil.copy(os.path.join(certs, f), os.path.join(d.cert_dir, f))
            with open(os.path.join(cfg, "libvirtd.conf"), "w") as f:
                f.write(f'host_uuid = "{d.host_uuid}"\n'
                        f'log_outputs = "3:file:{d.log}"\n')
            with open(os.path.join(cfg, "qemu.conf"), "w") as f:
                f.write(f'migrate_tls_x509_cert_dir = "{d.cert_dir}"\n'
                        'migrate_tls_x509_verify = 1\n'
                        'stdio_handler = "file"\n')
            os.makedirs(d.runtime, mode=0o700, exist_ok=True)
            for top in (d.home, d.runtime):
                for root, dirs, files in os.walk(top):
                    for n in dirs + files:
                        os.lchown(os.path.join(root, n), d.uid, d.gid)
                os.chown(top, d.uid, d.gid)
            os.chmod(d.home, 0o711)
            err = open(os.path.join(self.workdir, f"libvirtd-{d.side}.stderr"), "wb")
            d.proc = subprocess.Popen([LIBVIRTD], user=d.uid, group=d.gid, extra_groups=[],
                                      env=d.env(), cwd=d.home, stdin=subprocess.DEVNULL,
                                      stdout=err, stderr=err, start_new_session=True)
            err.close()
        deadline = time.monotonic() + timeout
        for d in self.d.values():
            while True:
                if d.proc.poll() is not None:
                    raise LibvirtError(f"libvirtd of {d.user} exited {d.proc.returncode}: "
                                       f"{self._tail(os.path.join(self.workdir, f'libvirtd-{d.side}.stderr'))}")
                if os.path.exists(f"{d.runtime}/libvirt/libvirt-sock") and \
                        self.virsh(d.side, "uri", check=False).returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise LibvirtError(f"libvirtd of {d.user} not answering after {timeout}s")
                time.sleep(0.1)
        return self

    @staticmethod
    def _tail(path: str, n: int = 800) -> str:
        try:
            with open(path, errors="replace") as f:
                return f.read()[-n:].strip()
        except OSError:
            return ""

    # -- virsh
    def virsh(self, side: str, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
        return _run([VIRSH, "-q", "-c", self.d[side].uri, *args], timeout=timeout, check=check)

    def define(self, side: str, xml: str, name: str) -> None:
        path = os.path.join(self.workdir, f"{name}-{side}.xml")
        with open(path, "w") as f:
            f.write(xml)
        self.virsh(side, "define", path)
        self.domains.add((side, name))

    def hmp(self, side: str, dom: str, cmd: str) -> str:
        return self.virsh(side, "qemu-monitor-command", dom, "--hmp", cmd, timeout=30).stdout

    def pid(self, side: str, dom: str) -> int | None:
        """The QEMU pid of a running domain (libvirt's pidfile), or None."""
        try:
            with open(f"{self.d[side].runtime}/libvirt/qemu/run/{dom}.pid") as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if os.path.exists(f"/proc/{pid}") else None

    def state(self, side: str, dom: str) -> str:
        r = self.virsh(side, "domstate", dom, check=False)
        return r.stdout.strip() if r.returncode == 0 else "absent"

    def start(self, side: str, dom: str, timeout: float = 60.0) -> int:
        """Boot a defined domain and wait until its RAM is filled; returns its pid."""
        self.virsh(side, "start", dom)
        self.domains.add((side, dom))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if FILL_MAGIC in self.hmp(side, dom, "xp /1wx 0x500"):
                pid = self.pid(side, dom)
                if pid:
                    return pid
            time.sleep(0.2)
        raise LibvirtError(f"{dom} did not fill its RAM within {timeout}s")

    def migrate(self, src: str, dst: str, dom: str, port: int, host: str = "127.0.0.1",
                extra: tuple[str, ...] = (), xml: str | None = None, timeout: float = 300.0,
                background: bool = False):
        """virsh migrate --live --tls --parallel --parallel-connections 4 from src's daemon
        to dst's. Returns the CompletedProcess, or with background the Popen."""
        argv = [VIRSH, "-q", "-c", self.d[src].uri, "migrate", "--live", "--tls", "--parallel",
                "--parallel-connections", "4", *extra]
        if xml:
            path = os.path.join(self.workdir, f"{dom}-to-{dst}.xml")
            with open(path, "w") as f:
                f.write(xml)
            argv += ["--xml", path]
        u = f"[{host}]" if ":" in host else host
        argv += [dom, self.d[dst].uri, f"tcp://{u}:{port}"]
        self.domains.add((dst, dom))
        if background:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        return _run(argv, timeout=timeout, check=False)

    def destroy(self, side: str, dom: str) -> None:
        self.virsh(side, "destroy", dom, check=False, timeout=30)
        self.virsh(side, "undefine", dom, "--remove-all-storage", check=False, timeout=30)
        self.virsh(side, "undefine", dom, check=False, timeout=30)

    # -- teardown
    def stop(self) -> None:
        for side, dom in sorted(self.domains):
            if self.d[side].proc is not None and self.d[side].proc.poll() is None:
                self.destroy(side, dom)
        self.domains.clear()
        for d in self.d.values():
            if d.proc is not None and d.proc.poll() is None:
                d.proc.send_signal(signal.SIGTERM)
                try:
                    d.proc.wait(15)
                except subprocess.TimeoutExpired:
                    d.proc.kill()
                    d.proc.wait(10)
        for d in self.d.values():
            _remove_user(d.user)

    def __enter__(self) -> "LibvirtPair":
        return self.start_daemons()

    def __exit__(self, *exc) -> None:
        self.stop()


def qemu_version_of(pid: int) -> str:
    """"7.2" or "10.0" from the executable a QEMU process runs."""
    exe = os.readlink(f"/proc/{pid}/exe")
    return "10.0" if exe.startswith(QEMU10_PREFIX) else "7.2"


def domain_name_of(pid: int) -> str | None:
    """guest=NAME from a QEMU's -name argument."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    for i, a in enumerate(argv[:-1]):
        if a == b"-name":
            m = re.match(rb"guest=([^,]*)", argv[i + 1])
            if m:
                return m.group(1).decode(errors="replace")
    return None
