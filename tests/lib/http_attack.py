#!/usr/bin/env python3
"""Hostile HTTP clients against one port on 127.0.0.1 (standard library only).

    python3 http_attack.py PORT N_SLOW N_PARALLEL SECONDS

Run it as another user than the scraper (the tests run it as nobody, through setpriv and
/usr/bin/python3 -c, so that it needs no file of the repository). For SECONDS:

  - N_SLOW clients each trickle a request one byte every 50 ms and never finish it; when
    the server closes one, it reconnects at once;
  - N_PARALLEL clients each fetch /metrics in a loop, as fast as they are answered.

Prints one JSON object: connections made, the parallel clients' answers, and "cut": for
every slow connection the server closed, [when (seconds since the start), how long after
connecting]. A connection may wait in the listen backlog before the server takes it, so
the server held it at most that long.
"""

import json
import socket
import sys
import threading
import time


def main() -> int:
    port, n_slow, n_par, dur = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    start = time.monotonic()
    stop = start + dur
    lock = threading.Lock()
    lives = []                    # seconds from connect to the server's close, slow connections
    st = {"slow_connections": 0, "connect_errors": 0, "parallel_ok": 0, "parallel_refused": 0, "parallel_other": 0}
    req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000 + b"\r\n"

    def slow():
        while time.monotonic() < stop:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                with lock:
                    st["connect_errors"] += 1
                time.sleep(0.05)
                continue
            t0, i, cut = time.monotonic(), 0, False
            try:
                s.settimeout(0.05)
                while time.monotonic() < stop:
                    s.send(req[i % len(req):i % len(req) + 1])
                    i += 1
                    try:
                        if s.recv(4096) == b"":
                            cut = True        # the server closed it
                            break
                    except socket.timeout:
                        pass
            except OSError:
                cut = True
            with lock:
                st["slow_connections"] += 1
                if cut:
                    now = time.monotonic()
                    lives.append((round(now - start, 3), round(now - t0, 3)))
            s.close()

    def parallel():
        while time.monotonic() < stop:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    c = s.recv(65536)
                    if not c:
                        break
                    data += c
                s.close()
                key = ("parallel_ok" if data.startswith(b"HTTP/1.1 200") and data.endswith(b"\n")
                       else "parallel_refused" if not data else "parallel_other")
            except OSError:
                key = "parallel_refused"
            with lock:
                st[key] += 1

    threads = [threading.Thread(target=slow) for _ in range(n_slow)]
    threads += [threading.Thread(target=parallel) for _ in range(n_par)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st["cut"] = lives
    print(json.dumps(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
