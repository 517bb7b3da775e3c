"""Live-handover part of bench/restart.py: the code that runs inside the container.

Standard library only (the container's python3 3.11 has nothing else). restart.py copies this
file to /opt/bench/ and runs `python3 /opt/bench/restart_handover.py ARGS` there once per row
of the handover table; it prints one JSON object on stdout.

One row:

1. load N small keys (`key:<i>` -> 16-byte value) with pipelined MSET batches of 1000 over one
   raw-RESP connection, check DBSIZE;
2. start C clients, each a thread with ONE persistent TCP connection, that SET and GET their own
   keys (`hc:<client>:<seq % 256>`) in a tight loop and check every GET against the value they
   last had acknowledged; every request is timed (monotonic clock, start and latency). A client
   whose connection breaks (EOF, reset, timeout, error reply to SET) counts a connection error
   and reconnects (that is what the control row without handover shows); beside them one
   more thread connects, PINGs, reads the reply and closes in a tight loop (a new connection
   each time, as a connection pool filling up or a short-lived job does) and counts refused,
   reset and other failed attempts;
3. R times: `systemctl restart UNIT`, then INFO handover / INFO server from the new process;
4. stop the clients, then count keys lost: DBSIZE, every loaded key read back with pipelined
   MGET and compared, and every client key compared with the last value its client had
   acknowledged (the value of a SET cut off by a broken connection is accepted too).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

VALUE_LEN = 16
BATCH = 1000
INFO_FIELDS = ("handover_enabled", "handover_source", "handover_connections", "handover_keys",
               "handover_bytes", "handover_load_ms", "handover_total_ms", "startup_ms",
               "process_id", "used_memory")


class ReplyError(Exception):
    """The server answered with an error reply."""


class PeerClosed(OSError):
    """The server closed the connection."""


def encode(*args: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Conn:
    """One persistent raw-RESP2 connection with a buffered reply parser."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        if self.pos > 65536:
            del self.buf[: self.pos]
            self.pos = 0
        chunk = self.sock.recv(262144)
        if not chunk:
            raise PeerClosed("connection closed by the server")
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = bytes(self.buf[self.pos : end])
                self.pos = end + 2
                return line
            self._fill()

    def reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return ReplyError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) - self.pos < n + 2:
                self._fill()
            data = bytes(self.buf[self.pos : self.pos + n])
            self.pos += n + 2
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _dummy in range(n)]
        raise ValueError(f"unexpected reply line {line[:40]!r}")

    def call(self, *args: bytes | str | int) -> Any:
        self.sock.sendall(encode(*args))
        r = self.reply()
        if isinstance(r, ReplyError):
            raise r
        return r


def value_of(i: int) -> bytes:
    return b"v%015d" % i  # 16 bytes


def info(port: int, *sections: str) -> dict[str, str]:
    c = Conn(port, timeout=10.0)
    try:
        out: dict[str, str] = {}
        for s in sections:
            text = c.call("INFO", s).decode(errors="replace")
            for line in text.splitlines():
                k, sep, v = line.partition(":")
                if sep:
                    out[k] = v.strip()
        return out
    finally:
        c.close()


