"""Real clients: redis-cli and redis-benchmark (Debian redis-tools), redis-py asyncio."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable

import pytest
import redis
import redis.asyncio as aioredis

from support import Server

needs_cli = pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli missing")
needs_bench = pytest.mark.skipif(shutil.which("redis-benchmark") is None,
                                 reason="redis-benchmark missing")


# -- redis-cli ------------------------------------------------------------------------------

@needs_cli
def test_cli_ping(server: Server) -> None:
    out = server.cli("PING")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "PONG"


@needs_cli
def test_cli_set_get_types(server: Server, r: redis.Redis) -> None:
    assert server.cli("SET", "clikey", "hello world").stdout.strip() == "OK"
    assert server.cli("GET", "clikey").stdout.strip() == "hello world"
    assert server.cli("--no-raw", "GET", "clikey").stdout.strip() == '"hello world"'
    assert server.cli("--no-raw", "GET", "missing").stdout.strip() == "(nil)"
    assert server.cli("--no-raw", "INCR", "n").stdout.strip() == "(integer) 1"
    server.cli("RPUSH", "l", "a", "b")
    assert server.cli("--no-raw", "LRANGE", "l", "0", "-1").stdout.splitlines() == \
        ['1) "a"', '2) "b"']
    err = server.cli("--no-raw", "GET")
    assert "(error) ERR wrong number of arguments for 'get' command" in err.stdout + err.stderr
    assert r.get("clikey") == "hello world"


@needs_cli
def test_cli_info(server: Server) -> None:
    out = server.cli("--no-raw", "INFO")
    assert out.returncode == 0, out.stderr
    assert "# Server" in out.stdout
    assert "redis_version:" in out.stdout
    assert "# Keyspace" in out.stdout
    out = server.cli("INFO", "memory")
    assert "used_memory:" in out.stdout


@needs_cli
def test_cli_database_option(server: Server, r: redis.Redis) -> None:
    assert server.cli("-n", "3", "SET", "indb3", "v").stdout.strip() == "OK"
    assert server.client(db=3).get("indb3") == "v"
    assert r.get("indb3") is None


@needs_cli
def test_cli_stdin_session(server: Server) -> None:
    """No command arguments and commands on stdin: redis-cli's REPL reading line by line
    (it asks the server for COMMAND DOCS to build its hints)."""
    out = server.cli(stdin="SET repl 1\nINCR repl\nGET repl\nPING\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["OK", "2", "2", "PONG"]


@needs_cli
def test_cli_pipe_mode(server: Server, r: redis.Redis) -> None:
    payload = "".join(f"SET pipe:{i} {i}\r\n" for i in range(1000))
    out = server.cli("--pipe", stdin=payload)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "errors: 0, replies: 1000" in out.stdout
    assert r.get("pipe:999") == "999"


@needs_cli
def test_cli_scan(server: Server, r: redis.Redis) -> None:
    r.mset({f"scan:{i}": "v" for i in range(300)} | {"other": "v"})
    out = server.cli("--scan", "--pattern", "scan:*")
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) == {f"scan:{i}" for i in range(300)}


@needs_cli
def test_cli_with_password(make_server: Callable[..., Server]) -> None:
    srv = make_server({"requirepass": "clipass"}, password="clipass")
    assert srv.cli("PING").stdout.strip() == "PONG"
    srv.password = None
    out = srv.cli("--no-raw", "PING")
    assert "NOAUTH" in out.stdout + out.stderr


@needs_bench
def test_redis_benchmark(server: Server) -> None:
    import subprocess

    out = subprocess.run(
        ["redis-benchmark", "-p", str(server.port), "-t", "set,get,incr,lpush,hset,ping",
         "-n", "2000", "-c", "4", "-P", "8", "-q"],
        capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    text = out.stdout.replace("\r", "\n")
    for test in ("SET", "GET", "INCR", "LPUSH", "HSET", "PING_INLINE", "PING_MBULK"):
        assert any(line.startswith(f"{test}:") and "requests per second" in line
                   for line in text.splitlines()), (test, text[-800:])
    assert "ERR" not in out.stderr


# -- redis-py asyncio -----------------------------------------------------------------------

def _run(coro_fn: Callable[[aioredis.Redis], object], server: Server) -> object:
    async def main() -> object:
        client = server.async_client()
        try:
            return await coro_fn(client)  # type: ignore[misc]
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_asyncio_basic(server: Server, r: redis.Redis) -> None:
    async def body(c: aioredis.Redis) -> object:
        assert await c.ping() is True
        await c.set("a", "1")
        assert await c.get("a") == "1"
        await c.hset("h", mapping={"f": "v"})
        return await c.hgetall("h")

    assert _run(body, server) == {"f": "v"}


def test_asyncio_concurrent_clients(server: Server, r: redis.Redis) -> None:
    async def main() -> object:
        c = server.async_client(max_connections=64)
        try:
            await asyncio.gather(*(c.incr("n") for _ in range(64)))
            await asyncio.gather(*(c.incr("n") for _ in range(64)))
            return await c.get("n")
        finally:
            await c.aclose()

    assert asyncio.run(main()) == "128"


def test_asyncio_pipelines(server: Server, r: redis.Redis) -> None:
    async def body(c: aioredis.Redis) -> object:
        async with c.pipeline(transaction=True) as p:
            p.set("t", "1").incr("t").get("t")
            tx = await p.execute()
        async with c.pipeline(transaction=False) as p:
            for i in range(1000):
                p.set(f"ap:{i}", i)
            plain = await p.execute()
        return tx, plain

    tx, plain = _run(body, server)  # type: ignore[misc]
    assert tx == [True, 2, "2"]
    assert plain == [True] * 1000
    assert r.get("ap:999") == "999"


def test_asyncio_watch_conflict(server: Server, r: redis.Redis) -> None:
    r.set("w", "0")
    other = server.client()

    async def body(c: aioredis.Redis) -> object:
        async with c.pipeline(transaction=True) as p:
            await p.watch("w")
            other.set("w", "changed")
            p.multi()
            p.set("w", "mine")
            with pytest.raises(redis.WatchError):
                await p.execute()
        return await c.get("w")

    assert _run(body, server) == "changed"


def test_asyncio_resp3(server: Server, r: redis.Redis) -> None:
    async def body(c: aioredis.Redis) -> object:
        await c.hset("h3", mapping={"a": "1"})
        return await c.hgetall("h3")

    async def main() -> object:
        client = server.async_client(protocol=3)
        try:
            return await body(client)
        finally:
            await client.aclose()

    assert asyncio.run(main()) == {"a": "1"}


@needs_cli
def test_cli_interactive_on_a_terminal(server: Server, r: redis.Redis) -> None:
    """redis-cli on a pseudo-terminal: its line editor, hints (from COMMAND DOCS) and
    replies, as a person at a shell would use it."""
    import os
    import pty
    import select
    import signal
    import time

    from support import IS_REDIS

    r.config_resetstat()
    pid, fd = pty.fork()
    if pid == 0:  # child: become redis-cli
        os.environ["TERM"] = "xterm"
        os.execvp("redis-cli", ["redis-cli", "-p", str(server.port)])
    buf = bytearray()

    def read_until(done: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if b"\x1b[6n" in chunk:  # the line editor asks where the cursor is
                os.write(fd, b"\x1b[1;1R")
                chunk = chunk.replace(b"\x1b[6n", b"")
            buf.extend(chunk)
        return done()

    prompt = f"127.0.0.1:{server.port}> ".encode()
    try:
        assert read_until(lambda: prompt in buf), bytes(buf)
        for line, expected in [("PING", b"PONG"), ("SET term v", b"OK"),
                               ("GET term", b'"v"'), ("HGETALL nokey", b"(empty array)"),
                               ("INCR counter", b"(integer) 1"),
                               ("GET", b"ERR wrong number of arguments for 'get' command")]:
            start = len(buf)
            os.write(fd, line.encode() + b"\r")
            assert read_until(lambda start=start, expected=expected:
                              expected in buf[start:]
                              and prompt in buf[start:].split(expected, 1)[1]), \
                (line, bytes(buf[start:]))
        os.write(fd, b"\x04")  # Ctrl-D ends the session
        read_until(lambda: False, 0.5)
    finally:
        for _ in range(50):
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert r.get("term") == "v"
    if IS_REDIS:  # the interactive start-up really asks for COMMAND DOCS
        assert "cmdstat_command|docs" in r.info("commandstats")
