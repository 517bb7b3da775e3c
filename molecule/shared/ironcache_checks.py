"""Checks shared by the molecule scenarios (testinfra), run on the controller.

The scenarios' tests import this module (molecule.yml puts molecule/shared on PYTHONPATH).
Everything runs inside the instance through testinfra's ``host``: redis-cli, ss, systemctl and
the probe client (plugins/module_utils/ironcache_probe.py, copied into the instance).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROBE_SOURCE = ROOT / "plugins" / "module_utils" / "ironcache_probe.py"
PROBE_PATH = "/root/ironcache_probe.py"
OUTPUT_DIR = ROOT / "tests" / "output"

CONF = "/etc/ironcache/ironcache.conf"
SERVICE = "ironcache.service"
SOCKET = "ironcache.socket"


def record(name: str, figures: dict[str, Any]) -> None:
    """Print figures (the verifier runs pytest -s) and keep them in tests/output/."""
    line = json.dumps(figures, sort_keys=True)
    print(f"\nIRONCACHE-FIGURES {name}: {line}")
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    with open(OUTPUT_DIR / f"{name}.json", "w", encoding="utf-8") as fh:
        fh.write(line + "\n")


def redis_cli(host, *args: str, port: int = 6379) -> str:
    quoted = " ".join(shlex.quote(a) for a in args)
    return host.check_output(f"redis-cli -h 127.0.0.1 -p {port} {quoted}")


# What the role installs for TLS (ironcache_tls_dir); the verifier presents the server's own
# certificate as its client certificate (the test CA signs it with no usage restriction).
TLS_DIR = "/etc/ironcache/tls"
TLS_CLIENT = (f"--tls --cacert {TLS_DIR}/ca.crt --cert {TLS_DIR}/ironcache.crt "
              f"--key {TLS_DIR}/ironcache.key")


def redis_cli_tls(host, *args: str, port: int = 6380, client_cert: bool = True):
    """redis-cli --tls (Debian's redis-tools is built with TLS); the command's result."""
    quoted = " ".join(shlex.quote(a) for a in args)
    opts = TLS_CLIENT if client_cert else f"--tls --cacert {TLS_DIR}/ca.crt"
    return host.run(f"redis-cli -h 127.0.0.1 -p {port} {opts} {quoted}")


def info_server(host, port: int = 6379) -> dict[str, str]:
    text = redis_cli(host, "INFO", "server", port=port)
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


def somaxconn(host) -> int:
    return int(host.file("/proc/sys/net/core/somaxconn").content_string.strip())


def listen_lines(host, port: int = 6379) -> list[str]:
    """`ss -ltnp` lines of the TCP listeners on port."""
    out = host.check_output(f"ss -Hltnp 'sport = :{port}'")
    return [line for line in out.splitlines() if line.strip()]


def send_q(line: str) -> int:
    """Send-Q of a LISTEN line of `ss -ltn`: the listen backlog."""
    fields = line.split()
    # State Recv-Q Send-Q Local Peer [Process]
    return int(fields[2])


def main_pid(host, unit: str = SERVICE) -> int:
    return int(host.check_output(f"systemctl show -p MainPID --value {unit}").strip() or 0)


def security_exposure(host, unit: str = SERVICE) -> float:
    """The overall exposure of `systemd-analyze security UNIT` (0 best, 10 worst)."""
    out = host.run(f"systemd-analyze security --no-pager {unit}")
    match = re.search(r"Overall exposure level for \S+:\s*([0-9.]+)", out.stdout + out.stderr)
    assert match, f"no exposure level in: {out.stdout[-500:]} {out.stderr[-500:]}"
    return float(match.group(1))


def wait_serving(host, port: int = 6379, seconds: float = 30.0) -> None:
    """Wait (bounded) until the service is active and answers PING."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        active = host.run(f"systemctl is-active {SERVICE}").stdout.strip()
        ping = host.run(f"redis-cli -h 127.0.0.1 -p {port} PING").stdout.strip()
        if active == "active" and ping == "PONG":
            return
        time.sleep(0.2)
    raise AssertionError(f"{SERVICE} not serving on port {port} after {seconds}s")


def install_probe(host) -> None:
    """Copy the probe into the instance (through the command channel: works on any backend)."""
    data = base64.b64encode(PROBE_SOURCE.read_bytes()).decode("ascii")
    host.check_output(f"printf %s {data} | base64 -d > {PROBE_PATH}")


def restart_under_probe(host, port: int = 6379, restarts: int = 3,
                        max_seconds: float = 60.0, probe_args: str = "",
                        serving_port: int | None = None) -> dict[str, Any]:
    """Restart ironcache.service `restarts` times while the probe connects in a tight loop.

    The probe runs inside the instance in the background (nohup, bounded by --seconds and
    --max-attempts and by `timeout`). Returns the probe's figures plus the main PIDs seen, so the
    caller can check that every restart really replaced the process.
    """
    install_probe(host)
    stop_file, out_file = "/root/probe.stop", "/root/probe.json"
    host.check_output(f"rm -f {stop_file} {out_file}")
    host.check_output(
        f"nohup timeout {int(max_seconds) + 15} python3 {PROBE_PATH} --host 127.0.0.1"
        f" --port {port} --seconds {max_seconds} --max-attempts 150000 --connect-timeout 3"
        f" --until-file {stop_file} --json {probe_args} >{out_file} 2>/root/probe.err </dev/null &"
    )
    pids = [main_pid(host)]
    time.sleep(0.5)  # the probe is warm before the first restart
    for _ in range(restarts):
        host.check_output(f"systemctl restart {SERVICE}")
        wait_serving(host, serving_port or port)  # (a TLS probe: the plain port answers)
        pids.append(main_pid(host))
        time.sleep(0.3)
    host.check_output(f"touch {stop_file}")
    deadline = time.monotonic() + max_seconds + 20
    text = ""
    while time.monotonic() < deadline:
        text = host.file(out_file).content_string if host.file(out_file).exists else ""
        if text.strip():
            break
        time.sleep(0.2)
    assert text.strip(), "the probe wrote nothing: " + host.run("cat /root/probe.err").stdout
    figures = json.loads(text)
    figures["restarts"] = restarts
    figures["main_pids"] = pids
    return figures


def expected_backlog(host) -> tuple[int, int, int]:
    """(requested, somaxconn, expected Backlog=) for this scenario.

    The requested backlog comes from the scenario (IRONCACHE_REQUESTED_BACKLOG, default the role's
    default 4096); the role clamps it to the instance's net.core.somaxconn.
    """
    requested = int(os.environ.get("IRONCACHE_REQUESTED_BACKLOG", "4096"))
    limit = somaxconn(host)
    return requested, limit, min(requested, limit)


# ---- clients on the controller (live handover) ---------------------------------------------
# The handover scenario publishes the instance's port on the controller's loopback and runs the
# clients here, in the test process: redis-py (a connection pool, no retries, every new socket
# counted), redis-cli, and a raw RESP socket for half-sent commands and MULTI.


def resp_encode(*args: str | bytes) -> bytes:
    """A RESP multibulk frame of the arguments."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RawClient:
    """One TCP connection speaking RESP2 by hand: nothing reconnects behind the test's back."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 20.0):
        import socket

        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, size: int) -> bytes:
        while len(self.buf) < size + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self.buf += chunk
        data, self.buf = self.buf[:size], self.buf[size + 2:]
        return data

    def read(self) -> Any:
        """One reply: str for +, int for :, bytes/None for $, list for *, ('ERR', text) for -."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return ("ERR", rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exact(size)
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.read() for _ in range(count)]
        raise AssertionError(f"unexpected reply line {line!r}")

    def call(self, *args: str) -> Any:
        self.send(resp_encode(*args))
        return self.read()

    def close(self) -> None:
        self.sock.close()


def parse_info(text: str | bytes | dict) -> dict[str, str]:
    """INFO's reply as {field: text}; redis-py hands INFO over already parsed (a dict)."""
    if isinstance(text, dict):
        return {str(k): str(v) for k, v in text.items()}
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


