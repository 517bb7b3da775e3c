"""Clients of the `faults` scenario, run inside the instance during one fault (stdlib only).

- a tight-loop client (ironcache_probe.Prober, copied next to this file): connect, PING, close;
  counts refused, reset and timed-out connections and the longest wait;
- --persistent clients, each on ONE connection, sending INCR on a counter of its own (5 ms
  apart). Every reply must be the previous one + 1 (an INCR applied twice or lost shows there);
  on an error the client counts it, reconnects (bounded) and reads its counter back. At the end
  every counter is read on a fresh connection: below the last acknowledged value = lost writes.

Writes --ready-file once every client got its first reply, stops when --until-file appears
(bounded by --seconds), then prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ironcache_probe import Prober  # noqa: E402


def encode(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Conn:
    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader = self.sock.makefile("rb")

    def call(self, *args: str) -> bytes:
        self.sock.sendall(encode(*args))
        line = self.reader.readline()
        if not line:
            raise ConnectionError("connection closed by the server")
        if line[:1] == b"-":
            raise RuntimeError(line.decode(errors="replace").strip())
        if line[:1] == b"$":
            size = int(line[1:])
            return self.reader.read(size + 2)[:-2] if size >= 0 else b""
        return line[1:].rstrip(b"\r\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Persistent(threading.Thread):
    def __init__(self, index: int, args: argparse.Namespace, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.key = f"faults:{args.label}:{index}"
        self.args, self.stop = args, stop
        self.acked = 0          # last INCR reply received
        self.requests = self.errors = self.wrong = self.reconnects = 0
        self.first_error: str | None = None
        self.max_ms = 0.0
        self.ready = threading.Event()
        self.conn: Conn | None = None
        self.id_before = self.id_after = None

    def open(self) -> None:
        self.conn = Conn(self.args.port, self.args.timeout)

    def run(self) -> None:
        self.open()
        self.id_before = self.conn.call("CLIENT", "ID").decode()
        self.conn.call("SET", self.key, "0")
        self.ready.set()
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                value = int(self.conn.call("INCR", self.key))
            except (OSError, ConnectionError, RuntimeError, ValueError) as exc:
                self.errors += 1
                self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"
                if not self.reconnect():
                    return
                continue
            self.max_ms = max(self.max_ms, (time.monotonic() - t0) * 1000.0)
            self.requests += 1
            if value != self.acked + 1:
                self.wrong += 1
            self.acked = value
            time.sleep(self.args.pause)
        with contextlib.suppress(OSError, ConnectionError, RuntimeError):
            self.id_after = self.conn.call("CLIENT", "ID").decode()

    def reconnect(self) -> bool:
        """After an error: a new connection; the counter read back is the new base."""
        if self.conn is not None:
            self.conn.close()
        deadline = time.monotonic() + self.args.timeout * 3
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                self.open()
                self.reconnects += 1
                value = int(self.conn.call("GET", self.key) or 0)
            except (OSError, ConnectionError, RuntimeError, ValueError):
                time.sleep(0.05)
                continue
            if value < self.acked:
                self.wrong += 1  # an acknowledged INCR is gone: counted again at the end
            else:
                self.acked = value  # the INCR in flight may have been applied
            return True
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--label", required=True)
    ap.add_argument("--persistent", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--pause", type=float, default=0.005)
    ap.add_argument("--until-file", required=True)
    ap.add_argument("--ready-file", required=True)
    args = ap.parse_args()
    stop = threading.Event()
    prober = Prober(port=args.port, connect_timeout=args.timeout, max_seconds=args.seconds,
                    max_attempts=2_000_000)
    clients = [Persistent(i, args, stop) for i in range(args.persistent)]
    for client in clients:
        client.start()
    for client in clients:
        client.ready.wait(args.timeout)
    prober.start()
    time.sleep(0.2)
    with open(args.ready_file, "w", encoding="utf-8") as fh:
        fh.write("ready\n")
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and not os.path.exists(args.until_file):
        time.sleep(0.05)
    time.sleep(0.2)  # the tail after the fault counts too
    figures = prober.stop()
    stop.set()
    for client in clients:
        client.join(args.timeout * 4)
    lost: int | None = 0
    try:
        check = Conn(args.port, args.timeout)
        try:
            for client in clients:
                value = int(check.call("GET", client.key) or 0)
                lost += max(0, client.acked - value)
        finally:
            check.close()
    except (OSError, ConnectionError, RuntimeError, ValueError):
        lost = None  # the server does not answer (the control's failed units): not judged
    figures["persistent"] = {
        "clients": len(clients),
        "requests": sum(c.requests for c in clients),
        "errors": sum(c.errors for c in clients),
        "reconnects": sum(c.reconnects for c in clients),
        "wrong_replies": sum(c.wrong for c in clients),
        "lost_writes": lost,
        "ids_kept": all(c.id_after is not None and c.id_after == c.id_before for c in clients),
        "max_ms": round(max((c.max_ms for c in clients), default=0.0), 1),
        "first_error": next((c.first_error for c in clients if c.first_error), None),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
