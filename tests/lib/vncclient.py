#!/usr/bin/env python3
"""A minimal VNC viewer over TLS (RFB 3.8, VeNCrypt X509None), for the tests (stdlib).

    python3 tests/lib/vncclient.py HOST PORT HOLD_SECONDS

Connects, negotiates VeNCrypt, completes the TLS handshake (the server's certificate is
not verified: loopback, test certificates), asks for a shared session (so that viewers
can overlap), reads the ServerInit, holds the connection HOLD_SECONDS, then closes the
socket as a viewer that is killed does (no close_notify). Exit status 0 when the session
was established. x509_creds() writes the server credentials QEMU's tls-creds-x509 reads.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
import sys
import time

VENCRYPT = 19
X509NONE = 260


def _recv(s, n: int) -> bytes:
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise ConnectionError(f"server closed after {len(b)} of {n} bytes")
        b += chunk
    return b


def session(host: str, port: int, hold: float) -> None:
    s = socket.create_connection((host, port), timeout=20)
    version = _recv(s, 12)
    if not version.startswith(b"RFB "):
        raise ConnectionError(f"not an RFB server: {version!r}")
    s.sendall(b"RFB 003.008\n")
    n = _recv(s, 1)[0]
    types = _recv(s, n)
    if VENCRYPT not in types:
        raise ConnectionError(f"no VeNCrypt among security types {list(types)}")
    s.sendall(bytes([VENCRYPT]))
    _recv(s, 2)                       # server's VeNCrypt version
    s.sendall(b"\x00\x02")
    if _recv(s, 1) != b"\x00":
        raise ConnectionError("VeNCrypt version refused")
    n = _recv(s, 1)[0]
    subtypes = struct.unpack(f">{n}I", _recv(s, 4 * n))
    if X509NONE not in subtypes:
        raise ConnectionError(f"no X509None among VeNCrypt subtypes {subtypes}")
    s.sendall(struct.pack(">I", X509NONE))
    if _recv(s, 1) != b"\x01":
        raise ConnectionError("X509None refused")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t = ctx.wrap_socket(s, server_hostname=host)
    if struct.unpack(">I", _recv(t, 4))[0] != 0:
        raise ConnectionError("security result: failed")
    t.sendall(b"\x01")                # ClientInit: shared
    _recv(t, 24)                      # ServerInit up to the name length
    time.sleep(hold)
    s.close()                         # a killed viewer: no close_notify
    t.close()


def x509_creds(directory: str) -> str:
    """ca-cert.pem, server-cert.pem and server-key.pem for 127.0.0.1 in directory (openssl)."""
    os.makedirs(directory, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca-cert.pem",
        "-days", "2", "-subj", "/CN=mftrace test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server-key.pem", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
        "-out", "server-cert.pem", "-days", "2", "-extfile", "ext.cnf")
    return directory


def main(argv: list[str]) -> int:
    try:
        session(argv[1], int(argv[2]), float(argv[3]))
    except (OSError, ConnectionError, ssl.SSLError) as e:
        print(f"vncclient: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
