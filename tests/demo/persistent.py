"""One persistent client connection through every restart of `make demo` (stdlib only).

Runs inside the demo container: opens ONE TCP connection, notes its CLIENT ID, then sends INCR
in a tight loop until the stop file appears (bounded by --seconds), and prints JSON: requests,
errors, the counter's final value, the client id before and after, the longest wait. With the
live handover the connection, its id and the counter survive every restart.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time


def request(sock: socket.socket, reader, *args: str) -> bytes:
    sock.sendall(b"".join([b"*%d\r\n" % len(args)]
                          + [b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args]))
    line = reader.readline()
    if not line:
        raise ConnectionError("connection closed")
    if line[:1] == b"$":
        n = int(line[1:])
        data = reader.read(n + 2) if n >= 0 else b""
        return data[:-2]
    return line.rstrip(b"\r\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--until-file", required=True)
    args = parser.parse_args()
    out = {"requests": 0, "errors": 0, "first_error": None, "max_ms": 0.0}
    sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
    reader = sock.makefile("rb")
    out["client_id_before"] = int(request(sock, reader, "CLIENT", "ID")[1:])
    request(sock, reader, "SET", "demo:counter", "0")
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and not os.path.exists(args.until_file):
        t0 = time.perf_counter()
        try:
            request(sock, reader, "INCR", "demo:counter")
        except OSError as e:
            out["errors"] += 1
            out["first_error"] = out["first_error"] or str(e)
            break
        out["requests"] += 1
        out["max_ms"] = max(out["max_ms"], (time.perf_counter() - t0) * 1000)
        time.sleep(0.002)
    if not out["errors"]:
        out["client_id_after"] = int(request(sock, reader, "CLIENT", "ID")[1:])
        out["counter"] = int(request(sock, reader, "GET", "demo:counter"))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