def wait_ping(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            c = Conn(port, timeout=2.0)
            try:
                if c.call("PING") == b"PONG":
                    return
            finally:
                c.close()
        except (OSError, ReplyError, ValueError):
            pass
        time.sleep(0.05)
    raise SystemExit(f"nothing answers PING on port {port} after {seconds:.0f} s")


def pipelined(conn: Conn, commands: Any, window: int = 32) -> int:
    """Send encoded commands with up to `window` batches in flight; returns error replies."""
    errors = 0
    inflight = 0
    for cmd in commands:
        conn.sock.sendall(cmd)
        inflight += 1
        if inflight >= window:
            if isinstance(conn.reply(), ReplyError):
                errors += 1
            inflight -= 1
    for _dummy in range(inflight):
        if isinstance(conn.reply(), ReplyError):
            errors += 1
    return errors


def load_keys(port: int, n: int) -> dict[str, Any]:
    t0 = time.monotonic()
    conn = Conn(port, timeout=60.0)
    try:
        def batches() -> Any:
            for start in range(0, n, BATCH):
                args: list[bytes] = [b"MSET"]
                for i in range(start, min(start + BATCH, n)):
                    args.append(b"key:%d" % i)
                    args.append(value_of(i))
                yield encode(*args)

        errors = pipelined(conn, batches())
        dbsize = conn.call("DBSIZE")
    finally:
        conn.close()
    return {"load_s": round(time.monotonic() - t0, 2), "load_errors": errors, "dbsize": dbsize}


def check_loaded(port: int, n: int) -> dict[str, int]:
    """Read every loaded key back (pipelined MGET); count the missing and the wrong ones."""
    conn = Conn(port, timeout=60.0)
    missing = wrong = 0
    try:
        starts = list(range(0, n, BATCH))
        window = 16
        sent = 0
        for done in range(len(starts)):
            while sent < len(starts) and sent - done < window:
                s = starts[sent]
                conn.sock.sendall(encode("MGET", *[b"key:%d" % i
                                                   for i in range(s, min(s + BATCH, n))]))
                sent += 1
            r = conn.reply()
            if isinstance(r, ReplyError):
                raise r
            for i, v in enumerate(r, starts[done]):
                if v is None:
                    missing += 1
                elif v != value_of(i):
                    wrong += 1
        dbsize = conn.call("DBSIZE")
    finally:
        conn.close()
    return {"missing": missing, "wrong": wrong, "dbsize_after": dbsize}


class Client(threading.Thread):
    """A persistent connection in a tight SET/GET loop; every request timed."""

    KEYS = 256

    def __init__(self, port: int, idx: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.idx, self.stop_ev = port, idx, stop
        self.samples: list[tuple[float, float, int]] = []  # (start, latency s, 1 ok / 0 error)
        self.errors: list[str] = []
        self.connects = 0
        self.mismatches = 0
        self.acked: dict[bytes, bytes] = {}
        self.uncertain: dict[bytes, bytes] = {}

    def _connect(self) -> Conn | None:
        t0 = time.monotonic()
        try:
            c = Conn(self.port, timeout=10.0)
            self.connects += 1
            return c
        except OSError as e:
            self.samples.append((t0, time.monotonic() - t0, 0))
            self.errors.append(f"connect: {type(e).__name__}: {e}")
            time.sleep(0.01)
            return None

    def run(self) -> None:
        conn: Conn | None = None
        seq = 0
        add = self.samples.append
        mono = time.monotonic
        while not self.stop_ev.is_set():
            if conn is None:
                conn = self._connect()
                if conn is None:
                    continue
            seq += 1
            key = b"hc:%d:%d" % (self.idx, seq % self.KEYS)
            val = b"%d" % seq
            phase = "SET"
            t0 = mono()
            try:
                self.uncertain[key] = val
                r = conn.call(b"SET", key, val)
                t1 = mono()
                add((t0, t1 - t0, 1))
                if r != b"OK":
                    raise ReplyError(f"SET answered {r!r}")
                self.acked[key] = val
                del self.uncertain[key]
                phase = "GET"
                r = conn.call(b"GET", key)
                t2 = mono()
                add((t1, t2 - t1, 1))
                if r != val:
                    self.mismatches += 1
            except (OSError, ReplyError, ValueError) as e:
                add((t0, mono() - t0, 0))
                self.errors.append(f"{phase}: {type(e).__name__}: {e}")
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


class Connector(threading.Thread):
    """New connections in a tight loop: connect, PING, read +PONG, close; every attempt timed."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.stop_ev = port, stop
        self.samples: list[tuple[float, float, int]] = []  # (start, latency s, 1 ok / 0 error)
        self.refused = self.reset = self.other = 0
        self.errors: list[str] = []

    def run(self) -> None:
        add = self.samples.append
        mono = time.monotonic
        while not self.stop_ev.is_set():
            t0 = mono()
            try:
                conn = Conn(self.port, timeout=10.0)
                try:
                    r = conn.call(b"PING")
                finally:
                    conn.close()
                if r != b"PONG":
                    raise ReplyError(f"PING answered {r!r}")
                add((t0, mono() - t0, 1))
                continue
            except ConnectionRefusedError as e:
                self.refused += 1
                err: Exception = e
            except (ConnectionResetError, PeerClosed) as e:
                self.reset += 1
                err = e
            except (OSError, ReplyError, ValueError) as e:
                self.other += 1
                err = e
            add((t0, mono() - t0, 0))
            self.errors.append(f"connect+PING: {type(err).__name__}: {err}")
            time.sleep(0.001)


def check_client_keys(port: int, clients: list[Client]) -> int:
    conn = Conn(port, timeout=30.0)
    lost = 0
    try:
        for cl in clients:
            for key, val in cl.acked.items():
                got = conn.call(b"GET", key)
                if got != val and got != cl.uncertain.get(key):
                    lost += 1
    finally:
        conn.close()
    return lost


def show(unit: str, prop: str) -> str:
    return subprocess.run(["systemctl", "show", unit, "-p", prop, "--value"],
                          capture_output=True, text=True, check=True).stdout.strip()


def run_row(args: argparse.Namespace) -> dict[str, Any]:
    wait_ping(args.port)
    loaded = load_keys(args.port, args.keys) if args.keys else {"load_s": 0.0, "load_errors": 0,
                                                                 "dbsize": 0}
    before = info(args.port, "memory", "server")
    stop = threading.Event()
    clients = [Client(args.port, i, stop) for i in range(args.clients)]
    connector = Connector(args.port, stop)
    base = time.monotonic()
    for c in clients:
        c.start()
    connector.start()
    time.sleep(args.spacing)
    restarts: list[dict[str, Any]] = []
    for _dummy in range(args.restarts):
        old_pid = show(args.unit, "MainPID")
        t_cmd = time.monotonic()
        rec_wall = time.time()
        r = subprocess.run(["systemctl", args.action, args.unit], capture_output=True, text=True)
        t_done = time.monotonic()
        rec: dict[str, Any] = {"cmd_s": round(t_cmd - base, 4), "done_s": round(t_done - base, 4),
                               "systemctl_rc": r.returncode, "old_pid": old_pid,
                               "new_pid": show(args.unit, "MainPID"),
                               "cmd_wall_ms": round(rec_wall * 1e3)}
        if r.returncode:
            rec["systemctl_stderr"] = r.stderr.strip()[-500:]
        try:
            got = info(args.port, "handover", "server")
            rec.update({k: got.get(k) for k in INFO_FIELDS if k in got})
        except (OSError, ReplyError) as e:
            rec["info_error"] = str(e)
        restarts.append(rec)
        time.sleep(args.spacing)
    stop.set()
    for c in clients:
        c.join(timeout=30)
    connector.join(timeout=30)
    end = time.monotonic() - base
    # Each request belongs to the restart whose [cmd, next cmd) holds the moment it COMPLETED
    # (a request stuck in the blackout completes after the restart began). Requests before the
    # first restart are the baseline.
    samples = sorted((t0 - base, lat, ok) for c in clients for t0, lat, ok in c.samples)
    attempts = sorted((t0 - base, lat, ok) for t0, lat, ok in connector.samples)
    bounds = [r["cmd_s"] for r in restarts] + [float("inf")]
    base_lat = [lat for t0, lat, ok in samples if ok and t0 + lat < bounds[0]]
    for i, rec in enumerate(restarts):
        lo, hi = bounds[i], bounds[i + 1]
        mine = [(t0, lat, ok) for t0, lat, ok in samples if lo <= t0 + lat < hi]
        rec["requests"] = len(mine)
        rec["errors"] = sum(1 for s in mine if not s[2])
        rec["max_latency_ms"] = round(max((lat for dummy, lat, dummy2 in mine), default=0) * 1e3,
                                      1)
        # blackout: the longest stretch in which no client completed any request
        done = sorted(t0 + lat for t0, lat, ok in mine if ok)
        edges = [lo] + done
        rec["blackout_ms"] = round(max((b - a for a, b in zip(edges, edges[1:], strict=False)),
                                       default=0) * 1e3, 1)
        rec["systemctl_restart_ms"] = round((rec["done_s"] - rec["cmd_s"]) * 1e3, 1)
        tried = [(lat, ok) for t0, lat, ok in attempts if lo <= t0 + lat < hi]
        rec["connect_attempts"] = len(tried)
        rec["connect_failed"] = sum(1 for dummy, ok in tried if not ok)
        rec["connect_max_ms"] = round(max((lat for lat, dummy in tried), default=0) * 1e3, 1)
        # where the tail is: the slowest requests, (start, latency) in ms since the command
        slow = sorted(mine, key=lambda s: s[1], reverse=True)[:5]
        rec["slowest_ms"] = [(round((t0 - lo) * 1e3, 1), round(lat * 1e3, 1))
                             for t0, lat, dummy in slow]
    lost_loaded = check_loaded(args.port, args.keys) if args.keys else {
        "missing": 0, "wrong": 0, "dbsize_after": None}
    lost_client = check_client_keys(args.port, clients)
    final = info(args.port, "memory", "keyspace")
    errors = [e for c in clients for e in c.errors]
    return {
        "label": args.label, "keys": args.keys, "clients": args.clients,
        "load": loaded, "used_memory_loaded": before.get("used_memory"),
        "duration_s": round(end, 2), "requests": len(samples),
        "requests_ok": sum(1 for s in samples if s[2]),
        "connection_errors": len(errors), "first_errors": errors[:5],
        "connects": [c.connects for c in clients],
        "connect_attempts": len(attempts),
        "connect_ok": sum(1 for s in attempts if s[2]),
        "connect_refused": connector.refused, "connect_reset": connector.reset,
        "connect_other_errors": connector.other, "connect_first_errors": connector.errors[:5],
        "get_mismatches": sum(c.mismatches for c in clients),
        "baseline_p50_ms": round(statistics.median(base_lat) * 1e3, 3) if base_lat else None,
        "baseline_max_ms": round(max(base_lat) * 1e3, 1) if base_lat else None,
        "loaded_missing": lost_loaded["missing"], "loaded_wrong": lost_loaded["wrong"],
        "client_keys_lost": lost_client,
        "client_keys": sum(len(c.acked) for c in clients),
        "dbsize_after": lost_loaded["dbsize_after"],
        "used_memory_after": final.get("used_memory"),
        "restarts": restarts,
        # every request (start s since the clients began, latency ms): bench/restart.py's picture
        "series": [(round(t0, 4), round(lat * 1e3, 2)) for t0, lat, ok in samples if ok]
        if args.series else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--keys", type=int, default=0)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--spacing", type=float, default=1.0)
    ap.add_argument("--label", default="")
    ap.add_argument("--series", action="store_true", help="every request in the output")
    ap.add_argument("--action", choices=("restart", "reload"), default="restart",
                    help="systemctl restart (stop-start handover) or reload (issue 18)")
    args = ap.parse_args(argv)
    print(json.dumps(run_row(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