def counting_connection_class():
    """A redis.Connection subclass with its own list of every socket it opened (monotonic times).

    redis-py's pool silently reconnects a pooled connection the server closed while it was idle
    (get_connection() sees it readable, disconnects and connects again): only counting the
    sockets shows whether a connection was really kept.
    """
    import redis

    class CountingConnection(redis.Connection):
        opened: list[float] = []

        def _connect(self):
            sock = super()._connect()
            CountingConnection.opened.append(time.monotonic())
            return sock

    CountingConnection.opened = []
    return CountingConnection


def strict_pool(port: int, connections: int, host: str = "127.0.0.1", db: int = 0,
                timeout: float = 20.0):
    """A redis.ConnectionPool without retries (an error reaches the caller), counting sockets."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.ConnectionPool(
        connection_class=counting_connection_class(), host=host, port=port, db=db,
        max_connections=connections, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), decode_responses=True)


def warm_pool(pool, connections: int) -> None:
    """Open every connection of the pool now (check them all out at once, PING, give back)."""
    held = [pool.get_connection() for _ in range(connections)]
    try:
        for conn in held:
            conn.send_command("PING")
            assert conn.read_response() in ("PONG", b"PONG", True)
    finally:
        for conn in held:
            pool.release(conn)


class PoolLoad:
    """Threads sharing one redis-py pool, each writing unique keys with SET then reading them back
    with GET in a loop, bounded in operations and time. Errors are counted, never retried."""

    def __init__(self, pool, threads: int, prefix: str, max_ops: int = 200000,
                 max_seconds: float = 300.0, pause: float = 0.0):
        import threading

        self.pool, self.threads, self.prefix = pool, threads, prefix
        self.max_ops, self.max_seconds, self.pause = max_ops, max_seconds, pause
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.written: dict[str, str] = {}   # SET acknowledged: key -> value
        self.uncertain: set[str] = set()    # SET raised: state unknown
        self.set_at: dict[str, float] = {}  # key -> monotonic time its SET was sent
        self.errors: list[tuple[float, str]] = []  # (when the operation began, what)
        self.mismatches: list[tuple[str, str, Any]] = []
        self.latencies: list[tuple[float, float]] = []  # (start, seconds) of each SET+GET
        self.ops = 0
        self.workers = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(threads)]

    def _run(self, index: int) -> None:
        import redis

        client = redis.Redis(connection_pool=self.pool)
        deadline = time.monotonic() + self.max_seconds
        i = 0
        while not self.stop_event.is_set() and i < self.max_ops and time.monotonic() < deadline:
            key, value = f"{self.prefix}:{index}:{i}", f"v{index}-{i}-{self.prefix}"
            start = time.monotonic()
            self.set_at[key] = start
            stage = "SET"
            try:
                ok = client.set(key, value)
                stage = "GET"
                got = client.get(key)
            except redis.RedisError as exc:
                with self.lock:
                    what = f"{stage} {key}: {type(exc).__name__}: {exc}"
                    self.errors.append((start, what))
                    if stage == "SET":
                        self.uncertain.add(key)
                    else:
                        self.written[key] = value
                i += 1
                continue
            spent = time.monotonic() - start
            with self.lock:
                self.ops += 2
                self.latencies.append((start, spent))
                if ok:
                    self.written[key] = value
                else:
                    self.uncertain.add(key)
                if got != value:
                    self.mismatches.append((key, value, got))
            i += 1
            if self.pause:
                time.sleep(self.pause)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, seconds: float = 60.0) -> None:
        self.stop_event.set()
        for worker in self.workers:
            worker.join(seconds)
        assert not any(w.is_alive() for w in self.workers), "a pool worker did not stop"

    def figures(self) -> dict[str, Any]:
        spent = sorted(s for _, s in self.latencies)

        def pct(p: float) -> float:
            if not spent:
                return 0.0
            return round(spent[min(len(spent) - 1, int(p * len(spent)))] * 1000, 1)

        return {"threads": self.threads, "ops": self.ops, "keys_written": len(self.written),
                "errors": len(self.errors), "mismatches": len(self.mismatches),
                "uncertain": len(self.uncertain), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                "max_ms": pct(1.0)}


def missing_keys(port: int, expected: dict[str, str], db: int = 0, batch: int = 500,
                 host: str = "127.0.0.1") -> dict[str, Any]:
    """Read back every key (MGET in batches, a fresh connection): {key: value found} of every key
    whose value differs from the expected one (None: the key is gone)."""
    import redis

    client = redis.Redis(host=host, port=port, db=db, decode_responses=True, socket_timeout=30)
    wrong: dict[str, Any] = {}
    keys = sorted(expected)
    try:
        for i in range(0, len(keys), batch):
            chunk = keys[i:i + batch]
            for key, got in zip(chunk, client.mget(chunk), strict=True):
                if got != expected[key]:
                    wrong[key] = got
    finally:
        client.close()
    return wrong


def wait_replaced(host, old_pid: int, port: int = 6379, seconds: float = 30.0) -> int:
    """Wait (bounded) until ironcache.service runs a main process other than old_pid, is active,
    and answers PING inside the instance; returns the new main PID."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pid = main_pid(host)
        if pid and pid != old_pid:
            active = host.run(f"systemctl is-active {SERVICE}").stdout.strip()
            ping = host.run(f"redis-cli -h 127.0.0.1 -p {port} PING").stdout.strip()
            if active == "active" and ping == "PONG":
                return pid
        time.sleep(0.1)
    raise AssertionError(f"{SERVICE}: no new serving main process after {seconds}s"
                         f" (old {old_pid}): " + journal_tail(host, 30))


def journal_tail(host, lines: int = 60) -> str:
    return host.run(f"journalctl -u {SERVICE} --no-pager -o short-monotonic -n {lines}").stdout
