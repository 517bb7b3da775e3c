"""Fixtures: a shared server for the session, dedicated servers on demand, clients.

IRONCACHE_TEST_TARGET=redis runs the same suite against a real redis-server; tests marked
`ironcache_only` (socket activation, INFO fields, CLI, systemd notify) skip there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings

from support import IS_REDIS, REDIS_SERVER, TARGET, RedisReference, Server, marked_processes

# Default: derandomized, so `make test` gives the same verdict on every run.
# HYPOTHESIS_PROFILE=explore: fresh random examples, four times as many (to hunt for bugs).
_common = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "database": None,
}
settings.register_profile("ironcache", max_examples=60, derandomize=True, **_common)
settings.register_profile("explore", max_examples=240, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ironcache"))


def pytest_configure(config: pytest.Config) -> None:
    # redis-py marks SETEX and friends deprecated; the server must still implement them.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")


def pytest_report_header(config: pytest.Config) -> str:
    return f"ironcache server tests: target={TARGET}"


# Servers of the session fixtures: the only marked processes allowed to outlive a test.
SESSION_SERVERS: list[Server] = []


def _leftovers() -> dict[int, str]:
    """Marked processes still running, other than the session servers; waits (bounded) for
    processes that are exiting, then kills what is left so that later tests start clean."""
    allowed = {srv.proc.pid for srv in SESSION_SERVERS if srv.proc is not None}
    deadline = time.monotonic() + 3.0
    while True:
        found = {pid: cmd for pid, cmd in marked_processes().items() if pid not in allowed}
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return found


@pytest.fixture(autouse=True)
def _no_process_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test (at teardown) when a process it started is still running after it.

    Autouse fixtures are set up first, so this teardown runs after the test's own fixtures
    (make_server, ...) have stopped what they started.
    """
    yield
    found = _leftovers()
    assert not found, (f"{request.node.nodeid} left processes running (killed now): "
                       + "; ".join(f"pid {pid}: {cmd}" for pid, cmd in sorted(found.items())))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the session fixtures stopped: nothing the suite started may still run."""
    SESSION_SERVERS.clear()
    found = _leftovers()
    if found:
        print("\nironcache tests: processes left running after the session (killed now):\n"
              + "\n".join(f"  pid {pid}: {cmd}" for pid, cmd in sorted(found.items())))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared server. Tests must not change its configuration (use make_server)."""
    srv = Server(tmp_path_factory.mktemp("shared-server")).start()
    SESSION_SERVERS.append(srv)
    yield srv
    code = srv.stop()
    assert code == 0, f"shared server exited with {code}:\n{srv.log_text()}"


STDLIB_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="session")
def stdlib_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """IronCache on the host's own python3 (no uvloop, no hiredis): the pure-Python paths."""
    import subprocess

    if IS_REDIS:
        pytest.skip("IronCache-specific: the server's pure-Python code paths")
    probe = subprocess.run([STDLIB_PYTHON, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                           capture_output=True, text=True, check=False)
    if probe.stdout.strip() != "True":
        pytest.skip(f"{STDLIB_PYTHON} is missing or older than 3.11")
    import support

    saved = support.SERVER_PYTHON
    support.SERVER_PYTHON = STDLIB_PYTHON
    try:
        srv = Server(tmp_path_factory.mktemp("stdlib-server")).start()
    finally:
        support.SERVER_PYTHON = saved
    SESSION_SERVERS.append(srv)
    yield srv
    code = srv.stop()
    assert code == 0, f"stdlib server exited with {code}:\n{srv.log_text()}"


@pytest.fixture(params=["default", "stdlib"])
def any_server(request: pytest.FixtureRequest) -> Server:
    """The shared server, then (IronCache only) the same tests on the host's python3."""
    if request.param == "default":
        return request.getfixturevalue("server")
    return request.getfixturevalue("stdlib_server")


@pytest.fixture
def r(server: Server) -> Iterator[redis.Redis]:
    """A redis-py client (str replies) on the shared server, every database flushed."""
    client = server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def rb(server: Server) -> Iterator[redis.Redis]:
    """Like `r` but with bytes replies."""
    client = server.client(decode_responses=False)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a dedicated server: make_server(directives={...}, ...). Stopped with SIGTERM
    at teardown, asserting exit code 0 unless the test already stopped it."""
    started: list[Server] = []

    def factory(directives: dict[str, Any] | None = None, start: bool = True,
                **kw: Any) -> Server:
        srv = Server(tmp_path / f"server{len(started)}", directives, **kw)
        started.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    failures = []
    for srv in started:
        if srv.proc is None or srv.returncode is not None:
            continue
        if srv.proc.poll() is not None:
            failures.append(f"server exited early with {srv.proc.returncode}:\n{srv.log_text()}")
            continue
        code = srv.stop(signal.SIGTERM)
        if code != 0:
            failures.append(f"server exited with {code} after SIGTERM:\n{srv.log_text()}")
    assert not failures, "\n".join(failures)


@pytest.fixture
def target_is_redis() -> bool:
    return IS_REDIS


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """A client of a redis-server 7.0.15 to compare with, one per test module."""
    if shutil.which(REDIS_SERVER) is None:
        pytest.skip("redis-server not installed")
    srv = RedisReference(tmp_path_factory.mktemp("ref-redis")).start()
    client = srv.client(decode_responses=False)
    yield client
    client.close()
    srv.stop()
