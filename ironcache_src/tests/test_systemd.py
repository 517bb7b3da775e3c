"""systemd integration without systemd: sd_notify on a NOTIFY_SOCKET we own, graceful stop."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import IS_REDIS, RawConn, Server, encode_command

pytestmark = pytest.mark.skipif(IS_REDIS, reason="systemd integration is IronCache-specific")


class NotifyListener:
    """An AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path | str, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"ironcache-test-{id(self)}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.path = "@" + name
        else:
            self.sock.bind(str(path))
            self.path = str(path)
        self.messages: list[dict[str, str]] = []

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _receive(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        fields: dict[str, str] = {}
        for line in data.decode(errors="replace").split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                fields[k] = v
        self.messages.append(fields)
        return True

    def wait_for(self, assignment: str, timeout: float = 20.0) -> dict[str, str]:
        """Wait (bounded) for a datagram containing e.g. READY=1; return that datagram."""
        key, value = assignment.split("=", 1)
        for m in self.messages:
            if m.get(key) == value:
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._receive(max(0.01, deadline - time.monotonic())):
                m = self.messages[-1]
                if m.get(key) == value:
                    return m
        raise AssertionError(f"no {assignment} within {timeout}s; got {self.messages}")

    def all_values(self, key: str) -> list[str]:
        return [m[key] for m in self.messages if key in m]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="icsd-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_notify_ready_status_stopping(make_server: Callable[..., Server],
                                      short_dir: Path) -> None:
    with NotifyListener(short_dir / "notify.sock") as notify:
        srv = make_server(start=False, env={"NOTIFY_SOCKET": notify.path})
        srv.start(wait=False)
        ready = notify.wait_for("READY=1")
        # READY=1 means serving: the very next connection is answered.
        with srv.raw() as c:
            assert c.call("PING") == "PONG"
        assert any(m.get("STATUS") for m in notify.messages), notify.messages
        if "MAINPID" in ready:
            assert ready["MAINPID"] == str(srv.pid)
        srv.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        assert srv.wait() == 0
        ready_at = next(i for i, m in enumerate(notify.messages) if m.get("READY") == "1")
        stopping_at = next(i for i, m in enumerate(notify.messages) if m.get("STOPPING") == "1")
        assert ready_at < stopping_at


def test_notify_abstract_socket(make_server: Callable[..., Server]) -> None:
    with NotifyListener("", abstract=True) as notify:
        srv = make_server(start=False, env={"NOTIFY_SOCKET": notify.path})
        srv.start(wait=False)
        notify.wait_for("READY=1")
        srv.wait_ready()


def test_watchdog(make_server: Callable[..., Server], short_dir: Path) -> None:
    with NotifyListener(short_dir / "wd.sock") as notify:
        srv = make_server(start=False, env={"NOTIFY_SOCKET": notify.path,
                                            "WATCHDOG_USEC": "400000"})
        srv.start(wait=False)
        notify.wait_for("READY=1")
        notify.wait_for("WATCHDOG=1", timeout=10)


def test_no_notify_socket_is_fine(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    assert srv.client().ping() is True


def test_notify_socket_missing_does_not_break_start(make_server: Callable[..., Server],
                                                    short_dir: Path) -> None:
    srv = make_server(env={"NOTIFY_SOCKET": str(short_dir / "nobody-listens.sock")})
    assert srv.client().ping() is True


# -- graceful shutdown ----------------------------------------------------------------------

def _parse_integer_replies(data: bytes) -> list[int]:
    lines = data.split(b"\r\n")
    assert lines[-1] == b"", f"a reply was cut off: {data[-80:]!r}"
    out = []
    for line in lines[:-1]:
        assert line.startswith(b":"), line
        out.append(int(line[1:]))
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_answers_pipelined_commands(make_server: Callable[..., Server],
                                                      sig: int) -> None:
    srv = make_server()
    n = 3000
    payload = b"".join(encode_command("INCR", "counter") for _ in range(n))
    with RawConn.tcp("127.0.0.1", srv.port, timeout=20) as c:
        assert c.call("PING") == "PONG"
        c.send(payload)
        srv.send_signal(sig)
        data = c.read_until_closed(20)
    assert _parse_integer_replies(data) == list(range(1, n + 1))
    assert srv.wait() == 0


def test_graceful_shutdown_closes_idle_clients(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    idle = [srv.raw() for _ in range(5)]
    for c in idle:
        assert c.call("PING") == "PONG"
    busy = srv.raw()
    busy.send_command("MULTI")
    assert busy.read_reply() == "OK"
    srv.send_signal(signal.SIGTERM)
    for c in [*idle, busy]:
        assert c.is_closed(20)
        c.close()
    assert srv.wait() == 0


def test_shutdown_stops_accepting(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    port = srv.port
    assert srv.stop() == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_shutdown_not_held_up_by_a_partial_frame(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    stalled = srv.raw()
    stalled.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc")  # and nothing more
    assert srv.client().ping() is True
    srv.send_signal(signal.SIGTERM)
    assert srv.wait() == 0  # bounded by STOP_TIMEOUT
    assert stalled.is_closed(5)
    stalled.close()


def test_shutdown_not_held_up_by_a_client_that_never_reads(
        make_server: Callable[..., Server]) -> None:
    srv = make_server()
    c = srv.client(decode_responses=False)
    c.set("big", b"q" * (8 * 1024 * 1024))
    sleeper = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sleeper.sendall(encode_command("GET", "big") * 8)  # 64 MB of replies, never read
    assert srv.client().ping() is True
    srv.send_signal(signal.SIGTERM)
    assert srv.wait() == 0  # bounded by STOP_TIMEOUT, well inside systemd's 90 s
    sleeper.close()
